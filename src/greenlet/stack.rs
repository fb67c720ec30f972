//! Coroutine stacks: `mmap`ed with a guard page, and kept in a per-thread
//! pool when freed, so that starting a coroutine rarely costs a system call.

use std::cell::{Cell, RefCell};
use std::io;

use corosensei::stack::{DefaultStack, Stack, StackPointer};

use crate::error::{Error, ErrorKind};

/// The stack size a coroutine gets unless told otherwise: 64 KiB.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

/// The smallest stack a coroutine may ask for: 16 KiB. Less would not hold
/// the frames of one wait in a debug build.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// The largest stack a coroutine may ask for: 1 GiB (of address space; only
/// the pages it touches use memory).
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// How many freed stacks a thread keeps for reuse, unless told otherwise.
pub const DEFAULT_POOL_LIMIT: usize = 1024;

struct Pool {
    /// (usable size, stack), most recently freed last.
    free: Vec<(usize, DefaultStack)>,
    limit: usize,
    /// Stacks handed out and not yet returned.
    live: usize,
    default_size: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            free: Vec::new(),
            limit: DEFAULT_POOL_LIMIT,
            live: 0,
            default_size: DEFAULT_STACK_SIZE,
        })
    };
    static PAGE: Cell<usize> = const { Cell::new(0) };
}

/// The system page size (cached).
pub(crate) fn page_size() -> usize {
    PAGE.with(|p| {
        if p.get() == 0 {
            // SAFETY: sysconf has no preconditions.
            let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            p.set(usize::try_from(size).unwrap_or(4096).max(4096));
        }
        p.get()
    })
}

/// A coroutine stack that goes back to this thread's pool when dropped.
///
/// corosensei drops a coroutine's stack only after the coroutine finished or
/// was unwound, so nothing lives on a stack that goes back to the pool.
pub(crate) struct PooledStack {
    stack: Option<DefaultStack>,
    size: usize,
}

impl PooledStack {
    /// A stack of at least `size` usable bytes (rounded up to whole pages),
    /// from the pool if it has one of that size.
    pub(crate) fn take(size: usize) -> io::Result<PooledStack> {
        let size = round_up(size.clamp(MIN_STACK_SIZE, MAX_STACK_SIZE));
        let pooled = POOL.with(|p| {
            let mut pool = p.borrow_mut();
            let at = pool.free.iter().rposition(|(s, _)| *s == size);
            let stack = at.map(|i| pool.free.swap_remove(i).1);
            if stack.is_some() {
                pool.live += 1;
            }
            stack
        });
        let stack = match pooled {
            Some(stack) => stack,
            None => {
                let stack = DefaultStack::new(size)?;
                POOL.with(|p| p.borrow_mut().live += 1);
                stack
            }
        };
        Ok(PooledStack {
            stack: Some(stack),
            size,
        })
    }

    /// Usable bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The guard page: `[low, high)`.
    pub(crate) fn guard(&self) -> (usize, usize) {
        let low = self.limit().get();
        (low, low + page_size())
    }
}

fn round_up(size: usize) -> usize {
    let page = page_size();
    size.div_ceil(page) * page
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        let Some(stack) = self.stack.take() else {
            return;
        };
        let size = self.size;
        // try_with: at thread exit the pool may be gone; the stack is then
        // simply unmapped.
        let _ = POOL.try_with(|p| {
            let mut pool = p.borrow_mut();
            pool.live -= 1;
            if pool.free.len() < pool.limit {
                pool.free.push((size, stack));
                None
            } else {
                Some(stack)
            }
        });
    }
}

// SAFETY: base and limit are those of a `DefaultStack`, which satisfies the
// trait's contract (aligned, guard page, at least MIN_STACK_SIZE), and the
// `DefaultStack` lives exactly as long as this value.
unsafe impl Stack for PooledStack {
    #[inline]
    fn base(&self) -> StackPointer {
        self.stack
            .as_ref()
            .expect("stack present until drop")
            .base()
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        self.stack
            .as_ref()
            .expect("stack present until drop")
            .limit()
    }
}

/// Counters of this thread's coroutine stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackStats {
    /// Stacks in use by coroutines that have not finished.
    pub live: usize,
    /// Freed stacks kept for reuse.
    pub pooled: usize,
}

/// This thread's stack counters: a test can check that every coroutine gave
/// its stack back.
pub fn stack_stats() -> StackStats {
    POOL.with(|p| {
        let pool = p.borrow();
        StackStats {
            live: pool.live,
            pooled: pool.free.len(),
        }
    })
}

/// Sets how many freed stacks this thread keeps for reuse (default
/// [`DEFAULT_POOL_LIMIT`]); extra ones are unmapped now.
pub fn set_stack_pool_limit(limit: usize) {
    let extra = POOL.with(|p| {
        let mut pool = p.borrow_mut();
        pool.limit = limit;
        let keep = pool.free.len().min(limit);
        pool.free.split_off(keep)
    });
    drop(extra);
}

/// Sets the stack size of coroutines started on this thread from now on
/// without an explicit size (default [`DEFAULT_STACK_SIZE`], 64 KiB; rounded
/// up to whole pages, plus one guard page).
///
/// # Errors
/// [`ErrorKind::InvalidArgument`] outside
/// [`MIN_STACK_SIZE`]`..=`[`MAX_STACK_SIZE`]; the default is unchanged.
pub fn set_default_stack_size(size: usize) -> Result<(), Error> {
    check_size(size)?;
    POOL.with(|p| p.borrow_mut().default_size = size);
    Ok(())
}

/// `Ok` if `size` is a stack size a coroutine may have.
pub(crate) fn check_size(size: usize) -> Result<(), Error> {
    if (MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "coroutine stack size {size} is outside {MIN_STACK_SIZE}..={MAX_STACK_SIZE} bytes"
            ),
        ))
    }
}

/// The stack size coroutines started on this thread get by default.
pub fn default_stack_size() -> usize {
    POOL.with(|p| p.borrow().default_size)
}
