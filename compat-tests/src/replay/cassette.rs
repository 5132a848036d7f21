//! Loading scenarios: `scenarios/NN-name/{scenario.toml, traffic.jsonl, rules.toml}`.

use std::path::Path;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::Deserialize;

use super::matcher::RuleSet;
use crate::record::format::parse_lines;
use crate::record::format::Exchange;

/// `scenario.toml`: what a recording was made with and what it needs.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ScenarioMeta {
    /// Scenario name (the folder name).
    #[serde(default)]
    pub name: String,
    /// What the scenario exercises.
    #[serde(default)]
    pub description: String,
    /// Version of the dockerd that was recorded.
    #[serde(default)]
    pub dockerd: String,
    /// Version of the docker CLI that drove it.
    #[serde(default)]
    pub cli: String,
    /// Setup steps before the first request (`load-test-image`).
    #[serde(default)]
    pub setup: Vec<String>,
}

/// One scenario ready to replay.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Folder name, e.g. `04-services`.
    pub name: String,
    /// Folder path.
    pub dir: PathBuf,
    /// `scenario.toml`.
    pub meta: ScenarioMeta,
    /// Recorded exchanges in request order (by `seq`).
    pub exchanges: Vec<Exchange>,
    /// Global rules followed by the scenario's own `rules.toml`.
    pub rules: RuleSet,
}

/// Loads every scenario folder under `root` (sorted by name) whose name
/// starts with one of `only` (all when empty). `root/../rules.toml`, when
/// present, holds rules that apply to every scenario.
pub fn load_all(root: &Path, only: &[String]) -> anyhow::Result<Vec<Scenario>> {
    let global_rules = root.parent().map(|p| p.join("rules.toml"));
    let global = match global_rules {
        Some(p) if p.exists() => RuleSet::load(&p)?,
        _ => RuleSet::default(),
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("traffic.jsonl").exists())
        .collect();
    dirs.sort();
    let mut out = Vec::new();
    for dir in dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !only.is_empty() && !only.iter().any(|o| name.starts_with(o.as_str())) {
            continue;
        }
        out.push(load_one(&dir, &name, &global)?);
    }
    Ok(out)
}

fn load_one(dir: &Path, name: &str, global: &RuleSet) -> anyhow::Result<Scenario> {
    let meta_path = dir.join("scenario.toml");
    let meta: ScenarioMeta = if meta_path.exists() {
        let text = std::fs::read_to_string(&meta_path)?;
        toml::from_str(&text).with_context(|| format!("parsing {}", meta_path.display()))?
    } else {
        ScenarioMeta::default()
    };
    let text = std::fs::read_to_string(dir.join("traffic.jsonl"))?;
    let mut exchanges =
        parse_lines(&text).with_context(|| format!("parsing {}/traffic.jsonl", dir.display()))?;
    exchanges.sort_by_key(|e| e.seq);
    let mut rules = global.clone();
    let rules_path = dir.join("rules.toml");
    if rules_path.exists() {
        rules.extend(RuleSet::load(&rules_path)?);
    }
    Ok(Scenario {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        meta,
        exchanges,
        rules,
    })
}
