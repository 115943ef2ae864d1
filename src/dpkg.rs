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
    /// The stanza's Architecture (a multi-arch package has one stanza per
    /// architecture).
    pub architecture: Option<String>,
    /// The package's other stanzas (other architectures), as
    /// "name:arch want eflag status"; empty for the usual single stanza.
    pub other_instances: Vec<String>,
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
            architecture: None,
            other_instances: Vec::new(),
            depends: Vec::new(),
        }
    }

    /// The name to show and to give dpkg: arch-qualified when the package
    /// has several stanzas (dpkg refuses an ambiguous bare name).
    pub fn qualified_name(&self) -> String {
        match (&self.architecture, self.other_instances.is_empty()) {
            (Some(a), false) => format!("{}:{a}", self.name),
            _ => self.name.clone(),
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
            architecture: get("Architecture"),
            other_instances: Vec::new(),
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

/// The byte range of the first stanza for `pkg` in a status-format text;
/// see [`find_stanzas`]. (The proptest's reference.)
#[cfg(test)]
pub fn find_stanza<'a>(text: &'a str, pkg: &str) -> Option<&'a str> {
    find_stanzas(text, pkg).next()
}

/// The byte ranges of every stanza for `pkg` (one per architecture of a
/// multi-arch package), found without parsing the others: the hooks run on
/// every apt run and the status file of a big machine is megabytes.
pub fn find_stanzas<'a>(text: &'a str, pkg: &str) -> impl Iterator<Item = &'a str> + 'a {
    let needle = format!("Package: {pkg}\n").into_bytes();
    let bytes = text.as_bytes();
    let mut from = 0;
    std::iter::from_fn(move || {
        let at = memchr::memmem::find_iter(&bytes[from..], &needle)
            .map(|i| from + i)
            .find(|&at| at == 0 || bytes[at - 1] == b'\n')?;
        let end = memchr::memmem::find(&bytes[at..], b"\n\n")
            .map(|e| at + e + 1)
            .unwrap_or(text.len());
        from = end;
        // Both ends sit next to an ASCII newline: char boundaries.
        Some(&text[at..end])
    })
}

/// Which stanza speaks for a package with several (multi-arch): one that is
/// not fully installed first (it is what must be finished), then the
/// installed one, then config-files, then the rest.
fn rank(p: &PackageState) -> u8 {
    if p.is_incomplete() {
        0
    } else if p.status == "installed" {
        1
    } else if p.status == "config-files" {
        2
    } else {
        3
    }
}

/// The state of one package: the status file's records, then every journal
/// entry in order (a later record replaces an earlier one of the same
/// architecture, as in dpkg). `journal` is the contents of updates/NNNN
/// files in ascending order. With several stanzas (multi-arch, e.g. one
/// installed and one left in config-files) every one counts: the one that
/// speaks for the package is chosen by [`rank`], the others are listed in
/// `other_instances`.
pub fn package_state(
    status: &str,
    journal: &[(String, String)],
    pkg: &str,
) -> Result<PackageState, ParseError> {
    let mut all: Vec<PackageState> = Vec::new();
    let mut put =
        |rec: PackageState| match all.iter_mut().find(|r| r.architecture == rec.architecture) {
            Some(slot) => *slot = rec,
            None => all.push(rec),
        };
    for stanza in find_stanzas(status, pkg) {
        for rec in parse_records(stanza, "status")? {
            if rec.name == pkg {
                put(rec);
            }
        }
    }
    for (source, text) in journal {
        for rec in parse_records(text, source)? {
            if rec.name == pkg {
                put(rec);
            }
        }
    }
    let Some(best) = (0..all.len()).min_by_key(|&i| rank(&all[i])) else {
        return Ok(PackageState::not_installed(pkg));
    };
    let mut state = all.remove(best);
    state.other_instances = all
        .iter()
        .map(|o| {
            format!(
                "{}:{} {}",
                o.name,
                o.architecture.as_deref().unwrap_or("?"),
                o.summary()
            )
        })
        .collect();
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
            match all
                .iter_mut()
                .find(|r| r.name == rec.name && r.architecture == rec.architecture)
            {
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

    /// A multi-arch machine: amd64 installed, i386 left in config-files
    /// (in either order in the file), or one of them half-configured.
    #[test]
    fn every_stanza_of_a_multi_arch_package_counts() {
        let st = |a: &str, s: &str| {
            format!("Package: openssh-server\nStatus: {s}\nArchitecture: {a}\nVersion: 1\n\n")
        };
        let cfg = st("i386", "deinstall ok config-files");
        let ok = st("amd64", "install ok installed");
        for text in [format!("{cfg}{ok}"), format!("{ok}{cfg}")] {
            let p = package_state(&text, &[], "openssh-server").unwrap();
            assert!(p.is_installed_ok(), "the installed stanza decides: {p:?}");
            assert_eq!(p.architecture.as_deref(), Some("amd64"));
            assert_eq!(
                p.other_instances,
                vec!["openssh-server:i386 deinstall ok config-files"]
            );
            assert_eq!(p.qualified_name(), "openssh-server:amd64");
        }
        let half = st("i386", "install ok half-configured");
        for text in [format!("{half}{ok}"), format!("{ok}{half}")] {
            let p = package_state(&text, &[], "openssh-server").unwrap();
            assert!(
                p.is_incomplete(),
                "a not fully installed stanza is a finding"
            );
            assert_eq!(p.qualified_name(), "openssh-server:i386");
        }
        // The journal replaces the stanza of its own architecture only.
        let j = vec![(
            "updates/0001".to_string(),
            "Package: openssh-server\nStatus: install ok half-configured\nArchitecture: amd64\n"
                .to_string(),
        )];
        let p = package_state(&format!("{cfg}{ok}"), &j, "openssh-server").unwrap();
        assert!(p.is_incomplete());
        assert_eq!(p.architecture.as_deref(), Some("amd64"));
        assert_eq!(p.other_instances.len(), 1);
        let all = all_states(&format!("{cfg}{ok}"), &j).unwrap();
        assert_eq!(all.len(), 2);
        // A single stanza keeps the bare name.
        let p = package_state(&ok, &[], "openssh-server").unwrap();
        assert_eq!(p.qualified_name(), "openssh-server");
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
