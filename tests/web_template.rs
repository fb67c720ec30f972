//! Templates through a real `HTTPServer` (feature `template`): `render` and
//! `render_string` from `template_path`, autoescaping on and off,
//! `{% extends %}` / `{% block %}` / `{% include %}`, the namespace
//! (`request`, `reverse_url`, Tornado's escape functions), errors that name
//! the template and line, and reloading with `compiled_template_cache` off.

#[path = "common/http.rs"]
#[allow(dead_code)]
mod http_kit;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use http_kit::{raw_request, Reply, TestServer};
use minijinja::context;
use squall::web::{Application, Exchange, RequestHandler, Settings};
use squall::{Error, ErrorKind};

/// A directory of templates, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str, files: &[(&str, &str)]) -> Dir {
        let dir = std::env::temp_dir().join(format!("squall-tpl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (file, text) in files {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Dir(dir)
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.0.join(file), text).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const FILES: &[(&str, &str)] = &[
    (
        "base.html",
        "<title>{% block title %}default{% endblock %}</title>\n{% block body %}{% endblock %}",
    ),
    (
        "page.html",
        "{% extends \"base.html\" %}{% block title %}{{ title }}{% endblock %}\
         {% block body %}<p>{{ name }}</p>{% include \"part.html\" %}{% endblock %}",
    ),
    (
        "part.html",
        "[{% for i in items %}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}]",
    ),
    (
        "request.html",
        "{{ request.method }} {{ request.path }} {{ request.query }} {{ request.host_name }} \
         {{ request.headers[\"x-test\"] }} {{ request.arguments.a[1] }} {{ request.path_args.id }} \
         {{ reverse_url(\"item\", \"a b\") }} {{ url_escape(\"x y\") }}",
    ),
    (
        "raw.html",
        "{{ html }}|{{ html|safe }}|{{ html|xhtml_escape }}",
    ),
    ("sub/inner.txt", "inner {{ n }}"),
    (
        "helpers.html",
        "{{ xsrf_form_html() }}@@{{ current_user() }}@@{{ static_url(\"app.css\") }}",
    ),
    ("syntax.html", "line one\n{% if %}"),
    ("undefined.html", "line one\nline two {{ missing_name }}"),
    ("includes_bad.html", "{% include \"undefined.html\" %}"),
];

/// Renders the template named by the query (`?page.html`) with a context.
struct Render;
impl RequestHandler for Render {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let query = x.request().query();
        let name = query.split('&').next().unwrap_or("").to_owned();
        x.render(
            &name,
            context! {
                title => "T<i>",
                name => "<ada & bob>",
                items => vec![1, 2, 3],
                html => "<b>'hi'</b>",
                n => 7,
            },
        )
    }
}

/// A logged-in user's page using Tornado's request helpers.
struct Helpers;
impl RequestHandler for Helpers {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_current_user(Some("ada".to_owned()));
        x.render("helpers.html", context! {})
    }
}

/// Renders with `render_string`, reports a failure's kind and message.
struct RenderString;
impl RequestHandler for RenderString {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let name = x.request().path_arg("name").unwrap_or("").to_owned();
        let mut ctx = HashMap::new();
        ctx.insert("n", 42);
        match x.render_string(&name, &ctx) {
            Ok(text) => x.write(format!("ok:{text}")),
            Err(err) => x.write(format!("{:?}:{err}", err.kind())),
        }
        Ok(())
    }
}

fn server(dir: &Path, settings: Settings) -> TestServer {
    let dir = dir.to_owned();
    TestServer::start(
        move || {
            Application::with_settings(Settings {
                template_path: Some(dir),
                ..settings
            })
            .route("/render/{id}", || Render)
            .route("/string/{name*}", || RenderString)
            .route("/items/{x}", || Render)
            .name("item")
            .route("/helpers", || Helpers)
        },
        |_| {},
    )
}

fn get(server: &TestServer, path: &str, headers: &str) -> Reply {
    let raw = format!(
        "GET {path} HTTP/1.1\r\nHost: Example.com:8080\r\n{headers}Connection: close\r\n\r\n"
    );
    raw_request(server.addr, raw.as_bytes()).expect("a reply")
}

#[test]
fn render_extends_blocks_includes_escaped() {
    let dir = Dir::new("blocks", FILES);
    let server = server(&dir.0, Settings::default());
    let reply = get(&server, "/render/1?page.html", "");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("Content-Type").as_deref(),
        Some("text/html; charset=UTF-8")
    );
    assert_eq!(
        reply.text(),
        "<title>T&lt;i&gt;</title>\n<p>&lt;ada &amp; bob&gt;</p>[1,2,3]"
    );
    let reply = get(&server, "/render/1?raw.html", "");
    assert_eq!(
        reply.text(),
        "&lt;b&gt;&#x27;hi&#x27;&lt;/b&gt;|<b>'hi'</b>|&lt;b&gt;&#x27;hi&#x27;&lt;/b&gt;"
    );
}

#[test]
fn autoescape_off() {
    let dir = Dir::new("noescape", FILES);
    let server = server(
        &dir.0,
        Settings {
            autoescape: false,
            ..Default::default()
        },
    );
    let reply = get(&server, "/render/1?page.html", "");
    assert_eq!(
        reply.text(),
        "<title>T<i></title>\n<p><ada & bob></p>[1,2,3]"
    );
}

#[test]
fn the_request_in_the_namespace() {
    let dir = Dir::new("request", FILES);
    let server = server(&dir.0, Settings::default());
    let reply = get(
        &server,
        "/render/42?request.html&a=1&a=2",
        "X-Test: <yes>\r\n",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.text(),
        "GET /render/42 request.html&amp;a=1&amp;a=2 Example.com &lt;yes&gt; 2 42 /items/a%20b x+y"
    );
}

#[test]
fn render_string_and_errors() {
    let dir = Dir::new("errors", FILES);
    let server = server(&dir.0, Settings::default());
    let text = |path: &str| get(&server, path, "").text();
    assert_eq!(text("/string/sub/inner.txt"), "ok:inner 42");
    let missing = text("/string/nope.html");
    assert!(missing.starts_with("Template:"), "{missing}");
    assert!(missing.contains("nope.html"), "{missing}");
    let syntax = text("/string/syntax.html");
    assert!(syntax.starts_with("Template:"), "{syntax}");
    assert!(syntax.contains("syntax.html:2"), "{syntax}");
    let undefined = text("/string/undefined.html");
    assert!(undefined.contains("undefined.html:2"), "{undefined}");
    // An error in an included template names it.
    let included = text("/string/includes_bad.html");
    assert!(included.contains("undefined.html"), "{included}");
    // No way out of the template directory.
    let _outside = Dir::new("outside", &[("secret.html", "secret")]);
    let climb = format!(
        "/string/..%2Fsquall-tpl-outside-{}%2Fsecret.html",
        std::process::id()
    );
    let escaped = text(&climb);
    assert!(escaped.starts_with("Template:"), "{escaped}");
    // `render` that fails: 500, the error logged with the template.
    let reply = get(&server, "/render/1?undefined.html", "");
    assert_eq!(reply.status, 500);
    assert!(
        !reply.text().contains("line one"),
        "nothing rendered is sent"
    );
}

#[test]
fn compiled_template_cache() {
    // On (the default): a template is read once.
    let dir = Dir::new("cache-on", &[("t.html", "one")]);
    let srv = server(&dir.0, Settings::default());
    assert_eq!(get(&srv, "/string/t.html", "").text(), "ok:one");
    dir.write("t.html", "two!");
    assert_eq!(get(&srv, "/string/t.html", "").text(), "ok:one");
    // Off: a change on disk shows at the next render.
    let dir = Dir::new("cache-off", &[("t.html", "one")]);
    let srv = server(
        &dir.0,
        Settings {
            compiled_template_cache: false,
            ..Default::default()
        },
    );
    assert_eq!(get(&srv, "/string/t.html", "").text(), "ok:one");
    // A different length, so the change shows whatever the clock's grain.
    dir.write("t.html", "two!");
    assert_eq!(get(&srv, "/string/t.html", "").text(), "ok:two!");
}

#[test]
fn render_after_finish_is_refused() {
    struct Twice;
    impl RequestHandler for Twice {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.render("t.html", ())?;
            let err = x.render("t.html", ()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidState);
            Ok(())
        }
    }
    let dir = Dir::new("twice", &[("t.html", "once")]);
    let path = dir.0.clone();
    let server = TestServer::start(
        move || {
            Application::with_settings(Settings {
                template_path: Some(path),
                ..Default::default()
            })
            .route("/", || Twice)
        },
        |_| {},
    );
    let reply = get(&server, "/", "");
    assert_eq!((reply.status, reply.text()), (200, "once".to_owned()));
}

/// Tornado's `get_template_namespace` helpers: `xsrf_form_html()` (not
/// escaped twice), `current_user()`, and with static files `static_url()`
/// with its version.
#[test]
fn request_helpers_in_the_namespace() {
    let dir = Dir::new("helpers", FILES);
    dir.write("app.css", "body {}");
    let server = server(
        &dir.0,
        Settings {
            static_path: Some(dir.0.clone()),
            ..Settings::default()
        },
    );
    let reply = get(&server, "/helpers", "");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    let parts: Vec<&str> = text.split("@@").collect();
    assert!(
        parts[0].starts_with("<input type=\"hidden\" name=\"_xsrf\" value=\"2|"),
        "{text}"
    );
    assert_eq!(parts[1], "ada");
    if cfg!(feature = "static") {
        assert!(parts[2].starts_with("/static/app.css?v="), "{text}");
    } else {
        assert_eq!(parts[2], "");
    }
}

/// Every render is bounded by `template_fuel`: a template that would loop
/// for ever or write gigabytes fails with a template error (a 500 from
/// `render`), soon, and the server goes on; `None` lifts the bound.
#[test]
fn template_fuel_bounds_every_render() {
    let files = &[
        (
            "forever.html",
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        ),
        (
            "huge.html",
            "{% for i in range(100000) %}{{ \"ab\" * 50000 }}{% endfor %}",
        ),
        ("self.html", "x{% include \"self.html\" %}"),
        ("big.html", "{{ \"ab\" * 100000 }}"),
    ];
    let dir = Dir::new("fuel", files);
    let server = server(
        &dir.0,
        Settings {
            template_fuel: Some(100_000),
            ..Default::default()
        },
    );
    let text = |path: &str| get(&server, path, "").text();
    let started = std::time::Instant::now();
    for name in ["forever.html", "huge.html"] {
        let failed = text(&format!("/string/{name}"));
        assert!(failed.starts_with("Template:"), "{failed}");
        assert!(failed.contains("fuel"), "{failed}");
        assert_eq!(get(&server, &format!("/render/1?{name}"), "").status, 500);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Recursion stops at minijinja's limit, not at the stack's end.
    let deep = text("/string/self.html");
    assert!(deep.starts_with("Template:"), "{deep}");
    // 200 KB is within 100,000 fuel (6.4 MB of output).
    assert_eq!(text("/string/big.html").len(), "ok:".len() + 200_000);
    drop(server);
    // Unbounded: the same loop, smaller, runs to its end.
    dir.write(
        "loop.html",
        "{% for i in range(2000) %}{% for j in range(200) %}x{% endfor %}{% endfor %}",
    );
    let server = self::server(
        &dir.0,
        Settings {
            template_fuel: None,
            ..Default::default()
        },
    );
    assert_eq!(
        get(&server, "/string/loop.html", "").text().len(),
        3 + 400_000
    );
    assert_eq!(Settings::default().template_fuel, Some(1_000_000));
}
