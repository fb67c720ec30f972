//! Cross-site request forgery protection: Tornado's `xsrf_token`,
//! `xsrf_form_html` and `check_xsrf_cookie`, token for token.
//!
//! A browser gets a random token in the `_xsrf` cookie, and every form
//! posts it back in an `_xsrf` field (or a script in an `X-XSRFToken`
//! header); a page of another site can make the browser post, with the
//! cookie, but cannot read the cookie to fill the field. With the
//! `xsrf_cookies` setting, every `POST`, `PUT`, `PATCH` and `DELETE` is
//! checked before `prepare`, and answered 403 if the two differ.
//!
//! Tokens are Tornado's version 2: `2|mask|masked token|timestamp`, the
//! token XOR-ed with 4 fresh random bytes on every page, so that a
//! compressed page does not leak it (BREACH); both forms, and Tornado's
//! older bare hex tokens, are accepted and compared unmasked. A squall
//! service and a Tornado one on the same domain accept each other's.
//!
//! ```
//! use squall::web::{Application, Exchange, RequestHandler, Settings};
//! use squall::Error;
//!
//! struct Comment;
//! impl RequestHandler for Comment {
//!     fn get(&mut self, x: &Exchange) -> Result<(), Error> {
//!         let field = x.xsrf_form_html()?; // also sets the cookie if needed
//!         x.write(format!(r#"<form method="post">{field}<input name="text"></form>"#));
//!         Ok(())
//!     }
//!     fn post(&mut self, x: &Exchange) -> Result<(), Error> {
//!         // Only reached with a matching token.
//!         x.write("thanks");
//!         Ok(())
//!     }
//! }
//! let app = Application::with_settings(Settings { xsrf_cookies: true, ..Default::default() })
//!     .route("/comment", || Comment);
//! # let _ = app;
//! ```

use std::cell::OnceCell;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Exchange, HTTPError, RequestHandler};
use crate::error::{Error, ErrorKind};
use crate::http::Method;
use crate::httputil::CookieOptions;

/// The XSRF token of one request, as read (or made) and as sent.
#[derive(Default)]
pub(crate) struct XsrfState {
    raw: OnceCell<RawToken>,
    token: OnceCell<String>,
}

/// Tornado's `_get_raw_xsrf_token` tuple.
#[derive(Clone)]
pub(crate) struct RawToken {
    /// The version of the cookie it was read from; `None`: made now.
    version: Option<u64>,
    /// The token itself: random bytes.
    pub(crate) token: Vec<u8>,
    /// When it was made (seconds since the epoch).
    timestamp: i64,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Tornado's signed-value version prefix (`^([1-9][0-9]*)\|(.*)$`): the
/// number before the first `|` if `value` starts with one, saturated.
/// As Python's `.` and `$`, the rest may hold no newline but a last one.
pub(crate) fn version_prefix(value: &[u8]) -> Option<u64> {
    let bar = value.iter().position(|&b| b == b'|')?;
    let digits = &value[..bar];
    let rest = &value[bar + 1..];
    let rest = rest.strip_suffix(b"\n").unwrap_or(rest);
    let well_formed = matches!(digits.first(), Some(b'1'..=b'9'))
        && digits.iter().all(u8::is_ascii_digit)
        && !rest.contains(&b'\n');
    well_formed.then(|| {
        digits.iter().fold(0u64, |n, &d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        })
    })
}

/// Lower-case hex, as Python's `binascii.b2a_hex`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// Python's `binascii.a2b_hex`: an even number of hex digits, either case.
fn from_hex(s: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Python's `int(s)` for the decimal strings Tornado writes: surrounding
/// whitespace, a sign, ASCII digits; saturated rather than unbounded.
fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = digits.bytes().fold(0i64, |n, d| {
        n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Some(if negative { -n } else { n })
}

/// XORs `data` with the 4-byte `mask`, repeated (Tornado's
/// `_websocket_mask`).
fn mask_with(mask: &[u8; 4], data: &[u8]) -> Vec<u8> {
    data.iter()
        .zip(mask.iter().cycle())
        .map(|(d, m)| d ^ m)
        .collect()
}

/// Tornado's `_decode_xsrf_token`: a cookie or submitted token to its raw
/// form; `None` for one it cannot read (a version other than 2 is unknown,
/// as in Tornado; version 1 has no prefix).
pub(crate) fn decode_token(token: &str) -> Option<RawToken> {
    match version_prefix(token.as_bytes()) {
        Some(2) => {
            let mut parts = token.split('|');
            let (_, mask, masked, timestamp) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            let mask: [u8; 4] = from_hex(mask)?.try_into().ok()?;
            let masked = from_hex(masked)?;
            Some(RawToken {
                version: Some(2),
                token: mask_with(&mask, &masked),
                timestamp: parse_int(timestamp)?,
            })
        }
        Some(_) => None,
        None => Some(RawToken {
            version: Some(1),
            // Not hex: the bytes as they are (Tornado's fallback).
            token: from_hex(token).unwrap_or_else(|| token.as_bytes().to_vec()),
            timestamp: now_secs(),
        }),
    }
}

/// Fills `buf` from the operating system's random source. Only when a
/// token is made or masked; a file opened each time rather than an fd
/// kept open behind the application's back.
fn random_bytes(buf: &mut [u8]) -> Result<(), Error> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)?;
    Ok(())
}

/// Compares in time that depends on the lengths only (Python's
/// `hmac.compare_digest`).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `_xsrf` argument of the request (Tornado's
/// `get_argument("_xsrf", None)`): the query string, an urlencoded or a
/// multipart body; a malformed body is its 400.
fn xsrf_argument(x: &Exchange) -> Result<Option<String>, Error> {
    x.get_argument_opt("_xsrf")
}

impl Exchange {
    /// Tornado's `_get_raw_xsrf_token`: the token of the `_xsrf` cookie, or
    /// a new random one.
    fn raw_xsrf_token(&self) -> Result<RawToken, Error> {
        let state = &self.cookie_state().xsrf;
        if let Some(raw) = state.raw.get() {
            return Ok(raw.clone());
        }
        let name = &self.settings().xsrf_cookie_name;
        let from_cookie = self
            .get_cookie(name)
            .filter(|c| !c.is_empty())
            .and_then(decode_token);
        let raw = match from_cookie {
            Some(raw) => raw,
            None => {
                let mut token = vec![0u8; 16];
                random_bytes(&mut token)?;
                RawToken {
                    version: None,
                    token,
                    timestamp: now_secs(),
                }
            }
        };
        Ok(state.raw.get_or_init(|| raw).clone())
    }

    /// The XSRF token for this request (Tornado's `xsrf_token`): put it in
    /// every form as the `_xsrf` field (or use
    /// [`xsrf_form_html`](Self::xsrf_form_html)), or send it in an
    /// `X-XSRFToken` header. Version 2 (the default, see
    /// [`Settings::xsrf_cookie_version`](super::Settings::xsrf_cookie_version)):
    /// the same secret token masked anew on every request.
    ///
    /// The first call in a request without a valid `_xsrf` cookie makes a
    /// new token and sets the cookie, with
    /// [`Settings::xsrf_cookie_kwargs`](super::Settings::xsrf_cookie_kwargs);
    /// for 30 days (unless those say otherwise) if a user is logged in —
    /// as known to [`current_user`](Self::current_user) by then, so call
    /// the handler's `current_user` first if it matters — else for the
    /// browser session.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for an `xsrf_cookie_version` other
    /// than 1 or 2, or cookie settings `set_cookie` refuses;
    /// [`ErrorKind::Io`] if the system's random source fails.
    pub fn xsrf_token(&self) -> Result<String, Error> {
        if let Some(token) = self.cookie_state().xsrf.token.get() {
            return Ok(token.clone());
        }
        let raw = self.raw_xsrf_token()?;
        let settings = self.settings();
        let token = match settings.xsrf_cookie_version {
            1 => to_hex(&raw.token),
            2 => {
                let mut mask = [0u8; 4];
                random_bytes(&mut mask)?;
                format!(
                    "2|{}|{}|{}",
                    to_hex(&mask),
                    to_hex(&mask_with(&mask, &raw.token)),
                    raw.timestamp
                )
            }
            v => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("unknown xsrf cookie version {v}"),
                ))
            }
        };
        if raw.version.is_none() {
            let logged_in = self.current_user().is_some_and(|u| !u.is_empty());
            let mut options: CookieOptions = settings.xsrf_cookie_kwargs.clone();
            if logged_in && options.expires_days.is_none() {
                options.expires_days = Some(30.0);
            }
            self.set_cookie_with(&settings.xsrf_cookie_name, &token, &options)?;
        }
        Ok(self.cookie_state().xsrf.token.get_or_init(|| token).clone())
    }

    /// A hidden form field holding the XSRF token (Tornado's
    /// `xsrf_form_html`): `<input type="hidden" name="_xsrf" value="..."/>`.
    ///
    /// # Errors
    /// As [`xsrf_token`](Self::xsrf_token).
    pub fn xsrf_form_html(&self) -> Result<String, Error> {
        Ok(format!(
            r#"<input type="hidden" name="_xsrf" value="{}"/>"#,
            crate::escape::xhtml_escape(&self.xsrf_token()?)
        ))
    }

    /// Checks that the token submitted with the request — the `_xsrf`
    /// argument (query or urlencoded form), else the `X-Xsrftoken` header,
    /// else `X-Csrftoken` (Django's name) — is the one of the `_xsrf`
    /// cookie (Tornado's `check_xsrf_cookie`), masked or not, in constant
    /// time. With the `xsrf_cookies` setting it runs before `prepare` for
    /// every `POST`, `PUT`, `PATCH` and `DELETE`, through
    /// [`RequestHandler::check_xsrf_cookie`], which a handler may override
    /// to opt out (an API authenticated otherwise).
    ///
    /// # Errors
    /// An [`HTTPError`] 403 (with Tornado's log message) if no token was
    /// submitted, it cannot be read, or it does not match.
    pub fn check_xsrf_cookie(&self) -> Result<(), Error> {
        let headers = self.request().headers();
        let submitted = xsrf_argument(self)?.filter(|t| !t.is_empty()).or_else(|| {
            ["X-Xsrftoken", "X-Csrftoken"]
                .iter()
                .find_map(|h| headers.get(h).filter(|t| !t.is_empty()).map(str::to_owned))
        });
        let Some(submitted) = submitted else {
            return Err(HTTPError::new(403)
                .log_message("'_xsrf' argument missing from POST")
                .into());
        };
        let token = decode_token(&submitted).map(|raw| raw.token);
        let expected = self.raw_xsrf_token()?.token;
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(HTTPError::new(403)
                .log_message("'_xsrf' argument has invalid format")
                .into());
        };
        if !constant_time_eq(&token, &expected) {
            return Err(HTTPError::new(403)
                .log_message("XSRF cookie does not match POST argument")
                .into());
        }
        Ok(())
    }
}

/// Before `prepare`: the XSRF check of a state-changing request when the
/// `xsrf_cookies` setting is on (Tornado's `_execute`), through the
/// handler's own `check_xsrf_cookie`. One test for every other request.
#[inline]
pub(super) fn check_before_prepare<H: RequestHandler + ?Sized>(
    handler: &mut H,
    x: &Exchange,
) -> Result<(), Error> {
    if !x.settings().xsrf_cookies {
        return Ok(());
    }
    match x.request().method {
        Method::Post | Method::Put | Method::Patch | Method::Delete => handler.check_xsrf_cookie(x),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_as_tornado() {
        assert_eq!(version_prefix(b"2|1:0|x"), Some(2));
        assert_eq!(version_prefix(b"12|"), Some(12));
        assert_eq!(version_prefix(b"0|x"), None);
        assert_eq!(version_prefix(b"02|x"), None);
        assert_eq!(version_prefix(b"2x|x"), None);
        assert_eq!(version_prefix(b"abc"), None);
        assert_eq!(version_prefix(b"2|a\n"), Some(2));
        assert_eq!(version_prefix(b"2|a\nb"), None);
        assert_eq!(version_prefix(b"99999999999999999999999|"), Some(u64::MAX));
    }

    #[test]
    fn tokens_decode() {
        // v1: hex, or the bytes themselves.
        assert_eq!(
            decode_token("deadbeef").unwrap().token,
            [0xde, 0xad, 0xbe, 0xef]
        );
        assert_eq!(decode_token("xoxo").unwrap().token, b"xoxo");
        assert_eq!(decode_token("abc").unwrap().token, b"abc");
        // v2: unmasked.
        let raw = decode_token("2|01020304|0b0b0b0b0c|1700000000").unwrap();
        assert_eq!(raw.token, [0x0a, 0x09, 0x08, 0x0f, 0x0d]);
        assert_eq!(raw.timestamp, 1_700_000_000);
        for bad in [
            "3|",
            "1|abc",
            "2|",
            "2|0102|0b|1",
            "2|01020304|0b|x",
            "2|01020304|0b|1|",
            "2|0102030g|0b|1",
            "2|01020304|0b0|1",
        ] {
            assert!(decode_token(bad).is_none(), "{bad}");
        }
        assert_eq!(decode_token("2|01020304||1").unwrap().token, b"");
    }

    #[test]
    fn masks_round_trip() {
        let token = b"0123456789abcdef";
        let mask = [9, 200, 3, 77];
        let masked = mask_with(&mask, token);
        assert_ne!(masked, token);
        let text = format!("2|{}|{}|5", to_hex(&mask), to_hex(&masked));
        assert_eq!(decode_token(&text).unwrap().token, token);
    }

    #[test]
    fn ints_as_python() {
        assert_eq!(parse_int(" 12 "), Some(12));
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("+3"), Some(3));
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("1.5"), None);
        assert_eq!(parse_int("-"), None);
    }
}
