//! The parent side of `fork_processes`: fork, wait, restart, pass signals on.
//!
//! The parent has no loop and no signal handlers. It blocks `SIGCHLD`,
//! `SIGTERM` and `SIGINT` before the first fork (so none can slip in between
//! two checks) and takes them synchronously with `sigtimedwait`; children
//! get the original mask back at once.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

/// How long the parent sleeps between two looks at its children when no
/// signal comes (a merged or lost `SIGCHLD` costs at most this).
const WAIT_SLICE: Duration = Duration::from_secs(1);

/// After this many `SIGTERM`/`SIGINT`, the children are killed outright.
const SIGNALS_BEFORE_KILL: usize = 3;

struct Supervisor {
    /// pid -> task id, of the children alive.
    children: HashMap<libc::pid_t, usize>,
    restarts: usize,
    max_restarts: usize,
    /// Signals asking the parent to stop, received so far.
    stop_signals: usize,
    /// Restarts ran out: exit with an error once the children are gone.
    failed: bool,
    parent: libc::pid_t,
    /// The signals the parent waits for (blocked).
    waited: libc::sigset_t,
    /// The mask before they were blocked, for the children.
    original_mask: libc::sigset_t,
}

/// Forks `n` children and supervises them. Returns only in a child, with
/// its task id (or with the error of a failed first round of forks).
pub(super) fn run(n: usize, max_restarts: usize) -> io::Result<usize> {
    log::info!("fork_processes: starting {n} processes");
    // SAFETY: sigset_t is plain data; sigemptyset initialises it next.
    let mut waited: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; pthread_sigmask fills it in.
    let mut original_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to sigset_t values we own; the process has a
    // single thread (checked by the caller), so the thread mask is the
    // process's.
    let rc = unsafe {
        libc::sigemptyset(&mut waited);
        libc::sigaddset(&mut waited, libc::SIGCHLD);
        libc::sigaddset(&mut waited, libc::SIGTERM);
        libc::sigaddset(&mut waited, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &waited, &mut original_mask)
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    let mut sup = Supervisor {
        children: HashMap::new(),
        restarts: 0,
        max_restarts,
        stop_signals: 0,
        failed: false,
        // SAFETY: getpid cannot fail.
        parent: unsafe { libc::getpid() },
        waited,
        original_mask,
    };
    for task in 0..n {
        match sup.start_child(task) {
            Ok(Some(id)) => return Ok(id),
            Ok(None) => {}
            Err(err) => {
                log::error!("fork_processes: cannot fork task {task}: {err}");
                sup.stop_children(libc::SIGTERM);
                while !sup.children.is_empty() {
                    sup.reap_blocking();
                }
                sup.restore_mask();
                return Err(err);
            }
        }
    }
    sup.supervise()
}

impl Supervisor {
    /// Forks task `task`. `Some(task)` in the child, `None` in the parent.
    fn start_child(&mut self, task: usize) -> io::Result<Option<usize>> {
        // SAFETY: the process has one thread (checked before the first fork,
        // and the parent starts none), so the child is a complete copy.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                self.in_child(task);
                Ok(Some(task))
            }
            pid => {
                log::debug!("fork_processes: task {task} is pid {pid}");
                self.children.insert(pid, task);
                Ok(None)
            }
        }
    }

    fn in_child(&mut self, task: usize) {
        super::set_task_id(task);
        self.children.clear();
        self.restore_mask();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) };
            // The parent may have died before the line above: then no signal
            // will ever come.
            // SAFETY: getppid cannot fail.
            if unsafe { libc::getppid() } != self.parent {
                log::error!("fork_processes: task {task}: the parent died at once");
                std::process::exit(1);
            }
        }
    }

    fn restore_mask(&self) {
        // SAFETY: `original_mask` is the mask pthread_sigmask gave us.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.original_mask, std::ptr::null_mut())
        };
    }

    /// The parent's loop. Returns only in a restarted child.
    fn supervise(&mut self) -> io::Result<usize> {
        loop {
            if let Some(task) = self.reap()? {
                return Ok(task);
            }
            if self.children.is_empty() {
                let status = i32::from(self.failed);
                log::info!("fork_processes: all children are done; exiting with status {status}");
                std::process::exit(status);
            }
            match self.wait_signal() {
                Some(signum) if signum == libc::SIGTERM || signum == libc::SIGINT => {
                    self.stop_signals += 1;
                    if self.stop_signals >= SIGNALS_BEFORE_KILL {
                        log::warn!("fork_processes: signal {signum} again: killing the children");
                        self.stop_children(libc::SIGKILL);
                    } else {
                        log::info!(
                            "fork_processes: signal {signum}: passing it on to {} children",
                            self.children.len()
                        );
                        self.stop_children(signum);
                    }
                }
                _ => {} // SIGCHLD, or time to look anyway
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop_signals > 0 || self.failed
    }

    fn stop_children(&self, signum: i32) {
        for &pid in self.children.keys() {
            // SAFETY: kill(2) on a child we forked and have not reaped yet,
            // so the pid cannot have been reused.
            unsafe { libc::kill(pid, signum) };
        }
    }

    /// Waits up to [`WAIT_SLICE`] for one of the blocked signals.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn wait_signal(&self) -> Option<i32> {
        let timeout = libc::timespec {
            tv_sec: WAIT_SLICE.as_secs() as libc::time_t,
            tv_nsec: 0,
        };
        // SAFETY: valid pointers; the signals in `waited` are blocked, so
        // this takes them from the pending set.
        let signum = unsafe { libc::sigtimedwait(&self.waited, std::ptr::null_mut(), &timeout) };
        (signum > 0).then_some(signum)
    }

    /// Waits up to [`WAIT_SLICE`] for one of the blocked signals (no
    /// `sigtimedwait` here: look at the pending set every 50 ms).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn wait_signal(&self) -> Option<i32> {
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while waited < WAIT_SLICE {
            // SAFETY: plain data, filled in by sigpending.
            let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
            // SAFETY: valid pointer.
            unsafe { libc::sigpending(&mut pending) };
            for signum in [libc::SIGTERM, libc::SIGINT, libc::SIGCHLD] {
                // SAFETY: valid pointer to an initialised set.
                if unsafe { libc::sigismember(&pending, signum) } == 1 {
                    let mut got = 0;
                    // SAFETY: the signal is pending and blocked: sigwait returns at once.
                    unsafe { libc::sigwait(&self.waited, &mut got) };
                    return Some(got);
                }
            }
            std::thread::sleep(step);
            waited += step;
        }
        None
    }

    /// Reaps every child that has exited, restarting as the rules say.
    /// `Some(task)` in a restarted child.
    fn reap(&mut self) -> io::Result<Option<usize>> {
        loop {
            let mut status = 0;
            // SAFETY: valid pointer; WNOHANG never blocks.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid == 0 {
                return Ok(None);
            }
            if pid < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // ECHILD: nothing left (our bookkeeping says the same).
                self.children.clear();
                return Ok(None);
            }
            if let Some(task) = self.exited(pid, status) {
                return Ok(Some(task));
            }
        }
    }

    /// Blocks until one child exits (used only when giving up).
    fn reap_blocking(&mut self) {
        let mut status = 0;
        // SAFETY: valid pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid > 0 {
            self.children.remove(&pid);
        } else if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            self.children.clear();
        }
    }

    /// One child exited with `status`. `Some(task)` in a restarted child.
    fn exited(&mut self, pid: libc::pid_t, status: libc::c_int) -> Option<usize> {
        let task = self.children.remove(&pid)?;
        if libc::WIFSIGNALED(status) {
            let signum = libc::WTERMSIG(status);
            if self.stopping() {
                log::info!("fork_processes: task {task} (pid {pid}) ended by signal {signum}");
                return None;
            }
            log::warn!("fork_processes: task {task} (pid {pid}) killed by signal {signum}");
        } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 0 {
            let code = libc::WEXITSTATUS(status);
            if self.stopping() {
                log::info!("fork_processes: task {task} (pid {pid}) exited with status {code}");
                return None;
            }
            log::warn!("fork_processes: task {task} (pid {pid}) exited with status {code}");
        } else {
            log::info!("fork_processes: task {task} (pid {pid}) exited normally");
            return None;
        }
        self.restarts += 1;
        if self.restarts > self.max_restarts {
            log::error!(
                "fork_processes: too many child restarts ({}), giving up",
                self.max_restarts
            );
            self.failed = true;
            self.stop_children(libc::SIGTERM);
            return None;
        }
        match self.start_child(task) {
            Ok(child) => child,
            Err(err) => {
                log::error!("fork_processes: cannot restart task {task}: {err}; giving up");
                self.failed = true;
                self.stop_children(libc::SIGTERM);
                None
            }
        }
    }
}
