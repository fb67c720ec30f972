//! `add_future`: when its callback runs, for pending, done and failed
//! futures.

use super::*;

#[test]
fn add_future_runs_on_the_next_iteration() {
    let (io_loop, _clock) = manual_loop();
    let log = Log::new();
    let future = Future::<u32>::new();
    let lg = log.clone();
    io_loop.add_future(&future, move |f: &Future<u32>| {
        lg.push(format!("add_future: {:?}", f.result()))
    });
    let (lg, l, f) = (log.clone(), io_loop.clone(), future.clone());
    io_loop.add_callback(move || {
        let lg2 = lg.clone();
        // Queued before the future completes: runs before the add_future callback.
        l.add_callback(move || lg2.push("queued earlier".to_owned()));
        f.set_result(9);
        lg.push("set_result returned".to_owned());
    });
    let lg = log.clone();
    io_loop.add_callback(move || lg.push("same iteration".to_owned()));
    guard(&io_loop, secs(1));
    io_loop.start().unwrap();
    assert_eq!(
        log.get(),
        [
            "set_result returned",
            "same iteration",
            "queued earlier",
            "add_future: Ok(9)"
        ]
    );
    io_loop.close();
}

#[test]
fn add_future_on_a_done_future_and_a_failed_one() {
    let (io_loop, _clock) = manual_loop();
    let log = Log::new();
    let lg = log.clone();
    io_loop.add_future(&Future::ready(1u8), move |f: &Future<u8>| {
        lg.push(f.result().map_err(|e| e.kind()))
    });
    assert!(log.is_empty(), "not called synchronously");
    let lg = log.clone();
    io_loop.add_future(
        &Future::<u8>::failed(Error::new(ErrorKind::Timeout, "t")),
        move |f: &Future<u8>| lg.push(f.result().map_err(|e| e.kind())),
    );
    guard(&io_loop, secs(1));
    io_loop.start().unwrap();
    assert_eq!(log.get(), [Ok(1), Err(ErrorKind::Timeout)]);
    io_loop.close();
}
