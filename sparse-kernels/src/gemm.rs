//! GEMM, dense and N:M-compressed: one blocked, SIMD, multi-threaded kernel for every number format.
//!
//! # The contract
//! Every output element `C[i][j]` starts from zero (`+0.0`, or `0`) and adds its products
//! `A[i][k] * B[k][j]` one at a time in increasing reduction index `k`, each addition one
//! application of the format's rule: [`fp::add`] (IEEE binary32 round-to-nearest-even, subnormals
//! kept, no FMA, canonical NaN) or [`int::add`] (int32 with the wrap or saturate policy after every
//! addition). The compressed GEMM adds only the kept products, still in increasing `k`. NaN inputs
//! are rejected with [`KernelError::NonFinite`]; infinities follow IEEE rules.
//!
//! # Why the fast kernel computes exactly that
//! The kernel is fast because it runs *many outputs at once*, never because it reorders one output:
//! - **Lanes are outputs.** A micro-tile holds the accumulators of `MR` rows × `NR` columns of `C`.
//!   One reduction step updates every accumulator of the tile with `acc = acc + a * w` (`MR`-wide
//!   SIMD over rows, once per column). Two products of the same output are never added to each
//!   other: each output's accumulator receives its products one by one, in increasing step order.
//! - **One pass per micro-tile.** A micro-tile runs its whole reduction at once, from zero, and
//!   then writes each output once: no partial sum is stored, reloaded or merged.
//! - **Compressed steps are in increasing `k`.** Step `t` of column `j` is the kept entry `t` of
//!   that column, at `k = (t / n) * m + index[t][j]`. Groups come in order, and inside a group the
//!   indices strictly increase ([`Compressed::validate`]), so `k` increases with `t`. Pruned
//!   products are never computed (an inf in `A` at a pruned position does not turn into NaN).
//! - **Threads own rows.** Row blocks are split between rayon tasks; an output's computation does
//!   not depend on which task, thread or neighbours it ran with, so the result is bit-identical for
//!   any thread count (tested).
//! - **fp16: one RNE add per product.** The loaded operands are `f32::from(f16)`, which is exact;
//!   their f32 product is the exact product ([`fp::mul_exact`]: 11-bit significands give at most 22
//!   significant bits, and magnitudes stay in the normal f32 range), so `acc + a * w` performs
//!   exactly one rounding, the RNE add. Rust never contracts `a * w + acc` into an FMA (LLVM fuses
//!   only under fast-math flags, which Rust does not emit), and the SIMD path enables AVX2 only, not
//!   the `fma` feature, so no fused instruction exists in it. (A fused multiply-add would even give
//!   the same bits, because the product it skips rounding is exact; the rule does not depend on it.)
//! - **NaN canonicalized once, at the end.** The rule canonicalizes after every operation:
//!   `c[k+1] = canon(c[k] + p[k])` with `p[k] = canon(a * w)`. The kernel computes the raw chain
//!   `r[k+1] = r[k] + a * w` and stores `canon(r[K])`. By induction `c[k] = canon(r[k])`: at `k = 0`
//!   both are `+0`. If `r[k]` is NaN, `c[k]` is NaN too, so `r[k+1]` and `c[k+1]` are both NaN (NaN
//!   plus anything is NaN) and `c[k+1]` is the canonical NaN `= canon(r[k+1])`. Otherwise
//!   `c[k] = r[k]`, the product is NaN in both chains or equal in both, and
//!   `c[k+1] = canon(r[k] + a * w) = canon(r[k+1])`.
//! - **int8 saturate: one saturating add per product.** `a * w` of two int8 values is exact in
//!   i32 (`|a * w| <= 128 * 128 = 16384`) and is added with [`int::add`] under the saturate
//!   policy, once per product, so saturation is sticky per addition, as in the RTL.
//! - **Saturate cannot saturate in a short reduction.** Every product lies in `[-16256, 16384]`,
//!   so after `t` additions from 0 a partial sum lies in `[-16256 t, 16384 t]`. For `t` up to
//!   [`SATURATION_FREE_STEPS`] (131071) that is inside i32 (`16384 * 131071 = 2^31 - 16384`), so
//!   no saturating addition ever clamps and each one equals the wrapping addition. A
//!   saturating GEMM with at most that many products per output therefore runs the wrap path
//!   (cheaper in SIMD); longer ones run the saturating lanes.
//! - **Wrap adds in exact f32 chunks.** The wrap policy's result is the sum of all products
//!   modulo 2^32 (wrapping addition is associative and commutative: it is addition in Z/2^32), so
//!   any exact partial sums may be combined with wrapping adds. The kernel sums chunks of at most
//!   1024 consecutive products in f32: every product is an integer with `|p| <= 2^14`, every
//!   partial sum an integer with `|s| <= 2^14 * 1024 = 2^24`, and f32 holds every integer up to
//!   `2^24` exactly, so no f32 addition rounds and each chunk's f32 sum is its exact integer sum
//!   (a `-0.0` converts to 0). Each chunk sum is converted to i32 and the chunks are added with
//!   wrap. In SIMD this runs at the speed of the fp16 lanes.
//!
//! The tests compare the kernel with a scalar oracle written from the rule ([`fp::mac`],
//! [`int::mac`], increasing `k`) at every edge: `-128`, `±0`, subnormals, inf, overflow with wrap
//! and saturate, every N:M pattern, and shapes across every block boundary.

use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;

use half::slice::HalfFloatSliceExt;

use crate::fp::{self, f16};
use crate::int::{self, Overflow};
use crate::nm::{Compressed, Magnitude};
use crate::KernelError;

/// Rows of a micro-tile: the SIMD lanes (two AVX2 registers of f32 or i32).
const MR: usize = 16;
/// Columns of a micro-tile. `MR × NR` accumulators are 12 AVX2 registers, leaving room for the
/// operands.
const NR: usize = 6;
/// Row blocks per rayon task (64 rows).
const BLOCKS_PER_TASK: usize = 4;
/// Below this many MACs the GEMM runs on the calling thread: waking the pool would cost more than
/// it saves. The result does not depend on it.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// A number format's GEMM: the operand and accumulator types, and the kernel instance that
/// computes the contract for them (see the module documentation).
pub trait MacArith: Sync {
    /// Activation (left operand) element.
    type A: Copy + Send + Sync;
    /// Weight (right operand) element.
    type W: Copy + Send + Sync;
    /// Accumulator.
    type Acc: Copy + Send + Sync;
    /// `C = A · B`. Shapes are checked by [`gemm`] and [`gemm_nm`], which are the entry points.
    fn kernel(
        &self,
        a: ArrayView2<Self::A>,
        b: Weights<'_, Self::W>,
    ) -> Result<Array2<Self::Acc>, KernelError>;
}

/// The right operand of a GEMM: a dense `K × N` tensor, or one compressed N:M along `K`.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a, W> {
    Dense(ArrayView2<'a, W>),
    Compressed(&'a Compressed<W>),
}

impl<W> Weights<'_, W> {
    /// Products added into each output: `K`, or the kept entries of a column.
    pub fn steps(&self) -> usize {
        match self {
            Weights::Dense(d) => d.nrows(),
            Weights::Compressed(c) => c.values.nrows(),
        }
    }
}

/// The most int8 products that an int32 sum from 0 can take without leaving the i32 range at any
/// step: `16384 * 131071 = 2^31 - 16384 <= i32::MAX`, and one more `-128 * -128` overflows.
pub const SATURATION_FREE_STEPS: usize = 131_071;

/// int8 × int8 → int32 with the given overflow policy ([`int::add`] after every product).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntArith {
    pub overflow: Overflow,
}

impl MacArith for IntArith {
    type A = i8;
    type W = i8;
    type Acc = i32;
    fn kernel(&self, a: ArrayView2<i8>, b: Weights<'_, i8>) -> Result<Array2<i32>, KernelError> {
        match self.overflow {
            // No partial sum can leave i32 (module documentation): both policies are the same.
            Overflow::Saturate if b.steps() > SATURATION_FREE_STEPS => run::<SaturatingLane>(a, b),
            Overflow::Wrap | Overflow::Saturate => wrapping_in_exact_f32(a, b),
        }
    }
}

/// Most int8 products whose sum f32 holds exactly at every step: `16384 * 1024 = 2^24`.
const EXACT_F32_STEPS: usize = 1024;

/// The wrapping int8 GEMM, computed as exact f32 sums of at most [`EXACT_F32_STEPS`] products,
/// each converted to i32 and added with wrap (module documentation: the result is the wrapping
/// sum of all products, which is the wrap policy's result).
fn wrapping_in_exact_f32(
    a: ArrayView2<i8>,
    b: Weights<'_, i8>,
) -> Result<Array2<i32>, KernelError> {
    let chunk = |a: ArrayView2<i8>, b: Weights<'_, i8>| {
        run::<ExactIntLane>(a, b).map(|c| c.mapv(|x| x as i32))
    };
    let steps = b.steps();
    if steps <= EXACT_F32_STEPS {
        return chunk(a, b);
    }
    let mut total: Option<Array2<i32>> = None;
    let mut add = |part: Array2<i32>| match total.as_mut() {
        None => total = Some(part),
        Some(t) => t.zip_mut_with(&part, |t, &p| *t = t.wrapping_add(p)),
    };
    match b {
        Weights::Dense(d) => {
            for k0 in (0..steps).step_by(EXACT_F32_STEPS) {
                let k1 = (k0 + EXACT_F32_STEPS).min(steps);
                add(chunk(
                    a.slice(s![.., k0..k1]),
                    Weights::Dense(d.slice(s![k0..k1, ..])),
                )?);
            }
        }
        Weights::Compressed(c) => {
            // Whole groups per chunk: `per` kept entries are `per / n` groups of `m` rows of A.
            let (n, m) = (c.pattern.n(), c.pattern.m());
            let per = EXACT_F32_STEPS / n * n;
            for t0 in (0..steps).step_by(per) {
                let t1 = (t0 + per).min(steps);
                let part = Compressed {
                    values: c.values.slice(s![t0..t1, ..]).to_owned(),
                    indices: c.indices.slice(s![t0..t1, ..]).to_owned(),
                    pattern: c.pattern,
                    axis: c.axis,
                };
                let a = a.slice(s![.., t0 / n * m..t1 / n * m]);
                add(chunk(a, Weights::Compressed(&part))?);
            }
        }
    }
    Ok(total.expect("steps > EXACT_F32_STEPS, so at least one chunk"))
}

/// fp16 × fp16 → fp32: exact products, RNE adds ([`fp::mac`]), accumulators start at +0.0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fp16Arith;

impl MacArith for Fp16Arith {
    type A = f16;
    type W = f16;
    type Acc = f32;
    fn kernel(&self, a: ArrayView2<f16>, b: Weights<'_, f16>) -> Result<Array2<f32>, KernelError> {
        run::<Fp16Lane>(a, b)
    }
}

/// `C = A (M×K) · B (K×N)`, products added in increasing `k` from zero.
pub fn gemm<Ar: MacArith>(
    ar: &Ar,
    a: ArrayView2<Ar::A>,
    b: ArrayView2<Ar::W>,
) -> Result<Array2<Ar::Acc>, KernelError> {
    let (m, k) = a.dim();
    let (kb, n) = b.dim();
    if k != kb {
        return Err(KernelError::ShapeMismatch {
            op: "gemm".into(),
            detail: format!("A is {m}x{k} and B is {kb}x{n}: A's columns must equal B's rows"),
        });
    }
    ar.kernel(a, Weights::Dense(b))
}

/// `C = A · expand(B)` with `B` compressed N:M along K (its axis 0): only the kept products are
/// added, in increasing `k` (the sparse engine skips pruned positions instead of multiplying by 0).
///
/// Equal bit for bit to `gemm(A, expand(B))` whenever `A` has no inf at pruned positions: a pruned
/// product is `±0`, the accumulator starts at `+0` and can never become `-0` (RNE gives `-0` only for
/// `-0 + -0`), and `acc + ±0 = acc` for every other `acc`. If `A` has an inf where `B` is pruned,
/// `gemm` on the dense tensor gets `inf * 0 = NaN` but this function (and the hardware) does not.
pub fn gemm_nm<Ar: MacArith>(
    ar: &Ar,
    a: ArrayView2<Ar::A>,
    b: &Compressed<Ar::W>,
) -> Result<Array2<Ar::Acc>, KernelError> {
    b.validate()?;
    if b.axis != Axis(0) {
        return Err(KernelError::ShapeMismatch {
            op: "gemm_nm".into(),
            detail: "B must be compressed along axis 0 (the reduction axis K)".into(),
        });
    }
    let (m, k) = a.dim();
    let (kb, n) = b.dense_dim();
    if k != kb {
        return Err(KernelError::ShapeMismatch {
            op: "gemm_nm".into(),
            detail: format!(
                "A is {m}x{k} and the expanded B is {kb}x{n}: A's columns must equal B's rows"
            ),
        });
    }
    ar.kernel(a, Weights::Compressed(b))
}

/// One number format's MAC in the form the kernel runs it on a whole micro-tile at once. Every
/// method is inlined into the kernel so that the lane loops vectorize.
trait Lane {
    /// Operand element (of `A` and of `B`).
    type In: Copy + Sync + Magnitude;
    type Acc: Copy + Send + Sync;
    /// The operand form the inner loop multiplies, converted once (exactly) while packing.
    type Loaded: Copy + Default + Send + Sync;
    const ZERO: Self::Acc;
    /// Converts `src` into `dst` (same length), exactly.
    fn load(src: &[Self::In], dst: &mut [Self::Loaded]);
    /// `acc + a * w`: one addition of the contract, except for the NaN canonicalization that
    /// [`Lane::finish`] does once at the end (proof in the module documentation).
    fn mac(acc: Self::Acc, a: Self::Loaded, w: Self::Loaded) -> Self::Acc;
    fn finish(acc: Self::Acc) -> Self::Acc;
}

struct Fp16Lane;

impl Lane for Fp16Lane {
    type In = f16;
    type Acc = f32;
    type Loaded = f32;
    const ZERO: f32 = 0.0;
    fn load(src: &[f16], dst: &mut [f32]) {
        // `f32::from(f16)`, eight at a time with F16C where the CPU has it.
        src.convert_to_f32_slice(dst);
    }
    #[inline(always)]
    fn mac(acc: f32, a: f32, w: f32) -> f32 {
        acc + a * w
    }
    #[inline(always)]
    fn finish(acc: f32) -> f32 {
        fp::canon(acc)
    }
}

/// int8 lanes that add in f32: exact for at most [`EXACT_F32_STEPS`] products (module
/// documentation), and as fast as the fp16 lanes.
struct ExactIntLane;

impl Lane for ExactIntLane {
    type In = i8;
    type Acc = f32;
    type Loaded = f32;
    const ZERO: f32 = 0.0;
    fn load(src: &[i8], dst: &mut [f32]) {
        widen(src, dst);
    }
    #[inline(always)]
    fn mac(acc: f32, a: f32, w: f32) -> f32 {
        acc + a * w
    }
    #[inline(always)]
    fn finish(acc: f32) -> f32 {
        acc
    }
}

/// int8 lanes with the saturate policy after every addition, for reductions long enough to
/// saturate (shorter ones, and every wrapping one, run [`ExactIntLane`]).
struct SaturatingLane;

impl Lane for SaturatingLane {
    type In = i8;
    type Acc = i32;
    type Loaded = i32;
    const ZERO: i32 = 0;
    fn load(src: &[i8], dst: &mut [i32]) {
        widen(src, dst);
    }
    #[inline(always)]
    fn mac(acc: i32, a: i32, w: i32) -> i32 {
        // The product of two int8 values is exact: |a * w| <= 128 * 128 = 16384.
        int::add(acc, a * w, Overflow::Saturate)
    }
    #[inline(always)]
    fn finish(acc: i32) -> i32 {
        acc
    }
}

/// `dst[i] = src[i]`, exactly.
fn widen<T: From<i8>>(src: &[i8], dst: &mut [T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s.into();
    }
}

/// Loads every row of `x` in turn into `buf` (`x.ncols()` long) and hands it to `put` with its
/// row number. A NaN is reported with its `(row, column)` in `x`.
fn load_rows<L: Lane>(
    x: ArrayView2<L::In>,
    buf: &mut [L::Loaded],
    mut put: impl FnMut(usize, &[L::Loaded]),
) -> Result<(), (usize, usize)> {
    let mut copy = Vec::new();
    for (r, row) in x.rows().into_iter().enumerate() {
        let src = match row.as_slice() {
            Some(s) => s,
            None => {
                copy.clear();
                copy.extend(row.iter().copied());
                &copy[..]
            }
        };
        // No early exit, so that this vectorizes; the slow search runs only on a NaN.
        if src.iter().fold(false, |nan, x| nan | x.is_nan()) {
            let c = src.iter().position(|x| x.is_nan()).unwrap_or(0);
            return Err((r, c));
        }
        L::load(src, buf);
        put(r, buf);
    }
    Ok(())
}

fn nan_error(tensor: &str, index: [usize; 2]) -> KernelError {
    KernelError::NonFinite {
        tensor: tensor.to_string(),
        index: index.to_vec(),
    }
}

/// `A` as row blocks of `MR` rows, each a `k`-major panel (one `MR`-lane column per `k`),
/// zero-padded.
fn pack_a<L: Lane>(a: ArrayView2<L::In>) -> Result<Vec<[L::Loaded; MR]>, KernelError> {
    let (m, k) = a.dim();
    let mut packed = vec![[L::Loaded::default(); MR]; m.div_ceil(MR) * k];
    let mut buf = vec![L::Loaded::default(); k];
    load_rows::<L>(a, &mut buf, |i, row| {
        let panel = &mut packed[i / MR * k..][..k];
        for (column, &x) in panel.iter_mut().zip(row) {
            column[i % MR] = x;
        }
    })
    .map_err(|(i, kk)| nan_error("A", [i, kk]))?;
    Ok(packed)
}

/// `B` as column panels of `NR` columns, each step-major (one `NR`-wide row of loaded weights per
/// step), and for a compressed `B` the row `k` of each weight. Padding columns hold zero weights.
struct PackedB<W> {
    n: usize,
    steps: usize,
    weights: Vec<[W; NR]>,
    /// Compressed only: `k` of each entry of `weights`, always `< K`.
    k_of: Vec<[u32; NR]>,
}

fn pack_b<L: Lane>(b: Weights<'_, L::In>) -> Result<PackedB<L::Loaded>, KernelError> {
    let values = match b {
        Weights::Dense(d) => d,
        Weights::Compressed(c) => c.values.view(),
    };
    let (steps, n) = values.dim();
    let mut weights = vec![[L::Loaded::default(); NR]; n.div_ceil(NR) * steps];
    let mut buf = vec![L::Loaded::default(); n];
    let loaded = load_rows::<L>(values, &mut buf, |t, row| {
        for (panel, ws) in row.chunks(NR).enumerate() {
            weights[panel * steps + t][..ws.len()].copy_from_slice(ws);
        }
    });
    let mut k_of = Vec::new();
    match b {
        Weights::Dense(_) => loaded.map_err(|(t, j)| nan_error("B", [t, j]))?,
        Weights::Compressed(c) => {
            let (pn, pm) = (c.pattern.n(), c.pattern.m());
            let k_at = |t: usize, j: usize| t / pn * pm + usize::from(c.indices[[t, j]]);
            loaded.map_err(|(t, j)| nan_error("B", [k_at(t, j), j]))?;
            let (k, _) = c.dense_dim();
            if u32::try_from(k).is_err() {
                return Err(KernelError::ShapeMismatch {
                    op: "gemm_nm".into(),
                    detail: format!("K = {k} is above the kernel's limit of 2^32 - 1"),
                });
            }
            // Padding columns point at their group's first row, so every entry is a valid k.
            k_of = (0..weights.len())
                .map(|row| [(row % steps / pn * pm) as u32; NR])
                .collect();
            for t in 0..steps {
                for (j, &index) in c.indices.row(t).iter().enumerate() {
                    k_of[j / NR * steps + t][j % NR] = (t / pn * pm + usize::from(index)) as u32;
                }
            }
        }
    }
    Ok(PackedB {
        n,
        steps,
        weights,
        k_of,
    })
}

/// The read-only operands shared by every task.
struct Job<'a, L: Lane> {
    a: &'a [[L::Loaded; MR]],
    k: usize,
    b: &'a PackedB<L::Loaded>,
}

/// Packs, runs the tasks (in parallel for large shapes), canonicalizes.
fn run<L: Lane>(
    a: ArrayView2<L::In>,
    b: Weights<'_, L::In>,
) -> Result<Array2<L::Acc>, KernelError> {
    let (m, k) = a.dim();
    let packed_a = pack_a::<L>(a)?;
    let packed_b = pack_b::<L>(b)?;
    let n = packed_b.n;
    let mut c = vec![L::ZERO; m * n];
    if m > 0 && n > 0 {
        let job = Job::<L> {
            a: &packed_a,
            k,
            b: &packed_b,
        };
        let sparse = matches!(b, Weights::Compressed(_));
        let rows_per_task = MR * BLOCKS_PER_TASK;
        let task = |(t, rows): (usize, &mut [L::Acc])| {
            let first_block = t * BLOCKS_PER_TASK;
            if sparse {
                run_task::<L, true>(&job, rows, first_block);
            } else {
                run_task::<L, false>(&job, rows, first_block);
            }
        };
        if m * n * packed_b.steps >= PARALLEL_MIN_MACS && m > rows_per_task {
            c.par_chunks_mut(rows_per_task * n)
                .enumerate()
                .for_each(task);
        } else {
            c.chunks_mut(rows_per_task * n).enumerate().for_each(task);
        }
    }
    Ok(Array2::from_shape_vec((m, n), c).expect("m*n accumulators"))
}

/// One task with the best instruction set the CPU has.
fn run_task<L: Lane, const SPARSE: bool>(job: &Job<'_, L>, c: &mut [L::Acc], first_block: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked on the line above.
        unsafe { task_avx2::<L, SPARSE>(job, c, first_block) };
        return;
    }
    task::<L, SPARSE>(job, c, first_block);
}

/// [`task`] compiled for AVX2 (and deliberately not for `fma`: see the module documentation).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn task_avx2<L: Lane, const SPARSE: bool>(job: &Job<'_, L>, c: &mut [L::Acc], first_block: usize) {
    task::<L, SPARSE>(job, c, first_block);
}

/// The rows `c` (whole rows of `C`, starting at row block `first_block`): every column panel, and
/// inside it every row block of the task, each micro-tile over the whole reduction at once. The
/// column panel of `B` is reused from L1/L2 by every row block; `A`'s row panels stream from L2.
#[inline(always)]
fn task<L: Lane, const SPARSE: bool>(job: &Job<'_, L>, c: &mut [L::Acc], first_block: usize) {
    let b = job.b;
    let (n, steps) = (b.n, b.steps);
    let rows = c.len() / n;
    for panel in 0..n.div_ceil(NR) {
        let span = panel * steps..(panel + 1) * steps;
        let weights = &b.weights[span.clone()];
        let k_of = if SPARSE { &b.k_of[span] } else { &[][..] };
        let (col0, cols) = (panel * NR, (n - panel * NR).min(NR));
        for block in 0..rows.div_ceil(MR) {
            let a = &job.a[(first_block + block) * job.k..][..job.k];
            let mut acc = [[L::ZERO; MR]; NR];
            if SPARSE {
                micro_sparse::<L>(&mut acc, a, weights, k_of);
            } else {
                micro_dense::<L>(&mut acc, a, weights);
            }
            let (row0, nrows) = (block * MR, (rows - block * MR).min(MR));
            for (j, lane) in acc.iter().enumerate().take(cols) {
                for (i, &x) in lane.iter().enumerate().take(nrows) {
                    c[(row0 + i) * n + col0 + j] = L::finish(x);
                }
            }
        }
    }
}

/// Dense steps: step `t` multiplies `A[.., t]` (`MR` lanes) by each column's weight.
#[inline(always)]
fn micro_dense<L: Lane>(
    acc: &mut [[L::Acc; MR]; NR],
    a: &[[L::Loaded; MR]],
    w: &[[L::Loaded; NR]],
) {
    for (av, wv) in a.iter().zip(w) {
        for j in 0..NR {
            for i in 0..MR {
                acc[j][i] = L::mac(acc[j][i], av[i], wv[j]);
            }
        }
    }
}

/// Compressed steps: step `t` of column `j` multiplies `A[.., k_of[t][j]]` by its kept weight.
#[inline(always)]
fn micro_sparse<L: Lane>(
    acc: &mut [[L::Acc; MR]; NR],
    a: &[[L::Loaded; MR]],
    w: &[[L::Loaded; NR]],
    k_of: &[[u32; NR]],
) {
    let last = a.len().saturating_sub(1);
    for (wv, kv) in w.iter().zip(k_of) {
        for j in 0..NR {
            // `k_of < K = a.len()` by construction (pack_b); the `min` only lets the compiler drop
            // the bounds check, whose panic path would keep the accumulators in memory.
            let av = &a[(kv[j] as usize).min(last)];
            for i in 0..MR {
                acc[j][i] = L::mac(acc[j][i], av[i], wv[j]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nm::{compress, expand, NmPattern};
    use ndarray::array;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const WRAP: IntArith = IntArith {
        overflow: Overflow::Wrap,
    };
    const SATURATE: IntArith = IntArith {
        overflow: Overflow::Saturate,
    };

    /// The rule, literally: each output from `zero`, one `mac` per product, increasing `k`.
    fn oracle<A: Copy, W: Copy, C: Copy>(
        a: &Array2<A>,
        b: &Array2<W>,
        zero: C,
        mac: impl Fn(C, A, W) -> C,
    ) -> Array2<C> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols()).fold(zero, |acc, k| mac(acc, a[[i, k]], b[[k, j]]))
        })
    }

    /// The compressed rule, literally: in increasing `k`, only the products whose weight is kept.
    fn oracle_nm<A: Copy, W: Copy, C: Copy>(
        a: &Array2<A>,
        b: &Compressed<W>,
        zero: C,
        mac: impl Fn(C, A, W) -> C,
    ) -> Array2<C> {
        let (k, n) = b.dense_dim();
        let (pn, pm) = (b.pattern.n(), b.pattern.m());
        let mut kept: Array2<Option<W>> = Array2::from_elem((k, n), None);
        for ((t, j), &w) in b.values.indexed_iter() {
            kept[[t / pn * pm + usize::from(b.indices[[t, j]]), j]] = Some(w);
        }
        Array2::from_shape_fn((a.nrows(), n), |(i, j)| {
            (0..k).fold(zero, |acc, kk| match kept[[kk, j]] {
                Some(w) => mac(acc, a[[i, kk]], w),
                None => acc,
            })
        })
    }

    fn fp_oracle(a: &Array2<f16>, b: &Array2<f16>) -> Array2<u32> {
        oracle(a, b, 0.0f32, fp::mac).mapv(f32::to_bits)
    }

    fn int_oracle(ar: IntArith, a: &Array2<i8>, b: &Array2<i8>) -> Array2<i32> {
        oracle(a, b, 0i32, |acc, x, w| int::mac(acc, x, w, ar.overflow))
    }

    fn bits(c: Array2<f32>) -> Array2<u32> {
        c.mapv(f32::to_bits)
    }

    #[test]
    fn int_gemm_small_and_edges() {
        let a = array![[1i8, 2], [-128, 127]];
        let b = array![[3i8, -1], [4, -128]];
        let c = gemm(&IntArith::default(), a.view(), b.view()).unwrap();
        assert_eq!(c, array![[11, -257], [-128 * 3 + 127 * 4, 128 - 127 * 128]]);
        // Wrap versus saturate on a long all-max reduction.
        let k = 131_073;
        let a = Array2::from_elem((1, k), -128i8);
        let b = Array2::from_elem((k, 1), -128i8);
        let w = gemm(&WRAP, a.view(), b.view()).unwrap();
        let s = gemm(&SATURATE, a.view(), b.view()).unwrap();
        assert_eq!(w[[0, 0]], i32::MIN.wrapping_add(16384));
        assert_eq!(s[[0, 0]], i32::MAX);
    }

    /// At the bound of `SATURATION_FREE_STEPS` the two policies still agree (and saturate runs
    /// the wrap lanes); one product more and they differ (and saturate runs its own lanes).
    #[test]
    fn saturation_free_bound() {
        for (k, sum) in [
            (SATURATION_FREE_STEPS, i32::MAX - 16383),
            (SATURATION_FREE_STEPS + 1, i32::MAX),
        ] {
            let a = Array2::from_elem((2, k), -128i8);
            let b = Array2::from_elem((k, 3), -128i8);
            let s = gemm(&SATURATE, a.view(), b.view()).unwrap();
            assert_eq!(s, int_oracle(SATURATE, &a, &b));
            assert!(s.iter().all(|&x| x == sum), "{k}");
            let w = gemm(&WRAP, a.view(), b.view()).unwrap();
            assert_eq!(w, int_oracle(WRAP, &a, &b));
            assert_eq!(s == w, k == SATURATION_FREE_STEPS);
        }
    }

    /// Reductions longer than one exact f32 chunk, dense and compressed (chunks of whole groups),
    /// wrap and saturate, against the oracle.
    #[test]
    fn long_int_reductions_in_chunks() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for (n, m, groups) in [(1, 1, 3000), (3, 7, 400), (16, 16, 70), (2, 8, 700)] {
            let k = m * groups;
            let a = Array2::from_shape_fn((MR + 1, k), |_| rng.random::<i8>());
            let b = Array2::from_shape_fn((k, NR + 1), |_| rng.random::<i8>());
            let cb = compress(b.view(), NmPattern::new(n, m).unwrap(), Axis(0)).unwrap();
            assert!(cb.values.nrows() > EXACT_F32_STEPS);
            for ar in [WRAP, SATURATE] {
                assert_eq!(
                    gemm(&ar, a.view(), b.view()).unwrap(),
                    int_oracle(ar, &a, &b)
                );
                assert_eq!(
                    gemm_nm(&ar, a.view(), &cb).unwrap(),
                    oracle_nm(&a, &cb, 0, |c, x, w| int::mac(c, x, w, ar.overflow))
                );
            }
        }
    }

    /// Long reductions that overflow, then come back: saturation is sticky per addition (the
    /// saturated sum then decreases), wrap is modular. Every row and column crosses the overflow
    /// at a different step; the kernel must equal the oracle for both policies.
    #[test]
    fn overflow_mid_reduction_wrap_and_saturate() {
        let (rows, k, cols) = (MR + 3, 150_000, NR + 1);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // 131072 products of -128 * -128 reach 2^31; then negative products pull the sum back.
        let a = Array2::from_shape_fn((rows, k), |(i, kk)| match kk {
            _ if kk < 131_500 + 300 * i => -128,
            _ if kk < 145_000 => 127,
            _ => rng.random::<i8>(),
        });
        let b = Array2::from_shape_fn((k, cols), |(kk, j)| match kk {
            _ if kk < 133_000 + 400 * j => -128,
            _ if kk < 145_000 => 127,
            _ => rng.random::<i8>(),
        });
        for ar in [WRAP, SATURATE] {
            let c = gemm(&ar, a.view(), b.view()).unwrap();
            assert_eq!(c, int_oracle(ar, &a, &b), "{:?}", ar.overflow);
        }
        let s = gemm(&SATURATE, a.view(), b.view()).unwrap();
        let w = gemm(&WRAP, a.view(), b.view()).unwrap();
        assert!(
            s.iter().zip(&w).any(|(s, w)| s != w),
            "the test must overflow"
        );
    }

    #[test]
    fn shape_errors() {
        let a = Array2::<i8>::zeros((2, 3));
        let b = Array2::<i8>::zeros((4, 2));
        assert!(matches!(
            gemm(&IntArith::default(), a.view(), b.view()),
            Err(KernelError::ShapeMismatch { .. })
        ));
        let c = compress(
            Array2::<i8>::zeros((4, 2)).view(),
            NmPattern::new(2, 4).unwrap(),
            Axis(0),
        )
        .unwrap();
        assert!(matches!(
            gemm_nm(&IntArith::default(), a.view(), &c),
            Err(KernelError::ShapeMismatch { .. })
        ));
        let c1 = compress(
            Array2::<i8>::zeros((3, 4)).view(),
            NmPattern::new(2, 4).unwrap(),
            Axis(1),
        )
        .unwrap();
        assert!(matches!(
            gemm_nm(&IntArith::default(), a.view(), &c1),
            Err(KernelError::ShapeMismatch { .. })
        ));
        // K = 0: every output is zero.
        let e = gemm(
            &Fp16Arith,
            Array2::<f16>::default((2, 0)).view(),
            Array2::<f16>::default((0, 3)).view(),
        )
        .unwrap();
        assert_eq!(e, Array2::<f32>::zeros((2, 3)));
        // Empty M or N.
        let e = gemm(
            &IntArith::default(),
            Array2::<i8>::zeros((0, 3)).view(),
            b.slice(ndarray::s![..3, ..]),
        )
        .unwrap();
        assert_eq!(e.dim(), (0, 2));
        let e = gemm(&IntArith::default(), a.view(), Array2::zeros((3, 0)).view()).unwrap();
        assert_eq!(e.dim(), (2, 0));
    }

    #[test]
    fn nan_inputs_are_rejected_with_their_index() {
        let mut a = Array2::from_elem((3, 4), f16::ONE);
        let b = Array2::from_elem((4, 2), f16::ONE);
        a[[2, 1]] = f16::NAN;
        assert_eq!(
            gemm(&Fp16Arith, a.view(), b.view()),
            Err(KernelError::NonFinite {
                tensor: "A".into(),
                index: vec![2, 1]
            })
        );
        let mut b = b;
        b[[3, 1]] = f16::from_bits(0xfe01);
        let a = Array2::from_elem((3, 4), f16::INFINITY);
        assert_eq!(
            gemm(&Fp16Arith, a.view(), b.view()),
            Err(KernelError::NonFinite {
                tensor: "B".into(),
                index: vec![3, 1]
            })
        );
        // A hand-built compressed B with a NaN: the index is the dense position.
        let cb = Compressed {
            values: array![[f16::ONE], [f16::NAN]],
            indices: array![[0u8], [1]],
            pattern: NmPattern::new(1, 2).unwrap(),
            axis: Axis(0),
        };
        assert_eq!(
            gemm_nm(&Fp16Arith, array![[f16::ONE; 4]].view(), &cb),
            Err(KernelError::NonFinite {
                tensor: "B".into(),
                index: vec![3, 0]
            })
        );
    }

    /// Order matters, and the contract's order is increasing k.
    /// Products: 1.0, 2^-24, 2^-24 (as fp16 products 1*1, 2^-12*2^-12, 2^-12*2^-12).
    /// Increasing k: (1 + 2^-24) = 1 (tie to even), + 2^-24 = 1  -> 1.0
    /// Decreasing k: (2^-24 + 2^-24) = 2^-23, + 1 = 1 + 2^-23     -> 1.00000012
    #[test]
    fn accumulation_order_is_increasing_k() {
        let t = f16::from_f32(2f32.powi(-12));
        let a = array![[f16::ONE, t, t]];
        let b = array![[f16::ONE], [t], [t]];
        let c = gemm(&Fp16Arith, a.view(), b.view()).unwrap();
        assert_eq!(c[[0, 0]].to_bits(), 1.0f32.to_bits());
        let reversed = (0..3)
            .rev()
            .fold(0.0f32, |acc, k| fp::mac(acc, a[[0, k]], b[[k, 0]]));
        assert_eq!(reversed.to_bits(), (1.0f32 + 2f32.powi(-23)).to_bits());
        assert_ne!(c[[0, 0]].to_bits(), reversed.to_bits());
        // The compressed GEMM follows the same order.
        let cb = compress(b.view(), NmPattern::new(3, 3).unwrap(), Axis(0)).unwrap();
        assert_eq!(
            gemm_nm(&Fp16Arith, a.view(), &cb).unwrap()[[0, 0]].to_bits(),
            c[[0, 0]].to_bits()
        );
    }

    /// The same order over a long reduction: the first product is 1.0, and every later product
    /// is half an ulp of 1.0, which RNE drops one at a time (ties to even). Any other grouping
    /// would add later products to each other first, and they would make whole ulps.
    #[test]
    fn long_reduction_keeps_the_order() {
        let k = 777;
        let t = f16::from_f32(2f32.powi(-12));
        let a = Array2::from_shape_fn((MR + 1, k), |(_, kk)| if kk == 0 { f16::ONE } else { t });
        let b = Array2::from_shape_fn((k, NR + 1), |(kk, _)| if kk == 0 { f16::ONE } else { t });
        let c = gemm(&Fp16Arith, a.view(), b.view()).unwrap();
        assert!(c.iter().all(|x| x.to_bits() == 1.0f32.to_bits()));
        assert_eq!(bits(c), fp_oracle(&a, &b));
    }

    /// Zeros with both signs: dense gemm adds -0 products to a +0 accumulator, which stays +0.
    #[test]
    fn negative_zero_products_do_not_change_the_result() {
        let nz = f16::from_bits(0x8000);
        let a = array![[nz, f16::ONE, nz, nz]];
        let b = array![[f16::ONE], [nz], [nz], [f16::ONE]];
        let c = gemm(&Fp16Arith, a.view(), b.view()).unwrap();
        assert_eq!(c[[0, 0]].to_bits(), 0); // +0, not -0
        let cb = compress(b.view(), NmPattern::new(2, 4).unwrap(), Axis(0)).unwrap();
        assert_eq!(
            gemm_nm(&Fp16Arith, a.view(), &cb).unwrap()[[0, 0]].to_bits(),
            0
        );
    }

    #[test]
    fn inf_at_a_pruned_position_differs_from_dense() {
        let a = array![[f16::INFINITY, f16::ONE]];
        let b = array![[f16::ZERO], [f16::ONE]];
        let cb = compress(b.view(), NmPattern::new(1, 2).unwrap(), Axis(0)).unwrap();
        let dense = gemm(&Fp16Arith, a.view(), expand(&cb).view()).unwrap();
        assert_eq!(dense[[0, 0]].to_bits(), 0x7FC0_0000);
        assert_eq!(gemm_nm(&Fp16Arith, a.view(), &cb).unwrap()[[0, 0]], 1.0);
    }

    /// `inf - inf` gives 0xFFC00000 on x86; every NaN result of the kernel is the canonical one,
    /// whatever step produced it and whatever came after.
    #[test]
    fn nan_results_are_canonical() {
        let (inf, ninf, one) = (f16::INFINITY, f16::NEG_INFINITY, f16::ONE);
        let a = Array2::from_shape_fn((MR + 2, 5), |(i, k)| match (i + k) % 3 {
            0 => inf,
            1 => ninf,
            _ => one,
        });
        let b = Array2::from_shape_fn((5, NR + 2), |(k, j)| match (k * j) % 4 {
            0 => f16::ZERO,
            1 => one,
            2 => f16::NEG_ONE,
            _ => inf,
        });
        let c = gemm(&Fp16Arith, a.view(), b.view()).unwrap();
        assert!(c.iter().any(|x| x.is_nan()));
        assert!(c
            .iter()
            .filter(|x| x.is_nan())
            .all(|x| x.to_bits() == 0x7FC0_0000));
        assert_eq!(bits(c), fp_oracle(&a, &b));
    }

    /// The result does not depend on the number of threads: a shape large enough to run in
    /// parallel, on pools of 1, 2 and 3 threads, dense and compressed, every format; and it equals
    /// the oracle.
    #[test]
    fn bit_identical_for_any_thread_count() {
        let (rows, k, cols) = (5 * MR * BLOCKS_PER_TASK + 7, 520, 4 * NR + 5);
        assert!(rows * k * cols >= PARALLEL_MIN_MACS);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let ah =
            Array2::from_shape_simple_fn((rows, k), || f16::from_f32(rng.random_range(-2.0..2.0)));
        let bh =
            Array2::from_shape_simple_fn((k, cols), || f16::from_f32(rng.random_range(-2.0..2.0)));
        let ai = Array2::from_shape_simple_fn((rows, k), || rng.random::<i8>());
        let bi = Array2::from_shape_simple_fn((k, cols), || rng.random::<i8>());
        let p = NmPattern::new(2, 8).unwrap();
        let ch = compress(bh.view(), p, Axis(0)).unwrap();
        let ci = compress(bi.view(), p, Axis(0)).unwrap();
        let all = || {
            (
                bits(gemm(&Fp16Arith, ah.view(), bh.view()).unwrap()),
                bits(gemm_nm(&Fp16Arith, ah.view(), &ch).unwrap()),
                gemm(&WRAP, ai.view(), bi.view()).unwrap(),
                gemm_nm(&SATURATE, ai.view(), &ci).unwrap(),
            )
        };
        let on = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(all)
        };
        let one = on(1);
        assert_eq!(one, on(2));
        assert_eq!(one, on(3));
        assert_eq!(one.0, fp_oracle(&ah, &bh));
        assert_eq!(
            one.1,
            oracle_nm(&ah, &ch, 0.0f32, fp::mac).mapv(f32::to_bits)
        );
        assert_eq!(one.2, int_oracle(WRAP, &ai, &bi));
        assert_eq!(
            one.3,
            oracle_nm(&ai, &ci, 0, |c, x, w| int::mac(c, x, w, Overflow::Saturate))
        );
    }

    /// Finite fp16 values at the edges: ±0, subnormals, the largest finite values, ±1, and any
    /// finite value.
    fn f16_finite() -> impl Strategy<Value = f16> {
        prop_oneof![
            prop_oneof![
                Just(0u16),
                Just(0x8000),
                Just(0x0001),
                Just(0x8001),
                Just(0x03ff),
                Just(0x83ff),
                Just(0x0400),
                Just(0x7bff),
                Just(0xfbff),
                Just(0x3c00),
                Just(0xbc00),
            ],
            any::<u16>().prop_filter("finite", |b| b & 0x7c00 != 0x7c00),
        ]
        .prop_map(f16::from_bits)
    }

    /// A few positions that get ±inf, so that some outputs become inf or NaN and most stay finite.
    fn infs() -> impl Strategy<Value = Vec<(prop::sample::Index, prop::sample::Index, bool)>> {
        proptest::collection::vec(
            any::<(prop::sample::Index, prop::sample::Index, bool)>(),
            0..3,
        )
    }

    fn place_infs(t: &mut Array2<f16>, at: &[(prop::sample::Index, prop::sample::Index, bool)]) {
        if t.is_empty() {
            return;
        }
        let (r, c) = t.dim();
        for (i, j, neg) in at {
            t[[i.index(r), j.index(c)]] = if *neg {
                f16::NEG_INFINITY
            } else {
                f16::INFINITY
            };
        }
    }

    fn i8_edge() -> impl Strategy<Value = i8> {
        prop_oneof![
            Just(0i8),
            Just(-128),
            Just(127),
            Just(-1),
            Just(1),
            any::<i8>()
        ]
    }

    /// Shapes that cross the micro-tile boundaries (`MR`, `NR`), with short and long reductions.
    fn dims() -> impl Strategy<Value = (usize, usize, usize)> {
        (
            1usize..=2 * MR + 3,
            prop_oneof![0usize..=20, 250usize..=300],
            1usize..=2 * NR + 2,
        )
    }

    /// An N:M pattern (every one with m <= 16) and a number of groups up to about 300 steps.
    fn pattern_and_groups() -> impl Strategy<Value = (NmPattern, usize)> {
        (1usize..=16)
            .prop_flat_map(|m| (1..=m, Just(m)))
            .prop_flat_map(|(n, m)| {
                let p = NmPattern::new(n, m).unwrap();
                (Just(p), 1usize..=300 / n + 1)
            })
    }

    fn fill<T: Copy>(dim: (usize, usize), vals: &[T]) -> Array2<T> {
        Array2::from_shape_fn(dim, |(i, j)| vals[(i * 131 + j * 7) % vals.len()])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn dense_fp16_equals_the_oracle(
            (rows, k, cols) in dims(),
            vals in proptest::collection::vec(f16_finite(), 97),
            wvals in proptest::collection::vec(f16_finite(), 89),
            (ainf, binf) in (infs(), infs()),
        ) {
            let mut a = fill((rows, k), &vals);
            let mut b = fill((k, cols), &wvals);
            place_infs(&mut a, &ainf);
            place_infs(&mut b, &binf);
            prop_assert_eq!(bits(gemm(&Fp16Arith, a.view(), b.view()).unwrap()), fp_oracle(&a, &b));
        }

        #[test]
        fn dense_int8_equals_the_oracle(
            (rows, k, cols) in dims(),
            vals in proptest::collection::vec(i8_edge(), 97),
            wvals in proptest::collection::vec(i8_edge(), 89),
            saturate in any::<bool>(),
        ) {
            let ar = if saturate { SATURATE } else { WRAP };
            let a = fill((rows, k), &vals);
            let b = fill((k, cols), &wvals);
            prop_assert_eq!(gemm(&ar, a.view(), b.view()).unwrap(), int_oracle(ar, &a, &b));
        }

        #[test]
        fn compressed_fp16_equals_the_oracle(
            (p, groups) in pattern_and_groups(),
            rows in 1usize..=MR + 3,
            cols in 1usize..=2 * NR + 1,
            vals in proptest::collection::vec(f16_finite(), 97),
            wvals in proptest::collection::vec(f16_finite(), 89),
            (ainf, binf) in (infs(), infs()),
        ) {
            let k = groups * p.m();
            let mut a = fill((rows, k), &vals);
            let mut b = fill((k, cols), &wvals);
            place_infs(&mut a, &ainf);
            place_infs(&mut b, &binf);
            let cb = compress(b.view(), p, Axis(0)).unwrap();
            prop_assert_eq!(
                bits(gemm_nm(&Fp16Arith, a.view(), &cb).unwrap()),
                oracle_nm(&a, &cb, 0.0f32, fp::mac).mapv(f32::to_bits)
            );
        }

        #[test]
        fn compressed_int8_equals_the_oracle(
            (p, groups) in pattern_and_groups(),
            rows in 1usize..=MR + 3,
            cols in 1usize..=2 * NR + 1,
            vals in proptest::collection::vec(i8_edge(), 97),
            wvals in proptest::collection::vec(i8_edge(), 89),
            saturate in any::<bool>(),
        ) {
            let ar = if saturate { SATURATE } else { WRAP };
            let k = groups * p.m();
            let a = fill((rows, k), &vals);
            let cb = compress(fill((k, cols), &wvals).view(), p, Axis(0)).unwrap();
            prop_assert_eq!(
                gemm_nm(&ar, a.view(), &cb).unwrap(),
                oracle_nm(&a, &cb, 0, |c, x, w| int::mac(c, x, w, ar.overflow))
            );
        }

        /// Without inf in A, skipping pruned products equals multiplying them by zero.
        #[test]
        fn gemm_nm_equals_dense_gemm_fp16(
            rows in 1usize..4, groups in 1usize..4, cols in 1usize..4, (n, m) in (1usize..=8).prop_flat_map(|m| (1..=m, Just(m))),
            vals in proptest::collection::vec(f16_finite(), 512),
        ) {
            let k = groups * m;
            let a = Array2::from_shape_fn((rows, k), |(i, j)| vals[(i * k + j) % 256]);
            let w = Array2::from_shape_fn((k, cols), |(i, j)| vals[256 + (i * cols + j) % 256]);
            let cb = compress(w.view(), NmPattern::new(n, m).unwrap(), Axis(0)).unwrap();
            let dense = gemm(&Fp16Arith, a.view(), expand(&cb).view()).unwrap();
            let sparse = gemm_nm(&Fp16Arith, a.view(), &cb).unwrap();
            prop_assert_eq!(bits(dense), bits(sparse));
        }

        #[test]
        fn gemm_nm_equals_dense_gemm_int(
            rows in 1usize..4, groups in 1usize..4, cols in 1usize..4, (n, m) in (1usize..=8).prop_flat_map(|m| (1..=m, Just(m))),
            vals in proptest::collection::vec(i8_edge(), 512), sat in any::<bool>(),
        ) {
            let ar = if sat { SATURATE } else { WRAP };
            let k = groups * m;
            let a = Array2::from_shape_fn((rows, k), |(i, j)| vals[(i * k + j) % 256]);
            let w = Array2::from_shape_fn((k, cols), |(i, j)| vals[256 + (i * cols + j) % 256]);
            let cb = compress(w.view(), NmPattern::new(n, m).unwrap(), Axis(0)).unwrap();
            prop_assert_eq!(gemm(&ar, a.view(), expand(&cb).view()).unwrap(), gemm_nm(&ar, a.view(), &cb).unwrap());
        }

        /// Non-contiguous views (a transpose, as the WU pass uses) give the same result.
        #[test]
        fn transposed_views(
            (rows, k, cols) in dims(),
            vals in proptest::collection::vec(f16_finite(), 97),
            ainf in infs(),
        ) {
            let mut at = fill((k, rows), &vals);
            place_infs(&mut at, &ainf);
            let b = fill((k, cols), &vals[3..]);
            let c = gemm(&Fp16Arith, at.t(), b.view()).unwrap();
            prop_assert_eq!(bits(c), fp_oracle(&at.t().to_owned(), &b));
        }
    }
}
