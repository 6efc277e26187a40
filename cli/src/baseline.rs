//! `coforge baseline record | check`: regression baselines of cycles and resources.
//!
//! `record` writes one JSON file per config: the cycles of a fixed set of seeded workloads
//! (measured in co-simulation beside the cycle model's estimate), the Yosys cell counts of every
//! top (LUTs, flip-flops, DSPs, block RAMs) with the longest path (`ltp -noff` after
//! `synth_xilinx -flatten`), and the versions of Verilator and Yosys. `check` recomputes the same
//! figures and prints what moved and by how much. Lower is better for every figure: a rise
//! beyond the tolerance is a regression (exit 1), a fall is an improvement (reported, exit 0,
//! with the command that re-records). A tool version that differs from the baseline's is said
//! first, since it explains moved figures better than any change to the design.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use clap::{Args, Subcommand};
use coforge_driver::design::design_spec_of;
use coforge_driver::verify::Mode;
use coforge_driver::{sore, wuve};
use coforge_generator::artifacts::sore_params;
use coforge_generator::engines::stce::ports;
use coforge_generator::engines::wuve::WuveParams;
use coforge_sim::{BuildOptions, Verilator};
use half::f16;
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::engine::{self, LoadedEngine, Progress};
use crate::output::OutputDir;
use crate::yosys;

#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// Record the baselines of one or more configs: one JSON file per config in --out
    Record(RecordArgs),
    /// Recompute the figures of every baseline in --baseline and report what moved
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Engine config (TOML); repeat for several. Paths are stored as given: run `check` from the
    /// same folder (the repository root)
    #[arg(long = "config", required = true)]
    pub configs: Vec<PathBuf>,
    /// Output folder: <config name>.json per config
    #[arg(long)]
    pub out: PathBuf,
    /// Record cycles only (no Yosys figures)
    #[arg(long)]
    pub no_yosys: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Folder of baselines written by `coforge baseline record`
    #[arg(long)]
    pub baseline: PathBuf,
    /// Allowed rise per figure: an absolute number or a percentage, comma-separated, e.g.
    /// `cycles=0,luts=2%,ffs=2%,dsps=0,brams=0,path=0` (unlisted figures: 0)
    #[arg(long, default_value = "", value_parser = Tolerances::parse)]
    pub tolerance: Tolerances,
    /// Check cycles only, for every config
    #[arg(long)]
    pub no_yosys: bool,
    /// Check only the cycles of this config (its name, e.g. `fp16-4x4-2of8`); repeatable. For
    /// configs whose synthesis takes minutes
    #[arg(long, value_name = "CONFIG")]
    pub skip_yosys: Vec<String>,
}

pub fn run(cmd: BaselineCommand) -> anyhow::Result<()> {
    match cmd {
        BaselineCommand::Record(args) => record(args),
        BaselineCommand::Check(args) => check(args),
    }
}

/// The Yosys family of every baseline (the estimate verb's default).
const FAMILY: &str = "xc7";
const FORMAT: u32 = 1;

/// One config's baseline file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub format: u32,
    pub note: String,
    /// The config path as given to `record`.
    pub config: String,
    pub config_hash: String,
    pub coforge_version: String,
    /// Tool name → version text (`verilator`, `yosys`).
    pub tools: BTreeMap<String, String>,
    pub workloads: Vec<WorkloadCycles>,
    /// Per top; absent when recorded with `--no-yosys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<TopResources>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadCycles {
    /// e.g. `stce gemm 16x64x16 sparse seed 1`
    pub name: String,
    /// Measured in co-simulation: the engine's observed cycles.
    pub cycles: u64,
    /// The engine's cycle model for the same job.
    pub estimated_cycles: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopResources {
    pub top: String,
    pub family: String,
    pub luts: u64,
    pub flip_flops: u64,
    pub dsps: u64,
    pub block_rams: u64,
    /// Cells on the longest topological path (see `yosys::Synthesis::longest_path`).
    pub longest_path: u64,
    /// Every cell type, for reference (not checked).
    pub cells: BTreeMap<String, u64>,
}

/// A fixed, seeded job on one engine of a config.
#[derive(Clone, Copy, Debug)]
enum Workload {
    Gemm {
        shape: (usize, usize, usize),
        seed: u64,
        mode: Mode,
    },
    /// N:M pruning of a seeded `rows x cols` tensor along its rows (axis 1) on the SORE.
    Prune { rows: usize, cols: usize, seed: u64 },
    /// Weight update of a seeded `rows x cols` weight set on the WUVE.
    Update { rows: usize, cols: usize, seed: u64 },
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Workload::Gemm {
                shape: (m, k, n),
                seed,
                mode,
            } => write!(
                f,
                "stce gemm {m}x{k}x{n} {} seed {seed}",
                format!("{mode:?}").to_lowercase()
            ),
            Workload::Prune { rows, cols, seed } => {
                write!(f, "sore prune {rows}x{cols} seed {seed}")
            }
            Workload::Update { rows, cols, seed } => {
                write!(f, "wuve update {rows}x{cols} seed {seed}")
            }
        }
    }
}

/// The fixed workloads of a config: a square-ish GEMM in the engine's native mode, the same GEMM
/// dense on an engine with a sparse mode, a ragged GEMM (partial tiles on every axis), and on a
/// training engine one pruning and one update job.
fn workloads(engine: &LoadedEngine) -> Vec<Workload> {
    // A config without a tensor engine (a [deform] engine alone) has no STCE workloads here.
    let Some(cfg) = &engine.config.stce else {
        return Vec::new();
    };
    let native = Mode::native(cfg);
    let mut w = vec![Workload::Gemm {
        shape: (16, 64, 16),
        seed: 1,
        mode: native,
    }];
    if native == Mode::Sparse {
        w.push(Workload::Gemm {
            shape: (16, 64, 16),
            seed: 1,
            mode: Mode::Dense,
        });
    }
    w.push(Workload::Gemm {
        shape: (7, 40, 9),
        seed: 2,
        mode: native,
    });
    if engine.config.train.is_some() {
        let m = cfg.m as usize;
        w.push(Workload::Prune {
            rows: 16,
            cols: 4 * m,
            seed: 3,
        });
        w.push(Workload::Update {
            rows: 16,
            cols: 32,
            seed: 4,
        });
    }
    w
}

fn build(spec: &coforge_sim::DesignSpec) -> anyhow::Result<coforge_sim::VerilatedModel> {
    let lib = Verilator::build(spec, &BuildOptions::default())
        .with_context(|| format!("building `{}` with Verilator", spec.top))?;
    Ok(lib.instantiate()?)
}

/// Runs every workload of `engine` in Verilator.
fn measure_cycles(
    engine: &LoadedEngine,
    progress: &mut Progress,
) -> anyhow::Result<Vec<WorkloadCycles>> {
    let mut stce = None;
    let mut out = Vec::new();
    for w in workloads(engine) {
        let (cycles, estimated_cycles) = match w {
            Workload::Gemm { shape, seed, mode } => {
                let sim = match &mut stce {
                    Some(sim) => sim,
                    None => stce.insert(build(&engine.spec)?),
                };
                let (stats, c) = crate::verify::seeded_gemm(sim, engine, shape, seed, mode)?;
                if let Some(first) = &c.first_mismatch {
                    bail!(
                        "`{w}` is not bit-exact ({first}); a baseline of a wrong result means \
                         nothing: run `coforge verify` on this config first"
                    );
                }
                (stats.cycles, stats.estimated_cycles)
            }
            Workload::Prune { rows, cols, seed } => {
                let p = sore_params(&engine.config).context("a [train] config has a SORE")?;
                let top = &engine.config.train.as_ref().context("[train]")?.sore_top;
                let spec = design_spec_of(&engine.rendered, top, ports::CLOCK);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let w_bits = Array2::from_shape_simple_fn((rows, cols), || {
                    if p.value_bits == 16 {
                        f16::from_f32(rng.random_range(-1.0f32..1.0)).to_bits() as u32
                    } else {
                        rng.random::<u8>() as u32
                    }
                });
                let pruned = sore::prune(&mut build(&spec)?, &p, &spec, w_bits.view(), Axis(1))?;
                (pruned.stats.cycles, pruned.stats.estimated_cycles)
            }
            Workload::Update { rows, cols, seed } => {
                let train = engine.config.train.as_ref().context("[train]")?;
                let p = WuveParams::of(train);
                let spec = design_spec_of(&engine.rendered, &train.wuve_top, ports::CLOCK);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut f = || rng.random_range(-1.0f32..1.0);
                let w32 = Array2::from_shape_simple_fn((rows, cols), &mut f);
                let dw = Array2::from_shape_simple_fn((rows, cols), &mut f);
                let keep = Array2::from_shape_fn((rows, cols), |(i, j)| ((i + j) % 2) as u8);
                let updated = wuve::update(
                    &mut build(&spec)?,
                    &p,
                    &spec,
                    w32.view(),
                    dw.view(),
                    keep.view(),
                    0.01,
                    2e-4,
                )?;
                (updated.stats.cycles, updated.stats.estimated_cycles)
            }
        };
        progress.step(&format!(
            "{w}: {cycles} cycles (estimated {estimated_cycles})"
        ));
        out.push(WorkloadCycles {
            name: w.to_string(),
            cycles,
            estimated_cycles,
        });
    }
    Ok(out)
}

/// Synthesizes every engine top of `engine` with Yosys. AXI wrappers are left out: Yosys on a
/// wrapper synthesizes its whole engine again (minutes for an fp16 engine), and the engine's own
/// figures are what a regression moves; `coforge estimate` reports the wrappers.
fn measure_resources(
    engine: &LoadedEngine,
    progress: &mut Progress,
) -> anyhow::Result<Vec<TopResources>> {
    let work = yosys::work_folder("baseline", &engine.rendered.verilog)?;
    let mut out = Vec::new();
    for top in engine.rendered.tops.iter().filter(|t| t.wraps.is_none()) {
        let syn = yosys::synthesize(work.path(), &top.files, &top.name, FAMILY, true)?;
        let class = |c: &str| syn.summary.get(c).copied().unwrap_or(0);
        let r = TopResources {
            top: top.name.clone(),
            family: FAMILY.into(),
            luts: class("luts"),
            flip_flops: class("flip_flops"),
            dsps: class("dsps"),
            block_rams: class("block_rams"),
            longest_path: syn.longest_path.context("asked for the longest path")?,
            cells: syn.cells,
        };
        progress.step(&format!(
            "{}: {} LUTs, {} FFs, {} DSPs, {} BRAMs, longest path {} cells",
            r.top, r.luts, r.flip_flops, r.dsps, r.block_rams, r.longest_path
        ));
        out.push(r);
    }
    Ok(out)
}

/// `configs/default.toml` → `default`.
fn config_name(path: &Path) -> String {
    crate::junit::config_name(path)
}

fn measure(config: &Path, yosys: bool) -> anyhow::Result<Baseline> {
    let engine = engine::load(config)?;
    let tops = if yosys {
        engine
            .rendered
            .tops
            .iter()
            .filter(|t| t.wraps.is_none())
            .count()
    } else {
        0
    };
    let mut progress = Progress::new(workloads(&engine).len() + tops);
    eprintln!("{}:", config.display());
    let mut tools = BTreeMap::new();
    tools.insert("verilator".to_string(), Verilator::version()?.text);
    let resources = if yosys {
        tools.insert("yosys".to_string(), yosys::version()?);
        Some(measure_resources(&engine, &mut progress)?)
    } else {
        None
    };
    Ok(Baseline {
        format: FORMAT,
        note: "cycles measured in Verilator beside the cycle model's estimate; resources are \
               Yosys synth_xilinx estimates (not Vivado results); longest_path counts cells on \
               the longest path of `ltp -noff`"
            .into(),
        config: config.display().to_string(),
        config_hash: engine.config.hash(),
        coforge_version: env!("CARGO_PKG_VERSION").into(),
        tools,
        workloads: measure_cycles(&engine, &mut progress)?,
        resources,
    })
}

fn record(args: RecordArgs) -> anyhow::Result<()> {
    let mut names = BTreeMap::new();
    for c in &args.configs {
        if let Some(other) = names.insert(config_name(c), c) {
            bail!(
                "{} and {} would both be recorded as {}.json; rename one",
                other.display(),
                c.display(),
                config_name(c)
            );
        }
    }
    let mut out = OutputDir::create(&args.out)?;
    for c in &args.configs {
        let b = measure(c, !args.no_yosys)?;
        // In the struct's field order, which reads top-down (to_value would sort the keys).
        let mut text = serde_json::to_string_pretty(&b)?;
        text.push('\n');
        out.add(&format!("{}.json", config_name(c)), text.into_bytes());
    }
    out.commit()
        .with_context(|| format!("cannot write baselines to {}", args.out.display()))?;
    eprintln!(
        "recorded {} baseline(s) in {}",
        args.configs.len(),
        args.out.display()
    );
    Ok(())
}

/// How far a figure may rise before it is a regression.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tolerance {
    Absolute(u64),
    Percent(f64),
}

impl Tolerance {
    fn allows(self, baseline: u64, now: u64) -> bool {
        let diff = now.abs_diff(baseline);
        match self {
            Tolerance::Absolute(n) => diff <= n,
            Tolerance::Percent(p) => (diff as f64) <= baseline as f64 * p / 100.0,
        }
    }
}

/// Tolerance per figure key (`cycles`, `luts`, `ffs`, `dsps`, `brams`, `path`); 0 when unlisted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tolerances(BTreeMap<&'static str, Tolerance>);

const KEYS: [&str; 6] = ["cycles", "luts", "ffs", "dsps", "brams", "path"];

impl Tolerances {
    fn parse(s: &str) -> Result<Tolerances, String> {
        let mut map = BTreeMap::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not KEY=VALUE (for example luts=2%)"))?;
            let key = KEYS
                .iter()
                .find(|&&x| x == k.trim())
                .ok_or_else(|| format!("unknown figure `{k}`; use one of {}", KEYS.join(", ")))?;
            let v = v.trim();
            let tol = match v.strip_suffix('%') {
                Some(p) => Tolerance::Percent(
                    p.parse::<f64>()
                        .ok()
                        .filter(|p| p.is_finite() && *p >= 0.0)
                        .ok_or_else(|| format!("`{v}` is not a percentage (for example 2%)"))?,
                ),
                None => Tolerance::Absolute(v.parse().map_err(|_| {
                    format!("`{v}` is not a count or a percentage (for example 0 or 2%)")
                })?),
            };
            map.insert(*key, tol);
        }
        Ok(Tolerances(map))
    }

    fn get(&self, key: &str) -> Tolerance {
        self.0.get(key).copied().unwrap_or(Tolerance::Absolute(0))
    }
}

/// One checked figure: (item, figure name, tolerance key, value).
fn figures(b: &Baseline) -> Vec<(String, &'static str, &'static str, u64)> {
    let mut f = Vec::new();
    for w in &b.workloads {
        f.push((w.name.clone(), "cycles", "cycles", w.cycles));
        f.push((
            w.name.clone(),
            "estimated_cycles",
            "cycles",
            w.estimated_cycles,
        ));
    }
    for r in b.resources.iter().flatten() {
        for (figure, key, v) in [
            ("luts", "luts", r.luts),
            ("flip_flops", "ffs", r.flip_flops),
            ("dsps", "dsps", r.dsps),
            ("block_rams", "brams", r.block_rams),
            ("longest_path", "path", r.longest_path),
        ] {
            f.push((r.top.clone(), figure, key, v));
        }
    }
    f
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Regression,
    Improvement,
    WithinTolerance,
}

struct Moved {
    config: String,
    item: String,
    figure: &'static str,
    baseline: u64,
    now: u64,
    verdict: Verdict,
}

/// Compares the recomputed figures with the recorded ones.
fn compare(name: &str, old: &Baseline, new: &Baseline, tol: &Tolerances) -> Vec<Moved> {
    let now: BTreeMap<_, _> = figures(new)
        .into_iter()
        .map(|(item, figure, _, v)| ((item, figure), v))
        .collect();
    let mut moved = Vec::new();
    for (item, figure, key, baseline) in figures(old) {
        let Some(&v) = now.get(&(item.clone(), figure)) else {
            continue;
        };
        if v == baseline {
            continue;
        }
        let verdict = if tol.get(key).allows(baseline, v) {
            Verdict::WithinTolerance
        } else if v > baseline {
            Verdict::Regression
        } else {
            Verdict::Improvement
        };
        moved.push(Moved {
            config: name.to_string(),
            item,
            figure,
            baseline,
            now: v,
            verdict,
        });
    }
    moved
}

fn table(moved: &[Moved]) -> String {
    let rows: Vec<[String; 6]> = moved
        .iter()
        .map(|m| {
            let delta = m.now as i128 - m.baseline as i128;
            let pct = if m.baseline == 0 {
                String::new()
            } else {
                format!(" ({:+.1}%)", 100.0 * delta as f64 / m.baseline as f64)
            };
            [
                m.config.clone(),
                m.item.clone(),
                m.figure.to_string(),
                m.baseline.to_string(),
                format!("{} {delta:+}{pct}", m.now),
                match m.verdict {
                    Verdict::Regression => "REGRESSION",
                    Verdict::Improvement => "improvement",
                    Verdict::WithinTolerance => "within tolerance",
                }
                .to_string(),
            ]
        })
        .collect();
    let header = ["config", "what", "figure", "baseline", "now", "verdict"].map(String::from);
    let mut width = [0usize; 6];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |r: &[String; 6]| {
        let cells: Vec<String> = r
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", cells.join("  ").trim_end())
    };
    let mut s = line(&header);
    for r in &rows {
        s += &line(r);
    }
    s
}

fn read_baselines(dir: &Path) -> anyhow::Result<Vec<(String, Baseline)>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "cannot read the baseline folder {}; record one with `coforge baseline record`",
            dir.display()
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    ensure!(
        !paths.is_empty(),
        "{} holds no baseline (*.json); record them with `coforge baseline record --config C.toml --out {}`",
        dir.display(),
        dir.display()
    );
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let b: Baseline = serde_json::from_str(&text).with_context(|| {
                format!("{} is not a coforge baseline; re-record it", p.display())
            })?;
            ensure!(
                b.format == FORMAT,
                "{} has baseline format {}, this coforge writes {FORMAT}; re-record it",
                p.display(),
                b.format
            );
            Ok((config_name(p), b))
        })
        .collect()
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let baselines = read_baselines(&args.baseline)?;
    for skipped in &args.skip_yosys {
        ensure!(
            baselines.iter().any(|(n, _)| n == skipped),
            "--skip-yosys {skipped}: no baseline of that name in {} (names: {})",
            args.baseline.display(),
            baselines
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut moved = Vec::new();
    let mut notes = Vec::new();
    let mut tool_changes = Vec::new();
    for (name, old) in &baselines {
        let config = Path::new(&old.config);
        ensure!(
            config.is_file(),
            "baseline {name} was recorded from {}, which does not exist here; run the check from \
             the folder `record` ran in, or re-record",
            old.config
        );
        let yosys = !args.no_yosys && !args.skip_yosys.contains(name) && old.resources.is_some();
        let new = measure(config, yosys)?;
        if !yosys && old.resources.is_some() {
            notes.push(format!("{name}: Yosys figures not checked (cycles only)"));
        }
        if new.config_hash != old.config_hash {
            notes.push(format!(
                "{name}: {} changed since the baseline was recorded",
                old.config
            ));
        }
        for (tool, version) in &new.tools {
            match old.tools.get(tool) {
                Some(v) if v != version => tool_changes.push(format!(
                    "{name}: {tool} is `{version}`, the baseline was recorded with `{v}`"
                )),
                _ => {}
            }
        }
        let names = |b: &Baseline| {
            b.workloads
                .iter()
                .map(|w| w.name.clone())
                .collect::<Vec<_>>()
        };
        if names(old) != names(&new) {
            notes.push(format!(
                "{name}: the workload set changed ({} recorded, {} now); only common workloads are compared",
                names(old).len(),
                names(&new).len()
            ));
        }
        moved.extend(compare(name, old, &new, &args.tolerance));
    }
    for t in &tool_changes {
        say!("tool version differs: {t}");
    }
    for n in &notes {
        say!("note: {n}");
    }
    let count = |v| moved.iter().filter(|m| m.verdict == v).count();
    let (regressions, improvements) = (count(Verdict::Regression), count(Verdict::Improvement));
    if moved.is_empty() {
        say!(
            "baseline check: {} config(s), every figure equal to the baseline",
            baselines.len()
        );
    } else {
        say_raw!("{}", table(&moved));
    }
    let rerecord = format!(
        "coforge baseline record {} --out {}",
        baselines
            .iter()
            .map(|(_, b)| format!("--config {}", b.config))
            .collect::<Vec<_>>()
            .join(" "),
        args.baseline.display()
    );
    if regressions > 0 {
        let cause = if tool_changes.is_empty() {
            String::new()
        } else {
            " A tool version differs from the baseline's (above): that alone can move these figures."
                .to_string()
        };
        bail!(
            "{regressions} figure(s) regressed beyond the tolerance.{cause} If the change is \
             intended, re-record: {rerecord}"
        );
    }
    if improvements > 0 {
        say!("{improvements} figure(s) improved; to keep the gain, re-record: {rerecord}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline(cycles: u64, luts: u64) -> Baseline {
        Baseline {
            format: FORMAT,
            note: String::new(),
            config: "c.toml".into(),
            config_hash: "h".into(),
            coforge_version: "0".into(),
            tools: BTreeMap::new(),
            workloads: vec![WorkloadCycles {
                name: "w".into(),
                cycles,
                estimated_cycles: cycles,
            }],
            resources: Some(vec![TopResources {
                top: "t".into(),
                family: FAMILY.into(),
                luts,
                flip_flops: 10,
                dsps: 1,
                block_rams: 0,
                longest_path: 5,
                cells: BTreeMap::new(),
            }]),
        }
    }

    #[test]
    fn tolerances_parse_and_apply() {
        let t = Tolerances::parse("cycles=0, luts=2%,path=3").unwrap();
        assert_eq!(t.get("luts"), Tolerance::Percent(2.0));
        assert_eq!(t.get("ffs"), Tolerance::Absolute(0));
        assert!(t.get("luts").allows(1000, 1020));
        assert!(!t.get("luts").allows(1000, 1021));
        assert!(t.get("path").allows(10, 13));
        assert!(Tolerances::parse("lut=2%").unwrap_err().contains("luts"));
        assert!(Tolerances::parse("luts=x").is_err());
        assert!(Tolerances::parse("luts=-1%").is_err());
        assert_eq!(Tolerances::parse("").unwrap(), Tolerances::default());
    }

    #[test]
    fn rises_regress_falls_improve_and_small_moves_pass() {
        let old = baseline(100, 1000);
        let t = Tolerances::parse("luts=1%").unwrap();
        let moved = compare("c", &old, &baseline(101, 1005), &t);
        let verdicts: Vec<_> = moved.iter().map(|m| (m.figure, m.verdict)).collect();
        assert_eq!(
            verdicts,
            [
                ("cycles", Verdict::Regression),
                ("estimated_cycles", Verdict::Regression),
                ("luts", Verdict::WithinTolerance)
            ]
        );
        let moved = compare("c", &old, &baseline(90, 900), &t);
        assert!(moved.iter().all(|m| m.verdict == Verdict::Improvement));
        assert!(compare("c", &old, &old, &t).is_empty());
        let text = table(&moved);
        assert!(text.contains("90 -10 (-10.0%)"), "{text}");
    }
}
