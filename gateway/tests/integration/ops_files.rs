//! The ops files name only metrics that exist and hold valid PromQL: a renamed metric must not
//! silently break an alert or blank a dashboard panel. (promtool checks the alert files' syntax
//! and logic in `just check-ops`; this checks their vocabulary against what real processes
//! export.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn metric_families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// `gateway_*` and `bridge_*` identifiers in a text, without histogram suffixes.
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

/// Every PromQL expression of the Grafana dashboards (`targets[].expr`).
fn dashboard_queries() -> Vec<(String, String)> {
    let dir = repo_root().join("ops/grafana/dashboards");
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read ops/grafana/dashboards") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read dashboard");
        let dashboard: Value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()));
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{} has no panels", path.display());
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or("?").to_owned();
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "panel {title:?} has no query");
            for target in targets {
                let expr = target["expr"].as_str().expect("expr");
                queries.push((title.clone(), expr.to_owned()));
            }
        }
    }
    queries
}

async fn scrape(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_dashboards_use_only_metrics_a_running_bridge_and_gateway_export() {
    let stack = Stack::start().await;
    let gateway = start_gateway(stack.gateway_config()).await;
    let mut exported = metric_families(&scrape(&gateway.url).await);
    exported.extend(metric_families(
        &scrape(stack.bridge_url().expect("bridge running")).await,
    ));
    assert!(exported.contains("gateway_connections") && exported.contains("bridge_queue_depth"));

    let root = repo_root();
    let mut files = vec![(
        "ops/prometheus/alerts.yml".to_owned(),
        std::fs::read_to_string(root.join("ops/prometheus/alerts.yml")).expect("alerts"),
    )];
    files.push((
        "ops/grafana/dashboards".to_owned(),
        dashboard_queries()
            .into_iter()
            .map(|(_, expr)| expr)
            .collect::<Vec<_>>()
            .join("\n"),
    ));
    for (file, text) in files {
        let referenced = referenced_metrics(&text);
        assert!(
            referenced.len() >= 5,
            "{file} names few metrics: {referenced:?}"
        );
        let unknown: Vec<&String> = referenced
            .iter()
            .filter(|name| !exported.contains(*name))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics no running process exports: {unknown:?}"
        );
    }
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    // promtool has no "parse this expression" command, but it parses every expression of a
    // rule file: turn each panel query into a recording rule. Grafana's $__rate_interval
    // becomes a plain range.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, (title, expr)) in dashboard_queries().into_iter().enumerate() {
        let expr = expr.replace("$__rate_interval", "5m");
        rules.push_str(&format!(
            "      # {title}\n      - record: dashboard:query_{index}\n        expr: {}\n",
            serde_json::to_string(&expr).expect("quote")
        ));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, rules).expect("write rules");
    let output = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("promtool is missing: run ./ops/bootstrap.sh (apt-get install prometheus)");
    assert!(
        output.status.success(),
        "a dashboard query is not valid PromQL:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every environment variable the bridge and the gateway read: their settings, from the
/// settings themselves, and `RUST_LOG`, which logging reads.
fn known_settings() -> BTreeSet<String> {
    use clap::CommandFactory;
    [
        rakuda_gateway::Config::command(),
        rakuda_bridge::Config::command(),
    ]
    .iter()
    .flat_map(|command| command.get_arguments())
    .filter_map(|arg| arg.get_env())
    .map(|env| env.to_string_lossy().into_owned())
    .chain(["RUST_LOG".to_owned()])
    .collect()
}

#[test]
fn systemd_units_and_env_files_set_only_real_settings() {
    let known = known_settings();
    assert!(known.contains("GATEWAY_ADDR") && known.contains("BRIDGE_METRICS_ADDR"));
    let dir = repo_root().join("ops/systemd");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("read ops/systemd") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("read");
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let assignment = match line.strip_prefix("Environment=") {
                Some(rest) => rest,
                None if name.contains(".env") => line,
                None => continue,
            };
            let Some((setting, _)) = assignment.split_once('=') else {
                continue;
            };
            // NATS_* are cluster.conf's variables, not a rakuda setting.
            if setting.starts_with("NATS_") && setting != "NATS_URL" {
                continue;
            }
            assert!(
                known.contains(setting),
                "{name} sets {setting}, which neither the bridge nor the gateway reads (.env.example lists them all)"
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} settings found in ops/systemd");
}
