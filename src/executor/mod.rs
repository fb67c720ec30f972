//! Blocking work on a thread pool, results back on the loop:
//! `concurrent.futures.ThreadPoolExecutor` with Tornado's `run_in_executor`.
//!
//! One blocking call stalls every client of a single-threaded loop (seeds 2
//! and 3 end on that warning). When the work has no asynchronous client — a
//! blocking driver, a CPU-heavy step, a file read — give it to a thread:
//! [`submit`](ThreadPoolExecutor::submit) runs `f` on a worker and returns a
//! [`Future`] on the submitting thread's loop. The result crosses back through
//! the loop's [`Remote`](crate::Remote), so the future completes, and its
//! callbacks run, on the loop thread; the future itself never leaves it.
//!
//! ```
//! use squall::executor::ThreadPoolExecutor;
//! use squall::IOLoop;
//!
//! let pool = ThreadPoolExecutor::new(4)?;
//! let io_loop = IOLoop::new()?;
//! let sum = io_loop.run_sync(|| pool.submit(|| (1..=1000u64).sum::<u64>()), None)?;
//! assert_eq!(sum, 500_500);
//!
//! // A panic in the job is the future's error, not a dead worker.
//! let err = io_loop
//!     .run_sync(|| pool.submit(|| -> u8 { panic!("bad input") }), None)
//!     .unwrap_err();
//! assert_eq!(err.kind(), squall::ErrorKind::Panic);
//! # Ok::<(), squall::Error>(())
//! ```
//!
//! # Lifecycle
//! - [`shutdown(wait)`](ThreadPoolExecutor::shutdown) refuses new jobs
//!   ([`ErrorKind::InvalidState`]); jobs already queued still run. With
//!   `wait`, it returns once the workers have finished them and exited.
//! - Dropping the executor is `shutdown(true)`: its threads are joined.
//! - A job that never runs (left in the queue by a racing submit) fails its
//!   future instead of leaving it pending.
//! - If the loop is closed before a result comes back, the result is
//!   dropped on the worker: no panic, and the future, which nobody can
//!   observe any more, is released too.
//!
//! # Bounded queue
//! [`Builder::queue_size`] bounds the jobs waiting for a worker; a submit
//! that finds the queue full gets a future already failed with
//! [`ErrorKind::QueueFull`] (the loop never blocks on a full queue).

mod ioloop_ext;
mod registry;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, JoinHandle, ThreadId};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::callback;
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::IOLoop;

/// A job: `run(true)` runs it and sends the result home; `run(false)` sends
/// home the news that it will never run.
type JobFn = Box<dyn FnOnce(bool) + Send>;

struct Job(Option<JobFn>);

impl Job {
    fn run(mut self) {
        if let Some(f) = self.0.take() {
            f(true);
        }
    }

    /// Forgets the job without a word home (its submitter already knows).
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(false);
        }
    }
}

/// A pool of worker threads whose results come back on the submitting
/// thread's loop. See the [module docs](self).
///
/// It is `Send + Sync`: one pool may serve loops on several threads (share
/// it with an `Arc`); each job's future lives on the loop that submitted it.
pub struct ThreadPoolExecutor {
    jobs: Sender<Job>,
    /// Kept to drain jobs left behind after the workers exit.
    leftovers: Receiver<Job>,
    /// Dropped at shutdown: every worker sees its receiver disconnect.
    stop: Mutex<Option<Sender<()>>>,
    shut_down: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
    worker_ids: Vec<ThreadId>,
    queue_size: Option<usize>,
}

/// Configures a [`ThreadPoolExecutor`].
///
/// ```
/// use squall::executor::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::builder()
///     .workers(2)
///     .queue_size(100)
///     .thread_name("blocking")
///     .build()?;
/// assert_eq!(pool.max_workers(), 2);
/// # Ok::<(), squall::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    workers: usize,
    queue_size: Option<usize>,
    thread_name: String,
    stack_size: Option<usize>,
}

impl Builder {
    /// The number of worker threads (at least 1). Default: the number of
    /// CPUs times 5, as Tornado's default executor.
    pub fn workers(mut self, workers: usize) -> Builder {
        self.workers = workers;
        self
    }

    /// At most `size` jobs wait for a worker; more are refused with
    /// [`ErrorKind::QueueFull`]. With 0 a job is taken only by an idle
    /// worker. Default: no limit.
    pub fn queue_size(mut self, size: usize) -> Builder {
        self.queue_size = Some(size);
        self
    }

    /// The worker threads' name prefix (a number is appended).
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.thread_name = name.into();
        self
    }

    /// The worker threads' stack size, in bytes.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Starts the threads.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for zero workers; [`ErrorKind::Io`] if
    /// a thread cannot be spawned (the ones already started are stopped).
    pub fn build(self) -> Result<ThreadPoolExecutor, Error> {
        if self.workers == 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a thread pool needs at least one worker",
            ));
        }
        let (jobs, jobs_rx) = match self.queue_size {
            Some(size) => crossbeam_channel::bounded(size),
            None => crossbeam_channel::unbounded(),
        };
        let (stop, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let mut pool = ThreadPoolExecutor {
            jobs,
            leftovers: jobs_rx.clone(),
            stop: Mutex::new(Some(stop)),
            shut_down: AtomicBool::new(false),
            workers: Mutex::new(Vec::with_capacity(self.workers)),
            worker_ids: Vec::with_capacity(self.workers),
            queue_size: self.queue_size,
        };
        for i in 0..self.workers {
            let mut builder = thread::Builder::new().name(format!("{}-{i}", self.thread_name));
            if let Some(bytes) = self.stack_size {
                builder = builder.stack_size(bytes);
            }
            let (jobs, stop) = (jobs_rx.clone(), stop_rx.clone());
            match builder.spawn(move || worker(&jobs, &stop)) {
                Ok(handle) => {
                    pool.worker_ids.push(handle.thread().id());
                    lock(&pool.workers).push(handle);
                }
                // Dropping `pool` stops and joins the ones started.
                Err(err) => return Err(err.into()),
            }
        }
        Ok(pool)
    }
}

/// A job for `f` whose result goes to a new future on `io_loop`.
fn make_job<T, F>(io_loop: &IOLoop, f: F) -> (Future<T>, registry::Ticket, Job)
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let future = Future::new();
    let remote = io_loop.remote();
    let ticket = registry::insert(&remote, future.clone());
    let job = Job(Some(Box::new(move |run: bool| {
        let result = if run {
            callback::catch_value(f)
        } else {
            drop(f);
            Err(Error::new(
                ErrorKind::InvalidState,
                "the executor shut down before the job ran",
            ))
        };
        if let Err(err) = remote.add_callback(move || registry::complete(ticket, result)) {
            // The loop is gone: nobody is left to tell. The result is
            // dropped here, on the worker.
            log::debug!("executor job finished after its loop closed: {err}");
        }
    })));
    (future, ticket, job)
}

fn worker(jobs: &Receiver<Job>, stop: &Receiver<()>) {
    loop {
        crossbeam_channel::select_biased! {
            recv(jobs) -> job => match job {
                Ok(job) => job.run(),
                Err(_) => return,
            },
            recv(stop) -> _ => {
                // Shutting down: finish what is queued, then leave.
                while let Ok(job) = jobs.try_recv() {
                    job.run();
                }
                return;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A worker never panics while holding these (jobs run outside them).
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ThreadPoolExecutor {
    /// A pool of `workers` threads with an unbounded job queue.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn new(workers: usize) -> Result<ThreadPoolExecutor, Error> {
        ThreadPoolExecutor::builder().workers(workers).build()
    }

    /// A [`Builder`] with the defaults: CPUs × 5 workers, no queue limit,
    /// threads named `squall-executor-N`.
    pub fn builder() -> Builder {
        let cpus = thread::available_parallelism().map_or(1, |n| n.get());
        Builder {
            workers: cpus * 5,
            queue_size: None,
            thread_name: "squall-executor".to_owned(),
            stack_size: None,
        }
    }

    /// Runs `f` on a worker; returns a future on the current thread's loop
    /// ([`IOLoop::current`]) that completes there with `f`'s value, or with
    /// [`ErrorKind::Panic`] if `f` panics.
    ///
    /// The future is already failed with [`ErrorKind::InvalidState`] after
    /// [`shutdown`](ThreadPoolExecutor::shutdown), with
    /// [`ErrorKind::QueueFull`] if the bounded queue is full, and with
    /// [`ErrorKind::Closed`] if the loop is closed.
    pub fn submit<T, F>(&self, f: F) -> Future<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit_to(&IOLoop::current(), f)
    }

    /// Like [`submit`](ThreadPoolExecutor::submit), with the future on
    /// `io_loop` (which must belong to this thread, as every `IOLoop` does).
    pub fn submit_to<T, F>(&self, io_loop: &IOLoop, f: F) -> Future<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.shut_down.load(Ordering::Acquire) {
            return Future::failed(Error::new(
                ErrorKind::InvalidState,
                "cannot submit a job after the executor shut down",
            ));
        }
        if io_loop.is_closed() {
            return Future::failed(Error::new(ErrorKind::Closed, "the IOLoop is closed"));
        }
        let (future, ticket, job) = make_job(io_loop, f);
        match self.jobs.try_send(job) {
            Ok(()) => future,
            Err(TrySendError::Full(job)) => {
                job.disarm();
                registry::cancel::<T>(ticket);
                Future::failed(Error::new(
                    ErrorKind::QueueFull,
                    format!(
                        "the executor's job queue is full ({} waiting)",
                        self.queue_size.unwrap_or(0)
                    ),
                ))
            }
            Err(TrySendError::Disconnected(job)) => {
                job.disarm();
                registry::cancel::<T>(ticket);
                Future::failed(Error::new(
                    ErrorKind::InvalidState,
                    "the executor shut down",
                ))
            }
        }
    }

    /// Stops taking jobs; the ones queued still run. With `wait`, blocks
    /// until the workers have run them and exited (called from a worker, it
    /// does not wait for that worker itself). Calling it again is harmless.
    pub fn shutdown(&self, wait: bool) {
        self.shut_down.store(true, Ordering::Release);
        drop(lock(&self.stop).take());
        if !wait {
            return;
        }
        let me = thread::current().id();
        let handles = std::mem::take(&mut *lock(&self.workers));
        for handle in handles {
            if handle.thread().id() == me {
                continue;
            }
            if handle.join().is_err() {
                // Jobs run under catch_unwind, so this is a bug in the pool.
                log::error!("an executor worker thread panicked");
            }
        }
        if !self.worker_ids.contains(&me) {
            // A job submitted while the workers were leaving: fail it.
            while let Ok(job) = self.leftovers.try_recv() {
                drop(job);
            }
        }
        registry::sweep_closed();
    }

    /// Whether [`shutdown`](ThreadPoolExecutor::shutdown) was called.
    pub fn is_shutdown(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// The number of worker threads.
    pub fn max_workers(&self) -> usize {
        self.worker_ids.len()
    }

    /// The bound on waiting jobs, if any.
    pub fn queue_size(&self) -> Option<usize> {
        self.queue_size
    }

    /// How many jobs wait for a worker now.
    pub fn queued(&self) -> usize {
        self.jobs.len()
    }

    /// How many job futures this thread holds, waiting for their results
    /// (for leak checks in tests).
    pub fn pending_on_this_thread() -> usize {
        registry::pending()
    }

    /// The process-wide executor behind `IOLoop::run_in_executor(None, ..)`:
    /// CPUs × 5 workers, made on first use, never shut down.
    ///
    /// # Panics
    /// If its threads cannot be spawned on first use.
    pub fn default_executor() -> &'static ThreadPoolExecutor {
        static DEFAULT: OnceLock<ThreadPoolExecutor> = OnceLock::new();
        DEFAULT.get_or_init(|| {
            ThreadPoolExecutor::builder()
                .thread_name("squall-default-executor")
                .build()
                .expect("squall: cannot start the default executor")
        })
    }
}

impl Drop for ThreadPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolExecutor")
            .field("workers", &self.worker_ids.len())
            .field("queue_size", &self.queue_size)
            .field("queued", &self.jobs.len())
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_dropped_unrun_fails_its_future() {
        let io_loop = IOLoop::new().unwrap();
        let (future, _, job) = make_job(&io_loop, || 5u8);
        drop(job);
        let err = io_loop.run_sync(move || future, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState);
        assert_eq!(registry::pending(), 0);
    }

    #[test]
    fn a_disarmed_job_says_nothing() {
        let io_loop = IOLoop::new().unwrap();
        let (future, ticket, job) = make_job(&io_loop, || 5u8);
        job.disarm();
        registry::cancel::<u8>(ticket);
        assert_eq!(registry::pending(), 0);
        assert!(!future.done());
    }
}
