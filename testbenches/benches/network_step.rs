//! Whole-network training steps on the SAT system top, **measured**: for the MLP and the small
//! CNN (at its shipped batch 8 when every program of the run fits the instruction memory, as
//! they do, at about 59k instructions, since LOADs bring many panels and STOREs many tiles;
//! otherwise at batch 2, which the table's title then says, as with
//! `COFORGE_BENCH_INPUT_GRADIENT=1`; `COFORGE_BENCH_BATCH=B` sets its batch), one BDWP training step per N:M pattern runs in Verilator (`coforge_driver::sat::network`,
//! the scheduler's program against the memory model), every tensor of every layer bit-exact
//! against the reference, and the step's cycles are the top's cycle counter from `start` to
//! `done`, memory traffic included. "Dense" is the same network trained all dense on the same
//! hardware (the same N:M array in its dense mode), so each speedup is like for like.
//!
//! The input gradient (dX of the first layer) is not computed, as the network files say
//! (`input_gradient = false`, the default; PyTorch and SAT do not compute it either), in the
//! dense and the N:M step alike. `COFORGE_BENCH_INPUT_GRADIENT=1` computes it in both, for a
//! comparison with the step as it was before the key existed.
//!
//! Beside each measured speedup: the ideal `3 / (1 + 2N/M)`, the network's own ideal
//! (`Network::ideal_speedup`: the same ratio with the network's dense layers, such as BDWP's
//! dense first layer, and its skipped input gradient counted), SAT's published 1.75x at 2:8, the
//! scheduler's *estimated* speedup (its cost model) and the estimate's error on the step cycles.
//! ResNet-18 and ResNet-50 are too large to simulate: their rows are the scheduler's estimate
//! only. A last block runs the MLP with a 4 B/cycle memory port, where memory binds.
//!
//! Memory: 512-bit beats, 32 cycles latency, 64 B/cycle: about 2/3 of one DDR4-2400 channel's
//! 96 B/cycle peak at a 200 MHz engine clock (the `[system]` defaults, SAT-CONTRACT section 4),
//! a sustained rate a MIG controller reaches; SAT itself ran with DDR4 behind it.
//!
//! Run: `cargo bench -p coforge-testbenches --bench network_step` (set
//! `COFORGE_BENCH_NETS=mlp,small-cnn,resnet18,resnet50,starved` for a subset and
//! `COFORGE_BENCH_PATTERNS=2:8,1:4` for some patterns, `COFORGE_BENCH_INPUT_GRADIENT=1` to
//! compute the first layer's dX, `COFORGE_BENCH_READ_REQUESTS=1` for one read request
//! outstanding instead of the default two: every LOAD then pays the memory latency).

use std::path::PathBuf;
use std::time::Instant;

use coforge_driver::sat::network::{pass_cycles, seeded_f16, seeded_x, NetworkTrainer};
use coforge_driver::sat::SatSystem;
use coforge_generator::config::Config;
use coforge_scheduler::{schedule, EnginePattern, Hardware, Network, Options, Schedule, Sparsity};
use coforge_sim::MemoryTiming;

const PATTERNS: [(usize, usize); 6] = [(2, 4), (4, 8), (2, 8), (1, 4), (1, 8), (1, 16)];

/// The bench's system: a `rows x rows` fp16 array with N:M, buffers large enough for every
/// layer's weight block, and the largest instruction memory (65536 words, 16-bit addresses).
fn config(rows: usize, n: usize, m: usize, bytes_per_cycle: u32) -> Config {
    let big = rows > 4;
    let text = format!(
        "[stce]\nrows = {rows}\ncols = {rows}\ndtype = \"fp16\"\nn = {n}\nm = {m}\n\
         [train]\nsore_lanes = {rows}\nwuve_lanes = {rows}\n\
         [system]\nact_lines = 4096\nwgt_lines = 4096\nout_lines = {}\nweight_lines = {}\n\
         imem_depth = 65536\nmem_bytes_per_cycle = {bytes_per_cycle}\n{}",
        if big { 2048 } else { 512 },
        // Every layer's weights in one half of the weight buffers (the small CNN's fc has two
        // blocks of Kp = 4096 lines), so that PRUNE_B never reloads W16' and M_F' from DRAM.
        16384,
        read_requests().map_or(String::new(), |r| format!("read_requests = {r}\n")),
    );
    Config::from_toml(&text, "network_step bench").unwrap_or_else(|e| panic!("{e}"))
}

/// A shipped network, with its batch replaced by `batch` when given.
fn network(file: &str, hw: &Hardware, batch: Option<usize>) -> Network {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../networks")
        .join(file);
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    if let Some(b) = batch {
        let line = text
            .lines()
            .find(|l| l.starts_with("batch ="))
            .expect("a network file gives its batch")
            .to_string();
        text = text.replacen(&line, &format!("batch = {b}"), 1);
    }
    let net = Network::from_toml(&text, file, EnginePattern { n: hw.n, m: hw.m })
        .unwrap_or_else(|e| panic!("{e}"));
    net.with_input_gradient(input_gradient())
}

/// `COFORGE_BENCH_READ_REQUESTS=R`: the system's `read_requests` (default: the `[system]`
/// default, 2).
fn read_requests() -> Option<u32> {
    let v = std::env::var("COFORGE_BENCH_READ_REQUESTS").ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("COFORGE_BENCH_READ_REQUESTS={v}: give 1 or 2")),
    )
}

/// `COFORGE_BENCH_INPUT_GRADIENT=1`: compute the first layer's dX (the files say not to).
fn input_gradient() -> bool {
    std::env::var("COFORGE_BENCH_INPUT_GRADIENT").is_ok_and(|v| v == "1")
}

fn scheduled(net: &Network, hw: &Hardware) -> Schedule {
    let s = schedule(net, hw, Options::default()).unwrap_or_else(|e| panic!("{e}"));
    coforge_scheduler::validate(&s).unwrap_or_else(|e| panic!("{e}"));
    s
}

/// What one measured step gave.
struct Measured {
    cycles: u64,
    estimated: u64,
    stce_busy: u64,
    /// The largest |error| of the estimate over the step's layers and passes.
    worst_pass: (f64, String),
}

/// One step of `s` on `system`, bit-exact or the bench stops.
fn measure(system: &mut SatSystem, s: &Schedule, timing: MemoryTiming) -> Measured {
    let w32 = s
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| seeded_f16(l.cout, l.k, 7, 3, 0, i as u64).mapv(|v| v.to_f32() * 0.5))
        .collect();
    let mut trainer = NetworkTrainer::new(s, w32, 0.01, 2e-4).unwrap();
    let inputs = s
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                seeded_x(l, s.batch, 7, 0, i as u64),
                seeded_f16(l.r, l.cout, 7, 2, 0, i as u64),
            )
        })
        .collect();
    let r = trainer
        .step(system, inputs, timing)
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(bad) = r.first_mismatch() {
        panic!("{}: {:?}", s.network, bad.comparison.first_mismatch);
    }
    let worst_pass = pass_cycles(s, &r.run.timeline)
        .into_iter()
        .map(|p| (p.estimate_error, format!("{} {}", p.layer, p.pass)))
        .max_by(|a, b| a.0.abs().total_cmp(&b.0.abs()))
        .unwrap_or((0.0, String::new()));
    Measured {
        cycles: r.run.stats.cycles,
        estimated: s.step_cycles_estimated,
        stce_busy: r.run.stats.busy["stce"],
        worst_pass,
    }
}

/// Whether the dense and N:M programs of `file` at its own batch fit the instruction memory
/// for every pattern (saying which does not).
fn fits_imem(file: &str, patterns: &[(usize, usize)]) -> bool {
    patterns.iter().all(|&(n, m)| {
        let cfg = config(4, n, m, 64);
        let hw = Hardware::from_config(&cfg).unwrap();
        let net = network(file, &hw, None);
        let depth = hw.system.imem_depth as usize;
        [net.clone(), net.with_sparsity(Sparsity::Dense)]
            .iter()
            .all(|net| {
                let words = scheduled(net, &hw).instructions.len();
                if words > depth {
                    eprintln!(
                        "{file} at its batch, {n}:{m}: {words} instructions, more than the \
                         {depth}-word instruction memory: measured at batch 2"
                    );
                }
                words <= depth
            })
    })
}

fn wanted(var: &str, item: &str) -> bool {
    std::env::var(var)
        .ok()
        .as_deref()
        .is_none_or(|o| o.split(',').any(|x| x == item))
}

fn measured_rows(
    file: &str,
    batch: Option<usize>,
    bytes_per_cycle: u32,
    patterns: &[(usize, usize)],
) {
    println!(
        "\n{file}{} on a 4 x 4 fp16 array, memory {bytes_per_cycle} B/cycle, 32 cycles latency, \
         first layer's dX {} (measured: the top's cycle counter; estimated: the scheduler's cost \
         model)\n",
        batch.map_or(String::new(), |b| format!(" at batch {b}")),
        if input_gradient() {
            "computed"
        } else {
            "not computed"
        }
    );
    println!(
        "| N:M | dense cycles, measured | N:M cycles, measured | speedup, measured | ideal 3/(1+2N/M) \
         | network ideal | published (SAT) | speedup, estimated | step estimate error (dense / N:M) | worst pass estimate error | STCE busy of step (N:M) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for &(n, m) in patterns {
        let t0 = Instant::now();
        let cfg = config(4, n, m, bytes_per_cycle);
        let hw = Hardware::from_config(&cfg).unwrap();
        let net = network(file, &hw, batch);
        let sparse_s = scheduled(&net, &hw);
        let dense_s = scheduled(&net.with_sparsity(Sparsity::Dense), &hw);
        let mut system = SatSystem::new(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let timing = MemoryTiming::fixed(32, bytes_per_cycle);
        let dense = measure(&mut system, &dense_s, timing);
        let sparse = measure(&mut system, &sparse_s, timing);
        let err = |x: &Measured| x.estimated as f64 / x.cycles as f64 - 1.0;
        println!(
            "| {n}:{m} | {} | {} | {:.3}x | {:.2}x | {:.3}x | {} | {:.3}x | {:+.1}% / {:+.1}% | {:+.1}% ({}) | {:.1}% |",
            dense.cycles,
            sparse.cycles,
            dense.cycles as f64 / sparse.cycles as f64,
            3.0 / (1.0 + 2.0 * n as f64 / m as f64),
            net.ideal_speedup(EnginePattern { n, m }),
            if (n, m) == (2, 8) { "1.75x" } else { "-" },
            dense.estimated as f64 / sparse.estimated as f64,
            100.0 * err(&dense),
            100.0 * err(&sparse),
            100.0 * sparse.worst_pass.0,
            sparse.worst_pass.1,
            100.0 * sparse.stce_busy as f64 / sparse.cycles as f64,
        );
        eprintln!(
            "  ({n}:{m} built and run in {:.0} s)",
            t0.elapsed().as_secs_f64()
        );
    }
}

fn estimated_rows(file: &str) {
    println!(
        "\n{file} on a 32 x 32 fp16 array, 64 B/cycle, first layer's dX {} (estimated only: too \
         large to simulate)\n",
        if input_gradient() {
            "computed"
        } else {
            "not computed"
        }
    );
    println!("| N:M | dense cycles, estimated | N:M cycles, estimated | speedup, estimated | ideal 3/(1+2N/M) | network ideal | published (SAT) |");
    println!("|---|---|---|---|---|---|---|");
    for (n, m) in PATTERNS {
        let cfg = config(32, n, m, 64);
        let hw = Hardware::from_config(&cfg).unwrap();
        let net = network(file, &hw, None);
        let sparse = scheduled(&net, &hw).step_cycles_estimated;
        let dense = scheduled(&net.with_sparsity(Sparsity::Dense), &hw).step_cycles_estimated;
        println!(
            "| {n}:{m} | {dense} | {sparse} | {:.3}x | {:.2}x | {:.3}x | {} |",
            dense as f64 / sparse as f64,
            3.0 / (1.0 + 2.0 * n as f64 / m as f64),
            net.ideal_speedup(EnginePattern { n, m }),
            if (n, m) == (2, 8) { "1.75x" } else { "-" },
        );
    }
}

fn main() {
    let patterns: Vec<(usize, usize)> = PATTERNS
        .into_iter()
        .filter(|(n, m)| wanted("COFORGE_BENCH_PATTERNS", &format!("{n}:{m}")))
        .collect();
    println!(
        "# Whole-network training steps on the system top (coforge {})",
        env!("CARGO_PKG_VERSION")
    );
    if wanted("COFORGE_BENCH_NETS", "mlp") {
        measured_rows("mlp.toml", None, 64, &patterns);
    }
    if wanted("COFORGE_BENCH_NETS", "small-cnn") {
        // The shipped batch when every program fits the instruction memory (16-bit addresses);
        // else batch 2: a quarter of the rows, the same layers.
        // `COFORGE_BENCH_BATCH=B` runs it at batch B instead (a like-for-like comparison with
        // the batch-2 figures of older programs).
        let batch = match std::env::var("COFORGE_BENCH_BATCH")
            .ok()
            .and_then(|b| b.parse().ok())
        {
            Some(b) => Some(b),
            None => (!fits_imem("small-cnn.toml", &patterns)).then_some(2),
        };
        measured_rows("small-cnn.toml", batch, 64, &patterns);
    }
    if wanted("COFORGE_BENCH_NETS", "starved") {
        println!("\nBandwidth-starved: the MLP with a 4 B/cycle memory port.");
        measured_rows("mlp.toml", None, 4, &[(2, 8)]);
    }
    if wanted("COFORGE_BENCH_NETS", "resnet18") {
        estimated_rows("resnet18.toml");
    }
    if wanted("COFORGE_BENCH_NETS", "resnet50") {
        estimated_rows("resnet50.toml");
    }
}
