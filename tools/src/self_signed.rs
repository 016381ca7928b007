//! `runnel serve --tls-self-signed`: a development CA and a broker certificate for
//! localhost, made once under the data directory and reused, so trying TLS is one
//! command. Clients trust `ca.pem` (`ssl.ca.location`); nothing here is for production.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the generated files are.
pub struct SelfSigned {
    /// The broker's key and certificate chain, one PEM file (`ssl.keystore.location`).
    pub keystore: PathBuf,
    /// The CA certificate clients trust.
    pub ca: PathBuf,
}

/// Make (or reuse) the CA and the broker certificate under `data_dir/tls-self-signed`.
pub fn ensure(data_dir: &Path) -> std::io::Result<SelfSigned> {
    let dir = data_dir.join("tls-self-signed");
    let out = SelfSigned {
        keystore: dir.join("broker.pem"),
        ca: dir.join("ca.pem"),
    };
    if out.keystore.is_file() && out.ca.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(&dir)?;
    let (ca_pem, keystore_pem) = generate().map_err(std::io::Error::other)?;
    write_private(&out.keystore, keystore_pem.as_bytes())?;
    std::fs::write(&out.ca, ca_pem)?;
    Ok(out)
}

fn generate() -> Result<(String, String), rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Runnel development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    let keystore = format!(
        "{}{}{}",
        leaf_key.serialize_pem(),
        leaf_cert.pem(),
        ca_cert.pem()
    );
    Ok((ca_cert.pem(), keystore))
}

/// A file only its owner can read: it holds a private key.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
