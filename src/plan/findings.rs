//! What is wrong, and what is seen and deliberately left alone.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::facts::{holder, stopped_by_package, Facts};
use super::words::{Finding, LeftAlone};
use crate::model::Snapshot;

/// What is wrong and what is left alone. `service`: the ssh service unit's
/// name, for the outdated-binary finding.
pub fn findings(s: &Snapshot, facts: &Facts, service: &str) -> (Vec<Finding>, Vec<LeftAlone>) {
    let mut found = Vec::new();
    let mut left = Vec::new();
    let off = !facts.serve.serves();
    for l in &facts.stale {
        if off {
            left.push(LeftAlone::StaleWhileOff {
                pid: l.process.pid,
                addresses: l.addresses.clone(),
            });
            continue;
        }
        found.push(Finding::StaleListener {
            pid: l.process.pid,
            exe: l.exe.clone(),
            addresses: l.addresses.clone(),
        });
    }
    kept_running(facts, service, &mut left);
    for l in &facts.foreign {
        left.push(LeftAlone::Foreign {
            pid: l.process.pid,
            comm: l.comm.clone(),
            uid: l.uid,
            addresses: l.addresses.clone(),
            why: l.why.clone(),
        });
    }
    for l in &facts.other_outdated {
        left.push(LeftAlone::OtherUnitOutdated {
            pid: l.process.pid,
            unit: l.unit.clone().unwrap_or_else(|| "its unit".into()),
            exe: l.exe.clone(),
        });
    }
    if s.sessions > 0 {
        left.push(LeftAlone::Sessions { count: s.sessions });
    }
    if let Some(pk) = s.package.as_ref().filter(|_| facts.pkg_incomplete) {
        found.push(Finding::PackageIncomplete {
            // Arch-qualified when the package has several stanzas.
            package: pk.qualified_name(),
            summary: pk.summary(),
        });
    }
    let Some(units) = &s.units else {
        return (found, left);
    };
    // ssh the admin turned off: a unit that is down or failed is what the
    // admin chose, not a problem; the package is still the guard's concern.
    if off {
        return (found, left);
    }
    if let Some(before) = stopped_by_package(s, units) {
        found.push(Finding::StoppedByPackage {
            before,
            policy: s
                .intent
                .policy_rc_d
                .as_ref()
                .filter(|p| p.forbids())
                .map(|p| p.to_string()),
        });
    }
    let limits = crate::roads::start_limits(units);
    for u in [&units.socket, &units.service] {
        if let Some(l) = limits.iter().find(|l| l.unit == u.name) {
            found.push(Finding::StartLimit(l.clone()));
        } else if u.is_failed() {
            found.push(Finding::UnitFailed {
                unit: u.name.clone(),
                result: u.result.clone(),
            });
        }
    }
    let holder = holder(units);
    // Not where a start would be refused: that is the admin's file or mask.
    if !holder.is_active() && !holder.is_failed() && facts.start_refused.is_none() {
        found.push(Finding::NotRunning {
            unit: holder.name.clone(),
            state: holder.describe(),
        });
    }
    for l in &facts.outdated {
        found.push(Finding::OutdatedBinary {
            service: service.to_string(),
            pid: l.process.pid,
            exe: l.exe.clone(),
        });
    }
    if facts.keys_missing {
        found.push(Finding::NoHostKeys {
            service: service.to_string(),
        });
    }
    if let Some(b) = &facts.blocked {
        found.push(Finding::PostinstRestartBlocked(b.clone()));
    }
    if let Some(f) = &facts.service_holds {
        found.push(Finding::ServiceHoldsPort(f.clone()));
    }
    if let Some(g) = &facts.stale_rescue {
        found.push(Finding::StaleRescue(g.clone()));
    }
    (found, left)
}

/// The running ssh.service kept where a start would be refused
/// (Facts::keep_running_units), one line each.
fn kept_running(facts: &Facts, service: &str, left: &mut Vec<LeftAlone>) {
    if let Some(why) = &facts.start_refused {
        for l in &facts.kept {
            left.push(LeftAlone::KeptRunning {
                what: format!(
                    "{service} (pid {}) on the replaced binary {}",
                    l.process.pid, l.exe
                ),
                why: why.clone(),
            });
        }
        if facts.kept_holding {
            left.push(LeftAlone::KeptRunning {
                what: format!("{service}, which holds the port ssh.socket should,"),
                why: why.clone(),
            });
        }
        if facts.kept_package {
            left.push(LeftAlone::KeptRunning {
                what: format!(
                    "the package's configuration is not completed (dpkg --configure restarts ssh) and {service}"
                ),
                why: why.clone(),
            });
        }
    }
}
