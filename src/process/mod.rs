//! Several processes: [`fork_processes`], [`task_id`] and [`Subprocess`];
//! Tornado's `tornado.process`.
//!
//! The fourth seed article's multi-process server: bind the listening
//! sockets, fork one child per core, and let every child accept on the
//! shared sockets with its own loop. The parent only supervises.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use squall::{netutil::{self, BindOptions}, process, IOLoop, IOStream, TCPServer};
//!
//! let sockets = netutil::bind_sockets_with(8090, BindOptions::new().address("127.0.0.1"))?;
//! // Returns in each child, with its task id; the parent never returns.
//! let task = process::fork_processes(2)?;
//! let server = TCPServer::new(move |stream: IOStream, _peer: SocketAddr| {
//!     stream.write(format!("hello from task {task}\n"));
//!     stream.close();
//! });
//! server.add_sockets(sockets)?;
//! IOLoop::current().start()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A process that never forked has no task id; the number of CPUs is what
//! `fork_processes(0, ..)` forks:
//!
//! ```
//! use squall::process;
//! assert_eq!(process::task_id(), None);
//! assert!(process::cpu_count() >= 1);
//! ```
//!
//! # The supervisor
//! [`fork_processes`] forks the children and returns in each of them. The
//! parent stays inside it until the end:
//! - a child killed by a signal, or exiting with a non-zero status, is
//!   forked again with the same task id, up to `max_restarts` restarts in all
//!   (100 by default, as in Tornado); past that the parent stops the other
//!   children and exits with status 1;
//! - a child exiting with status 0 is done, and is not restarted;
//! - when every child is done, the parent exits with status 0;
//! - `SIGTERM` or `SIGINT` sent to the parent is passed on to every child,
//!   and the parent exits once they all have (status 0), restarting none.
//!   A third such signal kills the children (`SIGKILL`).
//!
//! On Linux a child also gets `SIGTERM` if the parent dies without passing
//! anything on (`PR_SET_PDEATHSIG`), so a `kill -9` of the parent leaves no
//! orphan serving forever.
//!
//! # Before any loop
//! Forking copies the process, and a loop's epoll and eventfd descriptors
//! would then be shared by every child: one child's registrations would
//! show up in the others' loops. Threads do not survive a fork either (only
//! the forking one does; a lock another thread held stays locked forever).
//! So `fork_processes` refuses to run once an [`IOLoop`](crate::IOLoop)
//! has been created in the process, or while other threads run. Bind
//! sockets first, fork, *then* make the loop.

mod shutdown;
mod subprocess;
mod supervisor;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, ErrorKind};

pub use shutdown::on_shutdown_signals;
pub use subprocess::{ExitStatus, Subprocess};

/// No task id: `usize::MAX` in [`TASK_ID`].
const NO_TASK: usize = usize::MAX;

/// This process's task id, set in each child by [`fork_processes`].
static TASK_ID: AtomicUsize = AtomicUsize::new(NO_TASK);

/// How many restarts [`fork_processes`] allows when given `None` (Tornado's).
pub const DEFAULT_MAX_RESTARTS: usize = 100;

/// The task id of this process: `Some(i)` in the child that
/// [`fork_processes`] started as task `i` (`0..n`), `None` elsewhere (in a
/// process that never forked).
///
/// ```
/// assert_eq!(squall::process::task_id(), None);
/// ```
pub fn task_id() -> Option<usize> {
    match TASK_ID.load(Ordering::Relaxed) {
        NO_TASK => None,
        id => Some(id),
    }
}

/// The number of CPUs this process may run on (at least 1): what
/// `fork_processes(0, ..)` forks. Tornado's `cpu_count`.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Forks `num_processes` children (`0`: one per CPU, [`cpu_count`]) and
/// returns, in each child, its task id (`0..num_processes`); Tornado's
/// `fork_processes`. The parent never returns: it supervises the children
/// and exits when they are done (see the [module docs](self) for restarts
/// and signals), restarting children at most [`DEFAULT_MAX_RESTARTS`]
/// times in all ([`fork_processes_max_restarts`] sets Tornado's
/// `max_restarts`).
///
/// # Errors
/// Before any child is forked: if an `IOLoop` exists or existed in the
/// process, if other threads are running (or their number cannot be read
/// from `/proc/self/task`: the check fails closed), or if this process is already a
/// child of `fork_processes` (all [`ErrorKind::InvalidState`], saying why).
/// If a fork fails, the children forked so far are stopped and waited for,
/// and the fork's error is returned (an [`ErrorKind::Io`] error).
pub fn fork_processes(num_processes: usize) -> Result<usize, Error> {
    fork_processes_max_restarts(num_processes, DEFAULT_MAX_RESTARTS)
}

/// [`fork_processes`] with Tornado's `max_restarts`: how many times in all
/// the parent restarts children that failed before it gives up (and exits
/// 1).
///
/// # Errors
/// As [`fork_processes`].
pub fn fork_processes_max_restarts(
    num_processes: usize,
    max_restarts: usize,
) -> Result<usize, Error> {
    check_can_fork().map_err(|why| Error::new(ErrorKind::InvalidState, why))?;
    let n = if num_processes == 0 {
        cpu_count()
    } else {
        num_processes
    };
    // Output still buffered would be written once by every child.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    Ok(supervisor::run(n, max_restarts)?)
}

/// Why forking now would be unsafe, if it would.
pub(crate) fn check_can_fork() -> Result<(), String> {
    if let Some(id) = task_id() {
        return Err(format!(
            "fork_processes: this process is already task {id} of fork_processes"
        ));
    }
    if crate::ioloop::loop_created() {
        return Err(
            "fork_processes must be called before any IOLoop is created in the \
                    process: a loop's epoll and eventfd descriptors would be shared by \
                    every child"
                .to_string(),
        );
    }
    let threads = thread_count()?;
    if threads > 1 {
        return Err(format!(
            "fork_processes must be called while the process has one thread; it has \
             {threads} (only the forking thread survives a fork)"
        ));
    }
    Ok(())
}

/// The number of threads of this process. Where it cannot be known (no
/// `/proc`, as in some containers, or another OS), forking is refused: the
/// check fails closed rather than fork a process whose other threads hold
/// locks the child would find held forever.
fn thread_count() -> Result<usize, String> {
    threads_listed_in("/proc/self/task")
}

/// The entries of `dir` (a `/proc/<pid>/task`), or why they cannot be read.
fn threads_listed_in(dir: &str) -> Result<usize, String> {
    std::fs::read_dir(dir).map(Iterator::count).map_err(|err| {
        format!(
            "fork_processes cannot count this process's threads ({dir}: {err}); \
             it refuses to fork without knowing there is only one"
        )
    })
}

fn set_task_id(id: usize) {
    TASK_ID.store(id, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without `/proc` the thread count is unknown, and that is a refusal.
    #[test]
    fn an_unknown_thread_count_fails_closed() {
        let err = threads_listed_in("/nonexistent/proc/self/task").unwrap_err();
        assert!(err.contains("refuses to fork"), "{err}");
        assert!(threads_listed_in("/proc/self/task").unwrap() >= 1);
    }

    #[test]
    fn refuses_with_threads_or_loops() {
        // The test harness runs tests on threads, and other tests make loops.
        let _loop = crate::IOLoop::new().unwrap();
        let err = fork_processes(2).unwrap_err();
        assert!(err.to_string().contains("IOLoop"), "{err}");
        assert_eq!(task_id(), None);
        assert!(cpu_count() >= 1);
    }
}
