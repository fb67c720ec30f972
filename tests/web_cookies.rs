//! Cookies, signed cookies, XSRF and login through a real server: Tornado's
//! web_test.py CookieTest, SecureCookieV1/V2Test, XSRFTest,
//! XSRFCookieNameTest and AuthRedirectTest, ported; and signed values and
//! XSRF tokens read by Python's Tornado and made by it (skipped where
//! Tornado is not installed).

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

#[path = "common/peers.rs"]
mod need;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use http_kit::{raw_request, Reply, TestServer};
use squall::httputil::format_timestamp;
use squall::web::{
    authenticated, Application, Authenticated, CookieOptions, Exchange, RequestHandler, SameSite,
    Settings,
};
use squall::Error;

/// A handler running one function for every verb.
struct F(fn(&Exchange) -> Result<(), Error>);

impl RequestHandler for F {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        (self.0)(x)
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        (self.0)(x)
    }
    fn put(&mut self, x: &Exchange) -> Result<(), Error> {
        (self.0)(x)
    }
    fn delete(&mut self, x: &Exchange) -> Result<(), Error> {
        (self.0)(x)
    }
    fn patch(&mut self, x: &Exchange) -> Result<(), Error> {
        (self.0)(x)
    }
}

fn serve(make: fn() -> Application) -> TestServer {
    TestServer::start(make, |_| {})
}

/// One request: `method path` with extra header lines and a body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        addr.port()
    );
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" && method != "HEAD" {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw_request(addr, raw.as_bytes()).expect("a response")
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers, "")
}

fn sorted_cookies(r: &Reply) -> Vec<String> {
    let mut v = r.headers_named("Set-Cookie");
    v.sort();
    v
}

// ----- CookieTest --------------------------------------------------------------

fn cookie_app() -> Application {
    Application::new()
        .route("/set", || {
            F(|x| {
                x.set_cookie("str", "asdf")?;
                x.set_cookie("unicode", "qwer")?;
                x.set_cookie("bytes", "zxcv")
            })
        })
        .route("/get", || {
            F(|x| {
                x.write(x.get_cookie("foo").unwrap_or("default"));
                Ok(())
            })
        })
        .route("/set_domain", || {
            F(|x| {
                x.set_cookie_with(
                    "unicode_args",
                    "blah",
                    &CookieOptions {
                        domain: Some("foo.com".into()),
                        path: Some("/foo".into()),
                        ..Default::default()
                    },
                )
            })
        })
        .route("/special_char", || {
            F(|x| {
                x.set_cookie("equals", "a=b")?;
                x.set_cookie("semicolon", "a;b")?;
                x.set_cookie("quote", "a\"b")
            })
        })
        .route("/forbidden_char", || {
            F(|x| {
                let mut out = String::new();
                for c in (0u8..0x20).map(char::from).chain(['\x7f', ';']) {
                    if x.set_cookie(&format!("foo{c}"), "bar").is_ok() {
                        out.push_str(&format!("no error for {c:?} in name\n"));
                    }
                    let domain = CookieOptions {
                        domain: Some(format!("example{c}.com")),
                        ..Default::default()
                    };
                    match x.set_cookie_with("foo", "bar", &domain) {
                        Err(e) if e.message().contains("Invalid cookie attribute domain") => {}
                        other => out.push_str(&format!("{other:?} for {c:?} in domain\n")),
                    }
                    let path = CookieOptions {
                        path: Some(format!("/{c}")),
                        ..Default::default()
                    };
                    match x.set_cookie_with("foo", "bar", &path) {
                        Err(e) if e.message().contains("Invalid cookie attribute path") => {}
                        other => out.push_str(&format!("{other:?} for {c:?} in path\n")),
                    }
                }
                // Values: controls and spaces refused (Tornado's check).
                for bad in ["a b", "a\r\nSet-Cookie: evil=1", "a\0b", "a\tb"] {
                    if x.set_cookie("foo", bad).is_ok() {
                        out.push_str(&format!("no error for value {bad:?}\n"));
                    }
                }
                x.write(out);
                Ok(())
            })
        })
        .route("/set_overwrite", || {
            F(|x| {
                let domain = CookieOptions {
                    domain: Some("example.com".into()),
                    ..Default::default()
                };
                x.set_cookie_with("a", "b", &domain)?;
                x.set_cookie_with("c", "d", &domain)?;
                // A second call with the same name replaces the first,
                // attributes and all.
                x.set_cookie("a", "e")
            })
        })
        .route("/set_max_age", || {
            F(|x| {
                let opts = CookieOptions {
                    max_age: Some(Duration::from_secs(10)),
                    ..Default::default()
                };
                x.set_cookie_with("foo", "bar", &opts)
            })
        })
        .route("/set_expires_days", || {
            F(|x| {
                let opts = CookieOptions {
                    expires_days: Some(10.0),
                    ..Default::default()
                };
                x.set_cookie_with("foo", "bar", &opts)
            })
        })
        .route("/set_falsy_flags", || {
            F(|x| {
                let o = |secure, httponly| CookieOptions {
                    secure,
                    httponly,
                    ..Default::default()
                };
                x.set_cookie_with("a", "1", &o(true, false))?;
                x.set_cookie_with("b", "1", &o(false, false))?;
                x.set_cookie_with("c", "1", &o(false, true))?;
                x.set_cookie_with("d", "1", &o(false, false))
            })
        })
        .route("/samesite", || {
            F(|x| {
                let opts = CookieOptions {
                    samesite: Some(SameSite::None),
                    secure: true,
                    partitioned: true,
                    ..Default::default()
                };
                x.set_cookie_with("s", "1", &opts)
            })
        })
        .route("/clear", || {
            F(|x| {
                x.clear_cookie("foo")?;
                let opts = CookieOptions {
                    domain: Some("example.com".into()),
                    path: Some("/sub".into()),
                    max_age: Some(Duration::from_secs(99)),
                    ..Default::default()
                };
                x.clear_cookie_with("bar", &opts)
            })
        })
        .route("/clear_all", || F(|x| x.clear_all_cookies()))
        .route("/all", || {
            F(|x| {
                let all: Vec<String> = x
                    .cookies()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                x.write(all.join("&"));
                Ok(())
            })
        })
        .route("/error_after_set", || {
            F(|x| {
                x.set_cookie("ok", "1")?;
                x.set_cookie("bad", "a\nb")
            })
        })
}

#[test]
fn set_cookie() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/set", &[]);
    assert_eq!(
        sorted_cookies(&r),
        [
            "bytes=zxcv; Path=/",
            "str=asdf; Path=/",
            "unicode=qwer; Path=/"
        ]
    );
}

#[test]
fn get_cookie() {
    let s = serve(cookie_app);
    assert_eq!(get(s.addr, "/get", &[("Cookie", "foo=bar")]).text(), "bar");
    assert_eq!(
        get(s.addr, "/get", &[("Cookie", "foo=\"bar\"")]).text(),
        "bar"
    );
    assert_eq!(
        get(s.addr, "/get", &[("Cookie", "/=exception;")]).text(),
        "default"
    );
    assert_eq!(get(s.addr, "/get", &[]).text(), "default");
    // Two Cookie headers are read as one.
    assert_eq!(
        get(s.addr, "/get", &[("Cookie", "a=1"), ("Cookie", "foo=2")]).text(),
        "2"
    );
}

#[test]
fn set_cookie_domain() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/set_domain", &[]);
    assert_eq!(
        r.headers_named("Set-Cookie"),
        ["unicode_args=blah; Domain=foo.com; Path=/foo"]
    );
}

#[test]
fn cookie_special_char() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/special_char", &[]);
    assert_eq!(
        sorted_cookies(&r),
        [
            "equals=\"a=b\"; Path=/",
            "quote=\"a\\\"b\"; Path=/",
            "semicolon=\"a\\073b\"; Path=/"
        ]
    );
    let data = [
        ("foo=a=b", "a=b"),
        ("foo=\"a=b\"", "a=b"),
        ("foo=\"a;b\"", "\"a"),     // even quoted, ";" is a delimiter
        ("foo=a\\073b", "a\\073b"), // escapes only decoded in quotes
        ("foo=\"a\\073b\"", "a;b"),
        ("foo=\"a\\\"b\"", "a\"b"),
    ];
    for (header, expected) in data {
        assert_eq!(
            get(s.addr, "/get", &[("Cookie", header)]).text(),
            expected,
            "{header}"
        );
    }
}

#[test]
fn set_cookie_forbidden_char() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/forbidden_char", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "");
}

#[test]
fn set_cookie_overwrite() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/set_overwrite", &[]);
    assert_eq!(
        sorted_cookies(&r),
        ["a=e; Path=/", "c=d; Domain=example.com; Path=/"]
    );
}

#[test]
fn set_cookie_max_age() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/set_max_age", &[]);
    assert_eq!(sorted_cookies(&r), ["foo=bar; Max-Age=10; Path=/"]);
}

#[test]
fn set_cookie_expires_days() {
    let s = serve(cookie_app);
    let before = SystemTime::now();
    let r = get(s.addr, "/set_expires_days", &[]);
    let header = r.header("Set-Cookie").unwrap();
    let expires = header
        .strip_prefix("foo=bar; expires=")
        .and_then(|rest| rest.strip_suffix("; Path=/"))
        .unwrap_or_else(|| panic!("{header}"));
    let ten_days = Duration::from_secs(10 * 86400);
    let near: Vec<String> = (0..12)
        .map(|s| format_timestamp(before + ten_days + Duration::from_secs(s)))
        .collect();
    assert!(
        near.iter().any(|d| d == expires),
        "{expires} not in {near:?}"
    );
}

#[test]
fn set_cookie_false_flags() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/set_falsy_flags", &[]);
    assert_eq!(
        sorted_cookies(&r),
        [
            "a=1; Path=/; Secure",
            "b=1; Path=/",
            "c=1; HttpOnly; Path=/",
            "d=1; Path=/"
        ]
    );
    let r = get(s.addr, "/samesite", &[]);
    assert_eq!(
        sorted_cookies(&r),
        ["s=1; Partitioned; Path=/; SameSite=None; Secure"]
    );
}

#[test]
fn clear_cookies() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/clear", &[]);
    let cookies = sorted_cookies(&r);
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    // A year ago; no Max-Age even if asked.
    let year = Duration::from_secs(365 * 86400);
    let ago = format_timestamp(SystemTime::now() - year);
    let ago_year = &ago[12..16];
    assert!(
        cookies[0].starts_with("bar=\"\"; Domain=example.com; expires=")
            && cookies[0].ends_with("; Path=/sub")
            && cookies[0].contains(ago_year),
        "{cookies:?}"
    );
    assert!(cookies[1].starts_with("foo=\"\"; expires=") && cookies[1].ends_with(" GMT; Path=/"));

    let r = get(
        s.addr,
        "/clear_all",
        &[("Cookie", "a=1; b=2; path=x; =bare")],
    );
    let names: Vec<String> = sorted_cookies(&r)
        .iter()
        .map(|c| c.split('=').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn cookies_keep_only_legal_names() {
    let s = serve(cookie_app);
    let r = get(
        s.addr,
        "/all",
        &[("Cookie", "a=1; Path=/x; b c=2; =3; k:v=4; d=\"q\\\"\"; a=5")],
    );
    assert_eq!(r.text(), "a=5&k:v=4&d=q\"");
}

#[test]
fn refused_cookie_answers_500_and_sets_nothing() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/error_after_set", &[]);
    assert_eq!(r.status, 500);
    assert!(
        !r.head.contains("evil") && !r.head.contains("bad="),
        "{}",
        r.head
    );
}

/// The exchange is pooled: one request's cookies are not the next one's.
#[test]
fn cookies_are_parsed_per_request() {
    let s = serve(cookie_app);
    let mut conn = http_kit::connect(s.addr);
    use std::io::Write;
    conn.write_all(
        b"GET /get HTTP/1.1\r\nHost: x\r\nCookie: foo=first\r\n\r\n\
          GET /get HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /get HTTP/1.1\r\nHost: x\r\nCookie: foo=third\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let bodies: Vec<String> = (0..3)
        .map(|_| {
            http_kit::read_reply(&mut conn, &mut buf, false)
                .unwrap()
                .text()
        })
        .collect();
    assert_eq!(bodies, ["first", "default", "third"]);
}

// ----- XSRFTest ------------------------------------------------------------------

fn xsrf_handler() -> F {
    F(|x| {
        match x.request().method() {
            "GET" => x.write(x.xsrf_token()?),
            _ => x.write("ok"),
        }
        Ok(())
    })
}

fn xsrf_app() -> Application {
    Application::with_settings(Settings {
        xsrf_cookies: true,
        ..Default::default()
    })
    .route("/", xsrf_handler)
    .route("/form", || {
        F(|x| {
            x.write(x.xsrf_form_html()?);
            Ok(())
        })
    })
    .route("/exempt", || Exempt)
}

fn xsrf_v1_app() -> Application {
    Application::with_settings(Settings {
        xsrf_cookies: true,
        xsrf_cookie_version: 1,
        ..Default::default()
    })
    .route("/", xsrf_handler)
}

/// Opts out, as a Tornado handler overriding `check_xsrf_cookie`.
struct Exempt;
impl RequestHandler for Exempt {
    fn check_xsrf_cookie(&mut self, _x: &Exchange) -> Result<(), Error> {
        Ok(())
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("exempt");
        Ok(())
    }
}

struct Xsrf {
    s: TestServer,
    v1: TestServer,
    token: String,
}

impl Xsrf {
    fn new() -> Xsrf {
        let s = serve(xsrf_app);
        let v1 = serve(xsrf_v1_app);
        let mut x = Xsrf {
            s,
            v1,
            token: String::new(),
        };
        x.token = x.get_token(None, 2);
        x
    }

    fn get_token(&self, old: Option<&str>, version: u8) -> String {
        let addr = if version == 1 {
            self.v1.addr
        } else {
            self.s.addr
        };
        let cookie = old.map(|t| format!("_xsrf={t}"));
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        let r = get(addr, "/", &headers);
        assert_eq!(r.status, 200);
        r.text()
    }

    fn post(&self, cookie: Option<&str>, body: &str, extra: &[(&str, &str)]) -> u16 {
        self.post_to("/", cookie, body, extra)
    }

    fn post_to(&self, path: &str, cookie: Option<&str>, body: &str, extra: &[(&str, &str)]) -> u16 {
        let cookie = cookie.map(|t| format!("_xsrf={t}"));
        let mut headers: Vec<(&str, &str)> =
            cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        headers.extend_from_slice(extra);
        request(self.s.addr, "POST", path, &headers, body).status
    }
}

fn form(token: &str) -> String {
    format!("_xsrf={}", squall::httputil::url_escape(token, true))
}

#[test]
fn xsrf_fail_no_token() {
    let t = Xsrf::new();
    assert_eq!(t.post(None, "", &[]), 403);
}

#[test]
fn xsrf_fail_body_no_cookie() {
    let t = Xsrf::new();
    assert_eq!(t.post(None, &form(&t.token), &[]), 403);
}

#[test]
fn xsrf_fail_argument_invalid_format() {
    let t = Xsrf::new();
    assert_eq!(t.post(Some(&t.token), &form("3|"), &[]), 403);
}

#[test]
fn xsrf_fail_cookie_invalid_format() {
    let t = Xsrf::new();
    assert_eq!(t.post(Some("3|"), &form(&t.token), &[]), 403);
}

#[test]
fn xsrf_fail_cookie_no_body() {
    let t = Xsrf::new();
    assert_eq!(t.post(Some(&t.token), "", &[]), 403);
}

#[test]
fn xsrf_success_short_and_non_hex_tokens() {
    let t = Xsrf::new();
    assert_eq!(t.post(Some("deadbeef"), &form("deadbeef"), &[]), 200);
    assert_eq!(t.post(Some("xoxo"), &form("xoxo"), &[]), 200);
}

#[test]
fn xsrf_success_post_body_query_and_headers() {
    let t = Xsrf::new();
    assert_eq!(t.post(Some(&t.token), &form(&t.token), &[]), 200);
    let path = format!("/?{}", form(&t.token));
    assert_eq!(t.post_to(&path, Some(&t.token), "", &[]), 200);
    assert_eq!(
        t.post(Some(&t.token), "", &[("X-Xsrftoken", &t.token)]),
        200
    );
    assert_eq!(
        t.post(Some(&t.token), "", &[("X-CSRFToken", &t.token)]),
        200
    );
    // Every state-changing method is checked; the safe ones are not.
    for method in ["PUT", "DELETE", "PATCH"] {
        let r = request(t.s.addr, method, "/", &[], "");
        assert_eq!(r.status, 403, "{method}");
        let cookie = format!("_xsrf={}", t.token);
        let r = request(
            t.s.addr,
            method,
            "/",
            &[("Cookie", &cookie), ("X-Xsrftoken", &t.token)],
            "",
        );
        assert_eq!(r.status, 200, "{method}");
    }
    assert_eq!(request(t.s.addr, "OPTIONS", "/", &[], "").status, 405);
    // A handler may opt out.
    assert_eq!(t.post_to("/exempt", None, "", &[]), 200);
}

#[test]
fn xsrf_distinct_tokens() {
    let t = Xsrf::new();
    let tokens: std::collections::HashSet<String> = (0..10).map(|_| t.get_token(None, 2)).collect();
    assert_eq!(tokens.len(), 10);
}

#[test]
fn xsrf_cross_user() {
    let t = Xsrf::new();
    let token2 = t.get_token(None, 2);
    for token in [&t.token, &token2] {
        assert_eq!(t.post(Some(token), &form(token), &[]), 200);
    }
    for (cookie, body) in [(&t.token, &token2), (&token2, &t.token)] {
        assert_eq!(t.post(Some(cookie), &form(body), &[]), 403);
    }
}

#[test]
fn xsrf_refresh_token() {
    let t = Xsrf::new();
    let mut token = t.token.clone();
    let mut seen = std::collections::HashSet::from([token.clone()]);
    for _ in 0..5 {
        token = t.get_token(Some(&token), 2);
        seen.insert(token.clone());
        // An old page's token still matches the refreshed cookie.
        assert_eq!(t.post(Some(&token), &form(&t.token), &[]), 200);
    }
    assert_eq!(seen.len(), 6);
}

#[test]
fn xsrf_versioning() {
    let t = Xsrf::new();
    assert_ne!(t.get_token(None, 1), t.get_token(None, 1));
    let v1 = t.get_token(None, 1);
    for _ in 0..5 {
        assert_eq!(t.get_token(Some(&v1), 1), v1);
    }
    let v2 = t.get_token(Some(&v1), 2);
    assert_ne!(v1, v2);
    assert_ne!(v2, t.get_token(Some(&v1), 2));
    for (cookie, body) in [(&v1, &v2), (&v2, &v1)] {
        assert_eq!(t.post(Some(cookie), &form(body), &[]), 200);
    }
}

#[test]
fn xsrf_cookie_only_when_new() {
    let t = Xsrf::new();
    let r = get(t.s.addr, "/", &[]);
    let set = r.headers_named("Set-Cookie");
    assert_eq!(set, [format!("_xsrf={}; Path=/", r.text())]);
    let cookie = format!("_xsrf={}", t.token);
    assert!(get(t.s.addr, "/", &[("Cookie", &cookie)])
        .headers_named("Set-Cookie")
        .is_empty());
    // The form field, with the same token the page would have.
    let html = get(t.s.addr, "/form", &[("Cookie", &cookie)]).text();
    let value = html
        .strip_prefix("<input type=\"hidden\" name=\"_xsrf\" value=\"")
        .and_then(|v| v.strip_suffix("\"/>"))
        .unwrap_or_else(|| panic!("{html}"));
    assert_eq!(t.post(Some(&t.token), &form(value), &[]), 200);
}

fn xsrf_named_app() -> Application {
    Application::with_settings(Settings {
        xsrf_cookies: true,
        xsrf_cookie_name: "__Host-xsrf".into(),
        xsrf_cookie_kwargs: CookieOptions {
            secure: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .route("/", xsrf_handler)
}

/// XSRFCookieNameTest.
#[test]
fn xsrf_cookie_name_and_kwargs() {
    let s = serve(xsrf_named_app);
    let r = get(s.addr, "/", &[]);
    let token = r.text();
    assert_eq!(
        r.headers_named("Set-Cookie"),
        [format!("__Host-xsrf={token}; Path=/; Secure")]
    );
    let cookie = format!("__Host-xsrf={token}");
    let ok = request(
        s.addr,
        "POST",
        "/",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &form(&token),
    );
    assert_eq!(ok.status, 200);
    let wrong_name = format!("_xsrf={token}");
    let r = request(
        s.addr,
        "POST",
        "/",
        &[("Cookie", &wrong_name), ("X-Xsrftoken", &token)],
        "",
    );
    assert_eq!(r.status, 403);
}

// ----- current_user and @authenticated ---------------------------------------------

/// Logged in as the `user` cookie's value; counts its lookups.
#[derive(Default)]
struct Page {
    lookups: usize,
}
impl RequestHandler for Page {
    fn get_current_user(&mut self, x: &Exchange) -> Result<Option<String>, Error> {
        self.lookups += 1;
        Ok(x.get_cookie("user").map(str::to_owned))
    }
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let Some(user) = authenticated(self, x)? else {
            return Ok(());
        };
        // Asked again: the first answer, kept.
        let again = self.current_user(x)?;
        x.write(format!(
            "{user} {again:?} {:?} {}",
            x.current_user(),
            self.lookups
        ));
        Ok(())
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        authenticated(self, x)?;
        x.write("posted");
        Ok(())
    }
}

/// Its `get_login_url` is its own (Tornado's AuthRedirectRequestHandler).
struct OwnLogin(&'static str);
impl RequestHandler for OwnLogin {
    fn get_login_url(&mut self, _x: &Exchange) -> Result<String, Error> {
        Ok(self.0.to_owned())
    }
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        authenticated(self, x)?;
        x.send_error(500); // never reached without a user
        Ok(())
    }
}

/// Sets the user in `prepare`, as a Tornado handler may.
struct Prepared;
impl RequestHandler for Prepared {
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_current_user(Some("from-prepare".into()));
        Ok(())
    }
    fn get_current_user(&mut self, _x: &Exchange) -> Result<Option<String>, Error> {
        panic!("not called when prepare set the user");
    }
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(authenticated(self, x)?.unwrap_or_default());
        Ok(())
    }
}

fn auth_app() -> Application {
    Application::with_settings(Settings {
        login_url: Some("/login".into()),
        ..Default::default()
    })
    .route("/page", Page::default)
    .route("/relative", || OwnLogin("/login"))
    .route("/absolute", || OwnLogin("http://example.com/login"))
    .route("/query", || OwnLogin("/login?from=here"))
    .route("/admin", || Authenticated(Page::default()))
    .route("/prepared", || Prepared)
}

/// AuthRedirectTest.
#[test]
fn auth_redirect() {
    let s = serve(auth_app);
    let r = get(s.addr, "/relative", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("Location").unwrap(), "/login?next=%2Frelative");
    let r = get(s.addr, "/absolute", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("Location").unwrap(),
        format!(
            "http://example.com/login?next=http%3A%2F%2F127.0.0.1%3A{}%2Fabsolute",
            s.addr.port()
        )
    );
    let r = get(s.addr, "/query", &[]);
    assert_eq!(r.header("Location").unwrap(), "/login?from=here");
    let r = get(s.addr, "/page?a=1&b=%20", &[]);
    assert_eq!(
        r.header("Location").unwrap(),
        "/login?next=%2Fpage%3Fa%3D1%26b%3D%2520"
    );
    let r = request(s.addr, "HEAD", "/page", &[], "");
    assert_eq!(r.status, 302);
}

#[test]
fn authenticated_user_and_refusals() {
    let s = serve(auth_app);
    let r = get(s.addr, "/page", &[("Cookie", "user=ada")]);
    // get_current_user ran once for the request.
    assert_eq!(r.text(), "ada Some(\"ada\") Some(\"ada\") 1");
    // Not GET or HEAD: 403, no redirect.
    assert_eq!(request(s.addr, "POST", "/page", &[], "").status, 403);
    assert_eq!(
        request(s.addr, "POST", "/page", &[("Cookie", "user=ada")], "").text(),
        "posted"
    );
    // An empty name is nobody.
    assert_eq!(get(s.addr, "/page", &[("Cookie", "user=")]).status, 302);
    // The wrapper guards every verb.
    assert_eq!(
        get(s.addr, "/admin", &[]).header("Location").unwrap(),
        "/login?next=%2Fadmin"
    );
    assert_eq!(request(s.addr, "POST", "/admin", &[], "").status, 403);
    assert_eq!(
        get(s.addr, "/admin", &[("Cookie", "user=root")]).status,
        200
    );
    assert_eq!(get(s.addr, "/prepared", &[]).text(), "from-prepare");
}

#[test]
fn authenticated_without_login_url_is_500() {
    let s = serve(|| Application::new().route("/page", Page::default));
    assert_eq!(get(s.addr, "/page", &[]).status, 500);
}

/// A logged-in user's new XSRF cookie lasts 30 days (Tornado's rule).
#[test]
fn xsrf_cookie_of_a_logged_in_user_lasts() {
    struct Form;
    impl RequestHandler for Form {
        fn get_current_user(&mut self, x: &Exchange) -> Result<Option<String>, Error> {
            Ok(x.get_cookie("user").map(str::to_owned))
        }
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            self.current_user(x)?;
            x.write(x.xsrf_token()?);
            Ok(())
        }
    }
    let s = serve(|| Application::new().route("/", || Form));
    let anonymous = get(s.addr, "/", &[]).header("Set-Cookie").unwrap();
    assert!(!anonymous.contains("expires"), "{anonymous}");
    let user = get(s.addr, "/", &[("Cookie", "user=ada")])
        .header("Set-Cookie")
        .unwrap();
    let in_30_days = format_timestamp(SystemTime::now() + Duration::from_secs(30 * 86400));
    assert!(
        user.contains(&format!("expires={}", &in_30_days[..16])),
        "{user} vs {in_30_days}"
    );
}

// ----- signed cookies ----------------------------------------------------------------

#[cfg(feature = "signed_cookies")]
mod signed {
    use std::process::Command;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::http_kit::{python, run};
    use crate::need::{self, Peer};
    use squall::web::{
        create_signed_value_with, decode_signed_value, decode_signed_value_with, CookieSecret,
        DecodeOptions, SignOptions,
    };

    const SECRET: &str = "0123456789";

    fn signed_handler() -> F {
        F(|x| {
            let path = x.request().path().to_owned();
            match path.as_str() {
                "/set" => x.set_signed_cookie("foo", b"bar")?,
                "/set_bytes" => x.set_signed_cookie("foo", [0xe9, 0, b';'])?,
                "/set_old" => x.set_secure_cookie("foo", "old name")?,
                "/get" => {
                    let value = x.get_signed_cookie("foo")?;
                    x.write(format!(
                        "{:?}",
                        value.map(|v| String::from_utf8_lossy(&v).into_owned())
                    ));
                }
                "/get_v2_only" => {
                    let opts = DecodeOptions {
                        min_version: 2,
                        ..Default::default()
                    };
                    let value = x.get_signed_cookie_with("foo", None, &opts)?;
                    x.write(format!("{value:?}"));
                }
                "/key_version" => x.write(format!("{:?}", x.get_signed_cookie_key_version("foo")?)),
                _ => x.send_error(404),
            }
            Ok(())
        })
    }

    fn routes(app: Application) -> Application {
        [
            "/set",
            "/set_bytes",
            "/set_old",
            "/get",
            "/get_v2_only",
            "/key_version",
        ]
        .iter()
        .fold(app, |app, path| app.route(path, signed_handler))
    }

    fn single_app() -> Application {
        routes(Application::with_settings(Settings {
            cookie_secret: Some(SECRET.into()),
            ..Default::default()
        }))
    }

    fn versions() -> CookieSecret {
        CookieSecret::versioned([(0, "ajklasdf0ojaisdf"), (1, "aslkjasaolwkjsdf")])
    }

    fn kv0_app() -> Application {
        routes(Application::with_settings(Settings {
            cookie_secret: Some(versions()),
            key_version: Some(0),
            ..Default::default()
        }))
    }

    fn kv1_app() -> Application {
        routes(Application::with_settings(Settings {
            cookie_secret: Some(versions()),
            key_version: Some(1),
            ..Default::default()
        }))
    }

    fn kv1_only_app() -> Application {
        routes(Application::with_settings(Settings {
            cookie_secret: Some(CookieSecret::versioned([(1, "aslkjasaolwkjsdf")])),
            key_version: Some(1),
            ..Default::default()
        }))
    }

    /// The `name=value` of a response's cookie, as a browser sends it back.
    fn cookie_pair(r: &Reply) -> String {
        let set = r.header("Set-Cookie").expect("Set-Cookie");
        set.split("; ").next().unwrap().to_owned()
    }

    /// SecureCookieV2Test.test_round_trip, through the server: 30 days.
    #[test]
    fn round_trip() {
        let s = serve(single_app);
        let r = get(s.addr, "/set", &[]);
        let set = r.header("Set-Cookie").unwrap();
        assert!(
            set.starts_with("foo=2|1:0|10:") && set.contains("; expires="),
            "{set}"
        );
        let in_30_days = format_timestamp(SystemTime::now() + Duration::from_secs(30 * 86400));
        assert!(set.contains(&in_30_days[..16]), "{set}");
        let cookie = cookie_pair(&r);
        assert_eq!(
            get(s.addr, "/get", &[("Cookie", &cookie)]).text(),
            "Some(\"bar\")"
        );
        assert_eq!(get(s.addr, "/get", &[]).text(), "None");
        // Altered: refused.
        let altered = cookie.replace("YmFy", "YmFz");
        assert_ne!(altered, cookie);
        assert_eq!(get(s.addr, "/get", &[("Cookie", &altered)]).text(), "None");
        // Arbitrary bytes, and Tornado's older method name.
        let r = get(s.addr, "/set_bytes", &[]);
        assert_eq!(
            get(s.addr, "/get", &[("Cookie", &cookie_pair(&r))]).text(),
            "Some(\"\u{fffd}\\0;\")"
        );
        let r = get(s.addr, "/set_old", &[]);
        assert_eq!(
            get(s.addr, "/get", &[("Cookie", &cookie_pair(&r))]).text(),
            "Some(\"old name\")"
        );
    }

    /// SecureCookieV1Test: version 1 values are still read, unless
    /// `min_version` is 2.
    #[test]
    fn v1_values_read() {
        let s = serve(single_app);
        let opts = SignOptions {
            version: 1,
            ..Default::default()
        };
        let v1 = create_signed_value_with(&SECRET.into(), "foo", "bar", &opts).unwrap();
        let cookie = format!("foo=\"{v1}\"");
        assert_eq!(
            get(s.addr, "/get", &[("Cookie", &cookie)]).text(),
            "Some(\"bar\")"
        );
        assert_eq!(
            get(s.addr, "/get_v2_only", &[("Cookie", &cookie)]).text(),
            "None"
        );
        assert_eq!(
            get(s.addr, "/key_version", &[("Cookie", &cookie)]).text(),
            "None"
        );
    }

    /// SecureCookieV2Test's key version cases.
    #[test]
    fn key_versions() {
        let kv0 = serve(kv0_app);
        let kv1 = serve(kv1_app);
        let kv1_only = serve(kv1_only_app);
        let from_kv0 = cookie_pair(&get(kv0.addr, "/set", &[]));
        let from_kv1 = cookie_pair(&get(kv1.addr, "/set", &[]));
        for (server, cookie) in [(&kv0, &from_kv0), (&kv1, &from_kv1), (&kv1, &from_kv0)] {
            assert_eq!(
                get(server.addr, "/get", &[("Cookie", cookie)]).text(),
                "Some(\"bar\")"
            );
        }
        assert_eq!(
            get(kv1.addr, "/key_version", &[("Cookie", &from_kv0)]).text(),
            "Some(0)"
        );
        assert_eq!(
            get(kv1.addr, "/key_version", &[("Cookie", &from_kv1)]).text(),
            "Some(1)"
        );
        // Key 0 retired: its cookies are no longer read.
        assert_eq!(
            get(kv1_only.addr, "/get", &[("Cookie", &from_kv0)]).text(),
            "None"
        );
        assert_eq!(
            get(kv1_only.addr, "/get", &[("Cookie", &from_kv1)]).text(),
            "Some(\"bar\")"
        );
    }

    #[test]
    fn no_secret_is_500() {
        let s = serve(|| routes(Application::new()));
        assert_eq!(get(s.addr, "/set", &[]).status, 500);
        assert_eq!(get(s.addr, "/get", &[]).status, 500);
        // A versioned secret without key_version cannot sign.
        let s = serve(|| {
            routes(Application::with_settings(Settings {
                cookie_secret: Some(versions()),
                ..Default::default()
            }))
        });
        assert_eq!(get(s.addr, "/set", &[]).status, 500);
    }

    /// SignedValueTest.test_expired and max_age_days.
    #[test]
    fn expiry() {
        let secret: CookieSecret = SECRET.into();
        let day = Duration::from_secs(86400);
        let present = UNIX_EPOCH + Duration::from_secs(1_300_000_000);
        let signed = create_signed_value_with(
            &secret,
            "k",
            "v",
            &SignOptions {
                now: Some(present - day * 32),
                ..Default::default()
            },
        )
        .unwrap();
        let at = |now, max_age_days| {
            decode_signed_value_with(
                &secret,
                "k",
                &signed,
                &DecodeOptions {
                    now: Some(now),
                    max_age_days,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        assert_eq!(at(present - day * 32, 31.0).unwrap(), b"v");
        assert_eq!(at(present, 31.0), None);
        assert_eq!(at(present, 33.0).unwrap(), b"v");
        assert_eq!(at(present - day * 30, 1.5), None);
    }

    /// Python's Tornado, same secret, fixed clock: the same bytes. Then
    /// each reads what the other made.
    const TORNADO_SIGN: &str = r#"
import sys, json
from tornado.web import create_signed_value
secret, kv_secrets = sys.argv[1], {0: "ajklasdf0ojaisdf", 1: "aslkjasaolwkjsdf"}
clock = lambda: 1300000000
out = {
    "v1": create_signed_value(secret, "key", "value", version=1, clock=clock).decode(),
    "v2": create_signed_value(secret, "key", "value", clock=clock).decode(),
    "v2_bytes": create_signed_value(secret, "user", b"\xe9\x00;ok").decode(),
    "v2_kv1": create_signed_value(kv_secrets, "user", "ada", key_version=1).decode(),
    "v2_unicode_name": create_signed_value(secret, "n\u00e9", "x", clock=clock).decode(),
}
print(json.dumps(out))
"#;

    #[test]
    fn python_tornado_signs_squall_reads() {
        if !need::ready(&[Peer::Tornado]) {
            return;
        }
        let (ok, out, err) = run(
            Command::new(python()).args(["-c", TORNADO_SIGN, SECRET]),
            None,
            Duration::from_secs(60),
        );
        assert!(ok, "{err}");
        let field = |name: &str| -> String {
            let start = out.find(&format!("\"{name}\": \"")).unwrap() + name.len() + 5;
            let end = start + out[start..].find('"').unwrap();
            out[start..end].to_owned()
        };
        let secret: CookieSecret = SECRET.into();
        let present = UNIX_EPOCH + Duration::from_secs(1_300_000_000);
        // Byte for byte what squall makes with the same inputs.
        for (version, name) in [(1, "v1"), (2, "v2")] {
            let ours = create_signed_value_with(
                &secret,
                "key",
                "value",
                &SignOptions {
                    version,
                    now: Some(present),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(ours, field(name));
        }
        let ours = create_signed_value_with(
            &secret,
            "n\u{e9}",
            "x",
            &SignOptions {
                now: Some(present),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ours, field("v2_unicode_name").replace("\\u00e9", "\u{e9}"));
        // Read by squall, directly and as a cookie through the server.
        assert_eq!(
            decode_signed_value(&secret, "user", &field("v2_bytes")).unwrap(),
            b"\xe9\x00;ok"
        );
        assert_eq!(
            decode_signed_value(&versions(), "user", &field("v2_kv1")).unwrap(),
            b"ada"
        );
        let s = serve(kv1_app);
        let kv1 = create_signed_value_with(
            &versions(),
            "foo",
            "bar",
            &SignOptions {
                key_version: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        let cookie = format!("foo=\"{kv1}\"");
        assert_eq!(
            get(s.addr, "/get", &[("Cookie", &cookie)]).text(),
            "Some(\"bar\")"
        );
    }

    /// Python's side of [`squall_signs_python_tornado_reads`]: the
    /// Set-Cookie header as a browser keeps it (http.cookies), then
    /// Tornado's decode_signed_value.
    const TORNADO_DECODE: &str = r#"
import sys, http.cookies
from tornado.web import decode_signed_value, get_signature_key_version
secret, header = sys.argv[1], sys.argv[2]
c = http.cookies.SimpleCookie()
c.load(header)
value = c["foo"].value
print(repr(decode_signed_value(secret, "foo", value)), get_signature_key_version(value))
kv = {0: "ajklasdf0ojaisdf", 1: "aslkjasaolwkjsdf"}
if len(sys.argv) > 3:
    c2 = http.cookies.SimpleCookie()
    c2.load(sys.argv[3])
    print(repr(decode_signed_value(kv, "foo", c2["foo"].value)))
"#;

    #[test]
    fn squall_signs_python_tornado_reads() {
        if !need::ready(&[Peer::Tornado]) {
            return;
        }
        let s = serve(single_app);
        let bytes = get(s.addr, "/set_bytes", &[]).header("Set-Cookie").unwrap();
        let kv = serve(kv1_app);
        let kv1 = get(kv.addr, "/set", &[]).header("Set-Cookie").unwrap();
        let (ok, out, err) = run(
            Command::new(python()).args(["-c", TORNADO_DECODE, SECRET, &bytes, &kv1]),
            None,
            Duration::from_secs(60),
        );
        assert!(ok, "{err}");
        assert_eq!(out, "b'\\xe9\\x00;' 0\nb'bar'\n");
    }

    /// A squall XSRF token and cookie as Tornado decodes them: the same
    /// raw token, so either service accepts the other's forms.
    const TORNADO_XSRF: &str = r#"
import sys, binascii
from tornado.web import RequestHandler
decode = lambda t: RequestHandler._decode_xsrf_token(None, t)
cookie, page = sys.argv[1], sys.argv[2]
v_c, raw_c, _ = decode(cookie)
v_p, raw_p, _ = decode(page)
print(v_c, v_p, raw_c == raw_p, binascii.b2a_hex(raw_c).decode())
"#;

    #[test]
    fn xsrf_tokens_read_by_python_tornado() {
        if !need::ready(&[Peer::Tornado]) {
            return;
        }
        let s = serve(xsrf_app);
        let r = get(s.addr, "/", &[]);
        let cookie = r.header("Set-Cookie").unwrap();
        let cookie = cookie
            .strip_prefix("_xsrf=")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let sent = format!("_xsrf={cookie}");
        let page = get(s.addr, "/", &[("Cookie", &sent)]).text();
        assert_ne!(page, cookie);
        let (ok, out, err) = run(
            Command::new(python()).args(["-c", TORNADO_XSRF, &cookie, &page]),
            None,
            Duration::from_secs(60),
        );
        assert!(ok, "{err}");
        let fields: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(fields[..3], ["2", "2", "True"], "{out}");
        // And Tornado's own v1 (hex) form of that token passes squall's check.
        let hex = fields[3];
        let r = request(
            s.addr,
            "POST",
            "/",
            &[("Cookie", &sent), ("X-Xsrftoken", hex)],
            "",
        );
        assert_eq!(r.status, 200);
    }
}

/// A streaming handler is checked when its head arrives, before
/// `prepare`: a forged upload is refused before any of its body is taken.
#[test]
fn xsrf_checks_streaming_handlers_before_prepare() {
    #[derive(Default)]
    struct Upload {
        bytes: usize,
    }
    impl RequestHandler for Upload {
        fn stream_request_body() -> bool {
            true
        }
        fn data_received(
            &mut self,
            _x: &Exchange,
            chunk: &[u8],
        ) -> Result<Option<squall::Future<()>>, Error> {
            self.bytes += chunk.len();
            Ok(None)
        }
        fn post(&mut self, x: &Exchange) -> Result<(), Error> {
            x.write(format!("{} bytes", self.bytes));
            Ok(())
        }
    }
    let s = serve(|| {
        Application::with_settings(Settings {
            xsrf_cookies: true,
            ..Default::default()
        })
        .route("/upload", Upload::default)
    });
    assert_eq!(request(s.addr, "POST", "/upload", &[], "data").status, 403);
    let headers = [("Cookie", "_xsrf=abcd"), ("X-Xsrftoken", "abcd")];
    let r = request(s.addr, "POST", "/upload", &headers, "data");
    assert_eq!((r.status, r.text().as_str()), (200, "4 bytes"));
}

/// Tornado checks in `_execute`, before `prepare`: a refused request runs
/// neither `prepare` nor the verb, and `on_finish` still runs.
#[test]
fn xsrf_check_comes_before_prepare() {
    static FINISHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    struct Guarded;
    impl RequestHandler for Guarded {
        fn prepare(&mut self, _x: &Exchange) -> Result<(), Error> {
            panic!("prepare ran for a forged request");
        }
        fn on_finish(&mut self) {
            FINISHED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let s = serve(|| {
        Application::with_settings(Settings {
            xsrf_cookies: true,
            ..Default::default()
        })
        .route("/", || Guarded)
    });
    let r = request(s.addr, "POST", "/", &[], "");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("403: Forbidden"), "{}", r.text());
    assert_eq!(FINISHED.load(std::sync::atomic::Ordering::SeqCst), 1);
}
