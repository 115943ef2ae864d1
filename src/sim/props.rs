//! The property test: generated machines (a topology and up to eight
//! [`Op`]s) and fault schedules (up to three faults per hook, at any of the
//! first 16 calls), run through plan + execute, checked by [`super::check`]
//! after every hook. 10,000 cases by default; `PROPTEST_CASES` (what
//! `make sim CASES=N` sets) for more. proptest shrinks a failure to a
//! short machine and schedule: pin it in `regressions.rs` once it passes.
#![forbid(unsafe_code)]

use super::build::{Op, Topo};
use super::control::Fault;
use super::world::{Dies, World};
use super::*;
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let dies = prop_oneof![
        6 => Just(Dies::OnTerm),
        2 => Just(Dies::OnKill),
        1 => Just(Dies::Never),
    ];
    prop_oneof![
        6 => (dies, any::<bool>(), prop::bool::weighted(0.3))
            .prop_map(|(dies, works, split)| Op::Stale { dies, works: works || split, split }),
        1 => Just(Op::Connect),
        2 => Just(Op::StopUnits),
        2 => (0u64..8).prop_map(|lingers| Op::ForkChild { lingers }),
        2 => Just(Op::Leftover),
        2 => Just(Op::ServiceHoldsPort),
        2 => Just(Op::Storm),
        2 => Just(Op::BreakSocket),
        2 => Just(Op::FlakyService),
        1 => Just(Op::TrySocket),
        2 => Just(Op::Session),
        1 => Just(Op::SecondSshd),
        1 => Just(Op::Foreign),
        1 => Just(Op::Rescue),
        2 => Just(Op::Unpack),
        2 => Just(Op::HalfConfigured),
        1 => Just(Op::NoHostKeys),
        1 => Just(Op::BadConfig),
        1 => Just(Op::SplitBinary),
        1 => any::<bool>().prop_map(|now| Op::Disable { now }),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(socket, now)| Op::Mask { socket, now }),
        1 => Just(Op::NotToBeRun),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => Just(Fault::Fail),
        2 => Just(Fault::Timeout),
        1 => (1u64..300).prop_map(Fault::Slow),
        2 => Just(Fault::Deadline),
        2 => Just(Fault::Signal),
        1 => Just(Fault::ListenerExits),
    ]
}

fn schedule() -> impl Strategy<Value = Vec<(usize, Fault)>> {
    prop::collection::vec((0usize..16, fault()), 0..=3)
}

fn how() -> impl Strategy<Value = Run> {
    prop_oneof![
        2 => Just(Run::Repair),
        1 => any::<bool>().prop_map(|preinst_stops| Run::Apt { preinst_stops }),
    ]
}

fn topo() -> impl Strategy<Value = Topo> {
    prop_oneof![3 => Just(Topo::Socket), 1 => Just(Topo::Classic)]
}

/// A case: the machine's recipe, the run, and each hook's faults.
pub type Case = (Topo, Vec<Op>, Run, Vec<(usize, Fault)>, Vec<(usize, Fault)>);

fn case() -> impl Strategy<Value = Case> {
    (
        topo(),
        prop::collection::vec(op(), 0..=8),
        how(),
        schedule(),
        schedule(),
    )
}

/// Runs one case; Err with the whole story when a property fails.
pub fn run_case(c: &Case) -> Result<(), String> {
    match run_case_known(c) {
        Ok(None) => Ok(()),
        Ok(Some(id)) => Err(format!("open finding {id}")),
        Err(e) => Err(e),
    }
}

/// Findings not yet fixed, by the shape of the failing hook: a case that
/// fails only so is left out of the random run (and pinned as still
/// failing in regressions.rs, so that the entry goes once it is fixed).
type Shape = fn(&Hook) -> bool;
const KNOWN: &[(&str, &str, Shape)] = &[
    // S9b: a failed first stop (the listener died on its own or after a
    // stop that timed out) while pre-auth children, next in the plan, hold
    // its addresses for longer than STOP_TIMEOUT (a chain of them in the
    // model): the repair returns and nothing serves until the next run.
    // The fix asks who holds the addresses (the failed process, or only
    // stale listeners the plan stops next), not only whether they are free.
    ("S9b", "serve", |h| {
        h.rec.calls.last().is_some_and(|c| c.what == "wait-free")
            && h.before
                .procs
                .iter()
                .any(|p| p.alive && p.child_lingers.is_some())
    }),
];

/// As run_case, but Ok(Some(id)) for a failure that is a KNOWN finding.
pub fn run_case_known(c: &Case) -> Result<Option<&'static str>, String> {
    let (t, ops, how, f1, f2) = c;
    let w = World::built(*t, ops);
    let hooks = run(&w, *how, f1, f2);
    match check_run(&hooks) {
        Ok(()) => Ok(None),
        Err(e) => {
            let first = e.lines().next().unwrap_or("");
            let n: Option<usize> = first
                .strip_prefix("hook ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok());
            let h = n.and_then(|n| hooks.get(n.checked_sub(1)?));
            match KNOWN
                .iter()
                .find(|(_, part, shape)| first.contains(part) && h.is_some_and(shape))
            {
                Some((id, _, _)) => Ok(Some(id)),
                None => Err(format!("{e}\n{}", describe(&w, &hooks))),
            }
        }
    }
}

/// Cases in a plain `cargo test`, unless PROPTEST_CASES says otherwise.
const DEFAULT_CASES: u32 = 10_000;

/// The seed of a plain `cargo test`: the same 10,000 cases on every run,
/// so CI never meets a failure nobody has seen. New cases come from
/// `make sim SEED=...` (PROPTEST_RNG_SEED, a fresh one by default).
const DEFAULT_SEED: u64 = 18_006;

fn config() -> ProptestConfig {
    use proptest::test_runner::RngSeed;
    // proptest reads PROPTEST_CASES and PROPTEST_RNG_SEED into its default
    // (256 cases and a random seed when unset).
    let d = ProptestConfig::default();
    let cases = if d.cases == 256 {
        DEFAULT_CASES
    } else {
        d.cases
    };
    let rng_seed = match d.rng_seed {
        RngSeed::Random => RngSeed::Fixed(DEFAULT_SEED),
        fixed => fixed,
    };
    ProptestConfig {
        cases,
        rng_seed,
        max_shrink_iters: 4096,
        // Nothing written beside the sources: a shrunk counterexample is
        // printed, and pinned by hand in regressions.rs once it passes.
        failure_persistence: None,
        ..d
    }
}

proptest! {
    #![proptest_config(config())]
    #[test]
    fn sim_every_machine_and_schedule_keeps_the_promises(c in case()) {
        if let Err(e) = run_case_known(&c) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// A failure's kind: its first line without numbers or addresses.
fn kind_of(e: &str) -> String {
    let first = e.lines().next().unwrap_or("");
    let first = first.split(" but ").next().unwrap_or(first);
    first
        .split_whitespace()
        .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Exploration, not a check: runs many cases without stopping at the
/// first failure and prints one shrunk example per kind of failure
/// (`cargo test sim_explore -- --ignored --nocapture`).
#[test]
#[ignore]
fn sim_explore() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::new(config());
    let strat = case();
    let mut kinds: std::collections::BTreeMap<String, (usize, String)> = Default::default();
    for _ in 0..config().cases {
        let mut tree = strat.new_tree(&mut runner).expect("a case");
        let Err(e) = run_case_known(&tree.current()) else {
            continue;
        };
        let kind = kind_of(&e);
        if let Some(k) = kinds.get_mut(&kind) {
            k.0 += 1;
            continue;
        }
        // Shrink this one.
        let mut best = (tree.current(), e);
        while tree.simplify() {
            match run_case_known(&tree.current()) {
                Err(e2) if kind_of(&e2) == kind => best = (tree.current(), e2),
                _ => {
                    if !tree.complicate() {
                        break;
                    }
                }
            }
        }
        kinds.insert(kind, (1, format!("{:?}\n{}", best.0, best.1)));
    }
    for (k, (n, ex)) in &kinds {
        println!("=== {n} x {k}\n{ex}\n");
    }
}

/// A plain `cargo test` runs at least 10,000 cases on the fixed seed.
#[test]
fn sim_the_default_run_is_ten_thousand_cases_on_a_fixed_seed() {
    use proptest::test_runner::RngSeed;
    let d = ProptestConfig::default();
    let c = config();
    if d.cases == 256 {
        assert_eq!(c.cases, DEFAULT_CASES);
    }
    if d.rng_seed == RngSeed::Random {
        assert_eq!(c.rng_seed, RngSeed::Fixed(DEFAULT_SEED));
    }
    assert!(c.failure_persistence.is_none());
}
