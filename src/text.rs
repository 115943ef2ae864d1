//! Escaping what the system hands us before it reaches a line of output.
//! A process name, command line, binary path, unit name or sshd message may
//! hold control characters (a comm of "sshd\nOK" is one prctl away): printed
//! raw, it splits the `check` line or a hook's `found:` line in two, or
//! moves a terminal's cursor. Every text output escapes them; JSON output
//! does not need this (serde_json escapes control characters itself).
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with every control character (C0, DEL, C1; newline and tab included)
/// written as a visible escape: `\n`, `\t`, `\r`, else `\u{1b}`. Borrowed
/// when there is nothing to escape (the usual case).
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`esc`] for text made of lines: every control character but the
/// newlines between them.
pub fn esc_but_newlines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&esc(line));
    }
    Cow::Owned(out)
}

/// Appends `line` to `out` as exactly one line: escaped, then a newline.
pub fn push_line(out: &mut String, line: &str) {
    out.push_str(&esc(line));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(esc("sshd"), "sshd");
        assert!(matches!(esc("/usr/sbin/sshd (deleted)"), Cow::Borrowed(_)));
        assert_eq!(esc("a\nb"), "a\\nb");
        assert_eq!(esc("a\rb\tc"), "a\\rb\\tc");
        assert_eq!(esc("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(esc("x\u{7f}\u{85}"), "x\\u{7f}\\u{85}");
        // Not control characters: kept as they are.
        assert_eq!(esc("é ü \\ \""), "é ü \\ \"");
    }

    #[test]
    fn text_of_lines_keeps_its_newlines_only() {
        assert_eq!(esc_but_newlines("a\nb\n"), "a\nb\n");
        assert_eq!(esc_but_newlines("a\r\n\u{1b}b\n"), "a\\r\n\\u{1b}b\n");
    }

    #[test]
    fn push_line_adds_exactly_one_line() {
        let mut o = String::new();
        push_line(&mut o, "found: pid 1 (sshd\nOK: ssh is healthy)");
        assert_eq!(o.lines().count(), 1);
        assert!(o.ends_with('\n'));
    }

    proptest::proptest! {
        #[test]
        fn escaped_text_has_no_control_characters(s in proptest::collection::vec(proptest::char::any(), 0..64)) {
            let s: String = s.into_iter().collect();
            let e = esc(&s);
            proptest::prop_assert!(!e.chars().any(char::is_control));
            if !s.chars().any(char::is_control) {
                proptest::prop_assert_eq!(e.as_ref(), s.as_str());
            }
        }
    }
}
