//! `layers.csv` (per layer and pass: estimated cycles, MACs, utilization) and `schedule.svg` (a
//! Gantt chart of the estimated timings, one lane per engine; the DMA lane is the memory port).
//! Both are plain text built from the schedule alone, so they are byte-identical for one input.

use std::fmt::Write;

use serde::Serialize;

use crate::access::dram_beats;
use crate::build::Pass;
use crate::estimate::cost;
use crate::isa::Engine;
use crate::network::Sparsity;
use crate::Schedule;

/// The estimated figures of one pass of one layer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PassReport {
    pub layer: String,
    pub pass: Pass,
    pub instructions: usize,
    /// First start and last end of the pass's instructions (loads and stores included).
    pub start_estimated: u64,
    pub end_estimated: u64,
    /// Cycles the pass's compute instructions occupy their engine.
    pub busy_cycles_estimated: u64,
    pub dram_beats: u64,
    /// MACs of the pass as a dense GEMM, and the multiplications the engine really does.
    pub macs_dense_equivalent: u64,
    pub macs_effective: u64,
    /// `macs_effective / (busy cycles * rows * cols * N)` for GEMM passes.
    pub utilization: Option<f64>,
}

/// Per layer and pass, in layer order then pass order (passes without instructions left out:
/// a dense layer's PRUNE_F and PRUNE_B, and the BP and PRUNE_B of a first layer whose dX the
/// step does not compute, the network file's `input_gradient = false`).
pub fn pass_reports(s: &Schedule) -> Vec<PassReport> {
    let hw = &s.hardware;
    let mut out = Vec::new();
    let slots = (hw.rows * hw.cols * hw.n) as f64;
    for (li, layer) in s.layers.iter().enumerate() {
        for pass in Pass::ALL {
            let entries: Vec<_> = s
                .instructions
                .iter()
                .filter(|e| e.layer == Some(li) && e.pass == Some(pass))
                .collect();
            if entries.is_empty() {
                continue;
            }
            let dense = layer.macs();
            let macs_effective = match pass {
                Pass::Ff | Pass::Bp if layer.sparsity == Sparsity::Sparse => {
                    dense * hw.n as u64 / hw.m as u64
                }
                Pass::Ff | Pass::Bp | Pass::Wu => dense,
                _ => 0,
            };
            let busy: u64 = entries
                .iter()
                .filter(|e| e.engine != Some(Engine::Dma))
                .map(|e| cost(&e.instr, hw))
                .sum();
            let dram_beats = entries
                .iter()
                .map(|e| dram_beats(&e.instr, hw).map_or(0, |b| b.end - b.start))
                .sum();
            let gemm = matches!(pass, Pass::Ff | Pass::Bp | Pass::Wu);
            out.push(PassReport {
                layer: layer.name.clone(),
                pass,
                instructions: entries.len(),
                start_estimated: entries.iter().map(|e| e.start_estimated).min().unwrap_or(0),
                end_estimated: entries.iter().map(|e| e.end_estimated).max().unwrap_or(0),
                busy_cycles_estimated: busy,
                dram_beats,
                macs_dense_equivalent: if gemm { dense } else { 0 },
                macs_effective,
                utilization: (gemm && busy > 0)
                    .then(|| macs_effective as f64 / (busy as f64 * slots)),
            });
        }
    }
    out
}

/// `layers.csv`.
pub fn layers_csv(s: &Schedule) -> String {
    let mut out = String::from(
        "layer,pass,instructions,start_estimated,end_estimated,span_cycles_estimated,\
         busy_cycles_estimated,dram_beats,macs_dense_equivalent,macs_effective,utilization\n",
    );
    for r in pass_reports(s) {
        let util = r.utilization.map(|u| format!("{u:.4}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            r.layer,
            r.pass.name(),
            r.instructions,
            r.start_estimated,
            r.end_estimated,
            r.end_estimated - r.start_estimated,
            r.busy_cycles_estimated,
            r.dram_beats,
            r.macs_dense_equivalent,
            r.macs_effective,
            util
        );
    }
    out
}

fn color(pass: Option<Pass>) -> &'static str {
    match pass {
        Some(Pass::Ff) => "#4c78a8",
        Some(Pass::Bp) => "#f58518",
        Some(Pass::Wu) => "#54a24b",
        Some(Pass::Update) => "#b279a2",
        Some(Pass::PruneF) => "#e45756",
        Some(Pass::PruneB) => "#9d755d",
        None => "#888888",
    }
}

/// `schedule.svg`: one lane per engine (the DMA lane is the memory port), time left to right,
/// colored by pass. Bars closer than half a pixel on a lane with the same pass are drawn as one,
/// so a step of a million instructions is still a small file.
pub fn gantt_svg(s: &Schedule) -> String {
    const WIDTH: f64 = 1200.0;
    const LEFT: f64 = 150.0;
    const LANE: f64 = 36.0;
    const TOP: f64 = 40.0;
    let lanes = [
        (Engine::Dma, "dma (memory port)"),
        (Engine::Stce, "stce"),
        (Engine::Wuve, "wuve"),
        (Engine::Sore, "sore"),
    ];
    let total = s.step_cycles_estimated.max(1) as f64;
    let scale = (WIDTH - LEFT - 20.0) / total;
    let height = TOP + LANE * lanes.len() as f64 + 70.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"20\">{}: one training step, {} estimated cycles (estimates from the \
         scheduler's cost model, not measured)</text>",
        escape(&s.network),
        s.step_cycles_estimated
    );
    for (k, (engine, label)) in lanes.iter().enumerate() {
        let y = TOP + LANE * k as f64;
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{:.1}\">{label}</text>",
            y + LANE / 2.0 + 4.0
        );
        let _ = writeln!(
            svg,
            "<rect x=\"{LEFT}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f4f4f4\"/>",
            WIDTH - LEFT - 20.0,
            LANE - 6.0
        );
        let mut bar: Option<(f64, f64, Option<Pass>)> = None;
        let flush = |svg: &mut String, bar: Option<(f64, f64, Option<Pass>)>| {
            if let Some((x0, x1, pass)) = bar {
                let _ = writeln!(
                    svg,
                    "<rect x=\"{:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"{}\"/>",
                    LEFT + x0,
                    y + 2.0,
                    (x1 - x0).max(0.5),
                    LANE - 10.0,
                    color(pass)
                );
            }
        };
        for e in s.instructions.iter().filter(|e| e.engine == Some(*engine)) {
            let (x0, x1) = (
                e.start_estimated as f64 * scale,
                e.end_estimated as f64 * scale,
            );
            match bar {
                Some((b0, b1, p)) if p == e.pass && x0 <= b1 + 0.5 => {
                    bar = Some((b0, b1.max(x1), p));
                }
                _ => {
                    flush(&mut svg, bar);
                    bar = Some((x0, x1, e.pass));
                }
            }
        }
        flush(&mut svg, bar);
    }
    let axis = TOP + LANE * lanes.len() as f64 + 4.0;
    for i in 0..=4 {
        let cycle = s.step_cycles_estimated * i / 4;
        let x = LEFT + cycle as f64 * scale;
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.2}\" y1=\"{TOP}\" x2=\"{x:.2}\" y2=\"{axis:.1}\" stroke=\"#bbbbbb\"/>\
             <text x=\"{x:.2}\" y=\"{:.1}\" text-anchor=\"middle\">{cycle}</text>",
            axis + 14.0
        );
    }
    for (k, pass) in Pass::ALL.iter().enumerate() {
        let x = LEFT + 120.0 * k as f64;
        let y = axis + 34.0;
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
            y - 10.0,
            color(Some(*pass)),
            x + 16.0,
            pass.name()
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
