//! A private `redis-server`: plain, or secured as `ops/redis/` deploys it (TLS only, ACL users).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::process::{log_path, path_arg, signal, spawn_on_free_port, Error, ServerProcess};
use crate::secrets::{random_hex, Role, Secrets};
use crate::tls::TlsClient;

/// A user only the test harness has (`CLIENT LIST`, `ACL LOG`): the deployment's users may do
/// just their own job.
pub const ADMIN_USER: &str = "rakuda-test-admin";

/// A `redis-server` on a free port with nothing persisted unless a test takes a
/// [`RedisServer::snapshot`]; killed on drop.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    /// Settings on top of the defaults (`--name value` pairs), kept for restarts.
    extra: Vec<String>,
    /// Set when the server runs secured (TLS port only, ACL users).
    secured: Option<Secured>,
    process: Option<ServerProcess>,
}

#[derive(Clone)]
struct Secured {
    secrets: Secrets,
    admin_password: String,
    tls: TlsClient,
}

/// The committed Redis settings (`ops/redis/`), run unchanged but for paths and ports.
pub fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/redis")
}

impl RedisServer {
    pub fn start() -> Result<RedisServer, Error> {
        RedisServer::start_with(&[])
    }

    /// A server with extra settings, e.g. `["--client-output-buffer-limit", "pubsub 1mb 0 0"]`.
    pub fn start_with(extra: &[&str]) -> Result<RedisServer, Error> {
        let dir = tempfile::Builder::new().prefix("rakuda-redis-").tempdir()?;
        let extra: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
        let (port, process) = spawn_on_free_port(5, |port| spawn(&dir, port, &extra, None))?;
        Ok(RedisServer {
            port,
            dir,
            extra,
            secured: None,
            process: Some(process),
        })
    }

    /// A server as `ops/redis/` sets one up: `redis.conf`, `tls.conf` (TLS only) and the ACL
    /// users of `users.conf` with the passwords of `secrets`; `default` is off. On `port`, or a
    /// free one when `None`.
    pub fn start_secured(secrets: &Secrets, port: Option<u16>) -> Result<RedisServer, Error> {
        let dir = tempfile::Builder::new().prefix("rakuda-redis-").tempdir()?;
        let tls = TlsClient::new(&secrets.ca)
            .map_err(|error| Error::Io(std::io::Error::other(error.to_string())))?;
        let secured = Secured {
            secrets: secrets.clone(),
            admin_password: random_hex(16),
            tls,
        };
        let (port, process) = match port {
            Some(port) => (port, spawn(&dir, port, &[], Some(&secured))?),
            None => spawn_on_free_port(5, |port| spawn(&dir, port, &[], Some(&secured)))?,
        };
        Ok(RedisServer {
            port,
            dir,
            extra: Vec::new(),
            secured: Some(secured),
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

    /// `redis://127.0.0.1:<port>`; secured, the test admin's `rediss://` URL.
    pub fn url(&self) -> String {
        match &self.secured {
            Some(secured) => format!(
                "rediss://{ADMIN_USER}:{}@127.0.0.1:{}",
                secured.admin_password, self.port
            ),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Secured: the `rediss://` URL of a role's user.
    pub fn url_as(&self, role: Role) -> Option<String> {
        let secured = self.secured.as_ref()?;
        Some(secured.secrets.redis_url(role, &self.addr()))
    }

    /// Secured: the CA clients must trust.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.secured
            .as_ref()
            .map(|secured| secured.secrets.ca.as_path())
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
        self.process = Some(spawn(
            &self.dir,
            self.port,
            &self.extra,
            self.secured.as_ref(),
        )?);
        Ok(())
    }

    /// Saves what a plain server holds now (`SAVE`) and keeps a copy of the file:
    /// [`RedisServer::restart_from`] brings the server back to exactly this state later, as an
    /// operator restoring an older backup (or a Redis restarted from a stale RDB file) would.
    pub fn snapshot(&self) -> Result<Snapshot, Error> {
        if self.secured.is_some() {
            return Err(Error::Service {
                name: "redis".into(),
                message: "snapshots are taken of plain test servers only".into(),
            });
        }
        let client = redis::Client::open(self.url())
            .map_err(|error| Error::Io(std::io::Error::other(error.to_string())))?;
        let mut connection = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .map_err(|error| Error::Io(std::io::Error::other(error.to_string())))?;
        let () = redis::cmd("SAVE")
            .query(&mut connection)
            .map_err(|error| Error::Io(std::io::Error::other(format!("SAVE: {error}"))))?;
        let copy = self
            .dir
            .path()
            .join(format!("snapshot-{}.rdb", random_hex(8)));
        std::fs::copy(self.dir.path().join(DUMP_FILE), &copy)?;
        Ok(Snapshot(copy))
    }

    /// Kills the server as a crash would and starts it again on the same port from `snapshot`:
    /// it comes back holding what it held when the snapshot was taken, as a new process (a new
    /// `run_id`).
    pub fn restart_from(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        self.stop();
        std::fs::copy(&snapshot.0, self.dir.path().join(DUMP_FILE))?;
        self.restart()
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

/// The file `SAVE` writes and a starting server loads (Redis's default `dbfilename`).
const DUMP_FILE: &str = "dump.rdb";

/// An RDB file saved by [`RedisServer::snapshot`].
#[derive(Debug, Clone)]
pub struct Snapshot(PathBuf);

fn spawn(
    dir: &TempDir,
    port: u16,
    extra: &[String],
    secured: Option<&Secured>,
) -> Result<ServerProcess, Error> {
    let mut args = Vec::new();
    if let Some(secured) = secured {
        let secrets = &secured.secrets;
        let ops = ops_dir();
        args.extend([
            path_arg(&ops.join("redis.conf")),
            "--include".into(),
            path_arg(&ops.join("tls.conf")),
            // The generated copy of users.conf: the committed rules and the passwords' hashes.
            "--include".into(),
            path_arg(&secrets.redis_users),
            "--tls-cert-file".into(),
            path_arg(&secrets.redis.cert),
            "--tls-key-file".into(),
            path_arg(&secrets.redis.key),
            "--tls-ca-cert-file".into(),
            path_arg(&secrets.ca),
            "--tls-port".into(),
            port.to_string(),
            "--user".into(),
            ADMIN_USER.into(),
            "on".into(),
            format!(
                "#{}",
                hex::encode(Sha256::digest(secured.admin_password.as_bytes()))
            ),
            "~*".into(),
            "&*".into(),
            "+@all".into(),
        ]);
    }
    // Secured, the plain port is off (tls.conf); else it is the one.
    let plain_port = if secured.is_some() { 0 } else { port };
    args.extend([
        "--port".to_string(),
        plain_port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--dir".into(),
        path_arg(dir.path()),
    ]);
    args.extend(extra.iter().cloned());
    ServerProcess::spawn(
        "redis-server",
        "redis-server",
        &args,
        &[],
        &log_path(dir.path(), &format!("redis-{port}")),
        port,
        |addr| match secured {
            // PING before AUTH: any Redis answer (NOAUTH) means it serves TLS clients.
            Some(secured) => secured.tls.probe(addr, b"PING\r\n").is_some_and(|answer| {
                answer.starts_with(b"-NOAUTH") || answer.starts_with(b"+PONG")
            }),
            None => answers_ping(addr),
        },
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
