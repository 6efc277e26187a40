//! Estimated training-step cycles of the shipped networks on the SAT system, per N:M pattern,
//! from the offline scheduler's cost model: **estimates, not measurements** (the system top's
//! measured cycles come from `coforge train --net`).
//!
//! For each network and pattern N:M, the engine is the same array with that N:M; "dense" is the
//! same network trained dense on that same hardware (every layer in dense mode), so the speedup
//! is like for like. Beside it: the ideal `3 / (1 + 2N/M)` (FF and BP shrink by N/M, WU stays
//! dense), the network's own ideal (`Network::ideal_speedup`, with its dense layers and skipped input
//! gradient counted) and SAT's published 1.75x at 2:8. A last block repeats the small CNN with a memory
//! port of 4 bytes per cycle, where memory traffic binds.
//!
//! The input gradient (dX of the first layer) is not computed, as the network files say
//! (`input_gradient = false`, the default), in the dense and the N:M step alike. Each network's
//! 2:8 line of options also gives the step with it computed (`input_gradient = true`).
//!
//! Run: `cargo bench -p coforge-scheduler --bench networks` (set `COFORGE_BENCH_NETS=mlp,small-cnn`
//! to run a subset).

use std::path::PathBuf;
use std::time::Instant;

use coforge_scheduler::{schedule, EnginePattern, Hardware, Network, Options, Sparsity};

const PATTERNS: [(usize, usize); 6] = [(2, 4), (4, 8), (2, 8), (1, 4), (1, 8), (1, 16)];

/// The bench's systems: the array of `configs/sat-4x4-2of8.toml` (or 32 x 32 for the ResNets)
/// with buffers large enough for every layer's weight block (ResNet-50's 3x3 convs have
/// Kp = 4608), the memory port of the `[system]` defaults (512-bit beats, 32 cycles latency)
/// at `bytes_per_cycle`.
fn hardware(rows: usize, n: usize, m: usize, bytes_per_cycle: u32) -> Hardware {
    let big = rows > 4;
    Hardware::with_defaults(rows, rows, n, m, |s| {
        s.act_lines = 4096;
        s.wgt_lines = 4096;
        s.out_lines = if big { 2048 } else { 512 };
        s.weight_lines = if big { 16384 } else { 8192 };
        s.mem_bytes_per_cycle = bytes_per_cycle;
    })
}

fn load(file: &str, hw: &Hardware) -> Network {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../networks")
        .join(file);
    Network::load(&path, EnginePattern { n: hw.n, m: hw.m }).unwrap_or_else(|e| panic!("{e}"))
}

fn cycles(net: &Network, hw: &Hardware, opts: Options) -> (u64, usize) {
    let s = schedule(net, hw, opts).unwrap_or_else(|e| panic!("{e}"));
    (s.step_cycles_estimated, s.instructions.len())
}

fn row(file: &str, rows: usize, bytes_per_cycle: u32) {
    let t0 = Instant::now();
    println!(
        "\n{file} on a {rows}x{rows} array, {bytes_per_cycle} B/cycle memory (buffers: act/wgt 4096, \
         out {}, weight {} lines):",
        if rows > 4 { 2048 } else { 512 },
        if rows > 4 { 16384 } else { 8192 },
    );
    println!(
        "  {:<6} {:>14} {:>14} {:>9} {:>7} {:>13} {:>10} {:>12}",
        "N:M",
        "dense cycles",
        "N:M cycles",
        "speedup",
        "ideal",
        "network ideal",
        "published",
        "instructions"
    );
    let default = Options::default();
    for (n, m) in PATTERNS {
        let hw = hardware(rows, n, m, bytes_per_cycle);
        let net = load(file, &hw);
        let (dense, _) = cycles(&net.with_sparsity(Sparsity::Dense), &hw, default);
        let (sparse, count) = cycles(&net, &hw, default);
        let ideal = 3.0 / (1.0 + 2.0 * n as f64 / m as f64);
        let published = if (n, m) == (2, 8) { "1.75x" } else { "-" };
        println!(
            "  {:<6} {:>14} {:>14} {:>8.3}x {:>6.2}x {:>12.3}x {:>10} {:>12}",
            format!("{n}:{m}"),
            dense,
            sparse,
            dense as f64 / sparse as f64,
            ideal,
            net.ideal_speedup(EnginePattern { n, m }),
            published,
            count
        );
    }
    // The scheduler's two dataflow options at 2:8, each switched off alone.
    let hw = hardware(rows, 2, 8, bytes_per_cycle);
    let net = load(file, &hw);
    let base = cycles(&net, &hw, default).0;
    let no_interleave = cycles(
        &net,
        &hw,
        Options {
            interleave: false,
            ..default
        },
    )
    .0;
    let no_pregen = cycles(
        &net,
        &hw,
        Options {
            pregen: false,
            ..default
        },
    )
    .0;
    println!(
        "  2:8 options: both on {base}; interleave off {no_interleave} ({:.3}x of both on); \
         pre-generation off {no_pregen} ({:.3}x)",
        no_interleave as f64 / base as f64,
        no_pregen as f64 / base as f64
    );
    let with_dx = |net: &Network| cycles(&net.with_input_gradient(true), &hw, default).0;
    let (dense, dense_dx) = (
        cycles(&net.with_sparsity(Sparsity::Dense), &hw, default).0,
        with_dx(&net.with_sparsity(Sparsity::Dense)),
    );
    let sparse_dx = with_dx(&net);
    println!(
        "  2:8 with the first layer's dX computed (input_gradient = true): {sparse_dx} ({:.3}x \
         of without), dense {dense_dx} ({:.3}x), speedup {:.3}x (without: {:.3}x)",
        sparse_dx as f64 / base as f64,
        dense_dx as f64 / dense as f64,
        dense_dx as f64 / sparse_dx as f64,
        dense as f64 / base as f64
    );
    println!("  (scheduled in {:.1} s)", t0.elapsed().as_secs_f64());
}

fn main() {
    let only = std::env::var("COFORGE_BENCH_NETS").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x == name))
    };
    println!(
        "Estimated BDWP training-step cycles (scheduler cost model; estimates, not measurements). \
         The first layer of each network stays dense and its dX (the input gradient) is not \
         computed; dense = the same network all dense on the same hardware."
    );
    if wanted("mlp") {
        row("mlp.toml", 4, 64);
    }
    if wanted("small-cnn") {
        row("small-cnn.toml", 4, 64);
    }
    if wanted("resnet18") {
        row("resnet18.toml", 32, 64);
    }
    if wanted("resnet50") {
        row("resnet50.toml", 32, 64);
    }
    if wanted("starved") {
        println!("\nBandwidth-starved: the small CNN with a 4 B/cycle memory port.");
        row("small-cnn.toml", 4, 4);
    }
}
