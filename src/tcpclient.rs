//! `TCPClient`: a connection by host name, without blocking the loop, with
//! Happy Eyeballs and optional TLS; Tornado's `tcpclient.TCPClient`.
//!
//! ```
//! use squall::tcpclient::TCPClient;
//! use squall::{netutil::BindOptions, IOLoop, IOStream, TCPServer};
//!
//! let io_loop = IOLoop::new()?;
//! let greeting = io_loop.run_sync(|| {
//!     let server = TCPServer::new(|stream: IOStream, _peer| {
//!         stream.write(&b"hello\n"[..]);
//!     });
//!     server.listen_with(0, BindOptions::new().address("127.0.0.1")).expect("listening");
//!     let port = server.local_addrs()[0].port();
//!     // "localhost" is resolved off the loop; ::1 (refused here) and
//!     // 127.0.0.1 are tried as RFC 8305 says.
//!     let stream = TCPClient::new().connect("localhost", port);
//!     let line = squall::Future::new();
//!     let l = line.clone();
//!     stream.add_done_callback(move |stream: &squall::Future<IOStream>| {
//!         match stream.take_result() {
//!             Ok(stream) => squall::chain_future(&stream.read_until(b"\n"), &l),
//!             Err(err) => l.set_error(err),
//!         }
//!     });
//!     line
//! }, None)?;
//! assert_eq!(greeting, b"hello\n");
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # How it connects (RFC 8305, "Happy Eyeballs")
//! The [`Resolver`] gives the host's addresses; they are put in the order
//! the RFC asks for: IPv6 first, then alternating families (v6, v4, v6,
//! ...), each family keeping the resolver's order. One connection attempt
//! starts; if it fails, the next starts at once; if it has neither failed
//! nor succeeded after [`CONNECTION_ATTEMPT_DELAY`] (250 ms), the next starts
//! beside it. The first to connect wins and every other attempt is closed.
//! So a host whose IPv6 route is black-holed costs 250 ms, not a connect
//! timeout. Tornado's own connector has the same shape with a 300 ms delay
//! between its two families.
//!
//! With `ssl_options`, the winner then does its TLS handshake (the host
//! name is the one verified), and the stream is returned once it is done.
//! The `timeout` covers all of it: resolving, connecting, the handshake.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::{IOLoop, TimeoutHandle};
use crate::iostream::IOStream;
use crate::netutil::{AddressFamily, Resolver};

/// How long one connection attempt runs alone before the next address is
/// tried beside it: RFC 8305's recommended "Connection Attempt Delay".
pub const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// How a connection is made: Tornado's `TCPClient.connect` keywords.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Which address family to use (`af`; default both).
    pub af: AddressFamily,
    /// TLS on the connection (client side), verified against the host name.
    #[cfg(feature = "tls")]
    pub ssl_options: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// The stream's read buffer limit (default [`IOStream`]'s).
    pub max_buffer_size: Option<usize>,
    /// The local address to connect from.
    pub source_ip: Option<IpAddr>,
    /// The local port to connect from (with or without `source_ip`).
    pub source_port: Option<u16>,
    /// A deadline for the whole connect, TLS included (default none).
    pub timeout: Option<Duration>,
}

impl ConnectOptions {
    /// The defaults: any family, no TLS, no deadline.
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// Sets `af`.
    pub fn af(mut self, af: AddressFamily) -> ConnectOptions {
        self.af = af;
        self
    }

    /// Sets `ssl_options`.
    #[cfg(feature = "tls")]
    pub fn ssl_options(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> ConnectOptions {
        self.ssl_options = Some(config);
        self
    }

    /// Sets `max_buffer_size`.
    pub fn max_buffer_size(mut self, max: usize) -> ConnectOptions {
        self.max_buffer_size = Some(max);
        self
    }

    /// Sets `source_ip`.
    pub fn source_ip(mut self, ip: IpAddr) -> ConnectOptions {
        self.source_ip = Some(ip);
        self
    }

    /// Sets `source_port`.
    pub fn source_port(mut self, port: u16) -> ConnectOptions {
        self.source_port = Some(port);
        self
    }

    /// Sets `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.timeout = Some(timeout);
        self
    }
}

/// Connects by host name; Tornado's `TCPClient`. Cheap to clone. See the
/// [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct TCPClient {
    resolver: Resolver,
}

impl TCPClient {
    /// A client with the default (thread-pool) [`Resolver`].
    pub fn new() -> TCPClient {
        TCPClient::default()
    }

    /// A client with `resolver` (overrides, a pool of its own...).
    pub fn with_resolver(resolver: Resolver) -> TCPClient {
        TCPClient { resolver }
    }

    /// Connects to `host:port` on the current loop, with the default
    /// options.
    pub fn connect(&self, host: &str, port: u16) -> Future<IOStream> {
        self.connect_with(host, port, ConnectOptions::default())
    }

    /// Connects to `host:port` on the current loop. The future fails with
    /// [`ErrorKind::Io`] if the name does not resolve or every address
    /// refuses (the last address's error), [`ErrorKind::Timeout`] past
    /// `timeout`, [`ErrorKind::Tls`] if the handshake fails.
    pub fn connect_with(&self, host: &str, port: u16, options: ConnectOptions) -> Future<IOStream> {
        let io_loop = IOLoop::current();
        let connector = Rc::new(Connector {
            io_loop: io_loop.clone(),
            host: host.to_string(),
            options,
            future: Future::new(),
            addrs: RefCell::new(Vec::new()),
            next: Cell::new(0),
            attempts: RefCell::new(Vec::new()),
            last_error: RefCell::new(None),
            delay: Cell::new(None),
            deadline: Cell::new(None),
            connected: Cell::new(false),
            done: Cell::new(false),
        });
        if let Some(timeout) = connector.options.timeout {
            let weak = Rc::downgrade(&connector);
            let handle = io_loop.call_later(timeout, move || {
                if let Some(c) = weak.upgrade() {
                    c.deadline.set(None);
                    c.fail(Error::new(
                        ErrorKind::Timeout,
                        format!("connect to {}:{port} timed out after {timeout:?}", c.host),
                    ));
                }
            });
            connector.deadline.set(Some(handle));
        }
        let future = connector.future.clone();
        let c = connector.clone();
        self.resolver
            .resolve_on(&io_loop, host, port, connector.options.af)
            .add_done_callback(move |addrs: &Future<Vec<SocketAddr>>| {
                if c.done.get() {
                    return;
                }
                match addrs.take_result() {
                    Ok(addrs) => {
                        *c.addrs.borrow_mut() = interleave(addrs);
                        c.try_next();
                    }
                    Err(err) => c.fail(err),
                }
            });
        future
    }
}

/// RFC 8305 section 4's order: IPv6 first, then the families alternate,
/// each keeping its own order.
fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let (v6, v4): (Vec<_>, Vec<_>) = addrs.into_iter().partition(SocketAddr::is_ipv6);
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// One `connect` in progress: the attempts running, the timers, and the
/// future. Every path ends in `win` or `fail`, which close what is left.
struct Connector {
    io_loop: IOLoop,
    host: String,
    options: ConnectOptions,
    future: Future<IOStream>,
    addrs: RefCell<Vec<SocketAddr>>,
    next: Cell<usize>,
    /// Attempts still connecting (and, with TLS, the handshaking winner).
    attempts: RefCell<Vec<IOStream>>,
    last_error: RefCell<Option<Error>>,
    /// The Connection Attempt Delay's timer.
    delay: Cell<Option<TimeoutHandle>>,
    /// The whole connect's timer.
    deadline: Cell<Option<TimeoutHandle>>,
    /// An attempt has connected: the others' outcomes no longer matter
    /// (closing them fails their futures, which must not count as errors).
    connected: Cell<bool>,
    done: Cell<bool>,
}

impl Connector {
    /// Starts an attempt on the next address, and the timer that starts
    /// the one after it if this one is slow.
    fn try_next(self: &Rc<Self>) {
        if let Some(timer) = self.delay.take() {
            self.io_loop.remove_timeout(timer);
        }
        let i = self.next.get();
        let addr = self.addrs.borrow().get(i).copied();
        let Some(addr) = addr else {
            // No address left: fail once the last attempt has.
            if self.attempts.borrow().is_empty() {
                let err = self.last_error.borrow_mut().take().unwrap_or_else(|| {
                    Error::new(ErrorKind::Io, format!("{} has no address", self.host))
                });
                self.fail(err);
            }
            return;
        };
        self.next.set(i + 1);
        let source = self.source_addr(&addr);
        let (stream, connected) = match IOStream::connecting_from(addr, source, &self.io_loop) {
            Ok(pair) => pair,
            Err(err) => {
                *self.last_error.borrow_mut() = Some(err);
                return self.try_next();
            }
        };
        self.attempts.borrow_mut().push(stream.clone());
        if i + 1 < self.addrs.borrow().len() {
            let weak = Rc::downgrade(self);
            let timer = self.io_loop.call_later(CONNECTION_ATTEMPT_DELAY, move || {
                if let Some(c) = weak.upgrade() {
                    c.delay.set(None);
                    if !c.done.get() && !c.connected.get() {
                        c.try_next();
                    }
                }
            });
            self.delay.set(Some(timer));
        }
        let me = self.clone();
        connected.add_done_callback(move |connected: &Future<IOStream>| {
            me.attempts.borrow_mut().retain(|s| s.fd() != stream.fd());
            if me.done.get() || me.connected.get() {
                if let Ok(s) = connected.take_result() {
                    s.close();
                }
                return;
            }
            match connected.take_result() {
                Ok(stream) => me.won(stream),
                Err(err) => {
                    log::debug!("connect to {addr} ({}): {err}", me.host);
                    *me.last_error.borrow_mut() = Some(err);
                    // A failure starts the next attempt at once.
                    me.try_next();
                }
            }
        });
    }

    fn source_addr(&self, dest: &SocketAddr) -> Option<SocketAddr> {
        let port = self.options.source_port.unwrap_or(0);
        match self.options.source_ip {
            Some(ip) => Some(SocketAddr::new(ip, port)),
            None if port != 0 => Some(SocketAddr::new(
                if dest.is_ipv6() {
                    IpAddr::from([0u16; 8])
                } else {
                    IpAddr::from([0u8; 4])
                },
                port,
            )),
            None => None,
        }
    }

    /// An attempt connected: the others are closed, and the stream is
    /// returned (after its TLS handshake, if asked for).
    fn won(self: &Rc<Self>, stream: IOStream) {
        self.connected.set(true);
        if let Some(timer) = self.delay.take() {
            self.io_loop.remove_timeout(timer);
        }
        let losers = std::mem::take(&mut *self.attempts.borrow_mut());
        for loser in losers {
            loser.close();
        }
        if let Some(max) = self.options.max_buffer_size {
            stream.set_max_buffer_size(max);
        }
        #[cfg(feature = "tls")]
        if let Some(config) = self.options.ssl_options.clone() {
            return self.handshake(stream, config);
        }
        self.succeed(stream);
    }

    #[cfg(feature = "tls")]
    fn handshake(self: &Rc<Self>, plain: IOStream, config: std::sync::Arc<rustls::ClientConfig>) {
        let tls = match plain.upgrade_tls(config.into(), Some(&self.host)) {
            Ok(tls) => tls,
            Err(err) => {
                plain.close();
                return self.fail(err);
            }
        };
        // Held, so that the deadline closes it.
        self.attempts.borrow_mut().push(tls.clone());
        let me = self.clone();
        tls.wait_for_handshake()
            .add_done_callback(move |done: &Future<IOStream>| {
                me.attempts.borrow_mut().clear();
                match done.take_result() {
                    Ok(stream) if !me.done.get() => me.succeed(stream),
                    Ok(stream) => stream.close(),
                    Err(err) => me.fail(err),
                }
            });
    }

    fn succeed(&self, stream: IOStream) {
        if self.finish() {
            self.future.try_set_result(stream);
        } else {
            stream.close();
        }
    }

    fn fail(&self, err: Error) {
        if self.finish() {
            self.future.try_set_error(err);
        }
    }

    /// Ends the connect once: removes the timers, closes every attempt
    /// still running. Returns false if it had ended already.
    fn finish(&self) -> bool {
        if self.done.replace(true) {
            return false;
        }
        for timer in [self.delay.take(), self.deadline.take()]
            .into_iter()
            .flatten()
        {
            self.io_loop.remove_timeout(timer);
        }
        let left = std::mem::take(&mut *self.attempts.borrow_mut());
        for stream in left {
            stream.close();
        }
        true
    }
}

impl IOStream {
    /// Connects to `host:port` on the current loop, resolving the name
    /// without blocking: [`TCPClient::connect`] with the default resolver.
    /// (Tornado's `IOStream.connect` takes a name too, but resolves it with
    /// a blocking call; this does not.)
    pub fn connect_host(host: &str, port: u16) -> Future<IOStream> {
        TCPClient::new().connect(host, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaves_families_ipv6_first() {
        let a: Vec<SocketAddr> = ["1.1.1.1:1", "2.2.2.2:1", "[::1]:1", "[::2]:1", "[::3]:1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let order: Vec<String> = interleave(a).iter().map(|a| a.to_string()).collect();
        assert_eq!(
            order,
            ["[::1]:1", "1.1.1.1:1", "[::2]:1", "2.2.2.2:1", "[::3]:1"]
        );
    }
}
