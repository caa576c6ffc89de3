//! The ops files name only metrics that exist: a renamed metric must not silently break an
//! alert. (promtool checks the files' syntax and alert logic; this checks their vocabulary.)

use std::collections::BTreeSet;

fn metric_families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// `gateway_*` and `bridge_*` identifiers in a file, without histogram suffixes.
fn referenced_metrics(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("gateway_") || word.starts_with("bridge_") {
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word);
            names.insert(base.to_owned());
        }
    }
    names
}

#[test]
fn alert_rules_use_only_exported_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut exported = metric_families(&rakuda_gateway::metrics::GatewayMetrics::new().render());
    exported.extend(metric_families(
        &rakuda_bridge::BridgeMetrics::new().render(),
    ));
    let file = "ops/prometheus/alerts.yml";
    let text = std::fs::read_to_string(root.join(file)).expect("read ops file");
    let referenced = referenced_metrics(&text);
    assert!(!referenced.is_empty(), "{file} names no metrics?");
    let unknown: Vec<&String> = referenced
        .iter()
        .filter(|name| !exported.contains(*name))
        .collect();
    assert!(
        unknown.is_empty(),
        "{file} names metrics nobody exports: {unknown:?}"
    );
}
