//! `SSLIOStream` through the public API: STARTTLS on both sides, bulk data
//! both ways, and every bad-input case the TLS layer must turn into a typed
//! error (`ErrorKind::Tls` or `Timeout`) without a panic, a hang or a leak:
//! a wrong host name, an unknown CA, an expired certificate, a version
//! mismatch, plain text or garbage to a TLS server, a peer that closes
//! mid-handshake, a handshake that never finishes, and a peer that cuts the
//! stream without `close_notify`.
#![cfg(feature = "tls")]

mod common;
#[path = "common/tls.rs"]
mod tls_kit;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::{pseudo_random, std_tcp_pair};
use squall::iostream::IOStream;
use squall::tls::rustls::{self, ClientConfig, ServerConfig};
use squall::tls::{CertReqs, ClientOptions, ServerOptions, SslOptions};
use squall::{ErrorKind, Future, IOLoop};
use tls_kit::Certs;

const LIMIT: Option<Duration> = Some(Duration::from_secs(20));

/// Both ends of a TCP connection, upgraded: (server, client) futures.
fn upgrade(
    io_loop: &IOLoop,
    server: impl Into<SslOptions>,
    client: impl Into<SslOptions>,
    name: &str,
) -> (Future<IOStream>, Future<IOStream>) {
    let (a, b) = std_tcp_pair();
    let s = IOStream::with_loop(a, io_loop).expect("server stream");
    let c = IOStream::with_loop(b, io_loop).expect("client stream");
    (
        s.start_tls(server),
        c.start_tls_server_hostname(client, name),
    )
}

/// Waits for both handshakes; each outcome.
fn outcomes(
    io_loop: &IOLoop,
    (s, c): (Future<IOStream>, Future<IOStream>),
) -> (squall::Result<IOStream>, squall::Result<IOStream>) {
    let both = Future::new();
    let (s2, c2, b2) = (s.clone(), c.clone(), both.clone());
    let check = move || {
        if s2.done() && c2.done() && !b2.done() {
            b2.try_set_result(());
        }
    };
    let check2 = check.clone();
    s.add_done_callback(move |_: &Future<IOStream>| check());
    c.add_done_callback(move |_: &Future<IOStream>| check2());
    io_loop
        .run_sync(move || both, LIMIT)
        .expect("both sides settle");
    (s.result(), c.result())
}

/// Both ends upgraded with `certs`, for `localhost`: (server, client).
fn connected(io_loop: &IOLoop, certs: &Certs) -> (IOStream, IOStream) {
    let (server, client) = outcomes(
        io_loop,
        upgrade(
            io_loop,
            certs.server_config(),
            certs.client_config(),
            "localhost",
        ),
    );
    (
        server.expect("server handshake"),
        client.expect("client handshake"),
    )
}

fn tls_error(result: squall::Result<IOStream>) -> squall::Error {
    match result {
        Ok(_) => panic!("the handshake succeeded"),
        Err(err) => err,
    }
}

#[test]
fn start_tls_round_trip_and_bulk_both_ways() {
    let certs = Certs::new("round trip CA");
    let io_loop = IOLoop::new().unwrap();
    let (server, client) = connected(&io_loop, &certs);
    assert!(server.is_tls() && client.is_tls());
    assert_eq!(server.server_name().as_deref(), Some("localhost"));
    assert!(client.peer_certificates().is_some_and(|c| !c.is_empty()));

    // 8 MiB each way at once: reads and writes interleave through rustls.
    let up = pseudo_random(8 << 20, 1);
    let down = pseudo_random(8 << 20, 2);
    drop(client.write(up.clone()));
    drop(server.write(down.clone()));
    let (s, c) = (server.clone(), client.clone());
    let got_up = io_loop
        .run_sync(move || s.read_bytes(8 << 20), LIMIT)
        .unwrap();
    let got_down = io_loop
        .run_sync(move || c.read_bytes(8 << 20), LIMIT)
        .unwrap();
    assert!(got_up == up, "client -> server bytes differ");
    assert!(got_down == down, "server -> client bytes differ");

    // close sends close_notify: the reader's read_until_close ends cleanly.
    drop(server.write(&b"last words"[..]));
    server.close();
    let c = client.clone();
    let rest = io_loop
        .run_sync(move || c.read_until_close(), LIMIT)
        .unwrap();
    assert_eq!(rest, b"last words");
}

#[test]
fn writes_before_the_handshake_queue_behind_it() {
    let certs = Certs::new("queue CA");
    let io_loop = IOLoop::new().unwrap();
    let (a, b) = std_tcp_pair();
    let server = IOStream::with_ssl(a, certs.server_config(), &io_loop).expect("server stream");
    let client =
        IOStream::with_ssl_server_hostname(b, certs.client_config(), "localhost", &io_loop)
            .expect("client stream");
    // Written at once, long before the handshake is done.
    let payload = pseudo_random(300_000, 3);
    let written = client.write(payload.clone());
    let got = io_loop
        .run_sync(move || server.read_bytes(300_000), LIMIT)
        .unwrap();
    assert!(got == payload);
    io_loop.run_sync(move || written, LIMIT).unwrap();
    assert!(client.wait_for_handshake().done());
}

#[test]
fn wrong_host_name_is_a_tls_error_on_both_sides() {
    let certs = Certs::new("name CA");
    let io_loop = IOLoop::new().unwrap();
    let (server, client) = outcomes(
        &io_loop,
        upgrade(
            &io_loop,
            certs.server_config(),
            certs.client_config(),
            "example.com",
        ),
    );
    let err = tls_error(client);
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    // The server hears the client's alert.
    assert_eq!(tls_error(server).kind(), ErrorKind::Tls);
}

#[test]
fn unknown_ca_fails_and_validate_cert_false_accepts_it() {
    let certs = Certs::new("unknown CA");
    let io_loop = IOLoop::new().unwrap();
    // System roots (or Mozilla's): our test CA is in neither.
    let system = ClientOptions::new().build().unwrap();
    let (_, client) = outcomes(
        &io_loop,
        upgrade(&io_loop, certs.server_config(), system, "localhost"),
    );
    let err = tls_error(client);
    assert_eq!(err.kind(), ErrorKind::Tls);
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    let lax = ClientOptions::new().validate_cert(false).build().unwrap();
    let (server, client) = outcomes(
        &io_loop,
        upgrade(&io_loop, certs.server_config(), lax, "anything.invalid"),
    );
    assert!(server.is_ok() && client.is_ok());
}

#[test]
fn expired_certificate_is_refused() {
    let certs = Certs::new("expiry CA");
    let expired = certs.leaf(&["localhost"], Some(()));
    let io_loop = IOLoop::new().unwrap();
    let (_, client) = outcomes(
        &io_loop,
        upgrade(
            &io_loop,
            tls_kit::server_config(&expired),
            certs.client_config(),
            "localhost",
        ),
    );
    let err = tls_error(client);
    assert_eq!(err.kind(), ErrorKind::Tls);
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
#[allow(deprecated)] // ring's provider, as squall uses
fn protocol_version_mismatch_is_a_tls_error() {
    let certs = Certs::new("version CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server13 = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            rustls::pki_types::CertificateDer::pem_slice_iter(certs.server.cert.as_bytes())
                .map(Result::unwrap)
                .collect(),
            rustls::pki_types::PrivateKeyDer::from_pem_slice(certs.server.key.as_bytes()).unwrap(),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(certs.ca.cert.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let client12 = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let io_loop = IOLoop::new().unwrap();
    let (server, client) = outcomes(
        &io_loop,
        upgrade(
            &io_loop,
            Arc::new(server13),
            Arc::new(client12),
            "localhost",
        ),
    );
    assert_eq!(tls_error(server).kind(), ErrorKind::Tls);
    assert_eq!(tls_error(client).kind(), ErrorKind::Tls);
}

use rustls::pki_types::pem::PemObject;

/// A TLS server stream over an accepted socket, and the raw peer.
fn server_with_raw_peer(io_loop: &IOLoop, certs: &Certs) -> (IOStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let stream = IOStream::with_ssl(accepted, certs.server_config(), io_loop).unwrap();
    (stream, peer)
}

fn handshake_error(io_loop: &IOLoop, stream: &IOStream) -> squall::Error {
    let waiting = stream.wait_for_handshake();
    match io_loop.run_sync(move || waiting, LIMIT) {
        Ok(_) => panic!("the handshake succeeded"),
        Err(err) => err,
    }
}

#[test]
fn plain_http_or_garbage_to_a_tls_server_is_a_tls_error() {
    let certs = Certs::new("garbage CA");
    let io_loop = IOLoop::new().unwrap();
    for bytes in [
        &b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5][..], // a broken ClientHello
        &[0xff; 64][..],
    ] {
        let (stream, mut peer) = server_with_raw_peer(&io_loop, &certs);
        peer.write_all(bytes).unwrap();
        let err = handshake_error(&io_loop, &stream);
        assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
        assert!(stream.closed());
    }
}

#[test]
fn a_peer_that_closes_mid_handshake_is_a_tls_error() {
    let certs = Certs::new("midway CA");
    let io_loop = IOLoop::new().unwrap();
    let (stream, mut peer) = server_with_raw_peer(&io_loop, &certs);
    // The first bytes of a ClientHello record, then the end.
    peer.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    drop(peer);
    let err = handshake_error(&io_loop, &stream);
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("handshake"), "{err}");
}

#[test]
fn a_stalled_handshake_times_out() {
    let certs = Certs::new("stall CA");
    let io_loop = IOLoop::new().unwrap();
    let (stream, _peer) = server_with_raw_peer(&io_loop, &certs);
    stream.set_handshake_timeout(Duration::from_millis(200));
    let err = handshake_error(&io_loop, &stream);
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(stream.closed());
    // The timeout is gone with the stream: nothing keeps the loop busy.
    io_loop.close();
}

#[test]
fn truncation_without_close_notify_fails_read_until_close_only() {
    let certs = Certs::new("truncation CA");
    let io_loop = IOLoop::new().unwrap();
    for delimited in [true, false] {
        let (server, client) = connected(&io_loop, &certs);
        let flushed = server.write(&b"line one\npartial"[..]);
        io_loop.run_sync(move || flushed, LIMIT).unwrap();
        // Cut the TCP connection under TLS: no close_notify goes out.
        // SAFETY: shutdown(2) on the stream's own open fd.
        let rc = unsafe { libc::shutdown(server.fd(), libc::SHUT_RDWR) };
        assert_eq!(rc, 0);
        let c = client.clone();
        if delimited {
            let line = io_loop
                .run_sync(move || c.read_until(b"\n"), LIMIT)
                .unwrap();
            assert_eq!(line, b"line one\n");
        } else {
            let err = io_loop
                .run_sync(move || c.read_until_close(), LIMIT)
                .expect_err("a truncated read_until_close must fail");
            assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
            assert!(err.to_string().contains("close_notify"), "{err}");
        }
        server.close();
        client.close();
    }
}

#[test]
fn client_certificates_required_optional_and_alpn() {
    let certs = Certs::new("client auth CA");
    let client_pair = certs.leaf(&["client.test"], None);
    let required = ServerOptions::new(certs.server.cert.as_bytes(), certs.server.key.as_bytes())
        .client_auth(certs.ca.cert.as_bytes(), CertReqs::Required)
        .alpn_protocols(&[b"http/1.1"])
        .build()
        .unwrap();
    let io_loop = IOLoop::new().unwrap();

    // Without a certificate: refused.
    let (server, _client) = outcomes(
        &io_loop,
        upgrade(
            &io_loop,
            required.clone(),
            certs.client_config(),
            "localhost",
        ),
    );
    assert_eq!(tls_error(server).kind(), ErrorKind::Tls);

    // With one: served, and the server sees it; ALPN agreed.
    let with_cert = ClientOptions::new()
        .ca_certs(certs.ca.cert.as_bytes())
        .client_cert(client_pair.cert.as_bytes(), client_pair.key.as_bytes())
        .alpn_protocols(&[b"h2", b"http/1.1"])
        .build()
        .unwrap();
    let (server, client) = outcomes(
        &io_loop,
        upgrade(&io_loop, required, with_cert, "localhost"),
    );
    let (server, client) = (server.unwrap(), client.unwrap());
    assert_eq!(server.peer_certificates().map(|c| c.len()), Some(1));
    assert_eq!(
        client.selected_alpn_protocol().as_deref(),
        Some(&b"http/1.1"[..])
    );

    // Optional: a client without one is served.
    let optional = ServerOptions::new(certs.server.cert.as_bytes(), certs.server.key.as_bytes())
        .client_auth(certs.ca.cert.as_bytes(), CertReqs::Optional)
        .build()
        .unwrap();
    let (server, client) = outcomes(
        &io_loop,
        upgrade(&io_loop, optional, certs.client_config(), "localhost"),
    );
    assert!(server.unwrap().peer_certificates().is_none());
    assert!(client.is_ok());
}

#[test]
fn start_tls_refuses_a_busy_stream() {
    // (The side is the options' type: there is no wrong side to refuse.)
    let certs = Certs::new("busy CA");
    let io_loop = IOLoop::new().unwrap();
    let (a, _b) = std_tcp_pair();
    let stream = IOStream::with_loop(a, &io_loop).unwrap();
    let _pending = stream.read_bytes(1);
    let err = stream
        .start_tls(certs.server_config())
        .result()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
}

#[test]
fn bad_pem_is_a_tls_error() {
    let err = ServerOptions::new(&b"not a certificate"[..], &b"nor a key"[..])
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls);
    let err = ClientOptions::new()
        .ca_certs(std::path::Path::new("/nonexistent/ca.pem"))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls);
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[test]
fn flushed_waits_for_the_ciphertext_so_a_close_after_it_loses_nothing() {
    let certs = Certs::new("flushed CA");
    let io_loop = IOLoop::new().unwrap();
    let (server, client) = connected(&io_loop, &certs);
    // Far more than the socket buffers hold: most of it waits, some of it
    // as ciphertext inside rustls.
    let payload = pseudo_random(6 << 20, 9);
    let written = server.write(payload.clone());
    assert!(!written.done(), "6 MiB cannot all be out at once");
    let s = server.clone();
    let flushed = server.flushed();
    flushed.add_done_callback(move |_: &Future<()>| s.close());
    let c = client.clone();
    let got = io_loop
        .run_sync(move || c.read_until_close(), LIMIT)
        .unwrap();
    assert!(written.done() && flushed.done());
    assert_eq!(got.len(), payload.len());
    assert!(got == payload);
}

#[test]
fn a_write_is_done_only_when_its_ciphertext_is_out() {
    let certs = Certs::new("ciphertext CA");
    let io_loop = IOLoop::new().unwrap();
    let (a, b) = std_tcp_pair();
    // Small kernel buffers: 60 kB cannot all leave at once.
    socket2::SockRef::from(&a)
        .set_send_buffer_size(4096)
        .unwrap();
    socket2::SockRef::from(&b)
        .set_recv_buffer_size(4096)
        .unwrap();
    let s = IOStream::with_loop(a, &io_loop).unwrap();
    let c = IOStream::with_loop(b, &io_loop).unwrap();
    let (server, client) = outcomes(
        &io_loop,
        (
            s.start_tls(certs.server_config()),
            c.start_tls_server_hostname(certs.client_config(), "localhost"),
        ),
    );
    let (server, client) = (server.unwrap(), client.unwrap());
    client.set_max_buffer_size(1); // reads one chunk, then stops reading
                                   // One write rustls takes whole (under its 64 KiB): most of its
                                   // ciphertext must wait, and so must the write's future and flushed().
    let written = server.write(vec![7u8; 60_000]);
    assert!(!written.done(), "done while its ciphertext waits in rustls");
    assert!(!server.flushed().done());
    client.set_max_buffer_size(1 << 20);
    let c = client.clone();
    let got = io_loop
        .run_sync(move || c.read_bytes(60_000), LIMIT)
        .unwrap();
    assert_eq!(got.len(), 60_000);
    let w = written.clone();
    io_loop.run_sync(move || w, LIMIT).unwrap();
    assert!(server.flushed().done());
}
