//! `AsyncHTTPClient` over `https://`: against squall's own HTTPS server,
//! nginx with TLS and Python Tornado's HTTPS server; keep-alive pooling per
//! scheme, host, port and TLS options; redirects across http and https;
//! `validate_cert`, `ca_certs`, client certificates; and the failures:
//! unknown CA, wrong host name, a server that never finishes its handshake
//! (a connect timeout).
#![cfg(feature = "tls")]

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;
#[path = "common/peers.rs"]
mod need;
#[path = "common/nginx.rs"]
mod nginx_kit;
#[path = "common/tls.rs"]
mod tls_kit;

use std::io::BufRead;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use http_kit::{python, TestServer};
use need::Peer;
use squall::httpclient::{HTTPClient, HTTPRequest, HTTPTimeoutError, TimeoutPhase};
use squall::tls::CertReqs;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, ErrorKind};
use tls_kit::Certs;

struct Hello;
impl RequestHandler for Hello {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("Hello, TLS");
        Ok(())
    }
}

struct Echo;
impl RequestHandler for Echo {
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(x.request().body());
        Ok(())
    }
}

/// Redirects to the URL in its query string.
struct Jump;
impl RequestHandler for Jump {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let to = x.request().query().to_string();
        x.redirect(&to)?;
        Ok(())
    }
}

fn app() -> Application {
    Application::new()
        .route("/", || Hello)
        .route("/echo", || Echo)
        .route("/jump", || Jump)
}

fn https_server(config: std::sync::Arc<squall::tls::rustls::ServerConfig>) -> TestServer {
    TestServer::start(app, move |s| {
        s.set_ssl_options(config).expect("ssl_options");
        s.set_max_body_size(64 << 20);
    })
}

fn https_url(s: &TestServer, path: &str) -> String {
    format!("https://localhost:{}{path}", s.addr.port())
}

#[test]
fn fetches_https_with_ca_certs_and_pools_the_connection() {
    let certs = Certs::new("client CA");
    let s = https_server(certs.server_config());
    let client = HTTPClient::new().unwrap();
    for _ in 0..3 {
        let r = client
            .fetch(HTTPRequest::new(https_url(&s, "/")).ca_certs(certs.ca.cert.as_bytes()))
            .unwrap();
        assert_eq!((r.code, r.text()), (200, "Hello, TLS".to_string()));
    }
    let stats = client.stats();
    assert_eq!((stats.connections_opened, stats.connections_reused), (1, 2));

    // Other TLS options make another pool entry: never a connection
    // verified under different rules.
    let r = client
        .fetch(HTTPRequest::new(https_url(&s, "/")).validate_cert(false))
        .unwrap();
    assert_eq!(r.code, 200);
    assert_eq!(client.stats().connections_opened, 2);

    // 20 MB up and back.
    let body: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    let r = client
        .fetch(
            HTTPRequest::new(https_url(&s, "/echo"))
                .method("POST")
                .body(body.clone())
                .ca_certs(certs.ca.cert.as_bytes()),
        )
        .unwrap();
    assert!(r.body == body, "the echoed body differs");
    client.close();
}

#[test]
fn certificate_failures_are_tls_errors() {
    let certs = Certs::new("failing CA");
    let s = https_server(certs.server_config());
    let client = HTTPClient::new().unwrap();
    // The system's roots do not know our CA.
    let err = client.fetch(https_url(&s, "/")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    // A certificate for localhost only, fetched as 127.0.0.1.
    let other = Certs::new("named CA");
    let s2 = https_server(tls_kit::server_config(&other.leaf(&["localhost"], None)));
    let err = client
        .fetch(
            HTTPRequest::new(format!("https://127.0.0.1:{}/", s2.addr.port()))
                .ca_certs(other.ca.cert.as_bytes()),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    // validate_cert=false: served.
    let r = client
        .fetch(HTTPRequest::new(https_url(&s, "/")).validate_cert(false))
        .unwrap();
    assert_eq!(r.code, 200);
}

#[test]
fn client_certificates_reach_a_server_that_requires_them() {
    let certs = Certs::new("mutual CA");
    let config =
        squall::tls::ServerOptions::new(certs.server.cert.as_bytes(), certs.server.key.as_bytes())
            .client_auth(certs.ca.cert.as_bytes(), CertReqs::Required)
            .build()
            .unwrap();
    let s = https_server(config);
    let client = HTTPClient::new().unwrap();
    let err = client
        .fetch(HTTPRequest::new(https_url(&s, "/")).ca_certs(certs.ca.cert.as_bytes()))
        .unwrap_err();
    // TLS 1.3: the client's handshake is done before the server checks
    // it; the server's alert arrives on the first read, as a TLS error,
    // unless the server's reset (our request was unread when it closed)
    // overtakes the alert: then the connection is simply gone.
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Tls | ErrorKind::StreamClosed | ErrorKind::Io
        ),
        "{err}"
    );
    let me = certs.leaf(&["client.test"], None);
    let r = client
        .fetch(
            HTTPRequest::new(https_url(&s, "/"))
                .ca_certs(certs.ca.cert.as_bytes())
                .client_cert(me.cert.as_bytes(), me.key.as_bytes()),
        )
        .unwrap();
    assert_eq!(r.text(), "Hello, TLS");
}

#[test]
fn redirects_cross_between_http_and_https() {
    let certs = Certs::new("redirect CA");
    let secure = https_server(certs.server_config());
    let plain = TestServer::start(app, |_| {});
    let client = HTTPClient::new().unwrap();
    // http -> https
    let url = format!("{}?{}", plain.url("/jump"), https_url(&secure, "/"));
    let r = client
        .fetch(HTTPRequest::new(url).ca_certs(certs.ca.cert.as_bytes()))
        .unwrap();
    assert_eq!((r.code, r.text()), (200, "Hello, TLS".to_string()));
    // https -> http
    let url = format!("{}?{}", https_url(&secure, "/jump"), plain.url("/"));
    let r = client
        .fetch(HTTPRequest::new(url).ca_certs(certs.ca.cert.as_bytes()))
        .unwrap();
    assert_eq!(r.text(), "Hello, TLS");
}

#[test]
fn a_handshake_that_never_finishes_is_a_connect_timeout() {
    // Accepts and says nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = HTTPClient::new().unwrap();
    let err = client
        .fetch(
            HTTPRequest::new(format!("https://localhost:{port}/"))
                .connect_timeout(Duration::from_millis(300)),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let phase = HTTPTimeoutError::from_error(&err).map(|t| t.phase);
    assert_eq!(phase, Some(TimeoutPhase::Connect));
    drop(listener);
}

#[test]
fn fetches_from_nginx_over_tls() {
    if !need::ready(&[Peer::Nginx]) {
        return;
    }
    let certs = Certs::new("nginx CA");
    let nginx = nginx_kit::Nginx::start(
        |dir| {
            let files = certs.write_files(&dir.join("certs"));
            let big: Vec<u8> = (0..8u32 << 20).map(|i| b'a' + (i % 26) as u8).collect();
            std::fs::create_dir_all(dir.join("www")).unwrap();
            std::fs::write(dir.join("www/big.txt"), big).unwrap();
            std::fs::write(dir.join("www/index.html"), "hello from nginx").unwrap();
            format!(
                "ssl_certificate {};\n ssl_certificate_key {};\n root {};\n keepalive_requests 1000;",
                files.cert.display(),
                files.key.display(),
                dir.join("www").display()
            )
        },
        true,
    );
    let client = HTTPClient::new().unwrap();
    let base = format!("https://localhost:{}", nginx.addr.port());
    let r = client
        .fetch(HTTPRequest::new(format!("{base}/index.html")).ca_certs(certs.ca.cert.as_bytes()))
        .unwrap();
    assert_eq!(r.text(), "hello from nginx");
    let r = client
        .fetch(HTTPRequest::new(format!("{base}/big.txt")).ca_certs(certs.ca.cert.as_bytes()))
        .unwrap();
    assert_eq!(r.body.len(), 8 << 20);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == b'a' + (i % 26) as u8));
    assert_eq!(client.stats().connections_reused, 1);
}

#[test]
fn fetches_from_a_tornado_https_server() {
    if !need::ready(&[Peer::Tornado]) {
        return;
    }
    let certs = Certs::new("tornado CA");
    let files = certs.write_files(&tls_kit::temp_dir("tornado-https"));
    let script = r#"
import sys, ssl, asyncio
import tornado.web, tornado.httpserver
class Main(tornado.web.RequestHandler):
    def get(self):
        self.write("hello from tornado over " + self.request.protocol)
async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    server = tornado.httpserver.HTTPServer(tornado.web.Application([("/", Main)]), ssl_options=ctx)
    server.listen(0, "127.0.0.1")
    port = list(server._sockets.values())[0].getsockname()[1]
    print(port, flush=True)
    await asyncio.sleep(30)
asyncio.run(main())
"#;
    let mut child = Command::new(python())
        .args([
            "-c",
            script,
            files.cert.to_str().unwrap(),
            files.key.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("tornado's port");
    let client = HTTPClient::new().unwrap();
    let result = client
        .fetch(HTTPRequest::new(format!("https://localhost:{port}/")).ca_certs(files.ca.as_path()));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(result.unwrap().text(), "hello from tornado over https");
}
