//! Named routes and `reverse_url`, host-based routing (Tornado's
//! `add_handlers(host_pattern, handlers)` and `default_host`), and the two
//! ready-made handlers `RedirectHandler` and `ErrorHandler`.
//!
//! ```
//! use squall::web::{Application, ErrorHandler, RedirectHandler, Routes};
//!
//! let app = Application::new()
//!     .route("/user/{id}", || ErrorHandler::new(404))
//!     .name("user")
//!     .route("/old/{id}", || RedirectHandler::new("/user/{id}"))
//!     .add_handlers(
//!         "*.example.com",
//!         Routes::new().route("/gone", || ErrorHandler::new(410)),
//!     );
//! assert_eq!(app.reverse_url("user", &[&"a b"]).unwrap(), "/user/a%20b");
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::route::{Pattern, Segment};
use super::{Exchange, HTTPError, RequestHandler, Route};
use crate::error::{Error, ErrorKind};
use crate::httputil::{parse_qsl, url_escape};

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, message)
}

// ----- routes for one host ---------------------------------------------------

/// A list of routes to give to
/// [`Application::add_handlers`](super::Application::add_handlers): the
/// `handlers` of Tornado's `add_handlers(host_pattern, handlers)`. Built
/// with the same methods as an [`Application`](super::Application)'s.
#[derive(Default)]
pub struct Routes {
    pub(super) routes: Vec<Route>,
    /// (name, index in `routes`).
    pub(super) names: Vec<(String, usize)>,
}

impl Routes {
    /// No routes.
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Adds a route, as [`Application::route`](super::Application::route).
    ///
    /// # Panics
    /// On a malformed pattern, as `Application::route`.
    pub fn route<H, F>(mut self, pattern: &str, factory: F) -> Routes
    where
        H: RequestHandler,
        F: Fn() -> H + 'static,
    {
        let pattern = Pattern::parse(pattern).unwrap_or_else(|e| panic!("{e}"));
        self.routes.push(Route::new::<H, F>(pattern, factory));
        self
    }

    /// Adds a regular-expression route, as
    /// [`Application::route_regex`](super::Application::route_regex).
    ///
    /// # Panics
    /// On an invalid regular expression.
    #[cfg(feature = "regex")]
    pub fn route_regex<H, F>(mut self, pattern: &str, factory: F) -> Routes
    where
        H: RequestHandler,
        F: Fn() -> H + 'static,
    {
        let pattern = Pattern::regex(pattern).unwrap_or_else(|e| panic!("{e}"));
        self.routes.push(Route::new::<H, F>(pattern, factory));
        self
    }

    /// Names the route added last, for `reverse_url`, as
    /// [`Application::name`](super::Application::name).
    ///
    /// # Panics
    /// If no route was added yet.
    pub fn name(mut self, name: &str) -> Routes {
        assert!(!self.routes.is_empty(), "name({name:?}) before any route");
        self.names.push((name.to_owned(), self.routes.len() - 1));
        self
    }
}

// ----- host patterns ---------------------------------------------------------

/// Which hosts a group of routes answers (Tornado's `HostMatches`).
pub(super) enum HostPattern {
    /// Every host: `*`, `.*` or `.*$`.
    Any,
    /// One host, lower-case (`www.example.com`, or Tornado's escaped
    /// `www\.example\.com`).
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (lower-case,
    /// with the dot), the bare domain excluded.
    Suffix(String),
    /// A regular expression matched against the whole host name (feature
    /// `regex`), as Tornado's.
    #[cfg(feature = "regex")]
    Regex(regex::Regex),
}

impl HostPattern {
    /// Tornado's host patterns are regular expressions; the usual ones — a
    /// plain host name (its dots taken literally), one with escaped dots,
    /// `.*` — are matched without one, as are `*.example.com` wildcards.
    /// Anything else needs the `regex` feature.
    pub(super) fn parse(pattern: &str) -> Result<HostPattern, Error> {
        let bare = pattern.strip_prefix('^').unwrap_or(pattern);
        let bare = bare.strip_suffix('$').unwrap_or(bare);
        if matches!(bare, "*" | ".*") {
            return Ok(HostPattern::Any);
        }
        let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        if let Some(domain) = bare.strip_prefix("*.") {
            if !domain.is_empty() && domain.chars().all(host_char) {
                return Ok(HostPattern::Suffix(format!(
                    ".{}",
                    domain.to_ascii_lowercase()
                )));
            }
        }
        let unescaped = bare.replace("\\.", ".");
        if !unescaped.is_empty() && unescaped.chars().all(host_char) {
            return Ok(HostPattern::Exact(unescaped.to_ascii_lowercase()));
        }
        HostPattern::regex(pattern)
    }

    #[cfg(feature = "regex")]
    fn regex(pattern: &str) -> Result<HostPattern, Error> {
        // Tornado: `$` appended unless there; `re.match` anchors the start.
        let anchored = if pattern.ends_with('$') {
            format!("^(?:{pattern})")
        } else {
            format!("^(?:{pattern})$")
        };
        regex::Regex::new(&anchored)
            .map(HostPattern::Regex)
            .map_err(|e| invalid(format!("host pattern {pattern:?}: {e}")))
    }

    #[cfg(not(feature = "regex"))]
    fn regex(pattern: &str) -> Result<HostPattern, Error> {
        Err(invalid(format!(
            "host pattern {pattern:?}: a regular expression needs the `regex` feature \
             (without it: a host name, `*.example.com`, or `*`)"
        )))
    }

    /// Whether `host` (a host name without its port) matches; letter case
    /// is ignored.
    pub(super) fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(name) => name.eq_ignore_ascii_case(host),
            HostPattern::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
            #[cfg(feature = "regex")]
            HostPattern::Regex(regex) => regex.is_match(&host.to_ascii_lowercase()),
        }
    }
}

/// The host name of a `Host` header: without its port (Tornado's
/// `split_host_and_port`, `host_name`); `[::1]:8080` gives `[::1]`.
pub(super) fn host_name(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => host,
    }
}

/// Routes for the hosts a pattern matches.
pub(super) struct HostRoutes {
    pub(super) pattern: HostPattern,
    /// Where its routes are in the application's `extra` routes.
    pub(super) routes: std::ops::Range<usize>,
}

// ----- reverse_url -----------------------------------------------------------

/// A piece of a reversible route.
#[derive(Debug)]
enum Piece {
    Literal(String),
    /// An argument, escaped whole (`/` too, as Tornado's `url_escape`).
    Arg,
    /// A `{name*}` argument: escaped, but its slashes kept.
    Rest,
}

/// How to rebuild a route's path from arguments (Tornado's
/// `URLSpec._path`), or why it cannot be.
#[derive(Debug)]
pub(super) struct Reverse(Result<Vec<Piece>, String>);

impl Reverse {
    pub(super) fn of(pattern: &Pattern) -> Reverse {
        Reverse(match pattern {
            Pattern::Exact(path) => Ok(vec![Piece::Literal(path.clone())]),
            Pattern::Segments(segments) => {
                let mut pieces = Vec::with_capacity(2 * segments.len());
                for segment in segments {
                    pieces.push(Piece::Literal("/".to_owned()));
                    pieces.push(match segment {
                        Segment::Literal(text) => Piece::Literal(text.clone()),
                        Segment::Capture(_) => Piece::Arg,
                        Segment::Rest(_) => Piece::Rest,
                    });
                }
                Ok(pieces)
            }
            #[cfg(feature = "regex")]
            Pattern::Regex(regex, names) => regex_pieces(regex.as_str(), names.len()),
        })
    }

    fn args(&self) -> usize {
        match &self.0 {
            Ok(pieces) => pieces
                .iter()
                .filter(|p| !matches!(p, Piece::Literal(_)))
                .count(),
            Err(_) => 0,
        }
    }

    fn build(&self, name: &str, args: &[&dyn fmt::Display]) -> Result<String, Error> {
        let pieces = self
            .0
            .as_ref()
            .map_err(|why| invalid(format!("reverse_url({name:?}): cannot reverse {why}")))?;
        if args.len() != self.args() {
            return Err(invalid(format!(
                "reverse_url({name:?}): {} arguments given, the route takes {}",
                args.len(),
                self.args()
            )));
        }
        let mut args = args.iter();
        let mut url = String::new();
        for piece in pieces {
            match piece {
                Piece::Literal(text) => url.push_str(text),
                Piece::Arg => {
                    let arg = args.next().map(ToString::to_string).unwrap_or_default();
                    url.push_str(&url_escape(&arg, false));
                }
                Piece::Rest => {
                    let arg = args.next().map(ToString::to_string).unwrap_or_default();
                    let parts: Vec<String> = arg.split('/').map(|p| url_escape(p, false)).collect();
                    url.push_str(&parts.join("/"));
                }
            }
        }
        Ok(url)
    }
}

/// Tornado's `URLSpec._find_groups`: a regular expression is reversible if
/// each `(` opens a capture group and what lies outside the groups is
/// literal text (`\.` and the like unescaped).
#[cfg(feature = "regex")]
fn regex_pieces(anchored: &str, groups: usize) -> Result<Vec<Piece>, String> {
    // `Pattern::regex` wrapped it as `^(?:...)$` or `^(?:...)`.
    let inner = anchored.strip_prefix("^(?:").unwrap_or(anchored);
    let inner = inner
        .strip_suffix(")$")
        .or_else(|| inner.strip_suffix(')'))
        .unwrap_or(inner);
    let pattern = inner.strip_prefix('^').unwrap_or(inner);
    let pattern = pattern.strip_suffix('$').unwrap_or(pattern);
    let too_complex = || format!("the regular expression {pattern:?}");
    if pattern.matches('(').count() != groups {
        return Err(too_complex());
    }
    let mut pieces = Vec::new();
    for (i, fragment) in pattern.split('(').enumerate() {
        let literal = if i == 0 {
            fragment
        } else {
            let close = fragment.find(')').ok_or_else(too_complex)?;
            pieces.push(Piece::Arg);
            &fragment[close + 1..]
        };
        let text = regex_unescape(literal).ok_or_else(too_complex)?;
        if !text.is_empty() {
            pieces.push(Piece::Literal(text));
        }
    }
    Ok(pieces)
}

/// Tornado's `re_unescape`: `\x` is `x`, unless `x` is a letter or digit
/// (`\d` is no literal).
#[cfg(feature = "regex")]
fn regex_unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e) if !e.is_alphanumeric() => out.push(e),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The named routes of an application; shared (and `Send`) so the template
/// engine's `reverse_url` can hold it.
#[derive(Default, Debug)]
pub(super) struct Names(HashMap<String, Reverse>);

impl Names {
    pub(super) fn add(&mut self, name: &str, pattern: &Pattern) {
        let previous = self.0.insert(name.to_owned(), Reverse::of(pattern));
        if previous.is_some() {
            // Tornado: "Multiple handlers named %s; replacing previous value".
            log::warn!("several routes named {name:?}: the last one is reversed");
        }
    }

    pub(super) fn reverse(&self, name: &str, args: &[&dyn fmt::Display]) -> Result<String, Error> {
        self.0
            .get(name)
            .ok_or_else(|| invalid(format!("reverse_url: no route named {name:?}")))?
            .build(name, args)
    }
}

/// Shared named routes.
pub(super) type SharedNames = Arc<Names>;

impl Exchange {
    /// [`Application::reverse_url`](super::Application::reverse_url), from
    /// a handler (Tornado's `self.reverse_url`).
    ///
    /// # Errors
    /// As `Application::reverse_url`; [`ErrorKind::InvalidState`] if the
    /// application is gone.
    pub fn reverse_url(&self, name: &str, args: &[&dyn fmt::Display]) -> Result<String, Error> {
        let app = self
            .app()
            .ok_or_else(|| Error::new(ErrorKind::InvalidState, "the application is gone"))?;
        app.names.reverse(name, args)
    }
}

// ----- RedirectHandler -------------------------------------------------------

/// Redirects every `GET` (and `HEAD`) to a URL (Tornado's
/// `RedirectHandler`): permanently (301) unless told otherwise. The URL
/// may use the route's captures: `{0}`, `{1}`... by position, `{id}` by
/// name (`{{` and `}}` are braces); the request's query string is added to
/// it, after any query it has (Tornado 6's `url_concat`).
///
/// ```
/// use squall::web::{Application, RedirectHandler};
///
/// let app = Application::new()
///     .route("/docs", || RedirectHandler::new("/docs/"))
///     .route("/pictures/{name}", || RedirectHandler::new("/photos/{name}").permanent(false));
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct RedirectHandler {
    url: String,
    permanent: bool,
}

impl RedirectHandler {
    /// Redirects to `url`, permanently.
    pub fn new(url: impl Into<String>) -> RedirectHandler {
        RedirectHandler {
            url: url.into(),
            permanent: true,
        }
    }

    /// 301 if `permanent` (the default), else 302.
    pub fn permanent(mut self, permanent: bool) -> RedirectHandler {
        self.permanent = permanent;
        self
    }

    /// The target for a request with these captures and query string.
    fn target(&self, args: &[(String, String)], query: &str) -> Result<String, Error> {
        let url = format_url(&self.url, args)?;
        if query.is_empty() {
            return Ok(url);
        }
        Ok(url_concat(&url, &parse_qsl(query)))
    }
}

impl RequestHandler for RedirectHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let request = x.request();
        let to = self.target(request.path_args(), request.query())?;
        if self.permanent {
            x.redirect_permanent(&to)
        } else {
            x.redirect(&to)
        }
    }
}

/// Python's `str.format` for a redirect target: `{0}` and `{name}` from
/// the captures, `{{` and `}}` for braces.
fn format_url(template: &str, args: &[(String, String)]) -> Result<String, Error> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        let close = tail.find('}').filter(|_| tail.starts_with('{'));
        let Some(close) = close else {
            return Err(invalid(format!(
                "redirect URL {template:?}: unbalanced brace"
            )));
        };
        let field = &tail[1..close];
        let value = match field.parse::<usize>() {
            Ok(i) => args.get(i).map(|(_, v)| v),
            Err(_) => args.iter().find(|(n, _)| n == field).map(|(_, v)| v),
        };
        let Some(value) = value else {
            return Err(invalid(format!(
                "redirect URL {template:?}: the route captured no {{{field}}}"
            )));
        };
        out.push_str(value);
        rest = &tail[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Tornado's `url_concat(url, args)`: `args` appended to the URL's own
/// query (both re-encoded), its fragment kept; the request's arguments go
/// name by name, in the order each name first came (its
/// `query_arguments`).
fn url_concat(url: &str, args: &[(String, String)]) -> String {
    let (rest, fragment) = match url.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (url, None),
    };
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut pairs = parse_qsl(query);
    let mut grouped: Vec<(&str, Vec<&str>)> = Vec::new();
    for (name, value) in args {
        match grouped.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(value),
            None => grouped.push((name, vec![value])),
        }
    }
    for (name, values) in grouped {
        pairs.extend(values.into_iter().map(|v| (name.to_owned(), v.to_owned())));
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(n, v)| format!("{}={}", url_escape(n, true), url_escape(v, true)))
        .collect();
    let mut out = format!("{base}?{}", query.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

// ----- ErrorHandler ----------------------------------------------------------

/// Answers every request with an error status and its error page
/// (Tornado's `ErrorHandler`), e.g. a 410 for a retired path.
///
/// ```
/// use squall::web::{Application, ErrorHandler};
///
/// let app = Application::new().route("/old-api/{rest*}", || ErrorHandler::new(410));
/// # let _ = app;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ErrorHandler {
    status: u16,
}

impl ErrorHandler {
    /// Answers `status`.
    pub fn new(status: u16) -> ErrorHandler {
        ErrorHandler { status }
    }
}

impl RequestHandler for ErrorHandler {
    fn prepare(&mut self, _x: &Exchange) -> Result<(), Error> {
        Err(HTTPError::new(self.status).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(n, a)| ((*n).to_owned(), (*a).to_owned()))
            .collect()
    }

    #[test]
    fn redirect_targets() {
        let captures = args(&[("1", "a"), ("2", "b"), ("3", "c")]);
        assert_eq!(format_url("/{1}/{0}/{2}", &captures).unwrap(), "/b/a/c");
        assert_eq!(format_url("/{2}/{{x}}", &captures).unwrap(), "/c/{x}");
        assert_eq!(
            format_url("/u/{id}", &args(&[("id", "7")])).unwrap(),
            "/u/7"
        );
        assert!(format_url("/{3}", &captures).is_err());
        assert!(format_url("/{nope}", &captures).is_err());
        assert!(format_url("/{", &captures).is_err());
        assert!(format_url("/}", &captures).is_err());
        let r = RedirectHandler::new("/dst2?foo=bar");
        assert_eq!(
            r.target(&[], "foo2=bar2").unwrap(),
            "/dst2?foo=bar&foo2=bar2"
        );
        // Grouped by name, in the order names first came; re-encoded.
        let r = RedirectHandler::new("/d#top");
        assert_eq!(
            r.target(&[], "b=1&a=x+y&b=2&c").unwrap(),
            "/d?b=1&b=2&a=x+y&c=#top"
        );
    }

    #[test]
    fn host_patterns() {
        let p = HostPattern::parse("www.example.com").unwrap();
        assert!(p.matches("www.example.com") && p.matches("WWW.Example.COM"));
        assert!(!p.matches("example.com") && !p.matches("www.example.com.evil"));
        let p = HostPattern::parse(r"www\.example\.com$").unwrap();
        assert!(matches!(p, HostPattern::Exact(_)) && p.matches("www.example.com"));
        let p = HostPattern::parse("*.example.com").unwrap();
        assert!(p.matches("a.example.com") && p.matches("a.b.Example.com"));
        assert!(!p.matches("example.com") && !p.matches("aexample.com"));
        assert!(!p.matches("é.example.co") && !p.matches(".example.com"));
        assert!(HostPattern::parse(".*").unwrap().matches("anything"));
        assert_eq!(host_name("Example.com:8080"), "Example.com");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("a:"), "a:");
        #[cfg(feature = "regex")]
        {
            let p = HostPattern::parse("www.e.*e.com").unwrap();
            assert!(p.matches("www.exe.com") && !p.matches("www.exe.com.org"));
            assert!(HostPattern::parse("(").is_err());
        }
        #[cfg(not(feature = "regex"))]
        assert_eq!(
            HostPattern::parse("www.e.*e.com").err().unwrap().kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn reverse_segments() {
        let r = Reverse::of(&Pattern::parse("/a/{x}/b/{rest*}").unwrap());
        assert_eq!(
            r.build("n", &[&"1 + 1", &"p q/r.css"]).unwrap(),
            "/a/1%20%2B%201/b/p%20q/r.css"
        );
        assert_eq!(r.build("n", &[&"a/b", &"c"]).unwrap(), "/a/a%2Fb/b/c");
        assert!(r.build("n", &[&1]).is_err());
        let r = Reverse::of(&Pattern::parse("/").unwrap());
        assert_eq!(r.build("n", &[]).unwrap(), "/");
    }

    proptest::proptest! {
        /// What a request controls — its `Host`, its captures, its query —
        /// never makes host matching or a redirect target panic.
        #[test]
        fn request_input_never_panics(
            host in "\\PC{0,24}",
            arg in "\\PC{0,12}",
            query in "[a-z=&;%+#?é\\x00 ]{0,24}",
        ) {
            let name = host_name(&host);
            for pattern in ["www.example.com", "*.example.com", "*", "*.b.c"] {
                let _ = HostPattern::parse(pattern).unwrap().matches(name);
            }
            let captures = vec![("id".to_owned(), arg)];
            for url in ["/u/{0}", "/u/{id}?x=1#f", "/{{{0}}}"] {
                let target = RedirectHandler::new(url).target(&captures, &query).unwrap();
                proptest::prop_assert!(target.starts_with('/'));
            }
        }
    }

    #[cfg(feature = "regex")]
    #[test]
    fn reverse_regexes() {
        let build = |p: &str, args: &[&dyn fmt::Display]| {
            Reverse::of(&Pattern::regex(p).unwrap()).build("n", args)
        };
        assert_eq!(
            build(r"/decode_arg/(.*)", &[&42]).unwrap(),
            "/decode_arg/42"
        );
        assert_eq!(
            build(r"/decode_arg/(.*)", &[&"é"]).unwrap(),
            "/decode_arg/%C3%A9"
        );
        assert_eq!(build(r"^/x\.html$", &[]).unwrap(), "/x.html");
        assert_eq!(
            build(r"/(?P<year>\d+)/(?P<slug>[a-z]+)", &[&2026, &"a"]).unwrap(),
            "/2026/a"
        );
        // Not reversible: a group that captures nothing, a `\d` outside.
        assert!(build(r"/(?:a|b)/(\d+)", &[&1]).is_err());
        assert!(build(r"/\d/(\d+)", &[&1]).is_err());
    }
}
