//! `Accept-Encoding` (RFC 9110 12.5.3): which content codings a client
//! takes, and how much it wants each.
//!
//! ```
//! use squall::httputil::{accept_encoding_weight, accepts_gzip};
//!
//! assert!(accepts_gzip("gzip, deflate, br"));
//! assert!(!accepts_gzip("gzip;q=0, *"));
//! assert!(accepts_gzip("identity;q=0.5, *;q=0.1"));
//! assert_eq!(accept_encoding_weight("br;q=0.8, gzip;q=0.25", "gzip"), 250);
//! ```

/// The weight, in thousandths (`q=0.5` is 500; no `q` is 1000), that the
/// `Accept-Encoding` value `header` gives to the content coding `coding`:
/// its own entry's (the highest, should it repeat; names compare
/// case-insensitively), else that of `*`, else 0, not acceptable.
///
/// Malformed entries (a bad `q`, such as `q=2` or `q=0.5x`) are ignored
/// rather than guessed at; the parse never fails, allocates nothing, and
/// takes time linear in `header`.
pub fn accept_encoding_weight(header: &str, coding: &str) -> u16 {
    weight_where(header, |name| name.eq_ignore_ascii_case(coding))
}

/// Whether the `Accept-Encoding` value `header` accepts gzip: a weight
/// above 0 for `gzip` (or its old name `x-gzip`, the same coding, RFC 9110
/// 8.4.1.3), or for `*` when neither is named. `gzip;q=0` refuses it.
///
/// A request without the header is not given gzip (as Tornado does, and
/// as most clients that do not send it expect); that is for the caller to
/// decide.
pub fn accepts_gzip(header: &str) -> bool {
    weight_where(header, |name| {
        name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip")
    }) > 0
}

/// The weight of the coding `is_it` names: the highest of its own entries,
/// else that of `*`, else 0.
fn weight_where(header: &str, is_it: impl Fn(&str) -> bool) -> u16 {
    let mut own: Option<u16> = None;
    let mut any: Option<u16> = None;
    for element in header.split(',') {
        let mut parts = element.split(';');
        let name = parts.next().unwrap_or("").trim_matches(OWS);
        if name.is_empty() {
            continue; // `#rule` allows empty list elements
        }
        let Some(q) = weight_of(parts) else {
            continue;
        };
        let slot = if is_it(name) {
            &mut own
        } else if name == "*" {
            &mut any
        } else {
            continue;
        };
        *slot = Some(slot.map_or(q, |old| old.max(q)));
    }
    own.or(any).unwrap_or(0)
}

/// Optional whitespace (RFC 9110 5.6.3).
const OWS: &[char] = &[' ', '\t'];

/// The weight the parameters of one element give: 1000 without `q`;
/// `None` if a `q` is malformed.
fn weight_of<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut weight = 1000;
    for param in params {
        let param = param.trim_matches(OWS);
        let Some((name, value)) = param.split_once('=') else {
            if param.is_empty() {
                continue;
            }
            return None; // a parameter without a value
        };
        if name.trim_matches(OWS).eq_ignore_ascii_case("q") {
            weight = parse_qvalue(value.trim_matches(OWS))?;
        }
    }
    Some(weight)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in
/// thousandths.
fn parse_qvalue(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    let (&first, rest) = b.split_first()?;
    let fraction = match rest {
        [] => &[][..],
        [b'.', digits @ ..] if digits.len() <= 3 => digits,
        _ => return None,
    };
    if !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + fraction.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match first {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qvalues() {
        for (s, q) in [
            ("0", Some(0)),
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.001", Some(1)),
            ("0.", Some(0)),
            ("1.001", None),
            ("0.0001", None),
            ("2", None),
            ("", None),
            (".5", None),
            ("0.5x", None),
            ("-0", None),
            ("0,5", None),
            ("0.é", None),
        ] {
            assert_eq!(parse_qvalue(s), q, "{s:?}");
        }
    }

    #[test]
    fn weights() {
        for (header, coding, w) in [
            ("gzip", "gzip", 1000),
            ("GZIP", "gzip", 1000),
            ("deflate, gzip;q=0.5", "gzip", 500),
            ("deflate , gzip ; q = 0.5 ", "gzip", 500),
            ("gzip;Q=0.25", "gzip", 250),
            ("gzip;q=0", "gzip", 0),
            ("gzip;q=0, *", "gzip", 0),
            ("*", "gzip", 1000),
            ("*;q=0", "gzip", 0),
            ("*;q=0.1, gzip;q=0.9", "gzip", 900),
            ("gzip;q=0.1, gzip;q=0.7", "gzip", 700),
            ("br", "gzip", 0),
            ("", "gzip", 0),
            (",,, ,gzip,", "gzip", 1000),
            ("gzip;q=2", "gzip", 0),
            ("gzip;q=2, *;q=0.3", "gzip", 300),
            ("gzip;level", "gzip", 0),
            ("gzip;foo=bar;q=0.3", "gzip", 300),
            ("gzipx", "gzip", 0),
            ("xgzip, x-gzip", "gzip", 0),
        ] {
            assert_eq!(accept_encoding_weight(header, coding), w, "{header:?}");
        }
    }

    #[test]
    fn gzip_accepted() {
        for (header, yes) in [
            ("gzip, deflate", true),
            ("deflate, gzip, br, zstd", true),
            ("x-gzip", true),
            ("gzip;q=0", false),
            ("gzip;q=0, x-gzip", true),
            ("gzip;q=0, *", false),
            ("x-gzip;q=0, *", false),
            ("*", true),
            ("identity", false),
            ("", false),
            ("gzip;q=nonsense", false),
        ] {
            assert_eq!(accepts_gzip(header), yes, "{header:?}");
        }
    }
}
