//! Tornado's keyword arguments by name (issue #25): the short form for the
//! common case (`listen(port)`, `read_bytes(n)`, `redirect(url)`) and the
//! keyword as an option struct or a named method (`BindOptions`,
//! `read_bytes_partial`, `redirect_permanent`, ...), through the public API.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

#[path = "common/web.rs"]
mod web_kit;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use squall::netutil::{self, AddressFamily, BindOptions};
use squall::web::{Application, ArgumentSource};
use squall::{ErrorKind, Future, IOLoop, IOStream, TCPServer};
use web_kit::{get, request, serve, F};

fn port_of(listeners: &[TcpListener]) -> u16 {
    listeners[0].local_addr().unwrap().port()
}

// ----- bind_sockets, listen, bind -------------------------------------------

#[test]
fn bind_sockets_short_form_listens_on_all_interfaces() {
    let listeners = netutil::bind_sockets(0).unwrap();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    assert!(addrs.iter().all(|a| a.ip().is_unspecified()), "{addrs:?}");
    assert!(addrs.iter().any(|a| a.is_ipv4()), "{addrs:?}");
    // Reachable on loopback.
    TcpStream::connect(("127.0.0.1", port_of(&listeners))).unwrap();
}

#[test]
fn bind_options_pick_address_and_family() {
    let v4 = BindOptions::new()
        .address("localhost")
        .family(AddressFamily::Inet);
    let listeners = netutil::bind_sockets_with(0, v4).unwrap();
    assert!(!listeners.is_empty());
    for l in &listeners {
        let addr = l.local_addr().unwrap();
        assert!(addr.is_ipv4() && addr.ip().is_loopback(), "{addr}");
    }

    // All interfaces, IPv4 only: Tornado's family=AF_INET with no address.
    let all_v4 = BindOptions::new().family(AddressFamily::Inet);
    let listeners = netutil::bind_sockets_with(0, all_v4).unwrap();
    assert_eq!(listeners.len(), 1);
    assert_eq!(
        listeners[0].local_addr().unwrap().ip().to_string(),
        "0.0.0.0"
    );

    // An IPv4 literal has no IPv6 address: a clear error, nothing bound.
    let none = BindOptions::new()
        .address("127.0.0.1")
        .family(AddressFamily::Inet6);
    let err = netutil::bind_sockets_with(0, none).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}

#[test]
fn bind_options_reuse_port_shares_a_port() {
    let options = BindOptions::new().address("127.0.0.1").reuse_port(true);
    let first = netutil::bind_sockets_with(0, options.clone()).unwrap();
    let port = port_of(&first);
    let second = netutil::bind_sockets_with(port, options).unwrap();
    assert_eq!(port_of(&second), port);
    // Without SO_REUSEPORT on the newcomer, the port is taken.
    let plain = BindOptions::new().address("127.0.0.1").backlog(8);
    let err = netutil::bind_sockets_with(port, plain).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(err.io_error_kind(), Some(io::ErrorKind::AddrInUse));
}

#[test]
fn bind_addrs_with_refuses_contradicting_options() {
    let addrs: Vec<SocketAddr> = vec!["127.0.0.1:0".parse().unwrap()];
    let listeners = netutil::bind_addrs(&addrs).unwrap();
    assert_eq!(listeners.len(), 1);
    let with_address = BindOptions::new().address("::1");
    let err = netutil::bind_addrs_with(&addrs, with_address).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let v6_only = BindOptions::new().family(AddressFamily::Inet6);
    let err = netutil::bind_addrs_with(&addrs, v6_only).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let listeners = netutil::bind_addrs_with(&addrs, BindOptions::new().backlog(4)).unwrap();
    assert_eq!(listeners.len(), 1);
}

/// An echo of one line, for the server tests.
fn echo_server(io_loop: &IOLoop) -> TCPServer {
    TCPServer::with_loop(io_loop, |stream: IOStream, _peer: SocketAddr| {
        let s = stream.clone();
        stream
            .read_until(b"\n")
            .add_done_callback(move |line: &Future<Vec<u8>>| {
                let line = line.take_result()?;
                drop(s.write(line));
                s.close();
                Ok(())
            });
    })
}

fn round_trip(io_loop: &IOLoop, port: u16) -> Vec<u8> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let l = io_loop.clone();
    io_loop
        .run_sync(
            move || {
                let reply = Future::new();
                let r = reply.clone();
                IOStream::connect_with(addr, None, &l).add_done_callback(
                    move |conn: &Future<IOStream>| {
                        let conn = conn.take_result()?;
                        drop(conn.write(&b"ping\n"[..]));
                        let all = conn.read_until_close();
                        all.add_done_callback(move |all: &Future<Vec<u8>>| {
                            r.complete(all.take_result())
                        });
                        Ok(())
                    },
                );
                reply
            },
            Some(Duration::from_secs(10)),
        )
        .unwrap()
}

#[test]
fn tcpserver_listen_short_form_and_with_options() {
    let io_loop = IOLoop::new().unwrap();
    let everywhere = echo_server(&io_loop);
    everywhere.listen(0).unwrap();
    let addrs = everywhere.local_addrs();
    assert!(addrs.iter().all(|a| a.ip().is_unspecified()), "{addrs:?}");
    assert_eq!(round_trip(&io_loop, addrs[0].port()), b"ping\n");

    let loopback = echo_server(&io_loop);
    loopback
        .listen_with(0, BindOptions::new().address("127.0.0.1").backlog(16))
        .unwrap();
    let addrs = loopback.local_addrs();
    assert_eq!(addrs.len(), 1);
    assert!(addrs[0].ip().is_loopback());
    assert_eq!(round_trip(&io_loop, addrs[0].port()), b"ping\n");
}

#[test]
fn tcpserver_bind_with_then_start() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let server = echo_server(&io_loop);
    server
        .bind_with(0, BindOptions::new().address("127.0.0.1").reuse_port(true))
        .unwrap();
    server.start(1).unwrap();
    let port = server.local_addrs()[0].port();
    assert_eq!(round_trip(&io_loop, port), b"ping\n");
    IOLoop::clear_current();
}

// ----- reads ----------------------------------------------------------------

fn stream_pair(io_loop: &IOLoop) -> (IOStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    (IOStream::with_loop(a, io_loop).unwrap(), b)
}

#[test]
fn read_bytes_waits_for_all_and_partial_takes_what_is_there() {
    let io_loop = IOLoop::new().unwrap();
    let (stream, mut peer) = stream_pair(&io_loop);
    peer.write_all(b"abc").unwrap();
    let s = stream.clone();
    let some = io_loop
        .run_sync(move || s.read_bytes_partial(10), None)
        .unwrap();
    assert_eq!(some, b"abc");

    // The rest comes later: read_bytes(10) waits for all ten.
    peer.write_all(b"def").unwrap();
    io_loop.call_later(Duration::from_millis(20), move || {
        peer.write_all(b"ghijklm")?;
        Ok(())
    });
    let all = io_loop
        .run_sync(move || stream.read_bytes(10), None)
        .unwrap();
    assert_eq!(all, b"defghijklm");
}

#[test]
fn read_into_and_read_into_partial() {
    let io_loop = IOLoop::new().unwrap();
    let (stream, mut peer) = stream_pair(&io_loop);
    peer.write_all(b"12").unwrap();
    let s = stream.clone();
    let (buf, n) = io_loop
        .run_sync(move || s.read_into_partial(vec![0; 8]), None)
        .unwrap();
    assert_eq!((buf.len(), n, &buf[..n]), (8, 2, &b"12"[..]));

    peer.write_all(b"3").unwrap();
    io_loop.call_later(Duration::from_millis(20), move || {
        peer.write_all(b"456")?;
        Ok(())
    });
    let (buf, n) = io_loop
        .run_sync(move || stream.read_into(vec![0; 4]), None)
        .unwrap();
    assert_eq!((n, &buf[..]), (4, &b"3456"[..]));
}

#[test]
fn read_until_max_bytes_bounds_the_read() {
    let io_loop = IOLoop::new().unwrap();
    let (stream, mut peer) = stream_pair(&io_loop);
    peer.write_all(b"short\nmuch too long a line\n").unwrap();
    let s = stream.clone();
    let line = io_loop
        .run_sync(move || s.read_until_max_bytes(b"\n", 8), None)
        .unwrap();
    assert_eq!(line, b"short\n");
    let s = stream.clone();
    let err = io_loop
        .run_sync(move || s.read_until_max_bytes(b"\n", 8), None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsatisfiableRead);
    assert!(stream.closed());

    // The short form has no bound of its own.
    let (stream, mut peer) = stream_pair(&io_loop);
    let long = [b'x'; 4096];
    peer.write_all(&long).unwrap();
    peer.write_all(b"\n").unwrap();
    let line = io_loop
        .run_sync(move || stream.read_until(b"\n"), None)
        .unwrap();
    assert_eq!(line.len(), 4097);
}

// ----- the web layer ----------------------------------------------------------

fn redirects() -> Application {
    Application::new()
        .route("/found", || F(|x| x.redirect("/there")))
        .route("/moved", || F(|x| x.redirect_permanent("/elsewhere")))
        .route("/see-other", || {
            F(|x| x.redirect_with_status("/other", 303))
        })
        .route("/args", || {
            F(|x| {
                let stripped = x.get_arguments_from("a", ArgumentSource::Query)?;
                let raw = x.get_arguments_unstripped("a", ArgumentSource::Query)?;
                let body = x.get_arguments_unstripped("a", ArgumentSource::Body)?;
                x.write(format!("{stripped:?} {raw:?} {body:?}"));
                Ok(())
            })
        })
}

#[test]
fn redirect_is_302_and_redirect_permanent_301() {
    let server = serve(redirects);
    let found = get(server.addr, "/found", &[]);
    assert_eq!(found.status, 302);
    assert_eq!(found.header("Location").as_deref(), Some("/there"));
    let moved = get(server.addr, "/moved", &[]);
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("Location").as_deref(), Some("/elsewhere"));
    let other = get(server.addr, "/see-other", &[]);
    assert_eq!(other.status, 303);
}

#[test]
fn get_arguments_strip_by_default_and_unstripped_keeps_spaces() {
    let server = serve(redirects);
    let reply = request(
        server.addr,
        "POST",
        "/args?a=%20x%20",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "a=+y+",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), r#"["x"] [" x "] [" y "]"#);
}

#[cfg(feature = "signed_cookies")]
#[test]
fn decode_signed_cookie_reads_a_value_given_by_name() {
    use squall::web::{create_signed_value, CookieSecret, DecodeOptions, Settings};
    fn app() -> Application {
        Application::with_settings(Settings {
            cookie_secret: Some("a secret of 16 chars".into()),
            ..Default::default()
        })
        .route("/decode", || {
            F(|x| {
                let value = x.get_query_argument("v")?;
                let options = DecodeOptions::default();
                let decoded = x.decode_signed_cookie("token", &value, &options)?;
                // The cookie named the same is not what is read.
                let cookie = x.get_signed_cookie_with("token", &options)?;
                x.write(format!("{decoded:?} {cookie:?}"));
                Ok(())
            })
        })
    }
    let secret = CookieSecret::from("a secret of 16 chars");
    let signed = create_signed_value(&secret, "token", "42").unwrap();
    let server = serve(app);
    let path = format!("/decode?v={}", squall::escape::url_escape(&signed, true));
    let reply = get(server.addr, &path, &[("Cookie", "token=forged")]);
    assert_eq!(reply.text(), "Some([52, 50]) None");
    // Signed under another name: refused.
    let other = create_signed_value(&secret, "other", "42").unwrap();
    let path = format!("/decode?v={}", squall::escape::url_escape(&other, true));
    assert_eq!(get(server.addr, &path, &[]).text(), "None None");
}
