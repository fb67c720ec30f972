//! Cookies: Tornado's `RequestHandler.get_cookie`, `set_cookie`,
//! `clear_cookie` and `clear_all_cookies`, as [`Exchange`] methods.
//!
//! The request's cookies are parsed on first use, once per request; a
//! handler that never asks pays nothing. A cookie set replaces one of the
//! same name set earlier in the same response, as in Tornado.
//!
//! ```
//! use squall::web::{Application, CookieOptions, Exchange, RequestHandler};
//! use squall::Error;
//!
//! struct Visits;
//! impl RequestHandler for Visits {
//!     fn get(&mut self, x: &Exchange) -> Result<(), Error> {
//!         let n: u64 = x.get_cookie("visits").and_then(|v| v.parse().ok()).unwrap_or(0);
//!         x.set_cookie_with("visits", &(n + 1).to_string(), &CookieOptions {
//!             httponly: true,
//!             expires_days: Some(365.0),
//!             ..Default::default()
//!         })?;
//!         x.write(format!("visit {}", n + 1));
//!         Ok(())
//!     }
//! }
//! let app = Application::new().route("/", || Visits);
//! # let _ = app;
//! ```

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use super::{Exchange, XsrfState};
use crate::error::Error;
use crate::httputil::{self, format_set_cookie, parse_cookie, CookieOptions};

/// A request's cookie state, made on its first use and kept, emptied, with
/// its pooled exchange.
#[derive(Default)]
pub(crate) struct CookieState {
    /// The request's cookies, parsed on first use.
    cookies: OnceCell<Vec<(String, String)>>,
    /// The current user once known: `Some(None)` is known to be nobody.
    pub(super) current_user: RefCell<Option<Option<String>>>,
    /// The XSRF token as read or made, and as sent (see xsrf.rs).
    pub(super) xsrf: XsrfState,
}

impl CookieState {
    /// Forgets the last request's state (its allocations go).
    pub(super) fn reset(&mut self) {
        self.cookies.take();
        *self.current_user.get_mut() = None;
        self.xsrf = XsrfState::default();
    }
}

/// The secret that signs cookies: Tornado's `cookie_secret` setting, which
/// is one secret or a dict from key version to secret.
///
/// Its `Debug` shows the key versions, never the secrets.
///
/// ```
/// use squall::web::CookieSecret;
///
/// let one = CookieSecret::new("a long random string");
/// let rotating = CookieSecret::versioned([(1, "old secret"), (2, "new secret")]);
/// assert_eq!(format!("{rotating:?}"), "CookieSecret::Versioned([1, 2])");
/// # let _ = one;
/// ```
#[derive(Clone)]
pub enum CookieSecret {
    /// One secret (key version 0 in signed values).
    Single(Vec<u8>),
    /// Several, by key version: values signed with any of them are read;
    /// the [`key_version`](super::Settings::key_version) setting picks the
    /// one that signs.
    Versioned(BTreeMap<u32, Vec<u8>>),
}

impl CookieSecret {
    /// One secret.
    pub fn new(secret: impl Into<Vec<u8>>) -> CookieSecret {
        CookieSecret::Single(secret.into())
    }

    /// Secrets by key version.
    pub fn versioned<S: Into<Vec<u8>>>(
        secrets: impl IntoIterator<Item = (u32, S)>,
    ) -> CookieSecret {
        CookieSecret::Versioned(secrets.into_iter().map(|(v, s)| (v, s.into())).collect())
    }

    /// The secret for a value signed with `key_version` (`None`: the
    /// single secret; a map needs a version).
    #[cfg(feature = "signed_cookies")]
    pub(crate) fn key(&self, key_version: Option<u32>) -> Option<&[u8]> {
        match (self, key_version) {
            (CookieSecret::Single(secret), _) => Some(secret),
            (CookieSecret::Versioned(map), Some(v)) => map.get(&v).map(Vec::as_slice),
            (CookieSecret::Versioned(_), None) => None,
        }
    }
}

impl fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CookieSecret::Single(_) => f.write_str("CookieSecret::Single(..)"),
            CookieSecret::Versioned(map) => {
                write!(
                    f,
                    "CookieSecret::Versioned({:?})",
                    map.keys().collect::<Vec<_>>()
                )
            }
        }
    }
}

impl From<&str> for CookieSecret {
    fn from(secret: &str) -> CookieSecret {
        CookieSecret::new(secret)
    }
}

impl From<String> for CookieSecret {
    fn from(secret: String) -> CookieSecret {
        CookieSecret::new(secret)
    }
}

impl Exchange {
    /// The request's cookies, (name, value) in the order they came
    /// (Tornado's `self.cookies`): the `Cookie` header parsed as
    /// [`httputil::parse_cookie`] does, once per request, keeping only the
    /// names Python's `http.cookies` accepts, as Tornado does (so no empty
    /// name, nor `path` or `expires`). Several `Cookie` headers are read as
    /// one, joined by `; `.
    pub fn cookies(&self) -> &[(String, String)] {
        self.cookie_state().cookies.get_or_init(|| {
            let headers = self.request().headers();
            let mut cookies = match headers.get_list("Cookie").as_slice() {
                [] => return Vec::new(),
                [one] => parse_cookie(one),
                many => parse_cookie(&many.join("; ")),
            };
            cookies.retain(|(name, _)| httputil::is_legal_cookie_key(name));
            cookies
        })
    }

    /// The value of the request's cookie `name` (Tornado's `get_cookie`;
    /// `.unwrap_or(default)` for its `default`). Cookies set in this
    /// response are not seen before the next request.
    pub fn get_cookie(&self, name: &str) -> Option<&str> {
        self.cookies()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a cookie for the whole site, for this browser session: Tornado's
    /// `set_cookie(name, value)`. See [`set_cookie_with`](Self::set_cookie_with).
    ///
    /// # Errors
    /// As [`set_cookie_with`](Self::set_cookie_with).
    pub fn set_cookie(&self, name: &str, value: &str) -> Result<(), Error> {
        self.set_cookie_with(name, value, &CookieOptions::default())
    }

    /// Sets a cookie with attributes (Tornado's `set_cookie` with keyword
    /// arguments): a `Set-Cookie` header, replacing one of the same name
    /// set before in this response. A value with characters a cookie cannot
    /// hold bare (`=`, `"`, `,`, `;`, non-ASCII...) is quoted and escaped
    /// as Python's `http.cookies` does, so [`get_cookie`](Self::get_cookie)
    /// (and Tornado's) reads it back; no `;`, CR or LF ever reaches the
    /// wire from it.
    ///
    /// Like Tornado's, it has no effect on a response whose headers were
    /// already sent (after [`flush`](Self::flush)).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
    /// from [`httputil::format_set_cookie`]: a name that is not a token,
    /// a value with a control character or a space, a domain or path with
    /// one or a `;`. Nothing is set then.
    pub fn set_cookie_with(
        &self,
        name: &str,
        value: &str,
        options: &CookieOptions,
    ) -> Result<(), Error> {
        let line = format_set_cookie(name, value, options)?;
        self.with_headers(|headers| {
            let kept: Vec<String> = headers
                .get_list("Set-Cookie")
                .into_iter()
                .filter(|old| !sets_cookie(old, name))
                .map(str::to_owned)
                .collect();
            headers.remove("Set-Cookie");
            for old in kept {
                headers.add("Set-Cookie", old);
            }
            headers.add("Set-Cookie", line);
        });
        Ok(())
    }

    /// Deletes the cookie `name` from the browser (Tornado's
    /// `clear_cookie`): an empty value that expired a year ago, for
    /// `Path=/`. See [`clear_cookie_with`](Self::clear_cookie_with).
    ///
    /// # Errors
    /// As [`set_cookie_with`](Self::set_cookie_with).
    pub fn clear_cookie(&self, name: &str) -> Result<(), Error> {
        self.clear_cookie_with(name, &CookieOptions::default())
    }

    /// [`clear_cookie`](Self::clear_cookie) for a cookie set with other
    /// attributes: the browser deletes it only if `domain` and `path` are
    /// those it was set with (and, for `SameSite=None`, `secure` and
    /// `samesite`). `expires`, `expires_days` and `max_age` are ignored
    /// (Tornado refuses them).
    ///
    /// # Errors
    /// As [`set_cookie_with`](Self::set_cookie_with).
    pub fn clear_cookie_with(&self, name: &str, options: &CookieOptions) -> Result<(), Error> {
        let year_ago = SystemTime::now()
            .checked_sub(Duration::from_secs(365 * 86400))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let options = CookieOptions {
            expires: Some(year_ago),
            expires_days: None,
            max_age: None,
            ..options.clone()
        };
        self.set_cookie_with(name, "", &options)
    }

    /// Deletes every cookie the request came with (Tornado's
    /// `clear_all_cookies`), each as [`clear_cookie`](Self::clear_cookie).
    ///
    /// # Errors
    /// As [`set_cookie_with`](Self::set_cookie_with).
    pub fn clear_all_cookies(&self) -> Result<(), Error> {
        self.clear_all_cookies_with(&CookieOptions::default())
    }

    /// [`clear_all_cookies`](Self::clear_all_cookies) with the attributes
    /// of [`clear_cookie_with`](Self::clear_cookie_with): it can only work
    /// if every cookie was set with those same ones.
    ///
    /// # Errors
    /// As [`set_cookie_with`](Self::set_cookie_with).
    pub fn clear_all_cookies_with(&self, options: &CookieOptions) -> Result<(), Error> {
        let names: Vec<String> = self.cookies().iter().map(|(n, _)| n.clone()).collect();
        for name in names {
            self.clear_cookie_with(&name, options)?;
        }
        Ok(())
    }
}

/// Whether the `Set-Cookie` value `line` sets cookie `name`.
fn sets_cookie(line: &str, name: &str) -> bool {
    line.split_once('=').is_some_and(|(n, _)| n.trim() == name)
}
