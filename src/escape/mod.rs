//! Escaping and unescaping for HTML, URLs and JSON: Tornado's
//! `tornado.escape`.
//!
//! ```
//! use squall::escape::{url_escape, url_unescape, xhtml_escape, xhtml_unescape};
//!
//! assert_eq!(xhtml_escape(r#"<a href="x">'&'</a>"#),
//!            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;");
//! assert_eq!(xhtml_unescape("&lt;&eacute;&#233;&#xe9;&gt;"), "<ééé>");
//! assert_eq!(url_escape("a b/c", true), "a+b%2Fc");   // for a query
//! assert_eq!(url_escape("a b/c", false), "a%20b/c");  // for a path
//! assert_eq!(url_unescape("a+b%2Fc", true), "a b/c");
//! # #[cfg(feature = "json")]
//! assert_eq!(squall::escape::json_encode(&"</script>")?, r#""<\/script>""#);
//! # Ok::<(), squall::Error>(())
//! ```

mod entities;

/// Escapes `&`, `<`, `>`, `"` and `'` so `value` is safe in HTML or XML
/// text and in quoted attribute values (Tornado's `xhtml_escape`, Python's
/// `html.escape`: `'` becomes `&#x27;`).
pub fn xhtml_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + value.len() / 8);
    let mut last = 0;
    for (i, b) in value.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            _ => continue,
        };
        out.push_str(&value[last..i]);
        out.push_str(entity);
        last = i + 1;
    }
    out.push_str(&value[last..]);
    out
}

/// Replaces character references with the characters they name
/// (Tornado's `xhtml_unescape`, Python's `html.unescape`): numeric ones
/// (`&#233;`, `&#xe9;`, with or without the `;`) as HTML 5 reads them
/// (`&#0;`, a surrogate or a number past U+10FFFF give U+FFFD, `&#x80;` to
/// `&#x9f;` are Windows-1252, non-characters are dropped), and named ones:
/// HTML 4's 252 names and `&apos;` with their `;`, and HTML 5's legacy
/// names (`&amp`, `&lt`, `&eacute`...) without it. Anything else is left
/// as it is. (Python knows all of HTML 5's 2,231 names; names only HTML 5
/// has, such as `&NotEqual;`, are left alone here.)
pub fn xhtml_unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        match reference(after) {
            Some((text, used)) => {
                out.push_str(&text);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The reference at the start of `s` (just past an `&`): its text, and how
/// many bytes of `s` it used.
fn reference(s: &str) -> Option<(String, usize)> {
    let bytes = s.as_bytes();
    if let Some(num) = s.strip_prefix('#') {
        let (digits, radix, skip) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (num, 10, 1),
        };
        let len = digits
            .bytes()
            .take_while(|b| b.is_ascii_digit() || (radix == 16 && b.is_ascii_hexdigit()))
            .count();
        if len == 0 {
            return None;
        }
        // Saturating: a number of any length past U+10FFFF is U+FFFD.
        let code = digits[..len].bytes().fold(0u32, |n, b| {
            let d = (b as char).to_digit(radix).unwrap_or(0);
            n.saturating_mul(radix).saturating_add(d)
        });
        let semicolon = usize::from(digits[len..].starts_with(';'));
        return Some((numeric(code), skip + len + semicolon));
    }
    // Python's `[^\t\n\f <&#;]{1,32};?`.
    let len = bytes
        .iter()
        .take(32)
        .take_while(|b| {
            !matches!(
                b,
                b'\t' | b'\n' | b'\x0c' | b' ' | b'<' | b'&' | b'#' | b';'
            )
        })
        .count();
    if len == 0 {
        return None;
    }
    // `len` stops at an ASCII byte or after 32 bytes: back up to a char
    // boundary.
    let len = (0..=len).rev().find(|&i| s.is_char_boundary(i))?;
    let name = &s[..len];
    let semicolon = s[len..].starts_with(';');
    if semicolon {
        if let Some(&(_, code, _)) = lookup(name) {
            return Some((char::from_u32(code)?.to_string(), len + 1));
        }
    }
    // The longest legacy name it begins with (HTML 5 reads `&ampx` as `&x`).
    (2..=len.min(name.len()))
        .rev()
        .filter(|&i| name.is_char_boundary(i))
        .find_map(|i| match lookup(&name[..i]) {
            Some(&(_, code, true)) => Some((char::from_u32(code)?.to_string(), i)),
            _ => None,
        })
}

fn lookup(name: &str) -> Option<&'static (&'static str, u32, bool)> {
    let table = entities::ENTITIES;
    table
        .binary_search_by(|(n, _, _)| n.as_bytes().cmp(name.as_bytes()))
        .ok()
        .map(|i| &table[i])
}

/// A numeric reference's text, as HTML 5 (and Python) read it.
fn numeric(code: u32) -> String {
    // Windows-1252 for the C1 range, as browsers do.
    const C1: [u32; 32] = [
        0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039,
        0x152, 0x8d, 0x17d, 0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
        0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
    ];
    let c = match code {
        0 => '\u{fffd}',
        0x0d => '\r',
        0x80..=0x9f => char::from_u32(C1[(code - 0x80) as usize]).unwrap_or('\u{fffd}'),
        0xd800..=0xdfff | 0x11_0000.. => '\u{fffd}',
        0x01..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f | 0xfdd0..=0xfdef => return String::new(),
        _ if code & 0xfffe == 0xfffe => return String::new(),
        _ => char::from_u32(code).unwrap_or('\u{fffd}'),
    };
    c.to_string()
}

/// Percent-encodes `value` for a URL (Tornado's `url_escape`): letters,
/// digits and `_.-~` stay; with `plus` (for a query string: Tornado's
/// default) a space becomes `+` and `/` is escaped, without it (for a
/// path) a space is `%20` and `/` stays.
pub fn url_escape(value: &str, plus: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b'/' if !plus => out.push('/'),
            b' ' if plus => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out
}

/// Decodes `%XX` escapes, and with `plus` a `+` as a space (Tornado's
/// `url_unescape`, whose `plus` default is true); invalid escapes are kept
/// as they are, and bytes that are not UTF-8 become U+FFFD.
pub fn url_unescape(value: &str, plus: bool) -> String {
    crate::httputil::url_unescape(value, plus)
}

pub use crate::httputil::url_unescape_bytes;

/// `value` as JSON that is safe inside an HTML `<script>`: `</` is written
/// `<\/` (Tornado's `json_encode`). Feature `json`.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) if
/// `value` cannot be serialized (a map with non-string keys, say).
#[cfg(feature = "json")]
pub fn json_encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, crate::Error> {
    let json = serde_json::to_string(value).map_err(|e| {
        crate::Error::new(
            crate::ErrorKind::InvalidArgument,
            format!("cannot encode as JSON: {e}"),
        )
    })?;
    Ok(if json.contains("</") {
        json.replace("</", "<\\/")
    } else {
        json
    })
}

/// Parses JSON text into `T` (Tornado's `json_decode`; a
/// `serde_json::Value` for any JSON). Feature `json`.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) if
/// `value` is not JSON of that shape, with serde's reason.
#[cfg(feature = "json")]
pub fn json_decode<T: serde::de::DeserializeOwned>(
    value: impl AsRef<[u8]>,
) -> Result<T, crate::Error> {
    serde_json::from_slice(value.as_ref()).map_err(|e| {
        crate::Error::new(
            crate::ErrorKind::InvalidArgument,
            format!("invalid JSON: {e}"),
        )
    })
}

/// Replaces every run of whitespace and control characters (`\x00` to
/// space) with one space, and trims the ends (Tornado's `squeeze`).
pub fn squeeze(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut in_run = false;
    for c in value.chars() {
        if c <= ' ' {
            in_run = true;
            continue;
        }
        if in_run && !out.is_empty() {
            out.push(' ');
        }
        in_run = false;
        out.push(c);
    }
    // A non-ASCII space (U+00A0...) Python's strip() also drops.
    let trimmed = out.trim();
    if trimmed.len() == out.len() {
        out
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        let t = entities::ENTITIES;
        assert!(t.windows(2).all(|w| w[0].0.as_bytes() < w[1].0.as_bytes()));
        assert_eq!(t.len(), 259);
    }

    /// Python 3's `html.unescape` on the same input (run by hand):
    /// `& &x &x A A \ufffd € \ufffd \ufffd  ∉ ¬it; ' & < &#; &#x; "`.
    #[test]
    fn unescape_as_python() {
        assert_eq!(
            xhtml_unescape(
                "&amp &ampx &amp;x &#65 &#x41; &#0; &#x80; &#xD800; &#1114112; &#11; \
                 &notin; &notit; &apos; &AMP; &lt &#; &#x; &quot"
            ),
            "& &x &x A A \u{fffd} € \u{fffd} \u{fffd}  ∉ ¬it; ' & < &#; &#x; \""
        );
        assert_eq!(xhtml_unescape("&#99999999999999999999;"), "\u{fffd}");
        assert_eq!(xhtml_unescape("&#xFFFF;&#xFDD0;x"), "x");
        assert_eq!(xhtml_unescape("&é; &"), "&é; &");
        assert_eq!(
            xhtml_unescape(&format!("&{};", "a".repeat(40))),
            format!("&{};", "a".repeat(40))
        );
    }

    /// Tornado's escape_test.py `test_xhtml_escape` cases.
    #[test]
    fn xhtml_round_trips() {
        let cases = [
            ("<foo>", "&lt;foo&gt;"),
            ("<>&\"'", "&lt;&gt;&amp;&quot;&#x27;"),
            ("&amp;", "&amp;amp;"),
            ("<\u{e9}>", "&lt;\u{e9}&gt;"),
        ];
        for (raw, escaped) in cases {
            assert_eq!(xhtml_escape(raw), escaped);
            assert_eq!(xhtml_unescape(escaped), raw);
        }
        assert_eq!(xhtml_unescape("foo&#32;bar&#x20;baz"), "foo bar baz");
        assert_eq!(xhtml_unescape("&#39;&#x27;"), "''");
    }

    /// Tornado's `test_url_escape_unicode` / `test_url_unescape_unicode`.
    #[test]
    fn urls() {
        assert_eq!(url_escape("\u{e9}", true), "%C3%A9");
        assert_eq!(url_escape("a+b c/d~", true), "a%2Bb+c%2Fd~");
        assert_eq!(url_escape("a+b c/d~", false), "a%2Bb%20c/d~");
        assert_eq!(url_unescape("%C3%A9", true), "\u{e9}");
        assert_eq!(url_unescape("%C3%A9+x", false), "\u{e9}+x");
        assert_eq!(url_unescape_bytes(b"%e9+", true), b"\xe9 ");
    }

    #[test]
    fn squeeze_as_tornado() {
        assert_eq!(
            squeeze("sequences     of    whitespace   chars"),
            "sequences of whitespace chars"
        );
        assert_eq!(squeeze(" \t\x01 a\n\n b \r"), "a b");
        assert_eq!(squeeze(""), "");
    }

    #[cfg(feature = "json")]
    #[test]
    fn json() {
        assert_eq!(json_encode("</script>").unwrap(), r#""<\/script>""#);
        let v: serde_json::Value = json_decode(json_encode("\u{e9}</").unwrap()).unwrap();
        assert_eq!(v, "\u{e9}</");
        assert!(json_decode::<serde_json::Value>("{").is_err());
    }
}
