//! Route patterns: exact paths and `{name}` captures.

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

    /// The captures if `path` matches.
    pub(crate) fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        match self {
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
}
