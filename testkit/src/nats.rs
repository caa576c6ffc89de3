//! A private `nats-server` with JetStream.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{log_path, path_arg, signal, spawn_on_free_port, Error, ServerProcess};

/// A `nats-server -js` on a free port, its JetStream store in a temp dir that survives
/// [`NatsServer::restart`]; killed on drop.
pub struct NatsServer {
    port: u16,
    /// The HTTP monitoring port (`-m`), when started with [`NatsServer::start_monitored`].
    monitor_port: Option<u16>,
    dir: TempDir,
    process: Option<ServerProcess>,
}

impl NatsServer {
    pub fn start() -> Result<NatsServer, Error> {
        NatsServer::start_with_monitor(false)
    }

    /// As [`NatsServer::start`], with the HTTP monitoring endpoints (`/jsz`, `/varz`) on a
    /// port of their own: a benchmark reads how many JetStream consumers the gateways hold.
    pub fn start_monitored() -> Result<NatsServer, Error> {
        NatsServer::start_with_monitor(true)
    }

    fn start_with_monitor(monitored: bool) -> Result<NatsServer, Error> {
        let dir = tempfile::Builder::new().prefix("rakuda-nats-").tempdir()?;
        let mut monitor_port = None;
        let (port, process) = spawn_on_free_port(5, |port| {
            let monitor = if monitored {
                Some(crate::free_port()?)
            } else {
                None
            };
            monitor_port = monitor;
            spawn(&dir, port, monitor)
        })?;
        Ok(NatsServer {
            port,
            monitor_port,
            dir,
            process: Some(process),
        })
    }

    /// `http://127.0.0.1:<monitor port>` when started with [`NatsServer::start_monitored`].
    pub fn monitor_url(&self) -> Option<String> {
        self.monitor_port
            .map(|port| format!("http://127.0.0.1:{port}"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id while it runs (for CPU and memory readings).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// `nats://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// Kills the server as a crash would; the JetStream store stays on disk.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server again on the same port with the same JetStream store.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.process = Some(spawn(&self.dir, self.port, self.monitor_port)?);
        Ok(())
    }

    /// Freezes the process (SIGSTOP): it keeps its sockets but answers nothing.
    pub fn freeze(&self) -> Result<(), Error> {
        self.signal("STOP")
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn thaw(&self) -> Result<(), Error> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> Result<(), Error> {
        match &self.process {
            Some(process) => Ok(signal(process.pid(), name)?),
            None => Ok(()),
        }
    }
}

fn spawn(dir: &TempDir, port: u16, monitor: Option<u16>) -> Result<ServerProcess, Error> {
    let mut args = vec![
        "-a".to_string(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-js".into(),
        "-sd".into(),
        path_arg(&dir.path().join("jetstream")),
    ];
    if let Some(monitor) = monitor {
        args.extend(["-m".to_string(), monitor.to_string()]);
    }
    ServerProcess::spawn(
        "nats-server",
        "nats-server",
        &args,
        &[],
        &log_path(dir.path(), &format!("nats-{port}")),
        port,
        sends_info,
    )
}

/// A NATS server greets every client with an `INFO {...}` line once it accepts connections.
pub(crate) fn sends_info(addr: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO ")
}
