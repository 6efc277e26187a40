//! What a sweep writes: `sweep.json` (every record, and what the merge checks), `sweep.csv` (one
//! row per point) and `pareto.svg` (estimated cycles per training step against LUTs and against
//! DSPs, one row of panels per network, the Pareto front drawn in colour). Plain text built from
//! the records in point order, so the files are byte-identical for one set of records.

use std::fmt::Write;

use coforge_generator::config::{DspPacking, Dtype, SystemConfig};
use serde::{Deserialize, Serialize};

use super::eval::{Record, Resources};
use super::space::Shard;
use crate::junit::escape;

/// `sweep.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepFile {
    pub note: String,
    /// The space's hash: shards of one space share it.
    pub space_hash: String,
    pub family: String,
    /// Network names, in the order of every record's `cycles_estimated`.
    pub networks: Vec<String>,
    /// The `[system]` every schedule used.
    pub system: SystemConfig,
    /// Every point of the space, in order (index = position).
    pub point_ids: Vec<String>,
    /// The shards whose points this file holds (one for a run, several after a merge).
    pub shards: Vec<Shard>,
    pub yosys: bool,
    pub verify: bool,
    pub yosys_version: Option<String>,
    pub yosys_cache: CacheStats,
    pub records: Vec<Record>,
}

/// Yosys estimates taken from the cache and synthesized, in the runs behind a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    pub hits: usize,
    pub misses: usize,
}

pub const NOTE: &str = "cycles_estimated: one BDWP training step per network from the offline \
scheduler's cost model on the point's SAT system (not measured); resources: Yosys synth_xilinx \
-flatten cells summed over the engine tops (estimates, not Vivado results); verify: one seeded \
GEMM in Verilator, cycles measured beside estimated_cycles; point i belongs to shard i mod N";

/// `sweep.csv`: one row per record, in point order.
pub fn csv(file: &SweepFile) -> String {
    let mut out = String::from("index,id,dtype,rows,cols,n,m,dsp_packing,lanes");
    for net in &file.networks {
        let _ = write!(out, ",cycles_estimated_{net}");
    }
    out.push_str(
        ",luts,flip_flops,dsps,block_rams,carries,longest_path,verify_shape,verify_bit_exact,\
         verify_cycles,verify_estimated_cycles,config_hash\n",
    );
    for r in &file.records {
        let p = &r.point;
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            r.index,
            r.id,
            dtype_name(p.dtype),
            p.rows,
            p.cols,
            p.n,
            p.m,
            match p.dsp_packing {
                DspPacking::None => "none",
                DspPacking::Int8x2 => "int8x2",
            },
            r.point.lanes.map(|l| l.to_string()).unwrap_or_default()
        );
        for c in &r.cycles_estimated {
            let _ = write!(out, ",{c}");
        }
        match &r.resources {
            Some(res) => {
                let _ = write!(
                    out,
                    ",{},{},{},{},{},{}",
                    res.luts,
                    res.flip_flops,
                    res.dsps,
                    res.block_rams,
                    res.carries,
                    res.longest_path
                );
            }
            None => out.push_str(",,,,,,"),
        }
        match &r.verify {
            Some(v) => {
                let _ = write!(
                    out,
                    ",{},{},{},{}",
                    v.shape, v.bit_exact, v.cycles, v.estimated_cycles
                );
            }
            None => out.push_str(",,,,"),
        }
        let _ = writeln!(out, ",{}", r.config_hash);
    }
    out
}

fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::Int8 => "int8",
        Dtype::Fp16 => "fp16",
    }
}

/// Indices (into `points`) of the Pareto front when both coordinates are minimized: a point is
/// on it when no other point is at least as good in both and better in one. Ties of both
/// coordinates keep the first point.
pub fn pareto_front(points: &[(u64, u64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| (points[i].0, points[i].1, i));
    let mut best_y = u64::MAX;
    let mut front = Vec::new();
    for i in order {
        if points[i].1 < best_y {
            best_y = points[i].1;
            front.push(i);
        }
    }
    front
}

const PANEL_W: f64 = 460.0;
const PANEL_H: f64 = 300.0;
const MARGIN_L: f64 = 80.0;
const MARGIN_B: f64 = 46.0;
const MARGIN_T: f64 = 30.0;
const PAD: f64 = 20.0;

/// An axis over `[lo, hi]`, logarithmic when the data spans more than a factor of 20 (and is
/// positive), so that a 2 x 2 and a 32 x 32 array both stay readable.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn of(values: impl Iterator<Item = u64>) -> Axis {
        let v: Vec<f64> = values.map(|x| x as f64).collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        let log = lo > 0.0 && hi / lo > 20.0;
        if log {
            Axis {
                lo: lo / 1.25,
                hi: hi * 1.25,
                log,
            }
        } else {
            let span = (hi - lo).max(1.0);
            Axis {
                lo: (lo - 0.08 * span).max(0.0),
                hi: hi + 0.08 * span,
                log,
            }
        }
    }
    /// Position in [0, 1].
    fn at(&self, x: f64) -> f64 {
        if self.log {
            (x.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (x - self.lo) / (self.hi - self.lo)
        }
    }
    /// Five tick values spread over the axis.
    fn ticks(&self) -> Vec<f64> {
        (0..5)
            .map(|k| {
                let t = k as f64 / 4.0;
                if self.log {
                    (self.lo.ln() + t * (self.hi.ln() - self.lo.ln())).exp()
                } else {
                    self.lo + t * (self.hi - self.lo)
                }
            })
            .collect()
    }
}

/// A tick label with three significant digits: 1234 → "1.23k".
fn short(x: f64) -> String {
    let (v, suffix) = match x {
        x if x >= 1e9 => (x / 1e9, "G"),
        x if x >= 1e6 => (x / 1e6, "M"),
        x if x >= 1e3 => (x / 1e3, "k"),
        x => (x, ""),
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{suffix}")
}

/// A resource the plot puts on the x axis: its name and how to read it.
type ResourceAxis = (&'static str, fn(&Resources) -> u64);
/// One panel: network index, axis index, and (resource, cycles) per point.
type Panel = (usize, usize, Vec<(u64, u64)>);

/// `pareto.svg`.
pub fn pareto_svg(file: &SweepFile) -> String {
    let with_res: Vec<&Record> = file
        .records
        .iter()
        .filter(|r| r.resources.is_some())
        .collect();
    let axes: [ResourceAxis; 2] = [("LUTs", |x| x.luts), ("DSPs", |x| x.dsps)];
    // Per panel (network, axis): the (resource, cycles) of every point.
    let panels: Vec<Panel> = (0..file.networks.len())
        .flat_map(|j| (0..axes.len()).map(move |k| (j, k)))
        .map(|(j, k)| {
            let pts = with_res
                .iter()
                .map(|r| {
                    (
                        r.resources.as_ref().map_or(0, axes[k].1),
                        r.cycles_estimated[j],
                    )
                })
                .collect();
            (j, k, pts)
        })
        .collect();
    // The key: every point on some front, by index.
    let mut on_front: Vec<usize> = panels
        .iter()
        .flat_map(|(_, _, pts)| pareto_front(pts))
        .collect();
    on_front.sort_unstable();
    on_front.dedup();
    let key: Vec<String> = on_front
        .iter()
        .map(|&i| format!("{} {}", with_res[i].index, with_res[i].id))
        .collect();
    let key_lines: Vec<String> = key.chunks(5).map(|c| c.join(",  ")).collect();
    let nets = file.networks.len().max(1);
    let width = 2.0 * PANEL_W + 2.0 * PAD;
    let body = 50.0 + nets as f64 * (PANEL_H + PAD);
    let height = body + 20.0 + 16.0 * key_lines.len() as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(
        svg,
        "<text x=\"{PAD}\" y=\"20\" font-size=\"13\">Estimated cycles per training step (offline \
         scheduler) against Yosys {} LUTs and DSPs, {} points; Pareto front in red, labelled by \
         point index</text>",
        escape(&file.family),
        file.records.len()
    );
    let _ = writeln!(
        svg,
        "<text x=\"{PAD}\" y=\"36\" fill=\"#555555\">Estimates, not measurements: cycles from \
         the scheduler's cost model, resources from yosys synth_xilinx -flatten (not Vivado)</text>"
    );
    if with_res.is_empty() {
        let _ = writeln!(
            svg,
            "<text x=\"{PAD}\" y=\"70\">No resource estimates in this sweep (it ran with \
             --no-yosys): nothing to plot.</text>"
        );
        svg.push_str("</svg>\n");
        return svg;
    }
    for (j, k, pts) in &panels {
        let (x0, y0) = (
            PAD + *k as f64 * PANEL_W,
            50.0 + *j as f64 * (PANEL_H + PAD),
        );
        panel(
            &mut svg,
            x0,
            y0,
            &file.networks[*j],
            axes[*k].0,
            pts,
            &with_res,
        );
    }
    for (n, line) in key_lines.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{PAD}\" y=\"{:.1}\" fill=\"#d62728\">{}{}</text>",
            body + 10.0 + 16.0 * n as f64,
            if n == 0 { "on a front: " } else { "" },
            escape(line)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn panel(
    svg: &mut String,
    x0: f64,
    y0: f64,
    net: &str,
    label: &str,
    pts: &[(u64, u64)],
    records: &[&Record],
) {
    let (pw, ph) = (PANEL_W - MARGIN_L - 10.0, PANEL_H - MARGIN_T - MARGIN_B);
    let (left, top) = (x0 + MARGIN_L, y0 + MARGIN_T);
    let ax = Axis::of(pts.iter().map(|p| p.0));
    let ay = Axis::of(pts.iter().map(|p| p.1));
    let px = |x: u64| left + ax.at(x as f64) * pw;
    let py = |y: u64| top + ph - ay.at(y as f64) * ph;
    let _ = writeln!(
        svg,
        "<text x=\"{left:.1}\" y=\"{:.1}\" font-size=\"12\">{}: cycles against {label}{}</text>",
        y0 + 18.0,
        escape(net),
        if ax.log || ay.log { " (log scale)" } else { "" }
    );
    let _ = writeln!(
        svg,
        "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{pw:.1}\" height=\"{ph:.1}\" \
         fill=\"#fafafa\" stroke=\"#999999\"/>"
    );
    for t in ax.ticks() {
        let x = left + ax.at(t) * pw;
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#999999\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            top + ph,
            top + ph + 4.0,
            top + ph + 16.0,
            short(t)
        );
    }
    for t in ay.ticks() {
        let y = top + ph - ay.at(t) * ph;
        let _ = writeln!(
            svg,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{left:.1}\" y2=\"{y:.1}\" stroke=\"#999999\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 4.0,
            left - 6.0,
            y + 4.0,
            short(t)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label} (Yosys estimate)</text>",
        left + pw / 2.0,
        top + ph + 34.0
    );
    let _ = writeln!(
        svg,
        "<text transform=\"translate({:.1},{:.1}) rotate(-90)\" text-anchor=\"middle\">\
         cycles per step (estimated)</text>",
        x0 + 14.0,
        top + ph / 2.0
    );
    let front = pareto_front(pts);
    for (i, &(x, y)) in pts.iter().enumerate() {
        if front.contains(&i) {
            continue;
        }
        let _ = writeln!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"#9e9e9e\"><title>{}: {x} {label}, \
             {y} cycles</title></circle>",
            px(x),
            py(y),
            escape(&records[i].id)
        );
    }
    let line: Vec<String> = front
        .iter()
        .map(|&i| format!("{:.1},{:.1}", px(pts[i].0), py(pts[i].1)))
        .collect();
    let _ = writeln!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\"/>",
        line.join(" ")
    );
    for (k, &i) in front.iter().enumerate() {
        let (x, y) = pts[i];
        // Alternate labels above and below the front, so that neighbours do not overprint.
        let dy = if k % 2 == 0 { -6.0 } else { 14.0 };
        let _ = writeln!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4.5\" fill=\"#d62728\"><title>{}: {x} {label}, \
             {y} cycles</title></circle><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#d62728\" \
             font-size=\"10\">{}</text>",
            px(x),
            py(y),
            escape(&records[i].id),
            px(x) + 5.0,
            py(y) + dy,
            records[i].index
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_keeps_the_points_nothing_beats() {
        // (resources, cycles): 1 dominates 3; 0 and 2 trade off; 4 ties 1 and comes later.
        let pts = [(10, 100), (20, 50), (30, 40), (25, 60), (20, 50)];
        assert_eq!(pareto_front(&pts), vec![0, 1, 2]);
        assert_eq!(pareto_front(&[]), Vec::<usize>::new());
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(short(1234.0), "1.23k");
        assert_eq!(short(92_000_000.0), "92.0M");
        assert_eq!(short(7.0), "7.00");
    }
}
