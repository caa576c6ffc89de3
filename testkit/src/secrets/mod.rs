//! A throwaway CA, the certificates of NATS, Redis and nginx, the NATS nkeys, the Redis passwords
//! and ACL file, and an env file per role: everything a secured deployment needs, made in one go
//! (`rakuda-certs`, `just certs`), and what the fleet test and `just fleet` run with.
//!
//! Nothing here is meant to outlive a trial: a production CA lives elsewhere. The files land in
//! one directory (gitignored `.dev/certs` by default); keys, seeds and env files are readable by
//! their owner only.

mod files;
mod pki;
#[cfg(test)]
mod tests;

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

pub use files::random_hex;
use files::{path, redis_users_conf, write, write_env};
use pki::{nkey, Ca};

/// The Redis users of `ops/redis/users.conf`, in the order of [`Role`].
pub const REDIS_USERS: [&str; 3] = ["rakuda-bridge", "rakuda-gateway", "rakuda-worker"];

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot make a key or certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot make an nkey: {0}")]
    Nkey(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("ops/redis/users.conf has no `user {0} ` line")]
    MissingRedisUser(&'static str),
}

/// Who connects: each role has its own NATS identity (workers have none) and Redis user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Bridge,
    Gateway,
    Worker,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Bridge => "bridge",
            Role::Gateway => "gateway",
            Role::Worker => "worker",
        }
    }

    pub fn redis_user(self) -> &'static str {
        match self {
            Role::Bridge => REDIS_USERS[0],
            Role::Gateway => REDIS_USERS[1],
            Role::Worker => REDIS_USERS[2],
        }
    }
}

/// What to make, and where the services will find the servers (written into the env files).
#[derive(Debug, Clone)]
pub struct SecretsConfig {
    pub out: PathBuf,
    /// Names and addresses the NATS nodes' certificate is valid for (every node's, one
    /// certificate for all: each node presents it to clients and to the other nodes).
    pub nats_hosts: Vec<String>,
    /// Names and addresses of Redis.
    pub redis_hosts: Vec<String>,
    /// Names and addresses browsers reach nginx at.
    pub nginx_hosts: Vec<String>,
    /// `NATS_URL` in the bridge's and gateways' env files.
    pub nats_url: String,
    /// `host:port` of Redis's TLS port, for the `REDIS_URL`s.
    pub redis_addr: String,
}

impl SecretsConfig {
    /// Everything on this machine: certificates for 127.0.0.1 and localhost.
    pub fn local(out: PathBuf) -> SecretsConfig {
        let local = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        SecretsConfig {
            out,
            nats_hosts: local.clone(),
            redis_hosts: local.clone(),
            nginx_hosts: local,
            nats_url: "tls://127.0.0.1:4222".into(),
            redis_addr: "127.0.0.1:6380".into(),
        }
    }
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What [`generate`] made. Paths are absolute when `out` was.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub dir: PathBuf,
    /// The CA every server certificate is signed by: what clients trust.
    pub ca: PathBuf,
    pub nats: CertFiles,
    pub redis: CertFiles,
    pub nginx: CertFiles,
    /// The bridges' and the gateways' nkey seed files (`NATS_NKEY_SEED_FILE`).
    pub bridge_seed: PathBuf,
    pub gateway_seed: PathBuf,
    /// Their public keys (`NATS_BRIDGE_NKEY`, `NATS_GATEWAY_NKEY` of `ops/nats/auth.conf`).
    pub bridge_nkey: String,
    pub gateway_nkey: String,
    /// `ops/redis/users.conf` with each user's password hash.
    pub redis_users: PathBuf,
    /// Each Redis user's password, in the order of [`REDIS_USERS`].
    pub redis_passwords: [String; 3],
    /// `TOKEN_SECRET` for every gateway.
    pub token_secret: String,
}

impl Secrets {
    pub fn redis_password(&self, role: Role) -> &str {
        &self.redis_passwords[role as usize]
    }

    /// `rediss://<role's user>:<password>@<addr>`
    pub fn redis_url(&self, role: Role, addr: &str) -> String {
        format!(
            "rediss://{}:{}@{addr}",
            role.redis_user(),
            self.redis_password(role)
        )
    }

    /// What `ops/nats/cluster.conf` and `single.conf` read from the environment, besides the
    /// per-node addresses.
    pub fn nats_server_env(&self) -> Vec<(String, String)> {
        vec![
            ("NATS_TLS_CERT".into(), path(&self.nats.cert)),
            ("NATS_TLS_KEY".into(), path(&self.nats.key)),
            ("NATS_TLS_CA".into(), path(&self.ca)),
            ("NATS_BRIDGE_NKEY".into(), self.bridge_nkey.clone()),
            ("NATS_GATEWAY_NKEY".into(), self.gateway_nkey.clone()),
        ]
    }

    /// The settings a bridge or gateway needs to reach NATS (at `nats_url`) and Redis (at
    /// `redis_addr`) as its role: the env file's content.
    pub fn service_env(
        &self,
        role: Role,
        nats_url: &str,
        redis_addr: &str,
    ) -> Vec<(String, String)> {
        let mut env = vec![
            ("REDIS_URL".to_owned(), self.redis_url(role, redis_addr)),
            ("REDIS_TLS_CA".to_owned(), path(&self.ca)),
        ];
        let seed = match role {
            Role::Bridge => Some(&self.bridge_seed),
            Role::Gateway => Some(&self.gateway_seed),
            Role::Worker => None,
        };
        if let Some(seed) = seed {
            env.push(("NATS_URL".into(), nats_url.to_owned()));
            env.push(("NATS_TLS_CA".into(), path(&self.ca)));
            env.push(("NATS_NKEY_SEED_FILE".into(), path(seed)));
        }
        if role == Role::Gateway {
            env.push(("TOKEN_SECRET".into(), self.token_secret.clone()));
        }
        env
    }
}

/// Makes a fresh CA and everything else in `config.out` (created if missing; files there are
/// replaced).
pub fn generate(config: &SecretsConfig) -> Result<Secrets, SecretsError> {
    let dir = config.out.clone();
    if !dir.exists() {
        // A directory of our own: nobody else may even list it.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| SecretsError::Write {
                path: dir.clone(),
                source,
            })?;
    }

    let ca = Ca::new(&dir)?;
    // NATS nodes present theirs to clients and, on routes, to each other as servers and as
    // clients (mutual TLS): both usages.
    let nats = ca.issue(&dir, "nats", &config.nats_hosts, true)?;
    let redis = ca.issue(&dir, "redis", &config.redis_hosts, false)?;
    let nginx = ca.issue(&dir, "nginx", &config.nginx_hosts, false)?;

    let (bridge_seed, bridge_nkey) = nkey(&dir, "bridge")?;
    let (gateway_seed, gateway_nkey) = nkey(&dir, "gateway")?;

    let redis_passwords = [random_hex(32), random_hex(32), random_hex(32)];
    let redis_users = dir.join("redis-users.conf");
    write(
        &redis_users,
        redis_users_conf(&redis_passwords)?.as_bytes(),
        true,
    )?;

    let secrets = Secrets {
        dir: dir.clone(),
        ca: ca.file.clone(),
        nats,
        redis,
        nginx,
        bridge_seed,
        gateway_seed,
        bridge_nkey,
        gateway_nkey,
        redis_users,
        redis_passwords,
        token_secret: random_hex(32),
    };

    write_env(
        &dir.join("nats.env"),
        "NATS servers (ops/nats/cluster.conf, single.conf): TLS files and the users' public nkeys.",
        &secrets.nats_server_env(),
    )?;
    for role in [Role::Bridge, Role::Gateway, Role::Worker] {
        let what = match role {
            Role::Bridge => "Every bridge: its Redis user, its NATS nkey, the CA.",
            Role::Gateway => {
                "Every gateway: its Redis user, its NATS nkey, the CA, the token secret."
            }
            Role::Worker => "RAKUDA's workers: the Redis user that may publish events.",
        };
        write_env(
            &dir.join(format!("{}.env", role.name())),
            what,
            &secrets.service_env(role, &config.nats_url, &config.redis_addr),
        )?;
    }
    Ok(secrets)
}
