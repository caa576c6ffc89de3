//! `just fleet`: the deployment of the fleet test, run by hand for a demo — Redis, a 3-node NATS
//! cluster, two bridges, two gateways and nginx in front, plus the traffic simulator — secured as
//! in production: TLS everywhere, a Redis ACL user and a NATS nkey per role, HTTPS with HTTP/2.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clap::Parser;
use rakuda_testkit::{Fleet, FleetConfig};

#[derive(Parser)]
#[command(about = "Runs a whole rakuda-realtime fleet on this machine until Ctrl-C")]
struct Args {
    /// Where rakuda-bridge, rakuda-gateway and rakuda-sim were built.
    #[arg(long, default_value = "target/debug")]
    bin_dir: PathBuf,
    /// nginx listens here; gateways take the next two ports, bridges' metrics base+11 and +12.
    #[arg(long, default_value_t = 8088)]
    port: u16,
    /// The demo dashboard the gateways serve at / (built by `npm run build:dashboard`).
    #[arg(long, default_value = "web/dist")]
    dashboard_dir: PathBuf,
    #[arg(long, env = "API_KEY", default_value = "dev-api-key-change-me")]
    api_key: String,
    /// Do not start `rakuda-sim run`.
    #[arg(long)]
    no_traffic: bool,
    /// Where this run's CA, certificates, keys and env files go (made anew each run).
    #[arg(long, default_value = ".dev/fleet")]
    certs_dir: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut config = FleetConfig::new(args.bin_dir.clone());
    config.api_key = args.api_key.clone();
    // The demo's key is the shipped development key unless API_KEY names another, and the
    // gateways accept that public example only in dev mode (the fleet's other secrets are
    // made fresh for each run).
    config
        .gateway_env
        .push(("GATEWAY_DEV_MODE".into(), "true".into()));
    config.base_port = Some(args.port);
    // Owner only, like the files in it (keys, seeds, env files with passwords).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.certs_dir)?;
    config.secrets_dir = Some(std::fs::canonicalize(&args.certs_dir)?);
    if args.dashboard_dir.join("index.html").is_file() {
        let dir = std::fs::canonicalize(&args.dashboard_dir)?;
        config.gateway_env.push((
            "GATEWAY_DASHBOARD_DIR".into(),
            dir.to_string_lossy().into_owned(),
        ));
    }
    eprintln!(
        "fleet: starting Redis (TLS, ACL users), 3 NATS nodes (TLS, nkeys), 2 bridges, 2 gateways \
         and nginx (HTTPS, HTTP/2) ..."
    );
    let fleet = Fleet::start(config).await?;
    let mut simulator = if args.no_traffic {
        None
    } else {
        // The simulator publishes as the workers do: as their Redis user, over TLS. It has no
        // REDIS_TLS_CA setting; its TLS client reads the trusted roots from SSL_CERT_FILE.
        Some(
            Command::new(args.bin_dir.join("rakuda-sim"))
                .arg("run")
                .env(
                    "REDIS_URL",
                    fleet.redis_url_as(rakuda_testkit::Role::Worker),
                )
                .env("SSL_CERT_FILE", &fleet.secrets.ca)
                .stdout(Stdio::null())
                .spawn()?,
        )
    };
    let url = fleet.url();
    let key = &fleet.api_key;
    let ca = fleet.secrets.ca.display();
    let gateways: Vec<String> = fleet.gateways.iter().map(|g| g.url()).collect();
    let bridges: Vec<String> = fleet.bridges.iter().map(|b| b.url()).collect();
    eprintln!(
        "
  The fleet is up, HTTPS only (HTTP/2), its certificate signed by a CA made for this run:

    events      curl -N --cacert {ca} -H 'X-API-Key: {key}' {url}/api/realtime/events
    cluster     curl -s --cacert {ca} -H 'X-API-Key: {key}' '{url}/api/realtime/stats?scope=cluster'
    dashboard   {url}/?apiKey={key}
                (a browser does not know this CA: import {ca} as an authority, or accept the
                warning once)

  Gateways {gateways:?} (each has /metrics, /readyz; plain HTTP on loopback, behind nginx);
  bridges {bridges:?}; NATS cluster {nats} (TLS, nkey users only);
  Redis {redis} (TLS, ACL users only). Every key, password and env file: {certs}
  Logs: {logs}

  Try it: kill -9 a gateway, stop a NATS node, SIGTERM a gateway and watch the dashboard.
  Ctrl-C stops everything.
",
        nats = fleet.nats.urls(),
        redis = fleet.redis.addr(),
        certs = fleet.secrets.dir.display(),
        logs = fleet.log_dir().display(),
    );
    // Ctrl-C or SIGTERM: either way every process of the fleet is stopped on the way out.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    if let Some(simulator) = simulator.as_mut() {
        let _ = simulator.kill();
        let _ = simulator.wait();
    }
    eprintln!("fleet: stopping");
    Ok(())
}
