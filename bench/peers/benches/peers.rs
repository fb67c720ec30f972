//! squall and tokio side by side: each criterion group times one operation in
//! both, so one run gives both numbers. `bench/run.sh` runs this pinned and
//! prints the table.
//!
//! | group                    | squall                                  | tokio (current_thread runtime)                    |
//! |--------------------------|-----------------------------------------|---------------------------------------------------|
//! | `add_callback_one`       | a callback re-adding itself: one per loop iteration | a task spawning the next one (`tokio`); `spawn(..).await` from `block_on` (`tokio_spawn_await`) |
//! | `add_callback_batch1024` | 1024 `add_callback`s, then one iteration | 1024 `spawn`s, then await the last              |
//! | `timeout_add_remove_1m`  | `add_timeout` + `remove_timeout`, 1M pending | `sleep_until` created, polled once, dropped, 1M pending |
//! | `remote_add_callback`    | `Remote::add_callback` from another thread | unbounded mpsc `send` of a `u64` from another thread (`tokio`); of a `Box<dyn FnOnce() + Send>`, called on arrival (`tokio_boxed_fn`) |
//! | `remote_channel`         | `RemoteSender::send` of a `u64` from another thread to an `IOLoop::remote_channel` handler | unbounded mpsc `send` of a `u64` from another thread |
//! | `future_set_result`      | `Future::new` + `add_done_callback` + `set_result` | `oneshot::channel` + poll (pending) + `send` + poll (ready) |
//! | `gen_step_pending_future` | one `gen::Runner` step: yield `YieldFuture` of a pending future that an `add_callback` sets | one loop of a spawned task: `oneshot::channel`, `spawn` a task that sends, `.await` the receiver |
//! | `gen_step_ready_future`, `gen_step_ready_task` | one step on an already resolved point (squall only) | - |
//! | `async_step_pending_future` | `gen_step_pending_future` as an `async` block: `.await` a pending future that an `add_callback` sets | as `gen_step_pending_future` |
//! | `async_step_ready_future`, `async_wake_rc`, `async_wake_std_local` | `.await` a ready future; a wake through the `Runner`'s `Rc`; a `std` waker woken on the loop's thread (squall only; see `benches/gen.rs`) | - |
//! | `async_wake_std_remote` | a `std` waker woken from another thread (the `Remote` door), the thread handed each flag through a channel | a task awaiting a `oneshot` whose sender a thread got through a channel |
//! | `echo_64b_100conns`      | one 64-byte echo round trip, 100 connections in flight, `TCPServer` + `IOStream` clients on one loop | the same with `TcpListener`/`TcpStream` tasks (`tokio`); a hand-written mio loop (`mio`) |
//!
//! Every figure is per operation. The squall workloads are the root crate's
//! own (`benches/ioloop.rs` and `benches/gen.rs`, included below), so the
//! benches cannot drift.

use std::hint::black_box;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Sleep;

#[allow(dead_code)]
#[path = "../../../benches/ioloop.rs"]
mod squall_bench;

#[allow(dead_code)]
#[path = "../../../benches/gen.rs"]
mod squall_gen_bench;

#[allow(dead_code)]
#[path = "../../../benches/iostream.rs"]
mod squall_iostream_bench;

use squall_peers::echo;

use squall_bench::ops;
use squall_gen_bench::ops as gen_ops;

/// The tokio side of every group but the echo: a current_thread runtime with
/// its timer and without an I/O driver (none of them does I/O). `enable_all`
/// would add one now that the `net` feature is on (for the echo), and a
/// runtime with an I/O driver polls it every few dozen tasks: an `epoll_wait`
/// that squall's loop, with no fd handler registered, skips too.
fn runtime() -> Runtime {
    Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// A task that spawns the next one, `left` times; the last one reports.
fn tokio_chain(left: u64, done: oneshot::Sender<()>) {
    tokio::spawn(async move {
        if left == 0 {
            let _ = done.send(());
        } else {
            tokio_chain(left - 1, done);
        }
    });
}

fn tokio_spawn_one_at_a_time(rt: &Runtime, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let (tx, rx) = oneshot::channel();
        tokio_chain(iters - 1, tx);
        rx.await.expect("chain ends");
        start.elapsed()
    })
}

fn tokio_spawn_await(rt: &Runtime, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            tokio::spawn(async move {
                black_box(i);
            })
            .await
            .expect("task ran");
        }
        start.elapsed()
    })
}

/// Batches of [`ops::BATCH`] spawned tasks; the runtime runs them in order,
/// so awaiting the last one waits for the batch.
fn tokio_spawn_batched(rt: &Runtime, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let mut left = iters;
        while left > 0 {
            let k = left.min(ops::BATCH);
            let mut last = None;
            for i in 0..k {
                last = Some(tokio::spawn(async move {
                    black_box(i);
                }));
            }
            last.expect("k >= 1").await.expect("task ran");
            left -= k;
        }
        start.elapsed()
    })
}

fn add_callback(c: &mut Criterion) {
    let io_loop = squall::IOLoop::new().expect("loop");
    let rt = runtime();

    let mut g = c.benchmark_group("add_callback_one");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| ops::callbacks_one_at_a_time(&io_loop, iters))
    });
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| tokio_spawn_one_at_a_time(&rt, iters))
    });
    g.bench_function("tokio_spawn_await", |b| {
        b.iter_custom(|iters| tokio_spawn_await(&rt, iters))
    });
    g.finish();

    let mut g = c.benchmark_group("add_callback_batch1024");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| ops::callbacks_batched(&io_loop, iters))
    });
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| tokio_spawn_batched(&rt, iters))
    });
    g.finish();
}

/// Polls `fut` once with a waker that does nothing.
fn poll_once<F: std::future::Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// A current_thread runtime with [`ops::PENDING_TIMEOUTS`] registered sleeps.
struct PendingSleeps {
    rt: Runtime,
    base: tokio::time::Instant,
    sleeps: Vec<Pin<Box<Sleep>>>,
    offsets: ops::Offsets,
}

impl PendingSleeps {
    fn new() -> PendingSleeps {
        let rt = runtime();
        let (base, sleeps) = {
            let _in_rt = rt.enter();
            let base = tokio::time::Instant::now();
            let sleeps = ops::Offsets::new(1)
                .take(ops::PENDING_TIMEOUTS)
                .map(|off| {
                    let mut sleep = Box::pin(tokio::time::sleep_until(base + off));
                    // The first poll registers it with the timer wheel.
                    assert!(poll_once(sleep.as_mut()).is_pending());
                    sleep
                })
                .collect();
            (base, sleeps)
        };
        PendingSleeps {
            rt,
            base,
            sleeps,
            offsets: ops::Offsets::new(2),
        }
    }

    /// `iters` times: create a sleep, poll it once (registering it), drop it
    /// (cancelling it). Stack-pinned, as in an `async fn`.
    fn add_remove(&mut self, iters: u64) -> Duration {
        let _in_rt = self.rt.enter();
        let base = self.base;
        let offsets = &mut self.offsets;
        let start = Instant::now();
        for _ in 0..iters {
            let when = base + offsets.next().expect("endless");
            let sleep = pin!(tokio::time::sleep_until(when));
            black_box(poll_once(sleep).is_pending());
        }
        start.elapsed()
    }
}

impl Drop for PendingSleeps {
    fn drop(&mut self) {
        // The sleeps before their runtime.
        self.sleeps.clear();
    }
}

fn timeouts(c: &mut Criterion) {
    let mut g = c.benchmark_group("timeout_add_remove_1m");
    {
        let mut pending = ops::PendingTimeouts::new();
        g.bench_function("squall", |b| {
            b.iter_custom(|iters| pending.add_remove(iters))
        });
    }
    {
        let mut pending = PendingSleeps::new();
        g.bench_function("tokio", |b| {
            b.iter_custom(|iters| pending.add_remove(iters))
        });
    }
    g.finish();
}

fn remote(c: &mut Criterion) {
    let producer = ops::Producer::spawn();
    let mut g = c.benchmark_group("remote_add_callback");

    let io_loop = squall::IOLoop::new().expect("loop");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| ops::remote_callbacks(&io_loop, &producer, iters))
    });

    let rt = runtime();
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            let n = iters.max(ops::MIN_MESSAGES);
            let tx = tx.clone();
            rt.block_on(async {
                let start = Instant::now();
                producer.run(move || {
                    for i in 0..n {
                        tx.send(i).expect("receiver alive");
                    }
                });
                for _ in 0..n {
                    black_box(rx.recv().await.expect("sender alive"));
                }
                ops::scale(start.elapsed(), iters, n)
            })
        })
    });

    g.finish();

    // Typed values, no closure: `IOLoop::remote_channel` against the same
    // unbounded mpsc of `u64`.
    let mut g = c.benchmark_group("remote_channel");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| ops::remote_channel(&io_loop, &producer, iters))
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            let n = iters.max(ops::MIN_MESSAGES);
            let tx = tx.clone();
            rt.block_on(async {
                let start = Instant::now();
                producer.run(move || {
                    for i in 0..n {
                        tx.send(i).expect("receiver alive");
                    }
                });
                for _ in 0..n {
                    black_box(rx.recv().await.expect("sender alive"));
                }
                ops::scale(start.elapsed(), iters, n)
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("remote_add_callback");
    // What `Remote::add_callback` carries: a boxed closure, called on arrival.
    type Job = Box<dyn FnOnce() + Send>;
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    g.bench_function("tokio_boxed_fn", |b| {
        b.iter_custom(|iters| {
            let n = iters.max(ops::MIN_MESSAGES);
            let tx = tx.clone();
            rt.block_on(async {
                let start = Instant::now();
                producer.run(move || {
                    for i in 0..n {
                        let job: Job = Box::new(move || {
                            black_box(i);
                        });
                        tx.send(job).expect("receiver alive");
                    }
                });
                for _ in 0..n {
                    (rx.recv().await.expect("sender alive"))();
                }
                ops::scale(start.elapsed(), iters, n)
            })
        })
    });
    g.finish();
}

fn future(c: &mut Criterion) {
    let mut g = c.benchmark_group("future_set_result");
    g.bench_function("squall", |b| b.iter_custom(ops::future_set_result));
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let (tx, mut rx) = oneshot::channel::<u64>();
                assert!(poll_once(Pin::new(&mut rx)).is_pending());
                tx.send(i).expect("receiver alive");
                match poll_once(Pin::new(&mut rx)) {
                    Poll::Ready(Ok(v)) => {
                        black_box(v);
                    }
                    _ => unreachable!("sent"),
                }
            }
            start.elapsed()
        })
    });
    g.finish();
}

/// `iters` steps of a spawned task: each makes a oneshot, spawns a task that
/// fills it, and awaits it — a pending future resolved by another task.
fn tokio_pending_oneshot(rt: &Runtime, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        tokio::spawn(async move {
            for i in 0..iters {
                let (tx, rx) = oneshot::channel::<u64>();
                tokio::spawn(async move {
                    let _ = tx.send(i);
                });
                black_box(rx.await.expect("sent"));
            }
        })
        .await
        .expect("task ran");
        start.elapsed()
    })
}

/// `iters` awaits of a `oneshot` filled by another thread, which gets each
/// sender through a channel: `async_wake_std_remote`'s tokio side.
fn tokio_oneshot_from_thread(rt: &Runtime, iters: u64) -> Duration {
    let (tx, rx) = std::sync::mpsc::channel::<oneshot::Sender<u64>>();
    let thread = std::thread::spawn(move || {
        squall_bench::ops::pin_from_env(squall_bench::ops::PRODUCER_CPU_VAR);
        for (i, sender) in rx.into_iter().enumerate() {
            let _ = sender.send(i as u64);
        }
    });
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        tokio::spawn(async move {
            for _ in 0..iters {
                let (sender, receiver) = oneshot::channel::<u64>();
                tx.send(sender).expect("thread alive");
                black_box(receiver.await.expect("sent"));
            }
        })
        .await
        .expect("task ran");
        start.elapsed()
    });
    thread.join().expect("thread");
    elapsed
}

fn pin_producer() {
    squall_bench::ops::pin_from_env(squall_bench::ops::PRODUCER_CPU_VAR);
}

fn async_steps(c: &mut Criterion) {
    let io_loop = squall::IOLoop::new().expect("loop");
    let rt = runtime();
    let mut g = c.benchmark_group("async_step_pending_future");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| gen_ops::async_pending_future(&io_loop, iters))
    });
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| tokio_pending_oneshot(&rt, iters))
    });
    g.finish();

    let mut g = c.benchmark_group("async_step_ready_future");
    g.bench_function("squall", |b| b.iter_custom(gen_ops::async_ready_future));
    g.finish();
    let mut g = c.benchmark_group("async_wake_rc");
    g.bench_function("squall", |b| b.iter_custom(gen_ops::wake_rc));
    g.finish();
    let mut g = c.benchmark_group("async_wake_std_local");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| gen_ops::wake_std_local(&io_loop, iters))
    });
    g.finish();
    let mut g = c.benchmark_group("async_wake_std_remote");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| gen_ops::wake_std_remote(&io_loop, iters, pin_producer))
    });
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| tokio_oneshot_from_thread(&rt, iters))
    });
    g.finish();
}

fn gen_steps(c: &mut Criterion) {
    let io_loop = squall::IOLoop::new().expect("loop");
    let rt = runtime();
    let mut g = c.benchmark_group("gen_step_pending_future");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| gen_ops::pending_future(&io_loop, iters))
    });
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| tokio_pending_oneshot(&rt, iters))
    });
    g.finish();

    let mut g = c.benchmark_group("gen_step_ready_future");
    g.bench_function("squall", |b| b.iter_custom(gen_ops::ready_future));
    g.finish();
    let mut g = c.benchmark_group("gen_step_ready_task");
    g.bench_function("squall", |b| b.iter_custom(gen_ops::ready_task));
    g.finish();
}

fn echo(c: &mut Criterion) {
    let mut g = c.benchmark_group("echo_64b_100conns");
    {
        let pairs = squall_iostream_bench::ops::EchoPairs::new();
        g.bench_function("squall", |b| {
            b.iter_custom(|iters| pairs.round_trips(iters))
        });
    }
    {
        let mut pairs = echo::TokioEcho::new();
        g.bench_function("tokio", |b| b.iter_custom(|iters| pairs.round_trips(iters)));
    }
    {
        let mut pairs = echo::MioEcho::new();
        g.bench_function("mio", |b| b.iter_custom(|iters| pairs.round_trips(iters)));
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

criterion_group! {
    name = peers;
    config = config();
    // Timeouts last: their million pending timers and sleeps leave the
    // heap in a state the others should not inherit.
    targets = add_callback, remote, future, gen_steps, async_steps, echo, timeouts
}
criterion_main!(peers);
