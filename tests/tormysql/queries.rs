//! One client's queries: result sets, NULLs and binary strings, server
//! errors, values past one 16 MB packet, a read timeout, and a hundred
//! clients' queries side by side on one loop.

use super::*;

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
