//! Mode A, CoDeNet-exact: 1×1 pointwise (optional), quantize, depthwise 3×3 with one integer
//! dilation per output pixel (optional), quantize. The rules are listed in the [module
//! doc](super); plain convolution is this mode with every dilation 1.

use ndarray::{s, Array1, Array2, Array3, Array4, ArrayView1, ArrayView2, ArrayView3, ArrayView4};

use super::{param_err, shape_err};
use crate::int::{self, Overflow, Requant};
use crate::KernelError;

/// Width of the depthwise and pointwise sums: every sum of the mode is exact in this many bits
/// (two's complement). The proofs are on [`depthwise_sums`] and [`pointwise_sums`].
pub const ACC_BITS: u32 = 24;

/// The value an out-of-image tap reads: −128, the real zero under the activation offset of 128.
pub const OUT_OF_IMAGE: i8 = -128;

/// Right shift of the quantizer.
pub const QUANT_SHIFT: u32 = 16;

/// Subtracted after the optional ReLU, always.
pub const QUANT_ZERO_POINT: i32 = 128;

/// Largest Cin of the 1×1 stage whose sums are exact in [`ACC_BITS`] bits (see [`pointwise_sums`]).
pub const MAX_POINTWISE_CIN: usize = 8191;

/// The CoDeNet quantizer of one value:
///
/// ```text
/// p = acc·scale + 2^15
/// q = (p >> 16) + bias          // arithmetic shift (floor), so ties round toward +∞
/// if relu { q = max(q, 0) }
/// q = q − 128                   // always, relu or not
/// return clamp(q, −128, 127)
/// ```
///
/// It is [`crate::int::requantize`] with shift 16 and zero point 128, so the rule exists once.
/// `acc·scale` needs 24 + 16 = 40 bits; the reference computes it exactly.
///
/// **ReLU cannot change the output.** If `q < 0` then without ReLU `q − 128 < −128` clamps to
/// −128, and with ReLU `0 − 128 = −128`; if `q ≥ 0` ReLU does nothing. The flag is kept because
/// the authors' code has it.
pub fn quantize(acc: i32, scale: i16, bias: i16, relu: bool) -> i8 {
    int::requantize(
        acc,
        &Requant {
            scale: scale.into(),
            bias: bias.into(),
            shift: QUANT_SHIFT,
            relu,
            zero_point: QUANT_ZERO_POINT,
        },
    )
}

/// Per-channel parameters of [`quantize`]: int16 scale and bias, one of each per output channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quantizer {
    pub scale: Array1<i16>,
    pub bias: Array1<i16>,
    pub relu: bool,
}

impl Quantizer {
    /// Quantizes NHWC sums; channel `c` (the last axis) uses `scale[c]` and `bias[c]`.
    pub fn apply(&self, acc: ArrayView4<i32>, stage: &str) -> Result<Array4<i8>, KernelError> {
        let c = acc.dim().3;
        if self.scale.len() != c || self.bias.len() != c {
            return Err(shape_err(
                stage,
                format!(
                    "the stage has {c} output channels but scale has {} and bias has {} entries; \
                     give one int16 scale and bias per channel",
                    self.scale.len(),
                    self.bias.len()
                ),
            ));
        }
        let mut y = Array4::zeros(acc.dim());
        for ((n, oy, ox, ch), &a) in acc.indexed_iter() {
            y[[n, oy, ox, ch]] = quantize(a, self.scale[ch], self.bias[ch], self.relu);
        }
        Ok(y)
    }
}

/// `(Hout, Wout) = (ceil(H/s), ceil(W/s))`.
pub fn out_size(h: usize, w: usize, stride: usize) -> (usize, usize) {
    (h.div_ceil(stride.max(1)), w.div_ceil(stride.max(1)))
}

/// Checks a dilation map against the engine's limit: every value must be in `1..=max_dilation`.
/// The error names the first offending pixel `[oy, ox]` (row-major) and the limit.
pub fn check_dilation(dilation: ArrayView2<u8>, max_dilation: u8) -> Result<(), KernelError> {
    match dilation
        .indexed_iter()
        .find(|(_, &d)| d == 0 || d > max_dilation)
    {
        None => Ok(()),
        Some(((oy, ox), &d)) => Err(KernelError::OutOfRange {
            tensor: "dilation".into(),
            format: "per-pixel dilation".into(),
            index: vec![oy, ox],
            value: i64::from(d),
            min: 1,
            max: i64::from(max_dilation),
        }),
    }
}

fn check_stride(stride: usize) -> Result<(), KernelError> {
    if stride == 1 || stride == 2 {
        Ok(())
    } else {
        Err(param_err("stride", stride, "mode A supports stride 1 or 2"))
    }
}

/// Depthwise 3×3 sums with one dilation per output pixel (rules 2–5 of the module doc):
///
/// `acc[n, oy, ox, c] = Σ_{i, j ∈ 0..3} x[n, s·oy + d·(i−1), s·ox + d·(j−1), c] · w[c, i, j]`
/// with `d = dilation[oy, ox]` and out-of-image taps reading −128.
///
/// `x` is int8 `[B, H, W, C]`, `dilation` uint8 `[ceil(H/s), ceil(W/s)]` with every value ≥ 1,
/// `w` int4-in-int8 `[C, 3, 3]`, `stride ∈ {1, 2}`. Returns the int32 sums `[B, Hout, Wout, C]`.
///
/// **Exact in 24 bits.** A product of an int8 `a ∈ [−128, 127]` and an int4 `w ∈ [−8, 7]` lies in
/// `[127·(−8), (−128)·(−8)] = [−1016, 1024]`, so nine of them sum into `[−9144, 9216]`, far inside
/// `[−2^23, 2^23 − 1]` (15 bits would do). No accumulator can wrap, so the tap order does not
/// matter; the reference adds in increasing `(i, j)`.
pub fn depthwise_sums(
    x: ArrayView4<i8>,
    dilation: ArrayView2<u8>,
    w: ArrayView3<i8>,
    stride: usize,
) -> Result<Array4<i32>, KernelError> {
    check_stride(stride)?;
    let (b, h, wd, c) = x.dim();
    if w.dim() != (c, 3, 3) {
        return Err(shape_err(
            "codenet depthwise",
            format!(
                "x has {c} channels, so w must be [{c}, 3, 3], but it is {:?}",
                w.shape()
            ),
        ));
    }
    int::check_int4(w, "depthwise w")?;
    let (ho, wo) = out_size(h, wd, stride);
    if dilation.dim() != (ho, wo) {
        return Err(shape_err(
            "codenet depthwise",
            format!(
                "x is {h}x{wd} with stride {stride}, so the dilation map must be [{ho}, {wo}] \
                 (ceil(H/s), ceil(W/s)), but it is {:?}",
                dilation.shape()
            ),
        ));
    }
    check_dilation(dilation, u8::MAX)?;
    // Channels are the inner loop (NHWC keeps a pixel's channels together); each channel still
    // adds its taps in increasing (i, j).
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("a standard-layout array is one slice");
    let taps: Vec<Vec<i8>> = (0..9)
        .map(|t| w.slice(s![.., t / 3, t % 3]).to_vec())
        .collect();
    let outside = vec![OUT_OF_IMAGE; c];
    let mut acc = Array4::zeros((b, ho, wo, c));
    for (n, oy, ox) in ndarray::indices((b, ho, wo)) {
        let d = isize::from(dilation[[oy, ox]]);
        let (cy, cx) = ((oy * stride) as isize, (ox * stride) as isize);
        let mut sums = vec![0i32; c];
        for (t, tap_w) in taps.iter().enumerate() {
            let (i, j) = ((t / 3) as isize, (t % 3) as isize);
            let (y, xx) = (cy + d * (i - 1), cx + d * (j - 1));
            let pixel = if (0..h as isize).contains(&y) && (0..wd as isize).contains(&xx) {
                let start = ((n * h + y as usize) * wd + xx as usize) * c;
                &xs[start..start + c]
            } else {
                &outside[..]
            };
            for ((sum, &a), &wt) in sums.iter_mut().zip(pixel).zip(tap_w) {
                *sum = int::mac(*sum, a, wt, Overflow::Wrap);
            }
        }
        acc.slice_mut(s![n, oy, ox, ..])
            .assign(&ArrayView1::from(&sums[..]));
    }
    Ok(acc)
}

/// 1×1 pointwise sums: `acc[n, y, x, co] = Σ_ci x[n, y, x, ci] · w[co, ci]`, `x` int8
/// `[B, H, W, Cin]`, `w` int4-in-int8 `[Cout, Cin]`. Returns `[B, H, W, Cout]`.
///
/// **Exact in 24 bits for Cin ≤ 8191** ([`MAX_POINTWISE_CIN`]). Each product lies in
/// `[−1016, 1024]` (see [`depthwise_sums`]), so the sum lies in `[−1016·Cin, 1024·Cin]`. That is
/// inside `[−2^23, 2^23 − 1]` exactly when `1024·Cin ≤ 2^23 − 1`, i.e. `Cin ≤ 8191`. A larger Cin
/// is rejected rather than computed with a wider accumulator than the contract's.
pub fn pointwise_sums(x: ArrayView4<i8>, w: ArrayView2<i8>) -> Result<Array4<i32>, KernelError> {
    let (b, h, wd, cin) = x.dim();
    let (cout, wcin) = w.dim();
    if wcin != cin {
        return Err(shape_err(
            "codenet pointwise",
            format!(
                "x has {cin} channels but the 1x1 weights are [{cout}, {wcin}]; use [Cout, {cin}]"
            ),
        ));
    }
    if cin > MAX_POINTWISE_CIN {
        return Err(param_err(
            "pointwise Cin",
            cin,
            format!("sums are exact in {ACC_BITS} bits only up to Cin = {MAX_POINTWISE_CIN}"),
        ));
    }
    int::check_int4(w, "pointwise w")?;
    // Row-major copies so that each sum walks two slices; the order of the adds is unchanged.
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let xs = x.as_slice().expect("a standard-layout array is one slice");
    let ws = w.as_slice().expect("a standard-layout array is one slice");
    let mut acc = Vec::with_capacity(b * h * wd * cout);
    for p in 0..b * h * wd {
        let pixel = &xs[p * cin..(p + 1) * cin];
        for co in 0..cout {
            let row = &ws[co * cin..(co + 1) * cin];
            let sum = pixel
                .iter()
                .zip(row)
                .fold(0i32, |sum, (&a, &wt)| int::mac(sum, a, wt, Overflow::Wrap));
            acc.push(sum);
        }
    }
    let acc = Array4::from_shape_vec((b, h, wd, cout), acc).expect("one sum per output was pushed");
    Ok(acc)
}

/// The 1×1 front stage: int4 weights `[Cout, Cin]` and its own quantizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointwise {
    pub w: Array2<i8>,
    pub quant: Quantizer,
}

/// The depthwise deformable 3×3 stage: int4 weights `[C, 3, 3]`, the dilation map
/// `[ceil(H/s), ceil(W/s)]` (all ones for a plain conv), the stride (1 or 2) and its quantizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Depthwise {
    pub w: Array3<i8>,
    pub dilation: Array2<u8>,
    pub stride: usize,
    pub quant: Quantizer,
}

/// A CoDeNet block: 1×1, quantize, depthwise deformable 3×3, quantize. `None` bypasses a stage.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CodenetBlock {
    pub pointwise: Option<Pointwise>,
    pub depthwise: Option<Depthwise>,
}

/// What a block produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodenetOutput {
    /// The quantized int8 output, NHWC.
    pub y: Array4<i8>,
    /// The int32 sums of the last stage that ran, before its quantizer: the depthwise sums, or the
    /// 1×1 sums when the depthwise stage is bypassed.
    pub acc: Array4<i32>,
    /// The quantized 1×1 output that fed the depthwise stage, when both stages ran.
    pub front: Option<Array4<i8>>,
}

/// Runs a CoDeNet block on int8 NHWC `x` `[B, H, W, C]` (one image `[H, W, C]` is
/// `x.insert_axis(Axis(0))`). The dilation map is shared by every image of the batch.
pub fn codenet_block(
    x: ArrayView4<i8>,
    block: &CodenetBlock,
) -> Result<CodenetOutput, KernelError> {
    let front = match &block.pointwise {
        None => None,
        Some(pw) => {
            let acc = pointwise_sums(x, pw.w.view())?;
            let y = pw.quant.apply(acc.view(), "codenet pointwise quantizer")?;
            Some((y, acc))
        }
    };
    match (&block.depthwise, front) {
        (None, None) => Err(param_err(
            "codenet block",
            "both stages bypassed",
            "give the 1x1 stage, the depthwise stage, or both",
        )),
        (None, Some((y, acc))) => Ok(CodenetOutput {
            y,
            acc,
            front: None,
        }),
        (Some(dw), front) => {
            let front = front.map(|(y, _)| y);
            let (d, w) = (dw.dilation.view(), dw.w.view());
            let acc = match &front {
                Some(y) => depthwise_sums(y.view(), d, w, dw.stride)?,
                None => depthwise_sums(x, d, w, dw.stride)?,
            };
            let y = dw.quant.apply(acc.view(), "codenet depthwise quantizer")?;
            Ok(CodenetOutput { y, acc, front })
        }
    }
}
