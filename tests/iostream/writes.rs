//! Writes: empty ones, a large write to a slow reader, completion order,
//! and the futures of concurrent producers.

use super::*;

#[test]
fn write_zero_bytes() {
    AsyncTest::new().run(|_| {
        let (rs, ws) = unix_pair();
        value_now(&ws.write(Vec::new()));
        ws.close();
        rs.close();
        Future::ready(())
    });
}

#[test]
fn hundred_mib_write_to_a_slow_reader_arrives_intact() {
    AsyncTest::new().timeout(Duration::from_secs(120)).run(|_| {
        const SIZE: usize = 100 * 1024 * 1024;
        let (client, server) = std_tcp_pair();
        let ws = IOStream::new(client).unwrap();
        let data = pseudo_random(SIZE, 1);
        let sum = checksum(&data);
        // The reader dawdles at first (so the writer has to queue and wait
        // for the socket), then reads as fast as it can.
        let reader = std::thread::spawn(move || {
            let mut server = server;
            let mut received = Vec::with_capacity(SIZE);
            let mut chunk = vec![0u8; 64 * 1024];
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(2));
                let n = server.read(&mut chunk).unwrap();
                received.extend_from_slice(&chunk[..n]);
            }
            server.read_to_end(&mut received).unwrap();
            received
        });
        let written = ws.write(data);
        assert!(
            ws.writing(),
            "a 100 MiB write should not fit in the socket at once"
        );
        and_then(&written, move |()| {
            assert!(!ws.writing());
            ws.close();
            let received = reader.join().unwrap();
            assert_eq!(received.len(), SIZE);
            assert_eq!(checksum(&received), sum, "the data arrived corrupted");
            Future::ready(())
        })
    });
}

#[test]
fn writes_complete_in_order() {
    // Many writes queue while the peer does not read; they reach it in order,
    // and their futures complete in order.
    AsyncTest::new().timeout(Duration::from_secs(30)).run(|_| {
        let (rs, ws) = unix_pair();
        let order = Rc::new(RefCell::new(Vec::new()));
        let mut expected = Vec::new();
        let mut futures = Vec::new();
        for i in 0..2000u32 {
            let chunk: Vec<u8> = format!("<{i}:{}>", "x".repeat(i as usize % 977)).into_bytes();
            expected.extend_from_slice(&chunk);
            let f = ws.write(chunk);
            let order = order.clone();
            f.add_done_callback(move |f: &Future<()>| {
                assert!(f.error().is_none());
                order.borrow_mut().push(i);
            });
            futures.push(f);
        }
        assert!(ws.writing(), "the writes should have queued");
        assert!(futures.last().map(|f| !f.done()).unwrap());
        let all = rs.read_bytes(expected.len());
        and_then(&all, move |data| {
            assert!(data == expected, "the bytes arrived out of order");
            and_then(&join_all(futures), move |results| {
                assert!(results.iter().all(Result::is_ok));
                let order = order.borrow();
                assert_eq!(order.len(), 2000);
                assert!(
                    order.windows(2).all(|w| w[0] < w[1]),
                    "futures out of order"
                );
                Future::ready(())
            })
        })
    });
}

#[test]
fn concurrent_producers_futures_are_never_orphaned() {
    // Tornado's test_future_write: several producers each await their own
    // writes while one consumer reads.
    AsyncTest::new().timeout(Duration::from_secs(30)).run(|_| {
        let (rs, ws) = unix_pair();
        let (m, n, producers) = (5000usize, 100usize, 10usize);
        let total = m * n * producers;
        fn produce(ws: IOStream, left: usize, m: usize, done: Future<()>) {
            if left == 0 {
                done.try_set_result(());
                return;
            }
            ws.write(vec![b'x'; m])
                .add_done_callback(move |f: &Future<()>| match f.error() {
                    Some(e) => {
                        done.try_set_error(e);
                    }
                    None => produce(ws, left - 1, m, done),
                });
        }
        let mut all = Vec::new();
        for _ in 0..producers {
            let done = Future::new();
            produce(ws.clone(), n, m, done.clone());
            all.push(done);
        }
        let consumed = rs.read_bytes(total);
        and_then(&consumed, move |data| {
            assert_eq!(data.len(), total);
            and_then(&join_all(all), |results| {
                for r in results {
                    r.unwrap();
                }
                Future::ready(())
            })
        })
    });
}
