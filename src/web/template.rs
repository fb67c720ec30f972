//! Templates: [`Exchange::render`] and [`Exchange::render_string`]
//! (Tornado's `self.render` / `self.render_string`), with
//! [minijinja](https://docs.rs/minijinja) (feature `template`).
//!
//! Templates are files under [`Settings::template_path`], loaded at their
//! first render and kept compiled (unless
//! [`Settings::compiled_template_cache`] is off). Jinja syntax, close to
//! Tornado's: `{{ expr }}`, `{% if %}`, `{% for %}`, `{% extends %}`,
//! `{% block %}`, `{% include %}`, `{% set %}`; docs/porting.md says how a
//! Tornado template translates. With [`Settings::autoescape`] on (the
//! default) every `{{ }}` is HTML-escaped as Tornado's `xhtml_escape` does;
//! `{{ value|safe }}` is Tornado's `{% raw value %}`. An undefined name is
//! an error, as Tornado's `NameError`. Every render is bounded by
//! [`Settings::template_fuel`]: a template that would loop for ever, or
//! write without end, fails with a template error instead.
//!
//! Beside the context given, a template sees (Tornado's
//! `get_template_namespace`): `request` (`request.path`, `.uri`, `.query`,
//! `.method`, `.host`, `.host_name`, `.protocol`, `.remote_ip`,
//! `.headers["User-Agent"]`, `.arguments`, `.path_args`), `reverse_url(name,
//! args...)`, and `xhtml_escape`, `url_escape`, `json_encode`, `squeeze`
//! (as functions and as filters).
//!
//! ```
//! use squall::web::minijinja::context;
//! use squall::web::{Application, Exchange, RequestHandler, Settings};
//! use squall::Error;
//!
//! struct Hello;
//! impl RequestHandler for Hello {
//!     fn get(&mut self, x: &Exchange) -> Result<(), Error> {
//!         // templates/hello.html: <p>Hello, {{ name }}, from {{ request.path }}</p>
//!         x.render("hello.html", context! { name => "<ada>" })
//!     }
//! }
//! let app = Application::with_settings(Settings {
//!     template_path: Some("templates".into()),
//!     ..Default::default()
//! })
//! .route("/hello", || Hello);
//! # let _ = app;
//! ```

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, Rest, Value};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use super::routing::SharedNames;
use super::{Exchange, Settings};
use crate::error::{Error, ErrorKind};
use crate::httputil::url_escape;

/// An application's template engine: its loader, the namespace, and the
/// templates compiled so far.
pub(super) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub(super) fn new(settings: &Settings, names: SharedNames) -> Templates {
        let mut env = Environment::new();
        let path = settings.template_path.clone().unwrap_or_else(|| ".".into());
        // Rejects names that climb out of the directory (`../x`).
        env.set_loader(minijinja::path_loader(path));
        env.set_auto_reload(!settings.compiled_template_cache);
        // Tornado escapes every template's expressions, whatever the name.
        let escape = if settings.autoescape {
            AutoEscape::Html
        } else {
            AutoEscape::None
        };
        env.set_auto_escape_callback(move |_name| escape.clone());
        env.set_formatter(tornado_formatter);
        // Tornado: a name the template does not know is a `NameError`.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Every render is bounded: its work, its memory and its output
        // (minijinja charges the bytes it writes). Recursion (includes,
        // macros, nesting) is bounded by minijinja's own limit.
        env.set_fuel(settings.template_fuel);
        namespace(&mut env, names);
        Templates { env }
    }

    /// Renders the template `name` with `context`.
    pub(super) fn render(&self, name: &str, context: Value) -> Result<String, Error> {
        engine_call(name, || {
            let template = self.env.get_template(name)?;
            template.render(context)
        })
    }

    /// Renders a template given as text (for tests).
    #[cfg(test)]
    fn render_source(&self, source: &str, context: impl Into<Value>) -> Result<String, Error> {
        engine_call("<string>", || self.env.render_str(source, context.into()))
    }
}

/// Runs the engine on template `name`: its errors as squall's, and a panic
/// of its own as a template error too. minijinja 3.1.0 panics on a few
/// malformed templates (`{% import "t.html" as m % x %}` reaches an
/// `unreachable!` in its code generator; found by the `template` fuzz
/// target); it compiles without holding a lock, so nothing is poisoned.
fn engine_call(
    name: &str,
    f: impl FnOnce() -> Result<String, minijinja::Error>,
) -> Result<String, Error> {
    match crate::callback::catch_value(f) {
        Ok(rendered) => rendered.map_err(template_error),
        Err(panic) => Err(Error::new(
            ErrorKind::Template,
            format!("template error: the engine failed on {name}: {panic}"),
        )),
    }
}

/// For the `template` fuzz target (src/fuzz.rs): renders `sources[0]`,
/// the others loadable by name (`t1.html`, ...; it is `t0.html`) for
/// `{% include %}`, `{% extends %}` and `{% import %}`, through an
/// application's engine as `settings` make it (namespace, escaping,
/// limits).
#[cfg(feature = "fuzzing")]
pub(crate) fn render_for_fuzz(
    settings: &Settings,
    sources: Vec<String>,
    context: Value,
) -> Result<String, Error> {
    let mut templates = Templates::new(settings, SharedNames::default());
    templates.env.set_loader(move |name| {
        let i = name
            .strip_prefix('t')
            .and_then(|n| n.strip_suffix(".html"))
            .and_then(|n| n.parse::<usize>().ok());
        Ok(i.and_then(|i| sources.get(i).cloned()))
    });
    templates.render("t0.html", context)
}

/// The names every template sees, besides its context (Tornado's
/// `get_template_namespace`). One line per name: a value, a function, or
/// a filter. A function that needs the request being answered reads it
/// with [`with_exchange`]:
///
/// ```text
/// env.add_function("static_url", |path: &str| with_exchange(|x| x.static_url(path)).and_then(...));
/// ```
fn namespace(env: &mut Environment<'static>, names: SharedNames) {
    env.add_global("request", Value::from_object(RequestObject));
    env.add_function("reverse_url", move |name: &str, args: Rest<Value>| {
        let args: Vec<&dyn fmt::Display> = args.iter().map(|a| a as &dyn fmt::Display).collect();
        names.reverse(name, &args).map_err(function_error)
    });
    env.add_function("xhtml_escape", xhtml_escape_fn);
    env.add_filter("xhtml_escape", xhtml_escape_fn);
    env.add_function("url_escape", url_escape_fn);
    env.add_filter("url_escape", url_escape_fn);
    env.add_function("json_encode", json_encode_fn);
    env.add_filter("json_encode", json_encode_fn);
    env.add_function("squeeze", squeeze_fn);
    env.add_filter("squeeze", squeeze_fn);
    // The request's own, as Tornado's `get_template_namespace`.
    env.add_function("xsrf_form_html", || -> Result<Value, minijinja::Error> {
        let html = with_exchange(|x| x.xsrf_form_html())
            .unwrap_or_else(|| Ok(String::new()))
            .map_err(function_error)?;
        Ok(Value::from_safe_string(html))
    });
    env.add_function("current_user", || {
        with_exchange(|x| x.current_user()).flatten()
    });
    #[cfg(feature = "static")]
    env.add_function("static_url", |path: &str| {
        with_exchange(|x| x.static_url(path)).unwrap_or_default()
    });
}

thread_local! {
    /// The exchanges whose templates are rendering, innermost last: what
    /// `request` and the request's functions read during a render.
    static RENDERING: RefCell<Vec<Exchange>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with the exchange whose template is rendering (`None` outside
/// a render). The namespace's functions are called by the engine during
/// [`Exchange::render_string`], on the loop's thread: this is how they
/// reach the request without the engine having to hold it.
pub(super) fn with_exchange<R>(f: impl FnOnce(&Exchange) -> R) -> Option<R> {
    // The borrow ends before `f` runs: `f` may render too.
    let x = RENDERING.with(|r| r.borrow().last().cloned())?;
    Some(f(&x))
}

/// Pops the exchange pushed for a render, however the render ends.
struct Rendering;

impl Rendering {
    fn start(x: &Exchange) -> Rendering {
        RENDERING.with(|r| r.borrow_mut().push(x.clone()));
        Rendering
    }
}

impl Drop for Rendering {
    fn drop(&mut self) {
        let x = RENDERING.with(|r| r.borrow_mut().pop());
        drop(x);
    }
}

impl Exchange {
    /// Renders the template `name` (a path under
    /// [`Settings::template_path`]) with `context` and returns it (Tornado's
    /// `render_string`). `context` is anything serde serializes to a map: a
    /// `#[derive(Serialize)]` struct, a `HashMap`, or
    /// [`context!`](minijinja::context) `{ name => value }`; its names hide the
    /// namespace's.
    ///
    /// Templates are Jinja (minijinja), loaded from
    /// [`Settings::template_path`] at their first render and kept compiled
    /// (unless [`Settings::compiled_template_cache`] is off: then a file
    /// changed on disk is read again). With [`Settings::autoescape`] on
    /// (the default) every `{{ }}` in every template is escaped as
    /// Tornado's `xhtml_escape` (`&<>"'`); `{{ x|safe }}` is Tornado's
    /// `{% raw x %}`. A name not defined is an error (Tornado's
    /// `NameError`). The namespace (Tornado's `get_template_namespace`):
    /// `request` (`request.path`, `.uri`, `.query`, `.method`, `.host`,
    /// `.host_name`, `.protocol`, `.remote_ip`, `.version`,
    /// `.headers["User-Agent"]`, `.arguments`, `.path_args`),
    /// `reverse_url(name, args...)`, and `xhtml_escape`, `url_escape`,
    /// `json_encode`, `squeeze`, as functions and as filters.
    ///
    /// ```
    /// use squall::web::minijinja::context;
    /// use squall::web::{Exchange, RequestHandler};
    ///
    /// struct Page;
    /// impl RequestHandler for Page {
    ///     fn get(&mut self, x: &Exchange) -> Result<(), squall::Error> {
    ///         // templates/page.html:
    ///         // {% extends "base.html" %}{% block body %}{{ name }}{% endblock %}
    ///         let html = x.render_string("page.html", context! { name => "ada" })?;
    ///         x.write(html);
    ///         Ok(())
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Template`] naming the template and the line: no such
    /// template, a syntax error, a name not defined, a failing call;
    /// [`ErrorKind::InvalidState`] if the application is gone.
    pub fn render_string<C: serde::Serialize>(
        &self,
        name: &str,
        context: C,
    ) -> Result<String, Error> {
        let app = self
            .app()
            .ok_or_else(|| Error::new(ErrorKind::InvalidState, "the application is gone"))?;
        let templates = app
            .templates
            .get_or_init(|| Templates::new(&app.settings, app.names.clone()));
        let context = Value::from(minijinja::value::Serde(&context));
        // A context that is no map (`()`, say) adds no names.
        let context = if context
            .as_object()
            .is_some_and(|o| matches!(o.repr(), minijinja::value::ObjectRepr::Map))
        {
            context
        } else {
            Value::from_pairs(std::iter::empty::<(Value, Value)>())
        };
        let _rendering = Rendering::start(self);
        templates.render(name, context)
    }

    /// Renders the template `name` with `context` (as
    /// [`render_string`](Self::render_string)), writes it, and finishes
    /// the response (Tornado's `render`).
    ///
    /// # Errors
    /// As `render_string` (nothing is written then: the handler's `?`
    /// answers 500 and logs the error with the template and line), and
    /// [`ErrorKind::InvalidState`] if the response is finished.
    pub fn render<C: serde::Serialize>(&self, name: &str, context: C) -> Result<(), Error> {
        if self.finished() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "render() after finish()",
            ));
        }
        let html = self.render_string(name, context)?;
        self.write(html);
        self.finish()
    }
}

/// A minijinja error as squall's: the message names the template and the
/// line, and those of the templates it came through (an include's).
fn template_error(err: minijinja::Error) -> Error {
    let mut message = format!("template error: {err}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(&format!("; from {cause}"));
        source = cause.source();
    }
    Error::with_source(ErrorKind::Template, message, err)
}

/// A squall error raised in a template function, as minijinja's.
fn function_error(err: Error) -> minijinja::Error {
    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, err.to_string())
}

/// Writes an expression's value, escaped as Tornado's `xhtml_escape` when
/// the template autoescapes (`&<>"'`; minijinja's own escape also does `/`).
fn tornado_formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if matches!(state.auto_escape(), AutoEscape::Html)
        && !value.is_safe()
        && !value.is_undefined()
        && !value.is_none()
    {
        let escaped = match value.as_str() {
            Some(s) => crate::escape::xhtml_escape(s),
            None => crate::escape::xhtml_escape(&value.to_string()),
        };
        return out.write_str(&escaped).map_err(|_| {
            minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write output")
        });
    }
    minijinja::escape_formatter(out, state, value)
}

/// `xhtml_escape(v)`: escaped, and marked safe (not escaped again).
fn xhtml_escape_fn(value: &Value) -> Value {
    if value.is_safe() {
        return value.clone();
    }
    Value::from_safe_string(crate::escape::xhtml_escape(&value.to_string()))
}

/// `url_escape(v, plus=true)`, Tornado's.
fn url_escape_fn(value: &Value, plus: Option<bool>) -> String {
    url_escape(&value.to_string(), plus.unwrap_or(true))
}

/// `json_encode(v)`: JSON, safe to put in HTML and in a `<script>` (as
/// minijinja's `tojson`; Tornado's only escapes `</`).
fn json_encode_fn(value: &Value) -> Result<Value, minijinja::Error> {
    minijinja::filters::tojson(
        value,
        None,
        Kwargs::from_iter(std::iter::empty::<(&str, Value)>()),
    )
}

/// `squeeze(s)`: runs of whitespace as one space, trimmed; Tornado's.
fn squeeze_fn(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `request` in a template: the request being answered, read when the
/// template asks (nothing is copied for a template that does not).
#[derive(Debug)]
struct RequestObject;

const REQUEST_FIELDS: &[&str] = &[
    "method",
    "uri",
    "path",
    "query",
    "version",
    "host",
    "host_name",
    "protocol",
    "remote_ip",
    "headers",
    "arguments",
    "query_arguments",
    "path_args",
];

impl Object for RequestObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        with_exchange(|x| {
            let r = x.request();
            Some(match key {
                "method" => Value::from(r.method()),
                "uri" => Value::from(r.uri()),
                "path" => Value::from(r.path()),
                "query" => Value::from(r.query()),
                "version" => Value::from(format!("{:?}", r.version())),
                "host" => Value::from(r.host()),
                "host_name" => Value::from(super::routing::host_name(r.host())),
                "protocol" => Value::from(r.protocol()),
                "remote_ip" => Value::from(r.remote_ip()),
                "headers" => Value::from_object(HeadersObject),
                "arguments" | "query_arguments" => Value::from_pairs(
                    arguments(r.query())
                        .into_iter()
                        .map(|(n, values)| (n, Value::from_iter(values))),
                ),
                "path_args" => {
                    Value::from_pairs(r.path_args().iter().map(|(n, v)| (n.as_str(), v.as_str())))
                }
                _ => return None,
            })
        })?
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(REQUEST_FIELDS)
    }
}

/// The query's arguments, name -> values, in the order names first came.
fn arguments(query: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in crate::httputil::parse_qsl(query) {
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => out.push((name, vec![value])),
        }
    }
    out
}

/// `request.headers`: `request.headers["User-Agent"]` (any letter case).
#[derive(Debug)]
struct HeadersObject;

impl Object for HeadersObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        with_exchange(|x| x.request().headers().get(key).map(Value::from))?
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let names: Vec<Value> = with_exchange(|x| {
            x.request()
                .headers()
                .iter()
                .map(|(n, _)| Value::from(n))
                .collect()
        })
        .unwrap_or_default();
        Enumerator::Values(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn engine(autoescape: bool) -> Templates {
        let settings = Settings {
            autoescape,
            ..Default::default()
        };
        Templates::new(&settings, SharedNames::default())
    }

    #[test]
    fn escaping_as_tornado() {
        let t = engine(true);
        let ctx = minijinja::context! { v => "<a href='x'>&\"/" };
        assert_eq!(
            t.render_source("{{ v }}", ctx.clone()).unwrap(),
            "&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;/"
        );
        assert_eq!(
            t.render_source("{{ v|safe }}", ctx.clone()).unwrap(),
            "<a href='x'>&\"/"
        );
        // Escaped once, by the function or by autoescape, not twice.
        assert_eq!(
            t.render_source("{{ xhtml_escape(v) }}|{{ v|xhtml_escape }}", ctx.clone())
                .unwrap(),
            "&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;/|&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;/"
        );
        assert_eq!(
            engine(false).render_source("{{ v }}", ctx).unwrap(),
            "<a href='x'>&\"/"
        );
        assert_eq!(t.render_source("{{ 1.5 }}|{{ 3 }}", ()).unwrap(), "1.5|3");
    }

    #[test]
    fn tornado_functions() {
        let t = engine(true);
        let ctx = minijinja::context! { v => "a b/é+", s => " a  b\n c ", j => "</script>" };
        assert_eq!(
            t.render_source(
                "{{ url_escape(v) }}|{{ url_escape(v, false) }}",
                ctx.clone()
            )
            .unwrap(),
            "a+b%2F%C3%A9%2B|a%20b%2F%C3%A9%2B"
        );
        assert_eq!(
            t.render_source("[{{ squeeze(s) }}]", ctx.clone()).unwrap(),
            "[a b c]"
        );
        let json = t.render_source("{{ json_encode(j) }}", ctx).unwrap();
        assert!(!json.contains("</"), "{json}");
        // Strict: a name not defined is an error, as Tornado's NameError.
        let err = t.render_source("{{ nope }}", ()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Template);
        // Outside a render there is no request: its fields are undefined.
        assert!(t.render_source("{{ request.path }}", ()).is_err());
    }

    fn fueled(fuel: Option<u64>) -> Templates {
        let settings = Settings {
            template_fuel: fuel,
            ..Default::default()
        };
        Templates::new(&settings, SharedNames::default())
    }

    /// Fuel bounds a render's work and its output; recursion stops at
    /// minijinja's limit (on a test thread's stack, in a debug build).
    #[test]
    fn every_render_is_bounded() {
        let t = fueled(Some(10_000));
        for source in [
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "{% for i in range(1000) %}{{ 'abcd' * 10000 }}{% endfor %}",
            "{{ 'a' * 1000000 }}",
        ] {
            let err = t.render_source(source, ()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Template);
            assert!(err.to_string().contains("fuel"), "{err}");
        }
        // 10,000 fuel pays for 640,000 bytes: a string made (charged) and
        // written (charged again) of 200,000.
        let out = t.render_source("{{ 'a' * 200000 }}", ()).unwrap();
        assert_eq!(out.len(), 200_000);
        // Without fuel, the same render that ran out runs to its end.
        let out = fueled(None)
            .render_source(
                "{% for i in range(1000) %}{{ 'abcd' * 1000 }}{% endfor %}",
                (),
            )
            .unwrap();
        assert_eq!(out.len(), 4_000_000);
        let deep = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
        let err = fueled(None).render_source(deep, ()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Template);
        let nested = format!("{{{{ {}1{} }}}}", "(".repeat(1000), ")".repeat(1000));
        let err = t.render_source(&nested, ()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Template);
    }

    /// A template the engine itself panics on is a template error, and
    /// the engine goes on.
    #[test]
    fn an_engine_panic_is_a_template_error() {
        let t = engine(true);
        for source in [
            "{% import 'x.html' as m % x %}",
            "{% from 'x.html' import a as b % c %}",
        ] {
            let err = t.render_source(source, ()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Template, "{source}");
        }
        assert_eq!(t.render_source("{{ 1 + 1 }}", ()).unwrap(), "2");
    }

    /// Values of every shape a context may hold.
    fn values() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::from(())),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..4).prop_map(Value::from),
            ]
        })
    }

    /// Template text: mostly pieces of template syntax, so the parser and
    /// the engine go deep, with some noise.
    fn sources() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("{{ ".to_owned()),
            Just(" }}".to_owned()),
            Just("{% ".to_owned()),
            Just(" %}".to_owned()),
            Just("{# x #}".to_owned()),
            Just("for x in a".to_owned()),
            Just("endfor".to_owned()),
            Just("if a".to_owned()),
            Just("else".to_owned()),
            Just("endif".to_owned()),
            Just("set y = a".to_owned()),
            Just("block b".to_owned()),
            Just("endblock".to_owned()),
            Just("extends 'x.html'".to_owned()),
            Just("include 'y.html'".to_owned()),
            Just("raw".to_owned()),
            Just("endraw".to_owned()),
            Just("a|xhtml_escape".to_owned()),
            Just("url_escape(a)".to_owned()),
            Just("json_encode(a)".to_owned()),
            Just("squeeze(a)".to_owned()),
            Just("reverse_url('x', a)".to_owned()),
            Just("request.path".to_owned()),
            Just("a[0]".to_owned()),
            Just("a.b".to_owned()),
            Just("a ~ a".to_owned()),
            Just("a * 3".to_owned()),
            Just("a / 0".to_owned()),
            ".{0,6}".prop_map(|s: String| s),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// No template text and no context makes the engine panic: every
        /// failure is a typed error.
        #[test]
        fn never_panics(source in sources(), a in values(), escape in any::<bool>()) {
            let t = engine(escape);
            let ctx = minijinja::context! { a => a };
            if let Err(err) = t.render_source(&source, ctx) {
                prop_assert_eq!(err.kind(), ErrorKind::Template);
            }
        }

        /// Escaped output never carries markup from a value.
        #[test]
        fn escaped_values_hold_no_markup(s in ".{0,40}") {
            let out = engine(true).render_source("{{ a }}", minijinja::context! { a => s }).unwrap();
            prop_assert!(!out.contains(['<', '>', '"', '\'']));
        }
    }
}
