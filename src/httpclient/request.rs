//! `HTTPRequest`: what to fetch and how.

use std::time::Duration;

use crate::error::{Error, ErrorKind};
use crate::httputil::{check_header, is_token, HTTPHeaders};

/// Tornado's default `connect_timeout` and `request_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Tornado's default `max_redirects`.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;

/// One request: URL, method, headers, body and per-request options;
/// Tornado's `HTTPRequest`.
///
/// Built from a URL and then adjusted with the builder methods; the fields
/// are public too. A `&str` or `String` converts into a `GET` request.
///
/// ```
/// use std::time::Duration;
/// use squall::httpclient::HTTPRequest;
///
/// let req = HTTPRequest::new("http://127.0.0.1:8888/items")
///     .method("POST")
///     .header("Content-Type", "application/json")
///     .body(r#"{"name": "squall"}"#)
///     .request_timeout(Duration::from_secs(5))
///     .follow_redirects(false);
/// assert_eq!(req.method, "POST");
/// assert_eq!(req.headers.get("content-type"), Some("application/json"));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HTTPRequest {
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// The method, upper case (`GET` by default).
    pub method: String,
    /// Fields to send. `Host`, and `Content-Length` when there is a body,
    /// are added unless present.
    pub headers: HTTPHeaders,
    /// The body (empty: none).
    pub body: Vec<u8>,
    /// How long connecting may take, name resolution included (20 s).
    pub connect_timeout: Duration,
    /// How long the whole exchange may take, connecting included (20 s);
    /// each redirect hop has its own.
    pub request_timeout: Duration,
    /// Whether 301, 302, 303, 307 and 308 answers are followed (true).
    /// On a redirect to another origin (scheme, host or port) the
    /// credentials stay behind: `Authorization`, `Cookie`,
    /// `Proxy-Authorization` and `auth_username`/`auth_password`. On the
    /// same origin every header goes on.
    pub follow_redirects: bool,
    /// How many redirects are followed at most (5). Past it, the last 3xx
    /// answer is the response (an [`HTTPError`](super::HTTPError) with
    /// `raise_error`).
    pub max_redirects: u32,
    /// User name for HTTP basic authentication (with `auth_password`);
    /// `user:password@` in the URL does the same. Dropped on a redirect to
    /// another host.
    pub auth_username: Option<String>,
    /// Password for HTTP basic authentication.
    pub auth_password: Option<String>,
    /// The `User-Agent` to send (none by default).
    pub user_agent: Option<String>,
    /// Whether a non-2xx final answer fails the fetch with an
    /// [`HTTPError`](super::HTTPError) (true), as Tornado's
    /// `fetch(raise_error=True)`. With false it is returned as a response;
    /// network and protocol errors fail the fetch either way.
    pub raise_error: bool,
    /// Whether an `https://` server's certificate is verified (true):
    /// chain, dates and host name. False accepts any certificate (tests and
    /// private networks only).
    #[cfg(feature = "tls")]
    pub validate_cert: bool,
    /// The CAs to trust for `https://` (a PEM path or bytes) instead of
    /// the system's roots.
    #[cfg(feature = "tls")]
    pub ca_certs: Option<crate::tls::Pem>,
    /// A client certificate (PEM chain) to present, with `client_key`.
    #[cfg(feature = "tls")]
    pub client_cert: Option<crate::tls::Pem>,
    /// The client certificate's private key (PEM).
    #[cfg(feature = "tls")]
    pub client_key: Option<crate::tls::Pem>,
    /// Whether a gzipped answer is decoded (true, Tornado's default):
    /// `Accept-Encoding: gzip` is sent unless the request has an
    /// `Accept-Encoding` of its own, and a `Content-Encoding: gzip` body
    /// arrives decoded, the header renamed `X-Consumed-Content-Encoding`
    /// (as Tornado's `simple_httpclient` does). The decoded body is held to
    /// [`ClientConfig::max_body_size`](super::ClientConfig::max_body_size);
    /// past it, or if the body is not valid gzip, the fetch fails with
    /// [`ErrorKind::HttpProtocol`]. Feature `gzip`.
    #[cfg(feature = "gzip")]
    pub decompress_response: bool,
}

impl HTTPRequest {
    /// A `GET` of `url` with the default options.
    pub fn new(url: impl Into<String>) -> HTTPRequest {
        HTTPRequest {
            url: url.into(),
            method: "GET".to_string(),
            headers: HTTPHeaders::new(),
            body: Vec::new(),
            connect_timeout: DEFAULT_TIMEOUT,
            request_timeout: DEFAULT_TIMEOUT,
            follow_redirects: true,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            auth_username: None,
            auth_password: None,
            user_agent: None,
            raise_error: true,
            #[cfg(feature = "tls")]
            validate_cert: true,
            #[cfg(feature = "tls")]
            ca_certs: None,
            #[cfg(feature = "tls")]
            client_cert: None,
            #[cfg(feature = "tls")]
            client_key: None,
            #[cfg(feature = "gzip")]
            decompress_response: true,
        }
    }

    /// Sets `decompress_response` (Tornado's keyword): false leaves a
    /// gzipped body as it came, and asks for none.
    ///
    /// ```
    /// use squall::httpclient::HTTPRequest;
    ///
    /// let raw = HTTPRequest::new("http://127.0.0.1:8888/").decompress_response(false);
    /// assert!(!raw.decompress_response);
    /// ```
    #[cfg(feature = "gzip")]
    pub fn decompress_response(mut self, decompress: bool) -> HTTPRequest {
        self.decompress_response = decompress;
        self
    }

    /// Tornado's older name for [`decompress_response`](Self::decompress_response).
    #[cfg(feature = "gzip")]
    pub fn use_gzip(self, gzip: bool) -> HTTPRequest {
        self.decompress_response(gzip)
    }

    /// Sets `validate_cert` (Tornado's keyword): false accepts any
    /// certificate from an `https://` server.
    #[cfg(feature = "tls")]
    pub fn validate_cert(mut self, validate: bool) -> HTTPRequest {
        self.validate_cert = validate;
        self
    }

    /// Trusts these CAs (a PEM path or bytes) for `https://`.
    #[cfg(feature = "tls")]
    pub fn ca_certs(mut self, ca_certs: impl Into<crate::tls::Pem>) -> HTTPRequest {
        self.ca_certs = Some(ca_certs.into());
        self
    }

    /// Presents a client certificate (chain and key, PEM paths or bytes).
    #[cfg(feature = "tls")]
    pub fn client_cert(
        mut self,
        cert: impl Into<crate::tls::Pem>,
        key: impl Into<crate::tls::Pem>,
    ) -> HTTPRequest {
        self.client_cert = Some(cert.into());
        self.client_key = Some(key.into());
        self
    }

    /// The TLS options these fields make.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_options(&self) -> crate::tls::ClientOptions {
        let mut options = crate::tls::ClientOptions::new().validate_cert(self.validate_cert);
        if let Some(ca) = &self.ca_certs {
            options = options.ca_certs(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            options = options.client_cert(cert.clone(), key.clone());
        }
        options
    }

    /// Sets basic-authentication credentials.
    pub fn auth(mut self, username: impl Into<String>, password: impl Into<String>) -> HTTPRequest {
        self.auth_username = Some(username.into());
        self.auth_password = Some(password.into());
        self
    }

    /// Sets the `User-Agent`.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> HTTPRequest {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Sets the method (upper-cased).
    pub fn method(mut self, method: impl Into<String>) -> HTTPRequest {
        self.method = method.into().to_ascii_uppercase();
        self
    }

    /// Adds a header field.
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> HTTPRequest {
        self.headers.add(name, value);
        self
    }

    /// Replaces the header fields.
    pub fn headers(mut self, headers: HTTPHeaders) -> HTTPRequest {
        self.headers = headers;
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> HTTPRequest {
        self.body = body.into();
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> HTTPRequest {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> HTTPRequest {
        self.request_timeout = timeout;
        self
    }

    /// Whether to follow redirects.
    pub fn follow_redirects(mut self, follow: bool) -> HTTPRequest {
        self.follow_redirects = follow;
        self
    }

    /// How many redirects to follow at most.
    pub fn max_redirects(mut self, max: u32) -> HTTPRequest {
        self.max_redirects = max;
        self
    }

    /// Whether a non-2xx answer is an error (see the field).
    pub fn raise_error(mut self, raise: bool) -> HTTPRequest {
        self.raise_error = raise;
        self
    }

    /// Whether repeating the request is harmless (RFC 9110 9.2.2): only
    /// these are retried when a kept-alive connection turns out stale.
    pub(crate) fn is_idempotent(&self) -> bool {
        matches!(
            self.method.as_str(),
            "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
        )
    }

    /// The request head and body, ready to write, for `target` on `host`;
    /// `url_credentials` are used unless the request has its own.
    pub(crate) fn encode(
        &self,
        host: &str,
        target: &str,
        url_credentials: Option<&(String, String)>,
    ) -> Result<Vec<u8>, Error> {
        // Everything that reaches the wire from user code is checked before
        // a byte is written: a CR or LF in the method, the target or a
        // header would let a caller (or whoever fills its fields) end the
        // request line or a field early and inject fields or a whole
        // second request.
        if !is_token(self.method.as_bytes()) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("bad HTTP method {:?}", self.method),
            ));
        }
        check_request_target(target)?;
        let mut out = Vec::with_capacity(128 + self.body.len());
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut field = |name: &str, value: &str| -> Result<(), Error> {
            check_header(name, value)?;
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
            Ok(())
        };
        if !self.headers.contains("Host") {
            field("Host", host)?;
        }
        for (name, value) in self.headers.iter() {
            field(name, value)?;
        }
        if let (Some(agent), false) = (&self.user_agent, self.headers.contains("User-Agent")) {
            field("User-Agent", agent)?;
        }
        #[cfg(feature = "gzip")]
        if self.decompress_response && !self.headers.contains("Accept-Encoding") {
            field("Accept-Encoding", "gzip")?;
        }
        let credentials = match (&self.auth_username, url_credentials) {
            (Some(user), _) => Some((user.as_str(), self.auth_password.as_deref().unwrap_or(""))),
            (None, Some((user, password))) => Some((user.as_str(), password.as_str())),
            (None, None) => None,
        };
        if let (Some((user, password)), false) =
            (credentials, self.headers.contains("Authorization"))
        {
            let token = base64(format!("{user}:{password}").as_bytes());
            field("Authorization", &format!("Basic {token}"))?;
        }
        let wants_body = matches!(self.method.as_str(), "POST" | "PUT" | "PATCH");
        if (wants_body || !self.body.is_empty())
            && !self.headers.contains("Content-Length")
            && !self.headers.contains("Transfer-Encoding")
        {
            field("Content-Length", &self.body.len().to_string())?;
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        Ok(out)
    }
}

/// Checks a request-target about to be written: one or more visible ASCII
/// characters or non-ASCII bytes, as Tornado's `request_target` rule
/// (RFC 9112 3.2 by way of RFC 3986, less strict about which visible
/// characters): no space, which would end it, and no CR, LF, NUL or other
/// control.
fn check_request_target(target: &str) -> Result<(), Error> {
    if !target.is_empty() && target.bytes().all(|b| b > b' ' && b != 0x7f) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("bad request target {target:?}"),
        ))
    }
}

/// Standard base64 with padding (RFC 4648), for basic authentication.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl From<&str> for HTTPRequest {
    fn from(url: &str) -> HTTPRequest {
        HTTPRequest::new(url)
    }
}

impl From<String> for HTTPRequest {
    fn from(url: String) -> HTTPRequest {
        HTTPRequest::new(url)
    }
}

impl From<&String> for HTTPRequest {
    fn from(url: &String) -> HTTPRequest {
        HTTPRequest::new(url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_head_and_body() {
        // Asking for gzip (feature `gzip`, Tornado's default) adds a field.
        let ae = if cfg!(feature = "gzip") {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        let req = HTTPRequest::new("http://h/").method("post").body("abc");
        let wire = req.encode("h:81", "/p?q", None).unwrap();
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            format!("POST /p?q HTTP/1.1\r\nHost: h:81\r\n{ae}Content-Length: 3\r\n\r\nabc")
        );
        let get = HTTPRequest::new("http://h/").header("Host", "other");
        assert_eq!(
            String::from_utf8(get.encode("h", "/", None).unwrap()).unwrap(),
            format!("GET / HTTP/1.1\r\nHost: other\r\n{ae}\r\n")
        );
        #[cfg(feature = "gzip")]
        {
            let own = HTTPRequest::new("http://h/").header("accept-encoding", "br");
            let wire = String::from_utf8(own.encode("h", "/", None).unwrap()).unwrap();
            assert_eq!(
                wire,
                "GET / HTTP/1.1\r\nHost: h\r\naccept-encoding: br\r\n\r\n"
            );
            let off = HTTPRequest::new("http://h/").decompress_response(false);
            let wire = String::from_utf8(off.encode("h", "/", None).unwrap()).unwrap();
            assert_eq!(wire, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        }
    }

    #[test]
    fn basic_auth_and_user_agent() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let req = HTTPRequest::new("http://h/")
            .auth("Aladdin", "open sesame")
            .user_agent("squall");
        let wire = String::from_utf8(req.encode("h", "/", None).unwrap()).unwrap();
        assert!(
            wire.contains("\r\nAuthorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"),
            "{wire}"
        );
        assert!(wire.contains("\r\nUser-Agent: squall\r\n"), "{wire}");
        let from_url = ("u".to_string(), "p".to_string());
        let wire = HTTPRequest::new("http://h/")
            .encode("h", "/", Some(&from_url))
            .unwrap();
        assert!(String::from_utf8(wire)
            .unwrap()
            .contains("Authorization: Basic dTpw\r\n"));
    }

    #[test]
    fn refuses_header_injection() {
        let req = HTTPRequest::new("http://h/").header("X", "a\r\nEvil: 1");
        assert_eq!(
            req.encode("h", "/", None).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        let req = HTTPRequest::new("http://h/").method("G T");
        assert!(req.encode("h", "/", None).is_err());
    }

    #[test]
    fn refuses_anything_unsafe_before_writing() {
        let bad_kind = |req: HTTPRequest, target: &str| {
            req.encode("h", target, None)
                .map(|w| String::from_utf8_lossy(&w).into_owned())
                .unwrap_err()
                .kind()
        };
        let base = || HTTPRequest::new("http://h/");
        for (name, value) in [
            ("X", "a\r\nEvil: 1"),
            ("X", "a\nb"),
            ("X", "a\rb"),
            ("X", "a\0b"),
            ("X Y", "v"),
            ("X:Y", "v"),
            ("", "v"),
            ("X\r\nEvil", "v"),
            ("Host", "h\r\n\r\nGET /smuggled HTTP/1.1"),
        ] {
            assert_eq!(
                bad_kind(base().header(name, value), "/"),
                ErrorKind::InvalidArgument,
                "{name:?}: {value:?}"
            );
        }
        for method in ["", "G T", "GET\r\n", "GET\0", "GÉT", "(GET)"] {
            let mut req = base();
            req.method = method.to_string();
            assert_eq!(bad_kind(req, "/"), ErrorKind::InvalidArgument, "{method:?}");
        }
        for target in ["", "/a b", "/a\r\nX: 1", "/\n", "/\0", "/\t", "/\x7f"] {
            assert_eq!(
                bad_kind(base(), target),
                ErrorKind::InvalidArgument,
                "{target:?}"
            );
        }
        assert_eq!(
            bad_kind(base().user_agent("ua\r\nX: 1"), "/"),
            ErrorKind::InvalidArgument
        );
        // Credentials are base64-encoded: any bytes are safe there.
        assert!(base().auth("u\r\n", "p\n").encode("h", "/", None).is_ok());
        // Non-ASCII in the target is left to the URL's encoding (Tornado
        // allows obs-text there); extension methods are tokens too.
        let mut req = base();
        req.method = "PROPFIND".to_string();
        assert!(req.encode("h", "/caf\u{e9}?q=1", None).is_ok());
        let err = base()
            .header("X-Id", "1\r\nSet-Cookie: a=b")
            .encode("h", "/", None)
            .unwrap_err();
        assert!(err.message().starts_with("Unsafe header value"), "{err}");
        assert!(err.message().contains("X-Id"), "{err}");
    }
}
