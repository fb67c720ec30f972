//! The proxy: a `TCPServer` speaking the memcached text protocol to its
//! clients and forwarding each command, through the [`Client`], to the
//! upstream server that owns the key.
//!
//! Each client connection is a [`Session`] (in `session.rs`: the pipeline,
//! the `get` windows, the stack contexts); here, what the proxy is
//! configured with and how it is started: on a loop, in forked processes,
//! or on a thread of its own.
//!
//! [`Client`]: super::client::Client

use squall::netutil::BindOptions;
use std::cell::OnceCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use squall::{Error, IOLoop, IOStream, Remote, TCPServer};

use super::client::Options;
use super::session::{Session, Shared};

/// Commands one client may have in flight before the proxy stops reading it.
pub const MAX_PIPELINE: usize = 256;
/// The default of [`Config::window_bytes`].
pub const WINDOW_BYTES: usize = 4 * 1024 * 1024;
/// The most keys in a window, however small the item limit.
pub const MAX_WINDOW_KEYS: usize = 256;
/// What `version` answers.
pub const VERSION: &str = concat!("squall-memcache-proxy-", env!("CARGO_PKG_VERSION"));

/// What the proxy listens on and forwards to.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// The upstream memcached servers.
    pub upstreams: Vec<SocketAddr>,
    /// The client's timeouts, and the item size limit (`max_value`, as
    /// memcached's `-I`), for values in both directions.
    pub options: Options,
    /// The values of a `get` one client connection may have in flight: a
    /// window is as many keys as values of the item limit fit in this (4
    /// keys of 1 MiB by default). More is fewer round trips for large
    /// multi-gets and more memory per connection.
    pub window_bytes: usize,
}

/// A running proxy on a loop.
pub struct Proxy {
    server: TCPServer,
    shared: Rc<Shared>,
}

impl Proxy {
    /// Listens on `config.listen` (on `io_loop`) and serves until stopped.
    pub fn start(io_loop: &IOLoop, config: &Config) -> Result<Proxy, Error> {
        let shared = Shared::new(io_loop, config);
        let s = shared.clone();
        let server = TCPServer::with_loop(io_loop, move |stream: IOStream, peer: SocketAddr| {
            Session::start(&s, stream, peer)
        });
        server.set_nodelay(true);
        let ip = config.listen.ip().to_string();
        server.listen_with(config.listen.port(), BindOptions::new().address(&ip))?;
        Ok(Proxy { server, shared })
    }

    /// Serves from `processes` forked processes (`0`: one per CPU), Tornado's
    /// `bind` + `start(n)`: each child accepts on its own `SO_REUSEPORT`
    /// socket, with its own loop and its own upstream connections. Returns
    /// in each child, with its loop to run; the parent supervises the
    /// children and never returns. Must be called before any loop exists.
    pub fn start_processes(config: &Config, processes: usize) -> Result<(IOLoop, Proxy), Error> {
        // The server is made before the fork, its loop and client after:
        // the handler finds them here.
        let slot: Rc<OnceCell<Rc<Shared>>> = Rc::default();
        let s = slot.clone();
        let server = TCPServer::new(move |stream: IOStream, peer: SocketAddr| match s.get() {
            Some(shared) => Session::start(shared, stream, peer),
            None => stream.close(),
        });
        server.set_nodelay(true);
        let ip = config.listen.ip().to_string();
        server.bind_with(
            config.listen.port(),
            BindOptions::new().address(&ip).reuse_port(true),
        )?;
        server.start(processes)?;
        // In a child: the server's sockets are on this process's current loop.
        let io_loop = IOLoop::current();
        let shared = Shared::new(&io_loop, config);
        let _ = slot.set(shared.clone());
        Ok((io_loop, Proxy { server, shared }))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addrs()[0]
    }

    /// Stops accepting and closes the upstream connections.
    pub fn stop(&self) {
        self.server.stop();
        self.shared.client.close();
    }
}
/// A proxy running on its own thread and loop, stopped when dropped (for
/// the self-test, the tests and the benchmark).
pub struct ProxyThread {
    /// Where it listens.
    pub addr: SocketAddr,
    remote: Remote,
    thread: Option<JoinHandle<()>>,
}

impl ProxyThread {
    /// Starts a proxy with `config` on a new thread.
    pub fn spawn(config: Config) -> Result<ProxyThread, Error> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("memcache-proxy".into())
            .spawn(move || {
                let started = IOLoop::new().and_then(|io_loop| {
                    let proxy = Proxy::start(&io_loop, &config)?;
                    Ok((io_loop, proxy))
                });
                let (io_loop, proxy) = match started {
                    Ok(started) => started,
                    Err(err) => {
                        let _ = tx.send(Err(err));
                        return;
                    }
                };
                let _ = tx.send(Ok((proxy.local_addr(), io_loop.remote())));
                if let Err(err) = io_loop.start() {
                    log::error!("proxy loop: {err}");
                }
                proxy.stop();
                io_loop.close();
            })
            .map_err(Error::from)?;
        let (addr, remote) = rx
            .recv()
            .map_err(|_| Error::other("the proxy thread died"))??;
        Ok(ProxyThread {
            addr,
            remote,
            thread: Some(thread),
        })
    }
}

impl Drop for ProxyThread {
    fn drop(&mut self) {
        let _ = self.remote.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
