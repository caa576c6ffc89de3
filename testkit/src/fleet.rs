//! A whole deployment on loopback, made of real processes: Redis, a 3-node NATS cluster, N
//! bridges, N gateways and nginx in front, each run from the committed ops files and secured as
//! they are: Redis over TLS with an ACL user per role, NATS over TLS (mutual TLS between the
//! nodes) with an nkey user per role, nginx over HTTPS with HTTP/2. The certificates, keys and
//! passwords are made fresh for each fleet ([`crate::secrets`]). The fleet test breaks it piece
//! by piece; `rakuda-fleet` (`just fleet`) runs it for a demo.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::nats_cluster::{NatsCluster, NODES};
use crate::nginx::{loopback, Nginx};
use crate::process::{free_port, Error};
use crate::redis::RedisServer;
use crate::secrets::{Role, Secrets, SecretsConfig};
use crate::tls::TlsClient;

pub use crate::service::{built_binary, Service};

/// First NATS client port of a demo fleet (`base_port` set).
const DEMO_NATS_PORT: u16 = 4322;

/// What to run.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Where `rakuda-bridge` and `rakuda-gateway` were built (`target/debug`).
    pub bin_dir: PathBuf,
    pub api_key: String,
    /// The bridges' publish key (`PUBLISH_API_KEYS`), for `POST /api/realtime/publish`.
    pub publish_key: String,
    pub bridges: usize,
    pub gateways: usize,
    /// Settings every bridge gets, on top of the addresses the fleet assigns.
    pub bridge_env: Vec<(String, String)>,
    /// Settings every gateway gets, on top of the addresses the fleet assigns.
    pub gateway_env: Vec<(String, String)>,
    /// Fixed ports for a demo: nginx on `base`, gateways on `base+1..`, bridges' metrics on
    /// `base+11..`, bridges' publish APIs on `base+31..`, Redis on `base+20`, NATS clients on 4322..; `None` takes free ports (tests).
    pub base_port: Option<u16>,
    /// Where the certificates, keys and env files go (replaced on every start); `None`: inside
    /// the fleet's temp dir, gone with it.
    pub secrets_dir: Option<PathBuf>,
}

impl FleetConfig {
    pub fn new(bin_dir: PathBuf) -> FleetConfig {
        FleetConfig {
            bin_dir,
            api_key: "fleet-api-key".into(),
            publish_key: "fleet-publish-key-0123456789".into(),
            bridges: 2,
            gateways: 2,
            bridge_env: Vec::new(),
            gateway_env: Vec::new(),
            base_port: None,
            secrets_dir: None,
        }
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
    pub publish_key: String,
    /// The CA, certificates, nkeys and passwords the fleet runs with.
    pub secrets: Secrets,
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

        let redis_port = config.base_port.map(|base| base + 20);
        // The env files written with the secrets name the servers' addresses: known ahead for a
        // demo (whose files a person may use), placeholders for a test (which passes its own).
        let mut secrets_config = SecretsConfig::local(
            config
                .secrets_dir
                .clone()
                .unwrap_or_else(|| dir.path().join("certs")),
        );
        if config.base_port.is_some() {
            secrets_config.nats_url = (0..NODES as u16)
                .map(|node| format!("tls://127.0.0.1:{}", DEMO_NATS_PORT + node))
                .collect::<Vec<_>>()
                .join(",");
        }
        if let Some(port) = redis_port {
            secrets_config.redis_addr = format!("127.0.0.1:{port}");
        }
        let secrets =
            crate::secrets::generate(&secrets_config).map_err(|error| Error::Service {
                name: "rakuda-certs".into(),
                message: error.to_string(),
            })?;

        let redis = RedisServer::start_secured(&secrets, redis_port)?;
        let nats = match config.base_port {
            Some(_) => NatsCluster::start_on(&secrets, DEMO_NATS_PORT)?,
            None => NatsCluster::start(&secrets)?,
        };
        let common = |role: Role, extra: &[(String, String)]| -> Vec<(String, String)> {
            // REDIS_URL as the role's ACL user, REDIS_TLS_CA, NATS_URL (tls://), NATS_TLS_CA,
            // NATS_NKEY_SEED_FILE: what its env file says, with this fleet's addresses.
            let mut envs = secrets.service_env(role, &nats.urls(), &redis.addr());
            envs.extend([
                ("STREAM_REPLICAS".to_owned(), "3".to_owned()),
                ("API_KEY".to_owned(), config.api_key.clone()),
                ("RUST_LOG".to_owned(), "info".to_owned()),
            ]);
            envs.extend(extra.iter().cloned());
            envs
        };

        let mut bridges = Vec::new();
        let mut publishers = Vec::new();
        for index in 0..config.bridges {
            // The publish API, behind nginx's `upstream rakuda_publish`.
            let publish = loopback(port(31 + index as u16)?);
            let port = port(11 + index as u16)?;
            let mut envs = common(Role::Bridge, &config.bridge_env);
            envs.push(("BRIDGE_METRICS_ADDR".into(), loopback(port)));
            envs.push(("BRIDGE_HTTP_ADDR".into(), publish.clone()));
            envs.push((
                "PUBLISH_API_KEYS".into(),
                format!("fleet:{}", config.publish_key),
            ));
            publishers.push(publish);
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
            let mut envs = common(Role::Gateway, &config.gateway_env);
            envs.push(("GATEWAY_ADDR".into(), loopback(port)));
            // nginx (on this host) appends the client's address to X-Forwarded-For; the gateway
            // believes it only from there.
            envs.push(("TRUSTED_PROXIES".into(), "127.0.0.1".into()));
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
        let nginx = Nginx::start(
            config.base_port,
            &upstreams,
            &publishers,
            &api,
            &secrets.nginx,
            &secrets.ca,
        )?;
        Ok(Fleet {
            nginx,
            gateways,
            bridges,
            nats,
            redis,
            api_key: config.api_key,
            publish_key: config.publish_key,
            secrets,
            dir,
        })
    }

    /// The load balancer: what clients connect to (`https://`).
    pub fn url(&self) -> String {
        self.nginx.url()
    }

    /// A TLS client that trusts the fleet's CA (and nothing else).
    pub fn tls(&self) -> Result<TlsClient, Error> {
        TlsClient::new(&self.secrets.ca)
            .map_err(|error| Error::Io(std::io::Error::other(error.to_string())))
    }

    /// The `rediss://` URL of a role's Redis user (the CA is `secrets.ca`).
    pub fn redis_url_as(&self, role: Role) -> String {
        self.secrets.redis_url(role, &self.redis.addr())
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
