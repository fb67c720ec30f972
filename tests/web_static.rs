//! Static files (feature `static`): Tornado's `StaticFileTest` cases
//! (web_test.py) ported, path traversal, streaming a 1 GiB file with
//! bounded memory, and curl's `--range`, `-z` and `-I`.

#[path = "common/http.rs"]
#[allow(dead_code)]
mod http_kit;

#[path = "common/peers.rs"]
mod need;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use http_kit::{connect, read_reply, run, Reply, TestServer};
use sha2::{Digest, Sha256};
use squall::web::{Application, Exchange, RequestHandler, Settings, StaticFileHandler};
use squall::Error;

/// Tornado's test robots.txt: 26 bytes.
const ROBOTS: &str = "User-agent: *\nDisallow: /\n";

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("squall-web-static-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A static root inside `scratch/root` (its sibling `scratch/secret.txt`
/// must never be served), with Tornado's files and a few more.
fn fixture(name: &str) -> (Scratch, PathBuf) {
    let scratch = Scratch::new(name);
    let root = scratch.0.join("root");
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("robots.txt"), ROBOTS).unwrap();
    std::fs::write(root.join("favicon.ico"), b"\x00\x00\x01\x00icon").unwrap();
    std::fs::write(root.join("sample.xml.gz"), b"\x1f\x8bnot really").unwrap();
    std::fs::write(root.join("sample.xml.bz2"), b"BZhnot really").unwrap();
    std::fs::write(root.join("app.css"), "body { margin: 0 }\n").unwrap();
    std::fs::write(root.join("dir/index.html"), "<p>index</p>").unwrap();
    std::fs::write(root.join("sub/deeper/x.txt"), "deep").unwrap();
    std::fs::write(root.join("empty.txt"), "").unwrap();
    std::fs::write(scratch.0.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(scratch.0.join("secret.txt"), root.join("out-link")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("out-rel-link")).unwrap();
    std::os::unix::fs::symlink(scratch.0.join("root"), root.join("sub/root-abs-link")).unwrap();
    std::os::unix::fs::symlink("../robots.txt", root.join("sub/in-link")).unwrap();
    std::os::unix::fs::symlink(root.join("robots.txt"), root.join("abs-in-link")).unwrap();
    (scratch, root)
}

/// Writes its `static_url`s, as Tornado's `StaticUrlHandler`.
struct StaticUrl;
impl RequestHandler for StaticUrl {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let path = x.request().path_arg("path").unwrap_or("").to_owned();
        x.set_header("Content-Type", "text/plain")?;
        if x.request().query() == "host" {
            x.write(x.static_url_with_host(&path));
        } else {
            x.write(x.static_url(&path));
        }
        Ok(())
    }
}

/// The application of most tests: `static_path`, a `static_url` page, and a
/// hand-routed handler with `default_filename`.
fn server(root: &Path) -> TestServer {
    let root = root.to_owned();
    TestServer::start(
        move || {
            let files = StaticFileHandler::new(&root).default_filename("index.html");
            let bare = StaticFileHandler::new(&root);
            Application::with_settings(Settings {
                static_path: Some(root),
                ..Default::default()
            })
            .route("/static_url/{path*}", || StaticUrl)
            .route("/files/{path*}", move || files.clone())
            .route("/bare/{path*}", move || bare.clone())
        },
        |_| {},
    )
}

/// One request on a new connection: `method path` with `headers`.
fn ask(s: &TestServer, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    let mut conn = connect(s.addr);
    conn.write_all(raw.as_bytes()).unwrap();
    read_reply(&mut conn, &mut Vec::new(), method == "HEAD").expect("a reply")
}

fn get(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> Reply {
    ask(s, "GET", path, headers)
}

/// The version squall gives `content`: SHA-256, 32 hex digits.
fn version_of(content: &[u8]) -> String {
    Sha256::digest(content)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn static_files_and_default_routes() {
    let (_scratch, root) = fixture("files");
    let s = server(&root);
    for path in ["/robots.txt", "/static/robots.txt"] {
        let r = get(&s, path, &[]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.text(), ROBOTS);
        assert_eq!(
            r.header("Content-Type").as_deref(),
            Some("text/plain; charset=UTF-8")
        );
        assert_eq!(r.header("Content-Length").as_deref(), Some("26"));
        assert_eq!(r.header("Accept-Ranges").as_deref(), Some("bytes"));
        assert!(r.header("Last-Modified").unwrap().ends_with(" GMT"));
        // Not versioned: not cached for long.
        assert_eq!(r.header("Cache-Control"), None);
        assert_eq!(r.header("Expires"), None);
    }
    let r = get(&s, "/favicon.ico", &[]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"\x00\x00\x01\x00icon"[..])
    );
    assert_eq!(r.header("Content-Type").as_deref(), Some("image/x-icon"));
    let r = get(&s, "/static/sub/deeper/x.txt", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "deep"));
    let r = get(&s, "/static/empty.txt", &[]);
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("Content-Length").as_deref(), Some("0"));
}

/// Tornado's `test_static_compressed_files`.
#[test]
fn compressed_files_keep_their_own_type() {
    let (_scratch, root) = fixture("compressed");
    let s = server(&root);
    let r = get(&s, "/static/sample.xml.gz", &[]);
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/gzip")
    );
    let r = get(&s, "/static/sample.xml.bz2", &[]);
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/octet-stream")
    );
    let r = get(&s, "/static/app.css", &[]);
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("text/css; charset=UTF-8")
    );
}

/// Tornado's `test_static_url`, `test_absolute_static_url`, and a missing
/// file (no version).
#[test]
fn static_urls_carry_the_content_version() {
    let (_scratch, root) = fixture("urls");
    let s = server(&root);
    let v = version_of(ROBOTS.as_bytes());
    let r = get(&s, "/static_url/robots.txt", &[]);
    assert_eq!(r.text(), format!("/static/robots.txt?v={v}"));
    let r = get(&s, "/static_url/robots.txt?host", &[]);
    assert_eq!(
        r.text(),
        format!("http://example.com/static/robots.txt?v={v}")
    );
    let r = get(&s, "/static_url/missing.txt", &[]);
    assert_eq!(r.text(), "/static/missing.txt");
    // A path out of the root gets no version (nothing is read there).
    let r = get(&s, "/static_url/..%2fsecret.txt", &[]);
    assert_eq!(r.text(), "/static/../secret.txt");
    // The ETag is the version, quoted.
    let r = get(&s, "/static/robots.txt", &[]);
    assert_eq!(r.header("Etag"), Some(format!("\"{v}\"")));
    // And outside a request, for templates.
    let settings = Settings {
        static_path: Some(root.clone()),
        ..Default::default()
    };
    assert_eq!(
        squall::web::static_file::make_static_url(&settings, "robots.txt"),
        format!("/static/robots.txt?v={v}")
    );
    assert_eq!(
        squall::web::static_file::make_static_url_without_version(&settings, "robots.txt"),
        "/static/robots.txt"
    );
}

/// Tornado's `test_static_with_version` cache headers: `?v=` caches for
/// ten years.
#[test]
fn versioned_urls_are_cached_for_ten_years() {
    let (_scratch, root) = fixture("cache");
    let s = server(&root);
    let r = get(&s, "/static/robots.txt?v=whatever", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Cache-Control").as_deref(),
        Some("max-age=315360000")
    );
    let expires = r.header("Expires").expect("Expires");
    let expires = parse_year(&expires);
    let now_year = 1970
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 31_556_952) as i64;
    assert!(
        (now_year + 9..=now_year + 11).contains(&expires),
        "{expires}"
    );
}

/// The year of an HTTP date.
fn parse_year(date: &str) -> i64 {
    date.split(' ').nth(3).unwrap().parse().unwrap()
}

/// Tornado's `test_static_etag`, `test_static_304_if_none_match`,
/// `test_static_304_etag_modified_bug`, and the list and weak forms.
#[test]
fn etag_and_if_none_match() {
    let (_scratch, root) = fixture("etag");
    let s = server(&root);
    let r = get(&s, "/static/robots.txt", &[]);
    let etag = r.header("Etag").unwrap();
    let last_modified = r.header("Last-Modified").unwrap();
    let weak = format!("W/{etag}");
    let listed = format!("\"nope\", {etag}");
    for inm in [etag.as_str(), &weak, &listed, "*"] {
        let r = get(&s, "/static/robots.txt", &[("If-None-Match", inm)]);
        assert_eq!(r.status, 304, "{inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("Etag").as_deref(), Some(etag.as_str()));
        assert_eq!(r.header("Content-Type"), None, "a 304 has no content type");
        assert_eq!(r.header("Content-Length"), None);
    }
    // If-None-Match, present, decides: a stale ETag is a 200 even though
    // If-Modified-Since alone would be a 304.
    let r = get(
        &s,
        "/static/robots.txt",
        &[
            ("If-None-Match", "\"stale\""),
            ("If-Modified-Since", &last_modified),
        ],
    );
    assert_eq!((r.status, r.text().as_str()), (200, ROBOTS));
    // A new content of the same size, at once (likely the same second): a
    // new ETag, the new content.
    let changed = "User-agent: *\nDisallow: *\n";
    std::fs::write(root.join("robots.txt"), changed).unwrap();
    let r = get(&s, "/static/robots.txt", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Etag"),
        Some(format!("\"{}\"", version_of(changed.as_bytes())))
    );
    assert_eq!(r.text(), changed);
}

/// Tornado's `test_static_304_if_modified_since`,
/// `test_static_if_modified_since_pre_epoch`, `..._time_zone`.
#[test]
fn if_modified_since() {
    let (_scratch, root) = fixture("ims");
    let s = server(&root);
    let r = get(&s, "/static/robots.txt", &[]);
    let last_modified = r.header("Last-Modified").unwrap();
    let r = get(
        &s,
        "/static/robots.txt",
        &[("If-Modified-Since", &last_modified)],
    );
    assert_eq!(r.status, 304);
    // Before the epoch, long before the file: 200.
    let r = get(
        &s,
        "/static/robots.txt",
        &[("If-Modified-Since", "Fri, 01 Jan 1900 00:00:00 GMT")],
    );
    assert_eq!(r.status, 200);
    // In the future, in the obsolete RFC 850 form: 304.
    let r = get(
        &s,
        "/static/robots.txt",
        &[("If-Modified-Since", "Friday, 01-Jan-38 00:00:00 GMT")],
    );
    assert_eq!(r.status, 304);
    // asctime's form.
    let r = get(
        &s,
        "/static/robots.txt",
        &[("If-Modified-Since", "Fri Jan  1 00:00:00 2100")],
    );
    assert_eq!(r.status, 304);
    // Not a date: ignored.
    let r = get(
        &s,
        "/static/robots.txt",
        &[("If-Modified-Since", "yesterday")],
    );
    assert_eq!(r.status, 200);
}

/// Tornado's range tests, on its 26-byte robots.txt.
#[test]
fn ranges() {
    let (_scratch, root) = fixture("ranges");
    let s = server(&root);
    let partial = |range: &str, body: &str, content_range: &str| {
        let r = get(&s, "/static/robots.txt", &[("Range", range)]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.text(), body, "{range}");
        assert_eq!(
            r.header("Content-Length"),
            Some(body.len().to_string()),
            "{range}"
        );
        assert_eq!(
            r.header("Content-Range").as_deref(),
            Some(content_range),
            "{range}"
        );
    };
    partial("bytes=0-9", "User-agent", "bytes 0-9/26");
    partial("bytes=1-10000000", &ROBOTS[1..], "bytes 1-25/26");
    partial("bytes=22-", ": /\n", "bytes 22-25/26");
    partial("bytes=-4", ": /\n", "bytes 22-25/26");
    partial("bytes=25-25", "\n", "bytes 25-25/26");
    let whole = |range: &str| {
        let r = get(&s, "/static/robots.txt", &[("Range", range)]);
        assert_eq!((r.status, r.text().as_str()), (200, ROBOTS), "{range}");
        assert_eq!(r.header("Content-Range"), None, "{range}");
    };
    whole("bytes=0-");
    whole("bytes=0-10000000");
    whole("bytes=-1000000");
    whole("bytes=asdf");
    whole("bytes=1-2,6-10"); // several ranges: the whole file, as Tornado
    whole("lines=1-2");
    let unsatisfiable = |range: &str| {
        let r = get(&s, "/static/robots.txt", &[("Range", range)]);
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(
            r.header("Content-Range").as_deref(),
            Some("bytes */26"),
            "{range}"
        );
        assert_eq!(r.header("Content-Type").as_deref(), Some("text/plain"));
        assert!(r.body.is_empty());
    };
    unsatisfiable("bytes=-0");
    unsatisfiable("bytes=26");
    unsatisfiable("bytes=26-");
    unsatisfiable("bytes=10-3");
    unsatisfiable("bytes=99999999999999999999999-");
    // Tornado's `test_static_range_if_none_match`: 304 wins.
    let etag = get(&s, "/static/robots.txt", &[]).header("Etag").unwrap();
    let r = get(
        &s,
        "/static/robots.txt",
        &[("Range", "bytes=1-4"), ("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304);
    // An empty file has no byte to range over.
    let r = get(&s, "/static/empty.txt", &[("Range", "bytes=0-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range").as_deref(), Some("bytes */0"));
}

/// Tornado's `test_static_head` and `test_static_head_range`.
#[test]
fn head() {
    let (_scratch, root) = fixture("head");
    let s = server(&root);
    let etag = get(&s, "/static/robots.txt", &[]).header("Etag").unwrap();
    let r = ask(&s, "HEAD", "/static/robots.txt", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length").as_deref(), Some("26"));
    assert_eq!(r.header("Etag"), Some(etag));
    assert!(r.header("Last-Modified").is_some());
    let r = ask(&s, "HEAD", "/static/robots.txt", &[("Range", "bytes=1-4")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Length").as_deref(), Some("4"));
    assert_eq!(r.header("Content-Range").as_deref(), Some("bytes 1-4/26"));
    // Nothing follows the head: the next request on the connection is
    // answered next.
    let mut conn = connect(s.addr);
    conn.write_all(
        b"HEAD /static/robots.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /static/sub/deeper/x.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let head = read_reply(&mut conn, &mut buf, true).unwrap();
    assert_eq!(head.status, 200);
    let next = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!(next.text(), "deep");
    // Other methods: 405.
    assert_eq!(
        ask(&s, "POST", "/static/robots.txt", &[("Content-Length", "0")]).status,
        405
    );
}

/// Tornado's `test_path_traversal_protection`, `test_static_404`, and
/// what squall adds: symbolic links out of the root, encoded forms, odd
/// files.
#[test]
fn paths_out_of_the_root_are_refused() {
    let (scratch, root) = fixture("traversal");
    let s = server(&root);
    let status = |path: &str| get(&s, path, &[]).status;
    assert_eq!(status("/static/missing.txt"), 404);
    assert_eq!(status("/static/sub/missing/x.txt"), 404);
    assert_eq!(status("/static/robots.txt/x"), 404);
    for path in [
        "/static/../secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E%2Fsecret.txt",
        "/static/sub/../../secret.txt",
        "/static/sub/%2e%2e/%2e%2e/secret.txt",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/out-link",
        "/static/out-rel-link",
        "/static/dir",
        "/static/dir/",
        "/static/",
        "/bare/dir/",
    ] {
        let r = get(&s, path, &[]);
        assert_eq!(r.status, 403, "{path}");
        assert!(!r.text().contains("secret"), "{path}");
    }
    let absolute = format!("/static/{}", scratch.0.join("secret.txt").display());
    assert_eq!(status(&absolute), 403);
    // NUL never reaches the file system.
    assert_eq!(status("/static/robots.txt%00.png"), 404);
    // Inside the root, links are fine, relative or absolute; `..` that
    // stays inside too.
    assert_eq!(get(&s, "/static/sub/in-link", &[]).text(), ROBOTS);
    assert_eq!(get(&s, "/static/abs-in-link", &[]).text(), ROBOTS);
    assert_eq!(
        get(&s, "/static/sub/root-abs-link/robots.txt", &[]).text(),
        ROBOTS
    );
    assert_eq!(get(&s, "/static/sub/../robots.txt", &[]).text(), ROBOTS);
    assert_eq!(get(&s, "/static/sub/%2e%2e/robots.txt", &[]).text(), ROBOTS);
    // A FIFO: refused at once, not waited on.
    let fifo = root.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let start = Instant::now();
        assert_eq!(status("/static/fifo"), 403);
        assert!(start.elapsed() < Duration::from_secs(2));
    }
    // The server is still fine.
    assert_eq!(get(&s, "/static/robots.txt", &[]).status, 200);
}

/// Tornado's `test_static_default_filename` and
/// `test_static_default_redirect`.
#[test]
fn default_filename_and_its_redirect() {
    let (_scratch, root) = fixture("default");
    let s = server(&root);
    let r = get(&s, "/files/dir/", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "<p>index</p>"));
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("text/html; charset=UTF-8")
    );
    let r = get(&s, "/files/dir", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location").as_deref(), Some("/files/dir/"));
    let r = get(&s, "/files/dir?x=1", &[]);
    assert_eq!(r.header("Location").as_deref(), Some("/files/dir/"));
    // A directory without an index: 404 for the index.
    assert_eq!(get(&s, "/files/sub/", &[]).status, 404);
}

/// A root that does not exist: 404, and the server goes on.
#[test]
fn missing_root() {
    let scratch = Scratch::new("noroot");
    let gone = scratch.0.join("nope");
    let s = TestServer::start(
        move || {
            let h = StaticFileHandler::new(gone);
            Application::new().route("/s/{path*}", move || h.clone())
        },
        |_| {},
    );
    assert_eq!(get(&s, "/s/a.txt", &[]).status, 404);
    assert_eq!(get(&s, "/s/a.txt", &[]).status, 404);
}

/// A root reached through a symbolic link that a deploy swaps: the new
/// directory is served within a second, by the handler and by `static_url`.
#[test]
fn a_swapped_root_is_seen_within_a_second() {
    let scratch = Scratch::new("swap");
    for (release, text) in [("r1", "one"), ("r2", "two")] {
        std::fs::create_dir_all(scratch.0.join(release)).unwrap();
        std::fs::write(scratch.0.join(release).join("v.txt"), text).unwrap();
    }
    let current = scratch.0.join("current");
    std::os::unix::fs::symlink(scratch.0.join("r1"), &current).unwrap();
    let root = current.clone();
    let s = TestServer::start(
        move || {
            Application::with_settings(Settings {
                static_path: Some(root),
                ..Default::default()
            })
            .route("/static_url/{path*}", || StaticUrl)
        },
        |_| {},
    );
    assert_eq!(get(&s, "/static/v.txt", &[]).text(), "one");
    let v1 = get(&s, "/static_url/v.txt", &[]).text();
    assert_eq!(v1, format!("/static/v.txt?v={}", version_of(b"one")));
    // Swap the link atomically, as a deploy does.
    let next = scratch.0.join("next");
    std::os::unix::fs::symlink(scratch.0.join("r2"), &next).unwrap();
    std::fs::rename(&next, &current).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&s, "/static/v.txt", &[]).text(), "two");
    let v2 = get(&s, "/static_url/v.txt", &[]).text();
    assert_eq!(v2, format!("/static/v.txt?v={}", version_of(b"two")));
}

/// The resident set size of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A 1 GiB (sparse) file goes out whole and right, in 64 KiB chunks, with
/// the process's memory under 64 MiB all along; then a range of it; then a
/// client that stops reading costs no more than a few chunks.
#[test]
fn one_gib_streams_with_bounded_memory() {
    const SIZE: u64 = 1 << 30;
    let scratch = Scratch::new("big");
    let path = scratch.0.join("big.bin");
    let marks: Vec<u64> = vec![0, 65_535, 65_536, 1 << 20, (SIZE / 2) + 7, SIZE - 1];
    {
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(SIZE).unwrap();
        use std::os::unix::fs::FileExt;
        for &m in &marks {
            file.write_at(&[mark_byte(m)], m).unwrap();
        }
    }
    let root = scratch.0.clone();
    let s = TestServer::start(
        move || {
            let h = StaticFileHandler::new(root);
            Application::new().route("/{path*}", move || h.clone())
        },
        |_| {},
    );
    let before = rss();
    let mut conn = connect(s.addr);
    conn.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {SIZE}\r\n")),
        "{head}"
    );
    let mut at = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let zeros = vec![0u8; buf.len()];
    let mut peak = 0;
    let mut wrong = 0u64;
    while at < SIZE {
        let want = buf.len().min((SIZE - at) as usize);
        let n = conn.read(&mut buf[..want]).unwrap();
        assert!(n > 0, "closed at {at}");
        // The marks in this piece, checked and zeroed; then all zeros
        // (a memcmp: quick even unoptimized).
        for &m in marks.iter().filter(|&&m| (at..at + n as u64).contains(&m)) {
            let i = (m - at) as usize;
            if buf[i] != mark_byte(m) {
                wrong += 1;
            }
            buf[i] = 0;
        }
        if buf[..n] != zeros[..n] {
            wrong += 1;
        }
        at += n as u64;
        if at % (64 << 20) < n as u64 {
            peak = peak.max(rss());
        }
    }
    assert_eq!(wrong, 0, "bytes differ");
    peak = peak.max(rss());
    assert!(
        peak < 64 << 20,
        "RSS reached {} MiB (before: {} MiB)",
        peak >> 20,
        before >> 20
    );
    // The connection goes on: a range near the end.
    conn.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-2\r\n\r\n")
        .unwrap();
    let r = read_reply(&mut conn, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.body, [0, mark_byte(SIZE - 1)]);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes {}-{}/{SIZE}", SIZE - 2, SIZE - 1))
    );

    // A client that reads 1 MiB and stops: the server waits on it with a
    // chunk or so in hand, not the file.
    let mut slow = connect(s.addr);
    slow.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = 0;
    while got < 1 << 20 {
        got += slow.read(&mut buf).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let stalled = rss();
    assert!(
        stalled < 64 << 20,
        "RSS {} MiB with a stalled client",
        stalled >> 20
    );
    drop(slow);
    // The server lets it go and goes on.
    assert_eq!(
        get(&s, "/big.bin", &[("Range", "bytes=0-0")]).body,
        [mark_byte(0)]
    );
}

fn mark_byte(pos: u64) -> u8 {
    (pos % 251) as u8 | 1
}

/// curl's `--range`, `-z` (If-Modified-Since) and `-I` (HEAD).
#[test]
fn curl_ranges_and_conditionals() {
    if !need::ready(&[need::Peer::Curl]) {
        return;
    }
    let (_scratch, root) = fixture("curl");
    let s = server(&root);
    let url = s.url("/static/robots.txt");
    let curl = |args: &[&str]| {
        let (ok, out, err) = run(
            Command::new("curl").args(["-sS"]).args(args),
            None,
            Duration::from_secs(10),
        );
        assert!(ok, "curl {args:?}: {err}");
        out
    };
    assert_eq!(curl(&["--range", "0-9", &url]), "User-agent");
    assert_eq!(curl(&["--range", "-4", &url]), ": /\n");
    assert_eq!(
        curl(&[
            "-w",
            "%{http_code}",
            "-o",
            "/dev/null",
            "--range",
            "0-9",
            &url
        ]),
        "206"
    );
    // -z with a date in the future: 304, nothing written.
    assert_eq!(
        curl(&["-w", "%{http_code}", "-z", "Jan 1 2100", &url]),
        "304"
    );
    assert_eq!(
        curl(&[
            "-w",
            "%{http_code}",
            "-o",
            "/dev/null",
            "-z",
            "Jan 1 2000",
            &url
        ]),
        "200"
    );
    let head = curl(&["-I", &url]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Content-Length: 26"), "{head}");
    // curl's own resume: the rest from byte 10.
    assert_eq!(curl(&["-C", "10", &url]), &ROBOTS[10..]);
}
