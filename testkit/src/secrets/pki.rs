//! The throwaway CA, the server certificates it signs, and the NATS nkeys.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use super::files::write;
use super::{CertFiles, SecretsError};

/// How long the generated certificates are valid.
const VALID_DAYS: i64 = 365;

/// A CA made for one trial; its key stays in memory to sign the server certificates.
pub(super) struct Ca {
    cert: Certificate,
    key: KeyPair,
    /// `ca.pem`: what clients trust.
    pub(super) file: PathBuf,
}

impl Ca {
    /// A new CA, written to `dir/ca.pem` (and its key to `dir/ca-key.pem`, owner only).
    pub(super) fn new(dir: &Path) -> Result<Ca, SecretsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name("rakuda-realtime throwaway CA");
        // It signs server certificates only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params);
        let cert = params.self_signed(&key)?;
        let file = dir.join("ca.pem");
        write(&file, cert.pem().as_bytes(), false)?;
        // Kept for issuing more certificates by hand; a real CA key never sits next to the rest.
        write(
            &dir.join("ca-key.pem"),
            key.serialize_pem().as_bytes(),
            true,
        )?;
        Ok(Ca { cert, key, file })
    }

    /// A certificate for `hosts` (names or addresses) in `dir/<file>.pem`, its key in
    /// `dir/<file>-key.pem` (owner only). `client_too`: also good for client authentication
    /// (NATS nodes present theirs to each other on routes, in both directions).
    pub(super) fn issue(
        &self,
        dir: &Path,
        file: &str,
        hosts: &[String],
        client_too: bool,
    ) -> Result<CertFiles, SecretsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name = name(&format!("rakuda-realtime {file}"));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if client_too {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        validity(&mut params);
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        let files = CertFiles {
            cert: dir.join(format!("{file}.pem")),
            key: dir.join(format!("{file}-key.pem")),
        };
        write(&files.cert, cert.pem().as_bytes(), false)?;
        write(&files.key, key.serialize_pem().as_bytes(), true)?;
        Ok(files)
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // A little in the past: clocks of the machines involved may disagree.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(VALID_DAYS);
}

/// A user nkey pair: the seed into `dir/<role>.nk` (owner only), the public key returned.
pub(super) fn nkey(dir: &Path, role: &str) -> Result<(PathBuf, String), SecretsError> {
    let pair = nkeys::KeyPair::new_user();
    let seed = pair
        .seed()
        .map_err(|error| SecretsError::Nkey(error.to_string()))?;
    let file = dir.join(format!("{role}.nk"));
    write(&file, format!("{seed}\n").as_bytes(), true)?;
    Ok((file, pair.public_key()))
}
