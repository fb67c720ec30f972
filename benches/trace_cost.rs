//! What tracing costs the loop, per iteration: the one-callback-per-iteration
//! workload of `benches/ioloop.rs` (`add_callback_one`), in three modes.
//!
//! ```text
//! cargo bench --bench trace_cost -- off [N]                     # feature off
//! cargo bench --bench trace_cost --features trace -- disabled [N]
//! cargo bench --bench trace_cost --features trace -- on [N]      # recording
//! ```
//!
//! It prints nanoseconds per iteration, but the figures worth quoting are
//! instruction counts, steady on a noisy machine: run the built binary under
//! `valgrind --tool=callgrind` at two values of N and divide the difference
//! in instructions by the difference in N (that cancels the start-up):
//!
//! ```text
//! cargo bench --no-run --bench trace_cost [--features trace]   # prints the binary's path
//! valgrind --tool=callgrind BINARY MODE 100000   # "Collected : I1"
//! valgrind --tool=callgrind BINARY MODE 200000   # "Collected : I2"
//! # (I2 - I1) / 100000 = instructions per iteration
//! ```
//!
//! 2026-11-23, this machine: off 618, disabled 631, on 828 instructions per
//! iteration; natively 95-102, 95-109 and 209-236 ns over three runs of
//! N = 5,000,000 each (a noisy shared 2-core VM: read the instructions).
//! 2026-12-06, the tracer an observer of the loop: off 516, disabled 524, on
//! 971 (the commit before: 517, 522, 717).

use std::time::Instant;

use squall::IOLoop;

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

fn main() {
    // `cargo bench` passes `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mode = args.first().map_or("off", String::as_str).to_owned();
    let n: u64 = args
        .get(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let io_loop = IOLoop::new().expect("a loop");
    match mode.as_str() {
        "off" => {}
        #[cfg(feature = "trace")]
        "disabled" => assert!(!io_loop.trace().is_enabled()),
        #[cfg(feature = "trace")]
        "on" => io_loop.trace().enable(1024),
        other => {
            eprintln!("mode {other:?}: expected off, or (with --features trace) disabled or on");
            std::process::exit(2);
        }
    }
    let start = Instant::now();
    chain(&io_loop, n.max(1) - 1);
    io_loop.start().expect("loop runs");
    let took = start.elapsed();
    println!(
        "trace_cost {mode}: {n} iterations, {:.1} ns per iteration",
        took.as_nanos() as f64 / n as f64
    );
    #[cfg(feature = "trace")]
    if mode == "on" {
        let t = io_loop.trace();
        assert_eq!(t.snapshot().len(), 1024.min(n as usize));
        println!("  {} records kept, {} dropped", t.capacity(), t.dropped());
    }
}
