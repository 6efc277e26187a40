//! The verification flow of one int8 GEMM: prune the weights, feed the engine, compute the
//! golden result with the reference, and compare bit for bit.

use crate::compare::{compare, Comparison};
use crate::stce::{self, CycleStats, GemmJob, WeightStream};
use crate::DriverError;
use coforge_generator::config::{Dtype, Overflow, StceConfig};
use coforge_sim::{DesignSpec, Simulator};
use ndarray::{s, Array2, ArrayView2, Axis};
use sparse_kernels::gemm::{gemm, IntArith};
use sparse_kernels::int;
use sparse_kernels::nm::{self, NmPattern};

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

/// Fault injection for proving the comparison: add `delta` to one element of A as the
/// reference sees it (the engine gets the true A).
#[derive(Clone, Copy, Debug)]
pub struct CorruptGolden {
    pub index: [usize; 2],
    pub delta: i8,
}

#[derive(Clone, Debug)]
pub struct Int8Outcome {
    pub mode: Mode,
    /// B as the engine computed with it: pruned N:M along K in sparse mode (K x N).
    pub b_fed: Array2<i8>,
    pub golden: Array2<i32>,
    pub rtl: Array2<i32>,
    pub stats: CycleStats,
    pub comparison: Comparison,
}

fn overflow(cfg: &StceConfig) -> int::Overflow {
    match cfg.overflow {
        Overflow::Wrap => int::Overflow::Wrap,
        Overflow::Saturate => int::Overflow::Saturate,
    }
}

fn pad(x: ArrayView2<i8>, rows: usize, cols: usize) -> Array2<i8> {
    let mut out = Array2::zeros((rows, cols));
    out.slice_mut(s![..x.nrows(), ..x.ncols()]).assign(&x);
    out
}

fn raw(x: &Array2<i8>) -> Array2<u32> {
    x.mapv(|v| v as u8 as u32)
}

/// Runs `C = A · B` on the engine and checks it against the reference.
///
/// K is padded with zeros to a multiple of M (sparse) or N (dense): a zero column of A adds
/// nothing to any sum, and zero weights in a padded group lose every tie, so the padding
/// changes no result.
pub fn int8_gemm(
    sim: &mut dyn Simulator,
    cfg: &StceConfig,
    spec: &DesignSpec,
    a: ArrayView2<i8>,
    b: ArrayView2<i8>,
    mode: Mode,
    corrupt: Option<CorruptGolden>,
) -> Result<Int8Outcome, DriverError> {
    if cfg.dtype != Dtype::Int8 {
        return Err(DriverError::Unsupported(format!(
            "this engine is {:?}; the int8 GEMM needs dtype = \"int8\"",
            cfg.dtype
        )));
    }
    let (rows, k) = a.dim();
    if b.nrows() != k {
        return Err(DriverError::Shape(format!(
            "A is {rows} x {k}, so B must have {k} rows; it is {} x {}",
            b.nrows(),
            b.ncols()
        )));
    }
    if cfg.weight_bits == 4 {
        int::check_int4(b, "B").map_err(|e| DriverError::Shape(e.to_string()))?;
    }
    let step = match mode {
        Mode::Sparse => cfg.m,
        Mode::Dense => cfg.n,
    } as usize;
    let kp = k.div_ceil(step).max(1) * step;
    let a_p = pad(a, rows, kp);
    let b_p = pad(b, kp, b.ncols());
    let kernel_err = |e: sparse_kernels::KernelError| DriverError::Shape(e.to_string());

    let (b_fed_p, weights) = match mode {
        Mode::Sparse => {
            let pattern = NmPattern::new(cfg.n as usize, cfg.m as usize).map_err(kernel_err)?;
            let c = nm::compress(b_p.view(), pattern, Axis(0)).map_err(kernel_err)?;
            let weights = WeightStream::Sparse {
                values: raw(&c.values),
                indices: c.indices.clone(),
            };
            (nm::expand(&c), weights)
        }
        Mode::Dense => (b_p.clone(), WeightStream::Dense { values: raw(&b_p) }),
    };

    let job = GemmJob {
        a: raw(&a_p),
        weights,
    };
    let run = stce::run(sim, cfg, spec, &job)?;
    let rtl = run.c.mapv(|v| v as i32);

    let mut a_ref = a_p;
    if let Some(c) = corrupt {
        let cell = a_ref.get_mut(c.index).ok_or_else(|| {
            DriverError::Shape(format!("corruption index {:?} is outside A", c.index))
        })?;
        *cell = cell.wrapping_add(c.delta);
    }
    let golden = gemm(
        &IntArith {
            overflow: overflow(cfg),
        },
        a_ref.view(),
        b_fed_p.view(),
    )
    .map_err(kernel_err)?;

    let mut comparison = compare("c", golden.view(), rtl.view())?;
    if let Some(m) = comparison.first_mismatch.as_mut() {
        m.cycle = Some(run.read_cycle[m.index]);
    }
    Ok(Int8Outcome {
        mode,
        b_fed: b_fed_p.slice(s![..k, ..]).to_owned(),
        golden,
        rtl,
        stats: run.stats,
        comparison,
    })
}
