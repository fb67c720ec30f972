//! The authentication conversation after the handshake response, as a
//! state machine on bytes: [`Auth`] is told each packet the server sends
//! and says what to answer ([`Step`]). The driver (`conn.rs`) does the
//! reading and writing; everything here is pure, so every path (the
//! `caching_sha2_password` verdicts, a public-key request, an auth switch,
//! MariaDB's `client_ed25519`) is tested on bytes, and end to end against a
//! scripted server in `tests/tormysql_auth.rs`.
//!
//! The plugins, as PyMySQL's `_auth.py` and libmysqlclient do them:
//!
//! - `mysql_native_password`: one SHA-1 scramble.
//! - `caching_sha2_password`: a SHA-256 scramble; the server answers `0x01
//!   0x03` (it had the password cached: an OK follows) or `0x01 0x04` (full
//!   authentication: it needs the password itself). Over TLS the password
//!   goes as it is, NUL-terminated; in the clear it goes RSA-encrypted
//!   with the server's public key (configured, or asked for with `0x02`);
//!   never in the clear.
//! - `sha256_password`: always "full": the password over TLS, else
//!   RSA-encrypted (the key asked for with `0x01`).
//! - `client_ed25519` (MariaDB): an Ed25519 signature of the server's
//!   32-byte nonce, with a key derived from the password.
//!
//! The RSA step (PyMySQL's `sha2_rsa_encrypt`): the NUL-terminated password
//! XOR the 20-byte nonce (repeated), RSA-OAEP with SHA-1 and MGF1-SHA-1.

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Oaep, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha512};

use super::conn::MysqlError;
use super::protocol::{self, ServerError, CACHING_SHA2_PASSWORD, NATIVE_PASSWORD};

/// `sha256_password`: MySQL's older SHA-256 plugin (always full authentication).
pub const SHA256_PASSWORD: &str = "sha256_password";
/// MariaDB's Ed25519 plugin (the server side is `ed25519`).
pub const CLIENT_ED25519: &str = "client_ed25519";

/// `caching_sha2_password`'s "more data" codes.
const REQUEST_PUBLIC_KEY: u8 = 0x02;
const FAST_AUTH_OK: u8 = 0x03;
const PERFORM_FULL_AUTH: u8 = 0x04;
/// `sha256_password`'s request for the server's key.
const SHA256_REQUEST_PUBLIC_KEY: u8 = 0x01;

/// Ed25519's nonce, as MariaDB's server plugin sends it.
const ED25519_NONCE: usize = 32;

/// What the driver does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Write this packet, then read the next one.
    Send(Vec<u8>),
    /// Send nothing; read the next packet.
    Read,
    /// Authenticated (the server sent OK).
    Done,
}

/// What an authentication needs to know beside the server's packets.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// The password (empty: none).
    pub password: Vec<u8>,
    /// Whether the connection is encrypted (the password may then go as it is).
    pub tls: bool,
    /// The server's RSA public key (PEM, `BEGIN PUBLIC KEY` or `BEGIN RSA
    /// PUBLIC KEY`), if the user has it: used instead of whatever key the
    /// server sends.
    pub server_public_key: Option<Vec<u8>>,
    /// Whether the server may be asked for its key (PyMySQL does so always;
    /// libmysqlclient only with `--get-server-public-key`). Without it and
    /// without a configured key, a password that would need RSA is not sent.
    pub get_server_public_key: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The plugin's first answer is sent; its verdict is awaited.
    Started,
    /// `caching_sha2_password` said fast auth succeeded: an OK must follow.
    FastAuthOk,
    /// The server's public key was asked for.
    AwaitingKey,
    /// The password (in whatever form) is sent: only OK or ERR may follow.
    PasswordSent,
}

/// One authentication, from the handshake response to the server's OK.
#[derive(Debug)]
pub struct Auth {
    creds: Credentials,
    plugin: String,
    /// The current plugin's nonce (the greeting's, or an auth switch's).
    nonce: Vec<u8>,
    state: State,
}

impl Auth {
    /// Starts with the plugin to answer the greeting with (`wanted`, else
    /// the server's) and the greeting's nonce. Returns the state machine and
    /// the auth data for the handshake response; [`plugin`](Auth::plugin)
    /// names the plugin that data is for (one whose first answer cannot go
    /// in the handshake response is answered with `mysql_native_password`,
    /// for the server to switch from, as PyMySQL does).
    pub fn start(creds: Credentials, plugin: &str, nonce: &[u8]) -> (Auth, Vec<u8>) {
        let mut auth = Auth {
            creds,
            plugin: plugin.to_owned(),
            nonce: nonce.to_vec(),
            state: State::Started,
        };
        let first = match auth.first_answer(true) {
            Ok(Some(data)) => data,
            // ed25519 needs its own 32-byte nonce (the greeting's has 20), a
            // plugin we lack cannot answer, and a plugin refusing to answer
            // yet (no key) may still be switched away from.
            _ => {
                auth.plugin = NATIVE_PASSWORD.to_owned();
                protocol::scramble_native(&auth.creds.password, nonce)
            }
        };
        (auth, first)
    }

    /// The plugin in use now.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The plugin's first answer to its nonce; `None` when this client
    /// lacks the plugin. `in_response`: it goes in the handshake response
    /// (whose auth data has a one-byte length) rather than its own packet.
    fn first_answer(&mut self, in_response: bool) -> Result<Option<Vec<u8>>, MysqlError> {
        let password = &self.creds.password;
        self.state = State::Started;
        Ok(Some(match self.plugin.as_str() {
            NATIVE_PASSWORD => {
                self.state = State::PasswordSent;
                protocol::scramble_native(password, &self.nonce)
            }
            CACHING_SHA2_PASSWORD => protocol::scramble_caching_sha2(password, &self.nonce),
            SHA256_PASSWORD => {
                if password.is_empty() {
                    // libmysqlclient's answer for no password: one NUL.
                    self.state = State::PasswordSent;
                    vec![0]
                } else if self.creds.tls {
                    self.state = State::PasswordSent;
                    nul_terminated(password)
                } else if let (Some(key), false) = (&self.creds.server_public_key, in_response) {
                    // (In the handshake response 256 bytes of ciphertext
                    // would not fit the one-byte length: ask for the key
                    // there, and use ours when it comes.)
                    let data = sha2_rsa_encrypt(password, &self.nonce, key)?;
                    self.state = State::PasswordSent;
                    data
                } else {
                    self.key_request(SHA256_REQUEST_PUBLIC_KEY)?
                }
            }
            CLIENT_ED25519 => {
                if in_response {
                    return Ok(None);
                }
                let nonce = self.nonce.get(..ED25519_NONCE).ok_or_else(|| {
                    MysqlError::Protocol(format!(
                        "client_ed25519 nonce of {} bytes (expected {ED25519_NONCE})",
                        self.nonce.len()
                    ))
                })?;
                self.state = State::PasswordSent;
                ed25519_sign(password, nonce).to_vec()
            }
            _ => return Ok(None),
        }))
    }

    /// Asks for the server's key, when allowed (or when a configured key
    /// will be used whatever the server sends); refuses otherwise.
    fn key_request(&mut self, code: u8) -> Result<Vec<u8>, MysqlError> {
        if !self.creds.get_server_public_key && self.creds.server_public_key.is_none() {
            return Err(MysqlError::Insecure(format!(
                "{} needs the password over TLS or RSA-encrypted, and there is no server \
                 public key (set `server_public_key`, allow `get_server_public_key`, or \
                 connect with `ssl`)",
                self.plugin
            )));
        }
        self.state = State::AwaitingKey;
        Ok(vec![code])
    }

    /// The password RSA-encrypted with the configured key, else `sent` (the
    /// server's own).
    fn encrypt_with(&mut self, sent: &[u8]) -> Result<Vec<u8>, MysqlError> {
        let key = self.creds.server_public_key.as_deref().unwrap_or(sent);
        let data = sha2_rsa_encrypt(&self.creds.password, &self.nonce, key)?;
        self.state = State::PasswordSent;
        Ok(data)
    }

    /// The next server packet: what to do about it.
    ///
    /// # Errors
    /// [`MysqlError::Server`] for an ERR (1045 `28000`: access denied);
    /// [`MysqlError::Unsupported`] for a plugin this client lacks;
    /// [`MysqlError::Insecure`] for a password that would go unprotected;
    /// [`MysqlError::PublicKey`] for an unusable RSA key;
    /// [`MysqlError::Protocol`] for a packet out of place.
    pub fn on_packet(&mut self, packet: &[u8]) -> Result<Step, MysqlError> {
        match packet.first() {
            Some(0x00) => Ok(Step::Done),
            Some(0xff) => Err(match ServerError::parse(packet) {
                Ok(e) => MysqlError::Server(e),
                Err(e) => e.into(),
            }),
            Some(0xfe) if self.state != State::AwaitingKey => {
                // AuthSwitchRequest: another plugin, with a fresh nonce.
                if packet.len() == 1 {
                    return Err(MysqlError::Unsupported(
                        "the old (pre-4.1) password authentication".to_owned(),
                    ));
                }
                let (name, data) = protocol::parse_auth_switch(packet)?;
                self.plugin = name;
                self.nonce = data;
                match self.first_answer(false)? {
                    Some(data) => Ok(Step::Send(data)),
                    None => Err(MysqlError::Unsupported(format!(
                        "auth plugin {}",
                        self.plugin
                    ))),
                }
            }
            Some(0x01) => self.more_data(&packet[1..]),
            _ => Err(self.unexpected(packet)),
        }
    }

    /// An AuthMoreData packet (0x01 and the plugin's data).
    fn more_data(&mut self, data: &[u8]) -> Result<Step, MysqlError> {
        match (self.plugin.as_str(), self.state) {
            (CACHING_SHA2_PASSWORD | SHA256_PASSWORD, State::AwaitingKey) => {
                self.encrypt_with(data).map(Step::Send)
            }
            (CACHING_SHA2_PASSWORD, State::Started) => match data {
                [FAST_AUTH_OK] => {
                    self.state = State::FastAuthOk;
                    Ok(Step::Read)
                }
                [PERFORM_FULL_AUTH] => {
                    let password = &self.creds.password;
                    if self.creds.tls {
                        self.state = State::PasswordSent;
                        Ok(Step::Send(nul_terminated(password)))
                    } else if let Some(key) = self.creds.server_public_key.clone() {
                        self.encrypt_with(&key).map(Step::Send)
                    } else {
                        self.key_request(REQUEST_PUBLIC_KEY).map(Step::Send)
                    }
                }
                _ => Err(MysqlError::Protocol(format!(
                    "unexpected caching_sha2_password data {:?}",
                    &data[..data.len().min(8)]
                ))),
            },
            _ => Err(MysqlError::Protocol(format!(
                "unexpected auth data for {} (state {:?})",
                self.plugin, self.state
            ))),
        }
    }

    fn unexpected(&self, packet: &[u8]) -> MysqlError {
        MysqlError::Protocol(format!(
            "unexpected packet {:?} during authentication (plugin {})",
            packet.first(),
            self.plugin
        ))
    }
}

fn nul_terminated(password: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(password.len() + 1);
    out.extend_from_slice(password);
    out.push(0);
    out
}

/// The NUL-terminated password XOR the nonce's first 20 bytes, repeated.
pub fn xor_password(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut out = nul_terminated(password);
    let nonce = &nonce[..nonce.len().min(20)];
    if !nonce.is_empty() {
        for (i, b) in out.iter_mut().enumerate() {
            *b ^= nonce[i % nonce.len()];
        }
    }
    out
}

/// Parses an RSA public key in PEM: SubjectPublicKeyInfo (`BEGIN PUBLIC
/// KEY`, what MySQL sends) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
///
/// # Errors
/// [`MysqlError::PublicKey`] for anything else.
pub fn parse_public_key(pem: &[u8]) -> Result<RsaPublicKey, MysqlError> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| MysqlError::PublicKey("the public key is not PEM text".to_owned()))?;
    // The server's key may come with a trailing NUL or newline.
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    RsaPublicKey::from_public_key_pem(text)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(text))
        .map_err(|e| MysqlError::PublicKey(format!("not an RSA public key in PEM: {e}")))
}

/// PyMySQL's `sha2_rsa_encrypt`: [`xor_password`], then RSA-OAEP (SHA-1)
/// with `public_key` (PEM).
///
/// # Errors
/// [`MysqlError::PublicKey`] for a bad key, or a password too long for it
/// (a 2048-bit key takes 213 bytes).
pub fn sha2_rsa_encrypt(
    password: &[u8],
    nonce: &[u8],
    public_key: &[u8],
) -> Result<Vec<u8>, MysqlError> {
    let key = parse_public_key(public_key)?;
    let message = xor_password(password, nonce);
    key.encrypt(&mut rsa::rand_core::OsRng, Oaep::new::<Sha1>(), &message)
        .map_err(|e| MysqlError::PublicKey(format!("RSA encryption failed: {e}")))
}

/// A SHA-512 digest as a scalar (mod the group order).
fn wide(h: Sha512) -> Scalar {
    let mut bytes = [0u8; 64];
    bytes.copy_from_slice(&h.finalize());
    Scalar::from_bytes_mod_order_wide(&bytes)
}

/// MariaDB's `client_ed25519`: Ed25519 with the password as the secret
/// seed, of any length (SHA-512 of it gives the scalar and the nonce
/// prefix), signing `message` (the server's 32-byte nonce). For a 32-byte
/// password this is RFC 8032's Ed25519 exactly. Returns `R || S`.
pub fn ed25519_sign(password: &[u8], message: &[u8]) -> [u8; 64] {
    let h = Sha512::digest(password);
    let mut low = [0u8; 32];
    low.copy_from_slice(&h[..32]);
    let a = Scalar::from_bytes_mod_order(clamp_integer(low));
    let public = EdwardsPoint::mul_base(&a).compress();
    let r = wide(Sha512::new().chain_update(&h[32..]).chain_update(message));
    let big_r = EdwardsPoint::mul_base(&r).compress();
    let k = wide(
        Sha512::new()
            .chain_update(big_r.as_bytes())
            .chain_update(public.as_bytes())
            .chain_update(message),
    );
    let s = r + k * a;
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(big_r.as_bytes());
    out[32..].copy_from_slice(s.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8032 section 7.1, tests 1-3: with a 32-byte password (the seed),
    /// MariaDB's scheme is standard Ed25519.
    #[test]
    fn ed25519_matches_rfc_8032() {
        let cases = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                 5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                 085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac\
                 18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        for (seed, message, signature) in cases {
            let signature: String = signature.split_whitespace().collect();
            assert_eq!(
                ed25519_sign(&unhex(seed), &unhex(message)).to_vec(),
                unhex(&signature),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn xor_password_repeats_the_nonce_over_the_nul_terminated_password() {
        let nonce = b"abcdefghijklmnopqrst-and-a-tail";
        let out = xor_password(b"secret", nonce);
        let expected: Vec<u8> = b"secret\0"
            .iter()
            .zip(nonce.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(out, expected);
        let long = vec![b'x'; 45];
        let out = xor_password(&long, nonce);
        assert_eq!(out.len(), 46);
        assert_eq!(out[20], b'x' ^ b'a');
        assert_eq!(out[45], b'f');
    }

    fn creds(password: &str, tls: bool) -> Credentials {
        Credentials {
            password: password.as_bytes().to_vec(),
            tls,
            server_public_key: None,
            get_server_public_key: true,
        }
    }

    const NONCE: &[u8; 20] = b"abcdefghijklmnopqrst";

    #[test]
    fn caching_sha2_paths_on_bytes() {
        // Fast path: scramble, 0x01 0x03, then OK.
        let (mut a, first) = Auth::start(creds("pw", false), CACHING_SHA2_PASSWORD, NONCE);
        assert_eq!(first, protocol::scramble_caching_sha2(b"pw", NONCE));
        assert_eq!(a.on_packet(&[1, 3]), Ok(Step::Read));
        assert_eq!(a.on_packet(&[0, 0, 0, 2, 0, 0, 0]), Ok(Step::Done));
        // Full auth over TLS: the password itself.
        let (mut a, _) = Auth::start(creds("pw", true), CACHING_SHA2_PASSWORD, NONCE);
        assert_eq!(a.on_packet(&[1, 4]), Ok(Step::Send(b"pw\0".to_vec())));
        // In the clear: the key is asked for.
        let (mut a, _) = Auth::start(creds("pw", false), CACHING_SHA2_PASSWORD, NONCE);
        assert_eq!(a.on_packet(&[1, 4]), Ok(Step::Send(vec![2])));
        // ...and junk for a key is a typed error.
        assert!(matches!(
            a.on_packet(b"\x01-----BEGIN PUBLIC KEY-----\nnope\n"),
            Err(MysqlError::PublicKey(_))
        ));
        // Not allowed to ask, no key: refused, nothing sent.
        let mut strict = creds("pw", false);
        strict.get_server_public_key = false;
        let (mut a, _) = Auth::start(strict, CACHING_SHA2_PASSWORD, NONCE);
        assert!(matches!(a.on_packet(&[1, 4]), Err(MysqlError::Insecure(_))));
        // A verdict that is neither 3 nor 4, an OK-less fast path's junk.
        let (mut a, _) = Auth::start(creds("pw", false), CACHING_SHA2_PASSWORD, NONCE);
        assert!(matches!(a.on_packet(&[1, 9]), Err(MysqlError::Protocol(_))));
        let (mut a, _) = Auth::start(creds("pw", false), CACHING_SHA2_PASSWORD, NONCE);
        assert!(matches!(a.on_packet(&[]), Err(MysqlError::Protocol(_))));
        assert!(matches!(a.on_packet(&[7]), Err(MysqlError::Protocol(_))));
        // ERR: the server's code and state.
        let err = a.on_packet(b"\xff\x15\x04#28000Access denied").unwrap_err();
        assert!(
            matches!(&err, MysqlError::Server(e) if e.code == 1045 && e.sql_state == "28000"),
            "{err:?}"
        );
    }

    #[test]
    fn switches_and_plugins_this_client_lacks() {
        // ed25519 is never answered in the handshake response (its nonce
        // comes with the switch): native first, then the signature.
        let (mut a, first) = Auth::start(creds("pw", false), CLIENT_ED25519, NONCE);
        assert_eq!(a.plugin(), NATIVE_PASSWORD);
        assert_eq!(first, protocol::scramble_native(b"pw", NONCE));
        let nonce32 = [7u8; 32];
        let mut switch = b"\xfeclient_ed25519\0".to_vec();
        switch.extend_from_slice(&nonce32);
        assert_eq!(
            a.on_packet(&switch),
            Ok(Step::Send(ed25519_sign(b"pw", &nonce32).to_vec()))
        );
        assert_eq!(a.plugin(), CLIENT_ED25519);
        // A short ed25519 nonce is the server's fault.
        let (mut a, _) = Auth::start(creds("pw", false), NATIVE_PASSWORD, NONCE);
        assert!(matches!(
            a.on_packet(b"\xfeclient_ed25519\0short"),
            Err(MysqlError::Protocol(_))
        ));
        // Unknown plugins, and the pre-4.1 switch.
        let (mut a, _) = Auth::start(creds("pw", false), NATIVE_PASSWORD, NONCE);
        assert!(matches!(
            a.on_packet(b"\xfedialog\0x"),
            Err(MysqlError::Unsupported(_))
        ));
        assert!(matches!(
            a.on_packet(&[0xfe]),
            Err(MysqlError::Unsupported(_))
        ));
        // sha256_password: over TLS the password, in the clear a key request.
        let (mut a, first) = Auth::start(creds("pw", true), SHA256_PASSWORD, NONCE);
        assert_eq!((a.plugin(), first), (SHA256_PASSWORD, b"pw\0".to_vec()));
        assert_eq!(a.on_packet(&[0]), Ok(Step::Done));
        let (_, first) = Auth::start(creds("pw", false), SHA256_PASSWORD, NONCE);
        assert_eq!(first, vec![1]);
        let (_, first) = Auth::start(creds("", false), SHA256_PASSWORD, NONCE);
        assert_eq!(first, vec![0]);
        // Strict and keyless: falls back to native in the response, and a
        // switch to sha256_password is refused before any password goes.
        let mut strict = creds("pw", false);
        strict.get_server_public_key = false;
        let (mut a, _) = Auth::start(strict, SHA256_PASSWORD, NONCE);
        assert_eq!(a.plugin(), NATIVE_PASSWORD);
        assert!(matches!(
            a.on_packet(b"\xfesha256_password\0abcdefghijklmnopqrst\0"),
            Err(MysqlError::Insecure(_))
        ));
    }
}
