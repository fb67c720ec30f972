//! Request arguments, forms and uploads through a real server: Tornado's
//! `get_argument` family (web_test.py's argument tests), malformed forms
//! and the form limits answering their status, a streamed multipart upload
//! in bounded memory, pooled exchanges forgetting arguments, and uploads
//! from Python `requests`. The parser alone: tests/multipart.rs.

#[path = "common/http.rs"]
#[allow(dead_code)]
mod http_kit;

#[path = "common/peers.rs"]
mod need;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use http_kit::{raw_request, run, Reply, TestServer};
use squall::httputil::{FormLimits, MultipartEvent};
use squall::web::{Application, Exchange, HTTPError, MultipartReader, RequestHandler, Settings};
use squall::{Error, Future};

// ----- through the server ----------------------------------------------------

/// Tornado's `GetArgumentHandler`: `?source=query|body` picks the method.
struct GetArgument;
impl RequestHandler for GetArgument {
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        let value = match x.get_argument_opt("source")?.as_deref() {
            Some("query") => x.get_query_argument_or("foo", "default")?,
            Some("body") => x.get_body_argument_or("foo", "default")?,
            _ => x.get_argument_or("foo", "default")?,
        };
        x.write(value);
        x.finish()
    }
}

/// Tornado's `GetArgumentsHandler`, in a line of text.
struct GetArguments;
impl RequestHandler for GetArguments {
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        x.write(format!(
            "default={:?} query={:?} body={:?}",
            x.get_arguments("foo")?,
            x.get_query_arguments("foo")?,
            x.get_body_arguments("foo")?
        ));
        x.finish()
    }
}

/// Requires `name`; echoes it with its debug form.
struct Required;
impl RequestHandler for Required {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let v = x.get_argument("name")?;
        let raw = x.get_arguments_unstripped("name", squall::web::ArgumentSource::All)?;
        x.write(format!("{v:?} {raw:?}"));
        Ok(())
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        self.get(x)
    }
}

/// Lists the files and the body arguments.
struct ListFiles;
impl RequestHandler for ListFiles {
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        let mut names: Vec<_> = x.files()?.iter().collect();
        names.sort_by_key(|(n, _)| n.as_str());
        for (name, files) in names {
            for f in files {
                x.write(format!(
                    "{name}: {} {} {}\n",
                    f.filename,
                    f.content_type,
                    f.body.len()
                ));
            }
        }
        let mut args: Vec<_> = x.body_arguments()?.keys().cloned().collect();
        args.sort();
        for name in args {
            x.write(format!("{name}={:?}\n", x.get_body_argument(&name)?));
        }
        Ok(())
    }
}

fn server_with(limits: FormLimits) -> TestServer {
    TestServer::start(
        move || {
            Application::with_settings(Settings {
                form_limits: limits,
                ..Settings::default()
            })
            .route("/get_argument", || GetArgument)
            .route("/get_arguments", || GetArguments)
            .route("/required", || Required)
            .route("/files", || ListFiles)
            .route("/stream", StreamUpload::default)
        },
        |_| {},
    )
}

fn get(server: &TestServer, target: &str) -> Reply {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    raw_request(server.addr, raw.as_bytes()).expect("a reply")
}

fn post(server: &TestServer, target: &str, content_type: &str, body: &[u8]) -> Reply {
    let mut raw = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw_request(server.addr, &raw).expect("a reply")
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Bodies written with `\n`, sent with CRLF.
fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

#[test]
fn get_argument_as_tornado() {
    let s = server_with(FormLimits::default());
    assert_eq!(get(&s, "/get_argument?foo=bar").text(), "bar");
    assert_eq!(get(&s, "/get_argument?foo=").text(), "");
    assert_eq!(get(&s, "/get_argument").text(), "default");
    // The body wins in the singular; the plural merges, query first.
    assert_eq!(
        post(&s, "/get_argument?foo=bar", FORM, b"foo=hello").text(),
        "hello"
    );
    assert_eq!(
        post(&s, "/get_arguments?foo=bar", FORM, b"foo=hello").text(),
        r#"default=["bar", "hello"] query=["bar"] body=["hello"]"#
    );
}

#[test]
fn get_query_and_body_arguments_as_tornado() {
    let s = server_with(FormLimits::default());
    let q = |target: &str, body: &[u8]| post(&s, target, FORM, body).text();
    assert_eq!(q("/get_argument?source=query&foo=bar", b"foo=hello"), "bar");
    assert_eq!(q("/get_argument?source=query&foo=", b"foo=hello"), "");
    assert_eq!(q("/get_argument?source=query", b"foo=hello"), "default");
    assert_eq!(q("/get_argument?source=body&foo=hello", b"foo=bar"), "bar");
    assert_eq!(q("/get_argument?source=body&foo=hello", b"foo="), "");
    assert_eq!(q("/get_argument?source=body&foo=hello", b""), "default");
}

#[test]
fn missing_and_undecodable_arguments_answer_400() {
    let s = server_with(FormLimits::default());
    assert_eq!(get(&s, "/required").status, 400);
    assert_eq!(get(&s, "/required?name=%FF").status, 400);
    assert_eq!(post(&s, "/required", FORM, b"name=%C3").status, 400);
    // `+` and `%2B` (Tornado's test_decode_argument_plus), stripping, and
    // control characters turned to spaces.
    assert_eq!(
        get(&s, "/required?name=1+%2B+1").text(),
        r#""1 + 1" ["1 + 1"]"#
    );
    assert_eq!(
        get(&s, "/required?name=%20a%01b%09c%20").text(),
        r#""a b\tc" [" a b\tc "]"#
    );
    assert_eq!(get(&s, "/required?name=%C3%A9").text(), r#""é" ["é"]"#);
}

#[test]
fn multipart_through_the_server() {
    let s = server_with(FormLimits::default());
    let body = crlf(
        "--XX\nContent-Disposition: form-data; name=\"title\"\n\n  Holiday \n\
         --XX\nContent-Disposition: form-data; name=\"photo\"; filename=\"a b.jpg\"\nContent-Type: image/jpeg\n\n0123456789\n\
         --XX\nContent-Disposition: form-data; name=\"photo\"; filename*=UTF-8''%C3%A9.png\n\n\n--XX--\n",
    );
    let r = post(&s, "/files", "multipart/form-data; boundary=XX", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.text(),
        "photo: a b.jpg image/jpeg 10\nphoto: é.png application/unknown 0\ntitle=\"Holiday\"\n"
    );
    // Malformed forms: 400, never 500.
    let bad: [(&str, &[u8]); 5] = [
        ("multipart/form-data", b"--XX--"),
        (
            "multipart/form-data; boundary=XX",
            b"--XX\r\nContent-Disposition: form-data; name=a\r\n\r\nunterminated",
        ),
        (
            "multipart/form-data; boundary=XX",
            b"--XX\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XX--",
        ),
        (
            "multipart/form-data; boundary=XX",
            b"--XX\r\nContent-Disposition: form-data; name=a\r\n--XX\r\n\r\nx\r\n--XX--",
        ),
        ("multipart/form-dataxyz; boundary=XX", b"--XX--"),
    ];
    for (ct, body) in bad {
        let r = post(&s, "/files", ct, body);
        assert_eq!(r.status, 400, "{ct} {:?}", String::from_utf8_lossy(body));
    }
    // A compressed form cannot be read: 400, as Tornado.
    let raw = b"POST /files HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
        Content-Type: application/x-www-form-urlencoded\r\nContent-Encoding: gzip\r\n\
        Content-Length: 3\r\n\r\na=1";
    assert_eq!(raw_request(s.addr, raw).unwrap().status, 400);
}

#[test]
fn form_limits_answer_their_status() {
    let s = server_with(FormLimits {
        max_parts: 2,
        max_part_header_size: 100,
        max_fields: 3,
        max_field_size: 16,
        multipart: true,
    });
    let part = |name: &str, value: &str| {
        format!("--XX\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    };
    let mp = "multipart/form-data; boundary=XX";
    let three = format!(
        "{}{}{}--XX--",
        part("a", "1"),
        part("b", "2"),
        part("c", "3")
    );
    assert_eq!(post(&s, "/files", mp, three.as_bytes()).status, 400);
    let big_header = part(&"n".repeat(200), "1") + "--XX--";
    assert_eq!(post(&s, "/files", mp, big_header.as_bytes()).status, 413);
    let big_field = part("a", &"v".repeat(17)) + "--XX--";
    assert_eq!(post(&s, "/files", mp, big_field.as_bytes()).status, 413);
    let ok = part("a", &"v".repeat(16)) + "--XX--";
    assert_eq!(post(&s, "/files", mp, ok.as_bytes()).status, 200);
    assert_eq!(post(&s, "/files", FORM, b"a=1&b=2&c=3&d=4").status, 400);
    assert_eq!(
        post(
            &s,
            "/files",
            FORM,
            &[b"a=".as_slice(), &[b'v'; 17]].concat()
        )
        .status,
        413
    );
    assert_eq!(post(&s, "/files", FORM, b"a=1&b=2&c=3").status, 200);
    // The query counts too.
    assert_eq!(get(&s, "/required?name=1&a&b&c").status, 400);
}

// ----- streaming ----------------------------------------------------------

/// Writes each file part's body through a hasher as it streams, noting the
/// most the parser ever held.
#[derive(Default)]
struct StreamUpload {
    reader: Option<MultipartReader>,
    sizes: Vec<(String, u64, u64)>,
    max_held: usize,
}

impl RequestHandler for StreamUpload {
    fn stream_request_body() -> bool {
        true
    }
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        x.connection().set_max_body_size(1 << 30);
        self.reader = Some(x.multipart_reader()?);
        Ok(())
    }
    fn data_received(&mut self, _x: &Exchange, chunk: &[u8]) -> Result<Option<Future<()>>, Error> {
        let sizes = &mut self.sizes;
        let reader = self.reader.as_mut().expect("prepared");
        reader.feed(chunk, |event| {
            match event {
                MultipartEvent::PartStart(part) => sizes.push((part.name, 0, 0)),
                MultipartEvent::Data(data) => {
                    let last = sizes.last_mut().expect("a part");
                    last.1 += data.len() as u64;
                    last.2 = data.iter().fold(last.2, |h, &b| {
                        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                    });
                }
                MultipartEvent::PartEnd => {}
            }
            Ok(())
        })?;
        self.max_held = self.max_held.max(reader.parser().buffered());
        Ok(None)
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        self.reader.as_mut().expect("prepared").finish()?;
        for (name, size, hash) in &self.sizes {
            x.write(format!("{name} {size} {hash:x}\n"));
        }
        x.write(format!("held {}", self.max_held));
        Ok(())
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter()
        .fold(0, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

#[test]
fn a_streamed_multipart_upload_is_parsed_as_it_arrives() {
    let s = server_with(FormLimits::default());
    // 8 MiB of bytes that hold CRs, LFs and dashes, written slowly in odd
    // pieces.
    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| b"\r\n-x-\r-"[(i.wrapping_mul(2_654_435_761) >> 29) as usize % 7])
        .collect();
    let head = "--XX\r\nContent-Disposition: form-data; name=\"big\"; filename=\"big.bin\"\r\n\r\n";
    let tail = "\r\n--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XX--\r\n";
    let len = head.len() + data.len() + tail.len();
    let mut conn = http_kit::connect(s.addr);
    write!(
        conn,
        "POST /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: {len}\r\n\r\n{head}"
    )
    .unwrap();
    for piece in data.chunks(100_003) {
        conn.write_all(piece).unwrap();
    }
    conn.write_all(tail.as_bytes()).unwrap();
    let reply = http_kit::read_reply(&mut conn, &mut Vec::new(), false).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("big {} {:x}", data.len(), fnv(&data)));
    assert_eq!(lines[1], format!("note 2 {:x}", fnv(b"hi")));
    let held: usize = lines[2].strip_prefix("held ").unwrap().parse().unwrap();
    assert!(held < 1024, "the parser held {held} bytes");
}

#[test]
fn a_malformed_streamed_upload_answers_400() {
    let s = server_with(FormLimits::default());
    // Not multipart: the reader refuses in `prepare`.
    assert_eq!(post(&s, "/stream", "text/plain", b"x").status, 400);
    // Cut short: `finish` refuses.
    let r = post(
        &s,
        "/stream",
        "multipart/form-data; boundary=XX",
        b"--XX\r\nContent-Disposition: form-data; name=a\r\n\r\nno end",
    );
    assert_eq!(r.status, 400);
    // A bad header in the middle of the stream: `feed` refuses.
    let r = post(
        &s,
        "/stream",
        "multipart/form-data; boundary=XX",
        b"--XX\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--XX--",
    );
    assert_eq!(r.status, 400);
}

/// An `HTTPError` a handler builds from the reader keeps its status.
#[test]
fn reader_errors_are_http_errors() {
    let err: Error = HTTPError::new(413).into();
    assert_eq!(HTTPError::from_error(&err).unwrap().status_code, 413);
}

// ----- a real client ------------------------------------------------------

/// Python `requests` posts a form with two files (one with a non-ASCII
/// name) and fields, and streams a file to the streaming handler.
#[test]
fn python_requests_uploads() {
    if !need::ready(&[need::Peer::Requests]) {
        return;
    }
    let s = server_with(FormLimits::default());
    let script = r#"
import hashlib, sys, requests
base = sys.argv[1]
r = requests.post(base + "/files",
    data={"title": " Holiday ", "tag": ["a", "b"]},
    files={"photo": ("été.jpg", b"\xff\xd8" * 1000, "image/jpeg"),
           "notes": ("notes.txt", b"line\r\n--boundary-ish\r\n")})
print(r.status_code)
print(r.text, end="")
data = bytes(range(256)) * 4096
r = requests.post(base + "/stream", files={"big": ("big.bin", data)}, data={"note": "hi"})
print("STREAM", r.status_code)
print(r.text)
"#;
    let (ok, out, err) = run(
        Command::new(http_kit::python()).args(["-c", script, &s.url("")]),
        None,
        Duration::from_secs(60),
    );
    assert!(ok, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "200", "{out}");
    // `requests` sends a non-ASCII filename raw, in UTF-8.
    assert!(lines.contains(&"photo: été.jpg image/jpeg 2000"), "{out}");
    assert!(
        lines.contains(&"notes: notes.txt application/unknown 22"),
        "{out}"
    );
    assert!(lines.contains(&"tag=\"b\""), "{out}");
    assert!(lines.contains(&"title=\"Holiday\""), "{out}");
    let data: Vec<u8> = (0..4096).flat_map(|_| 0..=255u8).collect();
    let stream = lines.iter().position(|l| *l == "STREAM 200").expect(&out);
    let parts = &lines[stream + 1..];
    assert!(
        parts.contains(&format!("note 2 {:x}", fnv(b"hi")).as_str()),
        "{out}"
    );
    let big = format!("big {} {:x}", data.len(), fnv(&data));
    assert!(parts.contains(&big.as_str()), "{out}");
}

/// Exchanges are pooled and reused on a keep-alive connection: each
/// request's arguments and files are its own.
#[test]
fn arguments_do_not_leak_between_requests_on_one_connection() {
    let s = server_with(FormLimits::default());
    let mut conn = http_kit::connect(s.addr);
    let mut buf = Vec::new();
    let mut ask = |raw: &[u8]| {
        conn.write_all(raw).unwrap();
        http_kit::read_reply(&mut conn, &mut buf, false).unwrap()
    };
    let r = ask(b"GET /required?name=first HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.text(), r#""first" ["first"]"#);
    let r = ask(b"GET /required?name=second HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.text(), r#""second" ["second"]"#);
    let r = ask(b"GET /required HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 400);
    let body = b"--XX\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\nA\r\n--XX--";
    let mut raw = format!(
        "POST /files HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    assert_eq!(ask(&raw).text(), "f: a application/unknown 1\n");
    let r = ask(b"POST /files HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((r.status, r.text()), (200, String::new()));
    // A malformed body's 400 is not remembered either.
    let r = ask(b"POST /required?name=q HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n\r\nname=\xff");
    assert_eq!(r.status, 400);
    let r = ask(b"GET /required?name=ok HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.text(), r#""ok" ["ok"]"#);
}
