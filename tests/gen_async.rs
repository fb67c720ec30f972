//! `async` coroutines on the Runner: every awaitable, cancellation by drop,
//! errors and panics, and `std` futures from other crates, across threads.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{ms, secs, Log};
use squall::gen::{self, Callback, Multi, ResultCallback, Task, Wait, WaitIterator, YieldPoint};
use squall::locks::{Condition, Event, Lock, Semaphore};
use squall::queues::Queue;
use squall::{Error, ErrorKind, Future, IOLoop};

fn run<T: 'static>(
    io_loop: &IOLoop,
    f: impl std::future::Future<Output = Result<T, Error>> + 'static,
) -> Result<T, Error> {
    let mut f = Some(f);
    io_loop.run_sync(move || gen::coroutine(f.take().unwrap()), Some(secs(10)))
}

/// A future completed by a loop callback `delay` from now.
fn later<T: 'static>(io_loop: &IOLoop, delay: Duration, value: T) -> Future<T> {
    let future = Future::new();
    let f = future.clone();
    io_loop.call_later(delay, move || f.set_result(value));
    future
}

#[test]
fn awaits_a_future_the_loop_completes() {
    let io_loop = IOLoop::new().unwrap();
    let l = io_loop.clone();
    let got = run(&io_loop, async move {
        let a = later(&l, ms(5), 20).await?;
        let b = later(&l, ms(1), 22).await?;
        Ok(a + b)
    });
    assert_eq!(got.unwrap(), 42);
    assert_eq!(io_loop.timer_stats().pending, 0);
}

#[test]
fn a_coroutine_runs_to_its_first_wait_before_coroutine_returns() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let steps = Log::new();
    let s = steps.clone();
    let gate = Future::<u8>::new();
    let g = gate.clone();
    let done = gen::coroutine(async move {
        s.push("before");
        let v = g.await?;
        s.push("after");
        Ok(v)
    });
    assert_eq!(steps.get(), ["before"]);
    gate.set_result(7);
    // Resumed at once by the completion, as a generator is.
    assert_eq!(steps.get(), ["before", "after"]);
    assert_eq!(done.result().unwrap(), 7);
}

#[test]
fn every_yield_point_is_awaitable() {
    let io_loop = IOLoop::new().unwrap();
    let got = run(&io_loop, async {
        let t: i32 = Task::new(|cb: ResultCallback| {
            IOLoop::current().add_callback(move || cb.call(1i32));
        })
        .await?
        .downcast()?;
        let started = Instant::now();
        gen::sleep(ms(20)).await?;
        assert!(started.elapsed() >= ms(20));
        gen::moment().await?;
        let cb: ResultCallback = Callback::new("k").await?.downcast()?;
        IOLoop::current().add_callback(move || cb.call(2i32));
        let w: i32 = Wait::new("k").await?.downcast()?;
        let both: Vec<gen::Value> = Multi::new(vec![
            Task::new(|cb: ResultCallback| cb.call(3i32)).boxed(),
            gen::sleep(ms(1)).boxed(),
        ])
        .await?
        .downcast()?;
        let m: i32 = both.into_iter().next().unwrap().downcast()?;
        let slow = gen::with_timeout(ms(5), gen::sleep(secs(60))).await;
        assert_eq!(slow.unwrap_err().kind(), ErrorKind::Timeout);
        let fast: i32 = gen::with_timeout(secs(5), Task::new(|cb: ResultCallback| cb.call(4i32)))
            .await?
            .downcast()?;
        Ok(t + w + m + fast)
    });
    assert_eq!(got.unwrap(), 10);
}

#[test]
fn wait_iterator_next_is_awaitable() {
    let io_loop = IOLoop::new().unwrap();
    let l = io_loop.clone();
    let got = run(&io_loop, async move {
        let mut it = WaitIterator::new(vec![later(&l, ms(20), "a"), later(&l, ms(1), "b")]);
        let mut order = Vec::new();
        while !it.done() {
            let (i, v) = it.next().await?;
            order.push((i, v));
        }
        Ok(order)
    });
    assert_eq!(got.unwrap(), [(1, "b"), (0, "a")]);
}

#[test]
fn locks_queues_and_coroutines_are_awaitable() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let got = run(&io_loop, async {
        let queue = Queue::<u32>::new(1);
        let producer = gen::coroutine({
            let queue = queue.clone();
            async move {
                for i in 0..5 {
                    queue.put(i).await?;
                }
                Ok(())
            }
        });
        let mut sum = 0;
        for _ in 0..5 {
            sum += queue.get().await?;
        }
        producer.await?;

        let lock = Lock::new();
        let guard = lock.acquire().await?;
        let waiter = gen::coroutine({
            let lock = lock.clone();
            async move {
                let _g = lock.acquire().await?;
                Ok(1u32)
            }
        });
        gen::moment().await?;
        assert!(!waiter.done());
        drop(guard);
        sum += waiter.await?;

        let sem = Semaphore::new(1);
        let _permit = sem.acquire().await?;
        let event = Event::new();
        let e = event.clone();
        IOLoop::current().add_callback(move || e.set());
        event.wait().await?;
        let cond = Condition::new();
        let c = cond.clone();
        IOLoop::current().call_later(ms(1), move || c.notify_all());
        cond.wait().await?;
        Ok(sum)
    });
    assert_eq!(got.unwrap(), 11);
}

#[test]
fn a_million_awaits_on_ready_futures_use_no_stack() {
    let io_loop = IOLoop::new().unwrap();
    let got = run(&io_loop, async {
        let mut n = 0u64;
        for i in 0..1_000_000u64 {
            n += Future::ready(i & 1).await?;
        }
        Ok(n)
    });
    assert_eq!(got.unwrap(), 500_000);
}

#[test]
fn many_awaits_resumed_by_the_loop_and_a_long_chain_of_coroutines() {
    let io_loop = IOLoop::new().unwrap();
    let got = run(&io_loop, async {
        for _ in 0..20_000 {
            gen::moment().await?;
        }
        // Ten thousand coroutines each awaiting the next: resumed by one
        // completion, without overflowing the stack.
        let gate = Future::<u32>::new();
        let mut f = gate.clone();
        for _ in 0..10_000 {
            let inner = f;
            f = gen::coroutine(async move { Ok(inner.await? + 1) });
        }
        gate.set_result(0);
        f.await
    });
    assert_eq!(got.unwrap(), 10_000);
}

#[test]
fn dropping_an_await_removes_its_timeout_and_gives_up_its_keys() {
    let io_loop = IOLoop::new().unwrap();
    let l = io_loop.clone();
    let got = run(&io_loop, async move {
        // run_sync's own timeout is pending from the first wait on.
        gen::moment().await?;
        let before = l.timer_stats().pending;
        let err = gen::timeout(ms(10), async {
            gen::sleep(secs(3600)).await?;
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        // The hour-long sleep's timeout went with the dropped block.
        assert_eq!(l.timer_stats().pending, before);
        // A Task given up before its callback is called: the late call is
        // dropped quietly, and no LeakedCallback is reported at the end.
        let kept = Rc::new(Cell::new(None::<ResultCallback>));
        let k = kept.clone();
        let err = gen::timeout(ms(5), async move {
            Task::new(move |cb: ResultCallback| k.set(Some(cb))).await?;
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        kept.take().unwrap().call(5u8);
        gen::moment().await?;
        Ok("clean")
    });
    assert_eq!(got.unwrap(), "clean");
    assert_eq!(io_loop.timer_stats().pending, 0);
}

#[test]
fn errors_and_panics_go_into_the_future() {
    let io_loop = IOLoop::new().unwrap();
    let err = run(&io_loop, async {
        gen::moment().await?;
        Err::<(), _>(Error::new(ErrorKind::Timeout, "mine"))
    })
    .unwrap_err();
    assert_eq!(err.message(), "mine");

    let err = run(&io_loop, async {
        gen::moment().await?;
        if true {
            panic!("boom in async");
        }
        Ok(())
    })
    .unwrap_err();
    assert!(err.message().contains("boom in async"), "{err}");

    let err = run(&io_loop, async {
        Future::<u8>::failed(Error::new(ErrorKind::Closed, "gone")).await?;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[test]
fn an_error_from_a_callback_it_scheduled_ends_the_coroutine() {
    // As a generator gets it thrown in: the coroutine's stack context.
    let io_loop = IOLoop::new().unwrap();
    let err = run(&io_loop, async {
        IOLoop::current().add_callback(|| Err::<(), _>(Error::other("late failure")));
        gen::sleep(secs(3600)).await?;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.message(), "late failure");
    assert_eq!(io_loop.timer_stats().pending, 0);
}

#[test]
fn a_registered_key_never_waited_for_is_a_leaked_callback() {
    let io_loop = IOLoop::new().unwrap();
    let err = run(&io_loop, async {
        let _cb = Callback::new("never").await?;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LeakedCallback);
}

#[test]
fn futures_oneshot_across_threads() {
    let io_loop = IOLoop::new().unwrap();
    let got = run(&io_loop, async {
        let (tx, rx) = futures_channel::oneshot::channel::<u32>();
        let t = std::thread::spawn(move || {
            std::thread::sleep(ms(20));
            tx.send(41).unwrap();
        });
        let v = rx.await.map_err(|_| Error::other("canceled"))?;
        t.join().unwrap();
        Ok(v + 1)
    });
    assert_eq!(got.unwrap(), 42);
}

#[test]
fn futures_oneshot_on_the_loop_thread_is_queued_not_polled_in_place() {
    let io_loop = IOLoop::new().unwrap();
    let got = run(&io_loop, async {
        let (tx, rx) = futures_channel::oneshot::channel::<&str>();
        let resumed = Rc::new(Cell::new(false));
        let resumed_inside_send = Rc::new(Cell::new(None));
        let (r, inside) = (resumed.clone(), resumed_inside_send.clone());
        IOLoop::current().add_callback(move || {
            tx.send("hi").unwrap();
            // A std waker never polls in place: the coroutine is queued.
            inside.set(Some(r.get()));
        });
        let v = rx.await.map_err(|_| Error::other("canceled"))?;
        resumed.set(true);
        assert_eq!(resumed_inside_send.get(), Some(false));
        Ok(v)
    });
    assert_eq!(got.unwrap(), "hi");
}

#[test]
fn async_channel_from_several_threads() {
    let io_loop = IOLoop::new().unwrap();
    let got = run(&io_loop, async {
        let (tx, rx) = async_channel::bounded::<u64>(4);
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        tx.send_blocking(t * 1000 + i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let mut sum = 0;
        let mut n = 0;
        while let Ok(v) = rx.recv().await {
            sum += v;
            n += 1;
        }
        for t in threads {
            t.join().unwrap();
        }
        Ok((n, sum))
    });
    let expected: u64 = (0..4u64)
        .map(|t| (0..250).map(|i| t * 1000 + i).sum::<u64>())
        .sum();
    assert_eq!(got.unwrap(), (1000, expected));
}

#[test]
fn a_squall_future_inside_a_foreign_combinator_wakes_that_combinator() {
    // `futures`' own select-style combinators poll children with wakers of
    // their own; a squall future must wake those, not jump to the task.
    struct Either<A, B>(Option<A>, Option<B>);
    impl<A, B> std::future::Future for Either<A, B>
    where
        A: std::future::Future + Unpin,
        B: std::future::Future<Output = A::Output> + Unpin,
    {
        type Output = A::Output;
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<A::Output> {
            // A waker of its own, as FuturesUnordered makes for each child.
            let outer = cx.waker().clone();
            let own = std::task::Waker::from(std::sync::Arc::new(Fwd(outer)));
            let mut cx2 = std::task::Context::from_waker(&own);
            if let Some(a) = self.0.as_mut() {
                if let std::task::Poll::Ready(v) = std::pin::Pin::new(a).poll(&mut cx2) {
                    return std::task::Poll::Ready(v);
                }
            }
            if let Some(b) = self.1.as_mut() {
                if let std::task::Poll::Ready(v) = std::pin::Pin::new(b).poll(&mut cx2) {
                    return std::task::Poll::Ready(v);
                }
            }
            std::task::Poll::Pending
        }
    }
    struct Fwd(std::task::Waker);
    impl std::task::Wake for Fwd {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.wake_by_ref();
        }
    }
    let io_loop = IOLoop::new().unwrap();
    let l = io_loop.clone();
    let got = run(&io_loop, async move {
        let a = later(&l, secs(3600), 1u8);
        let b = later(&l, ms(5), 2u8);
        let v = Either(Some(a), Some(b)).await?;
        let p = gen::sleep(ms(2)).into_future();
        Either(Some(p), None::<gen::PointFuture<gen::Sleep>>).await?;
        Ok(v)
    });
    assert_eq!(got.unwrap(), 2);
}

#[test]
fn an_async_coroutine_and_a_generator_await_each_other() {
    let io_loop = IOLoop::new().unwrap();
    let got = run(&io_loop, async {
        let from_gen: u32 = gen::coroutine(gen::from_fn((), |_, input| match input {
            gen::Resume::Start => gen::sleep(ms(1)).into(),
            _ => gen::Step::Return(Ok(20u32)),
        }))
        .await?;
        let from_async = gen::coroutine(async { Ok(22u32) });
        Ok(from_gen + from_async.await?)
    });
    assert_eq!(got.unwrap(), 42);
    // engine() takes an async block too.
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    gen::engine(
        async {
            gen::moment().await?;
            Ok(5)
        },
        move |r: Result<i32, Error>| s.set(r.unwrap()),
    );
    let l = io_loop.clone();
    io_loop.call_later(ms(10), move || l.stop());
    io_loop.start().unwrap();
    assert_eq!(seen.get(), 5);
}

use std::future::IntoFuture;

#[test]
fn iostream_reads_and_writes_are_awaitable() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let got = run(&io_loop, async {
        let (a, b) = common::socketpair();
        let (a, b) = (squall::IOStream::new(a)?, squall::IOStream::new(b)?);
        let echo = gen::coroutine({
            let b = b.clone();
            async move {
                let line = b.read_until(b"\n").await?;
                b.write(line).await?;
                Ok(())
            }
        });
        a.write(b"ping\n".to_vec()).await?;
        let answer = a.read_until(b"\n").await?;
        echo.await?;
        a.close();
        b.close();
        Ok(answer)
    });
    assert_eq!(got.unwrap(), b"ping\n");
}

#[test]
fn std_and_squall_wakes_alternate_ten_thousand_times() {
    // A oneshot already sent (ready at the first poll) and a squall future
    // completed by the loop, one after the other: both wake paths, many
    // times over, in one coroutine.
    let io_loop = IOLoop::new().unwrap();
    let got = run(&io_loop, async {
        for i in 0..10_000u32 {
            let f = Future::<u32>::new();
            let g = f.clone();
            IOLoop::current().add_callback(move || g.set_result(i));
            let (tx, rx) = futures_channel::oneshot::channel::<u32>();
            tx.send(i).unwrap();
            assert_eq!(rx.await.unwrap(), i);
            assert_eq!(f.await?, i);
        }
        Ok(())
    });
    got.unwrap();
}

#[test]
fn spawn_callback_runs_an_async_coroutine_and_reports_its_error() {
    // Tornado: IOLoop.current().spawn_callback(coro). A callback returning
    // the coroutine's Future: a failure is reported like a callback's.
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let l = io_loop.clone();
    let ((), errors) = squall::testing::capture_unhandled(|| {
        io_loop.spawn_callback(move || {
            gen::coroutine(async move {
                gen::sleep(ms(2)).await?;
                r.set(true);
                l.stop();
                Err::<(), _>(Error::new(ErrorKind::Closed, "background task failed"))
            })
        });
        io_loop.start().unwrap();
    });
    assert!(ran.get());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].message(), "background task failed");
}

/// A foreign future whose waker is woken, and let go, by another thread
/// before the poll that handed it out has even returned `Pending`: the
/// wake is in flight through the loop's `Remote` door, and the coroutine
/// must still be there when it arrives (nothing else holds it).
struct WokenAwayDuringPoll {
    woken: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::future::Future for WokenAwayDuringPoll {
    type Output = ();
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        use std::sync::atomic::Ordering;
        if self.woken.load(Ordering::SeqCst) {
            return std::task::Poll::Ready(());
        }
        let waker = cx.waker().clone();
        let woken = self.woken.clone();
        std::thread::spawn(move || {
            woken.store(true, Ordering::SeqCst);
            waker.wake();
        })
        .join()
        .expect("waking thread");
        std::task::Poll::Pending
    }
}

#[test]
fn a_wake_from_another_thread_during_the_poll_is_not_lost() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let result = run(&io_loop, async {
        for _ in 0..100 {
            WokenAwayDuringPoll {
                woken: Default::default(),
            }
            .await;
        }
        Ok(7)
    });
    assert_eq!(result.unwrap(), 7);
}

/// A coroutine that waited and finished lets go of its runner at once, and
/// with it of the caller's stack contexts (and what their handlers own: for
/// `Exchange::run_async`, the request). A runner kept for reuse once held
/// them until some later coroutine happened to take it.
#[test]
fn a_waited_coroutine_lets_go_of_its_callers_stack_context() {
    use squall::stack_context::ExceptionStackContext;
    let io_loop = IOLoop::new().unwrap();
    let marker = Rc::new(());
    let weak = Rc::downgrade(&marker);
    io_loop
        .run_sync(
            move || {
                let out: Future<()> = Future::new();
                let o = out.clone();
                let deactivate = ExceptionStackContext::new(move |_: &Error| {
                    let _owned = &marker;
                    false
                })
                .run(move || {
                    let f = gen::coroutine(async {
                        gen::sleep(ms(1)).await?;
                        Ok(())
                    });
                    f.add_done_callback(move |f: &Future<()>| o.complete(f.result()));
                });
                drop(deactivate);
                out
            },
            Some(secs(5)),
        )
        .unwrap();
    // One more turn of the loop, for anything put off.
    io_loop
        .run_sync(
            || {
                // Not a coroutine: one would take the kept runner for
                // itself, which also lets go of what it held.
                let f = Future::<()>::new();
                let g = f.clone();
                IOLoop::current().call_later(ms(5), move || g.set_result(()));
                f
            },
            Some(secs(5)),
        )
        .unwrap();
    assert!(
        weak.upgrade().is_none(),
        "the caller's stack context is still held after the coroutine finished"
    );
}
