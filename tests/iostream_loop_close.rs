//! Closing a loop frees the streams it held, even those kept alive only by
//! their own pending callbacks. Its own binary: it counts the process's fds.

mod common;

use common::open_fds;

/// A stream whose pending read's callback holds the stream (the usual echo
/// pattern) is freed, fd and all, when its loop is closed.
#[test]
fn closing_the_loop_frees_streams_held_by_their_own_callbacks() {
    let before = open_fds();
    for _ in 0..20 {
        let io_loop = squall::IOLoop::new().unwrap();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let stream = squall::IOStream::with_loop(a, &io_loop).unwrap();
        let s = stream.clone();
        stream
            .read_until(b"\n")
            .add_done_callback(move |_: &squall::Future<Vec<u8>>| drop(s));
        drop(stream);
        io_loop.close();
        drop(b);
    }
    assert_eq!(open_fds(), before);
}
