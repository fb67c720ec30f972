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
//!
//! # The rules
//! - **Capture.** `add_callback`, `add_timeout` / `call_later` / `call_at`,
//!   `add_handler` (each call of the handler), `add_future`,
//!   [`Future::add_done_callback`](crate::Future::add_done_callback) and
//!   [`PeriodicCallback`](crate::PeriodicCallback) (each run) capture the stack
//!   that is current when they are *called*, not when the callback runs.
//!   [`IOLoop::spawn_callback`](crate::IOLoop::spawn_callback),
//!   [`Remote::add_callback`](crate::Remote::add_callback) and anything
//!   scheduled inside [`NullContext::run`] capture none.
//! - **Routing.** An `Err` returned by a callback, or a panic, goes to the
//!   innermost active [`ExceptionStackContext`] of the captured stack; a handler
//!   returning `false` passes it to the next one out; an error a handler itself
//!   raises replaces the one it was given and goes on outward. What nobody
//!   handles is logged with `log::error!` (and collected by
//!   [`testing::capture_unhandled`](crate::testing::capture_unhandled)); the loop goes on.
//! - **Panics.** A panic with a [`squall::Error`](Error) payload
//!   ([`raise`], or `std::panic::panic_any(err)`) arrives as that very error;
//!   any other panic arrives as an error of kind
//!   [`Panic`](crate::ErrorKind::Panic) carrying the panic message.
//! - **Guards.** Each [`StackContext`] of the captured stack calls its factory
//!   before the callback runs (outermost first) and drops the guard after it
//!   returns or panics (innermost first), before the error is routed. A
//!   handler runs under the contexts *outside* its own, so their guards are
//!   entered again around it.
//! - **Deactivation.** A [`Deactivate`] turns one entry of a context off for
//!   good: callbacks captured under it skip its handler (or guard) from then on.
//!
//! `stack_context` is thread-local, like everything else on a loop's thread;
//! it does nothing across threads. It relies on unwinding: built with
//! `panic = "abort"`, a panic (and [`raise`]) ends the process.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;
use std::rc::Rc;

use crate::catch::{self, CallbackReturn, Origin};
use crate::error::Error;

mod deferred;
pub(crate) use deferred::{defer_on, defer_riding, leave_carried_rider, Deferral, Deferred};

/// A captured context stack: the innermost frame, or none.
///
/// Cloning is one reference-count increment; the empty stack costs nothing.
#[derive(Clone, Default)]
pub(crate) struct Context(Option<Rc<Frame>>);

struct Frame {
    kind: FrameKind,
    parent: Context,
}

type Factory = Rc<dyn Fn() -> Box<dyn Any>>;
type Handler = Rc<dyn Fn(&Error) -> bool>;

enum FrameKind {
    /// A `StackContext`: its factory, and its on-switch if it can be deactivated.
    Guard(Factory, Option<Rc<Cell<bool>>>),
    /// An `ExceptionStackContext`: its handler and its on-switch.
    Exception(Handler, Rc<Cell<bool>>),
    /// Stands for unmade deferred frames while it is current (see
    /// [`defer`](deferred::defer)); never captured (capturing makes them), and skipped by
    /// routing and guards were it ever.
    Deferred,
}

/// The thread's current stack, with its deferred frames (see
/// [`defer`](deferred::defer)): one thread-local, so that capturing the stack, entering a
/// context or deferring a frame is one access.
struct Current {
    /// The current stack; the thread's marker frame while unmade deferred
    /// frames are on top of the stack (which their oldest keeps): a
    /// context entered meanwhile replaces it, and so hides them, as it
    /// hides any stack, until its `Restore` puts the marker back.
    ctx: Context,
    /// Made at the thread's first deferral.
    marker: Option<Context>,
    /// Deferred frames not yet left, innermost last.
    pending: Vec<deferred::Pending>,
    /// A frame riding on the innermost pending one (see
    /// [`deferred::defer_riding`]).
    rider: Option<deferred::Rider>,
}

thread_local! {
    // Without a destructor of its own (`ManuallyDrop`), a `const`
    // thread-local is read inline, with no check that its destructor is
    // registered: this one is read several times per request. The
    // janitor drops what it holds when the thread ends; it is registered
    // by the thread's first frame (`Context::push`), before which it holds
    // nothing to drop.
    static CURRENT: ManuallyDrop<RefCell<Current>> = const {
        ManuallyDrop::new(RefCell::new(Current {
            ctx: Context(None),
            marker: None,
            pending: Vec::new(),
            rider: None,
        }))
    };
    static JANITOR_SET: Cell<bool> = const { Cell::new(false) };
    static JANITOR: Janitor = const { Janitor };
}

/// Drops [`CURRENT`]'s contents when the thread ends.
struct Janitor;

impl Janitor {
    /// Registers the janitor's destructor, once per thread.
    #[inline]
    fn ensure() {
        if !JANITOR_SET.with(|s| s.replace(true)) {
            Janitor::register();
        }
    }

    #[cold]
    #[inline(never)]
    fn register() {
        // Touching it registers its destructor (none if the thread is
        // ending already: then it is not registered, and what CURRENT
        // holds from now on stays).
        let _ = JANITOR.try_with(|_| {});
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        let current = CURRENT.with(|c| {
            c.try_borrow_mut().ok().map(|mut c| Current {
                ctx: std::mem::take(&mut c.ctx),
                marker: c.marker.take(),
                pending: std::mem::take(&mut c.pending),
                rider: c.rider.take(),
            })
        });
        // Dropped with no borrow held: a frame's handler is user code.
        drop(current);
    }
}

impl Context {
    /// The stack that is current on this thread now (its deferred frames
    /// made first, if any: see [`defer`](deferred::defer)).
    #[inline]
    pub(crate) fn capture() -> Context {
        let quick = CURRENT.with(|c| {
            let c = c.borrow();
            (!c.ctx.is_marker()).then(|| c.ctx.clone())
        });
        match quick {
            Some(ctx) => ctx,
            None => deferred::capture_making(),
        }
    }

    /// The empty stack (what `spawn_callback` and remote callbacks get).
    pub(crate) const fn empty() -> Context {
        Context(None)
    }

    /// The number [`current_id`] gives for this stack.
    #[inline]
    fn id(&self) -> usize {
        self.0.as_ref().map_or(0, |f| Rc::as_ptr(f) as usize)
    }

    /// Whether this is the marker of unmade deferred frames.
    #[inline]
    fn is_marker(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|f| matches!(f.kind, FrameKind::Deferred))
    }

    /// Whether this is the stack current on this thread now (never while
    /// unmade deferred frames are: `self` is never the marker).
    #[inline]
    fn is_current(&self) -> bool {
        CURRENT.with(|c| c.borrow().ctx.same(self))
    }

    fn same(&self, other: &Context) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Re-seats this stack's innermost frame on `parent`, if nothing else
    /// holds the frame (nobody captured it): a frame made once and reused,
    /// like a pooled coroutine's. Returns the old parent (for the caller
    /// to drop once it holds no borrow), or `Err(parent)`, with nothing
    /// changed, if the frame is shared or there is none.
    pub(crate) fn reparent(&mut self, parent: Context) -> Result<Context, Context> {
        match self.0.as_mut().and_then(Rc::get_mut) {
            Some(frame) => Ok(std::mem::replace(&mut frame.parent, parent)),
            None => Err(parent),
        }
    }

    /// The stack this one's innermost frame sits on (empty for the empty
    /// stack).
    pub(crate) fn parent(&self) -> Context {
        self.0.as_ref().map_or(Context(None), |f| f.parent.clone())
    }

    fn push(&self, kind: FrameKind) -> Context {
        Janitor::ensure();
        Context(Some(Rc::new(Frame {
            kind,
            parent: self.clone(),
        })))
    }
}

/// Replaces the thread's current stack, returning the old one: a stackful
/// coroutine keeps its own across switches.
#[cfg(feature = "stackful")]
#[inline]
pub(crate) fn swap_current(ctx: Context) -> Context {
    // Deferred frames do not cross a switch: made now, they are left as
    // any entered context is.
    let _made = Context::capture();
    CURRENT.with(|c| std::mem::replace(&mut c.borrow_mut().ctx, ctx))
}

/// Restores the previous current stack (and the deferred frames it hid)
/// when dropped, also while unwinding.
struct Restore(Option<Context>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(prev) = self.0.take() {
            CURRENT.with(|c| c.borrow_mut().ctx = prev);
        }
    }
}

/// Which stack is current on this thread now, as a number (0: the empty
/// stack) that names it as long as it lives: for the web layer to note
/// the stack a handler's method starts under and tell later, cheaply,
/// whether it is still the current one.
#[inline]
pub(crate) fn current_id() -> usize {
    let quick = CURRENT.with(|c| {
        let c = c.borrow();
        (!c.ctx.is_marker()).then(|| c.ctx.id())
    });
    // Deferred frames are current too: made, so that they have an id.
    quick.unwrap_or_else(|| deferred::capture_making().id())
}

fn set_current(ctx: Context) -> Restore {
    // (Replacing the marker hides unmade deferred frames until `Restore`.)
    Restore(Some(
        CURRENT.with(|c| std::mem::replace(&mut c.borrow_mut().ctx, ctx)),
    ))
}

/// Runs `f` with `ctx` as the current stack, creating the guards of its
/// `StackContext`s (outermost first) and dropping them (innermost first) on
/// every path, panics included.
///
/// Entering the stack that is already current is a no-op, which is what makes
/// a doubly wrapped callback behave like a singly wrapped one.
#[inline]
pub(crate) fn enter<R>(ctx: &Context, f: impl FnOnce() -> R) -> R {
    // (Under unmade deferred frames the current stack is not `CURRENT`.)
    if ctx.is_current() {
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
            if let FrameKind::Guard(factory, active) = &f.kind {
                if active.as_ref().map_or(true, |a| a.get()) {
                    factories.push(factory.clone());
                }
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
pub(crate) fn route(ctx: &Context, err: Error, origin: Origin, name: &'static str) {
    if let Some(err) = offer(ctx, err) {
        catch::report_unhandled(err, origin, name);
    }
}

/// Offers `err` to the handlers of `ctx`, innermost first; returns it (or the
/// error a handler raised instead) if none handled it.
fn offer(ctx: &Context, mut err: Error) -> Option<Error> {
    let mut frame = ctx.0.clone();
    while let Some(f) = frame {
        if let FrameKind::Exception(handler, active) = &f.kind {
            if active.get() {
                // The handler runs under the contexts outside it, so an error it
                // raises itself travels outward, as in Python's `with` nesting.
                let mut handled = false;
                let outcome = catch::catch(|| {
                    handled = enter(&f.parent, || handler(&err));
                    Ok(())
                });
                match outcome {
                    Ok(()) if handled => return None,
                    Ok(()) => {}
                    Err(raised) => err = raised,
                }
            }
        }
        frame = f.parent.0.clone();
    }
    Some(err)
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
///
/// A guard cannot swallow an error the way a Python context manager's
/// `__exit__` can: to catch errors, use an [`ExceptionStackContext`].
#[derive(Clone)]
pub struct StackContext {
    factory: Factory,
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
        self.run_frame(None, f)
    }

    /// Like [`run`](StackContext::run), and also returns a [`Deactivate`]
    /// that turns this entry of the context off: callbacks captured under it
    /// no longer call the factory once it is deactivated (a run already
    /// under way keeps its guard until it returns). Tornado's
    /// `with StackContext(f) as deactivate`.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use squall::stack_context::{wrap, StackContext};
    ///
    /// let entered = Rc::new(Cell::new(0));
    /// let e = entered.clone();
    /// let ctx = StackContext::new(move || e.set(e.get() + 1));
    /// let (callback, deactivate) = ctx.run_deactivatable(|| wrap(|| ()));
    /// assert_eq!(entered.get(), 1); // the synchronous run
    /// deactivate.deactivate();
    /// callback();
    /// assert_eq!(entered.get(), 1); // not entered again
    /// ```
    pub fn run_deactivatable<R>(&self, f: impl FnOnce() -> R) -> (R, Deactivate) {
        let active = Rc::new(Cell::new(true));
        let value = self.run_frame(Some(active.clone()), f);
        (value, Deactivate(active))
    }

    fn run_frame<R>(&self, active: Option<Rc<Cell<bool>>>, f: impl FnOnce() -> R) -> R {
        let ctx = Context::capture().push(FrameKind::Guard(self.factory.clone(), active));
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
    handler: Handler,
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
        let ctx =
            Context::capture().push(FrameKind::Exception(self.handler.clone(), active.clone()));
        let outcome = {
            let _restore = set_current(ctx.clone());
            catch::catch(|| f().into_outcome())
        };
        if let Err(err) = outcome {
            route(&ctx, err, Origin::Context, std::any::type_name::<R>());
        }
        Deactivate(active)
    }
}

/// An exception context made once and entered again and again: for a
/// server that runs request after request, each under a context of its own
/// (Tornado's per-request `ExceptionStackContext`), where a new frame per
/// request would cost allocations that most requests never need. After a
/// request, [`kept`](Self::kept) says whether a callback it scheduled
/// captured the frame: the frame then stays that request's, and the server
/// makes a new one for the next.
pub(crate) struct ReusableContext {
    ctx: Context,
}

impl ReusableContext {
    /// A frame over the current stack whose errors go to `handler`.
    pub(crate) fn new(handler: impl Fn(&Error) -> bool + 'static) -> ReusableContext {
        let frame = FrameKind::Exception(Rc::new(handler), Rc::new(Cell::new(true)));
        ReusableContext {
            ctx: Context::capture().push(frame),
        }
    }

    /// Whether entering it now is as good as making it now: the stack it
    /// sits on is the current one.
    #[inline]
    pub(crate) fn fits(&self) -> bool {
        self.ctx.0.as_ref().is_some_and(|f| f.parent.is_current())
    }

    /// The frame, if it sits on the current stack (entering it is then as
    /// good as making it now): for entering it lazily (see [`defer`](deferred::defer)).
    #[inline]
    pub(crate) fn frame(&self) -> Option<Context> {
        self.fits().then(|| self.ctx.clone())
    }

    /// Makes the frame current until the returned guard is dropped, so that
    /// callbacks scheduled meanwhile capture it. Only if the stack the frame
    /// sits on is the current one (entering it is then as good as making it
    /// now); `None` otherwise, with nothing changed.
    pub(crate) fn enter(&self) -> Option<Entered> {
        let restore = set_current(self.ctx.clone());
        let fits = match (&self.ctx.0, &restore.0) {
            (Some(frame), Some(prev)) => frame.parent.same(prev),
            _ => false,
        };
        // Not fitting: dropping `restore` puts the old stack back.
        fits.then_some(Entered(restore))
    }

    /// Whether something captured the frame (and may raise into it later).
    #[inline]
    pub(crate) fn kept(&self) -> bool {
        self.ctx.0.as_ref().is_some_and(|f| Rc::strong_count(f) > 1)
    }
}

/// A [`ReusableContext`] entered: current until this is dropped.
pub(crate) struct Entered(#[allow(dead_code)] Restore);

/// Turns one entry of a context off (see [`ExceptionStackContext::run`] and
/// [`StackContext::run_deactivatable`]).
#[derive(Clone, Debug)]
pub struct Deactivate(Rc<Cell<bool>>);

impl Deactivate {
    /// From now on, errors no longer reach this context's handler (for a
    /// `StackContext`: its factory is no longer called). Irreversible.
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
/// For handing a callback to code that does not capture contexts itself (a
/// library's callback list, another object's field). The scheduling APIs of
/// the loop capture by themselves, so `io_loop.add_timeout(t, wrap(f))` is the
/// same as `io_loop.add_timeout(t, f)`: wrapping an already wrapped closure,
/// or running a wrapped closure where its stack is already current, enters
/// nothing twice.
///
/// The wrapped closure behaves like a call of `f` made where it was wrapped:
/// an error `f` returns or panics with goes to the handlers captured by
/// `wrap`. One that none of them handles goes back to the *caller*, as in
/// Tornado: called from inside a callback (or a handler, or
/// [`ExceptionStackContext::run`]), it unwinds into it, so the caller's
/// contexts get their turn; called from plain code outside the loop, it is
/// logged.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use squall::stack_context::{wrap, ExceptionStackContext};
/// use squall::Error;
///
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let handler = |name: &'static str, handled: bool| {
///     let seen = seen.clone();
///     ExceptionStackContext::new(move |_: &Error| {
///         seen.borrow_mut().push(name);
///         handled
///     })
/// };
/// let mut callback = None;
/// handler("application", false).run(|| {
///     callback = Some(wrap(|| Err::<(), _>(Error::other("boom"))));
/// });
/// // A library calls the application's callback from its own context.
/// handler("library", true).run(|| callback.take().unwrap()());
/// assert_eq!(*seen.borrow(), ["application", "library"]);
/// ```
pub fn wrap<R, F>(f: F) -> impl FnOnce() + 'static
where
    R: CallbackReturn,
    F: FnOnce() -> R + 'static,
{
    let ctx = Context::capture();
    move || call_wrapped(&ctx, std::any::type_name::<F>(), || f().into_outcome())
}

/// [`wrap`] for a callback that takes one argument: a result callback such as
/// `FnOnce(Result<String, Error>)`, or several values as a tuple.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use squall::stack_context::{wrap1, ExceptionStackContext};
/// use squall::{Error, IOLoop};
///
/// // A library that keeps a result callback and calls it later.
/// fn lookup(io_loop: &IOLoop, key: u32, callback: impl FnOnce(Option<u32>) + 'static) {
///     io_loop.spawn_callback(move || callback(key.checked_sub(1)));
/// }
///
/// let io_loop = IOLoop::new()?;
/// let failed = Rc::new(Cell::new(false));
/// let f = failed.clone();
/// ExceptionStackContext::new(move |_: &Error| { f.set(true); true }).run(|| {
///     // `spawn_callback` captures no context, so the caller wraps its callback.
///     lookup(&io_loop, 0, wrap1(|value: Option<u32>| value.ok_or(Error::other("not found"))));
/// });
/// let l = io_loop.clone();
/// io_loop.call_later(Duration::from_millis(5), move || l.stop());
/// io_loop.start()?;
/// assert!(failed.get());
/// # Ok::<(), squall::Error>(())
/// ```
pub fn wrap1<A, R, F>(f: F) -> impl FnOnce(A) + 'static
where
    A: 'static,
    R: CallbackReturn,
    F: FnOnce(A) -> R + 'static,
{
    let ctx = Context::capture();
    move |arg| {
        call_wrapped(&ctx, std::any::type_name::<F>(), move || {
            f(arg).into_outcome()
        })
    }
}

/// The body of a wrapped closure: see [`wrap`].
fn call_wrapped(ctx: &Context, name: &'static str, f: impl FnOnce() -> Result<(), Error>) {
    if !catch::in_catch() {
        // Nobody to hand an unhandled error back to: route it, then log it
        // (as `callback::invoke`, a layer up, does for scheduled callbacks).
        if let Err(err) = catch::catch(|| enter(ctx, f)) {
            route(ctx, err, Origin::Callback, name);
        }
        return;
    }
    if ctx.is_current() {
        // Called from inside its own stack: a plain call. The caller is in
        // this very stack and routes what we pass back; routing it here too
        // would offer it to the same handlers twice.
        if let Err(err) = f() {
            catch::unwind(err);
        }
        return;
    }
    if let Err(err) = catch::catch(|| enter(ctx, f)) {
        if let Some(err) = offer(ctx, err) {
            catch::unwind(err);
        }
    }
}

/// Raises `err` from inside a callback, Tornado-style: it unwinds the callback
/// and arrives at the stack context as itself, kind and all.
///
/// Inside a callback (or anything else squall runs and catches) this unwinds
/// without calling the panic hook, so nothing is printed: the error is
/// reported where it lands. Outside, it is an ordinary panic with `err` as
/// the payload.
///
/// A callback whose whole body diverges (`|| raise(err)`, `|| panic!()`)
/// leaves its return type to Rust's never-type fallback, which current
/// compilers reject; name the return type instead:
///
/// ```
/// use squall::stack_context::raise;
/// use squall::{Error, IOLoop};
///
/// let io_loop = IOLoop::new()?;
/// io_loop.add_callback(|| -> Result<(), Error> { raise(Error::other("boom")) });
/// # Ok::<(), squall::Error>(())
/// ```
pub fn raise(err: Error) -> ! {
    if catch::in_catch() {
        catch::unwind(err)
    } else {
        std::panic::panic_any(err)
    }
}
