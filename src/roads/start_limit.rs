//! Road a: a unit systemd refused to start because it was started too often
//! (start and trigger limits), and the budget that keeps the guard's own
//! starts from being the storm.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use crate::model::{UnitState, Units};
use serde::Serialize;

/// systemd refused to start a unit because it was started too often: a
/// restart storm (needrestart after every unattended-upgrades step, a cron
/// watchdog) leaves ssh down with "Start request repeated too quickly".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartLimit {
    /// The unit.
    pub unit: String,
    /// systemd's Result: `start-limit-hit` (the unit's own start limit),
    /// `trigger-limit-hit` (a socket triggered too often) or
    /// `service-start-limit-hit` (a socket whose service hit its limit).
    pub result: String,
    /// ssh.service's automatic restarts (Service.NRestarts), when read.
    /// Restarts by hand (`systemctl restart`) are not counted by systemd.
    pub n_restarts: Option<u32>,
}

/// The Results systemd gives a unit that hit a start or trigger limit.
pub const LIMIT_RESULTS: [&str; 3] = [
    "start-limit-hit",
    "trigger-limit-hit",
    "service-start-limit-hit",
];

impl StartLimit {
    /// What systemd's journal says for this result, so the admin can
    /// match it with what they saw.
    pub fn journal_text(&self) -> &'static str {
        match self.result.as_str() {
            "trigger-limit-hit" => "Trigger limit hit, refusing further activation",
            _ => "Start request repeated too quickly",
        }
    }
}

impl std::fmt::Display for StartLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Starts with the wording of any failed unit ("X failed (result
        // R)"), then says what systemd's journal says about it.
        write!(
            f,
            "{} failed (result {}): \"{}\"",
            self.unit,
            self.result,
            self.journal_text()
        )?;
        if let Some(n) = self.n_restarts {
            write!(f, "; {n} automatic restart(s) since it was last started")?;
        }
        Ok(())
    }
}

/// One unit's start limit, if it is failed with one.
fn start_limit(u: &UnitState) -> Option<StartLimit> {
    (u.is_failed() && LIMIT_RESULTS.contains(&u.result.as_str())).then(|| StartLimit {
        unit: u.name.clone(),
        result: u.result.clone(),
        n_restarts: u.n_restarts,
    })
}

/// Units that are failed because they hit a start or trigger limit (the
/// Result is read only off the healthy path: a unit that looks healthy is
/// not failed, so nothing is missed there).
pub fn start_limits(units: &Units) -> Vec<StartLimit> {
    [&units.socket, &units.service]
        .into_iter()
        .filter_map(start_limit)
        .collect()
}

/// The guard's own starts are never the storm: at most this many starts
/// (or restarts) of one unit by the guard within [`GUARD_START_WINDOW`]
/// seconds, across runs (the hooks run many times in one unattended-upgrades
/// run, and the guard's reset-failed clears systemd's own counter), and
/// never more than one per unit in one run. Below systemd's default burst
/// (5 in 10 s) even if every run came at once.
pub const GUARD_START_BURST: usize = 3;
/// The window of [`GUARD_START_BURST`], in seconds.
pub const GUARD_START_WINDOW: u64 = 600;

/// The guard's start ledger: one "UNIXTIME UNIT" line per start it made.
/// Garbage lines are ignored (the file is the guard's own, under /run).
pub fn ledger_starts(ledger: &str, unit: &str, now: u64) -> usize {
    ledger
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(t, u)| {
            *u == unit
                && t.parse::<u64>()
                    .is_ok_and(|t| now.saturating_sub(t) < GUARD_START_WINDOW && t <= now)
        })
        .count()
}

/// The ledger with `unit` started at `now` added and old entries dropped.
pub fn ledger_add(ledger: &str, unit: &str, now: u64) -> String {
    let mut out: String = ledger
        .lines()
        .filter(|l| {
            l.split_once(' ').is_some_and(|(t, u)| {
                !u.is_empty()
                    && !u.contains(char::is_whitespace)
                    && t.parse::<u64>()
                        .is_ok_and(|t| t <= now && now - t < GUARD_START_WINDOW)
            })
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("{now} {unit}\n"));
    out
}

/// Why the guard must not start these units now, or None. `units`: the
/// units a plan would start or restart, in order.
pub fn start_budget(ledger: &str, units: &[&str], now: u64) -> Option<String> {
    for (i, u) in units.iter().enumerate() {
        if units[..i].contains(u) {
            return Some(format!(
                "the plan starts {u} twice; the guard starts a unit at most once per run"
            ));
        }
        let n = ledger_starts(ledger, u, now);
        if n >= GUARD_START_BURST {
            return Some(format!(
                "the guard already started {u} {n} times in the last {} minutes and will not start it again (it would be a restart storm); nothing was changed. See why with 'journalctl -u {u}'; 'systemctl start {u}' starts it by hand",
                GUARD_START_WINDOW / 60
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roads::fixtures::unit;
    use crate::roads::Roads;

    #[test]
    fn a_restart_storm_is_named_with_systemds_words() {
        // What systemd showed after 6 restarts of ssh.service in 10 s on
        // the noble fixture: the socket fails with the service.
        let mut service = unit("ssh.service", "failed", "start-limit-hit");
        service.n_restarts = Some(0);
        let units = Units {
            service,
            socket: unit("ssh.socket", "failed", "service-start-limit-hit"),
        };
        let found = start_limits(&units);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].to_string(),
            "ssh.socket failed (result service-start-limit-hit): \"Start request repeated too quickly\""
        );
        assert_eq!(
            found[1].to_string(),
            "ssh.service failed (result start-limit-hit): \"Start request repeated too quickly\"; 0 automatic restart(s) since it was last started"
        );
        let t = start_limit(&unit("ssh.socket", "failed", "trigger-limit-hit")).unwrap();
        assert!(t
            .to_string()
            .contains("Trigger limit hit, refusing further activation"));
    }

    #[test]
    fn other_failures_and_healthy_units_are_not_start_limits() {
        for (active, result) in [
            ("failed", "resources"),
            ("failed", "exit-code"),
            ("failed", ""),
            // A unit that recovered keeps no failed state.
            ("active", "success"),
            // Result lingers only on failed units; never trust it alone.
            ("inactive", "start-limit-hit"),
        ] {
            assert!(
                start_limit(&unit("ssh.service", active, result)).is_none(),
                "{active} {result}"
            );
        }
        assert_eq!(
            Roads::of(&crate::model::Snapshot::default()),
            Roads::default()
        );
    }

    #[test]
    fn the_guards_own_starts_are_bounded_across_runs() {
        let mut ledger = String::new();
        let t0 = 1_700_000_000;
        for i in 0..GUARD_START_BURST as u64 {
            assert_eq!(start_budget(&ledger, &["ssh.socket"], t0 + i), None);
            ledger = ledger_add(&ledger, "ssh.socket", t0 + i);
        }
        let why = start_budget(&ledger, &["ssh.socket"], t0 + 5).unwrap();
        assert!(why.contains("already started ssh.socket 3 times"), "{why}");
        // Another unit has its own budget; the window ends.
        assert_eq!(start_budget(&ledger, &["ssh.service"], t0 + 5), None);
        assert_eq!(
            start_budget(&ledger, &["ssh.socket"], t0 + GUARD_START_WINDOW + 2),
            None
        );
        // Old entries are dropped when the ledger is written.
        let later = ledger_add(&ledger, "ssh.socket", t0 + GUARD_START_WINDOW + 1);
        assert_eq!(later.lines().count(), 2, "{later}");
        // Twice in one plan is refused before anything is done.
        assert!(start_budget("", &["ssh.socket", "ssh.socket"], t0)
            .unwrap()
            .contains("at most once per run"));
    }

    #[test]
    fn a_garbage_ledger_counts_nothing_and_is_cleaned() {
        let g = "x ssh.socket\n\n1700000000\n 1700000000 ssh.socket\n99999999999999999999999 ssh.socket\n1700000000 a b\n";
        assert_eq!(ledger_starts(g, "ssh.socket", 1_700_000_001), 0);
        assert_eq!(
            ledger_add(g, "ssh.socket", 1_700_000_001),
            "1700000001 ssh.socket\n"
        );
        // A clock that went backwards does not block forever.
        assert_eq!(
            ledger_starts("1800000000 ssh.socket\n", "ssh.socket", 1_700_000_000),
            0
        );
    }

    proptest::proptest! {
        #[test]
        fn ledger_never_panics(text in "\\PC*", unit in "[a-z.]{1,12}", now in 0u64..u64::MAX) {
            let _ = ledger_starts(&text, &unit, now);
            let _ = start_budget(&text, &[&unit], now);
            let l = ledger_add(&text, &unit, now);
            proptest::prop_assert!(ledger_starts(&l, &unit, now) >= 1);
        }
    }
}
