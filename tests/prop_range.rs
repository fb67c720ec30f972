//! Property tests of the `Range` parser (`httputil::parse_request_range`,
//! Tornado's `_parse_request_range`) and its resolution against a body
//! size, checked against a model of Tornado's `StaticFileHandler.get`
//! written with signed integers, as Tornado computes it.

use proptest::prelude::*;
use squall::httputil::{content_range, parse_request_range, ByteRange};

/// Tornado's arithmetic on `(start, end)` (Python's `None` as `Option`), in
/// i128 so nothing overflows: `None` for 416, else the half-open span.
fn tornado(start: Option<i128>, end: Option<i128>, size: i128) -> Option<(i128, i128)> {
    // `_parse_request_range`'s tail.
    let (mut start, mut end) = match (start, end) {
        (None, Some(e)) if e != 0 => (Some(-e), None),
        (s, Some(e)) if s.is_some() => (s, Some(e + 1)),
        other => other,
    };
    // `get`.
    if let Some(s) = start {
        if s < 0 {
            start = Some((s + size).max(0));
        }
    }
    if start.is_some_and(|s| s >= size || end.is_some_and(|e| s >= e)) || end == Some(0) {
        return None;
    }
    if end.is_some_and(|e| e > size) {
        end = Some(size);
    }
    Some((start.unwrap_or(0), end.unwrap_or(size)))
}

fn sizes() -> impl Strategy<Value = u64> {
    prop_oneof![0..64u64, any::<u64>(), Just(u64::MAX)]
}

fn positions() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        Just(None),
        (0..80u64).prop_map(Some),
        any::<u64>().prop_map(Some)
    ]
}

/// Optional whitespace, as a client may put around the parts.
fn ows() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("\t"), Just("  ")]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every well-formed single range parses, and resolves as Tornado would.
    #[test]
    fn well_formed_ranges_resolve_as_tornado(
        start in positions(), end in positions(), size in sizes(),
        w1 in ows(), w2 in ows(), w3 in ows(),
    ) {
        let text = |p: Option<u64>| p.map(|n| n.to_string()).unwrap_or_default();
        let header = format!("{w1}bytes{w2}={w3}{}{w1}-{w2}{}{w3}", text(start), text(end));
        let range = parse_request_range(&header);
        prop_assert!(range.is_some(), "{header:?}");
        let got = range.unwrap().resolve(size);
        let want = tornado(start.map(i128::from), end.map(i128::from), i128::from(size));
        prop_assert_eq!(got.map(|(s, e)| (i128::from(s), i128::from(e))), want, "{:?} on {}", header, size);
        if let Some((s, e)) = got {
            prop_assert!(s <= e && e <= size);
            if s < e {
                let text = content_range(s, e, size);
                prop_assert_eq!(text, format!("bytes {}-{}/{}", s, e - 1, size));
            }
        }
    }

    /// Anything else either fails to parse or resolves inside the body;
    /// never a panic.
    #[test]
    fn arbitrary_headers_never_escape_the_body(header in "\\PC{0,40}", size in sizes()) {
        if let Some(range) = parse_request_range(&header) {
            if let Some((s, e)) = range.resolve(size) {
                prop_assert!(s <= e && e <= size, "{:?}", header);
                prop_assert!(s < e || matches!(range, ByteRange::All), "{:?}", header);
            }
        }
    }

    /// Near-misses built from the header's own alphabet: several ranges,
    /// signs, other units, stray characters are refused (the whole body).
    #[test]
    fn multiple_ranges_and_junk_are_refused(
        a in 0..100u64, b in 0..100u64, c in 0..100u64,
        junk in prop::sample::select(vec!["+", "_", "x", ",", "0x", ";", "=", "-"]),
    ) {
        let several = format!("bytes={a}-{b},{c}-");
        prop_assert_eq!(parse_request_range(&several), None);
        let signed = format!("bytes={junk}{a}-{b}");
        prop_assert_eq!(parse_request_range(&signed), None, "{}", signed);
        let unit = format!("byte{junk}={a}-{b}");
        prop_assert_eq!(parse_request_range(&unit), None);
    }
}
