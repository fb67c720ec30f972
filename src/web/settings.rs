//! An application's settings: Tornado's `Application(**settings)`.

use std::path::PathBuf;

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
    /// `compress_response`). Default off.
    pub compress_response: bool,
    /// The directory templates are loaded from (Tornado's
    /// `template_path`); `None`: the current directory.
    pub template_path: Option<PathBuf>,
    /// HTML-escape template expressions (Tornado's `autoescape`, whose
    /// default is `"xhtml_escape"`). Default on.
    pub autoescape: bool,
    /// Limits on parsing form bodies for
    /// [`Exchange::get_argument`](super::Exchange::get_argument) and
    /// friends (Tornado's `ParseBodyConfig`). Default:
    /// [`FormLimits::default`](crate::httputil::FormLimits).
    pub form_limits: crate::httputil::FormLimits,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            static_path: None,
            static_url_prefix: "/static/".to_owned(),
            compress_response: false,
            template_path: None,
            autoescape: true,
            form_limits: Default::default(),
        }
    }
}
