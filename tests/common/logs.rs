//! A process-wide logger that keeps squall's error lines, for the tests that
//! check what is (and is not) logged: "Future exception was never
//! retrieved" above all. Installed by the first call, once per test binary.

use std::sync::{Mutex, Once};
use std::thread::{self, ThreadId};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Every squall error line, with the thread that logged it (tests run in
/// parallel; each looks at its own, or a server thread's).
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

/// The lines kept so far that `keep` selects, taken.
fn take(keep: impl Fn(ThreadId, &str) -> bool) -> Vec<String> {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&LOGGER).unwrap();
        log::set_max_level(LevelFilter::Error);
    });
    let mut lines = LOGGER.0.lock().unwrap();
    let (taken, others): (Vec<_>, Vec<_>) = lines.drain(..).partition(|(t, l)| keep(*t, l));
    *lines = others;
    taken.into_iter().map(|(_, line)| line).collect()
}

/// This thread's squall error lines so far, taken.
pub fn errors() -> Vec<String> {
    let me = thread::current().id();
    take(|t, _| t == me)
}

/// This thread's "never retrieved" lines so far, taken.
pub fn never_retrieved() -> Vec<String> {
    let me = thread::current().id();
    take(|t, l| t == me && l.contains("never retrieved"))
}

/// Any thread's "never retrieved" lines so far, taken: for a server that
/// runs its loop in a thread of its own.
pub fn never_retrieved_anywhere() -> Vec<String> {
    take(|_, l| l.contains("never retrieved"))
}

/// Any thread's "never retrieved" lines that mention `text`, taken: for a
/// server on a thread of its own, leaving other tests' lines alone.
pub fn never_retrieved_about(text: &str) -> Vec<String> {
    take(|_, l| l.contains("never retrieved") && l.contains(text))
}
