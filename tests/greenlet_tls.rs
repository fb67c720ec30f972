//! `greenlet::Stream` over TLS: a TorMySQL-style driver connects by host
//! name, speaks a plain first exchange, then switches to TLS (STARTTLS) in
//! straight-line code; and a handshake that never finishes is bounded by
//! the stream's timeout.
#![cfg(all(feature = "stackful", feature = "tls"))]

#[path = "common/tls.rs"]
mod tls_kit;

use squall::netutil::BindOptions;
use std::time::Duration;

use squall::greenlet::{self, Stream};
use squall::{ErrorKind, IOLoop, IOStream, TCPServer};

#[test]
fn starttls_from_straight_line_code_on_both_sides() {
    let certs = tls_kit::Certs::new("greenlet CA");
    let server_config = certs.server_config();
    let client_config = certs.client_config();
    let io_loop = IOLoop::new().unwrap();
    let reply = io_loop
        .run_sync(
            move || {
                let server = TCPServer::new(move |stream: IOStream, _| {
                    let config = server_config.clone();
                    greenlet::spawn(move || {
                        let plain = Stream::from(stream);
                        assert_eq!(plain.read_until_max_bytes(b"\n", 64)?, b"STARTTLS\n");
                        plain.write(&b"GO\n"[..])?;
                        let tls = plain.start_tls(config)?;
                        let line = tls.read_until_max_bytes(b"\n", 64)?;
                        tls.write([b"secure ".as_slice(), &line].concat())?;
                        tls.close();
                        Ok(())
                    })
                });
                server
                    .listen_with(0, BindOptions::new().address("127.0.0.1"))
                    .expect("listening");
                let port = server.local_addrs()[0].port();
                greenlet::spawn(move || {
                    let plain =
                        Stream::connect_host("localhost", port, Some(Duration::from_secs(5)))?;
                    plain.write(&b"STARTTLS\n"[..])?;
                    assert_eq!(plain.read_until_max_bytes(b"\n", 64)?, b"GO\n");
                    let tls = plain.start_tls_server_hostname(client_config, "localhost")?;
                    tls.write(&b"hello\n"[..])?;
                    let reply = tls.read_until_close()?;
                    server.stop();
                    Ok(reply)
                })
            },
            Some(Duration::from_secs(20)),
        )
        .unwrap();
    assert_eq!(reply, b"secure hello\n");
}

#[test]
fn a_stalled_handshake_fails_with_the_stream_timeout() {
    let certs = tls_kit::Certs::new("greenlet stall CA");
    let client_config = certs.client_config();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let io_loop = IOLoop::new().unwrap();
    let err = io_loop
        .run_sync(
            move || {
                greenlet::spawn(move || {
                    let plain = Stream::connect(addr, None)?;
                    plain.set_timeout(Some(Duration::from_millis(200)));
                    plain
                        .start_tls_server_hostname(client_config, "localhost")
                        .map(drop)
                })
            },
            Some(Duration::from_secs(20)),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(io_loop.handler_count(), 0);
    drop(listener);
}
