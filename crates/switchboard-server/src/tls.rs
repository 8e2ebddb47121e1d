//! TLS termination with rustls, with certificates reloadable at run time (SIGHUP) without
//! dropping sessions: new handshakes use the new certificate, established ones keep theirs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS stream type of accepted connections.
pub type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// Errors loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error("{0}: {1}")]
    Pem(PathBuf, String),
    /// The key does not fit the certificate or is unsupported.
    #[error("tls key: {0}")]
    Key(String),
}

#[derive(Debug)]
struct Resolver(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Pem(cert.into(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(cert.into(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(cert.into(), "no certificate found".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem(key.into(), e.to_string()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(certs, key, &provider).map_err(|e| TlsError::Key(e.to_string()))
}

/// Certificates and the acceptor built on them.
#[derive(Clone)]
pub struct Tls {
    resolver: Arc<Resolver>,
    cert: PathBuf,
    key: PathBuf,
    /// The acceptor for new connections.
    pub acceptor: tokio_rustls::TlsAcceptor,
}

impl Tls {
    /// Loads `cert` and `key` (PEM).
    ///
    /// # Errors
    /// [`TlsError`] naming the file.
    pub fn new(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let resolver = Arc::new(Resolver(ArcSwap::from_pointee(load(cert, key)?)));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Key(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        // HTTP/2 first: many streams (SSE tabs, polls, commands) share one connection.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            resolver,
            cert: cert.into(),
            key: key.into(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Re-reads the certificate files; on error the old certificate stays in use.
    ///
    /// # Errors
    /// [`TlsError`] naming the file.
    pub fn reload(&self) -> Result<(), TlsError> {
        let ck = load(&self.cert, &self.key)?;
        self.resolver.0.store(Arc::new(ck));
        Ok(())
    }
}
