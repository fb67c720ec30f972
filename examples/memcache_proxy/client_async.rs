//! The client from `async`: each call as a `Future`, the way Tornado 6 code
//! would call it.
//!
//! The first seed article's client takes two callbacks per call, and its
//! stack context makes sure exactly one of them runs. Awaiting needs one
//! `Future` instead: each method here makes one, and hands the call a
//! callback that sets its result and a fail callback that sets its error.
//! Nothing else changes: the call's timeout, its `ExceptionStackContext`,
//! dead servers, pipelining.
//!
//! ```text
//! async def handle(client):                   gen::coroutine(async move {
//!     await client.set("k", "v")                  client.set_async(b"k", b"v", 0).await?;
//!     try:                                        match client.get_async(b"k").await {
//!         item = await client.get("k")                Ok(item) => ..,
//!     except MemcacheError as e:                      Err(e) if MemcacheError::of(&e).is_some() => ..,
//!         ...                                         Err(e) => return Err(e),
//!                                                 }
//!     a, b = await gen.multi([client.get("a"),    let ab = gen::multi(vec![client.get_async(b"a"),
//!                             client.get("b")])                        client.get_async(b"b")]).await?;
//!                                             })
//! ```
//!
//! An error that is not the client's own (a bug in a callback it runs)
//! still goes outward through the stack context, as in the callback form;
//! inside a coroutine that is the coroutine's own context, which ends it
//! with that error.

use squall::{Error, Future};

use super::client::Client;
use super::reply::{Item, Status};

/// A call's two callbacks as one future: whichever runs completes it.
fn future_of<T: 'static>(
    call: impl FnOnce(Box<dyn FnOnce(T)>, Box<dyn FnOnce(Error)>),
) -> Future<T> {
    let future = Future::new();
    let (ok, failed) = (future.clone(), future.clone());
    call(
        Box::new(move |value| {
            ok.try_set_result(value);
        }),
        Box::new(move |err| {
            failed.try_set_error(err);
        }),
    );
    future
}

impl Client {
    /// [`get`](Client::get) as a future: the item, or `None` for a miss.
    pub fn get_async(&self, key: &[u8]) -> Future<Option<Item>> {
        future_of(|ok, fail| self.get(key, ok, fail))
    }

    /// [`get_multi`](Client::get_multi) as a future (`gets` with `cas`).
    pub fn get_multi_async<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        cas: bool,
    ) -> Future<Vec<Option<Item>>> {
        future_of(|ok, fail| self.get_multi(keys, cas, ok, fail))
    }

    /// [`set`](Client::set) as a future.
    pub fn set_async(&self, key: &[u8], data: &[u8], exptime: i64) -> Future<Status> {
        future_of(|ok, fail| self.set(key, data, exptime, ok, fail))
    }

    /// [`delete`](Client::delete) as a future.
    pub fn delete_async(&self, key: &[u8]) -> Future<Status> {
        future_of(|ok, fail| self.delete(key, ok, fail))
    }

    /// [`incr`](Client::incr) as a future: the new value, or `None` if the
    /// key is missing.
    pub fn incr_async(&self, key: &[u8], delta: u64) -> Future<Option<u64>> {
        future_of(|ok, fail| self.incr(key, delta, ok, fail))
    }
}
