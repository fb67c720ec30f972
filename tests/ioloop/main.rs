//! Behaviour of the IOLoop through its public API: callbacks, timeouts,
//! handlers, remotes, errors, running and stopping, PeriodicCallback.
//!
//! Timer behaviour is tested on a `ManualClock`, which jumps to the next
//! deadline whenever the loop is idle: exact and instant, with no sleeps.
//!
//! One test binary, a module per concept (`callbacks`, `timeouts`,
//! `handlers`, `remote`, `errors`, `running`, `current`, `periodic`,
//! `futures`); the helpers they share are here, the ones other test files
//! share too in tests/common.

#[path = "../common/mod.rs"]
mod common;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::os::unix::io::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use squall::ioloop::{Clock, ManualClock, TimeoutHandle};
use squall::testing::{capture_unhandled, AsyncTest};
use squall::{Error, ErrorKind, Events, Future, IOLoop, PeriodicCallback};

use common::{drop_flag, guard, manual_loop, ms, secs, socketpair, Log};

fn kinds(errors: &[Error]) -> Vec<ErrorKind> {
    errors.iter().map(Error::kind).collect()
}

mod callbacks;
mod current;
mod errors;
mod futures;
mod handlers;
mod periodic;
mod remote;
mod running;
mod timeouts;

/// Stops `io_loop` from another thread after `limit`, so a test of a timer
/// that fails to fire ends instead of hanging.
fn watchdog(io_loop: &IOLoop, limit: Duration) {
    let remote = io_loop.remote();
    thread::spawn(move || {
        thread::sleep(limit);
        let _ = remote.stop();
    });
}
