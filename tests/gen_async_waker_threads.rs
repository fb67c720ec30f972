//! An `async` coroutine's counting waker (src/gen/counting.rs) under real
//! threads: clones made, woken (by value and by reference) and dropped on
//! worker threads while the home thread polls, finishes and reuses shells.
//! What must hold: every wake that matters arrives (no coroutine stranded),
//! a coroutine whose clones all went unwoken is dropped (none held for
//! good), and nothing a clone of one coroutine does (a late wake, a late
//! "last clone gone") reaches the next coroutine on a reused shell (no
//! stray poll, no hold let go of while its own clone is out).
//! (Written in review; each test names what it checks.)

mod common;

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{ms, secs};
use squall::{gen, Error, IOLoop};

/// Rounds per test (small under Miri, where a thread switch is costly).
const ROUNDS: usize = if cfg!(miri) { 6 } else { 1500 };

type Job = Box<dyn FnOnce() + Send>;

/// A few worker threads, fed jobs through one channel.
struct Pool {
    tx: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(n: usize) -> Pool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..n)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || loop {
                    let job = rx.lock().unwrap().recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
            })
            .collect();
        Pool {
            tx: Some(tx),
            threads,
        }
    }

    fn send(&self, job: impl FnOnce() + Send + 'static) {
        self.tx.as_ref().unwrap().send(Box::new(job)).unwrap();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        drop(self.tx.take());
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
    }
}

/// A foreign future: its first poll hands a clone of its waker to `job`
/// (run on a worker); ready once `ready` is set (a wake before it, which
/// is legal, only polls it again).
struct Handoff {
    job: Option<Box<dyn FnOnce(Waker) + Send>>,
    pool: Rc<Pool>,
    ready: Arc<AtomicBool>,
}

impl std::future::Future for Handoff {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.ready.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if let Some(job) = self.job.take() {
            let waker = cx.waker().clone();
            self.pool.send(move || job(waker));
        }
        Poll::Pending
    }
}

/// Counts its drop (the coroutine's block went).
struct Guard(Rc<Cell<usize>>);
impl Drop for Guard {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A future that only its keeper wakes: it keeps a clone of its waker at
/// home (in `kept`), and any poll but the first before `allowed` is a
/// stray wake, counted in `stray`.
struct Strict {
    first: bool,
    allowed: Rc<Cell<bool>>,
    stray: Rc<Cell<usize>>,
    kept: Rc<RefCell<Vec<Waker>>>,
}

impl std::future::Future for Strict {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::take(&mut self.first) {
            self.kept.borrow_mut().push(cx.waker().clone());
            return Poll::Pending;
        }
        if self.allowed.get() {
            return Poll::Ready(());
        }
        self.stray.set(self.stray.get() + 1);
        Poll::Pending
    }
}

/// What a worker does with the clone it was handed (and the flag).
fn worker_job(
    mode: usize,
    side: &Arc<Mutex<Option<mpsc::Sender<Job>>>>,
) -> Box<dyn FnOnce(Waker, Arc<AtomicBool>) + Send> {
    let side = side.lock().unwrap().clone();
    match mode {
        // Ready, woken by value.
        0 => Box::new(|w, r| {
            r.store(true, Ordering::Release);
            w.wake();
        }),
        // A second clone; both woken by reference, dropped apart.
        1 => Box::new(|w, r| {
            let c = w.clone();
            r.store(true, Ordering::Release);
            w.wake_by_ref();
            drop(w);
            c.wake_by_ref();
            drop(c);
        }),
        // One clone dropped first (not the last), the other woken by value.
        2 => Box::new(|w, r| {
            let c = w.clone();
            drop(w);
            std::thread::yield_now();
            r.store(true, Ordering::Release);
            c.wake();
        }),
        // A stray wake before ready (legal), then ready and woken; a clone
        // dropped on the other worker at the same time.
        3 => Box::new(move |w, r| {
            w.wake_by_ref();
            let c = w.clone();
            if let Some(side) = side {
                let _ = side.send(Box::new(move || drop(c)));
            }
            r.store(true, Ordering::Release);
            w.wake_by_ref();
            drop(w);
        }),
        // Given up: every clone dropped unwoken, on both workers.
        _ => Box::new(move |w, _r| {
            let c = w.clone();
            if let Some(side) = side {
                let _ = side.send(Box::new(move || drop(c)));
            }
            drop(w);
        }),
    }
}

fn current_loop() -> IOLoop {
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    io_loop
}

/// Turns the loop until `done` or `limit` (real clock).
fn turn_until(io_loop: &IOLoop, limit: Duration, done: impl Fn() -> bool + 'static) {
    let deadline = Instant::now() + limit;
    let done = Rc::new(done);
    while !done() && Instant::now() < deadline {
        io_loop
            .run_sync(
                || {
                    gen::coroutine(async {
                        gen::sleep(ms(1)).await?;
                        Ok::<_, Error>(())
                    })
                },
                Some(secs(5)),
            )
            .unwrap();
    }
}

/// Many coroutines whose waker clones are woken and dropped on workers,
/// interleaved with coroutines that finish in their first poll (shells
/// reused) and ones whose clone escapes in their first poll: every
/// coroutine that is woken after its flag ends, every one given up is
/// dropped, and a coroutine whose waker only its keeper holds is never
/// polled by a stray wake.
#[test]
fn wakes_and_drops_from_workers_strand_nothing_leak_nothing_and_stray_nowhere() {
    let io_loop = current_loop();
    let pool = Rc::new(Pool::new(2));
    // A second handle on the pool's channel, for jobs that send jobs.
    let side: Arc<Mutex<Option<mpsc::Sender<Job>>>> =
        Arc::new(Mutex::new(pool.tx.as_ref().cloned()));
    let ended = Rc::new(Cell::new(0usize));
    let dropped = Rc::new(Cell::new(0usize));
    let stray = Rc::new(Cell::new(0usize));
    let allowed = Rc::new(Cell::new(false));
    let kept: Rc<RefCell<Vec<Waker>>> = Rc::new(RefCell::new(Vec::new()));
    let strict_ended = Rc::new(Cell::new(0usize));
    let mut futures = Vec::new();
    let mut expect_end = 0;
    let mut strict = 0;
    for i in 0..ROUNDS {
        let mode = i % 5;
        let guard = Guard(dropped.clone());
        let ready = Arc::new(AtomicBool::new(false));
        let job = worker_job(mode, &side);
        let r = ready.clone();
        let handoff = Handoff {
            job: Some(Box::new(move |w| job(w, r))),
            pool: pool.clone(),
            ready,
        };
        let e = ended.clone();
        let f = gen::coroutine(async move {
            let _guard = guard;
            handoff.await;
            e.set(e.get() + 1);
            Ok::<_, Error>(())
        });
        if mode != 4 {
            expect_end += 1;
        }
        // Half the futures kept, half dropped (held by the table only).
        if mode == 4 || i % 2 == 1 {
            drop(f);
        } else {
            futures.push(f);
        }
        // Shell churn: one that finishes at once, one whose clone escapes
        // to a worker (woken there, or dropped) as it finishes at once.
        gen::coroutine(async { Ok(0) }).result().unwrap();
        let p = pool.clone();
        let by_ref = i % 3 == 0;
        gen::coroutine(std::future::poll_fn(move |cx| {
            let w = cx.waker().clone();
            p.send(move || {
                if by_ref {
                    w.wake_by_ref();
                }
                drop(w);
            });
            Poll::Ready(Ok(0))
        }))
        .result()
        .unwrap();
        // A strict one now and then: only its keeper wakes it.
        if i % 7 == 0 {
            strict += 1;
            let s = Strict {
                first: true,
                allowed: allowed.clone(),
                stray: stray.clone(),
                kept: kept.clone(),
            };
            let se = strict_ended.clone();
            drop(gen::coroutine(async move {
                s.await;
                se.set(se.get() + 1);
                Ok::<_, Error>(())
            }));
        }
        // Let the loop turn now and then (wakes and let-gos arrive).
        if i % 64 == 63 {
            let e = ended.clone();
            let target = expect_end;
            turn_until(&io_loop, ms(50), move || e.get() >= target);
        }
    }
    let e = ended.clone();
    turn_until(&io_loop, secs(30), move || e.get() >= expect_end);
    drop(side.lock().unwrap().take());
    assert_eq!(ended.get(), expect_end, "coroutines stranded");
    assert_eq!(
        stray.get(),
        0,
        "a strict coroutine was polled by a stray wake"
    );
    // The strict ones, woken by their keeper.
    allowed.set(true);
    for w in kept.borrow_mut().drain(..) {
        w.wake();
    }
    let se = strict_ended.clone();
    turn_until(&io_loop, secs(10), move || se.get() >= strict);
    assert_eq!(strict_ended.get(), strict, "a strict coroutine stranded");
    drop(futures);
    let d = dropped.clone();
    turn_until(&io_loop, secs(10), move || d.get() >= ROUNDS);
    assert_eq!(dropped.get(), ROUNDS, "coroutines held for good");
    drop(pool);
}

/// A coroutine whose clone got out and was dropped on another thread just
/// before it finished in its first poll (so its shell is clean and reused
/// while the "last clone gone" is still on its way home through the
/// loop's door): the next coroutine on the shell, held by the table only
/// for a clone it keeps, is not let go of by that late word; woken, it
/// runs to its end.
#[test]
fn a_late_last_clone_gone_does_not_let_go_of_the_next_coroutine_on_the_shell() {
    let io_loop = current_loop();
    let rounds = if cfg!(miri) { 4 } else { 300 };
    for _ in 0..rounds {
        // Warm: the pool has a shell.
        gen::coroutine(async { Ok(0) }).result().unwrap();
        gen::coroutine(std::future::poll_fn(|cx| {
            let w = cx.waker().clone();
            // Dropped on another thread, before the poll ends.
            std::thread::spawn(move || drop(w)).join().unwrap();
            Poll::Ready(Ok(0))
        }))
        .result()
        .unwrap();
        let kept: Rc<RefCell<Option<Waker>>> = Rc::new(RefCell::new(None));
        let (dropped, ended) = (Rc::new(Cell::new(0usize)), Rc::new(Cell::new(false)));
        let (k, g, e) = (kept.clone(), Guard(dropped.clone()), ended.clone());
        let mut first = true;
        drop(gen::coroutine(async move {
            let _g = g;
            std::future::poll_fn(|cx| {
                if std::mem::take(&mut first) {
                    *k.borrow_mut() = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Poll::Ready(())
            })
            .await;
            e.set(true);
            Ok::<_, Error>(())
        }));
        // The late word arrives (and anything else queued).
        turn_until(&io_loop, ms(2), || false);
        assert_eq!(dropped.get(), 0, "let go of while its clone is kept");
        kept.borrow_mut().take().unwrap().wake();
        let e = ended.clone();
        turn_until(&io_loop, secs(5), move || e.get());
        assert!(ended.get(), "stranded");
    }
}
