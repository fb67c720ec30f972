//! Hello world over HTTP/1.1 with actix-web 4 and exactly one worker: a peer
//! of squall's `examples/hello_server.rs` in `bench/http.sh`.
//!
//! ```text
//! cargo run --release --bin hello_actix -- 8888
//! curl -i http://127.0.0.1:8888/
//! ```
//!
//! actix-web's own hello-world, with `workers(1)`: one worker thread (its own
//! single-threaded runtime) serves every connection; actix-server's acceptor
//! thread takes the connections and hands them over, and the main thread only
//! runs the `System` that waits for the server. The benchmark scripts pin the
//! whole process to one core, so all three share it. Defaults otherwise
//! (keep-alive, the `Date` header, no `Server` header). The answer carries
//! squall's `Content-Type`, so the bodies and most of the head match.

use actix_web::{web, App, HttpResponse, HttpServer};

async fn hello() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=UTF-8")
        .body("Hello, world")
}

fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().expect("usage: hello_actix [PORT]"),
        None => 8888,
    };
    actix_web::rt::System::new().block_on(
        HttpServer::new(|| App::new().route("/", web::get().to(hello)))
            .workers(1)
            .bind(("127.0.0.1", port))?
            .run(),
    )
}
