//! Regressions a review found: a short body finished later, a
//! Content-Length that is no number, a refused streaming body, `set_async`
//! inside a context of the handler's own.

use super::*;

fn read_all(s: &mut std::net::TcpStream, limit: Duration) -> (String, bool) {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

/// A body short of its `Content-Length`, finished from a later callback:
/// what there is goes out, and the connection closes (it used to hang).
struct AsyncShort;
impl RequestHandler for AsyncShort {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_async();
        x.set_header("Content-Length", "10")?;
        x.write("12345");
        let x = x.clone();
        IOLoop::current().call_later(Duration::from_millis(20), move || {
            let _ = x.finish();
        });
        Ok(())
    }
}
#[test]
fn a_short_body_finished_later_is_sent_and_the_connection_closes() {
    let srv = TestServer::start(
        || Application::new().route("/", || AsyncShort),
        |s| s.set_idle_timeout(Duration::from_millis(200)),
    );
    let mut c = connect(srv.addr);
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (got, closed) = read_all(&mut c, Duration::from_secs(2));
    assert!(
        closed,
        "connection still open after 2s (idle timeout 200ms); got {got:?}"
    );
    assert!(got.ends_with("\r\n\r\n12345"), "{got:?}");
}

/// A `Content-Length` the connection refuses: 500, not silence.
struct BadCl;
impl RequestHandler for BadCl {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.set_header("Content-Length", "abc")?;
        x.write("hi");
        Ok(())
    }
}
#[test]
fn a_content_length_that_is_no_number_gets_500_not_a_hang() {
    let srv = TestServer::start(
        || Application::new().route("/", || BadCl),
        |s| s.set_idle_timeout(Duration::from_millis(200)),
    );
    let mut c = connect(srv.addr);
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (got, closed) = read_all(&mut c, Duration::from_secs(2));
    assert!(got.starts_with("HTTP/1.1 500"), "{got:?} closed={closed}");
}

// A streaming handler whose body is refused (over its limit) hears the
// connection close.
thread_local! { static EV: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) }; }
struct Stream1;
impl RequestHandler for Stream1 {
    fn stream_request_body() -> bool {
        true
    }
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        x.connection().set_max_body_size(10);
        EV.with(|e| e.borrow_mut().push("prepare"));
        Ok(())
    }
    fn data_received(
        &mut self,
        _x: &Exchange,
        _c: &[u8],
    ) -> Result<Option<squall::Future<()>>, Error> {
        EV.with(|e| e.borrow_mut().push("data"));
        Ok(None)
    }
    fn post(&mut self, _x: &Exchange) -> Result<(), Error> {
        EV.with(|e| e.borrow_mut().push("post"));
        Ok(())
    }
    fn on_connection_close(&mut self) {
        EV.with(|e| e.borrow_mut().push("close"));
    }
    fn on_finish(&mut self) {
        EV.with(|e| e.borrow_mut().push("finish"));
    }
}
impl Drop for Stream1 {
    fn drop(&mut self) {
        EV.with(|e| e.borrow_mut().push("drop"));
    }
}
#[test]
fn a_streaming_handler_refused_its_body_hears_the_close() {
    let (tx, rx) = std::sync::mpsc::channel();
    let srv = TestServer::start(
        move || {
            let tx = tx.clone();
            let l = IOLoop::current();
            fn poll(l: IOLoop, tx: std::sync::mpsc::Sender<Vec<&'static str>>) {
                let l2 = l.clone();
                l.call_later(Duration::from_millis(50), move || {
                    let _ = tx.send(EV.with(|e| e.borrow().clone()));
                    poll(l2, tx)
                });
            }
            poll(l, tx);
            Application::new().route("/", || Stream1)
        },
        |_| {},
    );
    let mut c = connect(srv.addr);
    c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n").unwrap();
    let (got, _closed) = read_all(&mut c, Duration::from_secs(2));
    assert!(got.starts_with("HTTP/1.1 413"), "{got:?}");
    std::thread::sleep(Duration::from_millis(300));
    let mut ev = vec![];
    while let Ok(e) = rx.try_recv() {
        ev = e;
    }
    assert!(
        ev.contains(&"close") || ev.contains(&"finish"),
        "handler told nothing: {ev:?}"
    );
}

// `set_async` inside a context of the handler's own: the request's is not
// entered there, and no stale context outlives the method.
thread_local! { static CAUGHT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) }; }
struct Nested;
impl RequestHandler for Nested {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let ctx = squall::stack_context::ExceptionStackContext::new(|_e: &Error| {
            CAUGHT.with(|c| c.set(c.get() + 1));
            true
        });
        ctx.run(|| x.set_async());
        x.finish()
    }
}
struct Later;
impl RequestHandler for Later {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        IOLoop::current().call_later(Duration::from_millis(10), || {
            Err::<(), _>(Error::new(squall::ErrorKind::Timeout, "late"))
        });
        x.write("later");
        Ok(())
    }
}
#[test]
fn set_async_inside_a_nested_context_leaves_no_stale_context() {
    let (tx, rx) = std::sync::mpsc::channel();
    let srv = TestServer::start(
        move || {
            let l = IOLoop::current();
            let l2 = l.clone();
            l.call_later(Duration::from_millis(500), move || {
                let _ = tx.send(CAUGHT.with(|c| c.get()));
                let _ = l2;
            });
            Application::new()
                .route("/n", || Nested)
                .route("/l", || Later)
        },
        |_| {},
    );
    let mut c = connect(srv.addr);
    c.write_all(b"GET /n HTTP/1.1\r\nHost: x\r\n\r\nGET /l HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let caught = rx.recv().unwrap();
    assert_eq!(caught, 0, "request /l's error went to request /n's context");
}
