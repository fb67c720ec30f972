//! `HTTPClient`: the blocking convenience wrapper, on a private loop.

use super::client::AsyncHTTPClient;
use super::config::ClientConfig;
use super::pool::ClientStats;
use super::request::HTTPRequest;
use super::response::HTTPResponse;
use crate::error::Error;
use crate::ioloop::IOLoop;

/// A blocking HTTP client for scripts and tests; Tornado's `HTTPClient`.
///
/// It runs an [`AsyncHTTPClient`] on a private [`IOLoop`]: each
/// [`fetch`](HTTPClient::fetch) runs that loop until the answer is in.
/// Never use it in code that runs on a loop (it would stall it); use
/// [`AsyncHTTPClient`] there. Connections are kept alive between fetches.
///
/// ```no_run
/// use squall::httpclient::HTTPClient;
///
/// let client = HTTPClient::new()?;
/// let response = client.fetch("http://127.0.0.1:8888/")?;
/// println!("{} {}", response.code, response.text());
/// # Ok::<(), squall::Error>(())
/// ```
pub struct HTTPClient {
    io_loop: IOLoop,
    client: AsyncHTTPClient,
}

impl HTTPClient {
    /// A client with the default [`ClientConfig`].
    ///
    /// # Errors
    /// If the private loop cannot be created.
    pub fn new() -> Result<HTTPClient, Error> {
        HTTPClient::with_config(ClientConfig::default())
    }

    /// A client with `config`.
    ///
    /// # Errors
    /// If the private loop cannot be created.
    pub fn with_config(config: ClientConfig) -> Result<HTTPClient, Error> {
        let io_loop = IOLoop::new()?;
        let client = AsyncHTTPClient::with_config(&io_loop, config);
        Ok(HTTPClient { io_loop, client })
    }

    /// Fetches and waits for the answer. The request's own timeouts bound
    /// the wait.
    ///
    /// # Errors
    /// As [`AsyncHTTPClient::fetch`]'s future.
    pub fn fetch(&self, request: impl Into<HTTPRequest>) -> Result<HTTPResponse, Error> {
        let request = request.into();
        self.io_loop.run_sync(|| self.client.fetch(request), None)
    }

    /// The client's counters.
    pub fn stats(&self) -> ClientStats {
        self.client.stats()
    }

    /// Closes the connections and the private loop (also done on drop).
    pub fn close(&self) {
        self.client.close();
        self.io_loop.close();
    }
}

impl Drop for HTTPClient {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for HTTPClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HTTPClient")
            .field("client", &self.client)
            .finish()
    }
}
