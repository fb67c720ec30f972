//! The little URL handling the client needs: split an `http://` or
//! `https://` URL into scheme, host, port and request target, and resolve a
//! redirect's `Location`.

use std::fmt;

use crate::error::{Error, ErrorKind};

/// An `http://` or `https://` URL, split for sending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Url {
    /// `https://`: the connection speaks TLS.
    pub(crate) https: bool,
    /// The host as written (IPv6 without brackets), lower-cased.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path and query, never empty (`/` at least); the fragment is dropped.
    pub(crate) target: String,
    /// `user:password@` from the URL, percent-decoded.
    pub(crate) credentials: Option<(String, String)>,
}

impl Url {
    /// Parses an absolute `http://` or `https://` URL (`https://` only when
    /// the crate is built with TLS).
    pub(crate) fn parse(url: &str) -> Result<Url, Error> {
        let bad = |why: &str| Error::new(ErrorKind::InvalidArgument, format!("URL {url:?}: {why}"));
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("contains whitespace or control characters"));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("not an absolute URL (no scheme)"))?;
        let https = scheme.eq_ignore_ascii_case("https");
        if https && !cfg!(feature = "tls") {
            return Err(bad(
                "https needs squall's `tls` feature (this build has no TLS)",
            ));
        }
        if !https && !scheme.eq_ignore_ascii_case("http") {
            return Err(bad("unsupported scheme (only http and https)"));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let (credentials, authority) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let user = percent_decode(user).ok_or_else(|| bad("bad user name"))?;
                let password = percent_decode(password).ok_or_else(|| bad("bad password"))?;
                (Some((user, password)), host)
            }
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None | Some("") => default_port(https),
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
        };
        let target = if target.is_empty() {
            "/".to_string()
        } else if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_string()
        };
        Ok(Url {
            https,
            host: host.to_ascii_lowercase(),
            port,
            target,
            credentials,
        })
    }

    /// `http` or `https`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// The `Host` header's value: the port only when not the scheme's
    /// default.
    pub(crate) fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port(self.https) {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Resolves a `Location` (absolute, scheme-relative, absolute-path or
    /// relative) against this URL, as a browser would.
    pub(crate) fn join(&self, location: &str) -> String {
        let location = location.trim();
        if location.contains("://") && location.find("://") < location.find(['/', '?']) {
            return location.to_string();
        }
        if let Some(rest) = location.strip_prefix("//") {
            return format!("{}://{rest}", self.scheme());
        }
        let path_end = self.target.find('?').unwrap_or(self.target.len());
        let path = &self.target[..path_end];
        let target = if location.starts_with('/') {
            location.to_string()
        } else if location.starts_with('?') {
            format!("{path}{location}")
        } else if location.is_empty() {
            self.target.clone()
        } else {
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        format!(
            "{}://{}{}",
            self.scheme(),
            self.host_header(),
            remove_dot_segments(&target)
        )
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme(),
            self.host_header(),
            self.target
        )
    }
}

fn default_port(https: bool) -> u16 {
    if https {
        443
    } else {
        80
    }
}

/// `%XX` escapes decoded; `None` if one is broken or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 3986 5.2.4, on the path part of a target (the query is kept as is).
fn remove_dot_segments(target: &str) -> String {
    let (path, query) = match target.find('?') {
        Some(i) => target.split_at(i),
        None => (target, ""),
    };
    if !path.split('/').any(|s| s == "." || s == "..") {
        return target.to_string();
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}{query}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_targets() {
        let u = Url::parse("http://Example.COM").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("example.com", 80, "/")
        );
        let u = Url::parse("http://127.0.0.1:8080/a/b?x=1#frag").unwrap();
        assert_eq!((u.port, u.target.as_str()), (8080, "/a/b?x=1"));
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        let u = Url::parse("http://[::1]:9/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(u.host_header(), "[::1]:9");
        let u = Url::parse("HTTP://h?q").unwrap();
        assert_eq!(u.target, "/?q");
    }

    #[test]
    fn refuses_what_it_cannot_send() {
        for bad in [
            "ftp://x/",
            "example.com/path",
            "http:///path",
            "http://h:99999/",
            "http://u%zz@h/",
            "http://h/a b",
            "http://[::1/",
        ] {
            let err = Url::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn https_is_refused_without_tls() {
        let err = Url::parse("https://example.com/").unwrap_err();
        assert!(err.message().contains("tls"), "{err}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn https_has_its_own_default_port_and_keeps_its_scheme() {
        let u = Url::parse("HTTPS://Example.com/x").unwrap();
        assert!(u.https);
        assert_eq!((u.port, u.host_header().as_str()), (443, "example.com"));
        assert_eq!(u.to_string(), "https://example.com/x");
        let u = Url::parse("https://h:80/").unwrap();
        assert_eq!(u.host_header(), "h:80");
        assert_eq!(u.join("//o/y"), "https://o/y");
        assert_eq!(u.join("/z"), "https://h:80/z");
        assert_eq!(u.join("http://o/"), "http://o/");
    }

    #[test]
    fn takes_credentials_out_of_the_url() {
        let u = Url::parse("http://us%40er:p%3Ass@h:81/x").unwrap();
        assert_eq!(u.credentials, Some(("us@er".into(), "p:ss".into())));
        assert_eq!((u.host.as_str(), u.port), ("h", 81));
        assert_eq!(u.to_string(), "http://h:81/x");
        let u = Url::parse("http://user@h/").unwrap();
        assert_eq!(u.credentials, Some(("user".into(), String::new())));
    }

    #[test]
    fn joins_locations() {
        let base = Url::parse("http://h:81/a/b/c?q=1").unwrap();
        assert_eq!(base.join("http://o/x"), "http://o/x");
        assert_eq!(base.join("//o:82/y"), "http://o:82/y");
        assert_eq!(base.join("/z"), "http://h:81/z");
        assert_eq!(base.join("d"), "http://h:81/a/b/d");
        assert_eq!(base.join("../d?k"), "http://h:81/a/d?k");
        assert_eq!(base.join("?r=2"), "http://h:81/a/b/c?r=2");
        assert_eq!(base.join("./"), "http://h:81/a/b/");
    }
}
