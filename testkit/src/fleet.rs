//! A whole deployment on loopback, made of real processes: Redis, a 3-node NATS cluster, N
//! bridges, N gateways and nginx in front, each run from the committed ops files. The fleet test
//! breaks it piece by piece; `rakuda-fleet` (`just fleet`) runs it for a demo.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::nats_cluster::NatsCluster;
use crate::nginx::{loopback, Nginx};
use crate::process::{free_port, signal, tail, Error};
use crate::redis::RedisServer;

/// How long a bridge or gateway may take to answer `/readyz` after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Where `rakuda-bridge` and `rakuda-gateway` were built (`target/debug`).
    pub bin_dir: PathBuf,
    pub api_key: String,
    /// `TOKEN_SECRET` of every gateway.
    pub token_secret: String,
    pub bridges: usize,
    pub gateways: usize,
    /// Settings every bridge gets, on top of the addresses the fleet assigns.
    pub bridge_env: Vec<(String, String)>,
    /// Settings every gateway gets, on top of the addresses the fleet assigns.
    pub gateway_env: Vec<(String, String)>,
    /// Fixed ports for a demo: nginx on `base`, gateways on `base+1..`, bridges' metrics on
    /// `base+11..`, NATS clients on 4322..; `None` takes free ports (tests).
    pub base_port: Option<u16>,
}

impl FleetConfig {
    pub fn new(bin_dir: PathBuf) -> FleetConfig {
        FleetConfig {
            bin_dir,
            api_key: "fleet-api-key".into(),
            token_secret: "fleet-token-secret-0123456789abcd".into(),
            bridges: 2,
            gateways: 2,
            bridge_env: Vec::new(),
            gateway_env: Vec::new(),
            base_port: None,
        }
    }
}

/// A bridge or gateway process with a fixed HTTP port, so it can be killed and started again
/// at the same address behind nginx.
pub struct Service {
    pub name: String,
    binary: PathBuf,
    envs: Vec<(String, String)>,
    pub port: u16,
    log: PathBuf,
    /// Run under `taskset -c <cpus>` (benchmarks pin the gateway to its own core).
    cpus: Option<String>,
    child: Option<Child>,
}

impl Service {
    /// A service that answers `/readyz` on `port` once started; not started yet.
    pub fn new(
        name: &str,
        binary: PathBuf,
        envs: Vec<(String, String)>,
        port: u16,
        log: PathBuf,
    ) -> Service {
        Service {
            name: name.to_owned(),
            binary,
            envs,
            port,
            log,
            cpus: None,
            child: None,
        }
    }

    /// Pins the process to these CPUs (`taskset -c` syntax, e.g. `0` or `1-3`).
    pub fn pinned_to(mut self, cpus: Option<String>) -> Service {
        self.cpus = cpus;
        self
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Spawns the process (its output appended to its log) and waits until `/readyz` is 200.
    pub async fn start(&mut self) -> Result<(), Error> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = match &self.cpus {
            Some(cpus) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpus).arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        let child = command
            .envs(self.envs.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|source| Error::Service {
                name: self.name.clone(),
                message: format!("cannot start {}: {source}", self.binary.display()),
            })?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = format!("{}/readyz", self.url());
        loop {
            if let Ok(response) = http.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            let exited = self
                .child
                .as_mut()
                .map(|child| matches!(child.try_wait(), Ok(Some(_))))
                .unwrap_or(true);
            if exited || Instant::now() > deadline {
                return Err(Error::Service {
                    name: self.name.clone(),
                    message: format!(
                        "not ready at {url} within {READY_TIMEOUT:?} (exited: {exited}); its log:\n{}",
                        tail(&self.log)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to `within` until a sample of its `/metrics` satisfies `check` (given `None`
    /// while the sample is absent).
    pub async fn wait_for_metric(
        &self,
        sample: &str,
        check: impl Fn(Option<f64>) -> bool,
        within: Duration,
    ) -> Result<(), Error> {
        let url = format!("{}/metrics", self.url());
        let deadline = Instant::now() + within;
        loop {
            if let Ok(response) = reqwest::get(&url).await {
                let text = response.text().await.unwrap_or_default();
                if check(crate::wait::sample_value(&text, sample)) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Service {
                    name: self.name.clone(),
                    message: format!("{sample} not as expected within {within:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, as a crash or the OOM killer would, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal by name (`TERM`, `STOP`, `CONT`).
    pub fn signal(&self, name: &str) -> Result<(), Error> {
        match self.pid() {
            Some(pid) => Ok(signal(pid, name)?),
            None => Ok(()),
        }
    }

    /// Waits up to `within` for the process to exit; its status if it did.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The running deployment. Dropping it stops every process.
pub struct Fleet {
    // Field order is drop order: the front first, the backbone last.
    pub nginx: Nginx,
    pub gateways: Vec<Service>,
    pub bridges: Vec<Service>,
    pub nats: NatsCluster,
    pub redis: RedisServer,
    pub api_key: String,
    dir: TempDir,
}

impl Fleet {
    pub async fn start(config: FleetConfig) -> Result<Fleet, Error> {
        let dir = tempfile::Builder::new().prefix("rakuda-fleet-").tempdir()?;
        let bridge_binary = built_binary(&config.bin_dir, "rakuda-bridge")?;
        let gateway_binary = built_binary(&config.bin_dir, "rakuda-gateway")?;
        let port = |offset: u16| -> Result<u16, Error> {
            match config.base_port {
                Some(base) => Ok(base + offset),
                None => Ok(free_port()?),
            }
        };

        let redis = RedisServer::start()?;
        let nats = match config.base_port {
            Some(_) => NatsCluster::start_on(4322)?,
            None => NatsCluster::start()?,
        };
        let common = |extra: &[(String, String)]| -> Vec<(String, String)> {
            let mut envs = vec![
                ("REDIS_URL".to_owned(), redis.url()),
                ("NATS_URL".to_owned(), nats.urls()),
                ("STREAM_REPLICAS".to_owned(), "3".to_owned()),
                ("API_KEY".to_owned(), config.api_key.clone()),
                ("TOKEN_SECRET".to_owned(), config.token_secret.clone()),
                ("RUST_LOG".to_owned(), "info".to_owned()),
            ];
            envs.extend(extra.iter().cloned());
            envs
        };

        let mut bridges = Vec::new();
        for index in 0..config.bridges {
            let port = port(11 + index as u16)?;
            let mut envs = common(&config.bridge_env);
            envs.push(("BRIDGE_METRICS_ADDR".into(), loopback(port)));
            let mut bridge = Service::new(
                &format!("bridge-{}", index + 1),
                bridge_binary.clone(),
                envs,
                port,
                dir.path().join(format!("bridge-{}.log", index + 1)),
            );
            bridge.start().await?;
            bridges.push(bridge);
        }

        let mut gateways = Vec::new();
        for index in 0..config.gateways {
            let port = port(1 + index as u16)?;
            let name = format!("gateway-{}", index + 1);
            let mut envs = common(&config.gateway_env);
            envs.push(("GATEWAY_ADDR".into(), loopback(port)));
            envs.push(("GATEWAY_INSTANCE_ID".into(), name.clone()));
            let mut gateway = Service::new(
                &name,
                gateway_binary.clone(),
                envs,
                port,
                dir.path().join(format!("{name}.log")),
            );
            gateway.start().await?;
            gateways.push(gateway);
        }

        let upstreams: Vec<String> = gateways.iter().map(|g| loopback(g.port)).collect();
        // In a fleet the gateways also serve the demo dashboard, so the "existing API" upstream
        // is the first gateway.
        let api = upstreams[0].clone();
        let nginx = Nginx::start(config.base_port, &upstreams, &api)?;
        Ok(Fleet {
            nginx,
            gateways,
            bridges,
            nats,
            redis,
            api_key: config.api_key,
            dir,
        })
    }

    /// The load balancer: what clients connect to.
    pub fn url(&self) -> String {
        self.nginx.url()
    }

    /// Where the bridges' and gateways' logs are.
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Fleet {
    /// A failed test keeps every process's log and says where.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!("fleet: logs kept in {}", self.dir.path().display());
        }
    }
}

/// `dir/name` if that binary was built, else an error saying how to build it.
pub fn built_binary(dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Service {
            name: name.to_owned(),
            message: format!(
                "{} is not built: run `cargo build -p rakuda-bridge -p rakuda-gateway` \
                 (with `--release` for target/release)",
                path.display()
            ),
        })
    }
}
