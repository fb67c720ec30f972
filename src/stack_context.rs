//! Stack contexts: errors that find their way home across callbacks.
//!
//! A context entered around a call follows every callback scheduled from inside
//! it: `add_callback`, `add_timeout`, `add_handler`, `add_future` and
//! `Future::add_done_callback` all capture the current context stack, and put
//! it back around the callback when it runs. So an error raised much later,
//! in a timeout, comes back to the code that started the call.
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use squall::stack_context::ExceptionStackContext;
//! use squall::{Error, ErrorKind, IOLoop};
//!
//! let io_loop = IOLoop::new()?;
//! let failed = Rc::new(Cell::new(false));
//! let seen = failed.clone();
//! let l = io_loop.clone();
//! io_loop.add_callback(move || {
//!     let ctx = ExceptionStackContext::new(move |err: &Error| {
//!         seen.set(err.kind() == ErrorKind::Timeout);
//!         true // handled
//!     });
//!     ctx.run(|| {
//!         // Scheduled inside the context: its error comes back to the handler.
//!         l.call_later(Duration::from_millis(1), || {
//!             Err::<(), _>(Error::new(ErrorKind::Timeout, "server too slow"))
//!         });
//!     });
//!     let l2 = l.clone();
//!     l.call_later(Duration::from_millis(5), move || l2.stop());
//! });
//! io_loop.start()?;
//! assert!(failed.get());
//! # Ok::<(), squall::Error>(())
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::callback::{self, CallbackReturn, Origin};
use crate::error::Error;

/// A captured context stack: the innermost frame, or none.
///
/// Cloning is one reference-count increment; the empty stack costs nothing.
#[derive(Clone, Default)]
pub(crate) struct Context(Option<Rc<Frame>>);

struct Frame {
    kind: FrameKind,
    parent: Context,
}

enum FrameKind {
    Guard(Rc<dyn Fn() -> Box<dyn Any>>),
    Exception(Rc<dyn Fn(&Error) -> bool>, Rc<Cell<bool>>),
}

thread_local! {
    static CURRENT: RefCell<Context> = const { RefCell::new(Context(None)) };
}

impl Context {
    /// The stack that is current on this thread now.
    #[inline]
    pub(crate) fn capture() -> Context {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// The empty stack (what `spawn_callback` and remote callbacks get).
    pub(crate) const fn empty() -> Context {
        Context(None)
    }

    fn same(&self, other: &Context) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }

    fn push(&self, kind: FrameKind) -> Context {
        Context(Some(Rc::new(Frame {
            kind,
            parent: self.clone(),
        })))
    }
}

/// Restores the previous current stack when dropped, also while unwinding.
struct Restore(Option<Context>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(prev) = self.0.take() {
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
}

fn set_current(ctx: Context) -> Restore {
    Restore(Some(CURRENT.with(|c| c.replace(ctx))))
}

/// Runs `f` with `ctx` as the current stack, creating the guards of its
/// `StackContext`s (outermost first) and dropping them (innermost first) on
/// every path, panics included.
///
/// Entering the stack that is already current is a no-op, which is what makes
/// a doubly wrapped callback behave like a singly wrapped one.
#[inline]
pub(crate) fn enter<R>(ctx: &Context, f: impl FnOnce() -> R) -> R {
    let already = CURRENT.with(|c| c.borrow().same(ctx));
    if already {
        return f();
    }
    let _restore = set_current(ctx.clone());
    let _guards = Guards::enter(ctx);
    f()
}

struct Guards(Vec<Box<dyn Any>>);

impl Guards {
    fn enter(ctx: &Context) -> Guards {
        let mut factories = Vec::new();
        let mut frame = ctx.0.as_ref();
        while let Some(f) = frame {
            if let FrameKind::Guard(factory) = &f.kind {
                factories.push(factory.clone());
            }
            frame = f.parent.0.as_ref();
        }
        let mut guards = Guards(Vec::with_capacity(factories.len()));
        // Outermost first, as the contexts were entered originally. If a factory
        // panics, the guards already made are dropped by `Guards`' own Drop.
        for factory in factories.iter().rev() {
            guards.0.push(factory());
        }
        guards
    }
}

impl Drop for Guards {
    fn drop(&mut self) {
        while let Some(guard) = self.0.pop() {
            drop(guard);
        }
    }
}

/// Hands `err` to the innermost active exception handler of `ctx`, then
/// outward while handlers decline; logs it if nobody handles it.
pub(crate) fn route(ctx: &Context, mut err: Error, origin: Origin, name: &'static str) {
    let mut frame = ctx.0.clone();
    while let Some(f) = frame {
        if let FrameKind::Exception(handler, active) = &f.kind {
            if active.get() {
                // The handler runs under the contexts outside it, so an error it
                // raises itself travels outward, as in Python's `with` nesting.
                let mut handled = false;
                let outcome = callback::catch(|| {
                    handled = enter(&f.parent, || handler(&err));
                    Ok(())
                });
                match outcome {
                    Ok(()) if handled => return,
                    Ok(()) => {}
                    Err(raised) => err = raised,
                }
            }
        }
        frame = f.parent.0.clone();
    }
    callback::report_unhandled(err, origin, name);
}

/// A context whose `factory` is called around every callback captured under it.
///
/// The factory returns a guard (any value), which is dropped when the callback
/// returns or panics: Rust's RAII in the role of Python's context manager.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use squall::stack_context::StackContext;
/// use squall::IOLoop;
///
/// struct Enter(Rc<RefCell<Vec<&'static str>>>);
/// impl Drop for Enter {
///     fn drop(&mut self) { self.0.borrow_mut().push("exit") }
/// }
///
/// let io_loop = IOLoop::new()?;
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let ctx = {
///     let log = log.clone();
///     StackContext::new(move || {
///         log.borrow_mut().push("enter");
///         Enter(log.clone())
///     })
/// };
/// let (l, log2) = (io_loop.clone(), log.clone());
/// ctx.run(|| io_loop.add_callback(move || { log2.borrow_mut().push("run"); l.stop() }));
/// io_loop.start()?;
/// // Once for the synchronous `run`, once around the callback.
/// assert_eq!(*log.borrow(), ["enter", "exit", "enter", "run", "exit"]);
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Clone)]
pub struct StackContext {
    factory: Rc<dyn Fn() -> Box<dyn Any>>,
}

impl StackContext {
    /// A context that calls `factory` each time it is entered.
    pub fn new<G, F>(factory: F) -> StackContext
    where
        G: 'static,
        F: Fn() -> G + 'static,
    {
        StackContext {
            factory: Rc::new(move || Box::new(factory()) as Box<dyn Any>),
        }
    }

    /// Enters the context for the duration of `f`; callbacks scheduled inside
    /// `f` carry it with them.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let ctx = Context::capture().push(FrameKind::Guard(self.factory.clone()));
        let _guard = (self.factory)();
        let _restore = set_current(ctx);
        f()
    }
}

/// A context whose handler is offered every error raised by callbacks
/// captured under it.
///
/// The handler returns `true` if it handled the error; `false` passes it to the
/// next context out, and in the end to the log. See the module example.
#[derive(Clone)]
pub struct ExceptionStackContext {
    handler: Rc<dyn Fn(&Error) -> bool>,
}

impl ExceptionStackContext {
    /// A context that offers errors to `handler`.
    pub fn new(handler: impl Fn(&Error) -> bool + 'static) -> ExceptionStackContext {
        ExceptionStackContext {
            handler: Rc::new(handler),
        }
    }

    /// Runs `f` inside the context. An error `f` returns or panics with goes
    /// to the handler at once; callbacks `f` schedules carry the context.
    ///
    /// The returned [`Deactivate`] turns the context off for good: callbacks
    /// captured under it then skip its handler (as Tornado's `gen.engine` does
    /// when its generator finishes).
    pub fn run<R: CallbackReturn>(&self, f: impl FnOnce() -> R) -> Deactivate {
        let active = Rc::new(Cell::new(true));
        let ctx = Context::capture().push(FrameKind::Exception(
            self.handler.clone(),
            active.clone(),
        ));
        let outcome = {
            let _restore = set_current(ctx.clone());
            callback::catch(|| f().into_outcome())
        };
        if let Err(err) = outcome {
            route(&ctx, err, Origin::Context, std::any::type_name::<R>());
        }
        Deactivate(active)
    }
}

/// Turns an [`ExceptionStackContext`] entry off (see [`ExceptionStackContext::run`]).
#[derive(Clone, Debug)]
pub struct Deactivate(Rc<Cell<bool>>);

impl Deactivate {
    /// From now on, errors no longer reach this context's handler.
    pub fn deactivate(&self) {
        self.0.set(false);
    }

    /// Whether the context still receives errors.
    pub fn is_active(&self) -> bool {
        self.0.get()
    }
}

/// Runs code with an empty context stack.
///
/// For fire-and-forget work that must not inherit the caller's handlers.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullContext;

impl NullContext {
    /// Runs `f` with no stack context; callbacks it schedules capture none.
    pub fn run<R>(f: impl FnOnce() -> R) -> R {
        let _restore = set_current(Context::empty());
        f()
    }
}

/// Captures the current context stack; the returned closure re-establishes it
/// around `f` when it runs, and routes `f`'s error through it.
///
/// For handing a callback to code that does not capture contexts itself.
/// Wrapping an already wrapped closure is harmless: re-entering the current
/// stack is a no-op.
pub fn wrap<R, F>(f: F) -> impl FnOnce() + 'static
where
    R: CallbackReturn,
    F: FnOnce() -> R + 'static,
{
    let ctx = Context::capture();
    move || {
        callback::invoke(&ctx, Origin::Callback, std::any::type_name::<F>(), || {
            f().into_outcome()
        })
    }
}

/// Raises `err` from inside a callback, Tornado-style: it unwinds the callback
/// and arrives at the stack context as itself, kind and all.
pub fn raise(err: Error) -> ! {
    std::panic::panic_any(err)
}
