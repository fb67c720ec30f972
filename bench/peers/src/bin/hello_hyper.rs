//! Hello world over HTTP/1.1 with hyper 1.x on a tokio current_thread
//! runtime: the peer of squall's `examples/hello_server.rs` in
//! `bench/http.sh`.
//!
//! ```text
//! cargo run --release --bin hello_hyper -- 8888
//! curl http://127.0.0.1:8888/
//! ```
//!
//! The setup of hyper's own `hello` example and benchmarks: one task per
//! connection, `http1::Builder` defaults (keep-alive, `Date` header,
//! vectored writes), `TCP_NODELAY`, plus `pipeline_flush` (one flush per
//! batch of pipelined responses, as hyper's pipeline benchmark sets it). No
//! timer, so no header-read timeout: hyper then skips it.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, world",
    ))))
}

fn main() {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().expect("usage: hello_hyper [PORT]"),
        None => 8888,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("listening on 127.0.0.1");
        let mut http = http1::Builder::new();
        // `HYPER_PIPELINE_FLUSH=0` for hyper's plain default.
        http.pipeline_flush(std::env::var_os("HYPER_PIPELINE_FLUSH").is_none_or(|v| v != "0"));
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                // EMFILE and the like: the next accept may succeed.
                Err(e) => {
                    eprintln!("hello_hyper: accept: {e}");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let conn = http.serve_connection(TokioIo::new(stream), service_fn(hello));
            tokio::spawn(async move {
                // A client that resets or sends garbage: its connection ends.
                let _ = conn.await;
            });
        }
    });
}
