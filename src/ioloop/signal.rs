//! Unix signals delivered to the loop: [`IOLoop::add_signal_handler`].
//!
//! ```
//! use std::time::Duration;
//! use squall::IOLoop;
//!
//! let io_loop = IOLoop::new()?;
//! let l = io_loop.clone();
//! // The callback runs on the loop, like any other callback; never inside the
//! // signal handler itself.
//! io_loop.add_signal_handler(libc::SIGUSR1, move |signum| {
//!     println!("got signal {signum}");
//!     l.stop();
//! })?;
//! // SAFETY: raise(3) only sends this process a signal that has a handler.
//! io_loop.add_callback(|| unsafe { libc::raise(libc::SIGUSR1); });
//! io_loop.start()?;
//! assert!(io_loop.remove_signal_handler(libc::SIGUSR1));
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # How
//! The self-pipe trick. Each loop that handles signals owns a non-blocking
//! pipe; the C-level handler installed with `sigaction` does the one thing
//! that is safe there, `write(2)` the signal number into the pipe, and the
//! loop watches the pipe's read end like any fd. Its handler reads the
//! numbers and runs the callbacks, on the loop, under the stack context
//! captured by `add_signal_handler` (Tornado's `add_callback_from_signal`
//! use case). The kernel merges a signal that arrives while the same one is
//! still pending, and the loop merges the numbers read in one go: a callback
//! learns that its signal came *at least once* since it last ran.
//!
//! A signal's disposition is process-wide, so one loop at a time handles a
//! given signal: another loop asking for it gets [`ErrorKind::InvalidState`].
//! Removing the handler, closing the loop or dropping it puts back the
//! disposition that was there before.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use super::{closed, IOLoop, Inner};
use crate::callback::{self, CallbackReturn, Origin};
use crate::error::{Error, ErrorKind};
use crate::stack_context::Context;

/// Signal numbers this module can handle: 1 up to (not including) this.
const MAX_SIGNAL: usize = 65;

/// For each signal, the write end of the pipe of the loop handling it, or -1.
/// Read by the C handler, so an atomic (never on the loop's hot path).
static WAKE_FDS: [AtomicI32; MAX_SIGNAL] = [NO_FD; MAX_SIGNAL];

/// `WAKE_FDS`'s first value, each slot its own atomic (a const item
/// repeated, not an inline `const { }` block: that needs Rust 1.79, and the
/// MSRV is 1.75).
#[allow(clippy::declare_interior_mutable_const)]
const NO_FD: AtomicI32 = AtomicI32::new(-1);

/// C handlers between loading a fd from `WAKE_FDS` and writing to it, on
/// any thread. A pipe is closed only once this is 0 after its fds were
/// taken out of `WAKE_FDS`: a handler that loaded the old number just
/// before must finish first, or its byte could land in whatever file
/// reused that number.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

type SignalFn = Box<dyn FnMut(i32) -> Result<(), Error>>;

struct Entry {
    /// `None` while the callback runs (taken out so no borrow is held).
    f: Option<SignalFn>,
    ctx: Context,
    name: &'static str,
    /// Bumped on every (re)registration: a callback replaced while it ran is
    /// not put back over its replacement.
    generation: u64,
    /// The disposition to restore on removal.
    previous: libc::sigaction,
}

/// One loop's signal state: its pipe and its callbacks.
pub(super) struct Signals {
    read: File,
    write: File,
    entries: HashMap<i32, Entry>,
    generation: u64,
}

impl Signals {
    fn new() -> io::Result<Signals> {
        let mut fds = [-1; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        let rc = unsafe { pipe_cloexec_nonblock(&mut fds) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: both fds are open and owned by nobody else.
        let (read, write) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        Ok(Signals {
            read,
            write,
            entries: HashMap::new(),
            generation: 0,
        })
    }

    /// Puts back the previous disposition of `signum` and stops routing it here.
    fn release(&self, signum: i32, entry: &Entry) {
        // Restore first: from here on, no new invocation of our C handler can
        // start for this signal, so the pipe can be closed afterwards.
        // SAFETY: `previous` is what sigaction gave us for this signal.
        unsafe { libc::sigaction(signum, &entry.previous, std::ptr::null_mut()) };
        let _ = WAKE_FDS[signum as usize].compare_exchange(
            self.write.as_raw_fd(),
            -1,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for (&signum, entry) in &self.entries {
            self.release(signum, entry);
        }
        // No `WAKE_FDS` slot holds our write fd now; a handler still in
        // flight may have loaded it before. Wait it out (a few instructions;
        // a handler interrupting this very thread finishes before we look
        // again), then the fields drop and close the pipe.
        while IN_HANDLER.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
            std::thread::yield_now();
        }
    }
}

/// The C-level handler: writes the signal number into the handling loop's pipe.
extern "C" fn on_signal(signum: libc::c_int) {
    let Some(slot) = usize::try_from(signum).ok().and_then(|i| WAKE_FDS.get(i)) else {
        return;
    };
    // Counted in flight before the load (see `IN_HANDLER`); atomics are
    // async-signal-safe.
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    let fd = slot.load(Ordering::SeqCst);
    if fd < 0 {
        IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let byte = signum as u8;
    // SAFETY: write(2) and errno access are async-signal-safe; `byte` lives
    // across the call. A full pipe (EAGAIN) is fine: the loop has unread
    // numbers waiting already. errno is restored for the interrupted code.
    unsafe {
        let errno = errno_location();
        let saved = *errno;
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *errno = saved;
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
}

// SAFETY (both versions): returns the calling thread's errno slot, always
// valid; callers only read and write that int.
#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe fn errno_location() -> *mut libc::c_int {
    libc::__errno_location()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
unsafe fn errno_location() -> *mut libc::c_int {
    libc::__error()
}

// SAFETY (both versions): callers pass an array of two ints for pipe(2) to
// fill; the fcntl calls only touch the fds it just made.
#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe fn pipe_cloexec_nonblock(fds: &mut [RawFd; 2]) -> libc::c_int {
    libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
unsafe fn pipe_cloexec_nonblock(fds: &mut [RawFd; 2]) -> libc::c_int {
    if libc::pipe(fds.as_mut_ptr()) != 0 {
        return -1;
    }
    for &fd in fds.iter() {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    0
}

fn check_signum(signum: i32) -> Result<(), Error> {
    let refused = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("signal {signum}: {why}"),
        ))
    };
    if signum <= 0 || signum as usize >= MAX_SIGNAL {
        return refused("not a signal number");
    }
    match signum {
        libc::SIGKILL | libc::SIGSTOP => refused("cannot be caught"),
        // The faulting instruction would run again as soon as the handler
        // returned: a callback on the loop cannot handle these.
        libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL => {
            refused("a synchronous fault signal cannot be handled on the loop")
        }
        _ => Ok(()),
    }
}

impl IOLoop {
    /// Runs `callback(signum)` on the loop each time the process receives
    /// signal `signum` (`libc::SIGTERM`, ...); asyncio's
    /// `loop.add_signal_handler`, and what Tornado's `add_callback_from_signal`
    /// is for. The callback never runs inside the signal handler: it is a
    /// loop callback, with the stack context current now.
    ///
    /// A second call for the same signal replaces the callback. See the
    /// [module docs](crate::ioloop::signal) for how signals reach the loop.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a number that is no signal, or one
    /// that cannot be caught (`SIGKILL`, `SIGSTOP`) or handled later
    /// (`SIGSEGV`, `SIGBUS`, `SIGFPE`, `SIGILL`); [`ErrorKind::InvalidState`]
    /// if another loop handles this signal; [`ErrorKind::Closed`] on a
    /// closed loop; [`ErrorKind::Io`] if the pipe cannot be made.
    pub fn add_signal_handler<R, F>(&self, signum: i32, mut callback: F) -> Result<(), Error>
    where
        R: CallbackReturn,
        F: FnMut(i32) -> R + 'static,
    {
        check_signum(signum)?;
        if self.inner.closed.get() {
            return Err(closed());
        }
        self.ensure_signal_pipe()?;
        let f: SignalFn = Box::new(move |signum| callback(signum).into_outcome());
        let name = std::any::type_name::<F>();
        let mut guard = self.inner.signals.borrow_mut();
        let signals = guard.as_mut().expect("made by ensure_signal_pipe");
        signals.generation += 1;
        let generation = signals.generation;
        if let Some(entry) = signals.entries.get_mut(&signum) {
            let old = entry.f.replace(f);
            entry.ctx = Context::capture();
            entry.name = name;
            entry.generation = generation;
            drop(guard);
            drop(old); // may run user code: no borrow held
            return Ok(());
        }
        let write_fd = signals.write.as_raw_fd();
        if let Err(owner) = WAKE_FDS[signum as usize].compare_exchange(
            -1,
            write_fd,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            drop(guard);
            self.drop_signal_pipe_if_unused();
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("signal {signum} is handled by another IOLoop (pipe fd {owner})"),
            ));
        }
        // SAFETY: sigaction is plain data; all-zero is a valid empty value
        // that the fields below complete.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SA_RESTART: other code's blocking system calls are not cut short
        // with EINTR by a signal the loop handles anyway.
        action.sa_flags = libc::SA_RESTART;
        if signum == libc::SIGCHLD {
            action.sa_flags |= libc::SA_NOCLDSTOP;
        }
        // SAFETY: `sa_mask` is a valid sigset_t inside `action`.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: as above; `previous` is plain data sigaction fills in.
        let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid; `on_signal` is async-signal-safe.
        let rc = unsafe { libc::sigaction(signum, &action, &mut previous) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            WAKE_FDS[signum as usize].store(-1, Ordering::SeqCst);
            drop(guard);
            self.drop_signal_pipe_if_unused();
            return Err(Error::with_source(
                ErrorKind::Io,
                format!("cannot handle signal {signum}: {err}"),
                err,
            ));
        }
        signals.entries.insert(
            signum,
            Entry {
                f: Some(f),
                ctx: Context::capture(),
                name,
                generation,
                previous,
            },
        );
        Ok(())
    }

    /// Stops handling `signum` on this loop and puts back the disposition it
    /// had before [`add_signal_handler`](IOLoop::add_signal_handler). Returns
    /// whether this loop handled it.
    pub fn remove_signal_handler(&self, signum: i32) -> bool {
        let entry = {
            let mut guard = self.inner.signals.borrow_mut();
            let Some(signals) = guard.as_mut() else {
                return false;
            };
            let Some(entry) = signals.entries.remove(&signum) else {
                return false;
            };
            signals.release(signum, &entry);
            entry
        };
        drop(entry); // the callback may hold anything: no borrow held
        self.drop_signal_pipe_if_unused();
        true
    }

    /// The signals this loop handles, in no particular order.
    pub fn signal_handlers(&self) -> Vec<i32> {
        self.inner
            .signals
            .borrow()
            .as_ref()
            .map(|s| s.entries.keys().copied().collect())
            .unwrap_or_default()
    }

    fn ensure_signal_pipe(&self) -> Result<(), Error> {
        if self.inner.signals.borrow().is_some() {
            return Ok(());
        }
        let signals = Signals::new().map_err(|err| {
            Error::with_source(
                ErrorKind::Io,
                format!("cannot make the signal pipe: {err}"),
                err,
            )
        })?;
        let read_fd = signals.read.as_raw_fd();
        // Weak: the loop's handler must not keep the loop alive.
        let weak = Rc::downgrade(&self.inner);
        self.add_handler(
            read_fd,
            move |_fd, _events| {
                if let Some(inner) = weak.upgrade() {
                    IOLoop { inner }.dispatch_signals();
                }
            },
            super::Events::READ,
        )?;
        *self.inner.signals.borrow_mut() = Some(signals);
        Ok(())
    }

    fn drop_signal_pipe_if_unused(&self) {
        let unused = self
            .inner
            .signals
            .borrow()
            .as_ref()
            .is_some_and(|s| s.entries.is_empty());
        if unused {
            let signals = self.inner.signals.borrow_mut().take();
            if let Some(signals) = &signals {
                self.remove_handler(signals.read.as_raw_fd());
            }
            drop(signals);
        }
    }

    /// Reads the signal numbers waiting in the pipe and runs their callbacks.
    fn dispatch_signals(&self) {
        let mut seen: Vec<i32> = Vec::new();
        {
            let guard = self.inner.signals.borrow();
            let Some(signals) = guard.as_ref() else {
                return;
            };
            let mut buf = [0u8; 64];
            loop {
                match (&signals.read).read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        for &b in &buf[..n] {
                            let signum = i32::from(b);
                            if !seen.contains(&signum) {
                                seen.push(signum);
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break, // WouldBlock: drained
                }
            }
        }
        for signum in seen {
            self.run_signal_callback(signum);
        }
    }

    fn run_signal_callback(&self, signum: i32) {
        let taken = {
            let mut guard = self.inner.signals.borrow_mut();
            let Some(entry) = guard.as_mut().and_then(|s| s.entries.get_mut(&signum)) else {
                return; // removed since the signal came
            };
            entry
                .f
                .take()
                .map(|f| (f, entry.ctx.clone(), entry.name, entry.generation))
        };
        let Some((mut f, ctx, name, generation)) = taken else {
            return;
        };
        callback::invoke(&ctx, Origin::Callback, name, || f(signum));
        let mut guard = self.inner.signals.borrow_mut();
        match guard.as_mut().and_then(|s| s.entries.get_mut(&signum)) {
            Some(entry) if entry.generation == generation && entry.f.is_none() => {
                entry.f = Some(f);
            }
            _ => {
                // Removed or replaced while it ran.
                drop(guard);
                drop(f);
            }
        }
    }
}

/// For the loop's `close`: what to drop once no borrow is held.
pub(super) fn take(inner: &Inner) -> Option<Signals> {
    inner.signals.borrow_mut().take()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_numbers_are_refused() {
        for signum in [0, -1, 65, 1000, libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV] {
            assert_eq!(
                check_signum(signum).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{signum}"
            );
        }
        assert!(check_signum(libc::SIGTERM).is_ok());
    }
}
