//! `IOLoop::run_in_executor`: Tornado's convenience, kept beside the executor
//! so the loop's own module stays about the loop.

use super::ThreadPoolExecutor;
use crate::future::Future;
use crate::ioloop::IOLoop;

impl IOLoop {
    /// Runs `f` on `executor` (or, with `None`, on the process-wide
    /// [`default_executor`](ThreadPoolExecutor::default_executor)) and
    /// returns a future that completes on this loop: Tornado's
    /// `IOLoop.run_in_executor(executor, func)`.
    ///
    /// ```
    /// use squall::IOLoop;
    ///
    /// let io_loop = IOLoop::new()?;
    /// let l = io_loop.clone();
    /// let len = io_loop.run_sync(
    ///     move || l.run_in_executor(None, || std::fs::read("Cargo.toml").map(|b| b.len()).ok()),
    ///     None,
    /// )?;
    /// assert!(len.unwrap() > 0);
    /// # Ok::<(), squall::Error>(())
    /// ```
    pub fn run_in_executor<T, F>(&self, executor: Option<&ThreadPoolExecutor>, f: F) -> Future<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        executor
            .unwrap_or_else(|| ThreadPoolExecutor::default_executor())
            .submit_to(self, f)
    }
}
