//! TLS settings: Tornado's `ssl_options`, built on rustls (ring provider).
//!
//! A server needs a certificate chain and its key; a client needs the roots
//! it trusts (the system's by default). Both become rustls configurations,
//! which streams, servers and the HTTP client share by `Arc`:
//!
//! ```
//! use squall::tls::{ClientOptions, ServerOptions, SslOptions};
//!
//! // A certificate for "localhost", made for the example (rcgen).
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
//! let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
//!
//! // Tornado: ssl_options={"certfile": ..., "keyfile": ...}
//! let server = ServerOptions::new(cert_pem.as_bytes(), key_pem.as_bytes()).build()?;
//! // A client that trusts that certificate (Tornado's `ca_certs`).
//! let client = ClientOptions::new().ca_certs(cert_pem.as_bytes()).build()?;
//!
//! let _: SslOptions = server.into();
//! let _: SslOptions = client.into();
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! Streams take an [`SslOptions`]: `IOStream::start_tls` (STARTTLS) and
//! `IOStream::with_ssl` (an `SSLIOStream` over a connected socket); servers
//! take one with `TCPServer::set_ssl_options` / `HTTPServer::set_ssl_options`;
//! the HTTP client builds its own from each request's `validate_cert`,
//! `ca_certs`, `client_cert` and `client_key`.
//!
//! Failures are [`ErrorKind::Tls`]: a bad PEM file here; on a stream, a
//! certificate that does not verify, a wrong host name, a protocol mismatch,
//! a peer that speaks something else, or one that closes mid-handshake.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

pub use rustls;

use crate::error::{Error, ErrorKind};

/// What turns a stream into TLS, on one side or the other: Tornado's
/// `ssl_options` (a dict or an `SSLContext`). Which side is the variant.
#[derive(Clone, Debug)]
pub enum SslOptions {
    /// The server side: a certificate to present.
    Server(Arc<ServerConfig>),
    /// The client side: the roots to verify the server with.
    Client(Arc<ClientConfig>),
}

impl SslOptions {
    /// Whether this is the server side.
    pub fn is_server(&self) -> bool {
        matches!(self, SslOptions::Server(_))
    }
}

impl From<Arc<ServerConfig>> for SslOptions {
    fn from(config: Arc<ServerConfig>) -> SslOptions {
        SslOptions::Server(config)
    }
}

impl From<Arc<ClientConfig>> for SslOptions {
    fn from(config: Arc<ClientConfig>) -> SslOptions {
        SslOptions::Client(config)
    }
}

/// A server's TLS settings in either form a server setter takes: the
/// options to build ([`ServerOptions`]) or a rustls configuration built
/// already.
#[derive(Clone, Debug)]
pub enum ServerSslConfig {
    /// Files or bytes, loaded when the setter is called.
    Options(ServerOptions),
    /// A configuration of your own.
    Config(Arc<ServerConfig>),
}

impl ServerSslConfig {
    /// The rustls configuration.
    ///
    /// # Errors
    /// As [`ServerOptions::build`].
    pub fn into_config(self) -> Result<Arc<ServerConfig>, Error> {
        match self {
            ServerSslConfig::Options(options) => options.build(),
            ServerSslConfig::Config(config) => Ok(config),
        }
    }
}

impl From<ServerOptions> for ServerSslConfig {
    fn from(options: ServerOptions) -> ServerSslConfig {
        ServerSslConfig::Options(options)
    }
}

impl From<Arc<ServerConfig>> for ServerSslConfig {
    fn from(config: Arc<ServerConfig>) -> ServerSslConfig {
        ServerSslConfig::Config(config)
    }
}

/// PEM data: a file to read, or the bytes themselves (Tornado accepts a
/// path; tests and embedded keys want bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pem {
    /// A path to read when the configuration is built.
    File(PathBuf),
    /// PEM text.
    Bytes(Vec<u8>),
}

impl Pem {
    fn load(&self) -> Result<Vec<u8>, Error> {
        match self {
            Pem::Bytes(bytes) => Ok(bytes.clone()),
            Pem::File(path) => std::fs::read(path).map_err(|err| {
                Error::with_source(
                    ErrorKind::Tls,
                    format!("cannot read {}: {err}", path.display()),
                    err,
                )
            }),
        }
    }

    fn name(&self) -> String {
        match self {
            Pem::File(path) => path.display().to_string(),
            Pem::Bytes(_) => "the PEM bytes".to_string(),
        }
    }

    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, Error> {
        let bytes = self.load()?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| pem_error(self, &err))?;
        if certs.is_empty() {
            return Err(Error::new(
                ErrorKind::Tls,
                format!("no certificate in {}", self.name()),
            ));
        }
        Ok(certs)
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, Error> {
        let bytes = self.load()?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|err| pem_error(self, &err))
    }
}

fn pem_error(pem: &Pem, err: &dyn std::fmt::Display) -> Error {
    Error::new(ErrorKind::Tls, format!("bad PEM in {}: {err}", pem.name()))
}

impl From<&Path> for Pem {
    fn from(path: &Path) -> Pem {
        Pem::File(path.to_path_buf())
    }
}
impl From<PathBuf> for Pem {
    fn from(path: PathBuf) -> Pem {
        Pem::File(path)
    }
}
impl From<&[u8]> for Pem {
    fn from(bytes: &[u8]) -> Pem {
        Pem::Bytes(bytes.to_vec())
    }
}
impl From<Vec<u8>> for Pem {
    fn from(bytes: Vec<u8>) -> Pem {
        Pem::Bytes(bytes)
    }
}

/// Whether a server asks for client certificates: Python's `ssl.CERT_NONE`,
/// `CERT_OPTIONAL`, `CERT_REQUIRED` (Tornado's `cert_reqs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CertReqs {
    /// No client certificate is asked for (the default).
    #[default]
    None,
    /// One is asked for and verified if given; a client without one is served.
    Optional,
    /// A client without a certificate that verifies is refused.
    Required,
}

/// A server's TLS settings, Tornado's `ssl_options` dict: `certfile`,
/// `keyfile`, and for client certificates `ca_certs` with `cert_reqs`.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    certfile: Pem,
    keyfile: Pem,
    ca_certs: Option<Pem>,
    cert_reqs: CertReqs,
    alpn_protocols: Vec<Vec<u8>>,
}

impl ServerOptions {
    /// A certificate chain (leaf first) and its private key (PKCS#8, PKCS#1
    /// or SEC1), as paths or PEM bytes.
    pub fn new(certfile: impl Into<Pem>, keyfile: impl Into<Pem>) -> ServerOptions {
        ServerOptions {
            certfile: certfile.into(),
            keyfile: keyfile.into(),
            ca_certs: None,
            cert_reqs: CertReqs::None,
            alpn_protocols: Vec::new(),
        }
    }

    /// Client certificates: the CAs that sign them, and whether one is
    /// required.
    pub fn client_auth(mut self, ca_certs: impl Into<Pem>, cert_reqs: CertReqs) -> ServerOptions {
        self.ca_certs = Some(ca_certs.into());
        self.cert_reqs = cert_reqs;
        self
    }

    /// The ALPN protocols offered, most preferred first (`HTTPServer` offers
    /// `http/1.1` when none are set).
    pub fn alpn_protocols(mut self, protocols: &[&[u8]]) -> ServerOptions {
        self.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Reads the files and builds the rustls configuration.
    ///
    /// # Errors
    /// [`ErrorKind::Tls`] if a file cannot be read, holds no certificate or
    /// key, or the key does not match the certificate.
    pub fn build(&self) -> Result<Arc<ServerConfig>, Error> {
        let chain = self.certfile.certificates()?;
        let key = self.keyfile.private_key()?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?;
        let builder = match (&self.ca_certs, self.cert_reqs) {
            (Some(ca), reqs) if reqs != CertReqs::None => {
                let roots = Arc::new(root_store(ca)?);
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider());
                let verifier = if reqs == CertReqs::Optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build().map_err(|err| {
                    Error::new(ErrorKind::Tls, format!("client certificate roots: {err}"))
                })?)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(tls_error)?;
        config.alpn_protocols = self.alpn_protocols.clone();
        Ok(Arc::new(config))
    }
}

/// A client's TLS settings, with the HTTP client's names (Tornado's
/// `HTTPRequest` keywords): `validate_cert`, `ca_certs`, `client_cert`,
/// `client_key`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientOptions {
    validate_cert: bool,
    ca_certs: Option<Pem>,
    client_cert: Option<(Pem, Pem)>,
    alpn_protocols: Vec<Vec<u8>>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions::new()
    }
}

impl ClientOptions {
    /// Verification on, against the system's roots (Mozilla's when the
    /// system has none).
    pub fn new() -> ClientOptions {
        ClientOptions {
            validate_cert: true,
            ca_certs: None,
            client_cert: None,
            alpn_protocols: Vec::new(),
        }
    }

    /// `validate_cert=False` turns off every check of the server's
    /// certificate (chain, dates, host name). The handshake's signatures
    /// are still checked, but anyone in the path can pose as the server:
    /// for tests and private networks only.
    pub fn validate_cert(mut self, validate: bool) -> ClientOptions {
        self.validate_cert = validate;
        self
    }

    /// Trust these CAs (a PEM path or bytes) instead of the system's.
    pub fn ca_certs(mut self, ca_certs: impl Into<Pem>) -> ClientOptions {
        self.ca_certs = Some(ca_certs.into());
        self
    }

    /// Present a client certificate (chain, then key).
    pub fn client_cert(mut self, cert: impl Into<Pem>, key: impl Into<Pem>) -> ClientOptions {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// The ALPN protocols to offer.
    pub fn alpn_protocols(mut self, protocols: &[&[u8]]) -> ClientOptions {
        self.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Builds the rustls configuration. The default options (system roots,
    /// nothing else) are built once per process and shared: loading the
    /// system's roots takes milliseconds.
    ///
    /// # Errors
    /// [`ErrorKind::Tls`] if a file cannot be read or holds nothing usable.
    pub fn build(&self) -> Result<Arc<ClientConfig>, Error> {
        if *self == ClientOptions::new() {
            return default_client_config();
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?;
        let builder = if !self.validate_cert {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
        } else {
            let roots = match &self.ca_certs {
                Some(ca) => root_store(ca)?,
                None => system_roots().clone(),
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match &self.client_cert {
            Some((cert, key)) => builder
                .with_client_auth_cert(cert.certificates()?, key.private_key()?)
                .map_err(tls_error)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn_protocols.clone();
        Ok(Arc::new(config))
    }
}

/// The configuration a client uses when given none: verification against
/// the system's roots. Built once per process.
///
/// # Errors
/// Never in practice (kept fallible for a provider without safe defaults).
pub fn default_client_config() -> Result<Arc<ClientConfig>, Error> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_root_certificates(system_roots().clone())
        .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// The ring provider: squall does not depend on a process-wide default.
/// (rustls 0.23.48 marks ring's provider deprecated because it has no
/// post-quantum key exchange; ring is the provider this project builds on,
/// for its toolchain needs: no cmake, no Go.)
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system's trusted roots, or Mozilla's (webpki-roots) when the system
/// offers none (a minimal container without ca-certificates).
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            log::debug!("no system root certificates; using webpki-roots");
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    })
}

fn root_store(ca: &Pem) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in ca.certificates()? {
        roots.add(cert).map_err(|err| {
            Error::new(
                ErrorKind::Tls,
                format!("bad CA certificate in {}: {err}", ca.name()),
            )
        })?;
    }
    Ok(roots)
}

fn tls_error(err: rustls::Error) -> Error {
    Error::with_source(ErrorKind::Tls, err.to_string(), err)
}

/// `validate_cert=False`: any certificate is accepted, but the handshake's
/// signatures are still verified with it (so the peer holds its key).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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

/// A client connection for `server_hostname` (an IP literal works too).
pub(crate) fn client_connection(
    config: Arc<ClientConfig>,
    server_hostname: &str,
) -> Result<rustls::ClientConnection, Error> {
    let name = ServerName::try_from(server_hostname.to_string()).map_err(|err| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{server_hostname:?} is not a valid TLS server name: {err}"),
        )
    })?;
    rustls::ClientConnection::new(config, name).map_err(tls_error)
}

/// A server connection.
pub(crate) fn server_connection(
    config: Arc<ServerConfig>,
) -> Result<rustls::ServerConnection, Error> {
    rustls::ServerConnection::new(config).map_err(tls_error)
}
