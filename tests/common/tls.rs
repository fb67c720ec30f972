//! Test certificates, made at run time with rcgen: a CA, leaves it signs
//! (for `localhost` and 127.0.0.1), and PEM files for the external peers
//! (curl `--cacert`, `openssl s_client -CAfile`, Python's `ssl`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use squall::tls::rustls::{ClientConfig, ServerConfig};
use squall::tls::{ClientOptions, ServerOptions};

/// A certificate (PEM) and its key (PEM).
#[derive(Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

/// A test CA and a server certificate it signed.
pub struct Certs {
    pub ca: Pair,
    pub server: Pair,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Certs {
    /// A CA named `name` and a leaf for `localhost` and 127.0.0.1.
    pub fn new(name: &str) -> Certs {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        let ca_cert = params.self_signed(&ca_key).expect("CA cert");
        let ca = Pair {
            cert: ca_cert.pem(),
            key: ca_key.serialize_pem(),
        };
        let mut certs = Certs {
            server: ca.clone(),
            ca,
            ca_cert,
            ca_key,
        };
        certs.server = certs.leaf(&["localhost", "127.0.0.1"], None);
        certs
    }

    /// A leaf signed by this CA for `names`; `expired` dates it in the past.
    pub fn leaf(&self, names: &[&str], expired: Option<()>) -> Pair {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        if expired.is_some() {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.ca_cert, &self.ca_key)
            .expect("leaf cert");
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// The server's rustls configuration.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        server_config(&self.server)
    }

    /// A client configuration that trusts this CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        ClientOptions::new()
            .ca_certs(self.ca.cert.as_bytes())
            .build()
            .expect("client config")
    }

    /// Writes `ca.pem`, `server.pem` and `server.key` into `dir`.
    pub fn write_files(&self, dir: &Path) -> Files {
        std::fs::create_dir_all(dir).expect("cert dir");
        let files = Files {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        std::fs::write(&files.ca, &self.ca.cert).expect("write ca");
        std::fs::write(&files.cert, &self.server.cert).expect("write cert");
        std::fs::write(&files.key, &self.server.key).expect("write key");
        files
    }
}

/// Paths of the PEM files written by [`Certs::write_files`].
pub struct Files {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A server configuration for `pair`.
pub fn server_config(pair: &Pair) -> Arc<ServerConfig> {
    ServerOptions::new(pair.cert.as_bytes(), pair.key.as_bytes())
        .build()
        .expect("server config")
}

/// A fresh temporary directory (removed by the caller or left in /tmp).
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("squall-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A blocking HTTPS/1.1 exchange over rustls (no squall): sends `request`
/// (a whole request, `Connection: close` or not) on `conn` and reads one
/// response with a `Content-Length`. Returns (status line, body).
pub fn https_exchange<S: std::io::Read + std::io::Write>(
    conn: &mut S,
    request: &[u8],
) -> (String, Vec<u8>) {
    conn.write_all(request).expect("send request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).expect("read head");
        assert!(n > 0, "connection closed before the head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().expect("length"))
        })
        .expect("Content-Length");
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk).expect("read body");
        assert!(n > 0, "connection closed in the body");
        body.extend_from_slice(&chunk[..n]);
    }
    (head.lines().next().unwrap_or("").to_string(), body)
}

/// A blocking TLS client connection to `addr` for `name`.
pub fn tls_connect(
    addr: std::net::SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> squall::tls::rustls::StreamOwned<squall::tls::rustls::ClientConnection, std::net::TcpStream> {
    let tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    let name =
        squall::tls::rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
    let conn = squall::tls::rustls::ClientConnection::new(config, name).expect("client conn");
    squall::tls::rustls::StreamOwned::new(conn, tcp)
}
