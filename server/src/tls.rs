//! HTTPS and WSS on the main port with rustls (no OpenSSL): a certificate and key from PEM files,
//! reloadable without dropping live connections, or a self-signed certificate made at start for
//! trying Circle on a LAN. Browsers grant camera and microphone only over HTTPS.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use rustls::crypto::ring::{default_provider, sign::any_supported_type};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

/// Why a certificate could not be used. Each names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("the key in {path} cannot sign: {error}")]
    BadKey { path: PathBuf, error: rustls::Error },
    #[error("the key in {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS settings: {0}")]
    Config(rustls::Error),
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Made at start for these DNS names and IP addresses.
    SelfSigned {
        names: Vec<String>,
    },
}

/// The certificate the server presents, swapped whole on reload; handshakes in progress and
/// connections already up keep the one they started with.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// The main port's TLS.
pub struct Tls {
    source: TlsSource,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("source", &self.source).finish()
    }
}

impl Tls {
    pub fn new(source: TlsSource) -> Result<Tls, TlsError> {
        let key = load(&source)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            source,
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the files again (SIGHUP); on any problem the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        if let TlsSource::Files { .. } = self.source {
            let key = load(&self.source)?;
            *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        }
        Ok(())
    }

    /// The SHA-256 fingerprint of the certificate in use, as browsers show it (AB:CD:…).
    pub fn fingerprint(&self) -> String {
        let key = self
            .current
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let digest = Sha256::digest(key.cert[0].as_ref());
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// base64(SHA-256 of the certificate's public key), what Chromium's
    /// `--ignore-certificate-errors-spki-list` pins.
    pub fn spki_sha256(&self) -> Option<String> {
        let key = self
            .current
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let spki = key.key.public_key()?;
        Some(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki.as_ref())))
    }
}

fn load(source: &TlsSource) -> Result<CertifiedKey, TlsError> {
    match source {
        TlsSource::Files { cert, key } => {
            let read = |path: &Path| {
                std::fs::read(path).map_err(|error| TlsError::Read {
                    path: path.to_owned(),
                    error,
                })
            };
            let cert_pem = read(cert)?;
            let key_pem = read(key)?;
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
                .filter_map(Result::ok)
                .collect();
            if chain.is_empty() {
                return Err(TlsError::NoCertificate { path: cert.clone() });
            }
            let private = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|_| TlsError::NoKey { path: key.clone() })?;
            certified(chain, private, cert, key)
        }
        TlsSource::SelfSigned { names } => {
            let made = rcgen::generate_simple_self_signed(names.clone())
                .map_err(|e| TlsError::Generate(e.to_string()))?;
            let chain = vec![made.cert.der().clone()];
            let private = PrivateKeyDer::try_from(made.signing_key.serialize_der())
                .map_err(|e| TlsError::Generate(e.to_string()))?;
            certified(chain, private, Path::new("(made)"), Path::new("(made)"))
        }
    }
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    private: PrivateKeyDer<'static>,
    cert: &Path,
    key: &Path,
) -> Result<CertifiedKey, TlsError> {
    let signing = any_supported_type(&private).map_err(|error| TlsError::BadKey {
        path: key.to_owned(),
        error,
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| TlsError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
    })?;
    Ok(certified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("circle-tls-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_missing_unreadable_empty_or_mismatched_pair_is_refused_naming_the_file() {
        let dir = temp_dir();
        let (cert, key) = write_pair(&dir, "a");
        let (_, other_key) = write_pair(&dir, "b");
        assert!(Tls::new(TlsSource::Files {
            cert: cert.clone(),
            key: key.clone()
        })
        .is_ok());
        let missing = dir.join("missing.crt");
        let e = Tls::new(TlsSource::Files {
            cert: missing.clone(),
            key: key.clone(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("missing.crt"), "{e}");
        let e = Tls::new(TlsSource::Files {
            cert: key.clone(),
            key: key.clone(),
        })
        .unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        let e = Tls::new(TlsSource::Files {
            cert: cert.clone(),
            key: cert.clone(),
        })
        .unwrap_err();
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
        let e = Tls::new(TlsSource::Files {
            cert: cert.clone(),
            key: other_key,
        })
        .unwrap_err();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
        assert!(
            e.to_string().contains("b.key") && e.to_string().contains("a.crt"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_reload_takes_the_new_certificate_and_a_broken_one_keeps_the_old() {
        let dir = temp_dir();
        let (cert, key) = write_pair(&dir, "live");
        let tls = Tls::new(TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        })
        .unwrap();
        let first = tls.fingerprint();
        write_pair(&dir, "live");
        tls.reload().unwrap();
        let second = tls.fingerprint();
        assert_ne!(first, second);
        std::fs::write(&key, "not a key").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(tls.fingerprint(), second);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_self_signed_certificate_has_a_fingerprint_and_a_pinnable_key() {
        let tls = Tls::new(TlsSource::SelfSigned {
            names: vec!["localhost".into(), "127.0.0.1".into()],
        })
        .unwrap();
        assert_eq!(tls.fingerprint().len(), 32 * 3 - 1);
        assert_eq!(tls.spki_sha256().unwrap().len(), 44);
    }
}
