//! What parked greenlet children cost in memory (feature `stackful`).
//!
//! Parks N children (default 10,000), each on a future of its own, and
//! prints the process's resident set (`VmRSS` in /proc/self/status) before
//! and after, then wakes them all and checks their results. With
//! `--runner`, the same with hand-written generators driven by the Runner,
//! for comparison (a run of its own: freed memory would be reused).
//!
//! ```text
//! greenlet_rss            10,000 children, default stack (64 KiB + guard page)
//! greenlet_rss N [KIB]    N children with KIB KiB stacks
//! greenlet_rss --runner [N]  N hand-written generators instead
//! ```
//!
//! Run: `cargo run --release --features stackful --example greenlet_rss`.
//! Exits 0 when every child woke and returned its own value.

use squall::gen::{self, Resume, Step, YieldFuture};
use squall::{greenlet, Error, ErrorKind, Future, IOLoop};

/// `VmRSS` in KiB (0 where /proc is not there).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Error> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--runner") {
        args.remove(0);
        let n = match args.first() {
            Some(s) => s
                .parse()
                .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("{s}: {e}")))?,
            None => 10_000,
        };
        return hand_written(&IOLoop::new()?, n);
    }
    let parse = |s: &String| {
        s.parse::<usize>()
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("{s}: {e}")))
    };
    let n = args.first().map(parse).transpose()?.unwrap_or(10_000);
    let kib = args.get(1).map(parse).transpose()?;
    if let Some(kib) = kib {
        greenlet::set_default_stack_size(kib * 1024)?;
    }
    let io_loop = IOLoop::new()?;
    let before = rss_kib();
    let (parked, woke) = io_loop.run_sync(
        move || {
            let gates: Vec<Future<u64>> = (0..n).map(|_| Future::new()).collect();
            let children: Vec<Future<u64>> = gates
                .iter()
                .map(|gate| {
                    let gate = gate.clone();
                    // Each child parks on its gate, as a driver parks on a read.
                    greenlet::spawn(move || Ok(greenlet::wait(gate)? * 2))
                })
                .collect();
            let parked = rss_kib();
            assert_eq!(greenlet::stack_stats().live, n);
            for (i, gate) in gates.iter().enumerate() {
                gate.set_result(i as u64);
            }
            let woke = children
                .iter()
                .enumerate()
                .filter(|(i, c)| c.result().ok() == Some(2 * *i as u64))
                .count();
            Future::ready((parked, woke))
        },
        None,
    )?;
    let after = rss_kib();
    let stack = greenlet::default_stack_size() / 1024;
    println!("children: {n}, stack {stack} KiB + guard page");
    println!("VmRSS before: {before} KiB");
    println!(
        "VmRSS with {n} parked: {parked} KiB (+{} KiB, {:.1} KiB per child)",
        parked.saturating_sub(before),
        parked.saturating_sub(before) as f64 / n as f64
    );
    println!(
        "VmRSS after they finished: {after} KiB (stacks pooled: {})",
        greenlet::stack_stats().pooled
    );
    assert_eq!(woke, n, "every child woke with its own value");
    assert_eq!(greenlet::stack_stats().live, 0);
    println!("ok");
    Ok(())
}

/// The same with explicit state machines.
fn hand_written(io_loop: &IOLoop, n: usize) -> Result<(), Error> {
    let before = rss_kib();
    let (parked, woke) = io_loop.run_sync(
        move || {
            let gates: Vec<Future<u64>> = (0..n).map(|_| Future::new()).collect();
            let coroutines: Vec<Future<u64>> = gates
                .iter()
                .map(|gate| {
                    let gate = Some(gate.clone());
                    gen::coroutine(gen::from_fn(gate, |gate, input| match input {
                        Resume::Start => YieldFuture::new(gate.take().expect("once")).into(),
                        Resume::Value(v) => Step::Return(v.downcast::<u64>().map(|x| x * 2)),
                        Resume::Error(err) => Step::Return(Err(err)),
                    }))
                })
                .collect();
            let parked = rss_kib();
            for (i, gate) in gates.iter().enumerate() {
                gate.set_result(i as u64);
            }
            let woke = coroutines
                .iter()
                .enumerate()
                .filter(|(i, c)| c.result().ok() == Some(2 * *i as u64))
                .count();
            Future::ready((parked, woke))
        },
        None,
    )?;
    println!(
        "{n} parked hand-written generators: +{} KiB, {:.1} KiB each",
        parked.saturating_sub(before),
        parked.saturating_sub(before) as f64 / n as f64
    );
    assert_eq!(woke, n);
    println!("ok");
    Ok(())
}
