//! Tornado's `demos/chat`, ported: a chat room served by long polling. A
//! browser posts a message (`/a/message/new`) and keeps one request open
//! (`/a/message/updates`) that is answered only when there is something
//! new; a client that goes away while waiting is forgotten
//! (`on_connection_close`). Visitors sign in with a name kept in a signed
//! cookie, every POST carries an XSRF token, pages are templates, and the
//! script and style sheet are static files with versioned URLs.
//!
//! ```python
//! class MessageUpdatesHandler(BaseHandler):
//!     @tornado.web.authenticated
//!     async def post(self):
//!         cursor = self.get_argument("cursor", None)
//!         self.future = global_message_buffer.wait_for_messages(cursor=cursor)
//!         messages = await self.future
//!         if self.request.connection.stream.closed():
//!             return
//!         self.finish(dict(messages=messages))
//!
//!     def on_connection_close(self):
//!         global_message_buffer.cancel_wait(self.future)
//! ```
//!
//! Usage:
//!
//! ```text
//! chat_long_poll              serve on http://127.0.0.1:8888/
//! chat_long_poll PORT         serve on PORT
//! chat_long_poll --self-test  serve on a free port; sign in, post, long-poll
//!                             and leave mid-poll as a client would; exit 0
//! ```
//!
//! ci-args: --self-test

use squall::netutil::BindOptions;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use serde_json::{json, Value};
use squall::http::HTTPServer;
use squall::httputil::url_escape;
use squall::web::minijinja::context;
use squall::web::{authenticated, Application, CookieSecret, Exchange, RequestHandler, Settings};
use squall::{Error, ErrorKind, Future, IOLoop};

/// Tornado's `MessageBuffer.cache_size`.
const CACHE_SIZE: usize = 200;

/// The signed cookie that says who is signed in.
const USER_COOKIE: &str = "chatdemo_user";

/// Tornado's `MessageBuffer`: the last messages, and the long polls
/// waiting for the next ones.
#[derive(Default)]
struct MessageBuffer {
    cache: Vec<Value>,
    waiters: Vec<(u64, Future<Vec<Value>>)>,
    next_waiter: u64,
    next_message: u64,
    /// Polls whose client left while waiting (the self-test checks it).
    cancelled: u64,
}

type Shared = Rc<RefCell<MessageBuffer>>;

impl MessageBuffer {
    /// The messages after `cursor` (all of them without one, or if the
    /// cursor fell out of the cache).
    fn messages_since(&self, cursor: Option<&str>) -> Vec<Value> {
        let start = cursor
            .and_then(|c| self.cache.iter().rposition(|m| m["id"] == c))
            .map_or(0, |i| i + 1);
        self.cache[start..].to_vec()
    }

    /// A future for the next messages; its id, to cancel it.
    fn wait_for_messages(&mut self) -> (u64, Future<Vec<Value>>) {
        self.next_waiter += 1;
        let future = Future::new();
        self.waiters.push((self.next_waiter, future.clone()));
        (self.next_waiter, future)
    }

    /// Tornado's `cancel_wait`: the client left.
    fn cancel_wait(&mut self, id: u64) -> Option<Future<Vec<Value>>> {
        let i = self.waiters.iter().position(|(w, _)| *w == id)?;
        self.cancelled += 1;
        Some(self.waiters.remove(i).1)
    }
}

/// Adds a message and wakes every waiter (outside the borrow: a waiter's
/// callback answers its request).
fn new_message(buffer: &Shared, message: Value) {
    let waiters = {
        let mut b = buffer.borrow_mut();
        b.cache.push(message.clone());
        if b.cache.len() > CACHE_SIZE {
            let extra = b.cache.len() - CACHE_SIZE;
            b.cache.drain(..extra);
        }
        std::mem::take(&mut b.waiters)
    };
    for (_, waiter) in waiters {
        waiter.try_set_result(vec![message.clone()]);
    }
}

/// Tornado's `BaseHandler.get_current_user`: the signed cookie's name.
fn user_of(x: &Exchange) -> Result<Option<String>, Error> {
    Ok(x.get_signed_cookie(USER_COOKIE)?
        .and_then(|v| String::from_utf8(v).ok()))
}

struct MainHandler {
    buffer: Shared,
}

impl RequestHandler for MainHandler {
    fn get_current_user(&mut self, x: &Exchange) -> Result<Option<String>, Error> {
        user_of(x)
    }

    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        if authenticated(self, x)?.is_none() {
            return Ok(()); // redirected to the login page
        }
        let messages = self.buffer.borrow().cache.clone();
        // Any `Serialize` context: a JSON map here, `context!` elsewhere.
        x.render("index.html", json!({ "messages": messages }))
    }
}

struct AuthLoginHandler;

impl RequestHandler for AuthLoginHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        let next = x.get_argument_or("next", "/")?;
        x.render("login.html", context! { next })
    }

    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        let name = x.get_argument("name")?;
        if name.is_empty() || name.len() > 64 {
            return Err(squall::web::HTTPError::new(400)
                .log_message("a name of 1 to 64 bytes")
                .into());
        }
        x.set_signed_cookie(USER_COOKIE, &name)?;
        let next = x.get_argument_or("next", "/")?;
        // Only a local path: never an open redirect to another site.
        let next = if next.starts_with('/') && !next.starts_with("//") {
            next
        } else {
            "/".to_owned()
        };
        x.redirect(&next)
    }
}

struct AuthLogoutHandler;

impl RequestHandler for AuthLogoutHandler {
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.clear_cookie(USER_COOKIE)?;
        x.write("You are now logged out");
        Ok(())
    }
}

struct MessageNewHandler {
    buffer: Shared,
}

impl RequestHandler for MessageNewHandler {
    fn get_current_user(&mut self, x: &Exchange) -> Result<Option<String>, Error> {
        user_of(x)
    }

    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        let Some(user) = authenticated(self, x)? else {
            return Ok(());
        };
        let id = {
            let mut b = self.buffer.borrow_mut();
            b.next_message += 1;
            format!("{:x}-{}", std::process::id(), b.next_message)
        };
        let mut message = json!({ "id": id, "from": user, "body": x.get_argument("body")? });
        let html = x.render_string("message.html", json!({ "message": &message }))?;
        message["html"] = Value::String(html);
        match x.get_argument_opt("next")? {
            Some(next) if next.starts_with('/') && !next.starts_with("//") => x.redirect(&next)?,
            _ => x.write_json(&message)?,
        }
        new_message(&self.buffer, message);
        Ok(())
    }
}

/// The long poll.
struct MessageUpdatesHandler {
    buffer: Shared,
    waiting: Option<u64>,
}

impl RequestHandler for MessageUpdatesHandler {
    fn get_current_user(&mut self, x: &Exchange) -> Result<Option<String>, Error> {
        user_of(x)
    }

    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        if authenticated(self, x)?.is_none() {
            return Ok(());
        }
        let cursor = x.get_argument_opt("cursor")?;
        let messages = self.buffer.borrow().messages_since(cursor.as_deref());
        if !messages.is_empty() {
            return x.write_json(&json!({ "messages": messages }));
        }
        // Nothing yet: the response stays open until a message comes.
        x.set_async();
        let (id, future) = self.buffer.borrow_mut().wait_for_messages();
        self.waiting = Some(id);
        let x = x.clone();
        future.add_done_callback(move |f: &Future<Vec<Value>>| -> Result<(), Error> {
            let messages = f.take_result()?;
            // Tornado's `if self.request.connection.stream.closed()`.
            if x.finished() || messages.is_empty() {
                return Ok(());
            }
            x.write_json(&json!({ "messages": messages }))?;
            x.finish()
        });
        Ok(())
    }

    fn on_connection_close(&mut self) {
        if let Some(id) = self.waiting.take() {
            let cancelled = self.buffer.borrow_mut().cancel_wait(id);
            if let Some(future) = cancelled {
                future.try_set_result(Vec::new());
            }
        }
    }
}

fn app(buffer: &Shared) -> Application {
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/chat_long_poll");
    let (main, new, updates) = (buffer.clone(), buffer.clone(), buffer.clone());
    Application::with_settings(Settings {
        // Tornado's demo says "__TODO:_GENERATE_YOUR_OWN_RANDOM_VALUE_HERE__".
        cookie_secret: Some(CookieSecret::new(
            std::env::var("CHAT_COOKIE_SECRET").unwrap_or_else(|_| random_secret()),
        )),
        login_url: Some("/auth/login".to_owned()),
        template_path: Some(format!("{here}/templates").into()),
        static_path: Some(format!("{here}/static").into()),
        xsrf_cookies: true,
        ..Default::default()
    })
    .route("/", move || MainHandler {
        buffer: main.clone(),
    })
    .route("/auth/login", || AuthLoginHandler)
    .route("/auth/logout", || AuthLogoutHandler)
    .route("/a/message/new", move || MessageNewHandler {
        buffer: new.clone(),
    })
    .route("/a/message/updates", move || MessageUpdatesHandler {
        buffer: updates.clone(),
        waiting: None,
    })
}

/// A secret for this run only (sign-ins end with the process): the
/// kernel's random bytes, as hex.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let buffer: Shared = Rc::default();
    let server = HTTPServer::new(app(&buffer));
    server.listen_with(port, BindOptions::new().address("127.0.0.1"))?;
    let addr = server.local_addrs()[0];
    if !self_test {
        println!("chat on http://{addr}/");
        return io_loop.start();
    }
    let remote = io_loop.remote();
    let client = std::thread::spawn(move || {
        let result = self_test_client(addr);
        let _ = remote.stop();
        result
    });
    io_loop.start()?;
    let report = client
        .join()
        .map_err(|_| Error::other("the self-test client panicked"))?
        .map_err(Error::other)?;
    println!("{report}");
    // The poll whose client left was cancelled (on_connection_close); the
    // other was answered.
    let (waiting, cancelled) = {
        let b = buffer.borrow();
        (b.waiters.len(), b.cancelled)
    };
    if waiting != 0 || cancelled != 1 {
        return Err(Error::other(format!(
            "{waiting} waiters left behind, {cancelled} cancelled (1 expected)"
        )));
    }
    server.stop();
    println!("self-test passed");
    Ok(())
}

// ----- the self-test's client: plain blocking HTTP/1.1 on std sockets -----

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// `name=value` of a `Set-Cookie` for `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            let pair = v.trim().split(';').next()?;
            (n.eq_ignore_ascii_case("set-cookie") && pair.starts_with(&format!("{name}=")))
                .then(|| pair.to_owned())
        })
    }
}

/// One request on a fresh connection (`Connection: close`).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookies: &str,
    form: &str,
) -> Result<Reply, String> {
    let mut conn = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    send(&mut conn, method, path, cookies, form)?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no head")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok(Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

fn send(
    conn: &mut TcpStream,
    method: &str,
    path: &str,
    cookies: &str,
    form: &str,
) -> Result<(), String> {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: {cookies}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    conn.write_all(request.as_bytes())
        .map_err(|e| e.to_string())
}

fn expect(what: &str, ok: bool, reply: &Reply) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {}\n{}\n\n{}",
            reply.status, reply.head, reply.body
        ))
    }
}

/// Signs in, posts, long-polls (one poll answered by a post, one whose
/// client leaves), and checks XSRF, cursors and static files.
fn self_test_client(addr: SocketAddr) -> Result<String, String> {
    let r = http(addr, "GET", "/", "", "")?;
    expect(
        "/ without a user redirects to the login page",
        r.status == 302 && r.header("Location") == Some("/auth/login?next=%2F"),
        &r,
    )?;
    let r = http(addr, "GET", "/auth/login?next=%2F", "", "")?;
    let xsrf = r.cookie("_xsrf").ok_or("no _xsrf cookie")?;
    expect(
        "the login form carries its token",
        r.status == 200 && r.body.contains("name=\"_xsrf\""),
        &r,
    )?;
    let token = url_escape(xsrf.split_once('=').map_or("", |(_, v)| v), true);
    let r = http(addr, "POST", "/auth/login", &xsrf, "name=ada&next=%2F")?;
    expect("a POST without its token is refused", r.status == 403, &r)?;
    let r = http(
        addr,
        "POST",
        "/auth/login",
        &xsrf,
        &format!("_xsrf={token}&name=ada&next=%2F"),
    )?;
    let user = r.cookie(USER_COOKIE).ok_or("no user cookie")?;
    expect(
        "signing in redirects home",
        r.status == 302 && r.header("Location") == Some("/"),
        &r,
    )?;
    let cookies = format!("{xsrf}; {user}");
    let r = http(addr, "GET", "/", &cookies, "")?;
    expect(
        "the page names the user and versions its static URLs",
        r.status == 200 && r.body.contains("<b>ada</b>") && r.body.contains("/static/chat.js?v="),
        &r,
    )?;
    let r = http(addr, "GET", "/static/chat.js", "", "")?;
    expect(
        "the script is served",
        r.status == 200 && r.body.contains("long-poll"),
        &r,
    )?;

    // Two long polls: one is answered by the next post, the other's client
    // leaves before that and must be forgotten.
    let poll_cookies = cookies.clone();
    let poll_form = format!("_xsrf={token}");
    let answered = std::thread::spawn(move || {
        http(
            addr,
            "POST",
            "/a/message/updates",
            &poll_cookies,
            &poll_form,
        )
    });
    let mut leaver = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    send(
        &mut leaver,
        "POST",
        "/a/message/updates",
        &cookies,
        &format!("_xsrf={token}"),
    )?;
    std::thread::sleep(Duration::from_millis(300));
    drop(leaver);
    std::thread::sleep(Duration::from_millis(300));

    let r = http(
        addr,
        "POST",
        "/a/message/new",
        &cookies,
        &format!("_xsrf={token}&body=hello+%3Cb%3Eworld%3C%2Fb%3E"),
    )?;
    expect(
        "a message is posted",
        r.status == 200 && r.body.contains("&lt;b&gt;world&lt;/b&gt;"),
        &r,
    )?;
    let first: Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
    let r = answered.join().map_err(|_| "poll thread panicked")??;
    expect(
        "the waiting poll gets the message",
        r.status == 200 && r.body.contains("hello <b>world</b>"),
        &r,
    )?;

    // A cursor: only what came after it.
    let r = http(
        addr,
        "POST",
        "/a/message/new",
        &cookies,
        &format!("_xsrf={token}&body=second"),
    )?;
    expect("a second message", r.status == 200, &r)?;
    let cursor = url_escape(first["id"].as_str().unwrap_or(""), true);
    let r = http(
        addr,
        "POST",
        "/a/message/updates",
        &cookies,
        &format!("_xsrf={token}&cursor={cursor}"),
    )?;
    let got: Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
    let bodies: Vec<&str> = got["messages"].as_array().map_or(Vec::new(), |m| {
        m.iter().filter_map(|m| m["body"].as_str()).collect()
    });
    if bodies != ["second"] {
        return Err(format!("after the cursor: {bodies:?}"));
    }
    let r = http(addr, "GET", "/", &cookies, "")?;
    expect(
        "the page shows the cache",
        r.body.contains("ada: </b>hello &lt;b&gt;world&lt;/b&gt;"),
        &r,
    )?;
    Ok("signed in, posted, long-polled, cursor and XSRF checked".to_owned())
}
