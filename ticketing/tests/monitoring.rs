//! The shipped alerts (`deploy/monitoring/prometheus-rule.yaml`) and dashboard
//! (`deploy/monitoring/grafana-dashboard.json`) name only metrics that some process records: a
//! renamed metric would otherwise leave an alert that can never fire.

use std::collections::BTreeSet;
use std::path::Path;

/// The `ticketing_*` metric names in `text`, without a histogram's `_bucket`/`_count`/`_sum`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("ticketing_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        names.insert(base.to_owned());
        rest = &tail[end..];
    }
    names
}

/// Every Rust source file under `dir`, concatenated.
fn sources(dir: &Path) -> String {
    let mut all = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return all };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.push_str(&sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            all.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
    all
}

#[test]
fn alerts_and_dashboard_name_only_metrics_that_are_recorded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let code: String = ["command-service/src", "projector/src", "query-service/src", "event-store/src"]
        .iter()
        .map(|dir| sources(&root.join(dir)))
        .collect();
    let mut named = BTreeSet::new();
    for file in ["deploy/monitoring/prometheus-rule.yaml", "deploy/monitoring/grafana-dashboard.json"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let names = names_in(&text);
        assert!(names.len() >= 8, "{file} names only {names:?}");
        named.extend(names);
    }
    let missing: Vec<&String> = named.iter().filter(|name| !code.contains(&format!("\"{name}"))).collect();
    assert!(missing.is_empty(), "named in deploy/monitoring but recorded nowhere: {missing:?}");
    // The alerts the operations guide promises.
    let rules = std::fs::read_to_string(root.join("deploy/monitoring/prometheus-rule.yaml")).unwrap_or_default();
    for alert in [
        "TicketingProjectionLagging",
        "TicketingHoldExpiryLate",
        "TicketingParkedEvents",
        "TicketingPaymentReconcilerBacklog",
    ] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert} missing");
    }
}
