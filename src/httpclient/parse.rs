//! Reading a response head (with `httparse`) and deciding how its body is
//! framed. Pure functions: the connection code feeds them bytes.

use crate::error::{Error, ErrorKind};
use crate::httputil::{has_token, parse_content_length, HTTPHeaders};

/// Header fields `httparse` is given room for at first; a head with more is
/// parsed again with room for [`MAX_HEADERS`].
const FEW_HEADERS: usize = 32;
/// The most header fields a response may have (its size is bounded
/// separately, by `max_header_size`).
const MAX_HEADERS: usize = 512;

/// A parsed status line and header block.
#[derive(Debug)]
pub(crate) struct Head {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) version: u8,
    pub(crate) code: u16,
    pub(crate) reason: String,
    pub(crate) headers: HTTPHeaders,
}

/// How the body after a head ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes.
    Close,
}

pub(crate) fn protocol_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::HttpProtocol, message)
}

/// Parses a complete head (status line to the blank line included).
pub(crate) fn parse_head(buf: &[u8]) -> Result<Head, Error> {
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    let mut response = httparse::Response::new(&mut few);
    match response.parse(buf) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut many = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut many);
            let status = response.parse(buf);
            head_from(status, &response)
        }
        status => head_from(status, &response),
    }
}

fn head_from(
    status: httparse::Result<usize>,
    response: &httparse::Response<'_, '_>,
) -> Result<Head, Error> {
    match status {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(protocol_error("malformed response head: incomplete"))
        }
        Err(err) => return Err(protocol_error(format!("malformed response head: {err}"))),
    }
    let mut headers = HTTPHeaders::new();
    for h in response.headers.iter() {
        // Header values are octets; like Tornado, read them as Latin-1.
        headers.add(
            h.name,
            h.value.iter().map(|&b| b as char).collect::<String>(),
        );
    }
    Ok(Head {
        version: response.version.unwrap_or(1),
        code: response.code.unwrap_or(0),
        reason: response.reason.unwrap_or("").to_string(),
        headers,
    })
}

/// How the body of `head`, answering a `method` request, is framed
/// (RFC 9112 6.3), strictly, as Tornado 6's `_read_body`: framing two
/// parties could read differently is an error, not a guess.
///
/// - `HEAD` and 304 (and 1xx, handled before): no body, whatever the
///   fields say (Tornado skips the body without looking at them).
/// - `Transfer-Encoding`: one field, exactly `chunked` (any case), and no
///   `Content-Length` with it (RFC 9112 6.3 lets a server send both; it is
///   the classic smuggling vector, and Tornado refuses it). Other codings,
///   lists (`gzip, chunked`, `chunked, chunked`) and repeated fields are
///   refused, as Tornado does.
/// - `Content-Length`: every field joined into one list, parsed by
///   [`parse_content_length`] (`1*DIGIT`, equal elements only).
/// - 204: a `Content-Length` other than 0, or chunked, is an error (Tornado).
pub(crate) fn framing(head: &Head, method: &str) -> Result<Framing, Error> {
    if method == "HEAD" || (100..200).contains(&head.code) || head.code == 304 {
        return Ok(Framing::Empty);
    }
    let codings = head.headers.get_list("Transfer-Encoding");
    let lengths = head.headers.get_list("Content-Length");
    let chunked = match codings.as_slice() {
        [] => false,
        _ if !lengths.is_empty() => {
            return Err(protocol_error(
                "response with both Transfer-Encoding and Content-Length",
            ))
        }
        [only]
            if only
                .trim_matches([' ', '\t'])
                .eq_ignore_ascii_case("chunked") =>
        {
            true
        }
        _ => {
            return Err(protocol_error(format!(
                "unsupported Transfer-Encoding {:?}",
                codings.join(", ")
            )))
        }
    };
    let length = match lengths.as_slice() {
        [] => None,
        [one] => Some(parse_content_length(one)?),
        // Tornado's `headers["Content-Length"]`: the fields joined by ",".
        many => Some(parse_content_length(&many.join(","))?),
    };
    if head.code == 204 {
        if chunked || length.is_some_and(|n| n != 0) {
            return Err(protocol_error(
                "response with code 204 should not have a body",
            ));
        }
        return Ok(Framing::Empty);
    }
    Ok(match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::Close,
    })
}

/// Whether the connection may carry another request after this answer.
pub(crate) fn keep_alive(head: &Head, framing: Framing) -> bool {
    if framing == Framing::Close {
        return false;
    }
    let connection = head.headers.get_list("Connection");
    let says = |t: &str| connection.iter().any(|v| has_token(v, t));
    if head.version == 0 {
        says("keep-alive")
    } else {
        !says("close")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        parse_head(raw.as_bytes()).unwrap()
    }

    #[test]
    fn parses_status_and_headers() {
        let h = parse_head(b"HTTP/1.0 404 Not Found\r\nX-A: 1\r\nx-a: \xe9\r\n\r\n").unwrap();
        assert_eq!(
            (h.version, h.code, h.reason.as_str()),
            (0, 404, "Not Found")
        );
        assert_eq!(h.headers.get_list("X-A"), ["1", "\u{e9}"]);
    }

    #[test]
    fn many_headers_are_fine_and_garbage_is_an_error() {
        let mut raw = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..100 {
            raw.push_str(&format!("X-{i}: {i}\r\n"));
        }
        raw.push_str("\r\n");
        assert_eq!(head(&raw).headers.len(), 100);
        for bad in [
            "garbage\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        ] {
            let err = parse_head(bad.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::HttpProtocol, "{bad:?}");
        }
    }

    #[test]
    fn decides_framing() {
        let f = |raw: &str, m: &str| framing(&head(raw), m);
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET").unwrap(),
            Framing::Length(5)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD").unwrap(),
            Framing::Empty
        );
        assert_eq!(
            f("HTTP/1.1 204 No Content\r\n\r\n", "GET").unwrap(),
            Framing::Empty
        );
        assert_eq!(
            f(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                "GET"
            )
            .unwrap(),
            Framing::Empty
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n",
                "GET"
            )
            .unwrap(),
            Framing::Chunked
        );
        assert_eq!(f("HTTP/1.0 200 OK\r\n\r\n", "GET").unwrap(), Framing::Close);
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", "GET").unwrap(),
            Framing::Length(5)
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                "GET"
            )
            .unwrap(),
            Framing::Length(5)
        );
        assert_eq!(
            f(
                "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
                "GET"
            )
            .unwrap(),
            Framing::Empty
        );
        // HEAD and 304 answers have no body: their fields are not framing.
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                "HEAD"
            )
            .unwrap(),
            Framing::Empty
        );
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +10\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(
                f(bad, "GET").unwrap_err().kind(),
                ErrorKind::HttpProtocol,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn decides_keep_alive() {
        let k = |raw: &str| {
            let h = head(raw);
            let fr = framing(&h, "GET").unwrap();
            keep_alive(&h, fr)
        };
        assert!(k("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!k(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!k("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(k(
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!k("HTTP/1.1 200 OK\r\n\r\n"));
    }
}
