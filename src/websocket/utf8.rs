//! UTF-8 checked as a text message arrives, fragment by fragment, failing
//! at the first byte that cannot start or continue a character (Autobahn
//! 6.4: "fail fast"), not only when the message is whole.

/// The state between fragments: the bytes of a character cut by a
/// fragment boundary (at most 3).
#[derive(Debug, Default)]
pub struct Utf8Validator {
    tail: [u8; 4],
    tail_len: usize,
}

/// How long the character a lead byte starts is (0: not a lead byte).
fn char_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    /// Checks the next piece; false as soon as the text cannot be UTF-8
    /// whatever follows.
    pub fn feed(&mut self, data: &[u8]) -> bool {
        let mut data = data;
        if self.tail_len > 0 {
            let want = char_len(self.tail[0]);
            let take = (want - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            match std::str::from_utf8(&self.tail[..self.tail_len]) {
                Ok(_) => self.tail_len = 0,
                Err(e) if e.error_len().is_some() => return false,
                Err(_) => return true, // still cut short: wait for more
            }
        }
        match std::str::from_utf8(data) {
            Ok(_) => true,
            Err(e) if e.error_len().is_some() => false,
            Err(e) => {
                // A valid start of a character, cut by the end of the piece.
                let rest = &data[e.valid_up_to()..];
                self.tail[..rest.len()].copy_from_slice(rest);
                self.tail_len = rest.len();
                true
            }
        }
    }

    /// Whether the text ended on a character boundary; resets for the next.
    pub fn finish(&mut self) -> bool {
        let whole = self.tail_len == 0;
        self.tail_len = 0;
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pieces: &[&[u8]]) -> bool {
        let mut v = Utf8Validator::default();
        pieces.iter().all(|p| v.feed(p)) && v.finish()
    }

    #[test]
    fn accepts_text_cut_anywhere() {
        let text = "κόσμε, Hello-µ@ßöäüàá-UTF-8!! 😀".as_bytes();
        for cut in 0..=text.len() {
            let (a, b) = text.split_at(cut);
            assert!(check(&[a, b]), "cut at {cut}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert!(check(&bytes));
    }

    #[test]
    fn fails_fast_on_an_invalid_prefix() {
        let mut v = Utf8Validator::default();
        // Autobahn 6.4.1: κόσμε, then F4 90 (past U+10FFFF) fails at once.
        assert!(v.feed("κόσμε".as_bytes()));
        assert!(!v.feed(&[0xF4, 0x90]));
        let mut v = Utf8Validator::default();
        assert!(v.feed(&[0xE0]));
        assert!(!v.feed(&[0x80])); // overlong
        assert!(!check(&[&[0xC0, 0x80]]));
        assert!(!check(&[&[0xED, 0xA0, 0x80]])); // a surrogate
        assert!(!check(&[&[0xE2, 0x82]])); // cut short at the end
        assert!(!check(&[&[0xFF]]));
    }
}
