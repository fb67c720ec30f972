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
//!         x.set_header("Content-Type", "text/plain")?;
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
//! stays open until a later callback calls [`Exchange::finish`]. A method
//! written as an `async` block (Tornado 6's `async def get`) hands the
//! block to [`Exchange::run_async`]: the response finishes when it ends.
//! An `Err`
//! or a panic from a handler answers 500 (once; if the response had
//! started, the connection is closed instead), and the server goes on.
//!
//! From `set_async` on, the rest of the handler's method runs in the
//! request's stack context (Tornado's `@asynchronous`
//! `ExceptionStackContext`): an `Err` or panic from any callback scheduled
//! there, however many callbacks later, ends the request the same way, so
//! a client never waits for a response nobody will finish. After the
//! response is finished, such an error is only logged.

mod arguments;
mod auth;
mod cookies;
mod coroutine;
mod dispatch;
mod error;
mod exchange;
pub mod gzip;
mod handler;
mod refused;
mod route;
mod routing;
mod settings;
#[cfg(feature = "signed_cookies")]
mod signed;
#[cfg(feature = "static")]
pub mod static_file;
#[cfg(feature = "static")]
mod static_open;
#[cfg(feature = "template")]
mod template;
#[cfg(all(feature = "template", feature = "fuzzing"))]
pub(crate) use template::render_for_fuzz;
pub(crate) mod xsrf;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::Error;
/// Cookie attributes and `SameSite`, from [`httputil`](crate::httputil).
pub use crate::httputil::{CookieOptions, SameSite};
pub use arguments::{ArgumentSource, MultipartReader};
pub use auth::{authenticated, Authenticated};
pub use cookies::CookieSecret;
pub use dispatch::RequestDelegate;
use dispatch::{Entered, RequestContext, State};
pub use error::HTTPError;
pub use exchange::Exchange;
use exchange::Pool;
pub use handler::RequestHandler;
use handler::{ErrorPage, Route};
/// The template engine (feature `template`), re-exported so a context is
/// built with the version squall uses: `squall::web::minijinja::context!`.
#[cfg(feature = "template")]
pub use minijinja;
use route::Pattern;
pub use routing::{ErrorHandler, RedirectHandler, Routes};
use routing::{HostPattern, HostRoutes};
pub use settings::Settings;
#[cfg(feature = "signed_cookies")]
pub use signed::{
    create_signed_value, create_signed_value_with, decode_signed_value, decode_signed_value_with,
    get_signature_key_version, DecodeOptions, SignOptions,
};
#[cfg(feature = "static")]
pub use static_file::StaticFileHandler;
use xsrf::XsrfState;

/// A set of routes, matched in order; Tornado's `Application`.
///
/// A path no route matches gets 404; a method the handler does not
/// implement, 405. It is an
/// [`HTTPServerConnectionDelegate`](crate::http::HTTPServerConnectionDelegate):
/// give it to [`HTTPServer::new`](crate::http::HTTPServer::new).
#[derive(Default)]
pub struct Application {
    inner: Rc<AppInner>,
}

/// The routes, shared by the requests in flight.
#[derive(Default)]
struct AppInner {
    /// The routes for any host (Tornado's `Application(handlers)`).
    routes: Vec<Route>,
    /// Routes for some hosts (`add_handlers`) and the default handler; a
    /// route's id is its index in `routes`, or `routes.len()` + its index
    /// here.
    extra: Vec<Route>,
    /// The host groups, in the order added.
    hosts: Vec<HostRoutes>,
    /// The default handler's index in `extra`.
    default_route: Option<usize>,
    /// Named routes, for `reverse_url`.
    names: routing::SharedNames,
    /// The template engine, made at the first render.
    #[cfg(feature = "template")]
    templates: std::cell::OnceCell<template::Templates>,
    /// Shared with every exchange (`Exchange::settings`).
    settings: Rc<Settings>,
    /// Finished exchanges, emptied, for reuse: an allocation saved per
    /// request.
    pool: Pool,
    /// The error context handlers run in, kept for the next request while
    /// no callback captured it (see [`RequestContext`]).
    context: RefCell<Option<RequestContext>>,
}

impl Application {
    /// No routes.
    pub fn new() -> Application {
        Application::default()
    }

    /// No routes, and these settings (Tornado's
    /// `Application(handlers, **settings)`).
    pub fn with_settings(settings: Settings) -> Application {
        let mut app = Application::default();
        app.inner_mut().settings = Rc::new(settings);
        // Tornado serves `static_path` before the application's own routes.
        #[cfg(feature = "static")]
        let app = static_file::add_static_routes(app);
        #[cfg(not(feature = "static"))]
        if app.settings().static_path.is_some() {
            log::warn!("static_path is set, but squall was built without feature `static`: no static files are served");
        }
        app
    }

    /// The settings (Tornado's `application.settings`).
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The application, to configure: only before it serves.
    fn inner_mut(&mut self) -> &mut AppInner {
        // Only the server's requests share it, and routes and settings are
        // given before it serves.
        Rc::get_mut(&mut self.inner).expect("an application is configured before it serves")
    }

    fn add<H, F>(&mut self, pattern: Pattern, factory: F)
    where
        H: RequestHandler,
        F: Fn() -> H + 'static,
    {
        self.inner_mut()
            .routes
            .push(Route::new::<H, F>(pattern, factory));
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
        self.add::<H, F>(pattern, factory);
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
        self.add::<H, F>(pattern, factory);
        Ok(self)
    }

    /// Names the route added last (Tornado's `url(..., name=...)`), for
    /// [`reverse_url`](Self::reverse_url) and the templates' `reverse_url`.
    /// A later route of the same name replaces it (with a warning).
    ///
    /// # Panics
    /// If no route was added yet.
    pub fn name(mut self, name: &str) -> Application {
        let inner = self.inner_mut();
        let route = inner.routes.last().expect("name() before any route");
        Arc::get_mut(&mut inner.names)
            .expect("names are shared once the application serves")
            .add(name, &route.pattern);
        self
    }

    /// Adds routes for the hosts `host_pattern` matches (Tornado's
    /// `add_handlers`): a host name (`www.example.com`, letter case
    /// ignored, the request's port left out), a wildcard
    /// (`*.example.com`: its subdomains, not itself; `*` or `.*`: every
    /// host), or, with feature `regex`, a regular expression matching the
    /// whole host name, as Tornado's (`r"www\.example\.(com|org)"`).
    ///
    /// A request is matched against the routes of the host groups its
    /// host matches, in the order they were added, then against the
    /// routes for any host, then against the groups matching
    /// [`Settings::default_host`] (Tornado's order).
    ///
    /// ```
    /// use squall::web::{Application, ErrorHandler, RedirectHandler, Routes, Settings};
    ///
    /// let app = Application::with_settings(Settings {
    ///     default_host: Some("www.example.com".into()),
    ///     ..Default::default()
    /// })
    /// .add_handlers("www.example.com", Routes::new().route("/", || ErrorHandler::new(503)))
    /// .add_handlers("*.example.com", Routes::new().route("/", || RedirectHandler::new("https://www.example.com/")));
    /// # let _ = app;
    /// ```
    ///
    /// # Panics
    /// On a host pattern that is not valid (or is a regular expression,
    /// without feature `regex`), as [`route`](Self::route) does on a
    /// malformed path.
    pub fn add_handlers(mut self, host_pattern: &str, routes: Routes) -> Application {
        let pattern = HostPattern::parse(host_pattern).unwrap_or_else(|e| panic!("{e}"));
        let inner = self.inner_mut();
        let start = inner.extra.len();
        let names =
            Arc::get_mut(&mut inner.names).expect("names are shared once the application serves");
        for (name, i) in &routes.names {
            names.add(name, &routes.routes[*i].pattern);
        }
        inner.extra.extend(routes.routes);
        inner.hosts.push(HostRoutes {
            pattern,
            routes: start..inner.extra.len(),
        });
        self
    }

    /// The handler for requests no route matches (Tornado's
    /// `default_handler_class`), instead of the plain 404 page: its
    /// methods answer, and its `write_error` writes its error pages. A
    /// custom 404 page is a default handler whose `prepare` returns
    /// `HTTPError::new(404)` and whose `write_error` writes the page.
    pub fn default_handler<H, F>(mut self, factory: F) -> Application
    where
        H: RequestHandler,
        F: Fn() -> H + 'static,
    {
        let inner = self.inner_mut();
        let route = Route::new::<H, F>(Pattern::Exact(String::new()), factory);
        match inner.default_route {
            Some(i) => inner.extra[i] = route,
            None => {
                inner.default_route = Some(inner.extra.len());
                inner.extra.push(route);
            }
        }
        self
    }

    /// The path of the route named `name` (see [`name`](Self::name)) with
    /// `args` in its captures, in order (Tornado's `reverse_url`). Each
    /// argument is url-escaped (`/` too, except in a trailing `{name*}`).
    ///
    /// ```
    /// use squall::web::{Application, ErrorHandler};
    ///
    /// let app = Application::new().route("/user/{id}/posts/{n}", || ErrorHandler::new(404)).name("posts");
    /// assert_eq!(app.reverse_url("posts", &[&"ada", &3]).unwrap(), "/user/ada/posts/3");
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) if
    /// no route has that name, the number of arguments is not the route's,
    /// or the route is a regular expression too complex to reverse (each
    /// `(` must open a capture group, and what is outside them be literal).
    pub fn reverse_url(
        &self,
        name: &str,
        args: &[&dyn std::fmt::Display],
    ) -> Result<String, Error> {
        self.inner.names.reverse(name, args)
    }

    /// How many routes (for any host; those of
    /// [`add_handlers`](Self::add_handlers) are not counted).
    pub fn len(&self) -> usize {
        self.inner.routes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.inner.routes.is_empty()
    }
}
