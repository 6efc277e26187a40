//! A float64 DCNv2 layer with torchvision's semantics, used only to bound the error of the
//! fixed-point mode against an outside library. Not bit-exact to anything: float sums here are
//! added in increasing `(c, i, j)` after the bias, while torchvision uses a BLAS GEMM, so the two
//! agree to rounding (the tests state the tolerance).

use ndarray::{s, Array4, ArrayView1, ArrayView2, ArrayView4};

use super::dcnv2::{Border, Geometry, Layout, Tap};
use super::shape_err;
use crate::KernelError;

/// torchvision's bilinear sample of a plane `[H, W]` at the real position `(y, x)`: 0 when
/// `y ≤ −1`, `y ≥ H`, `x ≤ −1` or `x ≥ W`; otherwise the four corners around `(y, x)` with weights
/// `(1−ly)(1−lx)`, `(1−ly)lx`, `ly(1−lx)`, `ly·lx`, a corner outside the image contributing 0.
pub fn sample_f64(plane: ArrayView2<f64>, y: f64, x: f64, border: Border) -> f64 {
    let (h, w) = plane.dim();
    match border {
        Border::Zero => {
            if y <= -1.0 || y >= h as f64 || x <= -1.0 || x >= w as f64 {
                return 0.0;
            }
        }
    }
    let (yl, xl) = (y.floor(), x.floor());
    let (ly, lx) = (y - yl, x - xl);
    let (y0, x0) = (yl as i64, xl as i64);
    let read = |yy: i64, xx: i64| {
        if (0..h as i64).contains(&yy) && (0..w as i64).contains(&xx) {
            plane[[yy as usize, xx as usize]]
        } else {
            0.0
        }
    };
    (1.0 - ly) * (1.0 - lx) * read(y0, x0)
        + (1.0 - ly) * lx * read(y0, x0 + 1)
        + ly * (1.0 - lx) * read(y0 + 1, x0)
        + ly * lx * read(y0 + 1, x0 + 1)
}

/// torchvision's `deform_conv2d` in float64, same layouts as [`super::dcnv2_fixed`] with real-valued
/// offsets (in pixels) and mask (in `[0, 1]`), plus an optional bias `[Cout]`.
pub fn dcnv2_f64(
    x: ArrayView4<f64>,
    offset: ArrayView4<f64>,
    mask: Option<ArrayView4<f64>>,
    w: ArrayView4<f64>,
    bias: Option<ArrayView1<f64>>,
    geom: &Geometry,
) -> Result<Array4<f64>, KernelError> {
    let kernel = [w.dim().2, w.dim().3];
    let lay = Layout::of(&x, &offset, mask.as_ref(), kernel, geom)?;
    let (cout, groups) = lay.weights(w.shape())?;
    if let Some(b) = &bias {
        if b.len() != cout {
            return Err(shape_err(
                "deform_conv2d",
                format!("bias must be [Cout] = [{cout}], but it is {:?}", b.shape()),
            ));
        }
    }
    let (kh, kw) = (lay.kh, lay.kw);
    let (cin_g, cout_g) = (lay.cin / groups, cout / groups);
    let mut y = Array4::zeros((lay.b, cout, lay.hout, lay.wout));
    for ((n, co, oy, ox), out) in y.indexed_iter_mut() {
        let mut acc = bias.as_ref().map_or(0.0, |b| b[co]);
        let group = co / cout_g;
        for cl in 0..cin_g {
            let c = group * cin_g + cl;
            let plane = x.slice(s![n, c, .., ..]);
            for i in 0..kh {
                for j in 0..kw {
                    let g = lay.offset_group(c);
                    let t = lay.tap(geom, &offset, Tap { n, g, oy, ox, i, j });
                    let (y, x) = (t.base.0 as f64 + t.delta.0, t.base.1 as f64 + t.delta.1);
                    let mut v = sample_f64(plane, y, x, geom.border);
                    if let Some(m) = &mask {
                        v *= m[t.mask_index];
                    }
                    acc += w[[co, cl, i, j]] * v;
                }
            }
        }
        *out = acc;
    }
    Ok(y)
}
