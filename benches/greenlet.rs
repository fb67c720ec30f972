//! Cost of greenlet-style coroutines (feature `stackful`), next to the
//! explicit-continuation Runner doing the same round trip.
//!
//! `cargo bench --features stackful --bench greenlet`
//!
//! * `switch/raw_corosensei`: a bare corosensei resume + suspend, the floor.
//! * `switch/stackful_by_hand`: a `gen::stackful` generator resumed by hand
//!   (no Runner): into the child and back, with squall's per-stack state
//!   swapped both ways; the point is zero-sized (its box does not allocate).
//! * `switch/stackful_by_hand_yield_future`: the same, yielding a
//!   `YieldFuture` of a fresh ready future (two allocations, freed each time).
//! * `round_trip/*`: one coroutine start to finish that waits once on a
//!   future — already done (`ready`), or completed by hand after the
//!   coroutine parked on it (`pending`). `runner_hand_written` is a
//!   `gen::from_fn` state machine yielding `YieldFuture`;
//!   `runner_stackful` is `gen::coroutine(gen::stackful(..))` yielding the
//!   same point; `async_call_method` is `greenlet::spawn(|| wait(f))`, which
//!   does not switch at all for a done future.
//!
//! Every figure is per operation; stacks come from the pool after the first.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use squall::gen::{self, Generator, Resume, Runner, Step, Value, YieldFuture, YieldPoint};
use squall::{greenlet, Error, Future};

/// A point that is never started by these benches: the by-hand driver drops
/// it. Zero-sized, so boxing it does not allocate.
struct Nothing;

impl YieldPoint for Nothing {
    fn start(&mut self, _: &Runner) -> Result<(), Error> {
        Ok(())
    }
    fn is_ready(&self, _: &Runner) -> bool {
        true
    }
    fn get_result(&mut self, _: &Runner) -> Result<Value, Error> {
        Ok(Value::unit())
    }
}

fn switch(c: &mut Criterion) {
    let mut group = c.benchmark_group("switch");
    group.bench_function("raw_corosensei", |b| {
        let mut co = corosensei::Coroutine::<u64, u64, ()>::new(|yielder, mut x| loop {
            x = yielder.suspend(x + 1);
        });
        let mut i = 0u64;
        b.iter(|| {
            i = match co.resume(black_box(i)) {
                corosensei::CoroutineResult::Yield(v) => v,
                corosensei::CoroutineResult::Return(()) => unreachable!(),
            };
        });
    });
    group.bench_function("stackful_by_hand", |b| {
        let mut gen = gen::stackful(|co| loop {
            black_box(co.yield_point(Nothing)?);
        });
        let _: Step<()> = gen.resume(Resume::Start);
        b.iter(|| match gen.resume(Resume::Value(Value::unit())) {
            Step::Yield(point) => black_box(point),
            Step::Return(_) => unreachable!(),
        });
    });
    group.bench_function("stackful_by_hand_yield_future", |b| {
        let mut gen = gen::stackful(|co| loop {
            black_box(co.yield_point(YieldFuture::new(Future::ready(1u64)))?);
        });
        let _: Step<()> = gen.resume(Resume::Start);
        b.iter(|| match gen.resume(Resume::Value(Value::unit())) {
            Step::Yield(point) => black_box(point),
            Step::Return(_) => unreachable!(),
        });
    });
    group.finish();
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    group.bench_function("ready/runner_hand_written", |b| {
        b.iter(|| {
            let f = gen::coroutine(gen::from_fn((), |_, input| match input {
                Resume::Start => YieldFuture::new(Future::ready(black_box(1u64))).into(),
                Resume::Value(v) => Step::Return(v.downcast::<u64>()),
                Resume::Error(err) => Step::Return(Err(err)),
            }));
            black_box(f.result().unwrap())
        });
    });
    group.bench_function("ready/runner_stackful", |b| {
        b.iter(|| {
            let f = gen::coroutine(gen::stackful(|co| {
                co.yield_point(YieldFuture::new(Future::ready(black_box(1u64))))?
                    .downcast::<u64>()
            }));
            black_box(f.result().unwrap())
        });
    });
    group.bench_function("ready/async_call_method", |b| {
        b.iter(|| {
            let f = greenlet::async_call_method(|| greenlet::wait(Future::ready(black_box(1u64))));
            black_box(f.result().unwrap())
        });
    });
    group.bench_function("pending/runner_hand_written", |b| {
        b.iter(|| {
            let pending = Future::<u64>::new();
            let p = pending.clone();
            let f = gen::coroutine(gen::from_fn(Some(p), |p, input| match input {
                Resume::Start => YieldFuture::new(p.take().unwrap()).into(),
                Resume::Value(v) => Step::Return(v.downcast::<u64>()),
                Resume::Error(err) => Step::Return(Err(err)),
            }));
            pending.set_result(black_box(1));
            black_box(f.result().unwrap())
        });
    });
    group.bench_function("pending/async_call_method", |b| {
        b.iter(|| {
            let pending = Future::<u64>::new();
            let p = pending.clone();
            let f = greenlet::async_call_method(move || greenlet::wait(p));
            pending.set_result(black_box(1));
            black_box(f.result().unwrap())
        });
    });
    group.finish();
}

criterion_group!(benches, switch, round_trip);
criterion_main!(benches);
