//! `rakuda-loadgen scenario` and `rakuda-loadgen bench`: standard scenarios run on fresh
//! stacks, each run printed as a JSON line and a table; `bench` runs them all and writes the
//! medians into the generated part of docs/BENCHMARKS.md.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::StackArgs;
use crate::client::Transport;
use crate::fleet::rows::FleetRow;
use crate::fleet::{self, FleetError, FleetOptions, FleetReport, FleetScenario};
use crate::report::{self, Row};
use crate::scenario::{self, Report, RunError, RunOptions, Scenario};

/// No single scenario run may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(600);
/// No single fleet scenario run may take longer than this (opening 56,000 connections, the
/// idle window, the load and a rolling deploy of four gateways take about five minutes).
const FLEET_RUN_LIMIT: Duration = Duration::from_secs(900);

/// One run of one scenario that produced no report.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    #[error("{label}: {source}")]
    Failed { label: String, source: RunError },
    #[error("{label}: {source}")]
    FleetFailed { label: String, source: FleetError },
    #[error("{label}: did not finish within {limit:?}")]
    TimedOut { label: String, limit: Duration },
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("unknown scenario `{name}`: use {known}")]
    UnknownScenario { name: String, known: String },
    #[error(transparent)]
    Run(#[from] RunFailure),
    #[error("--only {0:?} matches no scenario")]
    NoMatch(Vec<String>),
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{failed} run(s) failed; their rows in {} say which and why", .out.display())]
    RunsFailed { failed: usize, out: PathBuf },
    #[error("cannot find this program's own binary, which the fleet scenarios' workers run: {0}")]
    OwnBinary(std::io::Error),
}

/// Runs one scenario for `--runs`; stops at the first failed run.
pub async fn scenario(
    name: &str,
    transport: Transport,
    stack: &StackArgs,
) -> Result<(), BenchError> {
    if let Some(fleet) = fleet::find(name) {
        let fleet = fleet.scaled_down(stack.scale_down);
        let options = fleet_options(stack)?;
        for run in 1..=stack.runs.max(1) {
            let report = run_fleet_within_limit(&fleet, &options).await?;
            print_fleet_report(run, &report);
        }
        return Ok(());
    }
    let scenario = find(name, transport)
        .ok_or_else(|| BenchError::UnknownScenario {
            name: name.to_owned(),
            known: known_names(),
        })?
        .scaled_down(stack.scale_down);
    let options = run_options(stack);
    for run in 1..=stack.runs.max(1) {
        let report = run_within_limit(&scenario, &options).await?;
        print_report(&scenario, run, &report);
    }
    Ok(())
}

/// The standard scenario `name` over `transport`: the one defined so, or else the one named
/// so, switched to `transport`.
fn find(name: &str, transport: Transport) -> Option<Scenario> {
    let standard = scenario::standard();
    let exact = standard
        .iter()
        .find(|s| s.name == name && s.transport == transport);
    let mut found = exact
        .or_else(|| standard.iter().find(|s| s.name == name))?
        .clone();
    found.transport = transport;
    Some(found)
}

/// `idle-10k, light-1k, …, reconnect-storm or soak`: every standard scenario's name once.
fn known_names() -> String {
    let mut names: Vec<String> = Vec::new();
    for scenario in scenario::standard() {
        if !names.contains(&scenario.name) {
            names.push(scenario.name);
        }
    }
    names.extend(fleet::standard().into_iter().map(|scenario| scenario.name));
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Runs the standard scenarios, then the fleet scenarios (or those `only` names) `--runs`
/// times each and writes their medians into `out`. A failed run is reported and the bench
/// goes on; the bench then fails.
pub async fn bench(out: &Path, only: &[String], stack: &StackArgs) -> Result<(), BenchError> {
    let options = run_options(stack);
    let scenarios: Vec<Scenario> = scenario::standard()
        .into_iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| *o == s.name || *o == s.label()))
        .map(|s| s.scaled_down(stack.scale_down))
        .collect();
    let fleet_scenarios: Vec<FleetScenario> = fleet::standard()
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
        .map(|s| s.scaled_down(stack.scale_down))
        .collect();
    if scenarios.is_empty() && fleet_scenarios.is_empty() {
        return Err(BenchError::NoMatch(only.to_vec()));
    }
    let mut rows = Vec::new();
    let mut saturation = Vec::new();
    let mut failed_runs = 0;
    for scenario in &scenarios {
        let (reports, failures) = every_run(
            &scenario.label(),
            stack.runs,
            || run_within_limit(scenario, &options),
            |run, report| print_report(scenario, run, report),
        )
        .await;
        failed_runs += failures.len();
        if scenario.name == "saturation" {
            saturation = reports.clone();
        }
        rows.push(Row::of(&scenario.label(), &reports).with_failures(&failures));
    }
    let mut fleet_rows = Vec::new();
    if !fleet_scenarios.is_empty() {
        let fleet_options = fleet_options(stack)?;
        for scenario in &fleet_scenarios {
            let (reports, failures) = every_run(
                &scenario.name,
                stack.runs,
                || run_fleet_within_limit(scenario, &fleet_options),
                print_fleet_report,
            )
            .await;
            failed_runs += failures.len();
            fleet_rows.push(FleetRow::of(&scenario.name, &reports, &failures));
        }
    }
    let command = command_line(stack, &options);
    let section = report::generated_section(
        &rows,
        &fleet_rows,
        &report::machine(),
        &command,
        &saturation,
    );
    // A missing or unreadable file is started afresh: the generated part is all that is needed.
    let existing = std::fs::read_to_string(out).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(out, report::splice(&existing, &section)).map_err(|source| {
        BenchError::Write {
            path: out.to_owned(),
            source,
        }
    })?;
    eprintln!("rakuda-loadgen: wrote {}", out.display());
    if failed_runs > 0 {
        return Err(BenchError::RunsFailed {
            failed: failed_runs,
            out: out.to_owned(),
        });
    }
    Ok(())
}

/// Runs one scenario (`label`) `runs` times (at least once), printing each report as it comes:
/// the reports, and why each failed run failed. A failed run is reported and the bench goes
/// on: one bad run (a timeout on a saturated machine) should not throw away an hour of
/// measurements.
async fn every_run<R, F>(
    label: &str,
    runs: usize,
    mut run_once: impl FnMut() -> F,
    print: impl Fn(usize, &R),
) -> (Vec<R>, Vec<String>)
where
    F: Future<Output = Result<R, RunFailure>>,
{
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for run in 1..=runs.max(1) {
        eprintln!("rakuda-loadgen: {label} run {run}/{runs}");
        match run_once().await {
            Ok(report) => {
                print(run, &report);
                reports.push(report);
            }
            Err(failure) => {
                eprintln!("rakuda-loadgen: run {run} failed: {failure}");
                failures.push(failure.to_string());
            }
        }
    }
    (reports, failures)
}

/// How the table was made, for its `Command:` line.
fn command_line(stack: &StackArgs, options: &RunOptions) -> String {
    let mut command = format!("just bench (rakuda-loadgen bench --runs {}", stack.runs);
    if stack.scale_down > 1 {
        command.push_str(&format!(" --scale-down {}", stack.scale_down));
    }
    match &options.gateway_cpus {
        Some(cpus) => command.push_str(&format!("; gateway pinned to CPU {cpus})")),
        None => command.push_str("; gateway not pinned)"),
    }
    command
}

/// One run of `scenario`, given at most [`RUN_LIMIT`].
async fn run_within_limit(scenario: &Scenario, options: &RunOptions) -> Result<Report, RunFailure> {
    within(
        RUN_LIMIT,
        scenario.label(),
        scenario::run(scenario, options),
        |label, source| RunFailure::Failed { label, source },
    )
    .await
}

/// One run of a fleet scenario, given at most [`FLEET_RUN_LIMIT`].
async fn run_fleet_within_limit(
    scenario: &FleetScenario,
    options: &FleetOptions,
) -> Result<FleetReport, RunFailure> {
    within(
        FLEET_RUN_LIMIT,
        scenario.name.clone(),
        fleet::run(scenario, options),
        |label, source| RunFailure::FleetFailed { label, source },
    )
    .await
}

/// `run` (of the scenario `label`) given at most `limit`; its error made a [`RunFailure`] by
/// `failed`.
async fn within<R, E>(
    limit: Duration,
    label: String,
    run: impl Future<Output = Result<R, E>>,
    failed: impl FnOnce(String, E) -> RunFailure,
) -> Result<R, RunFailure> {
    match tokio::time::timeout(limit, run).await {
        Ok(result) => result.map_err(|source| failed(label, source)),
        Err(_) => Err(RunFailure::TimedOut { label, limit }),
    }
}

/// The stack flags as the fleet runner takes them; the workers run this very binary.
fn fleet_options(stack: &StackArgs) -> Result<FleetOptions, BenchError> {
    let options = run_options(stack);
    Ok(FleetOptions {
        bin_dir: options.bin_dir,
        worker_exe: std::env::current_exe().map_err(BenchError::OwnBinary)?,
        gateway_cpus: options.gateway_cpus,
        gateway_env: options.gateway_env,
    })
}

/// A fleet run's JSON line and its one-row table, on stdout.
fn print_fleet_report(run: usize, report: &FleetReport) {
    let row = FleetRow::of(
        &format!("{} (run {run})", report.scenario),
        std::slice::from_ref(report),
        &[],
    );
    print_run(report, &fleet::rows::table(&[row]));
}

/// The stack flags as the runner takes them. Pinning needs `taskset`: without it the gateway
/// runs unpinned (and stderr says so) rather than not at all.
fn run_options(stack: &StackArgs) -> RunOptions {
    let cpus = stack.gateway_cpus.trim();
    let taskset = std::process::Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok();
    if !cpus.is_empty() && !taskset {
        eprintln!("rakuda-loadgen: taskset is missing; the gateway runs unpinned");
    }
    RunOptions {
        bin_dir: stack.bin_dir.clone(),
        gateway_cpus: (!cpus.is_empty() && taskset).then(|| cpus.to_owned()),
        gateway_env: stack.gateway_env.clone(),
    }
}

/// A standard run's JSON line and its one-row table, on stdout.
fn print_report(scenario: &Scenario, run: usize, report: &Report) {
    let row = Row::of(
        &format!("{} (run {run})", scenario.label()),
        std::slice::from_ref(report),
    );
    print_run(report, &report::table(&[row]));
}

/// A JSON line for machines and a one-row table for people, both on stdout.
fn print_run(report: &impl serde::Serialize, table: &str) {
    use std::io::Write as _;
    // Serializing our own plain-data report cannot fail.
    let json = serde_json::to_string(report).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) must not end a bench that is still measuring.
    let _ = writeln!(out, "{json}");
    let _ = writeln!(out, "{table}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_is_found_by_name_over_either_transport() {
        let ws = find("fanout-5k", Transport::Ws).expect("defined over ws");
        assert_eq!((ws.label(), ws.connections), ("fanout-5k/ws".into(), 5_000));
        let burst = find("burst", Transport::Ws).expect("defined over sse, run over ws");
        assert_eq!(burst.label(), "burst/ws");
        assert_eq!(burst.debounce_ms, 500);
        assert!(find("nope", Transport::Sse).is_none());
    }

    #[test]
    fn an_unknown_scenario_lists_every_known_name() {
        let error = BenchError::UnknownScenario {
            name: "nope".into(),
            known: known_names(),
        };
        assert_eq!(
            error.to_string(),
            "unknown scenario `nope`: use idle-10k, light-1k, fanout-1k, fanout-5k, saturation, \
             burst, reconnect-storm, soak, fleet-56k, storm-kill, rolling-deploy or reset-herd"
        );
    }

    #[test]
    fn a_failed_run_names_its_scenario() {
        let failure = RunFailure::TimedOut {
            label: "burst/sse".into(),
            limit: RUN_LIMIT,
        };
        assert_eq!(failure.to_string(), "burst/sse: did not finish within 600s");
    }
}
