//! Query strings and URL escapes.

use std::collections::HashMap;

// ----- query strings ---------------------------------------------------------

/// Decodes `%XX` escapes (and `+` as a space when `plus`); invalid escapes
/// are kept as they are, and invalid UTF-8 is replaced (U+FFFD). Tornado's
/// `url_unescape`.
pub fn url_unescape(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || (plus && b == b'+')) {
        return s.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

pub(super) fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything but unreserved characters (`A-Z a-z 0-9 - _ . ~`);
/// with `plus`, a space becomes `+`. Tornado's `url_escape`.
pub fn url_escape(s: &str, plus: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' if plus => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

/// Parses a query string (`a=1&b=2&a=3`) into name -> values, in order;
/// `+` is a space, escapes are decoded, blank values kept. Tornado's
/// `parse_qs_bytes(qs, keep_blank_values=True)`.
pub fn parse_qs_bytes(qs: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in parse_qsl(qs) {
        out.entry(name).or_default().push(value);
    }
    out
}

/// Parses a query string into (name, value) pairs in order; `parse_qs_bytes`
/// without the grouping.
pub fn parse_qsl(qs: &str) -> Vec<(String, String)> {
    qs.split(['&', ';'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (n, v) = part.split_once('=').unwrap_or((part, ""));
            (url_unescape(n, true), url_unescape(v, true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape() {
        assert_eq!(url_unescape("a%20b+c", true), "a b c");
        assert_eq!(url_unescape("a%20b+c", false), "a b+c");
        assert_eq!(url_unescape("100%", true), "100%");
        assert_eq!(url_unescape("%zz%4", true), "%zz%4");
        assert_eq!(url_unescape("%ff", true), "\u{fffd}");
        assert_eq!(url_escape("a b/é", true), "a+b%2F%C3%A9");
        assert_eq!(
            url_unescape(&url_escape("x y&z=é", false), false),
            "x y&z=é"
        );
    }

    #[test]
    fn qs() {
        let q = parse_qs_bytes("a=1&b=&c&a=%32;d=x+y");
        assert_eq!(q["a"], ["1", "2"]);
        assert_eq!(q["b"], [""]);
        assert_eq!(q["c"], [""]);
        assert_eq!(q["d"], ["x y"]);
    }
}
