//! The client's connections, busy and idle: the slots `max_clients` and
//! `max_per_host` allow, the kept-alive connections waiting for reuse
//! (keyed by [`HostKey`]), each new connection's options and ids, and the
//! TLS configurations they are made with.
//!
//! It sits below the queue (client.rs) and the exchanges (exchange.rs) and
//! imports neither: the queue takes a slot here before it starts an
//! exchange; an exchange hands its slot and its connection back here when
//! it ends, and then calls the release callback the queue gave it (to
//! start what waits), as Tornado's `_HTTPConnection` calls its
//! `release_callback`. Imports go one way: client -> exchange -> pool.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};

use super::config::ClientConfig;
use super::request::HTTPRequest;
use super::url::Url;
#[cfg(feature = "tls")]
use crate::error::{Error, ErrorKind};
use crate::ioloop::IOLoop;
use crate::iostream::IOStream;

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

/// A pooled connection: its id (for the close callback that removes it),
/// what it may be reused for, and the stream.
struct Idle {
    conn_id: u64,
    key: HostKey,
    stream: IOStream,
}

/// A slot taken for one request ([`Pool::acquire`]).
pub(crate) struct Slot {
    /// A kept-alive connection to the request's host, to reuse.
    pub(crate) pooled: Option<(u64, IOStream)>,
    /// Idle connections to close: stale ones found on the way, and the
    /// oldest ones past `max_clients` open connections. Closed by the
    /// caller, outside the pool's borrow (a close may run callbacks).
    pub(crate) evicted: Vec<IOStream>,
}

#[derive(Default)]
struct State {
    /// Closed: slots are forgotten and nothing is pooled any more.
    closed: bool,
    next_conn_id: u64,
    /// Slots in use (exchanges in flight), all hosts together.
    busy: usize,
    /// Slots in use by host; a key is removed when it drops to 0.
    per_host: HashMap<HostKey, usize>,
    /// Oldest first; reuse takes the newest (the likeliest still open).
    idle: VecDeque<Idle>,
    /// TLS configurations by options: building one reads files and parses
    /// certificates, so each distinct set is built once per client.
    #[cfg(feature = "tls")]
    tls_configs: HashMap<crate::tls::ClientOptions, std::sync::Arc<rustls::ClientConfig>>,
    /// The counters kept here (`active`, `queued` and `idle` are filled
    /// in by [`Pool::stats`] and the client).
    stats: ClientStats,
}

/// The connection pool of one client; see the module docs.
pub(crate) struct Pool {
    /// The loop the client's connections and timeouts live on.
    pub(crate) io_loop: IOLoop,
    /// The client's settings.
    pub(crate) config: ClientConfig,
    st: RefCell<State>,
}

impl Pool {
    pub(crate) fn new(io_loop: &IOLoop, config: ClientConfig) -> Rc<Pool> {
        Rc::new(Pool {
            io_loop: io_loop.clone(),
            config,
            st: RefCell::new(State::default()),
        })
    }

    /// Whether a request to `key` may start now: a slot is free within
    /// `max_clients` and within `max_per_host` for its host.
    pub(crate) fn has_room(&self, key: &HostKey) -> bool {
        let st = self.st.borrow();
        let per_host = self.config.max_per_host.unwrap_or(usize::MAX);
        !st.closed
            && st.busy < self.config.max_clients
            && st.per_host.get(key).copied().unwrap_or(0) < per_host
    }

    /// Takes a slot for a request to `key` (after [`has_room`](Pool::has_room)),
    /// with the newest idle connection to that key if one is usable.
    pub(crate) fn acquire(&self, key: &HostKey) -> Slot {
        let mut st = self.st.borrow_mut();
        st.busy += 1;
        *st.per_host.entry(key.clone()).or_insert(0) += 1;
        let mut evicted = Vec::new();
        let mut pooled = None;
        while let Some(j) = st.idle.iter().rposition(|c| c.key == *key) {
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
            // A new connection is coming: open ones stay within
            // `max_clients`, the oldest idle ones going first.
            Self::evict_over_limit(&mut st, self.config.max_clients, &mut evicted);
        }
        Slot { pooled, evicted }
    }

    /// An exchange to `key` ended: frees its slot, and keeps its
    /// connection for reuse if it gives one (closing it instead once the
    /// pool is closed), closing the oldest idle ones past `max_clients`.
    pub(crate) fn release(&self, key: &HostKey, pooled: Option<(u64, IOStream)>) {
        let to_close = {
            let mut st = self.st.borrow_mut();
            // After `close` the slots were forgotten: nothing to free.
            if !st.closed {
                st.busy -= 1;
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
                    Self::evict_over_limit(&mut st, self.config.max_clients, &mut to_close);
                }
            }
            to_close
        };
        for stream in to_close {
            stream.close();
        }
    }

    /// Moves the oldest idle connections to `out` while busy and idle ones
    /// together are more than `max`.
    fn evict_over_limit(st: &mut State, max: usize, out: &mut Vec<IOStream>) {
        while st.busy + st.idle.len() > max {
            match st.idle.pop_front() {
                Some(idle) => out.push(idle.stream),
                None => break,
            }
        }
    }

    /// Takes a new connection in: its options, an id, and its removal from
    /// the idle ones when the server closes it.
    pub(crate) fn adopt(self: &Rc<Self>, stream: &IOStream) -> u64 {
        let conn_id = {
            let mut st = self.st.borrow_mut();
            st.stats.connections_opened += 1;
            st.next_conn_id += 1;
            st.next_conn_id
        };
        let _ = stream.set_nodelay(true);
        let room = self.config.max_body_size.max(self.config.max_header_size);
        stream.set_max_buffer_size(room.saturating_add(64 * 1024));
        let weak: Weak<Pool> = Rc::downgrade(self);
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

    /// A request is sent again after its pooled connection proved stale.
    pub(crate) fn note_retry(&self) {
        self.st.borrow_mut().stats.stale_retries += 1;
    }

    /// Closes every idle connection and forgets the slots (the client
    /// fails what is in flight); later connections are closed, not pooled.
    pub(crate) fn close(&self) {
        let idle = {
            let mut st = self.st.borrow_mut();
            st.closed = true;
            st.busy = 0;
            st.per_host.clear();
            std::mem::take(&mut st.idle)
        };
        for idle in idle {
            idle.stream.close();
        }
    }

    /// The counters, with `active` and `idle` (`queued` is the client's).
    pub(crate) fn stats(&self) -> ClientStats {
        let st = self.st.borrow();
        ClientStats {
            active: st.busy,
            queued: 0,
            idle: st.idle.len(),
            ..st.stats
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // The loop holds open streams: pooled ones would outlive the client.
        for idle in self.st.get_mut().idle.drain(..) {
            idle.stream.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::*;

    fn key(url: &str) -> HostKey {
        let url = Url::parse(url).unwrap();
        HostKey::of(&url, &HTTPRequest::new(url.to_string()))
    }

    /// A connected stream on `io_loop`, and its peer's end.
    fn stream(io_loop: &IOLoop) -> (IOStream, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (IOStream::with_loop(ours, io_loop).unwrap(), theirs)
    }

    fn run_for(io_loop: &IOLoop, d: Duration) {
        let l = io_loop.clone();
        io_loop.call_later(d, move || l.stop());
        io_loop.start().unwrap();
    }

    fn config(max_clients: usize, max_per_host: Option<usize>) -> ClientConfig {
        let mut config = ClientConfig::new().max_clients(max_clients);
        config.max_per_host = max_per_host;
        config
    }

    #[test]
    fn slots_within_max_clients_and_max_per_host() {
        let io_loop = IOLoop::new().unwrap();
        let pool = Pool::new(&io_loop, config(3, Some(2)));
        let (a, b) = (key("http://a/"), key("http://b:8080/"));
        assert!(pool.has_room(&a));
        pool.acquire(&a);
        pool.acquire(&a);
        // `a` is at its per-host bound; `b` is not.
        assert!(!pool.has_room(&a));
        assert!(pool.has_room(&b));
        pool.acquire(&b);
        // All three slots taken.
        assert!(!pool.has_room(&b));
        assert_eq!(pool.stats().active, 3);
        pool.release(&a, None);
        assert!(pool.has_room(&a) && pool.has_room(&b));
        pool.release(&a, None);
        pool.release(&b, None);
        assert_eq!(pool.stats().active, 0);
        assert!(
            pool.st.borrow().per_host.is_empty(),
            "keys at 0 are removed"
        );
    }

    #[test]
    fn reuses_the_newest_idle_connection_of_the_same_key() {
        let io_loop = IOLoop::new().unwrap();
        let pool = Pool::new(&io_loop, config(10, None));
        let (a, b) = (key("http://a/"), key("http://a:81/"));
        let (s1, _p1) = stream(&io_loop);
        let (s2, _p2) = stream(&io_loop);
        let (s3, _p3) = stream(&io_loop);
        // Three exchanges in flight at once, then done in turn.
        for k in [&a, &a, &b] {
            assert!(pool.acquire(k).pooled.is_none());
        }
        for (k, id, s) in [(&a, 1, &s1), (&a, 2, &s2), (&b, 3, &s3)] {
            pool.release(k, Some((id, s.clone())));
        }
        assert_eq!(pool.stats().idle, 3);
        let slot = pool.acquire(&a);
        assert_eq!(slot.pooled.map(|(id, _)| id), Some(2));
        assert!(slot.evicted.is_empty());
        let slot = pool.acquire(&a);
        assert_eq!(slot.pooled.map(|(id, _)| id), Some(1));
        // None left for `a` (the other port's is not for it).
        assert!(pool.acquire(&a).pooled.is_none());
        let stats = pool.stats();
        assert_eq!(
            (stats.active, stats.idle, stats.connections_reused),
            (3, 1, 2)
        );
    }

    #[test]
    fn a_closed_idle_connection_is_evicted_not_reused() {
        let io_loop = IOLoop::new().unwrap();
        let pool = Pool::new(&io_loop, config(10, None));
        let a = key("http://a/");
        let (old, _p1) = stream(&io_loop);
        let (gone, _p2) = stream(&io_loop);
        pool.acquire(&a);
        pool.acquire(&a);
        pool.release(&a, Some((1, old.clone())));
        pool.release(&a, Some((2, gone.clone())));
        gone.close();
        let slot = pool.acquire(&a);
        assert_eq!(slot.pooled.map(|(id, _)| id), Some(1));
        assert_eq!(slot.evicted.len(), 1);
        assert!(slot.evicted[0].closed());
    }

    #[test]
    fn open_connections_stay_within_max_clients() {
        let io_loop = IOLoop::new().unwrap();
        let pool = Pool::new(&io_loop, config(2, None));
        let (a, b, c) = (key("http://a/"), key("http://b/"), key("http://c/"));
        let (sa, _pa) = stream(&io_loop);
        let (sb, _pb) = stream(&io_loop);
        pool.acquire(&a);
        pool.acquire(&b);
        pool.release(&a, Some((1, sa.clone())));
        pool.release(&b, Some((2, sb.clone())));
        assert_eq!(pool.stats().idle, 2);
        // A request to `c` will open a connection: the oldest idle one goes.
        let slot = pool.acquire(&c);
        assert!(slot.pooled.is_none());
        assert_eq!(slot.evicted.len(), 1);
        for s in slot.evicted {
            s.close();
        }
        assert!(sa.closed() && !sb.closed());
        assert_eq!(pool.stats().idle, 1);
        // Reusing one opens nothing: nothing more is evicted.
        let slot = pool.acquire(&b);
        assert_eq!(slot.pooled.map(|(id, _)| id), Some(2));
        assert!(slot.evicted.is_empty());
    }

    #[test]
    fn after_close_nothing_is_pooled_and_slots_are_forgotten() {
        let io_loop = IOLoop::new().unwrap();
        let pool = Pool::new(&io_loop, config(4, None));
        let a = key("http://a/");
        let (idle, _p1) = stream(&io_loop);
        let (busy, _p2) = stream(&io_loop);
        pool.acquire(&a);
        pool.acquire(&a);
        pool.release(&a, Some((1, idle.clone())));
        pool.close();
        assert!(idle.closed());
        assert!(!pool.has_room(&a));
        // An exchange in flight at the close ends later: no slot to free
        // (no underflow), and its connection is closed.
        pool.release(&a, Some((2, busy.clone())));
        assert!(busy.closed());
        let stats = pool.stats();
        assert_eq!((stats.active, stats.idle), (0, 0));
    }

    #[test]
    fn adopted_connections_leave_the_pool_when_the_server_closes_them() {
        let io_loop = IOLoop::new().unwrap();
        let pool = Pool::new(&io_loop, config(4, None));
        let a = key("http://a/");
        let (s1, peer1) = stream(&io_loop);
        let (s2, _peer2) = stream(&io_loop);
        let (id1, id2) = (pool.adopt(&s1), pool.adopt(&s2));
        assert_ne!(id1, id2);
        assert_eq!(pool.stats().connections_opened, 2);
        pool.acquire(&a);
        pool.acquire(&a);
        pool.release(&a, Some((id1, s1.clone())));
        pool.release(&a, Some((id2, s2.clone())));
        drop(peer1);
        run_for(&io_loop, Duration::from_millis(50));
        assert!(s1.closed());
        assert_eq!(pool.stats().idle, 1);
        let slot = pool.acquire(&a);
        assert_eq!(slot.pooled.map(|(id, _)| id), Some(id2));
    }

    #[test]
    fn dropping_the_pool_closes_idle_connections() {
        let io_loop = IOLoop::new().unwrap();
        let pool = Pool::new(&io_loop, config(4, None));
        let a = key("http://a/");
        let (s, _peer) = stream(&io_loop);
        pool.acquire(&a);
        pool.release(&a, Some((1, s.clone())));
        drop(pool);
        assert!(s.closed());
    }
}
