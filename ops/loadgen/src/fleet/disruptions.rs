//! What goes wrong during a fleet run, one function per [`Disruption`]: a gateway killed, every
//! gateway restarted in turn, the only bridge restarted. Each acts on the stack, waits through
//! the workers until the clients recovered, and puts what it measured in the report.
//!
//! [`Disruption`]: super::Disruption

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use super::ask;
use super::coordinator::Workers;
use super::publisher::Publisher;
use super::readings::Readings;
use super::report::FleetReport;
use super::run::FleetError;
use super::FleetScenario;
use crate::marker::now_us;
use crate::stack::{self, FleetStack};

/// `kill -9` of gateway 0; its clients reconnect to the others. Returns once every one of them
/// is back (or the scenario's phase limit passed).
pub(super) async fn kill_gateway(
    stack: &mut FleetStack,
    workers: &mut Workers,
    report: &mut FleetReport,
    scenario: &FleetScenario,
) -> Result<(), FleetError> {
    let since = now_us();
    stack.gateways[0].kill();
    eprintln!("rakuda-loadgen: {}: gw-0 killed", scenario.name);
    let back = ask::wait_back(workers, since, 0, scenario.phase_limit).await?;
    report.dropped_clients = Some(back.dropped);
    report.clients_back = Some(back.back);
    if let Some(recovered) = back.recovered_s(since) {
        report.recovered_s = Some(recovered);
    }
    Ok(())
}

/// SIGTERM to each gateway in turn, restarted on the same port once it exited; the next one
/// only once every client it dropped is live again.
pub(super) async fn rolling_deploy(
    stack: &mut FleetStack,
    workers: &mut Workers,
    report: &mut FleetReport,
    scenario: &FleetScenario,
) -> Result<(), FleetError> {
    let limit = scenario.phase_limit;
    let mut dropped = 0;
    let mut back_count = 0;
    for index in 0..stack.gateways.len() {
        // Out of the load balancer first, as an orchestrator does before stopping an
        // instance: only the drain moves its clients, and none arrives meanwhile.
        ask::rotate(workers, index, false, limit).await?;
        let since = now_us();
        let gateway = &mut stack.gateways[index];
        let name = gateway.name.clone();
        gateway
            .signal("TERM")
            .map_err(|source| FleetError::Restart {
                what: name.clone(),
                source,
            })?;
        // The drain spreads its closes over its window, then the process exits.
        let exit_limit = scenario.drain_window + Duration::from_secs(20);
        if gateway.wait_exit(exit_limit).await.is_none() {
            eprintln!(
                "rakuda-loadgen: {name} did not exit within {exit_limit:?} of SIGTERM; killed"
            );
            gateway.kill();
        }
        gateway
            .start()
            .await
            .map_err(|source| FleetError::Restart {
                what: name.clone(),
                source,
            })?;
        // Back in once `/readyz` answers (start waits for it).
        ask::rotate(workers, index, true, limit).await?;
        let back = ask::wait_back(workers, since, index, limit).await?;
        dropped += back.dropped;
        back_count += back.back;
        // A recovery time only once every client it dropped is back.
        let recovered = back.recovered_s(since);
        eprintln!(
            "rakuda-loadgen: {name} restarted; {} of {} of its clients back in {}",
            back.back,
            back.dropped,
            recovered.map_or("–".into(), |s| format!("{s:.1} s"))
        );
        report
            .recovered_s_by_gateway
            .push(recovered.unwrap_or(f64::NAN));
    }
    report.dropped_clients = Some(dropped);
    report.clients_back = Some(back_count);
    report.recovered_s = report
        .recovered_s_by_gateway
        .iter()
        .copied()
        .filter(|s| s.is_finite())
        .reduce(f64::max);
    Ok(())
}

/// `kill -9` of the only bridge, then started again: a source gap that resets every client,
/// and every client refetches its summary and snapshot. The load is held back meanwhile;
/// returns for how long, so that it can run that much longer.
pub(super) async fn restart_bridge(
    stack: &mut FleetStack,
    workers: &mut Workers,
    report: &mut FleetReport,
    scenario: &FleetScenario,
    load: &Publisher,
    redis: &MultiplexedConnection,
    worker_pids: &[u32],
) -> Result<Duration, FleetError> {
    let limit = scenario.phase_limit;
    let herd_start = (Readings::now(stack, worker_pids), Instant::now());
    // The load pauses from here until every client has refetched. While no bridge
    // listens, an event would be lost at the source, by design, and no loss of the
    // fleet's. And during the herd the clients' core serves the herd alone: at 112,000
    // deliveries/s the clients already take about two thirds of it.
    let paused = load.pause().await;
    let pause_started = Instant::now();
    let restarted_us = {
        // Nor one the bridge has read but not stored when it is killed (the gap marker
        // tells the clients of that one too): everything published reaches every
        // client first.
        ask::wait_marks(workers, load.published(), limit).await?;
        stack.bridge.kill();
        stack
            .bridge
            .start()
            .await
            .map_err(|source| FleetError::Restart {
                what: "the bridge".into(),
                source,
            })?;
        stack::wait_stored(&stack.bridge).await?;
        let mut redis = redis.clone();
        if !wait_bridge_subscribed(&mut redis, limit).await {
            return Err(FleetError::BridgeNotBack(limit));
        }
        now_us()
    };
    eprintln!("rakuda-loadgen: {}: bridge restarted", scenario.name);
    let resets = ask::wait_resets(workers, 1, limit).await?;
    report.refetch_s = resets
        .last_refetch_us
        .map(|last| last.saturating_sub(restarted_us) as f64 / 1e6);
    // NATS and the gateways from the bridge's kill to the last refetch: the herd alone.
    let herd_end = Readings::now(stack, worker_pids);
    let seconds = herd_start.1.elapsed().as_secs_f64().max(1e-9);
    let cpu = herd_end.cpu_since(&herd_start.0);
    report.herd_s = Some(seconds);
    report.herd_nats_cpu_percent = Some(cpu.nats / seconds * 100.0);
    report.herd_gateway_cpu_percent = Some(cpu.gateways / seconds * 100.0);
    report.herd_worker_cpu_percent = Some(cpu.workers / seconds * 100.0);
    eprintln!(
        "rakuda-loadgen: {}: {} clients reset, {} refetched",
        scenario.name, resets.reset, resets.refetched
    );
    drop(paused);
    Ok(pause_started.elapsed())
}

/// Waits up to `limit` until some client of `redis` holds a pattern subscription (a bridge
/// listens again); true if one does.
async fn wait_bridge_subscribed(redis: &mut MultiplexedConnection, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let clients: Option<String> = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(redis)
            .await
            .ok();
        let subscribed = clients.is_some_and(|clients| {
            clients.lines().any(|line| {
                line.split(' ')
                    .any(|f| f.starts_with("psub=") && f != "psub=0")
            })
        });
        if subscribed {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
