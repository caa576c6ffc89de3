//! A private `redis-server`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{log_path, path_arg, signal, spawn_on_free_port, Error, ServerProcess};

/// A `redis-server` on a free port with nothing persisted; killed on drop.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    /// Settings on top of the defaults (`--name value` pairs), kept for restarts.
    extra: Vec<String>,
    process: Option<ServerProcess>,
}

impl RedisServer {
    pub fn start() -> Result<RedisServer, Error> {
        RedisServer::start_with(&[])
    }

    /// A server with extra settings, e.g. `["--client-output-buffer-limit", "pubsub 1mb 0 0"]`.
    pub fn start_with(extra: &[&str]) -> Result<RedisServer, Error> {
        let dir = tempfile::Builder::new().prefix("rakuda-redis-").tempdir()?;
        let extra: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
        let (port, process) = spawn_on_free_port(5, |port| spawn(&dir, port, &extra))?;
        Ok(RedisServer {
            port,
            dir,
            extra,
            process: Some(process),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id while it runs (for CPU and memory readings).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// `redis://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server as a crash would. Clients see their connections drop.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.process = Some(spawn(&self.dir, self.port, &self.extra)?);
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

fn spawn(dir: &TempDir, port: u16, extra: &[String]) -> Result<ServerProcess, Error> {
    let mut args = vec![
        "--port".to_string(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--dir".into(),
        path_arg(dir.path()),
    ];
    args.extend(extra.iter().cloned());
    ServerProcess::spawn(
        "redis-server",
        "redis-server",
        &args,
        &[],
        &log_path(dir.path(), &format!("redis-{port}")),
        port,
        answers_ping,
    )
}

fn answers_ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
