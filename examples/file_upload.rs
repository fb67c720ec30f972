//! Tornado's `demos/file_upload`, ported and grown: a form page; `POST
//! /post`, a multipart form taken whole into memory (`x.files()`, Tornado's
//! `self.request.files`); `POST /upload`, a multipart upload streamed to
//! disk part by part through a [`MultipartReader`] (a 2 GB file in bounded
//! memory); and `PUT /files/NAME`, a raw body streamed to disk (Tornado's
//! `@stream_request_body` `PUTHandler`).
//!
//! Usage:
//!
//! ```text
//! file_upload              serve on http://127.0.0.1:8888/, saving to a
//!                          temporary directory
//! file_upload PORT         serve on PORT
//! file_upload --self-test  serve on a free port; Python `requests` posts a
//!                          form with files, streams a 200 MB multipart
//!                          upload generated on the fly and a 16 MB PUT;
//!                          the saved files' sizes and SHA-256 are checked,
//!                          and the server's peak memory
//! ```
//!
//! ci-args: --self-test

use squall::netutil::BindOptions;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use squall::escape::{url_unescape, xhtml_escape};
use squall::http::HTTPServer;
use squall::httputil::MultipartEvent;
use squall::web::{Application, Exchange, MultipartReader, RequestHandler};
use squall::{Error, ErrorKind, Future, IOLoop};

/// The largest upload the streaming handlers take.
const MAX_UPLOAD: usize = 4 << 30;

const PAGE: &str = r#"<!DOCTYPE html>
<html><head><title>squall file upload</title></head><body>
<h1>Into memory: <code>POST /post</code></h1>
<form action="/post" method="post" enctype="multipart/form-data">
  <input name="title" placeholder="title"> <input type="file" name="files" multiple>
  <button>Upload</button>
</form>
<h1>Streamed to disk: <code>POST /upload</code></h1>
<form action="/upload" method="post" enctype="multipart/form-data">
  <input type="file" name="file" multiple> <button>Upload</button>
</form>
<p>Or: <code>curl -T big.iso http://HOST/files/big.iso</code></p>
</body></html>
"#;

struct FormPage;
impl RequestHandler for FormPage {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(PAGE);
        Ok(())
    }
}

/// Tornado's `POSTHandler`: the whole form in memory.
struct PostHandler;
impl RequestHandler for PostHandler {
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_header("Content-Type", "text/plain; charset=UTF-8")?;
        let title = x.get_argument_or("title", "")?;
        let mut files: Vec<_> = x.files()?.iter().collect();
        files.sort_by_key(|(field, _)| field.as_str());
        for (field, files) in files {
            for file in files {
                log::info!(
                    "POST {field}: {:?} {:?} {} bytes",
                    file.filename,
                    file.content_type,
                    file.body.len()
                );
                x.write(format!(
                    "{field} {:?} {} {} {}\n",
                    file.filename,
                    file.content_type,
                    file.body.len(),
                    hex(&Sha256::digest(&file.body))
                ));
            }
        }
        x.write(format!("title {title:?}\nOK\n"));
        Ok(())
    }
}

/// A file being written, and its digest so far.
struct Saving {
    name: String,
    file: File,
    size: u64,
    digest: Sha256,
}

impl Saving {
    fn create(dir: &Path, name: &str) -> Result<Saving, Error> {
        let name = safe_name(name);
        let file = File::create(dir.join(&name)).map_err(|e| io_error("create", e))?;
        Ok(Saving {
            name,
            file,
            size: 0,
            digest: Sha256::new(),
        })
    }

    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.file
            .write_all(data)
            .map_err(|e| io_error("write", e))?;
        self.size += data.len() as u64;
        self.digest.update(data);
        Ok(())
    }

    fn done(self) -> String {
        format!(
            "saved {} {} {}",
            self.name,
            self.size,
            hex(&self.digest.finalize())
        )
    }
}

/// A multipart upload streamed to disk: each file part is written as it
/// arrives, so memory stays bounded whatever the file's size. (The writes
/// are blocking ones, as in Tornado's demo: fine for a local disk.)
struct StreamHandler {
    dir: Rc<PathBuf>,
    reader: Option<MultipartReader>,
    saving: Option<Saving>,
    /// Text fields (their size bounded by the form limits).
    field: Option<(String, Vec<u8>)>,
    lines: Vec<String>,
}

impl RequestHandler for StreamHandler {
    fn stream_request_body() -> bool {
        true
    }

    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        x.connection().set_max_body_size(MAX_UPLOAD);
        // 400 if the body is not multipart/form-data.
        self.reader = Some(x.multipart_reader()?);
        Ok(())
    }

    fn data_received(&mut self, _x: &Exchange, chunk: &[u8]) -> Result<Option<Future<()>>, Error> {
        let (dir, saving, field, lines) = (
            &self.dir,
            &mut self.saving,
            &mut self.field,
            &mut self.lines,
        );
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        reader.feed(chunk, |event| {
            match event {
                MultipartEvent::PartStart(part) => match &part.filename {
                    Some(filename) => *saving = Some(Saving::create(dir, filename)?),
                    None => *field = Some((part.name, Vec::new())),
                },
                MultipartEvent::Data(data) => {
                    if let Some(s) = saving.as_mut() {
                        s.write(data)?;
                    } else if let Some((_, value)) = field.as_mut() {
                        value.extend_from_slice(data);
                    }
                }
                MultipartEvent::PartEnd => {
                    if let Some(s) = saving.take() {
                        log::info!("{}", s.name);
                        lines.push(s.done());
                    }
                    if let Some((name, value)) = field.take() {
                        lines.push(format!(
                            "field {name} {:?}",
                            String::from_utf8_lossy(&value)
                        ));
                    }
                }
            }
            Ok(())
        })?;
        Ok(None)
    }

    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        if let Some(reader) = self.reader.as_mut() {
            reader.finish()?; // 400 if the body was cut short
        }
        x.set_header("Content-Type", "text/plain; charset=UTF-8")?;
        for line in &self.lines {
            x.write(format!("{line}\n"));
        }
        Ok(())
    }
}

/// Tornado's `PUTHandler`: a raw body streamed to `dir/NAME`.
struct PutHandler {
    dir: Rc<PathBuf>,
    saving: Option<Saving>,
}

impl RequestHandler for PutHandler {
    fn stream_request_body() -> bool {
        true
    }

    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        x.connection().set_max_body_size(MAX_UPLOAD);
        let name = url_unescape(x.request().path_arg("name").unwrap_or(""), false);
        self.saving = Some(Saving::create(&self.dir, &name)?);
        Ok(())
    }

    fn data_received(&mut self, _x: &Exchange, chunk: &[u8]) -> Result<Option<Future<()>>, Error> {
        if let Some(s) = self.saving.as_mut() {
            s.write(chunk)?;
        }
        Ok(None)
    }

    fn put(&mut self, x: &Exchange) -> Result<(), Error> {
        let content_type = x.request().headers().get("Content-Type").unwrap_or("");
        let line = self.saving.take().map(Saving::done).unwrap_or_default();
        log::info!("PUT {line} {content_type:?}");
        x.write(format!("{}\n", xhtml_escape(&line)));
        Ok(())
    }
}

/// The client's file name as a plain name in the upload directory: the
/// last path component, without control characters, never `.` or `..`.
fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).collect();
    match clean.trim() {
        "" | "." | ".." => "upload".to_owned(),
        s => s.trim_start_matches('.').to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::with_source(ErrorKind::Io, format!("cannot {what} the upload"), e)
}

fn app(dir: &Rc<PathBuf>) -> Application {
    let (d1, d2) = (dir.clone(), dir.clone());
    Application::new()
        .route("/", || FormPage)
        .route("/post", || PostHandler)
        .route("/upload", move || StreamHandler {
            dir: d1.clone(),
            reader: None,
            saving: None,
            field: None,
            lines: Vec::new(),
        })
        .route("/files/{name}", move || PutHandler {
            dir: d2.clone(),
            saving: None,
        })
}

fn main() -> Result<(), Error> {
    env_logger::init();
    let arg = std::env::args().nth(1);
    let self_test = arg.as_deref() == Some("--self-test");
    let port: u16 = match (&arg, self_test) {
        (_, true) => 0,
        (Some(p), false) => p
            .parse()
            .map_err(|_| Error::new(ErrorKind::InvalidArgument, "PORT must be a number"))?,
        (None, false) => 8888,
    };
    let dir = std::env::temp_dir().join(format!("squall-uploads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| io_error("make a directory for", e))?;
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let server = HTTPServer::new(app(&Rc::new(dir.clone())));
    server.listen_with(port, BindOptions::new().address("127.0.0.1"))?;
    let port = server.local_addrs()[0].port();
    if !self_test {
        println!("uploads to {} via http://127.0.0.1:{port}/", dir.display());
        return io_loop.start();
    }
    let result = self_test_run(&io_loop, port, &dir);
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    println!("self-test passed");
    Ok(())
}

/// What Python runs: the form upload, the 200 MB streamed multipart
/// upload (made on the fly, hashed as it goes) and a 16 MB PUT.
const CLIENT: &str = r#"
import hashlib, sys, requests
base, size = sys.argv[1], int(sys.argv[2])
r = requests.post(base + "/post", data={"title": " holiday "},
                  files=[("files", ("a.txt", b"hello\n", "text/plain")),
                         ("files", ("\u00e9t\u00e9.bin", bytes(range(256)) * 400))])
assert r.status_code == 200, (r.status_code, r.text)
for line in r.text.splitlines():
    print("POST", line)

def stream(n, digest, head=b"", tail=b""):
    yield head
    sent, i = 0, 0
    while sent < n:
        block = hashlib.sha256(i.to_bytes(8, "big")).digest() * 2048  # 64 KiB
        block = block[: n - sent]
        digest.update(block)
        sent, i = sent + len(block), i + 1
        yield block
    yield tail

b = "squall-self-test"
head = ("--%s\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nbig one\r\n"
        "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../big.bin\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n" % (b, b)).encode()
digest = hashlib.sha256()
r = requests.post(base + "/upload", data=stream(size, digest, head, ("\r\n--%s--\r\n" % b).encode()),
                  headers={"Content-Type": "multipart/form-data; boundary=" + b})
assert r.status_code == 200, (r.status_code, r.text)
for line in r.text.splitlines():
    print("STREAM", line)
print("EXPECT big.bin", size, digest.hexdigest())
digest = hashlib.sha256()
r = requests.put(base + "/files/raw%20data.bin", data=stream(16 << 20, digest))
assert r.status_code == 200, (r.status_code, r.text)
print("PUT", r.text.strip())
print("EXPECT raw data.bin", 16 << 20, digest.hexdigest())
"#;

/// Runs the Python client on a thread while the loop serves; checks what
/// it printed against the files on disk, and the server's peak memory.
fn self_test_run(io_loop: &IOLoop, port: u16, dir: &Path) -> Result<(), Error> {
    let size: u64 = 200 << 20;
    let remote = io_loop.remote();
    let python = std::env::var("SQUALL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let base = format!("http://127.0.0.1:{port}");
    let client = std::thread::spawn(move || {
        let out = std::process::Command::new(python)
            .args(["-c", CLIENT, &base, &size.to_string()])
            .output();
        let _ = remote.stop();
        out
    });
    // A watchdog: the loop stops even if the client hangs.
    let l = io_loop.clone();
    io_loop.call_later(Duration::from_secs(100), move || l.stop());
    io_loop.start()?;
    let out = client
        .join()
        .map_err(|_| Error::other("the client thread panicked"))?
        .map_err(|e| Error::with_source(ErrorKind::Io, "cannot run python3", e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    if !out.status.success() {
        return Err(Error::other(format!(
            "the Python client failed (is `requests` installed?): {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let expect = |what: &str| stdout.lines().any(|l| l.contains(what));
    for line in [
        "POST files \"a.txt\" text/plain 6",
        "POST files \"été.bin\" application/unknown 102400",
        "POST title \"holiday\"",
        "STREAM field title \"big one\"",
    ] {
        if !expect(line) {
            return Err(Error::other(format!("missing {line:?}")));
        }
    }
    for line in stdout.lines().filter_map(|l| l.strip_prefix("EXPECT ")) {
        let mut fields = line.rsplitn(3, ' ');
        let (hash, len, name) = (
            fields.next().unwrap_or(""),
            fields.next().unwrap_or(""),
            fields.next().unwrap_or(""),
        );
        // What the server said it saved, and what is on disk.
        if !expect(&format!("saved {name} {len} {hash}")) {
            return Err(Error::other(format!(
                "the server did not save {name} as sent"
            )));
        }
        let on_disk = hash_file(&dir.join(name))?;
        if on_disk != format!("{len} {hash}") {
            return Err(Error::other(format!("{name} on disk is {on_disk}")));
        }
        println!("checked {name}: {len} bytes, sha256 {hash}");
    }
    let peak = peak_rss_kib();
    println!(
        "server peak RSS {} MiB for a {} MiB upload",
        peak / 1024,
        size >> 20
    );
    if peak > 100 * 1024 {
        return Err(Error::other("the streamed upload was held in memory"));
    }
    Ok(())
}

/// `"size sha256"` of a file, read in pieces.
fn hash_file(path: &Path) -> Result<String, Error> {
    use std::io::Read;
    let mut file = File::open(path).map_err(|e| io_error("open", e))?;
    let (mut digest, mut size, mut buf) = (Sha256::new(), 0u64, vec![0; 1 << 20]);
    loop {
        let n = file.read(&mut buf).map_err(|e| io_error("read", e))?;
        if n == 0 {
            return Ok(format!("{size} {}", hex(&digest.finalize())));
        }
        digest.update(&buf[..n]);
        size += n as u64;
    }
}

/// This process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
