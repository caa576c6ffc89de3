//! The stack a benchmark runs against, made of real processes: redis-server, nats-server -js,
//! one bridge and one gateway (the release binaries), the gateway optionally pinned to its own
//! CPU so the load generator and the servers do not steal its time; and a fleet's stack
//! ([`FleetStack`]): the same with several gateways, pinned together, and NATS's monitoring
//! port open so a run can count JetStream consumers.

use std::path::{Path, PathBuf};

use rakuda_testkit::fleet::built_binary;
use rakuda_testkit::{free_port, NatsServer, RedisServer, Service};
use tempfile::TempDir;

use crate::procstat::{self, Reading};

pub const API_KEY: &str = "loadgen-api-key";

/// What to start.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Where `rakuda-bridge` and `rakuda-gateway` were built.
    pub bin_dir: PathBuf,
    /// `taskset -c` CPUs for the gateway (`None`: not pinned).
    pub gateway_cpus: Option<String>,
    /// Gateway settings on top of the stack's addresses and the benchmark defaults.
    pub gateway_env: Vec<(String, String)>,
}

/// Per-process readings at one moment.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StackReading {
    pub gateway: Reading,
    pub bridge: Reading,
    pub redis: Reading,
    pub nats: Reading,
    pub loadgen: Reading,
}

pub struct Stack {
    pub gateway: Service,
    pub bridge: Service,
    pub nats: NatsServer,
    pub redis: RedisServer,
    _dir: TempDir,
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("{0}")]
    Testkit(#[from] rakuda_testkit::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The reading of the process `pid`; one not running (no pid, or gone) reads as zero.
fn reading_of(pid: Option<u32>) -> Reading {
    pid.and_then(procstat::read).unwrap_or_default()
}

/// What the bridge and every gateway share: where Redis and NATS are, the key, the log level.
fn common_env(redis: &RedisServer, nats: &NatsServer) -> Vec<(String, String)> {
    vec![
        ("REDIS_URL".to_owned(), redis.url()),
        ("NATS_URL".to_owned(), nats.url()),
        ("API_KEY".to_owned(), API_KEY.to_owned()),
        // Benchmarks only: the bridge ignores it.
        (
            "TOKEN_SECRET".to_owned(),
            "bench-token-secret-0123456789abc".to_owned(),
        ),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ]
}

/// Starts the bridge and waits until it stores what it reads.
async fn start_bridge(
    bin_dir: &Path,
    common: &[(String, String)],
    dir: &Path,
) -> Result<Service, StackError> {
    let bridge_port = free_port()?;
    let mut bridge_env = common.to_vec();
    bridge_env.push((
        "BRIDGE_METRICS_ADDR".into(),
        format!("127.0.0.1:{bridge_port}"),
    ));
    let mut bridge = Service::new(
        "bridge",
        built_binary(bin_dir, "rakuda-bridge")?,
        bridge_env,
        bridge_port,
        dir.join("bridge.log"),
    );
    bridge.start().await?;
    wait_stored(&bridge).await?;
    // And until its `start` gap marker is in the stream (acknowledged by JetStream): the
    // stored-through gauge moves when the bridge reports, and a marker whose first write
    // failed goes a beacon interval later. A gateway started before it would hand it to its
    // first clients as a `reset` (`source_gap`) that nothing in the run caused.
    bridge
        .wait_for_metric(
            "bridge_source_gaps_total{reason=\"start\"}",
            |marked| marked.is_none_or(|marked| marked >= 1.0),
            std::time::Duration::from_secs(60),
        )
        .await?;
    Ok(bridge)
}

/// Waits until `bridge` stores what it reads: its `start` gap marker is in the stream before
/// any gateway reads it, so no subscriber is told of a gap at the start of a run. (A bridge
/// built before source gaps existed has no such metric: A/B runs against older builds.)
pub async fn wait_stored(bridge: &Service) -> Result<(), StackError> {
    bridge
        .wait_for_metric(
            "bridge_stored_through_beacon",
            |stored| stored.is_none_or(|stored| stored > 0.0),
            std::time::Duration::from_secs(60),
        )
        .await?;
    Ok(())
}

/// A gateway's settings for a benchmark: the stack's addresses, limits that let one host
/// open every connection, no canary, then `extra` (which wins).
fn gateway_env(
    common: &[(String, String)],
    port: u16,
    instance: &str,
    max_connections: usize,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env = common.to_vec();
    env.extend([
        ("GATEWAY_ADDR".to_owned(), format!("127.0.0.1:{port}")),
        ("GATEWAY_INSTANCE_ID".to_owned(), instance.to_owned()),
        // One key holds every benchmark connection.
        ("MAX_CONNECTIONS".to_owned(), max_connections.to_string()),
        (
            "MAX_CONNECTIONS_PER_KEY".to_owned(),
            max_connections.to_string(),
        ),
        // One host opens every benchmark connection, thousands at once.
        (
            "MAX_UNAUTHENTICATED_PER_ADDRESS".to_owned(),
            "50000".to_owned(),
        ),
        // The canary would add events the subscribers do not count.
        ("CANARY_INTERVAL".to_owned(), "0".to_owned()),
    ]);
    env.extend(extra.iter().cloned());
    env
}

impl Stack {
    pub async fn start(config: &StackConfig) -> Result<Stack, StackError> {
        let dir = tempfile::Builder::new().prefix("rakuda-bench-").tempdir()?;
        let redis = RedisServer::start()?;
        let nats = NatsServer::start()?;
        let common = common_env(&redis, &nats);
        let bridge = start_bridge(&config.bin_dir, &common, dir.path()).await?;

        let gateway_port = free_port()?;
        let mut gateway = Service::new(
            "gateway",
            built_binary(&config.bin_dir, "rakuda-gateway")?,
            gateway_env(&common, gateway_port, "bench", 50_000, &config.gateway_env),
            gateway_port,
            dir.path().join("gateway.log"),
        )
        .pinned_to(config.gateway_cpus.clone());
        gateway.start().await?;

        Ok(Stack {
            gateway,
            bridge,
            nats,
            redis,
            _dir: dir,
        })
    }

    pub fn reading(&self) -> StackReading {
        StackReading {
            gateway: reading_of(self.gateway.pid()),
            bridge: reading_of(self.bridge.pid()),
            redis: reading_of(self.redis.pid()),
            nats: reading_of(self.nats.pid()),
            loadgen: reading_of(Some(std::process::id())),
        }
    }
}

/// What a fleet's stack is made of.
#[derive(Debug, Clone)]
pub struct FleetStackConfig {
    /// Where `rakuda-bridge` and `rakuda-gateway` were built.
    pub bin_dir: PathBuf,
    pub gateways: usize,
    /// `taskset -c` CPUs for every gateway, together (`None`: not pinned).
    pub gateway_cpus: Option<String>,
    /// Connections one gateway holds at most (`MAX_CONNECTIONS`, and per key): below the
    /// process's open-files limit, so a gateway refuses with 503 rather than failing to accept.
    pub max_connections: usize,
    /// Gateway settings on top of the stack's addresses and the benchmark defaults.
    pub gateway_env: Vec<(String, String)>,
}

/// Redis, NATS with its monitoring port, one bridge and several gateways, each gateway on its
/// own port (`gw-0`, `gw-1`, …), all of them pinned together.
pub struct FleetStack {
    pub gateways: Vec<Service>,
    pub bridge: Service,
    pub nats: NatsServer,
    pub redis: RedisServer,
    dir: TempDir,
}

impl FleetStack {
    pub async fn start(config: &FleetStackConfig) -> Result<FleetStack, StackError> {
        let dir = tempfile::Builder::new()
            .prefix("rakuda-fleet-bench-")
            .tempdir()?;
        let redis = RedisServer::start()?;
        let nats = NatsServer::start_monitored()?;
        let common = common_env(&redis, &nats);
        let bridge = start_bridge(&config.bin_dir, &common, dir.path()).await?;
        let binary = built_binary(&config.bin_dir, "rakuda-gateway")?;
        let mut gateways = Vec::with_capacity(config.gateways);
        for index in 0..config.gateways {
            let port = free_port()?;
            let name = format!("gw-{index}");
            let mut gateway = Service::new(
                &name,
                binary.clone(),
                gateway_env(
                    &common,
                    port,
                    &name,
                    config.max_connections,
                    &config.gateway_env,
                ),
                port,
                dir.path().join(format!("{name}.log")),
            )
            .pinned_to(config.gateway_cpus.clone());
            gateway.start().await?;
            gateways.push(gateway);
        }
        Ok(FleetStack {
            gateways,
            bridge,
            nats,
            redis,
            dir,
        })
    }

    /// Every gateway's base URL, in order.
    pub fn urls(&self) -> Vec<String> {
        self.gateways.iter().map(Service::url).collect()
    }

    /// Where the processes' logs are (kept until the stack is dropped).
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Each gateway's reading (a stopped one reads as zero).
    pub fn gateway_readings(&self) -> Vec<Reading> {
        self.gateways
            .iter()
            .map(|gateway| reading_of(gateway.pid()))
            .collect()
    }

    /// The bridge's, NATS's and Redis's readings.
    pub fn servers(&self) -> (Reading, Reading, Reading) {
        (
            reading_of(self.bridge.pid()),
            reading_of(self.nats.pid()),
            reading_of(self.redis.pid()),
        )
    }
}
