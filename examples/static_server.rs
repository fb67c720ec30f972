//! Serving a directory: Tornado's `static_path` setting, and a page that
//! links to its files with `static_url` (`?v=<hash>`, cached by browsers for
//! ten years). bench/static.sh measures it against nginx and Tornado.
//!
//! ```python
//! app = tornado.web.Application([(r"/", MainHandler)], static_path=DIR)
//! # in MainHandler.get: self.write('<a href="%s">' % self.static_url("app.css"))
//! ```
//!
//! Usage:
//!
//! ```text
//! static_server [DIR] [PORT]   serve DIR (default: .) under /static/ on
//!                              127.0.0.1:PORT (default 8888)
//! static_server --self-test    serve a temporary directory on a free port,
//!                              fetch a file, its 304 and a range, exit 0
//! ```
//!
//! Try `cargo run --release --features static --example static_server -- .`,
//! then `curl -i http://127.0.0.1:8888/static/Cargo.toml`, or with
//! `-H 'If-None-Match: <its ETag>'`, or `--range 0-99`.
//!
//! ci-args: --self-test

use squall::netutil::BindOptions;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use squall::http::HTTPServer;
use squall::web::{Application, Exchange, RequestHandler, Settings};
use squall::{Error, IOLoop};

/// Lists a link to `/static/<name>?v=...` for each file of the directory.
struct Index {
    names: Vec<String>,
}
impl RequestHandler for Index {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write("<ul>\n");
        for name in &self.names {
            x.write(format!(
                "<li><a href=\"{}\">{name}</a>\n",
                x.static_url(name)
            ));
        }
        x.write("</ul>\n");
        Ok(())
    }
}

fn app(dir: PathBuf) -> Application {
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    Application::with_settings(Settings {
        static_path: Some(dir),
        ..Default::default()
    })
    .route("/", move || Index {
        names: names.clone(),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--self-test") {
        return self_test();
    }
    let dir = PathBuf::from(args.first().map_or(".", String::as_str));
    let port: u16 = args.get(1).map_or(Ok(8888), |p| p.parse())?;
    let io_loop = IOLoop::new()?;
    let server = HTTPServer::with_loop(&io_loop, app(dir.clone()));
    server.listen_with(port, BindOptions::new().address("127.0.0.1"))?;
    println!(
        "serving {} on http://127.0.0.1:{port}/static/",
        dir.display()
    );
    io_loop.start()?;
    Ok(())
}

/// One request on a new connection; the whole answer as text.
fn fetch(port: u16, path: &str, headers: &str) -> std::io::Result<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
    )?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer)
}

fn self_test() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("squall-static-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("hello.txt"), "Hello, static world\n")?;
    let io_loop = IOLoop::new()?;
    let server = HTTPServer::with_loop(&io_loop, app(dir.clone()));
    let listeners = squall::netutil::bind_sockets_with(0, BindOptions::new().address("127.0.0.1"))?;
    let port = listeners[0].local_addr()?.port();
    server.add_sockets(listeners)?;
    let remote = io_loop.remote();
    let client = std::thread::spawn(move || -> Result<(), String> {
        let run = || -> std::io::Result<(String, String, String, String)> {
            let page = fetch(port, "/", "")?;
            let file = fetch(port, "/static/hello.txt", "")?;
            let etag = file
                .lines()
                .find_map(|l| l.strip_prefix("Etag: "))
                .unwrap_or("")
                .to_owned();
            let again = fetch(
                port,
                "/static/hello.txt",
                &format!("If-None-Match: {etag}\r\n"),
            )?;
            let range = fetch(port, "/static/hello.txt", "Range: bytes=7-12\r\n")?;
            Ok((page, file, again, range))
        };
        let result = run();
        let _ = remote.stop();
        let (page, file, again, range) = result.map_err(|e| e.to_string())?;
        let checks = [
            (
                "page links with a version",
                page.contains("/static/hello.txt?v="),
            ),
            (
                "file",
                file.starts_with("HTTP/1.1 200") && file.ends_with("Hello, static world\n"),
            ),
            ("304", again.starts_with("HTTP/1.1 304")),
            (
                "range",
                range.starts_with("HTTP/1.1 206") && range.ends_with("static"),
            ),
        ];
        for (what, ok) in checks {
            if !ok {
                return Err(format!("{what} failed:\n{page}\n{file}\n{again}\n{range}"));
            }
            println!("ok: {what}");
        }
        Ok(())
    });
    io_loop.start()?;
    let result = client.join().expect("client thread");
    std::fs::remove_dir_all(&dir)?;
    result?;
    println!("self-test passed");
    Ok(())
}
