//! `IOLoop::add_signal_handler`: signals reach callbacks on the loop.
//!
//! A signal's disposition is process-wide and the harness runs tests on
//! threads, so every test here holds one lock.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{guard, Log};
use squall::stack_context::ExceptionStackContext;
use squall::{Error, ErrorKind, IOLoop};

static SIGNALS: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SIGNALS.lock().unwrap_or_else(|e| e.into_inner())
}

fn send(signum: i32) {
    // SAFETY: kill(2) of this very process with a signal it handles.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signum) }, 0);
}

/// The current disposition of `signum` (the handler address).
fn disposition(signum: i32) -> libc::sighandler_t {
    // SAFETY: plain data filled in by sigaction; a null new action only reads.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signum, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

#[test]
fn callback_runs_on_the_loop_with_the_signal_number() {
    let _l = lock();
    let io_loop = IOLoop::new().unwrap();
    let log = Log::new();
    let (lg, l) = (log.clone(), io_loop.clone());
    let thread = std::thread::current().id();
    io_loop
        .add_signal_handler(libc::SIGUSR1, move |signum| {
            assert_eq!(std::thread::current().id(), thread);
            lg.push(signum);
            l.stop();
        })
        .unwrap();
    assert_eq!(io_loop.signal_handlers(), vec![libc::SIGUSR1]);
    io_loop.add_callback(|| send(libc::SIGUSR1));
    let fired = guard(&io_loop, Duration::from_secs(5));
    io_loop.start().unwrap();
    assert!(!fired.get(), "the signal never reached the loop");
    assert_eq!(log.get(), vec![libc::SIGUSR1]);
    assert!(io_loop.remove_signal_handler(libc::SIGUSR1));
    assert!(!io_loop.remove_signal_handler(libc::SIGUSR1));
    io_loop.close();
}

#[test]
fn a_signal_from_another_thread_wakes_a_sleeping_loop() {
    let _l = lock();
    let io_loop = IOLoop::new().unwrap();
    let l = io_loop.clone();
    io_loop
        .add_signal_handler(libc::SIGUSR2, move |_| l.stop())
        .unwrap();
    let sender = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(50));
        send(libc::SIGUSR2);
    });
    let fired = guard(&io_loop, Duration::from_secs(5));
    io_loop.start().unwrap();
    sender.join().unwrap();
    assert!(!fired.get());
    io_loop.close();
}

#[test]
fn signals_arriving_together_are_merged() {
    let _l = lock();
    let io_loop = IOLoop::new().unwrap();
    let log = Log::new();
    let lg = log.clone();
    io_loop
        .add_signal_handler(libc::SIGUSR1, move |s| lg.push(s))
        .unwrap();
    let lg = log.clone();
    io_loop
        .add_signal_handler(libc::SIGUSR2, move |s| lg.push(s))
        .unwrap();
    io_loop.add_callback(|| {
        for _ in 0..3 {
            send(libc::SIGUSR1);
        }
        send(libc::SIGUSR2);
    });
    let fired = guard(&io_loop, Duration::from_millis(200));
    io_loop.start().unwrap();
    assert!(fired.get());
    let got = log.get();
    // At least once each, at most as often as sent (the kernel merges a
    // pending signal, the loop merges the numbers of one read; the signal
    // may be handled on another thread of the harness, so maybe later).
    assert!(got.len() <= 4, "{got:?}");
    let mut distinct = got.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct, vec![libc::SIGUSR1, libc::SIGUSR2]);
    io_loop.close();
}

#[test]
fn removing_restores_the_previous_disposition_and_closing_too() {
    let _l = lock();
    let before = disposition(libc::SIGUSR1);
    let io_loop = IOLoop::new().unwrap();
    let handlers_before = io_loop.handler_count();
    io_loop.add_signal_handler(libc::SIGUSR1, |_| ()).unwrap();
    assert_ne!(disposition(libc::SIGUSR1), before);
    assert_eq!(
        io_loop.handler_count(),
        handlers_before + 1,
        "the pipe is watched"
    );
    assert!(io_loop.remove_signal_handler(libc::SIGUSR1));
    assert_eq!(disposition(libc::SIGUSR1), before);
    assert_eq!(io_loop.handler_count(), handlers_before, "the pipe is gone");

    io_loop.add_signal_handler(libc::SIGUSR1, |_| ()).unwrap();
    io_loop.close();
    assert_eq!(disposition(libc::SIGUSR1), before);
    let err = io_loop
        .add_signal_handler(libc::SIGUSR1, |_| ())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);

    // Dropped without close: the same.
    let io_loop = IOLoop::new().unwrap();
    io_loop.add_signal_handler(libc::SIGUSR1, |_| ()).unwrap();
    drop(io_loop);
    assert_eq!(disposition(libc::SIGUSR1), before);
}

#[test]
fn one_loop_per_signal_and_bad_numbers_refused() {
    let _l = lock();
    let a = IOLoop::new().unwrap();
    let b = IOLoop::new().unwrap();
    a.add_signal_handler(libc::SIGUSR1, |_| ()).unwrap();
    let err = b.add_signal_handler(libc::SIGUSR1, |_| ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert_eq!(b.handler_count(), 0, "the refused loop keeps no pipe");
    // Once a lets go, b may.
    a.close();
    b.add_signal_handler(libc::SIGUSR1, |_| ()).unwrap();
    for bad in [0, -3, 65, libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV] {
        let err = b.add_signal_handler(bad, |_| ()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}: {err}");
    }
    b.close();
}

#[test]
fn replacing_and_removing_from_inside_the_callback() {
    let _l = lock();
    let io_loop = IOLoop::new().unwrap();
    let log = Log::new();
    let (lg, l) = (log.clone(), io_loop.clone());
    io_loop
        .add_signal_handler(libc::SIGUSR1, move |_| {
            lg.push("first");
            let (lg2, l2) = (lg.clone(), l.clone());
            // Replaced while it runs: the replacement stays.
            l.add_signal_handler(libc::SIGUSR1, move |_| {
                lg2.push("second");
                // Removed while it runs: it stays removed.
                assert!(l2.remove_signal_handler(libc::SIGUSR1));
                l2.stop();
            })
            .unwrap();
            send(libc::SIGUSR1);
        })
        .unwrap();
    send(libc::SIGUSR1);
    let fired = guard(&io_loop, Duration::from_secs(5));
    io_loop.start().unwrap();
    assert!(!fired.get());
    assert_eq!(log.get(), vec!["first", "second"]);
    assert!(io_loop.signal_handlers().is_empty());
    io_loop.close();
}

#[test]
fn errors_go_to_the_stack_context_of_add_signal_handler() {
    let _l = lock();
    let io_loop = IOLoop::new().unwrap();
    let caught = Log::new();
    let (c, l) = (caught.clone(), io_loop.clone());
    ExceptionStackContext::new(move |err: &Error| {
        c.push(err.message().to_string());
        l.stop();
        true
    })
    .run(|| {
        io_loop
            .add_signal_handler(libc::SIGUSR2, |_| Err::<(), _>("bad signal day".into()))
            .unwrap();
    });
    io_loop.add_callback(|| send(libc::SIGUSR2));
    let fired = guard(&io_loop, Duration::from_secs(5));
    io_loop.start().unwrap();
    assert!(!fired.get());
    assert_eq!(caught.get(), vec!["bad signal day".to_string()]);
    io_loop.close();
}

/// Signals keep arriving (delivered to another thread) while a loop
/// registers and drops its handler over and over, and the fds the signal
/// pipe had are reused at once for other pipes: a C handler that loaded the
/// old write fd just before it was released must finish before the pipe
/// closes, or its byte lands in whatever reused the number.
#[test]
fn a_released_signal_pipe_is_never_written_after_close() {
    let _l = lock();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A thread that takes the signals: the kernel runs the handler there
    // (the test thread blocks SIGUSR2 below), concurrently with release.
    let receiver = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // SAFETY: plain signal-mask and disposition calls with valid sets. The
    // disposition a removed handler restores is "ignore": the signals keep
    // coming between registrations.
    unsafe {
        libc::signal(libc::SIGUSR2, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                send(libc::SIGUSR2);
            }
        })
    };
    let io_loop = IOLoop::new().unwrap();
    let mut stray = 0;
    for _ in 0..500 {
        io_loop.add_signal_handler(libc::SIGUSR2, |_| ()).unwrap();
        io_loop.remove_signal_handler(libc::SIGUSR2);
        // The pipe's numbers, free again: take them, and see whether a
        // signal byte arrives in them.
        let mut fds = [-1; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe to fill.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) },
            0
        );
        std::thread::yield_now();
        let mut buf = [0u8; 16];
        // SAFETY: reading into a live buffer from the pipe we just made.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            stray += 1;
        }
        // SAFETY: closing the two fds pipe2 gave us.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.join().unwrap();
    receiver.join().unwrap();
    // SAFETY: as above, unblocking the set we blocked.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGUSR2, libc::SIG_DFL);
    }
    io_loop.close();
    assert_eq!(stray, 0, "signal bytes written into reused fds");
}
