//! The rustls client configuration, built once for both runtimes: CA from a file, a
//! directory or PEM data (the `native-roots` / `webpki-roots` features' roots when none is
//! given), an optional client certificate, and an explicit opt-out of host name checking.
//!
//! The crypto provider is the process-wide default when the application installed one
//! (`rustls::crypto::CryptoProvider::install_default`), else the one the `aws-lc-rs` or `ring`
//! feature compiles in (aws-lc-rs first: enabling it on top of the default `ring` is a choice).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::error::TlsError;

/// Where trust and identity come from, when the client builds the rustls configuration
/// itself: the TLS options of [`ClientConfig`](crate::ClientConfig), overridden by
/// [`Connecting`](crate::Connecting)'s amqtt arguments. Not public: it would be a third place
/// to configure TLS. A ready `rustls::ClientConfig` (custom verifier, in-memory client
/// certificate, ALPN, session resumption) is handed over with
/// [`ClientConfig::tls_config`](crate::ClientConfig::tls_config) instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// PEM file of trusted CA certificates.
    pub(crate) ca_file: Option<PathBuf>,
    /// Directory of PEM files of trusted CA certificates.
    pub(crate) ca_path: Option<PathBuf>,
    /// Trusted CA certificates as PEM text.
    pub(crate) ca_data: Option<String>,
    /// Client certificate chain (PEM) for mutual TLS.
    pub(crate) cert_file: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    pub(crate) key_file: Option<PathBuf>,
    /// Verify that the certificate names the host. Turning it off still verifies the chain
    /// and validity period. Default: on.
    pub(crate) check_hostname: bool,
    /// Verify the server's certificate at all (amqtt's `verify_cert`). Turning it off accepts
    /// any certificate, from anyone, for any name: the connection is encrypted but the server
    /// is not authenticated, so anyone on the path can pose as it. Only for tests against a
    /// broker with a throw-away certificate. Default: on.
    pub(crate) verify_cert: bool,
}

impl Default for TlsOptions {
    /// No CA (the default roots), no client certificate, every check on.
    fn default() -> Self {
        Self {
            ca_file: None,
            ca_path: None,
            ca_data: None,
            cert_file: None,
            key_file: None,
            check_hostname: true,
            verify_cert: true,
        }
    }
}

impl TlsOptions {
    /// Builds the rustls configuration.
    pub(crate) fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = crypto_provider()?;
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if !self.verify_cert {
            tracing::warn!("verify_cert is off: the server's certificate is not checked");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else if self.check_hostname {
            let roots = Arc::new(self.root_store()?);
            builder.with_root_certificates(roots)
        } else {
            let roots = Arc::new(self.root_store()?);
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(TlsError::Verifier)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(IgnoreHostname(inner)))
        };
        let config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|err| pem_error(key, err))?;
                builder.with_client_auth_cert(chain, key)?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    fn root_store(&self) -> Result<RootCertStore, TlsError> {
        let mut store = RootCertStore::empty();
        if let Some(file) = &self.ca_file {
            store.add_parsable_certificates(read_certs(file)?);
        }
        if let Some(dir) = &self.ca_path {
            let entries = std::fs::read_dir(dir).map_err(|err| read_error(dir, err))?;
            for entry in entries {
                let path = entry.map_err(|err| read_error(dir, err))?.path();
                // A CA directory also holds hash links and unrelated files: take what parses.
                if let Ok(certs) = read_certs(&path) {
                    store.add_parsable_certificates(certs);
                }
            }
        }
        if let Some(pem) = &self.ca_data {
            let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| TlsError::Pem("ca_data".into()))?;
            store.add_parsable_certificates(certs);
        }
        let explicit = self.ca_file.is_some() || self.ca_path.is_some() || self.ca_data.is_some();
        if explicit {
            if store.is_empty() {
                return Err(TlsError::Missing {
                    what: "CA certificate",
                    source_name: "ca_file / ca_path / ca_data".into(),
                });
            }
            return Ok(store);
        }
        default_roots(store)
    }
}

/// The process-wide default provider if the application installed one, else the feature's.
fn crypto_provider() -> Result<Arc<CryptoProvider>, TlsError> {
    if let Some(provider) = CryptoProvider::get_default() {
        return Ok(provider.clone());
    }
    #[cfg(feature = "aws-lc-rs")]
    let provider = Ok(Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = Ok(Arc::new(rustls::crypto::ring::default_provider()));
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    let provider = Err(TlsError::NoCryptoProvider);
    provider
}

/// No CA configured: the roots the `native-roots` and `webpki-roots` features bring (both
/// when both are on).
// Without a roots feature the store is handed back untouched (as an error).
#[cfg_attr(
    not(any(feature = "native-roots", feature = "webpki-roots")),
    allow(unused_mut)
)]
fn default_roots(mut store: RootCertStore) -> Result<RootCertStore, TlsError> {
    #[cfg(feature = "native-roots")]
    {
        let native = rustls_native_certs::load_native_certs();
        tracing::debug!(
            roots = native.certs.len(),
            errors = native.errors.len(),
            "loaded system roots"
        );
        store.add_parsable_certificates(native.certs);
    }
    #[cfg(feature = "webpki-roots")]
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if cfg!(any(feature = "native-roots", feature = "webpki-roots")) {
        Ok(store)
    } else {
        Err(TlsError::NoRoots)
    }
}

/// The server name to verify and send in SNI.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::ServerName(host.to_owned()))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| pem_error(path, err))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(path, err))?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            what: "certificate",
            source_name: path.display().to_string(),
        });
    }
    Ok(certs)
}

fn read_error(path: &Path, err: std::io::Error) -> TlsError {
    TlsError::Read {
        path: path.to_owned(),
        source: Arc::new(err),
    }
}

fn pem_error(path: &Path, err: rustls::pki_types::pem::Error) -> TlsError {
    match err {
        rustls::pki_types::pem::Error::Io(io) => read_error(path, io),
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Missing {
            what: "PEM item",
            source_name: path.display().to_string(),
        },
        _ => TlsError::Pem(path.display().to_string()),
    }
}

/// Verifies the chain, validity and signatures like the default verifier, and accepts a
/// certificate issued for another name. Only used when `check_hostname` is off.
#[derive(Debug)]
struct IgnoreHostname(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any certificate (`verify_cert` off), but still checks that the server holds the
/// key of the certificate it sent (the handshake signatures), as the provider verifies them.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
