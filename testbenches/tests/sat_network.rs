//! Whole-network BDWP training steps on the SAT system top (`coforge_driver::sat::network`):
//! the scheduler's program for a shipped network runs in Verilator against the memory model,
//! and every tensor of every layer that the step produces is compared bit for bit with the
//! reference: the first layer's dX only with `input_gradient = true`.

use std::path::{Path, PathBuf};

use coforge_driver::sat::network::{seeded_f16, seeded_x, NetworkStep, NetworkTrainer};
use coforge_driver::sat::SatSystem;
use coforge_generator::config::Config;
use coforge_scheduler::{Network, Options, Schedule, Sparsity};
use coforge_sim::MemoryTiming;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn shipped() -> Config {
    Config::load(&repo("configs/sat-4x4-2of8.toml")).expect("shipped config is valid")
}

/// The schedule of the shipped network `net` as `edit` changes it (`|n| n` for the file as
/// shipped).
fn schedule(cfg: &Config, net: &str, edit: impl Fn(Network) -> Network) -> Schedule {
    let path = repo(&format!("networks/{net}.toml"));
    let hw = coforge_scheduler::Hardware::from_config(cfg).unwrap();
    let network =
        Network::load(&path, coforge_scheduler::EnginePattern { n: hw.n, m: hw.m }).unwrap();
    let s = coforge_scheduler::schedule(&edit(network), &hw, Options::default())
        .expect("the shipped network schedules on the shipped config");
    coforge_scheduler::validate(&s).unwrap();
    s
}

fn dense(n: Network) -> Network {
    n.with_sparsity(Sparsity::Dense)
}

/// Which layers' dX a step compared.
fn dx_compared(r: &NetworkStep) -> Vec<&str> {
    r.checked
        .iter()
        .filter(|c| c.tensor == "dx")
        .map(|c| c.layer.as_str())
        .collect()
}

/// Runs `steps` steps and asserts every tensor of every layer is bit-exact; returns the steps.
fn train(
    system: &mut SatSystem,
    s: &Schedule,
    steps: u64,
    seed: u64,
    timing: MemoryTiming,
) -> Vec<NetworkStep> {
    let w32 = s
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| seeded_f16(l.cout, l.k, seed, 3, 0, i as u64).mapv(|v| v.to_f32() * 0.5))
        .collect();
    let mut trainer = NetworkTrainer::new(s, w32, 0.01, 2e-4).unwrap();
    let mut out = Vec::new();
    for step in 0..steps {
        let inputs = s
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    seeded_x(l, s.batch, seed, step, i as u64),
                    seeded_f16(l.r, l.cout, seed, 2, step, i as u64),
                )
            })
            .collect();
        let r = trainer.step(system, inputs, timing).unwrap();
        if let Some(bad) = r.first_mismatch() {
            panic!(
                "step {step}: {} of {} elements differ; {}",
                bad.comparison.mismatches,
                bad.comparison.elements,
                bad.comparison.first_mismatch.as_ref().unwrap()
            );
        }
        eprintln!(
            "{} step {step}: {} cycles measured, {} estimated; busy {:?}; {} tensors bit-exact",
            s.network,
            r.run.stats.cycles,
            s.step_cycles_estimated,
            r.run.stats.busy,
            r.checked.len()
        );
        out.push(r);
    }
    out
}

fn timing(cfg: &Config) -> MemoryTiming {
    let sys = cfg.system.as_ref().unwrap();
    MemoryTiming::fixed(sys.mem_latency, sys.mem_bytes_per_cycle)
}

/// With the memory the scheduler models (fixed latency and rate), every layer's every pass
/// takes within 1% of the scheduler's estimate (the issue asks for 5%): the estimate follows
/// the controller's fetch, FIFO, token and dispatch rules, and a change to either side that
/// breaks the agreement fails here.
fn passes_match_the_estimate(s: &Schedule, r: &NetworkStep) {
    let passes = coforge_driver::sat::network::pass_cycles(s, &r.run.timeline);
    assert!(!passes.is_empty());
    for p in passes {
        assert!(
            p.estimate_error.abs() <= 0.01,
            "{} {}: {} cycles measured, {} estimated",
            p.layer,
            p.pass,
            p.cycles_measured,
            p.cycles_estimated
        );
    }
}

/// The groups the program feeds the STCE, and the most cycles the feeder may hold last groups
/// for the tile spacing (`engines::sat`, STCE).
fn stce_work(cfg: &Config, s: &Schedule) -> (u64, u64) {
    let hw = coforge_scheduler::Hardware::from_config(cfg).unwrap();
    let spacing = coforge_generator::engines::sat::tile_spacing(&hw.geometry());
    let gemms = s.program().into_iter().filter_map(|i| match i {
        coforge_scheduler::isa::Instr::Gemm { groups, last, .. } => Some((u64::from(groups), last)),
        _ => None,
    });
    gemms.fold((0, 0), |(fed, waits), (groups, last)| {
        let wait = if last {
            spacing.saturating_sub(groups)
        } else {
            0
        };
        (fed + groups, waits + wait)
    })
}

/// With the memory the scheduler models, every instruction's observed span (from the top's
/// start and end strobes) is the scheduler's estimated span, shifted by one fixed offset (the
/// harness counts from the `start` cycle, the model from the first fetch): the model predicts
/// each instruction's start and end exactly, and a change to either side that breaks it fails
/// here, naming the instruction.
fn instructions_match_the_estimate(s: &Schedule, r: &NetworkStep) {
    let spans = &r.run.timeline.spans;
    assert_eq!(spans.len(), s.instructions.len());
    let pairs: Vec<_> = s
        .instructions
        .iter()
        .zip(spans)
        .enumerate()
        .filter_map(|(i, (entry, span))| span.map(|span| (i, entry, span)))
        .collect();
    let (_, first, first_span) = pairs[0];
    let offset = first_span.start - first.start_estimated;
    for (i, entry, span) in pairs {
        assert_eq!(
            (span.start, span.end),
            (entry.start_estimated + offset, entry.end_estimated + offset),
            "instruction {i} ({:?}): measured span vs the estimate plus {offset}",
            entry.instr
        );
    }
}

/// Every instruction's busy span was observed, inside the run.
fn spans_are_inside_the_run(r: &NetworkStep) {
    for (i, span) in r.run.timeline.spans.iter().enumerate() {
        if let Some(span) = span {
            assert!(
                span.end > span.start && span.end <= r.run.stats.sim_cycles + 1,
                "instruction {i}: {span:?}"
            );
        }
    }
}

#[test]
fn mlp_steps_are_bit_exact_and_chain_sparse_and_dense() {
    let cfg = shipped();
    let mut system = SatSystem::new(&cfg).unwrap();
    // 2:8: two steps, the second starting from the W32', M_F', W_F' and W_B' the first wrote;
    // as shipped, the step does not compute fc1's dX.
    let s = schedule(&cfg, "mlp", |n| n);
    let sparse = train(&mut system, &s, 2, 1, timing(&cfg));
    spans_are_inside_the_run(&sparse[1]);
    passes_match_the_estimate(&s, &sparse[0]);
    instructions_match_the_estimate(&s, &sparse[0]);
    assert!(sparse[0].run.stats.busy["sore"] > 0);
    assert_eq!(dx_compared(&sparse[1]), ["fc2", "fc3"]);
    // Dense with the input gradient: fc1's dX is computed and compared too.
    let dense = train(
        &mut system,
        &schedule(&cfg, "mlp", |n| dense(n).with_input_gradient(true)),
        1,
        1,
        timing(&cfg),
    );
    assert_eq!(dense[0].run.stats.busy["sore"], 0);
    assert!(dense[0].run.stats.busy["stce"] > sparse[0].run.stats.busy["stce"]);
    assert_eq!(dx_compared(&dense[0]), ["fc1", "fc2", "fc3"]);
}

/// A sparse first layer without its dX has no W_B' either: two chained steps, the second
/// loading the first's M_F' and W_F' but no W_B of fc1; with the input gradient (one step),
/// fc1's dX and W_B' are computed and compared as every other layer's.
#[test]
fn a_sparse_first_layer_chains_with_and_without_its_input_gradient() {
    let cfg = shipped();
    let mut system = SatSystem::new(&cfg).unwrap();
    for on in [false, true] {
        let s = schedule(&cfg, "mlp", |n| {
            n.with_sparsity(Sparsity::Sparse).with_input_gradient(on)
        });
        let steps = train(&mut system, &s, if on { 1 } else { 2 }, 3, timing(&cfg));
        let last = steps.last().unwrap();
        let fc1: Vec<&str> = last
            .checked
            .iter()
            .filter(|c| c.layer == "fc1")
            .map(|c| c.tensor.as_str())
            .collect();
        for t in ["dx", "w_b.values", "w_b.indices"] {
            assert_eq!(fc1.contains(&t), on, "fc1.{t}: {fc1:?}");
        }
        for t in [
            "y",
            "dw",
            "w32",
            "w16",
            "mask_f",
            "w_f.values",
            "w_f.indices",
        ] {
            assert!(fc1.contains(&t), "fc1.{t}: {fc1:?}");
        }
    }
}

/// The small CNN at CI size: conv1's K = 27 and the head's 10 outputs are not multiples of the
/// 4 x 4 array or of M = 8; conv layers take their X as im2col rows of a seeded image.
#[test]
fn small_cnn_ci_steps_are_bit_exact_and_only_cycles_change_under_memory_noise() {
    let cfg = shipped();
    let mut system = SatSystem::new(&cfg).unwrap();
    train(
        &mut system,
        &schedule(&cfg, "small-cnn-ci", dense),
        1,
        4,
        timing(&cfg),
    );
    let s = schedule(&cfg, "small-cnn-ci", |n| n);
    let quiet = train(&mut system, &s, 1, 4, timing(&cfg));
    assert_eq!(dx_compared(&quiet[0]), ["conv2", "fc"]);
    spans_are_inside_the_run(&quiet[0]);
    passes_match_the_estimate(&s, &quiet[0]);
    instructions_match_the_estimate(&s, &quiet[0]);
    let noisy = MemoryTiming {
        extra_latency: 40,
        stall_rate: 0.3,
        seed: 11,
        ..timing(&cfg)
    };
    let slow = train(&mut system, &s, 1, 4, noisy);
    let (q, n) = (&quiet[0], &slow[0]);
    assert!(
        n.run.stats.cycles > q.run.stats.cycles,
        "random latency and back-pressure cost cycles"
    );
    // The STCE feeds the same groups; only its tile-spacing waits (busy cycles while a tile's
    // last group is held, at most `spacing - groups` for a tile fed right behind another) may
    // shrink or grow with the memory's timing.
    let (fed, waits) = stce_work(&cfg, &s);
    for r in [q, n] {
        let busy = r.run.stats.busy["stce"];
        assert!(
            fed <= busy && busy <= fed + waits,
            "STCE busy {busy}: {fed} groups fed, at most {waits} cycles of spacing waits"
        );
    }
    for (a, b) in q.checked.iter().zip(&n.checked) {
        assert_eq!(a.comparison, b.comparison);
        let same = a.pair.rtl_bits() == b.pair.rtl_bits();
        assert!(same, "{}.{} changed under memory noise", a.layer, a.tensor);
    }
}
