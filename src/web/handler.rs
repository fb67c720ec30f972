//! The request handler: Tornado's `RequestHandler` methods, and how a
//! route makes and runs one (see the [module docs](super) for the
//! asynchronous case).
//!
//! A route keeps its handler's type: the handler of the usual request is
//! made on the stack and its methods are called directly, without a box
//! or a virtual call per method; it is boxed only if it must outlive its
//! method (a response left open, a streaming body).

use super::route::Pattern;
use super::{auth, exchange, xsrf, AppInner, Exchange};
use crate::callback;
use crate::error::Error;
use crate::future::Future;
use crate::http::Method;

/// A request handler; a fresh one answers each request (Tornado's
/// `RequestHandler`).
///
/// Every method has a default: the HTTP verbs answer 405, the hooks do
/// nothing. A verb method answers through `x` and returns; see the
/// [module docs](super) for the asynchronous case.
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
    /// [`HTTPServerRequest::body`](crate::http::HTTPServerRequest::body): Tornado's `@stream_request_body`.
    /// Then [`prepare`](Self::prepare) runs when the head has arrived
    /// (it may raise the body limit with
    /// [`HTTPConnection::set_max_body_size`](crate::http::HTTPConnection::set_max_body_size), through
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

    /// Where [`authenticated`](super::authenticated) sends a visitor not logged in (Tornado's
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

/// A route's handler type behind one vtable: it makes the handler, boxed
/// for one that lives across callbacks, or runs one for a request.
pub(super) trait Handlers {
    /// A handler, boxed: a streaming one, which takes the body piece by
    /// piece.
    fn make(&self) -> Box<dyn RequestHandler>;
    /// Makes a handler and runs it for `x` (see [`steps`]) in the
    /// request's context, a panic caught like an `Err`; the handler comes
    /// back, boxed, only if the response was left open.
    fn run(&self, app: &AppInner, x: &Exchange) -> Option<Box<dyn RequestHandler>>;
}

/// The factory of a route whose handlers are `H`s.
struct Typed<F>(F);

impl<H, F> Handlers for Typed<F>
where
    H: RequestHandler,
    F: Fn() -> H + 'static,
{
    fn make(&self) -> Box<dyn RequestHandler> {
        Box::new((self.0)())
    }

    fn run(&self, app: &AppInner, x: &Exchange) -> Option<Box<dyn RequestHandler>> {
        // On the stack: a handler with fields costs no allocation.
        let mut handler: Option<H> = None;
        let mut on_finish_ran = false;
        let result = app.in_method(x, || {
            callback::catch_value(|| {
                let handler = handler.insert((self.0)());
                steps(handler, x, false, &mut on_finish_ran)
            })
        });
        if let Ok(Err(err)) | Err(err) = result {
            let handler = handler.as_mut().map(|h| h as &mut dyn RequestHandler);
            failed(x, err, handler, on_finish_ran);
        }
        if x.finished() {
            return None;
        }
        handler.map(|h| Box::new(h) as Box<dyn RequestHandler>)
    }
}

pub(super) struct Route {
    pub(super) pattern: Pattern,
    pub(super) handlers: Box<dyn Handlers>,
    /// The handler takes its body as it comes.
    pub(super) streaming: bool,
    /// The handler's `write_error`.
    pub(super) write_error: ErrorPage,
}

impl Route {
    pub(super) fn new<H, F>(pattern: Pattern, factory: F) -> Route
    where
        H: RequestHandler,
        F: Fn() -> H + 'static,
    {
        Route {
            pattern,
            handlers: Box::new(Typed(factory)),
            streaming: H::stream_request_body(),
            write_error: H::write_error,
        }
    }
}

/// Writes an error page: a handler's `write_error`.
pub(crate) type ErrorPage = fn(&Exchange, u16, Option<&Error>);

/// A handler's way through a request, after the factory: the XSRF check
/// and `prepare` (unless `prepared`, as a streaming handler is), the verb
/// method unless the response is finished, the finish unless it was left
/// open, and `on_finish` once it is finished (`on_finish_ran` says so).
/// In one catch, so a panicking `on_finish` is caught like one in `get`.
/// Always inlined: once per handler type, and an `async` handler's (whose
/// verb method starts a coroutine) was otherwise left a call of its own.
#[inline(always)]
pub(super) fn steps<H: RequestHandler + ?Sized>(
    handler: &mut H,
    x: &Exchange,
    prepared: bool,
    on_finish_ran: &mut bool,
) -> Result<(), Error> {
    if !prepared {
        xsrf::check_before_prepare(handler, x)?;
        // An `async` prepare (coroutine.rs) may make the verb wait.
        x.preparing(|| handler.prepare(x))?;
    }
    if !x.finished() && !x.verb_waits_for_prepare() {
        call_verb(handler, x)?;
    }
    if !x.finished() && !x.is_async() {
        let _ = x.finish();
    }
    if x.finished() {
        *on_finish_ran = true;
        handler.on_finish();
    }
    Ok(())
}

/// Calls the handler's method for the request's verb (405 for a verb
/// the trait has no method for).
#[inline]
pub(super) fn call_verb<H: RequestHandler + ?Sized>(
    handler: &mut H,
    x: &Exchange,
) -> Result<(), Error> {
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

/// An `Err` or panic out of [`steps`]: 500 (or the error's status) if the
/// response can still be sent, the finish unless the response is
/// asynchronous, and `on_finish` if it did not run (in a catch of its own:
/// the response is out, so a panic there is only logged).
#[cold]
#[inline(never)]
pub(super) fn failed(
    x: &Exchange,
    err: Error,
    handler: Option<&mut dyn RequestHandler>,
    on_finish_ran: bool,
) {
    x.handler_failed(err);
    if !x.finished() && !x.is_async() {
        let _ = x.finish();
    }
    if x.finished() && !on_finish_ran {
        if let Some(handler) = handler {
            if let Err(err) = callback::catch_value(|| handler.on_finish()) {
                log::error!("on_finish failed: {err}");
            }
        }
    }
}
