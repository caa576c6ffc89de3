//! A bridge or gateway process of a fleet or a benchmark stack: spawned from its built binary
//! with its settings, waited for until `/readyz` answers, killed or signalled on demand.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::process::{signal, tail, Error};

/// How long a bridge or gateway may take to answer `/readyz` after it was spawned. A gateway is
/// ready once it reads the stream, which a fresh NATS cluster gets only after it has elected its
/// JetStream leader and a bridge's create has gone through (each try waits out a 5 s request
/// timeout): on a loaded 2-core machine that has taken more than 30 s.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

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
