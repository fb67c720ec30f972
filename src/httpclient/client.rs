//! `AsyncHTTPClient`: the queue (`max_clients`), the keep-alive pool, and
//! redirects on top of single exchanges.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Instant;

use super::exchange::{Answer, Exchange};
use super::request::HTTPRequest;
use super::response::{HTTPError, HTTPResponse, HTTPTimeoutError, TimeoutPhase};
use super::url::Url;
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::{IOLoop, TimeoutHandle};
use crate::iostream::IOStream;
use crate::netutil::Resolver;

/// What a pooled connection can be reused for: the host and port, and for
/// `https://` the TLS options it was verified with (a connection made with
/// `validate_cert=false` must never serve a request that wants it checked).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct HostKey {
    host: String,
    port: u16,
    tls: Option<TlsKey>,
}

#[cfg(feature = "tls")]
type TlsKey = crate::tls::ClientOptions;
/// Without TLS there are no `https://` URLs, so never `Some`.
#[cfg(not(feature = "tls"))]
type TlsKey = ();

impl HostKey {
    pub(crate) fn of(url: &Url, request: &HTTPRequest) -> HostKey {
        #[cfg(feature = "tls")]
        let tls = url.https.then(|| request.tls_options());
        #[cfg(not(feature = "tls"))]
        let tls = {
            let _ = request;
            None
        };
        HostKey {
            host: url.host.clone(),
            port: url.port,
            tls,
        }
    }

    /// The TLS configuration for this key's connections (built once per
    /// distinct options, then shared).
    #[cfg(feature = "tls")]
    pub(crate) fn tls_options(&self) -> Option<&crate::tls::ClientOptions> {
        self.tls.as_ref()
    }
}

/// Client-wide settings (Tornado's `AsyncHTTPClient.configure` keywords).
///
/// ```
/// use squall::httpclient::ClientConfig;
///
/// let config = ClientConfig::new().max_clients(50).max_per_host(8).max_body_size(1 << 20);
/// assert_eq!(config.max_clients, 50);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Requests in flight at once, all hosts together (Tornado's
    /// `max_clients`, default 10); more wait in a FIFO queue. Open
    /// connections, idle ones included, never exceed it either.
    pub max_clients: usize,
    /// Requests in flight, and so connections, to one host:port (default
    /// `None`: only `max_clients` bounds them). A request over it waits
    /// without holding back requests to other hosts.
    pub max_per_host: Option<usize>,
    /// The largest body accepted (default 100 MiB); past it the fetch fails
    /// with [`ErrorKind::HttpProtocol`] and the connection is closed.
    pub max_body_size: usize,
    /// The largest response head accepted (default 64 KiB).
    pub max_header_size: usize,
    /// How host names become addresses (Tornado's `resolver` keyword):
    /// the default thread-pool [`Resolver`], or one with overrides, say.
    pub resolver: Resolver,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_clients: 10,
            max_per_host: None,
            max_body_size: 100 * 1024 * 1024,
            max_header_size: 64 * 1024,
            resolver: Resolver::new(),
        }
    }
}

impl ClientConfig {
    /// The defaults.
    pub fn new() -> ClientConfig {
        ClientConfig::default()
    }

    /// Sets the [`Resolver`].
    pub fn resolver(mut self, resolver: Resolver) -> ClientConfig {
        self.resolver = resolver;
        self
    }

    /// Sets `max_clients` (at least 1).
    pub fn max_clients(mut self, n: usize) -> ClientConfig {
        self.max_clients = n.max(1);
        self
    }

    /// Sets `max_per_host` (at least 1).
    pub fn max_per_host(mut self, n: usize) -> ClientConfig {
        self.max_per_host = Some(n.max(1));
        self
    }

    /// Sets `max_body_size`.
    pub fn max_body_size(mut self, n: usize) -> ClientConfig {
        self.max_body_size = n;
        self
    }

    /// Sets `max_header_size` (at least 1 KiB).
    pub fn max_header_size(mut self, n: usize) -> ClientConfig {
        self.max_header_size = n.max(1024);
        self
    }
}

/// Counters, for tests and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Exchanges in flight.
    pub active: usize,
    /// Requests waiting for a slot.
    pub queued: usize,
    /// Kept-alive connections waiting for a request.
    pub idle: usize,
    /// Connections opened so far.
    pub connections_opened: u64,
    /// Exchanges that reused a pooled connection.
    pub connections_reused: u64,
    /// Requests sent again after a pooled connection proved stale.
    pub stale_retries: u64,
}

struct Queued {
    id: u64,
    key: HostKey,
    request: Rc<HTTPRequest>,
    url: Url,
    wire: Vec<u8>,
    future: Future<Answer>,
    timeout: Option<TimeoutHandle>,
}

struct Idle {
    conn_id: u64,
    key: HostKey,
    stream: IOStream,
}

#[derive(Default)]
struct State {
    closed: bool,
    next_id: u64,
    queue: VecDeque<Queued>,
    active: usize,
    per_host: HashMap<HostKey, usize>,
    /// Oldest first; reuse takes the newest (the likeliest still open).
    idle: VecDeque<Idle>,
    inflight: HashMap<u64, Rc<Exchange>>,
    /// TLS configurations by options: building one reads files and parses
    /// certificates, so each distinct set is built once per client.
    #[cfg(feature = "tls")]
    tls_configs: HashMap<crate::tls::ClientOptions, std::sync::Arc<rustls::ClientConfig>>,
    processing: bool,
    again: bool,
    stats: ClientStats,
}

pub(crate) struct ClientInner {
    pub(crate) io_loop: IOLoop,
    pub(crate) config: ClientConfig,
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
                io_loop: io_loop.clone(),
                config,
                st: RefCell::new(State::default()),
            }),
        }
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
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
        let started = self.inner.io_loop.time();
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
        let st = self.inner.st.borrow();
        ClientStats {
            active: st.active,
            queued: st.queue.len(),
            idle: st.idle.len(),
            ..st.stats
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
            .field("config", &self.inner.config)
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
                let _ = out.set_error(err);
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
            request_time: client.io_loop.time() - started,
        };
        let result = if response.request.raise_error && !(200..300).contains(&response.code) {
            Err(HTTPError::new_error(response))
        } else {
            Ok(response)
        };
        let _ = out.complete(result);
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
            let handle = self.io_loop.call_later(limit, move || {
                if let Some(me) = weak.upgrade() {
                    me.queue_timed_out(id, limit);
                }
            });
            let mut st = self.st.borrow_mut();
            match st.queue.iter_mut().rev().find(|q| q.id == id) {
                Some(q) => q.timeout = Some(handle),
                None => {
                    drop(st);
                    self.io_loop.remove_timeout(handle);
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
            let _ = q
                .future
                .set_error(HTTPTimeoutError::new_error(TimeoutPhase::Queue, limit));
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
            let Some((queued, pooled, evicted)) = next else {
                let mut st = self.st.borrow_mut();
                if std::mem::take(&mut st.again) {
                    continue;
                }
                st.processing = false;
                return;
            };
            if let Some(handle) = queued.timeout {
                self.io_loop.remove_timeout(handle);
            }
            for stream in evicted {
                stream.close();
            }
            let exchange = Exchange::new(
                queued.id,
                self.clone(),
                queued.request,
                queued.url,
                queued.wire,
                queued.future,
            );
            self.st
                .borrow_mut()
                .inflight
                .insert(queued.id, exchange.clone());
            exchange.start(pooled);
        }
    }

    /// The first queued request whose host has room, with a pooled
    /// connection for it if any, and the idle connections to close to stay
    /// within `max_clients` open connections.
    #[allow(clippy::type_complexity)]
    fn take_startable(&self) -> Option<(Queued, Option<(u64, IOStream)>, Vec<IOStream>)> {
        let mut st = self.st.borrow_mut();
        if st.closed || st.active >= self.config.max_clients {
            return None;
        }
        let per_host = self.config.max_per_host.unwrap_or(usize::MAX);
        let i = {
            let State {
                queue,
                per_host: counts,
                ..
            } = &*st;
            queue
                .iter()
                .position(|q| counts.get(&q.key).copied().unwrap_or(0) < per_host)?
        };
        let queued = st.queue.remove(i)?;
        st.active += 1;
        *st.per_host.entry(queued.key.clone()).or_insert(0) += 1;
        let mut evicted = Vec::new();
        let mut pooled = None;
        while let Some(j) = st.idle.iter().rposition(|c| c.key == queued.key) {
            let idle = st.idle.remove(j).expect("found");
            if idle.stream.closed() || idle.stream.buffered() > 0 {
                // Closed by the server (its close callback is yet to run),
                // or it sent something unasked: not reusable.
                evicted.push(idle.stream);
                continue;
            }
            pooled = Some((idle.conn_id, idle.stream));
            st.stats.connections_reused += 1;
            break;
        }
        if pooled.is_none() {
            while st.active + st.idle.len() > self.config.max_clients {
                match st.idle.pop_front() {
                    Some(idle) => evicted.push(idle.stream),
                    None => break,
                }
            }
        }
        Some((queued, pooled, evicted))
    }

    /// Takes a new connection into the client: options, and its removal
    /// from the pool when the server closes it.
    pub(crate) fn adopt(self: &Rc<Self>, stream: &IOStream) -> u64 {
        let conn_id = {
            let mut st = self.st.borrow_mut();
            st.stats.connections_opened += 1;
            st.next_id += 1;
            st.next_id
        };
        let _ = stream.set_nodelay(true);
        let room = self.config.max_body_size.max(self.config.max_header_size);
        stream.set_max_buffer_size(room.saturating_add(64 * 1024));
        let weak: Weak<ClientInner> = Rc::downgrade(self);
        stream.set_close_callback(move || {
            if let Some(me) = weak.upgrade() {
                me.st.borrow_mut().idle.retain(|c| c.conn_id != conn_id);
            }
        });
        conn_id
    }

    /// The TLS configuration for an `https://` key's connections.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_config(
        &self,
        key: &HostKey,
    ) -> Result<std::sync::Arc<rustls::ClientConfig>, Error> {
        let options = key.tls_options().ok_or_else(|| {
            Error::new(ErrorKind::InvalidState, "TLS asked for a plain http:// key")
        })?;
        if let Some(config) = self.st.borrow().tls_configs.get(options) {
            return Ok(config.clone());
        }
        let config = options.build()?;
        self.st
            .borrow_mut()
            .tls_configs
            .insert(options.clone(), config.clone());
        Ok(config)
    }

    pub(crate) fn note_retry(&self) {
        self.st.borrow_mut().stats.stale_retries += 1;
    }

    /// An exchange ended: frees its slot, pools its connection if given,
    /// and starts what waits.
    pub(crate) fn release(
        self: &Rc<Self>,
        id: u64,
        key: &HostKey,
        pooled: Option<(u64, IOStream)>,
    ) {
        let (exchange, to_close) = {
            let mut st = self.st.borrow_mut();
            let exchange = st.inflight.remove(&id);
            if exchange.is_some() {
                st.active -= 1;
                if let Some(n) = st.per_host.get_mut(key) {
                    *n -= 1;
                    if *n == 0 {
                        st.per_host.remove(key);
                    }
                }
            }
            let mut to_close = Vec::new();
            if let Some((conn_id, stream)) = pooled {
                if st.closed {
                    to_close.push(stream);
                } else {
                    st.idle.push_back(Idle {
                        conn_id,
                        key: key.clone(),
                        stream,
                    });
                    while st.active + st.idle.len() > self.config.max_clients {
                        match st.idle.pop_front() {
                            Some(idle) => to_close.push(idle.stream),
                            None => break,
                        }
                    }
                }
            }
            (exchange, to_close)
        };
        for stream in to_close {
            stream.close();
        }
        drop(exchange);
        self.process_queue();
    }

    fn close(&self) {
        let (queue, inflight, idle) = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            (
                std::mem::take(&mut st.queue),
                std::mem::take(&mut st.inflight),
                std::mem::take(&mut st.idle),
            )
        };
        for idle in idle {
            idle.stream.close();
        }
        for q in queue {
            if let Some(handle) = q.timeout {
                self.io_loop.remove_timeout(handle);
            }
            let _ = q.future.set_error(closed_error());
        }
        let mut inflight: Vec<_> = inflight.into_values().collect();
        inflight.sort_by_key(|ex| ex.id);
        {
            let mut st = self.st.borrow_mut();
            st.active = 0;
            st.per_host.clear();
        }
        for ex in inflight {
            ex.finish(Err(closed_error()));
        }
    }
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        // The loop holds open streams: pooled ones would outlive the client.
        let st = self.st.get_mut();
        for idle in st.idle.drain(..) {
            idle.stream.close();
        }
        for q in st.queue.drain(..) {
            if let Some(handle) = q.timeout {
                self.io_loop.remove_timeout(handle);
            }
            let _ = q.future.set_error(closed_error());
        }
    }
}
