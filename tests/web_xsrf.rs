//! XSRF protection and login through a real server: Tornado's web_test.py
//! XSRFTest, XSRFCookieNameTest and AuthRedirectTest, ported; and squall's
//! XSRF tokens as Python's Tornado decodes them (skipped where Tornado is
//! not installed). Cookies: tests/web_cookies.rs.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

#[path = "common/peers.rs"]
mod need;

#[path = "common/web.rs"]
mod web_kit;

use std::process::Command;
use std::time::{Duration, SystemTime};

use http_kit::{python, run, TestServer};
use need::Peer;
use squall::httputil::format_timestamp;
use squall::web::{
    authenticated, Application, Authenticated, CookieOptions, Exchange, RequestHandler, Settings,
};
use squall::Error;
use web_kit::{get, request, serve, F};

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
