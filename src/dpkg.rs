//! dpkg's database, read the way dpkg reads it: /var/lib/dpkg/status merged
//! with the journal in /var/lib/dpkg/updates/ (dpkg replays the journal on
//! every database open, so the status file alone can be stale after an
//! interrupted run). Pure parsing; reading files is in system::dpkg.
#![forbid(unsafe_code)]

use serde::Serialize;

/// One package's record: `Status: <want> <eflag> <status>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageState {
    pub name: String,
    pub want: String,
    pub eflag: String,
    pub status: String,
    pub version: Option<String>,
    #[serde(skip)]
    pub depends: Vec<String>,
}

/// Statuses that dpkg --audit reports as "not fully installed".
const INCOMPLETE: &[&str] = &[
    "half-installed",
    "unpacked",
    "half-configured",
    "triggers-awaited",
    "triggers-pending",
];

impl PackageState {
    pub fn not_installed(name: &str) -> Self {
        PackageState {
            name: name.to_string(),
            want: "unknown".into(),
            eflag: "ok".into(),
            status: "not-installed".into(),
            version: None,
            depends: Vec::new(),
        }
    }

    pub fn is_installed_ok(&self) -> bool {
        self.eflag == "ok" && self.status == "installed"
    }

    /// reinstreq, half-installed, unpacked, half-configured, triggers-awaited
    /// or triggers-pending: what a later dpkg --configure must finish.
    pub fn is_incomplete(&self) -> bool {
        self.eflag == "reinstreq" || INCOMPLETE.contains(&self.status.as_str())
    }

    pub fn summary(&self) -> String {
        format!("{} {} {}", self.want, self.eflag, self.status)
    }

    /// True when this package's Depends or Pre-Depends name `pkg`.
    pub fn depends_on(&self, pkg: &str) -> bool {
        self.depends.iter().any(|d| d == pkg)
    }
}

/// A syntax error in a dpkg database file, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub source: String,
    pub line: usize,
    pub what: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.what)
    }
}

impl std::error::Error for ParseError {}

/// Parses every stanza of a status-format file into package records.
/// Stanzas without Package or Status (dpkg never writes those) are errors.
pub fn parse_records(text: &str, source: &str) -> Result<Vec<PackageState>, ParseError> {
    let mut out = Vec::new();
    let mut fields: Vec<(&str, String)> = Vec::new();
    let mut start_line = 1;
    let err = |line: usize, what: String| ParseError {
        source: source.to_string(),
        line,
        what,
    };
    let mut finish = |fields: &mut Vec<(&str, String)>, line: usize| -> Result<(), ParseError> {
        if fields.is_empty() {
            return Ok(());
        }
        let get = |k: &str| {
            fields
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.trim().to_string())
        };
        let name =
            get("Package").ok_or_else(|| err(line, "stanza without Package field".into()))?;
        let status =
            get("Status").ok_or_else(|| err(line, format!("package {name}: no Status field")))?;
        let mut words = status.split_whitespace();
        let (Some(want), Some(eflag), Some(st), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(err(
                line,
                format!("package {name}: Status '{status}' is not '<want> <flag> <status>'"),
            ));
        };
        let mut depends = Vec::new();
        for k in ["Depends", "Pre-Depends"] {
            if let Some(v) = get(k) {
                depends.extend(dependency_names(&v));
            }
        }
        out.push(PackageState {
            name,
            want: want.to_string(),
            eflag: eflag.to_string(),
            status: st.to_string(),
            version: get("Version"),
            depends,
        });
        fields.clear();
        Ok(())
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            finish(&mut fields, start_line)?;
            start_line = n + 1;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match fields.last_mut() {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(line);
                }
                None => return Err(err(n, "continuation line before any field".into())),
            }
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                fields.push((k, v.to_string()))
            }
            _ => {
                return Err(err(
                    n,
                    format!("not a 'Field: value' line: {:?}", truncate(line)),
                ))
            }
        }
    }
    finish(&mut fields, start_line)?;
    Ok(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Package names in a Depends-style field, alternatives and versions dropped.
fn dependency_names(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split([',', '|']).filter_map(|d| {
        let name = d.trim().split([' ', '(', ':', '\n', '\t']).next()?.trim();
        (!name.is_empty()).then(|| name.to_string())
    })
}

/// The byte range of the stanza for `pkg` in a status-format text, found
/// without parsing the others: the hooks run on every apt run and the status
/// file of a big machine is megabytes.
pub fn find_stanza<'a>(text: &'a str, pkg: &str) -> Option<&'a str> {
    let needle = format!("Package: {pkg}\n");
    let bytes = text.as_bytes();
    let at = memchr::memmem::find_iter(bytes, needle.as_bytes())
        .find(|&at| at == 0 || bytes[at - 1] == b'\n')?;
    let end = memchr::memmem::find(&bytes[at..], b"\n\n")
        .map(|e| at + e + 1)
        .unwrap_or(text.len());
    // Both ends sit next to an ASCII newline: char boundaries.
    Some(&text[at..end])
}

/// The state of one package: the status file's record, then every journal
/// entry in order (a later record replaces an earlier one, as in dpkg).
/// `journal` is the contents of updates/NNNN files in ascending order.
pub fn package_state(
    status: &str,
    journal: &[(String, String)],
    pkg: &str,
) -> Result<PackageState, ParseError> {
    let mut state = PackageState::not_installed(pkg);
    if let Some(stanza) = find_stanza(status, pkg) {
        if let Some(rec) = parse_records(stanza, "status")?
            .into_iter()
            .find(|r| r.name == pkg)
        {
            state = rec;
        }
    }
    for (source, text) in journal {
        for rec in parse_records(text, source)? {
            if rec.name == pkg {
                state = rec;
            }
        }
    }
    Ok(state)
}

/// Every package's state with the journal applied.
pub fn all_states(
    status: &str,
    journal: &[(String, String)],
) -> Result<Vec<PackageState>, ParseError> {
    let mut all = parse_records(status, "status")?;
    for (source, text) in journal {
        for rec in parse_records(text, source)? {
            match all.iter_mut().find(|r| r.name == rec.name) {
                Some(slot) => *slot = rec,
                None => all.push(rec),
            }
        }
    }
    Ok(all)
}

/// Journal file names dpkg replays: all digits. Anything else (tmp.i) is
/// dpkg's own temporary and is ignored, as dpkg does.
pub fn is_journal_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 20 && name.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: libc6\nStatus: install ok installed\nVersion: 2.36\n\n\
Package: openssh-server\nStatus: install ok half-configured\nPriority: optional\nVersion: 1:9.2p1-2\n\
Depends: libc6 (>= 2.36), openssh-client (= 1:9.2p1-2),\n openssh-sftp-server | ssh-sftp\nDescription: x\n more\n\n\
Package: task-ssh-server\nStatus: install ok unpacked\nDepends: tasksel, openssh-server:any\nVersion: 3\n";

    #[test]
    fn finds_state_and_depends() {
        let st = package_state(STATUS, &[], "openssh-server").unwrap();
        assert_eq!(st.status, "half-configured");
        assert_eq!(st.version.as_deref(), Some("1:9.2p1-2"));
        assert!(st.is_incomplete());
        assert!(!st.is_installed_ok());
        let all = all_states(STATUS, &[]).unwrap();
        let task = all.iter().find(|p| p.name == "task-ssh-server").unwrap();
        assert!(task.depends_on("openssh-server"));
        assert!(!all[0].depends_on("openssh-server"));
        let sshd = all.iter().find(|p| p.name == "openssh-server").unwrap();
        assert!(sshd.depends_on("openssh-sftp-server"));
        assert!(sshd.depends_on("ssh-sftp"));
    }

    #[test]
    fn journal_overrides_status() {
        let j = vec![
            (
                "updates/0000".to_string(),
                "Package: openssh-server\nStatus: install ok unpacked\n".to_string(),
            ),
            (
                "updates/0001".to_string(),
                "Package: openssh-server\nStatus: install ok installed\nVersion: 2\n".to_string(),
            ),
        ];
        let st = package_state(STATUS, &j, "openssh-server").unwrap();
        assert!(st.is_installed_ok());
        assert_eq!(st.version.as_deref(), Some("2"));
    }

    #[test]
    fn every_incomplete_state() {
        for s in INCOMPLETE {
            let t = format!("Package: p\nStatus: install ok {s}\n");
            assert!(package_state(&t, &[], "p").unwrap().is_incomplete(), "{s}");
        }
        let t = "Package: p\nStatus: install reinstreq installed\n";
        assert!(package_state(t, &[], "p").unwrap().is_incomplete());
        let t = "Package: p\nStatus: deinstall ok config-files\n";
        let st = package_state(t, &[], "p").unwrap();
        assert!(!st.is_incomplete() && !st.is_installed_ok());
    }

    #[test]
    fn absent_package_is_not_installed() {
        let st = package_state(STATUS, &[], "nope").unwrap();
        assert_eq!(st.status, "not-installed");
        // A name that is only a prefix of another must not match.
        let st = package_state(STATUS, &[], "openssh").unwrap();
        assert_eq!(st.status, "not-installed");
    }

    #[test]
    fn hostile_input_names_source_and_line() {
        let e = parse_records("Package: x\nStatus: install ok\n", "updates/0003").unwrap_err();
        assert_eq!(e.source, "updates/0003");
        assert!(e.to_string().starts_with("updates/0003:1:"), "{e}");
        let e = parse_records("Package: x\nStatus: a b c\ngarbage line\n", "s").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(parse_records(" cont\n", "s").is_err());
        assert!(parse_records("Version: 1\n", "s").is_err());
        assert!(parse_records("Package: x\nStatus: a b c d\n", "s").is_err());
    }

    #[test]
    fn journal_names() {
        assert!(is_journal_name("0000"));
        assert!(!is_journal_name("tmp.i"));
        assert!(!is_journal_name(""));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*", pkg in "[a-z]{1,8}") {
            let _ = parse_records(&text, "s");
            let _ = package_state(&text, &[("j".into(), text.clone())], &pkg);
            let _ = all_states(&text, &[]);
        }

        /// find_stanza (memmem, no parsing) picks the same stanza as
        /// splitting the file into stanzas would, whatever look-alike
        /// names and field values surround it.
        #[test]
        fn find_stanza_agrees_with_splitting(
            names in proptest::collection::vec(
                proptest::sample::select(vec!["openssh-server", "openssh", "xopenssh-server", "openssh-server-udeb", "p"]),
                0..8,
            ),
            pkg in proptest::sample::select(vec!["openssh-server", "openssh", "p"]),
        ) {
            let text: String = names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("Package: {n}\nStatus: install ok installed\nDescription: nr {i}\n Package: {pkg}\n\n"))
                .collect();
            let naive = text
                .split_inclusive("\n\n")
                .find(|st| st.starts_with(&format!("Package: {pkg}\n")))
                .map(|st| st.strip_suffix('\n').unwrap_or(st));
            proptest::prop_assert_eq!(find_stanza(&text, pkg), naive);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_records(&text, "s");
            let _ = package_state(&text, &[], "openssh-server");
        }
    }
}
