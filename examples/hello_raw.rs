//! Hello, world on the HTTP protocol layer alone: a closure of the request
//! answers, with no `web::Application` (Tornado's `HTTPServer(callable)`).
//! The benchmark row "squall, raw delegate" runs this.
//!
//! ```text
//! hello_raw               serve on 127.0.0.1:8888
//! hello_raw PORT          serve on 127.0.0.1:PORT
//! hello_raw --self-test   serve on a free port, fetch `/` with a plain std
//!                         client, check the answer, exit 0
//! ```
//!
//! ci-args: --self-test

use squall::netutil::BindOptions;
use std::io::{Read, Write};
use std::time::Duration;

use squall::http::{HTTPConnection, HTTPServer, HTTPServerRequest};
use squall::httputil::HTTPHeaders;
use squall::{Error, IOLoop};

fn main() -> Result<(), Error> {
    env_logger::init();
    let arg = std::env::args().nth(1);
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    // The same blocking log as hello_server, so the two rows compare alike.
    io_loop.set_blocking_log_threshold(Some(Duration::from_millis(500)));
    // One empty header set for every response: nothing allocated per request.
    let none = std::rc::Rc::new(HTTPHeaders::new());
    let server = HTTPServer::new(move |_req: &HTTPServerRequest, conn: &HTTPConnection| {
        conn.write_response(200, &none, b"Hello, world")
    });
    if arg.as_deref() == Some("--self-test") {
        server.listen_with(0, BindOptions::new().address("127.0.0.1"))?;
        let addr = server.local_addrs()[0];
        let remote = io_loop.remote();
        let client = std::thread::spawn(move || {
            let answer = (|| -> std::io::Result<String> {
                let mut s = std::net::TcpStream::connect(addr)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out)
            })();
            let _ = remote.stop();
            answer
        });
        io_loop.start()?;
        let answer = client
            .join()
            .map_err(|_| Error::other("client panicked"))?
            .map_err(Error::from)?;
        if answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\nHello, world") {
            println!("self-test ok");
            return Ok(());
        }
        return Err(Error::other(format!("self-test failed: {answer:?}")));
    }
    let port = arg.and_then(|p| p.parse().ok()).unwrap_or(8888);
    server.listen_with(port, BindOptions::new().address("127.0.0.1"))?;
    println!("hello_raw on http://127.0.0.1:{port}/");
    io_loop.start()
}
