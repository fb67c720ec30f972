//! Stack overflow in a coroutine: a clean crash with a message.
//!
//! A coroutine's stack ends in a guard page, so running off it faults rather
//! than corrupting memory. Rust's own handler only knows the thread's main
//! stack, and would let the fault kill the process without a word. So the
//! first coroutine installs a `SIGSEGV`/`SIGBUS` handler (on the alternate
//! signal stack) that checks the faulting address against the guard page of
//! the coroutine running on this thread: if it is in it, the handler prints
//! what happened and aborts; otherwise it hands the signal to the handler
//! that was there before.

use std::cell::Cell;
use std::sync::{Once, OnceLock};

thread_local! {
    /// The running coroutine's guard page `[low, high)` and usable stack
    /// size; zeros on the thread's own stack.
    static GUARD: Cell<[usize; 3]> = const { Cell::new([0; 3]) };
    static ALT_CHECKED: Cell<bool> = const { Cell::new(false) };
    static ALT_STACK: AltStack = const { AltStack(Cell::new(0), Cell::new(0)) };
}

static INSTALL: Once = Once::new();
static PREV_SEGV: OnceLock<libc::sigaction> = OnceLock::new();
static PREV_BUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Sets the running coroutine's guard page; returns the previous setting,
/// to put back with [`restore`] when the coroutine switches out.
#[inline]
pub(crate) fn enter(guard: (usize, usize), size: usize) -> [usize; 3] {
    GUARD.with(|g| g.replace([guard.0, guard.1, size]))
}

/// Puts back what [`enter`] returned.
#[inline]
pub(crate) fn restore(previous: [usize; 3]) {
    GUARD.with(|g| g.set(previous));
}

/// Installs the handler (once per process) and makes sure this thread has an
/// alternate signal stack for it to run on (once per thread).
pub(crate) fn prepare() {
    INSTALL.call_once(|| {
        install(libc::SIGSEGV, &PREV_SEGV);
        install(libc::SIGBUS, &PREV_BUS);
    });
    if !ALT_CHECKED.with(|c| c.replace(true)) {
        ensure_alt_stack();
    }
}

fn install(signal: libc::c_int, prev: &OnceLock<libc::sigaction>) {
    // SAFETY: plain sigaction calls with zero-initialised, then filled,
    // structs; the handler is an `extern "C"` fn of the SA_SIGINFO shape.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, &action, &mut old) == 0 {
            let _ = prev.set(old);
        }
    }
}

/// An alternate signal stack this module made for its thread (address,
/// length); unmapped when the thread exits.
struct AltStack(Cell<usize>, Cell<usize>);

impl Drop for AltStack {
    fn drop(&mut self) {
        if self.0.get() == 0 {
            return;
        }
        // SAFETY: disable the alternate stack before unmapping the memory we
        // mapped for it in `ensure_alt_stack`.
        unsafe {
            let mut off: libc::stack_t = std::mem::zeroed();
            off.ss_flags = libc::SS_DISABLE;
            libc::sigaltstack(&off, std::ptr::null_mut());
            libc::munmap(self.0.get() as *mut libc::c_void, self.1.get());
        }
    }
}

/// Rust gives the main thread and the threads it spawns an alternate signal
/// stack; a thread made some other way may have none, and a handler for a
/// stack overflow cannot run on the stack that overflowed.
fn ensure_alt_stack() {
    // SAFETY: sigaltstack queries and sets this thread's alternate stack; the
    // memory is a fresh private mapping owned by ALT_STACK until thread exit.
    unsafe {
        let mut current: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(std::ptr::null(), &mut current) != 0
            || current.ss_flags & libc::SS_DISABLE == 0
        {
            return;
        }
        let len = libc::SIGSTKSZ.max(64 * 1024);
        let mem = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if mem == libc::MAP_FAILED {
            return;
        }
        let stack = libc::stack_t {
            ss_sp: mem,
            ss_flags: 0,
            ss_size: len,
        };
        if libc::sigaltstack(&stack, std::ptr::null_mut()) != 0 {
            libc::munmap(mem, len);
            return;
        }
        ALT_STACK.with(|a| {
            a.0.set(mem as usize);
            a.1.set(len);
        });
    }
}

extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let [low, high, size] = GUARD.try_with(Cell::get).unwrap_or([0; 3]);
    if low != 0 && addr >= low && addr < high {
        overflowed(size);
    }
    let prev = if signal == libc::SIGSEGV {
        PREV_SEGV.get()
    } else {
        PREV_BUS.get()
    };
    // SAFETY: calls the handler that was installed before ours, the way the
    // kernel would have, or restores the default action and returns so the
    // fault happens again and takes that action.
    unsafe {
        match prev {
            Some(prev)
                if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN =>
            {
                if prev.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(prev.sa_sigaction);
                    f(signal, info, context);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
                    f(signal);
                }
            }
            _ => {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &dfl, std::ptr::null_mut());
            }
        }
    }
}

/// Says what happened on stderr (async-signal-safe: no allocation, no
/// locks) and aborts.
fn overflowed(size: usize) -> ! {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = size / 1024;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    write_stderr(b"\nsquall: stack overflow in a greenlet coroutine (stack of ");
    write_stderr(&digits[at..]);
    write_stderr(
        b" KiB); give it a larger stack (greenlet::Builder::stack_size, \
          greenlet::set_default_stack_size) or move the deep recursion out of it. Aborting.\n",
    );
    // SAFETY: abort is async-signal-safe and never returns.
    unsafe { libc::abort() }
}

fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writes from a valid buffer to fd 2.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}
