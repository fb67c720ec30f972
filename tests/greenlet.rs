//! Greenlet-style coroutines (feature `stackful`): `async_call_method`,
//! `wait` and friends, the blocking-style `Stream`, stacks (pool, overflow,
//! unwinding). The Runner-driven `gen::stackful` cases are in
//! tests/greenlet_stackful.rs.
#![cfg(feature = "stackful")]

mod common;

use squall::netutil::BindOptions;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::coro::{boxed, future_after, manual, run, since, task_after, values_of};
use common::{drop_flag, ms};
use squall::gen::{
    self, with_timeout, Generator, Multi, ResultCallback, Resume, Step, Task, YieldFuture,
};
use squall::greenlet::{self, Stream};
use squall::ioloop::{Clock, ManualClock};
use squall::stack_context::ExceptionStackContext;
use squall::testing::AsyncTest;
use squall::{netutil, Error, ErrorKind, Future, IOLoop, IOStream, TCPServer};

// ----- helpers ---------------------------------------------------------------

/// Every coroutine stack of this thread went back to the pool.
fn assert_no_live_stacks() {
    assert_eq!(greenlet::stack_stats().live, 0, "a coroutine stack leaked");
}

// ----- async_call_method -------------------------------------------------------

#[test]
fn return_value_and_error_reach_the_future() {
    let got = run(|_| {
        greenlet::async_call_method(|| {
            let a = greenlet::wait(future_after(10, Ok(40u32)))?;
            greenlet::sleep(ms(5))?;
            Ok(a + 2)
        })
    });
    assert_eq!(got, 42);

    let (result, _) = manual().try_run(|_| {
        greenlet::spawn(|| -> Result<(), Error> {
            greenlet::sleep(ms(5))?;
            Err(Error::new(ErrorKind::StreamClosed, "peer left"))
        })
    });
    let err = result.unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::StreamClosed, "peer left")
    );
    assert_no_live_stacks();
}

#[test]
fn a_child_runs_at_once_until_its_first_wait() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let got = run(move |_| {
        let l2 = l.clone();
        let future = greenlet::spawn(move || {
            l2.borrow_mut().push("child starts");
            // Done already: no switch.
            let v = greenlet::wait(Future::ready(1))?;
            l2.borrow_mut().push("ready future");
            greenlet::moment()?;
            l2.borrow_mut().push("after moment");
            Ok(v)
        });
        l.borrow_mut().push("spawn returned");
        future
    });
    assert_eq!(got, 1);
    assert_eq!(
        *log.borrow(),
        [
            "child starts",
            "ready future",
            "spawn returned",
            "after moment"
        ]
    );
}

#[test]
fn a_panic_inside_becomes_an_error_and_the_loop_lives() {
    let got = run(|io_loop| {
        let failed = greenlet::spawn(|| -> Result<(), Error> {
            greenlet::sleep(ms(5))?;
            panic!("child blew up");
        });
        let at_once = greenlet::spawn(|| -> Result<(), Error> { panic!("before any wait") });
        assert_eq!(at_once.error().unwrap().kind(), ErrorKind::Panic);
        // The loop goes on serving: a later child and a timeout both run.
        let later = future_after(20, Ok("loop alive"));
        let io_loop = io_loop.clone();
        greenlet::spawn(move || {
            let err = greenlet::wait(failed).unwrap_err();
            assert_eq!(
                (err.kind(), err.message()),
                (ErrorKind::Panic, "child blew up")
            );
            assert!(!io_loop.is_closed());
            greenlet::wait(later)
        })
    });
    assert_eq!(got, "loop alive");
    assert_no_live_stacks();
}

#[test]
fn wait_on_a_failed_future_returns_the_error_inside_the_child() {
    let got = run(|_| {
        greenlet::spawn(|| {
            let done_failed = greenlet::wait(Future::<u8>::failed(Error::new(ErrorKind::Io, "x")));
            let later_failed = greenlet::wait(future_after::<u8>(
                5,
                Err(Error::new(ErrorKind::Timeout, "y")),
            ));
            // The child caught both and goes on.
            let ok = greenlet::wait(future_after(5, Ok(3u8)))?;
            Ok((
                done_failed.unwrap_err().kind(),
                later_failed.unwrap_err().kind(),
                ok,
            ))
        })
    });
    assert_eq!(got, (ErrorKind::Io, ErrorKind::Timeout, 3));
}

#[test]
fn nested_calls() {
    fn fib(n: u32) -> Future<u64> {
        greenlet::spawn(move || {
            if n < 2 {
                greenlet::sleep(ms(1))?;
                return Ok(u64::from(n));
            }
            // Start both children, then wait for each.
            let (a, b) = (fib(n - 1), fib(n - 2));
            Ok(greenlet::wait(a)? + greenlet::wait(b)?)
        })
    }
    assert_eq!(run(|_| fib(12)), 144);
    assert_no_live_stacks();
}

#[test]
fn outside_a_child_every_call_is_a_clear_error() {
    assert!(!greenlet::in_coroutine());
    let kinds = [
        greenlet::wait(Future::ready(1)).unwrap_err().kind(),
        greenlet::wait(Future::<u8>::new()).unwrap_err().kind(),
        greenlet::sleep(ms(1)).unwrap_err().kind(),
        greenlet::moment().unwrap_err().kind(),
        greenlet::yield_point(task_after(0, 1)).unwrap_err().kind(),
    ];
    assert!(
        kinds.iter().all(|k| *k == ErrorKind::NotInCoroutine),
        "{kinds:?}"
    );
    let err = greenlet::wait(Future::ready(1)).unwrap_err();
    assert!(err.message().contains("inside a coroutine"), "{err}");

    // On a loop but outside a child: the same, and no operation is started.
    let io_loop = IOLoop::new().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = io_loop
        .run_sync(
            move || {
                let err = Stream::connect(addr, None).err().unwrap();
                Future::ready(err.kind())
            },
            None,
        )
        .unwrap();
    assert_eq!(got, ErrorKind::NotInCoroutine);
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "no connect was started");
    assert!(!greenlet::in_coroutine());
}

#[test]
fn yield_point_takes_any_gen_point() {
    let got = run(|io_loop| {
        let t0 = io_loop.time();
        greenlet::spawn(move || {
            assert!(greenlet::in_coroutine());
            let task = greenlet::yield_point(task_after(10, 7u32))?.downcast::<u32>()?;
            let multi = values_of::<u32>(greenlet::yield_point(Multi::new(vec![
                boxed(task_after(20, 1u32)),
                boxed(YieldFuture::new(future_after(5, Ok(2u32)))),
            ]))?)?;
            let timed_out = greenlet::yield_point(with_timeout(ms(10), gen::sleep(ms(1000))))
                .unwrap_err()
                .kind();
            Ok((task, multi, timed_out, since(t0)))
        })
    });
    assert_eq!(got, (7, vec![1, 2], ErrorKind::Timeout, ms(40)));
}

#[test]
fn a_future_dropped_uncompleted_wakes_the_child_with_callback_dropped() {
    let got = run(|_| {
        greenlet::spawn(|| {
            // Nobody else holds it, nobody can complete it.
            let orphan = Future::<u32>::new();
            let err = greenlet::wait(orphan).unwrap_err();
            Ok(err.kind())
        })
    });
    assert_eq!(got, ErrorKind::CallbackDropped);
    assert_no_live_stacks();
}

#[test]
fn closing_the_loop_under_a_sleeping_child_finishes_it_and_frees_its_stack() {
    let io_loop = IOLoop::with_clock(Clock::Manual(ManualClock::new())).unwrap();
    let (flag, dropped) = drop_flag();
    let child = Rc::new(RefCell::new(None));
    let c = child.clone();
    let err = io_loop
        .run_sync(
            move || {
                *c.borrow_mut() = Some(greenlet::spawn(move || {
                    let _flag = flag;
                    let err = greenlet::sleep(ms(1000)).unwrap_err();
                    Ok(err.kind())
                }));
                Future::<()>::new()
            },
            Some(ms(10)),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    let child = child.borrow_mut().take().unwrap();
    assert!(!child.done());
    assert_eq!(greenlet::stack_stats().live, 1);
    io_loop.close();
    assert_eq!(child.result().unwrap(), ErrorKind::CallbackDropped);
    assert!(dropped.get());
    assert_no_live_stacks();
}

#[test]
fn a_suspended_generator_dropped_by_hand_is_unwound_and_leaks_nothing() {
    let (flag, dropped) = drop_flag();
    let resumed_after = Rc::new(Cell::new(false));
    let r = resumed_after.clone();
    let mut gen = gen::stackful(move |co| {
        let _flag = flag;
        let first = co.yield_point(task_after(0, 1u8));
        r.set(true);
        first?;
        Ok(())
    });
    assert!(matches!(gen.resume(Resume::Start), Step::Yield(_)));
    assert_eq!(greenlet::stack_stats().live, 1);
    assert!(!dropped.get());
    drop(gen);
    // The locals were dropped by unwinding; the code after the wait never ran.
    assert!(dropped.get());
    assert!(!resumed_after.get());
    assert_no_live_stacks();
    assert!(!greenlet::in_coroutine());

    // A destructor that tries to wait while the coroutine is unwound gets an
    // error instead of switching out.
    struct WaitsOnDrop(Rc<Cell<Option<ErrorKind>>>);
    impl Drop for WaitsOnDrop {
        fn drop(&mut self) {
            let err = greenlet::wait(Future::<u8>::new()).unwrap_err();
            self.0.set(Some(err.kind()));
        }
    }
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let mut gen = gen::stackful(move |co| {
        let _guard = WaitsOnDrop(s);
        co.yield_point(task_after(0, ()))?;
        Ok(())
    });
    assert!(matches!(gen.resume(Resume::Start), Step::Yield(_)));
    drop(gen);
    assert_eq!(seen.get(), Some(ErrorKind::CallbackDropped));
    assert_no_live_stacks();

    // A generator never started is dropped without running.
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    drop(gen::stackful(move |_| {
        r.set(true);
        Ok(())
    }));
    assert!(!ran.get());
    assert_no_live_stacks();
}

#[test]
fn freed_stacks_are_reused() {
    let before = greenlet::stack_stats();
    run(|_| {
        greenlet::spawn(|| {
            for _ in 0..100 {
                greenlet::wait(greenlet::spawn(greenlet::moment))?;
            }
            Ok(())
        })
    });
    let after = greenlet::stack_stats();
    assert_eq!(after.live, 0);
    // Two stacks at most were ever in use at once.
    assert!(
        after.pooled <= before.pooled.max(2),
        "{before:?} -> {after:?}"
    );
}

#[test]
fn deep_recursion_needs_and_gets_a_bigger_stack() {
    fn depth(n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            1 + depth(std::hint::black_box(n - 1))
        }
    }
    let got = run(|_| {
        greenlet::Builder::new()
            .stack_size(4 << 20)
            .spawn(|| Ok(depth(20_000)))
    });
    assert_eq!(got, 20_000);
}

#[test]
fn stack_overflow_is_a_clean_crash_with_a_message() {
    if std::env::var_os("SQUALL_GREENLET_OVERFLOW_CHILD").is_some() {
        fn deeper(n: u64, pad: &mut [u8; 512]) -> u64 {
            if n == u64::MAX {
                return 0;
            }
            pad[0] = n as u8;
            let mut next = [0u8; 512];
            std::hint::black_box(&mut next);
            1 + deeper(std::hint::black_box(n + 1), &mut next) + u64::from(pad[0])
        }
        let io_loop = IOLoop::new().unwrap();
        let _ = io_loop.run_sync(|| greenlet::spawn(|| Ok(deeper(0, &mut [0; 512]))), None);
        unreachable!("the overflow aborts the process");
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "stack_overflow_is_a_clean_crash_with_a_message",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SQUALL_GREENLET_OVERFLOW_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(6), "SIGABRT expected: {stderr}");
    assert!(
        stderr.contains("stack overflow in a greenlet coroutine (stack of 64 KiB)"),
        "{stderr}"
    );
}

#[test]
fn a_child_parked_inside_a_stack_context_does_not_leak_it() {
    // The child waits inside its own ExceptionStackContext; while it is
    // parked, an error from a callback the *parent* schedules must not reach
    // the child's handler.
    let child_saw = Rc::new(RefCell::new(Vec::<String>::new()));
    let seen = child_saw.clone();
    let (result, unhandled) = manual().allow_unhandled_errors().try_run(move |io_loop| {
        let seen = seen.clone();
        let child = greenlet::spawn(move || {
            let s = seen.clone();
            let ctx = ExceptionStackContext::new(move |err: &Error| {
                s.borrow_mut().push(err.message().to_owned());
                true
            });
            let mut inner = Ok(());
            ctx.run(|| inner = greenlet::sleep(ms(20)));
            inner
        });
        // Scheduled by the parent, after the child parked.
        io_loop.call_later(ms(5), || Err::<(), _>(Error::other("parent's failure")));
        child
    });
    result.unwrap();
    assert!(child_saw.borrow().is_empty(), "{:?}", child_saw.borrow());
    assert_eq!(unhandled.len(), 1);
    assert_eq!(unhandled[0].message(), "parent's failure");
}

#[test]
fn an_error_raised_later_by_a_callback_the_child_scheduled_is_thrown_into_its_wait() {
    let got = run(|_| {
        greenlet::spawn(|| {
            let err = greenlet::yield_point(Task::new(|_cb: ResultCallback| {
                IOLoop::current()
                    .add_callback(|| Err::<(), _>(Error::new(ErrorKind::Io, "phase 2")));
            }))
            .unwrap_err();
            Ok((err.kind(), err.message().to_owned()))
        })
    });
    assert_eq!(got, (ErrorKind::Io, "phase 2".to_owned()));
}

// ----- the blocking-style Stream ---------------------------------------------

/// An echo server whose handler is a child: read a line, write it back, close.
fn echo_server(backlog: u32) -> (TCPServer, SocketAddr) {
    let server = TCPServer::new(|stream: IOStream, _peer| {
        greenlet::spawn(move || {
            let stream = Stream::from(stream);
            match stream.read_until_max_bytes(b"\n", 1024) {
                Ok(line) => stream.write(line)?,
                Err(err) if err.kind() == ErrorKind::StreamClosed => {}
                Err(err) => return Err(err),
            }
            stream.close();
            Ok(())
        })
    });
    let sockets =
        netutil::bind_sockets_with(0, BindOptions::new().address("127.0.0.1").backlog(backlog))
            .unwrap();
    server.add_sockets(sockets).unwrap();
    let addr = server.local_addrs()[0];
    (server, addr)
}

#[test]
fn stream_facade_round_trip_and_connect_timeout_removed() {
    let got = AsyncTest::new().run(|io_loop| {
        let (server, addr) = echo_server(128);
        let io_loop = io_loop.clone();
        greenlet::spawn(move || {
            // Let the test harness add its own timeout first.
            greenlet::moment()?;
            let pending_before = io_loop.timer_stats().pending;
            let stream = Stream::connect(addr, Some(Duration::from_secs(5)))?;
            // Connected: the connect timeout is gone.
            assert_eq!(io_loop.timer_stats().pending, pending_before);
            stream.write(&b"abc"[..])?;
            stream.write(&b"def\n"[..])?;
            let first = stream.read_bytes(2)?;
            let some = stream.read_some(100)?;
            let rest = stream.read_until_close()?;
            assert!(stream.closed());
            server.stop();
            Ok([first, some, rest].concat())
        })
    });
    assert_eq!(got, b"abcdef\n");
}

#[test]
fn stream_read_into_partial_fills_the_callers_buffer_and_keeps_the_timeout() {
    let got = AsyncTest::new().run(|_| {
        let (server, addr) = echo_server(128);
        greenlet::spawn(move || {
            let stream = Stream::connect(addr, Some(Duration::from_secs(5)))?;
            stream.write(&b"abcdef\n"[..])?;
            // At most the buffer's length, from its start; the same vector
            // comes back, its length unchanged.
            let (buf, n) = stream.read_into_partial(vec![0; 4])?;
            assert_eq!(buf.len(), 4);
            assert!((1..=4).contains(&n), "{n}");
            let mut got = buf[..n].to_vec();
            let (buf, m) = stream.read_into_partial(buf)?;
            got.extend_from_slice(&buf[..m]);
            got.extend(stream.read_until_close()?);
            server.stop();
            Ok(got)
        })
    });
    assert_eq!(got, b"abcdef\n");
    // A peer that sends nothing: the stream's timeout ends the read.
    let (server, addr) = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        (l, addr)
    };
    let kind = AsyncTest::new().run(move |_| {
        greenlet::spawn(move || {
            let stream = Stream::connect(addr, Some(Duration::from_secs(5)))?;
            stream.set_timeout(Some(ms(50)));
            let err = stream.read_into_partial(vec![0; 16]).unwrap_err();
            assert!(stream.closed());
            Ok(err.kind())
        })
    });
    drop(server);
    assert_eq!(kind, ErrorKind::Timeout);
}

#[test]
fn stream_connect_refused_is_an_error_in_the_child() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let got = AsyncTest::new().run(move |_| {
        greenlet::spawn(move || {
            let err = Stream::connect(addr, Some(Duration::from_secs(5)))
                .err()
                .unwrap();
            Ok(err.kind())
        })
    });
    assert_eq!(got, ErrorKind::Io);
}

#[test]
fn ten_thousand_children_each_sleep_and_echo() {
    const N: usize = 10_000;
    let got = AsyncTest::new().timeout(Duration::from_secs(60)).run(|_| {
        let (server, addr) = echo_server(4096);
        let children: Vec<Future<bool>> = (0..N)
            .map(|i| {
                greenlet::spawn(move || {
                    // Spread over 100 ms so that at most a few hundred
                    // connections are open at once.
                    greenlet::sleep(ms((i % 100) as u64))?;
                    let stream = Stream::connect(addr, Some(Duration::from_secs(10)))?;
                    let line = format!("child {i}\n");
                    stream.write(line.clone())?;
                    let echo = stream.read_until_close()?;
                    Ok(echo == line.as_bytes())
                })
            })
            .collect();
        greenlet::spawn(move || {
            let mut correct = 0;
            for child in children {
                correct += usize::from(greenlet::wait(child)?);
            }
            server.stop();
            Ok(correct)
        })
    });
    assert_eq!(got, N);
    assert_no_live_stacks();
}

#[test]
fn chains_completed_inside_a_child_fit_its_small_stack() {
    // A child completes the head of a chain of hand-written coroutines, and
    // of a chain of children: only a few levels nest on its 64 KiB stack.
    const DEPTH: u32 = 10_000;
    let got = run(|_| {
        greenlet::spawn(|| {
            let leaf = Future::new();
            let mut top = leaf.clone();
            for _ in 0..DEPTH {
                let inner = top;
                top = gen::coroutine(gen::from_fn(Some(inner), |inner, input| match input {
                    Resume::Start => YieldFuture::new(inner.take().unwrap()).into(),
                    Resume::Value(v) => Step::Return(v.downcast::<u32>().map(|n| n + 1)),
                    Resume::Error(err) => Step::Return(Err(err)),
                }));
            }
            greenlet::moment()?;
            leaf.set_result(0u32);
            // And a chain of children, each waiting on the one before.
            let gate = Future::new();
            let mut last = gate.clone();
            for _ in 0..1_000 {
                let before = last;
                last = greenlet::spawn(move || Ok(greenlet::wait(before)? + 1));
            }
            gate.set_result(0u32);
            // Past the few levels the child's stack takes, the rest of each
            // chain runs on the parent's stack once the child switches out.
            Ok((greenlet::wait(top)?, greenlet::wait(last)?))
        })
    });
    assert_eq!(got, (DEPTH, 1_000));
    assert_no_live_stacks();
}

#[test]
fn stream_timeout_fails_a_slow_read_and_closes_the_stream() {
    let got = AsyncTest::new().run(|_| {
        // A server that reads and never answers.
        let server = TCPServer::new(|stream: IOStream, _| {
            drop(stream.read_until_close());
        });
        server
            .listen_with(0, BindOptions::new().address("127.0.0.1"))
            .unwrap();
        let addr = server.local_addrs()[0];
        greenlet::spawn(move || {
            let stream = Stream::connect(addr, None)?;
            stream.set_timeout(Some(ms(50)));
            assert_eq!(stream.timeout(), Some(ms(50)));
            stream.write(&b"question\n"[..])?;
            let t0 = Instant::now();
            let err = stream.read_until(b"\n").unwrap_err();
            let took = t0.elapsed();
            server.stop();
            Ok((err.kind(), took >= ms(50), stream.closed()))
        })
    });
    assert_eq!(got, (ErrorKind::Timeout, true, true));
}

#[test]
fn stack_sizes_out_of_range_are_invalid_arguments() {
    for bytes in [0, 4096, greenlet::MAX_STACK_SIZE + 1, usize::MAX] {
        let future = greenlet::Builder::new().stack_size(bytes).spawn(|| Ok(1));
        assert_eq!(
            future.error().unwrap().kind(),
            ErrorKind::InvalidArgument,
            "{bytes}"
        );
        let err = greenlet::set_default_stack_size(bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
    assert_eq!(greenlet::default_stack_size(), greenlet::DEFAULT_STACK_SIZE);
    let ok = greenlet::Builder::new()
        .stack_size(greenlet::MIN_STACK_SIZE)
        .spawn(|| Ok(2));
    assert_eq!(ok.result().unwrap(), 2);
    assert_no_live_stacks();
}
