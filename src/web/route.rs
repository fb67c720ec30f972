//! Route patterns: exact paths, `{name}` captures and (feature `regex`)
//! regular expressions, as Tornado's `URLSpec`.

use crate::httputil::url_unescape;

pub(crate) enum Segment {
    Literal(String),
    Capture(String),
    /// `{name*}`: the rest of the path.
    Rest(String),
}

pub(crate) enum Pattern {
    Exact(String),
    Segments(Vec<Segment>),
    /// Anchored at both ends; the names of its groups (`None`: positional).
    #[cfg(feature = "regex")]
    Regex(regex::Regex, Vec<Option<String>>),
}

impl Pattern {
    pub(crate) fn parse(pattern: &str) -> Result<Pattern, String> {
        if !pattern.starts_with('/') {
            return Err(format!("route {pattern:?}: must start with '/'"));
        }
        if !pattern.contains(['{', '}']) {
            return Ok(Pattern::Exact(pattern.to_owned()));
        }
        let parts: Vec<&str> = pattern[1..].split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let capture = part
                .strip_prefix('{')
                .and_then(|p| p.strip_suffix('}'))
                .filter(|name| !name.is_empty() && !name.contains(['{', '}']));
            match capture {
                Some(name) if name.ends_with('*') => {
                    if i + 1 != parts.len() {
                        return Err(format!("route {pattern:?}: {{{name}}} must come last"));
                    }
                    segments.push(Segment::Rest(name.trim_end_matches('*').to_owned()));
                }
                Some(name) => segments.push(Segment::Capture(name.to_owned())),
                None if part.contains(['{', '}']) => {
                    return Err(format!(
                        "route {pattern:?}: a capture must be a whole segment, like /user/{{id}}"
                    ))
                }
                None => segments.push(Segment::Literal((*part).to_owned())),
            }
        }
        Ok(Pattern::Segments(segments))
    }

    /// A regular expression route, as Tornado's `URLSpec`: matched against
    /// the whole path (a `$` is added unless the pattern ends with one, and
    /// matching starts at the path's start).
    #[cfg(feature = "regex")]
    pub(crate) fn regex(pattern: &str) -> Result<Pattern, crate::Error> {
        let anchored = if pattern.ends_with('$') {
            format!("^(?:{pattern})")
        } else {
            format!("^(?:{pattern})$")
        };
        let regex = regex::Regex::new(&anchored).map_err(|e| {
            crate::Error::new(
                crate::ErrorKind::InvalidArgument,
                format!("route {pattern:?}: {e}"),
            )
        })?;
        let names = regex
            .capture_names()
            .skip(1)
            .map(|n| n.map(str::to_owned))
            .collect();
        Ok(Pattern::Regex(regex, names))
    }

    /// Whether `path` matches; its captures, if any, are appended to
    /// `args` (left as it was when it does not match). An exact path, the
    /// usual route, is one comparison.
    #[inline]
    pub(crate) fn match_into(&self, path: &str, args: &mut Vec<(String, String)>) -> bool {
        match self {
            Pattern::Exact(p) => p == path,
            _ => match self.matches(path) {
                Some(found) => {
                    args.extend(found);
                    true
                }
                None => false,
            },
        }
    }

    /// The captures if `path` matches.
    pub(crate) fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        match self {
            #[cfg(feature = "regex")]
            Pattern::Regex(regex, names) => {
                let caps = regex.captures(path)?;
                // Tornado: named groups if there are any (as keyword
                // arguments), else every group by position. Positional
                // groups are named by their number, "1" first.
                let named = names.iter().any(Option::is_some);
                let args = names
                    .iter()
                    .enumerate()
                    .filter(|(_, name)| !named || name.is_some())
                    .map(|(i, name)| {
                        let value = caps.get(i + 1).map_or("", |m| m.as_str());
                        let name = name.clone().unwrap_or_else(|| (i + 1).to_string());
                        (name, url_unescape(value, false))
                    })
                    .collect();
                Some(args)
            }
            Pattern::Exact(p) => (p == path).then(Vec::new),
            Pattern::Segments(segments) => {
                let mut rest = path.strip_prefix('/')?;
                let mut args = Vec::new();
                for (i, segment) in segments.iter().enumerate() {
                    let last = i + 1 == segments.len();
                    if let Segment::Rest(name) = segment {
                        args.push((name.clone(), url_unescape(rest, false)));
                        return Some(args);
                    }
                    let (part, tail) = match rest.split_once('/') {
                        Some((part, tail)) if !last => (part, tail),
                        Some(_) => return None,
                        None if last => (rest, ""),
                        None => return None,
                    };
                    match segment {
                        Segment::Literal(l) if l == part => {}
                        Segment::Capture(name) if !part.is_empty() => {
                            args.push((name.clone(), url_unescape(part, false)));
                        }
                        _ => return None,
                    }
                    rest = tail;
                }
                Some(args)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn patterns() {
        let p = Pattern::parse("/user/{id}").unwrap();
        assert_eq!(
            p.matches("/user/42").unwrap(),
            [("id".to_owned(), "42".to_owned())]
        );
        assert_eq!(p.matches("/user/a%20b").unwrap()[0].1, "a b");
        assert!(p.matches("/user/").is_none());
        assert!(p.matches("/user/1/2").is_none());
        assert!(p.matches("/users/1").is_none());
        let p = Pattern::parse("/a/{x}/b/{y}").unwrap();
        assert_eq!(p.matches("/a/1/b/2").unwrap().len(), 2);
        let p = Pattern::parse("/static/{path*}").unwrap();
        assert_eq!(p.matches("/static/a/b.css").unwrap()[0].1, "a/b.css");
        let p = Pattern::parse("/").unwrap();
        assert!(p.matches("/").is_some() && p.matches("/x").is_none());
        assert!(Pattern::parse("/u/x{id}").is_err());
        assert!(Pattern::parse("/{a*}/b").is_err());
        assert!(Pattern::parse("nope").is_err());
    }

    #[cfg(feature = "regex")]
    #[test]
    fn regex_patterns() {
        let args = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(n, a)| ((*n).to_owned(), (*a).to_owned()))
                .collect()
        };
        // Positional groups, by number; anchored at both ends.
        let p = Pattern::regex(r"/entry/([^/]+)/(\d+)").unwrap();
        assert_eq!(
            p.matches("/entry/a%20b/42").unwrap(),
            args(&[("1", "a b"), ("2", "42")])
        );
        assert!(p.matches("/entry/x/42/more").is_none());
        assert!(p.matches("/prefix/entry/x/42").is_none());
        assert!(p.matches("/entry/x/y").is_none());
        // Named groups only, when there are any (Tornado's kwargs).
        let p = Pattern::regex(r"/(?P<year>\d{4})/(\d+)/(?P<slug>[a-z-]+)$").unwrap();
        assert_eq!(
            p.matches("/2026/11/hello-world").unwrap(),
            args(&[("year", "2026"), ("slug", "hello-world")])
        );
        // An alternation stays anchored as a whole.
        let p = Pattern::regex(r"/a|/b").unwrap();
        assert!(p.matches("/a").is_some() && p.matches("/b").is_some());
        assert!(p.matches("/ab").is_none() && p.matches("/b/").is_none());
        // An optional group that did not take part: empty.
        let p = Pattern::regex(r"/opt(/\w+)?").unwrap();
        assert_eq!(p.matches("/opt").unwrap(), args(&[("1", "")]));
        let err = Pattern::regex(r"/bad(").err().expect("invalid regex");
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("/bad("), "{err}");
    }
}
