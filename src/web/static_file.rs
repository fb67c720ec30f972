//! Static files: Tornado's `StaticFileHandler` and `static_url`
//! (feature `static`).
//!
//! Set [`Settings::static_path`] and the application serves that directory
//! under [`Settings::static_url_prefix`] (`/static/` by default), plus
//! `/favicon.ico` and `/robots.txt` from it, as Tornado does; or route a
//! [`StaticFileHandler`] yourself. Handlers link to files with
//! [`Exchange::static_url`], which adds `?v=<hash of the content>`, and a
//! versioned URL is cached by browsers for ten years.
//!
//! ```
//! use squall::web::{Application, Exchange, RequestHandler, Settings, StaticFileHandler};
//!
//! let dir = std::env::temp_dir().join(format!("squall-static-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! std::fs::write(dir.join("app.css"), "body { margin: 0 }")?;
//!
//! struct Page;
//! impl RequestHandler for Page {
//!     fn get(&mut self, x: &Exchange) -> Result<(), squall::Error> {
//!         // `/static/app.css?v=` and the first 32 hex digits of its SHA-256.
//!         let css = x.static_url("app.css");
//!         x.write(format!(r#"<link rel="stylesheet" href="{css}">"#));
//!         Ok(())
//!     }
//! }
//!
//! // Served under /static/ (and /favicon.ico, /robots.txt) by the setting...
//! let app = Application::with_settings(Settings {
//!     static_path: Some(dir.clone()),
//!     ..Default::default()
//! })
//! .route("/", || Page);
//! // ...or routed by hand, with an index page for directories.
//! let files = StaticFileHandler::new(&dir).default_filename("index.html");
//! let app = app.route("/files/{path*}", move || files.clone());
//! assert_eq!(app.len(), 5);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is answered
//! As Tornado 6: `ETag`, `Last-Modified`, `Accept-Ranges: bytes` and the
//! content type on every answer; `304 Not Modified` when `If-None-Match`
//! names the ETag (a list, `*`, weak or strong: the weak comparison), or,
//! without `If-None-Match`, when `If-Modified-Since` is not before the
//! file's modification time; one `Range` (`bytes=a-b`, `a-`, `-n`) answered
//! 206 with `Content-Range`, or 416 with `Content-Range: bytes */size`
//! when unsatisfiable; several ranges, or a malformed one, get the whole
//! file (200). `HEAD` answers the same headers without the body.
//!
//! # Paths
//! The path is Tornado's `validate_absolute_path`: an absolute path, or one
//! whose `..` climbs out of the root, is 403 (also when percent-encoded:
//! the route decodes `%2e%2e` first); so is a symbolic link that leads out
//! of the root (Tornado does not look at links; squall resolves them), a
//! directory without [`default_filename`](StaticFileHandler::default_filename),
//! and anything not a regular file. A missing file is 404. On Linux the
//! check and the open are one `openat2(RESOLVE_BENEATH)`.
//!
//! # Versions and ETags
//! A file's version is a hash of its content: SHA-256, its first 128 bits
//! as 32 hex digits (Tornado uses MD5, also 32 hex digits: the values
//! differ, the shape is the same). The ETag is the version in quotes, a
//! strong validator. Versions are cached per thread by device and inode and
//! rechecked against the file's size and modification and change times
//! (to the nanosecond) on every use,
//! so a request costs a `fstat`, not a read of the file, and a changed file
//! gets a new version (Tornado caches forever). Files larger than
//! [`HASH_CONTENT_MAX`] (16 MiB) are versioned by their identity (device,
//! inode, size, modification time, hashed) instead of their content, so a
//! first request never stalls the loop hashing a large file.
//!
//! # Reading
//! As Tornado, files are read synchronously, in chunks of 64 KiB: a read
//! from the page cache is microseconds, and a thread pool would cost more
//! than it saves for the usual small file. A body up to one chunk goes
//! out with the head in one write; a larger one chunk by chunk, each read
//! once the previous one was handed to the kernel ([`Exchange::flush`]), so
//! a slow client costs one chunk of memory, whatever the file's size.

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::static_open::{normalize, version, Refused, Root, Version};
pub use super::static_open::{reset, HASH_CONTENT_MAX};
use super::{Application, Exchange, RequestHandler, Settings};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::httputil::{content_range, format_timestamp, parse_request_range};

/// How much of a file is read and sent at a time (Tornado's 64 KiB).
pub const CHUNK_SIZE: usize = 64 * 1024;

/// Tornado's `CACHE_MAX_AGE`: ten years, for versioned URLs.
pub const CACHE_MAX_AGE: u64 = 86400 * 365 * 10;

/// How many chunks go out in a row while the kernel takes them at once,
/// before the loop gets a turn (other connections wait meanwhile).
const CHUNKS_PER_TURN: u32 = 16;

/// Serves the files under a directory; Tornado's `StaticFileHandler`.
///
/// The file is the route's `path` capture (`/static/{path*}`), else its
/// first capture, else the whole request path (for exact routes like
/// `/robots.txt`). A cheap-to-clone handle: the route's factory clones it
/// (`move || handler.clone()`). See the [module docs](self).
#[derive(Clone)]
pub struct StaticFileHandler {
    shared: Rc<Shared>,
}

struct Shared {
    root: PathBuf,
    default_filename: Option<String>,
    /// Opened at the first request (and again until it opens).
    dir: RefCell<Option<Rc<Root>>>,
}

impl StaticFileHandler {
    /// Serves the files under `root` (Tornado's `path` argument). The
    /// directory is opened at the first request: until it exists, every
    /// request is 404 (and an error logged). It then stays open, and once
    /// a second at most the path is checked to lead there still: a root
    /// replaced by another directory of the same name (a deploy that swaps
    /// a symbolic link) is served from within a second.
    pub fn new(root: impl Into<PathBuf>) -> StaticFileHandler {
        StaticFileHandler {
            shared: Rc::new(Shared {
                root: root.into(),
                default_filename: None,
                dir: RefCell::new(None),
            }),
        }
    }

    /// Serves `name` (e.g. `index.html`) for a directory (Tornado's
    /// `default_filename`); a directory asked without its trailing slash
    /// is redirected (301) to the path with one, so relative links in the
    /// page work.
    pub fn default_filename(self, name: impl Into<String>) -> StaticFileHandler {
        StaticFileHandler {
            shared: Rc::new(Shared {
                root: self.shared.root.clone(),
                default_filename: Some(name.into()),
                dir: RefCell::new(None),
            }),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// The root, opened.
    fn dir(&self) -> Result<Rc<Root>, Error> {
        if let Some(dir) = self.shared.dir.borrow().as_ref() {
            if dir.is_current() {
                return Ok(dir.clone());
            }
        }
        *self.shared.dir.borrow_mut() = None;
        let dir = Rc::new(Root::open(&self.shared.root)?);
        *self.shared.dir.borrow_mut() = Some(dir.clone());
        Ok(dir)
    }

    /// The path asked for, percent-decoded: see the type's docs.
    fn url_path(x: &Exchange) -> &str {
        let request = x.request();
        if let Some(path) = request.path_arg("path") {
            return path;
        }
        if let Some((_, path)) = request.path_args().first() {
            return path;
        }
        request.path().trim_start_matches('/')
    }

    /// `GET` (`include_body`) or `HEAD`: Tornado's `StaticFileHandler.get`.
    fn serve(&self, x: &Exchange, include_body: bool) -> Result<(), Error> {
        let dir = match self.dir() {
            Ok(dir) => dir,
            Err(err) => {
                log::error!("{err}");
                x.send_error(404);
                return Ok(());
            }
        };
        let mut rel = String::new();
        let opened = normalize(Self::url_path(x), &mut rel).and_then(|()| dir.open_file(&rel));
        let mut file = match opened {
            Ok(file) => file,
            Err(refused) => return refuse(x, refused),
        };
        let mut meta = file.metadata()?;
        let mut name_from = rel.as_str();
        let index;
        if meta.is_dir() {
            let Some(default) = &self.shared.default_filename else {
                return refuse(x, Refused::Forbidden);
            };
            let path = x.request().path();
            if !path.ends_with('/') {
                // A redirect to `//host/...` would leave the site.
                if path.starts_with("//") {
                    return refuse(x, Refused::Forbidden);
                }
                return x.redirect_permanent(&format!("{path}/"));
            }
            index = if rel.is_empty() {
                default.clone()
            } else {
                format!("{rel}/{default}")
            };
            file = match dir.open_file(&index) {
                Ok(file) => file,
                Err(refused) => return refuse(x, refused),
            };
            meta = file.metadata()?;
            name_from = &index;
        }
        if !meta.is_file() {
            return refuse(x, Refused::Forbidden);
        }
        let version = version(&file, &meta)?;
        let size = meta.len();

        // Tornado's `set_headers`.
        x.set_header("Accept-Ranges", "bytes")?;
        x.set_header("Etag", &*version.etag)?;
        x.set_header("Last-Modified", &*version.last_modified)?;
        x.set_header("Content-Type", content_type(name_from))?;
        if is_versioned(x.request().query()) {
            let expires = SystemTime::now() + Duration::from_secs(CACHE_MAX_AGE);
            x.set_header("Expires", format_timestamp(expires))?;
            x.set_header("Cache-Control", format!("max-age={CACHE_MAX_AGE}"))?;
        }

        if should_return_304(x, &version, meta.mtime()) {
            x.set_status(304);
            // Tornado's `_clear_representation_headers` for a 304.
            x.clear_header("Content-Type");
            return Ok(());
        }

        let mut span = (0, size);
        if let Some(range) = x
            .request()
            .headers()
            .get("Range")
            .and_then(parse_request_range)
        {
            match range.resolve(size) {
                None => {
                    x.set_status(416);
                    x.set_header("Content-Type", "text/plain")?;
                    x.set_header("Content-Range", format!("bytes */{size}"))?;
                    return Ok(());
                }
                Some((start, end)) => {
                    // 206 only for less than the whole file (Chrome will
                    // not play audio answered 206 to `bytes=0-`).
                    if end - start != size {
                        x.set_status(206);
                        x.set_header("Content-Range", content_range(start, end, size))?;
                    }
                    span = (start, end);
                }
            }
        }
        x.set_header("Content-Length", (span.1 - span.0).to_string())?;
        if !include_body || span.0 == span.1 {
            return Ok(());
        }
        Pump {
            x: x.clone(),
            file,
            at: span.0,
            end: span.1,
        }
        .start();
        Ok(())
    }
}

impl RequestHandler for StaticFileHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        self.serve(x, true)
    }

    fn head(&mut self, x: &Exchange) -> Result<(), Error> {
        self.serve(x, false)
    }
}

/// 403 or 404, as Tornado's `HTTPError` from `validate_absolute_path`.
fn refuse(x: &Exchange, refused: Refused) -> Result<(), Error> {
    x.send_error(match refused {
        Refused::Forbidden => 403,
        Refused::NotFound => 404,
    });
    Ok(())
}

/// Tornado's `should_return_304`: `If-None-Match` if present (and not
/// empty), else `If-Modified-Since` (a date at or after the file's
/// modification time, in whole seconds as `Last-Modified` says it).
fn should_return_304(x: &Exchange, version: &Version, mtime: i64) -> bool {
    let headers = x.request().headers();
    if let Some(inm) = headers.get("If-None-Match").filter(|v| !v.is_empty()) {
        return etag_matches(inm, &version.etag);
    }
    let Some(since) = headers.get("If-Modified-Since") else {
        return false;
    };
    let Ok(since) = httpdate::parse_http_date(since) else {
        return false;
    };
    let since = match since.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(_) => return false,
    };
    since >= mtime
}

/// Tornado's `check_etag_header`: the entity tags of an `If-None-Match`
/// value (`*`, `"x"`, `W/"x"`, in a list) against `etag`, compared weakly
/// (a `W/` prefix ignored); `*` matches if it comes first.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let strip = |t: &str| t.strip_prefix("W/").unwrap_or(t).to_owned();
    let computed = strip(etag);
    let tags = entity_tags(if_none_match);
    match tags.first() {
        None => false,
        Some(&"*") => true,
        Some(_) => tags.iter().any(|t| strip(t) == computed),
    }
}

/// What Tornado's `re.findall(rb'\*|(?:W/)?"[^"]*"', value)` finds.
fn entity_tags(value: &str) -> Vec<&str> {
    let b = value.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'*' {
            tags.push(&value[i..i + 1]);
            i += 1;
            continue;
        }
        let start = i;
        let quote = if b[i..].starts_with(b"W/\"") {
            i + 2
        } else if b[i] == b'"' {
            i
        } else {
            i += 1;
            continue;
        };
        match value[quote + 1..].find('"') {
            Some(len) => {
                let end = quote + 1 + len + 1;
                tags.push(&value[start..end]);
                i = end;
            }
            None => i += 1,
        }
    }
    tags
}

/// Whether the query has a `v` argument (Tornado's `"v" in
/// self.request.arguments`, blank values kept).
fn is_versioned(query: &str) -> bool {
    query.split('&').any(|pair| {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        key == "v" || (key.contains('%') && crate::httputil::url_unescape(key, true) == "v")
    })
}

/// Tornado's `get_content_type` (Python's `mimetypes.guess_type`), from
/// the file's name: a compressed file (`.gz`: `application/gzip`; `.bz2`,
/// `.xz`, `.br`, `.Z`: `application/octet-stream`) is what it is, not what
/// it holds; unknown is `application/octet-stream`. Text types get
/// `; charset=UTF-8` (Tornado sends none, and browsers then guess).
pub fn content_type(name: &str) -> String {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    let mime = match ext {
        "gz" => "application/gzip",
        "bz2" | "xz" | "br" | "Z" => "application/octet-stream",
        ext => mime_guess::from_ext(ext)
            .first_raw()
            .unwrap_or("application/octet-stream"),
    };
    let text = mime.starts_with("text/")
        || matches!(
            mime,
            "application/javascript" | "application/json" | "application/xml"
        );
    if text {
        format!("{mime}; charset=UTF-8")
    } else {
        mime.to_owned()
    }
}

/// Sends a span of a file: Tornado's `get_content` loop of `write` and
/// `await flush()`.
struct Pump {
    x: Exchange,
    file: File,
    at: u64,
    end: u64,
}

thread_local! {
    /// The chunk being sent: one buffer for every response on the thread.
    static CHUNK: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Pump {
    /// The first chunk, and the rest asynchronously if there is more.
    fn start(mut self) {
        if self.end - self.at <= CHUNK_SIZE as u64 {
            // The usual small file: one read; the handler's return
            // finishes the response, head and body in one write.
            if let Err(err) = self.read_chunk() {
                self.fail(err);
            }
            return;
        }
        self.x.set_async();
        self.run();
    }

    /// Reads the next chunk into the response body.
    fn read_chunk(&mut self) -> Result<(), Error> {
        let want = (self.end - self.at).min(CHUNK_SIZE as u64) as usize;
        CHUNK.with(|chunk| {
            let mut chunk = chunk.borrow_mut();
            chunk.resize(CHUNK_SIZE, 0);
            let mut got = 0;
            while got < want {
                match self
                    .file
                    .read_at(&mut chunk[got..want], self.at + got as u64)
                {
                    Ok(0) => {
                        return Err(Error::new(
                            ErrorKind::Io,
                            "static file shorter than when its length was sent",
                        ))
                    }
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.x.write(&chunk[..want]);
            Ok(())
        })?;
        self.at += want as u64;
        Ok(())
    }

    /// Chunks until the end, each once the last has gone to the kernel.
    fn run(mut self) {
        let mut in_a_row = 0;
        loop {
            if self.x.finished() {
                return; // the client left
            }
            if let Err(err) = self.read_chunk() {
                return self.fail(err);
            }
            if self.at == self.end {
                if let Err(err) = self.x.finish() {
                    log::debug!("static file response: {err}");
                }
                return;
            }
            let flushed = self.x.flush();
            in_a_row += 1;
            if !flushed.done() || in_a_row >= CHUNKS_PER_TURN {
                flushed.add_done_callback(move |f: &Future<()>| {
                    if f.error().is_some() {
                        return; // the connection closed: nobody to send to
                    }
                    let io_loop = self.x.connection().io_loop().clone();
                    io_loop.add_callback(move || self.run());
                });
                return;
            }
            if flushed.error().is_some() {
                return;
            }
        }
    }

    /// A read failed: 500 if nothing went out, else the connection closes.
    fn fail(&self, err: Error) {
        log::error!("reading static file for {}: {err}", self.x.request().uri());
        self.x.send_error(500);
    }
}

/// Tornado's `make_static_url`: `static_url_prefix` + `path`, and
/// `?v=<version>` if the file exists under `static_path`. For templates and
/// other code with settings but no [`Exchange`]; versions are cached as for
/// ETags. [`make_static_url_without_version`] is Tornado's
/// `include_version=False`.
pub fn make_static_url(settings: &Settings, path: &str) -> String {
    static_url_for(settings, path, true)
}

/// [`make_static_url`] without the `?v=` version: Tornado's
/// `make_static_url(settings, path, include_version=False)`.
pub fn make_static_url_without_version(settings: &Settings, path: &str) -> String {
    static_url_for(settings, path, false)
}

fn static_url_for(settings: &Settings, path: &str, include_version: bool) -> String {
    let mut url = String::with_capacity(settings.static_url_prefix.len() + path.len() + 36);
    url.push_str(&settings.static_url_prefix);
    url.push_str(path);
    if include_version {
        if let Some(v) = get_version(settings, path) {
            url.push_str("?v=");
            url.push_str(&v);
        }
    }
    url
}

/// Tornado's `StaticFileHandler.get_version`: the version (32 hex digits)
/// of `path` under `static_path`, `None` if there is no such file (or no
/// `static_path`), as the files are served: a path leaving the root has
/// none.
pub fn get_version(settings: &Settings, path: &str) -> Option<String> {
    let root = settings.static_path.as_deref()?;
    let mut rel = String::new();
    normalize(path, &mut rel).ok()?;
    let found = ROOTS.with(|roots| {
        let mut roots = roots.borrow_mut();
        if let Some(at) = roots.iter().position(|(p, _)| p == root) {
            if roots[at].1.is_current() {
                return Some(roots[at].1.clone());
            }
            roots.remove(at);
        }
        let dir = Rc::new(Root::open(root).ok()?);
        if roots.len() >= 16 {
            roots.remove(0);
        }
        roots.push((root.to_owned(), dir.clone()));
        Some(dir)
    });
    let file = found?.open_file(&rel);
    let Ok(file) = file else {
        log::error!("Could not open static file {path:?}");
        return None;
    };
    let meta = file.metadata().ok().filter(|m| m.is_file())?;
    version(&file, &meta).ok().map(|v| v.hash().to_owned())
}

thread_local! {
    /// Roots opened for `static_url`, by their configured path.
    static ROOTS: RefCell<Vec<(PathBuf, Rc<Root>)>> = const { RefCell::new(Vec::new()) };
}

impl Exchange {
    /// The URL of static file `path` with its version: Tornado's
    /// `static_url` (`/static/app.css?v=0123...`). Without the file, or
    /// without [`Settings::static_path`] (where Tornado raises), the URL
    /// has no version. Browsers may cache a versioned URL for ten years:
    /// the version changes with the content.
    pub fn static_url(&self, path: &str) -> String {
        make_static_url(self.settings(), path)
    }

    /// [`static_url`](Self::static_url) with the scheme and host of the
    /// request (Tornado's `include_host=True`): `http://example.com/static/..`.
    pub fn static_url_with_host(&self, path: &str) -> String {
        let request = self.request();
        format!(
            "{}://{}{}",
            request.protocol(),
            request.host(),
            self.static_url(path)
        )
    }
}

/// Adds the routes of `static_path`, as Tornado's `Application` does:
/// `<static_url_prefix>{path*}`, `/favicon.ico` and `/robots.txt`.
pub(super) fn add_static_routes(app: Application) -> Application {
    let settings = app.settings();
    let Some(root) = settings.static_path.clone() else {
        return app;
    };
    let prefix = settings.static_url_prefix.clone();
    let handler = StaticFileHandler::new(root);
    let usable = prefix.starts_with('/') && prefix.ends_with('/') && !prefix.contains(['{', '}']);
    let app = if usable {
        let h = handler.clone();
        app.route(&format!("{prefix}{{path*}}"), move || h.clone())
    } else {
        log::error!(
            "static_url_prefix {prefix:?} must start and end with '/': static files are not routed"
        );
        app
    };
    let h = handler.clone();
    app.route("/favicon.ico", move || h.clone())
        .route("/robots.txt", move || handler.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tornado's `test_static_etag` family: the If-None-Match forms.
    #[test]
    fn etags() {
        let etag = "\"abc\"";
        assert!(etag_matches("\"abc\"", etag));
        assert!(etag_matches("W/\"abc\"", etag));
        assert!(etag_matches("\"x\", \"abc\"", etag));
        assert!(etag_matches("\"x\",W/\"abc\"", etag));
        assert!(etag_matches("*", etag));
        assert!(etag_matches(" * ", etag));
        assert!(!etag_matches("\"x\", *", etag)); // `*` counts only first
        assert!(!etag_matches("\"abcd\"", etag));
        assert!(!etag_matches("abc", etag));
        assert!(!etag_matches("", etag));
        assert!(!etag_matches("\"abc", etag));
        assert!(etag_matches("\"abc\"", "W/\"abc\""));
        assert_eq!(
            entity_tags("W/\"a\" junk \"b,c\" * \"\""),
            ["W/\"a\"", "\"b,c\"", "*", "\"\""]
        );
        assert_eq!(entity_tags("W/x\"q\""), ["\"q\""]);
    }

    #[test]
    fn versioned_queries() {
        assert!(is_versioned("v=abc"));
        assert!(is_versioned("x=1&v="));
        assert!(is_versioned("v"));
        assert!(is_versioned("%76=1"));
        assert!(!is_versioned(""));
        assert!(!is_versioned("vv=1&x=v"));
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("a.css"), "text/css; charset=UTF-8");
        assert_eq!(content_type("a/b.html"), "text/html; charset=UTF-8");
        assert_eq!(content_type("x.png"), "image/png");
        assert_eq!(content_type("x.tar.gz"), "application/gzip");
        assert_eq!(content_type("x.bz2"), "application/octet-stream");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("x.unknownext"), "application/octet-stream");
        assert!(content_type("x.js").ends_with("javascript; charset=UTF-8"));
    }
}
