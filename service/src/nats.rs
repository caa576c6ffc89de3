//! Connecting to NATS with the deployment's credentials and TLS, and watching the connection.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::connection::State;
use tokio_util::sync::CancellationToken;

use crate::settings::Secret;

/// How often the connection state is sampled.
const POLL: Duration = Duration::from_millis(250);

/// How long one request (a JetStream API call or ack) may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How a process proves who it is to NATS, and which servers it trusts. At most one of the
/// creds file, the nkey seed and the user name is set; a secured deployment sets one of them and
/// the CA (see docs/SECURITY.md).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsAuth {
    /// A `.creds` file (JWT and nkey seed) for NATS (decentralized auth).
    #[arg(long, env = "NATS_CREDS_FILE")]
    pub nats_creds_file: Option<PathBuf>,

    /// A file holding this service's nkey seed (`SU...`); the server lists its public key.
    #[arg(long, env = "NATS_NKEY_SEED_FILE")]
    pub nats_nkey_seed_file: Option<PathBuf>,

    /// NATS user name (with NATS_PASSWORD).
    #[arg(long, env = "NATS_USER")]
    pub nats_user: Option<String>,

    /// NATS password (with NATS_USER).
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true, value_parser = Secret::parse)]
    pub nats_password: Option<Secret>,

    /// PEM file of the CA that signed the NATS servers' certificates; set, TLS is required.
    #[arg(long, env = "NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,

    /// PEM client certificate, for servers that verify clients (with NATS_TLS_KEY).
    #[arg(long, env = "NATS_TLS_CERT")]
    pub nats_tls_cert: Option<PathBuf>,

    /// PEM private key of NATS_TLS_CERT.
    #[arg(long, env = "NATS_TLS_KEY")]
    pub nats_tls_key: Option<PathBuf>,
}

/// Why the NATS settings cannot be used. The messages name the setting, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum NatsAuthError {
    #[error("set only one of NATS_CREDS_FILE, NATS_NKEY_SEED_FILE and NATS_USER")]
    SeveralCredentials,
    #[error("NATS_USER and NATS_PASSWORD go together: set both or neither")]
    UserWithoutPassword,
    #[error("NATS_TLS_CERT and NATS_TLS_KEY go together: set both or neither")]
    CertWithoutKey,
    #[error("cannot read {setting} ({path}): {source}")]
    Unreadable {
        setting: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{setting} ({path}) does not hold what it should: {problem}")]
    Invalid {
        setting: &'static str,
        path: PathBuf,
        problem: String,
    },
}

impl NatsAuth {
    /// Checks the combination and that every named file can be read and parsed, so a wrong
    /// path stops start-up instead of turning into an endless reconnect loop.
    pub fn check(&self) -> Result<(), NatsAuthError> {
        let credentials = [
            self.nats_creds_file.is_some(),
            self.nats_nkey_seed_file.is_some(),
            self.nats_user.is_some(),
        ];
        if credentials.iter().filter(|set| **set).count() > 1 {
            return Err(NatsAuthError::SeveralCredentials);
        }
        if self.nats_user.is_some() != self.nats_password.is_some() {
            return Err(NatsAuthError::UserWithoutPassword);
        }
        if self.nats_tls_cert.is_some() != self.nats_tls_key.is_some() {
            return Err(NatsAuthError::CertWithoutKey);
        }
        if let Some(path) = &self.nats_nkey_seed_file {
            let seed = read("NATS_NKEY_SEED_FILE", path)?;
            nkeys::KeyPair::from_seed(seed.trim()).map_err(|_| NatsAuthError::Invalid {
                setting: "NATS_NKEY_SEED_FILE",
                path: path.clone(),
                problem: "not an nkey seed (a line starting with SU)".into(),
            })?;
        }
        for (setting, path) in [
            ("NATS_CREDS_FILE", &self.nats_creds_file),
            ("NATS_TLS_CA", &self.nats_tls_ca),
            ("NATS_TLS_CERT", &self.nats_tls_cert),
            ("NATS_TLS_KEY", &self.nats_tls_key),
        ] {
            if let Some(path) = path {
                read(setting, path)?;
            }
        }
        Ok(())
    }

    /// The connect options these settings describe.
    async fn options(&self) -> Result<async_nats::ConnectOptions, NatsAuthError> {
        self.check()?;
        let mut options = async_nats::ConnectOptions::new();
        if let Some(path) = &self.nats_creds_file {
            options =
                options
                    .credentials_file(path)
                    .await
                    .map_err(|source| NatsAuthError::Invalid {
                        setting: "NATS_CREDS_FILE",
                        path: path.clone(),
                        problem: source.to_string(),
                    })?;
        }
        if let Some(path) = &self.nats_nkey_seed_file {
            options = options.nkey(read("NATS_NKEY_SEED_FILE", path)?.trim().to_owned());
        }
        if let (Some(user), Some(password)) = (&self.nats_user, &self.nats_password) {
            options = options.user_and_password(user.clone(), password.expose().to_owned());
        }
        if let Some(ca) = &self.nats_tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.nats_tls_cert, &self.nats_tls_key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options)
    }
}

fn read(setting: &'static str, path: &std::path::Path) -> Result<String, NatsAuthError> {
    std::fs::read_to_string(path).map_err(|source| NatsAuthError::Unreadable {
        setting,
        path: path.to_owned(),
        source,
    })
}

/// Why no NATS client could be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Settings(#[from] NatsAuthError),
    #[error("cannot set up the NATS client for NATS_URL: {0}")]
    Client(#[from] async_nats::ConnectError),
}

/// The reply subjects of bridges: `<prefix>.>`. Each role has its own, so the NATS permissions
/// can let a role read only its own replies (publish acks, API answers, pulled messages), not
/// another role's (ops/nats/permissions.conf).
pub const BRIDGE_INBOX_PREFIX: &str = "_INBOX_bridge";
/// The reply subjects of gateways: `<prefix>.>`.
pub const GATEWAY_INBOX_PREFIX: &str = "_INBOX_gateway";

/// A client that keeps reconnecting forever, also when NATS is not up yet at start, so a
/// process can start before its NATS and ride out NATS restarts. Replies come to
/// `inbox_prefix.>` ([`BRIDGE_INBOX_PREFIX`] or [`GATEWAY_INBOX_PREFIX`]).
pub async fn connect(
    name: String,
    servers: Vec<async_nats::ServerAddr>,
    auth: &NatsAuth,
    inbox_prefix: &str,
) -> Result<async_nats::Client, ConnectError> {
    Ok(auth
        .options()
        .await?
        .name(name)
        .custom_inbox_prefix(inbox_prefix)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .connect(servers)
        .await?)
}

/// Calls `on_change(connected)` whenever the connection state changes (and once at the start),
/// logging each change once, until `stop`.
pub async fn watch_connection(
    client: async_nats::Client,
    stop: CancellationToken,
    on_change: impl Fn(bool) + Send + 'static,
) {
    let mut last: Option<bool> = None;
    let mut poll = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = poll.tick() => {}
        }
        let connected = client.connection_state() == State::Connected;
        if last != Some(connected) {
            on_change(connected);
            match (last, connected) {
                (_, true) => tracing::info!("connected to nats"),
                (Some(true), false) => tracing::warn!("disconnected from nats; reconnecting"),
                (_, false) => tracing::info!("connecting to nats"),
            }
            last = Some(connected);
        }
    }
}
