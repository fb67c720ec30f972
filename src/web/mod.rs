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
mod error;
mod exchange;
pub mod gzip;
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

use crate::callback;
use crate::error::Error;
use crate::future::Future;
use crate::http::{
    HTTPConnection, HTTPMessageDelegate, HTTPServerConnectionDelegate, HTTPServerRequest, Method,
};
/// Cookie attributes and `SameSite`, from [`httputil`](crate::httputil).
pub use crate::httputil::{CookieOptions, SameSite};
use crate::stack_context::{self, ReusableContext};
pub use arguments::{ArgumentSource, MultipartReader};
pub use auth::{authenticated, Authenticated};
pub use cookies::CookieSecret;
pub use error::HTTPError;
pub use exchange::Exchange;
use exchange::Pool;
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

/// A request handler; a fresh one answers each request (Tornado's
/// `RequestHandler`).
///
/// Every method has a default: the HTTP verbs answer 405, the hooks do
/// nothing. A verb method answers through `x` and returns; see the
/// [module docs](self) for the asynchronous case.
#[allow(unused_variables)]
pub trait RequestHandler: 'static {
    /// Runs before the verb method; finishing the response here (e.g. with
    /// [`Exchange::send_error`]) skips it. An `async` block started here
    /// with [`Exchange::run_async`] is Tornado 6's `async def prepare`:
    /// the verb method runs when it ends.
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

    /// Whether the handler takes its request body as it arrives, through
    /// [`data_received`](Self::data_received), rather than whole in
    /// [`HTTPServerRequest::body`]: Tornado's `@stream_request_body`.
    /// Then [`prepare`](Self::prepare) runs when the head has arrived
    /// (it may raise the body limit with
    /// [`HTTPConnection::set_max_body_size`], through
    /// [`Exchange::connection`]), `data_received` for each piece, and the
    /// verb method once the body is complete.
    ///
    /// ```
    /// use squall::web::{Application, Exchange, RequestHandler};
    /// use squall::{Error, Future};
    ///
    /// #[derive(Default)]
    /// struct Upload { bytes: usize }
    /// impl RequestHandler for Upload {
    ///     fn stream_request_body() -> bool { true }
    ///     fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
    ///         x.connection().set_max_body_size(10 << 30); // 10 GiB
    ///         Ok(())
    ///     }
    ///     fn data_received(&mut self, _x: &Exchange, chunk: &[u8]) -> Result<Option<Future<()>>, Error> {
    ///         self.bytes += chunk.len(); // or on to a file, a socket...
    ///         Ok(None)
    ///     }
    ///     fn put(&mut self, x: &Exchange) -> Result<(), Error> {
    ///         x.write(format!("{} bytes", self.bytes));
    ///         Ok(())
    ///     }
    /// }
    /// let app = Application::new().route("/upload", Upload::default);
    /// # let _ = app;
    /// ```
    fn stream_request_body() -> bool
    where
        Self: Sized,
    {
        false
    }

    /// Writes the page of an error answer (Tornado's `write_error`): the
    /// status is set and the headers cleared; `error` is what failed, for
    /// a 500 from an uncaught error. [`Exchange::send_error`] and uncaught
    /// errors use it. Default: Tornado's short HTML page. An associated
    /// function, not a method: the handler may be in the middle of one.
    ///
    /// ```
    /// use squall::web::{Application, Exchange, RequestHandler};
    /// use squall::Error;
    ///
    /// struct Api;
    /// impl RequestHandler for Api {
    ///     fn write_error(x: &Exchange, status: u16, _error: Option<&Error>) {
    ///         let _ = x.set_header("Content-Type", "application/json");
    ///         x.write(format!("{{\"error\": {status}}}"));
    ///     }
    /// }
    /// let app = Application::new().route("/api", || Api);
    /// # let _ = app;
    /// ```
    fn write_error(x: &Exchange, status: u16, error: Option<&Error>)
    where
        Self: Sized,
    {
        exchange::default_error_page(x, status, error);
    }

    /// A piece of the request body, for a handler that
    /// [streams it](Self::stream_request_body). Returning a pending
    /// [`Future`] pauses reading until it is done (backpressure). An `Err`
    /// answers 500 and the rest of the body is dropped.
    fn data_received(&mut self, x: &Exchange, chunk: &[u8]) -> Result<Option<Future<()>>, Error> {
        Ok(None)
    }

    /// Who is logged in, from the request (Tornado's `get_current_user`):
    /// usually a signed cookie's value. Called at most once per request,
    /// through [`current_user`](Self::current_user). Default: nobody.
    fn get_current_user(&mut self, x: &Exchange) -> Result<Option<String>, Error> {
        Ok(None)
    }

    /// The current user (Tornado's `self.current_user`): the one set with
    /// [`Exchange::set_current_user`], else what
    /// [`get_current_user`](Self::get_current_user) says, asked once and
    /// kept for the request (then also [`Exchange::current_user`]). Not
    /// meant to be overridden.
    fn current_user(&mut self, x: &Exchange) -> Result<Option<String>, Error> {
        auth::current_user_of(self, x)
    }

    /// Where [`authenticated`] sends a visitor not logged in (Tornado's
    /// `get_login_url`). Default: the `login_url` setting, and an
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) error
    /// (a 500) without one.
    fn get_login_url(&mut self, x: &Exchange) -> Result<String, Error> {
        auth::login_url_setting(x)
    }

    /// The XSRF check run before [`prepare`](Self::prepare) for `POST`,
    /// `PUT`, `PATCH` and `DELETE` when the `xsrf_cookies` setting is on
    /// (Tornado's `check_xsrf_cookie`). Default:
    /// [`Exchange::check_xsrf_cookie`]; override with `Ok(())` to exempt a
    /// handler (an API that authenticates otherwise).
    fn check_xsrf_cookie(&mut self, x: &Exchange) -> Result<(), Error> {
        x.check_xsrf_cookie()
    }
}

type Factory = Box<dyn Fn() -> Box<dyn RequestHandler>>;

struct Route {
    pattern: Pattern,
    factory: Factory,
    /// The handler takes its body as it comes.
    streaming: bool,
    /// The handler's `write_error`.
    write_error: ErrorPage,
}

impl Route {
    fn new<H, F>(pattern: Pattern, factory: F) -> Route
    where
        H: RequestHandler,
        F: Fn() -> H + 'static,
    {
        Route {
            pattern,
            factory: Box::new(move || Box::new(factory())),
            streaming: H::stream_request_body(),
            write_error: H::write_error,
        }
    }
}

/// Writes an error page: a handler's `write_error`.
pub(crate) type ErrorPage = fn(&Exchange, u16, Option<&Error>);

/// A set of routes, matched in order; Tornado's `Application`.
///
/// A path no route matches gets 404; a method the handler does not
/// implement, 405. It is an [`HTTPServerConnectionDelegate`]: give it to
/// [`HTTPServer::new`](crate::http::HTTPServer::new).
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

/// The stack context a request's handler runs in (Tornado 3's
/// `@asynchronous` `ExceptionStackContext`): an `Err` or panic from any
/// callback the handler scheduled, however many callbacks later, answers
/// the request 500 (or closes the connection if its head went out), once.
/// One frame serves request after request until a callback keeps it; the
/// request it served then owns it.
struct RequestContext {
    frame: ReusableContext,
    /// The exchange the frame serves.
    exchange: Rc<RefCell<Option<Exchange>>>,
}

impl RequestContext {
    fn new() -> RequestContext {
        let exchange: Rc<RefCell<Option<Exchange>>> = Rc::default();
        let target = exchange.clone();
        let frame = ReusableContext::new(move |err: &Error| {
            let x = target.borrow().clone();
            match x {
                // Unfinished: the error ends the request.
                Some(x) if !x.finished() => {
                    x.handler_failed(err.clone());
                    true
                }
                // Finished: nothing to answer; logged as unhandled.
                _ => false,
            }
        });
        RequestContext { frame, exchange }
    }
}

/// A request context entered for an asynchronous handler, until its
/// method returns.
struct Entered {
    context: RequestContext,
    _current: stack_context::Entered,
}

impl AppInner {
    /// Runs `f` (a handler's method) for `x`. Should the handler make its
    /// response asynchronous ([`Exchange::set_async`]), the request's
    /// context is entered from there to the method's return, so callbacks
    /// scheduled meanwhile carry it (Tornado's `@asynchronous`). A
    /// synchronous handler, the usual one, pays for none of it.
    #[inline]
    fn in_method<R>(&self, x: &Exchange, f: impl FnOnce() -> R) -> R {
        // A frame over the stack the method starts under, ready for
        // `set_async` (usually the last request's, free and fitting).
        {
            let mut context = self.context.borrow_mut();
            if !context.as_ref().is_some_and(|c| c.frame.fits()) {
                // Neither holds an exchange: dropping one runs no user code.
                *context = Some(RequestContext::new());
            }
        }
        x.method_running(true);
        let value = f();
        x.method_running(false);
        if let Some(entered) = x.take_entered() {
            self.leave_context(entered);
        }
        value
    }

    /// Enters the request context for `x`; `None` if the method is inside
    /// a stack context of its own just now (entering ours there would
    /// restore theirs after they ended).
    fn enter_context(&self, x: &Exchange) -> Option<Entered> {
        let context = self.context.borrow_mut().take()?;
        let Some(current) = context.frame.enter() else {
            log::debug!("set_async() inside a stack context: the request's is not entered");
            *self.context.borrow_mut() = Some(context);
            return None;
        };
        *context.exchange.borrow_mut() = Some(x.clone());
        Some(Entered {
            context,
            _current: current,
        })
    }

    /// Leaves the request context; keeps it for the next request unless a
    /// callback captured it (it is then that request's).
    fn leave_context(&self, entered: Entered) {
        let Entered { context, _current } = entered;
        drop(_current);
        if !context.frame.kept() {
            let x = context.exchange.borrow_mut().take();
            drop(x);
            *self.context.borrow_mut() = Some(context);
        }
    }
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

impl AppInner {
    /// The id of the route for the request (see [`route`](Self::route)):
    /// the first whose path matches, among those for the request's host
    /// when there are host groups; else the default handler's. Its
    /// captures go into the request.
    #[inline]
    fn find(&self, request: &mut HTTPServerRequest) -> Option<usize> {
        if !self.hosts.is_empty() {
            return self.find_by_host(request);
        }
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
            .position(|route| route.pattern.match_into(path, path_args))
            .or_else(|| self.default_id())
    }

    /// The route with this id: one of `routes`, else of `extra`.
    #[inline(always)]
    fn route(&self, id: usize) -> &Route {
        match self.routes.get(id) {
            Some(route) => route,
            None => self.extra_route(id),
        }
    }

    /// A route for some hosts, or the default handler: out of line, so
    /// the usual route's path stays as short as it was.
    #[cold]
    #[inline(never)]
    fn extra_route(&self, id: usize) -> &Route {
        &self.extra[id - self.routes.len()]
    }

    #[cold]
    fn default_id(&self) -> Option<usize> {
        self.default_route.map(|i| self.routes.len() + i)
    }

    /// Tornado's order: the routes of the hosts matching the request's
    /// `Host` (without its port) in the order added, then the routes for
    /// any host, then those of the hosts matching `default_host` (unless
    /// the request came through a proxy that named the client, with
    /// `X-Real-Ip`), then the default handler.
    #[inline(never)]
    fn find_by_host(&self, request: &mut HTTPServerRequest) -> Option<usize> {
        let mut args = std::mem::take(&mut request.path_args);
        let path = request.path();
        let host = routing::host_name(request.host());
        let in_hosts = |matching: &dyn Fn(&HostPattern) -> bool, args: &mut Vec<_>| {
            self.hosts
                .iter()
                .filter(|group| matching(&group.pattern))
                .find_map(|group| {
                    let routes = &self.extra[group.routes.clone()];
                    let i = routes
                        .iter()
                        .position(|r| r.pattern.match_into(path, args))?;
                    Some(self.routes.len() + group.routes.start + i)
                })
        };
        let found = in_hosts(&|p| p.matches(host), &mut args)
            .or_else(|| {
                self.routes
                    .iter()
                    .position(|route| route.pattern.match_into(path, &mut args))
            })
            .or_else(|| {
                let default_host = self.settings.default_host.as_deref()?;
                if request.headers.get("X-Real-Ip").is_some() {
                    return None;
                }
                in_hosts(&|p| p.matches(default_host), &mut args)
            })
            .or_else(|| self.default_id());
        request.path_args = args;
        found
    }
}

impl HTTPServerConnectionDelegate for Application {
    type Message = RequestDelegate;

    fn start_request(&self, conn: &HTTPConnection) -> RequestDelegate {
        RequestDelegate {
            app: self.inner.clone(),
            conn: conn.clone(),
            state: State::Start,
            spare: None,
        }
    }

    /// As Tornado's `RequestHandler`: `text/html; charset=UTF-8`.
    fn default_content_type(&self) -> Option<&'static str> {
        Some("text/html; charset=UTF-8")
    }

    /// The error page of the route the head asked for (see refused.rs).
    fn on_protocol_error(
        &self,
        conn: &HTTPConnection,
        status: u16,
        request: Box<HTTPServerRequest>,
    ) {
        refused::head_refused(&self.inner, conn, status, request);
    }
}

/// One request's way through an [`Application`]: routed when its head
/// arrives, its body buffered (or streamed to a
/// [streaming handler](RequestHandler::stream_request_body)), its handler
/// run when the body is complete; Tornado's `_HandlerDelegate`.
pub struct RequestDelegate {
    app: Rc<AppInner>,
    conn: HTTPConnection,
    state: State,
    /// The last request's exchange, emptied, for the next one on this
    /// connection (the delegate is [reused](HTTPMessageDelegate::reuse)):
    /// no trip through the application's pool per request.
    spare: Option<Exchange>,
}

enum State {
    Start,
    /// Collecting the body for the route's handler (if a route matched).
    Buffering(Box<HTTPServerRequest>, Option<usize>),
    /// A streaming handler, prepared, taking the body.
    Streaming(Exchange, Box<dyn RequestHandler>),
    /// The handler left its response open (or failed while streaming):
    /// kept to hear if the client leaves.
    Open(Exchange),
    Done,
}

impl HTTPMessageDelegate for RequestDelegate {
    fn headers_received(&mut self, mut request: Box<HTTPServerRequest>) {
        let route = self.app.find(&mut request);
        let streaming = route.filter(|&i| self.app.route(i).streaming);
        let Some(streaming) = streaming else {
            if self.conn.expects_body() {
                self.state = State::Buffering(request, route);
            } else {
                // Nothing more will come (`finish` follows at once): the
                // handler runs now, the usual request's one step.
                let x = self.exchange(request);
                self.dispatch(x, route);
            }
            return;
        };
        let x = self.exchange(request);
        let app = self.app.clone();
        let route = app.route(streaming);
        x.set_error_page(route.write_error);
        let mut handler = match callback::catch_value(|| (route.factory)()) {
            Ok(handler) => handler,
            Err(err) => {
                x.handler_failed(err);
                self.state = State::Open(x);
                return;
            }
        };
        let result = self.app.in_method(&x, || {
            callback::catch_value(|| {
                xsrf::check_before_prepare(&mut *handler, &x)?;
                handler.prepare(&x)
            })
        });
        if let Ok(Err(err)) | Err(err) = result {
            x.handler_failed(err);
        }
        self.state = if x.finished() {
            handler.on_finish();
            State::Open(x)
        } else {
            State::Streaming(x, handler)
        };
    }

    fn data_received(&mut self, chunk: &[u8]) -> Option<Future<()>> {
        match &mut self.state {
            // Memory grows with the bytes that arrive, up to the server's
            // `max_body_size`, never with what the client declared.
            State::Buffering(request, _) => {
                request.body.extend_from_slice(chunk);
                None
            }
            State::Streaming(x, handler) => {
                let app = &self.app;
                match app.in_method(x, || {
                    callback::catch_value(|| handler.data_received(x, chunk))
                }) {
                    Ok(Ok(wait)) => wait,
                    Ok(Err(err)) | Err(err) => {
                        x.handler_failed(err);
                        let State::Streaming(x, mut handler) =
                            std::mem::replace(&mut self.state, State::Done)
                        else {
                            unreachable!()
                        };
                        handler.on_finish();
                        self.state = State::Open(x);
                        None
                    }
                }
            }
            State::Start | State::Open(_) | State::Done => None,
        }
    }

    /// Inlined into the server's reader: the usual request was answered
    /// at its head, and this is one test.
    #[inline]
    fn finish(&mut self) {
        if !matches!(self.state, State::Start | State::Done) {
            self.body_complete();
        }
    }

    /// The handler's error page (see refused.rs).
    fn on_protocol_error(&mut self, status: u16) {
        self.body_refused(status);
    }

    fn on_connection_close(&mut self) {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Open(x) => x.connection_closed(None),
            State::Streaming(x, handler) => x.connection_closed(Some(handler)),
            _ => {}
        }
    }

    /// Ready for the next request unless a response is still open.
    #[inline]
    fn reuse(&mut self) -> bool {
        match self.state {
            // The usual request, answered at its head.
            State::Start => true,
            State::Done => {
                self.state = State::Start;
                true
            }
            _ => false,
        }
    }
}

/// Calls the handler's method for the request's verb.
#[inline]
fn call_verb(handler: &mut dyn RequestHandler, x: &Exchange) -> Result<(), Error> {
    match x.request().method {
        Method::Get => handler.get(x),
        Method::Head => handler.head(x),
        Method::Post => handler.post(x),
        Method::Put => handler.put(x),
        Method::Delete => handler.delete(x),
        Method::Patch => handler.patch(x),
        Method::Options => handler.options(x),
        Method::Other(_) => {
            x.send_error(405);
            Ok(())
        }
    }
}

impl RequestDelegate {
    /// The body has come: the handler runs (or, streaming, its verb method).
    fn body_complete(&mut self) {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Buffering(request, route) => {
                let x = self.exchange(request);
                self.dispatch(x, route);
            }
            State::Streaming(x, handler) => self.run(x, Some(handler), None),
            other => self.state = other,
        }
    }

    /// The exchange for `request`: the last one's, emptied, if it is here.
    /// Always inlined: it is a few moves, on every request's path.
    #[inline(always)]
    fn exchange(&mut self, request: Box<HTTPServerRequest>) -> Exchange {
        let request = match self.spare.take() {
            Some(x) => match x.refill(request) {
                Ok(x) => return x,
                Err(request) => request,
            },
            None => request,
        };
        Exchange::new(&self.app, &self.conn, request)
    }

    /// Answers 404 without a route, else runs the route's handler.
    #[inline]
    fn dispatch(&mut self, x: Exchange, route: Option<usize>) {
        let Some(route) = route else {
            x.send_error(404);
            x.park(&self.app.pool, &mut self.spare);
            return;
        };
        x.set_error_page(self.app.route(route).write_error);
        self.run(x, None, Some(route));
    }

    /// Runs the handler (`handler`, already prepared, or a new one from
    /// `factory`): `prepare` unless it ran, the verb method, the finish
    /// unless the response was left open, and `on_finish`. A panic in any
    /// of them, the factory's included, is caught like an `Err`: 500 if the
    /// response can still be sent, and the connection goes on.
    fn run(
        &mut self,
        x: Exchange,
        mut handler: Option<Box<dyn RequestHandler>>,
        route: Option<usize>,
    ) {
        let prepared = handler.is_some();
        let mut on_finish_ran = false;
        let app = &self.app;
        let result = app.in_method(&x, || {
            callback::catch_value(|| -> Result<(), Error> {
                let handler = match (&mut handler, route) {
                    (Some(handler), _) => handler,
                    (slot, Some(route)) => slot.insert((app.route(route).factory)()),
                    (None, None) => return Ok(()),
                };
                if !prepared {
                    xsrf::check_before_prepare(&mut **handler, &x)?;
                    // An `async` prepare (coroutine.rs) may make the verb wait.
                    x.preparing(|| handler.prepare(&x))?;
                }
                if !x.finished() && !x.verb_waits_for_prepare() {
                    call_verb(&mut **handler, &x)?;
                }
                // The usual end, in the same catch: a panicking `on_finish`
                // is caught like one in `get` (and only logged: the
                // response is out).
                if !x.finished() && !x.is_async() {
                    let _ = x.finish();
                }
                if x.finished() {
                    on_finish_ran = true;
                    handler.on_finish();
                }
                Ok(())
            })
        });
        if let Ok(Err(err)) | Err(err) = result {
            x.handler_failed(err);
            if !x.finished() && !x.is_async() {
                let _ = x.finish();
            }
            if x.finished() && !on_finish_ran {
                // On the error path only: a catch of its own.
                if let Some(mut handler) = handler.take() {
                    if let Err(err) = callback::catch_value(|| handler.on_finish()) {
                        log::error!("on_finish failed: {err}");
                    }
                }
            }
        }
        if x.finished() {
            x.park(&self.app.pool, &mut self.spare);
        } else {
            if let Some(handler) = handler {
                x.park_handler(handler);
            }
            self.state = State::Open(x);
        }
    }
}
