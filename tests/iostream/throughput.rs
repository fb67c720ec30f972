//! Read throughput through a socketpair (a floor in release builds).

use super::*;

/// Reads `total` bytes through a socketpair in 64 KiB `read_bytes` calls, a
/// thread writing; returns the rate. A read satisfied from the buffer is
/// taken in a loop, not by recursion.
fn read_throughput(total: usize) -> f64 {
    const CHUNK: usize = 64 * 1024;
    let (a, mut b) = UnixStream::pair().unwrap();
    let writer = std::thread::spawn(move || {
        let block = pseudo_random(1 << 20, 3);
        let mut left = total;
        while left > 0 {
            let n = left.min(block.len());
            b.write_all(&block[..n]).unwrap();
            left -= n;
        }
        checksum(&block)
    });
    let started = Instant::now();
    let first_mib_sum = AsyncTest::new()
        .timeout(Duration::from_secs(120))
        .run(move |_| {
            let rs = IOStream::new(a).unwrap();
            let done = Future::new();
            struct St {
                rs: IOStream,
                got: usize,
                total: usize,
                first: Vec<u8>,
                max_buffered: usize,
                done: Future<u64>,
            }
            fn pump(st: Rc<RefCell<St>>) {
                loop {
                    let f = {
                        let s = st.borrow();
                        if s.got == s.total {
                            eprintln!("most buffered: {} KiB", s.max_buffered >> 10);
                            s.done.try_set_result(checksum(&s.first));
                            return;
                        }
                        s.rs.read_bytes(CHUNK.min(s.total - s.got))
                    };
                    if !f.done() {
                        let st = st.clone();
                        f.add_done_callback(move |f: &Future<Vec<u8>>| {
                            take_chunk(&st, f);
                            pump(st);
                        });
                        return;
                    }
                    take_chunk(&st, &f);
                }
            }
            fn take_chunk(st: &Rc<RefCell<St>>, f: &Future<Vec<u8>>) {
                let chunk = f.take_result().expect("read failed");
                let mut s = st.borrow_mut();
                assert_eq!(chunk.len(), CHUNK.min(s.total - s.got));
                if s.first.len() < 1 << 20 {
                    s.first.extend_from_slice(&chunk);
                }
                s.got += chunk.len();
                s.max_buffered = s.max_buffered.max(s.rs.buffered());
            }
            let st = Rc::new(RefCell::new(St {
                rs,
                got: 0,
                total,
                first: Vec::new(),
                max_buffered: 0,
                done: done.clone(),
            }));
            pump(st);
            done
        });
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let block_sum = writer.join().unwrap();
    if total >= 1 << 20 {
        assert_eq!(first_mib_sum, block_sum, "the first MiB arrived corrupted");
    }
    rate
}

#[test]
fn read_bytes_throughput() {
    // 1 GiB in release builds, where it should run at several GB/s; 128 MiB
    // in debug builds, only for correctness.
    let total = if cfg!(debug_assertions) {
        128 << 20
    } else {
        1 << 30
    };
    let rate = read_throughput(total);
    eprintln!(
        "read_bytes(64 KiB) over a socketpair: {:.2} GB/s ({} MiB)",
        rate / 1e9,
        total >> 20
    );
    if !cfg!(debug_assertions) {
        assert!(rate > 1e9, "only {:.2} GB/s", rate / 1e9);
    }
}
