//! Header injection is refused: a handler's header value or redirect
//! target with CR, LF or NUL never reaches the wire (raw, curl, requests).

use super::*;

/// The query values that would split the response if copied verbatim.
const INJECTIONS: [&str; 4] = [
    "%0d%0aSet-Cookie:%20evil=1",
    "%0aSet-Cookie:%20evil=1",
    "%0dSet-Cookie:%20evil=1",
    "x%00%0d%0aSet-Cookie:%20evil=1",
];

#[test]
fn header_injection_is_refused_raw() {
    let s = server();
    for inj in INJECTIONS {
        for (path, expected) in [
            (format!("/inject?v={inj}"), 500),
            (format!("/inject_redirect?to=/a{inj}"), 400),
        ] {
            let mut conn = connect(s.addr);
            write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut buf = Vec::new();
            let r = read_reply(&mut conn, &mut buf, false)
                .unwrap_or_else(|| panic!("no reply to {path}"));
            assert_eq!(r.status, expected, "{path}: {}", r.head);
            assert!(
                r.headers_named("Set-Cookie").is_empty(),
                "{path}: {}",
                r.head
            );
            assert!(r.headers_named("X-Echo").is_empty(), "{path}: {}", r.head);
            assert!(r.headers_named("Location").is_empty(), "{path}: {}", r.head);
            assert!(!r.head.contains("evil"), "{path}: {}", r.head);
            // The connection goes on after the refused response.
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let next = read_reply(&mut conn, &mut buf, false).expect("next reply");
            assert_eq!((next.status, next.text().as_str()), (200, "Hello, world"));
        }
    }
    // A harmless value still goes through.
    let r = raw_request(
        s.addr,
        b"GET /inject?v=hello%20there HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.header("X-Echo").as_deref(), Some("hello there"));
    let r = raw_request(
        s.addr,
        b"GET /inject_redirect?to=/ok HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        (r.status, r.header("Location").as_deref()),
        (302, Some("/ok"))
    );
}

#[test]
fn header_injection_is_refused_curl() {
    if !need::ready(&[Peer::Curl]) {
        return;
    }
    let s = server();
    for inj in INJECTIONS {
        let urls = [
            s.url(&format!("/inject?v={inj}")),
            s.url(&format!("/inject_redirect?to=/a{inj}")),
            s.url("/"),
        ];
        let mut cmd = Command::new("curl");
        cmd.args(["-sv", "--max-time", "30", "-w", CURL_W]);
        for url in &urls {
            // `-o` applies to one URL: once each.
            cmd.args(["-o", "/dev/null", url]);
        }
        let (ok, out, err) = run(&mut cmd, None, LIMIT);
        assert!(ok, "{err}");
        // Status and new connections: the refusals kept the connection.
        assert_eq!(
            out.lines()
                .map(|l| l.rsplit_once(' ').map_or(l, |(a, _)| a))
                .collect::<Vec<_>>(),
            ["|500 1", "|400 0", "|200 0"],
            "{inj}: {out}\n{err}"
        );
        let headers: Vec<&str> = err.lines().filter(|l| l.starts_with("< ")).collect();
        assert!(
            !headers.iter().any(|h| {
                let h = h.to_ascii_lowercase();
                h.starts_with("< set-cookie") || h.starts_with("< x-echo") || h.contains("evil")
            }),
            "{inj}: {headers:#?}"
        );
    }
}

const REQUESTS_INJECTION: &str = r#"
import sys, requests
base = sys.argv[1]
s = requests.Session()
for inj in ["%0d%0aSet-Cookie:%20evil=1", "%0aSet-Cookie:%20evil=1"]:
    r = s.get(base + "/inject?v=" + inj, timeout=20)
    assert r.status_code == 500, r.status_code
    assert "Set-Cookie" not in r.headers and "X-Echo" not in r.headers, r.headers
    r = s.get(base + "/inject_redirect?to=/a" + inj, timeout=20, allow_redirects=False)
    assert r.status_code == 400, r.status_code
    assert "Set-Cookie" not in r.headers and "Location" not in r.headers, r.headers
    assert len(s.cookies) == 0, s.cookies
    assert s.get(base + "/", timeout=20).text == "Hello, world"
print("ALL OK")
"#;

#[test]
fn header_injection_is_refused_requests() {
    if !need::ready(&[Peer::Requests]) {
        return;
    }
    python_client(&server(), REQUESTS_INJECTION);
}
