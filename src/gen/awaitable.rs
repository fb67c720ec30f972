//! Yield points as things to `.await`: the same point, started on the same
//! [`Runner`], from an `async` coroutine.
//!
//! ```
//! use std::time::Duration;
//! use squall::gen::{self, ResultCallback, Task};
//! use squall::IOLoop;
//!
//! // Tornado: response = yield gen.Task(method_while)
//! fn method_while(callback: ResultCallback) {
//!     callback.call(1);
//! }
//!
//! let io_loop = IOLoop::new()?;
//! let result = io_loop.run_sync(|| gen::coroutine(async {
//!     let r: i32 = Task::new(method_while).await?.downcast()?;
//!     gen::sleep(Duration::from_millis(1)).await?;
//!     gen::moment().await?;
//!     Ok(format!("response {r}"))
//! }), None)?;
//! assert_eq!(result, "response 1");
//! # Ok::<(), squall::Error>(())
//! ```

use std::future::{Future as StdFuture, IntoFuture};
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::points::{Callback, Multi, MultiKeyed, Next, Task, Wait, WaitAll, YieldFuture};
use super::{Key, ResultCallback, Runner, Value, YieldPoint};
use crate::callback;
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::{IOLoop, TimeoutHandle};

/// A yield point being awaited: what `point.await` runs.
///
/// Inside a [`gen::coroutine`](super::coroutine) the point is started on
/// the coroutine's own [`Runner`], exactly as if a generator had yielded
/// it: its keys are the runner's, and their results wake the coroutine.
/// Dropped before it is ready (the coroutine was dropped, or a `select`
/// chose another branch), it gives its keys up and drops the point, which
/// is how a [`Sleep`] removes its timeout. Awaited anywhere else (another
/// executor, a combinator with wakers of its own), the point runs in a
/// small coroutine of its own and this awaits that coroutine's future.
pub struct PointFuture<P> {
    point: Option<P>,
    state: State,
}

enum State {
    Unstarted,
    Started { runner: Runner, keys: Vec<Key> },
    Alone(Future<Value>),
    Done,
}

// The point is never pinned: it is moved only before it starts, and polled
// through `&mut` like any value.
impl<P> Unpin for PointFuture<P> {}

impl<P: YieldPoint> PointFuture<P> {
    /// Awaits `point`.
    pub fn new(point: P) -> PointFuture<P> {
        PointFuture {
            point: Some(point),
            state: State::Unstarted,
        }
    }

    /// Ends the await with `result`, giving up the keys if it failed.
    fn finish(
        &mut self,
        result: Result<Value, Error>,
        keep_keys: bool,
    ) -> Poll<Result<Value, Error>> {
        if let State::Started { runner, keys } = std::mem::replace(&mut self.state, State::Done) {
            if !keep_keys {
                keys.iter().for_each(|key| runner.cancel(key));
            }
        }
        Poll::Ready(result)
    }
}

impl<P: YieldPoint> StdFuture for PointFuture<P> {
    type Output = Result<Value, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Unstarted => {
                    let Some(runner) = Runner::polling(cx.waker()) else {
                        let point = this.point.take().expect("point present until started");
                        let future = super::coroutine(super::once(point));
                        this.state = State::Alone(future);
                        continue;
                    };
                    let point = this.point.as_mut().expect("point present until started");
                    let (started, keys) =
                        runner.recording_keys(|| callback::catch_value(|| point.start(&runner)));
                    this.state = State::Started { runner, keys };
                    if let Ok(Err(err)) | Err(err) = started {
                        return this.finish(Err(err), false);
                    }
                }
                State::Started { runner, .. } => {
                    let point = this.point.as_mut().expect("point present while started");
                    return match callback::catch_value(|| point.is_ready(runner)) {
                        Ok(false) => Poll::Pending,
                        Ok(true) => {
                            let result =
                                callback::catch_value(|| point.get_result(runner)).and_then(|r| r);
                            this.finish(result, true)
                        }
                        Err(err) => this.finish(Err(err), false),
                    };
                }
                State::Alone(future) => {
                    let polled = Pin::new(future).poll(cx);
                    if polled.is_ready() {
                        this.state = State::Done;
                    }
                    return polled;
                }
                State::Done => {
                    return Poll::Ready(Err(Error::new(
                        ErrorKind::InvalidState,
                        "a yield point was awaited again after it finished",
                    )))
                }
            }
        }
    }
}

impl<P> Drop for PointFuture<P> {
    fn drop(&mut self) {
        if let State::Started { runner, keys } = std::mem::replace(&mut self.state, State::Done) {
            keys.iter().for_each(|key| runner.cancel(key));
        }
        // The point itself (say a `Sleep` with its timeout) drops after this.
    }
}

/// Makes yield points awaitable: `point.await` is a [`PointFuture`].
macro_rules! awaitable_points {
    ($($point:ty),* $(,)?) => {$(
        impl IntoFuture for $point {
            type Output = Result<Value, Error>;
            type IntoFuture = PointFuture<$point>;
            fn into_future(self) -> PointFuture<$point> {
                PointFuture::new(self)
            }
        }
    )*};
}

awaitable_points!(Task, Callback, Wait, WaitAll, Multi, Sleep);

impl<K: Hash + Eq + 'static> IntoFuture for MultiKeyed<K> {
    type Output = Result<Value, Error>;
    type IntoFuture = PointFuture<MultiKeyed<K>>;
    fn into_future(self) -> PointFuture<MultiKeyed<K>> {
        PointFuture::new(self)
    }
}

/// Awaiting a [`WaitIterator`](super::WaitIterator)'s next gives
/// `(index, value)`, typed.
impl<T: 'static> IntoFuture for Next<T> {
    type Output = Result<(usize, T), Error>;
    type IntoFuture = Typed<PointFuture<Next<T>>, (usize, T)>;
    fn into_future(self) -> Self::IntoFuture {
        Typed {
            inner: PointFuture::new(self),
            _out: PhantomData,
        }
    }
}

/// A point's [`Value`] downcast to `O` when it is ready (what awaiting a
/// typed point, like [`Next`], runs).
pub struct Typed<F, O> {
    inner: F,
    _out: PhantomData<fn() -> O>,
}

impl<F: StdFuture<Output = Result<Value, Error>> + Unpin, O: 'static> StdFuture for Typed<F, O> {
    type Output = Result<O, Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner)
            .poll(cx)
            .map(|value| value.and_then(Value::downcast))
    }
}

/// Awaiting a `YieldFuture` awaits its [`Future`], typed.
impl<T: 'static> IntoFuture for YieldFuture<T> {
    type Output = Result<T, Error>;
    type IntoFuture = Future<T>;
    fn into_future(self) -> Future<T> {
        self.into_inner()
    }
}

/// A point that resumes the generator after `delay` on the current loop
/// (Tornado's `gen.sleep`); the result is `()`. Returned by [`sleep`](super::sleep).
///
/// Dropped before it fires (an `async` coroutine dropped mid-sleep, or a
/// generator that moved on after an error was thrown in), it removes its
/// timeout from the loop: nothing is left pending.
pub struct Sleep {
    delay: Duration,
    key: Option<Key>,
    timer: Option<(IOLoop, TimeoutHandle)>,
}

impl Sleep {
    pub(crate) fn new(delay: Duration) -> Sleep {
        Sleep {
            delay,
            key: None,
            timer: None,
        }
    }
}

impl YieldPoint for Sleep {
    fn start(&mut self, runner: &Runner) -> Result<(), Error> {
        let key = runner.fresh_key();
        runner.register_callback(key.clone())?;
        let cb: ResultCallback = runner.result_callback(key.clone());
        let io_loop = IOLoop::current();
        let handle = io_loop.call_later(self.delay, move || cb.call(()));
        self.timer = Some((io_loop, handle));
        self.key = Some(key);
        Ok(())
    }

    fn is_ready(&self, runner: &Runner) -> bool {
        self.key
            .as_ref()
            .is_some_and(|key| runner.is_ready(key).unwrap_or(true))
    }

    fn get_result(&mut self, runner: &Runner) -> Result<Value, Error> {
        // It fired: nothing to remove.
        self.timer = None;
        runner.pop_result(self.key.as_ref().expect("Sleep not started"))
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((io_loop, handle)) = self.timer.take() {
            io_loop.remove_timeout(handle);
        }
    }
}

/// Awaits `future` for at most `delay`; past it, the future is **dropped**
/// (what it was awaiting is given up: its timeouts removed, its keys
/// cancelled) and the result is an error of kind [`ErrorKind::Timeout`]:
/// asyncio's `wait_for`, tokio's `time::timeout`. (Tornado's
/// [`with_timeout`](super::with_timeout) leaves the operation running
/// instead; it is there too, for yield points.)
///
/// ```
/// use std::time::Duration;
/// use squall::{gen, ErrorKind, IOLoop};
///
/// let io_loop = IOLoop::new()?;
/// let err = io_loop.run_sync(|| gen::coroutine(async {
///     gen::timeout(Duration::from_millis(5), async {
///         gen::sleep(Duration::from_secs(3600)).await?;
///         Ok(())
///     }).await
/// }), None).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Timeout);
/// # Ok::<(), squall::Error>(())
/// ```
pub fn timeout<T, F>(delay: Duration, future: F) -> Timeout<F>
where
    F: StdFuture<Output = Result<T, Error>>,
{
    Timeout {
        future: Some(Box::pin(future)),
        sleep: PointFuture::new(Sleep::new(delay)),
        delay,
    }
}

/// The future of [`timeout`].
pub struct Timeout<F> {
    future: Option<Pin<Box<F>>>,
    sleep: PointFuture<Sleep>,
    delay: Duration,
}

impl<T, F: StdFuture<Output = Result<T, Error>>> StdFuture for Timeout<F> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(future) = this.future.as_mut() else {
            return Poll::Ready(Err(Error::new(
                ErrorKind::InvalidState,
                "a timeout was awaited again after it finished",
            )));
        };
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            this.future = None;
            return Poll::Ready(output);
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(slept) => {
                // Give the operation up now, not when the Timeout is dropped.
                this.future = None;
                Poll::Ready(Err(slept.err().unwrap_or_else(|| {
                    Error::new(
                        ErrorKind::Timeout,
                        format!("timed out after {:?}", this.delay),
                    )
                })))
            }
        }
    }
}
