//! `include FILE` support shared by `ipsec.conf` and `ipsec.secrets`: resolving the name relative
//! to the including file and expanding shell wildcards (`*`, `?`, `[...]`) with `std::fs` only.

use std::path::{Component, Path, PathBuf};

/// Deepest allowed include nesting (the top-level file is depth 0).
pub(crate) const MAX_INCLUDE_DEPTH: usize = 10;

/// Most paths a wildcard `include` may visit while it is expanded (directories read plus names
/// kept). A pattern such as `/*/*/*/*/*` would otherwise walk the whole file system.
pub(crate) const MAX_GLOB_PATHS: usize = 4096;

/// Whether `s` contains an unescaped shell wildcard character.
pub(crate) fn has_wildcards(s: &str) -> bool {
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if matches!(c, '*' | '?' | '[') {
            return true;
        }
    }
    false
}

/// The directory against which relative includes of `file` are resolved.
pub(crate) fn base_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) => p.to_path_buf(),
        None => PathBuf::new(),
    }
}

/// Resolve an include name.
///
/// Without wildcards the single resolved path is returned whether or not it exists (the caller
/// reports open errors). With wildcards, the regular files matching are returned sorted as the
/// shell would (by path); no match gives an empty list. Like `sh`, a wildcard never matches a
/// leading `.` of a file name. A pattern that would visit more than [`MAX_GLOB_PATHS`] paths is
/// refused with an error message rather than walked.
pub(crate) fn expand(pattern: &str, base: &Path) -> Result<Vec<PathBuf>, String> {
    let pat_path = Path::new(pattern);
    if !has_wildcards(pattern) {
        return Ok(vec![if pat_path.is_absolute() {
            pat_path.to_path_buf()
        } else {
            base.join(pat_path)
        }]);
    }
    let too_many =
        || format!("include pattern \"{pattern}\" matches more than {MAX_GLOB_PATHS} paths");
    let mut visited = 0usize;
    let mut candidates: Vec<PathBuf> = vec![if pat_path.is_absolute() {
        PathBuf::from("/")
    } else {
        base.to_path_buf()
    }];
    for comp in pat_path.components() {
        let part = match comp {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => continue,
            Component::ParentDir => {
                for c in &mut candidates {
                    c.push("..");
                }
                continue;
            }
            Component::Normal(os) => os,
        };
        let Some(part_str) = part.to_str() else {
            // Not UTF-8: cannot contain our (ASCII) wildcards meaningfully; treat literally.
            for c in &mut candidates {
                c.push(part);
            }
            continue;
        };
        if !has_wildcards(part_str) {
            let lit = unescape(part_str);
            for c in &mut candidates {
                c.push(&lit);
            }
            continue;
        }
        let matcher = Pattern::new(part_str);
        let mut next = Vec::new();
        for dir in &candidates {
            visited += 1;
            if visited > MAX_GLOB_PATHS {
                return Err(too_many());
            }
            let Ok(rd) = std::fs::read_dir(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            }) else {
                continue;
            };
            let mut names = Vec::new();
            for n in rd
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| matcher.matches(&n.to_string_lossy()))
            {
                visited += 1;
                if visited > MAX_GLOB_PATHS {
                    return Err(too_many());
                }
                names.push(n);
            }
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        candidates = next;
        if candidates.is_empty() {
            break;
        }
    }
    candidates.retain(|p| p.is_file());
    Ok(candidates)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if !escaped && c == '\\' {
            escaped = true;
        } else {
            out.push(c);
            escaped = false;
        }
    }
    out
}

#[derive(Debug)]
enum Tok {
    Lit(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled shell wildcard pattern for one path component.
#[derive(Debug)]
pub(crate) struct Pattern {
    toks: Vec<Tok>,
}

impl Pattern {
    /// Compile `pat` (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`/`[^x]`, `\` escapes; an unclosed `[` is
    /// literal).
    pub(crate) fn new(pat: &str) -> Pattern {
        let chars: Vec<char> = pat.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '*' => {
                    if !matches!(toks.last(), Some(Tok::Star)) {
                        toks.push(Tok::Star);
                    }
                    i += 1;
                }
                '?' => {
                    toks.push(Tok::AnyChar);
                    i += 1;
                }
                '\\' if i + 1 < chars.len() => {
                    toks.push(Tok::Lit(chars[i + 1]));
                    i += 2;
                }
                '[' => match parse_class(&chars, i) {
                    Some((tok, next)) => {
                        toks.push(tok);
                        i = next;
                    }
                    None => {
                        toks.push(Tok::Lit('['));
                        i += 1;
                    }
                },
                _ => {
                    toks.push(Tok::Lit(c));
                    i += 1;
                }
            }
        }
        Pattern { toks }
    }

    /// Whether the file name `name` matches (a leading `.` must be matched literally).
    pub(crate) fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        if name.first() == Some(&'.') && !matches!(self.toks.first(), Some(Tok::Lit('.'))) {
            return false;
        }
        let (mut p, mut n) = (0usize, 0usize);
        let mut backtrack: Option<(usize, usize)> = None;
        loop {
            if p < self.toks.len() {
                match &self.toks[p] {
                    Tok::Star => {
                        backtrack = Some((p, n));
                        p += 1;
                        continue;
                    }
                    tok if n < name.len() && single_matches(tok, name[n]) => {
                        p += 1;
                        n += 1;
                        continue;
                    }
                    _ => {}
                }
            } else if n == name.len() {
                return true;
            }
            // mismatch: let the last '*' swallow one more character
            match backtrack {
                Some((sp, sn)) if sn < name.len() => {
                    backtrack = Some((sp, sn + 1));
                    p = sp + 1;
                    n = sn + 1;
                }
                _ => return false,
            }
        }
    }
}

fn single_matches(tok: &Tok, c: char) -> bool {
    match tok {
        Tok::Lit(l) => *l == c,
        Tok::AnyChar => true,
        Tok::Star => false,
        Tok::Class { negated, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
    }
}

/// Parse `[...]` starting at `chars[start] == '['`; returns the token and the index after `]`.
fn parse_class(chars: &[char], start: usize) -> Option<(Tok, usize)> {
    let mut i = start + 1;
    let mut negated = false;
    if matches!(chars.get(i), Some('!') | Some('^')) {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        if c == ']' && !first {
            return Some((Tok::Class { negated, ranges }, i + 1));
        }
        first = false;
        let lo = if c == '\\' {
            i += 1;
            *chars.get(i)?
        } else {
            c
        };
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&h| h != ']') {
            let hi = *chars.get(i + 2)?;
            ranges.push((lo, hi));
            i += 3;
        } else {
            ranges.push((lo, lo));
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testutil::TempDir;

    fn m(p: &str, n: &str) -> bool {
        Pattern::new(p).matches(n)
    }

    #[test]
    fn wildcard_matching() {
        assert!(m("*", "abc"));
        assert!(m("*", ""));
        assert!(m("ipsec.*.conf", "ipsec.west.conf"));
        assert!(!m("ipsec.*.conf", "ipsec.conf"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(m("a*b*c", "abbbc"));
        assert!(!m("a*b*c", "abbbd"));
        assert!(m("?", "é"));
        assert!(!m("?", "ab"));
        assert!(m("[abc]x", "bx"));
        assert!(!m("[abc]x", "dx"));
        assert!(m("[a-c]", "b"));
        assert!(m("[!a-c]", "d"));
        assert!(!m("[^a-c]", "a"));
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("[", "["));
        assert!(m("x[y", "x[y"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("**.conf", "a.conf"));
        // hidden files need an explicit dot
        assert!(!m("*", ".hidden"));
        assert!(!m("?hidden", ".hidden"));
        assert!(m(".*", ".hidden"));
        assert!(has_wildcards("a*"));
        assert!(!has_wildcards("a\\*"));
        assert!(!has_wildcards("plain.conf"));
    }

    #[test]
    fn expand_in_directories() {
        let t = TempDir::new("glob");
        t.write("ipsec.b.secrets", "");
        t.write("ipsec.a.secrets", "");
        t.write(".ipsec.hidden.secrets", "");
        t.write("other.txt", "");
        t.mkdir("sub1");
        t.mkdir("sub2");
        t.write("sub1/x.conf", "");
        t.write("sub2/y.conf", "");
        t.mkdir("dir.secrets.d");
        let ex = |p: &str, b: &Path| expand(p, b).expect("within the bound");
        let got = ex("ipsec.*.secrets", t.path());
        assert_eq!(
            got,
            vec![
                t.path().join("ipsec.a.secrets"),
                t.path().join("ipsec.b.secrets")
            ]
        );
        let got = ex("sub*/*.conf", t.path());
        assert_eq!(
            got,
            vec![t.path().join("sub1/x.conf"), t.path().join("sub2/y.conf")]
        );
        // absolute pattern
        let abs = format!("{}/sub?/x.*", t.path().display());
        assert_eq!(
            ex(&abs, Path::new("/nonexistent")),
            vec![t.path().join("sub1/x.conf")]
        );
        // no match: empty
        assert!(ex("*.nothing", t.path()).is_empty());
        // directories are not included
        assert!(ex("dir.*", t.path()).is_empty());
        // literal: returned as is, even if missing
        assert_eq!(
            ex("missing.conf", t.path()),
            vec![t.path().join("missing.conf")]
        );
        assert_eq!(ex("/etc/x", t.path()), vec![PathBuf::from("/etc/x")]);
        // parent directory components
        let got = ex("../sub*/x.conf", &t.path().join("sub2"));
        assert_eq!(got, vec![t.path().join("sub2/../sub1/x.conf")]);
    }

    #[test]
    fn a_pattern_that_walks_too_far_is_refused() {
        let t = TempDir::new("globbound");
        for i in 0..70 {
            t.mkdir(&format!("d{i}"));
            for j in 0..70 {
                t.mkdir(&format!("d{i}/e{j}"));
            }
        }
        let err = expand("*/*/*.conf", t.path()).unwrap_err();
        assert!(err.contains("matches more than 4096 paths"), "{err}");
        assert!(expand("d1/*/*.conf", t.path()).unwrap().is_empty());
    }
}
