//! Requests the HTTP server refuses by itself (a bad head, a body over the
//! limit, badly framed or too slow), answered with the application's error
//! page rather than the server's bare one: the `write_error` of the route
//! the request asked for, else of the default handler, else Tornado's page.
//!
//! Tornado answers most of these with a bare `400 Bad Request` from its
//! `HTTP1Connection`; here every answer an application gives goes through
//! one `write_error`, so an API that speaks JSON speaks it for a 413 too.
//!
//! ```
//! use squall::web::{Application, Exchange, RequestHandler};
//! use squall::Error;
//!
//! struct Api;
//! impl RequestHandler for Api {
//!     fn post(&mut self, x: &Exchange) -> Result<(), Error> {
//!         x.write("stored");
//!         Ok(())
//!     }
//!     // Also for a body over the server's `max_body_size` (413), or a
//!     // `Content-Length: ten` (400) sent to `/api`.
//!     fn write_error(x: &Exchange, status: u16, _error: Option<&Error>) {
//!         let _ = x.set_header("Content-Type", "application/json");
//!         x.write(format!("{{\"error\": {status}}}"));
//!     }
//! }
//! let app = Application::new().route("/api", || Api);
//! # let _ = app;
//! ```

use std::rc::Rc;

use super::{AppInner, Exchange, RequestDelegate, State};
use crate::callback;
use crate::http::{HTTPConnection, HTTPServerRequest};

/// A head the server refused (`request` is what it could read of it): the
/// error page of the route it asks for.
pub(super) fn head_refused(
    app: &Rc<AppInner>,
    conn: &HTTPConnection,
    status: u16,
    mut request: Box<HTTPServerRequest>,
) {
    let route = app.find(&mut request);
    let x = Exchange::new(app, conn, request);
    if let Some(id) = route {
        x.set_error_page(app.route(id).write_error);
    }
    x.send_error(status);
}

impl RequestDelegate {
    /// The body of the request being read is refused with `status`,
    /// nothing of the response written yet: the handler's error page
    /// answers (then a prepared handler's `on_finish` runs, as after any
    /// `send_error`).
    pub(super) fn body_refused(&mut self, status: u16) {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Buffering(request, route) => {
                let x = self.exchange(request);
                if let Some(id) = route {
                    x.set_error_page(self.app.route(id).write_error);
                }
                x.send_error(status);
                x.park(&self.app.pool, &mut self.spare);
            }
            // The route's page was set when the head came.
            State::Streaming(x, mut handler) => {
                x.send_error(status);
                if let Err(err) = callback::catch_value(|| handler.on_finish()) {
                    log::error!("on_finish failed: {err}");
                }
            }
            // A response left open: its parked handler's `on_finish` runs
            // when the page finishes it.
            State::Held(x) | State::Open(x) => {
                if !x.finished() {
                    x.send_error(status);
                }
                self.state = State::Open(x);
            }
            other => self.state = other,
        }
    }
}
