//! Name resolution without blocking the loop: `getaddrinfo` blocks, so, as
//! Tornado's default resolver does with its executor, a name is looked up on
//! a thread and the answer crosses back through a channel into the loop.
//! IP literals need no lookup.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::IOLoop;

/// The addresses of `host:port`, IPv4 first (a server bound to 127.0.0.1
/// is the common case for `localhost`).
pub(crate) fn resolve(io_loop: &IOLoop, host: &str, port: u16) -> Future<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Future::ready(vec![SocketAddr::new(ip, port)]);
    }
    let future = Future::new();
    let f = future.clone();
    let name = host.to_string();
    let tx = io_loop.remote_channel(move |answer: Result<Vec<SocketAddr>, Error>| {
        if !f.done() {
            let _ = f.complete(answer);
        }
    });
    let spawned = std::thread::Builder::new()
        .name("squall-resolve".into())
        .spawn(move || {
            let answer = (name.as_str(), port)
                .to_socket_addrs()
                .map_err(|err| {
                    Error::with_source(
                        ErrorKind::Io,
                        format!("cannot resolve {name:?}: {err}"),
                        err,
                    )
                })
                .and_then(|addrs| {
                    let mut addrs: Vec<SocketAddr> = addrs.collect();
                    addrs.sort_by_key(SocketAddr::is_ipv6);
                    if addrs.is_empty() {
                        Err(Error::new(
                            ErrorKind::Io,
                            format!("{name:?} has no address"),
                        ))
                    } else {
                        Ok(addrs)
                    }
                });
            // The loop may be gone by now; nobody waits then.
            let _ = tx.send(answer);
        });
    if let Err(err) = spawned {
        let _ = future.set_error(Error::from(err));
    }
    future
}
