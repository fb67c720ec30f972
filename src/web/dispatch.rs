//! How a request goes through an [`Application`]: the route found when
//! its head arrives, its body buffered or streamed, the handler run in the
//! request's stack context (Tornado's `_HandlerDelegate` and
//! `@asynchronous`), the exchange parked for the next request.

use std::cell::RefCell;
use std::rc::Rc;

use super::handler::{self, RequestHandler, Route};
use super::route::Pattern;
use super::routing::{self, HostPattern};
use super::{refused, xsrf, AppInner, Application, Exchange};
use crate::callback;
use crate::error::Error;
use crate::future::Future;
use crate::http::{
    HTTPConnection, HTTPMessageDelegate, HTTPServerConnectionDelegate, HTTPServerRequest,
};
use crate::stack_context::{self, ReusableContext};

/// The stack context a request's handler runs in (Tornado 3's
/// `@asynchronous` `ExceptionStackContext`): an `Err` or panic from any
/// callback the handler scheduled, however many callbacks later, answers
/// the request 500 (or closes the connection if its head went out), once.
/// One frame serves request after request until a callback keeps it; the
/// request it served then owns it.
pub(super) struct RequestContext {
    frame: ReusableContext,
    /// The exchange the frame serves.
    exchange: Rc<RefCell<Option<Exchange>>>,
}

impl RequestContext {
    pub(super) fn new() -> RequestContext {
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
pub(super) struct Entered {
    /// `None` while deferred and not yet made.
    context: Option<RequestContext>,
    _current: Current,
}

/// How the request context was entered.
enum Current {
    /// At once, by `set_async`.
    Now(#[allow(dead_code)] stack_context::Entered),
    /// Lazily, by `run_async` (see `stack_context::defer`): made when
    /// something captures the stack, the frame then put in `context`.
    Deferred(#[allow(dead_code)] stack_context::Deferral),
}

/// The request context of an exchange entered lazily (`run_async`),
/// made: the first capture of the stack during the method (a callback
/// scheduled, a coroutine that waits) makes it as `set_async` would have.
impl stack_context::Deferred for super::exchange::Inner {
    fn make(self: Rc<Self>) -> Option<stack_context::Context> {
        self.coroutine.carrier.unmade.set(false);
        let x = Exchange { inner: self };
        let app = x.inner.app.upgrade()?;
        let context = app.request_context();
        let frame = context.frame.frame()?;
        *context.exchange.borrow_mut() = Some(x.clone());
        if let Some(entered) = x.inner.entered.borrow_mut().as_mut() {
            entered.context = Some(context);
        }
        Some(frame)
    }

    /// The frame of the block `run_async` started, while its first poll
    /// runs (made over the request's, right after it).
    fn rider(&self) -> Option<Rc<dyn stack_context::Deferred>> {
        self.coroutine.carrier.rider()
    }
}

/// The request's frame, deferred by `run_async` and not yet made, carries
/// the frame of the block's runner through the block's first poll.
impl crate::gen::Carrier for super::exchange::Inner {
    #[inline]
    fn carry(&self, frame: Rc<dyn stack_context::Deferred>) -> bool {
        self.coroutine.carrier.carry(frame)
    }

    #[inline]
    fn let_go(&self) {
        self.coroutine.carrier.let_go();
    }
}

impl Exchange {
    /// `set_async`, the request context entered lazily: what `run_async`
    /// does, as most `async` blocks finish at once having scheduled
    /// nothing, and then the context costs nothing. Observably the same:
    /// whatever captures the stack, until the method returns, captures
    /// the request's context.
    pub(super) fn set_async_deferred(&self) {
        self.inner.asynchronous.set(true);
        let Some(stack) = self.method_stack() else {
            return;
        };
        if self.inner.entered.borrow().is_some() {
            return;
        }
        let Some(deferral) = stack_context::defer_on(self.inner.clone(), stack) else {
            log::debug!("run_async() inside a stack context: the request's is not entered");
            return;
        };
        *self.inner.entered.borrow_mut() = Some(Entered {
            context: None,
            _current: Current::Deferred(deferral),
        });
        // Deferred and unmade: it can carry the block's runner frame.
        self.inner.coroutine.carrier.unmade.set(true);
    }
}

impl AppInner {
    /// Runs `f` (a handler's method) for `x`. Should the handler make its
    /// response asynchronous ([`Exchange::set_async`]), the request's
    /// context is entered from there to the method's return, so callbacks
    /// scheduled meanwhile carry it (Tornado's `@asynchronous`). A
    /// synchronous handler, the usual one, pays for none of it: only the
    /// stack the method starts under is noted, for `set_async` to check.
    #[inline]
    pub(super) fn in_method<R>(&self, x: &Exchange, f: impl FnOnce() -> R) -> R {
        x.method_running(Some(stack_context::current_id()));
        let value = f();
        x.method_running(None);
        if let Some(entered) = x.take_entered() {
            x.inner.coroutine.carrier.unmade.set(false);
            self.leave_context(entered);
        }
        value
    }

    /// Enters the request context for `x`: a frame over the stack its
    /// method started under (usually the last request's, free and
    /// fitting). `None` if the method is inside a stack context of its own
    /// just now (entering ours there would restore theirs after they
    /// ended).
    pub(super) fn enter_context(&self, x: &Exchange) -> Option<Entered> {
        if x.method_stack() != Some(stack_context::current_id()) {
            log::debug!("set_async() inside a stack context: the request's is not entered");
            return None;
        }
        let context = self.request_context();
        let current = context.frame.enter()?;
        *context.exchange.borrow_mut() = Some(x.clone());
        Some(Entered {
            context: Some(context),
            _current: Current::Now(current),
        })
    }

    /// The request context to enter: the last request's if it fits the
    /// current stack, else a new one.
    fn request_context(&self) -> RequestContext {
        let kept = self.context.borrow_mut().take();
        match kept {
            Some(context) if context.frame.fits() => context,
            // Neither holds an exchange: dropping one runs no user code.
            _ => RequestContext::new(),
        }
    }

    /// Leaves the request context; keeps it for the next request unless a
    /// callback captured it (it is then that request's).
    pub(super) fn leave_context(&self, entered: Entered) {
        let Entered { context, _current } = entered;
        drop(_current);
        // Deferred and never made: nothing was entered.
        let Some(context) = context else {
            return;
        };
        if !context.frame.kept() {
            let x = context.exchange.borrow_mut().take();
            drop(x);
            *self.context.borrow_mut() = Some(context);
        }
    }
}

impl AppInner {
    /// The id of the route for the request (see [`route`](Self::route)):
    /// the first whose path matches, among those for the request's host
    /// when there are host groups; else the default handler's. Its
    /// captures go into the request. Always inlined: one call less on
    /// every request's path (refused.rs calls it too, rarely).
    #[inline(always)]
    pub(super) fn find(&self, request: &mut HTTPServerRequest) -> Option<usize> {
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
        let range = uri.start..uri.start + *query_at;
        // An exact route, the usual one, compares bytes: the parser cut
        // the path at ASCII bytes, so it needs no char-boundary checks.
        let bytes = headers.block().get(range.clone()).unwrap_or(b"");
        self.routes
            .iter()
            .position(|route| match &route.pattern {
                Pattern::Exact(p) => p.as_bytes() == bytes,
                pattern => match_other(pattern, headers.text(range.clone()), path_args),
            })
            .or_else(|| self.default_id())
    }

    /// The route with this id: one of `routes`, else of `extra`.
    #[inline(always)]
    pub(super) fn route(&self, id: usize) -> &Route {
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

/// A route with captures or a regular expression: out of line, so that
/// the loop over exact routes stays short.
#[inline(never)]
fn match_other(pattern: &Pattern, path: Option<&str>, args: &mut Vec<(String, String)>) -> bool {
    pattern.match_into(path.unwrap_or(""), args)
}

impl HTTPServerConnectionDelegate for Application {
    type Message = RequestDelegate;

    fn start_request(&self, conn: &HTTPConnection) -> RequestDelegate {
        RequestDelegate {
            app: self.inner.clone(),
            conn: conn.clone(),
            state: State::Start,
            spare: None,
            held: None,
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
    pub(super) app: Rc<AppInner>,
    conn: HTTPConnection,
    pub(super) state: State,
    /// The last request's exchange, emptied, for the next one on this
    /// connection (the delegate is [reused](HTTPMessageDelegate::reuse)):
    /// no trip through the application's pool per request.
    pub(super) spare: Option<Exchange>,
    /// What the streaming request's body waits for: its handler's `async`
    /// prepare (see [`HTTPMessageDelegate::hold_body`]).
    held: Option<Future<()>>,
}

pub(super) enum State {
    Start,
    /// Collecting the body for the route's handler (if a route matched).
    Buffering(Box<HTTPServerRequest>, Option<usize>),
    /// A streaming handler, prepared, taking the body.
    Streaming(Exchange, Box<dyn RequestHandler>),
    /// A streaming handler whose `async` prepare still runs, parked in its
    /// exchange; the body is held back meanwhile (`hold_body`).
    Held(Exchange),
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
        let mut handler = match callback::catch_value(|| route.handlers.make()) {
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
                // An `async` prepare (coroutine.rs) holds the body back.
                x.preparing(|| handler.prepare(&x))
            })
        });
        if let Ok(Err(err)) | Err(err) = result {
            x.handler_failed(err);
        }
        if !x.finished() && self.conn.expects_body() {
            self.held = x.body_waits_for_prepare();
        }
        self.state = if x.finished() {
            handler.on_finish();
            State::Open(x)
        } else if self.held.is_some() {
            // Parked where the response's end finds it for `on_finish`,
            // should the prepare answer (or fail) before the body comes.
            x.park_handler(handler);
            State::Held(x)
        } else {
            State::Streaming(x, handler)
        };
    }

    #[inline]
    fn hold_body(&mut self) -> Option<Future<()>> {
        self.held.take()
    }

    fn data_received(&mut self, chunk: &[u8]) -> Option<Future<()>> {
        self.unhold();
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
            State::Start | State::Held(_) | State::Open(_) | State::Done => None,
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
            State::Held(x) | State::Open(x) => x.connection_closed(None),
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
                // (Asked for by now, unless the body was refused.)
                self.held = None;
                true
            }
            _ => false,
        }
    }
}

impl RequestDelegate {
    /// The body has come: the handler runs (or, streaming, its verb method).
    fn body_complete(&mut self) {
        self.unhold();
        match std::mem::replace(&mut self.state, State::Done) {
            State::Buffering(request, route) => {
                let x = self.exchange(request);
                self.dispatch(x, route);
            }
            State::Streaming(x, handler) => self.run_prepared(x, handler),
            other => self.state = other,
        }
    }

    /// A streaming handler held for its `async` prepare, back in place as
    /// its body comes; or, if the response was finished meanwhile (its
    /// `on_finish` ran then), the exchange left open for the connection's
    /// end.
    #[inline]
    fn unhold(&mut self) {
        if !matches!(self.state, State::Held(_)) {
            return;
        }
        let State::Held(x) = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        self.state = match x.unpark_handler() {
            Some(handler) if !x.finished() => State::Streaming(x, handler),
            Some(handler) => {
                // (Not reached: finishing runs a parked handler's
                // `on_finish` and lets it go.)
                x.park_handler(handler);
                State::Open(x)
            }
            None => State::Open(x),
        };
    }

    /// The exchange for `request`: the last one's, emptied, if it is here.
    /// Always inlined: it is a few moves, on every request's path.
    #[inline(always)]
    pub(super) fn exchange(&mut self, request: Box<HTTPServerRequest>) -> Exchange {
        let request = match self.spare.take() {
            Some(x) => match x.refill(request) {
                Ok(x) => return x,
                Err(request) => request,
            },
            None => request,
        };
        Exchange::new(&self.app, &self.conn, request)
    }

    /// Answers 404 without a route, else runs the route's handler: made
    /// and run by the route, which knows its type (see handler.rs).
    #[inline(always)]
    fn dispatch(&mut self, x: Exchange, route: Option<usize>) {
        let Some(route) = route else {
            x.send_error(404);
            x.park(&self.app.pool, &mut self.spare);
            return;
        };
        let route = self.app.route(route);
        x.set_error_page(route.write_error);
        let open = route.handlers.run(&self.app, &x);
        self.after(x, open);
    }

    /// Runs a streaming handler, prepared, now that its body is complete:
    /// the verb method, the finish unless the response was left open, and
    /// `on_finish`. A panic is caught like an `Err`: 500 if the response
    /// can still be sent, and the connection goes on.
    fn run_prepared(&mut self, x: Exchange, mut handler: Box<dyn RequestHandler>) {
        let mut on_finish_ran = false;
        let result = self.app.in_method(&x, || {
            callback::catch_value(|| handler::steps(&mut *handler, &x, true, &mut on_finish_ran))
        });
        if let Ok(Err(err)) | Err(err) = result {
            handler::failed(&x, err, Some(&mut *handler), on_finish_ran);
        }
        let open = (!x.finished()).then_some(handler);
        self.after(x, open);
    }

    /// After the handler's method: a finished exchange is parked for the
    /// next request; one left open keeps its handler (for `on_finish` or
    /// `on_connection_close`) and waits.
    #[inline(always)]
    fn after(&mut self, x: Exchange, open: Option<Box<dyn RequestHandler>>) {
        if x.finished() {
            x.park(&self.app.pool, &mut self.spare);
        } else {
            if let Some(handler) = open {
                x.park_handler(handler);
            }
            self.state = State::Open(x);
        }
    }
}
