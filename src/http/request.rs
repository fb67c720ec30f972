//! The request as the server parsed it; Tornado's `HTTPServerRequest`.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::httputil::{self, HTTPHeaders};

/// The HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the response unless the
    /// request asked for `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: connections are kept alive unless `Connection: close`.
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A request method: the standard ones are named without a copy, and
/// dispatch on them is an integer match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Other(String),
}

impl Method {
    /// A method read as bytes (a token, so ASCII; anything else is taken
    /// as Latin-1, never refused). No UTF-8 check for the known ones: on
    /// every request's path, it cost as much as the comparisons.
    #[inline]
    pub(crate) fn parse_bytes(b: &[u8]) -> Method {
        // Fixed-size comparisons: integer compares, no `memcmp` call.
        fn is<const N: usize>(name: &[u8], known: &[u8; N]) -> bool {
            <&[u8; N]>::try_from(name).is_ok_and(|n| n == known)
        }
        match b.len() {
            3 if is(b, b"GET") => Method::Get,
            3 if is(b, b"PUT") => Method::Put,
            4 if is(b, b"HEAD") => Method::Head,
            4 if is(b, b"POST") => Method::Post,
            5 if is(b, b"PATCH") => Method::Patch,
            6 if is(b, b"DELETE") => Method::Delete,
            7 if is(b, b"OPTIONS") => Method::Options,
            _ => Method::other(b),
        }
    }

    /// An unusual method, out of line: the known ones' comparisons then
    /// inline where they are asked for, a few instructions per request.
    #[cold]
    #[inline(never)]
    fn other(b: &[u8]) -> Method {
        Method::Other(String::from_utf8_lossy(b).into_owned())
    }

    #[inline]
    pub(crate) fn parse(name: &str) -> Method {
        Method::parse_bytes(name.as_bytes())
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other(name) => name,
        }
    }
}

/// One HTTP request: method, URI, version, headers, body, the peer, and the
/// path arguments its route captured.
///
/// The request head is copied out of the connection's read buffer once, in
/// one piece: the URI and the header fields are ranges of that copy.
#[derive(Debug)]
pub struct HTTPServerRequest {
    pub(crate) method: Method,
    /// Where the URI is in the head (`headers`' text).
    pub(crate) uri: std::ops::Range<usize>,
    /// Where the query starts in the URI (its length if there is none).
    pub(crate) query_at: usize,
    pub(crate) version: Version,
    pub(crate) headers: HTTPHeaders,
    pub(crate) body: Vec<u8>,
    pub(crate) remote: SocketAddr,
    pub(crate) path_args: Vec<(String, String)>,
    /// The client's address from `X-Real-IP` / `X-Forwarded-For`, when the
    /// server trusts them ([`HTTPServer::set_xheaders`](super::HTTPServer::set_xheaders)).
    pub(crate) real_ip: Option<std::net::IpAddr>,
    /// The connection outlives this request (from the version and the
    /// `Connection` header, worked out while parsing).
    pub(crate) keep_alive: bool,
    /// The connection speaks TLS (fixed for the connection's requests).
    pub(crate) tls: bool,
    /// The scheme a trusted proxy named (`X-Scheme` / `X-Forwarded-Proto`),
    /// with `set_xheaders(true)`: `Some(true)` for https.
    pub(crate) forwarded_https: Option<bool>,
}

impl HTTPServerRequest {
    /// `GET`, `POST`...
    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    /// The request target as sent: path and query (`/a/b?x=1`).
    pub fn uri(&self) -> &str {
        // (UTF-8 always: httparse refuses a target that is not.)
        self.headers.text(self.uri.clone()).unwrap_or("")
    }

    /// The path part of the URI (`/a/b`), still percent-encoded.
    pub fn path(&self) -> &str {
        &self.uri()[..self.query_at]
    }

    /// The query string without the `?` (empty if none).
    pub fn query(&self) -> &str {
        self.uri().get(self.query_at + 1..).unwrap_or("")
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The request headers.
    pub fn headers(&self) -> &HTTPHeaders {
        &self.headers
    }

    /// The body (decoded if it came chunked).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    /// The client's IP as text; Tornado's `remote_ip`: the peer's, or, on a
    /// server with [`set_xheaders(true)`](super::HTTPServer::set_xheaders)
    /// behind a proxy, the one the proxy names in `X-Real-IP` (else the last
    /// hop of `X-Forwarded-For`).
    pub fn remote_ip(&self) -> String {
        self.real_ip.unwrap_or(self.remote.ip()).to_string()
    }

    /// `"https"` or `"http"`: Tornado's `request.protocol`. The
    /// connection's (TLS or not), unless the server trusts a proxy's
    /// headers ([`set_xheaders(true)`](super::HTTPServer::set_xheaders)) and
    /// it sent `X-Scheme` or `X-Forwarded-Proto` (`http` or `https`).
    pub fn protocol(&self) -> &'static str {
        if self.forwarded_https.unwrap_or(self.tls) {
            "https"
        } else {
            "http"
        }
    }

    /// The `Host` header, or `""`.
    pub fn host(&self) -> &str {
        self.headers.get("Host").unwrap_or("")
    }

    /// The query arguments, decoded; Tornado's `query_arguments`.
    pub fn query_arguments(&self) -> HashMap<String, Vec<String>> {
        httputil::parse_qs_bytes(self.query())
    }

    /// The last value of query argument `name`, decoded; Tornado's
    /// `get_query_argument`.
    pub fn get_query_argument(&self, name: &str) -> Option<String> {
        httputil::parse_qsl(self.query())
            .into_iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The arguments the route captured, in order, as (name, value); values
    /// are percent-decoded.
    pub fn path_args(&self) -> &[(String, String)] {
        &self.path_args
    }

    /// The captured argument `name` (`{id}` in `/user/{id}`).
    pub fn path_arg(&self, name: &str) -> Option<&str> {
        self.path_args
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the connection may stay open after this request's response.
    /// The body parsed as JSON into `T` (Tornado's
    /// `json_decode(self.request.body)`). Feature `json`.
    ///
    /// # Errors
    /// [`ErrorKind::HttpProtocol`](crate::ErrorKind::HttpProtocol) if the body is not JSON of
    /// that shape, with serde's reason (line and column): answer 400.
    #[cfg(feature = "json")]
    pub fn body_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            crate::Error::new(
                crate::ErrorKind::HttpProtocol,
                format!("request body is not the JSON expected: {e}"),
            )
        })
    }

    /// A request with nothing in it yet, from `remote`.
    pub(crate) fn empty(remote: SocketAddr, tls: bool) -> HTTPServerRequest {
        HTTPServerRequest {
            method: Method::Get,
            uri: 0..0,
            query_at: 0,
            version: Version::Http11,
            headers: HTTPHeaders::new(),
            body: Vec::new(),
            remote,
            path_args: Vec::new(),
            real_ip: None,
            keep_alive: true,
            tls,
            forwarded_https: None,
        }
    }

    /// Readies the request for reuse by the next one on its connection;
    /// `false` if it holds more than `max` bytes of buffers (not worth
    /// keeping for an idle connection). Only what the next parse does not
    /// set anew is emptied here: the method, the target, the version and
    /// the headers (`reset_to_block`) are overwritten there anyway.
    #[inline]
    pub(crate) fn recycle(&mut self, max: usize) -> bool {
        let held = self.headers.capacity() + self.body.capacity();
        if held > max {
            return false;
        }
        self.body.clear();
        self.path_args.clear();
        self.real_ip = None;
        self.forwarded_https = None;
        true
    }
}

/// The scheme a trusted proxy sent: `X-Scheme`, else `X-Forwarded-Proto`
/// (its first entry), when it is `http` or `https` (anything else is
/// ignored, as Tornado does).
pub(crate) fn forwarded_https(headers: &HTTPHeaders) -> Option<bool> {
    let scheme = headers
        .get("X-Scheme")
        .or_else(|| headers.get("X-Forwarded-Proto"))?;
    let scheme = scheme.split(',').next().unwrap_or("").trim();
    if scheme.eq_ignore_ascii_case("https") {
        Some(true)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(false)
    } else {
        None
    }
}

/// The client's address a trusted proxy sent: a valid `X-Real-IP`, else the
/// last valid entry of `X-Forwarded-For` (Tornado's `xheaders` rule, the
/// proxy's own hop being the last one it appended).
pub(crate) fn forwarded_ip(headers: &HTTPHeaders) -> Option<std::net::IpAddr> {
    let parse = |s: &str| s.trim().parse::<std::net::IpAddr>().ok();
    headers.get("X-Real-IP").and_then(parse).or_else(|| {
        headers
            .get("X-Forwarded-For")
            .and_then(|v| v.rsplit(',').next())
            .and_then(parse)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_ip_prefers_x_real_ip_then_the_last_forwarded_hop() {
        let mut h = HTTPHeaders::new();
        assert_eq!(forwarded_ip(&h), None);
        h.set("X-Forwarded-For", "203.0.113.7, 10.0.0.2");
        assert_eq!(forwarded_ip(&h), Some("10.0.0.2".parse().unwrap()));
        h.set("X-Real-IP", " 2001:db8::1 ");
        assert_eq!(forwarded_ip(&h), Some("2001:db8::1".parse().unwrap()));
        h.set("X-Real-IP", "not an address");
        assert_eq!(forwarded_ip(&h), Some("10.0.0.2".parse().unwrap()));
        h.set("X-Forwarded-For", "garbage");
        assert_eq!(forwarded_ip(&h), None);
    }

    #[test]
    fn forwarded_scheme_from_x_scheme_then_x_forwarded_proto() {
        let mut h = HTTPHeaders::new();
        assert_eq!(forwarded_https(&h), None);
        h.set("X-Forwarded-Proto", "https, http");
        assert_eq!(forwarded_https(&h), Some(true));
        h.set("X-Scheme", "HTTP");
        assert_eq!(forwarded_https(&h), Some(false));
        h.set("X-Scheme", "gopher");
        assert_eq!(forwarded_https(&h), None);
    }
}
