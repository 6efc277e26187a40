//! Mode B (DCNv2 fixed point) at its edges, and against the float64 reference with the bound
//! that follows from the rounding: a sample is within 0.5 LSB of the exact bilinear value without
//! a mask and within 1 LSB with one (`|s − v| ≤ 1/2`, then `|s' − v·m| ≤ 1/2 + m·|s − v| ≤ 1`), so
//! `|y_fixed − y_float| ≤ Σ|w| · bound` per output.

use ndarray::{array, s, Array2, Array4, ArrayView2, ArrayView4};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::deform::dcnv2::{
    corner_weights, dcnv2_fixed, im2col, modulate, position, sample_fixed, weight_matrix, Border,
    FixedFormat, Geometry, MAX_EXTENT, MAX_FRAC_BITS, MAX_MASK_BITS,
};
use sparse_kernels::deform::float::{dcnv2_f64, sample_f64};
use sparse_kernels::gemm::{gemm, IntArith};
use sparse_kernels::int::{mac, Overflow};
use sparse_kernels::KernelError;

fn fmt(f: u32, g: u32, zp: i8) -> FixedFormat {
    FixedFormat::new(f, g, zp).unwrap()
}

fn out_len(size: usize, k: usize, s: usize, p: usize, d: usize) -> usize {
    (size + 2 * p - (d * (k - 1) + 1)) / s + 1
}

/// A plain (or shifted) integer convolution, written independently of the crate: tap `(i, j)` of
/// output `(oy, ox)` reads `x[oy·sh − ph + i·dh + sy, ox·sw − pw + j·dw + sx]`, zero outside,
/// added with wrap in increasing `(c, i, j)`.
fn shifted_conv(
    x: ArrayView4<i8>,
    w: ArrayView4<i8>,
    g: &Geometry,
    shift: (i64, i64),
) -> Array4<i32> {
    let (b, cin, h, wd) = x.dim();
    let (cout, cin_g, kh, kw) = w.dim();
    let groups = cin / cin_g;
    let ho = out_len(h, kh, g.stride[0], g.padding[0], g.dilation[0]);
    let wo = out_len(wd, kw, g.stride[1], g.padding[1], g.dilation[1]);
    Array4::from_shape_fn((b, cout, ho, wo), |(n, co, oy, ox)| {
        let group = co / (cout / groups);
        let mut acc = 0i32;
        for cl in 0..cin_g {
            for i in 0..kh {
                for j in 0..kw {
                    let y = (oy * g.stride[0] + i * g.dilation[0]) as i64 - g.padding[0] as i64
                        + shift.0;
                    let xx = (ox * g.stride[1] + j * g.dilation[1]) as i64 - g.padding[1] as i64
                        + shift.1;
                    let v = if (0..h as i64).contains(&y) && (0..wd as i64).contains(&xx) {
                        x[[n, group * cin_g + cl, y as usize, xx as usize]]
                    } else {
                        0
                    };
                    acc = mac(acc, v, w[[co, cl, i, j]], Overflow::Wrap);
                }
            }
        }
        acc
    })
}

/// A random layer: shapes, geometry and groups drawn from `rng`.
struct Layer {
    x: Array4<i8>,
    w: Array4<i8>,
    geom: Geometry,
    hout: usize,
    wout: usize,
}

fn random_layer(rng: &mut ChaCha8Rng) -> Layer {
    let og = rng.random_range(1..=2usize);
    let groups = [1usize, 2][rng.random_range(0..2)];
    let cin = og * groups * rng.random_range(1..=2usize);
    let cout = groups * rng.random_range(1..=2usize);
    let (kh, kw) = (rng.random_range(1..=3usize), rng.random_range(1..=3usize));
    let geom = Geometry {
        stride: [rng.random_range(1..=2), rng.random_range(1..=2)],
        padding: [rng.random_range(0..=2), rng.random_range(0..=2)],
        dilation: [rng.random_range(1..=2), rng.random_range(1..=2)],
        offset_groups: og,
        border: Border::Zero,
    };
    let h = rng.random_range(geom.dilation[0] * (kh - 1) + 1..=7);
    let wd = rng.random_range(geom.dilation[1] * (kw - 1) + 1..=7);
    let x = Array4::from_shape_simple_fn((rng.random_range(1..=2), cin, h, wd), || rng.random());
    let w = Array4::from_shape_simple_fn((cout, cin / groups, kh, kw), || rng.random());
    let hout = out_len(h, kh, geom.stride[0], geom.padding[0], geom.dilation[0]);
    let wout = out_len(wd, kw, geom.stride[1], geom.padding[1], geom.dilation[1]);
    Layer {
        x,
        w,
        geom,
        hout,
        wout,
    }
}

impl Layer {
    fn offset_shape(&self) -> (usize, usize, usize, usize) {
        let (_, _, kh, kw) = self.w.dim();
        (
            self.x.dim().0,
            2 * self.geom.offset_groups * kh * kw,
            self.hout,
            self.wout,
        )
    }
    fn mask_shape(&self) -> (usize, usize, usize, usize) {
        let (_, _, kh, kw) = self.w.dim();
        (
            self.x.dim().0,
            self.geom.offset_groups * kh * kw,
            self.hout,
            self.wout,
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Zero offsets give the plain convolution, for every f, with or without a mask of 1.0.
    #[test]
    fn zero_offsets_equal_plain_conv(seed: u64, f in 0..=MAX_FRAC_BITS, g in 0..=MAX_MASK_BITS) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let l = random_layer(&mut rng);
        let off = Array4::zeros(l.offset_shape());
        let one = Array4::from_elem(l.mask_shape(), 1i32 << g);
        let want = shifted_conv(l.x.view(), l.w.view(), &l.geom, (0, 0));
        let y = dcnv2_fixed(l.x.view(), off.view(), None, l.w.view(), &l.geom, &fmt(f, g, 0)).unwrap();
        prop_assert_eq!(&y, &want);
        let ym = dcnv2_fixed(l.x.view(), off.view(), Some(one.view()), l.w.view(), &l.geom, &fmt(f, g, 0)).unwrap();
        prop_assert_eq!(&ym, &want);
    }

    /// The same integer offset on every tap is a shifted convolution.
    #[test]
    fn integer_offsets_equal_a_shifted_conv(seed: u64, f in 0..=8u32, sy in -3i64..=3, sx in -3i64..=3) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let l = random_layer(&mut rng);
        let off = Array4::from_shape_fn(l.offset_shape(), |(_, c, _, _)| {
            (if c % 2 == 0 { sy } else { sx } << f) as i32
        });
        let y = dcnv2_fixed(l.x.view(), off.view(), None, l.w.view(), &l.geom, &fmt(f, 0, 0)).unwrap();
        prop_assert_eq!(y, shifted_conv(l.x.view(), l.w.view(), &l.geom, (sy, sx)));
    }

    /// The im2col matrix times each group's weights is the layer, and a direct loop over
    /// `(c, i, j)` with wrap, written here from the rules, gives the same bits.
    #[test]
    fn im2col_gemm_is_the_layer(seed: u64, f in 0..=6u32, g in 0..=8u32, masked: bool) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let l = random_layer(&mut rng);
        let fx = fmt(f, g, rng.random());
        let off = Array4::from_shape_simple_fn(l.offset_shape(), || rng.random_range(-(3 << f)..=(3 << f)));
        let mask = Array4::from_shape_simple_fn(l.mask_shape(), || rng.random_range(0..=(1 << g)));
        let mask = masked.then_some(mask.view());
        let (cout, cin_g, kh, kw) = l.w.dim();
        let y = dcnv2_fixed(l.x.view(), off.view(), mask, l.w.view(), &l.geom, &fx).unwrap();
        let cols = im2col(l.x.view(), off.view(), mask, [kh, kw], &l.geom, &fx).unwrap();
        let (_, cin, h, wd) = l.x.dim();
        let groups = cin / cin_g;
        let span = cin_g * kh * kw;
        for group in 0..groups {
            let c = gemm(&IntArith::default(), cols.slice(s![.., group * span..(group + 1) * span]),
                weight_matrix(l.w.view(), groups, group).view()).unwrap();
            for ((row, co), &v) in c.indexed_iter() {
                let (n, p) = (row / (l.hout * l.wout), row % (l.hout * l.wout));
                prop_assert_eq!(v, y[[n, group * (cout / groups) + co, p / l.wout, p % l.wout]]);
            }
        }
        // The direct loop, from the module doc's rules.
        let k = kh * kw;
        let og = l.geom.offset_groups;
        for ((n, co, oy, ox), &got) in y.indexed_iter() {
            let group = co / (cout / groups);
            let mut acc = 0i32;
            for cl in 0..cin_g {
                let c = group * cin_g + cl;
                let gi = c / (cin / og);
                for i in 0..kh {
                    for j in 0..kw {
                        let t = i * kw + j;
                        let by = (oy * l.geom.stride[0] + i * l.geom.dilation[0]) as i64 - l.geom.padding[0] as i64;
                        let bx = (ox * l.geom.stride[1] + j * l.geom.dilation[1]) as i64 - l.geom.padding[1] as i64;
                        let py = (by << f) + i64::from(off[[n, gi * 2 * k + 2 * t, oy, ox]]);
                        let px = (bx << f) + i64::from(off[[n, gi * 2 * k + 2 * t + 1, oy, ox]]);
                        let (y0, x0, ly, lx) = (py >> f, px >> f, py & ((1 << f) - 1), px & ((1 << f) - 1));
                        let one = 1i64 << f;
                        let rd = |yy: i64, xx: i64| if (0..h as i64).contains(&yy) && (0..wd as i64).contains(&xx) {
                            i64::from(l.x[[n, c, yy as usize, xx as usize]])
                        } else {
                            i64::from(fx.zero_point())
                        };
                        let sum = rd(y0, x0) * (one - ly) * (one - lx) + rd(y0, x0 + 1) * (one - ly) * lx
                            + rd(y0 + 1, x0) * ly * (one - lx) + rd(y0 + 1, x0 + 1) * ly * lx;
                        let mut sv = (sum + if f > 0 { 1 << (2 * f - 1) } else { 0 }) >> (2 * f);
                        if let Some(m) = &mask {
                            sv = (sv * i64::from(m[[n, gi * k + t, oy, ox]]) + if g > 0 { 1 << (g - 1) } else { 0 }) >> g;
                        }
                        acc = mac(acc, sv as i8, l.w[[co, cl, i, j]], Overflow::Wrap);
                    }
                }
            }
            prop_assert_eq!(got, acc);
        }
    }

    /// Fixed point against float64 with fractional offsets: within Σ|w|·bound, bound = 1/2 LSB
    /// without a mask and 1 LSB with one.
    #[test]
    fn fixed_is_within_the_rounding_bound_of_float(seed: u64, f in 1..=8u32, g in 1..=12u32, masked: bool) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let l = random_layer(&mut rng);
        let fx = fmt(f, g, 0);
        // Offsets up to ±4 pixels with every fraction, so samples cross the borders too.
        let off = Array4::from_shape_simple_fn(l.offset_shape(), || rng.random_range(-(4 << f)..=(4 << f)));
        let mask = Array4::from_shape_simple_fn(l.mask_shape(), || rng.random_range(0..=(1 << g)));
        let mask = masked.then_some(mask.view());
        let y = dcnv2_fixed(l.x.view(), off.view(), mask, l.w.view(), &l.geom, &fx).unwrap();
        let to_f = |a: ArrayView4<i32>, bits: u32| a.mapv(|v| f64::from(v) / f64::from(1u32 << bits));
        let mask_f = mask.map(|m| to_f(m, g));
        let yf = dcnv2_f64(l.x.mapv(f64::from).view(), to_f(off.view(), f).view(),
            mask_f.as_ref().map(|m| m.view()), l.w.mapv(f64::from).view(), None, &l.geom).unwrap();
        let bound = if masked { 1.0 } else { 0.5 };
        for ((n, co, oy, ox), &v) in y.indexed_iter() {
            let sum_w: f64 = l.w.slice(s![co, .., .., ..]).iter().map(|&w| f64::from(w).abs()).sum();
            let err = (f64::from(v) - yf[[n, co, oy, ox]]).abs();
            prop_assert!(err <= sum_w * bound + 1e-9, "at {:?}: fixed {} float {} bound {}", (n, co, oy, ox), v, yf[[n, co, oy, ox]], sum_w * bound);
        }
    }

    /// One sample against float64: within 1/2 LSB, and modulation within 1 LSB, at any position.
    #[test]
    fn one_sample_is_within_half_an_lsb(seed: u64, f in 0..=MAX_FRAC_BITS, g in 0..=MAX_MASK_BITS,
                                        py in -(6i64 << 12)..(10 << 12), px in -(6i64 << 12)..(10 << 12)) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let plane = Array2::from_shape_simple_fn((4, 5), || rng.random::<i8>());
        let fx = fmt(f, g, 0);
        let (py, px) = (py >> (12 - f), px >> (12 - f));
        let s = sample_fixed(plane.view(), py, px, &fx, Border::Zero);
        let scale = f64::from(1u32 << f);
        let v = sample_f64(plane.mapv(f64::from).view(), py as f64 / scale, px as f64 / scale, Border::Zero);
        prop_assert!((f64::from(s) - v).abs() <= 0.5 + 1e-12, "s {} v {}", s, v);
        let m = rng.random_range(0..=(1i32 << g));
        let sm = modulate(s, m, &fx);
        let vm = v * f64::from(m) / f64::from(1u32 << g);
        prop_assert!((f64::from(sm) - vm).abs() <= 1.0 + 1e-12, "s' {} v·m {}", sm, vm);
    }
}

/// A layer with the default geometry, no mask, zero point 0 and `f` fractional bits.
fn unmasked(x: &Array4<i8>, off: &Array4<i32>, w: &Array4<i8>, f: u32) -> Array4<i32> {
    let fx = fmt(f, 0, 0);
    dcnv2_fixed(
        x.view(),
        off.view(),
        None,
        w.view(),
        &Geometry::default(),
        &fx,
    )
    .unwrap()
}

/// Sample of a 3x3 plane at real row `y` (in Q.f), column 1.
fn at_row(plane: ArrayView2<i8>, py: i64, f: u32, zp: i8) -> i8 {
    sample_fixed(plane, py, 1 << f, &fmt(f, 0, zp), Border::Zero)
}

#[test]
fn borders_at_minus_one_and_h() {
    let plane = array![[40i8, 40, 40], [80, 80, 80], [100, 100, 100]];
    let f = 4;
    let one = 1i64 << f;
    let h = 3i64;
    for zp in [0i8, -128, 7] {
        let z = i32::from(zp);
        let r = |py| i32::from(at_row(plane.view(), py, f, zp));
        // y = −1: every weight on row −1 (outside), so the zero point.
        assert_eq!(r(-one), z);
        // y = −1 + ε: row 0 gets weight ε = 1/16. (40 + 15·z)/16, rounded half up.
        assert_eq!(r(-one + 1), (40 + 15 * z + 8).div_euclid(16));
        // y = −1 − ε and y ≤ −2: the zero point.
        assert_eq!(r(-one - 1), z);
        assert_eq!(r(-5 * one), z);
        // y = H − 1: exactly the last row.
        assert_eq!(r((h - 1) * one), 100);
        // y = H − 1 + ε: (15·100 + z)/16.
        assert_eq!(r((h - 1) * one + 1), (1500 + z + 8).div_euclid(16));
        // y = H − ε: (100 + 15·z)/16; y = H: the zero point.
        assert_eq!(r(h * one - 1), (100 + 15 * z + 8).div_euclid(16));
        assert_eq!(r(h * one), z);
        // y = 0: row 0 exactly; y = 0.5: the mean of rows 0 and 1.
        assert_eq!(r(0), 40);
        assert_eq!(r(one / 2), 60);
    }
    // The float sample has the same borders (zero padding).
    let pf = plane.mapv(f64::from);
    for (y, want) in [
        (-1.0, 0.0),
        (-1.0 + 1.0 / 16.0, 2.5),
        (2.0, 100.0),
        (3.0, 0.0),
        (2.0 + 1.0 / 16.0, 93.75),
    ] {
        assert_eq!(sample_f64(pf.view(), y, 1.0, Border::Zero), want, "y = {y}");
    }
    // Columns too: x = −1 + ε and x = W.
    let s = |px| sample_fixed(plane.view(), 0, px, &fmt(f, 0, 0), Border::Zero);
    assert_eq!(s(-one + 8), 20);
    assert_eq!(s(3 * one), 0);
}

#[test]
fn dy_is_read_before_dx() {
    // A 1x1 kernel on a 3x3 image whose pixels are all different: channel 0 of the offset is Δy.
    let x = Array4::from_shape_fn((1, 1, 3, 3), |(_, _, y, x)| (10 * y + x) as i8);
    let w = Array4::from_elem((1, 1, 1, 1), 1i8);
    let mut off = Array4::zeros((1, 2, 3, 3));
    off.slice_mut(s![0, 0, .., ..]).fill(1 << 3); // Δy = +1
    off.slice_mut(s![0, 1, .., ..]).fill(-(2 << 3)); // Δx = −2
    let y = unmasked(&x, &off, &w, 3);
    // Output (0, 2) samples (1, 0) = 10; with the channels swapped it would sample (−2, 3) = 0.
    assert_eq!(y[[0, 0, 0, 2]], 10);
    assert_eq!(y[[0, 0, 1, 2]], 20);
    assert_eq!(y[[0, 0, 2, 2]], 0); // row 3 is outside
    assert_eq!(y[[0, 0, 0, 0]], 0); // column −2 is outside
                                    // Offset groups: channel c uses group c / (Cin/G); group 1's pair starts at channel 2·K.
    let x2 = Array4::from_shape_fn((1, 2, 3, 3), |(_, c, y, x)| (10 * y + x + 50 * c) as i8);
    let w2 = Array4::from_elem((2, 1, 1, 1), 1i8);
    let mut off2 = Array4::zeros((1, 4, 3, 3));
    off2.slice_mut(s![0, 2, .., ..]).fill(1 << 3); // group 1: Δy = +1
    let g = Geometry {
        offset_groups: 2,
        ..Geometry::default()
    };
    let y2 = dcnv2_fixed(x2.view(), off2.view(), None, w2.view(), &g, &fmt(3, 0, 0)).unwrap();
    assert_eq!(y2[[0, 0, 0, 1]], 1); // channel 0, group 0: no offset
    assert_eq!(y2[[0, 1, 0, 1]], 61); // channel 1, group 1: one row down
}

#[test]
fn rounding_ties_go_toward_plus_infinity() {
    // f = 1, halfway between two pixels: 1.5 -> 2 and -1.5 -> -1.
    let p = array![[1i8, 2], [-1, -2]];
    let s = |py, px| sample_fixed(p.view(), py, px, &fmt(1, 0, 0), Border::Zero);
    assert_eq!(s(0, 1), 2);
    assert_eq!(s(2, 1), -1);
    // The weights sum to 2^(2f) at every fraction.
    for f in [0, 1, 5, MAX_FRAC_BITS] {
        for ly in [0, 1, (1 << f) - 1] {
            for lx in [0, (1 << f) / 2, (1 << f) - 1] {
                assert_eq!(
                    corner_weights(ly, lx, &fmt(f, 0, 0)).iter().sum::<i32>(),
                    1 << (2 * f)
                );
            }
        }
    }
    // Modulation ties: s·m/2^g = ±0.5.
    let fx = fmt(0, 4, 0);
    assert_eq!(modulate(1, 8, &fx), 1);
    assert_eq!(modulate(-1, 8, &fx), 0);
    assert_eq!(modulate(-3, 8, &fx), -1); // -1.5 -> -1
    assert_eq!(modulate(-128, 16, &fx), -128); // mask 2^g is 1.0
    assert_eq!(modulate(127, 16, &fx), 127);
    assert_eq!(modulate(-128, 0, &fx), 0); // mask 0
                                           // Positions: floor for negatives.
    let q2 = fmt(2, 0, 0);
    assert_eq!(position(-1, 3, &q2), -1);
    assert_eq!(position(-1, 3, &q2) >> 2, -1);
    assert_eq!(position(2, -9, &q2), -1);
    assert_eq!(position(i64::MAX / 2, 1, &q2), i64::MAX);
}

#[test]
fn the_widest_formats_stay_in_int32() {
    // f = 12 with every corner at −128 and at 127: the sum reaches −2^31 and 127·2^24 + 2^23.
    let f = MAX_FRAC_BITS;
    for v in [-128i8, 127] {
        let p = Array2::from_elem((2, 2), v);
        for (py, px) in [(0, 0), (1 << (f - 1), 1 << (f - 1)), (1, (1 << f) - 1)] {
            assert_eq!(
                sample_fixed(p.view(), py, px, &fmt(f, 0, v), Border::Zero),
                v
            );
        }
    }
    // Positions at the ends of i64 read the zero point without overflowing.
    let p = Array2::from_elem((2, 2), 5i8);
    for f in [0, MAX_FRAC_BITS] {
        for (py, px) in [(i64::MAX, 0), (0, i64::MAX), (i64::MIN, i64::MIN)] {
            assert_eq!(
                sample_fixed(p.view(), py, px, &fmt(f, 0, -7), Border::Zero),
                -7
            );
        }
    }
    // A mask value outside 0..=2^g, called directly, saturates instead of overflowing.
    assert_eq!(modulate(-128, i32::MAX, &fmt(0, 4, 0)), -128);
    assert_eq!(modulate(100, -5, &fmt(0, 4, 0)), 0);
    let g = MAX_MASK_BITS;
    assert_eq!(modulate(-128, 1 << g, &fmt(0, g, 0)), -128);
    assert_eq!(modulate(-128, (1 << g) - 1, &fmt(0, g, 0)), -128);
    assert_eq!(modulate(127, 1 << (g - 1), &fmt(0, g, 0)), 64);
}

#[test]
fn mask_zero_and_mask_one() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let l = random_layer(&mut rng);
    let off = Array4::from_shape_simple_fn(l.offset_shape(), || rng.random_range(-40..40));
    let g = 6;
    let y0 = dcnv2_fixed(
        l.x.view(),
        off.view(),
        Some(Array4::zeros(l.mask_shape()).view()),
        l.w.view(),
        &l.geom,
        &fmt(4, g, 0),
    )
    .unwrap();
    assert!(y0.iter().all(|&v| v == 0));
    let one = Array4::from_elem(l.mask_shape(), 1 << g);
    let y1 = dcnv2_fixed(
        l.x.view(),
        off.view(),
        Some(one.view()),
        l.w.view(),
        &l.geom,
        &fmt(4, g, 0),
    )
    .unwrap();
    let yn = dcnv2_fixed(
        l.x.view(),
        off.view(),
        None,
        l.w.view(),
        &l.geom,
        &fmt(4, g, 0),
    )
    .unwrap();
    assert_eq!(y1, yn);
    assert!(yn.iter().any(|&v| v != 0));
}

#[test]
fn int32_accumulation_wraps() {
    // 131072 products of (−128)·(−128) = 2^31: one past i32::MAX, so the sum wraps to i32::MIN.
    let cin = 131072;
    let x = Array4::from_elem((1, cin, 1, 1), -128i8);
    let mut w = Array4::from_elem((2, cin, 1, 1), -128i8);
    w[[1, cin - 1, 0, 0]] = 127; // output 1: 2^31 − 16384 − 16256, no wrap
    let off = Array4::zeros((1, 2, 1, 1));
    let y = unmasked(&x, &off, &w, 8);
    assert_eq!(y[[0, 0, 0, 0]], i32::MIN);
    assert_eq!(i64::from(y[[0, 1, 0, 0]]), (1i64 << 31) - 16384 - 16256);
}

#[test]
fn bad_inputs_are_errors_that_name_the_problem() {
    let x = Array4::<i8>::zeros((1, 4, 5, 5));
    let w = Array4::<i8>::zeros((2, 4, 3, 3));
    let off = Array4::<i32>::zeros((1, 18, 3, 3));
    let g = Geometry::default();
    let f = fmt(4, 2, 0);
    let run = |x: &Array4<i8>,
               off: &Array4<i32>,
               m: Option<&Array4<i32>>,
               w: &Array4<i8>,
               g: &Geometry| {
        dcnv2_fixed(x.view(), off.view(), m.map(|m| m.view()), w.view(), g, &f)
    };
    assert!(run(&x, &off, None, &w, &g).is_ok());
    // Formats out of range.
    assert!(matches!(
        FixedFormat::new(MAX_FRAC_BITS + 1, 0, 0),
        Err(KernelError::InvalidParameter { .. })
    ));
    assert!(matches!(
        FixedFormat::new(0, MAX_MASK_BITS + 1, 0),
        Err(KernelError::InvalidParameter { .. })
    ));
    // The offset channel count is 2·G·K.
    let e = run(&x, &Array4::zeros((1, 9, 3, 3)), None, &w, &g).unwrap_err();
    assert!(
        e.to_string().contains("2*G*kh*kw") && e.to_string().contains("18"),
        "{e}"
    );
    let e = run(
        &x,
        &off,
        None,
        &w,
        &Geometry {
            offset_groups: 2,
            ..g
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("36"), "{e}");
    // Offset spatial size, batch.
    assert!(run(&x, &Array4::zeros((1, 18, 3, 4)), None, &w, &g).is_err());
    assert!(run(&x, &Array4::zeros((2, 18, 3, 3)), None, &w, &g).is_err());
    // Offset groups that do not divide Cin, and 0.
    for og in [0, 3] {
        let e = run(
            &x,
            &Array4::zeros((1, 18 * og.max(1), 3, 3)),
            None,
            &w,
            &Geometry {
                offset_groups: og,
                ..g
            },
        )
        .unwrap_err();
        assert!(matches!(e, KernelError::InvalidParameter { .. }), "{e}");
    }
    // Weights: Cin/groups not dividing Cin, Cout not a multiple of groups, wrong kernel.
    assert!(run(&x, &off, None, &Array4::zeros((2, 3, 3, 3)), &g).is_err());
    assert!(run(&x, &off, None, &Array4::zeros((3, 2, 3, 3)), &g).is_err());
    assert!(run(&x, &off, None, &Array4::zeros((4, 2, 3, 3)), &g).is_ok()); // groups = 2
    assert!(run(&x, &off, None, &Array4::zeros((2, 4, 3, 2)), &g).is_err());
    // Geometry beyond MAX_EXTENT (positions must stay exact in i64).
    let huge = Geometry {
        padding: [MAX_EXTENT + 1, 0],
        ..g
    };
    assert!(matches!(
        run(&x, &off, None, &w, &huge),
        Err(KernelError::InvalidParameter { .. })
    ));
    // Zero stride or dilation, a kernel larger than the padded input, no channels.
    for (stride, dilation) in [([0, 1], [1, 1]), ([1, 1], [1, 0]), ([1, 1], [3, 1])] {
        let bad = Geometry {
            stride,
            dilation,
            ..g
        };
        assert!(run(&x, &off, None, &w, &bad).is_err(), "{bad:?}");
    }
    assert!(run(&Array4::zeros((1, 0, 5, 5)), &off, None, &w, &g).is_err());
    // Masks: shape, above 2^g (named), negative.
    assert!(run(&x, &off, Some(&Array4::zeros((1, 18, 3, 3))), &w, &g).is_err());
    let mut m = Array4::from_elem((1, 9, 3, 3), 4);
    assert!(run(&x, &off, Some(&m), &w, &g).is_ok());
    m[[0, 8, 2, 1]] = 5;
    let e = run(&x, &off, Some(&m), &w, &g).unwrap_err();
    assert!(
        matches!(&e, KernelError::OutOfRange { index, value: 5, max: 4, .. } if index == &vec![0, 8, 2, 1]),
        "{e}"
    );
    m[[0, 8, 2, 1]] = -1;
    assert!(run(&x, &off, Some(&m), &w, &g).is_err());
    // Huge offsets are not an error: they sample the zero point.
    let far = Array4::from_elem((1, 18, 3, 3), i32::MAX);
    assert!(run(&x, &far, None, &w, &g).unwrap().iter().all(|&v| v == 0));
    let far = Array4::from_elem((1, 18, 3, 3), i32::MIN);
    assert!(run(&x, &far, None, &w, &g).is_ok());
}
