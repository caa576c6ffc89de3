//! nginx in front of gateways, run from the committed `ops/nginx/nginx.conf` with only the
//! addresses changed, so the fleet test exercises the load-balancer config operators deploy.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::nats_cluster::http_status;
use crate::process::{log_path, path_arg, spawn_on_free_port, Error, ServerProcess};

/// The committed load-balancer config and the location file it includes.
pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/nginx")
}

/// `ops/nginx/nginx.conf` with its listen address, its gateway upstream servers (one line per
/// gateway, each keeping the committed health-check parameters), its API upstream and the path of
/// `realtime.conf` replaced.
pub fn render_config(listen: &str, gateways: &[String], api: &str) -> Result<String, Error> {
    let dir = config_dir();
    let committed = std::fs::read_to_string(dir.join("nginx.conf"))?;
    let realtime = dir.join("realtime.conf");
    let mut out = String::new();
    let mut upstream: Option<&str> = None;
    let mut gateway_lines_written = false;
    for line in committed.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(name) = trimmed
            .strip_prefix("upstream ")
            .and_then(|rest| rest.strip_suffix(" {"))
        {
            upstream = Some(if name == "rakuda_realtime" {
                "realtime"
            } else {
                "api"
            });
        } else if trimmed == "}" {
            upstream = None;
        }
        let replaced = if trimmed.starts_with("listen ") {
            format!("{indent}listen {listen};")
        } else if trimmed == "include realtime.conf;" {
            format!("{indent}include {};", path_arg(&realtime))
        } else if let (Some(kind), Some(rest)) = (upstream, trimmed.strip_prefix("server ")) {
            // `server <addr> <parameters>;`
            let parameters = rest.split_once(' ').map(|(_, p)| p).unwrap_or(";");
            let parameters = if parameters.ends_with(';') {
                format!(" {parameters}")
            } else {
                ";".to_owned()
            };
            match kind {
                "realtime" if gateway_lines_written => continue,
                "realtime" => {
                    gateway_lines_written = true;
                    gateways
                        .iter()
                        .map(|gateway| format!("{indent}server {gateway}{}", parameters.trim_end()))
                        .collect::<Vec<_>>()
                        .join("\n")
                }
                _ => format!("{indent}server {api};"),
            }
        } else {
            line.to_owned()
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    if !gateway_lines_written {
        return Err(Error::Io(std::io::Error::other(
            "ops/nginx/nginx.conf has no `server` line in `upstream rakuda_realtime`",
        )));
    }
    Ok(out)
}

/// An nginx master process (and its workers) on a free port; stopped on drop.
pub struct Nginx {
    port: u16,
    dir: TempDir,
    process: Option<ServerProcess>,
}

impl Nginx {
    /// Starts nginx in front of `gateways` (`127.0.0.1:port` each).
    /// On `port` (`just fleet`), or a free one (tests) when `None`.
    pub fn start(port: Option<u16>, gateways: &[String], api: &str) -> Result<Nginx, Error> {
        let dir = tempfile::Builder::new().prefix("rakuda-nginx-").tempdir()?;
        let (port, process) = match port {
            Some(port) => (port, spawn(dir.path(), port, gateways, api)?),
            None => spawn_on_free_port(5, |port| spawn(dir.path(), port, gateways, api))?,
        };
        Ok(Nginx {
            port,
            dir,
            process: Some(process),
        })
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory holding the rendered config and nginx's error log.
    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "nginx: config and logs kept in {}",
                self.dir.path().display()
            );
        }
        // SIGKILL on the master leaves its workers running with the port open; ask it to quit
        // first (workers exit with it), then reap it.
        if let Some(mut process) = self.process.take() {
            let _ = crate::process::signal(process.pid(), "TERM");
            process.wait_for_exit(std::time::Duration::from_secs(5));
            process.kill();
        }
    }
}

fn spawn(dir: &Path, port: u16, gateways: &[String], api: &str) -> Result<ServerProcess, Error> {
    let config = dir.join("nginx.conf");
    std::fs::write(
        &config,
        render_config(&format!("127.0.0.1:{port}"), gateways, api)?,
    )?;
    let args = [
        "-p".to_owned(),
        path_arg(dir),
        "-c".to_owned(),
        path_arg(&config),
        "-e".to_owned(),
        path_arg(&dir.join("error.log")),
        "-g".to_owned(),
        "daemon off;".to_owned(),
    ];
    ServerProcess::spawn(
        "nginx",
        "nginx",
        &args,
        &[],
        &log_path(dir, "nginx-stdout"),
        port,
        |addr: SocketAddr| http_status(addr, "/__rakuda_ready").is_some(),
    )
}

/// 127.0.0.1 as nginx wants it in `server` lines.
pub fn loopback(port: u16) -> String {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port)).to_string()
}
