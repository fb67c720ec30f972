//! A small load client for the benchmark: N blocking connections, each
//! sending one command at a time (90% `get`, 10% `set` of random keys) for a
//! fixed time, every request's latency recorded. Prints ops/s and latency
//! percentiles, the same way for the proxy and for memcached itself.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use super::testkit::TextClient;

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    /// Requests answered.
    pub ops: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency percentiles, in microseconds: p50, p99, p99.9, max.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest.
    pub max_us: u64,
    /// Answers that were errors.
    pub errors: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} ops/s ({} ops in {:.2?}), latency p50 {} us, p99 {} us, p99.9 {} us, max {} us, {} errors",
            self.ops as f64 / self.elapsed.as_secs_f64(),
            self.ops,
            self.elapsed,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.errors
        )
    }
}

/// Runs `clients` connections against `addr` for `duration`.
pub fn run(
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    value_size: usize,
    keys: u64,
) -> std::io::Result<Report> {
    // Load the keys first, so gets hit.
    let mut loader = TextClient::connect(addr)?;
    let value = vec![b'v'; value_size];
    for k in 0..keys {
        loader.set(&format!("bench:{k}"), &value)?;
    }
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..clients)
        .map(|i| {
            let value = value.clone();
            thread::spawn(move || -> std::io::Result<(Vec<u32>, u64)> {
                let mut client = TextClient::connect(addr)?;
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut errors = 0;
                // xorshift: cheap, and each worker its own sequence.
                let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1);
                while Instant::now() < deadline {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("bench:{}", x % keys);
                    let t = Instant::now();
                    let ok = if x % 10 == 0 {
                        client.set(&key, &value)? == "STORED"
                    } else {
                        client.get(&[&key])?.is_ok()
                    };
                    latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    errors += u64::from(!ok);
                }
                Ok((latencies, errors))
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (latencies, e) = worker
            .join()
            .map_err(|_| std::io::Error::other("a load worker panicked"))??;
        all.extend(latencies);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            return 0;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        u64::from(all[i])
    };
    Ok(Report {
        ops: all.len() as u64,
        elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
        max_us: all.last().copied().map_or(0, u64::from),
        errors,
    })
}
