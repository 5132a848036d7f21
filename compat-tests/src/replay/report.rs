//! Difference lists, accepted differences, and the closing summary line.
//!
//! Every difference has a stable key `SCENARIO:SEQ:AT`, e.g.
//! `04-services:17:$.Spec.Labels`, `01-system:8:status`,
//! `02-swarm:5:header.Swarm`. `KNOWN_DIFFERENCES.md` lists accepted ones in
//! a markdown table whose first column is a key pattern (in backticks; `*`
//! matches any text) and whose second column is the reason:
//!
//! ```markdown
//! | key | reason |
//! | --- | --- |
//! | `*:*:header.Server` | shoald names itself |
//! ```

use std::fmt::Write as _;
use std::path::Path;

use super::matcher::glob;
use super::matcher::Difference;

/// One accepted difference pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Key pattern (`*` wildcards).
    pub pattern: String,
    /// Why it is accepted.
    pub reason: String,
}

/// The accepted differences of a `KNOWN_DIFFERENCES.md`.
#[derive(Debug, Clone, Default)]
pub struct KnownDifferences {
    /// Patterns in file order.
    pub entries: Vec<Known>,
}

impl KnownDifferences {
    /// Reads the file; a missing file means nothing is accepted.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            return Ok(Self::default());
        }
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    /// Parses the markdown table rows whose first cell is a backticked key.
    pub fn parse(text: &str) -> Self {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if !line.starts_with('|') {
                continue;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let Some(first) = cells.first() else { continue };
            if first.len() < 3 || !first.starts_with('`') || !first.ends_with('`') {
                continue;
            }
            let pattern = first.trim_matches('`').to_string();
            let reason = cells.get(1).map(|s| s.to_string()).unwrap_or_default();
            entries.push(Known { pattern, reason });
        }
        KnownDifferences { entries }
    }

    /// The entry that accepts `key`, if any.
    pub fn accepts(&self, key: &str) -> Option<&Known> {
        self.entries.iter().find(|k| glob(&k.pattern, key))
    }
}

/// The result of comparing one exchange.
#[derive(Debug, Clone)]
pub struct ExchangeResult {
    /// Scenario folder name.
    pub scenario: String,
    /// Recorded sequence number.
    pub seq: u64,
    /// `METHOD path` as sent.
    pub request: String,
    /// Differences found (empty: a match).
    pub diffs: Vec<Difference>,
    /// The replay could not send it or read the answer.
    pub error: Option<String>,
}

impl ExchangeResult {
    /// The stable key of a difference in this exchange.
    pub fn key(&self, at: &str) -> String {
        format!("{}:{}:{}", self.scenario, self.seq, at)
    }
}

/// All results of a run, with the accepted differences applied.
#[derive(Debug, Default)]
pub struct Report {
    /// Results in replay order.
    pub results: Vec<ExchangeResult>,
}

/// Counts of a finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Exchanges replayed.
    pub exchanges: usize,
    /// Exchanges with no difference.
    pub matched: usize,
    /// Exchanges whose status and body match, headers aside (every answer
    /// names its own server and API version).
    pub same_body: usize,
    /// Exchanges with at least one difference (accepted ones included).
    pub differ: usize,
    /// Differences not accepted by the known list.
    pub unlisted: usize,
}

impl Report {
    /// Adds one result.
    pub fn push(&mut self, r: ExchangeResult) {
        self.results.push(r);
    }

    /// Counts matches and differences; `known` decides which are accepted.
    pub fn summary(&self, known: &KnownDifferences) -> Summary {
        let mut s = Summary {
            exchanges: self.results.len(),
            ..Default::default()
        };
        for r in &self.results {
            if r.error.is_none() && r.diffs.iter().all(|d| d.at.starts_with("header.")) {
                s.same_body += 1;
            }
            if r.diffs.is_empty() && r.error.is_none() {
                s.matched += 1;
                continue;
            }
            s.differ += 1;
            if r.error.is_some() && known.accepts(&r.key("error")).is_none() {
                s.unlisted += 1;
            }
            s.unlisted += r
                .diffs
                .iter()
                .filter(|d| known.accepts(&r.key(&d.at)).is_none())
                .count();
        }
        s
    }

    /// Renders the differences, one block per differing exchange, accepted
    /// ones marked with their reason.
    pub fn render(&self, known: &KnownDifferences, show_known: bool) -> String {
        let mut out = String::new();
        for r in &self.results {
            if r.diffs.is_empty() && r.error.is_none() {
                continue;
            }
            let mut block = String::new();
            if let Some(e) = &r.error {
                let _ = writeln!(block, "    {}  error: {e}", r.key("error"));
            }
            for d in &r.diffs {
                let key = r.key(&d.at);
                match known.accepts(&key) {
                    Some(k) if show_known => {
                        let _ = writeln!(block, "    {key}  {}  [known: {}]", d.message, k.reason);
                    }
                    Some(_) => {}
                    None => {
                        let _ = writeln!(block, "    {key}  {}", d.message);
                    }
                }
            }
            if !block.is_empty() {
                let _ = writeln!(out, "{} #{} {}", r.scenario, r.seq, r.request);
                out.push_str(&block);
            }
        }
        out
    }

    /// Markdown table rows for the differences `known` does not accept,
    /// one per distinct key, with the message as a placeholder reason.
    pub fn unlisted_rows(&self, known: &KnownDifferences) -> String {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = String::new();
        for r in &self.results {
            let mut keys: Vec<(String, String)> = r
                .diffs
                .iter()
                .map(|d| (r.key(&d.at), d.message.clone()))
                .collect();
            if let Some(e) = &r.error {
                keys.push((r.key("error"), e.clone()));
            }
            for (key, msg) in keys {
                if known.accepts(&key).is_none() && seen.insert(key.clone()) {
                    let msg = msg.replace('|', "\\|").replace('`', "'");
                    let _ = writeln!(out, "| `{key}` | TODO: {msg} |");
                }
            }
        }
        out
    }

    /// The known entries that accepted no difference of this run: stale
    /// ones to remove once shoald matches there (meaningful only when every
    /// scenario was replayed).
    pub fn unused_known<'k>(&self, known: &'k KnownDifferences) -> Vec<&'k Known> {
        let mut used = vec![false; known.entries.len()];
        for r in &self.results {
            let keys = r
                .diffs
                .iter()
                .map(|d| r.key(&d.at))
                .chain(r.error.as_ref().map(|_| r.key("error")));
            for key in keys {
                if let Some(i) = known.entries.iter().position(|k| glob(&k.pattern, &key)) {
                    used[i] = true;
                }
            }
        }
        known
            .entries
            .iter()
            .zip(used)
            .filter(|(_, u)| !u)
            .map(|(k, _)| k)
            .collect()
    }

    /// The closing line: `compat: N exchanges, M match, K differ`.
    pub fn closing_line(summary: &Summary) -> String {
        format!(
            "compat: {} exchanges, {} match, {} with the same status and body (headers aside), {} differ",
            summary.exchanges, summary.matched, summary.same_body, summary.differ
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &str = "# Known differences\n\n| key | reason |\n| --- | --- |\n| `*:*:header.Server` | shoald names itself |\n| `04-services:17:$.Spec.Labels` | labels default |\nnot a row\n";

    #[test]
    fn parses_table_and_matches_keys() {
        let k = KnownDifferences::parse(KNOWN);
        assert_eq!(k.entries.len(), 2);
        assert_eq!(
            k.accepts("01-system:3:header.Server").unwrap().reason,
            "shoald names itself"
        );
        assert!(k.accepts("04-services:17:$.Spec.Labels").is_some());
        assert!(k.accepts("04-services:18:$.Spec.Labels").is_none());
    }

    #[test]
    fn summary_counts_and_closing_line() {
        let k = KnownDifferences::parse(KNOWN);
        let mut rep = Report::default();
        let mk = |seq, ats: &[&str]| ExchangeResult {
            scenario: "04-services".into(),
            seq,
            request: "GET /x".into(),
            diffs: ats
                .iter()
                .map(|a| Difference {
                    at: a.to_string(),
                    message: "m".into(),
                })
                .collect(),
            error: None,
        };
        rep.push(mk(1, &[]));
        rep.push(mk(2, &["header.Server"]));
        rep.push(mk(3, &["status", "header.Server"]));
        let s = rep.summary(&k);
        assert_eq!(
            s,
            Summary {
                exchanges: 3,
                matched: 1,
                same_body: 2,
                differ: 2,
                unlisted: 1
            }
        );
        assert_eq!(
            Report::closing_line(&s),
            "compat: 3 exchanges, 1 match, 2 with the same status and body (headers aside), 2 differ"
        );
        let text = rep.render(&k, false);
        assert!(text.contains("04-services:3:status"));
        assert!(!text.contains("04-services:2:"));
        let unused: Vec<&str> = rep
            .unused_known(&k)
            .iter()
            .map(|e| e.pattern.as_str())
            .collect();
        assert_eq!(unused, ["04-services:17:$.Spec.Labels"]);
    }
}
