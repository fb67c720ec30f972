//! Tornado's multipart parser tests (httputil_test.py's
//! `MultipartFormDataTest`), ported, and the incremental parser's bounded
//! memory; through the public `squall::httputil` API. The same parser
//! through a server: tests/web_arguments.rs.

use squall::httputil::{
    parse_body_arguments, parse_multipart_form_data, Arguments, Files, FormLimit, FormLimits,
    MultipartEvent, MultipartParser,
};
use squall::{Error, ErrorKind};

// ----- the parser, as Tornado's httputil_test.py tests it --------------------

/// Tornado's test bodies are written with `\n`; on the wire they are CRLF.
fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

fn parse(boundary: &str, body: &[u8]) -> Result<(Arguments, Files), Error> {
    let (mut args, mut files) = (Arguments::new(), Files::new());
    parse_multipart_form_data(
        boundary.as_bytes(),
        body,
        &mut args,
        &mut files,
        &FormLimits::default(),
    )?;
    Ok((args, files))
}

fn one_file(boundary: &str, body: &[u8]) -> (String, Vec<u8>) {
    let (_, files) = parse(boundary, body).unwrap();
    let file = &files["files"][0];
    (file.filename.clone(), file.body.clone())
}

#[test]
fn file_upload() {
    let body = crlf(
        "--1234\nContent-Disposition: form-data; name=\"files\"; filename=\"ab.txt\"\n\nFoo\n--1234--",
    );
    assert_eq!(one_file("1234", &body), ("ab.txt".into(), b"Foo".to_vec()));
    let (_, files) = parse("1234", &body).unwrap();
    assert_eq!(files["files"][0].content_type, "application/unknown");
}

#[test]
fn unquoted_names() {
    let body = crlf(
        "--1234\nContent-Disposition: form-data; name=files; filename=ab.txt\n\nFoo\n--1234--",
    );
    assert_eq!(one_file("1234", &body), ("ab.txt".into(), b"Foo".to_vec()));
}

#[test]
fn special_filenames() {
    let names = [
        "a;b.txt",
        "a\"b.txt",
        "a\";b.txt",
        "a;\"b.txt",
        "a\";\";.txt",
        "a\\\"b.txt",
        "a\\b.txt",
        "a b.txt",
        "a\tb.txt",
    ];
    for name in names {
        let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
        let body = crlf(&format!(
            "--1234\nContent-Disposition: form-data; name=\"files\"; filename=\"{quoted}\"\n\nFoo\n--1234--"
        ));
        assert_eq!(
            one_file("1234", &body),
            (name.into(), b"Foo".to_vec()),
            "{name:?}"
        );
    }
}

#[test]
fn control_characters_in_a_part_header_are_refused() {
    for name in ["a\rb.txt", "a\0b.txt", "a\x08b.txt"] {
        let body = crlf(&format!(
            "--1234\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\n\nFoo\n--1234--"
        ));
        let err = parse("1234", &body).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::HttpProtocol);
        assert!(err.message().contains("Invalid header value"), "{err}");
    }
}

#[test]
fn rfc_2231_filename_wins_over_the_plain_one() {
    let body = crlf(
        "--1234\nContent-Disposition: form-data; name=\"files\"; filename=\"ab.txt\"; filename*=UTF-8''%C3%A1b.txt\n\nFoo\n--1234--",
    );
    assert_eq!(one_file("1234", &body), ("áb.txt".into(), b"Foo".to_vec()));
}

#[test]
fn raw_utf8_filename() {
    let body = crlf(
        "--1234\nContent-Disposition: form-data; name=\"files\"; filename=\"测试.txt\"\n\nFoo\n--1234--",
    );
    assert_eq!(
        one_file("1234", &body),
        ("测试.txt".into(), b"Foo".to_vec())
    );
}

#[test]
fn quoted_boundary() {
    let body = crlf(
        "--1234\nContent-Disposition: form-data; name=\"files\"; filename=\"ab.txt\"\n\nFoo\n--1234--",
    );
    assert_eq!(
        one_file("\"1234\"", &body),
        ("ab.txt".into(), b"Foo".to_vec())
    );
    // And through the content type.
    let (mut args, mut files) = (Arguments::new(), Files::new());
    parse_body_arguments(
        "multipart/form-data; boundary=\"1234\"",
        &body,
        &mut args,
        &mut files,
        None,
        &FormLimits::default(),
    )
    .unwrap();
    assert_eq!(files["files"][0].body, b"Foo");
}

#[test]
fn malformed_bodies_are_errors_and_add_nothing() {
    let cases: [(&str, &str); 8] = [
        // Missing headers (Tornado's test_missing_headers).
        ("missing headers", "--1234\n\nFoo\n--1234--"),
        // Tornado's test_invalid_content_disposition.
        (
            "not form-data",
            "--1234\nContent-Disposition: invalid; name=\"files\"; filename=\"ab.txt\"\n\nFoo\n--1234--",
        ),
        // test_line_does_not_end_with_correct_line_break: unterminated.
        (
            "no CRLF before the boundary",
            "--1234\nContent-Disposition: form-data; name=\"files\"; filename=\"ab.txt\"\n\nFoo--1234--",
        ),
        // test_content_disposition_header_without_name_parameter.
        (
            "no name",
            "--1234\nContent-Disposition: form-data; filename=\"ab.txt\"\n\nFoo\n--1234--",
        ),
        ("no Content-Disposition", "--1234\nContent-Type: text/plain\n\nFoo\n--1234--"),
        (
            "unterminated part",
            "--1234\nContent-Disposition: form-data; name=\"a\"\n\nFoo and then nothing",
        ),
        (
            "boundary in a header",
            "--1234\nContent-Disposition: form-data; name=\"a\"\n--1234\nContent-Disposition: form-data; name=\"b\"\n\nx\n--1234--",
        ),
        ("no boundary at all", "just some text\n"),
    ];
    for (what, body) in cases {
        let (mut args, mut files) = (Arguments::new(), Files::new());
        let err = parse_multipart_form_data(
            b"1234",
            &crlf(body),
            &mut args,
            &mut files,
            &FormLimits::default(),
        )
        .expect_err(what);
        assert_eq!(err.kind(), ErrorKind::HttpProtocol, "{what}: {err}");
        assert!(args.is_empty() && files.is_empty(), "{what}");
    }
    // A good part before the bad one adds nothing either.
    let body = crlf(
        "--1234\nContent-Disposition: form-data; name=\"a\"\n\n1\n--1234\nX: y\n\n2\n--1234--",
    );
    let (mut args, mut files) = (Arguments::new(), Files::new());
    assert!(parse_multipart_form_data(
        b"1234",
        &body,
        &mut args,
        &mut files,
        &FormLimits::default()
    )
    .is_err());
    assert!(args.is_empty());
}

#[test]
fn missing_boundary_in_the_content_type() {
    let (mut args, mut files) = (Arguments::new(), Files::new());
    for ct in [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-dataxyz; boundary=1234",
    ] {
        let err = parse_body_arguments(
            ct,
            b"--1234--",
            &mut args,
            &mut files,
            None,
            &FormLimits::default(),
        )
        .expect_err(ct);
        assert_eq!(err.kind(), ErrorKind::HttpProtocol);
    }
}

#[test]
fn data_after_the_final_boundary_and_a_preamble_are_ignored() {
    let body = crlf(
        "preamble\n--1234\nContent-Disposition: form-data; name=\"files\"; filename=\"ab.txt\"\n\nFoo\n--1234--\nepilogue --1234\n",
    );
    assert_eq!(one_file("1234", &body), ("ab.txt".into(), b"Foo".to_vec()));
}

#[test]
fn crlf_handling_inside_values() {
    // A value may hold CRLFs, dashes, even `--1234` not at a line start;
    // LF-only header lines are read too (RFC 9112's leniency, as Tornado).
    let body =
        b"--1234\r\nContent-Disposition: form-data; name=\"a\"\nContent-Type: text/plain\r\n\r\n\
        \r\nline\r\n--123 x--1234 \r\n-\r\n\r\n--1234\r\n\
        Content-Disposition: form-data; name=\"empty\"\r\n\r\n\r\n--1234  \t\r\n\
        Content-Disposition: form-data; name=\"a\"\r\n\r\nsecond\r\n--1234--";
    let (args, files) = parse("1234", body).unwrap();
    assert!(files.is_empty());
    assert_eq!(
        args["a"],
        [
            b"\r\nline\r\n--123 x--1234 \r\n-\r\n".to_vec(),
            b"second".to_vec()
        ]
    );
    assert_eq!(args["empty"], [Vec::<u8>::new()]);
}

#[test]
fn disposition_params_parse_in_linear_time() {
    // Tornado's test_disposition_param_linear_performance: 10x the
    // semicolons (inside a quoted value) may not cost 20x the time.
    let time = |n: usize| {
        let body = [
            b"--1234\r\nContent-Disposition: form-data; x=\"".to_vec(),
            vec![b';'; n],
            b"\"; name=\"files\"; filename=\"a.txt\"\r\n\r\nFoo\r\n--1234--\r\n".to_vec(),
        ]
        .concat();
        let start = std::time::Instant::now();
        let limits = FormLimits {
            max_part_header_size: 1 << 20,
            ..FormLimits::default()
        };
        let (mut a, mut f) = (Arguments::new(), Files::new());
        parse_multipart_form_data(b"1234", &body, &mut a, &mut f, &limits).unwrap();
        assert_eq!(f["files"][0].filename, "a.txt");
        start.elapsed()
    };
    // The best of three: one slow run (a page fault, a busy core) is noise.
    // Tornado's sizes: 10,000 is about the default part header limit.
    let best = |n: usize| {
        (0..3)
            .map(|_| time(n).as_secs_f64())
            .fold(f64::MAX, f64::min)
    };
    let small = best(1_000);
    let large = best(10_000);
    assert!(large / small < 20.0, "{small} vs {large}");
}

#[test]
fn multipart_limits() {
    let body = crlf(
        "--1234\nContent-Disposition: form-data; name=\"files\"; filename=\"ab.txt\"\n\n\n--1234--",
    );
    let check = |limits: FormLimits, limit: Option<FormLimit>| {
        let (mut a, mut f) = (Arguments::new(), Files::new());
        let result = parse_multipart_form_data(b"1234", &body, &mut a, &mut f, &limits);
        match limit {
            None => assert!(result.is_ok()),
            Some(limit) => assert_eq!(FormLimit::from_error(&result.unwrap_err()), Some(limit)),
        }
    };
    check(FormLimits::default(), None);
    let no_parts = FormLimits {
        max_parts: 0,
        ..FormLimits::default()
    };
    check(no_parts, Some(FormLimit::Parts));
    let small_headers = FormLimits {
        max_part_header_size: 10,
        ..FormLimits::default()
    };
    check(small_headers, Some(FormLimit::PartHeaderSize));
    let off = FormLimits {
        multipart: false,
        ..FormLimits::default()
    };
    let (mut a, mut f) = (Arguments::new(), Files::new());
    let err = parse_multipart_form_data(b"1234", &body, &mut a, &mut f, &off).unwrap_err();
    assert!(err.message().contains("disabled"));
    // A field (no filename) over its size; a file of that size is fine.
    let field = crlf("--b\nContent-Disposition: form-data; name=\"f\"\n\n12345\n--b--");
    let file =
        crlf("--b\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\n\n12345\n--b--");
    let small = FormLimits {
        max_field_size: 4,
        ..FormLimits::default()
    };
    let err = parse_multipart_form_data(b"b", &field, &mut a, &mut f, &small).unwrap_err();
    assert_eq!(FormLimit::from_error(&err), Some(FormLimit::FieldSize));
    parse_multipart_form_data(b"b", &file, &mut a, &mut f, &small).unwrap();
}

/// The incremental parser's memory does not grow with a part's size: 256
/// MiB through it in 64 KiB pieces (made on the fly), never more than a
/// boundary's worth held back between pieces.
#[test]
fn streaming_parser_state_is_bounded() {
    let mut parser = MultipartParser::new(b"----squall-bound", FormLimits::default()).unwrap();
    let head = b"------squall-bound\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big\"\r\n\r\n";
    let mut seen = 0u64;
    let mut events = Vec::new();
    let mut on = |e: MultipartEvent<'_>| {
        match e {
            MultipartEvent::Data(d) => seen += d.len() as u64,
            MultipartEvent::PartStart(p) => events.push(format!("start {}", p.name)),
            MultipartEvent::PartEnd => events.push("end".to_owned()),
        }
        Ok(())
    };
    parser.feed(head, &mut on).unwrap();
    // CRs and near-boundaries in the data, to make the parser hold back.
    let mut piece = vec![b'x'; 64 * 1024];
    for (i, b) in b"\r\n------squall-boun".iter().enumerate() {
        piece[64 * 1024 - 19 + i] = *b;
    }
    let mut max_held = 0;
    for _ in 0..4096 {
        parser.feed(&piece, &mut on).unwrap();
        max_held = max_held.max(parser.buffered());
    }
    parser
        .feed(b"\r\n------squall-bound--\r\n", &mut on)
        .unwrap();
    parser.finish().unwrap();
    assert_eq!(seen, 4096 * 64 * 1024);
    assert!(max_held <= 20, "held {max_held} bytes between pieces");
    assert_eq!(events, ["start f", "end"]);
}

#[test]
fn a_failed_parser_stays_failed() {
    let mut parser = MultipartParser::new(b"b", FormLimits::default()).unwrap();
    let mut ok = |_: MultipartEvent<'_>| Ok(());
    let err = parser
        .feed(b"--b\r\nno colon here\r\n\r\n", &mut ok)
        .unwrap_err();
    let again = parser.feed(b"--b--", &mut ok).unwrap_err();
    assert!(err.ptr_eq(&again));
    assert!(parser.finish().unwrap_err().ptr_eq(&err));
    // An error from the callback stops it too, and comes back as it was.
    let mut parser = MultipartParser::new(b"b", FormLimits::default()).unwrap();
    let mine = Error::other("disk full");
    let got = parser
        .feed(
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nxyz",
            |_| Err(mine.clone()),
        )
        .unwrap_err();
    assert!(got.ptr_eq(&mine));
    assert!(MultipartParser::new(b"", FormLimits::default()).is_err());
    assert!(MultipartParser::new(&[b'x'; 201], FormLimits::default()).is_err());
}
