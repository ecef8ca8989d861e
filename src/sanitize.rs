//! Escaping text for log lines, FreeS/WAN's `sanitize_string`: nothing a peer sends may put a
//! newline, a terminal escape or any other control character into a log line (forged lines,
//! hidden text, terminal tricks). Two entry points:
//!
//! * [`escape_bytes`] for raw bytes from the wire (an ID payload's FQDN, …): printable ASCII
//!   stays, every other byte becomes `\xNN` and a backslash `\\`, so the result is plain ASCII
//!   and tells different inputs apart.
//! * [`escape_text`] for a whole line on its way out: characters that are control characters
//!   (C0, DEL, C1) or Unicode bidirectional formatting become `\xNN` / `\u{NNNN}`; everything
//!   else, backslashes included, stays as it is (no copy when nothing needs escaping).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Unicode bidirectional formatting characters (they reorder how a terminal shows a line).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `c` must not appear in a log line as it is.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Whether `s` holds any character [`escape_text`] would escape.
pub fn has_unsafe_chars(s: &str) -> bool {
    s.chars().any(is_unsafe_char)
}

/// Raw bytes as printable ASCII: `\xNN` for every byte outside `0x20..=0x7e`, `\\` for a
/// backslash.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(c)),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s
}

/// `s` with control characters and bidirectional formatting escaped (`\x0a`, `\u{202e}`).
pub fn escape_text(s: &str) -> Cow<'_, str> {
    if !has_unsafe_chars(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_unsafe_char(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_become_printable_ascii() {
        assert_eq!(escape_bytes(b"host.example.com"), "host.example.com");
        assert_eq!(
            escape_bytes(b"a\nb\r\x1b[31m\x00\x7f\xff\\"),
            "a\\x0ab\\x0d\\x1b[31m\\x00\\x7f\\xff\\\\"
        );
        // Distinct inputs stay distinct: a literal "\x0a" is not a newline.
        assert_ne!(escape_bytes(b"\\x0a"), escape_bytes(b"\n"));
        assert!(escape_bytes(&(0u8..=255).collect::<Vec<_>>())
            .bytes()
            .all(|c| (0x20..=0x7e).contains(&c)));
    }

    #[test]
    fn text_escapes_controls_and_bidi_only() {
        assert!(matches!(
            escape_text("plain line: ok \\ ü"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_text("id 'evil\nfake: line'\t\u{1b}[0m\u{85}\u{202e}txt"),
            "id 'evil\\x0afake: line'\\x09\\x1b[0m\\x85\\u{202e}txt"
        );
        assert!(!has_unsafe_chars(&escape_text("\u{0}\u{7f}\u{9f}\u{2066}")));
    }
}
