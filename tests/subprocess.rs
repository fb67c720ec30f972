//! `Subprocess` and `PipeIOStream`: real child processes (`cat`, `sh`).
//!
//! `SIGCHLD` is handled by one loop at a time and the harness runs tests on
//! threads, so every test that spawns holds one lock.

mod common;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::Log;
use squall::iostream::{Pipe, PipeIOStream};
use squall::process::{ExitStatus, Subprocess};
use squall::testing::AsyncTest;
use squall::{ErrorKind, Future, IOLoop};

static CHILDREN: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script);
    cmd
}

fn test() -> AsyncTest {
    AsyncTest::new().timeout(Duration::from_secs(10))
}

#[test]
fn echo_through_cat() {
    let _l = lock();
    // Big enough to need several writes and reads through a 64 KiB pipe.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let (out, status) = test().run(move |_| {
        let mut cmd = Command::new("cat");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let child = Subprocess::spawn(&mut cmd).unwrap();
        assert!(child.stderr().is_none());
        let stdin = child.stdin().unwrap();
        let s = stdin.clone();
        stdin
            .write(data)
            .add_done_callback(move |_: &Future<()>| s.close());
        let done = Future::new();
        let d = done.clone();
        child
            .stdout()
            .unwrap()
            .read_until_close()
            .add_done_callback(move |out: &Future<Vec<u8>>| {
                let out = out.take_result()?;
                let wait = child.wait_for_exit(true);
                wait.add_done_callback(move |st: &Future<ExitStatus>| {
                    d.complete(st.take_result().map(|s| (out, s)))
                });
                Ok(())
            });
        done
    });
    assert_eq!(out.len(), expected.len());
    assert!(out == expected, "cat echoed the bytes back");
    assert_eq!(status, ExitStatus::Exited(0));
}

#[test]
fn exit_codes_and_raise_error() {
    let _l = lock();
    let (plain, raised) = test().run(|_| {
        let child = Subprocess::spawn(&mut sh("exit 3")).unwrap();
        let plain = child.wait_for_exit(false);
        let raised = child.wait_for_exit(true);
        let done = Future::new();
        let d = done.clone();
        raised.add_done_callback(move |raised: &Future<ExitStatus>| {
            d.try_set_result((plain.result(), raised.result()));
        });
        done
    });
    assert_eq!(plain.unwrap(), ExitStatus::Exited(3));
    let err = raised.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProcessFailed);
    assert!(err.message().contains("exited with status 3"), "{err}");
}

#[test]
fn a_signalled_child_is_reported_as_such() {
    let _l = lock();
    let (status, err, from_callback) = test().run(|_| {
        let mut cmd = sh("sleep 30");
        cmd.stdout(Stdio::piped());
        let child = Subprocess::spawn(&mut cmd).unwrap();
        let log = Log::new();
        let lg = log.clone();
        child.set_exit_callback(move |status| lg.push(status));
        child.send_signal(libc::SIGKILL).unwrap();
        let plain = child.wait_for_exit(false);
        let raised = child.wait_for_exit(true);
        let done = Future::new();
        let d = done.clone();
        let c = child.clone();
        raised.add_done_callback(move |raised: &Future<ExitStatus>| {
            let raised = raised.error();
            // The exit callback runs on the next iteration.
            IOLoop::current().add_callback(move || {
                assert_eq!(c.exit_status(), Some(ExitStatus::Signaled(libc::SIGKILL)));
                let err = c.send_signal(libc::SIGTERM).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidState);
                d.try_set_result((plain.result(), raised, log.get()));
            });
        });
        done
    });
    let status = status.unwrap();
    assert_eq!(status, ExitStatus::Signaled(libc::SIGKILL));
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(status.code(), None);
    assert_eq!(status.returncode(), -libc::SIGKILL);
    let err = err.unwrap();
    assert_eq!(err.kind(), ErrorKind::ProcessFailed);
    assert!(
        err.message().contains("killed by signal 9 (SIGKILL)"),
        "{err}"
    );
    assert_eq!(from_callback, vec![status]);
}

#[test]
fn stderr_and_an_exit_callback_set_after_the_exit() {
    let _l = lock();
    let (err_out, status) = test().run(|_| {
        let mut cmd = sh("echo oops >&2; exit 0");
        cmd.stderr(Stdio::piped());
        let child = Subprocess::spawn(&mut cmd).unwrap();
        let done = Future::new();
        let d = done.clone();
        let c = child.clone();
        child
            .stderr()
            .unwrap()
            .read_until_close()
            .add_done_callback(move |out: &Future<Vec<u8>>| {
                let out = out.take_result()?;
                let c2 = c.clone();
                c.wait_for_exit(true)
                    .add_done_callback(move |_: &Future<ExitStatus>| {
                        // Already exited: the callback still runs (next iteration).
                        c2.set_exit_callback(move |status| d.set_result((out, status)));
                    });
                Ok(())
            });
        done
    });
    assert_eq!(err_out, b"oops\n");
    assert!(status.success());
}

#[test]
fn children_are_reaped_even_when_the_handle_is_dropped() {
    let _l = lock();
    let pid = test().run(|io_loop| {
        let child = Subprocess::spawn(&mut sh("exit 0")).unwrap();
        let pid = child.pid();
        drop(child);
        // Wait until the pid is gone for good (reaped, not a zombie).
        let done = Future::new();
        poll_reaped(io_loop.clone(), pid, done.clone());
        done
    });
    assert!(pid > 0);
}

fn poll_reaped(io_loop: IOLoop, pid: u32, done: Future<u32>) {
    // SAFETY: signal 0 only checks whether the pid exists (a zombie does).
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    if !exists {
        done.try_set_result(pid);
        return;
    }
    let l = io_loop.clone();
    io_loop.call_later(Duration::from_millis(5), move || poll_reaped(l, pid, done));
}

#[test]
fn spawn_errors_are_io_errors() {
    let _l = lock();
    test().run(|_| {
        let err = Subprocess::spawn(&mut Command::new("/nonexistent/squall-test")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(err.message().contains("squall-test"), "{err}");
        Future::ready(())
    });
}

#[test]
fn pipe_streams_hear_end_of_file_and_a_gone_reader() {
    test().run(|_| {
        let (r, w) = Pipe::pair().unwrap();
        assert!(w.is_write_end() && !r.is_write_end());
        let reader = PipeIOStream::from_pipe(r).unwrap();
        let writer = PipeIOStream::from_pipe(w).unwrap();
        drop(writer.write(&b"line one\nline two\n"[..]));
        let done = Future::new();
        let d = done.clone();
        let (r2, w2) = (reader.clone(), writer.clone());
        reader
            .read_until(b"\n")
            .add_done_callback(move |line: &Future<Vec<u8>>| {
                assert_eq!(line.take_result().unwrap(), b"line one\n");
                // The reader goes away: the writer's next writes fail, and
                // the writer closes.
                r2.close();
                w2.set_close_callback(move || d.set_result(()));
                let w3 = w2.clone();
                IOLoop::current().add_callback(move || {
                    drop(w3.write(vec![0u8; 200_000]));
                });
            });
        done
    });
}
