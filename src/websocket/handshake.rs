//! RFC 6455 section 4: the opening handshake, both sides, and the random
//! bytes the protocol needs (keys and client masks).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::httputil::HTTPHeaders;

/// The GUID every server appends to the client's key (section 1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// A new `Sec-WebSocket-Key`: 16 random bytes, base64.
pub fn new_key() -> String {
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes);
    BASE64.encode(bytes)
}

/// Whether a comma-separated header (`Connection`, `Upgrade`) lists `token`.
pub fn has_token(headers: &HTTPHeaders, name: &str, token: &str) -> bool {
    headers
        .get_list(name)
        .iter()
        .any(|v| crate::httputil::has_token(v, token))
}

/// The comma-separated values of every `name` field, trimmed, empty ones
/// dropped (`Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions`).
pub fn list(headers: &HTTPHeaders, name: &str) -> Vec<String> {
    headers
        .get_list(name)
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Why an upgrade request is refused: the status, and the text of the
/// answer (Tornado's wording).
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: &'static str,
}

/// Checks a request's upgrade fields (section 4.2.1) and returns its key.
pub fn check_request(method: &str, headers: &HTTPHeaders) -> Result<String, Refusal> {
    if method != "GET" {
        return Err(Refusal {
            status: 405,
            message: "a WebSocket upgrade must be a GET",
        });
    }
    if !has_token(headers, "Upgrade", "websocket") {
        return Err(Refusal {
            status: 400,
            message: "Can \"Upgrade\" only to \"WebSocket\".",
        });
    }
    if !has_token(headers, "Connection", "upgrade") {
        return Err(Refusal {
            status: 400,
            message: "\"Connection\" must be \"Upgrade\".",
        });
    }
    if headers.get("Sec-WebSocket-Version").map(str::trim) != Some("13") {
        // 426 with `Sec-WebSocket-Version: 13`: the version we speak.
        return Err(Refusal {
            status: 426,
            message: "Upgrade Required: Sec-WebSocket-Version 13",
        });
    }
    let key = headers
        .get("Sec-WebSocket-Key")
        .map(str::trim)
        .unwrap_or("");
    match BASE64.decode(key) {
        Ok(raw) if raw.len() == 16 => Ok(key.to_string()),
        _ => Err(Refusal {
            status: 400,
            message: "Missing or invalid Sec-WebSocket-Key",
        }),
    }
}

/// Random bytes for keys and masks, from the kernel (`getrandom(2)`),
/// fetched 4 KiB at a time per thread: section 10.3 asks for masks a proxy
/// cannot predict, and a system call per frame would cost more than the
/// frame.
pub fn random_bytes(out: &mut [u8]) {
    use std::cell::RefCell;
    thread_local! {
        static POOL: RefCell<(Vec<u8>, usize)> = const { RefCell::new((Vec::new(), 0)) };
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let mut done = 0;
        while done < out.len() {
            if pool.1 == pool.0.len() {
                pool.0 = vec![0; 4096];
                fill_from_kernel(&mut pool.0);
                pool.1 = 0;
            }
            let (bytes, at) = (&pool.0, pool.1);
            let n = (out.len() - done).min(bytes.len() - at);
            out[done..done + n].copy_from_slice(&bytes[at..at + n]);
            pool.1 += n;
            done += n;
        }
    });
}

fn fill_from_kernel(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            assert!(
                err.kind() == std::io::ErrorKind::Interrupted,
                "getrandom failed: {err}"
            );
            continue;
        }
        filled += n as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn upgrade(extra: &[(&str, &str)]) -> HTTPHeaders {
        let mut h = HTTPHeaders::new();
        h.add("Upgrade", "websocket");
        h.add("Connection", "keep-alive, Upgrade");
        h.add("Sec-WebSocket-Version", "13");
        h.add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
        for (k, v) in extra {
            h.set(k, v);
        }
        h
    }

    #[test]
    fn checks_the_upgrade_fields() {
        assert_eq!(
            check_request("GET", &upgrade(&[])).as_deref(),
            Ok("dGhlIHNhbXBsZSBub25jZQ==")
        );
        let status =
            |m: &str, extra: &[(&str, &str)]| check_request(m, &upgrade(extra)).unwrap_err().status;
        assert_eq!(status("POST", &[]), 405);
        assert_eq!(status("GET", &[("Upgrade", "h2c")]), 400);
        assert_eq!(status("GET", &[("Connection", "close")]), 400);
        assert_eq!(status("GET", &[("Sec-WebSocket-Version", "8")]), 426);
        assert_eq!(status("GET", &[("Sec-WebSocket-Key", "c2hvcnQ=")]), 400);
        assert_eq!(status("GET", &[("Sec-WebSocket-Key", "!!!")]), 400);
    }

    #[test]
    fn random_bytes_differ() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        random_bytes(&mut a);
        random_bytes(&mut b);
        assert_ne!(a, b);
        let mut big = vec![0u8; 10_000];
        random_bytes(&mut big);
        assert!(big.iter().filter(|&&x| x == 0).count() < 200);
    }
}
