//! Listening sockets: [`bind_sockets`] and [`add_accept_handler`], Tornado's
//! `netutil`.
//!
//! `bind_sockets` creates non-blocking listening sockets, one per address the
//! host resolves to; `add_accept_handler` watches one with the loop and hands
//! every connection it accepts to a callback. [`TCPServer`](crate::TCPServer)
//! is built from the two, and a multi-process server binds its sockets
//! *before* forking, so that every child can accept on them.
//!
//! ```
//! use std::net::{SocketAddr, TcpStream};
//! use squall::{netutil::{self, BindOptions}, Future, IOLoop};
//!
//! // Port 0: the OS picks a free port.
//! let listener = netutil::bind_sockets_with(0, BindOptions::new().address("127.0.0.1"))?.remove(0);
//! let addr = listener.local_addr()?;
//! // The socket listens already: a connect to loopback completes at once.
//! let client = TcpStream::connect(addr)?;
//!
//! let io_loop = IOLoop::new()?;
//! let peer = io_loop.run_sync(|| {
//!     let accepted = Future::new();
//!     let a = accepted.clone();
//!     let handle = netutil::add_accept_handler(listener, move |conn: TcpStream, peer| {
//!         drop(conn); // a server would wrap it in an IOStream
//!         a.set_result(peer)
//!     })
//!     .expect("the loop watches the listener");
//!     // One connection is all we wanted: stop accepting (and close the listener).
//!     accepted.add_done_callback(move |_: &Future<SocketAddr>| drop(handle.remove()));
//!     accepted
//! }, None)?;
//! assert_eq!(peer, client.local_addr()?);
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # The accept loop
//! The handler is level-triggered
//! ([`IOLoop::add_handler`](crate::IOLoop::add_handler)). On each READ it
//! accepts until the kernel says `WouldBlock` (nothing left: another process
//! sharing the socket took the connection, or there was none; it returns
//! quietly), but at most [`ACCEPT_BATCH`] connections per call, so one busy
//! listener cannot starve the loop's other work: connections left over are
//! reported again on the next iteration.
//!
//! When `accept` fails for want of resources (`EMFILE`/`ENFILE`: out of file
//! descriptors; `ENOBUFS`, `ENOMEM`), the connection stays in the kernel's
//! queue and the socket stays readable, so retrying at once would spin the
//! loop at 100% CPU. Instead the error is logged and the listener is taken
//! off the loop for a while: [`PAUSE_MIN`] at first, doubling up to
//! [`PAUSE_MAX`] while the errors go on, and back to the minimum after a
//! successful accept. The pending connections are served once descriptors
//! free up. Any other unexpected `accept` error (or an error event with
//! nothing to accept) is handled the same way; `ECONNABORTED` and
//! `ECONNRESET` (a client gave up while queued) just skip that connection.
//!
//! The callback's errors and panics are reported at once, each costing only
//! its own connection.

mod accept;
mod resolver;
pub(crate) use accept::add_accept_handler_boxed;
pub use accept::{add_accept_handler, add_accept_handler_on, RemoveHandle};
pub use resolver::{AddressFamily, Resolver};

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, ErrorKind};

/// The listen backlog [`bind_sockets`] uses when given `None` (Tornado's
/// `_DEFAULT_BACKLOG`). The kernel caps it at `net.core.somaxconn`.
pub const DEFAULT_BACKLOG: u32 = 128;

/// The most connections one call of the accept handler takes; the rest wait
/// for the loop's next iteration.
pub const ACCEPT_BATCH: usize = 128;

/// The first pause of a listener whose `accept` failed for want of resources.
pub const PAUSE_MIN: Duration = Duration::from_millis(10);

/// The longest pause of such a listener.
pub const PAUSE_MAX: Duration = Duration::from_secs(1);

/// How often [`bind_sockets`] retries when a port the OS picked for the first
/// address is taken on a later one.
const PORT_ATTEMPTS: usize = 10;

/// Tornado's keyword arguments of `bind_sockets`, `TCPServer.bind` and
/// `listen`: where and how to listen, for [`bind_sockets_with`],
/// [`TCPServer::bind_with`](crate::TCPServer::bind_with) and
/// [`listen_with`](crate::TCPServer::listen_with) (and `HTTPServer`'s).
///
/// The defaults (`BindOptions::new()`) are Tornado's: all interfaces, both
/// families, [`DEFAULT_BACKLOG`], no `SO_REUSEPORT`.
///
/// ```
/// use squall::netutil::{self, AddressFamily, BindOptions};
///
/// let options = BindOptions::new()
///     .address("localhost")
///     .family(AddressFamily::Inet)
///     .backlog(64);
/// let listeners = netutil::bind_sockets_with(0, options)?;
/// assert_eq!(listeners.len(), 1);
/// assert!(listeners[0].local_addr()?.is_ipv4());
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindOptions {
    /// A host name or an IP literal (`"127.0.0.1"`, `"::1"`, `"[::1]"`,
    /// `"localhost"`); `None` or `""` means all interfaces, `0.0.0.0` and
    /// `::`. A name may resolve to several addresses, IPv4 and IPv6: each
    /// gets its own socket (IPv4 first). Resolving a name blocks, as
    /// `getaddrinfo` does.
    pub address: Option<String>,
    /// Which addresses of `address` to bind (Tornado's `family`): both
    /// families by default, or only IPv4 or only IPv6.
    pub family: AddressFamily,
    /// The queue of connections not yet accepted; `None` is
    /// [`DEFAULT_BACKLOG`]. The kernel caps it at `net.core.somaxconn`.
    pub backlog: Option<u32>,
    /// Sets `SO_REUSEPORT`, so several sockets (in one process or several)
    /// can bind the same address and port and the kernel spreads connections
    /// among them.
    pub reuse_port: bool,
}

impl BindOptions {
    /// The defaults: all interfaces, both families, the default backlog, no
    /// `SO_REUSEPORT`.
    pub fn new() -> BindOptions {
        BindOptions::default()
    }

    /// Sets `address`: a host name or an IP literal.
    pub fn address(mut self, address: impl Into<String>) -> BindOptions {
        self.address = Some(address.into());
        self
    }

    /// Sets `family`.
    pub fn family(mut self, family: AddressFamily) -> BindOptions {
        self.family = family;
        self
    }

    /// Sets `backlog`.
    pub fn backlog(mut self, backlog: u32) -> BindOptions {
        self.backlog = Some(backlog);
        self
    }

    /// Sets `reuse_port`.
    pub fn reuse_port(mut self, reuse_port: bool) -> BindOptions {
        self.reuse_port = reuse_port;
        self
    }
}

/// Creates listening sockets bound to `port` on all interfaces (`0.0.0.0`
/// and `::`); Tornado's `bind_sockets(port)`. [`bind_sockets_with`] takes
/// Tornado's keyword arguments (`address`, `family`, `backlog`,
/// `reuse_port`).
///
/// `port` `0` lets the OS pick a free port; with several addresses, they
/// all get the same one (if the port picked for the first is taken on a
/// later one, the whole set is bound again, a few times at most).
///
/// Every socket has `SO_REUSEADDR` (a restarted server can bind at once,
/// despite connections of the old one in `TIME_WAIT`) and `FD_CLOEXEC`, is
/// non-blocking, and an IPv6 one has `IPV6_V6ONLY` (it does not also take the
/// IPv4 traffic that its IPv4 sibling listens for).
///
/// An IPv6 address that the host cannot use (IPv6 disabled, or `::1` not
/// configured, as in some containers) is skipped when it came from a name or
/// from "all interfaces"; an IPv6 literal that cannot be bound is an error.
///
/// # Errors
/// An [`ErrorKind::Io`] error for the first failure creating, configuring,
/// binding or listening on a socket ([`Error::io_error_kind`] keeps the OS's
/// kind, e.g. `AddrInUse`, and the message names the address), or with
/// `AddrNotAvailable` if every address was skipped. On error no socket stays
/// open.
///
/// ```
/// let listeners = squall::netutil::bind_sockets(0)?;
/// assert!(!listeners.is_empty());
/// assert_ne!(listeners[0].local_addr()?.port(), 0);
/// # Ok::<(), squall::Error>(())
/// ```
pub fn bind_sockets(port: u16) -> Result<Vec<TcpListener>, Error> {
    bind_sockets_with(port, BindOptions::default())
}

/// [`bind_sockets`] with Tornado's keyword arguments: the address to bind,
/// the family, the backlog and `SO_REUSEPORT` (see [`BindOptions`]).
///
/// # Errors
/// As [`bind_sockets`]; [`ErrorKind::InvalidArgument`] if the address
/// resolves to no address of `family` (one that does not resolve at all is
/// an `Io` error whose `io_error_kind` is `InvalidInput`).
///
/// ```
/// use squall::netutil::{bind_sockets_with, BindOptions};
///
/// let options = BindOptions::new().address("127.0.0.1").backlog(64);
/// let listeners = bind_sockets_with(0, options)?;
/// assert_eq!(listeners.len(), 1);
/// assert_eq!(listeners[0].local_addr()?.ip().to_string(), "127.0.0.1");
/// # Ok::<(), squall::Error>(())
/// ```
pub fn bind_sockets_with(port: u16, options: BindOptions) -> Result<Vec<TcpListener>, Error> {
    let (addrs, literal) = resolve(options.address.as_deref(), port)?;
    let before = addrs.len();
    let addrs: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| options.family.admits(a))
        .collect();
    if addrs.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{:?} has no {:?} address ({before} of other families)",
                options.address.as_deref().unwrap_or(""),
                options.family
            ),
        ));
    }
    Ok(bind_addrs_inner(
        &addrs,
        options.backlog,
        options.reuse_port,
        !literal,
    )?)
}

/// Like [`bind_sockets`], for addresses already resolved: one listening
/// socket per address, in order. Addresses with port `0` get one port picked
/// by the OS, the same for all of them.
///
/// Unlike `bind_sockets`, every address must bind: none is skipped.
///
/// # Errors
/// As [`bind_sockets`]; [`ErrorKind::InvalidArgument`] for an empty list.
///
/// ```
/// use std::net::SocketAddr;
/// let addrs: Vec<SocketAddr> = vec!["127.0.0.1:0".parse().unwrap()];
/// let listeners = squall::netutil::bind_addrs(&addrs)?;
/// assert_eq!(listeners.len(), 1);
/// # Ok::<(), squall::Error>(())
/// ```
pub fn bind_addrs(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, Error> {
    bind_addrs_with(addrs, BindOptions::default())
}

/// [`bind_addrs`] with a backlog and `SO_REUSEPORT` from `options`.
///
/// # Errors
/// As [`bind_addrs`]; [`ErrorKind::InvalidArgument`] if `options` names an `address` (the
/// addresses are given) or if an address is not of `options.family`.
pub fn bind_addrs_with(
    addrs: &[SocketAddr],
    options: BindOptions,
) -> Result<Vec<TcpListener>, Error> {
    if addrs.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "bind_addrs: no address given",
        ));
    }
    if let Some(address) = &options.address {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("bind_addrs: the addresses are given, not {address:?}"),
        ));
    }
    if let Some(other) = addrs.iter().find(|a| !options.family.admits(a)) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("bind_addrs: {other} is not {:?}", options.family),
        ));
    }
    Ok(bind_addrs_inner(
        addrs,
        options.backlog,
        options.reuse_port,
        false,
    )?)
}

/// The addresses to bind for `address`, IPv4 first, without duplicates, and
/// whether they came from an IP literal (as opposed to a name or "all").
fn resolve(address: Option<&str>, port: u16) -> io::Result<(Vec<SocketAddr>, bool)> {
    let address = address.map(str::trim).filter(|a| !a.is_empty());
    let Some(address) = address else {
        return Ok((
            vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            ],
            false,
        ));
    };
    let unbracketed = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok((vec![SocketAddr::new(ip, port)], true));
    }
    let resolved = (address, port).to_socket_addrs().map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot resolve {address:?}: {err}"),
        )
    })?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in resolved {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{address:?} resolves to no address"),
        ));
    }
    // Stable: IPv4 first, each family in resolver order (Tornado sorts by family).
    addrs.sort_by_key(|a| a.is_ipv6());
    Ok((addrs, false))
}

enum BindError {
    /// The port picked for an earlier address is taken here: try again.
    PortTaken,
    Fatal(io::Error),
}

fn bind_addrs_inner(
    addrs: &[SocketAddr],
    backlog: Option<u32>,
    reuse_port: bool,
    may_skip_v6: bool,
) -> io::Result<Vec<TcpListener>> {
    let backlog = backlog.unwrap_or(DEFAULT_BACKLOG).min(i32::MAX as u32) as i32;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match bind_once(addrs, backlog, reuse_port, may_skip_v6) {
            Ok(listeners) if listeners.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("no usable address among {addrs:?}"),
                ))
            }
            Ok(listeners) => return Ok(listeners),
            Err(BindError::PortTaken) if attempts < PORT_ATTEMPTS => continue,
            Err(BindError::PortTaken) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("found no port free on all of {addrs:?}"),
                ))
            }
            Err(BindError::Fatal(err)) => return Err(err),
        }
    }
}

fn bind_once(
    addrs: &[SocketAddr],
    backlog: i32,
    reuse_port: bool,
    may_skip_v6: bool,
) -> Result<Vec<TcpListener>, BindError> {
    let mut listeners = Vec::with_capacity(addrs.len());
    let mut bound_port: Option<u16> = None;
    for &requested in addrs {
        let mut addr = requested;
        let picked = addr.port() == 0 && bound_port.is_some();
        if addr.port() == 0 {
            if let Some(port) = bound_port {
                addr.set_port(port);
            }
        }
        let context = |err: io::Error, what: &str| {
            BindError::Fatal(io::Error::new(err.kind(), format!("{what} {addr}: {err}")))
        };
        let socket = match Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        {
            Ok(socket) => socket,
            Err(err) if addr.is_ipv6() && may_skip_v6 => {
                log::debug!("bind_sockets: skipping {addr}: no IPv6 socket: {err}");
                continue;
            }
            Err(err) => return Err(context(err, "cannot create a socket for")),
        };
        let configured = (|| {
            socket.set_reuse_address(true)?;
            if reuse_port {
                socket.set_reuse_port(true)?;
            }
            if addr.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.set_nonblocking(true)
        })();
        if let Err(err) = configured {
            return Err(context(err, "cannot configure a socket for"));
        }
        match socket.bind(&addr.into()) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AddrInUse && picked => {
                log::debug!("bind_sockets: port picked for {addrs:?} is taken on {addr}: retrying");
                return Err(BindError::PortTaken);
            }
            Err(err)
                if err.kind() == io::ErrorKind::AddrNotAvailable
                    && addr.is_ipv6()
                    && may_skip_v6 =>
            {
                log::debug!("bind_sockets: skipping {addr}: {err}");
                continue;
            }
            Err(err) => return Err(context(err, "cannot bind")),
        }
        if let Err(err) = socket.listen(backlog) {
            return Err(context(err, "cannot listen on"));
        }
        if bound_port.is_none() {
            let local = socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map(|a| a.port());
            match local {
                Some(port) => bound_port = Some(port),
                None => {
                    return Err(context(
                        io::Error::other("no local address"),
                        "cannot read the port of",
                    ))
                }
            }
        }
        listeners.push(TcpListener::from(socket));
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_interfaces_are_v4_then_v6() {
        for address in [None, Some(""), Some("  ")] {
            let (addrs, literal) = resolve(address, 80).unwrap();
            assert!(!literal);
            assert_eq!(
                addrs,
                vec![
                    "0.0.0.0:80".parse::<SocketAddr>().unwrap(),
                    "[::]:80".parse().unwrap()
                ]
            );
        }
    }

    #[test]
    fn literals_parse_without_resolving() {
        let (addrs, literal) = resolve(Some("::1"), 8).unwrap();
        assert!(literal);
        assert_eq!(addrs, vec!["[::1]:8".parse::<SocketAddr>().unwrap()]);
        let (addrs, _) = resolve(Some("[::1]"), 8).unwrap();
        assert_eq!(addrs, vec!["[::1]:8".parse::<SocketAddr>().unwrap()]);
        let (addrs, _) = resolve(Some("127.0.0.1"), 0).unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn names_resolve_v4_first_without_duplicates() {
        let (addrs, literal) = resolve(Some("localhost"), 9).unwrap();
        assert!(!literal);
        assert!(!addrs.is_empty());
        let first_v6 = addrs.iter().position(SocketAddr::is_ipv6);
        if let Some(i) = first_v6 {
            assert!(addrs[i..].iter().all(SocketAddr::is_ipv6), "{addrs:?}");
        }
        for (i, a) in addrs.iter().enumerate() {
            assert!(!addrs[i + 1..].contains(a), "duplicate in {addrs:?}");
            assert_eq!(a.port(), 9);
        }
    }

    #[test]
    fn bad_names_are_invalid_input() {
        let err = resolve(Some("no such host.invalid"), 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
