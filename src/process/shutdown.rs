//! Graceful shutdown on a signal, for any server: [`on_shutdown_signals`].

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use crate::error::Error;
use crate::future::Future;
use crate::ioloop::IOLoop;

/// On the first of `signals` (typically `SIGTERM` and `SIGINT`), calls
/// `drain(grace)` — which stops accepting and returns a future done when
/// the work in flight is finished — and stops `io_loop` once that future is
/// done, or at the latest a little after `grace`. [`IOLoop::start`] then
/// returns, and a `main` that returns after it exits with status 0.
///
/// This is what [`TCPServer::shutdown_on_signals`](crate::TCPServer::shutdown_on_signals)
/// uses with [`TCPServer::shutdown`](crate::TCPServer::shutdown); a
/// protocol server built on `TCPServer` passes its own `drain` (closing idle
/// keep-alive connections first, say). Later signals while draining are
/// ignored. The callbacks stay registered until the loop is closed or
/// [`IOLoop::remove_signal_handler`] is called.
///
/// ```
/// use std::time::Duration;
/// use squall::{process, Future, IOLoop};
///
/// let io_loop = IOLoop::new()?;
/// process::on_shutdown_signals(&io_loop, &[libc::SIGUSR2], Duration::from_secs(1), |_grace| {
///     println!("draining");
///     Future::ready(())
/// })?;
/// // SAFETY: raise(3) only sends this process a signal that has a handler.
/// io_loop.add_callback(|| unsafe { libc::raise(libc::SIGUSR2); });
/// io_loop.start()?; // returns once drained
/// io_loop.remove_signal_handler(libc::SIGUSR2);
/// # Ok::<(), squall::Error>(())
/// ```
///
/// # Errors
/// As [`IOLoop::add_signal_handler`]; signals registered before the one
/// that failed stay registered.
pub fn on_shutdown_signals<F>(
    io_loop: &IOLoop,
    signals: &[i32],
    grace: Duration,
    drain: F,
) -> Result<(), Error>
where
    F: FnMut(Duration) -> Future<()> + 'static,
{
    let draining = Rc::new(Cell::new(false));
    let drain = Rc::new(std::cell::RefCell::new(drain));
    for &signum in signals {
        let (draining, drain, l) = (draining.clone(), drain.clone(), io_loop.clone());
        io_loop.add_signal_handler(signum, move |signum| {
            if draining.replace(true) {
                log::debug!("signal {signum} while shutting down: ignored");
                return;
            }
            log::info!("signal {signum}: shutting down (grace {grace:?})");
            let done = (drain.borrow_mut())(grace);
            // A drain that never completes must not keep the process up.
            let l2 = l.clone();
            let backstop = l.call_later(
                grace.saturating_add(Duration::from_millis(500)),
                move || {
                    log::warn!("shutdown took longer than {grace:?}: stopping the loop");
                    l2.stop();
                },
            );
            let l3 = l.clone();
            done.add_done_callback(move |done: &Future<()>| {
                if let Some(err) = done.error() {
                    log::warn!("shutdown: {err}");
                }
                l3.remove_timeout(backstop);
                l3.stop();
            });
        })?;
    }
    Ok(())
}
