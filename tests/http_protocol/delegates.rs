//! Raw delegates: a closure of the request, a message delegate of one's
//! own (reused when it asks), streamed request bodies with backpressure,
//! the connection handed over after `101`, `on_connection_close`.

use super::*;

#[test]
fn a_closure_serves_and_echoes_bodies() {
    let s = echo_server();
    let r = raw_request(
        s.addr,
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");
    assert_eq!(r.header("X-Method").as_deref(), Some("POST"));
    // A raw server sets no Content-Type of its own.
    assert_eq!(r.header("Content-Type"), None);
    // Chunked, and keep-alive with pipelining.
    let mut conn = connect(s.addr);
    conn.write_all(
        b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\
          GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        read_reply(&mut conn, &mut buf, false).unwrap().text(),
        "abcde"
    );
    let r = read_reply(&mut conn, &mut buf, false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, ""));
}

/// Answers `101` and speaks a made-up protocol on the detached stream:
/// each line comes back upper-cased, `bye` ends it.
fn upgrade_server() -> TestServer {
    struct Upgrade;
    impl RequestHandler for Upgrade {
        fn get(&mut self, x: &Exchange) -> Result<(), Error> {
            let mut headers = HTTPHeaders::new();
            headers.add("Upgrade", "shout");
            headers.add("Connection", "Upgrade");
            let conn = x.connection();
            conn.write_headers(101, &headers)?;
            let stream = conn.detach()?;
            x.set_async(); // the response is no longer the server's
            fn next(stream: squall::IOStream) {
                let s = stream.clone();
                stream.read_until_max_bytes(b"\n", 1024).add_done_callback(
                    move |f: &Future<Vec<u8>>| {
                        let Ok(line) = f.result() else { return };
                        if line == b"bye\n" {
                            s.close();
                            return;
                        }
                        drop(s.write(line.to_ascii_uppercase()));
                        next(s.clone());
                    },
                );
            }
            next(stream);
            Ok(())
        }
    }
    TestServer::start(|| Application::new().route("/shout", || Upgrade), |_| {})
}

#[test]
fn detach_after_101_hands_the_stream_over_with_the_bytes_already_read() {
    let s = upgrade_server();
    let mut conn = connect(s.addr);
    // The first line of the new protocol comes in the same packet as the
    // request: it must reach the new owner.
    conn.write_all(
        b"GET /shout HTTP/1.1\r\nHost: a\r\nUpgrade: shout\r\nConnection: Upgrade\r\n\r\nhello\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let head = read_reply(&mut conn, &mut buf, true).unwrap();
    assert_eq!(head.status, 101);
    assert_eq!(head.header("Content-Length"), None);
    assert_eq!(head.header("Transfer-Encoding"), None);
    assert_eq!(head.header("Connection").as_deref(), Some("Upgrade"));
    let mut rest = buf;
    conn.write_all(b"again\nbye\n").unwrap();
    let mut chunk = [0u8; 256];
    while !rest.ends_with(b"AGAIN\n") {
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&rest));
        rest.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(rest, b"HELLO\nAGAIN\n");
    // `bye`: the new owner closes.
    assert_eq!(conn.read(&mut chunk).unwrap(), 0);
    // The server goes on.
    let r = raw_request(s.addr, b"GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn on_connection_close_is_called_once_for_a_message_left_waiting() {
    thread_local! {
        static CLOSED: RefCell<u32> = const { RefCell::new(0) };
    }
    struct LongPoll;
    struct Waiting(#[allow(dead_code)] Rc<()>);
    impl HTTPServerConnectionDelegate for LongPoll {
        type Message = Waiting;
        fn start_request(&self, _conn: &HTTPConnection) -> Waiting {
            Waiting(Rc::new(()))
        }
    }
    impl HTTPMessageDelegate for Waiting {
        fn headers_received(&mut self, _request: Box<HTTPServerRequest>) {}
        fn finish(&mut self) {} // never answers
        fn on_connection_close(&mut self) {
            CLOSED.with(|c| *c.borrow_mut() += 1);
        }
    }
    struct Count;
    impl HTTPServerConnectionDelegate for Count {
        type Message = CountMessage;
        fn start_request(&self, conn: &HTTPConnection) -> CountMessage {
            CountMessage(conn.clone())
        }
    }
    struct CountMessage(HTTPConnection);
    impl HTTPMessageDelegate for CountMessage {
        fn headers_received(&mut self, _request: Box<HTTPServerRequest>) {}
        fn finish(&mut self) {
            let n = CLOSED.with(|c| *c.borrow());
            let _ = self
                .0
                .write_response(200, &HTTPHeaders::new(), n.to_string().as_bytes());
        }
    }
    // Two servers on one loop: the second reports what the first saw.
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let io_loop = IOLoop::new().unwrap();
        io_loop.make_current();
        let a = HTTPServer::with_loop(&io_loop, LongPoll);
        let b = HTTPServer::with_loop(&io_loop, Count);
        a.listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        b.listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        tx.send((a.local_addrs()[0], b.local_addrs()[0], io_loop.remote()))
            .unwrap();
        io_loop.start().unwrap();
        io_loop.close();
    });
    let (a, b, remote) = rx.recv().unwrap();
    for _ in 0..3 {
        let mut conn = connect(a);
        conn.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(conn);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = raw_request(b, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .text();
        if n == "3" || Instant::now() > deadline {
            assert_eq!(n, "3");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    remote.stop().unwrap();
    thread.join().unwrap();
}

/// A message delegate that asks to be reused serves its connection's next
/// requests (`start_request` is not called again there); one that does not
/// is made anew for each request; a new connection always gets a new one.
#[test]
fn a_message_delegate_that_asks_is_reused_for_the_next_request() {
    struct Counting {
        made: std::cell::Cell<u32>,
        reuse: bool,
    }
    struct Served {
        conn: HTTPConnection,
        made: u32,
        served: u32,
        reuse: bool,
    }
    impl HTTPServerConnectionDelegate for Counting {
        type Message = Served;
        fn start_request(&self, conn: &HTTPConnection) -> Served {
            self.made.set(self.made.get() + 1);
            Served {
                conn: conn.clone(),
                made: self.made.get(),
                served: 0,
                reuse: self.reuse,
            }
        }
    }
    impl HTTPMessageDelegate for Served {
        fn headers_received(&mut self, request: Box<HTTPServerRequest>) {
            self.conn.recycle_request(request);
        }
        fn finish(&mut self) {
            self.served += 1;
            let body = format!("made {} served {}", self.made, self.served);
            let _ = self
                .conn
                .write_response(200, &HTTPHeaders::new(), body.as_bytes());
        }
        fn reuse(&mut self) -> bool {
            self.reuse
        }
    }
    for reuse in [true, false] {
        let s = TestServer::start(
            move || Counting {
                made: std::cell::Cell::new(0),
                reuse,
            },
            |_| {},
        );
        let mut conn = connect(s.addr);
        let mut buf = Vec::new();
        // One at a time, then two pipelined in one write.
        conn.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut bodies = vec![read_reply(&mut conn, &mut buf, false).unwrap().text()];
        conn.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        for _ in 0..2 {
            bodies.push(read_reply(&mut conn, &mut buf, false).unwrap().text());
        }
        let other = raw_request(s.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .text();
        if reuse {
            assert_eq!(
                bodies,
                ["made 1 served 1", "made 1 served 2", "made 1 served 3"]
            );
            assert_eq!(other, "made 2 served 1");
        } else {
            assert_eq!(
                bodies,
                ["made 1 served 1", "made 2 served 1", "made 3 served 1"]
            );
            assert_eq!(other, "made 4 served 1");
        }
    }
}

#[test]
fn a_streaming_handler_gets_the_body_in_pieces_and_may_raise_the_limit() {
    #[derive(Default)]
    struct Upload {
        bytes: usize,
        pieces: usize,
    }
    impl RequestHandler for Upload {
        fn stream_request_body() -> bool {
            true
        }
        fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
            if x.request().get_query_argument("big").is_some() {
                x.connection().set_max_body_size(1 << 24);
            }
            Ok(())
        }
        fn data_received(
            &mut self,
            _x: &Exchange,
            chunk: &[u8],
        ) -> Result<Option<Future<()>>, Error> {
            self.bytes += chunk.len();
            self.pieces += 1;
            Ok(None)
        }
        fn put(&mut self, x: &Exchange) -> Result<(), Error> {
            assert!(x.request().body().is_empty());
            x.write(format!("{} bytes in {} pieces", self.bytes, self.pieces));
            Ok(())
        }
    }
    let s = TestServer::start(
        || Application::new().route("/up", Upload::default),
        |server| server.set_max_body_size(1 << 20),
    );
    let body = vec![b'z'; 4 << 20];
    let send = |path: &str| {
        let mut conn = connect(s.addr);
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        let _ = conn.write_all(&body);
        read_reply(&mut conn, &mut Vec::new(), false).unwrap()
    };
    // Over the server's limit: 413, unless the handler raised it.
    assert_eq!(send("/up").status, 413);
    let r = send("/up?big=1");
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.starts_with("4194304 bytes in "), "{text}");
    let pieces: usize = text.split(' ').nth(3).unwrap().parse().unwrap();
    assert!(pieces > 1, "{text}");
}

/// `HTTPMessageDelegate::hold_body` (Tornado's `headers_received`
/// returning an awaitable): no byte of the body reaches `data_received`, and `finish`
/// does not come, until the future is done; then the body flows as ever,
/// whether it came with the head (one write), in pieces, or with its end.
#[test]
fn a_held_body_waits_for_its_future() {
    struct Holding;
    impl HTTPServerConnectionDelegate for Holding {
        type Message = HeldMessage;
        fn start_request(&self, conn: &HTTPConnection) -> HeldMessage {
            HeldMessage {
                conn: conn.clone(),
                released: Rc::new(std::cell::Cell::new(false)),
                until: None,
                log: Vec::new(),
            }
        }
    }
    struct HeldMessage {
        conn: HTTPConnection,
        released: Rc<std::cell::Cell<bool>>,
        until: Option<Future<()>>,
        log: Vec<String>,
    }
    impl HTTPMessageDelegate for HeldMessage {
        fn headers_received(&mut self, _request: Box<HTTPServerRequest>) {
            let until = Future::new();
            let (done, released) = (until.clone(), self.released.clone());
            IOLoop::current().call_later(Duration::from_millis(50), move || {
                released.set(true);
                done.set_result(());
            });
            self.until = Some(until);
        }
        fn hold_body(&mut self) -> Option<Future<()>> {
            self.until.take()
        }
        fn data_received(&mut self, chunk: &[u8]) -> Option<Future<()>> {
            let when = if self.released.get() {
                "after"
            } else {
                "before"
            };
            self.log
                .push(format!("{} {when}", String::from_utf8_lossy(chunk)));
            None
        }
        fn finish(&mut self) {
            let when = if self.released.get() {
                "after"
            } else {
                "before"
            };
            self.log.push(format!("end {when}"));
            let body = self.log.join(",");
            let _ = self
                .conn
                .write_response(200, &HTTPHeaders::new(), body.as_bytes());
        }
    }
    let s = TestServer::start(|| Holding, |_| {});
    // The body in the head's write: it waits in the buffer.
    let r = raw_request(
        s.addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .unwrap();
    assert_eq!(r.text(), "hello after,end after");
    // Chunked, the end with the data, all in one write.
    let r = raw_request(
        s.addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.text(), "abc after,end after");
    // A request with no body is not held: its end comes at once.
    let r = raw_request(
        s.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.text(), "end before");
}
