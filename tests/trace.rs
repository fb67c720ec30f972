//! `squall::trace` through the public API: scripted loops on a manual clock
//! produce exactly the records expected.
#![cfg(feature = "trace")]

use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use squall::gen::{self, Resume, Step};
use squall::ioloop::{Clock, ManualClock};
use squall::trace::{self, Kind, Record, SvgOptions};
use squall::{Events, IOLoop};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn manual_loop() -> (IOLoop, ManualClock) {
    let clock = ManualClock::new();
    let io_loop = IOLoop::with_clock(Clock::Manual(clock.clone())).unwrap();
    (io_loop, clock)
}

/// The fields a test can predict exactly: iteration, start, duration, kind
/// and the call site's line.
fn summary(records: &[Record]) -> Vec<(u64, Duration, Duration, Kind, Option<u32>)> {
    records
        .iter()
        .map(|r| {
            (
                r.iteration,
                r.start,
                r.duration,
                r.kind,
                r.site.map(|s| s.line()),
            )
        })
        .collect()
}

#[test]
fn callbacks_timeouts_and_polls_are_recorded_exactly() {
    let (io_loop, clock) = manual_loop();
    io_loop.trace().enable(100);
    let (c1, c2, l) = (clock.clone(), clock.clone(), io_loop.clone());
    let callback_line = line!() + 1;
    io_loop.add_callback(move || c1.advance(ms(3)));
    let timeout_line = line!() + 1;
    io_loop.call_later(ms(10), move || {
        c2.advance(ms(1));
        l.stop();
    });
    io_loop.start().unwrap();

    let records = io_loop.trace().snapshot();
    assert_eq!(
        summary(&records),
        vec![
            // Iteration 1: the callback takes 3 ms of loop time...
            (1, ms(0), ms(3), Kind::Callback, Some(callback_line)),
            // ...then the poll waits out the 7 ms left to the deadline.
            (
                1,
                ms(3),
                ms(7),
                Kind::Poll {
                    timeout: Some(ms(7)),
                    events: 0
                },
                None
            ),
            // Iteration 2: the timeout, which stops the loop before a poll.
            (2, ms(10), ms(1), Kind::Timeout, Some(timeout_line)),
        ]
    );
    let site = records[0].site.unwrap();
    assert!(site.file().ends_with("trace.rs"), "{site}");
    assert!(records[0].name.contains("callbacks_timeouts_and_polls"));
    assert_eq!(records[1].name, "");
    assert_eq!(io_loop.trace().dropped(), 0);
    assert_eq!(io_loop.trace().iteration(), 2);
    // A snapshot leaves the records; a drain takes them.
    assert_eq!(io_loop.trace().drain(), records);
    assert!(io_loop.trace().snapshot().is_empty());
}

#[test]
fn the_ring_keeps_the_newest_records_and_counts_the_dropped() {
    let (io_loop, clock) = manual_loop();
    io_loop.trace().enable(2);
    assert_eq!(io_loop.trace().capacity(), 2);
    for i in 1..=5u64 {
        let (c, l) = (clock.clone(), io_loop.clone());
        io_loop.add_callback(move || {
            c.advance(ms(i));
            if i == 5 {
                l.stop();
            }
        });
    }
    io_loop.start().unwrap();
    let records = io_loop.trace().drain();
    // 1+2+3 ms went by in the three dropped ones.
    let kept: Vec<_> = records.iter().map(|r| (r.start, r.duration)).collect();
    assert_eq!(kept, [(ms(6), ms(4)), (ms(10), ms(5))]);
    assert_eq!(io_loop.trace().dropped(), 3);
}

#[test]
fn nothing_is_recorded_while_disabled() {
    let (io_loop, _clock) = manual_loop();
    assert!(!io_loop.trace().is_enabled());
    let l = io_loop.clone();
    io_loop.add_callback(move || l.stop());
    io_loop.start().unwrap();
    assert!(io_loop.trace().snapshot().is_empty());

    io_loop.trace().enable(10);
    io_loop.trace().disable();
    assert!(!io_loop.trace().is_enabled());
    let l = io_loop.clone();
    io_loop.add_callback(move || l.stop());
    io_loop.start().unwrap();
    assert!(io_loop.trace().snapshot().is_empty());
    assert_eq!(io_loop.trace().iteration(), 0);
}

#[test]
fn enable_starts_afresh() {
    let (io_loop, clock) = manual_loop();
    io_loop.trace().enable(10);
    let l = io_loop.clone();
    io_loop.add_callback(move || l.stop());
    io_loop.start().unwrap();
    assert_eq!(io_loop.trace().snapshot().len(), 1);

    clock.advance(ms(100));
    io_loop.trace().enable(5);
    assert_eq!(io_loop.trace().origin(), io_loop.time());
    assert!(io_loop.trace().snapshot().is_empty());
    let l = io_loop.clone();
    io_loop.add_callback(move || l.stop());
    io_loop.start().unwrap();
    let records = io_loop.trace().snapshot();
    assert_eq!((records[0].iteration, records[0].start), (1, ms(0)));
}

#[test]
fn a_handler_event_records_its_fd_and_events() {
    let (io_loop, _clock) = manual_loop();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    io_loop.trace().enable(100);
    let (l, mut reader) = (io_loop.clone(), a.try_clone().unwrap());
    // The call site is the line of the method name.
    let handler_line = line!() + 2;
    io_loop
        .add_handler(
            &a,
            move |_fd, _events| {
                let mut buf = [0u8; 16];
                assert_eq!(reader.read(&mut buf).unwrap(), 5);
                l.stop();
            },
            Events::READ,
        )
        .unwrap();
    b.write_all(b"hello").unwrap();
    io_loop.start().unwrap();
    io_loop.remove_handler(&a);

    let records = io_loop.trace().drain();
    let handler: Vec<&Record> = records
        .iter()
        .filter(|r| matches!(r.kind, Kind::Handler { .. }))
        .collect();
    assert_eq!(handler.len(), 1, "{records:?}");
    assert_eq!(
        handler[0].kind,
        Kind::Handler {
            fd: a.as_raw_fd(),
            events: Events::READ
        }
    );
    assert_eq!(handler[0].site.map(|s| s.line()), Some(handler_line));
    // The poll that found it, in the same iteration, just before.
    let poll = records
        .iter()
        .find(|r| matches!(r.kind, Kind::Poll { .. }))
        .unwrap();
    assert_eq!(poll.iteration, handler[0].iteration);
    assert!(matches!(poll.kind, Kind::Poll { events: 1, .. }));
    let line = handler[0].to_string();
    assert!(
        line.contains(&format!("handler fd {} READ", a.as_raw_fd())),
        "{line}"
    );
}

#[test]
fn runner_steps_are_recorded_inside_what_resumed_them() {
    let (io_loop, _clock) = manual_loop();
    io_loop.trace().enable(100);
    let result = io_loop
        .run_sync(
            || {
                gen::coroutine(gen::from_fn(0u32, |n, input| match input {
                    Resume::Error(err) => Step::Return(Err(err)),
                    _ if *n == 2 => Step::Return(Ok(*n)),
                    _ => {
                        *n += 1;
                        gen::sleep(ms(5)).into()
                    }
                }))
            },
            None,
        )
        .unwrap();
    assert_eq!(result, 2);
    let records = io_loop.trace().drain();
    let steps: Vec<(u64, Duration)> = records
        .iter()
        .filter(|r| r.kind == Kind::Step)
        .map(|r| (r.iteration, r.start))
        .collect();
    // The first step runs in run_sync's function, before the first
    // iteration; the others in the sleeps' timeouts, 5 ms apart.
    assert_eq!(steps.len(), 3, "{records:#?}");
    assert_eq!(steps[0], (0, ms(0)));
    assert_eq!((steps[1].1, steps[2].1), (ms(5), ms(10)));
    for step in &steps[1..] {
        let timeout = records
            .iter()
            .find(|r| r.kind == Kind::Timeout && r.iteration == step.0)
            .expect("the timeout that resumed the step");
        assert!(timeout.start <= step.1 && step.1 <= timeout.end());
    }
    assert!(records
        .iter()
        .filter(|r| r.kind == Kind::Step)
        .all(|r| r.name.contains("FromFn")));
}

#[test]
fn async_coroutine_steps_are_recorded_like_a_generators() {
    // The same coroutine as above, as an `async` block: the same Runner
    // steps, resumed by the same timeouts.
    let (io_loop, _clock) = manual_loop();
    io_loop.trace().enable(100);
    let result = io_loop
        .run_sync(
            || {
                gen::coroutine(async {
                    let mut n = 0u32;
                    while n < 2 {
                        n += 1;
                        gen::sleep(ms(5)).await?;
                    }
                    Ok(n)
                })
            },
            None,
        )
        .unwrap();
    assert_eq!(result, 2);
    let records = io_loop.trace().drain();
    let steps: Vec<&Record> = records.iter().filter(|r| r.kind == Kind::Step).collect();
    assert_eq!(steps.len(), 3, "{records:#?}");
    assert_eq!(
        steps.iter().map(|r| r.start).collect::<Vec<_>>(),
        [ms(0), ms(5), ms(10)]
    );
    assert!(steps.iter().all(|r| r.name.contains("async")), "{steps:#?}");
}

#[test]
fn remote_callbacks_are_recorded() {
    let io_loop = IOLoop::new().unwrap();
    io_loop.trace().enable(100);
    let remote = io_loop.remote();
    let sender = std::thread::spawn(move || remote.add_callback(|| IOLoop::current().stop()));
    io_loop.start().unwrap();
    sender.join().unwrap().unwrap();
    let records = io_loop.trace().drain();
    let remote: Vec<&Record> = records.iter().filter(|r| r.kind == Kind::Remote).collect();
    assert_eq!(remote.len(), 1, "{records:#?}");
    assert!(remote[0].name.contains("remote_callbacks_are_recorded"));
}

#[test]
fn text_and_svg_forms() {
    let (io_loop, clock) = manual_loop();
    io_loop.trace().enable(100);
    let (c, l) = (clock.clone(), io_loop.clone());
    io_loop.add_callback(move || {
        c.advance(ms(20));
        l.stop();
    });
    io_loop.start().unwrap();
    let records = io_loop.trace().drain();
    let text = trace::render_text(&records);
    assert_eq!(text.lines().count(), 1);
    assert!(text.starts_with("#1     +   0.000ms  callback"), "{text}");
    assert!(text.contains("20.000ms  tests/trace.rs:"), "{text}");

    let svg = trace::render_svg(&records);
    assert!(svg.contains("callback 20.000ms blocked the loop: tests/trace.rs:"));
    let lenient = SvgOptions {
        blocking: ms(50),
        ..SvgOptions::default()
    };
    assert!(!trace::render_svg_with(&records, &lenient).contains("blocked the loop"));
    // Nothing to draw is still a picture.
    assert!(trace::render_svg(&[]).ends_with("</svg>\n"));
}

/// The tracer is one of the loop's observers: it sees values from a
/// `remote_channel` (as remote spans), records a span that runs inside
/// another (a `Remote` callback that `close()` runs from a callback) with
/// its own times, and disabling it leaves the loop unobserved.
#[test]
fn the_tracer_is_an_observer_of_every_span() {
    let (io_loop, clock) = manual_loop();
    io_loop.trace().enable(100);
    let sender = io_loop.remote_channel(move |n: u64| clock.advance(ms(n)));
    sender.send(2).unwrap();
    let remote = io_loop.remote();
    let c = {
        let l = io_loop.clone();
        move || {
            // Queued from here, run by the close below, inside this span.
            remote.add_callback(|| ()).unwrap();
            l.close();
        }
    };
    // Next iteration: after the channel's value.
    let l = io_loop.clone();
    io_loop.add_callback(move || l.add_callback(c));
    io_loop.start().unwrap();
    let records = io_loop.trace().drain();
    let kinds: Vec<(u64, Kind, Duration)> = records
        .iter()
        .map(|r| (r.iteration, r.kind, r.duration))
        .collect();
    // Stored when they end: in the second iteration the nested remote
    // callback comes before the callback that closed the loop.
    assert_eq!(
        kinds,
        [
            (1, Kind::Callback, Duration::ZERO),
            (1, Kind::Remote, ms(2)),
            (2, Kind::Remote, Duration::ZERO),
            (2, Kind::Callback, Duration::ZERO),
        ],
        "{}",
        trace::render_text(&records)
    );
    assert_eq!(records[2].start, records[3].start, "no time passed between");
    io_loop.trace().disable();
    assert!(!io_loop.trace().is_enabled());
}
