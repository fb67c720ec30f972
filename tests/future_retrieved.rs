//! A failed `Future` dropped with its error unread logs it once ("Future
//! exception was never retrieved", as Tornado does); one whose error was
//! read, and a stream's futures failed by its close, log nothing. Its own
//! test binary: it installs a process-wide logger.

mod common;

use std::sync::Mutex;
use std::thread::{self, ThreadId};
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};
use squall::{Error, ErrorKind, Future, IOLoop, IOStream};

/// Every squall error line, with the thread that logged it (tests run in
/// parallel; each looks at its own).
struct Capture(Mutex<Vec<(ThreadId, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        if record.target().starts_with("squall") && record.level() == Level::Error {
            let line = (thread::current().id(), record.args().to_string());
            self.0.lock().unwrap().push(line);
        }
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

/// This thread's "never retrieved" lines so far, taken.
fn never_retrieved() -> Vec<String> {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&LOGGER).unwrap();
        log::set_max_level(LevelFilter::Error);
    });
    let me = thread::current().id();
    let mut lines = LOGGER.0.lock().unwrap();
    let (mine, others): (Vec<_>, Vec<_>) = lines.drain(..).partition(|(t, _)| *t == me);
    *lines = others;
    mine.into_iter()
        .map(|(_, line)| line)
        .filter(|line| line.contains("never retrieved"))
        .collect()
}

#[test]
fn a_failed_future_dropped_unread_logs_its_error_once() {
    assert!(never_retrieved().is_empty());
    let future = Future::<u8>::new();
    let clone = future.clone();
    future.set_error(Error::new(ErrorKind::Timeout, "the backend was too slow"));
    drop(future);
    // A clone still holds it: nothing yet.
    assert!(never_retrieved().is_empty());
    drop(clone);
    let lines = never_retrieved();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("the backend was too slow"), "{lines:?}");

    // Failed from the start, the same.
    drop(Future::<()>::failed("nobody asked".into()));
    let lines = never_retrieved();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("nobody asked"));
}

#[test]
fn a_failed_future_whose_error_was_read_logs_nothing() {
    never_retrieved();
    let read = |look: &dyn Fn(&Future<u8>)| {
        let future = Future::<u8>::new();
        future.set_error("seen".into());
        look(&future);
    };
    read(&|f| assert!(f.error().is_some()));
    read(&|f| assert!(f.result().is_err()));
    read(&|f| assert!(f.take_result().is_err()));
    read(&|f| assert!(f.result_ref().is_err()));
    // A done-callback that hands the error on (to its stack context, or to
    // the log as an unhandled error: reported once, not twice).
    read(&|f| f.add_done_callback(|f: &Future<u8>| f.error().map_or(Ok(()), Err)));
    // Awaited, by run_sync.
    let io_loop = IOLoop::new().unwrap();
    let err = io_loop
        .run_sync(|| Future::<u8>::failed("awaited".into()), None)
        .unwrap_err();
    assert_eq!(err.message(), "awaited");
    // Succeeded, or lost a race: nothing to read.
    drop(Future::ready(1));
    let won = Future::ready(1);
    assert!(!won.try_set_error("too late".into()));
    drop(won);
    assert_eq!(never_retrieved(), Vec::<String>::new());
}

/// Tornado marks the futures a stream fails at its close as read: a server
/// that ignores its write futures must not log every client that resets.
#[test]
fn ignored_writes_to_a_stream_whose_peer_went_away_log_nothing() {
    never_retrieved();
    let io_loop = IOLoop::new().unwrap();
    let (ours, theirs) = common::socketpair();
    let stream = IOStream::with_loop(ours, &io_loop).unwrap();
    // Queued: more than the socket takes while nobody reads.
    for _ in 0..64 {
        drop(stream.write(vec![b'x'; 64 * 1024]));
    }
    drop(theirs);
    let s = stream.clone();
    let l = io_loop.clone();
    io_loop.add_callback(move || {
        // Written after the peer left, and after the stream closed.
        drop(s.write(b"more".to_vec()));
        let l2 = l.clone();
        let s2 = s.clone();
        l.call_later(Duration::from_millis(50), move || {
            assert!(s2.closed());
            drop(s2.write(b"after the close".to_vec()));
            l2.stop();
        });
    });
    io_loop.start().unwrap();
    assert!(stream.closed());
    drop(stream);
    io_loop.close();
    assert_eq!(never_retrieved(), Vec::<String>::new());
}
