//! Signed values and signed cookies: Tornado's `create_signed_value`,
//! `decode_signed_value`, `set_signed_cookie` and `get_signed_cookie`, in
//! Tornado's exact formats (feature `signed_cookies`).
//!
//! A signed value is readable, not secret: it is the value, base64, with a
//! timestamp and an HMAC that only the holder of the `cookie_secret` can
//! make, so a client cannot forge or alter it. Version 2 (the default) is
//! `2|1:0|10:1700000000|4:user|8:YWRhNw==|<HMAC-SHA256 in hex>`: the key
//! version, the timestamp, the name and the value, each with its length,
//! signed together. Version 1 (HMAC-SHA1, no key version) is still read,
//! as Tornado does. Values made by a Python Tornado application with the
//! same secret are read here, and the other way round, so a service can be
//! ported while both serve the same logged-in users.
//!
//! ```
//! use squall::web::{create_signed_value, decode_signed_value, CookieSecret};
//!
//! let secret = CookieSecret::new("a long random string");
//! let signed = create_signed_value(&secret, "user", "ada7")?;
//! assert!(signed.starts_with("2|1:0|10:"));
//! assert_eq!(decode_signed_value(&secret, "user", &signed).as_deref(), Some(&b"ada7"[..]));
//! // Another name, another secret, or one changed byte: nothing.
//! assert_eq!(decode_signed_value(&secret, "admin", &signed), None);
//! assert_eq!(decode_signed_value(&CookieSecret::new("guess"), "user", &signed), None);
//! assert_eq!(decode_signed_value(&secret, "user", &signed.replace("YWRhNw", "YWRhOA")), None);
//! # Ok::<(), squall::Error>(())
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};

use super::xsrf::{to_hex, version_prefix};
use super::{CookieSecret, Exchange};
use crate::error::{Error, ErrorKind};
use crate::httputil::CookieOptions;

type HmacSha256 = Hmac<sha2::Sha256>;
type HmacSha1 = Hmac<sha1::Sha1>;

/// How [`create_signed_value_with`] signs: Tornado's `version`, `clock`
/// and `key_version` arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignOptions {
    /// The format: 2 (the default) or 1 (HMAC-SHA1, to feed an old reader;
    /// a single secret only).
    pub version: u8,
    /// The key version to sign with and record; needed with
    /// [`CookieSecret::Versioned`]. `None` writes 0.
    pub key_version: Option<u32>,
    /// The time to stamp; `None`: now.
    pub now: Option<SystemTime>,
}

impl Default for SignOptions {
    fn default() -> SignOptions {
        SignOptions {
            version: 2,
            key_version: None,
            now: None,
        }
    }
}

/// How [`decode_signed_value_with`] checks: Tornado's `max_age_days`,
/// `min_version` and `clock` arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeOptions {
    /// Refuse values signed longer ago than this. Default 31 days.
    pub max_age_days: f64,
    /// Refuse values of older formats: 1 (the default) reads both, 2 only
    /// version 2.
    pub min_version: u8,
    /// The time to check against; `None`: now.
    pub now: Option<SystemTime>,
}

impl Default for DecodeOptions {
    fn default() -> DecodeOptions {
        DecodeOptions {
            max_age_days: 31.0,
            min_version: 1,
            now: None,
        }
    }
}

/// Seconds since the epoch, as Python's `time.time()` (before the epoch:
/// negative).
fn seconds(time: Option<SystemTime>) -> f64 {
    let time = time.unwrap_or_else(SystemTime::now);
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, message)
}

/// Signs and timestamps `value` under `name` with Tornado's version 2
/// format (Tornado's `create_signed_value(secret, name, value)`); read it
/// back with [`decode_signed_value`].
///
/// # Errors
/// [`ErrorKind::InvalidArgument`] with a [`CookieSecret::Versioned`]
/// secret: it needs a key version, given with
/// [`create_signed_value_with`].
pub fn create_signed_value(
    secret: &CookieSecret,
    name: &str,
    value: impl AsRef<[u8]>,
) -> Result<String, Error> {
    create_signed_value_with(secret, name, value, &SignOptions::default())
}

/// [`create_signed_value`] with Tornado's other arguments: the format
/// version, the key version, the time.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use squall::web::{create_signed_value_with, CookieSecret, SignOptions};
///
/// let secrets = CookieSecret::versioned([(0, "old"), (1, "new")]);
/// let opts = SignOptions {
///     key_version: Some(1),
///     now: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
///     ..Default::default()
/// };
/// let signed = create_signed_value_with(&secrets, "n", "v", &opts)?;
/// assert!(signed.starts_with("2|1:1|10:1700000000|1:n|4:dg==|"));
/// # Ok::<(), squall::Error>(())
/// ```
///
/// # Errors
/// [`ErrorKind::InvalidArgument`]: a version other than 1 or 2; a
/// versioned secret without a key version, or with one it lacks; version
/// 1 with a versioned secret.
pub fn create_signed_value_with(
    secret: &CookieSecret,
    name: &str,
    value: impl AsRef<[u8]>,
    options: &SignOptions,
) -> Result<String, Error> {
    let timestamp = (seconds(options.now).floor() as i64).to_string();
    let value = BASE64.encode(value.as_ref());
    match options.version {
        1 => {
            let CookieSecret::Single(secret) = secret else {
                return Err(invalid("version 1 signed values take a single secret"));
            };
            let mut mac = HmacSha1::new_from_slice(secret).expect("HMAC takes any key length");
            for part in [name, &value, &timestamp] {
                mac.update(part.as_bytes());
            }
            let signature = to_hex(&mac.finalize().into_bytes());
            Ok(format!("{value}|{timestamp}|{signature}"))
        }
        2 => {
            if matches!(secret, CookieSecret::Versioned(_)) && options.key_version.is_none() {
                return Err(invalid(
                    "Key version must be set when sign key dict is used",
                ));
            }
            let key = secret.key(options.key_version).ok_or_else(|| {
                invalid(format!(
                    "no secret for key version {:?}",
                    options.key_version
                ))
            })?;
            let key_version = options.key_version.unwrap_or(0).to_string();
            // Python's `len(name)` counts characters, not bytes: the same
            // here, for byte-identical values.
            let to_sign = format!(
                "2|{}:{key_version}|{}:{timestamp}|{}:{name}|{}:{value}|",
                key_version.len(),
                timestamp.len(),
                name.chars().count(),
                value.len(),
            );
            let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(to_sign.as_bytes());
            let signature = to_hex(&mac.finalize().into_bytes());
            Ok(to_sign + &signature)
        }
        v => Err(invalid(format!("Unsupported version {v}"))),
    }
}

/// The value inside a signed `value` if it is genuine: signed with
/// `secret` (any of its key versions) under `name`, in the last 31 days
/// (Tornado's `decode_signed_value(secret, name, value)`). `None` for
/// anything else: forged, altered, expired, another name, malformed.
pub fn decode_signed_value(secret: &CookieSecret, name: &str, value: &str) -> Option<Vec<u8>> {
    decode_signed_value_with(secret, name, value, &DecodeOptions::default()).unwrap_or(None)
}

/// [`decode_signed_value`] with Tornado's other arguments: the maximum
/// age, the oldest format accepted, the time.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`] for a `min_version` above 2 (Tornado's
/// `ValueError`).
pub fn decode_signed_value_with(
    secret: &CookieSecret,
    name: &str,
    value: &str,
    options: &DecodeOptions,
) -> Result<Option<Vec<u8>>, Error> {
    if options.min_version > 2 {
        return Err(invalid(format!(
            "Unsupported min_version {}",
            options.min_version
        )));
    }
    if value.is_empty() {
        return Ok(None);
    }
    let value = value.as_bytes();
    let version = signed_version(value);
    if version < u64::from(options.min_version) {
        return Ok(None);
    }
    let now = seconds(options.now);
    Ok(match version {
        1 => decode_v1(secret, name, value, options.max_age_days, now),
        2 => decode_v2(secret, name, value, options.max_age_days, now),
        _ => None,
    })
}

/// The key version a signed value was made with (Tornado's
/// `get_signature_key_version`); `None` for a version 1 value or one that
/// cannot be read. Not checked: a forged value says what it likes.
pub fn get_signature_key_version(value: &str) -> Option<u32> {
    let value = value.as_bytes();
    if signed_version(value) < 2 {
        return None;
    }
    let (key_version, ..) = decode_fields_v2(value)?;
    u32::try_from(key_version).ok()
}

/// Tornado's `_get_version`: the leading number, unless there is none or it
/// passes 999 (a v1 value's base64 may look like a number).
fn signed_version(value: &[u8]) -> u64 {
    match version_prefix(value) {
        Some(v) if v <= 999 => v,
        _ => 1,
    }
}

/// Python's `int()` of ASCII bytes (see xsrf.rs's): `None` if not one.
fn int(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().map(|n| sign * n)
}

/// Lower-case hex only (what Python's `hexdigest` writes), to bytes.
fn from_lower_hex(s: &[u8]) -> Option<Vec<u8>> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Checks `signature` (hex, as written) against `mac` in constant time:
/// Python's `hmac.compare_digest` of the hex strings.
fn verify<M: Mac>(mac: M, signature: &[u8]) -> bool {
    match from_lower_hex(signature) {
        Some(bytes) => mac.verify_slice(&bytes).is_ok(),
        None => false,
    }
}

/// Tornado's `_decode_signed_value_v1`: `base64|timestamp|hmac-sha1`.
fn decode_v1(
    secret: &CookieSecret,
    name: &str,
    value: &[u8],
    max_age_days: f64,
    now: f64,
) -> Option<Vec<u8>> {
    let CookieSecret::Single(secret) = secret else {
        return None;
    };
    let parts: Vec<&[u8]> = value.split(|&b| b == b'|').collect();
    let [payload, timestamp_text, signature] = parts[..] else {
        return None;
    };
    let mut mac = HmacSha1::new_from_slice(secret).expect("HMAC takes any key length");
    for part in [name.as_bytes(), payload, timestamp_text] {
        mac.update(part);
    }
    if !verify(mac, signature) {
        log::warn!(
            "Invalid cookie signature {:?}",
            String::from_utf8_lossy(value)
        );
        return None;
    }
    let timestamp = int(timestamp_text)? as f64;
    if timestamp < now - max_age_days * 86400.0 {
        log::warn!("Expired cookie {:?}", String::from_utf8_lossy(value));
        return None;
    }
    // The v1 signature has no separator between payload and timestamp:
    // digits moved from one to the other keep it valid. Tornado's guards.
    if timestamp > now + 31.0 * 86400.0 {
        log::warn!(
            "Cookie timestamp in future; possible tampering {:?}",
            String::from_utf8_lossy(value)
        );
        return None;
    }
    if timestamp_text.starts_with(b"0") {
        log::warn!("Tampered cookie {:?}", String::from_utf8_lossy(value));
        return None;
    }
    BASE64.decode(payload).ok()
}

/// Tornado's `_decode_fields_v2`: (key version, timestamp, name, value,
/// signature) of `2|n:key|n:timestamp|n:name|n:value|signature`.
#[allow(clippy::type_complexity)]
fn decode_fields_v2(value: &[u8]) -> Option<(i64, &[u8], &[u8], &[u8], &[u8])> {
    fn consume(s: &[u8]) -> Option<(&[u8], &[u8])> {
        let colon = s.iter().position(|&b| b == b':')?;
        let n = usize::try_from(int(&s[..colon])?).ok()?;
        let rest = &s[colon + 1..];
        if rest.get(n) != Some(&b'|') {
            return None;
        }
        Some((&rest[..n], &rest[n + 1..]))
    }
    let rest = value.get(2..)?;
    let (key_version, rest) = consume(rest)?;
    let (timestamp, rest) = consume(rest)?;
    let (name, rest) = consume(rest)?;
    let (payload, signature) = consume(rest)?;
    Some((int(key_version)?, timestamp, name, payload, signature))
}

/// Tornado's `_decode_signed_value_v2`.
fn decode_v2(
    secret: &CookieSecret,
    name: &str,
    value: &[u8],
    max_age_days: f64,
    now: f64,
) -> Option<Vec<u8>> {
    let (key_version, timestamp, name_field, payload, signature) = decode_fields_v2(value)?;
    let signed = &value[..value.len() - signature.len()];
    let key = match secret {
        CookieSecret::Single(key) => key.as_slice(),
        CookieSecret::Versioned(_) => secret.key(Some(u32::try_from(key_version).ok()?))?,
    };
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(signed);
    if !verify(mac, signature) || name_field != name.as_bytes() {
        return None;
    }
    let timestamp = int(timestamp)? as f64;
    if timestamp < now - max_age_days * 86400.0 {
        return None;
    }
    BASE64.decode(payload).ok()
}

impl Exchange {
    /// The `cookie_secret` setting, or Tornado's complaint.
    fn cookie_secret(&self) -> Result<&CookieSecret, Error> {
        self.settings().cookie_secret.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                "You must define the 'cookie_secret' setting in your application to use secure cookies",
            )
        })
    }

    /// Signs and timestamps `value` under `name` with the application's
    /// `cookie_secret` (and `key_version`) (Tornado's
    /// `RequestHandler.create_signed_value`): for signed values outside
    /// cookies; read them back with
    /// [`decode_signed_cookie`](Self::decode_signed_cookie).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] without a `cookie_secret` setting, or
    /// with a versioned one and no `key_version` setting;
    /// [`ErrorKind::InvalidArgument`] if `key_version` names no secret.
    pub fn create_signed_value(
        &self,
        name: &str,
        value: impl AsRef<[u8]>,
    ) -> Result<String, Error> {
        let secret = self.cookie_secret()?;
        let key_version = self.settings().key_version;
        if matches!(secret, CookieSecret::Versioned(_)) && key_version.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "key_version setting must be used for secret_key dicts",
            ));
        }
        let options = SignOptions {
            key_version,
            ..SignOptions::default()
        };
        create_signed_value_with(secret, name, value, &options)
    }

    /// Sets a signed cookie that lasts 30 days (Tornado's
    /// `set_signed_cookie(name, value)`, formerly `set_secure_cookie`):
    /// any bytes, which the client can read but not alter; read it with
    /// [`get_signed_cookie`](Self::get_signed_cookie).
    ///
    /// ```
    /// # use squall::web::{Exchange, RequestHandler};
    /// # struct Login;
    /// # impl RequestHandler for Login {
    /// fn post(&mut self, x: &Exchange) -> Result<(), squall::Error> {
    ///     // ...once the password is checked:
    ///     x.set_signed_cookie("user", "ada")?;
    ///     x.redirect("/")
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`create_signed_value`](Self::create_signed_value) and
    /// [`set_cookie_with`](Self::set_cookie_with).
    #[doc(alias = "set_secure_cookie")]
    pub fn set_signed_cookie(&self, name: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        let options = CookieOptions {
            expires_days: Some(30.0),
            ..CookieOptions::default()
        };
        self.set_signed_cookie_with(name, value, &options)
    }

    /// [`set_signed_cookie`](Self::set_signed_cookie) with the cookie's
    /// attributes as given: `expires_days: None` (with no `expires` or
    /// `max_age`) makes a cookie for the browser session; the 30 days are
    /// `set_signed_cookie`'s default, not `CookieOptions`'.
    ///
    /// # Errors
    /// As [`set_signed_cookie`](Self::set_signed_cookie).
    pub fn set_signed_cookie_with(
        &self,
        name: &str,
        value: impl AsRef<[u8]>,
        options: &CookieOptions,
    ) -> Result<(), Error> {
        let signed = self.create_signed_value(name, value)?;
        self.set_cookie_with(name, &signed, options)
    }

    /// The value of the signed cookie `name` if it is genuine and at most
    /// 31 days old (Tornado's `get_signed_cookie(name)`, formerly
    /// `get_secure_cookie`); `None` if absent, forged, altered or expired.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] without a `cookie_secret` setting.
    #[doc(alias = "get_secure_cookie")]
    pub fn get_signed_cookie(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.get_signed_cookie_with(name, &DecodeOptions::default())
    }

    /// [`get_signed_cookie`](Self::get_signed_cookie) with Tornado's
    /// `max_age_days` and `min_version` (and a clock) in `options`.
    ///
    /// # Errors
    /// As [`get_signed_cookie`](Self::get_signed_cookie), and
    /// [`ErrorKind::InvalidArgument`] for a `min_version` above 2.
    pub fn get_signed_cookie_with(
        &self,
        name: &str,
        options: &DecodeOptions,
    ) -> Result<Option<Vec<u8>>, Error> {
        let secret = self.cookie_secret()?;
        let Some(value) = self.get_cookie(name) else {
            return Ok(None);
        };
        decode_signed_value_with(secret, name, value, options)
    }

    /// Decodes `value` as the signed cookie `name` would be, with the
    /// application's `cookie_secret`: Tornado's
    /// `get_signed_cookie(name, value=...)`, for a signed value that came
    /// another way (a header, a query argument).
    ///
    /// # Errors
    /// As [`get_signed_cookie_with`](Self::get_signed_cookie_with).
    pub fn decode_signed_cookie(
        &self,
        name: &str,
        value: &str,
        options: &DecodeOptions,
    ) -> Result<Option<Vec<u8>>, Error> {
        decode_signed_value_with(self.cookie_secret()?, name, value, options)
    }

    /// The key version the signed cookie `name` was made with (Tornado's
    /// `get_signed_cookie_key_version`): to re-sign cookies made with an
    /// old secret. Not a check of the signature.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] without a `cookie_secret` setting.
    #[doc(alias = "get_secure_cookie_key_version")]
    pub fn get_signed_cookie_key_version(&self, name: &str) -> Result<Option<u32>, Error> {
        self.cookie_secret()?;
        Ok(self.get_cookie(name).and_then(get_signature_key_version))
    }

    /// Tornado's older name of [`set_signed_cookie`](Self::set_signed_cookie).
    ///
    /// # Errors
    /// As `set_signed_cookie`.
    pub fn set_secure_cookie(&self, name: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        self.set_signed_cookie(name, value)
    }

    /// Tornado's older name of [`get_signed_cookie`](Self::get_signed_cookie).
    ///
    /// # Errors
    /// As `get_signed_cookie`.
    pub fn get_secure_cookie(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.get_signed_cookie(name)
    }

    /// Tornado's older name of
    /// [`get_signed_cookie_key_version`](Self::get_signed_cookie_key_version).
    ///
    /// # Errors
    /// As `get_signed_cookie_key_version`.
    pub fn get_secure_cookie_key_version(&self, name: &str) -> Result<Option<u32>, Error> {
        self.get_signed_cookie_key_version(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// Tornado's SignedValueTest: the same secret, time and values give
    /// the same bytes.
    const SECRET: &str = "It's a secret to everybody";
    const PRESENT: u64 = 1_300_000_000;
    const PAST: u64 = PRESENT - 86400 * 32;
    const FUTURE: u64 = PRESENT + 86400 * 31;

    fn sign(version: u8, now: u64) -> String {
        let opts = SignOptions {
            version,
            now: at(now),
            ..Default::default()
        };
        create_signed_value_with(&CookieSecret::new(SECRET), "key", "value", &opts).unwrap()
    }

    fn decode(value: &str, now: u64) -> Option<Vec<u8>> {
        let opts = DecodeOptions {
            now: at(now),
            ..Default::default()
        };
        decode_signed_value_with(&CookieSecret::new(SECRET), "key", value, &opts).unwrap()
    }

    #[test]
    fn known_values() {
        assert_eq!(
            sign(1, PRESENT),
            "dmFsdWU=|1300000000|31c934969f53e48164c50768b40cbd7e2daaaa4f"
        );
        assert_eq!(
            sign(2, PRESENT),
            "2|1:0|10:1300000000|3:key|8:dmFsdWU=|\
             3d4e60b996ff9c5d5788e333a0cba6f238a22c6c0f94788870e1a9ecd482e152"
        );
    }

    #[test]
    fn expiry_and_future() {
        for version in [1, 2] {
            let signed = sign(version, PRESENT);
            assert_eq!(decode(&signed, PRESENT).unwrap(), b"value");
            assert_eq!(
                decode(&sign(version, PAST), PRESENT),
                None,
                "v{version} past"
            );
            // v1 refuses a timestamp more than 31 days ahead; v2 signs it.
            let ahead = sign(version, FUTURE + 10);
            assert_eq!(decode(&ahead, PRESENT).is_some(), version == 2);
        }
    }

    #[test]
    fn min_version() {
        let v1 = sign(1, PRESENT);
        let opts = DecodeOptions {
            min_version: 2,
            now: at(PRESENT),
            ..Default::default()
        };
        let secret = CookieSecret::new(SECRET);
        assert_eq!(
            decode_signed_value_with(&secret, "key", &v1, &opts).unwrap(),
            None
        );
        let opts = DecodeOptions {
            min_version: 3,
            ..opts
        };
        assert!(decode_signed_value_with(&secret, "key", &v1, &opts).is_err());
    }

    #[test]
    fn tampering_refused() {
        let signed = sign(2, PRESENT);
        let (body, sig) = signed.split_at(signed.len() - 64);
        let upper = format!("{body}{}", sig.to_uppercase());
        for bad in [
            &signed[..signed.len() - 1],
            &format!("{signed}0"),
            &upper,
            &signed.replace("1300000000", "1300000001"),
            &signed.replace("3:key", "3:kez"),
            &signed.replace("1:0", "1:1"),
            "2|",
            "2|1:0",
            "2|99999999999999999999999:0|",
            "2|-1:0|",
            "",
            "garbage",
        ] {
            assert_eq!(decode(bad, PRESENT), None, "{bad}");
        }
    }

    #[test]
    fn key_versions() {
        let secrets = CookieSecret::versioned([(0, "ajklasdf0ojaisdf"), (1, "aslkjasaolwkjsdf")]);
        for kv in [0, 1] {
            let opts = SignOptions {
                key_version: Some(kv),
                ..Default::default()
            };
            let signed = create_signed_value_with(&secrets, "foo", "bar", &opts).unwrap();
            assert_eq!(get_signature_key_version(&signed), Some(kv));
            assert_eq!(
                decode_signed_value(&secrets, "foo", &signed).unwrap(),
                b"bar"
            );
        }
        let opts = SignOptions {
            key_version: Some(0),
            ..Default::default()
        };
        let signed = create_signed_value_with(&secrets, "foo", "bar", &opts).unwrap();
        let dropped = CookieSecret::versioned([(1, "aslkjasaolwkjsdf")]);
        assert_eq!(decode_signed_value(&dropped, "foo", &signed), None);
        // A map without a key version cannot sign.
        assert!(create_signed_value(&secrets, "foo", "bar").is_err());
        // A single secret reads a value whatever key version it records.
        let single = CookieSecret::new("s");
        let opts = SignOptions {
            key_version: Some(7),
            ..Default::default()
        };
        let signed = create_signed_value_with(&single, "foo", "bar", &opts).unwrap();
        assert_eq!(
            decode_signed_value(&single, "foo", &signed).unwrap(),
            b"bar"
        );
        assert_eq!(get_signature_key_version("dmFsdWU=|1300000000|31c9"), None);
    }

    #[test]
    fn arbitrary_bytes() {
        let secret = CookieSecret::new("0123456789");
        for version in [1, 2] {
            let opts = SignOptions {
                version,
                ..Default::default()
            };
            let signed = create_signed_value_with(&secret, "foo", [0xe9], &opts).unwrap();
            assert_eq!(
                decode_signed_value(&secret, "foo", &signed).unwrap(),
                [0xe9]
            );
        }
    }

    /// Tornado's SecureCookieV1Test.test_cookie_tampering_future_timestamp.
    #[test]
    fn v1_digits_moved_to_the_timestamp() {
        let secret = CookieSecret::new("0123456789");
        let opts = SignOptions {
            version: 1,
            ..Default::default()
        };
        // base64 of these bytes is `12345678`.
        let signed =
            create_signed_value_with(&secret, "foo", [0xd7, 0x6d, 0xf8, 0xe7, 0xae, 0xfc], &opts)
                .unwrap();
        let (payload, rest) = signed.split_once('|').unwrap();
        assert_eq!(payload, "12345678");
        let tampered = format!("1234|5678{rest}");
        assert_eq!(decode_signed_value(&secret, "foo", &tampered), None);
    }
}
