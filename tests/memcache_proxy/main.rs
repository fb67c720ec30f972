//! The memcache proxy example (examples/memcache_proxy/) against real
//! memcached processes: each test starts its own on free loopback ports and
//! a proxy on a thread of its own; the memcached processes are killed by PID
//! when the test ends, failed or not.
//!
//! Needs `memcached` on PATH and `python3` with pymemcache (`.ci/run`
//! installs both).

#[allow(dead_code)]
#[path = "../../examples/memcache_proxy/answer.rs"]
mod answer;
#[allow(dead_code)]
#[path = "../../examples/memcache_proxy/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../../examples/memcache_proxy/client_async.rs"]
mod client_async;
#[allow(dead_code)]
#[path = "../../examples/memcache_proxy/hash.rs"]
mod hash;
#[allow(dead_code)]
#[path = "../../examples/memcache_proxy/protocol.rs"]
mod protocol;
#[allow(dead_code)]
#[path = "../../examples/memcache_proxy/proxy.rs"]
mod proxy;
#[allow(dead_code)]
#[path = "../../examples/memcache_proxy/reply.rs"]
mod reply;
#[allow(dead_code)]
#[path = "../../examples/memcache_proxy/session.rs"]
mod session;
#[allow(dead_code)]
#[path = "../../examples/memcache_proxy/testkit.rs"]
mod testkit;
#[allow(dead_code)]
#[path = "../../examples/memcache_proxy/upstream.rs"]
mod upstream;

mod client_alone;
mod large_answers;
mod through_proxy;

#[path = "../common/peers.rs"]
mod need;

#[path = "../common/logs.rs"]
#[allow(dead_code)]
mod logs;
use need::Peer;
use std::cell::RefCell;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use client::{Client, Options};
use hash::Ring;
use protocol::ITEM_SIZE_MAX;
use proxy::{Config, ProxyThread};
use reply::Item;
use squall::stack_context::ExceptionStackContext;
use squall::{Error, IOLoop};
use testkit::{Memcached, TextClient};

const TIMEOUT: Duration = Duration::from_millis(300);
const DEAD_RETRY: Duration = Duration::from_millis(300);

/// Upstreams and a proxy in front of them. The proxy is declared first, so
/// it is stopped before the servers are killed.
struct Cluster {
    proxy: ProxyThread,
    servers: Vec<Memcached>,
    ring: Ring,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        assert!(
            testkit::memcached_available(),
            "memcached is not on PATH (.ci/run installs it)"
        );
        let servers: Vec<Memcached> = (0..n)
            .map(|_| Memcached::start().expect("cannot start memcached"))
            .collect();
        let upstreams: Vec<SocketAddr> = servers.iter().map(Memcached::addr).collect();
        let names: Vec<String> = upstreams.iter().map(SocketAddr::to_string).collect();
        let proxy = ProxyThread::spawn(Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstreams,
            options: Options {
                timeout: TIMEOUT,
                connect_timeout: TIMEOUT,
                dead_retry: DEAD_RETRY,
                ..Options::default()
            },
            window_bytes: proxy::WINDOW_BYTES,
        })
        .expect("cannot start the proxy");
        Cluster {
            proxy,
            servers,
            ring: Ring::new(&names),
        }
    }

    fn client(&self) -> TextClient {
        TextClient::connect(self.proxy.addr).expect("cannot connect to the proxy")
    }

    fn owner(&self, key: &str) -> usize {
        self.ring.server_for(key.as_bytes()).expect("servers")
    }

    /// `n` keys owned by server `server`.
    fn keys_on(&self, server: usize, prefix: &str, n: usize) -> Vec<String> {
        (0..)
            .map(|i| format!("{prefix}:{i}"))
            .filter(|k| self.owner(k) == server)
            .take(n)
            .collect()
    }

    /// Waits until the proxy's stats show `want`, asking on one connection
    /// (each new one would count itself, and closes of earlier ones are
    /// noticed a moment later).
    fn settles_to(&self, want: &[(&str, &str)]) {
        let mut c = self.client();
        let mut last = Default::default();
        let settled = eventually(Duration::from_secs(10), || {
            last = c.stats().expect("stats");
            want.iter()
                .all(|(name, value)| last.get(*name).map(String::as_str) == Some(*value))
        });
        assert!(settled, "stats never showed {want:?}: {last:?}");
    }

    fn stat(&self, name: &str) -> String {
        let stats = self.client().stats().expect("stats");
        stats
            .get(name)
            .unwrap_or_else(|| panic!("no stat {name} in {stats:?}"))
            .clone()
    }
}

fn signal(server: &Memcached, sig: i32) {
    let pid = server.pid().expect("running") as i32;
    // SAFETY: kill(2) with the PID of a child we started and have not reaped.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
    if sig == libc::SIGSTOP {
        // kill(2) returns before every thread has stopped: a worker may
        // still answer a request or two. Wait until all of them show `T`.
        let stopped = eventually(Duration::from_secs(5), || {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return false;
            };
            tasks.flatten().all(|task| {
                std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                    // The state follows the `(comm)` field.
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
                })
            })
        });
        assert!(stopped, "memcached {pid} did not stop");
    }
}

/// Retries `f` until it returns true or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}
