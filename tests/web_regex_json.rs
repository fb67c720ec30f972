//! Regular-expression routes (Tornado's `URLSpec`, feature `regex`) and JSON
//! in and out of handlers (feature `json`), through a real `HTTPServer`, with
//! a raw client and with curl.

#[path = "common/http.rs"]
#[allow(dead_code)]
mod http_kit;

#[path = "common/peers.rs"]
mod need;

use std::process::Command;
use std::time::Duration;

use http_kit::{raw_request, run, TestServer};
use serde_json::{json, Value};
use squall::web::{Application, Exchange, RequestHandler};
use squall::{Error, ErrorKind};

/// Answers with its path arguments, as JSON.
struct Args;
impl RequestHandler for Args {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let args: Vec<Value> = x
            .request()
            .path_args()
            .iter()
            .map(|(n, v)| json!([n, v]))
            .collect();
        x.write_json(&args)
    }
}

/// Adds up the numbers of a JSON body: `{"numbers": [...]}` -> `{"sum": n}`.
struct Sum;
impl RequestHandler for Sum {
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        let body: Value = match x.request().body_json() {
            Ok(body) => body,
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::HttpProtocol);
                x.set_status(400);
                return x.write_json(&json!({ "error": err.to_string() }));
            }
        };
        let Some(numbers) = body["numbers"].as_array() else {
            x.set_status(400);
            return x.write_json(&json!({ "error": "no numbers" }));
        };
        let sum: f64 = numbers.iter().filter_map(Value::as_f64).sum();
        x.write_json(&json!({ "sum": sum }))
    }
}

/// Tries to write what JSON cannot hold: a map with non-string keys.
struct Unserializable;
impl RequestHandler for Unserializable {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let map: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let err = x.write_json(&map).expect_err("tuple keys");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        x.write(format!("refused: {err}"));
        Ok(())
    }
}

fn app() -> Application {
    Application::new()
        .route("/exact/1", || Args)
        .route_regex(r"/entry/([^/]+)/(\d+)", || Args)
        .route_regex(r"/(?P<year>\d{4})/(\d{2})/(?P<slug>[a-z-]+)", || Args)
        // Registered after a route that matches the same path: never reached.
        .route_regex(r"/exact/(\d)", || Unserializable)
        .route_regex(r"/sum/?", || Sum)
        .route("/bad-json", || Unserializable)
        // A capture route behind a regex that takes its paths: only what the
        // regex leaves (here, non-digits) reaches it.
        .route_regex(r"/item/(\d+)", || Args)
        .route("/item/{name}", || Unserializable)
}

fn get(s: &TestServer, path: &str) -> http_kit::Reply {
    raw_request(
        s.addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap_or_else(|| panic!("no reply to {path}"))
}

fn post(s: &TestServer, path: &str, body: &str) -> http_kit::Reply {
    raw_request(
        s.addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap_or_else(|| panic!("no reply to {path}"))
}

fn json_of(r: &http_kit::Reply) -> Value {
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/json; charset=UTF-8"),
        "{}",
        r.head
    );
    serde_json::from_slice(&r.body).expect("a JSON body")
}

#[test]
fn regex_routes_match_whole_paths_in_order() {
    let s = TestServer::start(app, |_| {});
    // Positional groups, by number, url-unescaped.
    let r = get(&s, "/entry/caf%C3%A9/42");
    assert_eq!(r.status, 200);
    assert_eq!(json_of(&r), json!([["1", "café"], ["2", "42"]]));
    // Named groups only, when there are any.
    let r = get(&s, "/2026/11/hello-world");
    assert_eq!(
        json_of(&r),
        json!([["year", "2026"], ["slug", "hello-world"]])
    );
    // Anchored at both ends: no prefix or suffix matches; the query is not
    // part of the path.
    assert_eq!(get(&s, "/entry/x/42/more").status, 404);
    assert_eq!(get(&s, "/v1/entry/x/42").status, 404);
    assert_eq!(
        json_of(&get(&s, "/entry/x/7?y=1")),
        json!([["1", "x"], ["2", "7"]])
    );
    // The earlier exact route wins over the later regex.
    assert_eq!(json_of(&get(&s, "/exact/1")), json!([]));
    // The regex route answers what the exact one does not take.
    assert!(get(&s, "/exact/2").text().starts_with("refused: "));
    // The earlier regex wins over the later capture route...
    assert_eq!(json_of(&get(&s, "/item/12")), json!([["1", "12"]]));
    // ...which still answers the paths the regex refuses.
    assert!(get(&s, "/item/pen").text().starts_with("refused: "));
}

#[test]
fn json_in_and_out() {
    let s = TestServer::start(app, |_| {});
    let r = post(&s, "/sum", r#"{"numbers": [1, 2, 3.5]}"#);
    assert_eq!(r.status, 200);
    assert_eq!(json_of(&r), json!({ "sum": 6.5 }));
    // Malformed JSON: the handler's 400, with serde's reason.
    let r = post(&s, "/sum/", r#"{"numbers": [1, 2"#);
    assert_eq!(r.status, 400);
    let err = json_of(&r)["error"].as_str().unwrap().to_owned();
    assert!(err.contains("not the JSON expected"), "{err}");
    // Valid JSON of the wrong shape.
    assert_eq!(post(&s, "/sum", "[1, 2]").status, 400);
    // What JSON cannot hold is an error, not a panic, and nothing is written.
    let r = get(&s, "/bad-json");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("cannot write as JSON"), "{}", r.text());
    assert_ne!(
        r.header("Content-Type").as_deref(),
        Some("application/json; charset=UTF-8")
    );
}

#[test]
fn curl_posts_json() {
    if !need::ready(&[need::Peer::Curl]) {
        return;
    }
    let s = TestServer::start(app, |_| {});
    let (ok, out, err) = run(
        Command::new("curl").args([
            "-sS",
            "--max-time",
            "10",
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"numbers": [40, 2]}"#,
            &s.url("/sum"),
        ]),
        None,
        Duration::from_secs(15),
    );
    assert!(ok, "curl failed: {err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({ "sum": 42.0 })
    );
}
