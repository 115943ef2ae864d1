//! The decision: a snapshot goes in, a printable plan comes out. Pure, so
//! every invariant (never touch a session, never stop a listener when sshd
//! rejects its configuration, only stale listeners are signalled) is tested
//! here on fixtures without a machine.
//!
//! A decision is made in three steps, each a function of its own:
//! [`findings`] (what is wrong, what is left alone), [`gate`] (whether the
//! guard may act at all: the no-lockout rules) and [`steps`] (what to do,
//! in which order). Findings, refusals and steps are types: code branches on
//! variants, and their `Display` is the wording the admin reads.
//!
//! One room each: `words` (those types and their wording), `facts` (the
//! snapshot sorted once), `findings`, `gate` (with `work`, what a mode must
//! fix), `steps`; this file holds the plan and `decide`.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

mod facts;
mod findings;
mod gate;
mod steps;
mod words;

pub use facts::Facts;
pub use findings::findings;
pub use gate::{gate, work};
pub use steps::steps;
pub use words::{Finding, LeftAlone, Refusal, Step};

use crate::config::Config;
use crate::intent::ShouldServe;
use crate::model::Snapshot;
use serde::Serialize;

/// When the plan is made: the pre-invoke preflight fixes only what would
/// make the coming dpkg run fail (a stale listener, failed units) and leaves
/// the package to dpkg; everything else completes the package too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// pre-invoke, before dpkg runs.
    Preflight,
    /// post-invoke, repair, watchdog, status.
    Full,
}

/// The decision about one snapshot. Field names are part of `status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Plan {
    /// What is wrong, one line each.
    pub findings: Vec<Finding>,
    /// What to do, in order; empty when there is nothing to do or the guard
    /// refuses.
    pub steps: Vec<Step>,
    /// Set when the guard will not act, with the reason.
    pub refused: Option<Refusal>,
    /// What is seen and deliberately left alone.
    pub left_alone: Vec<LeftAlone>,
    /// Whether ssh should serve (intent.rs): the guard starts units, and
    /// the rescue, only when it should.
    pub intent: ShouldServe,
}

impl Plan {
    /// Whether the package was found not fully installed.
    pub fn found_package_incomplete(&self) -> bool {
        self.findings
            .iter()
            .any(|f| matches!(f, Finding::PackageIncomplete { .. }))
    }
}

/// Decides what to do about the snapshot: [`findings`], then [`gate`],
/// then [`steps`]. The settings that matter here are the unit names and
/// the package name.
pub fn decide(s: &Snapshot, cfg: &Config, mode: Mode) -> Plan {
    let facts = Facts::of(s);
    let (findings, left_alone) = findings(s, &facts, &cfg.ssh_service);
    let work = work(s, &facts, mode);
    let refused = gate(s, &facts, work);
    let steps = if refused.is_none() {
        steps(s, &facts, work, cfg)
    } else {
        Vec::new()
    };
    Plan {
        findings,
        steps,
        refused,
        left_alone,
        intent: facts.serve,
    }
}

#[cfg(test)]
mod tests;
