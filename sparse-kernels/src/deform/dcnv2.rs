//! Mode B, DCNv2 in fixed point, in torchvision's layouts. The rules are listed in the [module
//! doc](super); [`sample_fixed`] is the bilinear rule the RTL sampler mirrors, [`im2col`] the
//! sampled matrix a full conv feeds to the tensor engine, and [`dcnv2_fixed`] the whole layer.

use ndarray::{s, Array2, Array4, ArrayView2, ArrayView4};

use super::{param_err, shape_err};
use crate::gemm::{gemm, IntArith};
use crate::int::Overflow;
use crate::KernelError;

/// Largest number of fractional offset bits `f` (see [`FixedFormat::new`] for why 12).
pub const MAX_FRAC_BITS: u32 = 12;
/// Largest number of mask bits `g` (see [`FixedFormat::new`]).
pub const MAX_MASK_BITS: u32 = 16;
/// Largest H, W, kernel size, stride, padding and dilation (2^24). With every extent below it, a
/// base coordinate lies within ±2^50 and `base·2^f + Δ` is exact in i64 (see [`position`]).
pub const MAX_EXTENT: usize = 1 << 24;

/// What a bilinear corner outside the image reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Border {
    /// torchvision's rule: an outside corner reads the zero point (0 for symmetric activations),
    /// which equals bilinear sampling of the image padded with the zero point on every side. A
    /// sample with `y ≤ −1`, `y ≥ H`, `x ≤ −1` or `x ≥ W` therefore reads exactly the zero point.
    ///
    /// The older MXNet/mmdet rule, which clamps samples in `[H−1, H)` to the last row (mmcv #528,
    /// tvm #7397), is deliberately not implemented: no engine of coforge uses it. It would be a
    /// second variant here.
    #[default]
    Zero,
}

/// Stride, padding, dilation (each `[y, x]`), offset groups G and the border rule, as torchvision's
/// `deform_conv2d` takes them. Shared by the fixed-point and the float64 reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub offset_groups: usize,
    pub border: Border,
}

impl Default for Geometry {
    fn default() -> Self {
        Self {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            offset_groups: 1,
            border: Border::Zero,
        }
    }
}

/// The fixed-point formats of mode B: Q·f offsets, Q0.g mask, and the activation zero point that
/// out-of-image corners read. Built only by [`FixedFormat::new`], so every instance is in range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedFormat {
    frac_bits: u32,
    mask_bits: u32,
    zero_point: i8,
}

impl FixedFormat {
    /// Checks `f = frac_bits ∈ 0..=12` and `g = mask_bits ∈ 0..=16`.
    ///
    /// **Why these ranges keep every step in int32.**
    /// - *The bilinear sum.* The four corner weights are non-negative and sum to exactly `2^(2f)`:
    ///   `(2^f−ly)(2^f−lx) + (2^f−ly)lx + ly(2^f−lx) + ly·lx = (2^f−ly+ly)(2^f−lx+lx)`. Every corner
    ///   value (a pixel or the zero point) is an int8 in `[−128, 127]`, so every partial sum of
    ///   `corner·weight` lies in `[−128·2^(2f), 127·2^(2f)]`, and adding the rounding term `2^(2f−1)`
    ///   keeps it in `[−2^(2f+7), 2^(2f+7)]`. For `f = 12` that is `[−2^31, 2^31 − 2^23]`, inside
    ///   int32 (a single weight, at most `2^24`, fits too); `f = 13` would reach `2^33`.
    /// - *The sample is an int8.* `s = floor(v + 1/2)` with `v = sum / 2^(2f) ∈ [−128, 127]`, so
    ///   `s ∈ [−128, 127]`.
    /// - *The modulation.* `0 ≤ m ≤ 2^g`, so `s·m ∈ [−2^(g+7), 127·2^g]` and with `2^(g−1)` added it
    ///   stays within `±2^23` for `g = 16`; `s' = floor(s·m/2^g + 1/2)` with `s·m/2^g` between 0 and
    ///   `s` is again an int8. (16 bits is where the sum stops fitting an int16 mask file: `2^16`
    ///   itself needs 17 bits, so an int16 mask supports `g ≤ 14`.)
    pub fn new(frac_bits: u32, mask_bits: u32, zero_point: i8) -> Result<Self, KernelError> {
        if frac_bits > MAX_FRAC_BITS {
            return Err(param_err(
                "frac_bits",
                frac_bits,
                format!("offsets are Q.f with f in 0..={MAX_FRAC_BITS} (the bilinear sum must fit in 32 bits)"),
            ));
        }
        if mask_bits > MAX_MASK_BITS {
            return Err(param_err(
                "mask_bits",
                mask_bits,
                format!("the mask is Q0.g with g in 0..={MAX_MASK_BITS}"),
            ));
        }
        Ok(Self {
            frac_bits,
            mask_bits,
            zero_point,
        })
    }
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }
    pub fn mask_bits(&self) -> u32 {
        self.mask_bits
    }
    pub fn zero_point(&self) -> i8 {
        self.zero_point
    }
    /// `2^g`, the mask value that means 1.0.
    pub fn mask_one(&self) -> i32 {
        1 << self.mask_bits
    }
}

/// `2^(bits−1)`, the round-half-up term of a right shift by `bits`; 0 when `bits = 0`.
fn half(bits: u32) -> i32 {
    if bits == 0 {
        0
    } else {
        1 << (bits - 1)
    }
}

/// The Q·f sample coordinate `P = base·2^f + Δ` (rule 3). `base` is `oy·sh − ph + i·dh` (or the x
/// equivalent); the integer part is `P >> f` and the fraction `P & (2^f − 1)`. Exact in i64 for any
/// i32 offset and any base within ±2^50, which [`MAX_EXTENT`] guarantees for every layer (beyond
/// that it saturates, which lands outside every image).
pub fn position(base: i64, delta: i32, fmt: &FixedFormat) -> i64 {
    base.saturating_mul(1 << fmt.frac_bits)
        .saturating_add(i64::from(delta))
}

/// The bilinear weights of the corners `(y0, x0)`, `(y0, x0+1)`, `(y0+1, x0)`, `(y0+1, x0+1)` for
/// the fractions `ly, lx ∈ 0..2^f` (taken modulo 2^f). They sum to `2^(2f)`.
pub fn corner_weights(ly: i32, lx: i32, fmt: &FixedFormat) -> [i32; 4] {
    let one = 1i32 << fmt.frac_bits;
    let (ly, lx) = (ly & (one - 1), lx & (one - 1));
    [
        (one - ly) * (one - lx),
        (one - ly) * lx,
        ly * (one - lx),
        ly * lx,
    ]
}

/// The fixed-point bilinear sample of one channel plane `[H, W]` at the Q·f position `(py, px)`
/// (rule 4):
///
/// ```text
/// y0 = py >> f;  ly = py & (2^f − 1);  (the same for x)
/// sum = Σ corner · weight   over the 4 corners, outside corners reading the zero point
/// s = (sum + 2^(2f−1)) >> 2f           // arithmetic shift: ties toward +∞
/// ```
///
/// Every step fits in int32 and `s` is an int8 (proof on [`FixedFormat::new`]).
pub fn sample_fixed(
    plane: ArrayView2<i8>,
    py: i64,
    px: i64,
    fmt: &FixedFormat,
    border: Border,
) -> i8 {
    let f = fmt.frac_bits;
    let frac_mask = (1i64 << f) - 1;
    let (y0, x0) = (py >> f, px >> f);
    // The fraction is below 2^f <= 2^12, so it fits an i32.
    let (ly, lx) = ((py & frac_mask) as i32, (px & frac_mask) as i32);
    let (h, w) = plane.dim();
    let read = |y: i64, x: i64| -> i32 {
        match border {
            Border::Zero => {
                if (0..h as i64).contains(&y) && (0..w as i64).contains(&x) {
                    i32::from(plane[[y as usize, x as usize]])
                } else {
                    i32::from(fmt.zero_point)
                }
            }
        }
    };
    // Saturating only matters at i64::MAX, which is outside every image either way.
    let (y1, x1) = (y0.saturating_add(1), x0.saturating_add(1));
    let [w00, w01, w10, w11] = corner_weights(ly, lx, fmt);
    let sum = read(y0, x0) * w00 + read(y0, x1) * w01 + read(y1, x0) * w10 + read(y1, x1) * w11;
    let s = (sum + half(2 * f)) >> (2 * f);
    debug_assert!((-128..=127).contains(&s));
    s as i8
}

/// The modulated sample `s' = (s·m + 2^(g−1)) >> g` (rule 5), for a mask value `m ∈ 0..=2^g`.
/// The result is an int8 (proof on [`FixedFormat::new`]). [`im2col`] and [`dcnv2_fixed`] reject
/// any other mask value with an error; called directly with one, this function saturates `m` into
/// `0..=2^g` rather than overflow.
pub fn modulate(s: i8, m: i32, fmt: &FixedFormat) -> i8 {
    let g = fmt.mask_bits;
    let m = m.clamp(0, fmt.mask_one());
    let v = (i32::from(s) * m + half(g)) >> g;
    debug_assert!((-128..=127).contains(&v));
    v as i8
}

/// The shapes of one mode-B layer, checked once for the fixed-point and the float reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub b: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub hout: usize,
    pub wout: usize,
    pub offset_groups: usize,
}

/// `Hout` or `Wout`: `(size + 2·pad − (dil·(k−1) + 1)) / stride + 1`, or an error when the dilated
/// kernel does not fit the padded input.
fn out_len(
    axis: &str,
    size: usize,
    k: usize,
    g: &Geometry,
    a: usize,
) -> Result<usize, KernelError> {
    let span = g.dilation[a] * (k - 1) + 1;
    let padded = size + 2 * g.padding[a];
    if padded < span {
        return Err(shape_err(
            "deform_conv2d",
            format!(
                "the kernel spans {span} {axis} positions (dilation {} x ({k} - 1) + 1) but the padded \
                 input has {padded}; use a smaller kernel or dilation, or more padding",
                g.dilation[a]
            ),
        ));
    }
    Ok((padded - span) / g.stride[a] + 1)
}

impl Layout {
    /// Checks `x [B, Cin, H, W]`, `offset [B, 2·G·kh·kw, Hout, Wout]`, `mask [B, G·kh·kw, Hout,
    /// Wout]` and the geometry for a `kh × kw` kernel.
    pub(crate) fn new(
        x: &[usize],
        offset: &[usize],
        mask: Option<&[usize]>,
        kernel: [usize; 2],
        g: &Geometry,
    ) -> Result<Self, KernelError> {
        let op = "deform_conv2d";
        for (name, v, min) in [
            ("stride", g.stride, 1),
            ("padding", g.padding, 0),
            ("dilation", g.dilation, 1),
            ("kernel size", kernel, 1),
        ] {
            if v.iter().any(|&e| e < min || e > MAX_EXTENT) {
                return Err(param_err(
                    name,
                    format!("{v:?}"),
                    format!("must be in {min}..={MAX_EXTENT} in both axes"),
                ));
            }
        }
        let &[b, cin, h, w] = x else {
            return Err(shape_err(
                op,
                format!("x must be [B, Cin, H, W], not {x:?}"),
            ));
        };
        if h.max(w) > MAX_EXTENT {
            return Err(shape_err(
                op,
                format!("x is {h}x{w}; H and W must be at most {MAX_EXTENT}"),
            ));
        }
        if cin == 0 {
            return Err(shape_err(op, "x has no input channels (Cin = 0)"));
        }
        let go = g.offset_groups;
        if go == 0 || !cin.is_multiple_of(go) {
            return Err(param_err(
                "offset_groups",
                go,
                format!("must be at least 1 and divide Cin = {cin}"),
            ));
        }
        let [kh, kw] = kernel;
        let (hout, wout) = (
            out_len("row", h, kh, g, 0)?,
            out_len("column", w, kw, g, 1)?,
        );
        let k = kh * kw;
        let want = [b, 2 * go * k, hout, wout];
        if offset != want {
            return Err(shape_err(
                op,
                format!(
                    "offset must be [B, 2*G*kh*kw, Hout, Wout] = {want:?} (G = {go}, kernel {kh}x{kw}), \
                     but it is {offset:?}"
                ),
            ));
        }
        if let Some(m) = mask {
            let want = [b, go * k, hout, wout];
            if m != want {
                return Err(shape_err(
                    op,
                    format!("mask must be [B, G*kh*kw, Hout, Wout] = {want:?}, but it is {m:?}"),
                ));
            }
        }
        Ok(Self {
            b,
            cin,
            h,
            w,
            kh,
            kw,
            hout,
            wout,
            offset_groups: go,
        })
    }

    /// [`Layout::new`] on the arrays of a layer.
    pub(crate) fn of<X, O, M>(
        x: &ArrayView4<X>,
        offset: &ArrayView4<O>,
        mask: Option<&ArrayView4<M>>,
        kernel: [usize; 2],
        g: &Geometry,
    ) -> Result<Self, KernelError> {
        Self::new(
            x.shape(),
            offset.shape(),
            mask.map(|m| m.shape()),
            kernel,
            g,
        )
    }

    /// Checks `w [Cout, Cin/groups, kh, kw]` and returns `(Cout, groups)`, with `groups` derived
    /// from the weight shape as torchvision does.
    pub(crate) fn weights(&self, w: &[usize]) -> Result<(usize, usize), KernelError> {
        let op = "deform_conv2d";
        let &[cout, cin_g, kh, kw] = w else {
            return Err(shape_err(
                op,
                format!("w must be [Cout, Cin/groups, kh, kw], not {w:?}"),
            ));
        };
        if [kh, kw] != [self.kh, self.kw] {
            return Err(shape_err(
                op,
                format!(
                    "w has a {kh}x{kw} kernel but the offsets are for {}x{}",
                    self.kh, self.kw
                ),
            ));
        }
        if cin_g == 0 || !self.cin.is_multiple_of(cin_g) {
            return Err(shape_err(
                op,
                format!(
                    "w has {cin_g} input channels per group, which does not divide Cin = {}; \
                     use Cin/groups (Cin for a full conv, 1 for depthwise)",
                    self.cin
                ),
            ));
        }
        let groups = self.cin / cin_g;
        if !cout.is_multiple_of(groups) {
            return Err(shape_err(
                op,
                format!("Cout = {cout} is not a multiple of groups = {groups} (Cin / w.shape[1])"),
            ));
        }
        Ok((cout, groups))
    }

    /// The offset group of input channel `c`: `c / (Cin/G)`.
    pub(crate) fn offset_group(&self, c: usize) -> usize {
        c / (self.cin / self.offset_groups)
    }

    /// Where offset group `g`'s tap `(i, j)` of output `(n, oy, ox)` samples: the base coordinates
    /// `(oy·sh − ph + i·dh, ox·sw − pw + j·dw)`, the offsets `(Δy, Δx)` read from channels
    /// `g·2K + 2k` and `g·2K + 2k + 1` (`k = i·kw + j`), and the mask index.
    pub(crate) fn tap<O: Copy>(
        &self,
        geom: &Geometry,
        offset: &ArrayView4<O>,
        at: Tap,
    ) -> Sample<O> {
        let Tap { n, g, oy, ox, i, j } = at;
        let base = |o: usize, a: usize, t: usize| {
            (o * geom.stride[a]) as i64 - geom.padding[a] as i64 + (t * geom.dilation[a]) as i64
        };
        let k = self.kh * self.kw;
        let tap = i * self.kw + j;
        Sample {
            base: (base(oy, 0, i), base(ox, 1, j)),
            delta: (
                offset[[n, g * 2 * k + 2 * tap, oy, ox]],
                offset[[n, g * 2 * k + 2 * tap + 1, oy, ox]],
            ),
            mask_index: [n, g * k + tap, oy, ox],
        }
    }
}

/// One tap of one output: image `n`, offset group `g`, output pixel `(oy, ox)`, tap `(i, j)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tap {
    pub n: usize,
    pub g: usize,
    pub oy: usize,
    pub ox: usize,
    pub i: usize,
    pub j: usize,
}

/// Where a [`Tap`] samples (see [`Layout::tap`]).
pub(crate) struct Sample<O> {
    pub base: (i64, i64),
    pub delta: (O, O),
    pub mask_index: [usize; 4],
}

/// The sampled im2col matrix of a fixed-point layer: `[B·Hout·Wout, Cin·kh·kw]`, row
/// `(b·Hout + oy)·Wout + ox`, column `(c·kh + i)·kw + j`, holding the modulated sample `s'` of
/// channel `c`, tap `(i, j)` for that output pixel (rules 3–5). Columns are in `(c, i, j)` order,
/// so a GEMM that adds in increasing column index adds in the contract's order.
///
/// `offset` and `mask` hold the raw Q·f and Q0.g integers; a mask value outside `0..=2^g` is an
/// error that names its index.
pub fn im2col(
    x: ArrayView4<i8>,
    offset: ArrayView4<i32>,
    mask: Option<ArrayView4<i32>>,
    kernel: [usize; 2],
    geom: &Geometry,
    fmt: &FixedFormat,
) -> Result<Array2<i8>, KernelError> {
    let lay = Layout::of(&x, &offset, mask.as_ref(), kernel, geom)?;
    if let Some(m) = &mask {
        let one = fmt.mask_one();
        if let Some((idx, &v)) = m.indexed_iter().find(|(_, &v)| !(0..=one).contains(&v)) {
            return Err(KernelError::OutOfRange {
                tensor: "mask".into(),
                format: format!("Q0.{}", fmt.mask_bits),
                index: vec![idx.0, idx.1, idx.2, idx.3],
                value: v.into(),
                min: 0,
                max: one.into(),
            });
        }
    }
    let Layout { kh, kw, .. } = lay;
    let k = kh * kw;
    let mut cols = Array2::zeros((lay.b * lay.hout * lay.wout, lay.cin * k));
    for (n, oy, ox) in ndarray::indices((lay.b, lay.hout, lay.wout)) {
        // Every channel of an offset group samples at the same positions with the same mask:
        // compute them once per group and tap.
        let taps: Vec<(i64, i64, Option<i32>)> = ndarray::indices((lay.offset_groups, kh, kw))
            .into_iter()
            .map(|(g, i, j)| {
                let t = lay.tap(geom, &offset, Tap { n, g, oy, ox, i, j });
                let py = position(t.base.0, t.delta.0, fmt);
                let px = position(t.base.1, t.delta.1, fmt);
                (py, px, mask.as_ref().map(|m| m[t.mask_index]))
            })
            .collect();
        let mut row = cols.row_mut((n * lay.hout + oy) * lay.wout + ox);
        for c in 0..lay.cin {
            let plane = x.slice(s![n, c, .., ..]);
            let group_taps = &taps[lay.offset_group(c) * k..][..k];
            for (tap, &(py, px, m)) in group_taps.iter().enumerate() {
                let v = sample_fixed(plane, py, px, fmt, geom.border);
                row[c * k + tap] = match m {
                    Some(m) => modulate(v, m, fmt),
                    None => v,
                };
            }
        }
    }
    Ok(cols)
}

/// The weights of group `group` as the right operand of the im2col GEMM: `[Cin/groups·kh·kw,
/// Cout/groups]`, row `(c·kh + i)·kw + j` (local channel `c`), column = local output channel.
pub fn weight_matrix(w: ArrayView4<i8>, groups: usize, group: usize) -> Array2<i8> {
    let (cout, cin_g, kh, kw) = w.dim();
    let cout_g = cout / groups;
    let rows: Vec<i8> = w
        .slice(s![group * cout_g..(group + 1) * cout_g, .., .., ..])
        .iter()
        .copied()
        .collect();
    Array2::from_shape_vec((cout_g, cin_g * kh * kw), rows)
        .expect("a [Cout/groups, Cin/groups, kh, kw] slice has that many elements")
        .reversed_axes()
}

/// A DCNv2 layer in fixed point (rules 1–7): `x` int8 `[B, Cin, H, W]`, `offset` Q·f
/// `[B, 2·G·kh·kw, Hout, Wout]`, `mask` Q0.g `[B, G·kh·kw, Hout, Wout]` or none, `w` int8
/// `[Cout, Cin/groups, kh, kw]`. Returns the int32 sums `[B, Cout, Hout, Wout]`.
///
/// It is the sampled [`im2col`] matrix times [`weight_matrix`] for each group, by
/// [`crate::gemm::gemm`] with [`Overflow::Wrap`]: each output starts at 0 and adds
/// `w · s'` in increasing `(c, i, j)`, wrapping modulo 2^32.
pub fn dcnv2_fixed(
    x: ArrayView4<i8>,
    offset: ArrayView4<i32>,
    mask: Option<ArrayView4<i32>>,
    w: ArrayView4<i8>,
    geom: &Geometry,
    fmt: &FixedFormat,
) -> Result<Array4<i32>, KernelError> {
    let kernel = [w.dim().2, w.dim().3];
    let lay = Layout::of(&x, &offset, mask.as_ref(), kernel, geom)?;
    let (cout, groups) = lay.weights(w.shape())?;
    let cols = im2col(x, offset, mask, kernel, geom, fmt)?;
    let span = lay.cin / groups * lay.kh * lay.kw;
    let cout_g = cout / groups;
    let arith = IntArith {
        overflow: Overflow::Wrap,
    };
    let mut y = Array4::zeros((lay.b, cout, lay.hout, lay.wout));
    for group in 0..groups {
        let a = cols.slice(s![.., group * span..(group + 1) * span]);
        let c = gemm(&arith, a, weight_matrix(w, groups, group).view())?;
        for ((row, co), &v) in c.indexed_iter() {
            let (n, pix) = (row / (lay.hout * lay.wout), row % (lay.hout * lay.wout));
            y[[n, group * cout_g + co, pix / lay.wout, pix % lay.wout]] = v;
        }
    }
    Ok(y)
}
