//! Request arguments and uploaded files: Tornado's `get_argument` family,
//! `request.files`, and a streaming multipart reader for handlers that
//! take their body as it arrives.
//!
//! Arguments come from the query string and from an
//! `application/x-www-form-urlencoded` or `multipart/form-data` body. Each
//! is parsed the first time a handler asks, once per request: a handler
//! that never asks pays nothing.
//!
//! ```
//! use squall::web::{Application, Exchange, RequestHandler};
//! use squall::Error;
//!
//! struct Search;
//! impl RequestHandler for Search {
//!     fn get(&mut self, x: &Exchange) -> Result<(), Error> {
//!         // Missing `q`: the `?` answers 400 ("Missing argument q" in the log).
//!         let q = x.get_argument("q")?;
//!         let page = x.get_argument_or("page", "1")?;
//!         let tags = x.get_arguments("tag")?; // every `tag=`, in order
//!         x.write(format!("{q} page {page}, {} tags", tags.len()));
//!         Ok(())
//!     }
//!     fn post(&mut self, x: &Exchange) -> Result<(), Error> {
//!         for file in x.files()?.get("photo").into_iter().flatten() {
//!             x.write(format!("{}: {} bytes\n", file.filename, file.body.len()));
//!         }
//!         Ok(())
//!     }
//! }
//! let app = Application::new().route("/search", || Search);
//! # let _ = app;
//! ```

use std::cell::OnceCell;

use super::{Exchange, HTTPError};
use crate::error::Error;
use crate::httputil::{
    parse_body_arguments, parse_form_urlencoded, Arguments, Files, FormLimit, MultipartEvent,
    MultipartParser,
};

/// Where [`Exchange::get_arguments_from`] looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgumentSource {
    /// The query, then the body (Tornado's `request.arguments`).
    All,
    /// The query string (Tornado's `request.query_arguments`).
    Query,
    /// The form body (Tornado's `request.body_arguments`).
    Body,
}

/// A request's parsed arguments, kept by its exchange: empty cells until a
/// handler asks, emptied when the exchange is parked for reuse.
#[derive(Default)]
pub(crate) struct ArgumentCache {
    query: OnceCell<Result<Box<Arguments>, Error>>,
    body: OnceCell<Result<Box<(Arguments, Files)>, Error>>,
}

impl ArgumentCache {
    /// For the next request. Two tests while nothing was parsed: the
    /// emptying (drop glue and all) stays out of the request's path.
    #[inline]
    pub(crate) fn reset(&mut self) {
        if self.query.get().is_some() || self.body.get().is_some() {
            self.clear();
        }
    }

    #[cold]
    #[inline(never)]
    fn clear(&mut self) {
        self.query.take();
        self.body.take();
    }
}

/// The HTTP answer to a form that cannot be parsed: 400, or a limit's own
/// status (413 for a size), with the reason in the log.
fn http_error(err: &Error) -> Error {
    let status = FormLimit::from_error(err).map_or(400, FormLimit::status);
    HTTPError::new(status).log_message(err.message()).into()
}

/// Tornado's `decode_argument` and `_get_arguments` filter: UTF-8 or 400,
/// control characters other than whitespace become spaces
/// (`_remove_control_chars_regex`), surrounding whitespace stripped if
/// `strip`.
fn decode(value: &[u8], name: &str, strip: bool) -> Result<String, Error> {
    let text = std::str::from_utf8(value).map_err(|_| {
        let shown = String::from_utf8_lossy(&value[..value.len().min(40)]).into_owned();
        Error::from(
            HTTPError::new(400).log_message(format!("Invalid unicode in {name}: {shown:?}")),
        )
    })?;
    let cleaned: String;
    let mut s = if text.bytes().any(|b| matches!(b, 0x00..=0x08 | 0x0e..=0x1f)) {
        cleaned = text
            .chars()
            .map(|c| match c {
                '\u{0}'..='\u{8}' | '\u{e}'..='\u{1f}' => ' ',
                c => c,
            })
            .collect();
        cleaned.as_str()
    } else {
        text
    };
    if strip {
        s = s.trim();
    }
    Ok(s.to_owned())
}

/// Tornado's `MissingArgumentError`: a 400 whose log message names it.
fn missing(name: &str) -> Error {
    HTTPError::new(400)
        .log_message(format!("Missing argument {name}"))
        .into()
}

impl Exchange {
    /// The query's arguments, values still bytes (Tornado's
    /// `request.query_arguments`), parsed on first use: pairs split on
    /// `&`, `+` a space, `%XX` decoded, blank values kept.
    ///
    /// # Errors
    /// 400 past [`FormLimits::max_fields`](crate::httputil::FormLimits::max_fields)
    /// pairs, 413 for a value over `max_field_size`.
    pub fn query_arguments(&self) -> Result<&Arguments, Error> {
        let cache = self.argument_cache();
        let parsed = cache.query.get_or_init(|| {
            let mut args = Arguments::new();
            let limits = &self.settings().form_limits;
            parse_form_urlencoded(self.request().query().as_bytes(), &mut args, limits)
                .map(|()| Box::new(args))
                .map_err(|e| http_error(&e))
        });
        match parsed {
            Ok(args) => Ok(args),
            Err(err) => Err(err.clone()),
        }
    }

    /// The form body's arguments (Tornado's `request.body_arguments`),
    /// and its files: parsed on first use from an
    /// `application/x-www-form-urlencoded` or `multipart/form-data` body
    /// (Tornado's `parse_body_arguments`), under the application's
    /// [`form_limits`](super::Settings::form_limits). A body of another
    /// type, an empty one, and a body a handler
    /// [streamed](super::RequestHandler::stream_request_body) (it is not
    /// kept) give none.
    fn body_form(&self) -> Result<&(Arguments, Files), Error> {
        let cache = self.argument_cache();
        let parsed = cache.body.get_or_init(|| {
            let request = self.request();
            let mut form = Box::<(Arguments, Files)>::default();
            if request.body().is_empty() {
                return Ok(form);
            }
            let content_type = request.headers().get("Content-Type").unwrap_or("");
            let (args, files) = &mut *form;
            parse_body_arguments(
                content_type,
                request.body(),
                args,
                files,
                Some(request.headers()),
                &self.settings().form_limits,
            )
            .map(|()| form)
            .map_err(|e| http_error(&e))
        });
        match parsed {
            Ok(form) => Ok(form),
            Err(err) => Err(err.clone()),
        }
    }

    /// The form body's arguments, values still bytes (Tornado's
    /// `request.body_arguments`).
    ///
    /// # Errors
    /// An [`HTTPError`] to return from the handler: 400 for a malformed
    /// form (a multipart body without its boundary or final boundary, a
    /// part without `Content-Disposition: form-data`, a
    /// `Content-Encoding`...), or a limit's status (400 for a count, 413
    /// for a size).
    pub fn body_arguments(&self) -> Result<&Arguments, Error> {
        self.body_form().map(|(args, _)| args)
    }

    /// The files uploaded in a `multipart/form-data` body, by field name
    /// (Tornado's `request.files`).
    ///
    /// # Errors
    /// As [`body_arguments`](Self::body_arguments).
    pub fn files(&self) -> Result<&Files, Error> {
        self.body_form().map(|(_, files)| files)
    }

    /// Every value of argument `name` from `source`, decoded as UTF-8,
    /// control characters (other than whitespace) turned to spaces, and
    /// stripped of surrounding whitespace: Tornado's `_get_arguments`, the
    /// general form of the methods below.
    /// [`get_arguments_unstripped`](Self::get_arguments_unstripped) is
    /// Tornado's `strip=False`.
    ///
    /// # Errors
    /// An [`HTTPError`] 400 if a value is not UTF-8 (the log names the
    /// argument), or the form's error (see
    /// [`body_arguments`](Self::body_arguments)).
    pub fn get_arguments_from(
        &self,
        name: &str,
        source: ArgumentSource,
    ) -> Result<Vec<String>, Error> {
        self.arguments_decoded(name, source, true)
    }

    /// [`get_arguments_from`](Self::get_arguments_from) without stripping
    /// whitespace: Tornado's `get_arguments(name, strip=False)` is
    /// `get_arguments_unstripped(name, ArgumentSource::All)` (and
    /// `get_query_arguments`, `get_body_arguments` with `strip=False` are
    /// `ArgumentSource::Query`, `ArgumentSource::Body`).
    ///
    /// # Errors
    /// As [`get_arguments_from`](Self::get_arguments_from).
    pub fn get_arguments_unstripped(
        &self,
        name: &str,
        source: ArgumentSource,
    ) -> Result<Vec<String>, Error> {
        self.arguments_decoded(name, source, false)
    }

    fn arguments_decoded(
        &self,
        name: &str,
        source: ArgumentSource,
        strip: bool,
    ) -> Result<Vec<String>, Error> {
        let query = match source {
            ArgumentSource::All | ArgumentSource::Query => self.query_arguments()?.get(name),
            ArgumentSource::Body => None,
        };
        let body = match source {
            ArgumentSource::All | ArgumentSource::Body => self.body_arguments()?.get(name),
            ArgumentSource::Query => None,
        };
        query
            .into_iter()
            .chain(body)
            .flatten()
            .map(|v| decode(v, name, strip))
            .collect()
    }

    fn last_argument(&self, name: &str, source: ArgumentSource) -> Result<Option<String>, Error> {
        Ok(self.get_arguments_from(name, source)?.pop())
    }

    /// The last value of argument `name`, from the query or the body
    /// (Tornado's `get_argument(name)`, the required form), decoded and
    /// stripped as [`get_arguments_from`](Self::get_arguments_from) says.
    ///
    /// # Errors
    /// An [`HTTPError`] 400 if there is none (Tornado's
    /// `MissingArgumentError`: the log says `Missing argument {name}`), or
    /// as [`get_arguments_from`](Self::get_arguments_from).
    pub fn get_argument(&self, name: &str) -> Result<String, Error> {
        self.last_argument(name, ArgumentSource::All)?
            .ok_or_else(|| missing(name))
    }

    /// The last value of argument `name`, or `default` if there is none
    /// (Tornado's `get_argument(name, default)`).
    ///
    /// # Errors
    /// As [`get_arguments_from`](Self::get_arguments_from): a value that
    /// is there but not UTF-8 is still a 400.
    pub fn get_argument_or(&self, name: &str, default: &str) -> Result<String, Error> {
        Ok(self
            .last_argument(name, ArgumentSource::All)?
            .unwrap_or_else(|| default.to_owned()))
    }

    /// The last value of argument `name`, if there is one (Tornado's
    /// `get_argument(name, None)`).
    ///
    /// # Errors
    /// As [`get_arguments_from`](Self::get_arguments_from).
    pub fn get_argument_opt(&self, name: &str) -> Result<Option<String>, Error> {
        self.last_argument(name, ArgumentSource::All)
    }

    /// Every value of argument `name`, query values first (Tornado's
    /// `get_arguments`); empty if there is none.
    ///
    /// # Errors
    /// As [`get_arguments_from`](Self::get_arguments_from).
    pub fn get_arguments(&self, name: &str) -> Result<Vec<String>, Error> {
        self.get_arguments_from(name, ArgumentSource::All)
    }

    /// [`get_argument`](Self::get_argument) from the query only
    /// (Tornado's `get_query_argument`).
    ///
    /// # Errors
    /// As [`get_argument`](Self::get_argument).
    pub fn get_query_argument(&self, name: &str) -> Result<String, Error> {
        self.last_argument(name, ArgumentSource::Query)?
            .ok_or_else(|| missing(name))
    }

    /// [`get_argument_or`](Self::get_argument_or) from the query only.
    ///
    /// # Errors
    /// As [`get_argument_or`](Self::get_argument_or).
    pub fn get_query_argument_or(&self, name: &str, default: &str) -> Result<String, Error> {
        Ok(self
            .last_argument(name, ArgumentSource::Query)?
            .unwrap_or_else(|| default.to_owned()))
    }

    /// [`get_argument_opt`](Self::get_argument_opt) from the query only.
    ///
    /// # Errors
    /// As [`get_argument_opt`](Self::get_argument_opt).
    pub fn get_query_argument_opt(&self, name: &str) -> Result<Option<String>, Error> {
        self.last_argument(name, ArgumentSource::Query)
    }

    /// [`get_arguments`](Self::get_arguments) from the query only
    /// (Tornado's `get_query_arguments`).
    ///
    /// # Errors
    /// As [`get_arguments`](Self::get_arguments).
    pub fn get_query_arguments(&self, name: &str) -> Result<Vec<String>, Error> {
        self.get_arguments_from(name, ArgumentSource::Query)
    }

    /// [`get_argument`](Self::get_argument) from the body only (Tornado's
    /// `get_body_argument`).
    ///
    /// # Errors
    /// As [`get_argument`](Self::get_argument).
    pub fn get_body_argument(&self, name: &str) -> Result<String, Error> {
        self.last_argument(name, ArgumentSource::Body)?
            .ok_or_else(|| missing(name))
    }

    /// [`get_argument_or`](Self::get_argument_or) from the body only.
    ///
    /// # Errors
    /// As [`get_argument_or`](Self::get_argument_or).
    pub fn get_body_argument_or(&self, name: &str, default: &str) -> Result<String, Error> {
        Ok(self
            .last_argument(name, ArgumentSource::Body)?
            .unwrap_or_else(|| default.to_owned()))
    }

    /// [`get_argument_opt`](Self::get_argument_opt) from the body only.
    ///
    /// # Errors
    /// As [`get_argument_opt`](Self::get_argument_opt).
    pub fn get_body_argument_opt(&self, name: &str) -> Result<Option<String>, Error> {
        self.last_argument(name, ArgumentSource::Body)
    }

    /// [`get_arguments`](Self::get_arguments) from the body only
    /// (Tornado's `get_body_arguments`).
    ///
    /// # Errors
    /// As [`get_arguments`](Self::get_arguments).
    pub fn get_body_arguments(&self, name: &str) -> Result<Vec<String>, Error> {
        self.get_arguments_from(name, ArgumentSource::Body)
    }

    /// A reader for this request's `multipart/form-data` body, for a
    /// handler that [streams](super::RequestHandler::stream_request_body)
    /// it: make it in `prepare`, [`feed`](MultipartReader::feed) it each
    /// `data_received` chunk, [`finish`](MultipartReader::finish) it in
    /// the verb method. Under the application's
    /// [`form_limits`](super::Settings::form_limits) (a file part's size
    /// is bounded only by the connection's body limit).
    ///
    /// ```
    /// use std::io::Write;
    /// use squall::httputil::MultipartEvent;
    /// use squall::web::{Exchange, MultipartReader, RequestHandler};
    /// use squall::{Error, Future};
    ///
    /// #[derive(Default)]
    /// struct Upload { reader: Option<MultipartReader>, file: Option<std::fs::File> }
    /// impl RequestHandler for Upload {
    ///     fn stream_request_body() -> bool { true }
    ///     fn prepare(&mut self, x: &Exchange) -> Result<(), Error> {
    ///         x.connection().set_max_body_size(4 << 30);
    ///         self.reader = Some(x.multipart_reader()?); // 400 if not multipart
    ///         Ok(())
    ///     }
    ///     fn data_received(&mut self, _x: &Exchange, chunk: &[u8]) -> Result<Option<Future<()>>, Error> {
    ///         let file = &mut self.file;
    ///         self.reader.as_mut().unwrap().feed(chunk, |event| {
    ///             match event {
    ///                 MultipartEvent::PartStart(part) if part.is_file() => {
    ///                     *file = Some(tempfile()?);
    ///                 }
    ///                 MultipartEvent::Data(data) => {
    ///                     if let Some(f) = file { f.write_all(data)?; }
    ///                 }
    ///                 _ => {}
    ///             }
    ///             Ok(())
    ///         })?;
    ///         Ok(None)
    ///     }
    ///     fn post(&mut self, x: &Exchange) -> Result<(), Error> {
    ///         self.reader.as_mut().unwrap().finish()?; // 400 if cut short
    ///         x.write("saved");
    ///         Ok(())
    ///     }
    /// }
    /// # fn tempfile() -> std::io::Result<std::fs::File> { std::fs::File::create("/dev/null") }
    /// ```
    ///
    /// # Errors
    /// An [`HTTPError`] 400 if the request is not `multipart/form-data`
    /// with a boundary, or the application turned multipart off.
    pub fn multipart_reader(&self) -> Result<MultipartReader, Error> {
        let content_type = self.request().headers().get("Content-Type").unwrap_or("");
        let limits = self.settings().form_limits.clone();
        MultipartParser::from_content_type(content_type, limits)
            .map(|parser| MultipartReader {
                parser,
                own_error: None,
            })
            .map_err(|e| http_error(&e))
    }
}

/// A [`MultipartParser`] whose errors are HTTP answers: a malformed body
/// is an [`HTTPError`] 400, a passed limit its status (413 for a size),
/// so a streaming handler returns them with `?`. What the handler's own
/// callback returns passes through unchanged. Made by
/// [`Exchange::multipart_reader`].
#[derive(Debug)]
pub struct MultipartReader {
    parser: MultipartParser,
    /// The callback's error that ended the parser, if one did.
    own_error: Option<Error>,
}

impl MultipartReader {
    /// Parses the next piece of the body; see [`MultipartParser::feed`].
    ///
    /// # Errors
    /// An [`HTTPError`] for the body (400, or 413 for a size limit), or
    /// `on_event`'s own error as it was.
    pub fn feed<F>(&mut self, data: &[u8], mut on_event: F) -> Result<(), Error>
    where
        F: FnMut(MultipartEvent<'_>) -> Result<(), Error>,
    {
        let own = &mut self.own_error;
        let result = self.parser.feed(data, |event| {
            on_event(event).map_err(|e| {
                *own = Some(e.clone());
                e
            })
        });
        result.map_err(|e| self.answer(e))
    }

    /// The body has ended; see [`MultipartParser::finish`].
    ///
    /// # Errors
    /// An [`HTTPError`] 400 if the body ended before its final boundary,
    /// or the error that ended an earlier call.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.parser.finish().map_err(|e| self.answer(e))
    }

    /// The parser (how many parts, bytes held...).
    pub fn parser(&self) -> &MultipartParser {
        &self.parser
    }

    fn answer(&self, err: Error) -> Error {
        match &self.own_error {
            Some(own) if own.ptr_eq(&err) => err,
            _ if HTTPError::from_error(&err).is_some() => err,
            _ => http_error(&err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_replaces_control_chars_and_strips() {
        assert_eq!(decode(b" a\x01b\tc\x1f ", "n", true).unwrap(), "a b\tc");
        assert_eq!(decode(b" a\x0b ", "n", false).unwrap(), " a\x0b ");
        assert_eq!(decode("\u{a0}é\n".as_bytes(), "n", true).unwrap(), "é");
        let err = decode(b"\xff", "who", true).unwrap_err();
        let http = HTTPError::from_error(&err).unwrap();
        assert_eq!(http.status_code, 400);
        assert!(http.log_message.as_deref().unwrap().contains("who"));
    }
}
