//! The TorMySQL example (examples/tormysql/) against a real MariaDB: each
//! test starts its own `mariadbd` on a free loopback port with a temporary
//! data directory, and stops it by PID (and removes the directory) when it
//! ends, failed or not. The tests take turns (one lock): one counts the
//! process's open file descriptors.
//!
//! Needs `mariadbd` and `mariadb-install-db` (`.ci/run` installs
//! mariadb-server). The protocol's unit tests (scrambles against known
//! vectors, framing, packets) run here too, without a server.

#[allow(dead_code)]
#[path = "../examples/tormysql/auth.rs"]
mod auth;
#[allow(dead_code)]
#[path = "../examples/tormysql/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../examples/tormysql/conn.rs"]
mod conn;
#[allow(dead_code)]
#[path = "../examples/tormysql/mariadb.rs"]
mod mariadb;
#[allow(dead_code)]
#[path = "../examples/tormysql/pool.rs"]
mod pool;
#[allow(dead_code)]
#[path = "../examples/tormysql/protocol.rs"]
mod protocol;

mod common;
#[path = "common/peers.rs"]
mod need;
#[path = "common/tls.rs"]
mod test_tls;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use squall::{gen, greenlet, Error, ErrorKind, Future, IOLoop};

use client::Client;
use common::{ms, open_fds, pseudo_random, secs};
use conn::{MysqlError, Options, ResultSet};
use mariadb::MariaDb;
use need::Peer;
use pool::{ConnectionPool, PoolOptions, PoolStats};

static SERIAL: Mutex<()> = Mutex::new(());

/// A server of this test's own, and the lock that keeps tests in turn;
/// `None` (skipped) without MariaDB outside CI.
fn server() -> Option<(MutexGuard<'static, ()>, MariaDb)> {
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !need::ready(&[Peer::Mariadb]) {
        return None;
    }
    Some((turn, MariaDb::start().expect("cannot start mariadbd")))
}

fn options(db: &MariaDb) -> Options {
    let (user, password, _) = mariadb::USERS[0];
    let mut opts = Options::new(db.addr(), user, password);
    opts.database = Some(mariadb::DATABASE.to_owned());
    opts.connect_timeout = secs(10);
    opts
}

/// Runs `f` in a child on a fresh loop, bounded by 60 s.
fn run<T: 'static>(f: impl FnOnce() -> Result<T, Error> + 'static) -> Result<T, Error> {
    let io_loop = IOLoop::new().expect("loop");
    io_loop.make_current();
    let result = io_loop.run_sync(move || greenlet::async_call_method(f), Some(secs(60)));
    io_loop.close();
    IOLoop::clear_current();
    result
}

fn wait<T: 'static>(f: Future<T>) -> Result<T, Error> {
    greenlet::wait(f)
}

fn server_code(err: &Error) -> Option<(u16, String)> {
    MysqlError::server(err).map(|e| (e.code, e.sql_state.clone()))
}

#[test]
fn connects_with_each_plugin_and_refuses_a_wrong_password_without_leaking() {
    let Some((_turn, db)) = server() else { return };
    let opts = options(&db);
    let fds_before = open_fds();
    let o = opts.clone();
    let (plugins, user, timers_left) = run(move || {
        let io_loop = IOLoop::current();
        let mut plugins = Vec::new();
        // (After a first switch: run_sync adds its own timeout once the
        // child has started.)
        greenlet::moment()?;
        let timers_before = io_loop.timer_stats().pending;
        // The plugin the server proposes (mysql_native_password).
        let client = wait(Client::connect(o.clone()))?;
        plugins.push(client.auth_plugin().unwrap_or_default());
        let user = wait(client.query("SELECT CURRENT_USER()"))?;
        wait(client.close())?;
        // The connect's timeout was removed when it completed.
        let timers_left = io_loop.timer_stats().pending - timers_before;
        // Answering with caching_sha2_password: MariaDB has no such plugin
        // and sends an AuthSwitchRequest to mysql_native_password.
        let mut switching = o.clone();
        switching.auth_plugin = Some(protocol::CACHING_SHA2_PASSWORD.to_owned());
        let client = wait(Client::connect(switching))?;
        plugins.push(client.auth_plugin().unwrap_or_default());
        assert_eq!(wait(client.query("SELECT 7"))?.scalar(), Some("7"));
        wait(client.close())?;
        // A user without a password.
        let mut nopw = o;
        nopw.user = "nopw".into();
        nopw.password = String::new();
        let client = wait(Client::connect(nopw))?;
        plugins.push(client.auth_plugin().unwrap_or_default());
        wait(client.close())?;
        Ok((plugins, user.scalar().map(str::to_owned), timers_left))
    })
    .expect("connects");
    assert_eq!(
        plugins,
        [
            "mysql_native_password",
            "mysql_native_password",
            "mysql_native_password"
        ]
    );
    assert_eq!(user.as_deref(), Some("native@%"));
    assert_eq!(timers_left, 0, "the connect timeout must be removed");

    // Wrong passwords: a typed error each time (1045, 28000), and every
    // socket closed.
    let o = opts.clone();
    let errors = run(move || {
        let mut errors = Vec::new();
        for _ in 0..20 {
            let mut wrong = o.clone();
            wrong.password = "not-the-password".into();
            errors.push(wait(Client::connect(wrong)).expect_err("a wrong password is refused"));
        }
        Ok(errors)
    })
    .unwrap();
    for err in &errors {
        let e = MysqlError::server(err).unwrap_or_else(|| panic!("not a server error: {err:?}"));
        assert_eq!((e.code, e.sql_state.as_str()), (1045, "28000"), "{e}");
        assert!(e.message.contains("Access denied"), "{e}");
    }
    assert_eq!(
        open_fds(),
        fds_before,
        "a refused login leaked a descriptor"
    );

    // A server that accepts but never greets: the connect's own timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut o = opts.clone();
    o.addr = silent.local_addr().unwrap();
    o.connect_timeout = ms(200);
    let started = Instant::now();
    let err = run(move || wait(Client::connect(o))).expect_err("times out");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert_eq!(
        MysqlError::of(&err),
        Some(&MysqlError::ConnectTimeout(ms(200)))
    );
    assert!(started.elapsed() < secs(5));
    // Nothing listening: refused, as an IO error.
    let mut o = opts;
    o.addr.set_port(mariadb::free_port().unwrap());
    let err = run(move || wait(Client::connect(o))).expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
    drop(silent);
    assert_eq!(open_fds(), fds_before);
}

#[test]
fn result_sets_nulls_binary_strings_and_server_errors() {
    let Some((_turn, db)) = server() else { return };
    let opts = options(&db);
    run(move || {
        let c = wait(Client::connect(opts))?;
        let q = |sql: &str| wait(c.query(sql));
        q("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, b BLOB, s TEXT NULL)")?;

        // No rows: the columns are still there.
        let rs = q("SELECT id, b, s FROM t")?;
        assert_eq!(rs.rows.len(), 0);
        let names: Vec<&str> = rs.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "b", "s"]);
        assert_eq!(rs.columns[0].table, "t");

        // Binary-safe: every byte value, in and out.
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let mut sql = b"INSERT INTO t (b, s) VALUES (".to_vec();
        sql.extend(protocol::quote(&all));
        sql.extend(b", 'h\xc3\xa9llo \xe2\x98\x83')");
        let ok = wait(c.query(sql))?;
        assert_eq!((ok.affected_rows, ok.last_insert_id), (1, 1));
        assert!(ok.columns.is_empty());
        let ok = q("INSERT INTO t (b, s) VALUES ('', NULL)")?;
        assert_eq!(ok.last_insert_id, 2);

        // One row.
        let rs = q("SELECT b, s FROM t WHERE id = 1")?;
        assert_eq!(rs.rows.len(), 1);
        assert_eq!(rs.rows[0].get(0), Some(&all[..]));
        assert_eq!(rs.rows[0].str(1), Some("héllo ☃"));

        // NULL is not '' is not 'NULL'.
        let rs = q("SELECT NULL, '', 'NULL', s FROM t WHERE id = 2")?;
        assert_eq!(rs.rows[0].get(0), None);
        assert_eq!(rs.rows[0].get(1), Some(&b""[..]));
        assert_eq!(rs.rows[0].str(2), Some("NULL"));
        assert_eq!(rs.rows[0].get(3), None);

        // 100,000 rows (MariaDB's sequence engine).
        let rs = q("SELECT seq, CONCAT('row-', seq) FROM seq_1_to_100000")?;
        assert_eq!(rs.rows.len(), 100_000);
        let sum: u64 = rs
            .rows
            .iter()
            .map(|r| r.parse_value::<u64>(0).unwrap())
            .sum();
        assert_eq!(sum, 100_000 * 100_001 / 2);
        assert_eq!(rs.rows[99_999].str(1), Some("row-100000"));

        // Server errors are typed, and the connection goes on.
        let err = q("SELEC 1").unwrap_err();
        assert_eq!(server_code(&err), Some((1064, "42000".into())), "{err:?}");
        let err = q("INSERT INTO t (id) VALUES (1)").unwrap_err();
        assert_eq!(server_code(&err), Some((1062, "23000".into())), "{err:?}");
        let err = q("SELECT * FROM no_such_table").unwrap_err();
        assert_eq!(server_code(&err), Some((1146, "42S02".into())), "{err:?}");
        assert!(!c.closed());
        assert_eq!(q("SELECT 1")?.scalar(), Some("1"));
        wait(c.ping())?;

        // One call at a time: a second one while the first runs is refused.
        let slow = c.query("SELECT SLEEP(0.1), 5");
        let err = wait(c.query("SELECT 6")).unwrap_err();
        assert_eq!(MysqlError::of(&err), Some(&MysqlError::Busy));
        assert_eq!(wait(slow)?.rows[0].str(1), Some("5"));

        // Several result sets (a procedure): the first is returned.
        q("CREATE PROCEDURE two() BEGIN SELECT 'first'; SELECT 'second'; END")?;
        assert_eq!(q("CALL two()")?.scalar(), Some("first"));
        assert_eq!(q("SELECT 'after'")?.scalar(), Some("after"));
        wait(c.close())?;
        assert!(c.closed());
        Ok(())
    })
    .expect("queries");
}

#[test]
fn values_past_16_mb_both_ways() {
    let Some((_turn, db)) = server() else { return };
    let opts = options(&db);
    run(move || {
        let c = wait(Client::connect(opts))?;
        // A row whose payload is exactly 16 MB - 1: an empty packet follows.
        let exact = protocol::MAX_PAYLOAD - 4;
        let rs = wait(c.query(format!("SELECT REPEAT('a', {exact})")))?;
        let v = rs.rows[0].get(0).unwrap();
        assert_eq!(v.len(), exact);
        assert!(v.iter().all(|&b| b == b'a'));
        assert_eq!(wait(c.query("SELECT 1"))?.scalar(), Some("1"));
        // A query whose packet is exactly 16 MB - 1 (command byte included):
        // written with an empty packet after it.
        let head = "SELECT LENGTH('";
        let k = protocol::MAX_PAYLOAD - 1 - head.len() - "')".len();
        let sql = format!("{head}{}')", "b".repeat(k));
        assert_eq!(1 + sql.len(), protocol::MAX_PAYLOAD);
        assert_eq!(wait(c.query(sql))?.rows[0].parse_value::<usize>(0), Some(k));

        // 20 MB of arbitrary bytes written (the query is split into
        // packets) and read back (the row is joined).
        wait(c.query("CREATE TABLE big (id INT PRIMARY KEY, v LONGBLOB)"))?;
        let value = pseudo_random(20 << 20, 27);
        let mut sql = b"INSERT INTO big VALUES (1, ".to_vec();
        sql.extend(protocol::quote(&value));
        sql.push(b')');
        assert!(sql.len() > protocol::MAX_PAYLOAD, "more than one packet");
        assert_eq!(wait(c.query(sql))?.affected_rows, 1);
        let rs = wait(c.query("SELECT LENGTH(v), v, 'tail' FROM big"))?;
        assert_eq!(rs.rows[0].parse_value::<usize>(0), Some(20 << 20));
        assert!(
            rs.rows[0].get(1) == Some(&value[..]),
            "the value came back changed"
        );
        assert_eq!(rs.rows[0].str(2), Some("tail"));
        wait(c.close())
    })
    .expect("big values");
}

#[test]
fn a_query_slower_than_its_timeout_fails_and_closes_the_connection() {
    let Some((_turn, db)) = server() else { return };
    let mut opts = options(&db);
    // Generous for the quick query on a loaded machine; far below SLEEP(5).
    opts.read_timeout = Some(secs(1));
    let started = Instant::now();
    let (err, closed, after) = run(move || {
        let c = wait(Client::connect(opts))?;
        // Quicker than the bound: fine.
        wait(c.query("SELECT SLEEP(0.05)"))?;
        let err = wait(c.query("SELECT SLEEP(5)")).unwrap_err();
        let closed = c.closed();
        let after = wait(c.query("SELECT 1")).unwrap_err();
        Ok((err, closed, after))
    })
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(closed, "a timed-out connection is out of step: closed");
    assert_eq!(after.kind(), ErrorKind::StreamClosed, "{after:?}");
    assert!(started.elapsed() < secs(4), "{:?}", started.elapsed());
    assert!(started.elapsed() >= secs(1), "{:?}", started.elapsed());
}

#[test]
fn a_hundred_sleeps_run_at_once_on_one_loop() {
    let Some((_turn, db)) = server() else { return };
    let opts = options(&db);
    let (took, answers) = run(move || {
        let clients: Vec<Future<Client>> =
            (0..100).map(|_| Client::connect(opts.clone())).collect();
        let clients = clients
            .into_iter()
            .map(wait)
            .collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        let all: Vec<Future<ResultSet>> = clients
            .iter()
            .map(|c| c.query("SELECT SLEEP(0.2), CONNECTION_ID()"))
            .collect();
        let mut ids = HashSet::new();
        for f in all {
            let rs = wait(f)?;
            ids.insert(rs.rows[0].str(1).unwrap().to_owned());
        }
        Ok((started.elapsed(), ids.len()))
    })
    .unwrap();
    assert_eq!(answers, 100);
    // About 0.2 s; 100 one after the other would be 20 s. The bound is
    // loose on purpose (a loaded machine).
    assert!(took >= ms(200), "{took:?}");
    assert!(took < secs(3), "{took:?}");
}

fn pool_with(db: &MariaDb, max: usize, wait_timeout: Duration, idle: Duration) -> ConnectionPool {
    ConnectionPool::new(
        options(db),
        PoolOptions {
            max_connections: max,
            idle_timeout: idle,
            wait_timeout,
        },
    )
}

#[test]
fn pool_limits_queues_times_out_and_closes_idle_connections() {
    let Some((_turn, db)) = server() else { return };
    let fds_before = open_fds();
    let db = Rc::new(db);
    let d = db.clone();
    run(move || {
        // Five callers, two connections: three wait, all are served.
        let pool = pool_with(&d, 2, secs(10), secs(60));
        let started = Instant::now();
        let all: Vec<Future<ResultSet>> = (0..5)
            .map(|_| pool.execute("SELECT CONNECTION_ID(), SLEEP(0.2)"))
            .collect();
        greenlet::moment()?;
        let busy = pool.stats();
        let mut ids = HashSet::new();
        for f in all {
            ids.insert(wait(f)?.rows[0].str(0).unwrap().to_owned());
        }
        assert_eq!(
            busy,
            PoolStats {
                open: 2,
                idle: 0,
                waiting: 3
            }
        );
        assert_eq!(ids.len(), 2, "only two connections: {ids:?}");
        assert!(started.elapsed() >= ms(600), "three rounds of 0.2 s");
        assert_eq!(
            pool.stats(),
            PoolStats {
                open: 2,
                idle: 2,
                waiting: 0
            }
        );

        // Errors give the connection back too.
        let err = wait(pool.execute("SELEC 1")).unwrap_err();
        assert_eq!(server_code(&err).map(|c| c.0), Some(1064));
        assert_eq!(
            pool.stats(),
            PoolStats {
                open: 2,
                idle: 2,
                waiting: 0
            }
        );
        pool.close();
        let err = wait(pool.execute("SELECT 1")).unwrap_err();
        assert_eq!(MysqlError::of(&err), Some(&MysqlError::PoolClosed));

        // All lent: a caller waits, then gives up after the wait timeout.
        let pool = pool_with(&d, 1, ms(150), secs(60));
        let held = wait(pool.connection())?;
        let started = Instant::now();
        let err = wait(pool.execute("SELECT 1")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(
            MysqlError::of(&err),
            Some(&MysqlError::WaitTimeout(ms(150)))
        );
        assert!(started.elapsed() >= ms(150));
        assert_eq!(pool.stats().waiting, 0);
        // A waiter gets the one given back.
        let queued = pool.execute("SELECT 'served'");
        greenlet::moment()?;
        assert_eq!(pool.stats().waiting, 1);
        drop(held);
        assert_eq!(wait(queued)?.scalar(), Some("served"));
        assert_eq!(
            pool.stats(),
            PoolStats {
                open: 1,
                idle: 1,
                waiting: 0
            }
        );
        pool.close();

        // Idle for longer than idle_timeout: closed by the pool.
        let pool = pool_with(&d, 3, secs(10), ms(200));
        let three: Vec<_> = (0..3).map(|_| pool.execute("SELECT 1")).collect();
        for f in three {
            wait(f)?;
        }
        assert_eq!(
            pool.stats(),
            PoolStats {
                open: 3,
                idle: 3,
                waiting: 0
            }
        );
        greenlet::sleep(ms(500))?;
        assert_eq!(
            pool.stats(),
            PoolStats {
                open: 0,
                idle: 0,
                waiting: 0
            }
        );
        assert_eq!(wait(pool.execute("SELECT 2"))?.scalar(), Some("2"));
        pool.close();
        Ok(())
    })
    .expect("pool");
    assert_eq!(open_fds(), fds_before, "closed pools leave no socket open");
}

#[test]
fn pool_transactions_return_connections_on_every_path() {
    let Some((_turn, db)) = server() else { return };
    let db = Rc::new(db);
    let d = db.clone();
    run(move || {
        let pool = pool_with(&d, 4, secs(10), secs(60));
        wait(pool.execute("CREATE TABLE tx (id INT PRIMARY KEY) ENGINE=InnoDB"))?;
        let count = |pool: &ConnectionPool| -> Result<String, Error> {
            Ok(wait(pool.execute("SELECT COUNT(*) FROM tx"))?
                .scalar()
                .unwrap()
                .to_owned())
        };

        // Commit: kept; the connection goes back.
        let tx = wait(pool.begin())?;
        tx.execute_here("INSERT INTO tx VALUES (1)")?;
        wait(tx.execute("INSERT INTO tx VALUES (2)"))?;
        wait(tx.commit())?;
        assert_eq!(count(&pool)?, "2");
        assert_eq!(pool.stats().open, pool.stats().idle);

        // Rollback: gone.
        let tx = wait(pool.begin())?;
        tx.execute_here("INSERT INTO tx VALUES (3)")?;
        wait(tx.rollback())?;
        assert_eq!(count(&pool)?, "2");

        // An error inside, then rollback: the connection is still good.
        let tx = wait(pool.begin())?;
        tx.execute_here("INSERT INTO tx VALUES (4)")?;
        let err = tx.execute_here("INSERT INTO tx VALUES (1)").unwrap_err();
        assert_eq!(server_code(&err).map(|c| c.0), Some(1062));
        wait(tx.rollback())?;
        assert_eq!(count(&pool)?, "2");
        let stats = pool.stats();
        assert_eq!(stats.open, stats.idle, "{stats:?}");

        // Dropped without either (an early return, say): its connection is
        // closed, not lent again mid-transaction, and the server rolls back.
        let open = pool.stats().open;
        {
            let tx = wait(pool.begin())?;
            tx.execute_here("INSERT INTO tx VALUES (5)")?;
        }
        assert_eq!(pool.stats().open, open - 1);
        greenlet::sleep(ms(100))?;
        assert_eq!(count(&pool)?, "2");

        // A connection killed by the server while idle is not lent again.
        let conn = wait(pool.connection())?;
        let id = conn.client().connection_id();
        drop(conn);
        let killer = wait(Client::connect(options(&d)))?;
        wait(killer.query(format!("KILL {id}")))?;
        // The idle stream hears the server close it; the pool skips it.
        greenlet::sleep(ms(500))?;
        let rs = wait(pool.execute("SELECT CONNECTION_ID()"))?;
        assert_ne!(rs.scalar(), Some(id.to_string().as_str()));

        // A connection dropped while its query runs is closed, not reused.
        let conn = wait(pool.connection())?;
        let pending = conn.query("SELECT SLEEP(1)");
        let open = pool.stats().open;
        drop(conn);
        assert_eq!(pool.stats().open, open - 1);
        assert!(wait(pending).is_err());

        // From the generator form too.
        let p = pool.clone();
        let n = wait(gen::coroutine(gen::stackful(move |co| {
            let rs = co.wait(p.execute("SELECT COUNT(*) FROM tx"))?;
            Ok(rs.scalar().map(str::to_owned))
        })))?;
        assert_eq!(n.as_deref(), Some("2"));
        wait(killer.close())?;
        pool.close();
        Ok(())
    })
    .expect("transactions");
}

#[test]
fn a_server_killed_mid_query_fails_the_call_and_the_pool_recovers() {
    let Some((_turn, db)) = server() else { return };
    let fds_before = open_fds();
    let db = Rc::new(RefCell::new(db));
    let d = db.clone();
    run(move || {
        let opts = options(&d.borrow());
        let pool = ConnectionPool::new(
            opts,
            PoolOptions {
                max_connections: 4,
                idle_timeout: secs(60),
                wait_timeout: secs(5),
            },
        );
        // Two idle connections, and one in a long query.
        let warm: Vec<_> = (0..2).map(|_| pool.execute("SELECT 1")).collect();
        for f in warm {
            wait(f)?;
        }
        let started = Instant::now();
        let pending = pool.execute("SELECT SLEEP(30)");
        let killer = d.clone();
        IOLoop::current().call_later(ms(300), move || killer.borrow_mut().kill());
        let err = wait(pending).expect_err("the server died under the query");
        assert!(
            matches!(err.kind(), ErrorKind::StreamClosed | ErrorKind::Io),
            "{err:?}"
        );
        assert!(started.elapsed() < secs(10));
        // While it is down: a plain connect error, and nothing kept.
        greenlet::sleep(ms(100))?;
        let err = wait(pool.execute("SELECT 1")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
        // Back up on the same port: the pool reconnects.
        d.borrow_mut().restart().expect("restart mariadbd");
        let rs = wait(pool.execute("SELECT 'again'"))?;
        assert_eq!(rs.scalar(), Some("again"));
        assert_eq!(
            pool.stats(),
            PoolStats {
                open: 1,
                idle: 1,
                waiting: 0
            }
        );
        pool.close();
        Ok(())
    })
    .expect("recovers");
    // Every socket of the dead server's connections, and of the new one, closed.
    assert_eq!(open_fds(), fds_before);
}

/// A one-connection fake server that proposes `caching_sha2_password`
/// (which MariaDB does not implement), answers the client's scramble with
/// `0x01 verdict` (3: fast auth succeeded, 4: full auth needed) and, after
/// 3, an OK. Returns the scramble the client sent.
fn fake_caching_sha2_server(
    verdict: u8,
) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(secs(10))).unwrap();
        let nonce = b"abcdefghijklmnopqrst";
        let caps = protocol::CLIENT_CAPABILITIES | protocol::CLIENT_CONNECT_WITH_DB;
        let g = common::mysql_greeting(1, nonce, caps, "caching_sha2_password");
        let send = |s: &mut std::net::TcpStream, payload: &[u8], seq: u8| {
            s.write_all(&protocol::frame(payload, seq).0).unwrap();
        };
        send(&mut s, &g, 0);
        let mut h = [0; 4];
        s.read_exact(&mut h).unwrap();
        let (len, seq) = protocol::parse_header(&h);
        assert_eq!(seq, 1);
        let mut response = vec![0; len];
        s.read_exact(&mut response).unwrap();
        let mut r = protocol::Reader::new(&response);
        r.bytes(32, "fixed part").unwrap();
        assert_eq!(r.nul_str(), b"native");
        let n = r.u8("auth length").unwrap() as usize;
        let auth = r.bytes(n, "auth").unwrap().to_vec();
        assert_eq!(r.nul_str(), mariadb::DATABASE.as_bytes());
        assert_eq!(r.nul_str(), b"caching_sha2_password");
        send(&mut s, &[0x01, verdict], 2);
        if verdict == 3 {
            send(&mut s, &[0, 0, 0, 2, 0, 0, 0], 3);
            // The client's COM_QUIT, then its close.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            assert_eq!(rest, [1, 0, 0, 0, protocol::COM_QUIT]);
        }
        auth
    });
    (addr, server)
}

#[test]
fn caching_sha2_password_fast_path_against_a_fake_server() {
    // No MariaDB needed (it has no caching_sha2_password); in turn with the
    // others all the same, for the descriptor count.
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (addr, server) = fake_caching_sha2_server(3);
    let mut opts = Options::new(addr, "native", "secret");
    opts.database = Some(mariadb::DATABASE.to_owned());
    let plugin = run(move || {
        let c = wait(Client::connect(opts))?;
        let plugin = c.auth_plugin();
        wait(c.close())?;
        Ok(plugin)
    })
    .expect("fast auth succeeds");
    assert_eq!(plugin.as_deref(), Some("caching_sha2_password"));
    // The scramble sent: the known vector (see protocol.rs's unit test).
    let auth = server.join().expect("fake server");
    let hex: String = auth.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "c76e2898612a4cf042c77fa8c4702c4c64c0c2c557c53c4d75595aaa6abae809"
    );

    // Full authentication (the server has no cached entry) needs TLS or
    // RSA; told not to ask for the server's key, and without one, the
    // client refuses to send the password (tests/tormysql_auth.rs has the
    // TLS and RSA paths).
    let (addr, server) = fake_caching_sha2_server(4);
    let mut opts = Options::new(addr, "native", "secret");
    opts.database = Some(mariadb::DATABASE.to_owned());
    opts.get_server_public_key = false;
    let err = run(move || wait(Client::connect(opts))).expect_err("full auth is refused");
    assert!(
        matches!(MysqlError::of(&err), Some(MysqlError::Insecure(what)) if what.contains("caching_sha2_password")),
        "{err:?}"
    );
    server.join().expect("fake server");
}

#[test]
fn mariadb_ed25519_accounts() {
    // MariaDB's own plugin, against the real server: the account's plugin
    // is `ed25519`, the client's `client_ed25519` (the server switches to
    // it from the native answer, with a 32-byte nonce to sign). Passwords
    // of any length are seeds (SHA-512 of them), so a short, an exactly
    // 32-byte and a long one.
    let Some((_turn, db)) = server() else { return };
    let opts = options(&db);
    let fds_before = open_fds();
    let passwords = [
        "ed-secret".to_owned(),
        "0123456789abcdef0123456789abcdef".to_owned(),
        "a long ed25519 password ".repeat(8),
    ];
    let (users, wrong) = run(move || {
        let admin = wait(Client::connect(opts.clone()))?;
        // Already loaded is fine (error 1968 on a reused data directory).
        if let Err(err) = wait(admin.query("INSTALL SONAME 'auth_ed25519'")) {
            assert_eq!(server_code(&err).map(|c| c.0), Some(1968), "{err}");
        }
        let mut users = Vec::new();
        for (i, password) in passwords.iter().enumerate() {
            wait(admin.query(format!(
                "CREATE USER 'ed{i}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('{password}')"
            )))?;
            let mut o = opts.clone();
            o.user = format!("ed{i}");
            o.password = password.clone();
            o.database = None;
            // Asking for client_ed25519 up front changes nothing: its nonce
            // only comes with the switch.
            if i == 1 {
                o.auth_plugin = Some("client_ed25519".into());
            }
            let client = wait(Client::connect(o))?;
            let who = wait(client.query("SELECT CURRENT_USER()"))?;
            users.push((
                client.auth_plugin().unwrap_or_default(),
                who.scalar().unwrap_or_default().to_owned(),
            ));
            wait(client.close())?;
        }
        let mut o = opts.clone();
        o.user = "ed0".into();
        o.password = "ed-secreT".into();
        o.database = None;
        let wrong = wait(Client::connect(o)).map(drop).unwrap_err();
        wait(admin.close())?;
        Ok((users, wrong))
    })
    .expect("ed25519 logins");
    for (i, (plugin, user)) in users.iter().enumerate() {
        assert_eq!(plugin, "client_ed25519");
        assert_eq!(user, &format!("ed{i}@%"));
    }
    assert_eq!(
        server_code(&wrong),
        Some((1045, "28000".to_owned())),
        "{wrong}"
    );
    assert_eq!(open_fds(), fds_before);
}

#[test]
fn tls_connections_and_an_account_that_requires_them() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !need::ready(&[Peer::Mariadb]) {
        return;
    }
    let certs = test_tls::Certs::new("squall mariadb test CA");
    let db = MariaDb::start_with_tls(&certs.server.cert, &certs.server.key)
        .expect("cannot start mariadbd with TLS");
    let trusted = squall::tls::ClientOptions::new().ca_certs(certs.ca.cert.as_bytes().to_vec());
    let stranger = test_tls::Certs::new("someone else");
    let untrusted =
        squall::tls::ClientOptions::new().ca_certs(stranger.ca.cert.as_bytes().to_vec());
    let plain = options(&db);
    let fds_before = open_fds();
    let (version, plain_is_tls, refused, bad_cert) = run(move || {
        // A normal account, over TLS: the session says which version.
        let mut o = plain.clone();
        o.ssl = Some(trusted.clone());
        let client = wait(Client::connect(o.clone()))?;
        assert_eq!(client.is_tls(), Some(true));
        let status = wait(client.query("SHOW SESSION STATUS LIKE 'Ssl_version'"))?;
        let version = status.rows[0].str(1).unwrap_or_default().to_owned();
        assert_eq!(wait(client.query("SELECT 40 + 2"))?.scalar(), Some("42"));
        wait(client.close())?;
        let client = wait(Client::connect(plain.clone()))?;
        let plain_is_tls = client.is_tls();
        wait(client.close())?;
        // The TLS-only account: refused in the clear, let in over TLS.
        let (user, password) = mariadb::TLS_USER;
        let mut tls_user = Options::new(plain.addr, user, password);
        tls_user.connect_timeout = secs(10);
        let refused = wait(Client::connect(tls_user.clone()))
            .map(drop)
            .unwrap_err();
        tls_user.ssl = Some(trusted);
        let client = wait(Client::connect(tls_user.clone()))?;
        assert_eq!(
            wait(client.query("SELECT CURRENT_USER()"))?
                .scalar()
                .map(|u| u.starts_with(user)),
            Some(true)
        );
        wait(client.close())?;
        // A server certificate we do not trust: a TLS error, not a login.
        tls_user.ssl = Some(untrusted);
        let bad_cert = wait(Client::connect(tls_user)).map(drop).unwrap_err();
        Ok((version, plain_is_tls, refused, bad_cert))
    })
    .unwrap();
    assert!(version.starts_with("TLSv1."), "{version:?}");
    assert_eq!(plain_is_tls, Some(false));
    assert_eq!(
        server_code(&refused).map(|(code, _)| code),
        Some(1045),
        "{refused}"
    );
    assert_eq!(bad_cert.kind(), ErrorKind::Tls, "{bad_cert}");
    assert_eq!(open_fds(), fds_before);
}

#[test]
fn the_client_and_the_pool_from_an_async_block() {
    // Issue #27: the same client, awaited from a native coroutine instead of
    // a greenlet or a generator (each call still runs the driver in a child
    // greenlet; the coroutine only awaits its Future).
    let Some((_turn, db)) = server() else { return };
    let opts = options(&db);
    let fds_before = open_fds();
    let io_loop = IOLoop::new().expect("loop");
    io_loop.make_current();
    let got = io_loop.run_sync(
        move || {
            gen::coroutine(async move {
                let client = Client::connect(opts.clone()).await?;
                let seven = client.query("SELECT 7").await?;
                assert_eq!(seven.scalar(), Some("7"));
                // One call at a time per client: a second one fails at once.
                let first = client.query("SELECT SLEEP(0.05)");
                let err = client.query("SELECT 1").await.unwrap_err();
                assert!(
                    matches!(MysqlError::of(&err), Some(MysqlError::Busy)),
                    "{err}"
                );
                first.await?;
                client.close().await?;

                // asyncio.gather over the pool: three sleeps side by side.
                let pool = ConnectionPool::new(opts, PoolOptions::default());
                let started = Instant::now();
                let all = gen::multi(
                    (1..=3)
                        .map(|n| pool.execute(format!("SELECT {n} + SLEEP(0.3)")))
                        .collect(),
                )
                .await?;
                let side_by_side = started.elapsed();
                let values: Vec<_> = all
                    .iter()
                    .map(|rs| rs.scalar().map(str::to_owned))
                    .collect();
                assert_eq!(
                    values,
                    [Some("1".into()), Some("2".into()), Some("3".into())]
                );
                assert!(
                    side_by_side < ms(850),
                    "one after another: {side_by_side:?}"
                );

                // A transaction, and a server error as a typed error.
                pool.execute("CREATE TEMPORARY TABLE IF NOT EXISTS t_async (n INT)")
                    .await?;
                let tx = pool.begin().await?;
                tx.execute("CREATE TABLE IF NOT EXISTS t_async_tx (n INT)")
                    .await?;
                tx.execute("INSERT INTO t_async_tx VALUES (41), (1)")
                    .await?;
                let sum = tx.execute("SELECT SUM(n) FROM t_async_tx").await?;
                assert_eq!(sum.scalar(), Some("42"));
                tx.rollback().await?;
                let err = pool
                    .execute("SELECT * FROM no_such_table")
                    .await
                    .unwrap_err();
                assert_eq!(server_code(&err).map(|(code, _)| code), Some(1146));

                // asyncio.wait_for: the await is given up after 50 ms; the
                // child keeps its connection until the query ends (a
                // MySQL query cannot be taken back), then the pool has it.
                let slow = gen::timeout(ms(50), pool.execute("SELECT SLEEP(0.3)")).await;
                assert_eq!(slow.unwrap_err().kind(), ErrorKind::Timeout);
                let after = pool.execute("SELECT 'still serving'").await?;
                assert_eq!(after.scalar(), Some("still serving"));
                gen::sleep(ms(400)).await?;
                let stats = pool.stats();
                pool.close();
                Ok::<_, Error>(stats)
            })
        },
        Some(secs(60)),
    );
    io_loop.close();
    IOLoop::clear_current();
    let stats = got.expect("async block");
    // Nothing lent or awaited when it closed: every connection came back.
    assert_eq!((stats.open, stats.waiting), (stats.idle, 0), "{stats:?}");
    assert_eq!(open_fds(), fds_before, "every socket closed");
}
