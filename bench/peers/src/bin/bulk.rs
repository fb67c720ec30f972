//! Bulk transfer through one loopback connection: squall's `IOStream`
//! against tokio and a hand-written mio loop, in one run, alternating.
//!
//! ```text
//! cargo build --release --bin bulk
//! taskset -c 1 target/release/bulk [MIB] [RUNS]   # default 1024 MiB, 5 runs
//! ```
//!
//! Prints each run, then per peer the median MB/s and its ratio to mio and
//! to tokio. Writer and reader share one thread in every peer.

use std::time::Duration;

#[allow(dead_code)]
#[path = "../../../../benches/iostream.rs"]
mod squall_iostream_bench;

use squall_peers::bulk;

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().map_or(1024, |s| s.parse().expect("MiB"));
    let runs: usize = args.next().map_or(5, |s| s.parse().expect("runs"));
    let total = mib * 1024 * 1024;
    type Peer = (&'static str, fn(u64) -> Duration);
    // squall twice: `read_bytes` (a new vector per read) and `read_into`
    // (one vector passed round, as the others read into one buffer).
    let peers: [Peer; 4] = [
        ("squall", squall_iostream_bench::ops::bulk_transfer),
        ("squall/read_into", squall_iostream_bench::ops::bulk_transfer_into),
        ("tokio", bulk::tokio_bulk),
        ("mio", bulk::mio_bulk),
    ];
    let (tokio, mio) = (2, 3);
    // A third argument runs that peer only (e.g. under strace or perf).
    if let Some(only) = args.next() {
        let (name, f) = peers.iter().find(|(n, _)| *n == only).expect("no such peer");
        for _ in 0..runs {
            let elapsed = f(total);
            println!("{name}: {:.0} MB/s", total as f64 / elapsed.as_secs_f64() / 1e6);
        }
        return;
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); peers.len()];
    for run in 0..runs {
        for (i, (name, f)) in peers.iter().enumerate() {
            let elapsed = f(total);
            let rate = total as f64 / elapsed.as_secs_f64() / 1e6;
            println!("run {run}: {name:<16} {mib} MiB in {elapsed:?}: {rate:.0} MB/s");
            rates[i].push(rate);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let medians: Vec<f64> = rates.iter_mut().map(median).collect();
    println!("\nmedian of {runs} runs, {mib} MiB each:");
    for (i, (name, _)) in peers.iter().enumerate() {
        println!(
            "{name:<16} {:>7.0} MB/s   x mio {:.2}   x tokio {:.2}",
            medians[i],
            medians[i] / medians[mio],
            medians[i] / medians[tokio]
        );
    }
}
