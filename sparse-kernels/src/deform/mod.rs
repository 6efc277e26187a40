//! Deformable convolution: the bit-exact contract of the `deform` engine.
//!
//! Two modes, each written once here and mirrored by the RTL (`design/deformable.md`):
//!
//! - **Mode A, CoDeNet-exact** ([`codenet`]): a depthwise 3×3 convolution with one integer dilation
//!   per output pixel, optionally behind a 1×1 pointwise convolution, with the CoDeNet quantizer.
//!   Plain convolution is mode A with every dilation 1.
//! - **Mode B, DCNv2 in fixed point** ([`dcnv2`]): torchvision's `deform_conv2d` with Q·f offsets,
//!   an optional Q0.g modulation mask and an int32 result. [`float`] is a float64 version of the same
//!   layer, used only to bound the fixed-point error against torchvision.
//!
//! # Mode A rules
//!
//! 1. Activations are int8 NHWC `[B, H, W, C]` (a uint8 value minus 128, as in the authors' HLS).
//!    Weights are signed 4-bit values stored as int8: the depthwise weights `[C, 3, 3]`, the 1×1
//!    weights `[Cout, Cin]`. A weight outside `-8..=7` is an error, never clamped.
//! 2. The dilation map is uint8 `[Hout, Wout]`, one value per output pixel, shared by every channel
//!    and every image of the batch. Its valid range is `1..=dmax`; 0 is an error
//!    ([`codenet::check_dilation`] names the pixel).
//! 3. Stride `s ∈ {1, 2}`; `Hout = ceil(H/s)`, `Wout = ceil(W/s)`. Output pixel `(oy, ox)` is centred
//!    at `(s·oy, s·ox)`, and tap `(i, j)` (`i, j ∈ 0..3`) reads `(s·oy + d·(i−1), s·ox + d·(j−1))`.
//! 4. A tap outside the image reads −128, the real zero under the activation offset.
//! 5. Sums are exact in 24 bits ([`codenet::ACC_BITS`]; the proof is on [`codenet::depthwise_sums`]
//!    and [`codenet::pointwise_sums`], which also bounds Cin of the 1×1 stage).
//! 6. The quantizer, per channel with int16 scale `s` and bias `b` ([`codenet::quantize`]):
//!    `p = acc·s + 2^15; q = (p >> 16) + b` (arithmetic shift); `if relu { q = max(q, 0) }`;
//!    `q −= 128` always; clamp to `[−128, 127]`. ReLU cannot change the result (a negative `q` clamps
//!    to −128 either way) but the flag is kept for fidelity with the authors' code.
//! 7. The block is: 1×1 (optional), quantize, depthwise deformable 3×3 (optional), quantize. Either
//!    stage can be bypassed, not both.
//!
//! # Mode B rules
//!
//! 1. Layouts are torchvision's: `x` int8 `[B, Cin, H, W]`; `offset` `[B, 2·G·kh·kw, Hout, Wout]` in
//!    Q·f two's complement, channel `g·2K + 2k` is Δy and `g·2K + 2k + 1` is Δx, with tap
//!    `k = i·kw + j`; `mask` (optional) `[B, G·kh·kw, Hout, Wout]` in Q0.g, values `0..=2^g`
//!    (`2^g` is 1.0); `w` int8 `[Cout, Cin/groups, kh, kw]`, with `groups = Cin / w.shape[1]` as in
//!    torchvision (1 is a full conv, Cin is depthwise). Input channel `c` uses offset group
//!    `c / (Cin/G)`.
//! 2. `Hout = (H + 2·ph − (dh·(kh−1) + 1)) / sh + 1`, the same for `Wout`.
//! 3. Sample position ([`dcnv2::position`]): `P = base·2^f + Δ` with `base = oy·sh − ph + i·dh`
//!    (`ox·sw − pw + j·dw` for x); `y0 = P >> f` (floor), `ly = P & (2^f − 1)`.
//! 4. Bilinear sample ([`dcnv2::sample_fixed`], the one rule the RTL sampler mirrors): corner weights
//!    `(2^f−ly)(2^f−lx)`, `(2^f−ly)·lx`, `ly·(2^f−lx)`, `ly·lx` for the corners `(y0, x0)`,
//!    `(y0, x0+1)`, `(y0+1, x0)`, `(y0+1, x0+1)`; a corner outside the image reads the zero point
//!    (border rule [`dcnv2::Border::Zero`]); `s = (Σ corner·weight + 2^(2f−1)) >> 2f`, arithmetic
//!    shift (ties toward +∞; no rounding term when `f = 0`).
//! 5. Modulation ([`dcnv2::modulate`]): `s' = (s·m + 2^(g−1)) >> g` (no rounding term when `g = 0`).
//!    Both `s` and `s'` are int8.
//! 6. `y[b, co, oy, ox] = Σ w[co, c, i, j] · s'` over the channels `c` of `co`'s group and the taps,
//!    each product added to an int32 accumulator that starts at 0 and wraps
//!    ([`crate::int::mac`] with [`crate::int::Overflow::Wrap`]), in increasing `(c, i, j)` order. This
//!    is a GEMM of the sampled im2col matrix ([`dcnv2::im2col`], columns in `(c, i, j)` order) with
//!    the weights, run by [`crate::gemm::gemm`]: a full conv runs on the tensor engine unchanged.
//! 7. Ranges: `f ∈ 0..=12` ([`dcnv2::MAX_FRAC_BITS`]) and `g ∈ 0..=16` ([`dcnv2::MAX_MASK_BITS`])
//!    keep every intermediate in 32 bits (proofs on [`dcnv2::FixedFormat::new`]). H, W, the kernel,
//!    stride, padding and dilation are at most 2^24 ([`dcnv2::MAX_EXTENT`]), so positions are exact
//!    in i64 for every i32 offset; an offset that leaves the image only reads the zero point.
//!    The border rule is a named parameter ([`dcnv2::Border`]); only zero padding is implemented.
//!
//! Everything returns [`crate::KernelError`] on bad input (shapes, ranges) and never panics.
pub mod codenet;
pub mod dcnv2;
pub mod float;

pub use codenet::{codenet_block, CodenetBlock, CodenetOutput, Depthwise, Pointwise, Quantizer};
pub use dcnv2::{dcnv2_fixed, sample_fixed, Border, FixedFormat, Geometry};
pub use float::{dcnv2_f64, sample_f64};

use crate::KernelError;

/// A shape error of operation `op`.
fn shape_err(op: &str, detail: impl Into<String>) -> KernelError {
    KernelError::ShapeMismatch {
        op: op.to_string(),
        detail: detail.into(),
    }
}

/// A parameter error.
fn param_err(name: &str, value: impl ToString, reason: impl Into<String>) -> KernelError {
    KernelError::InvalidParameter {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}
