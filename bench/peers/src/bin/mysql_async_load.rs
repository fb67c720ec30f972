//! The tokio peer of `examples/tormysql --bench` in `bench/mysql.sh`:
//! mysql_async on a tokio current_thread runtime, N connections, each a
//! task running one query back to back (text protocol, `COM_QUERY`, every
//! row read into a `Row`), for S seconds. Prints queries/s and this
//! process's CPU per query (`getrusage`), user and system apart.
//!
//! ```text
//! cargo run --release --bin mysql_async_load -- ADDR USER PASSWORD DB CONNECTIONS SECONDS SQL
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};

/// CPU time of this process so far, `(user, system)` (`getrusage`: to the
/// microsecond, where /proc/self/stat counts 10 ms ticks).
fn cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to an rusage; RUSAGE_SELF always exists.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, user, password, db, connections, seconds, sql] = &args[..] else {
        eprintln!("usage: mysql_async_load ADDR USER PASSWORD DB CONNECTIONS SECONDS SQL");
        std::process::exit(2);
    };
    let (host, port) = addr.rsplit_once(':').expect("ADDR is HOST:PORT");
    let opts = OptsBuilder::default()
        .ip_or_hostname(host.to_owned())
        .tcp_port(port.parse().expect("port"))
        .user(Some(user.clone()))
        .pass(Some(password.clone()))
        .db_name(Some(db.clone()))
        .prefer_socket(false);
    let connections: usize = connections.parse().expect("CONNECTIONS");
    let seconds: u64 = seconds.parse().expect("SECONDS");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut conns = Vec::new();
        for _ in 0..connections {
            conns.push(Conn::new(opts.clone()));
        }
        let mut ready = Vec::new();
        for c in conns {
            ready.push(c.await.expect("connect"));
        }
        let done = Rc::new(Cell::new(0u64));
        let rows = Rc::new(Cell::new(0usize));
        let (cpu0, t0) = (cpu_time(), Instant::now());
        let deadline = t0 + Duration::from_secs(seconds);
        let tasks: Vec<_> = ready
            .into_iter()
            .map(|mut conn| {
                let (done, rows, sql) = (done.clone(), rows.clone(), sql.clone());
                tokio::task::spawn_local(async move {
                    while Instant::now() < deadline {
                        let result: Vec<Row> = conn.query(sql.as_str()).await.expect("query");
                        done.set(done.get() + 1);
                        rows.set(rows.get() + result.len());
                    }
                    conn
                })
            })
            .collect();
        let mut conns = Vec::new();
        for t in tasks {
            conns.push(t.await.expect("task"));
        }
        let (wall, cpu1) = (t0.elapsed(), cpu_time());
        let (user, sys) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
        let n = done.get().max(1);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        println!(
            "mysql_async(current_thread) {sql:?}: {:.0} queries/s, {:.1} us CPU/query ({:.1} user + {:.1} sys), {} queries, {} rows each, {connections} connections",
            n as f64 / wall.as_secs_f64(),
            per(user + sys),
            per(user),
            per(sys),
            done.get(),
            rows.get() / n as usize,
        );
        for c in conns {
            let _ = c.disconnect().await;
        }
    });
}
