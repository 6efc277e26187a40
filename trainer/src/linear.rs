//! One BDWP linear layer, with every engine operation going through a [`Backend`].
//!
//! Shapes follow `sparse_kernels::bdwp`: `X: B×Cin` (fp16), `W: Cout×Cin` (fp32 master, fp16 copy),
//! `dY: B×Cout` (fp16). The composition
//!
//! ```text
//! state = pregenerate(W32)              prune W16 along Cin → M_F; prune S along Cout → M_B
//! Y     = forward(state, X)             FF: gemm_nm(X, (W16⊙M_F)ᵀ)
//! dX,dW = backward(state, X, dY)        BP: gemm_nm(dY, S⊙M_B); WU: gemm(dYᵀ, X)
//! next  = apply_update(state, dW)       update(W32, dW, M_F) → (W32', W16'); pregenerate(W32', W16')
//! ```
//!
//! equals `sparse_kernels::bdwp::train_step` bit for bit on every output (tested for every pattern
//! and both `M_B` sources in `tests/bit_exact.rs`).
//!
//! Where each tensor is computed:
//! - `W16` comes from the weight-update engine ([`Backend::update`] returns it with the new
//!   `W32`). Only the very first `W16` of a run, before any update happened, is converted on the
//!   host with `fp::to_f16` ([`pregenerate`]); [`pregenerate_from`] takes a `W16` that the backend
//!   produced.
//! - `S = W16⊙M_F` (for [`MaskBSource::ForwardMasked`]) is an elementwise mux computed on the host;
//!   the backend's pruning unit then selects `M_B` from it.
//! - The FF operand `(W16⊙M_F)ᵀ` compressed along Cin is the transpose of what the pruning unit
//!   emits when it prunes `W16` along Cin (axis 1): the same values and indices, read column-wise.
//!   No extra compression happens on the host.
//!
//! **Dense training** (`pattern.is_dense()`, N = M): the pruning unit is bypassed (no
//! [`Backend::prune`] call, no [`Pass::Prune`]), both masks are all ones (made on the host), and FF
//! and BP run as dense [`Backend::gemm`] calls. The state still holds `Compressed` operands with
//! `n == m`; for those, `values` *is* the dense operand (`W16ᵀ` and `W16`) and the indices are the
//! trivial `0..m` per group, which is exactly what `bdwp::ff_operand`/`bp_operand` give. A dense GEMM
//! adds all products in increasing `k`, and so does `gemm_nm` with `n == m`, so the results equal
//! the reference's bit for bit.

use anyhow::{bail, ensure, Context};
use half::f16;
use ndarray::{Array2, ArrayView2, Axis};
use sparse_kernels::bdwp::{BdwpConfig, MaskBSource, Masks, StepOutputs};
use sparse_kernels::fp::to_f16;
use sparse_kernels::nm::{self, Compressed, NmPattern};

use crate::backend::{Backend, Pass};

/// Everything one layer needs for its next FF and BP: master weights, their fp16 copy, the masks
/// and the pre-generated compressed operands.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearState {
    /// fp32 master weights, Cout×Cin.
    pub w32: Array2<f32>,
    /// fp16 copy of `w32` (RNE), Cout×Cin.
    pub w16: Array2<f16>,
    /// Forward mask, N:M along Cin (axis 1), Cout×Cin.
    pub mask_f: Array2<u8>,
    /// Backward mask, N:M along Cout (axis 0), Cout×Cin.
    pub mask_b: Array2<u8>,
    /// `(W16⊙M_F)ᵀ` (Cin×Cout) compressed along Cin (its axis 0): the FF weight operand.
    pub ff_weights: Compressed<f16>,
    /// `S⊙M_B` (Cout×Cin), `S = W16⊙M_F` or `W16` per [`MaskBSource`], compressed along Cout (axis
    /// 0): the BP weight operand.
    pub bp_weights: Compressed<f16>,
}

impl LinearState {
    /// `(Cout, Cin)`.
    pub fn dim(&self) -> (usize, usize) {
        self.w32.dim()
    }

    /// The masks in the reference's form (`bdwp::Masks`).
    pub fn masks(&self) -> Masks {
        Masks {
            w16: self.w16.clone(),
            mask_f: self.mask_f.clone(),
            mask_b: self.mask_b.clone(),
        }
    }
}

/// Checks `lr` and `lambda` as the reference does (finite numbers).
pub fn validate_config(cfg: &BdwpConfig) -> anyhow::Result<()> {
    for (name, v) in [("lr", cfg.lr), ("lambda", cfg.lambda)] {
        ensure!(v.is_finite(), "{name} = {v} must be a finite number");
    }
    Ok(())
}

fn first_nan<T: Copy>(a: ArrayView2<T>, is_nan: impl Fn(T) -> bool) -> Option<(usize, usize)> {
    a.indexed_iter().find(|(_, &v)| is_nan(v)).map(|(i, _)| i)
}

/// Pre-generation for the first step of a run: `W16 = fp::to_f16(W32)` on the host (no update has
/// run yet, so the weight-update engine has not produced a `W16`), then [`pregenerate_from`].
pub fn pregenerate(
    backend: &mut dyn Backend,
    w32: Array2<f32>,
    cfg: &BdwpConfig,
) -> anyhow::Result<LinearState> {
    let w16 = w32.mapv(to_f16);
    pregenerate_from(backend, w32, w16, cfg)
}

/// Pre-generation from master weights and the `W16` the weight-update engine produced with them:
/// prune `W16` along Cin (axis 1) → `M_F` and the FF operand; prune `S` (see [`MaskBSource`]) along
/// Cout (axis 0) → `M_B` and the BP operand. Dense patterns skip the pruning unit (module docs).
///
/// Errors: Cout or Cin not a multiple of M, NaN in `w32`, `w16` of another shape, or a backend
/// result of the wrong form.
pub fn pregenerate_from(
    backend: &mut dyn Backend,
    w32: Array2<f32>,
    w16: Array2<f16>,
    cfg: &BdwpConfig,
) -> anyhow::Result<LinearState> {
    let p = cfg.pattern;
    let (cout, cin) = w32.dim();
    ensure!(
        w16.dim() == w32.dim(),
        "w16 is {:?} but w32 is {:?}",
        w16.dim(),
        w32.dim()
    );
    for (name, len) in [("Cout", cout), ("Cin", cin)] {
        ensure!(
            len % p.m() == 0,
            "{name} = {len} is not a multiple of M = {} (pattern {p}); every weight axis is grouped",
            p.m()
        );
    }
    if let Some((r, c)) = first_nan(w32.view(), f32::is_nan) {
        bail!("w32 has a NaN at [{r}, {c}]; masks cannot be generated");
    }
    if p.is_dense() {
        let ones = Array2::<u8>::ones(w32.dim());
        let ff_weights = nm::compress_masked(w16.t(), ones.t(), p, Axis(0))?;
        let bp_weights = nm::compress_masked(w16.view(), ones.view(), p, Axis(0))?;
        return Ok(LinearState {
            w32,
            w16,
            mask_f: ones.clone(),
            mask_b: ones,
            ff_weights,
            bp_weights,
        });
    }

    backend.begin_pass(Pass::Prune);
    let (cf, mask_f) = backend
        .prune(w16.view(), p, 1)
        .context("pruning W16 along Cin (M_F)")?;
    check_prune(&cf, &mask_f, w16.dim(), p, 1, "M_F")?;
    // The pruning unit's output along Cin, read column-wise, is (W16⊙M_F)ᵀ compressed along axis 0.
    let ff_weights = Compressed {
        values: cf.values.reversed_axes().as_standard_layout().into_owned(),
        indices: cf.indices.reversed_axes().as_standard_layout().into_owned(),
        pattern: p,
        axis: Axis(0),
    };

    let s = match cfg.mask_b_source {
        MaskBSource::Dense => w16.clone(),
        MaskBSource::ForwardMasked => nm::apply_mask(w16.view(), mask_f.view()),
    };
    backend.begin_pass(Pass::Prune);
    let (bp_weights, mask_b) = backend
        .prune(s.view(), p, 0)
        .context("pruning S along Cout (M_B)")?;
    check_prune(&bp_weights, &mask_b, s.dim(), p, 0, "M_B")?;
    Ok(LinearState {
        w32,
        w16,
        mask_f,
        mask_b,
        ff_weights,
        bp_weights,
    })
}

/// Shape/form checks on what a backend's pruning unit returned (cheap, and they turn a wrong RTL
/// read-out into a clear error instead of a confusing GEMM failure).
fn check_prune(
    c: &Compressed<f16>,
    mask: &Array2<u8>,
    dim: (usize, usize),
    p: NmPattern,
    axis: usize,
    what: &str,
) -> anyhow::Result<()> {
    c.validate()
        .with_context(|| format!("backend prune for {what}"))?;
    ensure!(
        c.pattern == p && c.axis == Axis(axis) && c.dense_dim() == dim && mask.dim() == dim,
        "backend prune for {what} returned pattern {}, axis {}, dense shape {:?}, mask shape {:?}; \
         expected pattern {p}, axis {axis}, shape {dim:?}",
        c.pattern,
        c.axis.0,
        c.dense_dim(),
        mask.dim()
    );
    Ok(())
}

fn check_out(r: Array2<f32>, dim: (usize, usize), what: &str) -> anyhow::Result<Array2<f32>> {
    ensure!(
        r.dim() == dim,
        "backend {what} returned shape {:?}, expected {dim:?}",
        r.dim()
    );
    Ok(r)
}

/// FF: `Y = X·(W16⊙M_F)ᵀ`, B×Cout (fp32).
pub fn forward(
    backend: &mut dyn Backend,
    state: &LinearState,
    x: ArrayView2<f16>,
) -> anyhow::Result<Array2<f32>> {
    let (cout, cin) = state.dim();
    ensure!(
        x.ncols() == cin,
        "forward: X is {:?} but the layer has Cin = {cin}",
        x.dim()
    );
    backend.begin_pass(Pass::Ff);
    let y = if state.ff_weights.pattern.is_dense() {
        backend.gemm(x, state.ff_weights.values.view())
    } else {
        backend.gemm_nm(x, &state.ff_weights)
    }
    .context("FF GEMM")?;
    check_out(y, (x.nrows(), cout), "FF GEMM")
}

/// BP: `dX = dY·(S⊙M_B)`, B×Cin (fp32).
pub fn backward_data(
    backend: &mut dyn Backend,
    state: &LinearState,
    dy: ArrayView2<f16>,
) -> anyhow::Result<Array2<f32>> {
    let (cout, cin) = state.dim();
    ensure!(
        dy.ncols() == cout,
        "backward: dY is {:?} but the layer has Cout = {cout}",
        dy.dim()
    );
    backend.begin_pass(Pass::Bp);
    let dx = if state.bp_weights.pattern.is_dense() {
        backend.gemm(dy, state.bp_weights.values.view())
    } else {
        backend.gemm_nm(dy, &state.bp_weights)
    }
    .context("BP GEMM")?;
    check_out(dx, (dy.nrows(), cin), "BP GEMM")
}

/// WU: `dW = dYᵀ·X`, Cout×Cin (fp32), dense.
pub fn weight_gradient(
    backend: &mut dyn Backend,
    x: ArrayView2<f16>,
    dy: ArrayView2<f16>,
) -> anyhow::Result<Array2<f32>> {
    ensure!(
        x.nrows() == dy.nrows(),
        "WU: X is {:?} and dY is {:?}; both need B rows",
        x.dim(),
        dy.dim()
    );
    backend.begin_pass(Pass::Wu);
    let dw = backend.gemm(dy.t(), x).context("WU GEMM")?;
    check_out(dw, (dy.ncols(), x.ncols()), "WU GEMM")
}

/// BP and WU of one layer: `(dX, dW)`.
pub fn backward(
    backend: &mut dyn Backend,
    state: &LinearState,
    x: ArrayView2<f16>,
    dy: ArrayView2<f16>,
) -> anyhow::Result<(Array2<f32>, Array2<f32>)> {
    let dx = backward_data(backend, state, dy)?;
    let dw = weight_gradient(backend, x, dy)?;
    Ok((dx, dw))
}

/// The SR-STE update on the weight-update engine (`cfg.lr`, `cfg.lambda`, decay on weights pruned
/// by the `M_F` this step used), then pre-generation of the next state from the new `W32` and the
/// `W16` the engine produced.
pub fn apply_update(
    backend: &mut dyn Backend,
    state: &LinearState,
    dw: ArrayView2<f32>,
    cfg: &BdwpConfig,
) -> anyhow::Result<LinearState> {
    validate_config(cfg)?;
    ensure!(
        dw.dim() == state.dim(),
        "update: dW is {:?} but the layer is {:?}",
        dw.dim(),
        state.dim()
    );
    backend.begin_pass(Pass::Update);
    let (w32, w16) = backend
        .update(
            state.w32.view(),
            dw,
            state.mask_f.view(),
            cfg.lr,
            cfg.lambda,
        )
        .context("weight update")?;
    ensure!(
        w32.dim() == state.dim() && w16.dim() == state.dim(),
        "backend update returned shapes {:?} and {:?}, expected {:?}",
        w32.dim(),
        w16.dim(),
        state.dim()
    );
    pregenerate_from(backend, w32, w16, cfg)
        .context("pre-generating the next masks from the updated weights")
}

/// One full step from a pre-generated state: FF, BP, WU, update, pre-generation. Returns the
/// outputs under the names of `bdwp::StepOutputs` (`used` = the masks of `state`) and the next
/// state.
pub fn train_step_state(
    backend: &mut dyn Backend,
    state: &LinearState,
    x: ArrayView2<f16>,
    dy: ArrayView2<f16>,
    cfg: &BdwpConfig,
) -> anyhow::Result<(StepOutputs, LinearState)> {
    validate_config(cfg)?;
    let (cout, cin) = state.dim();
    let (b, xc) = x.dim();
    ensure!(
        xc == cin && dy.dim() == (b, cout),
        "x is {b}x{xc} (B x Cin), w is {cout}x{cin} (Cout x Cin), dy is {}x{} (B x Cout); \
         expected x Bx{cin} and dy {b}x{cout}",
        dy.nrows(),
        dy.ncols()
    );
    if let Some((r, c)) = first_nan(x, f16::is_nan) {
        bail!("x has a NaN at [{r}, {c}]");
    }
    if let Some((r, c)) = first_nan(dy, f16::is_nan) {
        bail!("dy has a NaN at [{r}, {c}]");
    }
    let y = forward(backend, state, x)?;
    let (dx, dw) = backward(backend, state, x, dy)?;
    let next = apply_update(backend, state, dw.view(), cfg)?;
    let out = StepOutputs {
        used: state.masks(),
        y,
        dx,
        dw,
        w32: next.w32.clone(),
        next: next.masks(),
    };
    Ok((out, next))
}

/// One single-layer step from fp32 master weights, on any backend: the same computation and output
/// names as `sparse_kernels::bdwp::train_step` (and `coforge golden train-step`): `y`, `dx`, `dw`,
/// `w32`, `next.{w16, mask_f, mask_b}` and the `used` masks. The first `W16` is converted on the
/// host ([`pregenerate`]).
pub fn train_step(
    backend: &mut dyn Backend,
    x: ArrayView2<f16>,
    w32: ArrayView2<f32>,
    dy: ArrayView2<f16>,
    cfg: &BdwpConfig,
) -> anyhow::Result<StepOutputs> {
    validate_config(cfg)?;
    let state = pregenerate(backend, w32.to_owned(), cfg)?;
    Ok(train_step_state(backend, &state, x, dy, cfg)?.0)
}
