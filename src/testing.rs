//! Test support, in the role of Tornado's `AsyncTestCase` and `gen_test`.
//!
//! Each test body runs on a fresh loop with a timeout (5 s by default, or
//! `SQUALL_TEST_TIMEOUT` seconds), so a hang fails the test with a clear
//! message instead of blocking CI; and an error no stack context handled
//! during the test fails it too, instead of being only logged.
//!
//! ```
//! use std::time::Duration;
//! use squall::testing::AsyncTest;
//! use squall::Future;
//!
//! let value = AsyncTest::new().run(|io_loop| {
//!     let future = Future::new();
//!     let f = future.clone();
//!     io_loop.call_later(Duration::from_millis(5), move || f.set_result(42));
//!     future
//! });
//! assert_eq!(value, 42);
//! ```

use std::time::Duration;

use crate::callback;
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::{Clock, IOLoop};

/// How a test is run: timeout and clock. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct AsyncTest {
    timeout: Duration,
    clock: Clock,
    allow_unhandled: bool,
}

impl Default for AsyncTest {
    fn default() -> Self {
        AsyncTest::new()
    }
}

impl AsyncTest {
    /// A 5-second timeout (or `SQUALL_TEST_TIMEOUT` seconds) on the system clock.
    pub fn new() -> AsyncTest {
        let secs = std::env::var("SQUALL_TEST_TIMEOUT")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(5.0);
        AsyncTest {
            timeout: Duration::from_secs_f64(secs),
            clock: Clock::System,
            allow_unhandled: false,
        }
    }

    /// Sets the timeout (on the loop's clock).
    pub fn timeout(mut self, timeout: Duration) -> AsyncTest {
        self.timeout = timeout;
        self
    }

    /// Runs the test on a loop with this clock (e.g. a [`ManualClock`](crate::ioloop::ManualClock)).
    pub fn clock(mut self, clock: Clock) -> AsyncTest {
        self.clock = clock;
        self
    }

    /// Lets unhandled callback errors pass (they are still returned by
    /// [`try_run`](AsyncTest::try_run)).
    pub fn allow_unhandled_errors(mut self) -> AsyncTest {
        self.allow_unhandled = true;
        self
    }

    /// Runs `body` on a fresh loop until its future is done, and returns the
    /// value.
    ///
    /// # Panics
    /// If the future fails or the timeout passes, or (unless allowed) an error
    /// went unhandled during the test. Panicking is how a test fails.
    pub fn run<T, F>(self, body: F) -> T
    where
        T: 'static,
        F: FnOnce(&IOLoop) -> Future<T>,
    {
        let allow = self.allow_unhandled;
        let timeout = self.timeout;
        let (result, unhandled) = self.try_run(body);
        if !allow && !unhandled.is_empty() {
            let list: Vec<String> = unhandled.iter().map(|e| format!("  - {e}")).collect();
            panic!(
                "{} unhandled error(s) in callbacks during the test:\n{}",
                unhandled.len(),
                list.join("\n")
            );
        }
        match result {
            Ok(value) => value,
            Err(err) if err.kind() == ErrorKind::Timeout => {
                panic!("async test timed out after {timeout:?}: {err}")
            }
            Err(err) => panic!("async test failed: {err}"),
        }
    }

    /// Like [`run`](AsyncTest::run), but returns the outcome and the errors
    /// that went unhandled, for tests that expect failures.
    ///
    /// # Panics
    /// If the OS refuses to create a loop.
    pub fn try_run<T, F>(self, body: F) -> (Result<T, Error>, Vec<Error>)
    where
        T: 'static,
        F: FnOnce(&IOLoop) -> Future<T>,
    {
        let io_loop = IOLoop::with_clock(self.clock).expect("squall: cannot create an IOLoop");
        let previous = IOLoop::try_current();
        io_loop.make_current();
        let capture = callback::begin_capture();
        let l = io_loop.clone();
        let result = io_loop.run_sync(move || body(&l), Some(self.timeout));
        let unhandled = callback::end_capture(capture);
        io_loop.close();
        match previous {
            Some(previous) => previous.make_current(),
            None => IOLoop::clear_current(),
        }
        (result, unhandled)
    }
}

/// Runs `body` as a test on a fresh loop with the default settings:
/// `AsyncTest::new().run(body)`.
pub fn gen_test<T, F>(body: F) -> T
where
    T: 'static,
    F: FnOnce(&IOLoop) -> Future<T>,
{
    AsyncTest::new().run(body)
}

/// Runs `f` and returns, with its value, the errors that no stack context
/// handled meanwhile on this thread (they are still logged).
pub fn capture_unhandled<R>(f: impl FnOnce() -> R) -> (R, Vec<Error>) {
    let capture = callback::begin_capture();
    let value = f();
    (value, callback::end_capture(capture))
}
