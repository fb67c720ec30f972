//! Cost of one `gen::Runner` step: the generator resumed with the result of
//! the point it yielded, and starting the next one.
//!
//! `cargo bench --bench gen` runs them alone. `bench/run.sh` runs the same
//! workloads (this file is included by `bench/peers` as a module) next to
//! tokio's nearest equivalent and prints a table.
//!
//! * `gen_step_ready_future`: the generator yields
//!   `YieldFuture::new(Future::ready(i))`, already resolved: no loop turns.
//! * `gen_step_ready_task`: it yields a `Task` whose function calls its
//!   callback at once: a fresh key, registered, resolved and popped per step.
//! * `gen_step_pending_future`: it makes a pending `Future`, has
//!   `io_loop.add_callback` set it, and yields `YieldFuture::new(f)`; the loop
//!   runs, one callback per step — the shape of real coroutine code.
//!
//! * `async_step_pending_future`: `gen_step_pending_future` written as an
//!   `async` block: each step makes a pending `Future`, has
//!   `io_loop.add_callback` set it, and `.await`s it.
//! * `async_step_ready_future`: the block `.await`s `Future::ready(i)`:
//!   no suspension, no loop turns.
//!
//! What a wake costs, path by path (each op: one suspension, one wake, one
//! poll that makes the next thing to wait for):
//!
//! * `async_wake_rc`: a squall `Future` the block awaits is completed by
//!   plain code on the loop's thread: it wakes the coroutine's `Runner`
//!   through its `Rc`, at once, without the loop.
//! * `async_wake_std_local`: the block awaits a foreign future holding a
//!   `std` `Waker`, which a loop callback wakes (on the loop's thread: the
//!   coroutine is queued and polled on the next iteration).
//! * `async_wake_std_remote`: the same waker woken from another thread:
//!   through the loop's `Remote` door (a ping-pong: the thread waits for
//!   each waker the coroutine hands it).
//!
//! Every figure is per step: one coroutine of `iters` steps is timed, its
//! set-up (runner, context, result future) amortised over them.

use criterion::{criterion_group, criterion_main, Criterion};

/// The workloads, shared with `bench/peers` (which includes this file).
pub mod ops {
    use std::cell::{Cell, RefCell};
    use std::hint::black_box;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::sync::{mpsc, Arc, Mutex};
    use std::task::{Context, Poll, Waker};
    use std::time::{Duration, Instant};

    use squall::gen::{self, ResultCallback, Resume, Step, Task, YieldFuture};
    use squall::{Future, IOLoop};

    /// What the generators count with: steps left to take.
    struct Left(u64);

    /// The step all the generators share: check the value they were resumed
    /// with, then yield `next(i)` while steps are left, else return.
    fn step(left: &mut Left, input: Resume, next: impl FnOnce(u64) -> Step<u64>) -> Step<u64> {
        match input {
            Resume::Start => {}
            Resume::Value(v) => {
                black_box(v.downcast::<u64>().expect("a u64"));
            }
            Resume::Error(err) => return Step::Return(Err(err)),
        }
        if left.0 == 0 {
            return Step::Return(Ok(0));
        }
        left.0 -= 1;
        next(left.0)
    }

    /// `iters` steps, each yielding an already resolved future.
    pub fn ready_future(iters: u64) -> Duration {
        let start = Instant::now();
        let result = gen::coroutine(gen::from_fn(Left(iters), |left, input| {
            step(left, input, |i| YieldFuture::new(Future::ready(i)).into())
        }));
        let elapsed = start.elapsed();
        result.result().expect("generator finished");
        elapsed
    }

    /// `iters` steps, each yielding a `Task` that calls back at once.
    pub fn ready_task(iters: u64) -> Duration {
        let start = Instant::now();
        let result = gen::coroutine(gen::from_fn(Left(iters), |left, input| {
            step(left, input, |i| {
                Task::new(move |cb: ResultCallback| cb.call(i)).into()
            })
        }));
        let elapsed = start.elapsed();
        result.result().expect("generator finished");
        elapsed
    }

    /// `iters` steps on a running loop, each yielding a pending future that
    /// a callback (added by the step itself) resolves on the next iteration.
    pub fn pending_future(io_loop: &IOLoop, iters: u64) -> Duration {
        let start = Instant::now();
        let l = io_loop.clone();
        let result = gen::coroutine(gen::from_fn(Left(iters), move |left, input| {
            step(left, input, |i| {
                let f = Future::<u64>::new();
                let set = f.clone();
                l.add_callback(move || set.set_result(i));
                YieldFuture::new(f).into()
            })
        }));
        let l = io_loop.clone();
        result.add_done_callback(move |_: &Future<u64>| l.stop());
        io_loop.start().expect("loop runs");
        let elapsed = start.elapsed();
        result.result().expect("generator finished");
        elapsed
    }

    /// Runs the loop until `result` is done; the time since `start`.
    fn run_until<T: Clone + 'static>(
        io_loop: &IOLoop,
        result: &Future<T>,
        start: Instant,
    ) -> Duration {
        let l = io_loop.clone();
        result.add_done_callback(move |_: &Future<T>| l.stop());
        if !result.done() {
            io_loop.start().expect("loop runs");
        }
        let elapsed = start.elapsed();
        result.result().expect("coroutine finished");
        elapsed
    }

    /// `pending_future` as an `async` block: `iters` awaits of a pending
    /// future that a callback (added by the step) resolves on the next
    /// iteration.
    pub fn async_pending_future(io_loop: &IOLoop, iters: u64) -> Duration {
        // The coroutine's wakers find the loop as the current one.
        io_loop.make_current();
        let start = Instant::now();
        let l = io_loop.clone();
        let result = gen::coroutine(async move {
            for i in 0..iters {
                let f = Future::<u64>::new();
                let set = f.clone();
                l.add_callback(move || set.set_result(i));
                black_box(f.await?);
            }
            Ok(0u64)
        });
        run_until(io_loop, &result, start)
    }

    /// `iters` awaits of an already resolved future.
    pub fn async_ready_future(iters: u64) -> Duration {
        let start = Instant::now();
        let result = gen::coroutine(async move {
            for i in 0..iters {
                black_box(Future::ready(i).await?);
            }
            Ok(0u64)
        });
        let elapsed = start.elapsed();
        result.result().expect("coroutine finished");
        elapsed
    }

    /// `iters` wakes through the `Rc` path: the block awaits a pending
    /// future it left in `slot`; this loop (plain code, no IOLoop) takes it
    /// and completes it, which polls the block at once, which leaves the
    /// next one.
    pub fn wake_rc(iters: u64) -> Duration {
        let slot: Rc<RefCell<Option<Future<u64>>>> = Rc::default();
        let start = Instant::now();
        let s = slot.clone();
        let result = gen::coroutine(async move {
            for _ in 0..iters {
                let f = Future::<u64>::new();
                *s.borrow_mut() = Some(f.clone());
                black_box(f.await?);
            }
            Ok(0u64)
        });
        let mut i = 0;
        loop {
            let next = slot.borrow_mut().take();
            let Some(f) = next else { break };
            f.set_result(i);
            i += 1;
        }
        let elapsed = start.elapsed();
        result.result().expect("coroutine finished");
        elapsed
    }

    /// A foreign (non-squall) future on the loop's thread: ready once
    /// `set`, waking the `std` waker it was polled with.
    #[derive(Clone, Default)]
    struct LocalFlag(Rc<(Cell<bool>, RefCell<Option<Waker>>)>);

    impl LocalFlag {
        fn set(&self) {
            self.0 .0.set(true);
            let waker = self.0 .1.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    impl std::future::Future for LocalFlag {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 .0.get() {
                return Poll::Ready(());
            }
            *self.0 .1.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// `iters` wakes through a `std` waker on the loop's thread: each step
    /// has a callback set a foreign future and wake its waker (queued:
    /// polled on the next iteration), the shape of `async_pending_future`.
    pub fn wake_std_local(io_loop: &IOLoop, iters: u64) -> Duration {
        // The coroutine's wakers find the loop as the current one.
        io_loop.make_current();
        let start = Instant::now();
        let l = io_loop.clone();
        let result = gen::coroutine(async move {
            for _ in 0..iters {
                let flag = LocalFlag::default();
                let set = flag.clone();
                l.add_callback(move || set.set());
                flag.await;
            }
            Ok(0u64)
        });
        run_until(io_loop, &result, start)
    }

    /// The thread-safe flag `wake_std_remote` waits on.
    #[derive(Clone, Default)]
    struct RemoteFlag(Arc<Mutex<(bool, Option<Waker>)>>);

    impl std::future::Future for RemoteFlag {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut state = self.0.lock().expect("flag");
            if state.0 {
                return Poll::Ready(());
            }
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// `iters` wakes from another thread: the block hands a flag to a
    /// thread (started with `pin`, to place it on a CPU of its own), which
    /// sets it and wakes the waker: through the loop's `Remote` door.
    pub fn wake_std_remote(io_loop: &IOLoop, iters: u64, pin: fn()) -> Duration {
        // The coroutine's waker takes the current loop's `Remote`.
        io_loop.make_current();
        let (tx, rx) = mpsc::channel::<RemoteFlag>();
        let thread = std::thread::spawn(move || {
            pin();
            for flag in rx {
                let waker = {
                    let mut state = flag.0.lock().expect("flag");
                    state.0 = true;
                    state.1.take()
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
        });
        let start = Instant::now();
        let result = gen::coroutine(async move {
            for _ in 0..iters {
                let flag = RemoteFlag::default();
                tx.send(flag.clone()).expect("thread alive");
                flag.await;
            }
            Ok(0u64)
        });
        let elapsed = run_until(io_loop, &result, start);
        thread.join().expect("thread");
        elapsed
    }
}

fn gen_steps(c: &mut Criterion) {
    let mut g = c.benchmark_group("gen_step_ready_future");
    g.bench_function("squall", |b| b.iter_custom(ops::ready_future));
    g.finish();

    let mut g = c.benchmark_group("gen_step_ready_task");
    g.bench_function("squall", |b| b.iter_custom(ops::ready_task));
    g.finish();

    let io_loop = squall::IOLoop::new().expect("loop");
    let mut g = c.benchmark_group("gen_step_pending_future");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| ops::pending_future(&io_loop, iters))
    });
    g.finish();
}

fn async_steps(c: &mut Criterion) {
    let io_loop = squall::IOLoop::new().expect("loop");
    let mut g = c.benchmark_group("async_step_pending_future");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| ops::async_pending_future(&io_loop, iters))
    });
    g.finish();

    let mut g = c.benchmark_group("async_step_ready_future");
    g.bench_function("squall", |b| b.iter_custom(ops::async_ready_future));
    g.finish();

    let mut g = c.benchmark_group("async_wake_rc");
    g.bench_function("squall", |b| b.iter_custom(ops::wake_rc));
    g.finish();

    let mut g = c.benchmark_group("async_wake_std_local");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| ops::wake_std_local(&io_loop, iters))
    });
    g.finish();

    let mut g = c.benchmark_group("async_wake_std_remote");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| ops::wake_std_remote(&io_loop, iters, || {}))
    });
    g.finish();
}

criterion_group!(benches, gen_steps, async_steps);
criterion_main!(benches);
