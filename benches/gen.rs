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
//! Every figure is per step: one coroutine of `iters` steps is timed, its
//! set-up (runner, context, result future) amortised over them.

use criterion::{criterion_group, criterion_main, Criterion};

/// The workloads, shared with `bench/peers` (which includes this file).
pub mod ops {
    use std::hint::black_box;
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
                l.add_callback(move || set.set_result(i).expect("pending"));
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

criterion_group!(benches, gen_steps);
criterion_main!(benches);
