//! HTTPS: `HTTPServer::set_ssl_options` as real TLS clients meet it — curl
//! (`--cacert`), `openssl s_client`, Python's `ssl` with requests, and
//! Tornado's own HTTPS client — plus a 50 MB body each way, keep-alive
//! across requests on one TLS connection, and a server that keeps serving
//! while 200 clients stall their handshakes.
#![cfg(feature = "tls")]

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;
#[path = "common/peers.rs"]
mod need;
#[path = "common/tls.rs"]
mod tls_kit;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use http_kit::{closed_within, python, run, TestServer};
use need::Peer;
use squall::web::{Application, Exchange, RequestHandler};
use squall::Error;
use tls_kit::{https_exchange, tls_connect, Certs, Files};

const LIMIT: Duration = Duration::from_secs(60);

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
        x.set_header("Content-Type", "application/octet-stream")?;
        x.write(x.request().body());
        Ok(())
    }
}

/// Says which protocol the request came over (Tornado's `request.protocol`).
struct Protocol;
impl RequestHandler for Protocol {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(x.request().protocol());
        Ok(())
    }
}

fn server(certs: &Certs) -> TestServer {
    let config = certs.server_config();
    TestServer::start(
        || {
            Application::new()
                .route("/", || Hello)
                .route("/echo", || Echo)
                .route("/protocol", || Protocol)
        },
        move |s| {
            s.set_ssl_options(config).expect("ssl_options");
            s.set_max_body_size(64 << 20);
            s.tcp_server().set_handshake_timeout(Duration::from_secs(2));
        },
    )
}

fn url(s: &TestServer, path: &str) -> String {
    format!("https://localhost:{}{path}", s.addr.port())
}

fn setup(tag: &str) -> (Certs, Files, TestServer) {
    let certs = Certs::new(&format!("squall {tag} test CA"));
    let files = certs.write_files(&tls_kit::temp_dir(tag));
    let s = server(&certs);
    (certs, files, s)
}

fn resolve_localhost(s: &TestServer) -> String {
    format!("localhost:{}:127.0.0.1", s.addr.port())
}

#[test]
fn curl_https_keep_alive_alpn_and_verification() {
    if !need::ready(&[Peer::Curl]) {
        return;
    }
    let (_certs, files, s) = setup("curl");
    let ca = files.ca.to_str().unwrap();
    let (ok, out, err) = run(
        Command::new("curl").args([
            "-sv",
            "--max-time",
            "30",
            "--cacert",
            ca,
            "--resolve",
            &resolve_localhost(&s),
            "-w",
            "|%{http_code} %{num_connects} %{http_version}\n",
            &url(&s, "/"),
            &url(&s, "/"),
        ]),
        None,
        LIMIT,
    );
    assert!(ok, "{err}");
    assert_eq!(out, "Hello, TLS|200 1 1.1\nHello, TLS|200 0 1.1\n", "{err}");
    assert!(err.contains("ALPN: server accepted http/1.1"), "{err}");
    assert!(err.contains("Re-using existing connection"), "{err}");

    // Without the CA, curl refuses the certificate (exit 60).
    let (ok, _, err) = run(
        Command::new("curl").args([
            "-sS",
            "--max-time",
            "30",
            "--resolve",
            &resolve_localhost(&s),
            &url(&s, "/"),
        ]),
        None,
        LIMIT,
    );
    assert!(!ok, "curl accepted an unknown CA");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn fifty_megabytes_each_way_through_curl() {
    if !need::ready(&[Peer::Curl]) {
        return;
    }
    let (_certs, files, s) = setup("bulk");
    let body = common_body(50 << 20);
    let dir = files.ca.parent().unwrap().to_path_buf();
    let upload = dir.join("upload.bin");
    let download = dir.join("download.bin");
    std::fs::write(&upload, &body).unwrap();
    let (ok, out, err) = run(
        Command::new("curl").args([
            "-sS",
            "--max-time",
            "50",
            "--cacert",
            files.ca.to_str().unwrap(),
            "--resolve",
            &resolve_localhost(&s),
            "--data-binary",
            &format!("@{}", upload.display()),
            "-o",
            download.to_str().unwrap(),
            "-w",
            "%{http_code} %{size_upload} %{size_download}",
            &url(&s, "/echo"),
        ]),
        None,
        LIMIT,
    );
    assert!(ok, "{err}");
    assert_eq!(out, format!("200 {0} {0}", 50 << 20), "{err}");
    let got = std::fs::read(&download).unwrap();
    assert!(got == body, "the echoed 50 MB differ");
    let _ = std::fs::remove_dir_all(dir);
}

fn common_body(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn openssl_s_client_verifies_and_talks_http() {
    if !need::ready(&[Peer::Openssl]) {
        return;
    }
    let (_certs, files, s) = setup("openssl");
    let (_ok, out, err) = run(
        Command::new("openssl").args([
            "s_client",
            "-connect",
            &s.addr.to_string(),
            "-servername",
            "localhost",
            "-verify_hostname",
            "localhost",
            "-CAfile",
            files.ca.to_str().unwrap(),
            "-verify_return_error",
            "-alpn",
            "http/1.1",
            "-ign_eof",
        ]),
        Some(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        LIMIT,
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}\n{err}");
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}\n{err}");
    assert!(out.contains("HTTP/1.1 200 OK"), "{out}\n{err}");
    assert!(out.contains("Hello, TLS"), "{out}\n{err}");
}

#[test]
fn python_ssl_requests_and_tornado_client() {
    if !need::ready(&[Peer::Requests, Peer::Tornado]) {
        return;
    }
    let (_certs, files, s) = setup("python");
    let script = r#"
import ssl, socket, sys
import requests
from tornado.httpclient import HTTPClient, HTTPClientError
base, ca = sys.argv[1], sys.argv[2]
port = int(base.rsplit(":", 1)[1])

# Python's ssl module, by hand.
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
assert data.startswith(b"HTTP/1.1 200 OK"), data
assert data.endswith(b"Hello, TLS"), data

# requests, one session: keep-alive over TLS.
with requests.Session() as session:
    for _ in range(3):
        r = session.get(base + "/", verify=ca, timeout=20)
        assert r.status_code == 200 and r.text == "Hello, TLS", r
    r = session.post(base + "/echo", data=b"x" * 100000, verify=ca, timeout=20)
    assert r.content == b"x" * 100000
    try:
        requests.get(base + "/", timeout=20)  # the system's roots: refused
        raise SystemExit("requests accepted an unknown CA")
    except requests.exceptions.SSLError:
        pass

# Tornado's own HTTPS client.
client = HTTPClient()
r = client.fetch(base + "/", ca_certs=ca, request_timeout=20)
assert r.body == b"Hello, TLS", r.body
r = client.fetch(base + "/echo", method="POST", body=b"y" * 300000, ca_certs=ca, request_timeout=20)
assert r.body == b"y" * 300000
client.close()
print("ALL OK")
"#;
    // The name must be localhost (the certificate's): resolve it here.
    let base = format!("https://localhost:{}", s.addr.port());
    let (ok, out, err) = run(
        Command::new(python()).args(["-c", script, &base, files.ca.to_str().unwrap()]),
        None,
        LIMIT,
    );
    assert!(
        ok && out.trim_end().ends_with("ALL OK"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
}

#[test]
fn stalled_handshakes_do_not_delay_other_clients_and_time_out() {
    let (certs, _files, s) = setup("stall");
    // 200 clients connect and say nothing, or half a ClientHello.
    let mut stalled: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut c = TcpStream::connect(s.addr).unwrap();
            if i % 2 == 1 {
                c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
            }
            c
        })
        .collect();
    // A normal client meanwhile: 200 requests on one TLS connection.
    let mut conn = tls_connect(s.addr, certs.client_config(), "localhost");
    let mut times = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let (status, body) =
            https_exchange(&mut conn, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        times.push(start.elapsed());
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, b"Hello, TLS");
    }
    times.sort();
    let p99 = times[times.len() * 99 / 100 - 1];
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    // The handshake timeout (2 s here) closes every stalled one; the
    // server holds no timer or handler for them afterwards.
    for c in &mut stalled {
        assert!(
            closed_within(c, Duration::from_secs(10)),
            "a stalled client was kept"
        );
    }
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (handlers, timeouts) = s.loop_stats();
        // Only the listening socket's handler remains.
        if handlers == 1 && timeouts == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left: {handlers} handlers, {timeouts} timeouts"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn request_protocol_is_https_over_tls_and_trusts_a_proxy_only_when_told() {
    let (certs, _files, s) = setup("protocol");
    let mut conn = tls_connect(s.addr, certs.client_config(), "localhost");
    let (_, body) = https_exchange(
        &mut conn,
        b"GET /protocol HTTP/1.1\r\nHost: localhost\r\nX-Scheme: http\r\n\r\n",
    );
    assert_eq!(body, b"https", "not trusted without xheaders");

    for (xheaders, expected) in [(false, "http"), (true, "https")] {
        let plain = TestServer::start(
            || Application::new().route("/protocol", || Protocol),
            move |s| s.set_xheaders(xheaders),
        );
        let reply = http_kit::raw_request(
            plain.addr,
            b"GET /protocol HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
        )
        .expect("a reply");
        assert_eq!(reply.text(), expected, "xheaders {xheaders}");
    }
}

/// 3 MiB, then the connection closes (`Connection: close`): the server
/// closes once its output is out, TLS ciphertext included.
struct Big;
impl RequestHandler for Big {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(vec![b'z'; 3 << 20]);
        Ok(())
    }
}

#[test]
fn a_large_response_before_connection_close_arrives_whole() {
    let certs = Certs::new("close CA");
    let config = certs.server_config();
    let s = TestServer::start(
        || Application::new().route("/big", || Big),
        move |s| s.set_ssl_options(config).expect("ssl_options"),
    );
    let mut conn = tls_connect(s.addr, certs.client_config(), "localhost");
    conn.write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    // Ends with the server's close_notify (a truncation would be an error).
    std::io::Read::read_to_end(&mut conn, &mut all).expect("a clean TLS end");
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(all.len() - head_end, 3 << 20);
}
