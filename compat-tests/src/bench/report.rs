//! The bench's printed report: a Markdown table of medians with the ratio
//! shoald/dockerd, the raw samples, and what failed and why.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::Figures;
use crate::cluster::Engine;

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len().is_multiple_of(2) {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    }
}

fn cell(v: Option<&Vec<f64>>) -> String {
    match v {
        Some(v) if !v.is_empty() => format!("{:.3} (n={})", median(v), v.len()),
        _ => "-".into(),
    }
}

/// The whole report as Markdown.
pub fn render(figs: &Figures, engines: &[Engine]) -> String {
    let mut out = String::new();
    let names: BTreeSet<&String> = figs.samples.keys().map(|(f, _)| f).collect();
    let _ = writeln!(
        out,
        "| figure (median) | shoald | dockerd | shoald/dockerd |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for name in &names {
        let s = figs.samples.get(&((*name).clone(), Engine::Shoald));
        let d = figs.samples.get(&((*name).clone(), Engine::Dockerd));
        let ratio = match (s, d) {
            (Some(s), Some(d)) if !s.is_empty() && !d.is_empty() && median(d) != 0.0 => {
                format!("{:.2}", median(s) / median(d))
            }
            _ => "-".into(),
        };
        let _ = writeln!(out, "| {name} | {} | {} | {ratio} |", cell(s), cell(d));
    }
    let _ = writeln!(out, "\nRaw samples:");
    for ((name, engine), v) in &figs.samples {
        if !engines.contains(engine) {
            continue;
        }
        let list: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
        let _ = writeln!(out, "- {engine}: {name}: {}", list.join(", "));
    }
    if !figs.failures.is_empty() {
        let _ = writeln!(out, "\nFailed or skipped:");
        for f in &figs.failures {
            let _ = writeln!(
                out,
                "- {} rep {} scenario {}: {}",
                f.engine,
                f.rep,
                f.scenario,
                f.why.replace('\n', " / ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let mut f = Figures::default();
        f.add("x (s)", Engine::Shoald, 1.0);
        f.add("x (s)", Engine::Dockerd, 4.0);
        f.fail(Engine::Shoald, 1, "a1", "join refused".into());
        let r = render(&f, &[Engine::Shoald, Engine::Dockerd]);
        assert!(
            r.contains("| x (s) | 1.000 (n=1) | 4.000 (n=1) | 0.25 |"),
            "{r}"
        );
        assert!(r.contains("shoald rep 1 scenario a1: join refused"), "{r}");
    }
}
