//! `coforge campaign`: differential campaigns. N seeded random cases per engine run on the RTL
//! (Verilator) and are compared bit for bit with the reference.
//!
//! Engines and what a campaign covers:
//! - `stce`: GEMMs on small generated tensor engines, int8, int4 weights and fp16, each sparse
//!   engine in its N:M mode and in its dense mode, plus dense engines (or, with `--config`, the
//!   given engine in each of its modes). Random shapes (partial tiles, K not a multiple of M) and
//!   values drawn per tensor from one of several distributions: uniform, format edges (-128, 127,
//!   -8, 7, +-0, subnormals, the largest finite values, infinities, rounding ties), all-equal
//!   tensors and all-equal groups (N:M ties), and fp16 bit patterns from the whole format.
//! - `sore`: N:M pruning on the online pruning unit (fp16 and int8 rules), along either axis.
//! - `wuve`: SR-STE weight updates on the weight-update engine, fp32 values from the edges of the
//!   format.
//! - `deform`: layers on small deformable-convolution engines (plain, CoDeNet, DCNv2
//!   depthwise) under random back-pressure; see [`deform`].
//!
//! Case `i` draws everything from its own seed, derived from `(--seed, i)`, and runs on variant
//! `i mod V`; `--only i` runs that case alone. One model is built per variant and reused for
//! every case. A failing case is written to the output folder as `.npy` inputs (and, for the
//! STCE, the config TOML) with the command that replays it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use coforge_driver::compare::{compare, Bits, Comparison};
use coforge_driver::design::design_spec;
use coforge_driver::verify::{fp16_gemm, int8_gemm, Mode, Outcome, Raw};
use coforge_driver::{sore, wuve};
use coforge_generator::artifacts::render;
use coforge_generator::config::{Config, Dtype, StceConfig};
use coforge_generator::engines::sore::{MagnitudeRule, SoreParams};
use coforge_generator::engines::stce::ports;
use coforge_generator::engines::wuve::WuveParams;
use coforge_sim::{BuildOptions, DesignSpec, VerilatedModel, Verilator};
use half::f16;
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sparse_kernels::bdwp::update_element;
use sparse_kernels::fp::{canon, canon16, to_f16};
use sparse_kernels::nm::{compress, mask, Magnitude, NmPattern};

mod deform;

use crate::junit;
use crate::output::OutputDir;
use crate::tensor_io::{encode, NpyElement};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineArg {
    /// The sparse tensor engine (GEMM)
    Stce,
    /// The online N:M pruning unit
    Sore,
    /// The weight-update vector engine
    Wuve,
    /// The deformable-convolution engine (plain, CoDeNet and DCNv2 depthwise)
    Deform,
}

#[derive(Args, Debug)]
pub struct CampaignArgs {
    /// Engine under test
    #[arg(long, value_enum)]
    pub engine: EngineArg,
    /// Number of random cases, spread over the engine's variants
    #[arg(long, default_value_t = 1000)]
    pub cases: u64,
    /// Campaign seed; case i uses a seed derived from (seed, i)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// STCE only: run the cases on this engine config instead of the built-in small engines
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder for summary.json and the inputs of failing cases
    #[arg(long)]
    pub out: PathBuf,
    /// Run only case I of the campaign (to replay a failure)
    #[arg(long, value_name = "I")]
    pub only: Option<u64>,
    /// Fault injection (STCE): flip the lowest bit of the golden C[0,0] in case I, to prove that
    /// a mismatch is caught, written out and replayable
    #[arg(long, value_name = "I", hide = true)]
    pub corrupt_case: Option<u64>,
    /// Also write a JUnit XML report here: a test suite per variant, a test case per case (its
    /// failure names the first mismatch and the replay command), written even when cases fail
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// What one case found.
struct CaseResult {
    /// The pattern and mode, e.g. `"2:4 sparse"`, for the per-pattern counts.
    pattern: String,
    /// Elements compared bit for bit.
    elements: u64,
    failure: Option<Failure>,
}

struct Failure {
    detail: String,
    /// Files that reproduce the case (name, bytes), written into the output folder.
    files: Vec<(String, Vec<u8>)>,
    /// A command that replays the case outside the campaign, if one exists besides `--only`.
    replay: Option<String>,
}

/// One engine instance of a campaign: builds its model on first use and runs cases on it.
trait Variant {
    fn name(&self) -> String;
    /// Runs case `case`, the `round`-th case on this variant (even and odd rounds cover an
    /// engine's two modes or axes), drawing everything from `rng`.
    fn run(
        &mut self,
        case: u64,
        round: u64,
        rng: &mut ChaCha8Rng,
        out: &Path,
    ) -> anyhow::Result<CaseResult>;
}

/// The seed of case `i`: SplitMix64 of the campaign seed and the index, so that cases are
/// independent and any one can be rerun alone.
fn case_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
    }
    z
}

/// A design and its model, built on first use (a variant without cases builds nothing) and then
/// reused by every case.
struct Model {
    spec: DesignSpec,
    model: Option<VerilatedModel>,
}

impl Model {
    fn new(spec: DesignSpec) -> Model {
        Model { spec, model: None }
    }

    fn get(&mut self) -> anyhow::Result<(&mut VerilatedModel, &DesignSpec)> {
        if self.model.is_none() {
            let lib = Verilator::build(&self.spec, &BuildOptions::default())?;
            self.model = Some(lib.instantiate()?);
        }
        Ok((self.model.as_mut().expect("built above"), &self.spec))
    }
}

// ---------------------------------------------------------------------------------------------
// Values

/// fp16 values at the edges of the format: signed zeros, subnormals, the smallest normal,
/// one and its neighbours (rounding ties in sums), the largest finite values, infinities.
const F16_EDGES: [u16; 20] = [
    0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x83ff, 0x0400, 0x8400, 0x3c00, 0xbc00, 0x3c01, 0xbc01,
    0x3800, 0x1400, 0x7bff, 0xfbff, 0x7bfe, 0x5bff, 0x7c00, 0xfc00,
];

/// One tensor's distribution, drawn per tensor.
#[derive(Clone, Copy)]
enum Kind {
    Uniform,
    Edges,
    AllEqual,
    /// Equal values within each group of `m` along axis 0 (ties for N:M selection).
    GroupsEqual(usize),
    /// fp16 only: any non-NaN bit pattern.
    AnyBits,
}

fn kind(rng: &mut ChaCha8Rng, m: usize, fp: bool) -> Kind {
    match rng.random_range(0..if fp { 10 } else { 8 }) {
        0..=2 => Kind::Uniform,
        3..=5 => Kind::Edges,
        6 => Kind::AllEqual,
        7 => Kind::GroupsEqual(m),
        _ => Kind::AnyBits,
    }
}

/// A tensor whose values come from `draw`, following `kind`.
fn tensor<T: Copy>(
    rng: &mut ChaCha8Rng,
    (rows, cols): (usize, usize),
    kind: Kind,
    mut draw: impl FnMut(&mut ChaCha8Rng, Kind) -> T,
) -> Array2<T> {
    match kind {
        Kind::AllEqual => {
            let v = draw(rng, Kind::Edges);
            Array2::from_elem((rows, cols), v)
        }
        Kind::GroupsEqual(m) => {
            let groups: Vec<T> = (0..rows.div_ceil(m.max(1)) * cols)
                .map(|_| draw(rng, Kind::Edges))
                .collect();
            Array2::from_shape_fn((rows, cols), |(r, c)| groups[(r / m.max(1)) * cols + c])
        }
        k => Array2::from_shape_simple_fn((rows, cols), || draw(rng, k)),
    }
}

fn draw_i8(rng: &mut ChaCha8Rng, kind: Kind) -> i8 {
    const EDGES: [i8; 8] = [-128, 127, 0, 1, -1, -127, 64, -64];
    match kind {
        Kind::Edges => EDGES[rng.random_range(0..EDGES.len())],
        _ => rng.random(),
    }
}

fn draw_i4(rng: &mut ChaCha8Rng, kind: Kind) -> i8 {
    const EDGES: [i8; 6] = [-8, 7, 0, 1, -1, -7];
    match kind {
        Kind::Edges => EDGES[rng.random_range(0..EDGES.len())],
        _ => rng.random_range(-8..=7),
    }
}

fn draw_f16(rng: &mut ChaCha8Rng, kind: Kind) -> f16 {
    match kind {
        Kind::Edges => f16::from_bits(F16_EDGES[rng.random_range(0..F16_EDGES.len())]),
        Kind::AnyBits => loop {
            let v = f16::from_bits(rng.random());
            if !v.is_nan() {
                break v;
            }
        },
        _ => f16::from_f32(rng.random_range(-1.0f32..1.0)),
    }
}

// ---------------------------------------------------------------------------------------------
// STCE

struct StceVariant {
    toml: String,
    corrupt_case: Option<u64>,
    config: StceConfig,
    model: Model,
}

impl StceVariant {
    fn new(toml: String, corrupt_case: Option<u64>) -> anyhow::Result<StceVariant> {
        let full = Config::from_toml(&toml, "campaign config")?;
        let spec = design_spec(&render(&full)?, ports::CLOCK);
        let config = full.stce("`coforge campaign --engine stce`")?.clone();
        Ok(StceVariant {
            toml,
            corrupt_case,
            config,
            model: Model::new(spec),
        })
    }
}

impl Variant for StceVariant {
    fn name(&self) -> String {
        let c = &self.config;
        let dtype = match (c.dtype, c.weight_bits) {
            (Dtype::Fp16, _) => "fp16",
            (Dtype::Int8, 4) => "int4",
            _ => "int8",
        };
        let kind = if c.has_sparse_mode() { "" } else { " dense" };
        format!("{dtype} {}x{} {}:{}{kind}", c.rows, c.cols, c.n, c.m)
    }

    fn run(
        &mut self,
        case: u64,
        round: u64,
        rng: &mut ChaCha8Rng,
        out: &Path,
    ) -> anyhow::Result<CaseResult> {
        let cfg = self.config.clone();
        let (sim, spec) = self.model.get()?;
        let mode = if cfg.has_sparse_mode() && round.is_multiple_of(2) {
            Mode::Sparse
        } else {
            Mode::Dense
        };
        let (r, c, m) = (cfg.rows as usize, cfg.cols as usize, cfg.m as usize);
        let rows = rng.random_range(1..=2 * r + 1);
        let k = rng.random_range(1..=3 * m + 1);
        let cols = rng.random_range(1..=2 * c + 1);
        let pattern = match mode {
            Mode::Sparse => format!("{}:{} sparse", cfg.n, cfg.m),
            Mode::Dense => "dense".to_string(),
        };
        let fp = cfg.dtype == Dtype::Fp16;
        let (ka, kb) = (kind(rng, m, fp), kind(rng, m, fp));
        let stem = format!("stce-case{case}");
        let corrupt = self.corrupt_case == Some(case);
        let mut files = Vec::new();
        let comparison = if fp {
            let a = tensor(rng, (rows, k), ka, draw_f16);
            let b = tensor(rng, (k, cols), kb, draw_f16);
            files.push((format!("{stem}-a.npy"), encode(a.view())));
            files.push((format!("{stem}-b.npy"), encode(b.view())));
            checked(
                fp16_gemm(sim, &cfg, spec, a.view(), b.view(), mode, None)?,
                corrupt,
            )?
        } else {
            let a = tensor(rng, (rows, k), ka, draw_i8);
            let b = if cfg.weight_bits == 4 {
                tensor(rng, (k, cols), kb, draw_i4)
            } else {
                tensor(rng, (k, cols), kb, draw_i8)
            };
            files.push((format!("{stem}-a.npy"), encode(a.view())));
            files.push((format!("{stem}-b.npy"), encode(b.view())));
            checked(
                int8_gemm(sim, &cfg, spec, a.view(), b.view(), mode, None)?,
                corrupt,
            )?
        };
        let failure = comparison.first_mismatch.as_ref().map(|first| {
            let at = |f: &str| out.join(format!("{stem}{f}")).display().to_string();
            files.push((format!("{stem}.toml"), self.toml.clone().into_bytes()));
            Failure {
                detail: format!(
                    "{} x {} x {} {pattern}: {} of {} elements differ, first at {:?}: golden {} \
                     RTL {}",
                    rows,
                    k,
                    cols,
                    comparison.mismatches,
                    comparison.elements,
                    first.index,
                    first.golden,
                    first.rtl
                ),
                replay: Some(format!(
                    "coforge verify --config {} --a {} --b {} --mode {} --out {}",
                    at(".toml"),
                    at("-a.npy"),
                    at("-b.npy"),
                    if mode == Mode::Sparse {
                        "sparse"
                    } else {
                        "dense"
                    },
                    at("-replay")
                )),
                files: std::mem::take(&mut files),
            }
        });
        Ok(CaseResult {
            pattern,
            elements: comparison.elements as u64,
            failure,
        })
    }
}

/// The outcome's comparison; with `corrupt`, the comparison against a golden result whose first
/// element has its lowest bit flipped (fault injection that always changes the answer).
fn checked<W, C: Raw + Bits>(o: Outcome<W, C>, corrupt: bool) -> anyhow::Result<Comparison> {
    if !corrupt {
        return Ok(o.comparison);
    }
    let mut golden = o.golden;
    golden[[0, 0]] = C::from_raw(golden[[0, 0]].to_raw() ^ 1);
    Ok(compare("c", golden.view(), o.rtl.view())?)
}

/// The built-in STCE engines: every N:M pattern of the int8 suite on a 2 x 3 array, a dense
/// engine, int4 weights dense-capable and sparse, and fp16 patterns. Small arrays keep each
/// build short, and partial tiles come from the random shapes.
fn stce_configs() -> Vec<String> {
    let mut v = Vec::new();
    let stce = |rows, cols, n, m, extra: &str| {
        format!("[stce]\nrows = {rows}\ncols = {cols}\nn = {n}\nm = {m}\n{extra}\n")
    };
    for (n, m) in [(2, 4), (4, 8), (2, 8), (1, 4), (1, 8), (1, 16)] {
        v.push(stce(2, 3, n, m, ""));
    }
    v.push(stce(2, 2, 2, 8, "sparse = false"));
    v.push(stce(2, 2, 1, 4, "weight_bits = 4"));
    v.push(stce(2, 3, 2, 8, "weight_bits = 4"));
    for (n, m) in [(2, 4), (2, 8), (1, 16)] {
        v.push(stce(2, 3, n, m, "dtype = \"fp16\""));
    }
    v.push(stce(1, 2, 2, 2, "dtype = \"fp16\""));
    v
}

// ---------------------------------------------------------------------------------------------
// SORE

const SORE_TOP: &str = "sore_top";

struct SoreVariant {
    p: SoreParams,
    model: Model,
}

impl Variant for SoreVariant {
    fn name(&self) -> String {
        let rule = match self.p.magnitude {
            MagnitudeRule::Fp16Bits => "fp16",
            MagnitudeRule::Int8Abs => "int8",
        };
        format!("{rule} P={} {}:{}", self.p.lanes, self.p.n, self.p.m)
    }

    fn run(
        &mut self,
        case: u64,
        round: u64,
        rng: &mut ChaCha8Rng,
        _out: &Path,
    ) -> anyhow::Result<CaseResult> {
        let (sim, spec) = self.model.get()?;
        let (n, m) = (self.p.n as usize, self.p.m as usize);
        let axis = (round % 2) as usize;
        let (lines, groups) = (rng.random_range(1..=5), rng.random_range(1..=4));
        let pattern = NmPattern::new(n, m)?;
        let fp = self.p.magnitude == MagnitudeRule::Fp16Bits;
        // Drawn with the groups down the columns (so that `Kind::GroupsEqual` makes ties within
        // groups), then transposed when pruning along rows.
        let k = kind(rng, m, fp);
        let (raw, values, indices, keep, w_file) = if fp {
            let w = tensor(rng, (groups * m, lines), k, draw_f16);
            sore_reference(w, |x| u32::from(x.to_bits()), pattern, axis)?
        } else {
            let w = tensor(rng, (groups * m, lines), k, draw_i8);
            sore_reference(w, |x| u32::from(x as u8), pattern, axis)?
        };
        let got = sore::prune(sim, &self.p, spec, raw.view(), Axis(axis))?;
        let differs = [
            ("values", got.values != values),
            ("indices", got.indices != indices),
            ("mask", got.mask != keep),
        ];
        let failure = differs.iter().find(|d| d.1).map(|(what, _)| Failure {
            detail: format!("{:?} along axis {axis}: the {what} differ", raw.dim()),
            files: vec![(format!("sore-case{case}-w.npy"), w_file)],
            replay: None,
        });
        Ok(CaseResult {
            pattern: format!("{n}:{m} axis {axis}"),
            elements: (values.len() * 2 + keep.len()) as u64,
            failure,
        })
    }
}

/// The reference's answer for a tensor drawn with its groups down the columns, transposed
/// first when pruning along rows: (raw bits, kept values, indices, mask, the tensor as `.npy`).
#[allow(clippy::type_complexity)]
fn sore_reference<T: Magnitude + NpyElement + Default>(
    w: Array2<T>,
    bits: impl Fn(T) -> u32,
    pattern: NmPattern,
    axis: usize,
) -> anyhow::Result<(Array2<u32>, Array2<u32>, Array2<u8>, Array2<u8>, Vec<u8>)> {
    let w = if axis == 1 {
        w.reversed_axes().as_standard_layout().to_owned()
    } else {
        w
    };
    let c = compress(w.view(), pattern, Axis(axis))?;
    Ok((
        w.mapv(&bits),
        c.values.mapv(&bits),
        c.indices,
        mask(w.view(), pattern, Axis(axis))?,
        encode(w.view()),
    ))
}

fn sore_params() -> Vec<SoreParams> {
    vec![
        SoreParams::fp16(4, 2, 8),
        SoreParams::fp16(1, 1, 2),
        SoreParams::fp16(3, 4, 8),
        SoreParams::int8(3, 2, 4),
    ]
}

// ---------------------------------------------------------------------------------------------
// WUVE

const WUVE_TOP: &str = "wuve_top";

struct WuveVariant {
    p: WuveParams,
    model: Model,
}

/// fp32 values at the edges: signed zeros, fp32 and fp16 subnormals, values halfway between
/// fp16 neighbours, the fp16 overflow threshold, large values and infinities.
const F32_EDGES: [u32; 16] = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x8070_0000,
    0x3380_0000,
    0x3880_0000,
    0x3f80_1000,
    0xbf80_3000,
    0x477f_f000,
    0x477f_efff,
    0xc77f_f000,
    0x7f7f_ffff,
    0x7f80_0000,
    0xff80_0000,
    0x3f80_0000,
    0x3a83_126f,
];

fn draw_f32(rng: &mut ChaCha8Rng, kind: Kind) -> f32 {
    match kind {
        Kind::Edges => f32::from_bits(F32_EDGES[rng.random_range(0..F32_EDGES.len())]),
        Kind::AnyBits => loop {
            let v = f32::from_bits(rng.random());
            if !v.is_nan() {
                break v;
            }
        },
        _ => rng.random_range(-2.0f32..2.0),
    }
}

impl Variant for WuveVariant {
    fn name(&self) -> String {
        let pipelined = if self.p.pipelined { " pipelined" } else { "" };
        format!("V={}{pipelined}", self.p.lanes)
    }

    fn run(
        &mut self,
        case: u64,
        _round: u64,
        rng: &mut ChaCha8Rng,
        _out: &Path,
    ) -> anyhow::Result<CaseResult> {
        let (sim, spec) = self.model.get()?;
        let shape = (rng.random_range(1..=4), rng.random_range(1..=9));
        let (kw, kd) = (kind(rng, 1, true), kind(rng, 1, true));
        let w = tensor(rng, shape, kw, draw_f32);
        let dw = tensor(rng, shape, kd, draw_f32);
        let keep = Array2::from_shape_simple_fn(shape, || rng.random_range(0..2u8));
        const RATES: [f32; 5] = [0.01, 0.5, 1.0, 2e-4, 0.0];
        let mut rate = || match rng.random_range(0..6) {
            5 => rng.random_range(0.0f32..1.0),
            i => RATES[i],
        };
        let (lr, lambda) = (rate(), rate());
        let got = wuve::update(
            sim,
            &self.p,
            spec,
            w.view(),
            dw.view(),
            keep.view(),
            lr,
            lambda,
        )?;
        let mut first = None;
        for ((at, &wv), (&dv, &kv)) in w.indexed_iter().zip(dw.iter().zip(keep.iter())) {
            let want32 = canon(update_element(wv, dv, kv, lr, lambda));
            let want16 = canon16(to_f16(want32));
            let (g32, g16) = (got.w32[at], got.w16[at]);
            if first.is_none()
                && (g32.to_bits() != want32.to_bits() || g16.to_bits() != want16.to_bits())
            {
                first = Some(format!(
                    "element {at:?} (w {:#010x} dw {:#010x} keep {kv} lr {:#010x} lambda \
                     {:#010x}): RTL {:#010x} {:#06x}, reference {:#010x} {:#06x}",
                    wv.to_bits(),
                    dv.to_bits(),
                    lr.to_bits(),
                    lambda.to_bits(),
                    g32.to_bits(),
                    g16.to_bits(),
                    want32.to_bits(),
                    want16.to_bits()
                ));
            }
        }
        let stem = format!("wuve-case{case}");
        let failure = first.map(|detail| Failure {
            detail,
            files: vec![
                (format!("{stem}-w32.npy"), encode(w.view())),
                (format!("{stem}-dw.npy"), encode(dw.view())),
                (format!("{stem}-keep.npy"), encode(keep.view())),
            ],
            replay: None,
        });
        Ok(CaseResult {
            pattern: "update".into(),
            elements: 2 * w.len() as u64,
            failure,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The campaign

fn variants(args: &CampaignArgs) -> anyhow::Result<Vec<Box<dyn Variant>>> {
    if args.config.is_some() && args.engine != EngineArg::Stce {
        bail!(
            "--config selects an STCE engine; it does not apply to --engine sore, wuve or deform"
        );
    }
    Ok(match args.engine {
        EngineArg::Stce => {
            let tomls = match &args.config {
                Some(path) => vec![std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?],
                None => stce_configs(),
            };
            tomls
                .into_iter()
                .map(|t| Ok(Box::new(StceVariant::new(t, args.corrupt_case)?) as Box<dyn Variant>))
                .collect::<anyhow::Result<_>>()?
        }
        EngineArg::Sore => sore_params()
            .into_iter()
            .map(|p| {
                Ok(Box::new(SoreVariant {
                    model: Model::new(sore::design_spec(&p, SORE_TOP)?),
                    p,
                }) as Box<dyn Variant>)
            })
            .collect::<anyhow::Result<_>>()?,
        // The three lane counts, and the pipelined lane (`wuve_pipeline`) on three lanes.
        EngineArg::Wuve => [(1, false), (3, false), (4, false), (3, true)]
            .into_iter()
            .map(|(lanes, pipelined)| {
                let p = WuveParams { lanes, pipelined };
                Ok(Box::new(WuveVariant {
                    model: Model::new(wuve::design_spec(&p, WUVE_TOP)?),
                    p,
                }) as Box<dyn Variant>)
            })
            .collect::<anyhow::Result<_>>()?,
        EngineArg::Deform => deform::variants()?,
    })
}

#[derive(Serialize, Default)]
struct PatternCount {
    pattern: String,
    cases: u64,
    mismatches: u64,
}

#[derive(Serialize)]
struct VariantSummary {
    variant: String,
    cases: u64,
    mismatches: u64,
    elements_compared: u64,
    patterns: Vec<PatternCount>,
}

#[derive(Serialize)]
struct FailureSummary {
    case: u64,
    variant: String,
    detail: String,
    replay: String,
}

/// `summary.json`.
#[derive(Serialize)]
struct Summary {
    engine: EngineArg,
    seed: u64,
    /// Cases run (one with `--only`).
    cases: u64,
    mismatches: u64,
    elements_compared: u64,
    /// Wall time of the whole campaign, Verilator builds included.
    seconds: f64,
    variants: Vec<VariantSummary>,
    failures: Vec<FailureSummary>,
}

pub fn run(args: CampaignArgs) -> anyhow::Result<()> {
    if args.cases == 0 {
        bail!("--cases must be at least 1");
    }
    if let Some(i) = args.only.filter(|&i| i >= args.cases) {
        bail!(
            "--only {i} is not a case of a {}-case campaign; use 0..{}",
            args.cases,
            args.cases
        );
    }
    let mut out = OutputDir::create(&args.out)?;
    let t0 = Instant::now();
    let mut vs = variants(&args)?;
    let mut summaries: Vec<VariantSummary> = vs
        .iter()
        .map(|v| VariantSummary {
            variant: v.name(),
            cases: 0,
            mismatches: 0,
            elements_compared: 0,
            patterns: Vec::new(),
        })
        .collect();
    let mut failures = Vec::new();
    let engine = format!("{:?}", args.engine).to_lowercase();
    let mut suites: Vec<junit::Suite> = summaries
        .iter()
        .map(|s| junit::Suite {
            name: format!("campaign.{engine}.{}", s.variant),
            properties: vec![
                ("seed".to_string(), args.seed.to_string()),
                ("replay".to_string(), junit::command_line()),
            ],
            ..junit::Suite::default()
        })
        .collect();
    let cases: Vec<u64> = match args.only {
        Some(i) => vec![i],
        None => (0..args.cases).collect(),
    };
    eprintln!(
        "campaign: {} case(s) on {} {engine} variant(s), seed {}",
        cases.len(),
        vs.len(),
        args.seed
    );
    for (done, &i) in cases.iter().enumerate() {
        let count = vs.len() as u64;
        let vi = (i % count) as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(case_seed(args.seed, i));
        let case_started = Instant::now();
        let r = vs[vi]
            .run(i, i / count, &mut rng, &args.out)
            .with_context(|| format!("case {i} on {}", summaries[vi].variant))?;
        let s = &mut summaries[vi];
        let time = case_started.elapsed().as_secs_f64();
        let suite = &mut suites[vi];
        suite.time += time;
        suite.cases.push(junit::Case {
            classname: suite.name.clone(),
            name: format!("case {i} ({})", r.pattern),
            time: Some(time),
            failure: None,
        });
        s.cases += 1;
        s.elements_compared += r.elements;
        let failed = r.failure.is_some() as u64;
        s.mismatches += failed;
        match s.patterns.iter_mut().find(|p| p.pattern == r.pattern) {
            Some(p) => {
                p.cases += 1;
                p.mismatches += failed;
            }
            None => s.patterns.push(PatternCount {
                pattern: r.pattern,
                cases: 1,
                mismatches: failed,
            }),
        }
        if let Some(f) = r.failure {
            let again = format!(
                "coforge campaign --engine {engine} --cases {} --seed {} --only {i} --out {}{}",
                args.cases,
                args.seed,
                args.out.join(format!("replay-{i}")).display(),
                args.config
                    .as_ref()
                    .map_or(String::new(), |c| format!(" --config {}", c.display()))
            );
            eprintln!("MISMATCH case {i} ({}): {}", s.variant, f.detail);
            for (name, bytes) in f.files {
                out.add(&name, bytes);
            }
            let replay = match f.replay {
                Some(cmd) => format!("{cmd}\n{again}"),
                None => again,
            };
            eprintln!("  replay: {}", replay.replace('\n', "\n  replay: "));
            if let Some(case) = suites[vi].cases.last_mut() {
                case.failure = Some(junit::Failure {
                    message: f.detail.clone(),
                    kind: "mismatch".into(),
                    text: format!("replay:\n{replay}\n"),
                });
            }
            failures.push(FailureSummary {
                case: i,
                variant: s.variant.clone(),
                detail: f.detail,
                replay,
            });
        }
        if (done + 1) % 1000 == 0 {
            eprintln!(
                "  {} cases, {} mismatches ({:.1} s)",
                done + 1,
                failures.len(),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    let summary = Summary {
        engine: args.engine,
        seed: args.seed,
        cases: cases.len() as u64,
        mismatches: failures.len() as u64,
        elements_compared: summaries.iter().map(|s| s.elements_compared).sum(),
        seconds: t0.elapsed().as_secs_f64(),
        variants: summaries,
        failures,
    };
    out.write_json("summary.json", &serde_json::to_value(&summary)?)?;
    out.commit()
        .with_context(|| format!("cannot write results to {}", args.out.display()))?;
    if let Some(path) = &args.junit {
        junit::Junit {
            name: format!("coforge campaign {engine}"),
            suites,
        }
        .write(path)?;
    }
    for v in &summary.variants {
        say!(
            "{engine} {:<22} {:>6} cases {:>4} mismatches",
            v.variant,
            v.cases,
            v.mismatches
        );
    }
    say!(
        "{engine}: {} cases, {} mismatches, {} elements compared bit for bit, {:.1} s",
        summary.cases,
        summary.mismatches,
        summary.elements_compared,
        summary.seconds
    );
    if summary.mismatches > 0 {
        bail!(
            "{} of {} cases differ from the reference; inputs and replay commands are in {}",
            summary.mismatches,
            summary.cases,
            args.out.join("summary.json").display()
        );
    }
    Ok(())
}
