//! Routing through a real `HTTPServer`, ported from Tornado's web_test.py:
//! named routes and `reverse_url` (with its escaping), `RedirectHandler`,
//! `ErrorHandler`, host matching (`add_handlers`, `default_host`, ports),
//! the default handler, redirects with any 3xx, and the framework's own
//! error answers (404, 405, an `HTTPError`'s 403) through `write_error`.

#[path = "common/http.rs"]
#[allow(dead_code)]
mod http_kit;

use http_kit::{raw_request, Reply, TestServer};
use squall::web::{
    Application, ErrorHandler, Exchange, HTTPError, RedirectHandler, RequestHandler, Routes,
    Settings,
};
use squall::{Error, ErrorKind};

/// Answers its fixed reply (Tornado's `HostMatchingTest.Handler`).
struct Says(&'static str);
impl RequestHandler for Says {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(self.0);
        Ok(())
    }
}

/// A GET request for `path` with extra header lines (`Host: 127.0.0.1`
/// unless they name one).
fn get(server: &TestServer, path: &str, headers: &str) -> Reply {
    let host = if headers.to_ascii_lowercase().contains("host:") {
        ""
    } else {
        "Host: 127.0.0.1\r\n"
    };
    let raw = format!("GET {path} HTTP/1.1\r\n{host}{headers}Connection: close\r\n\r\n");
    raw_request(server.addr, raw.as_bytes()).expect("a reply")
}

// ----- reverse_url -----------------------------------------------------------

#[test]
fn reverse_url_escapes_like_tornado() {
    let app = Application::new()
        .route("/decode_arg/{arg}", || Says("x"))
        .name("decode_arg")
        .route("/files/{path*}", || Says("x"))
        .name("files")
        .route("/", || Says("x"))
        .name("home");
    let r = |name: &str, args: &[&dyn std::fmt::Display]| app.reverse_url(name, args);
    assert_eq!(r("decode_arg", &[&"foo"]).unwrap(), "/decode_arg/foo");
    assert_eq!(r("decode_arg", &[&42]).unwrap(), "/decode_arg/42");
    assert_eq!(r("decode_arg", &[&"\u{e9}"]).unwrap(), "/decode_arg/%C3%A9");
    assert_eq!(
        r("decode_arg", &[&"1 + 1"]).unwrap(),
        "/decode_arg/1%20%2B%201"
    );
    assert_eq!(r("decode_arg", &[&"a/b"]).unwrap(), "/decode_arg/a%2Fb");
    // A trailing {path*} keeps its slashes.
    assert_eq!(r("files", &[&"a b/c.txt"]).unwrap(), "/files/a%20b/c.txt");
    assert_eq!(r("home", &[]).unwrap(), "/");
    let err = r("nope", &[]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("nope"), "{err}");
    assert_eq!(
        r("decode_arg", &[]).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        r("decode_arg", &[&1, &2]).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[cfg(feature = "regex")]
#[test]
fn reverse_url_of_regex_routes() {
    let app = Application::new()
        .route_regex(r"/decode_arg/(.*)", || Says("x"))
        .name("decode_arg")
        .route_regex(r"/(?P<year>\d{4})/(?P<slug>[a-z-]+)\.html$", || Says("x"))
        .name("post")
        .route_regex(r"/(?:a|b)/(\d+)", || Says("x"))
        .name("complex");
    assert_eq!(
        app.reverse_url("decode_arg", &[&"1 + 1"]).unwrap(),
        "/decode_arg/1%20%2B%201"
    );
    assert_eq!(
        app.reverse_url("post", &[&2026, &"hi"]).unwrap(),
        "/2026/hi.html"
    );
    // Tornado: "Cannot reverse url regex".
    let err = app.reverse_url("complex", &[&1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

/// Names in host groups are reversible too; a handler reverses through
/// its exchange.
struct Links;
impl RequestHandler for Links {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let user = x.reverse_url("user", &[&"ada lovelace"])?;
        let admin = x.reverse_url("admin", &[])?;
        x.write(format!("{user} {admin}"));
        Ok(())
    }
}

#[test]
fn exchange_reverse_url() {
    let server = TestServer::start(
        || {
            Application::new()
                .route("/links", || Links)
                .route("/user/{name}", || Says("user"))
                .name("user")
                .add_handlers(
                    "admin.example.com",
                    Routes::new()
                        .route("/admin", || Says("admin"))
                        .name("admin"),
                )
        },
        |_| {},
    );
    let reply = get(&server, "/links", "");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "/user/ada%20lovelace /admin");
}

// ----- RedirectHandler, ErrorHandler, redirect ---------------------------------

fn redirect_app() -> Application {
    let app = Application::new()
        .route("/src", || RedirectHandler::new("/dst"))
        .route("/src2", || RedirectHandler::new("/dst2?foo=bar"))
        .route("/temp", || {
            RedirectHandler::new("/elsewhere").permanent(false)
        })
        .route("/user/{id}/{tab}", || RedirectHandler::new("/u/{id}#{tab}"))
        .route("/bad/{id}", || RedirectHandler::new("/x/{nope}"))
        .route("/gone", || ErrorHandler::new(410))
        .route("/see-other", || StatusRedirect(303))
        .route("/not-3xx", || StatusRedirect(200));
    #[cfg(feature = "regex")]
    let app = app.route_regex(r"/(.*?)/(.*?)/(.*)", || {
        RedirectHandler::new("/{1}/{0}/{2}")
    });
    app
}

/// Redirects with the status it holds.
struct StatusRedirect(u16);
impl RequestHandler for StatusRedirect {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        match x.redirect_with_status("/next", self.0) {
            Err(err) if err.kind() == ErrorKind::InvalidArgument => {
                x.write(format!("refused: {err}"));
                Ok(())
            }
            other => other,
        }
    }
}

#[test]
fn redirect_handler() {
    let server = TestServer::start(redirect_app, |_| {});
    let location = |path: &str| {
        let reply = get(&server, path, "");
        (reply.status, reply.header("Location").unwrap_or_default())
    };
    assert_eq!(location("/src"), (301, "/dst".to_owned()));
    assert_eq!(location("/src?foo=bar"), (301, "/dst?foo=bar".to_owned()));
    assert_eq!(
        location("/src2?foo2=bar2"),
        (301, "/dst2?foo=bar&foo2=bar2".to_owned())
    );
    assert_eq!(location("/temp"), (302, "/elsewhere".to_owned()));
    // Named captures by name; arguments re-encoded, grouped by name.
    assert_eq!(location("/user/7/posts"), (301, "/u/7#posts".to_owned()));
    assert_eq!(
        location("/src?b=1&a=x%20y&b=2"),
        (301, "/dst?b=1&b=2&a=x+y".to_owned())
    );
    // A target naming a capture the route lacks: the handler's error, 500.
    assert_eq!(get(&server, "/bad/1", "").status, 500);
    #[cfg(feature = "regex")]
    assert_eq!(location("/a/b/c"), (301, "/b/a/c".to_owned()));
}

#[test]
fn redirects_with_any_3xx() {
    let server = TestServer::start(redirect_app, |_| {});
    let reply = get(&server, "/see-other", "");
    assert_eq!(reply.status, 303);
    assert_eq!(reply.header("Location").as_deref(), Some("/next"));
    let reply = get(&server, "/not-3xx", "");
    assert_eq!(reply.status, 200);
    assert!(reply.text().starts_with("refused: "), "{}", reply.text());
    assert_eq!(reply.header("Location"), None);
}

#[test]
fn error_handler() {
    let server = TestServer::start(redirect_app, |_| {});
    let reply = get(&server, "/gone", "");
    assert_eq!(reply.status, 410);
    assert!(reply.text().contains("410: Gone"), "{}", reply.text());
}

// ----- hosts -----------------------------------------------------------------

/// Tornado's `HostMatchingTest`.
#[test]
fn host_matching() {
    let server = TestServer::start(
        || {
            let app = Application::new()
                .route("/foo", || Says("wildcard"))
                .add_handlers(
                    "www.example.com",
                    Routes::new().route("/foo", || Says("[0]")),
                )
                .add_handlers(
                    r"www\.example\.com",
                    Routes::new().route("/bar", || Says("[1]")),
                )
                .add_handlers(
                    "www.example.com",
                    Routes::new().route("/baz", || Says("[2]")),
                )
                .add_handlers("*.sub.test", Routes::new().route("/baz", || Says("[sub]")));
            #[cfg(feature = "regex")]
            let app = app.add_handlers("www.e.*e.com", Routes::new().route("/baz", || Says("[3]")));
            app
        },
        |_| {},
    );
    assert_eq!(get(&server, "/foo", "").text(), "wildcard");
    assert_eq!(get(&server, "/bar", "").status, 404);
    assert_eq!(get(&server, "/baz", "").status, 404);
    let at = |path: &str, host: &str| get(&server, path, &format!("Host: {host}\r\n"));
    assert_eq!(at("/foo", "www.example.com").text(), "[0]");
    assert_eq!(at("/bar", "www.example.com").text(), "[1]");
    assert_eq!(at("/baz", "www.example.com").text(), "[2]");
    // The port is left out, letter case ignored.
    assert_eq!(at("/bar", "WWW.Example.com:8080").text(), "[1]");
    // A path the host's routes lack falls through to the routes for any host.
    assert_eq!(at("/foo", "other.example.com").text(), "wildcard");
    assert_eq!(at("/baz", "a.b.sub.test").text(), "[sub]");
    assert_eq!(at("/baz", "sub.test").status, 404);
    #[cfg(feature = "regex")]
    assert_eq!(at("/baz", "www.exe.com").text(), "[3]");
}

/// Tornado's `DefaultHostMatchingTest`.
#[test]
fn default_host_matching() {
    let app = |default_host: &'static str| {
        move || {
            Application::with_settings(Settings {
                default_host: Some(default_host.to_owned()),
                ..Default::default()
            })
            .add_handlers(
                "www.example.com",
                Routes::new().route("/foo", || Says("[0]")),
            )
            .add_handlers(
                r"www\.example\.com",
                Routes::new().route("/bar", || Says("[1]")),
            )
            .add_handlers("www.test.com", Routes::new().route("/baz", || Says("[2]")))
        }
    };
    let server = TestServer::start(app("www.example.com"), |_| {});
    assert_eq!(get(&server, "/foo", "").text(), "[0]");
    assert_eq!(get(&server, "/bar", "").text(), "[1]");
    assert_eq!(get(&server, "/baz", "").status, 404);
    // Through a proxy that names the client, no default host.
    assert_eq!(get(&server, "/foo", "X-Real-Ip: 127.0.0.1\r\n").status, 404);
    let server = TestServer::start(app("www.test.com"), |_| {});
    assert_eq!(get(&server, "/baz", "").text(), "[2]");
    assert_eq!(get(&server, "/foo", "").status, 404);
}

// ----- the framework's own error pages through write_error ---------------------

/// Writes its error pages as `custom <status>`; only GET.
struct Custom;
impl RequestHandler for Custom {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        if x.request().query() == "forbid" {
            return Err(HTTPError::new(403).log_message("no").into());
        }
        x.write("ok");
        Ok(())
    }
    fn write_error(x: &Exchange, status: u16, _error: Option<&Error>) {
        x.write(format!("custom {status}"));
    }
}

/// Tornado's `default_handler_class` for a custom 404 page.
struct NotFound;
impl RequestHandler for NotFound {
    fn prepare(&mut self, _x: &Exchange) -> Result<(), Error> {
        Err(HTTPError::new(404).into())
    }
    fn write_error(x: &Exchange, status: u16, _error: Option<&Error>) {
        x.write(format!("nothing here ({status})"));
    }
}

#[test]
fn error_pages_through_write_error() {
    let server = TestServer::start(
        || {
            Application::new()
                .route("/custom", || Custom)
                .default_handler(|| NotFound)
                .add_handlers("api.test", Routes::new().route("/custom", || Custom))
        },
        |_| {},
    );
    let reply = get(&server, "/custom", "");
    assert_eq!((reply.status, reply.text()), (200, "ok".to_owned()));
    let reply = get(&server, "/custom?forbid", "");
    assert_eq!((reply.status, reply.text()), (403, "custom 403".to_owned()));
    // 405: a method the handler does not implement, and one HTTP lacks.
    for method in ["POST", "DELETE", "BREW"] {
        let raw = format!("{method} /custom HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let reply = raw_request(server.addr, raw.as_bytes()).unwrap();
        assert_eq!(
            (reply.status, reply.text()),
            (405, "custom 405".to_owned()),
            "{method}"
        );
    }
    // No route: the default handler's page, for any host.
    let reply = get(&server, "/missing", "");
    assert_eq!(
        (reply.status, reply.text()),
        (404, "nothing here (404)".to_owned())
    );
    let reply = get(&server, "/missing", "Host: api.test\r\n");
    assert_eq!(
        (reply.status, reply.text()),
        (404, "nothing here (404)".to_owned())
    );
    // POST to a missing path, with a body: the default handler still answers.
    let raw =
        b"POST /missing HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    let reply = raw_request(server.addr, raw).unwrap();
    assert_eq!(
        (reply.status, reply.text()),
        (404, "nothing here (404)".to_owned())
    );
}

/// Without a default handler: Tornado's plain 404 page.
#[test]
fn plain_404_without_default_handler() {
    let server = TestServer::start(|| Application::new().route("/", || Says("x")), |_| {});
    let reply = get(&server, "/missing", "");
    assert_eq!(reply.status, 404);
    assert!(reply.text().contains("404: Not Found"), "{}", reply.text());
}
