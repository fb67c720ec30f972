//! Signal handlers, subprocesses and pipe streams release every descriptor.
//!
//! Its own test binary, with a single test: no other test opens or closes fds
//! in this process while it counts them.

mod common;

use common::open_fds;

use std::process::{Command, Stdio};
use std::time::Duration;

use squall::process::{ExitStatus, Subprocess};
use squall::{Future, IOLoop};

/// One round: a loop with a signal handler, a `cat` echoing through its
/// pipes, everything closed.
fn round() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.add_signal_handler(libc::SIGUSR1, |_| ()).unwrap();
    let (out, status) = io_loop
        .run_sync(
            || {
                let mut cmd = Command::new("cat");
                cmd.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let child = Subprocess::spawn(&mut cmd).unwrap();
                let stdin = child.stdin().unwrap();
                drop(stdin.write(&b"x"[..]));
                stdin.close();
                let done = Future::new();
                let d = done.clone();
                child
                    .stdout()
                    .unwrap()
                    .read_until_close()
                    .add_done_callback(move |out: &Future<Vec<u8>>| {
                        let out = out.take_result()?;
                        child.stderr().unwrap().close();
                        child.wait_for_exit(true).add_done_callback(
                            move |st: &Future<ExitStatus>| {
                                d.complete(st.take_result().map(|s| (out, s)))
                            },
                        );
                        Ok(())
                    });
                done
            },
            Some(Duration::from_secs(10)),
        )
        .unwrap();
    assert_eq!((out, status), (b"x".to_vec(), ExitStatus::Exited(0)));
    io_loop.close();
}

#[test]
fn no_fd_is_leaked_by_signals_subprocesses_and_pipes() {
    round(); // warm up anything made once per process
    let mut leaked = 0;
    for _ in 0..3 {
        let before = open_fds();
        for _ in 0..20 {
            round();
        }
        leaked = open_fds() as isize - before as isize;
        if leaked == 0 {
            break;
        }
    }
    assert_eq!(leaked, 0, "descriptors leaked over 20 rounds");
}
