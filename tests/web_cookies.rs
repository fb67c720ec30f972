//! Cookies and signed cookies through a real server: Tornado's
//! web_test.py CookieTest and SecureCookieV1/V2Test, ported; and signed
//! values made by squall read by Python's Tornado and the other way round
//! (skipped where Tornado is not installed). XSRF and login:
//! tests/web_xsrf.rs.

#[allow(dead_code)]
#[path = "common/http.rs"]
mod http_kit;

#[path = "common/peers.rs"]
mod need;

#[path = "common/web.rs"]
mod web_kit;

use std::time::{Duration, SystemTime};

use squall::httputil::format_timestamp;
use squall::web::{Application, CookieOptions, SameSite};
use web_kit::{get, serve, sorted_cookies, F};

// ----- CookieTest --------------------------------------------------------------

fn cookie_app() -> Application {
    Application::new()
        .route("/set", || {
            F(|x| {
                x.set_cookie("str", "asdf")?;
                x.set_cookie("unicode", "qwer")?;
                x.set_cookie("bytes", "zxcv")
            })
        })
        .route("/get", || {
            F(|x| {
                x.write(x.get_cookie("foo").unwrap_or("default"));
                Ok(())
            })
        })
        .route("/set_domain", || {
            F(|x| {
                x.set_cookie_with(
                    "unicode_args",
                    "blah",
                    &CookieOptions {
                        domain: Some("foo.com".into()),
                        path: Some("/foo".into()),
                        ..Default::default()
                    },
                )
            })
        })
        .route("/special_char", || {
            F(|x| {
                x.set_cookie("equals", "a=b")?;
                x.set_cookie("semicolon", "a;b")?;
                x.set_cookie("quote", "a\"b")
            })
        })
        .route("/forbidden_char", || {
            F(|x| {
                let mut out = String::new();
                for c in (0u8..0x20).map(char::from).chain(['\x7f', ';']) {
                    if x.set_cookie(&format!("foo{c}"), "bar").is_ok() {
                        out.push_str(&format!("no error for {c:?} in name\n"));
                    }
                    let domain = CookieOptions {
                        domain: Some(format!("example{c}.com")),
                        ..Default::default()
                    };
                    match x.set_cookie_with("foo", "bar", &domain) {
                        Err(e) if e.message().contains("Invalid cookie attribute domain") => {}
                        other => out.push_str(&format!("{other:?} for {c:?} in domain\n")),
                    }
                    let path = CookieOptions {
                        path: Some(format!("/{c}")),
                        ..Default::default()
                    };
                    match x.set_cookie_with("foo", "bar", &path) {
                        Err(e) if e.message().contains("Invalid cookie attribute path") => {}
                        other => out.push_str(&format!("{other:?} for {c:?} in path\n")),
                    }
                }
                // Values: controls and spaces refused (Tornado's check).
                for bad in ["a b", "a\r\nSet-Cookie: evil=1", "a\0b", "a\tb"] {
                    if x.set_cookie("foo", bad).is_ok() {
                        out.push_str(&format!("no error for value {bad:?}\n"));
                    }
                }
                x.write(out);
                Ok(())
            })
        })
        .route("/set_overwrite", || {
            F(|x| {
                let domain = CookieOptions {
                    domain: Some("example.com".into()),
                    ..Default::default()
                };
                x.set_cookie_with("a", "b", &domain)?;
                x.set_cookie_with("c", "d", &domain)?;
                // A second call with the same name replaces the first,
                // attributes and all.
                x.set_cookie("a", "e")
            })
        })
        .route("/set_max_age", || {
            F(|x| {
                let opts = CookieOptions {
                    max_age: Some(Duration::from_secs(10)),
                    ..Default::default()
                };
                x.set_cookie_with("foo", "bar", &opts)
            })
        })
        .route("/set_expires_days", || {
            F(|x| {
                let opts = CookieOptions {
                    expires_days: Some(10.0),
                    ..Default::default()
                };
                x.set_cookie_with("foo", "bar", &opts)
            })
        })
        .route("/set_falsy_flags", || {
            F(|x| {
                let o = |secure, httponly| CookieOptions {
                    secure,
                    httponly,
                    ..Default::default()
                };
                x.set_cookie_with("a", "1", &o(true, false))?;
                x.set_cookie_with("b", "1", &o(false, false))?;
                x.set_cookie_with("c", "1", &o(false, true))?;
                x.set_cookie_with("d", "1", &o(false, false))
            })
        })
        .route("/samesite", || {
            F(|x| {
                let opts = CookieOptions {
                    samesite: Some(SameSite::None),
                    secure: true,
                    partitioned: true,
                    ..Default::default()
                };
                x.set_cookie_with("s", "1", &opts)
            })
        })
        .route("/clear", || {
            F(|x| {
                x.clear_cookie("foo")?;
                let opts = CookieOptions {
                    domain: Some("example.com".into()),
                    path: Some("/sub".into()),
                    max_age: Some(Duration::from_secs(99)),
                    ..Default::default()
                };
                x.clear_cookie_with("bar", &opts)
            })
        })
        .route("/clear_all", || F(|x| x.clear_all_cookies()))
        .route("/all", || {
            F(|x| {
                let all: Vec<String> = x
                    .cookies()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                x.write(all.join("&"));
                Ok(())
            })
        })
        .route("/error_after_set", || {
            F(|x| {
                x.set_cookie("ok", "1")?;
                x.set_cookie("bad", "a\nb")
            })
        })
}

#[test]
fn set_cookie() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/set", &[]);
    assert_eq!(
        sorted_cookies(&r),
        [
            "bytes=zxcv; Path=/",
            "str=asdf; Path=/",
            "unicode=qwer; Path=/"
        ]
    );
}

#[test]
fn get_cookie() {
    let s = serve(cookie_app);
    assert_eq!(get(s.addr, "/get", &[("Cookie", "foo=bar")]).text(), "bar");
    assert_eq!(
        get(s.addr, "/get", &[("Cookie", "foo=\"bar\"")]).text(),
        "bar"
    );
    assert_eq!(
        get(s.addr, "/get", &[("Cookie", "/=exception;")]).text(),
        "default"
    );
    assert_eq!(get(s.addr, "/get", &[]).text(), "default");
    // Two Cookie headers are read as one.
    assert_eq!(
        get(s.addr, "/get", &[("Cookie", "a=1"), ("Cookie", "foo=2")]).text(),
        "2"
    );
}

#[test]
fn set_cookie_domain() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/set_domain", &[]);
    assert_eq!(
        r.headers_named("Set-Cookie"),
        ["unicode_args=blah; Domain=foo.com; Path=/foo"]
    );
}

#[test]
fn cookie_special_char() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/special_char", &[]);
    assert_eq!(
        sorted_cookies(&r),
        [
            "equals=\"a=b\"; Path=/",
            "quote=\"a\\\"b\"; Path=/",
            "semicolon=\"a\\073b\"; Path=/"
        ]
    );
    let data = [
        ("foo=a=b", "a=b"),
        ("foo=\"a=b\"", "a=b"),
        ("foo=\"a;b\"", "\"a"),     // even quoted, ";" is a delimiter
        ("foo=a\\073b", "a\\073b"), // escapes only decoded in quotes
        ("foo=\"a\\073b\"", "a;b"),
        ("foo=\"a\\\"b\"", "a\"b"),
    ];
    for (header, expected) in data {
        assert_eq!(
            get(s.addr, "/get", &[("Cookie", header)]).text(),
            expected,
            "{header}"
        );
    }
}

#[test]
fn set_cookie_forbidden_char() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/forbidden_char", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "");
}

#[test]
fn set_cookie_overwrite() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/set_overwrite", &[]);
    assert_eq!(
        sorted_cookies(&r),
        ["a=e; Path=/", "c=d; Domain=example.com; Path=/"]
    );
}

#[test]
fn set_cookie_max_age() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/set_max_age", &[]);
    assert_eq!(sorted_cookies(&r), ["foo=bar; Max-Age=10; Path=/"]);
}

#[test]
fn set_cookie_expires_days() {
    let s = serve(cookie_app);
    let before = SystemTime::now();
    let r = get(s.addr, "/set_expires_days", &[]);
    let header = r.header("Set-Cookie").unwrap();
    let expires = header
        .strip_prefix("foo=bar; expires=")
        .and_then(|rest| rest.strip_suffix("; Path=/"))
        .unwrap_or_else(|| panic!("{header}"));
    let ten_days = Duration::from_secs(10 * 86400);
    let near: Vec<String> = (0..12)
        .map(|s| format_timestamp(before + ten_days + Duration::from_secs(s)))
        .collect();
    assert!(
        near.iter().any(|d| d == expires),
        "{expires} not in {near:?}"
    );
}

#[test]
fn set_cookie_false_flags() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/set_falsy_flags", &[]);
    assert_eq!(
        sorted_cookies(&r),
        [
            "a=1; Path=/; Secure",
            "b=1; Path=/",
            "c=1; HttpOnly; Path=/",
            "d=1; Path=/"
        ]
    );
    let r = get(s.addr, "/samesite", &[]);
    assert_eq!(
        sorted_cookies(&r),
        ["s=1; Partitioned; Path=/; SameSite=None; Secure"]
    );
}

#[test]
fn clear_cookies() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/clear", &[]);
    let cookies = sorted_cookies(&r);
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    // A year ago; no Max-Age even if asked.
    let year = Duration::from_secs(365 * 86400);
    let ago = format_timestamp(SystemTime::now() - year);
    let ago_year = &ago[12..16];
    assert!(
        cookies[0].starts_with("bar=\"\"; Domain=example.com; expires=")
            && cookies[0].ends_with("; Path=/sub")
            && cookies[0].contains(ago_year),
        "{cookies:?}"
    );
    assert!(cookies[1].starts_with("foo=\"\"; expires=") && cookies[1].ends_with(" GMT; Path=/"));

    let r = get(
        s.addr,
        "/clear_all",
        &[("Cookie", "a=1; b=2; path=x; =bare")],
    );
    let names: Vec<String> = sorted_cookies(&r)
        .iter()
        .map(|c| c.split('=').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn cookies_keep_only_legal_names() {
    let s = serve(cookie_app);
    let r = get(
        s.addr,
        "/all",
        &[("Cookie", "a=1; Path=/x; b c=2; =3; k:v=4; d=\"q\\\"\"; a=5")],
    );
    assert_eq!(r.text(), "a=5&k:v=4&d=q\"");
}

#[test]
fn refused_cookie_answers_500_and_sets_nothing() {
    let s = serve(cookie_app);
    let r = get(s.addr, "/error_after_set", &[]);
    assert_eq!(r.status, 500);
    assert!(
        !r.head.contains("evil") && !r.head.contains("bad="),
        "{}",
        r.head
    );
}

/// The exchange is pooled: one request's cookies are not the next one's.
#[test]
fn cookies_are_parsed_per_request() {
    let s = serve(cookie_app);
    let mut conn = http_kit::connect(s.addr);
    use std::io::Write;
    conn.write_all(
        b"GET /get HTTP/1.1\r\nHost: x\r\nCookie: foo=first\r\n\r\n\
          GET /get HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /get HTTP/1.1\r\nHost: x\r\nCookie: foo=third\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let bodies: Vec<String> = (0..3)
        .map(|_| {
            http_kit::read_reply(&mut conn, &mut buf, false)
                .unwrap()
                .text()
        })
        .collect();
    assert_eq!(bodies, ["first", "default", "third"]);
}

// ----- signed cookies ----------------------------------------------------------------

#[cfg(feature = "signed_cookies")]
mod signed {
    use std::process::Command;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::http_kit::{python, run, Reply};
    use crate::need::{self, Peer};
    use squall::web::Settings;
    use squall::web::{
        create_signed_value_with, decode_signed_value, decode_signed_value_with, CookieSecret,
        DecodeOptions, SignOptions,
    };

    const SECRET: &str = "0123456789";

    fn signed_handler() -> F {
        F(|x| {
            let path = x.request().path().to_owned();
            match path.as_str() {
                "/set" => x.set_signed_cookie("foo", b"bar")?,
                "/set_bytes" => x.set_signed_cookie("foo", [0xe9, 0, b';'])?,
                "/set_old" => x.set_secure_cookie("foo", "old name")?,
                "/get" => {
                    let value = x.get_signed_cookie("foo")?;
                    x.write(format!(
                        "{:?}",
                        value.map(|v| String::from_utf8_lossy(&v).into_owned())
                    ));
                }
                "/get_v2_only" => {
                    let opts = DecodeOptions {
                        min_version: 2,
                        ..Default::default()
                    };
                    let value = x.get_signed_cookie_with("foo", &opts)?;
                    x.write(format!("{value:?}"));
                }
                "/key_version" => x.write(format!("{:?}", x.get_signed_cookie_key_version("foo")?)),
                _ => x.send_error(404),
            }
            Ok(())
        })
    }

    fn routes(app: Application) -> Application {
        [
            "/set",
            "/set_bytes",
            "/set_old",
            "/get",
            "/get_v2_only",
            "/key_version",
        ]
        .iter()
        .fold(app, |app, path| app.route(path, signed_handler))
    }

    fn single_app() -> Application {
        routes(Application::with_settings(Settings {
            cookie_secret: Some(SECRET.into()),
            ..Default::default()
        }))
    }

    fn versions() -> CookieSecret {
        CookieSecret::versioned([(0, "ajklasdf0ojaisdf"), (1, "aslkjasaolwkjsdf")])
    }

    fn kv0_app() -> Application {
        routes(Application::with_settings(Settings {
            cookie_secret: Some(versions()),
            key_version: Some(0),
            ..Default::default()
        }))
    }

    fn kv1_app() -> Application {
        routes(Application::with_settings(Settings {
            cookie_secret: Some(versions()),
            key_version: Some(1),
            ..Default::default()
        }))
    }

    fn kv1_only_app() -> Application {
        routes(Application::with_settings(Settings {
            cookie_secret: Some(CookieSecret::versioned([(1, "aslkjasaolwkjsdf")])),
            key_version: Some(1),
            ..Default::default()
        }))
    }

    /// The `name=value` of a response's cookie, as a browser sends it back.
    fn cookie_pair(r: &Reply) -> String {
        let set = r.header("Set-Cookie").expect("Set-Cookie");
        set.split("; ").next().unwrap().to_owned()
    }

    /// SecureCookieV2Test.test_round_trip, through the server: 30 days.
    #[test]
    fn round_trip() {
        let s = serve(single_app);
        let r = get(s.addr, "/set", &[]);
        let set = r.header("Set-Cookie").unwrap();
        assert!(
            set.starts_with("foo=2|1:0|10:") && set.contains("; expires="),
            "{set}"
        );
        let in_30_days = format_timestamp(SystemTime::now() + Duration::from_secs(30 * 86400));
        assert!(set.contains(&in_30_days[..16]), "{set}");
        let cookie = cookie_pair(&r);
        assert_eq!(
            get(s.addr, "/get", &[("Cookie", &cookie)]).text(),
            "Some(\"bar\")"
        );
        assert_eq!(get(s.addr, "/get", &[]).text(), "None");
        // Altered: refused.
        let altered = cookie.replace("YmFy", "YmFz");
        assert_ne!(altered, cookie);
        assert_eq!(get(s.addr, "/get", &[("Cookie", &altered)]).text(), "None");
        // Arbitrary bytes, and Tornado's older method name.
        let r = get(s.addr, "/set_bytes", &[]);
        assert_eq!(
            get(s.addr, "/get", &[("Cookie", &cookie_pair(&r))]).text(),
            "Some(\"\u{fffd}\\0;\")"
        );
        let r = get(s.addr, "/set_old", &[]);
        assert_eq!(
            get(s.addr, "/get", &[("Cookie", &cookie_pair(&r))]).text(),
            "Some(\"old name\")"
        );
    }

    /// SecureCookieV1Test: version 1 values are still read, unless
    /// `min_version` is 2.
    #[test]
    fn v1_values_read() {
        let s = serve(single_app);
        let opts = SignOptions {
            version: 1,
            ..Default::default()
        };
        let v1 = create_signed_value_with(&SECRET.into(), "foo", "bar", &opts).unwrap();
        let cookie = format!("foo=\"{v1}\"");
        assert_eq!(
            get(s.addr, "/get", &[("Cookie", &cookie)]).text(),
            "Some(\"bar\")"
        );
        assert_eq!(
            get(s.addr, "/get_v2_only", &[("Cookie", &cookie)]).text(),
            "None"
        );
        assert_eq!(
            get(s.addr, "/key_version", &[("Cookie", &cookie)]).text(),
            "None"
        );
    }

    /// SecureCookieV2Test's key version cases.
    #[test]
    fn key_versions() {
        let kv0 = serve(kv0_app);
        let kv1 = serve(kv1_app);
        let kv1_only = serve(kv1_only_app);
        let from_kv0 = cookie_pair(&get(kv0.addr, "/set", &[]));
        let from_kv1 = cookie_pair(&get(kv1.addr, "/set", &[]));
        for (server, cookie) in [(&kv0, &from_kv0), (&kv1, &from_kv1), (&kv1, &from_kv0)] {
            assert_eq!(
                get(server.addr, "/get", &[("Cookie", cookie)]).text(),
                "Some(\"bar\")"
            );
        }
        assert_eq!(
            get(kv1.addr, "/key_version", &[("Cookie", &from_kv0)]).text(),
            "Some(0)"
        );
        assert_eq!(
            get(kv1.addr, "/key_version", &[("Cookie", &from_kv1)]).text(),
            "Some(1)"
        );
        // Key 0 retired: its cookies are no longer read.
        assert_eq!(
            get(kv1_only.addr, "/get", &[("Cookie", &from_kv0)]).text(),
            "None"
        );
        assert_eq!(
            get(kv1_only.addr, "/get", &[("Cookie", &from_kv1)]).text(),
            "Some(\"bar\")"
        );
    }

    #[test]
    fn no_secret_is_500() {
        let s = serve(|| routes(Application::new()));
        assert_eq!(get(s.addr, "/set", &[]).status, 500);
        assert_eq!(get(s.addr, "/get", &[]).status, 500);
        // A versioned secret without key_version cannot sign.
        let s = serve(|| {
            routes(Application::with_settings(Settings {
                cookie_secret: Some(versions()),
                ..Default::default()
            }))
        });
        assert_eq!(get(s.addr, "/set", &[]).status, 500);
    }

    /// SignedValueTest.test_expired and max_age_days.
    #[test]
    fn expiry() {
        let secret: CookieSecret = SECRET.into();
        let day = Duration::from_secs(86400);
        let present = UNIX_EPOCH + Duration::from_secs(1_300_000_000);
        let signed = create_signed_value_with(
            &secret,
            "k",
            "v",
            &SignOptions {
                now: Some(present - day * 32),
                ..Default::default()
            },
        )
        .unwrap();
        let at = |now, max_age_days| {
            decode_signed_value_with(
                &secret,
                "k",
                &signed,
                &DecodeOptions {
                    now: Some(now),
                    max_age_days,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        assert_eq!(at(present - day * 32, 31.0).unwrap(), b"v");
        assert_eq!(at(present, 31.0), None);
        assert_eq!(at(present, 33.0).unwrap(), b"v");
        assert_eq!(at(present - day * 30, 1.5), None);
    }

    /// Python's Tornado, same secret, fixed clock: the same bytes. Then
    /// each reads what the other made.
    const TORNADO_SIGN: &str = r#"
import sys, json
from tornado.web import create_signed_value
secret, kv_secrets = sys.argv[1], {0: "ajklasdf0ojaisdf", 1: "aslkjasaolwkjsdf"}
clock = lambda: 1300000000
out = {
    "v1": create_signed_value(secret, "key", "value", version=1, clock=clock).decode(),
    "v2": create_signed_value(secret, "key", "value", clock=clock).decode(),
    "v2_bytes": create_signed_value(secret, "user", b"\xe9\x00;ok").decode(),
    "v2_kv1": create_signed_value(kv_secrets, "user", "ada", key_version=1).decode(),
    "v2_unicode_name": create_signed_value(secret, "n\u00e9", "x", clock=clock).decode(),
}
print(json.dumps(out))
"#;

    #[test]
    fn python_tornado_signs_squall_reads() {
        if !need::ready(&[Peer::Tornado]) {
            return;
        }
        let (ok, out, err) = run(
            Command::new(python()).args(["-c", TORNADO_SIGN, SECRET]),
            None,
            Duration::from_secs(60),
        );
        assert!(ok, "{err}");
        let field = |name: &str| -> String {
            let start = out.find(&format!("\"{name}\": \"")).unwrap() + name.len() + 5;
            let end = start + out[start..].find('"').unwrap();
            out[start..end].to_owned()
        };
        let secret: CookieSecret = SECRET.into();
        let present = UNIX_EPOCH + Duration::from_secs(1_300_000_000);
        // Byte for byte what squall makes with the same inputs.
        for (version, name) in [(1, "v1"), (2, "v2")] {
            let ours = create_signed_value_with(
                &secret,
                "key",
                "value",
                &SignOptions {
                    version,
                    now: Some(present),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(ours, field(name));
        }
        let ours = create_signed_value_with(
            &secret,
            "n\u{e9}",
            "x",
            &SignOptions {
                now: Some(present),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ours, field("v2_unicode_name").replace("\\u00e9", "\u{e9}"));
        // Read by squall, directly and as a cookie through the server.
        assert_eq!(
            decode_signed_value(&secret, "user", &field("v2_bytes")).unwrap(),
            b"\xe9\x00;ok"
        );
        assert_eq!(
            decode_signed_value(&versions(), "user", &field("v2_kv1")).unwrap(),
            b"ada"
        );
        let s = serve(kv1_app);
        let kv1 = create_signed_value_with(
            &versions(),
            "foo",
            "bar",
            &SignOptions {
                key_version: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        let cookie = format!("foo=\"{kv1}\"");
        assert_eq!(
            get(s.addr, "/get", &[("Cookie", &cookie)]).text(),
            "Some(\"bar\")"
        );
    }

    /// Python's side of [`squall_signs_python_tornado_reads`]: the
    /// Set-Cookie header as a browser keeps it (http.cookies), then
    /// Tornado's decode_signed_value.
    const TORNADO_DECODE: &str = r#"
import sys, http.cookies
from tornado.web import decode_signed_value, get_signature_key_version
secret, header = sys.argv[1], sys.argv[2]
c = http.cookies.SimpleCookie()
c.load(header)
value = c["foo"].value
print(repr(decode_signed_value(secret, "foo", value)), get_signature_key_version(value))
kv = {0: "ajklasdf0ojaisdf", 1: "aslkjasaolwkjsdf"}
if len(sys.argv) > 3:
    c2 = http.cookies.SimpleCookie()
    c2.load(sys.argv[3])
    print(repr(decode_signed_value(kv, "foo", c2["foo"].value)))
"#;

    #[test]
    fn squall_signs_python_tornado_reads() {
        if !need::ready(&[Peer::Tornado]) {
            return;
        }
        let s = serve(single_app);
        let bytes = get(s.addr, "/set_bytes", &[]).header("Set-Cookie").unwrap();
        let kv = serve(kv1_app);
        let kv1 = get(kv.addr, "/set", &[]).header("Set-Cookie").unwrap();
        let (ok, out, err) = run(
            Command::new(python()).args(["-c", TORNADO_DECODE, SECRET, &bytes, &kv1]),
            None,
            Duration::from_secs(60),
        );
        assert!(ok, "{err}");
        assert_eq!(out, "b'\\xe9\\x00;' 0\nb'bar'\n");
    }
}
