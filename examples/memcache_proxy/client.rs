//! An asynchronous memcached client, built the way the first seed article
//! builds it: a connect that does not block, a timeout on every call, and
//! errors that find their way to the caller through a stack context.
//!
//! Each call runs inside its own `ExceptionStackContext`, the article's
//! `_cleanup(fail_callback)`. Everything the call schedules (its timeout,
//! the callback on its reply) carries that context, so an error raised later
//! in any of them comes back to `_cleanup`, which removes the call's timeout
//! and hands the client's own errors ([`MemcacheError`]) to the caller's
//! `fail_callback`; anything else (a bug) goes on outward, to the caller's
//! contexts or the log. Exactly one of `callback` and `fail_callback` runs.
//!
//! The timeout is `add_timeout(now + timeout, wrap(on_timeout))`; `on_timeout`
//! marks the server dead and *raises* [`MemcacheError::Timeout`]. As the
//! article learned the hard way, it is removed on success and on every error
//! path, so no timeout outlives its call.
//!
//! Per server, one connection carries every call, pipelined (see
//! `upstream.rs`): opened with a non-blocking connect and a connect timeout,
//! outside any caller's context, as it serves all of them. A server that
//! refuses connections or lets a call time out is marked dead: calls to it fail at once with
//! [`MemcacheError::Dead`] until `dead_retry` has passed, then the next call
//! tries it again.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::error::Error as _;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use squall::stack_context::{raise, wrap, ExceptionStackContext};
use squall::{Error, ErrorKind, Future, IOLoop, TimeoutHandle};

use super::hash::Ring;
use super::protocol::{self, StoreOp};
use super::reply::{self, Expect, Item, Reply, Status};
pub use super::upstream::ServerInfo;
use super::upstream::Upstream;

/// The client's settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long a call may take, connecting included.
    pub timeout: Duration,
    /// How long a connect may take.
    pub connect_timeout: Duration,
    /// How long a server marked dead is left alone before it is tried again.
    pub dead_retry: Duration,
    /// The largest value accepted in a reply.
    pub max_value: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
            dead_retry: Duration::from_secs(2),
            max_value: protocol::ITEM_SIZE_MAX,
        }
    }
}

// ----- the client's own errors -----------------------------------------------------

/// What can go wrong with a call: the client's own error type, which the
/// call's context turns into a `fail_callback` (the article's `except`).
#[derive(Clone, Debug)]
pub enum MemcacheError {
    /// The server did not answer within the call's timeout.
    Timeout {
        /// The server.
        server: SocketAddr,
        /// The timeout.
        after: Duration,
    },
    /// The server is marked dead; it is not tried again until `dead_retry` passed.
    Dead {
        /// The server.
        server: SocketAddr,
    },
    /// The connect failed or timed out.
    Connect {
        /// The server.
        server: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The connection closed with the call in flight.
    Closed {
        /// The server.
        server: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The server's reply broke the protocol.
    Protocol {
        /// The server.
        server: SocketAddr,
        /// What was wrong.
        reason: String,
    },
    /// The server refused the request: its `ERROR`, `CLIENT_ERROR ...` or
    /// `SERVER_ERROR ...` line. The server is fine; the connection goes on.
    Refused {
        /// The server.
        server: SocketAddr,
        /// The server's line.
        line: String,
    },
    /// The client has no servers (or none of the number asked for).
    NoServers,
}

impl fmt::Display for MemcacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemcacheError::Timeout { server, after } => {
                write!(
                    f,
                    "upstream {server} timed out after {} ms",
                    after.as_millis()
                )
            }
            MemcacheError::Dead { server } => write!(f, "upstream {server} is marked dead"),
            MemcacheError::Connect { server, reason } => {
                write!(f, "cannot connect to upstream {server}: {reason}")
            }
            MemcacheError::Closed { server, reason } => {
                write!(f, "connection to upstream {server} closed: {reason}")
            }
            MemcacheError::Protocol { server, reason } => {
                write!(f, "bad reply from upstream {server}: {reason}")
            }
            MemcacheError::Refused { line, .. } => f.write_str(line),
            MemcacheError::NoServers => f.write_str("no such upstream server"),
        }
    }
}

impl std::error::Error for MemcacheError {}

impl MemcacheError {
    /// As a `squall::Error`, with this error as its source.
    pub fn into_error(self) -> Error {
        let kind = match self {
            MemcacheError::Timeout { .. } => ErrorKind::Timeout,
            MemcacheError::Closed { .. } => ErrorKind::StreamClosed,
            MemcacheError::Dead { .. } | MemcacheError::Connect { .. } => ErrorKind::Io,
            _ => ErrorKind::Other,
        };
        Error::with_source(kind, self.to_string(), self)
    }

    /// The client error inside `err`, if it is one (the article's
    /// `except MemcacheError`).
    pub fn of(err: &Error) -> Option<&MemcacheError> {
        err.source()?.downcast_ref()
    }
}

// ----- one call --------------------------------------------------------------------

type FailFn = Box<dyn FnOnce(Error)>;
type ValuesFn = Box<dyn FnOnce(Vec<Option<Item>>)>;

/// The state of one call: its timeout and the caller's `fail_callback`,
/// which is taken when the call finishes, one way or the other.
struct Call {
    io_loop: IOLoop,
    upstream: Rc<Upstream>,
    timeout: Cell<Option<TimeoutHandle>>,
    fail_callback: RefCell<Option<FailFn>>,
}

impl Call {
    fn finished(&self) -> bool {
        self.fail_callback.borrow().is_none()
    }

    fn remove_timeout(&self) {
        if let Some(timeout) = self.timeout.take() {
            self.io_loop.remove_timeout(timeout);
        }
    }

    /// The article's `_on_timeout`: mark the server dead and raise.
    fn on_timeout(&self) -> Result<(), Error> {
        self.timeout.set(None); // it fired: nothing to remove any more
        if self.finished() {
            return Ok(()); // cannot happen: every path removes the timeout
        }
        let why = MemcacheError::Timeout {
            server: self.upstream.addr,
            after: self.upstream.options.timeout,
        };
        self.upstream.timeouts.set(self.upstream.timeouts.get() + 1);
        self.upstream.mark_dead(&why);
        raise(why.into_error())
    }
}

/// A memcached client over several servers, keys spread by a consistent hash.
pub struct Client {
    io_loop: IOLoop,
    options: Rc<Options>,
    servers: Vec<Rc<Upstream>>,
    ring: Ring,
}

impl Client {
    /// A client for `servers`, on `io_loop`. Nothing connects until the first call.
    pub fn new(io_loop: &IOLoop, servers: &[SocketAddr], options: Options) -> Client {
        let options = Rc::new(options);
        let names: Vec<String> = servers.iter().map(SocketAddr::to_string).collect();
        Client {
            io_loop: io_loop.clone(),
            servers: servers
                .iter()
                .map(|&addr| Rc::new(Upstream::new(addr, io_loop, options.clone())))
                .collect(),
            ring: Ring::new(&names),
            options,
        }
    }

    /// The index of the server that owns `key`.
    pub fn server_for(&self, key: &[u8]) -> Option<usize> {
        self.ring.server_for(key)
    }

    /// The servers' states.
    pub fn servers(&self) -> Vec<ServerInfo> {
        let now = self.io_loop.time();
        self.servers.iter().map(|s| s.info(now)).collect()
    }

    /// Sends one request to server `server` and calls `callback` with what
    /// `extract` makes of the reply, or `fail_callback` with the error.
    /// Exactly one of them is called, possibly before this returns (a dead
    /// server fails at once).
    fn call<T: 'static>(
        &self,
        server: Option<usize>,
        expect: Expect,
        encode: impl FnOnce(&mut Vec<u8>),
        extract: fn(Reply) -> Option<T>,
        callback: impl FnOnce(T) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        let Some(upstream) = server.and_then(|i| self.servers.get(i)).cloned() else {
            fail_callback(MemcacheError::NoServers.into_error());
            return;
        };
        upstream.calls.set(upstream.calls.get() + 1);
        let call = Rc::new(Call {
            io_loop: self.io_loop.clone(),
            upstream: upstream.clone(),
            timeout: Cell::new(None),
            fail_callback: RefCell::new(Some(Box::new(fail_callback))),
        });
        // The article's `StackContext(partial(self._cleanup, fail_callback))`:
        // in squall, catching is what an `ExceptionStackContext` does.
        let c = call.clone();
        let cleanup = ExceptionStackContext::new(move |err: &Error| {
            c.remove_timeout();
            let Some(mc) = MemcacheError::of(err) else {
                return false; // not ours: a bug, for the contexts outside
            };
            if !matches!(mc, MemcacheError::Refused { .. }) {
                let up = &c.upstream;
                up.failures.set(up.failures.get() + 1);
            }
            let fail = c.fail_callback.borrow_mut().take();
            if let Some(fail) = fail {
                fail(err.clone());
            }
            true
        });
        let io_loop = self.io_loop.clone();
        let timeout = self.options.timeout;
        cleanup.run(move || -> Result<(), Error> {
            upstream.check_alive()?;
            let reply = upstream.connection().send(expect, encode);
            // The article's `add_timeout(time.time() + request_timeout,
            // stack_context.wrap(partial(self._on_timeout, server)))`, set inside
            // the context: what `on_timeout` raises reaches `_cleanup`.
            let c = call.clone();
            let deadline = io_loop.time() + timeout;
            let handle = io_loop.add_timeout(deadline, wrap(move || c.on_timeout()));
            call.timeout.set(Some(handle));
            let c = call.clone();
            reply.add_done_callback(move |reply: &Future<Reply>| -> Result<(), Error> {
                if c.finished() {
                    // Timed out already, and answered so. What comes late (most
                    // often the error of the connection the timeout closed)
                    // has nobody left to go to: read here, so that it is not
                    // reported as an error nobody retrieved.
                    if let Err(err) = reply.take_result() {
                        log::debug!(
                            "{server}: after its call timed out: {err}",
                            server = c.upstream.addr
                        );
                    }
                    return Ok(());
                }
                c.remove_timeout();
                let server = c.upstream.addr;
                // An error here is raised into the context, which fails the call.
                let value = match reply.take_result()? {
                    Reply::Refused(line) => {
                        return Err(MemcacheError::Refused { server, line }.into_error())
                    }
                    reply => extract(reply).ok_or_else(|| {
                        MemcacheError::Protocol {
                            server,
                            reason: "reply of the wrong kind".into(),
                        }
                        .into_error()
                    })?,
                };
                drop(c.fail_callback.borrow_mut().take());
                callback(value);
                Ok(())
            });
            Ok(())
        });
    }

    /// `get`/`gets` of several keys, split across their servers; `callback`
    /// gets one entry per key, in order (`None` for a miss). If any server
    /// fails, the whole call fails with its error.
    pub fn get_multi<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        cas: bool,
        callback: impl FnOnce(Vec<Option<Item>>) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        struct Join {
            keys: Vec<Vec<u8>>,
            found: HashMap<Vec<u8>, Item>,
            left: usize,
            callback: Option<ValuesFn>,
            fail_callback: Option<FailFn>,
        }
        let mut groups: BTreeMap<Option<usize>, Vec<&[u8]>> = BTreeMap::new();
        for key in keys {
            let key = key.as_ref();
            let group = groups.entry(self.server_for(key)).or_default();
            if !group.contains(&key) {
                group.push(key);
            }
        }
        let join = Rc::new(RefCell::new(Join {
            keys: keys.iter().map(|k| k.as_ref().to_vec()).collect(),
            found: HashMap::new(),
            left: groups.len(),
            callback: Some(Box::new(callback)),
            fail_callback: Some(Box::new(fail_callback)),
        }));
        if groups.is_empty() {
            let cb = join.borrow_mut().callback.take();
            if let Some(cb) = cb {
                cb(Vec::new());
            }
            return;
        }
        let name = if cas { "gets" } else { "get" };
        for (server, group) in groups {
            let (ok, failed) = (join.clone(), join.clone());
            self.call(
                server,
                Expect::Values(group.len()),
                |out| reply::encode_line(out, name, &group, ""),
                |reply| match reply {
                    Reply::Values(items) => Some(items),
                    _ => None,
                },
                move |items: Vec<Item>| {
                    let done = {
                        let mut j = ok.borrow_mut();
                        let j = &mut *j;
                        for item in items {
                            j.found.insert(item.key.clone(), item);
                        }
                        j.left -= 1;
                        if j.left > 0 || j.fail_callback.is_none() {
                            None
                        } else {
                            let values = take_values(&j.keys, &mut j.found);
                            j.callback.take().map(|cb| (cb, values))
                        }
                    };
                    if let Some((cb, values)) = done {
                        cb(values);
                    }
                },
                move |err| {
                    let fail = {
                        let mut j = failed.borrow_mut();
                        j.callback = None;
                        j.fail_callback.take()
                    };
                    if let Some(fail) = fail {
                        fail(err);
                    }
                },
            );
        }
    }

    /// `get` of one key.
    pub fn get(
        &self,
        key: &[u8],
        callback: impl FnOnce(Option<Item>) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.get_multi(
            &[key.to_vec()],
            false,
            move |mut values| callback(values.pop().flatten()),
            fail_callback,
        );
    }

    /// A storage command: `set`, `add`, `replace`, `append`, `prepend`, or
    /// `cas` (with `cas_unique` from `gets`).
    #[allow(clippy::too_many_arguments)]
    pub fn store(
        &self,
        op: StoreOp,
        key: &[u8],
        flags: u32,
        exptime: i64,
        data: &[u8],
        cas_unique: u64,
        callback: impl FnOnce(Status) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.call(
            self.server_for(key),
            Expect::Status,
            |out| reply::encode_store(out, op, key, flags, exptime, data, cas_unique),
            status,
            callback,
            fail_callback,
        );
    }

    /// `set KEY`: store unconditionally.
    pub fn set(
        &self,
        key: &[u8],
        data: &[u8],
        exptime: i64,
        callback: impl FnOnce(Status) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.store(
            StoreOp::Set,
            key,
            0,
            exptime,
            data,
            0,
            callback,
            fail_callback,
        );
    }

    /// `add KEY`: store if absent.
    pub fn add(
        &self,
        key: &[u8],
        data: &[u8],
        exptime: i64,
        callback: impl FnOnce(Status) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.store(
            StoreOp::Add,
            key,
            0,
            exptime,
            data,
            0,
            callback,
            fail_callback,
        );
    }

    /// `replace KEY`: store if present.
    pub fn replace(
        &self,
        key: &[u8],
        data: &[u8],
        exptime: i64,
        callback: impl FnOnce(Status) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.store(
            StoreOp::Replace,
            key,
            0,
            exptime,
            data,
            0,
            callback,
            fail_callback,
        );
    }

    /// `append KEY`: add to the end of an existing value.
    pub fn append(
        &self,
        key: &[u8],
        data: &[u8],
        callback: impl FnOnce(Status) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.store(StoreOp::Append, key, 0, 0, data, 0, callback, fail_callback);
    }

    /// `prepend KEY`: add to the start of an existing value.
    pub fn prepend(
        &self,
        key: &[u8],
        data: &[u8],
        callback: impl FnOnce(Status) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.store(
            StoreOp::Prepend,
            key,
            0,
            0,
            data,
            0,
            callback,
            fail_callback,
        );
    }

    /// `cas KEY`: store if nobody stored since the `gets` that returned `unique`.
    pub fn cas(
        &self,
        key: &[u8],
        data: &[u8],
        unique: u64,
        callback: impl FnOnce(Status) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.store(
            StoreOp::Cas,
            key,
            0,
            0,
            data,
            unique,
            callback,
            fail_callback,
        );
    }

    /// `delete KEY`.
    pub fn delete(
        &self,
        key: &[u8],
        callback: impl FnOnce(Status) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.call(
            self.server_for(key),
            Expect::Status,
            |out| reply::encode_line(out, "delete", &[key], ""),
            status,
            callback,
            fail_callback,
        );
    }

    /// `incr`/`decr KEY DELTA`: the new value, or `None` if the key is missing.
    pub fn incr_decr(
        &self,
        incr: bool,
        key: &[u8],
        delta: u64,
        callback: impl FnOnce(Option<u64>) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        let name = if incr { "incr" } else { "decr" };
        self.call(
            self.server_for(key),
            Expect::Number,
            |out| reply::encode_line(out, name, &[key], &delta.to_string()),
            |reply| match reply {
                Reply::Number(n) => Some(Some(n)),
                Reply::Status(Status::NotFound) => Some(None),
                _ => None,
            },
            callback,
            fail_callback,
        );
    }

    /// `incr KEY DELTA`.
    pub fn incr(
        &self,
        key: &[u8],
        delta: u64,
        callback: impl FnOnce(Option<u64>) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.incr_decr(true, key, delta, callback, fail_callback);
    }

    /// `decr KEY DELTA` (memcached stops at 0).
    pub fn decr(
        &self,
        key: &[u8],
        delta: u64,
        callback: impl FnOnce(Option<u64>) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.incr_decr(false, key, delta, callback, fail_callback);
    }

    /// `touch KEY EXPTIME`.
    pub fn touch(
        &self,
        key: &[u8],
        exptime: i64,
        callback: impl FnOnce(Status) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.call(
            self.server_for(key),
            Expect::Status,
            |out| reply::encode_line(out, "touch", &[key], &exptime.to_string()),
            status,
            callback,
            fail_callback,
        );
    }

    /// `version` of server number `server`.
    pub fn version(
        &self,
        server: usize,
        callback: impl FnOnce(String) + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        self.call(
            Some(server),
            Expect::Version,
            |out| reply::encode_line(out, "version", &[], ""),
            |reply| match reply {
                Reply::Version(v) => Some(v),
                _ => None,
            },
            callback,
            fail_callback,
        );
    }

    /// `flush_all [DELAY]` on every server; `callback` once all said `OK`.
    /// If any fails, the call fails with its error (the others may have
    /// flushed).
    pub fn flush_all(
        &self,
        delay: Option<u32>,
        callback: impl FnOnce() + 'static,
        fail_callback: impl FnOnce(Error) + 'static,
    ) {
        struct Join {
            left: usize,
            callback: Option<Box<dyn FnOnce()>>,
            fail_callback: Option<FailFn>,
        }
        if self.servers.is_empty() {
            fail_callback(MemcacheError::NoServers.into_error());
            return;
        }
        let join = Rc::new(RefCell::new(Join {
            left: self.servers.len(),
            callback: Some(Box::new(callback)),
            fail_callback: Some(Box::new(fail_callback)),
        }));
        let args = delay.map_or_else(String::new, |d| d.to_string());
        for server in 0..self.servers.len() {
            let (ok, failed) = (join.clone(), join.clone());
            self.call(
                Some(server),
                Expect::Status,
                |out| reply::encode_line(out, "flush_all", &[], &args),
                |reply| match reply {
                    Reply::Status(Status::Ok) => Some(()),
                    _ => None,
                },
                move |()| {
                    let done = {
                        let mut j = ok.borrow_mut();
                        j.left -= 1;
                        if j.left == 0 && j.fail_callback.is_some() {
                            j.callback.take()
                        } else {
                            None
                        }
                    };
                    if let Some(done) = done {
                        done();
                    }
                },
                move |err| {
                    let fail = {
                        let mut j = failed.borrow_mut();
                        j.callback = None;
                        j.fail_callback.take()
                    };
                    if let Some(fail) = fail {
                        fail(err);
                    }
                },
            );
        }
    }

    /// Closes every connection (calls in flight fail).
    pub fn close(&self) {
        for server in &self.servers {
            server.close();
        }
    }
}

/// One entry per key of `keys` from `found`: a value asked for once is
/// moved out, not copied (values may be 1 MiB each); one asked for again is
/// copied for all but its last time.
fn take_values(keys: &[Vec<u8>], found: &mut HashMap<Vec<u8>, Item>) -> Vec<Option<Item>> {
    let mut last = HashMap::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        last.insert(key.as_slice(), i);
    }
    keys.iter()
        .enumerate()
        .map(|(i, key)| {
            if last.get(key.as_slice()) == Some(&i) {
                found.remove(key)
            } else {
                found.get(key).cloned()
            }
        })
        .collect()
}

fn status(reply: Reply) -> Option<Status> {
    match reply {
        Reply::Status(s) => Some(s),
        _ => None,
    }
}
