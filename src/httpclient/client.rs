//! `AsyncHTTPClient`: the queue (`max_clients`) and redirects on top of
//! single exchanges. The connections they run on, busy and idle, are the
//! pool's (pool.rs); this module starts an exchange when the pool has a
//! slot for it, and the exchange's release callback brings it back here.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use super::config::ClientConfig;
use super::exchange::{Answer, Exchange};
use super::pool::{ClientStats, HostKey, Pool, Slot};
use super::request::HTTPRequest;
use super::response::{HTTPError, HTTPResponse, HTTPTimeoutError, TimeoutPhase};
use super::url::Url;
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::{IOLoop, TimeoutHandle};

struct Queued {
    id: u64,
    key: HostKey,
    request: Rc<HTTPRequest>,
    url: Url,
    wire: Vec<u8>,
    future: Future<Answer>,
    timeout: Option<TimeoutHandle>,
}

#[derive(Default)]
struct State {
    closed: bool,
    next_id: u64,
    queue: VecDeque<Queued>,
    inflight: HashMap<u64, Rc<Exchange>>,
    processing: bool,
    again: bool,
}

struct ClientInner {
    /// The connections, and the loop and settings (shared with exchanges).
    pool: Rc<Pool>,
    st: RefCell<State>,
}

/// A non-blocking HTTP/1.1 client on one loop; Tornado's `AsyncHTTPClient`
/// (its `simple_httpclient`, plus keep-alive). See the [module docs](super).
///
/// A cheap-to-clone handle. Fetches in flight keep the client alive until
/// they finish; [`close`](AsyncHTTPClient::close) fails them and closes
/// every connection.
#[derive(Clone)]
pub struct AsyncHTTPClient {
    inner: Rc<ClientInner>,
}

impl AsyncHTTPClient {
    /// A client on the current loop, with the default [`ClientConfig`].
    ///
    /// Unlike Tornado, each call makes a new client (with its own pool):
    /// share one by cloning it.
    pub fn new() -> AsyncHTTPClient {
        AsyncHTTPClient::with_config(&IOLoop::current(), ClientConfig::default())
    }

    /// A client on `io_loop`, with the default [`ClientConfig`].
    pub fn with_loop(io_loop: &IOLoop) -> AsyncHTTPClient {
        AsyncHTTPClient::with_config(io_loop, ClientConfig::default())
    }

    /// A client on `io_loop` with `config`.
    pub fn with_config(io_loop: &IOLoop, config: ClientConfig) -> AsyncHTTPClient {
        AsyncHTTPClient {
            inner: Rc::new(ClientInner {
                pool: Pool::new(io_loop, config),
                st: RefCell::new(State::default()),
            }),
        }
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.pool.config
    }

    /// Fetches a URL (`&str`, `String`) or an [`HTTPRequest`]; the future
    /// completes with the response once its body is in.
    ///
    /// Fails with an [`ErrorKind`]: `InvalidArgument` for a URL it cannot
    /// fetch, `Io` if the connection is refused or
    /// the name does not resolve, `Timeout` (source
    /// [`HTTPTimeoutError`] with the phase), `StreamClosed` if the server
    /// hangs up early, `Tls` for a certificate that does not verify (or any
    /// other failed handshake), `HttpProtocol` for a malformed answer or a body over
    /// `max_body_size`, `HttpStatus` (source [`HTTPError`], carrying the
    /// response) for a non-2xx answer when the request's `raise_error` is
    /// set, `Closed` if the client is closed first.
    pub fn fetch(&self, request: impl Into<HTTPRequest>) -> Future<HTTPResponse> {
        let request = Rc::new(request.into());
        let out = Future::new();
        let started = self.inner.pool.io_loop.time();
        let left = request.max_redirects;
        hop(
            &self.inner,
            request.clone(),
            request,
            left,
            started,
            out.clone(),
        );
        out
    }

    /// Fails what is queued or in flight with [`ErrorKind::Closed`], closes
    /// every connection and removes every timeout. Later fetches fail at
    /// once. Closing twice is harmless.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether [`close`](AsyncHTTPClient::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.st.borrow().closed
    }

    /// The counters.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            queued: self.inner.st.borrow().queue.len(),
            ..self.inner.pool.stats()
        }
    }
}

impl Default for AsyncHTTPClient {
    fn default() -> Self {
        AsyncHTTPClient::new()
    }
}

impl fmt::Debug for AsyncHTTPClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncHTTPClient")
            .field("config", &self.inner.pool.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// One hop: submits `request`, then follows a redirect or finishes `out`.
fn hop(
    client: &Rc<ClientInner>,
    original: Rc<HTTPRequest>,
    request: Rc<HTTPRequest>,
    left: u32,
    started: Instant,
    out: Future<HTTPResponse>,
) {
    let answer = client.submit(request.clone());
    let client = client.clone();
    answer.add_done_callback(move |answer: &Future<Answer>| {
        let answer = match answer.take_result() {
            Ok(answer) => answer,
            Err(err) => {
                out.try_set_error(err);
                return;
            }
        };
        if left > 0 {
            if let Some(next) = redirect(&request, &answer) {
                drop(request);
                hop(&client, original, Rc::new(next), left - 1, started, out);
                return;
            }
        }
        drop(request);
        let response = HTTPResponse {
            // Moved out when no one else holds it (the exchange is done).
            request: Rc::try_unwrap(original).unwrap_or_else(|rc| (*rc).clone()),
            code: answer.code,
            reason: answer.reason,
            headers: answer.headers,
            body: answer.body,
            effective_url: answer.url,
            request_time: client.pool.io_loop.time() - started,
        };
        let result = if response.request.raise_error && !(200..300).contains(&response.code) {
            Err(HTTPError::new_error(response))
        } else {
            Ok(response)
        };
        out.try_complete(result);
    });
}

/// The headers that carry credentials: dropped on a redirect to another
/// origin (scheme, host or port).
const CREDENTIAL_HEADERS: [&str; 3] = ["Authorization", "Cookie", "Proxy-Authorization"];

/// The request a redirect answer asks for, if it is one to follow.
fn redirect(request: &HTTPRequest, response: &Answer) -> Option<HTTPRequest> {
    if !request.follow_redirects || !matches!(response.code, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = response.headers.get("Location")?;
    let base = Url::parse(&request.url).ok()?;
    let mut next = HTTPRequest {
        url: base.join(location),
        ..request.clone()
    };
    // 303 always, and 301/302 for anything but GET/HEAD, become a GET
    // without body (as browsers and Tornado do); 307/308 keep both.
    let to_get = match response.code {
        303 => request.method != "HEAD",
        301 | 302 => request.method != "GET" && request.method != "HEAD",
        _ => false,
    };
    if to_get {
        next.method = "GET".to_string();
        next.body.clear();
        for name in [
            "Content-Length",
            "Content-Type",
            "Content-Encoding",
            "Transfer-Encoding",
        ] {
            next.headers.remove(name);
        }
    }
    next.headers.remove("Host");
    // Credentials stay only on the same origin: not across hosts, and not
    // from https:// down to http://.
    let same_host = Url::parse(&next.url)
        .is_ok_and(|u| u.host == base.host && u.port == base.port && u.https == base.https);
    if same_host {
        // The new URL has no `user:password@`: keep the old one's.
        if let (Some((user, password)), None) = (&base.credentials, &next.auth_username) {
            next.auth_username = Some(user.clone());
            next.auth_password = Some(password.clone());
        }
    } else {
        // Credentials are for the origin they were given for (as curl,
        // requests and Tornado 6): a session cookie or a proxy's password
        // must not reach whatever host a redirect names.
        for name in CREDENTIAL_HEADERS {
            next.headers.remove(name);
        }
        next.auth_username = None;
        next.auth_password = None;
    }
    Some(next)
}

fn closed_error() -> Error {
    Error::new(ErrorKind::Closed, "the HTTP client is closed")
}

impl ClientInner {
    /// Queues one hop; it starts when a slot is free.
    fn submit(self: &Rc<Self>, request: Rc<HTTPRequest>) -> Future<Answer> {
        if self.st.borrow().closed {
            return Future::failed(closed_error());
        }
        let url = match Url::parse(&request.url) {
            Ok(url) => url,
            Err(err) => return Future::failed(err),
        };
        let wire = match request.encode(&url.host_header(), &url.target, url.credentials.as_ref()) {
            Ok(wire) => wire,
            Err(err) => return Future::failed(err),
        };
        let future = Future::new();
        let id = {
            let mut st = self.st.borrow_mut();
            st.next_id += 1;
            let id = st.next_id;
            st.queue.push_back(Queued {
                id,
                key: HostKey::of(&url, &request),
                request,
                url,
                wire,
                future: future.clone(),
                timeout: None,
            });
            id
        };
        self.process_queue();
        // Still waiting: it may wait as long as the smaller timeout.
        let limit = {
            let st = self.st.borrow();
            st.queue
                .iter()
                .rev()
                .find(|q| q.id == id)
                .map(|q| q.request.connect_timeout.min(q.request.request_timeout))
        };
        if let Some(limit) = limit {
            let weak = Rc::downgrade(self);
            let handle = self.pool.io_loop.call_later(limit, move || {
                if let Some(me) = weak.upgrade() {
                    me.queue_timed_out(id, limit);
                }
            });
            let mut st = self.st.borrow_mut();
            match st.queue.iter_mut().rev().find(|q| q.id == id) {
                Some(q) => q.timeout = Some(handle),
                None => {
                    drop(st);
                    self.pool.io_loop.remove_timeout(handle);
                }
            }
        }
        future
    }

    fn queue_timed_out(&self, id: u64, limit: std::time::Duration) {
        let queued = {
            let mut st = self.st.borrow_mut();
            let Some(i) = st.queue.iter().position(|q| q.id == id) else {
                return;
            };
            st.queue.remove(i)
        };
        if let Some(q) = queued {
            q.future
                .try_set_error(HTTPTimeoutError::new_error(TimeoutPhase::Queue, limit));
        }
    }

    /// Starts queued requests while there are free slots. Not re-entrant:
    /// an exchange that ends at once inside `start` asks for another round.
    fn process_queue(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.processing {
                st.again = true;
                return;
            }
            st.processing = true;
        }
        loop {
            let next = self.take_startable();
            let Some((queued, slot)) = next else {
                let mut st = self.st.borrow_mut();
                if std::mem::take(&mut st.again) {
                    continue;
                }
                st.processing = false;
                return;
            };
            if let Some(handle) = queued.timeout {
                self.pool.io_loop.remove_timeout(handle);
            }
            for stream in slot.evicted {
                stream.close();
            }
            let id = queued.id;
            // Held strongly: a fetch in flight keeps its client alive.
            let client = self.clone();
            let release = Box::new(move || client.release(id));
            let exchange = Exchange::new(
                id,
                self.pool.clone(),
                queued.request,
                queued.url,
                queued.wire,
                queued.future,
                release,
            );
            self.st.borrow_mut().inflight.insert(id, exchange.clone());
            exchange.start(slot.pooled);
        }
    }

    /// The first queued request the pool has a slot for, with the slot.
    fn take_startable(&self) -> Option<(Queued, Slot)> {
        let mut st = self.st.borrow_mut();
        if st.closed {
            return None;
        }
        let i = st.queue.iter().position(|q| self.pool.has_room(&q.key))?;
        let queued = st.queue.remove(i)?;
        let slot = self.pool.acquire(&queued.key);
        Some((queued, slot))
    }

    /// Exchange `id` ended (its slot and connection are back in the pool):
    /// it is no longer in flight, and what waits may start.
    fn release(self: &Rc<Self>, id: u64) {
        let exchange = self.st.borrow_mut().inflight.remove(&id);
        drop(exchange);
        self.process_queue();
    }

    fn close(&self) {
        let (queue, inflight) = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            (
                std::mem::take(&mut st.queue),
                std::mem::take(&mut st.inflight),
            )
        };
        self.pool.close();
        for q in queue {
            if let Some(handle) = q.timeout {
                self.pool.io_loop.remove_timeout(handle);
            }
            q.future.try_set_error(closed_error());
        }
        let mut inflight: Vec<_> = inflight.into_values().collect();
        inflight.sort_by_key(|ex| ex.id);
        for ex in inflight {
            ex.finish(Err(closed_error()));
        }
    }
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        // The loop holds open streams: pooled ones would outlive the client
        // (a finished exchange still around holds the pool).
        self.pool.close();
        for q in self.st.get_mut().queue.drain(..) {
            if let Some(handle) = q.timeout {
                self.pool.io_loop.remove_timeout(handle);
            }
            q.future.try_set_error(closed_error());
        }
    }
}
