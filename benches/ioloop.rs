//! Micro-benchmarks of squall's hot paths, per operation.
//!
//! `cargo bench --bench ioloop` runs them alone. `bench/run.sh` runs the same
//! workloads (this file is included by `bench/peers` as a module) side by side
//! with their tokio counterparts, pinned to cores, and prints a table.
//!
//! Every benchmark reports the time of *one* operation: one callback, one
//! timeout added and removed, one message, one future completed. Loops, timers
//! and threads are set up outside the timed region (`iter_custom`).
//!
//! Closures capture a `u64` where the operation carries data (callbacks,
//! timeouts, remote callbacks), so they cost the heap allocation a real
//! callback costs; a zero-sized closure would be boxed for free.

use criterion::{criterion_group, criterion_main, Criterion};

/// The workloads, shared with `bench/peers` (which includes this file).
pub mod ops {
    use std::hint::black_box;
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use squall::{Future, IOLoop, TimeoutHandle};

    /// Callbacks added before one loop iteration runs them all.
    pub const BATCH: u64 = 1024;
    /// Timeouts pending while one is added and removed.
    pub const PENDING_TIMEOUTS: usize = 1_000_000;
    /// Messages per timed run of the cross-thread benchmark, at least: the
    /// hand-off to the producer thread is then a negligible share.
    pub const MIN_MESSAGES: u64 = 20_000;

    /// Environment variable naming the CPU the producer thread pins itself to.
    pub const PRODUCER_CPU_VAR: &str = "SQUALL_BENCH_PRODUCER_CPU";

    /// One callback per loop iteration: a callback that re-adds itself
    /// `iters - 1` times, the last one stopping the loop.
    pub fn callbacks_one_at_a_time(io_loop: &IOLoop, iters: u64) -> Duration {
        fn chain(io_loop: &IOLoop, left: u64) {
            let l = io_loop.clone();
            io_loop.add_callback(move || {
                if left == 0 {
                    l.stop();
                } else {
                    chain(&l, left - 1);
                }
            });
        }
        let start = Instant::now();
        chain(io_loop, iters - 1);
        io_loop.start().expect("loop runs");
        start.elapsed()
    }

    /// Batches of [`BATCH`] callbacks added, then run by one iteration
    /// (the batch's last callback stops the loop).
    pub fn callbacks_batched(io_loop: &IOLoop, iters: u64) -> Duration {
        let start = Instant::now();
        let mut left = iters;
        while left > 0 {
            let k = left.min(BATCH);
            for i in 0..k - 1 {
                io_loop.add_callback(move || {
                    black_box(i);
                });
            }
            let l = io_loop.clone();
            io_loop.add_callback(move || l.stop());
            io_loop.start().expect("loop runs");
            left -= k;
        }
        start.elapsed()
    }

    /// A cheap, repeatable stream of far-future offsets: uniform in [1 h, 2 h),
    /// at microsecond resolution, so deadlines interleave with pending ones.
    #[derive(Clone)]
    pub struct Offsets(u64);

    impl Offsets {
        /// The stream from `seed`.
        pub fn new(seed: u64) -> Offsets {
            Offsets(seed | 1)
        }
    }

    impl Iterator for Offsets {
        type Item = Duration;
        #[inline]
        fn next(&mut self) -> Option<Duration> {
            // xorshift64
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            Some(Duration::from_secs(3600) + Duration::from_micros(self.0 % 3_600_000_000))
        }
    }

    /// A loop with [`PENDING_TIMEOUTS`] far-future timeouts pending.
    pub struct PendingTimeouts {
        /// The loop.
        pub io_loop: IOLoop,
        /// What the timed adds use as "now".
        pub base: Instant,
        /// Kept so that nothing can drop the pending timeouts.
        pub handles: Vec<TimeoutHandle>,
        offsets: Offsets,
    }

    impl PendingTimeouts {
        /// Adds the pending timeouts (slow: call it outside the timed region).
        pub fn new() -> PendingTimeouts {
            let io_loop = IOLoop::new().expect("loop");
            let base = io_loop.time();
            let handles = Offsets::new(1)
                .take(PENDING_TIMEOUTS)
                .map(|off| io_loop.add_timeout(base + off, || ()))
                .collect();
            PendingTimeouts {
                io_loop,
                base,
                handles,
                offsets: Offsets::new(2),
            }
        }

        /// `iters` times: add a far-future timeout, then remove it.
        pub fn add_remove(&mut self, iters: u64) -> Duration {
            let (io_loop, base) = (&self.io_loop, self.base);
            let offsets = &mut self.offsets;
            let start = Instant::now();
            for i in 0..iters {
                let when = base + offsets.next().expect("endless");
                let handle = io_loop.add_timeout(when, move || {
                    black_box(i);
                });
                io_loop.remove_timeout(handle);
            }
            start.elapsed()
        }
    }

    impl Default for PendingTimeouts {
        fn default() -> Self {
            PendingTimeouts::new()
        }
    }

    type Job = Box<dyn FnOnce() + Send>;

    /// A long-lived thread that runs jobs sent to it: the cross-thread
    /// sender, created once so thread start-up is never timed. It pins
    /// itself to the CPU named by [`PRODUCER_CPU_VAR`], if set.
    pub struct Producer {
        jobs: Option<mpsc::Sender<Job>>,
        thread: Option<thread::JoinHandle<()>>,
    }

    impl Producer {
        /// Starts the thread.
        pub fn spawn() -> Producer {
            let (jobs, rx) = mpsc::channel::<Job>();
            let thread = thread::Builder::new()
                .name("bench-producer".into())
                .spawn(move || {
                    pin_from_env(PRODUCER_CPU_VAR);
                    for job in rx {
                        job();
                    }
                })
                .expect("spawn producer");
            Producer {
                jobs: Some(jobs),
                thread: Some(thread),
            }
        }

        /// Hands `job` to the thread; returns at once.
        pub fn run(&self, job: impl FnOnce() + Send + 'static) {
            self.jobs
                .as_ref()
                .expect("running")
                .send(Box::new(job))
                .expect("producer alive");
        }
    }

    impl Drop for Producer {
        fn drop(&mut self) {
            drop(self.jobs.take());
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    /// Pins the calling thread to the CPU number in environment variable
    /// `var`, if it is set; complains (once per call) if that fails.
    pub fn pin_from_env(var: &str) {
        let Some(cpu) = std::env::var(var)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
        else {
            return;
        };
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the call only
        // reads it.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if rc != 0 {
            eprintln!(
                "bench: cannot pin to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    /// Scales a run of `ran` operations to the `iters` criterion asked for.
    pub fn scale(elapsed: Duration, iters: u64, ran: u64) -> Duration {
        let nanos = elapsed.as_nanos() * u128::from(iters) / u128::from(ran);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// `Remote::add_callback` from the producer thread: it sends at least
    /// [`MIN_MESSAGES`] callbacks, then a stop; the loop runs until the stop.
    /// Timed on the loop's side, from the hand-off to the last callback.
    pub fn remote_callbacks(io_loop: &IOLoop, producer: &Producer, iters: u64) -> Duration {
        let n = iters.max(MIN_MESSAGES);
        let remote = io_loop.remote();
        let start = Instant::now();
        producer.run(move || {
            for i in 0..n {
                remote
                    .add_callback(move || {
                        black_box(i);
                    })
                    .expect("loop open");
            }
            remote.stop().expect("loop open");
        });
        io_loop.start().expect("loop runs");
        scale(start.elapsed(), iters, n)
    }

    /// `RemoteSender::send` of a `u64` from the producer thread to a handler
    /// made by `IOLoop::remote_channel`: the same hand-off as
    /// [`remote_callbacks`] without a boxed closure per message.
    pub fn remote_channel(io_loop: &IOLoop, producer: &Producer, iters: u64) -> Duration {
        let n = iters.max(MIN_MESSAGES);
        let l = io_loop.clone();
        let mut left = n;
        let tx = io_loop.remote_channel(move |i: u64| {
            black_box(i);
            left -= 1;
            if left == 0 {
                l.stop();
            }
        });
        let start = Instant::now();
        producer.run(move || {
            for i in 0..n {
                tx.send(i).expect("loop open");
            }
        });
        io_loop.start().expect("loop runs");
        scale(start.elapsed(), iters, n)
    }

    /// Create a future, add one done-callback, set its result (which runs
    /// the callback).
    pub fn future_set_result(iters: u64) -> Duration {
        let start = Instant::now();
        for i in 0..iters {
            let future = Future::<u64>::new();
            future.add_done_callback(|f: &Future<u64>| {
                black_box(f.take_result().ok());
            });
            future.set_result(i);
        }
        start.elapsed()
    }
}

fn add_callback(c: &mut Criterion) {
    let io_loop = squall::IOLoop::new().expect("loop");
    let mut g = c.benchmark_group("add_callback_one");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| ops::callbacks_one_at_a_time(&io_loop, iters))
    });
    g.finish();
    let mut g = c.benchmark_group("add_callback_batch1024");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| ops::callbacks_batched(&io_loop, iters))
    });
    g.finish();
}

fn timeouts(c: &mut Criterion) {
    let mut pending = ops::PendingTimeouts::new();
    let mut g = c.benchmark_group("timeout_add_remove_1m");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| pending.add_remove(iters))
    });
    g.finish();
}

fn remote(c: &mut Criterion) {
    let io_loop = squall::IOLoop::new().expect("loop");
    let producer = ops::Producer::spawn();
    let mut g = c.benchmark_group("remote_add_callback");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| ops::remote_callbacks(&io_loop, &producer, iters))
    });
    g.finish();
    let mut g = c.benchmark_group("remote_channel");
    g.bench_function("squall", |b| {
        b.iter_custom(|iters| ops::remote_channel(&io_loop, &producer, iters))
    });
    g.finish();
}

fn future(c: &mut Criterion) {
    let mut g = c.benchmark_group("future_set_result");
    g.bench_function("squall", |b| b.iter_custom(ops::future_set_result));
    g.finish();
}

// The timeout benchmark last: its million timeouts leave the heap in a
// state the others should not inherit.
criterion_group!(benches, add_callback, remote, future, timeouts);
criterion_main!(benches);
