//! One workload, many times, for a profiler:
//!
//! ```text
//! cargo build --release --bin profile
//! valgrind --tool=callgrind target/release/profile remote 200000
//! perf record -g target/release/profile batch 20000000
//! ```
//!
//! Workloads: `one`, `batch`, `timeout`, `remote`, `future` (squall); their
//! allocation-free variants `batch-zst`, `timeout-zst`, `remote-zst`; and
//! `remote-channel` (typed values, no closure); `tokio-remote`,
//! `tokio-remote-boxed` for comparison; the gen Runner
//! steps `gen-ready-future`, `gen-ready-task`, `gen-pending-future` (from
//! `benches/gen.rs`); `echo` (`benches/iostream.rs`, n round trips) and its
//! peers `tokio-echo`, `mio-echo`; `tokio-gen-pending`, the peer of
//! `gen-pending-future`.

use std::hint::black_box;
use std::time::Instant;

#[allow(dead_code)]
#[path = "../../../../benches/ioloop.rs"]
mod squall_bench;

#[allow(dead_code)]
#[path = "../../../../benches/gen.rs"]
mod squall_gen_bench;

use squall_bench::ops;
use squall_gen_bench::ops as gen_ops;

#[allow(dead_code)]
#[path = "../../../../benches/iostream.rs"]
mod squall_iostream_bench;

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "batch".into());
    let n: u64 = args
        .next()
        .map(|s| s.parse().expect("a count"))
        .unwrap_or(1_000_000);
    let io_loop = squall::IOLoop::new().expect("loop");
    let started = Instant::now();
    let timed = match what.as_str() {
        "one" => ops::callbacks_one_at_a_time(&io_loop, n),
        "batch" => ops::callbacks_batched(&io_loop, n),
        "timeout" => {
            let mut pending = ops::PendingTimeouts::new();
            eprintln!("setup: {:?}", started.elapsed());
            pending.add_remove(n)
        }
        "remote" => {
            let producer = ops::Producer::spawn();
            ops::remote_callbacks(&io_loop, &producer, n)
        }
        "remote-channel" => {
            let producer = ops::Producer::spawn();
            ops::remote_channel(&io_loop, &producer, n)
        }
        "timeout-zst" => {
            // The same, with a zero-sized closure: no allocation per timeout.
            let pending = ops::PendingTimeouts::new();
            eprintln!("setup: {:?}", started.elapsed());
            let (l, base) = (&pending.io_loop, pending.base);
            let mut offsets = ops::Offsets::new(2);
            let start = Instant::now();
            for _ in 0..n {
                let h = l.add_timeout(base + offsets.next().expect("endless"), || ());
                l.remove_timeout(h);
            }
            start.elapsed()
        }
        "batch-zst" => {
            // Batches of zero-sized callbacks: no allocation per callback.
            let start = Instant::now();
            let mut left = n;
            while left > 0 {
                let k = left.min(ops::BATCH);
                for _ in 0..k - 1 {
                    io_loop.add_callback(|| ());
                }
                let l = io_loop.clone();
                io_loop.add_callback(move || l.stop());
                io_loop.start().expect("loop runs");
                left -= k;
            }
            start.elapsed()
        }
        "remote-zst" => {
            // The same, with a zero-sized closure: no allocation per message.
            let producer = ops::Producer::spawn();
            let remote = io_loop.remote();
            let start = Instant::now();
            producer.run(move || {
                for _ in 0..n {
                    remote.add_callback(|| ()).expect("loop open");
                }
                remote.stop().expect("loop open");
            });
            io_loop.start().expect("loop runs");
            start.elapsed()
        }
        "future" => ops::future_set_result(n),
        "echo" => squall_iostream_bench::ops::EchoPairs::new().round_trips(n),
        "tokio-echo" => squall_peers::echo::TokioEcho::new().round_trips(n),
        "mio-echo" => squall_peers::echo::MioEcho::new().round_trips(n),
        "gen-ready-future" => gen_ops::ready_future(n),
        "gen-ready-task" => gen_ops::ready_task(n),
        "gen-pending-future" => gen_ops::pending_future(&io_loop, n),
        "tokio-gen-pending" => {
            // As benches/peers.rs's tokio_pending_oneshot.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let start = Instant::now();
                tokio::spawn(async move {
                    for i in 0..n {
                        let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
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
        "tokio-remote" | "tokio-remote-boxed" => {
            let boxed = what.ends_with("boxed");
            // As in benches/peers.rs: no I/O driver, none is needed.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            let producer = ops::Producer::spawn();
            rt.block_on(async {
                let start = Instant::now();
                if boxed {
                    type Job = Box<dyn FnOnce() + Send>;
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
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
                } else {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
                    producer.run(move || {
                        for i in 0..n {
                            tx.send(i).expect("receiver alive");
                        }
                    });
                    for _ in 0..n {
                        black_box(rx.recv().await.expect("sender alive"));
                    }
                }
                start.elapsed()
            })
        }
        other => panic!("unknown workload {other}"),
    };
    println!(
        "{what}: {n} ops in {timed:?}: {:.1} ns/op",
        timed.as_nanos() as f64 / n as f64
    );
}
