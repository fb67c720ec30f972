//! squall: Tornado's callback-style asynchronous core, in Rust.
//!
//! An [`IOLoop`] runs callbacks, timeouts and file-descriptor handlers on one
//! thread; a [`Future`] is a single-threaded placeholder for a result that
//! someone completes later; [`stack_context`] carries error handlers across
//! callbacks. Explicit continuations, no `async`/`await`: everything that
//! happens is a callback you can read.
//!
//! ```
//! use std::time::Duration;
//! use squall::{Future, IOLoop};
//!
//! // An asynchronous function: returns a Future and completes it later.
//! fn slow_double(io_loop: &IOLoop, x: u64) -> Future<u64> {
//!     let future = Future::new();
//!     let f = future.clone();
//!     io_loop.call_later(Duration::from_millis(10), move || f.set_result(2 * x));
//!     future
//! }
//!
//! let io_loop = IOLoop::new()?;
//! let l = io_loop.clone();
//! let answer = io_loop.run_sync(move || slow_double(&l, 21), None)?;
//! assert_eq!(answer, 42);
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! A callback returns what suits it, with no annotations: nothing, a
//! `Result<T, Error>` (`?` converts other errors), a [`Future`], or it
//! panics. Errors and panics go to the [`stack_context`] the callback was
//! scheduled under, or to the log; the loop goes on
//! ([`CallbackReturn`] says why these forms).
//!
//! ```
//! use std::time::Duration;
//! use squall::{Error, Future, IOLoop};
//!
//! fn step() -> std::io::Result<()> {
//!     Ok(())
//! }
//!
//! let io_loop = IOLoop::new()?;
//! io_loop.add_callback(|| println!("nothing to report"));
//! io_loop.add_callback(|| panic!("reported as an ErrorKind::Panic error"));
//! io_loop.add_callback(|| {
//!     step()?; // an io::Error becomes a squall::Error
//!     Ok(())
//! });
//! io_loop.add_callback(|| -> Result<u32, Error> { Ok(7) }); // the 7 is dropped
//! io_loop.call_later(Duration::from_millis(1), || {
//!     let io_err = std::io::Error::other("reported when it fails");
//!     Future::<i32>::failed(io_err.into())
//! });
//! let l = io_loop.clone();
//! io_loop.call_later(Duration::from_millis(5), move || l.stop());
//! io_loop.start()?;
//! # Ok::<(), squall::Error>(())
//! ```
#![warn(missing_docs)]
// Every `unsafe` block says why it is sound, in a `// SAFETY:` comment.
#![warn(clippy::undocumented_unsafe_blocks)]
#![cfg(unix)]

mod callback;
mod catch;
pub mod error;
pub mod escape;
pub mod executor;
pub mod future;
pub mod gen;
#[cfg(feature = "stackful")]
pub mod greenlet;
pub mod http;
pub mod httpclient;
pub mod httputil;
pub mod ioloop;
pub mod iostream;
pub mod locks;
pub mod netutil;
pub mod process;
pub mod queues;
pub mod stack_context;
pub mod tcpclient;
pub mod tcpserver;
pub mod testing;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "trace")]
pub mod trace;
pub mod web;
#[cfg(feature = "websocket")]
pub mod websocket;

// Entry points for fuzz/ and tests/fuzz_regressions.rs; not API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[path = "fuzz.rs"]
pub mod __fuzz;

pub use callback::CallbackReturn;
pub use error::{Error, ErrorKind, Result};
pub use future::{chain_future, Future};
pub use ioloop::{Events, IOLoop, PeriodicCallback, Remote, TimeoutHandle};
pub use iostream::IOStream;
pub use tcpserver::TCPServer;

// The README's Rust blocks are doctests, so its examples cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

// docs/porting.md's Rust blocks are doctests too.
#[cfg(doctest)]
#[doc = include_str!("../docs/porting.md")]
pub struct PortingDoctests;

// docs/deployment.md's Rust blocks are doctests too.
#[cfg(doctest)]
#[doc = include_str!("../docs/deployment.md")]
pub struct DeploymentDoctests;
