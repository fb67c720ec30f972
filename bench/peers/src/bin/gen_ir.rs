//! One workload of `benches/gen.rs` (or its tokio peer) run `N` times, for
//! `bench/gen_callgrind.sh` to count instructions per operation under
//! callgrind: steadier than wall-clock figures on a shared machine.
//!
//! ```text
//! gen_ir OPERATION N
//! ```
//!
//! Operations: `gen_step_pending_future`, `async_step_pending_future`,
//! `gen_step_ready_future`, `async_step_ready_future`, `async_wake_rc`,
//! `async_wake_std_local`, `async_wake_std_remote`, and the tokio peers
//! `tokio_pending_oneshot` (a task awaiting a oneshot that a spawned task
//! fills) and `tokio_oneshot_from_thread`.

use std::hint::black_box;

use tokio::sync::oneshot;

#[allow(dead_code)]
#[path = "../../../../benches/gen.rs"]
mod gen_bench;

use gen_bench::ops;

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(op), Some(n)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: gen_ir OPERATION N");
        std::process::exit(2);
    };
    let io_loop = squall::IOLoop::new().expect("loop");
    match op.as_str() {
        "gen_step_pending_future" => drop(ops::pending_future(&io_loop, n)),
        "async_step_pending_future" => drop(ops::async_pending_future(&io_loop, n)),
        "gen_step_ready_future" => drop(ops::ready_future(n)),
        "async_step_ready_future" => drop(ops::async_ready_future(n)),
        "async_wake_rc" => drop(ops::wake_rc(n)),
        "async_wake_std_local" => drop(ops::wake_std_local(&io_loop, n)),
        "async_wake_std_remote" => drop(ops::wake_std_remote(&io_loop, n, || {})),
        "tokio_pending_oneshot" => tokio_rt().block_on(async {
            tokio::spawn(async move {
                for i in 0..n {
                    let (tx, rx) = oneshot::channel::<u64>();
                    tokio::spawn(async move {
                        let _ = tx.send(i);
                    });
                    black_box(rx.await.expect("sent"));
                }
            })
            .await
            .expect("task ran")
        }),
        "tokio_oneshot_from_thread" => {
            let (tx, rx) = std::sync::mpsc::channel::<oneshot::Sender<u64>>();
            let thread = std::thread::spawn(move || {
                for (i, sender) in rx.into_iter().enumerate() {
                    let _ = sender.send(i as u64);
                }
            });
            tokio_rt().block_on(async {
                tokio::spawn(async move {
                    for _ in 0..n {
                        let (sender, receiver) = oneshot::channel::<u64>();
                        tx.send(sender).expect("thread alive");
                        black_box(receiver.await.expect("sent"));
                    }
                })
                .await
                .expect("task ran")
            });
            thread.join().expect("thread");
        }
        other => {
            eprintln!("gen_ir: unknown operation {other}");
            std::process::exit(2);
        }
    }
}
