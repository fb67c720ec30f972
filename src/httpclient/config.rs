//! [`ClientConfig`]: the client-wide settings, read by the client's queue,
//! its pool and each exchange (so in a module of its own, below them all).

use crate::netutil::Resolver;

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
    /// with [`ErrorKind::HttpProtocol`](crate::ErrorKind::HttpProtocol) and
    /// the connection is closed.
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
