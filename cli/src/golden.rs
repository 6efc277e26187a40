//! `coforge golden ...`: golden tensors computed by the bit-exact reference (`sparse-kernels`).
//!
//! Every verb reads its inputs, computes everything, and only then writes its outputs (see
//! [`crate::output`]), so a failed run writes nothing.

pub(crate) mod deform;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use half::f16;
use ndarray::{Array2, Axis};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::bdwp::{self, BdwpConfig, MaskBSource};
use sparse_kernels::gemm::{gemm, Fp16Arith, IntArith};
use sparse_kernels::int::Overflow;
use sparse_kernels::nm::{self, Magnitude, NmPattern};

use crate::budget;
use crate::output::{OutputDir, OutputFile};
use crate::tensor_io::{read_npy, NpyElement, Tensor};

#[derive(Args, Debug)]
pub struct GoldenArgs {
    #[command(subcommand)]
    pub command: GoldenCommand,
}

#[derive(Subcommand, Debug)]
pub enum GoldenCommand {
    /// N:M-prune a 2-D weight tensor: writes mask.npy, values.npy, indices.npy
    Prune(PruneArgs),
    /// C = A·B bit-exactly (int8→int32, or float16→float32 accumulated in increasing k): writes c.npy
    Gemm(GemmArgs),
    /// One BDWP training step of a linear layer: writes y, dx, dw, w32, w16, masks (next and used)
    TrainStep(TrainStepArgs),
    /// A seeded random tensor (ChaCha8), for test vectors
    Random(RandomArgs),
    /// Deformable convolution: CoDeNet-exact (y.npy int8 NHWC, acc.npy int32) or DCNv2 fixed point
    /// (y.npy int32 [B, Cout, Hout, Wout])
    Deform(Box<deform::DeformArgs>),
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Weights (.npy, 2-D, int8, float16 or float32)
    #[arg(long)]
    weights: PathBuf,
    /// Elements kept per group
    #[arg(long)]
    n: usize,
    /// Group size (at most 16)
    #[arg(long)]
    m: usize,
    /// Axis along which groups run: 0 = down the columns, 1 = along the rows
    #[arg(long)]
    axis: usize,
    /// Output directory
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OverflowArg {
    Wrap,
    Saturate,
}

#[derive(Args, Debug)]
pub struct GemmArgs {
    /// Left operand A (M×K), int8 or float16
    #[arg(long)]
    a: PathBuf,
    /// Right operand B (K×N), same dtype as A
    #[arg(long)]
    b: PathBuf,
    /// int32 accumulator overflow policy (int8 GEMMs only) [default: wrap]
    #[arg(long, value_enum)]
    overflow: Option<OverflowArg>,
    /// Output directory
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MaskBSourceArg {
    /// M_B from W16⊙M_F (Bi-Mask)
    ForwardMasked,
    /// M_B from the dense W16
    Dense,
}

#[derive(Args, Debug)]
pub struct TrainStepArgs {
    /// Activations X (B×Cin, float16)
    #[arg(long)]
    x: PathBuf,
    /// fp32 master weights W (Cout×Cin, float32)
    #[arg(long)]
    w: PathBuf,
    /// Output gradient dY (B×Cout, float16)
    #[arg(long)]
    dy: PathBuf,
    /// Elements kept per group (N = M trains dense)
    #[arg(long)]
    n: usize,
    /// Group size (at most 16); Cin and Cout must be multiples of it
    #[arg(long)]
    m: usize,
    /// Learning rate
    #[arg(long, allow_negative_numbers = true)]
    lr: f32,
    /// Decay on pruned weights
    #[arg(long, default_value_t = bdwp::DEFAULT_LAMBDA, allow_negative_numbers = true)]
    lambda: f32,
    /// Which tensor the backward mask is selected from
    #[arg(long, value_enum, default_value = "forward-masked")]
    mask_b_source: MaskBSourceArg,
    /// Output directory
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DtypeArg {
    Float16,
    Float32,
    Int8,
}

#[derive(Args, Debug)]
pub struct RandomArgs {
    /// Shape as ROWSxCOLS, e.g. 16x32
    #[arg(long)]
    shape: String,
    #[arg(long, value_enum)]
    dtype: DtypeArg,
    /// Seed of the ChaCha8 generator
    #[arg(long)]
    seed: u64,
    /// Floats: uniform in [-scale, scale) (default 1). int8: integer s in 1..=127 for uniform
    /// [-s, s] (default: the full range [-128, 127])
    #[arg(long, allow_negative_numbers = true)]
    scale: Option<f64>,
    /// Output file (.npy)
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: GoldenArgs) -> anyhow::Result<()> {
    match args.command {
        GoldenCommand::Prune(a) => prune(a),
        GoldenCommand::Gemm(a) => gemm_verb(a),
        GoldenCommand::TrainStep(a) => train_step(a),
        GoldenCommand::Random(a) => random(a),
        GoldenCommand::Deform(a) => deform::run(*a),
    }
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

/// Stages the tensors of one training step under the names shared by `golden train-step` and
/// `train`.
pub(crate) fn stage_step(out: &mut OutputDir, s: &bdwp::StepOutputs) {
    out.add_npy("y.npy", s.y.view());
    out.add_npy("dx.npy", s.dx.view());
    out.add_npy("dw.npy", s.dw.view());
    out.add_npy("w32.npy", s.w32.view());
    out.add_npy("w16.npy", s.next.w16.view());
    out.add_npy("mask_f.npy", s.next.mask_f.view());
    out.add_npy("mask_b.npy", s.next.mask_b.view());
    out.add_npy("w16_used.npy", s.used.w16.view());
    out.add_npy("mask_f_used.npy", s.used.mask_f.view());
    out.add_npy("mask_b_used.npy", s.used.mask_b.view());
}

fn commit(out: OutputDir) -> anyhow::Result<()> {
    for p in out.commit()? {
        say!("wrote {}", p.display());
    }
    Ok(())
}

fn prune(a: PruneArgs) -> anyhow::Result<()> {
    let mut out = OutputDir::create(&a.out)?;
    if a.n == 0 {
        bail!("--n must be at least 1 (N = 0 would prune everything)");
    }
    if a.m > nm::MAX_M {
        bail!(
            "--m {} is too large: M must be at most {} (indices are at most 4 bits)",
            a.m,
            nm::MAX_M
        );
    }
    if a.n >= a.m {
        bail!(
            "N:M pruning needs N < M, got {}:{} (N = M would keep everything)",
            a.n,
            a.m
        );
    }
    if a.axis > 1 {
        bail!(
            "--axis {} is invalid for a 2-D tensor: use 0 (down the columns) or 1 (along the rows)",
            a.axis
        );
    }
    let p = NmPattern::new(a.n, a.m)?;
    let w = read_npy(&a.weights)?;
    // The mask, the values and indices, and their encoded files, beside the weights.
    budget::Estimate::new(format!("pruning {}", show(&a.weights)))
        .tensor(
            "mask, values, indices and their files",
            6,
            &[w.dim().0, w.dim().1],
            4,
        )
        .check()?;
    let ctx = || format!("cannot prune {}", show(&a.weights));
    match &w {
        Tensor::I8(w) => stage_prune(&mut out, w, p, a.axis).with_context(ctx)?,
        Tensor::F16(w) => stage_prune(&mut out, w, p, a.axis).with_context(ctx)?,
        Tensor::F32(w) => stage_prune(&mut out, w, p, a.axis).with_context(ctx)?,
        other => bail!(
            "{}: prune accepts int8, float16 or float32 weights, not {}",
            show(&a.weights),
            other.dtype().name()
        ),
    }
    commit(out)
}

fn stage_prune<T: Magnitude + NpyElement>(
    out: &mut OutputDir,
    w: &Array2<T>,
    p: NmPattern,
    axis: usize,
) -> anyhow::Result<()> {
    let mask = nm::mask(w.view(), p, Axis(axis))?;
    let c = nm::compress_masked(w.view(), mask.view(), p, Axis(axis))?;
    out.add_npy("mask.npy", mask.view());
    out.add_npy("values.npy", c.values.view());
    out.add_npy("indices.npy", c.indices.view());
    Ok(())
}

fn gemm_verb(a: GemmArgs) -> anyhow::Result<()> {
    let mut out = OutputDir::create(&a.out)?;
    let ta = read_npy(&a.a)?;
    let tb = read_npy(&a.b)?;
    let ((m, k), (kb, n)) = (ta.dim(), tb.dim());
    if k != kb {
        bail!(
            "inner dimensions differ: A ({}) is {m}x{k} and B ({}) is {kb}x{n}; A's columns must equal B's rows",
            show(&a.a),
            show(&a.b)
        );
    }
    // C, its encoded file, and the operands as the kernel loads them.
    budget::Estimate::new(format!("a {m} x {k} x {n} GEMM"))
        .tensor("C and its file", 2, &[m, n], 4)
        .tensor("the loaded operands", 1, &[m.saturating_add(n), k], 4)
        .check()?;
    match (&ta, &tb) {
        (Tensor::I8(x), Tensor::I8(y)) => {
            let overflow = match a.overflow.unwrap_or(OverflowArg::Wrap) {
                OverflowArg::Wrap => Overflow::Wrap,
                OverflowArg::Saturate => Overflow::Saturate,
            };
            out.add_npy("c.npy", gemm(&IntArith { overflow }, x.view(), y.view())?.view());
        }
        (Tensor::F16(x), Tensor::F16(y)) => {
            if a.overflow.is_some() {
                bail!("--overflow applies to int8 GEMMs only; float16 GEMMs follow IEEE rules");
            }
            for (t, path) in [(x, &a.a), (y, &a.b)] {
                nm::reject_nan(t.view(), &show(path))?;
            }
            out.add_npy("c.npy", gemm(&Fp16Arith, x.view(), y.view())?.view());
        }
        _ => bail!(
            "unsupported dtype pair: A ({}) is {} and B ({}) is {}; use int8·int8 or float16·float16",
            show(&a.a),
            ta.dtype().name(),
            show(&a.b),
            tb.dtype().name()
        ),
    }
    commit(out)
}

/// Reads a tensor that must have one dtype, naming the file and the role otherwise.
pub(crate) fn expect_f16(path: &Path, role: &str) -> anyhow::Result<Array2<f16>> {
    match read_npy(path)? {
        Tensor::F16(a) => Ok(a),
        t => bail!(
            "{} ({role}) must be float16, not {}",
            show(path),
            t.dtype().name()
        ),
    }
}

pub(crate) fn expect_f32(path: &Path, role: &str) -> anyhow::Result<Array2<f32>> {
    match read_npy(path)? {
        Tensor::F32(a) => Ok(a),
        t => bail!(
            "{} ({role}) must be float32, not {}",
            show(path),
            t.dtype().name()
        ),
    }
}

fn train_step(a: TrainStepArgs) -> anyhow::Result<()> {
    let mut out = OutputDir::create(&a.out)?;
    let pattern = NmPattern::new(a.n, a.m)?;
    let x = expect_f16(&a.x, "X, B x Cin")?;
    let w = expect_f32(&a.w, "W, Cout x Cin")?;
    let dy = expect_f16(&a.dy, "dY, B x Cout")?;
    let ((b, cin), cout) = (x.dim(), w.nrows());
    budget::Estimate::new(format!(
        "a training step of a {cout} x {cin} layer with batch {b}"
    ))
    .tensor(
        "activations and gradients",
        4,
        &[b, cin.saturating_add(cout)],
        4,
    )
    .tensor("weights, gradients and masks", 12, &[cout, cin], 4)
    .check()?;
    let cfg = BdwpConfig {
        pattern,
        lr: a.lr,
        lambda: a.lambda,
        mask_b_source: match a.mask_b_source {
            MaskBSourceArg::ForwardMasked => MaskBSource::ForwardMasked,
            MaskBSourceArg::Dense => MaskBSource::Dense,
        },
    };
    let s = bdwp::train_step(x.view(), w.view(), dy.view(), &cfg).with_context(|| {
        format!(
            "train step failed (x = {}, w = {}, dy = {})",
            show(&a.x),
            show(&a.w),
            show(&a.dy)
        )
    })?;
    stage_step(&mut out, &s);
    commit(out)?;
    let ones = |m: &ndarray::Array2<u8>| m.iter().filter(|&&v| v != 0).count();
    let max_abs = |t: &ndarray::Array2<f32>| t.iter().fold(0f32, |acc, v| acc.max(v.abs()));
    let flipped = s
        .used
        .mask_f
        .iter()
        .zip(s.next.mask_f.iter())
        .filter(|(a, b)| a != b)
        .count();
    let (b, cin) = x.dim();
    say!(
        "BDWP step {pattern}: B = {b}, Cin = {cin}, Cout = {}; M_F keeps {} of {}, M_B keeps {}; \
         max|Y| = {:.4}, max|dX| = {:.4}, max|dW| = {:.4}, max|W32' - W32| = {:.3e}; \
         {flipped} forward-mask bits change for the next step",
        w.nrows(),
        ones(&s.used.mask_f),
        w.len(),
        ones(&s.used.mask_b),
        max_abs(&s.y),
        max_abs(&s.dx),
        max_abs(&s.dw),
        max_abs(&(&s.w32 - &w)),
    );
    Ok(())
}

fn parse_shape(s: &str) -> anyhow::Result<(usize, usize)> {
    let parsed = s
        .split_once(['x', 'X'])
        .and_then(|(r, c)| Some((r.trim().parse().ok()?, c.trim().parse().ok()?)));
    match parsed {
        Some((r, c)) if r > 0 && c > 0 => Ok((r, c)),
        _ => bail!("--shape '{s}' is not ROWSxCOLS with positive sizes, e.g. 16x32"),
    }
}

/// Uniform f32 in `[-scale, scale)`: a 24-bit uniform `u` in `[0, 1)` from the top bits of one
/// `next_u32`, then `(2u - 1) * scale` (the first two steps are exact). Written out instead of using
/// `rand`'s distributions so that a seed gives the same tensor whatever the `rand` version.
fn uniform_f32(rng: &mut ChaCha8Rng, scale: f32) -> f32 {
    let u = (rng.next_u32() >> 8) as f32 * 2f32.powi(-24);
    (2.0 * u - 1.0) * scale
}

fn random(a: RandomArgs) -> anyhow::Result<()> {
    let out = OutputFile::create(&a.out)?;
    let (r, c) = parse_shape(&a.shape)?;
    // The f32 values are drawn first, then converted and encoded.
    budget::Estimate::new(format!("a random {r} x {c} tensor"))
        .tensor("the values, converted and encoded", 3, &[r, c], 4)
        .check()?;
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let tensor = match a.dtype {
        DtypeArg::Float16 | DtypeArg::Float32 => {
            let scale = a.scale.unwrap_or(1.0);
            let s32 = scale as f32;
            if !(s32.is_finite() && s32 > 0.0) {
                bail!("--scale {scale} must be a positive finite float32 number");
            }
            if matches!(a.dtype, DtypeArg::Float16) && scale > f64::from(f16::MAX.to_f32()) {
                bail!(
                    "--scale {scale} is above 65504, the largest float16; values would round to \
                     infinity. Use --scale 65504 or less, or --dtype float32"
                );
            }
            let v = Array2::from_shape_simple_fn((r, c), || uniform_f32(&mut rng, s32));
            match a.dtype {
                DtypeArg::Float16 => Tensor::F16(v.mapv(sparse_kernels::fp::to_f16)),
                _ => Tensor::F32(v),
            }
        }
        DtypeArg::Int8 => match a.scale {
            None => Tensor::I8(Array2::from_shape_simple_fn((r, c), || (rng.next_u32() >> 24) as u8 as i8)),
            Some(s) if s.fract() == 0.0 && (1.0..=127.0).contains(&s) => {
                let s = s as i64;
                // Multiply-shift maps a u32 onto 0..=2s; the bias is below 2^-24 for s <= 127.
                let span = (2 * s + 1) as u64;
                Tensor::I8(Array2::from_shape_simple_fn((r, c), || (((u64::from(rng.next_u32()) * span) >> 32) as i64 - s) as i8))
            }
            Some(s) => bail!("--scale {s} for int8 must be an integer in 1..=127 (values are uniform in [-s, s])"),
        },
    };
    let path = out.commit(&tensor.to_npy_bytes())?;
    say!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse() {
        assert_eq!(parse_shape("16x32").unwrap(), (16, 32));
        assert_eq!(parse_shape("3X4").unwrap(), (3, 4));
        for bad in ["16", "0x3", "ax3", "3x", "-1x2"] {
            assert!(parse_shape(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uniform_stays_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..10_000 {
            let v = uniform_f32(&mut rng, 0.5);
            assert!((-0.5..0.5).contains(&v));
        }
    }
}
