//! The connection pool: its limit, the queue and wait timeout, idle
//! connections closed, transactions giving their connection back on every
//! path, and recovery from a server killed mid-query.

use super::*;

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
