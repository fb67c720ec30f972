//! The client and the pool awaited from a native coroutine (an `async`
//! block) instead of a greenlet or a generator.

use super::*;

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
