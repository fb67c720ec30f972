//! Property tests of the form parsers: any split of a multipart body gives
//! the same parts as the whole body (the model: the fields the body was
//! built from); arbitrary bytes never panic either parser, and the events
//! always come in order; urlencoded and HTML escapes round-trip.
//!
//! Values are drawn from an alphabet rich in the boundary's own bytes (CR,
//! LF, `-`, the boundary's letters), so near-boundaries inside values and
//! boundaries split across pieces are common.

use proptest::prelude::*;
use squall::escape::{url_escape, xhtml_escape, xhtml_unescape};
use squall::httputil::{
    parse_body_arguments, parse_form_urlencoded, Arguments, Files, FormLimits, MultipartEvent,
    MultipartParser,
};

const BOUNDARY: &str = "ab-ab";

/// One form field: name, value, and a filename if it is a file.
#[derive(Clone, Debug)]
struct Field {
    name: String,
    value: Vec<u8>,
    filename: Option<String>,
}

fn field() -> impl Strategy<Value = Field> {
    (
        "[a-z]{1,6}",
        prop::collection::vec(prop::sample::select(b"ab-\r\nx\"".to_vec()), 0..60),
        prop::option::of("[a-z .;]{1,8}"),
    )
        .prop_map(|(name, value, filename)| Field {
            name,
            value,
            filename,
        })
}

fn body_of(fields: &[Field]) -> Vec<u8> {
    let mut body = Vec::new();
    for f in fields {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let file = match &f.filename {
            Some(name) => format!("; filename=\"{name}\""),
            None => String::new(),
        };
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{}\"{file}\r\n\r\n",
                f.name
            )
            .as_bytes(),
        );
        body.extend_from_slice(&f.value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Each part as (name, filename, value), events checked for order.
type Parsed = Vec<(String, Option<String>, Vec<u8>)>;

fn feed_in_pieces(body: &[u8], cuts: &[usize]) -> Result<Parsed, squall::Error> {
    let mut parser = MultipartParser::new(BOUNDARY.as_bytes(), FormLimits::default())?;
    let mut parts: Parsed = Vec::new();
    let mut open = false;
    let mut on = |e: MultipartEvent<'_>| {
        match e {
            MultipartEvent::PartStart(p) => {
                assert!(!open, "a part started inside another");
                open = true;
                parts.push((p.name, p.filename, Vec::new()));
            }
            MultipartEvent::Data(d) => {
                assert!(open && !d.is_empty(), "data outside a part, or empty");
                parts.last_mut().unwrap().2.extend_from_slice(d);
            }
            MultipartEvent::PartEnd => {
                assert!(open, "an end without a start");
                open = false;
            }
        }
        Ok(())
    };
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts.into_iter().chain([body.len()]) {
        parser.feed(&body[at..cut], &mut on)?;
        at = cut;
    }
    parser.finish()?;
    assert!(!open, "finished inside a part");
    Ok(parts)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any split gives the fields the body was made from.
    #[test]
    fn any_split_gives_the_same_parts(
        fields in prop::collection::vec(field(), 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let body = body_of(&fields);
        let parsed = feed_in_pieces(&body, &cuts).unwrap();
        let expected: Parsed = fields
            .iter()
            .map(|f| (f.name.clone(), f.filename.clone(), f.value.clone()))
            .collect();
        prop_assert_eq!(&parsed, &expected);
        // Byte by byte too.
        let every: Vec<usize> = (0..body.len()).collect();
        prop_assert_eq!(feed_in_pieces(&body, &every).unwrap(), expected);
    }

    /// A body cut short, or with bytes flipped, never panics, and any split
    /// of it agrees with the whole on success or failure.
    #[test]
    fn damaged_bodies_never_panic(
        fields in prop::collection::vec(field(), 1..4),
        keep in any::<usize>(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut body = body_of(&fields);
        for (at, b) in flips {
            let at = at % body.len();
            body[at] = b;
        }
        body.truncate(keep % (body.len() + 1));
        let whole = feed_in_pieces(&body, &[]);
        let split = feed_in_pieces(&body, &cuts);
        prop_assert_eq!(whole.is_ok(), split.is_ok());
        if let (Ok(a), Ok(b)) = (whole, split) {
            prop_assert_eq!(a, b);
        }
    }

    /// Arbitrary bytes under any content type: an error or a result, never
    /// a panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..300),
        multipart in any::<bool>(),
    ) {
        let ct = if multipart {
            "multipart/form-data; boundary=ab"
        } else {
            "application/x-www-form-urlencoded"
        };
        let (mut args, mut files) = (Arguments::new(), Files::new());
        let _ = parse_body_arguments(ct, &body, &mut args, &mut files, None, &FormLimits::default());
        let mut with_head = b"--ab\r\n".to_vec();
        with_head.extend_from_slice(&body);
        let _ = parse_body_arguments(ct, &with_head, &mut args, &mut files, None, &FormLimits::default());
    }

    /// Escaped pairs parse back to what was escaped.
    #[test]
    fn urlencoded_round_trips(
        pairs in prop::collection::vec(("[a-zé]{1,5}", "\\PC{0,8}"), 0..8),
    ) {
        let body: Vec<String> = pairs
            .iter()
            .map(|(n, v)| format!("{}={}", url_escape(n, true), url_escape(v, true)))
            .collect();
        let mut args = Arguments::new();
        parse_form_urlencoded(body.join("&").as_bytes(), &mut args, &FormLimits::default()).unwrap();
        let mut expected = Arguments::new();
        for (n, v) in &pairs {
            expected.entry(n.clone()).or_default().push(v.clone().into_bytes());
        }
        prop_assert_eq!(args, expected);
    }

    /// `xhtml_unescape(xhtml_escape(s)) == s`, and escaped text holds none
    /// of the five characters raw.
    #[test]
    fn xhtml_round_trips(s in "\\PC{0,40}") {
        let escaped = xhtml_escape(&s);
        prop_assert!(!escaped.contains(['<', '>', '"', '\'']));
        prop_assert_eq!(xhtml_unescape(&escaped), s);
    }
}
