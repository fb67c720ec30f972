//! The thread's queue of home wakes (`std` wakers woken on the loop's
//! thread) at its edges: a drain dropped unrun with its closed loop, a
//! block whose drop panics when its queued wake was its last handle, a
//! wake from a block dropped as the thread's table goes at thread end.
//! Each failed before its fix (found in review).

mod common;

use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use common::{ms, secs, yield_now};
use squall::{gen, Error, IOLoop};

fn current_loop() -> IOLoop {
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    io_loop
}

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("block drop panics");
        }
    }
}

/// A drain queued on a loop that is closed before it runs: the thread's
/// next loop still drains its wakes (it did not: the drain was marked
/// scheduled for good).
#[test]
fn a_drain_dropped_with_its_closed_loop_does_not_stall_the_next_loop() {
    {
        let io_loop = current_loop();
        let _f = gen::coroutine(async {
            yield_now().await;
            Ok::<_, Error>(())
        });
        io_loop.close();
    }
    let io_loop = current_loop();
    let got = io_loop.run_sync(
        || {
            gen::coroutine(async {
                yield_now().await;
                Ok::<_, Error>(7)
            })
        },
        Some(secs(2)),
    );
    assert_eq!(got.unwrap(), 7);
}

/// The queued wake holds the coroutine's last handle: its block's drop,
/// which panics, runs in the drain; the panic is reported, and the rest of
/// the queue is still delivered.
#[test]
fn a_block_drop_panic_in_the_drain_does_not_strand_the_next_wake() {
    let io_loop = current_loop();
    let got = io_loop.run_sync(
        || {
            drop(gen::coroutine(async {
                let _p = PanicOnDrop;
                yield_now().await;
                std::future::pending::<()>().await;
                Ok::<_, Error>(())
            }));
            gen::coroutine(async {
                yield_now().await;
                Ok::<_, Error>(7)
            })
        },
        Some(secs(2)),
    );
    assert_eq!(got.unwrap(), 7);
}

/// A waker woken (at home) by a block dropped with the thread's table at
/// thread end: nothing to wake, no panic (a panic in a thread-local's
/// destructor aborts the process).
#[test]
fn a_wake_at_home_during_thread_end_does_not_abort() {
    let ok = std::thread::spawn(|| {
        let io_loop = current_loop();
        let slot_a: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
        let slot_b: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
        struct WakeOnDrop(Arc<Mutex<Option<Waker>>>);
        impl Drop for WakeOnDrop {
            fn drop(&mut self) {
                if let Some(w) = self.0.lock().unwrap().take() {
                    w.wake();
                }
            }
        }
        let (a, b) = (slot_a.clone(), slot_b.clone());
        drop(gen::coroutine(async move {
            let s = a;
            std::future::poll_fn(|cx| {
                *s.lock().unwrap() = Some(cx.waker().clone());
                Poll::<()>::Pending
            })
            .await;
            Ok::<_, Error>(())
        }));
        drop(gen::coroutine(async move {
            let _w = WakeOnDrop(slot_a);
            let s = b;
            std::future::poll_fn(|cx| {
                *s.lock().unwrap() = Some(cx.waker().clone());
                Poll::<()>::Pending
            })
            .await;
            Ok::<_, Error>(())
        }));
        let _ = io_loop.run_sync(
            || {
                gen::coroutine(async {
                    gen::sleep(ms(1)).await?;
                    Ok::<_, Error>(())
                })
            },
            Some(secs(2)),
        );
        // B's waker stays in slot_b (a cycle-free leak of B in the
        // table): B is dropped with the table at thread end.
        std::mem::forget(slot_b);
    })
    .join();
    assert!(ok.is_ok());
}
