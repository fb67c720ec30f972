//! The TorMySQL example (examples/tormysql/) against a real MariaDB: each
//! test starts its own `mariadbd` on a free loopback port with a temporary
//! data directory, and stops it by PID (and removes the directory) when it
//! ends, failed or not. The tests take turns (one lock): one counts the
//! process's open file descriptors.
//!
//! Needs `mariadbd` and `mariadb-install-db` (`.ci/run` installs
//! mariadb-server). The protocol's unit tests (scrambles against known
//! vectors, framing, packets) run here too, without a server.
//!
//! One test binary, a module per concept (`logins`, `queries`, `pooling`,
//! `async_block`); the helpers they share are here.

#[allow(dead_code)]
#[path = "../../examples/tormysql/auth.rs"]
mod auth;
#[allow(dead_code)]
#[path = "../../examples/tormysql/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../../examples/tormysql/conn.rs"]
mod conn;
#[allow(dead_code)]
#[path = "../../examples/tormysql/mariadb.rs"]
mod mariadb;
#[allow(dead_code)]
#[path = "../../examples/tormysql/pool.rs"]
mod pool;
#[allow(dead_code)]
#[path = "../../examples/tormysql/protocol.rs"]
mod protocol;

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/peers.rs"]
mod need;
#[path = "../common/tls.rs"]
mod test_tls;

mod async_block;
mod logins;
mod pooling;
mod queries;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use squall::{gen, greenlet, Error, ErrorKind, Future, IOLoop};

use client::Client;
use common::{ms, open_fds, pseudo_random, secs};
use conn::{MysqlError, Options, ResultSet};
use mariadb::MariaDb;
use need::Peer;
use pool::{ConnectionPool, PoolOptions, PoolStats};

static SERIAL: Mutex<()> = Mutex::new(());

/// A server of this test's own, and the lock that keeps tests in turn;
/// `None` (skipped) without MariaDB outside CI.
fn server() -> Option<(MutexGuard<'static, ()>, MariaDb)> {
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !need::ready(&[Peer::Mariadb]) {
        return None;
    }
    Some((turn, MariaDb::start().expect("cannot start mariadbd")))
}

fn options(db: &MariaDb) -> Options {
    let (user, password, _) = mariadb::USERS[0];
    let mut opts = Options::new(db.addr(), user, password);
    opts.database = Some(mariadb::DATABASE.to_owned());
    opts.connect_timeout = secs(10);
    opts
}

/// Runs `f` in a child on a fresh loop, bounded by 60 s.
fn run<T: 'static>(f: impl FnOnce() -> Result<T, Error> + 'static) -> Result<T, Error> {
    let io_loop = IOLoop::new().expect("loop");
    io_loop.make_current();
    let result = io_loop.run_sync(move || greenlet::async_call_method(f), Some(secs(60)));
    io_loop.close();
    IOLoop::clear_current();
    result
}

fn wait<T: 'static>(f: Future<T>) -> Result<T, Error> {
    greenlet::wait(f)
}

fn server_code(err: &Error) -> Option<(u16, String)> {
    MysqlError::server(err).map(|e| (e.code, e.sql_state.clone()))
}
