//! What sshd reads when it starts, learnt without running it: the files an
//! sshd_config pulls in (`Include`, with sshd's globbing and its rule that a
//! relative path is under /etc/ssh), the host keys it names, and the options
//! ssh.service passes (`sshd -D $SSHD_OPTS`, with SSHD_OPTS from
//! /etc/default/ssh). The `sshd -T` cache is keyed on every one of those
//! files, and validation, ports and the rescue sshd use the same options as
//! the unit. Pure: text in, paths and arguments out.
#![forbid(unsafe_code)]

/// sshd's own limit on nested Include (READCONF_MAX_DEPTH).
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// sshd resolves a relative Include path against this directory (SSHDIR).
pub const SSHDIR: &str = "/etc/ssh";
/// The host keys sshd loads when the configuration names none.
pub const DEFAULT_HOST_KEYS: [&str; 3] = [
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
];

/// Splits one configuration line into words the way OpenSSH's argv_split
/// does: whitespace separates, single and double quotes group, a backslash
/// escapes a quote, a backslash or (outside quotes) a space, and a `#` that
/// starts a word ends the line.
pub fn split_config_line(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => return words,
            _ => {}
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            if quote.is_none() && c.is_whitespace() {
                break;
            }
            chars.next();
            match (c, quote) {
                ('\\', q) => match chars.peek() {
                    Some(&n) if n == '\'' || n == '"' || n == '\\' || (q.is_none() && n == ' ') => {
                        word.push(n);
                        chars.next();
                    }
                    _ => word.push('\\'),
                },
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (c, _) => word.push(c),
            }
        }
        words.push(word);
    }
}

/// Keyword and arguments of one sshd_config line ("Keyword args" or
/// "Keyword=args"); None for blank and comment lines.
pub fn keyword_line(line: &str) -> Option<(String, Vec<String>)> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    // sshd accepts one '=' between the keyword and its arguments.
    let end = t.find(|c: char| c.is_whitespace() || c == '=')?;
    let (kw, rest) = t.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    Some((kw.to_ascii_lowercase(), split_config_line(rest)))
}

/// The file references of one configuration text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    /// Include arguments, each a glob pattern, already made absolute.
    pub includes: Vec<String>,
    /// HostKey arguments.
    pub host_keys: Vec<String>,
}

/// Makes an Include argument absolute as sshd does: relative to /etc/ssh.
pub fn include_path(arg: &str) -> String {
    if arg.starts_with('/') || arg.starts_with('~') {
        arg.to_string()
    } else {
        format!("{SSHDIR}/{arg}")
    }
}

/// Include and HostKey directives of a configuration text (Match blocks
/// included: sshd reads the files of an Include in a Match block at start
/// too).
pub fn parse_refs(text: &str) -> Refs {
    let mut r = Refs::default();
    for line in text.lines() {
        let Some((kw, args)) = keyword_line(line) else {
            continue;
        };
        match kw.as_str() {
            "include" => r.includes.extend(args.iter().map(|a| include_path(a))),
            "hostkey" => r.host_keys.extend(args.into_iter().take(1)),
            _ => {}
        }
    }
    r
}

/// How the files an Include pattern stands for can be watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncludeTarget {
    /// One file (no wildcard): watch it and its directory.
    File(String),
    /// Entries of `dir` whose name matches `pattern` (a wildcard in the last
    /// component only): watch the directory and every match.
    Glob { dir: String, pattern: String },
    /// Cannot be covered by watching a bounded set of paths (a wildcard in
    /// a directory component, `~`): the cache must not be used.
    Uncoverable(String),
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

pub fn include_target(path: &str) -> IncludeTarget {
    if !path.starts_with('/') {
        return IncludeTarget::Uncoverable(format!("Include {path}: not an absolute path"));
    }
    let (dir, last) = path.rsplit_once('/').unwrap_or(("", path));
    let dir = if dir.is_empty() { "/" } else { dir };
    if has_wildcard(dir) {
        return IncludeTarget::Uncoverable(format!(
            "Include {path}: a wildcard in a directory name"
        ));
    }
    if has_wildcard(last) {
        IncludeTarget::Glob {
            dir: dir.to_string(),
            pattern: last.to_string(),
        }
    } else {
        IncludeTarget::File(path.to_string())
    }
}

/// glob(3)'s matching of one path component: `*`, `?`, `[...]` (with `!`
/// or `^` negation and ranges), a backslash escaping the next character; a
/// leading `.` must be matched explicitly.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    // Iterative with one backtrack point for the last '*': linear enough
    // for file names, and no recursion depth to worry about.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => Some(pi + 1),
                '[' => match class(p, pi, n[ni]) {
                    Some((true, next)) => Some(next),
                    Some((false, _)) => None,
                    // No closing ']': a literal '['.
                    None => (n[ni] == '[').then_some(pi + 1),
                },
                '\\' if pi + 1 < p.len() => (p[pi + 1] == n[ni]).then_some(pi + 2),
                c => (c == n[ni]).then_some(pi + 1),
            }
        } else {
            None
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A bracket expression at p[start] == '[': whether `c` matches it and
/// where the pattern goes on, or None when it has no closing ']'.
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let lo = p[i];
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|h| *h != ']') {
            let hi = p[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    None
}

// ------------------------------------------------------------ SSHD_OPTS

/// The value of `key` in a systemd EnvironmentFile (ssh.service reads
/// /etc/default/ssh as `EnvironmentFile=-/etc/default/ssh`): `KEY=VALUE`
/// lines, `#` and `;` comments, single or double quotes around the value
/// (backslash escapes inside double quotes), a trailing backslash
/// continuing the line. The last assignment wins.
pub fn env_file_value(text: &str, key: &str) -> Option<String> {
    let mut found = None;
    let mut lines = text.lines();
    while let Some(first) = lines.next() {
        let mut line = first.to_string();
        while line.ends_with('\\') && !line.ends_with("\\\\") {
            line.pop();
            match lines.next() {
                Some(more) => line.push_str(more),
                None => break,
            }
        }
        let t = line.trim_start();
        if t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        if k.trim() != key {
            continue;
        }
        found = Some(env_value(v.trim()));
    }
    found
}

fn env_value(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                out.push(n);
                            }
                        }
                        c => out.push(c),
                    }
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c => out.push(c),
        }
    }
    out.trim_end().to_string()
}

/// How systemd expands an unbraced `$SSHD_OPTS` word in ExecStart: the value
/// split at whitespace into zero or more arguments, quotes grouping and
/// removed, backslash escaping the next character.
pub fn split_words(v: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = v.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            if quote.is_none() && c.is_whitespace() {
                break;
            }
            chars.next();
            match (c, quote) {
                ('\\', Some('\'')) => word.push('\\'),
                ('\\', _) => {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (c, _) => word.push(c),
            }
        }
        words.push(word);
    }
}

/// The options ssh.service passes to `sshd -D`, sorted by what they do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshdOpts {
    /// Every argument, as the unit passes it (the rescue sshd gets these).
    pub all: Vec<String>,
    /// The ones that change the configuration `sshd -T` prints and checks:
    /// -4 -6 -f -h -c -o -p, with their values.
    pub config_args: Vec<String>,
    /// `-f FILE`: the configuration file instead of /etc/ssh/sshd_config.
    pub config_file: Option<String>,
    /// `-h FILE`: host keys.
    pub host_keys: Vec<String>,
    /// `-c FILE`: host certificates.
    pub host_certs: Vec<String>,
    /// `-o OPTION` values: configuration lines in their own right.
    pub options: Vec<String>,
}

/// sshd's options that take a value (sshd.c's getopt string
/// "C:E:b:c:f:g:h:k:o:p:u:46DGQRTdeiqrtV").
const WITH_VALUE: &str = "CEbcfghkopu";
const CONFIG_FLAGS: &str = "46";

/// Sorts sshd's arguments (getopt rules: clustered flags `-De`, a value
/// glued `-p2222` or separate `-p 2222`, `--` ends the options).
pub fn parse_sshd_opts(args: &[String]) -> SshdOpts {
    let mut o = SshdOpts {
        all: args.to_vec(),
        ..Default::default()
    };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            break;
        }
        let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            continue;
        };
        for (at, f) in flags.char_indices() {
            if CONFIG_FLAGS.contains(f) {
                o.config_args.push(format!("-{f}"));
                continue;
            }
            if !WITH_VALUE.contains(f) {
                continue;
            }
            let glued = &flags[at + f.len_utf8()..];
            let value = if !glued.is_empty() {
                glued.to_string()
            } else if let Some(v) = args.get(i) {
                i += 1;
                v.clone()
            } else {
                break;
            };
            match f {
                'f' => o.config_file = Some(value.clone()),
                'h' => o.host_keys.push(value.clone()),
                'c' => o.host_certs.push(value.clone()),
                'o' => o.options.push(value.clone()),
                _ => {}
            }
            if "fhcop".contains(f) {
                o.config_args.push(format!("-{f}"));
                o.config_args.push(value);
            }
            break;
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn config_lines_split_like_openssh() {
        assert_eq!(split_config_line("a b\tc"), s(&["a", "b", "c"]));
        assert_eq!(
            split_config_line("\"/etc/ssh/my dir/*.conf\" x"),
            s(&["/etc/ssh/my dir/*.conf", "x"])
        );
        assert_eq!(split_config_line("a\\ b 'c d'"), s(&["a b", "c d"]));
        assert_eq!(split_config_line("a # comment"), s(&["a"]));
        assert_eq!(split_config_line("a#b"), s(&["a#b"]));
        assert_eq!(
            keyword_line("  INCLUDE=conf.d/*.conf other.conf"),
            Some(("include".into(), s(&["conf.d/*.conf", "other.conf"])))
        );
        assert_eq!(keyword_line("# Include x"), None);
        assert_eq!(keyword_line(""), None);
    }

    #[test]
    fn includes_and_host_keys_are_found_anywhere_and_made_absolute() {
        let r = parse_refs(
            "Port 22\nInclude /etc/ssh/sshd_config.d/*.conf\n\
             include relative.conf \"/srv/ssh conf/x.conf\"\n\
             HostKey /etc/ssh/ssh_host_ed25519_key\n\
             Match User backup\n  Include /etc/ssh/backup.d/*\n",
        );
        assert_eq!(
            r.includes,
            s(&[
                "/etc/ssh/sshd_config.d/*.conf",
                "/etc/ssh/relative.conf",
                "/srv/ssh conf/x.conf",
                "/etc/ssh/backup.d/*"
            ])
        );
        assert_eq!(r.host_keys, s(&["/etc/ssh/ssh_host_ed25519_key"]));
    }

    #[test]
    fn include_targets() {
        assert_eq!(
            include_target("/etc/ssh/sshd_config.d/*.conf"),
            IncludeTarget::Glob {
                dir: "/etc/ssh/sshd_config.d".into(),
                pattern: "*.conf".into()
            }
        );
        assert_eq!(
            include_target("/srv/x.conf"),
            IncludeTarget::File("/srv/x.conf".into())
        );
        assert!(matches!(
            include_target("/etc/*/x.conf"),
            IncludeTarget::Uncoverable(_)
        ));
        assert!(matches!(
            include_target("~/x.conf"),
            IncludeTarget::Uncoverable(_)
        ));
    }

    #[test]
    fn glob_matching_like_glob3() {
        assert!(glob_match("*.conf", "50-cloud-init.conf"));
        assert!(!glob_match("*.conf", "x.conf.dpkg-old"));
        assert!(!glob_match("*.conf", ".hidden.conf"));
        assert!(glob_match(".*.conf", ".hidden.conf"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("[0-9]*-x", "50-x"));
        assert!(!glob_match("[!0-9]*", "50-x"));
        assert!(glob_match("[]]", "]"));
        assert!(glob_match("a[", "a["));
        assert!(glob_match("\\*", "*"));
        assert!(!glob_match("\\*", "x"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(!glob_match("*a*b", "xxaxxbxxc"));
    }

    #[test]
    fn sshd_opts_from_an_environment_file() {
        let t = "# Default settings for openssh-server.\n\n\
                 SSHD_OPTS=\"-p 2222 -f /etc/ssh/other_config -o 'Banner none'\"\n";
        let v = env_file_value(t, "SSHD_OPTS").unwrap();
        let args = split_words(&v);
        assert_eq!(
            args,
            s(&[
                "-p",
                "2222",
                "-f",
                "/etc/ssh/other_config",
                "-o",
                "Banner none"
            ])
        );
        let o = parse_sshd_opts(&args);
        assert_eq!(o.config_file.as_deref(), Some("/etc/ssh/other_config"));
        assert_eq!(o.options, s(&["Banner none"]));
        assert_eq!(o.config_args, args);
        // Debian's default file: an empty SSHD_OPTS.
        let v = env_file_value("SSHD_OPTS=\n", "SSHD_OPTS").unwrap();
        assert!(split_words(&v).is_empty());
        assert_eq!(env_file_value("# SSHD_OPTS=-p 1\n", "SSHD_OPTS"), None);
        assert_eq!(
            env_file_value("SSHD_OPTS=-p 1\nSSHD_OPTS='-p 2'\n", "SSHD_OPTS").as_deref(),
            Some("-p 2")
        );
        assert_eq!(
            env_file_value("SSHD_OPTS=\"-p \\\n 2\"\n", "SSHD_OPTS").as_deref(),
            Some("-p  2")
        );
    }

    #[test]
    fn sshd_opts_follow_getopt() {
        let o = parse_sshd_opts(&s(&["-De", "-p2222", "-4", "-h", "/k", "-oPort=3", "-d"]));
        assert_eq!(
            o.config_args,
            s(&["-p", "2222", "-4", "-h", "/k", "-o", "Port=3"])
        );
        assert_eq!(o.host_keys, s(&["/k"]));
        assert_eq!(o.options, s(&["Port=3"]));
        // -E takes a value that is not configuration; -f with no value.
        let o = parse_sshd_opts(&s(&["-E", "/var/log/x", "-f"]));
        assert!(o.config_args.is_empty());
        assert_eq!(o.config_file, None);
        let o = parse_sshd_opts(&s(&["--", "-p", "1"]));
        assert!(o.config_args.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC*", name in "\\PC{0,20}") {
            let r = parse_refs(&text);
            for i in &r.includes {
                let _ = include_target(i);
            }
            let _ = glob_match(&text, &name);
            let v = env_file_value(&text, "SSHD_OPTS").unwrap_or_default();
            let _ = parse_sshd_opts(&split_words(&v));
            let _ = parse_sshd_opts(&split_words(&text));
        }

        /// A pattern without wildcards matches exactly itself.
        #[test]
        fn literal_patterns_match_only_themselves(a in "[a-z0-9._-]{1,12}", b in "[a-z0-9._-]{1,12}") {
            proptest::prop_assert_eq!(glob_match(&a, &b), a == b);
            proptest::prop_assert!(glob_match("*", &a) || a.starts_with('.'));
        }
    }
}
