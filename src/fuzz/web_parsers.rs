//! The fuzz entry points of the web layer's parsers: cookies, ranges,
//! forms, multipart bodies and templates (the protocol's are in
//! [`fuzz`](super)).

use super::Rng;
use crate::httputil;

/// The cookie parsers, on any text: the `Cookie` header parser
/// (`httputil::parse_cookie`), the XSRF token decoder, and with
/// `signed_cookies` the signed-value decoder. None may panic; the header's
/// cookies are stripped and unique, and each that `format_set_cookie`
/// accepts comes back unchanged through a `Set-Cookie` and a parse.
pub fn cookie(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let cookies = httputil::parse_cookie(&text);
    let mut names = std::collections::HashSet::new();
    for (name, value) in &cookies {
        assert!(names.insert(name.as_str()), "{name:?} twice in {text:?}");
        assert!(!name.starts_with([' ', '\t']) && !name.ends_with([' ', '\t']));
        let options = httputil::CookieOptions {
            path: None,
            ..Default::default()
        };
        if let Ok(line) = httputil::format_set_cookie(name, value, &options) {
            assert!(httputil::check_header_value(&line).is_ok(), "{line:?}");
            let back = httputil::parse_cookie(&line);
            assert_eq!(back, [(name.clone(), value.clone())], "{line:?}");
        }
    }
    if let Some(raw) = crate::web::xsrf::decode_token(&text) {
        // A token read from `text` has at most as many bytes as it.
        assert!(raw.token.len() <= text.len());
    }
    #[cfg(feature = "signed_cookies")]
    {
        use crate::web::{decode_signed_value, get_signature_key_version, CookieSecret};
        let secret = CookieSecret::new("fuzz");
        let versions = CookieSecret::versioned([(0, "a"), (1, "b")]);
        assert_eq!(decode_signed_value(&secret, "n", &text), None);
        assert_eq!(decode_signed_value(&versions, "n", &text), None);
        let _ = get_signature_key_version(&text);
    }
}

/// The `Range` parser (`httputil::parse_request_range`) and what the
/// static file handler does with its result: arbitrary bytes as a header
/// value (lossily UTF-8), resolved against body sizes taken from the input.
/// A range must resolve inside the body, non-empty, and round-trip through
/// its `Content-Range`; parsing must agree with a reference reading of
/// Tornado's rules.
pub fn range(data: &[u8]) {
    let data = &data[..data.len().min(4096)];
    let header = String::from_utf8_lossy(data);
    let parsed = httputil::parse_request_range(&header);
    // A reference reading, written differently: unit `bytes`, one dash (or
    // none), digits around it.
    let reference = (|| {
        let (unit, value) = header.split_once('=')?;
        if unit.trim_matches([' ', '\t']) != "bytes" {
            return None;
        }
        let value = value.trim_matches([' ', '\t']);
        let mut parts = value.splitn(2, '-');
        let a = parts.next().unwrap_or("").trim_matches([' ', '\t']);
        let b = parts.next().unwrap_or("").trim_matches([' ', '\t']);
        let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return None;
        }
        Some((!a.is_empty(), !b.is_empty()))
    })();
    match (parsed, reference) {
        (None, None) => return,
        (Some(r), Some((has_start, has_end))) => {
            let shape = match r {
                httputil::ByteRange::From { end, .. } => (true, end.is_some()),
                httputil::ByteRange::Suffix(_) => (false, true),
                httputil::ByteRange::All => (false, false),
            };
            assert_eq!(shape, (has_start, has_end), "{header:?}: {r:?}");
        }
        (p, r) => panic!("{header:?}: parsed {p:?}, reference {r:?}"),
    }
    let range = parsed.expect("checked");
    let mut rng = Rng::new(data);
    let sizes = [
        0,
        1,
        2,
        26,
        1 << 20,
        u64::MAX,
        rng.next() % 4096,
        rng.next(),
    ];
    for size in sizes {
        let Some((start, end)) = range.resolve(size) else {
            continue;
        };
        assert!(
            start <= end && end <= size,
            "{header:?} on {size}: {start}..{end}"
        );
        if let httputil::ByteRange::All = range {
            assert_eq!((start, end), (0, size));
            continue;
        }
        assert!(start < end, "{header:?} on {size}: empty span");
        let text = httputil::content_range(start, end, size);
        let back = text
            .strip_prefix("bytes ")
            .and_then(|t| t.split_once('/'))
            .and_then(|(span, total)| {
                let (a, b) = span.split_once('-')?;
                Some((
                    a.parse::<u64>().ok()?,
                    b.parse::<u64>().ok()?,
                    total.parse::<u64>().ok()?,
                ))
            });
        assert_eq!(back, Some((start, end - 1, size)), "{text}");
    }
}

/// The urlencoded form parser, and the other text parsers of forms and
/// escapes: never a panic; a pair past the limits is refused only when a
/// limit is really passed, and what is accepted keeps within them.
pub fn form(data: &[u8]) {
    use crate::httputil::{Arguments, FormLimit, FormLimits};
    let limits = FormLimits {
        max_fields: 16,
        max_field_size: 64,
        ..FormLimits::default()
    };
    let mut args = Arguments::new();
    match httputil::parse_form_urlencoded(data, &mut args, &limits) {
        Ok(()) => {
            let values: usize = args.values().map(Vec::len).sum();
            assert!(values <= limits.max_fields, "{values} values accepted");
            // Decoding never makes a value longer.
            assert!(args
                .values()
                .flatten()
                .all(|v| v.len() <= limits.max_field_size));
        }
        Err(err) => {
            let pairs = 1 + data.iter().filter(|&&b| b == b'&').count();
            let longest = data
                .split(|&b| b == b'&')
                .map(|p| {
                    p.iter()
                        .position(|&b| b == b'=')
                        .map_or(0, |i| p.len() - i - 1)
                })
                .max()
                .unwrap_or(0);
            match FormLimit::from_error(&err) {
                Some(FormLimit::Fields) => assert!(pairs > limits.max_fields),
                Some(FormLimit::FieldSize) => assert!(longest > limits.max_field_size),
                other => panic!("urlencoded error {err} ({other:?})"),
            }
            assert!(args.is_empty(), "an error added arguments");
        }
    }
    let text = String::from_utf8_lossy(data);
    let (_, params) = httputil::parse_header(&text);
    assert!(params.keys().all(|k| *k == k.to_ascii_lowercase()));
    let _ = httputil::multipart_boundary(&text);
    let unescaped = crate::escape::xhtml_unescape(&text);
    assert_eq!(
        crate::escape::xhtml_unescape(&crate::escape::xhtml_escape(&text)),
        text
    );
    let _ = crate::escape::squeeze(&unescaped);
    let plus = data.first().is_some_and(|b| b & 1 == 1);
    let url = crate::escape::url_escape(&text, plus);
    assert_eq!(crate::escape::url_unescape(&url, plus), text);
}

/// The multipart parser: the first 8 bytes seed how the rest is split; the
/// rest is the body under boundary `ab` (the seed's first byte picks a
/// quoted one, or a longer one). Whole or in pieces it must agree (parts,
/// values, success), events must come in order, and what it holds between
/// pieces stays within a header block and a delimiter.
pub fn multipart(data: &[u8]) {
    use crate::httputil::{FormLimits, MultipartEvent, MultipartParser};
    let (seed, body) = data.split_at(data.len().min(8));
    let boundary: &[u8] = match seed.first().map(|b| b % 3) {
        Some(1) => b"\"ab\"",
        Some(2) => b"--ab-\r",
        _ => b"ab",
    };
    let limits = FormLimits {
        max_parts: 8,
        max_part_header_size: 256,
        max_field_size: 512,
        ..FormLimits::default()
    };
    type Parts = Vec<(String, Option<String>, Vec<u8>)>;
    let run = |pieces: &mut dyn FnMut() -> usize| -> Result<Parts, crate::Error> {
        let mut parser = MultipartParser::new(boundary, limits.clone())?;
        let mut parts: Parts = Vec::new();
        let mut open = false;
        let mut at = 0;
        while at < body.len() {
            let end = (at + pieces()).min(body.len());
            parser.feed(&body[at..end], |e| {
                match e {
                    MultipartEvent::PartStart(p) => {
                        assert!(!open, "a part inside a part");
                        assert!(!p.name.is_empty());
                        open = true;
                        parts.push((p.name, p.filename, Vec::new()));
                    }
                    MultipartEvent::Data(d) => {
                        assert!(open && !d.is_empty(), "stray data");
                        let value = &mut parts.last_mut().expect("a part").2;
                        value.extend_from_slice(d);
                    }
                    MultipartEvent::PartEnd => {
                        assert!(open, "an end without a start");
                        open = false;
                    }
                }
                Ok(())
            })?;
            assert!(
                parser.buffered() <= 256 + 4 + 8,
                "held {}",
                parser.buffered()
            );
            assert!(parser.parts() <= 8);
            at = end;
        }
        parser.finish()?;
        assert!(!open);
        Ok(parts)
    };
    let whole = run(&mut || usize::MAX);
    let mut rng = Rng::new(seed);
    let split = run(&mut || 1 + rng.below(12));
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the split disagrees"),
        (Err(_), Err(_)) => {}
        _ => panic!("whole {whole:?} but split {split:?}"),
    }
    if let Ok(parts) = whole {
        for (_, filename, value) in parts {
            if filename.is_none() {
                assert!(value.len() <= 512);
            }
        }
    }
}

/// The fuel the `template` target renders with: small, so every input
/// runs in well under a second.
#[cfg(feature = "template")]
const TEMPLATE_FUEL: u64 = 20_000;

/// Templates (feature `template`): the first byte picks autoescaping (bit
/// 0), the second is the length of the context that follows (decoded by
/// `fuzz_value` into the names `a` to `d`); the rest, split at NUL
/// bytes, is up to four templates (text, lossy UTF-8), the first rendered
/// with the others loadable as `t1.html`... Through an application's engine (Tornado's namespace,
/// escaping) with `TEMPLATE_FUEL`: the render is `Ok` or a
/// [`Template`](crate::ErrorKind::Template) error, never a panic or a
/// hang, and its output stays within what the fuel pays for.
#[cfg(feature = "template")]
pub fn template(data: &[u8]) {
    // libFuzzer's panic hook aborts at any panic, even one caught: the
    // engine's own (minijinja 3.1.0 has some), which the wrapper turns
    // into template errors, must not count. The hook is back before a
    // panic that got past the wrapper goes on, to abort there.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let rendered = std::panic::catch_unwind(|| template_render(data));
    std::panic::set_hook(hook);
    let rendered = rendered.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    match rendered {
        // A byte of output costs a 64th of a unit of fuel.
        Ok(out) => assert!(
            out.len() as u64 <= TEMPLATE_FUEL * 64,
            "{} bytes of output",
            out.len()
        ),
        Err(err) => assert_eq!(err.kind(), crate::ErrorKind::Template, "{err}"),
    }
}

/// The render of [`template`], for tests that look at what a seed gives.
#[cfg(feature = "template")]
pub fn template_render(data: &[u8]) -> Result<String, crate::Error> {
    use minijinja::Value;
    let Some((&flags, rest)) = data.split_first() else {
        return Ok(String::new());
    };
    let rest = &rest[..rest.len().min(16 * 1024)];
    // A byte of length, the context, then the templates split at NUL.
    let (&len, rest) = rest.split_first().unwrap_or((&0, &[]));
    let (mut context, rest) = rest.split_at(usize::from(len).min(rest.len()));
    let sources: Vec<String> = rest
        .split(|&b| b == 0)
        .take(4)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let names = ["a", "b", "c", "d"];
    let context = Value::from_pairs(
        names
            .iter()
            .map(|&n| (n, fuzz_value(&mut context, 0)))
            .collect::<Vec<_>>(),
    );
    let settings = crate::web::Settings {
        autoescape: flags & 1 == 1,
        template_fuel: Some(TEMPLATE_FUEL),
        ..Default::default()
    };
    crate::web::render_for_fuzz(&settings, sources, context)
}

/// A template value of any shape from the front of `bytes` (consumed):
/// none, a bool, an integer, a float, a string (plain or marked safe), a
/// list or a map (up to 7 entries, 4 levels deep).
#[cfg(feature = "template")]
fn fuzz_value(bytes: &mut &[u8], depth: u32) -> minijinja::Value {
    use minijinja::Value;
    let mut take = |n: usize| -> &[u8] {
        let (head, tail) = bytes.split_at(n.min(bytes.len()));
        *bytes = tail;
        head
    };
    let Some(&tag) = take(1).first() else {
        return Value::from(());
    };
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        w
    };
    match tag % 8 {
        0 => Value::from(()),
        1 => Value::from(tag & 0x80 != 0),
        2 => Value::from(i64::from_le_bytes(word(take(8)))),
        3 => Value::from(f64::from_le_bytes(word(take(8)))),
        4 | 5 => {
            let len = usize::from(take(1).first().copied().unwrap_or(0));
            let text = String::from_utf8_lossy(take(len)).into_owned();
            if tag % 8 == 5 {
                Value::from_safe_string(text)
            } else {
                Value::from(text)
            }
        }
        6 if depth < 4 => {
            let n = take(1).first().map_or(0, |b| b % 8);
            Value::from(
                (0..n)
                    .map(|_| fuzz_value(bytes, depth + 1))
                    .collect::<Vec<_>>(),
            )
        }
        7 if depth < 4 => {
            let n = take(1).first().map_or(0, |b| b % 8);
            let mut map = std::collections::BTreeMap::new();
            for _ in 0..n {
                let key = fuzz_value(bytes, depth + 1).to_string();
                map.insert(key, fuzz_value(bytes, depth + 1));
            }
            Value::from(map)
        }
        _ => Value::from(i64::from(tag)),
    }
}
