//! `just certs`: a throwaway CA and everything a secured rakuda-realtime needs, in one directory:
//! certificates for NATS, Redis and nginx, the bridges' and gateways' NATS nkeys, a password per
//! Redis user with the ACL file that checks them, and an env file per role.

use std::path::PathBuf;

use clap::Parser;
use rakuda_testkit::secrets::{generate, SecretsConfig};

#[derive(Parser)]
#[command(
    about = "Makes a throwaway CA, certificates, NATS nkeys, Redis passwords and env files for rakuda-realtime"
)]
struct Args {
    /// Where to write (kept out of git by .gitignore when under .dev/).
    #[arg(long, default_value = ".dev/certs")]
    out: PathBuf,
    /// Names and addresses of the NATS nodes (repeat; default 127.0.0.1 and localhost).
    #[arg(long = "nats-host")]
    nats_hosts: Vec<String>,
    /// Names and addresses of Redis (repeat).
    #[arg(long = "redis-host")]
    redis_hosts: Vec<String>,
    /// Names and addresses browsers use to reach nginx (repeat).
    #[arg(long = "nginx-host")]
    nginx_hosts: Vec<String>,
    /// NATS_URL written into the bridge's and gateway's env files.
    #[arg(long, default_value = "tls://127.0.0.1:4222")]
    nats_url: String,
    /// host:port of Redis's TLS port, for the REDIS_URLs of the env files.
    #[arg(long, default_value = "127.0.0.1:6380")]
    redis_addr: String,
    /// Replace what is already in --out (a new CA: every certificate, key and password changes).
    #[arg(long)]
    force: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.out.join("ca.pem").exists() && !args.force {
        eprintln!(
            "rakuda-certs: {} already holds a CA; --force makes everything anew",
            args.out.display()
        );
        return Ok(());
    }
    let mut config = SecretsConfig::local(args.out);
    for (hosts, given) in [
        (&mut config.nats_hosts, args.nats_hosts),
        (&mut config.redis_hosts, args.redis_hosts),
        (&mut config.nginx_hosts, args.nginx_hosts),
    ] {
        if !given.is_empty() {
            *hosts = given;
        }
    }
    config.nats_url = args.nats_url;
    config.redis_addr = args.redis_addr;
    let secrets = generate(&config)?;
    let dir = secrets.dir.display();
    eprintln!(
        "rakuda-certs: wrote {dir}:
  ca.pem                          the CA every client trusts (NATS_TLS_CA, REDIS_TLS_CA, curl --cacert)
  ca-key.pem                      its key: keep it offline, or delete it
  nats.pem, redis.pem, nginx.pem  server certificates (+ *-key.pem); NATS's also serves the routes
  bridge.nk, gateway.nk           NATS nkey seeds (NATS_NKEY_SEED_FILE)
  nats.env                        for nats-server: TLS files and the public nkeys (ops/nats/auth.conf)
  redis-users.conf                ops/redis/users.conf with the password hashes: include it in Redis
  bridge.env, gateway.env, worker.env
                                  each role's REDIS_URL (its ACL user), NATS settings, TOKEN_SECRET
Everything but the certificates is readable by its owner only. docs/DEPLOY.md says where each goes."
    );
    Ok(())
}
