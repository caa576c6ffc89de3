//! The stack a benchmark runs against, made of real processes: redis-server, nats-server -js,
//! one bridge and one gateway (the release binaries), the gateway optionally pinned to its own
//! CPU so the load generator and the servers do not steal its time.

use std::path::PathBuf;

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

impl Stack {
    pub async fn start(config: &StackConfig) -> Result<Stack, StackError> {
        let dir = tempfile::Builder::new().prefix("rakuda-bench-").tempdir()?;
        let redis = RedisServer::start()?;
        let nats = NatsServer::start()?;
        let common = vec![
            ("REDIS_URL".to_owned(), redis.url()),
            ("NATS_URL".to_owned(), nats.url()),
            ("API_KEY".to_owned(), API_KEY.to_owned()),
            // Benchmarks only: the bridge ignores it.
            (
                "TOKEN_SECRET".to_owned(),
                "bench-token-secret-0123456789abc".to_owned(),
            ),
            ("RUST_LOG".to_owned(), "warn".to_owned()),
        ];

        let bridge_port = free_port()?;
        let mut bridge_env = common.clone();
        bridge_env.push((
            "BRIDGE_METRICS_ADDR".into(),
            format!("127.0.0.1:{bridge_port}"),
        ));
        let mut bridge = Service::new(
            "bridge",
            built_binary(&config.bin_dir, "rakuda-bridge")?,
            bridge_env,
            bridge_port,
            dir.path().join("bridge.log"),
        );
        bridge.start().await?;
        // Storing what it reads: its `start` gap marker is in the stream before any gateway
        // reads it, so no subscriber is told of a gap at the start of a run. (A bridge built
        // before source gaps existed has no such metric: A/B runs against older builds.)
        bridge
            .wait_for_metric(
                "bridge_stored_through_beacon",
                |stored| stored.is_none_or(|stored| stored > 0.0),
                std::time::Duration::from_secs(60),
            )
            .await?;

        let gateway_port = free_port()?;
        let mut gateway_env = common;
        gateway_env.extend([
            (
                "GATEWAY_ADDR".to_owned(),
                format!("127.0.0.1:{gateway_port}"),
            ),
            ("GATEWAY_INSTANCE_ID".to_owned(), "bench".to_owned()),
            // One key holds every benchmark connection.
            ("MAX_CONNECTIONS".to_owned(), "50000".to_owned()),
            ("MAX_CONNECTIONS_PER_KEY".to_owned(), "50000".to_owned()),
            // One host opens every benchmark connection, thousands at once.
            (
                "MAX_UNAUTHENTICATED_PER_ADDRESS".to_owned(),
                "50000".to_owned(),
            ),
            // The canary would add events the subscribers do not count.
            ("CANARY_INTERVAL".to_owned(), "0".to_owned()),
        ]);
        gateway_env.extend(config.gateway_env.iter().cloned());
        let mut gateway = Service::new(
            "gateway",
            built_binary(&config.bin_dir, "rakuda-gateway")?,
            gateway_env,
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
        let of = |pid: Option<u32>| pid.and_then(procstat::read).unwrap_or_default();
        StackReading {
            gateway: of(self.gateway.pid()),
            bridge: of(self.bridge.pid()),
            redis: of(self.redis.pid()),
            nats: of(self.nats.pid()),
            loadgen: of(Some(std::process::id())),
        }
    }
}
