//! A case-insensitive multimap of header fields, in arrival order.
//!
//! (The client's own until the shared `httputil::HTTPHeaders` lands.)

use std::fmt;

/// HTTP header fields: names compare case-insensitively, a name may repeat,
/// order is kept. Tornado's `HTTPHeaders`.
///
/// ```
/// use squall::httpclient::HTTPHeaders;
///
/// let mut h = HTTPHeaders::new();
/// h.add("Set-Cookie", "a=1");
/// h.add("set-cookie", "b=2");
/// h.set("Content-Type", "text/plain");
/// assert_eq!(h.get("SET-COOKIE"), Some("a=1"));
/// assert_eq!(h.get_list("Set-Cookie"), ["a=1", "b=2"]);
/// assert_eq!(h.get("content-type"), Some("text/plain"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HTTPHeaders {
    fields: Vec<(String, String)>,
}

impl HTTPHeaders {
    /// No fields.
    pub fn new() -> HTTPHeaders {
        HTTPHeaders::default()
    }

    /// Appends a field (a name may repeat).
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields.push((name.into(), value.into()));
    }

    /// Replaces every field named `name` with one.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.remove(&name);
        self.fields.push((name, value.into()));
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_list(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Removes every field named `name`; returns whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.fields.len();
        self.fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.fields.len() != before
    }

    /// The fields, in order, as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl fmt::Debug for HTTPHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for HTTPHeaders {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> HTTPHeaders {
        let mut h = HTTPHeaders::new();
        for (n, v) in iter {
            h.add(n, v);
        }
        h
    }
}

/// Whether a comma-separated header value (`Connection`, `Transfer-Encoding`)
/// lists `token`.
pub(crate) fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}
