//! `set_blocking_log_threshold` logs a warning for a callback that blocks the
//! loop. Its own test binary: it installs a process-wide logger.

use std::sync::Mutex;
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};
use squall::{Events, IOLoop};

struct Capture(Mutex<Vec<(Level, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        if record.target().starts_with("squall") {
            self.0
                .lock()
                .unwrap()
                .push((record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

fn blocking_warnings() -> Vec<String> {
    LOGGER
        .0
        .lock()
        .unwrap()
        .drain(..)
        .filter(|(level, msg)| *level == Level::Warn && msg.contains("blocked the IOLoop"))
        .map(|(_, msg)| msg)
        .collect()
}

fn run_once(io_loop: &IOLoop, f: impl FnOnce() + 'static) {
    io_loop.add_callback(f);
    let l = io_loop.clone();
    io_loop.add_callback(move || l.stop());
    io_loop.start().unwrap();
}

#[test]
fn blocking_callbacks_are_logged_above_the_threshold() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(LevelFilter::Trace);
    let io_loop = IOLoop::new().unwrap();
    let sleep = || std::thread::sleep(Duration::from_millis(30));

    // Off by default: no warning, however slow.
    run_once(&io_loop, sleep);
    assert!(blocking_warnings().is_empty());

    // A callback that sleeps 30 ms is over a 5 ms threshold (sleep never
    // returns early, so this holds on any machine).
    io_loop.set_blocking_log_threshold(Some(Duration::from_millis(5)));
    run_once(&io_loop, sleep);
    let warnings = blocking_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("callback"), "{warnings:?}");

    // Timeouts and handlers are watched too.
    let l = io_loop.clone();
    io_loop.call_later(Duration::ZERO, move || {
        sleep();
        l.stop();
    });
    io_loop.start().unwrap();
    let warnings = blocking_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("timeout"), "{warnings:?}");

    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let l = io_loop.clone();
    io_loop
        .add_handler(
            &a,
            move |fd, _| {
                sleep();
                l.remove_handler(fd);
                l.stop();
            },
            Events::WRITE,
        )
        .unwrap();
    io_loop.start().unwrap();
    let warnings = blocking_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("handler for fd"), "{warnings:?}");
    drop(b);

    // Many quick callbacks in one iteration that together pass the
    // threshold blame none of them; a slow one among them is named, with
    // its own time (the loop keeps one clock reading per callback).
    io_loop.set_blocking_log_threshold(Some(Duration::from_millis(40)));
    for _ in 0..12 {
        io_loop.add_callback(|| std::thread::sleep(Duration::from_millis(5)));
    }
    fn slow_one() {
        std::thread::sleep(Duration::from_millis(60));
    }
    io_loop.add_callback(slow_one);
    for _ in 0..12 {
        io_loop.add_callback(|| std::thread::sleep(Duration::from_millis(5)));
    }
    run_once(&io_loop, || ());
    let warnings = blocking_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("slow_one"), "{warnings:?}");
    let took_ms: f64 = warnings[0]
        .rsplit("for ")
        .next()
        .and_then(|t| t.strip_suffix("ms"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {warnings:?}"));
    // Its own 60 ms, not counting the 60 ms of quick callbacks before it.
    assert!((60.0..120.0).contains(&took_ms), "{warnings:?}");

    // Under a generous threshold, a quick callback is not reported.
    io_loop.set_blocking_log_threshold(Some(Duration::from_secs(10)));
    run_once(&io_loop, || ());
    assert!(blocking_warnings().is_empty());

    // And turned off again.
    io_loop.set_blocking_log_threshold(None);
    run_once(&io_loop, sleep);
    assert!(blocking_warnings().is_empty());
    io_loop.close();
}
