//! Throw-away X.509 certificates for TLS tests.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use tempfile::TempDir;

/// A set of certificates generated at test time into a temporary directory.
///
/// All keys are ECDSA P-256 and all files are PEM (certificates as
/// `CERTIFICATE`, keys as PKCS#8 `PRIVATE KEY`), which rustls, OpenSSL
/// (mosquitto) and Go (nats-server) all read.
///
/// | file | method | what it is |
/// | --- | --- | --- |
/// | `ca.pem` | [`ca_file`](Self::ca_file) | the test CA (trust anchor for everything below unless noted) |
/// | `server.pem` / `server.key` | [`server_cert`](Self::server_cert) / [`server_key`](Self::server_key) | server certificate for `localhost` (SANs: DNS `localhost`, IP `127.0.0.1`), signed by the CA |
/// | `client.pem` / `client.key` | [`client_cert`](Self::client_cert) / [`client_key`](Self::client_key) | client certificate (CN `mqtt-test-client`, client-auth EKU) for mutual TLS, signed by the CA |
/// | `expired.pem` / `expired.key` | [`expired_cert`](Self::expired_cert) / [`expired_key`](Self::expired_key) | server certificate for `localhost`/`127.0.0.1`, signed by the CA, valid only during the year 2000 |
/// | `wrong_host.pem` / `wrong_host.key` | [`wrong_host_cert`](Self::wrong_host_cert) / [`wrong_host_key`](Self::wrong_host_key) | server certificate for `wrong.example` only, signed by the CA |
/// | `other_ca.pem` | [`other_ca_file`](Self::other_ca_file) | a second, unrelated CA |
/// | `other_ca_server.pem` / `other_ca_server.key` | [`other_ca_server_cert`](Self::other_ca_server_cert) / [`other_ca_server_key`](Self::other_ca_server_key) | server certificate for `localhost`/`127.0.0.1` signed by the *other* CA (a client trusting only `ca.pem` must reject it) |
///
/// Generating the whole set takes a few milliseconds, so calling
/// [`Certs::generate`] once per test (or once per test binary) is fine. The
/// directory is deleted when the `Certs` value is dropped; brokers started with
/// these certificates keep their own copies, so they may outlive it.
#[derive(Debug)]
pub struct Certs {
    dir: TempDir,
    ca_pem: String,
}

/// A CA that can sign leaf certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(common_name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .expect("building CA certificate parameters failed");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "mqtt-test-support");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generating a CA key failed");
        let pem = params
            .self_signed(&key)
            .expect("self-signing the CA certificate failed")
            .pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// Signs a new leaf certificate; returns `(certificate PEM, key PEM)`.
    fn leaf(&self, common_name: &str, sans: &[&str], usage: Usage) -> (String, String) {
        let sans: Vec<String> = sans.iter().map(|san| (*san).to_owned()).collect();
        let mut params =
            CertificateParams::new(sans).expect("building leaf certificate parameters failed");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "mqtt-test-support");
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        match usage {
            Usage::Server => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            Usage::ExpiredServer => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.not_before = date_time_ymd(2000, 1, 1);
                params.not_after = date_time_ymd(2001, 1, 1);
            }
            Usage::Client => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
        }
        let key = KeyPair::generate().expect("generating a leaf key failed");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signing a leaf certificate failed");
        (cert.pem(), key.serialize_pem())
    }
}

/// What a leaf certificate is for.
#[derive(Clone, Copy)]
enum Usage {
    Server,
    ExpiredServer,
    Client,
}

impl Certs {
    /// Generates the full set of certificates into a new temporary directory.
    ///
    /// # Panics
    ///
    /// If key generation, signing or writing the files fails.
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mqtt-test-certs-")
            .tempdir()
            .expect("creating a temporary directory for certificates failed");
        let write = |name: &str, contents: &str| {
            let path = dir.path().join(name);
            fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("writing {} failed: {e}", path.display()));
        };
        let localhost = ["localhost", "127.0.0.1"];

        let ca = Ca::new("mqtt-test-support CA");
        write("ca.pem", &ca.pem);
        let (cert, key) = ca.leaf("localhost", &localhost, Usage::Server);
        write("server.pem", &cert);
        write("server.key", &key);
        let (cert, key) = ca.leaf("mqtt-test-client", &[], Usage::Client);
        write("client.pem", &cert);
        write("client.key", &key);
        let (cert, key) = ca.leaf("localhost", &localhost, Usage::ExpiredServer);
        write("expired.pem", &cert);
        write("expired.key", &key);
        let (cert, key) = ca.leaf("wrong.example", &["wrong.example"], Usage::Server);
        write("wrong_host.pem", &cert);
        write("wrong_host.key", &key);

        let other = Ca::new("mqtt-test-support other CA");
        write("other_ca.pem", &other.pem);
        let (cert, key) = other.leaf("localhost", &localhost, Usage::Server);
        write("other_ca_server.pem", &cert);
        write("other_ca_server.key", &key);

        Self {
            dir,
            ca_pem: ca.pem,
        }
    }

    /// The directory holding all the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The test CA's certificate, PEM, as a string (the contents of
    /// [`ca_file`](Self::ca_file)).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// `ca.pem`: the test CA's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// `server.pem`: server certificate for `localhost` and `127.0.0.1`, signed by the CA.
    pub fn server_cert(&self) -> PathBuf {
        self.file("server.pem")
    }

    /// `server.key`: the key of [`server_cert`](Self::server_cert).
    pub fn server_key(&self) -> PathBuf {
        self.file("server.key")
    }

    /// `client.pem`: client certificate (CN `mqtt-test-client`) for mutual TLS, signed by the CA.
    pub fn client_cert(&self) -> PathBuf {
        self.file("client.pem")
    }

    /// `client.key`: the key of [`client_cert`](Self::client_cert).
    pub fn client_key(&self) -> PathBuf {
        self.file("client.key")
    }

    /// `expired.pem`: server certificate for `localhost`, signed by the CA, expired since 2001.
    pub fn expired_cert(&self) -> PathBuf {
        self.file("expired.pem")
    }

    /// `expired.key`: the key of [`expired_cert`](Self::expired_cert).
    pub fn expired_key(&self) -> PathBuf {
        self.file("expired.key")
    }

    /// `wrong_host.pem`: server certificate for `wrong.example` only, signed by the CA.
    pub fn wrong_host_cert(&self) -> PathBuf {
        self.file("wrong_host.pem")
    }

    /// `wrong_host.key`: the key of [`wrong_host_cert`](Self::wrong_host_cert).
    pub fn wrong_host_key(&self) -> PathBuf {
        self.file("wrong_host.key")
    }

    /// `other_ca.pem`: a second CA, unrelated to [`ca_file`](Self::ca_file).
    pub fn other_ca_file(&self) -> PathBuf {
        self.file("other_ca.pem")
    }

    /// `other_ca_server.pem`: server certificate for `localhost` and `127.0.0.1`
    /// signed by the other CA.
    pub fn other_ca_server_cert(&self) -> PathBuf {
        self.file("other_ca_server.pem")
    }

    /// `other_ca_server.key`: the key of [`other_ca_server_cert`](Self::other_ca_server_cert).
    pub fn other_ca_server_key(&self) -> PathBuf {
        self.file("other_ca_server.key")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
