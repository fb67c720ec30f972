//! Errors several callbacks later, `write_error`'s pages, panics in the
//! factory, `prepare` and `on_finish`.

use super::*;

/// Section 2 of the protocol issue: an error raised by any callback a
/// handler scheduled, however late, answers 500 (or closes a response whose
/// head went out), once; the client never hangs.
fn late_errors_app() -> Application {
    use squall::IOLoop;
    struct LateErr;
    impl RequestHandler for LateErr {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.set_async();
            // Two callbacks later, an Err.
            IOLoop::current().add_callback(|| {
                IOLoop::current().call_later(Duration::from_millis(5), || {
                    Err::<(), _>(Error::new(ErrorKind::InvalidState, "backend said no"))
                });
            });
            Ok(())
        }
    }
    struct LatePanic;
    impl RequestHandler for LatePanic {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.set_async();
            IOLoop::current().call_later(Duration::from_millis(5), || -> () {
                panic!("a bug, later");
            });
            Ok(())
        }
    }
    struct LateAfterHead;
    impl RequestHandler for LateAfterHead {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.set_async();
            x.write("part of it");
            drop(x.flush());
            IOLoop::current().call_later(Duration::from_millis(5), || {
                Err::<(), _>(Error::new(ErrorKind::InvalidState, "half way"))
            });
            Ok(())
        }
    }
    struct LateAfterFinish;
    impl RequestHandler for LateAfterFinish {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.write("fine");
            IOLoop::current().call_later(Duration::from_millis(5), || {
                Err::<(), _>(Error::new(ErrorKind::InvalidState, "too late to matter"))
            });
            Ok(())
        }
    }
    Application::new()
        .route("/err", || LateErr)
        .route("/panic", || LatePanic)
        .route("/after_head", || LateAfterHead)
        .route("/after_finish", || LateAfterFinish)
}

#[test]
fn errors_several_callbacks_later_answer_500() {
    let s = TestServer::start(late_errors_app, |_| {});
    for path in ["/err", "/panic"] {
        let start = Instant::now();
        let r = raw_request(
            s.addr,
            format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
        )
        .expect("an answer, not a hang");
        assert_eq!(r.status, 500, "{path}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    // The head went out: the connection closes (the chunked body never ends).
    let mut conn = connect(s.addr);
    conn.write_all(b"GET /after_head HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    conn.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a clean end after an error: {text}"
    );
    // Finished first: the answer stands, and the connection goes on.
    let mut conn = connect(s.addr);
    conn.write_all(b"GET /after_finish HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        read_reply(&mut conn, &mut buf, false).unwrap().text(),
        "fine"
    );
    std::thread::sleep(Duration::from_millis(30));
    conn.write_all(b"GET /after_finish HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_reply(&mut conn, &mut buf, false).unwrap().text(),
        "fine"
    );
}

#[test]
fn write_error_makes_the_error_pages_of_its_route() {
    struct Api;
    impl RequestHandler for Api {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            match x.request().query() {
                "missing" => {
                    x.send_error(404);
                    Ok(())
                }
                _ => Err(Error::new(ErrorKind::InvalidState, "db down")),
            }
        }
        fn write_error(x: &Exchange, status: u16, error: Option<&Error>) {
            let _ = x.set_header("Content-Type", "application/json");
            let why = error.map(|e| e.kind().to_string()).unwrap_or_default();
            x.write(format!("{{\"status\": {status}, \"why\": \"{why}\"}}"));
        }
    }
    let s = TestServer::start(|| Application::new().route("/api", || Api), |_| {});
    let r = raw_request(s.addr, b"GET /api?missing HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.text(), "{\"status\": 404, \"why\": \"\"}");
    let r = raw_request(s.addr, b"GET /api HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "{\"status\": 500, \"why\": \"invalid state\"}");
    // No route: the default page.
    let r = raw_request(s.addr, b"GET /elsewhere HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(r.status, 404);
    assert!(r.text().starts_with("<html><title>404: Not Found</title>"));
}

#[test]
fn panics_in_factory_prepare_and_on_finish_are_caught_and_pipelined_answers_delivered() {
    struct Fine;
    impl RequestHandler for Fine {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.write("fine");
            Ok(())
        }
    }
    struct BadPrepare;
    impl RequestHandler for BadPrepare {
        fn prepare(&mut self, _x: &Exchange) -> Result<(), Error> {
            panic!("prepare broke");
        }
    }
    struct BadFinish;
    impl RequestHandler for BadFinish {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            x.write("answered");
            Ok(())
        }
        fn on_finish(&mut self) {
            panic!("on_finish broke");
        }
    }
    let s = TestServer::start(
        || {
            Application::new()
                .route("/fine", || Fine)
                .route("/factory", || -> Fine { panic!("factory broke") })
                .route("/prepare", || BadPrepare)
                .route("/on_finish", || BadFinish)
        },
        |_| {},
    );
    let mut conn = connect(s.addr);
    conn.write_all(
        b"GET /fine HTTP/1.1\r\nHost: a\r\n\r\nGET /factory HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /prepare HTTP/1.1\r\nHost: a\r\n\r\nGET /on_finish HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /fine HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut next = || read_reply(&mut conn, &mut buf, false).expect("reply");
    assert_eq!(next().text(), "fine");
    assert_eq!(next().status, 500);
    assert_eq!(next().status, 500);
    let r = next();
    assert_eq!((r.status, r.text().as_str()), (200, "answered"));
    assert_eq!(next().text(), "fine");
}
