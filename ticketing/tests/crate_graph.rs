//! The crate graph drawn in README.md is the one the `Cargo.toml`s declare: every edge between
//! the services and their libraries, no more and no fewer. Edges to `domain` (every crate has
//! one) and the crates outside the drawing (`web`, `testkit`, `bench`) are left out of both.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

type Edges = BTreeSet<(String, String)>;

/// The edges of the README's `flowchart BT` block: `a[label] --> b & c`.
fn drawn() -> Edges {
    let readme = std::fs::read_to_string(testkit::workspace_root().join("README.md")).unwrap_or_else(|e| panic!("{e}"));
    let block = readme
        .split("```mermaid")
        .find(|b| b.trim_start().starts_with("flowchart BT"))
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("README.md has no crate graph (a mermaid `flowchart BT`)"));
    let mut names = BTreeMap::new();
    let mut edges = Vec::new();
    let mut node = |text: &str| -> String {
        let text = text.trim();
        match text.split_once('[') {
            Some((id, label)) => {
                let label = label.trim_end_matches(']').to_owned();
                names.insert(id.to_owned(), label);
                id.to_owned()
            }
            None => text.to_owned(),
        }
    };
    for line in block.lines().skip(1).map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once("-->") {
            Some((from, to)) => {
                let from = node(from);
                for to in to.split('&') {
                    let to = node(to);
                    edges.push((from.clone(), to));
                }
            }
            None => {
                node(line);
            }
        }
    }
    let name = |id: &String| names.get(id).cloned().unwrap_or_else(|| id.clone());
    edges.iter().map(|(a, b)| (name(a), name(b))).filter(|(_, b)| b != "domain").collect()
}

/// The normal dependencies between workspace crates, from `cargo metadata`.
fn declared(shown: &BTreeSet<String>) -> Edges {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(testkit::workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("cargo metadata: {e}"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}"));
    let mut edges = Edges::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let from = package["name"].as_str().unwrap_or_default().to_owned();
        if !shown.contains(&from) {
            continue;
        }
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let to = dependency["name"].as_str().unwrap_or_default().to_owned();
            if dependency["kind"].is_null() && shown.contains(&to) && to != "domain" {
                edges.insert((from.clone(), to));
            }
        }
    }
    edges
}

#[test]
fn the_readme_crate_graph_is_the_declared_one() {
    let drawn = drawn();
    let shown: BTreeSet<String> =
        drawn.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).chain(["domain".into()]).collect();
    for required in
        ["command-api", "event-store", "service-kit", "command-service", "projector", "query-service", "ticketing"]
    {
        assert!(shown.contains(required), "the README graph leaves out {required}");
    }
    assert_eq!(drawn, declared(&shown), "README.md's crate graph (left) against the Cargo.tomls (right)");
    // The point of the drawing: the gateway reaches the write side and the projector only
    // through their contracts.
    for (from, to) in &drawn {
        assert!(!(from == "query-service" && (to == "command-service" || to == "projector")), "{from} -> {to}");
    }
}

/// Every test README.md's rules table names (`path/to/file.rs::function`) exists there: the
/// table cannot keep pointing at a test that was renamed or removed.
#[test]
fn every_test_the_readme_names_exists() {
    let root = testkit::workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_else(|e| panic!("{e}"));
    let table = readme
        .split("### Rules and their tests")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap_or_else(|| panic!("README.md has no rules table"));
    let mut named = 0;
    for cell in table.split(['|', ';', ' ', '`']) {
        let Some((file, function)) = cell.trim().split_once(".rs::") else { continue };
        let path = root.join(format!("{file}.rs"));
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let function = function.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_');
        assert!(
            source.contains(&format!("fn {function}(")),
            "README names {file}.rs::{function}, which does not exist"
        );
        named += 1;
    }
    assert!(named >= 100, "only {named} tests named in the rules table");
}
