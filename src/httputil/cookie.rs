//! Cookies on the wire: parsing a `Cookie` request header as Tornado's
//! `httputil.parse_cookie` does, and writing a `Set-Cookie` value as
//! Tornado's `set_cookie` does (through Python's `http.cookies`), with
//! everything that would reach the wire checked first.
//!
//! ```
//! use squall::httputil::{format_set_cookie, parse_cookie, CookieOptions, SameSite};
//!
//! let cookies = parse_cookie(r#"theme=dark; id="a\"b"; theme=light"#);
//! assert_eq!(cookies, [("theme".into(), "light".into()), ("id".into(), "a\"b".into())]);
//!
//! let opts = CookieOptions { httponly: true, samesite: Some(SameSite::Lax), ..Default::default() };
//! assert_eq!(format_set_cookie("id", "a=b", &opts)?, r#"id="a=b"; HttpOnly; Path=/; SameSite=Lax"#);
//! assert!(format_set_cookie("id", "a\r\nSet-Cookie: evil=1", &opts).is_err());
//! # Ok::<(), squall::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::{format_timestamp, is_token};
use crate::error::{Error, ErrorKind};

/// Whitespace as Python's `str.strip()` sees it: Unicode whitespace and the
/// four ASCII separators `\x1c`-`\x1f`.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Parses a `Cookie` request header into (name, value) pairs, as Tornado's
/// `httputil.parse_cookie`: lenient, like browsers (Django's algorithm),
/// not any RFC.
///
/// Each `;`-separated piece is `name=value` (split at the first `=`), or a
/// bare value with an empty name; both are stripped of whitespace, a piece
/// with neither is skipped, and a double-quoted value is unquoted (`\"`,
/// `\\` and octal `\073` escapes decoded, as Python's `http.cookies`
/// writes them). A name that comes again keeps its first place and takes
/// the last value (a Python `dict`). It never fails: anything is some
/// cookies, or none.
///
/// ```
/// use squall::httputil::parse_cookie;
///
/// assert_eq!(parse_cookie("a=1; b = 2 ;; bare"), [
///     ("a".to_owned(), "1".to_owned()),
///     ("b".to_owned(), "2".to_owned()),
///     ("".to_owned(), "bare".to_owned()),
/// ]);
/// // Even quoted, `;` ends a value; escapes are decoded only in quotes.
/// assert_eq!(parse_cookie(r#"foo="a;b""#)[0].1, "\"a");
/// assert_eq!(parse_cookie(r#"foo="a\073b""#)[0].1, "a;b");
/// assert_eq!(parse_cookie(r#"foo=a\073b"#)[0].1, r"a\073b");
/// ```
pub fn parse_cookie(header: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    // Where each name is in `out`: a header of many names costs linear time.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for chunk in header.split(';') {
        let (key, value) = chunk.split_once('=').unwrap_or(("", chunk));
        let (key, value) = (
            key.trim_matches(is_py_space),
            value.trim_matches(is_py_space),
        );
        if key.is_empty() && value.is_empty() {
            continue;
        }
        let value = unquote_cookie(value);
        match index.get(key) {
            Some(&i) => out[i].1 = value,
            None => {
                index.insert(key, out.len());
                out.push((key.to_owned(), value));
            }
        }
    }
    out
}

/// Undoes the double-quoting of a cookie value (Python's
/// `http.cookies._unquote`, which Tornado copies): a value not wrapped in
/// double quotes comes back as it is; inside the quotes, `\ooo` (octal,
/// `\000` to `\377`) is that character and `\` before any other character
/// is that character.
///
/// ```
/// use squall::httputil::unquote_cookie;
///
/// assert_eq!(unquote_cookie(r#""a\"b\\c\351""#), "a\"b\\cé");
/// assert_eq!(unquote_cookie("plain"), "plain");
/// assert_eq!(unquote_cookie("\""), "\"");
/// ```
pub fn unquote_cookie(s: &str) -> String {
    let quoted = s.len() >= 2 && s.starts_with('"') && s.ends_with('"');
    if !quoted {
        return s.to_owned();
    }
    let inner = &s[1..s.len() - 1];
    let chars: Vec<char> = inner.chars().collect();
    let mut out = String::with_capacity(inner.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let octal = chars.get(i + 1..i + 4).filter(|d| {
            ('0'..='3').contains(&d[0]) && d[1..].iter().all(|c| ('0'..='7').contains(c))
        });
        if let Some(d) = octal {
            let code = d.iter().fold(0u32, |n, c| n * 8 + (*c as u32 - '0' as u32));
            // At most 0o377: always a char.
            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            i += 4;
        } else if let Some(&next) = chars.get(i + 1).filter(|&&n| n != '\n') {
            // Python's `[\\].`: `.` is any character but a newline.
            out.push(next);
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The characters Python's `http.cookies` leaves unquoted (its
/// `_LegalChars`): a value of only these goes out as it is.
fn is_legal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:".contains(c)
}

/// Whether `name` is a key Python's `http.cookies` accepts, as Tornado's
/// `request.cookies` requires: legal characters only, and not an
/// attribute name such as `path` or `expires`.
pub(crate) fn is_legal_cookie_key(name: &str) -> bool {
    !name.is_empty() && name.chars().all(is_legal_char) && !is_reserved(name)
}

/// The attribute names Python's `Morsel` reserves.
fn is_reserved(name: &str) -> bool {
    const RESERVED: [&str; 10] = [
        "expires",
        "path",
        "comment",
        "domain",
        "max-age",
        "secure",
        "httponly",
        "version",
        "samesite",
        "partitioned",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// Quotes a cookie value as Python's `http.cookies._quote`: a value of
/// legal characters only goes as it is; any other (the empty one too) is
/// double-quoted, `"` and `\` backslash-escaped, and every character
/// outside the legal ones and ` ()/<=>?@[]{}` below U+0100 written in
/// octal (`;` as `\073`). So a value never puts a `;` on the wire.
fn quote_cookie_value(value: &str, out: &mut String) {
    if !value.is_empty() && value.chars().all(is_legal_char) {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_legal_char(c) || " ()/<=>?@[]{}".contains(c) || c as u32 > 0xff => out.push(c),
            c => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
        }
    }
    out.push('"');
}

/// The `SameSite` attribute of a cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`: sent only with requests from the same site.
    Strict,
    /// `SameSite=Lax`: also with top-level navigations from other sites.
    Lax,
    /// `SameSite=None`: with every request (browsers then require `Secure`).
    None,
}

impl SameSite {
    /// The attribute's value: `Strict`, `Lax` or `None`.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// The attributes of a cookie being set: Tornado's `set_cookie` keyword
/// arguments. The default is a session cookie for the whole site
/// (`Path=/`), as Tornado's.
///
/// ```
/// use std::time::Duration;
/// use squall::httputil::CookieOptions;
///
/// let opts = CookieOptions {
///     domain: Some("example.com".into()),
///     max_age: Some(Duration::from_secs(3600)),
///     secure: true,
///     ..Default::default()
/// };
/// assert_eq!(opts.path.as_deref(), Some("/"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CookieOptions {
    /// `Domain`; `None`: the host that set it only.
    pub domain: Option<String>,
    /// `Path`; default `Some("/")`. `None` (or empty): no `Path` attribute.
    pub path: Option<String>,
    /// `expires`, an absolute time. Wins over `expires_days`.
    pub expires: Option<SystemTime>,
    /// `expires` as days from now (fractions allowed; Tornado's
    /// `expires_days`), unless `expires` is set.
    pub expires_days: Option<f64>,
    /// `Max-Age`, in whole seconds (`Some(ZERO)` writes `Max-Age=0`:
    /// delete now).
    pub max_age: Option<Duration>,
    /// `Secure`: sent over HTTPS only.
    pub secure: bool,
    /// `HttpOnly`: hidden from scripts.
    pub httponly: bool,
    /// `SameSite`.
    pub samesite: Option<SameSite>,
    /// `Partitioned` (CHIPS): kept per top-level site; browsers want
    /// `Secure` with it.
    pub partitioned: bool,
}

impl Default for CookieOptions {
    fn default() -> CookieOptions {
        CookieOptions {
            domain: None,
            path: Some("/".to_owned()),
            expires: None,
            expires_days: None,
            max_age: None,
            secure: false,
            httponly: false,
            samesite: None,
            partitioned: false,
        }
    }
}

/// Refuses `value` for attribute `what` of cookie `name` if it holds a
/// control character, a space or a `;` (Tornado's check): it would end the
/// attribute, or the header, early.
fn check_attribute(what: &str, value: &str, name: &str) -> Result<(), Error> {
    if value.bytes().any(|b| b <= 0x20 || b == b';' || b == 0x7f) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("Invalid cookie attribute {what}={value:?} for cookie {name:?}"),
        ));
    }
    Ok(())
}

/// Checks a cookie's name and value as [`format_set_cookie`] does, without
/// formatting.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`]: the name is not an RFC 6265 token (or is
/// empty, or an attribute name like `Path`, which Python's `http.cookies`
/// refuses too), or the value holds a control character or a space.
pub fn check_cookie(name: &str, value: &str) -> Result<(), Error> {
    check_attribute("name", name, name)?;
    if !is_token(name.as_bytes()) || is_reserved(name) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("Invalid cookie name {name:?}"),
        ));
    }
    if value.chars().any(|c| c <= ' ' || c == '\x7f') {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("Invalid cookie {name:?}: {value:?}"),
        ));
    }
    Ok(())
}

/// Formats a `Set-Cookie` header value as Tornado's `set_cookie` does (the
/// attributes in Python's `Morsel` order: `Domain`, `expires`, `HttpOnly`,
/// `Max-Age`, `Partitioned`, `Path`, `SameSite`, `Secure`); the value is
/// quoted if it needs to be (see [`parse_cookie`], which reads it back).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use squall::httputil::{format_set_cookie, CookieOptions};
///
/// let opts = CookieOptions {
///     domain: Some("foo.com".into()),
///     path: Some("/foo".into()),
///     expires: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
///     ..Default::default()
/// };
/// assert_eq!(
///     format_set_cookie("a", "b", &opts)?,
///     "a=b; Domain=foo.com; expires=Tue, 14 Nov 2023 22:13:20 GMT; Path=/foo"
/// );
/// assert_eq!(format_set_cookie("q", "a;b", &Default::default())?, r#"q="a\073b"; Path=/"#);
/// # Ok::<(), squall::Error>(())
/// ```
///
/// # Errors
/// [`ErrorKind::InvalidArgument`] as [`check_cookie`], or if the domain or
/// the path holds a control character, a space or a `;`.
pub fn format_set_cookie(
    name: &str,
    value: &str,
    options: &CookieOptions,
) -> Result<String, Error> {
    check_cookie(name, value)?;
    let domain = options.domain.as_deref().filter(|d| !d.is_empty());
    let path = options.path.as_deref().filter(|p| !p.is_empty());
    if let Some(domain) = domain {
        check_attribute("domain", domain, name)?;
    }
    if let Some(path) = path {
        check_attribute("path", path, name)?;
    }
    let expires = options.expires.or_else(|| {
        let days = options.expires_days?;
        let offset = Duration::try_from_secs_f64((days * 86400.0).abs()).ok()?;
        let now = SystemTime::now();
        if days >= 0.0 {
            now.checked_add(offset)
        } else {
            now.checked_sub(offset)
        }
    });
    let mut out = String::with_capacity(name.len() + value.len() + 32);
    out.push_str(name);
    out.push('=');
    quote_cookie_value(value, &mut out);
    if let Some(domain) = domain {
        let _ = write!(out, "; Domain={domain}");
    }
    if let Some(expires) = expires {
        let _ = write!(out, "; expires={}", format_timestamp(expires));
    }
    if options.httponly {
        out.push_str("; HttpOnly");
    }
    if let Some(max_age) = options.max_age {
        let _ = write!(out, "; Max-Age={}", max_age.as_secs());
    }
    if options.partitioned {
        out.push_str("; Partitioned");
    }
    if let Some(path) = path {
        let _ = write!(out, "; Path={path}");
    }
    if let Some(samesite) = options.samesite {
        let _ = write!(out, "; SameSite={}", samesite.as_str());
    }
    if options.secure {
        out.push_str("; Secure");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_like_tornado() {
        // Tornado's httputil_test ParseCookieTest cases (Django's).
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "chips=ahoy; vienna=finger",
                &[("chips", "ahoy"), ("vienna", "finger")],
            ),
            (
                r#"keebler="E=mc2; L=\"Loves\"; fudge=\012;""#,
                &[
                    ("keebler", "\"E=mc2"),
                    ("L", "\\\"Loves\\\""),
                    ("fudge", "\\012"),
                    ("", "\""),
                ],
            ),
            ("keebler=E=mc2", &[("keebler", "E=mc2")]),
            ("key:term=value:term", &[("key:term", "value:term")]),
            (
                "a=b; c=[; d=r; f=h",
                &[("a", "b"), ("c", "["), ("d", "r"), ("f", "h")],
            ),
            (
                "a=b; Domain=example.com",
                &[("a", "b"), ("Domain", "example.com")],
            ),
            ("a=b; h=i; a=c", &[("a", "c"), ("h", "i")]),
            (
                "abc=def; unnamed; django_language=en",
                &[("abc", "def"), ("", "unnamed"), ("django_language", "en")],
            ),
            ("a=b; \"; c=d", &[("a", "b"), ("", "\""), ("c", "d")]),
            ("a b c=d e = f; gh=i", &[("a b c", "d e = f"), ("gh", "i")]),
            (
                "a   b,c<>@:/[]?{}=d  \"  =e,f g",
                &[("a   b,c<>@:/[]?{}", "d  \"  =e,f g")],
            ),
            ("saint=André Bessette", &[("saint", "André Bessette")]),
            ("  =  b  ;  ;  =  ;   c  =  ;  ", &[("", "b"), ("c", "")]),
            ("", &[]),
            ("a=", &[("a", "")]),
            ("a=\"\"", &[("a", "")]),
        ];
        for (header, expected) in cases {
            let got = parse_cookie(header);
            let expected: Vec<(String, String)> = expected
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, expected, "{header:?}");
        }
    }

    #[test]
    fn unquote_cases() {
        // Tornado's ParseCookieTest.test_unquote (CPython's cases).
        let cases = [
            (r#"a="b=\"""#, "b=\""),
            (r#"a="b=\\""#, "b=\\"),
            (r#"a="b=\=""#, "b=="),
            (r#"a="b=\n""#, "b=n"),
            (r#"a="b=\042""#, "b=\""),
            (r#"a="b=\134""#, "b=\\"),
            (r#"a="b=\377""#, "b=\u{ff}"),
            (r#"a="b=\400""#, "b=400"),
            (r#"a="b=\42""#, "b=42"),
            (r#"a="b=\\042""#, "b=\\042"),
            (r#"a="b=\\134""#, "b=\\134"),
            (r#"a="b=\\\"""#, "b=\\\""),
            (r#"a="b=\\\042""#, "b=\\\""),
            (r#"a="b=\134\"""#, "b=\\\""),
            (r#"a="b=\134\042""#, "b=\\\""),
        ];
        for (encoded, decoded) in cases {
            assert_eq!(parse_cookie(encoded)[0].1, decoded, "{encoded}");
        }
        assert_eq!(unquote_cookie(r#""\012""#), "\n");
        assert_eq!(unquote_cookie(r#""\400""#), "400");
        assert_eq!(unquote_cookie(r#""\\""#), "\\");
        assert_eq!(unquote_cookie("\"a\\\""), "a\\");
        assert_eq!(unquote_cookie("\"a\\\nb\""), "a\\\nb");
        assert_eq!(unquote_cookie("\"\""), "");
        assert_eq!(unquote_cookie(r#""中\"""#), "中\"");
    }

    #[test]
    fn quote_like_python() {
        let q = |v: &str| {
            let mut s = String::new();
            quote_cookie_value(v, &mut s);
            s
        };
        assert_eq!(q("asdf"), "asdf");
        assert_eq!(q(""), "\"\"");
        assert_eq!(q("a=b"), "\"a=b\"");
        assert_eq!(q("a\"b"), "\"a\\\"b\"");
        assert_eq!(q("a;b"), "\"a\\073b\"");
        assert_eq!(q("a,b"), "\"a\\054b\"");
        assert_eq!(q("é"), "\"\\351\"");
        assert_eq!(q("中"), "\"中\"");
        assert_eq!(q("2|a1b2|c3|17"), "2|a1b2|c3|17");
    }

    #[test]
    fn forbidden_characters() {
        let opts = CookieOptions::default();
        for c in (0u8..0x20).map(char::from).chain(['\x7f', ';']) {
            let name = format!("foo{c}");
            let err = format_set_cookie(&name, "bar", &opts).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(err.message().contains("name"), "{err}");
            let domain = CookieOptions {
                domain: Some(format!("example{c}.com")),
                ..Default::default()
            };
            assert!(format_set_cookie("foo", "bar", &domain)
                .unwrap_err()
                .message()
                .contains("domain"));
            let path = CookieOptions {
                path: Some(format!("/{c}")),
                ..Default::default()
            };
            assert!(format_set_cookie("foo", "bar", &path)
                .unwrap_err()
                .message()
                .contains("path"));
        }
        for bad in ["a b", "a\r\nSet-Cookie: x=1", "a\0", "\t", "a\x7f"] {
            assert!(format_set_cookie("foo", bad, &opts).is_err(), "{bad:?}");
        }
        for bad in ["", "a:b", "a=b", "a,b", "a\"b", "Path", "expires", "é"] {
            assert!(format_set_cookie(bad, "v", &opts).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn attribute_order_and_flags() {
        let all = CookieOptions {
            domain: Some("example.com".into()),
            path: Some("/p".into()),
            expires: Some(std::time::UNIX_EPOCH),
            expires_days: Some(5.0),
            max_age: Some(Duration::from_secs(10)),
            secure: true,
            httponly: true,
            samesite: Some(SameSite::Strict),
            partitioned: true,
        };
        assert_eq!(
            format_set_cookie("a", "1", &all).unwrap(),
            "a=1; Domain=example.com; expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; \
             Max-Age=10; Partitioned; Path=/p; SameSite=Strict; Secure"
        );
        let none = CookieOptions {
            path: None,
            ..Default::default()
        };
        assert_eq!(format_set_cookie("a", "1", &none).unwrap(), "a=1");
        let zero = CookieOptions {
            max_age: Some(Duration::ZERO),
            ..Default::default()
        };
        assert_eq!(
            format_set_cookie("a", "1", &zero).unwrap(),
            "a=1; Max-Age=0; Path=/"
        );
        let past = CookieOptions {
            expires_days: Some(-365.0),
            ..Default::default()
        };
        let s = format_set_cookie("a", "", &past).unwrap();
        assert!(
            s.starts_with("a=\"\"; expires=") && s.ends_with("; Path=/"),
            "{s}"
        );
        // Absurd day counts do not panic: no `expires` rather than a wrap.
        for days in [f64::NAN, f64::INFINITY, 1e300, -1e300] {
            let odd = CookieOptions {
                expires_days: Some(days),
                ..Default::default()
            };
            assert!(format_set_cookie("a", "1", &odd).is_ok());
        }
    }

    proptest! {
        /// No header makes the parser panic, and every value it returns
        /// is stripped the way Python strips.
        #[test]
        fn parse_never_panics(header in ".{0,200}") {
            for (k, v) in parse_cookie(&header) {
                prop_assert!(!(k.is_empty() && v.is_empty()) || v.is_empty());
                prop_assert_eq!(k.trim_matches(is_py_space), k.as_str());
            }
        }

        /// Bytes near the syntax (quotes, backslashes, octal digits, `;`).
        #[test]
        fn parse_never_panics_near_syntax(header in "[a-c=;\" \\\\0-7\\n\u{e9}]{0,64}") {
            let _ = parse_cookie(&header);
        }

        /// Any value a cookie may hold is written so that parsing the
        /// header reads back the same value, and the header value itself
        /// passes the header check.
        #[test]
        fn set_cookie_round_trips(value in "[!-~\u{a0}-\u{17f}中]{0,40}") {
            let line = format_set_cookie("k", &value, &CookieOptions { path: None, ..Default::default() }).unwrap();
            prop_assert!(crate::httputil::check_header_value(&line).is_ok());
            prop_assert!(!line.contains(';'));
            let parsed = parse_cookie(&line);
            prop_assert_eq!(parsed, vec![("k".to_owned(), value)]);
        }
    }
}
