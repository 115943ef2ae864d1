//! `repair`: the full diagnosis, then the plan carried out (or, with
//! --dry-run, only printed).
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::diagnose::{diagnose_and_repair, repaired, Act, Diagnosis, Inhibition, Where};
use super::output::Outcome;
use super::record::Inhibit;
use super::{exit, Ctx};
use crate::plan::Mode;
use crate::report;

/// `repair [--dry-run]`.
pub(crate) fn repair(ctx: &Ctx, act: Act) -> Outcome {
    match diagnose_and_repair(ctx, Mode::Full, act, Inhibition::Ignore) {
        Err(e) => Outcome::failed(&e),
        Ok(Diagnosis {
            plan, done: None, ..
        }) => {
            let o = Outcome::exit(exit::OK).print(report::plan_text(&plan));
            if act == Act::DryRun {
                o
            } else if plan.refused.is_some() {
                o.with_exit(exit::PROBLEM)
            } else if !plan.intent.serves() {
                o.say(format!("{}; nothing to do.", plan.intent))
            } else {
                o.say("ssh is healthy; nothing to do.")
            }
        }
        Ok(Diagnosis {
            plan,
            done: Some((outcome, after)),
            ..
        }) => {
            let (text, record, healthy) = repaired(
                ctx,
                &plan,
                &outcome,
                &after,
                Where::Standalone,
                Inhibit::Free,
            );
            Outcome::exit(if healthy { exit::OK } else { exit::PROBLEM })
                .say(text)
                .record(record)
        }
    }
}
