//! Hello world over HTTPS (HTTP/1.1 over TLS) with hyper 1.x and
//! tokio-rustls (rustls 0.23 on the ring provider, as squall) on a tokio
//! current_thread runtime: the peer of squall's `examples/https_server.rs`
//! in `bench/https.sh`. Same body as squall's: "Hello, world (over TLS)".
//!
//! ```text
//! cargo run --release --bin hello_hyper_tls -- CERT.pem KEY.pem 8443
//! curl --cacert CERT.pem https://localhost:8443/
//! ```
//!
//! The TLS settings are squall's `tls::ServerOptions::build`: rustls's
//! safe default versions (TLS 1.3 and 1.2), its default cipher suites and
//! key exchange groups, no client auth, ALPN `http/1.1` (as squall's
//! `HTTPServer` offers), and rustls's default session resumption (a
//! 256-entry in-memory session cache, two TLS 1.3 tickets per handshake).
//! `HELLO_TLS_NO_RESUME=1` turns resumption off (no cache, no tickets).
//! `HELLO_TLS_STATS=1` logs the handshakes (full / resumed) every 1000
//! connections on stderr.
//!
//! Per connection: one task that runs the handshake, then hyper's
//! `http1::Builder` with the settings of `hello_hyper.rs` (keep-alive,
//! `Date`, `TCP_NODELAY`, `pipeline_flush`).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::NoServerSessionStorage;
use rustls::{HandshakeKind, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, world (over TLS)",
    ))))
}

#[allow(deprecated)] // rustls 0.23.4x marks ring's provider deprecated (no PQ kx); squall uses it too
fn config(cert: &str, key: &str) -> Arc<ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("reading the certificate")
        .collect::<Result<_, _>>()
        .expect("parsing the certificate");
    let key = PrivateKeyDer::from_pem_file(key).expect("reading the key");
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if std::env::var_os("HELLO_TLS_NO_RESUME").is_some_and(|v| v != "0") {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Arc::new(config)
}

/// Handshakes so far (`HELLO_TLS_STATS`): full, resumed.
static FULL: AtomicU64 = AtomicU64::new(0);
static RESUMED: AtomicU64 = AtomicU64::new(0);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: hello_hyper_tls CERT.pem KEY.pem [PORT]";
    let (cert, key) = match (args.first(), args.get(1)) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => panic!("{usage}"),
    };
    let port: u16 = args.get(2).map_or(8443, |p| p.parse().expect(usage));
    let acceptor = TlsAcceptor::from(config(&cert, &key));
    let stats = std::env::var_os("HELLO_TLS_STATS").is_some_and(|v| v != "0");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("listening on 127.0.0.1");
        let mut http = http1::Builder::new();
        http.pipeline_flush(true);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("hello_hyper_tls: accept: {e}");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let http = http.clone();
            tokio::spawn(async move {
                // A client that resets mid-handshake: its connection ends.
                let Ok(tls) = acceptor.accept(stream).await else { return };
                if stats {
                    let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
                    (if resumed { &RESUMED } else { &FULL }).fetch_add(1, Relaxed);
                    let (f, r) = (FULL.load(Relaxed), RESUMED.load(Relaxed));
                    if (f + r) % 1000 == 0 {
                        eprintln!("handshakes: full {f} resumed {r}");
                    }
                }
                let _ = http.serve_connection(TokioIo::new(tls), service_fn(hello)).await;
            });
        }
    });
}
