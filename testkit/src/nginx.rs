//! nginx in front of gateways, run from the committed `ops/nginx/nginx.conf` with only the
//! addresses, the certificate and the log path changed, so the fleet test exercises the
//! load-balancer config operators deploy: HTTPS with HTTP/2.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::process::{log_path, path_arg, spawn_on_free_port, Error, ServerProcess};
use crate::secrets::CertFiles;
use crate::tls::TlsClient;

/// The committed load-balancer config and the location file it includes.
pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/nginx")
}

/// Where the rendered config's certificate, access log and rendered `realtime.conf` are.
#[derive(Debug, Clone)]
pub struct RenderPaths<'a> {
    pub tls: &'a CertFiles,
    pub access_log: &'a Path,
    pub realtime_conf: &'a Path,
}

/// `access_log <path> <format>;` with the path replaced and the format kept; `None` for any
/// other line.
fn access_log_line(indent: &str, trimmed: &str, access_log: &Path) -> Option<String> {
    let rest = trimmed.strip_prefix("access_log /")?;
    let format = rest.split_once(' ').map_or(";", |(_, f)| f);
    Some(format!(
        "{indent}access_log {} {format}",
        path_arg(access_log)
    ))
}

/// `ops/nginx/realtime.conf` with its access log paths replaced (the format kept).
pub fn render_locations(access_log: &Path) -> Result<String, Error> {
    let committed = std::fs::read_to_string(config_dir().join("realtime.conf"))?;
    let mut out = String::new();
    for line in committed.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        match access_log_line(indent, trimmed, access_log) {
            Some(replaced) => out.push_str(&replaced),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

/// `ops/nginx/nginx.conf` with its listen address (keeping the committed `ssl http2`), its
/// gateway upstream servers (one line per gateway, each keeping the committed health-check
/// parameters), its publish upstream (one line per bridge's publish API, likewise), its API
/// upstream, its certificate, its access log and the path of
/// `realtime.conf` (the rendered copy) replaced.
pub fn render_config(
    listen: &str,
    gateways: &[String],
    publishers: &[String],
    api: &str,
    paths: &RenderPaths<'_>,
) -> Result<String, Error> {
    let committed = std::fs::read_to_string(config_dir().join("nginx.conf"))?;
    let mut out = String::new();
    let mut upstream: Option<&str> = None;
    let mut gateway_lines_written = false;
    let mut publish_lines_written = false;
    for line in committed.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(name) = trimmed
            .strip_prefix("upstream ")
            .and_then(|rest| rest.strip_suffix(" {"))
        {
            upstream = Some(match name {
                "rakuda_realtime" => "realtime",
                "rakuda_publish" => "publish",
                _ => "api",
            });
        } else if trimmed == "}" {
            upstream = None;
        }
        let replaced = if let Some(rest) = trimmed.strip_prefix("listen ") {
            // `listen <addr> ssl http2;`: the address replaced, the parameters kept.
            let parameters = rest.split_once(' ').map_or(";", |(_, p)| p);
            let parameters = if parameters.ends_with(';') && !parameters.starts_with(';') {
                format!(" {parameters}")
            } else {
                ";".to_owned()
            };
            format!("{indent}listen {listen}{parameters}")
        } else if trimmed.starts_with("ssl_certificate ") {
            format!("{indent}ssl_certificate {};", path_arg(&paths.tls.cert))
        } else if trimmed.starts_with("ssl_certificate_key ") {
            format!("{indent}ssl_certificate_key {};", path_arg(&paths.tls.key))
        } else if let Some(replaced) = access_log_line(indent, trimmed, paths.access_log) {
            replaced
        } else if trimmed == "include realtime.conf;" {
            format!("{indent}include {};", path_arg(paths.realtime_conf))
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
                "publish" if publish_lines_written => continue,
                "publish" if publishers.is_empty() => line.to_owned(),
                "publish" => {
                    publish_lines_written = true;
                    publishers
                        .iter()
                        .map(|bridge| format!("{indent}server {bridge}{}", parameters.trim_end()))
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
    /// Starts nginx in front of `gateways` (`127.0.0.1:port` each), serving HTTPS with the
    /// certificate `tls` (signed by the CA `ca`, which the readiness check trusts).
    /// On `port` (`just fleet`), or a free one (tests) when `None`.
    pub fn start(
        port: Option<u16>,
        gateways: &[String],
        publishers: &[String],
        api: &str,
        tls: &CertFiles,
        ca: &Path,
    ) -> Result<Nginx, Error> {
        let dir = tempfile::Builder::new().prefix("rakuda-nginx-").tempdir()?;
        let client = TlsClient::new(ca)
            .map_err(|error| Error::Io(std::io::Error::other(error.to_string())))?;
        let spawn = |port| spawn(dir.path(), port, gateways, publishers, api, tls, &client);
        let (port, process) = match port {
            Some(port) => (port, spawn(port)?),
            None => spawn_on_free_port(5, spawn)?,
        };
        Ok(Nginx {
            port,
            dir,
            process: Some(process),
        })
    }

    /// `https://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The access log, in the committed format.
    pub fn access_log(&self) -> PathBuf {
        self.dir.path().join("access.log")
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

fn spawn(
    dir: &Path,
    port: u16,
    gateways: &[String],
    publishers: &[String],
    api: &str,
    tls: &CertFiles,
    client: &TlsClient,
) -> Result<ServerProcess, Error> {
    let config = dir.join("nginx.conf");
    let access_log = dir.join("access.log");
    let realtime_conf = dir.join("realtime.conf");
    std::fs::write(&realtime_conf, render_locations(&access_log)?)?;
    let paths = RenderPaths {
        tls,
        access_log: &access_log,
        realtime_conf: &realtime_conf,
    };
    std::fs::write(
        &config,
        render_config(
            &format!("127.0.0.1:{port}"),
            gateways,
            publishers,
            api,
            &paths,
        )?,
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
        |addr: SocketAddr| {
            client
                .probe(addr, b"GET /__rakuda_ready HTTP/1.0\r\n\r\n")
                .is_some_and(|answer| answer.starts_with(b"HTTP/"))
        },
    )
}

/// 127.0.0.1 as nginx wants it in `server` lines.
pub fn loopback(port: u16) -> String {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port)).to_string()
}
