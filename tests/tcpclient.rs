//! `TCPClient` and `Resolver` through the public API: names resolved off the
//! loop, Happy Eyeballs (a silent first address costs the attempt delay, not
//! a timeout; a refused one costs nothing), the deadline, the source
//! address, TLS by host name, and every fd released on every path.

mod common;
#[cfg(feature = "tls")]
#[path = "common/tls.rs"]
mod tls_kit;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::{open_fds, silent_listener};
use squall::netutil::{AddressFamily, Resolver};
use squall::tcpclient::{ConnectOptions, TCPClient, CONNECTION_ATTEMPT_DELAY};
use squall::{ErrorKind, IOLoop, IOStream};

const LIMIT: Option<Duration> = Some(Duration::from_secs(20));

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Tests here count the process's fds: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accepts in the background (a thread), so connects complete.
fn accepting(addr: &str) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind(addr).unwrap();
    let a = listener.local_addr().unwrap();
    (listener, a)
}

#[test]
fn connects_by_name_past_a_refusing_address() {
    let _serial = serial();
    let (_listener, addr) = accepting("127.0.0.1:0");
    let io_loop = IOLoop::new().unwrap();
    // ::1 first (IPv6 first), nothing listens there on this port: refused
    // at once, and 127.0.0.1 follows without waiting for the delay.
    let resolver = Resolver::new().with_hosts_entry("both.test", &[ip("127.0.0.1"), ip("::1")]);
    let started = Instant::now();
    let stream = io_loop
        .run_sync(
            move || TCPClient::with_resolver(resolver).connect("both.test", addr.port()),
            LIMIT,
        )
        .unwrap();
    assert!(
        started.elapsed() < CONNECTION_ATTEMPT_DELAY,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stream.peer_addr(), Some(addr));
    // And the system's resolver, for "localhost".
    let stream = io_loop
        .run_sync(
            move || IOStream::connect_host("localhost", addr.port()),
            LIMIT,
        )
        .unwrap();
    assert_eq!(stream.peer_addr().map(|a| a.port()), Some(addr.port()));
}

#[test]
fn a_silent_first_address_costs_the_attempt_delay_then_is_closed() {
    let _serial = serial();
    let io_loop = IOLoop::new().unwrap();
    let silent = silent_listener(SocketAddr::from(([127, 0, 0, 2], 0)));
    let port = silent.addr.port();
    let good = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let before = open_fds();
    let resolver =
        Resolver::new().with_hosts_entry("slow.test", &[ip("127.0.0.2"), ip("127.0.0.1")]);
    let started = Instant::now();
    let stream = io_loop
        .run_sync(
            move || TCPClient::with_resolver(resolver).connect("slow.test", port),
            LIMIT,
        )
        .unwrap();
    let took = started.elapsed();
    assert!(took >= CONNECTION_ATTEMPT_DELAY, "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(
        stream.peer_addr(),
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    );
    // The losing attempt is closed: only the winner's fd is new.
    assert_eq!(open_fds(), before + 1);
    assert_eq!(io_loop.timer_stats().pending, 0);
    drop(good);
}

#[test]
fn refused_everywhere_is_the_last_error_and_timeouts_close_everything() {
    let _serial = serial();
    let io_loop = IOLoop::new().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = io_loop
        .run_sync(move || TCPClient::new().connect("127.0.0.1", port), LIMIT)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert_eq!(
        err.io_error_kind(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );

    let silent = silent_listener(SocketAddr::from(([127, 0, 0, 1], 0)));
    let before = open_fds();
    let started = Instant::now();
    let addr = silent.addr;
    let err = io_loop
        .run_sync(
            move || {
                TCPClient::new().connect_with(
                    "127.0.0.1",
                    addr.port(),
                    ConnectOptions::new().timeout(Duration::from_millis(300)),
                )
            },
            LIMIT,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(open_fds(), before);
    assert_eq!(io_loop.timer_stats().pending, 0);

    // A family the name has no address of.
    let err = io_loop
        .run_sync(
            move || {
                TCPClient::new().connect_with(
                    "127.0.0.1",
                    80,
                    ConnectOptions::new().af(AddressFamily::Inet6),
                )
            },
            LIMIT,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
}

#[test]
fn connects_from_a_source_address() {
    let _serial = serial();
    let (listener, addr) = accepting("127.0.0.1:0");
    let io_loop = IOLoop::new().unwrap();
    let stream = io_loop
        .run_sync(
            move || {
                TCPClient::new().connect_with(
                    "127.0.0.1",
                    addr.port(),
                    ConnectOptions::new().source_ip(ip("127.0.0.3")),
                )
            },
            LIMIT,
        )
        .unwrap();
    let (_conn, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), ip("127.0.0.3"));
    drop(stream);
}

#[test]
fn resolver_overrides_and_the_thread_pool() {
    let _serial = serial();
    let io_loop = IOLoop::new().unwrap();
    let resolver = Resolver::new()
        .with_override("api.example.com", "127.0.0.1")
        .with_port_override("login.example.com", 443, "localhost", 1443);
    let r = resolver.clone();
    let addrs = io_loop
        .run_sync(
            move || r.resolve("API.example.com", 80, AddressFamily::Unspec),
            LIMIT,
        )
        .unwrap();
    assert_eq!(addrs, [SocketAddr::from(([127, 0, 0, 1], 80))]);
    let addrs = io_loop
        .run_sync(
            move || resolver.resolve("login.example.com", 443, AddressFamily::Inet),
            LIMIT,
        )
        .unwrap();
    assert_eq!(addrs, [SocketAddr::from(([127, 0, 0, 1], 1443))]);
    // A real lookup goes through the pool and answers on the loop.
    let addrs = io_loop
        .run_sync(
            || Resolver::new().resolve("localhost", 8, AddressFamily::Inet),
            LIMIT,
        )
        .unwrap();
    assert!(addrs.contains(&SocketAddr::from(([127, 0, 0, 1], 8))));
}

#[cfg(feature = "tls")]
#[test]
fn tls_by_host_name_verifies_that_name() {
    let _serial = serial();
    use squall::netutil::BindOptions;
    use squall::TCPServer;
    let certs = tls_kit::Certs::new("tcpclient CA");
    let io_loop = IOLoop::new().unwrap();
    let server = TCPServer::with_loop(&io_loop, |stream: IOStream, _| {
        drop(stream.write(&b"secret\n"[..]));
    });
    server.set_ssl_options(Some(certs.server_config()));
    server
        .listen_with(0, BindOptions::new().address("127.0.0.1"))
        .unwrap();
    let port = server.local_addrs()[0].port();
    let config = certs.client_config();
    let line = io_loop
        .run_sync(
            move || {
                let connected = TCPClient::new().connect_with(
                    "localhost",
                    port,
                    ConnectOptions::new()
                        .ssl_options(config)
                        .timeout(Duration::from_secs(10)),
                );
                let out = squall::Future::new();
                let o = out.clone();
                connected.add_done_callback(move |c: &squall::Future<IOStream>| {
                    match c.take_result() {
                        Ok(stream) => squall::chain_future(&stream.read_until(b"\n"), &o),
                        Err(err) => o.set_error(err),
                    }
                });
                out
            },
            LIMIT,
        )
        .unwrap();
    assert_eq!(line, b"secret\n");
    // A name the certificate does not carry.
    let config = certs.client_config();
    let err = io_loop
        .run_sync(
            move || {
                TCPClient::with_resolver(Resolver::new().with_override("other.test", "127.0.0.1"))
                    .connect_with(
                        "other.test",
                        port,
                        ConnectOptions::new().ssl_options(config),
                    )
            },
            LIMIT,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    server.stop();
}
