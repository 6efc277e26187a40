//! One BDWP (bidirectional weight pruning) training step of a linear layer, bit-exact
//! (design/sat-bdwp.md).
//!
//! Shapes: `X: B×Cin` (fp16), `W: Cout×Cin` (fp32 master, fp16 copy), `dY: B×Cout` (fp16).
//!
//! | pass | computation | reduction | operand |
//! |---|---|---|---|
//! | FF | `Y = X·(W16⊙M_F)ᵀ` | Cin | [`ff_operand`]: `M_F` is N:M along Cin (axis 1 of W) |
//! | BP | `dX = dY·(S⊙M_B)` | Cout | [`bp_operand`]: `M_B` is N:M along Cout (axis 0) of `S` |
//! | WU | `dW = dYᵀ·X` | B | dense |
//!
//! where `S = W16⊙M_F` ([`MaskBSource::ForwardMasked`], the default) or `S = W16`
//! ([`MaskBSource::Dense`]). FF and BP run on the compressed operands with [`gemm_nm`] (the sparse
//! engine skips pruned products), WU with [`gemm`]; all accumulate in increasing `k` from +0.0.
//!
//! NaN/inf policy: NaN in `x`, `w32` or `dy` is rejected with [`KernelError::NonFinite`]. Infinities
//! are accepted and propagate by IEEE rules through the GEMMs and the update; if that produces a NaN
//! in the updated master weights, the next masks cannot be generated and the step fails with
//! `NonFinite` naming `updated w32`. fp32 weights of magnitude >= 65520 become ±inf in W16 (and win
//! their groups, inf being the largest magnitude).

use ndarray::{Array2, ArrayView2, Axis, Zip};

use crate::fp::{self, f16};
use crate::gemm::{gemm, gemm_nm, Fp16Arith};
use crate::nm::{self, compress_masked, Compressed, NmPattern};
use crate::KernelError;

/// Default weight decay on pruned weights (SR-STE).
pub const DEFAULT_LAMBDA: f32 = 2e-4;

/// Which tensor the backward mask `M_B` is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MaskBSource {
    /// `M_B = N:M(W16)` along Cout, independent of `M_F`.
    Dense,
    /// `M_B = N:M(W16⊙M_F)` along Cout (Bi-Mask); the default.
    #[default]
    ForwardMasked,
}

/// Parameters of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct BdwpConfig {
    pub pattern: NmPattern,
    /// Learning rate; must be finite.
    pub lr: f32,
    /// Decay applied to pruned weights; must be finite. [`DEFAULT_LAMBDA`] by default.
    pub lambda: f32,
    pub mask_b_source: MaskBSource,
}

impl BdwpConfig {
    /// A config with the default λ and `M_B` source.
    pub fn new(pattern: NmPattern, lr: f32) -> Self {
        Self {
            pattern,
            lr,
            lambda: DEFAULT_LAMBDA,
            mask_b_source: MaskBSource::default(),
        }
    }

    fn validate(&self) -> Result<(), KernelError> {
        for (name, v) in [("lr", self.lr), ("lambda", self.lambda)] {
            if !v.is_finite() {
                return Err(KernelError::InvalidParameter {
                    name: name.into(),
                    value: v.to_string(),
                    reason: "must be a finite number".into(),
                });
            }
        }
        Ok(())
    }
}

/// What pre-generation produces from the fp32 master weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Masks {
    /// `fp16(W32)`, RNE, overflow to inf.
    pub w16: Array2<f16>,
    /// Forward mask, N:M along Cin (axis 1). Exactly `n` ones per group.
    pub mask_f: Array2<u8>,
    /// Backward mask, N:M along Cout (axis 0). Exactly `n` ones per group (the pruning unit always
    /// emits `n` indices). With `ForwardMasked` it selects among `W16⊙M_F`, so `M_B ⊆ M_F` in every
    /// group that has at least `n` non-zero entries of `W16⊙M_F`; in a group with fewer, the extra
    /// picks fall on zeros of `W16⊙M_F` (lowest indices first) and contribute nothing to BP.
    pub mask_b: Array2<u8>,
}

/// Pre-generation: `W16 = fp16(W32)`; `M_F = N:M(W16)` along Cin (axis 1);
/// `M_B = N:M(S)` along Cout (axis 0) with `S` chosen by `cfg.mask_b_source`.
pub fn pregenerate(w32: ArrayView2<f32>, cfg: &BdwpConfig) -> Result<Masks, KernelError> {
    pregenerate_named(w32, cfg, "w32")
}

fn pregenerate_named(
    w32: ArrayView2<f32>,
    cfg: &BdwpConfig,
    name: &str,
) -> Result<Masks, KernelError> {
    nm::reject_nan(w32, name)?;
    let m = cfg.pattern.m();
    let (cout, cin) = w32.dim();
    for (axis, len) in [(0, cout), (1, cin)] {
        if !len.is_multiple_of(m) {
            return Err(KernelError::AxisNotMultiple {
                tensor: name.to_string(),
                axis,
                len,
                m,
            });
        }
    }
    let w16 = w32.mapv(fp::to_f16);
    let mask_f = nm::mask(w16.view(), cfg.pattern, Axis(1))?;
    let mask_b = nm::mask(bp_source(&w16, &mask_f, cfg).view(), cfg.pattern, Axis(0))?;
    Ok(Masks {
        w16,
        mask_f,
        mask_b,
    })
}

/// The tensor `S` that `M_B` selects from and that BP multiplies.
fn bp_source(w16: &Array2<f16>, mask_f: &Array2<u8>, cfg: &BdwpConfig) -> Array2<f16> {
    match cfg.mask_b_source {
        MaskBSource::Dense => w16.clone(),
        MaskBSource::ForwardMasked => nm::apply_mask(w16.view(), mask_f.view()),
    }
}

/// The FF weight operand as the sparse engine receives it: `(W16⊙M_F)ᵀ` (Cin×Cout) compressed along
/// its axis 0 (Cin, the FF reduction axis).
pub fn ff_operand(masks: &Masks, cfg: &BdwpConfig) -> Result<Compressed<f16>, KernelError> {
    compress_masked(masks.w16.t(), masks.mask_f.t(), cfg.pattern, Axis(0))
}

/// The BP weight operand: `S⊙M_B` (Cout×Cin) compressed along axis 0 (Cout, the BP reduction axis),
/// with `S` as in [`pregenerate`].
pub fn bp_operand(masks: &Masks, cfg: &BdwpConfig) -> Result<Compressed<f16>, KernelError> {
    let s = bp_source(&masks.w16, &masks.mask_f, cfg);
    compress_masked(s.view(), masks.mask_b.view(), cfg.pattern, Axis(0))
}

/// The SR-STE update of one master weight, each operation rounded to f32 (no FMA), in this order:
///
/// ```text
/// decay = lambda * ((1 - keep) * w32)
/// g     = dw + decay
/// w32'  = w32 - lr * g
/// ```
///
/// `keep` is the forward mask bit (`0` = pruned, anything else = kept). The formula is evaluated
/// literally, so a kept weight multiplies `0 * w32`: this is `±0` for finite `w32` (and `dw + ±0`
/// equals `dw` except that `-0 + +0 = +0`), but NaN for `w32 = ±inf`. The RTL must compute the same
/// product rather than muxing the decay away.
pub fn update_element(w32: f32, dw: f32, keep: u8, lr: f32, lambda: f32) -> f32 {
    let one_minus_keep: f32 = if keep == 0 { 1.0 } else { 0.0 };
    let decay = fp::mul(lambda, fp::mul(one_minus_keep, w32));
    let g = fp::add(dw, decay);
    // `a - b` is `a + (-b)` exactly in IEEE arithmetic, zero signs included.
    fp::add(w32, -fp::mul(lr, g))
}

/// Everything one step produces.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutputs {
    /// The masks this step used (pre-generated from the incoming `w32`).
    pub used: Masks,
    /// `Y = X·(W16⊙M_F)ᵀ`, B×Cout.
    pub y: Array2<f32>,
    /// `dX = dY·(S⊙M_B)`, B×Cin.
    pub dx: Array2<f32>,
    /// `dW = dYᵀ·X`, Cout×Cin.
    pub dw: Array2<f32>,
    /// Updated master weights.
    pub w32: Array2<f32>,
    /// Masks pre-generated from the updated weights, for the next step.
    pub next: Masks,
}

/// One training step: pre-generate (from `w32`), FF, BP, WU, update, pre-generate the next masks.
/// See the module documentation for the formulas, the operand order and the NaN/inf policy.
pub fn train_step(
    x: ArrayView2<f16>,
    w32: ArrayView2<f32>,
    dy: ArrayView2<f16>,
    cfg: &BdwpConfig,
) -> Result<StepOutputs, KernelError> {
    cfg.validate()?;
    let (b, cin) = x.dim();
    let (cout, wcin) = w32.dim();
    let (db, dcout) = dy.dim();
    if wcin != cin || db != b || dcout != cout {
        return Err(KernelError::ShapeMismatch {
            op: "train_step".into(),
            detail: format!(
                "x is {b}x{cin} (B x Cin), w32 is {cout}x{wcin} (Cout x Cin), dy is {db}x{dcout} (B x Cout); \
                 expected w32 {cout}x{cin} and dy {b}x{cout}"
            ),
        });
    }
    nm::reject_nan(x, "x")?;
    nm::reject_nan(dy, "dy")?;
    let used = pregenerate(w32, cfg)?;

    let y = gemm_nm(&Fp16Arith, x, &ff_operand(&used, cfg)?)?;
    let dx = gemm_nm(&Fp16Arith, dy, &bp_operand(&used, cfg)?)?;
    let dw = gemm(&Fp16Arith, dy.t(), x)?;

    let new_w32 = Zip::from(w32)
        .and(&dw)
        .and(&used.mask_f)
        .map_collect(|&w, &g, &k| update_element(w, g, k, cfg.lr, cfg.lambda));
    let next = pregenerate_named(
        new_w32.view(),
        cfg,
        "updated w32 (inf in the inputs produced NaN)",
    )?;
    Ok(StepOutputs {
        used,
        y,
        dx,
        dw,
        w32: new_w32,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn update_rounds_each_op_and_does_not_fuse() {
        // lr*g = (1+2^-12)^2 = 1 + 2^-11 + 2^-24 rounds to 1 + 2^-11 (tie, even), so w - lr*g = 0.
        // A fused multiply-add would give -2^-24.
        let e = 1.0 + 2f32.powi(-12);
        let w = 1.0 + 2f32.powi(-11);
        assert_eq!(update_element(w, e, 1, e, 0.5).to_bits(), 0);
        assert_eq!(w - e.mul_add(e, 0.0), 0.0);
        assert_eq!((-e).mul_add(e, w), -(2f32.powi(-24)));
    }

    #[test]
    fn update_decays_only_pruned_weights() {
        assert_eq!(
            update_element(2.0, 0.5, 0, 0.25, 0.5),
            2.0 - 0.25 * (0.5 + 0.5 * 2.0)
        );
        assert_eq!(update_element(2.0, 0.5, 1, 0.25, 0.5), 2.0 - 0.25 * 0.5);
        // A non-binary keep value counts as kept.
        assert_eq!(update_element(2.0, 0.5, 7, 0.25, 0.5), 2.0 - 0.25 * 0.5);
    }

    #[test]
    fn update_literal_zero_times_inf() {
        // Kept inf weight: 0 * inf = NaN in the decay term, by the literal formula.
        assert!(update_element(f32::INFINITY, 0.0, 1, 0.1, 2e-4).is_nan());
        // Pruned inf weight with finite dw: inf - lr*(lambda*inf) = inf - inf = NaN.
        assert!(update_element(f32::INFINITY, 0.0, 0, 0.1, 2e-4).is_nan());
        // An inf gradient on a finite weight gives -inf.
        assert_eq!(
            update_element(1.0, f32::INFINITY, 1, 0.1, 2e-4),
            f32::NEG_INFINITY
        );
    }

    #[test]
    fn update_signed_zeros() {
        // keep=1, w=-0: decay = lambda*(0*-0) = -0; g = -0 + -0 = -0; w' = -0 - lr*(-0) = -0 + 0 = +0.
        assert_eq!(update_element(-0.0, -0.0, 1, 0.5, 0.5).to_bits(), 0);
        // w=-0, dw=+0: g = +0 + -0 = +0; w' = -0 - +0 = -0.
        assert_eq!(
            update_element(-0.0, 0.0, 1, 0.5, 0.5).to_bits(),
            0x8000_0000
        );
    }

    fn cfg(n: usize, m: usize) -> BdwpConfig {
        BdwpConfig::new(NmPattern::new(n, m).unwrap(), 0.5)
    }

    #[test]
    fn pregenerate_rounds_and_masks() {
        let w32 = array![[1.0f32, -3.0, 65520.0, 0.5], [2.0, 2.0, -1.0, 0.0]];
        let c = BdwpConfig {
            mask_b_source: MaskBSource::Dense,
            ..cfg(1, 2)
        };
        let m = pregenerate(w32.view(), &c).unwrap();
        assert_eq!(m.w16[[0, 2]], f16::INFINITY);
        assert_eq!(m.mask_f, array![[0u8, 1, 1, 0], [1, 0, 1, 0]]);
        assert_eq!(m.mask_b, array![[0u8, 1, 1, 1], [1, 0, 0, 0]]);
        let fm = pregenerate(w32.view(), &cfg(1, 2)).unwrap();
        // W16⊙M_F = [[0,-3,inf,0],[2,0,-1,0]]: column 3 is all zeros, ties to row 0.
        assert_eq!(fm.mask_b, array![[0u8, 1, 1, 1], [1, 0, 0, 0]]);
        let e = pregenerate(w32.view(), &cfg(1, 4)).unwrap_err();
        assert!(matches!(
            e,
            KernelError::AxisNotMultiple {
                axis: 0,
                len: 2,
                m: 4,
                ..
            }
        ));
    }

    #[test]
    fn train_step_rejects_bad_inputs() {
        let c = cfg(2, 4);
        let x = Array2::<f16>::default((2, 8));
        let w = Array2::<f32>::zeros((4, 8));
        let dy = Array2::<f16>::default((2, 4));
        assert!(train_step(x.view(), w.view(), dy.view(), &c).is_ok());
        assert!(matches!(
            train_step(x.view(), w.t(), dy.view(), &c),
            Err(KernelError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            train_step(x.view(), w.view(), dy.t(), &c),
            Err(KernelError::ShapeMismatch { .. })
        ));
        let mut xn = x.clone();
        xn[[1, 3]] = f16::NAN;
        assert_eq!(
            train_step(xn.view(), w.view(), dy.view(), &c).unwrap_err(),
            KernelError::NonFinite {
                tensor: "x".into(),
                index: vec![1, 3]
            }
        );
        let mut wn = w.clone();
        wn[[3, 0]] = f32::NAN;
        assert_eq!(
            train_step(x.view(), wn.view(), dy.view(), &c).unwrap_err(),
            KernelError::NonFinite {
                tensor: "w32".into(),
                index: vec![3, 0]
            }
        );
        let mut dn = dy.clone();
        dn[[0, 1]] = f16::NAN;
        assert!(matches!(
            train_step(x.view(), w.view(), dn.view(), &c),
            Err(KernelError::NonFinite { .. })
        ));
        let bad_lr = BdwpConfig {
            lr: f32::NAN,
            ..c.clone()
        };
        assert!(matches!(
            train_step(x.view(), w.view(), dy.view(), &bad_lr),
            Err(KernelError::InvalidParameter { .. })
        ));
        let bad_l = BdwpConfig {
            lambda: f32::INFINITY,
            ..c
        };
        assert!(matches!(
            train_step(x.view(), w.view(), dy.view(), &bad_l),
            Err(KernelError::InvalidParameter { .. })
        ));
    }

    #[test]
    fn inf_weight_that_becomes_nan_is_reported() {
        // A kept inf weight turns NaN in the update (0*inf), so the next pre-generation fails.
        let x = Array2::<f16>::from_elem((1, 2), f16::ONE);
        let w = array![[f32::INFINITY, 0.0], [1.0, 0.0]];
        let dy = Array2::<f16>::from_elem((1, 2), f16::ONE);
        let e = train_step(x.view(), w.view(), dy.view(), &cfg(1, 2)).unwrap_err();
        assert!(
            matches!(e, KernelError::NonFinite { ref tensor, ref index } if tensor.starts_with("updated w32") && index == &vec![0, 0])
        );
    }
}
