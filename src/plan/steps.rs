//! The steps of a repair, in order, once the gate let the work pass.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::facts::Facts;
use super::gate::Work;
use super::words::Step;
use crate::config::Config;
use crate::model::{Snapshot, Topology};

/// The steps for `work`, in order; only called when [`gate`] let it pass.
pub fn steps(s: &Snapshot, facts: &Facts, work: Work, cfg: &Config) -> Vec<Step> {
    let mut steps = Vec::new();
    let Some(units) = &s.units else {
        return steps;
    };
    // Without host keys sshd can start nowhere: create them before anything
    // else, and check the configuration again (repair::execute).
    // Not where ssh is off by the admin's choice: no keys for an sshd that
    // is not to run.
    if facts.keys_missing && work.listeners {
        steps.push(Step::GenerateHostKeys);
    }
    // reset-failed first: it is harmless while the stale listener still
    // runs, and every round trip left between its exit and systemd
    // listening again is a window of refused connections.
    if work.listeners {
        for u in [&units.service, &units.socket] {
            if u.is_failed() {
                steps.push(Step::ResetFailed {
                    unit: u.name.clone(),
                });
            }
        }
    }
    // Only as part of restoring ssh: where ssh is off by the admin's
    // choice nothing would replace a stale listener, which still serves.
    for l in facts.stale.iter().filter(|_| work.listeners) {
        steps.push(Step::StopStale {
            process: l.process,
            exe: l.exe.clone(),
        });
    }
    let stale = !facts.stale.is_empty();
    let outdated = !facts.outdated.is_empty();
    // Issue 18: a running rescue gives way whenever the units are to be
    // brought back (it holds their addresses); the proof brings it back,
    // from the installed binary, if they do not serve. Else road g.
    let retire = s.rescue_pid.is_some() && work.listeners;
    if retire {
        steps.push(Step::RetireRescue {
            unit: crate::model::RESCUE_UNIT.to_string(),
        });
    } else if work.rescue {
        // First: a failed unit start below skips to the banner check.
        steps.push(Step::RestartUnit {
            unit: crate::model::RESCUE_UNIT.to_string(),
        });
    }
    let holds = facts.service_holds.is_some();
    if work.listeners {
        match units.topology() {
            Topology::SocketActivated => {
                if holds {
                    steps.push(Step::StopUnit {
                        unit: cfg.ssh_service.clone(),
                    });
                }
                if stale || !units.socket.is_active() {
                    steps.push(Step::StartUnit {
                        unit: cfg.ssh_socket.clone(),
                    });
                }
                // A service just stopped is started again by the socket.
                if outdated && !holds {
                    steps.push(Step::RestartUnit {
                        unit: cfg.ssh_service.clone(),
                    });
                }
            }
            Topology::Service => {
                if !units.service.is_active() {
                    steps.push(Step::StartUnit {
                        unit: cfg.ssh_service.clone(),
                    });
                } else if stale || outdated {
                    steps.push(Step::RestartUnit {
                        unit: cfg.ssh_service.clone(),
                    });
                }
            }
        }
        // Road f with the package to complete: a banner check now would
        // make the socket start ssh.service again, and the postinst's
        // restart of a socket whose service runs is refused ("Socket
        // service ssh.service already active, refusing.") when the socket
        // does not stop it first. dpkg goes first; the check after it
        // proves ssh answers (and brings the rescue if it does not).
        if !(holds && work.package) {
            steps.push(Step::VerifyBanner);
        }
    } else if work.rescue {
        steps.push(Step::VerifyBanner);
    }
    if work.package {
        package_steps(s, facts, work, cfg, &mut steps);
    }
    steps
}

/// The package step, proven before (unless just proven) and after.
fn package_steps(s: &Snapshot, facts: &Facts, work: Work, cfg: &Config, steps: &mut Vec<Step>) {
    let holds = facts.service_holds.is_some();
    // dpkg runs only once ssh is proven to serve: its postinst restarts
    // ssh, and a package step on a host where nothing serves (a socket
    // whose service is at its start limit, sim S2) would go unnoticed
    // until after it. A failed proof starts the rescue and dpkg waits
    // for the next run (repair::execute). Not where the units were just
    // brought up and proven, nor on road f (steps: a check there would
    // make the postinst's restart fail).
    let proven = matches!(steps.last(), Some(Step::VerifyBanner));
    if facts.serve.serves() && !proven && !(holds && work.listeners) {
        steps.push(Step::VerifyBanner);
    }
    // The stanza that is not fully installed, arch-qualified when the
    // package has several (multi-arch): dpkg refuses an ambiguous name.
    let package = s
        .package
        .as_ref()
        .map(|pk| pk.qualified_name())
        .unwrap_or_else(|| cfg.package.clone());
    steps.push(Step::ConfigurePackage { package });
    // Where ssh is off by the admin's choice there is nothing to prove
    // (and no rescue to start when nothing answers).
    if facts.serve.serves() {
        steps.push(Step::VerifyBanner);
    }
}
