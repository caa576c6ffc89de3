//! What `generate` makes, and that the secrets in it are private.

use super::*;
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;

#[test]
fn everything_is_made_and_secrets_are_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secrets = generate(&SecretsConfig::local(dir.path().join("certs"))).expect("generate");
    for file in [&secrets.ca, &secrets.nats.cert, &secrets.nginx.cert] {
        let text = fs::read_to_string(file).expect("read cert");
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{file:?}");
    }
    for file in [
        &secrets.nats.key,
        &secrets.redis.key,
        &secrets.bridge_seed,
        &secrets.redis_users,
        &secrets.dir.join("gateway.env"),
    ] {
        let mode = fs::metadata(file).expect("stat").permissions().mode();
        assert_eq!(mode & 0o077, 0, "{file:?} is readable by others: {mode:o}");
    }
    let seed = fs::read_to_string(&secrets.bridge_seed).expect("seed");
    let pair = nkeys::KeyPair::from_seed(seed.trim()).expect("a user seed");
    assert_eq!(pair.public_key(), secrets.bridge_nkey);
    assert!(secrets.gateway_nkey.starts_with('U'));

    let users = fs::read_to_string(&secrets.redis_users).expect("users");
    let hash = hex::encode(Sha256::digest(secrets.redis_password(Role::Worker)));
    assert!(users.contains(&format!(
        "&rakuda:realtime:listings -@all +ping +publish #{hash}"
    )));
    assert!(
        !users.contains(secrets.redis_password(Role::Bridge)),
        "a password in clear"
    );

    let gateway = fs::read_to_string(secrets.dir.join("gateway.env")).expect("env");
    assert!(gateway.contains("NATS_NKEY_SEED_FILE=") && gateway.contains("TOKEN_SECRET="));
    assert!(gateway.contains(&format!(
        "REDIS_URL=rediss://rakuda-gateway:{}@127.0.0.1:6380",
        secrets.redis_password(Role::Gateway)
    )));
    let worker = fs::read_to_string(secrets.dir.join("worker.env")).expect("env");
    assert!(!worker.contains("NATS_"), "workers never touch NATS");
}
