//! An application's settings: Tornado's `Application(**settings)`.

use std::path::PathBuf;

use super::CookieSecret;
use crate::httputil::CookieOptions;

/// What an [`Application`](super::Application) is configured with, under
/// Tornado's setting names; every handler reads them through
/// [`Exchange::settings`](super::Exchange::settings) (Tornado's
/// `self.settings`).
///
/// Build one with the fields you need and `..Default::default()`: new
/// settings are added as the web layer grows, and the defaults are
/// Tornado's.
///
/// ```
/// use squall::web::{Application, Settings};
///
/// let app = Application::with_settings(Settings {
///     static_path: Some("static".into()),
///     compress_response: true,
///     ..Default::default()
/// });
/// assert_eq!(app.settings().static_url_prefix, "/static/");
/// ```
#[derive(Clone, Debug)]
pub struct Settings {
    /// The directory static files are served from (Tornado's
    /// `static_path`); `None`: no static files.
    pub static_path: Option<PathBuf>,
    /// The URL path static files are served under (Tornado's
    /// `static_url_prefix`). Default `/static/`.
    pub static_url_prefix: String,
    /// Compress responses with gzip when the client accepts it (Tornado's
    /// `compress_response`; see [`web::gzip`](super::gzip) for which).
    /// Default off. Needs feature `gzip` (a default one); without it,
    /// responses go uncompressed.
    pub compress_response: bool,
    /// The directory templates are loaded from (Tornado's
    /// `template_path`); `None`: the current directory.
    pub template_path: Option<PathBuf>,
    /// HTML-escape template expressions (Tornado's `autoescape`, whose
    /// default is `"xhtml_escape"`). Default on.
    pub autoescape: bool,
    /// The secret that signs cookies (Tornado's `cookie_secret`): one
    /// secret, or several by key version to rotate them (with
    /// [`key_version`](Self::key_version) naming the one that signs). Used
    /// with feature `signed_cookies`. Never logged: its `Debug` hides it.
    pub cookie_secret: Option<CookieSecret>,
    /// Which secret of a [`CookieSecret::Versioned`] signs new values
    /// (Tornado's `key_version`); values signed with the others are still
    /// read.
    pub key_version: Option<u32>,
    /// Check the XSRF token of every `POST`, `PUT`, `PATCH` and `DELETE`
    /// before `prepare` (Tornado's `xsrf_cookies`); see
    /// [`Exchange::check_xsrf_cookie`](super::Exchange::check_xsrf_cookie).
    /// Default off.
    pub xsrf_cookies: bool,
    /// The cookie holding the XSRF token (Tornado's `xsrf_cookie_name`).
    /// Default `_xsrf`.
    pub xsrf_cookie_name: String,
    /// The form of new XSRF tokens (Tornado's `xsrf_cookie_version`): 2,
    /// masked afresh on every request (the default), or 1, the bare token
    /// in hex. Both are read.
    pub xsrf_cookie_version: u8,
    /// The attributes of the XSRF cookie (Tornado's `xsrf_cookie_kwargs`),
    /// e.g. `secure` and `httponly`.
    pub xsrf_cookie_kwargs: CookieOptions,
    /// Where [`authenticated`](super::authenticated) sends a visitor who
    /// is not logged in (Tornado's `login_url`).
    pub login_url: Option<String>,
    /// The host whose [`add_handlers`](super::Application::add_handlers)
    /// routes also answer requests whose own host matches none (Tornado's
    /// `default_host`). Default `None`.
    pub default_host: Option<String>,
    /// Keep compiled templates (Tornado's `compiled_template_cache`):
    /// when off, a template file changed on disk is read again at its next
    /// render (one `stat` per template per render), for development.
    /// Default on.
    pub compiled_template_cache: bool,
    /// Limits on parsing form bodies for
    /// [`Exchange::get_argument`](super::Exchange::get_argument) and
    /// friends (Tornado's `ParseBodyConfig`). Default:
    /// [`FormLimits::default`](crate::httputil::FormLimits).
    pub form_limits: crate::httputil::FormLimits,
    /// Ping every WebSocket of a `websocket::handler` route (feature
    /// `websocket`) this often (Tornado's `websocket_ping_interval`).
    /// Default: never.
    pub websocket_ping_interval: Option<std::time::Duration>,
    /// Close a WebSocket that has not answered a ping within this
    /// (Tornado's `websocket_ping_timeout`). Default: the ping interval.
    pub websocket_ping_timeout: Option<std::time::Duration>,
    /// The largest WebSocket message accepted (Tornado's
    /// `websocket_max_message_size`): a larger one closes with 1009.
    /// Default 10 MiB.
    pub websocket_max_message_size: usize,
    /// The most work one template render may do (minijinja's fuel; no
    /// Tornado setting): each instruction costs 1, and every 64 bytes
    /// produced (output included) 1 more, so a render never runs longer or
    /// writes more than this allows (1,000,000: about a million
    /// instructions, or 64 MB of output). A render that runs out is a
    /// template error (a 500). `None`: no bound, for trusted templates
    /// only: a loop over `range(100000)` inside another never ends.
    /// Default `Some(1_000_000)`.
    pub template_fuel: Option<u64>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            static_path: None,
            static_url_prefix: "/static/".to_owned(),
            compress_response: false,
            template_path: None,
            autoescape: true,
            cookie_secret: None,
            key_version: None,
            xsrf_cookies: false,
            xsrf_cookie_name: "_xsrf".to_owned(),
            xsrf_cookie_version: 2,
            xsrf_cookie_kwargs: CookieOptions::default(),
            login_url: None,
            default_host: None,
            compiled_template_cache: true,
            form_limits: Default::default(),
            websocket_ping_interval: None,
            websocket_ping_timeout: None,
            websocket_max_message_size: 10 * 1024 * 1024,
            template_fuel: Some(1_000_000),
        }
    }
}
