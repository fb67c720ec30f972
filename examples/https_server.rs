//! An HTTPS hello world: Tornado's
//! `HTTPServer(app, ssl_options={"certfile": ..., "keyfile": ...})`.
//!
//! Usage:
//!
//! ```text
//! https_server                       serve on 127.0.0.1:8443 with a
//!                                    self-signed certificate made at start
//!                                    (written to $TMPDIR/squall-https/)
//! https_server CERT.pem KEY.pem [PORT]
//!                                    serve with your certificate
//! https_server --self-test           serve on a free port and fetch itself
//!                                    with squall's client, verifying the
//!                                    certificate (and failing without it)
//! ```
//!
//! Try: `cargo run --release --example https_server`, then
//! `curl --cacert $TMPDIR/squall-https/cert.pem https://localhost:8443/`.
//!
//! ci-args: --self-test

use squall::netutil::BindOptions;
use std::path::{Path, PathBuf};

use squall::http::HTTPServer;
use squall::httpclient::{AsyncHTTPClient, HTTPRequest, HTTPResponse};
use squall::tls::ServerOptions;
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, ErrorKind, Future, IOLoop};

struct MainHandler;
impl RequestHandler for MainHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("Hello, world (over TLS)");
        Ok(())
    }
}

/// A self-signed certificate for localhost and 127.0.0.1, written as PEM
/// files: (certificate, key).
fn self_signed(dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| Error::new(ErrorKind::Tls, format!("making a certificate: {e}")))?;
    std::fs::create_dir_all(dir)?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem())?;
    std::fs::write(&key, made.key_pair.serialize_pem())?;
    Ok((cert, key))
}

fn main() -> Result<(), Error> {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let self_test = args.first().map(String::as_str) == Some("--self-test");
    let (cert, key, port) = match args.as_slice() {
        [cert, key, rest @ ..] if !self_test => {
            let port = rest
                .first()
                .map_or(Ok(8443), |p| p.parse())
                .map_err(|_| Error::new(ErrorKind::InvalidArgument, "PORT must be a number"))?;
            (PathBuf::from(cert), PathBuf::from(key), port)
        }
        _ => {
            let dir = std::env::temp_dir().join("squall-https");
            let (cert, key) = self_signed(&dir)?;
            (cert, key, if self_test { 0 } else { 8443 })
        }
    };

    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let server = HTTPServer::new(Application::new().route("/", || MainHandler));
    server.set_ssl_options(ServerOptions::new(cert.as_path(), key.as_path()))?;
    server.listen_with(port, BindOptions::new().address("127.0.0.1"))?;
    let port = server.local_addrs()[0].port();
    if !self_test {
        println!(
            "serving https://localhost:{port}/ (certificate {})",
            cert.display()
        );
        return io_loop.start();
    }

    // Fetch ourselves: verified against our certificate, then refused by
    // the system's roots, which do not know it.
    let url = format!("https://localhost:{port}/");
    let (body, refused) = io_loop.run_sync(
        move || {
            let client = AsyncHTTPClient::new();
            let done = Future::new();
            let d = done.clone();
            let c = client.clone();
            let u = url.clone();
            client
                .fetch(HTTPRequest::new(url.clone()).ca_certs(cert.as_path()))
                .add_done_callback(move |r: &Future<HTTPResponse>| {
                    let body = match r.take_result() {
                        Ok(r) => r.text(),
                        Err(err) => return d.set_error(err),
                    };
                    c.fetch(u)
                        .add_done_callback(move |r: &Future<HTTPResponse>| {
                            let refused = r.take_result().err().map(|e| e.kind());
                            d.set_result((body, refused))
                        });
                });
            done
        },
        Some(std::time::Duration::from_secs(30)),
    )?;
    println!("verified fetch: {body:?}; without the certificate: {refused:?}");
    assert_eq!(body, "Hello, world (over TLS)");
    assert_eq!(refused, Some(ErrorKind::Tls));
    server.stop();
    println!("self-test passed");
    Ok(())
}
