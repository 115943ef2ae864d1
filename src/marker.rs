//! The inhibit marker: a small text file other tools read to know that a
//! package manager is running dpkg and sshd must be left alone.
//!
//! Format (version 1), one `key=value` per line, `#` comments allowed,
//! unknown keys ignored so that later versions can add fields:
//!
//! ```text
//! version=1
//! holder_pid=1234          # the package manager process (apt, apt-get, ...)
//! holder_start_time=98765  # field 22 of /proc/PID/stat (clock ticks since boot)
//! holder_comm=apt-get
//! boot_id=5b1c...          # /proc/sys/kernel/random/boot_id at creation
//! created=1764370000       # Unix time, seconds
//! reason=apt is running dpkg (DPkg::Pre-Invoke)
//! served_units=ssh.socket,ssh.service  # the ssh units active before dpkg ran
//! ```
//!
//! `served_units` (added in 0.2; older readers ignore it) is what the
//! guard restores after dpkg when the package run stopped it (intent.rs);
//! it counts only while the marker holds, so it has the marker's safety
//! rules. Absent: not recorded; empty: nothing served.
//!
//! A marker holds while all of these are true: same boot id; a process with
//! holder_pid exists and has the same start time (so a reused PID does not
//! count); it is younger than the maximum age. Otherwise it is stale.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use crate::stamp::ProcessStamp;
use serde::Serialize;

/// A marker larger than this is garbage.
pub const MAX_MARKER_BYTES: usize = 4096;

/// The inhibit marker's content (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Marker {
    /// The package manager process holding it.
    pub holder_pid: u32,
    /// Its start time (field 22 of /proc/PID/stat).
    pub holder_start_time: u64,
    /// Its name.
    pub holder_comm: String,
    /// /proc/sys/kernel/random/boot_id when it was written.
    pub boot_id: String,
    /// When it was written (Unix time).
    pub created: u64,
    /// Why, for the admin.
    pub reason: String,
    /// The ssh units that were active when the marker was placed; None when
    /// not recorded (systemd did not answer, or an older guard wrote it).
    pub served_units: Option<Vec<String>>,
}

/// Control characters become spaces, and at most 200 characters are kept.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

impl Marker {
    /// The holder's identity as recorded.
    pub fn holder(&self) -> ProcessStamp {
        ProcessStamp {
            pid: self.holder_pid,
            start_time: self.holder_start_time,
        }
    }

    /// The file's text (version 1).
    pub fn render(&self) -> String {
        format!(
            "# ssh-upgrade-guard inhibit marker: watchdogs must not touch sshd while it holds.\n\
             # Format: see ssh-upgrade-guard-marker(7).\n\
             version=1\nholder_pid={}\nholder_start_time={}\nholder_comm={}\nboot_id={}\ncreated={}\nreason={}\n",
            self.holder_pid,
            self.holder_start_time,
            clean(&self.holder_comm),
            clean(&self.boot_id),
            self.created,
            clean(&self.reason)
        ) + &match &self.served_units {
            Some(units) => {
                let units: Vec<String> = units
                    .iter()
                    .filter(|u| crate::unit_name::is_unit_name(u))
                    .cloned()
                    .collect();
                format!("served_units={}\n", units.join(","))
            }
            None => String::new(),
        }
    }

    /// Parses a marker file; Err says what is wrong with it.
    pub fn parse(text: &str) -> Result<Marker, String> {
        if text.len() > MAX_MARKER_BYTES {
            return Err(format!("larger than {MAX_MARKER_BYTES} bytes"));
        }
        let mut version = None;
        let (mut pid, mut start, mut comm, mut boot, mut created, mut reason) =
            (None, None, String::new(), None, None, String::new());
        let mut served_units = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: not key=value", i + 1))?;
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("line {}: {k}: '{}' is not a number", i + 1, clean(v)))
            };
            match k {
                "version" => version = Some(num(v)?),
                "holder_pid" => {
                    let n = num(v)?;
                    pid =
                        Some(u32::try_from(n).ok().filter(|p| *p > 0).ok_or_else(|| {
                            format!("line {}: holder_pid {n} out of range", i + 1)
                        })?)
                }
                "holder_start_time" => start = Some(num(v)?),
                "holder_comm" => comm = v.to_string(),
                "boot_id" => boot = Some(v.to_string()),
                "created" => created = Some(num(v)?),
                "reason" => reason = v.to_string(),
                // Only unit names count: anything else in the list is dropped.
                "served_units" => {
                    served_units = Some(
                        v.split(',')
                            .map(str::trim)
                            .filter(|u| crate::unit_name::is_unit_name(u))
                            .take(8)
                            .map(String::from)
                            .collect(),
                    )
                }
                _ => {}
            }
        }
        match version {
            Some(1) => {}
            Some(v) => return Err(format!("unsupported version {v}")),
            None => return Err("no version line".into()),
        }
        Ok(Marker {
            holder_pid: pid.ok_or("no holder_pid")?,
            holder_start_time: start.ok_or("no holder_start_time")?,
            holder_comm: comm,
            boot_id: boot.ok_or("no boot_id")?,
            created: created.ok_or("no created")?,
            reason,
            served_units,
        })
    }
}

/// What is known about the marker's holder right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A process with that PID exists and started at this time.
    Running {
        /// Its current start time.
        start_time: u64,
    },
    /// No process has that pid.
    Gone,
}

/// Why a marker no longer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    /// Written before the last reboot (another boot id).
    OtherBoot,
    /// No process with the holder's pid runs.
    HolderGone {
        /// The holder's name as recorded.
        comm: String,
        /// The holder's pid as recorded.
        pid: u32,
    },
    /// The pid now belongs to another process (another start time).
    PidReused {
        /// The recorded pid.
        pid: u32,
        /// The start time of the process that has it now.
        now: u64,
        /// The recorded start time.
        recorded: u64,
    },
    /// Older than MARKER_MAX_AGE.
    TooOld {
        /// Its age in seconds.
        age: u64,
        /// MARKER_MAX_AGE in seconds.
        max: u64,
    },
}

impl std::fmt::Display for Staleness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Staleness::OtherBoot => f.write_str("it was written before the last reboot"),
            Staleness::HolderGone { comm, pid } => {
                write!(f, "its holder {comm} (pid {pid}) is gone")
            }
            Staleness::PidReused { pid, now, recorded } => write!(
                f,
                "pid {pid} now belongs to another process (start time {now}, not {recorded})"
            ),
            Staleness::TooOld { age, max } => {
                write!(f, "it is {age} s old, more than MARKER_MAX_AGE ({max} s)")
            }
        }
    }
}

/// Why a marker no longer holds, or None when it holds.
pub fn staleness(
    m: &Marker,
    boot_id: &str,
    now: u64,
    max_age_secs: u64,
    holder: Holder,
) -> Option<Staleness> {
    if m.boot_id != boot_id {
        return Some(Staleness::OtherBoot);
    }
    match holder {
        Holder::Gone => {
            return Some(Staleness::HolderGone {
                comm: m.holder_comm.clone(),
                pid: m.holder_pid,
            })
        }
        Holder::Running { start_time } if start_time != m.holder_start_time => {
            return Some(Staleness::PidReused {
                pid: m.holder_pid,
                now: start_time,
                recorded: m.holder_start_time,
            })
        }
        Holder::Running { .. } => {}
    }
    let age = now.saturating_sub(m.created);
    if age > max_age_secs {
        return Some(Staleness::TooOld {
            age,
            max: max_age_secs,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Marker {
        Marker {
            holder_pid: 42,
            holder_start_time: 1000,
            holder_comm: "apt-get".into(),
            boot_id: "b".into(),
            created: 500,
            reason: "apt is running dpkg".into(),
            served_units: None,
        }
    }

    #[test]
    fn round_trip() {
        assert_eq!(Marker::parse(&m().render()).unwrap(), m());
        let served = Marker {
            served_units: Some(vec!["ssh.socket".into(), "ssh.service".into()]),
            ..m()
        };
        assert!(served
            .render()
            .contains("served_units=ssh.socket,ssh.service\n"));
        assert_eq!(Marker::parse(&served.render()).unwrap(), served);
        let none = Marker {
            served_units: Some(vec![]),
            ..m()
        };
        assert_eq!(Marker::parse(&none.render()).unwrap(), none);
    }

    #[test]
    fn served_units_keep_only_unit_names() {
        let text = m().render() + "served_units=ssh.socket, evil\u{1b}[1m ,a b,x.service\n";
        assert_eq!(
            Marker::parse(&text).unwrap().served_units,
            Some(vec!["ssh.socket".into(), "x.service".into()])
        );
        // An older guard's marker: not recorded, not "nothing served".
        assert_eq!(Marker::parse(&m().render()).unwrap().served_units, None);
    }

    #[test]
    fn newline_in_fields_cannot_inject_keys() {
        let mut x = m();
        x.reason = "a\nholder_pid=1".into();
        x.holder_comm = "evil\nboot_id=other".into();
        let back = Marker::parse(&x.render()).unwrap();
        assert_eq!(back.holder_pid, 42);
        assert_eq!(back.boot_id, "b");
    }

    #[test]
    fn staleness_rules() {
        let r = Holder::Running { start_time: 1000 };
        assert_eq!(staleness(&m(), "b", 600, 3600, r), None);
        assert_eq!(
            staleness(&m(), "other", 600, 3600, r),
            Some(Staleness::OtherBoot)
        );
        assert_eq!(
            staleness(&m(), "b", 600, 3600, Holder::Gone),
            Some(Staleness::HolderGone {
                comm: "apt-get".into(),
                pid: 42
            })
        );
        let reused = Holder::Running { start_time: 2000 };
        assert_eq!(
            staleness(&m(), "b", 600, 3600, reused),
            Some(Staleness::PidReused {
                pid: 42,
                now: 2000,
                recorded: 1000
            })
        );
        assert_eq!(
            staleness(&m(), "b", 500 + 3601, 3600, r),
            Some(Staleness::TooOld {
                age: 3601,
                max: 3600
            })
        );
        // A clock that went backwards does not make a marker stale.
        assert_eq!(staleness(&m(), "b", 0, 3600, r), None);
        assert_eq!(
            Staleness::TooOld { age: 7, max: 5 }.to_string(),
            "it is 7 s old, more than MARKER_MAX_AGE (5 s)"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        for t in [
            "",
            "garbage",
            "version=2\n",
            "version=1\nholder_pid=0\n",
            "version=1\nholder_pid=99999999999\n",
            "version=1\nholder_pid=1\nholder_start_time=x\n",
            &"x".repeat(5000),
        ] {
            assert!(Marker::parse(t).is_err(), "{t:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = Marker::parse(&text);
        }
    }
}
