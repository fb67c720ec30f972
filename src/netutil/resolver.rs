//! `Resolver`: host names to addresses without blocking the loop (Tornado's `netutil.Resolver`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::executor::ThreadPoolExecutor;
use crate::future::Future;
use crate::ioloop::IOLoop;

/// Which addresses a lookup wants: Python's `socket.AF_UNSPEC`, `AF_INET`,
/// `AF_INET6` (Tornado's `family` argument).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// Both IPv4 and IPv6.
    #[default]
    Unspec,
    /// IPv4 only.
    Inet,
    /// IPv6 only.
    Inet6,
}

impl AddressFamily {
    pub(crate) fn admits(self, addr: &SocketAddr) -> bool {
        match self {
            AddressFamily::Unspec => true,
            AddressFamily::Inet => addr.is_ipv4(),
            AddressFamily::Inet6 => addr.is_ipv6(),
        }
    }
}

/// A host, and a port if the override names one.
type Endpoint = (String, Option<u16>);

#[derive(Clone)]
enum Lookup {
    /// On a thread pool (the process's default one, or the given one).
    Executor(Option<Arc<ThreadPoolExecutor>>),
    /// On the loop's own thread: blocks it (Tornado's `BlockingResolver`).
    Blocking,
}

/// `Resolver`: host names to addresses without blocking the loop, Tornado's
/// `netutil.Resolver`.
///
/// `getaddrinfo` blocks (a slow DNS server can hold it for seconds), so the
/// default resolver runs it on a thread pool and the answer comes back
/// through the loop, as Tornado's `DefaultExecutorResolver` does. IP
/// literals need no lookup and answer at once.
///
/// ```
/// use squall::netutil::{AddressFamily, Resolver};
/// use squall::IOLoop;
///
/// let io_loop = IOLoop::new()?;
/// let addrs = io_loop.run_sync(|| {
///     // Tests and staging: send a name elsewhere (Tornado's OverrideResolver).
///     let resolver = Resolver::new().with_override("api.example.com", "127.0.0.1");
///     resolver.resolve("api.example.com", 8443, AddressFamily::Unspec)
/// }, None)?;
/// assert_eq!(addrs, ["127.0.0.1:8443".parse().unwrap()]);
/// # Ok::<(), squall::Error>(())
/// ```
///
/// Resolves host names without blocking the loop; cheap to clone. The HTTP
/// client and [`TCPClient`](crate::tcpclient::TCPClient) use one. See the
/// [`netutil`](crate::netutil) docs.
#[derive(Clone)]
pub struct Resolver {
    lookup: Lookup,
    /// host -> host, and (host, port) -> (host, port).
    overrides: Rc<HashMap<Endpoint, Endpoint>>,
    /// host -> addresses, as lines of /etc/hosts would give.
    hosts: Rc<HashMap<String, Vec<IpAddr>>>,
}

impl Default for Resolver {
    fn default() -> Resolver {
        Resolver::new()
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.lookup {
            Lookup::Executor(None) => "default executor",
            Lookup::Executor(Some(_)) => "executor",
            Lookup::Blocking => "blocking",
        };
        f.debug_struct("Resolver")
            .field("lookup", &kind)
            .field("overrides", &self.overrides.len())
            .field("hosts", &self.hosts.len())
            .finish()
    }
}

impl Resolver {
    /// Lookups on the process's default thread pool
    /// ([`ThreadPoolExecutor::default_executor`]): Tornado's
    /// `DefaultExecutorResolver`, its default.
    pub fn new() -> Resolver {
        Resolver {
            lookup: Lookup::Executor(None),
            overrides: Rc::default(),
            hosts: Rc::default(),
        }
    }

    /// Lookups on a pool of your own (Tornado's `ThreadedResolver`), e.g. to
    /// bound how many run at once apart from other blocking work.
    pub fn with_executor(executor: Arc<ThreadPoolExecutor>) -> Resolver {
        Resolver {
            lookup: Lookup::Executor(Some(executor)),
            overrides: Rc::default(),
            hosts: Rc::default(),
        }
    }

    /// Lookups on the loop's thread, blocking it (Tornado's
    /// `BlockingResolver`): only where nothing else runs on the loop.
    pub fn blocking() -> Resolver {
        Resolver {
            lookup: Lookup::Blocking,
            overrides: Rc::default(),
            hosts: Rc::default(),
        }
    }

    /// Sends `host` to `target` (a name or an address) whatever the port:
    /// Tornado's `OverrideResolver` mapping `{"host": "target"}`.
    pub fn with_override(self, host: &str, target: &str) -> Resolver {
        self.add_override((host, None), (target, None))
    }

    /// Sends `host:port` to `target:target_port`: the mapping
    /// `{("host", port): ("target", target_port)}`.
    pub fn with_port_override(
        self,
        host: &str,
        port: u16,
        target: &str,
        target_port: u16,
    ) -> Resolver {
        self.add_override((host, Some(port)), (target, Some(target_port)))
    }

    /// Answers `host` with `addrs`, in this order, without a lookup: a
    /// line of `/etc/hosts` of the resolver's own (a name with an IPv6 and
    /// an IPv4 address, say, to exercise a client's Happy Eyeballs).
    pub fn with_hosts_entry(mut self, host: &str, addrs: &[IpAddr]) -> Resolver {
        Rc::make_mut(&mut self.hosts).insert(host.to_ascii_lowercase(), addrs.to_vec());
        self
    }

    fn add_override(
        mut self,
        (host, port): (&str, Option<u16>),
        (target, target_port): (&str, Option<u16>),
    ) -> Resolver {
        Rc::make_mut(&mut self.overrides).insert(
            (host.to_ascii_lowercase(), port),
            (target.to_string(), target_port),
        );
        self
    }

    /// The addresses of `host:port` of `family`, in the order the system
    /// gives them (no duplicates), on the current loop. Fails with
    /// [`ErrorKind::Io`] if the name does not resolve or has no address of
    /// that family.
    pub fn resolve(&self, host: &str, port: u16, family: AddressFamily) -> Future<Vec<SocketAddr>> {
        self.resolve_on(&IOLoop::current(), host, port, family)
    }

    /// [`resolve`](Resolver::resolve) with the answer on `io_loop`.
    pub fn resolve_on(
        &self,
        io_loop: &IOLoop,
        host: &str,
        port: u16,
        family: AddressFamily,
    ) -> Future<Vec<SocketAddr>> {
        let (host, port) = self.mapped(host, port);
        // `[::1]` as written in URLs.
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, port);
            return settled(if family.admits(&addr) {
                Ok(vec![addr])
            } else {
                Err(no_address(&host, family))
            });
        }
        if let Some(ips) = self.hosts.get(&host.to_ascii_lowercase()) {
            let addrs: Vec<SocketAddr> = ips
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .filter(|a| family.admits(a))
                .collect();
            return settled(if addrs.is_empty() {
                Err(no_address(&host, family))
            } else {
                Ok(addrs)
            });
        }
        match &self.lookup {
            Lookup::Blocking => settled(lookup(&host, port, family)),
            Lookup::Executor(pool) => {
                let answer =
                    io_loop.run_in_executor(pool.as_deref(), move || lookup(&host, port, family));
                // The job's `Result` becomes the future's own outcome.
                let out = Future::new();
                let o = out.clone();
                answer.add_done_callback(move |done: &Future<Result<Vec<SocketAddr>, Error>>| {
                    o.try_complete(done.take_result().and_then(|r| r));
                });
                out
            }
        }
    }

    fn mapped(&self, host: &str, port: u16) -> (String, u16) {
        let host_lower = host.to_ascii_lowercase();
        if let Some((target, target_port)) = self.overrides.get(&(host_lower.clone(), Some(port))) {
            return (target.clone(), target_port.unwrap_or(port));
        }
        if let Some((target, _)) = self.overrides.get(&(host_lower, None)) {
            return (target.clone(), port);
        }
        (host.to_string(), port)
    }
}

/// `getaddrinfo`, on whatever thread calls it.
fn lookup(name: &str, port: u16, family: AddressFamily) -> Result<Vec<SocketAddr>, Error> {
    let addrs = (name, port).to_socket_addrs().map_err(|err| {
        Error::with_source(
            ErrorKind::Io,
            format!("cannot resolve {name:?}: {err}"),
            err,
        )
    })?;
    let mut out: Vec<SocketAddr> = Vec::new();
    for addr in addrs.filter(|a| family.admits(a)) {
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    if out.is_empty() {
        return Err(no_address(name, family));
    }
    Ok(out)
}

fn no_address(name: &str, family: AddressFamily) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("{name:?} has no address of family {family:?}"),
    )
}

fn settled<T: 'static>(result: Result<T, Error>) -> Future<T> {
    match result {
        Ok(value) => Future::ready(value),
        Err(err) => Future::failed(err),
    }
}
