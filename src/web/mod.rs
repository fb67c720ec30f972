//! Applications and request handlers; Tornado's `web`.
//!
//! An [`Application`] maps paths to handler factories; a fresh handler
//! (a [`RequestHandler`]) is made for every request, as in Tornado, and its
//! `get`/`post`/... method answers through the [`Exchange`] it is given.
//!
//! ```
//! use squall::web::{Application, Exchange, RequestHandler};
//! use squall::Error;
//!
//! struct UserHandler;
//! impl RequestHandler for UserHandler {
//!     fn get(&mut self, x: &Exchange) -> Result<(), Error> {
//!         let id = x.request().path_arg("id").unwrap_or("?").to_owned();
//!         x.set_header("Content-Type", "text/plain");
//!         x.write(format!("user {id}"));
//!         Ok(())
//!     }
//! }
//!
//! let app = Application::new()
//!     .route("/user/{id}", || UserHandler)
//!     .route("/", || UserHandler);
//! assert_eq!(app.len(), 2);
//! ```
//!
//! # Asynchronous handlers
//! A handler method that returns with the response unfinished finishes it
//! for you — unless it called [`Exchange::set_async`] (Tornado's
//! `@web.asynchronous`) or [`Exchange::finish_on`]: then the response
//! stays open until a later callback calls [`Exchange::finish`]. An `Err`
//! or a panic from a handler answers 500 (once; if the response had
//! started, the connection is closed instead), and the server goes on.

mod exchange;
pub(crate) use exchange::Inner as ExchangeState;
mod route;

use std::rc::Rc;

use crate::callback;
use crate::error::Error;
use crate::http::{Conn, HTTPServerRequest, Method};
pub use exchange::Exchange;
use route::Pattern;

/// A request handler; a fresh one answers each request (Tornado's
/// `RequestHandler`).
///
/// Every method has a default: the HTTP verbs answer 405, the hooks do
/// nothing. A verb method answers through `x` and returns; see the
/// [module docs](self) for the asynchronous case.
#[allow(unused_variables)]
pub trait RequestHandler: 'static {
    /// Runs before the verb method; finishing the response here (e.g. with
    /// [`Exchange::send_error`]) skips it.
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        Ok(())
    }
    /// `GET`.
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        x.send_error(405);
        Ok(())
    }
    /// `HEAD`. By default it runs `get` (the body is not sent).
    fn head(&mut self, x: &Exchange) -> Result<(), Error> {
        self.get(x)
    }
    /// `POST`.
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        x.send_error(405);
        Ok(())
    }
    /// `PUT`.
    fn put(&mut self, x: &Exchange) -> Result<(), Error> {
        x.send_error(405);
        Ok(())
    }
    /// `DELETE`.
    fn delete(&mut self, x: &Exchange) -> Result<(), Error> {
        x.send_error(405);
        Ok(())
    }
    /// `PATCH`.
    fn patch(&mut self, x: &Exchange) -> Result<(), Error> {
        x.send_error(405);
        Ok(())
    }
    /// `OPTIONS`.
    fn options(&mut self, x: &Exchange) -> Result<(), Error> {
        x.send_error(405);
        Ok(())
    }
    /// Runs after the response is finished.
    fn on_finish(&mut self) {}
    /// Runs if the client goes away before an asynchronous response is
    /// finished.
    fn on_connection_close(&mut self) {}
}

type Factory = Box<dyn Fn() -> Box<dyn RequestHandler>>;

struct Route {
    pattern: Pattern,
    factory: Factory,
}

/// A set of routes, matched in order; Tornado's `Application`.
///
/// A path no route matches gets 404; a method the handler does not
/// implement, 405.
#[derive(Default)]
pub struct Application {
    routes: Vec<Route>,
}

impl Application {
    /// No routes.
    pub fn new() -> Application {
        Application::default()
    }

    /// Adds a route: `pattern` is an exact path (`/about`) or one with
    /// captures (`/user/{id}`; a capture matches one non-empty path
    /// segment, and a trailing `{name*}` matches the rest, slashes
    /// included). `factory` makes the handler for each request.
    ///
    /// # Panics
    /// On a malformed pattern (unbalanced braces, a capture not a whole
    /// segment): a programming error, found at start-up.
    pub fn route<H, F>(mut self, pattern: &str, factory: F) -> Application
    where
        H: RequestHandler,
        F: Fn() -> H + 'static,
    {
        let pattern = Pattern::parse(pattern).unwrap_or_else(|e| panic!("{e}"));
        self.routes.push(Route {
            pattern,
            factory: Box::new(move || Box::new(factory())),
        });
        self
    }

    /// Adds a route whose pattern is a regular expression, as Tornado's
    /// `URLSpec` (`(r"/entry/([^/]+)", EntryHandler)`): it must match the
    /// whole path (a `$` is added unless it ends with one). Its groups
    /// become the request's path arguments, url-unescaped: named groups
    /// (`(?P<slug>...)`) by name, and only those if there are any (Tornado
    /// passes them as keyword arguments and drops the positional ones);
    /// otherwise every group, named by its number (`"1"` first). Routes of
    /// both kinds are matched in the order they were added.
    ///
    /// ```
    /// use squall::web::{Application, Exchange, RequestHandler};
    ///
    /// struct Entry;
    /// impl RequestHandler for Entry {
    ///     fn get(&mut self, x: &Exchange) -> Result<(), squall::Error> {
    ///         let slug = x.request().path_arg("1").unwrap_or("").to_owned();
    ///         x.write(format!("entry {slug}"));
    ///         Ok(())
    ///     }
    /// }
    /// let app = Application::new().route_regex(r"/entry/([^/]+)", || Entry);
    /// assert_eq!(app.len(), 1);
    /// ```
    ///
    /// # Panics
    /// On an invalid regular expression, as [`route`](Self::route) does on
    /// a malformed pattern; [`try_route_regex`](Self::try_route_regex)
    /// returns the error instead.
    #[cfg(feature = "regex")]
    pub fn route_regex<H, F>(self, pattern: &str, factory: F) -> Application
    where
        H: RequestHandler,
        F: Fn() -> H + 'static,
    {
        self.try_route_regex(pattern, factory)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`route_regex`](Self::route_regex) for patterns not known until run
    /// time.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
    /// naming the pattern, if it is not a valid regular expression.
    #[cfg(feature = "regex")]
    pub fn try_route_regex<H, F>(mut self, pattern: &str, factory: F) -> Result<Application, Error>
    where
        H: RequestHandler,
        F: Fn() -> H + 'static,
    {
        let pattern = Pattern::regex(pattern)?;
        self.routes.push(Route {
            pattern,
            factory: Box::new(move || Box::new(factory())),
        });
        Ok(self)
    }

    /// How many routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub(crate) fn into_dispatch(self) -> Rc<dyn crate::http::Dispatch> {
        Rc::new(self)
    }

    fn find(&self, request: &mut HTTPServerRequest) -> Option<&Route> {
        // The request's own (recycled, empty) vector takes the captures.
        let HTTPServerRequest {
            headers,
            uri,
            query_at,
            path_args,
            ..
        } = request;
        let path = headers.block().get(uri.start..uri.start + *query_at);
        let path = path.unwrap_or("");
        self.routes
            .iter()
            .find(|route| route.pattern.match_into(path, path_args))
    }
}

impl crate::http::Dispatch for Application {
    fn dispatch(&self, conn: &Rc<Conn>, mut request: Box<HTTPServerRequest>) {
        let route = self.find(&mut request);
        let x = Exchange::new(conn, request);
        let Some(route) = route else {
            x.send_error(404);
            return;
        };
        let mut handler = (route.factory)();
        let result = callback::catch_value(|| -> Result<(), Error> {
            handler.prepare(&x)?;
            if x.finished() {
                return Ok(());
            }
            match x.request().method {
                Method::Get => handler.get(&x),
                Method::Head => handler.head(&x),
                Method::Post => handler.post(&x),
                Method::Put => handler.put(&x),
                Method::Delete => handler.delete(&x),
                Method::Patch => handler.patch(&x),
                Method::Options => handler.options(&x),
                Method::Other(_) => {
                    x.send_error(405);
                    Ok(())
                }
            }
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) | Err(err) => x.handler_failed(err),
        }
        if !x.finished() && !x.is_async() {
            let _ = x.finish();
        }
        if x.finished() {
            handler.on_finish();
            x.park();
        } else {
            x.park_handler(handler);
        }
    }
}
