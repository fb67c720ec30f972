//! The fourth seed article's system, for real: TorMySQL, a MySQL client
//! whose driver is written as blocking code (as PyMySQL is) and made
//! asynchronous by running it in greenlet children, each socket operation a
//! non-blocking `IOStream` call that switches to the loop until it is done.
//!
//! ```text
//! tormysql                      self-test (what CI runs): start a MariaDB of its
//!                               own (mariadb-install-db + mariadbd on a free port,
//!                               temporary data directory), connect, query, use the
//!                               pool and a transaction, run 100 SLEEP(0.2) at once
//!                               on one loop; exit 0 if all is well. Without MariaDB
//!                               installed it says so and exits 0, unless
//!                               SQUALL_REQUIRE_PEERS is set.
//! tormysql --bench ADDR [--user U] [--password P] [--connections N] [--seconds S]
//!          [--query SQL] [--mode future|here]
//!                               the benchmark's load (bench/mysql.sh): N connections
//!                               on one loop, each running SQL back to back; prints
//!                               queries/s and CPU per query
//! tormysql --server             start a MariaDB of our own, print its port, and
//!                               serve until stdin closes (bench/mysql.sh uses it)
//! ```
//!
//! The modules: [`protocol`] (packets, the handshake, result sets, the
//! password scrambles; pure), [`auth`] (the authentication conversation:
//! `caching_sha2_password`'s verdicts, RSA key exchange, `sha256_password`,
//! MariaDB's `client_ed25519`; pure), [`conn`] (the blocking-style driver over
//! `greenlet::Stream`), [`client`] (TorMySQL's `Client`: futures through
//! `async_call_method`, the connect timeout), [`pool`] (the
//! `ConnectionPool`, transactions), and [`mariadb`] (a server for tests).
//!
//! # The same client from `async`
//!
//! Every call returns a squall `Future`, so the three ways of writing a
//! coroutine all use the client unchanged: straight-line code in a greenlet
//! (`greenlet::wait(f)`), a generator (`YieldFuture::new(f)`, or
//! `co.wait(f)` in `gen::stackful`), and an `async` block (`f.await`), as
//! TorMySQL's users went from `yield` to `await`:
//!
//! ```text
//! async def fetch_one(pool):                    gen::coroutine(async move {
//!     async with await pool.begin() as tx:          let tx = pool.begin().await?;
//!         await tx.execute("INSERT ...")             tx.execute("INSERT ...").await?;
//!                                                    tx.commit().await?;
//!     cursor = await pool.execute("SELECT v")       let rs = pool.execute("SELECT v").await?;
//!     return cursor.fetchone()                      Ok(rs.scalar().map(str::to_owned))
//!                                               })
//! ```
//!
//! The driver still runs in a child greenlet per call: the `async` block
//! only awaits the call's `Future`, so a query given up with `gen::timeout`
//! still finishes in its child (a MySQL query cannot be taken back) before
//! its connection goes back to the pool. The self-test runs the async form
//! too, and `tests/tormysql/async_block.rs` has an `async` test
//! (`gen::multi` over the pool, a transaction, `gen::timeout`).

#[allow(dead_code)]
mod auth;
#[allow(dead_code)]
mod client;
#[allow(dead_code)]
mod conn;
#[allow(dead_code)]
mod mariadb;
#[allow(dead_code)]
mod pool;
#[allow(dead_code)]
mod protocol;

use std::cell::Cell;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use squall::gen;
use squall::greenlet;
use squall::{Future, IOLoop};

use client::Client;
use conn::{MysqlError, Options};
use pool::{ConnectionPool, PoolOptions};

type BoxResult<T> = Result<T, Box<dyn StdError>>;

const USAGE: &str = "usage: tormysql [--self-test] | --bench ADDR [--user U] [--password P] \
[--connections N] [--seconds S] [--query SQL] [--mode future|here] | --server";

fn main() -> BoxResult<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("--self-test") => self_test(),
        Some("--bench") => bench(&args[1..]),
        Some("--server") => server(),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown argument {other}\n{USAGE}").into()),
    }
}

fn user_options(addr: SocketAddr) -> Options {
    let (user, password, _) = mariadb::USERS[0];
    let mut opts = Options::new(addr, user, password);
    opts.database = Some(mariadb::DATABASE.to_owned());
    opts.connect_timeout = Duration::from_secs(5);
    opts
}

fn self_test() -> BoxResult<()> {
    if mariadb::binaries().is_none() {
        let message = "mariadbd / mariadb-install-db not installed (apt: mariadb-server)";
        if std::env::var_os("SQUALL_REQUIRE_PEERS").is_some() {
            return Err(message.into());
        }
        println!("skipped: {message}");
        return Ok(());
    }
    let started = Instant::now();
    let server = mariadb::MariaDb::start()?;
    println!(
        "mariadbd up on {} in {} ms",
        server.addr(),
        started.elapsed().as_millis()
    );
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let opts = user_options(server.addr());

    // 1. The Client alone: connect (with its timeout), query, a server error.
    let o = opts.clone();
    let (version, answer, error) = io_loop.run_sync(
        move || {
            greenlet::async_call_method(move || {
                let client = greenlet::wait(Client::connect(o))?;
                let rs = greenlet::wait(client.query("SELECT 1 + 1 AS two, NULL AS nothing"))?;
                let err = greenlet::wait(client.query("SELEC 1")).unwrap_err();
                greenlet::wait(client.close())?;
                Ok((
                    client.server_version().to_owned(),
                    format!(
                        "{}={:?}, {}={:?}",
                        rs.columns[0].name,
                        rs.rows[0].str(0),
                        rs.columns[1].name,
                        rs.rows[0].get(1)
                    ),
                    MysqlError::server(&err).cloned(),
                ))
            })
        },
        Some(Duration::from_secs(30)),
    )?;
    println!("client: server {version}; {answer}");
    let error = error.ok_or("a syntax error should be a server error")?;
    println!("client: a syntax error is {error}");
    if error.code != 1064 {
        return Err(format!("expected error 1064, got {error}").into());
    }

    // 1b. MariaDB's ed25519 plugin: an account made for it, logged in to
    // (the server switches us to client_ed25519 and its 32-byte nonce).
    let o = opts.clone();
    let ed25519 = io_loop.run_sync(
        move || {
            greenlet::async_call_method(move || {
                let admin = greenlet::wait(Client::connect(o.clone()))?;
                if let Err(err) = greenlet::wait(admin.query("INSTALL SONAME 'auth_ed25519'")) {
                    // 1968: already installed; anything else: not shipped here.
                    if MysqlError::server(&err).map(|e| e.code) != Some(1968) {
                        greenlet::wait(admin.close())?;
                        return Ok(format!("skipped ({err})"));
                    }
                }
                greenlet::wait(admin.query(
                    "CREATE USER IF NOT EXISTS 'selftest_ed'@'%' \
                     IDENTIFIED VIA ed25519 USING PASSWORD('ed-secret')",
                ))?;
                greenlet::wait(admin.close())?;
                let mut ed = o;
                ed.user = "selftest_ed".into();
                ed.password = "ed-secret".into();
                ed.database = None;
                let client = greenlet::wait(Client::connect(ed))?;
                let who = greenlet::wait(client.query("SELECT CURRENT_USER()"))?;
                greenlet::wait(client.close())?;
                Ok(format!(
                    "{} as {}",
                    client.auth_plugin().unwrap_or_default(),
                    who.scalar().unwrap_or("?")
                ))
            })
        },
        Some(Duration::from_secs(30)),
    )?;
    println!("ed25519: {ed25519}");

    // 2. The pool: a transaction in straight-line code, then a gen coroutine.
    let pool = ConnectionPool::new(
        opts.clone(),
        PoolOptions {
            max_connections: 100,
            ..PoolOptions::default()
        },
    );
    let p = pool.clone();
    let count = io_loop.run_sync(
        move || {
            greenlet::async_call_method(move || {
                greenlet::wait(
                    p.execute("CREATE TABLE IF NOT EXISTS selftest (id INT PRIMARY KEY, v TEXT)"),
                )?;
                let tx = greenlet::wait(p.begin())?;
                tx.execute_here("INSERT INTO selftest VALUES (1, 'kept')")?;
                greenlet::wait(tx.commit())?;
                let tx = greenlet::wait(p.begin())?;
                tx.execute_here("INSERT INTO selftest VALUES (2, 'rolled back')")?;
                greenlet::wait(tx.rollback())?;
                let rs = greenlet::wait(p.execute("SELECT COUNT(*) FROM selftest"))?;
                Ok(rs.scalar().unwrap_or("?").to_owned())
            })
        },
        Some(Duration::from_secs(30)),
    )?;
    println!("pool: one row committed, one rolled back: COUNT(*) = {count}");
    if count != "1" {
        return Err("the transaction did not do what it should".into());
    }
    let p = pool.clone();
    let n = io_loop.run_sync(
        move || {
            gen::coroutine(greenlet::stackful(move |co| {
                let rs = co.wait(p.execute("SELECT v FROM selftest WHERE id = 1"))?;
                Ok(rs.scalar().map(str::to_owned))
            }))
        },
        Some(Duration::from_secs(30)),
    )?;
    println!("gen::stackful: {n:?}");
    // The same from an `async` block: the client's futures are awaited.
    let p = pool.clone();
    let (n, both) = io_loop.run_sync(
        move || {
            gen::coroutine(async move {
                let rs = p.execute("SELECT v FROM selftest WHERE id = 1").await?;
                let both = gen::multi(vec![p.execute("SELECT 1"), p.execute("SELECT 2")]).await?;
                let both: Vec<String> = both
                    .iter()
                    .filter_map(|rs| rs.scalar())
                    .map(str::to_owned)
                    .collect();
                Ok((rs.scalar().map(str::to_owned), both))
            })
        },
        Some(Duration::from_secs(30)),
    )?;
    println!("async: {n:?}, gen::multi: {both:?}");
    if n.as_deref() != Some("kept") || both != ["1", "2"] {
        return Err("the async form did not get the rows".into());
    }

    // 3. 100 SLEEP(0.2) at once on one loop: about 0.2 s, not 20 s.
    let p = pool.clone();
    let started = Instant::now();
    io_loop.run_sync(
        move || {
            let all: Vec<Future<conn::ResultSet>> =
                (0..100).map(|_| p.execute("SELECT SLEEP(0.2)")).collect();
            greenlet::async_call_method(move || {
                for f in all {
                    greenlet::wait(f)?;
                }
                Ok(())
            })
        },
        Some(Duration::from_secs(30)),
    )?;
    let took = started.elapsed();
    println!(
        "100 x SELECT SLEEP(0.2) on one loop: {} ms; pool {:?}",
        took.as_millis(),
        pool.stats()
    );
    if took > Duration::from_secs(10) {
        return Err("the queries did not run concurrently".into());
    }
    pool.close();
    println!("ok");
    Ok(())
}

/// `--server`: a MariaDB of our own until stdin closes.
fn server() -> BoxResult<()> {
    let server = mariadb::MariaDb::start()?;
    println!("{}", server.port);
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink)? > 0 {}
    drop(server);
    Ok(())
}

/// This process's CPU time so far, `(user, system)` (`getrusage`: to the
/// microsecond, where /proc/self/stat counts 10 ms ticks).
fn cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to an rusage; RUSAGE_SELF always exists.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

fn bench(args: &[String]) -> BoxResult<()> {
    let addr: SocketAddr = args.first().ok_or(USAGE)?.parse()?;
    let mut opts = user_options(addr);
    let (mut connections, mut seconds) = (100usize, 5u64);
    let mut query = "SELECT 1".to_owned();
    let mut mode = "future".to_owned();
    for pair in args[1..].chunks(2) {
        let [name, value] = pair else {
            return Err(USAGE.into());
        };
        match name.as_str() {
            "--user" => opts.user = value.clone(),
            "--password" => opts.password = value.clone(),
            "--connections" => connections = value.parse()?,
            "--seconds" => seconds = value.parse()?,
            "--query" => query = value.clone(),
            "--mode" => mode = value.clone(),
            _ => return Err(format!("unknown option {name}\n{USAGE}").into()),
        }
    }
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let o = opts.clone();
    let clients = io_loop.run_sync(
        move || {
            let all: Vec<Future<Client>> = (0..connections)
                .map(|_| Client::connect(o.clone()))
                .collect();
            greenlet::async_call_method(move || {
                all.into_iter()
                    .map(greenlet::wait)
                    .collect::<Result<Vec<_>, _>>()
            })
        },
        Some(Duration::from_secs(60)),
    )?;
    let done = Rc::new(Cell::new(0u64));
    let rows = Rc::new(Cell::new(0usize));
    let stop = Rc::new(Cell::new(false));
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let (d, r, s, q) = (done.clone(), rows.clone(), stop.clone(), query.clone());
    let here = mode == "here";
    io_loop.run_sync(
        move || {
            let l = IOLoop::current();
            let s2 = s.clone();
            l.call_later(Duration::from_secs(seconds), move || s2.set(true));
            let loops: Vec<Future<()>> = clients
                .into_iter()
                .map(|client| {
                    if here {
                        run_here(client, q.clone(), d.clone(), r.clone(), s.clone())
                    } else {
                        let f = Future::new();
                        run_chain(
                            client,
                            q.clone(),
                            d.clone(),
                            r.clone(),
                            s.clone(),
                            f.clone(),
                        );
                        f
                    }
                })
                .collect();
            greenlet::async_call_method(move || {
                for f in loops {
                    greenlet::wait(f)?;
                }
                Ok(())
            })
        },
        Some(Duration::from_secs(seconds + 60)),
    )?;
    let (wall, cpu1) = (t0.elapsed(), cpu_time());
    let (user, sys) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    let n = done.get().max(1);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "squall-tormysql({mode}) {query:?}: {:.0} queries/s, {:.1} us CPU/query ({:.1} user + {:.1} sys), {} queries, {} rows each, {connections} connections",
        n as f64 / wall.as_secs_f64(),
        per(user + sys),
        per(user),
        per(sys),
        done.get(),
        rows.get() / n as usize,
    );
    Ok(())
}

/// One connection's loop, TorMySQL's way: each query a `Future` (a child
/// greenlet), the next one started from the previous one's callback.
fn run_chain(
    client: Client,
    sql: String,
    done: Rc<Cell<u64>>,
    rows: Rc<Cell<usize>>,
    stop: Rc<Cell<bool>>,
    finished: Future<()>,
) {
    if stop.get() {
        finished.try_set_result(());
        return;
    }
    let next = client.query(sql.clone());
    next.add_done_callback(move |f: &Future<conn::ResultSet>| match f.take_result() {
        Ok(rs) => {
            done.set(done.get() + 1);
            rows.set(rows.get() + rs.rows.len());
            run_chain(client, sql, done, rows, stop, finished);
        }
        Err(err) => {
            finished.try_set_error(err);
        }
    });
}

/// One connection's loop as one child running straight-line code.
fn run_here(
    client: Client,
    sql: String,
    done: Rc<Cell<u64>>,
    rows: Rc<Cell<usize>>,
    stop: Rc<Cell<bool>>,
) -> Future<()> {
    greenlet::async_call_method(move || {
        while !stop.get() {
            let rs = client.query_here(&sql)?;
            done.set(done.get() + 1);
            rows.set(rows.get() + rs.rows.len());
        }
        Ok(())
    })
}
