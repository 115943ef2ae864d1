//! Every shrunk counterexample the property test found, spelled out as a
//! plain test named after what it pins (once the code passes it).
#![forbid(unsafe_code)]

use super::build::{Op, Topo};
use super::props::run_case;
use super::world::Dies;
use super::Run;

fn stale(split: bool, works: bool) -> Op {
    Op::Stale {
        dies: Dies::OnTerm,
        works,
        split,
    }
}

/// Found against fa64192: a start job that failed while systemd's Restart=
/// brought ssh.service up was reported FAILED although ssh served
/// (issue 18 item 4); tx's settle judges it by the end state.
#[test]
fn sim_a_start_that_restart_brought_up_is_not_reported_failed() {
    let c = (
        Topo::Classic,
        vec![Op::FlakyService, stale(false, false)],
        Run::Repair,
        vec![],
        vec![],
    );
    assert_eq!(run_case(&c), Ok(None));
}

/// Found against fa64192: a start job timing out after three stale
/// listeners (one a pre-auth child) were stopped was FAILED although the
/// unit came up.
#[test]
fn sim_a_start_job_timing_out_on_a_unit_that_comes_up_is_a_start() {
    let c = (
        Topo::Classic,
        vec![stale(true, true), Op::ForkChild { lingers: 0 }],
        Run::Repair,
        vec![(5, super::control::Fault::Timeout)],
        vec![],
    );
    assert_eq!(run_case(&c), Ok(None));
}
