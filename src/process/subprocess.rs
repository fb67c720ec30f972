//! `Subprocess`: a child process whose pipes are streams on the loop, and
//! whose exit the loop hears of; Tornado's `process.Subprocess`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::process::{Child, Command};
use std::rc::Rc;

use crate::callback::CallbackReturn;
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::IOLoop;
use crate::iostream::{IOStream, PipeIOStream};

/// How a child process ended.
///
/// ```
/// use squall::process::ExitStatus;
/// assert!(ExitStatus::Exited(0).success());
/// assert_eq!(ExitStatus::Signaled(9).returncode(), -9); // Tornado's convention
/// assert_eq!(ExitStatus::Signaled(9).to_string(), "killed by signal 9 (SIGKILL)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this status (0 is success).
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
}

impl ExitStatus {
    /// Whether it exited with status 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// The exit status, if it exited.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(code) => Some(code),
            ExitStatus::Signaled(_) => None,
        }
    }

    /// The signal that ended it, if one did.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(_) => None,
            ExitStatus::Signaled(signum) => Some(signum),
        }
    }

    /// Tornado's (and Python's) `returncode`: the exit status, or minus the
    /// signal number.
    pub fn returncode(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signum) => -signum,
        }
    }

    fn from_std(status: std::process::ExitStatus) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitStatus::Exited(code),
            (None, Some(signum)) => ExitStatus::Signaled(signum),
            // Stopped or continued: not reported by a wait without WUNTRACED.
            (None, None) => ExitStatus::Exited(status.into_raw()),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Exited(code) => write!(f, "exited with status {code}"),
            ExitStatus::Signaled(signum) => match signal_name(signum) {
                Some(name) => write!(f, "killed by signal {signum} ({name})"),
                None => write!(f, "killed by signal {signum}"),
            },
        }
    }
}

fn signal_name(signum: i32) -> Option<&'static str> {
    Some(match signum {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGBUS => "SIGBUS",
        _ => return None,
    })
}

type ExitCallback = Box<dyn FnOnce(ExitStatus)>;

struct Inner {
    pid: u32,
    io_loop: IOLoop,
    /// Kept for `try_wait` (waitpid(pid, WNOHANG)): std's reaping by pid.
    child: RefCell<Child>,
    stdin: Option<PipeIOStream>,
    stdout: Option<PipeIOStream>,
    stderr: Option<PipeIOStream>,
    status: Cell<Option<ExitStatus>>,
    exit_callback: RefCell<Option<ExitCallback>>,
    waiters: RefCell<Vec<(Future<ExitStatus>, bool)>>,
}

thread_local! {
    /// The children of this thread not reaped yet, by pid (Tornado's
    /// `Subprocess._waiting`). They live here until they exit, whether or
    /// not their `Subprocess` is kept.
    static WAITING: RefCell<HashMap<u32, Rc<Inner>>> = RefCell::new(HashMap::new());
}

/// A child process run from the loop; Tornado's `process.Subprocess`.
///
/// The child's stdin, stdout and stderr that the [`Command`] sets to
/// `Stdio::piped()` (Tornado's `Subprocess.STREAM`) become
/// [`PipeIOStream`]s on the loop. Its exit is noticed through `SIGCHLD`,
/// handled on the loop with [`IOLoop::add_signal_handler`] (installed at the
/// first spawn), and each `SIGCHLD` checks only this thread's own children,
/// with `waitpid(pid, WNOHANG)`: other children of the process are left to
/// whoever started them. (A loop that already has a `SIGCHLD` handler of
/// yours keeps it: then call [`Subprocess::initialize`] to hand it over.)
/// A cheap-to-clone handle.
///
/// ```
/// use std::process::{Command, Stdio};
/// use squall::process::{ExitStatus, Subprocess};
/// use squall::{Future, IOLoop};
///
/// let io_loop = IOLoop::new()?;
/// let (out, status) = io_loop.run_sync(|| {
///     let mut cmd = Command::new("cat");
///     cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
///     let child = Subprocess::spawn(&mut cmd).expect("cat runs");
///     let stdin = child.stdin().unwrap();
///     stdin.write(&b"meow"[..]);
///     stdin.close(); // cat sees end of file, and exits
///     let done = Future::new();
///     let d = done.clone();
///     child.stdout().unwrap().read_until_close().add_done_callback(move |out: &Future<Vec<u8>>| {
///         let out = out.take_result()?;
///         child.wait_for_exit(true).add_done_callback(move |status: &Future<ExitStatus>| {
///             d.complete(status.take_result().map(|s| (out, s)))
///         });
///         Ok(())
///     });
///     done
/// }, None)?;
/// assert_eq!((out, status), (b"meow".to_vec(), ExitStatus::Exited(0)));
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Clone)]
pub struct Subprocess {
    inner: Rc<Inner>,
}

impl Subprocess {
    /// Spawns `command` with its pipes on the current loop.
    ///
    /// # Errors
    /// As [`spawn_on`](Subprocess::spawn_on).
    pub fn spawn(command: &mut Command) -> Result<Subprocess, Error> {
        Subprocess::spawn_on(command, &IOLoop::current())
    }

    /// Spawns `command` with its pipes on `io_loop`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if another loop handles `SIGCHLD`;
    /// [`ErrorKind::Io`] if the command cannot be started (not found, ...)
    /// or its pipes cannot be watched (the child is then killed and reaped).
    pub fn spawn_on(command: &mut Command, io_loop: &IOLoop) -> Result<Subprocess, Error> {
        // Before the child exists: its SIGCHLD must find the handler.
        if !io_loop.signal_handlers().contains(&libc::SIGCHLD) {
            Subprocess::initialize(io_loop)?;
        }
        let mut child = command.spawn().map_err(|err| {
            Error::with_source(
                ErrorKind::Io,
                format!("cannot run {:?}: {err}", command.get_program()),
                err,
            )
        })?;
        let pid = child.id();
        let streams = (|| -> Result<_, Error> {
            let stdin = child.stdin.take().map(|p| IOStream::with_loop(p, io_loop));
            let stdout = child.stdout.take().map(|p| IOStream::with_loop(p, io_loop));
            let stderr = child.stderr.take().map(|p| IOStream::with_loop(p, io_loop));
            Ok((stdin.transpose()?, stdout.transpose()?, stderr.transpose()?))
        })();
        let (stdin, stdout, stderr) = match streams {
            Ok(streams) => streams,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        };
        let inner = Rc::new(Inner {
            pid,
            io_loop: io_loop.clone(),
            child: RefCell::new(child),
            stdin,
            stdout,
            stderr,
            status: Cell::new(None),
            exit_callback: RefCell::new(None),
            waiters: RefCell::new(Vec::new()),
        });
        WAITING.with(|w| w.borrow_mut().insert(pid, inner.clone()));
        log::debug!("subprocess {pid}: started {:?}", command.get_program());
        Ok(Subprocess { inner })
    }

    /// Handles `SIGCHLD` on `io_loop` for the subprocesses of this thread
    /// (done by the first spawn; needed only to take it back after
    /// [`uninitialize`](Subprocess::uninitialize), or from a handler of
    /// your own). Tornado's `Subprocess.initialize`.
    ///
    /// # Errors
    /// As [`IOLoop::add_signal_handler`].
    pub fn initialize(io_loop: &IOLoop) -> Result<(), Error> {
        io_loop.add_signal_handler(libc::SIGCHLD, |_| reap_waiting())?;
        // A child that ended before the handler was there sent its SIGCHLD
        // to nobody: look once.
        io_loop.add_callback(reap_waiting);
        Ok(())
    }

    /// Stops handling `SIGCHLD` on `io_loop`; Tornado's
    /// `Subprocess.uninitialize`. Exits are noticed again after the next
    /// [`initialize`](Subprocess::initialize) or spawn.
    pub fn uninitialize(io_loop: &IOLoop) -> bool {
        io_loop.remove_signal_handler(libc::SIGCHLD)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The child's stdin, if the command piped it: a write end.
    pub fn stdin(&self) -> Option<PipeIOStream> {
        self.inner.stdin.clone()
    }

    /// The child's stdout, if the command piped it.
    pub fn stdout(&self) -> Option<PipeIOStream> {
        self.inner.stdout.clone()
    }

    /// The child's stderr, if the command piped it.
    pub fn stderr(&self) -> Option<PipeIOStream> {
        self.inner.stderr.clone()
    }

    /// How the child ended, once the loop has noticed (Tornado's
    /// `returncode`; see [`ExitStatus::returncode`]).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.inner.status.get()
    }

    /// Runs `f(status)` on the loop when the child exits (at the next
    /// iteration if it has already), under the stack context current now.
    /// A second call replaces a callback that has not run yet.
    pub fn set_exit_callback<R, F>(&self, f: F)
    where
        R: CallbackReturn,
        F: FnOnce(ExitStatus) -> R + 'static,
    {
        let f = crate::stack_context::wrap1(f);
        match self.inner.status.get() {
            Some(status) => self.inner.io_loop.add_callback(move || f(status)),
            None => *self.inner.exit_callback.borrow_mut() = Some(Box::new(f)),
        }
    }

    /// A future done when the child exits, with how it ended. With
    /// `raise_error`, an exit other than status 0 (a signal included) is the
    /// future's error, of kind [`ErrorKind::ProcessFailed`] (Tornado's
    /// `CalledProcessError`).
    pub fn wait_for_exit(&self, raise_error: bool) -> Future<ExitStatus> {
        let future = Future::new();
        match self.inner.status.get() {
            Some(status) => settle(&future, status, raise_error, self.inner.pid),
            None => self
                .inner
                .waiters
                .borrow_mut()
                .push((future.clone(), raise_error)),
        }
        future
    }

    /// Sends `signum` to the child, unless it has been reaped already (its
    /// pid may belong to another process by then).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] once the child has been reaped;
    /// [`ErrorKind::Io`] if `kill(2)` fails.
    pub fn send_signal(&self, signum: i32) -> Result<(), Error> {
        let pid = self.inner.pid;
        if !WAITING.with(|w| w.borrow().contains_key(&pid)) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("subprocess {pid} has ended and been reaped already"),
            ));
        }
        // SAFETY: kill(2) on our child, not reaped yet (still waiting), so
        // the pid still names it.
        if unsafe { libc::kill(self.inner.pid as libc::pid_t, signum) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(())
    }
}

fn settle(future: &Future<ExitStatus>, status: ExitStatus, raise_error: bool, pid: u32) {
    if raise_error && !status.success() {
        future.try_set_error(Error::new(
            ErrorKind::ProcessFailed,
            format!("subprocess {pid} {status}"),
        ));
    } else {
        future.try_set_result(status);
    }
}

/// Checks each waiting child of this thread with `waitpid(pid, WNOHANG)`.
fn reap_waiting() {
    let waiting: Vec<Rc<Inner>> = WAITING.with(|w| w.borrow().values().cloned().collect());
    for inner in waiting {
        let polled = inner.child.borrow_mut().try_wait();
        match polled {
            Ok(None) => {}
            Ok(Some(status)) => finish(&inner, Ok(ExitStatus::from_std(status))),
            Err(err) => {
                // ECHILD: someone else reaped it (a waitpid(-1) elsewhere).
                finish(&inner, Err(err));
            }
        }
    }
}

fn finish(inner: &Rc<Inner>, status: io::Result<ExitStatus>) {
    WAITING.with(|w| w.borrow_mut().remove(&inner.pid));
    let pid = inner.pid;
    let waiters = std::mem::take(&mut *inner.waiters.borrow_mut());
    let callback = inner.exit_callback.borrow_mut().take();
    match status {
        Ok(status) => {
            log::debug!("subprocess {pid} {status}");
            inner.status.set(Some(status));
            if let Some(callback) = callback {
                inner.io_loop.add_callback(move || callback(status));
            }
            for (future, raise_error) in waiters {
                settle(&future, status, raise_error, pid);
            }
        }
        Err(err) => {
            log::warn!("subprocess {pid}: cannot learn its exit status: {err}");
            let err = Error::with_source(
                ErrorKind::Io,
                format!("subprocess {pid}: cannot learn its exit status: {err}"),
                err,
            );
            for (future, _) in waiters {
                future.try_set_error(err.clone());
            }
        }
    }
}

impl fmt::Debug for Subprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subprocess")
            .field("pid", &self.inner.pid)
            .field("status", &self.inner.status.get())
            .finish()
    }
}
