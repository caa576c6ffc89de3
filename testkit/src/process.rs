//! A server process owned by a test.

use std::fs::OpenOptions;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const READY_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{binary}` is not installed or not on PATH: run `./ops/bootstrap.sh` \
         (or `apt-get install {package}`)"
    )]
    MissingBinary {
        binary: &'static str,
        package: &'static str,
    },
    #[error("cannot start `{binary}`: {source}")]
    Spawn {
        binary: &'static str,
        source: io::Error,
    },
    #[error(
        "`{binary}` did not become ready on port {port} within {READY_TIMEOUT:?}; its log:\n{log}"
    )]
    NotReady {
        binary: &'static str,
        port: u16,
        log: String,
    },
    #[error("{name}: {message}")]
    Service { name: String, message: String },
    #[error("test support I/O failed: {0}")]
    Io(#[from] io::Error),
}

/// A free TCP port on 127.0.0.1. The port is released before it is returned, so another
/// process could in principle take it first; [`ServerProcess::spawn`] callers retry on that.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A spawned server binary with its log file; killed on drop.
pub(crate) struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    /// Spawns `binary` with `args`, logging to `log_path`, and waits until `ready` says yes.
    pub(crate) fn spawn(
        binary: &'static str,
        package: &'static str,
        args: &[String],
        envs: &[(&str, String)],
        log_path: &Path,
        port: u16,
        ready: impl Fn(SocketAddr) -> bool,
    ) -> Result<ServerProcess, Error> {
        // Appended to: a server started again on the same log keeps what it said before.
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)?;
        let child = Command::new(locate(binary))
            .args(args)
            .envs(envs.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => Error::MissingBinary { binary, package },
                _ => Error::Spawn { binary, source },
            })?;
        let mut process = ServerProcess { child };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ready(addr) {
                return Ok(process);
            }
            let exited = matches!(process.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                process.kill();
                return Err(Error::NotReady {
                    binary,
                    port,
                    log: tail(log_path),
                });
            }
            std::thread::sleep(READY_POLL);
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the process to exit by itself; true if it did.
    pub(crate) fn wait_for_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(READY_POLL);
        }
        false
    }

    /// Kills the process (SIGKILL: no chance to clean up, as in a crash) and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The binary's path: on PATH, or in the sbin directories Debian installs servers to, which
/// are not on every user's PATH.
fn locate(binary: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(binary).is_file()))
        .unwrap_or(false);
    if on_path {
        return PathBuf::from(binary);
    }
    ["/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(binary))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(binary))
}

/// Sends a signal by name (`STOP`, `CONT`, `TERM`) with the system's `kill`, which keeps this
/// crate free of `unsafe`.
pub(crate) fn signal(pid: u32, name: &str) -> io::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "kill -{name} {pid} failed: {status}"
        )))
    }
}

/// The last lines of a log file, for error messages.
pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Spawns with a fresh port each attempt, since a port from [`free_port`] can be taken by
/// another test between the check and the bind.
pub(crate) fn spawn_on_free_port(
    attempts: usize,
    mut spawn: impl FnMut(u16) -> Result<ServerProcess, Error>,
) -> Result<(u16, ServerProcess), Error> {
    let mut last = None;
    for _ in 0..attempts.max(1) {
        let port = free_port()?;
        match spawn(port) {
            Ok(process) => return Ok((port, process)),
            Err(error @ Error::MissingBinary { .. }) => return Err(error),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| Error::Io(io::Error::other("no attempt made"))))
}

pub(crate) fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

pub(crate) fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_says_how_to_install_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let result = ServerProcess::spawn(
            "rakuda-no-such-server",
            "rakuda-no-such-package",
            &[],
            &[],
            &dir.path().join("log"),
            1,
            |_| true,
        );
        let Err(error) = result else {
            panic!("spawning a missing binary must fail")
        };
        let message = error.to_string();
        assert!(
            message.contains("apt-get install rakuda-no-such-package"),
            "{message}"
        );
        assert!(message.contains("./ops/bootstrap.sh"), "{message}");
    }
}
