//! The verification flow of one GEMM on the STCE: prune the weights, feed the engine, compute
//! the golden result with the reference, and compare bit for bit. One generic flow serves the
//! int8 and fp16 engines; only the number formats differ.

use crate::compare::{compare, Bits, Comparison};
use crate::stce::{self, CycleStats, GemmJob, GemmRun, WeightStream};
use crate::DriverError;
use coforge_generator::config::{Dtype, Overflow, StceConfig};
use coforge_sim::{DesignSpec, Simulator};
use half::f16;
use ndarray::{s, Array2, ArrayView2, Axis};
use sparse_kernels::gemm::{gemm, gemm_nm, Fp16Arith, IntArith, MacArith};
use sparse_kernels::int;
use sparse_kernels::nm::{self, Magnitude, NmPattern};

/// Which of the engine's modes runs the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// N:M along K: one group of M reduction elements per cycle.
    Sparse,
    /// N reduction elements per cycle (works on sparse and dense engines).
    Dense,
}

impl Mode {
    /// The engine's native mode: sparse when it has one.
    pub fn native(cfg: &StceConfig) -> Mode {
        if cfg.has_sparse_mode() {
            Mode::Sparse
        } else {
            Mode::Dense
        }
    }
}

/// A number as it travels on the engine's buses: its raw bit pattern.
pub trait Raw: Copy + Default {
    fn to_raw(self) -> u32;
    fn from_raw(raw: u32) -> Self;
}

impl Raw for i8 {
    fn to_raw(self) -> u32 {
        self as u8 as u32
    }
    fn from_raw(raw: u32) -> Self {
        raw as u8 as i8
    }
}
impl Raw for f16 {
    fn to_raw(self) -> u32 {
        self.to_bits() as u32
    }
    fn from_raw(raw: u32) -> Self {
        f16::from_bits(raw as u16)
    }
}
impl Raw for i32 {
    fn to_raw(self) -> u32 {
        self as u32
    }
    fn from_raw(raw: u32) -> Self {
        raw as i32
    }
}
impl Raw for f32 {
    fn to_raw(self) -> u32 {
        self.to_bits()
    }
    fn from_raw(raw: u32) -> Self {
        f32::from_bits(raw)
    }
}

/// Fault injection for proving the comparison: flip the least significant bit of one element
/// of A as the reference sees it (the engine gets the true A).
#[derive(Clone, Copy, Debug)]
pub struct CorruptGolden {
    pub index: [usize; 2],
}

#[derive(Clone, Debug)]
pub struct Outcome<W, C> {
    pub mode: Mode,
    /// B as the engine computed with it: pruned N:M along K in sparse mode (K x N).
    pub b_fed: Array2<W>,
    pub golden: Array2<C>,
    pub rtl: Array2<C>,
    pub stats: CycleStats,
    pub comparison: Comparison,
}

pub type Int8Outcome = Outcome<i8, i32>;
pub type Fp16Outcome = Outcome<f16, f32>;

fn pad<T: Copy + Default>(x: ArrayView2<T>, rows: usize, cols: usize) -> Array2<T> {
    let mut out = Array2::from_elem((rows, cols), T::default());
    out.slice_mut(s![..x.nrows(), ..x.ncols()]).assign(&x);
    out
}

fn raw<T: Raw>(x: &Array2<T>) -> Array2<u32> {
    x.mapv(Raw::to_raw)
}

/// Runs `C = A · B` on the engine with the reference arithmetic `ar`, and checks it.
///
/// K is padded with zeros to a multiple of M (sparse) or N (dense): a zero column of A adds
/// nothing to any sum, and padded zeros lose every tie to real weights (lower index wins), so
/// the padding changes no result. The golden result is the dense GEMM on B as fed in dense
/// mode, and the compressed GEMM (only kept products, as the hardware does) in sparse mode.
#[allow(clippy::too_many_arguments)]
pub fn gemm_on_engine<Ar>(
    sim: &mut dyn Simulator,
    cfg: &StceConfig,
    spec: &DesignSpec,
    ar: &Ar,
    a: ArrayView2<Ar::A>,
    b: ArrayView2<Ar::W>,
    mode: Mode,
    corrupt: Option<CorruptGolden>,
) -> Result<Outcome<Ar::W, Ar::Acc>, DriverError>
where
    Ar: MacArith,
    Ar::A: Raw,
    Ar::W: Raw + Magnitude,
    Ar::Acc: Raw + Bits,
{
    let mut runner = |job: &GemmJob| stce::run(sim, cfg, spec, job);
    gemm_with(&mut runner, cfg, ar, a, b, mode, corrupt)
}

/// Runs a compiled job on some form of the engine: the bare engine ([`stce::run`]) or its AXI
/// wrapper ([`crate::axi::run`]).
pub type Runner<'a> = dyn FnMut(&GemmJob) -> Result<GemmRun, DriverError> + 'a;

/// [`gemm_on_engine`] with the job run by `run`: the same operands, padding, golden result and
/// comparison whichever form of the engine computes it.
pub fn gemm_with<Ar>(
    run: &mut Runner<'_>,
    cfg: &StceConfig,
    ar: &Ar,
    a: ArrayView2<Ar::A>,
    b: ArrayView2<Ar::W>,
    mode: Mode,
    corrupt: Option<CorruptGolden>,
) -> Result<Outcome<Ar::W, Ar::Acc>, DriverError>
where
    Ar: MacArith,
    Ar::A: Raw,
    Ar::W: Raw + Magnitude,
    Ar::Acc: Raw + Bits,
{
    let (rows, k) = a.dim();
    if b.nrows() != k {
        return Err(DriverError::Shape(format!(
            "A is {rows} x {k}, so B must have {k} rows; it is {} x {}",
            b.nrows(),
            b.ncols()
        )));
    }
    let step = match mode {
        Mode::Sparse => cfg.m,
        Mode::Dense => cfg.n,
    } as usize;
    let kp = k.div_ceil(step).max(1) * step;
    let a_p = pad(a, rows, kp);
    let b_p = pad(b, kp, b.ncols());
    let kernel_err = |e: sparse_kernels::KernelError| DriverError::Shape(e.to_string());

    let mut a_ref = a_p.clone();
    if let Some(c) = corrupt {
        let cell = a_ref.get_mut(c.index).ok_or_else(|| {
            DriverError::Shape(format!("corruption index {:?} is outside A", c.index))
        })?;
        *cell = Ar::A::from_raw(cell.to_raw() ^ 1);
    }

    let (b_fed_p, weights, golden) = match mode {
        Mode::Sparse => {
            let pattern = NmPattern::new(cfg.n as usize, cfg.m as usize).map_err(kernel_err)?;
            let c = nm::compress(b_p.view(), pattern, Axis(0)).map_err(kernel_err)?;
            let golden = gemm_nm(ar, a_ref.view(), &c).map_err(kernel_err)?;
            let weights = WeightStream::Sparse {
                values: raw(&c.values),
                indices: c.indices.clone(),
            };
            (nm::expand(&c), weights, golden)
        }
        Mode::Dense => {
            let golden = gemm(ar, a_ref.view(), b_p.view()).map_err(kernel_err)?;
            let weights = WeightStream::Dense { values: raw(&b_p) };
            (b_p, weights, golden)
        }
    };

    let job = GemmJob {
        a: raw(&a_p),
        weights,
    };
    let run = run(&job)?;
    let rtl = run.c.mapv(Ar::Acc::from_raw);

    let mut comparison = compare("c", golden.view(), rtl.view())?;
    if let Some(m) = comparison.first_mismatch.as_mut() {
        m.cycle = Some(run.read_cycle[m.index]);
    }
    Ok(Outcome {
        mode,
        b_fed: b_fed_p.slice(s![..k, ..]).to_owned(),
        golden,
        rtl,
        stats: run.stats,
        comparison,
    })
}

fn require(cfg: &StceConfig, dtype: Dtype) -> Result<(), DriverError> {
    if cfg.dtype != dtype {
        return Err(DriverError::Unsupported(format!(
            "this engine computes {:?}, the GEMM is {dtype:?}; use a config with dtype = \"{}\"",
            cfg.dtype,
            format!("{dtype:?}").to_lowercase()
        )));
    }
    Ok(())
}

/// int8 GEMM with the engine's overflow policy. int4 weights are checked to be in [-8, 7].
pub fn int8_gemm(
    sim: &mut dyn Simulator,
    cfg: &StceConfig,
    spec: &DesignSpec,
    a: ArrayView2<i8>,
    b: ArrayView2<i8>,
    mode: Mode,
    corrupt: Option<CorruptGolden>,
) -> Result<Int8Outcome, DriverError> {
    let mut runner = |job: &GemmJob| stce::run(sim, cfg, spec, job);
    int8_gemm_with(&mut runner, cfg, a, b, mode, corrupt)
}

/// [`int8_gemm`] on the engine form that `run` drives (see [`gemm_with`]).
pub fn int8_gemm_with(
    run: &mut Runner<'_>,
    cfg: &StceConfig,
    a: ArrayView2<i8>,
    b: ArrayView2<i8>,
    mode: Mode,
    corrupt: Option<CorruptGolden>,
) -> Result<Int8Outcome, DriverError> {
    require(cfg, Dtype::Int8)?;
    if cfg.weight_bits == 4 {
        check_int4_weights(b)?;
    }
    let overflow = match cfg.overflow {
        Overflow::Wrap => int::Overflow::Wrap,
        Overflow::Saturate => int::Overflow::Saturate,
    };
    gemm_with(run, cfg, &IntArith { overflow }, a, b, mode, corrupt)
}

/// int4 engines (`weight_bits = 4`) take weights in [-8, 7]; the error names the first one outside.
pub fn check_int4_weights(b: ArrayView2<i8>) -> Result<(), DriverError> {
    int::check_int4(b, "B").map_err(|e| {
        DriverError::Input(format!(
            "{e}; this engine has weight_bits = 4, so every weight must be an int4 value"
        ))
    })
}

/// fp16 GEMM, fp32 accumulation. NaN operands are rejected (the contract's NaN policy); inf is
/// allowed and follows IEEE rules, with every NaN result canonical.
pub fn fp16_gemm(
    sim: &mut dyn Simulator,
    cfg: &StceConfig,
    spec: &DesignSpec,
    a: ArrayView2<f16>,
    b: ArrayView2<f16>,
    mode: Mode,
    corrupt: Option<CorruptGolden>,
) -> Result<Fp16Outcome, DriverError> {
    let mut runner = |job: &GemmJob| stce::run(sim, cfg, spec, job);
    fp16_gemm_with(&mut runner, cfg, a, b, mode, corrupt)
}

/// [`fp16_gemm`] on the engine form that `run` drives (see [`gemm_with`]).
pub fn fp16_gemm_with(
    run: &mut Runner<'_>,
    cfg: &StceConfig,
    a: ArrayView2<f16>,
    b: ArrayView2<f16>,
    mode: Mode,
    corrupt: Option<CorruptGolden>,
) -> Result<Fp16Outcome, DriverError> {
    require(cfg, Dtype::Fp16)?;
    reject_nan_operands(a, b)?;
    gemm_with(run, cfg, &Fp16Arith, a, b, mode, corrupt)
}

/// NaN operands are rejected (the contract's NaN rule, written once in `nm::reject_nan`).
pub fn reject_nan_operands(a: ArrayView2<f16>, b: ArrayView2<f16>) -> Result<(), DriverError> {
    let input = |e: sparse_kernels::KernelError| DriverError::Input(e.to_string());
    nm::reject_nan(a, "A").map_err(input)?;
    nm::reject_nan(b, "B").map_err(input)
}
