//! The logged-in user: Tornado's `current_user`, `get_current_user`,
//! `get_login_url` and `@authenticated`.
//!
//! A handler says who is logged in by overriding
//! [`RequestHandler::get_current_user`] (usually from a signed cookie);
//! [`RequestHandler::current_user`] calls it once per request and keeps
//! the answer, or `prepare` may set it with [`Exchange::set_current_user`]
//! (after an asynchronous lookup, say). The user is a `String` — an id or
//! a name: what a cookie holds; a handler keeps any richer user object in
//! its own fields.
//!
//! [`authenticated`] guards one method, [`Authenticated`] every method of
//! a handler: a visitor not logged in is redirected to the `login_url`
//! setting (`GET`, `HEAD`) or refused with 403.
//!
//! ```
//! use squall::web::{authenticated, Application, Authenticated, Exchange, RequestHandler, Settings};
//! use squall::Error;
//!
//! struct Base;
//! impl RequestHandler for Base {
//!     fn get_current_user(&mut self, x: &Exchange) -> Result<Option<String>, Error> {
//!         // With feature `signed_cookies`: x.get_signed_cookie("user")?...
//!         Ok(x.get_cookie("demo_user").map(str::to_owned))
//!     }
//! }
//!
//! struct Profile;
//! impl RequestHandler for Profile {
//!     fn get_current_user(&mut self, x: &Exchange) -> Result<Option<String>, Error> {
//!         Base.get_current_user(x)
//!     }
//!     fn get(&mut self, x: &Exchange) -> Result<(), Error> {
//!         // Tornado's @authenticated on one method.
//!         let Some(user) = authenticated(self, x)? else { return Ok(()) }; // redirected
//!         x.write(format!("hello {user}"));
//!         Ok(())
//!     }
//! }
//!
//! let app = Application::with_settings(Settings { login_url: Some("/login".into()), ..Default::default() })
//!     .route("/profile", || Profile)
//!     // Every method of a handler at once:
//!     .route("/admin", || Authenticated(Base));
//! # let _ = app;
//! ```

use super::{Exchange, HTTPError, RequestHandler};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::http::Method;
use crate::httputil::url_escape;

impl Exchange {
    /// The current user as known so far in this request: set by
    /// [`set_current_user`](Self::set_current_user), or found by the
    /// handler's [`current_user`](RequestHandler::current_user). `None`
    /// before either, or when nobody is logged in.
    pub fn current_user(&self) -> Option<String> {
        self.cookie_state().current_user.borrow().clone().flatten()
    }

    /// Sets the current user for the rest of the request (Tornado's
    /// `self.current_user = ...`, typically in `prepare`); the handler's
    /// `get_current_user` is then not called.
    pub fn set_current_user(&self, user: Option<String>) {
        *self.cookie_state().current_user.borrow_mut() = Some(user);
    }

    /// The current user if it was determined in this request (the outer
    /// `None`: not yet).
    pub(super) fn known_user(&self) -> Option<Option<String>> {
        self.cookie_state().current_user.borrow().clone()
    }

    /// The URL of this request with scheme and host (Tornado's
    /// `request.full_url()`).
    pub(super) fn full_url(&self) -> String {
        let request = self.request();
        format!(
            "{}://{}{}",
            request.protocol(),
            request.host(),
            request.uri()
        )
    }
}

/// The default of [`RequestHandler::current_user`]: the known user, else
/// the handler's `get_current_user`, remembered.
pub(super) fn current_user_of<H: RequestHandler + ?Sized>(
    handler: &mut H,
    x: &Exchange,
) -> Result<Option<String>, Error> {
    if let Some(user) = x.known_user() {
        return Ok(user);
    }
    let user = handler.get_current_user(x)?;
    x.set_current_user(user.clone());
    Ok(user)
}

/// The default of [`RequestHandler::get_login_url`]: the `login_url`
/// setting.
pub(super) fn login_url_setting(x: &Exchange) -> Result<String, Error> {
    x.settings().login_url.clone().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidState,
            "You must define the 'login_url' setting in your application to use @authenticated",
        )
    })
}

/// Whether `url` starts with a scheme (Python's `urlsplit(url).scheme`).
fn has_scheme(url: &str) -> bool {
    let Some((scheme, _)) = url.split_once(':') else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// Tornado's `@authenticated`, for one handler method: the current user
/// (from [`RequestHandler::current_user`]) if someone is logged in.
/// Otherwise a `GET` or `HEAD` is redirected to the handler's
/// [`get_login_url`](RequestHandler::get_login_url) with `?next=` the
/// request's URI (its full URL if the login URL is absolute; nothing
/// added if the login URL has a query already), and `Ok(None)` says the
/// response is finished: return. An empty user name counts as nobody, as
/// in Python.
///
/// ```
/// # use squall::web::{authenticated, Exchange, RequestHandler};
/// # struct Page;
/// # impl RequestHandler for Page {
/// fn get(&mut self, x: &Exchange) -> Result<(), squall::Error> {
///     let Some(user) = authenticated(self, x)? else { return Ok(()) };
///     x.write(format!("hello {user}"));
///     Ok(())
/// }
/// # }
/// ```
///
/// # Errors
/// An [`HTTPError`] 403 for any other method without a user; the
/// handler's errors from `get_current_user` or `get_login_url` (by
/// default, [`ErrorKind::InvalidState`] without a `login_url` setting);
/// the redirect's.
pub fn authenticated<H: RequestHandler + ?Sized>(
    handler: &mut H,
    x: &Exchange,
) -> Result<Option<String>, Error> {
    if let Some(user) = handler.current_user(x)?.filter(|u| !u.is_empty()) {
        return Ok(Some(user));
    }
    if !matches!(x.request().method, Method::Get | Method::Head) {
        return Err(HTTPError::new(403).into());
    }
    let mut url = handler.get_login_url(x)?;
    if !url.contains('?') {
        let next = if has_scheme(&url) {
            x.full_url()
        } else {
            x.request().uri().to_owned()
        };
        url.push_str("?next=");
        url.push_str(&url_escape(&next, true));
    }
    x.redirect(&url)?;
    Ok(None)
}

/// A handler every method of which needs a logged-in user: Tornado's
/// `@authenticated` on each of them. Before `get`, `head`, `post`, `put`,
/// `delete` and `patch` (not `options`: a CORS preflight carries no
/// credentials), [`authenticated`] redirects or refuses a visitor; the
/// rest goes to the handler inside.
///
/// ```
/// use squall::web::{Application, Authenticated, Exchange, RequestHandler};
///
/// struct Admin;
/// impl RequestHandler for Admin {
///     fn get_current_user(&mut self, x: &Exchange) -> Result<Option<String>, squall::Error> {
///         Ok(x.get_cookie("admin").map(str::to_owned))
///     }
///     fn get(&mut self, x: &Exchange) -> Result<(), squall::Error> {
///         x.write("the admin page");
///         Ok(())
///     }
/// }
/// let app = Application::new().route("/admin", || Authenticated(Admin));
/// # let _ = app;
/// ```
pub struct Authenticated<H>(pub H);

impl<H: RequestHandler> Authenticated<H> {
    /// Runs `verb` of the inner handler if a user is logged in.
    fn guarded(
        &mut self,
        x: &Exchange,
        verb: impl FnOnce(&mut H, &Exchange) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match authenticated(&mut self.0, x)? {
            Some(_) => verb(&mut self.0, x),
            None => Ok(()),
        }
    }
}

impl<H: RequestHandler> RequestHandler for Authenticated<H> {
    fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
        self.0.prepare(x)
    }
    fn get(&mut self, x: &Exchange) -> Result<(), Error> {
        self.guarded(x, H::get)
    }
    fn head(&mut self, x: &Exchange) -> Result<(), Error> {
        self.guarded(x, H::head)
    }
    fn post(&mut self, x: &Exchange) -> Result<(), Error> {
        self.guarded(x, H::post)
    }
    fn put(&mut self, x: &Exchange) -> Result<(), Error> {
        self.guarded(x, H::put)
    }
    fn delete(&mut self, x: &Exchange) -> Result<(), Error> {
        self.guarded(x, H::delete)
    }
    fn patch(&mut self, x: &Exchange) -> Result<(), Error> {
        self.guarded(x, H::patch)
    }
    fn options(&mut self, x: &Exchange) -> Result<(), Error> {
        self.0.options(x)
    }
    fn on_finish(&mut self) {
        self.0.on_finish();
    }
    fn on_connection_close(&mut self) {
        self.0.on_connection_close();
    }
    fn stream_request_body() -> bool {
        H::stream_request_body()
    }
    fn write_error(x: &Exchange, status: u16, error: Option<&Error>) {
        H::write_error(x, status, error);
    }
    fn data_received(&mut self, x: &Exchange, chunk: &[u8]) -> Result<Option<Future<()>>, Error> {
        self.0.data_received(x, chunk)
    }
    fn get_current_user(&mut self, x: &Exchange) -> Result<Option<String>, Error> {
        self.0.get_current_user(x)
    }
    fn current_user(&mut self, x: &Exchange) -> Result<Option<String>, Error> {
        self.0.current_user(x)
    }
    fn get_login_url(&mut self, x: &Exchange) -> Result<String, Error> {
        self.0.get_login_url(x)
    }
    fn check_xsrf_cookie(&mut self, x: &Exchange) -> Result<(), Error> {
        self.0.check_xsrf_cookie(x)
    }
}

#[cfg(test)]
mod tests {
    use super::has_scheme;

    #[test]
    fn schemes() {
        assert!(has_scheme("http://example.com/login"));
        assert!(has_scheme("https://x"));
        assert!(has_scheme("git+ssh://x"));
        assert!(!has_scheme("/login"));
        assert!(!has_scheme("/a:b"));
        assert!(!has_scheme("1http://x"));
        assert!(!has_scheme("login"));
    }
}
