//! Half-close: a client that shuts its write side down still gets the
//! whole 4 MiB response.

use super::*;

/// Checks a raw HTTP/1.1 response to `GET /big`: 200, `Content-Length`, and
/// the whole body, byte for byte.
fn check_big_response(raw: &[u8], who: &str) {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{who}: no head in {} bytes", raw.len()))
        + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{who}: {head}");
    assert!(
        head.contains(&format!("Content-Length: {BIG}\r\n")),
        "{who}: {head}"
    );
    let body = &raw[head_end..];
    assert_eq!(body.len(), BIG, "{who}: the body arrived short or long");
    let expected = big_body();
    if let Some(at) = body.iter().zip(&expected).position(|(a, b)| a != b) {
        panic!("{who}: the body differs at byte {at}");
    }
}

/// Whether `nc` knows `-N` (shut the socket down for writing at EOF on
/// stdin): OpenBSD's does; the traditional one does not.
fn nc_has_shutdown_flag() -> bool {
    Command::new("nc").arg("-h").output().is_ok_and(|o| {
        let text = [o.stdout, o.stderr].concat();
        String::from_utf8_lossy(&text).contains("-N")
    })
}

const HALF_CLOSE_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    piece = s.recv(1 << 16)
    if not piece:
        break
    got += piece
sys.stdout.buffer.write(got)
"#;

/// The client sends its request and shuts its side down for writing at
/// once (`nc -N`): the server must still send the whole 4 MiB answer, then
/// close.
#[test]
fn half_closed_client_gets_the_whole_4mib_response() {
    if !need::ready(&[Peer::Python]) {
        return;
    }
    let s = server();
    let (host, port) = (s.addr.ip().to_string(), s.addr.port().to_string());
    if nc_has_shutdown_flag() {
        let (ok, out, err) = run(
            Command::new("nc").args(["-N", "-w", "20", &host, &port]),
            Some(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n"),
            LIMIT,
        );
        assert!(ok, "nc: {err}");
        check_big_response(out.as_bytes(), "nc -N");
    } else {
        eprintln!("nc -N not available: the Python socket client only");
    }
    let (ok, out, err) = run(
        Command::new(python()).args(["-c", HALF_CLOSE_CLIENT, &host, &port]),
        None,
        LIMIT,
    );
    assert!(ok, "python: {err}");
    check_big_response(out.as_bytes(), "python shutdown(SHUT_WR)");
    // The server is fine afterwards.
    assert_eq!(
        raw_request(s.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .text(),
        "Hello, world"
    );
}
