//! Mode A (CoDeNet-exact) at its edges: hand-computed sums, the borders' −128, stride 2 with odd
//! sizes, int4 weights at −8 and 7, the quantizer's ties and clamps, the 24-bit bound, the errors,
//! and mode A against mode B (the same depthwise layer written as DCNv2 with integer offsets).

use ndarray::{array, Array1, Array2, Array3, Array4};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::deform::codenet::{
    self, check_dilation, depthwise_sums, pointwise_sums, quantize, MAX_POINTWISE_CIN,
};
use sparse_kernels::deform::dcnv2::{dcnv2_fixed, FixedFormat, Geometry};
use sparse_kernels::deform::{codenet_block, CodenetBlock, Depthwise, Pointwise, Quantizer};
use sparse_kernels::KernelError;

fn rand_i8(rng: &mut ChaCha8Rng, shape: (usize, usize, usize, usize)) -> Array4<i8> {
    Array4::from_shape_simple_fn(shape, || rng.random())
}

fn rand_int4<D: ndarray::Dimension>(rng: &mut ChaCha8Rng, shape: D) -> ndarray::Array<i8, D> {
    ndarray::Array::from_shape_simple_fn(shape, || rng.random_range(-8..=7))
}

fn quant(c: usize, scale: i16, bias: i16, relu: bool) -> Quantizer {
    Quantizer {
        scale: Array1::from_elem(c, scale),
        bias: Array1::from_elem(c, bias),
        relu,
    }
}

#[test]
fn a_single_pixel_reads_minus_128_on_eight_taps() {
    // 1x1 image, every weight 1: the centre reads 5 and the 8 outside taps read -128.
    let x = Array4::from_elem((1, 1, 1, 1), 5i8);
    let w = Array3::ones((1, 3, 3));
    let acc = depthwise_sums(x.view(), array![[1u8]].view(), w.view(), 1).unwrap();
    assert_eq!(acc[[0, 0, 0, 0]], 5 - 8 * 128);
    // A dilation of 3 in a 3x3 image leaves only the centre inside as well.
    let x = Array4::from_shape_fn((1, 3, 3, 1), |(_, y, x, _)| (10 * y + x) as i8);
    let d = Array2::from_elem((3, 3), 3u8);
    let acc = depthwise_sums(x.view(), d.view(), w.view(), 1).unwrap();
    assert_eq!(acc[[0, 1, 1, 0]], 11 - 8 * 128);
    // Dilation 1 at the centre: every tap inside, the plain sum of the image.
    let d = Array2::from_elem((3, 3), 1u8);
    let acc = depthwise_sums(x.view(), d.view(), w.view(), 1).unwrap();
    assert_eq!(
        acc[[0, 1, 1, 0]],
        (0..3)
            .flat_map(|y| (0..3).map(move |x| 10 * y + x))
            .sum::<i32>()
    );
    // Corner (0, 0) with dilation 1: taps (1..3, 1..3) inside, 5 taps outside.
    assert_eq!(acc[[0, 0, 0, 0]], (1 + 10 + 11) - 5 * 128);
}

#[test]
fn taps_follow_the_weight_layout_and_the_dilation() {
    // One weight set at a time: tap (i, j) must read (cy + d(i-1), cx + d(j-1)).
    let (h, wd) = (9, 9);
    let x = Array4::from_shape_fn((1, h, wd, 1), |(_, y, x, _)| (y * 9 + x) as i8 - 40);
    for d in 1..=4u8 {
        let dil = Array2::from_elem((h, wd), d);
        for i in 0..3 {
            for j in 0..3 {
                let mut w = Array3::zeros((1, 3, 3));
                w[[0, i, j]] = 1;
                let acc = depthwise_sums(x.view(), dil.view(), w.view(), 1).unwrap();
                let (cy, cx) = (4isize, 4isize);
                let (y, xx) = (
                    cy + d as isize * (i as isize - 1),
                    cx + d as isize * (j as isize - 1),
                );
                assert_eq!(
                    acc[[0, 4, 4, 0]],
                    i32::from(x[[0, y as usize, xx as usize, 0]]),
                    "d {d} tap {i},{j}"
                );
            }
        }
    }
}

#[test]
fn stride_2_with_odd_sizes_centres_on_even_pixels() {
    let (h, wd) = (5, 7);
    let x = Array4::from_shape_fn((1, h, wd, 1), |(_, y, x, _)| (y * 7 + x) as i8);
    let mut w = Array3::zeros((1, 3, 3));
    w[[0, 1, 1]] = 1; // the centre tap alone
    let dil = Array2::ones((3, 4));
    let acc = depthwise_sums(x.view(), dil.view(), w.view(), 2).unwrap();
    assert_eq!(
        acc.dim(),
        (1, 3, 4, 1),
        "Hout = ceil(5/2), Wout = ceil(7/2)"
    );
    for oy in 0..3 {
        for ox in 0..4 {
            assert_eq!(acc[[0, oy, ox, 0]], i32::from(x[[0, 2 * oy, 2 * ox, 0]]));
        }
    }
    // The last row's bottom tap (row 5) is outside: the bottom-right weight reads -128.
    let mut w = Array3::zeros((1, 3, 3));
    w[[0, 2, 2]] = 1;
    let acc = depthwise_sums(x.view(), dil.view(), w.view(), 2).unwrap();
    assert_eq!(acc[[0, 2, 0, 0]], -128);
    assert_eq!(acc[[0, 1, 1, 0]], i32::from(x[[0, 3, 3, 0]]));
    // A dilation map of the even-size formula (H >> 1 = 2 rows) is the wrong shape.
    let short = Array2::ones((2, 3));
    assert!(matches!(
        depthwise_sums(x.view(), short.view(), w.view(), 2),
        Err(KernelError::ShapeMismatch { .. })
    ));
}

#[test]
fn extreme_inputs_and_weights_stay_exact() {
    // All -128 inputs: inside and outside taps read the same, so every output is 9·(-128)·w.
    let x = Array4::from_elem((2, 4, 3, 2), -128i8);
    let dil = Array2::from_shape_fn((4, 3), |(y, x)| (1 + (y + x) % 6) as u8);
    for (wv, want) in [(-8i8, 9216), (7, -8064)] {
        let w = Array3::from_elem((2, 3, 3), wv);
        let acc = depthwise_sums(x.view(), dil.view(), w.view(), 1).unwrap();
        assert!(acc.iter().all(|&a| a == want), "w = {wv}");
    }
    // The 1x1 stage at its Cin bound: 8191·1024 = 2^23 − 1024 fits 24 bits.
    let x = Array4::from_elem((1, 1, 1, MAX_POINTWISE_CIN), -128i8);
    let w = Array2::from_elem((2, MAX_POINTWISE_CIN), -8i8);
    let acc = pointwise_sums(x.view(), w.view()).unwrap();
    assert_eq!(acc[[0, 0, 0, 0]], 8191 * 1024);
    assert!(acc[[0, 0, 0, 0]] < 1 << 23);
    let x = Array4::from_elem((1, 1, 1, MAX_POINTWISE_CIN + 1), -128i8);
    let w = Array2::from_elem((2, MAX_POINTWISE_CIN + 1), -8i8);
    let e = pointwise_sums(x.view(), w.view()).unwrap_err();
    assert!(e.to_string().contains("8191"), "{e}");
}

#[test]
fn quantizer_ties_round_toward_plus_infinity() {
    // scale 1: q = floor((acc + 2^15) / 2^16). With bias 128 the zero point cancels, so the
    // returned value is q itself while it lies in [-128, 127].
    let q = |acc| quantize(acc, 1, 128, false);
    assert_eq!(q(1 << 15), 1); // +0.5 -> 1
    assert_eq!(q((1 << 15) - 1), 0); // just below
    assert_eq!(q(-(1 << 15)), 0); // -0.5 -> 0, not -1
    assert_eq!(q(-(1 << 15) - 1), -1); // just below
    assert_eq!(q(3 << 15), 2); // 1.5 -> 2
    assert_eq!(q(-(3 << 15)), -1); // -1.5 -> -1
                                   // With a scale: 3·2^15/3 ... acc·s = 3·2^15 exactly from acc = 2^15, s = 3.
    assert_eq!(quantize(1 << 15, 3, 128, false), 2);
}

#[test]
fn quantizer_clamps_at_both_ends_and_always_subtracts_128() {
    // q = bias for acc = 0; the output is bias - 128, clamped.
    assert_eq!(quantize(0, 1, 0, false), -128);
    assert_eq!(quantize(0, 1, 255, false), 127);
    assert_eq!(quantize(0, 1, 256, false), 127);
    assert_eq!(quantize(0, 1, i16::MAX, false), 127);
    assert_eq!(quantize(0, 1, -1, false), -128);
    assert_eq!(quantize(0, 1, i16::MIN, false), -128);
    // The extremes of the 24-bit sums times the extremes of the int16 scale.
    let (lo, hi) = (-(1 << 23), (1 << 23) - 1);
    assert_eq!(quantize(hi, i16::MAX, 0, false), 127);
    assert_eq!(quantize(lo, i16::MAX, i16::MAX, false), -128);
    assert_eq!(quantize(lo, i16::MIN, i16::MIN, false), 127);
    // (2^23 - 1)·(-2^15) / 2^16 = -2^22 + 0.5 -> -4194303; plus 2^15 - 1 still far below -128.
    assert_eq!(quantize(hi, i16::MIN, i16::MAX, true), -128);
}

proptest! {
    /// ReLU cannot change the output: the −128 is applied either way and clamps negatives.
    #[test]
    fn relu_never_changes_the_output(acc in -(1i32 << 23)..(1 << 23), s: i16, b: i16) {
        prop_assert_eq!(quantize(acc, s, b, true), quantize(acc, s, b, false));
    }

    /// The quantizer against its definition in i64.
    #[test]
    fn quantizer_matches_its_formula(acc in -(1i32 << 23)..(1 << 23), s: i16, b: i16) {
        let q = ((i64::from(acc) * i64::from(s) + (1 << 15)) >> 16) + i64::from(b) - 128;
        prop_assert_eq!(i64::from(quantize(acc, s, b, false)), q.clamp(-128, 127));
    }

    /// Mode A is mode B's depthwise layer with integer offsets `(d−1)·(i−1, j−1)`, padding 1,
    /// zero point −128, in NCHW: two independent loops, one layer.
    #[test]
    fn mode_a_equals_mode_b_with_integer_offsets(
        seed: u64, h in 1usize..7, wd in 1usize..7, c in 1usize..4, stride in 1usize..3,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = rand_i8(&mut rng, (1, h, wd, c));
        let w = rand_int4(&mut rng, ndarray::Ix3(c, 3, 3));
        let (ho, wo) = codenet::out_size(h, wd, stride);
        let dil = Array2::from_shape_simple_fn((ho, wo), || rng.random_range(1..=6u8));
        let a = depthwise_sums(x.view(), dil.view(), w.view(), stride).unwrap();
        let f = rng.random_range(0..=4u32);
        let offset = Array4::from_shape_fn((1, 18, ho, wo), |(_, ch, oy, ox)| {
            let (tap, is_x) = (ch / 2, ch % 2 == 1);
            let t = if is_x { tap % 3 } else { tap / 3 } as i32 - 1;
            (i32::from(dil[[oy, ox]]) - 1) * t * (1 << f)
        });
        let geom = Geometry { stride: [stride; 2], padding: [1, 1], ..Geometry::default() };
        let fmt = FixedFormat::new(f, 0, -128).unwrap();
        let xb = x.view().permuted_axes([0, 3, 1, 2]);
        let wb = w.view().insert_axis(ndarray::Axis(1));
        let b = dcnv2_fixed(xb, offset.view(), None, wb, &geom, &fmt).unwrap();
        prop_assert_eq!(a.view().permuted_axes([0, 3, 1, 2]), b.view());
    }
}

#[test]
fn block_chains_pointwise_then_depthwise() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (h, wd, cin, c) = (5, 4, 3, 6);
    let x = rand_i8(&mut rng, (2, h, wd, cin));
    let pw = Pointwise {
        w: rand_int4(&mut rng, ndarray::Ix2(c, cin)),
        quant: Quantizer {
            scale: Array1::from_shape_simple_fn(c, || rng.random_range(1000..30000)),
            bias: Array1::from_shape_simple_fn(c, || rng.random_range(-20..150)),
            relu: true,
        },
    };
    let dw = Depthwise {
        w: rand_int4(&mut rng, ndarray::Ix3(c, 3, 3)),
        dilation: Array2::from_shape_simple_fn((3, 2), || rng.random_range(1..=6)),
        stride: 2,
        quant: quant(c, 9000, 3, false),
    };
    let both = CodenetBlock {
        pointwise: Some(pw.clone()),
        depthwise: Some(dw.clone()),
    };
    let out = codenet_block(x.view(), &both).unwrap();
    let front = codenet_block(
        x.view(),
        &CodenetBlock {
            pointwise: Some(pw.clone()),
            depthwise: None,
        },
    )
    .unwrap();
    assert_eq!(out.front.as_ref(), Some(&front.y));
    assert_eq!(front.acc, pointwise_sums(x.view(), pw.w.view()).unwrap());
    assert!(front.front.is_none());
    let back = codenet_block(
        front.y.view(),
        &CodenetBlock {
            pointwise: None,
            depthwise: Some(dw.clone()),
        },
    )
    .unwrap();
    assert_eq!(out.y, back.y);
    assert_eq!(out.acc, back.acc);
    assert_eq!(
        out.acc,
        depthwise_sums(front.y.view(), dw.dilation.view(), dw.w.view(), 2).unwrap()
    );
    // Spot-check the quantizer per channel.
    for ((n, y, xx, ch), &a) in out.acc.indexed_iter() {
        assert_eq!(out.y[[n, y, xx, ch]], quantize(a, 9000, 3, false));
    }
    // Not vacuous: the outputs are not all clamped.
    assert!(out.y.iter().any(|&v| v != -128 && v != 127));
}

#[test]
fn bad_inputs_are_errors_that_name_the_problem() {
    let x = Array4::<i8>::zeros((1, 3, 3, 2));
    let w = Array3::<i8>::zeros((2, 3, 3));
    let d = Array2::<u8>::ones((3, 3));
    // A dilation of 0 names the pixel.
    let mut d0 = d.clone();
    d0[[2, 1]] = 0;
    let e = depthwise_sums(x.view(), d0.view(), w.view(), 1).unwrap_err();
    assert!(
        matches!(&e, KernelError::OutOfRange { index, value: 0, .. } if index == &vec![2, 1]),
        "{e}"
    );
    // The engine limit: dmax passes, dmax + 1 fails at the first pixel above it.
    let mut dm = Array2::from_elem((3, 3), 6u8);
    assert!(check_dilation(dm.view(), 6).is_ok());
    dm[[1, 2]] = 7;
    let e = check_dilation(dm.view(), 6).unwrap_err();
    assert!(
        matches!(&e, KernelError::OutOfRange { index, value: 7, max: 6, .. } if index == &vec![1, 2]),
        "{e}"
    );
    // 4-bit weights out of range are errors, not clamps, at both ends.
    for bad in [8i8, -9] {
        let mut wb = w.clone();
        wb[[1, 0, 2]] = bad;
        let e = depthwise_sums(x.view(), d.view(), wb.view(), 1).unwrap_err();
        assert!(
            matches!(&e, KernelError::OutOfRange { index, .. } if index == &vec![1, 0, 2]),
            "{e}"
        );
        let mut pw = Array2::<i8>::zeros((4, 2));
        pw[[3, 1]] = bad;
        assert!(pointwise_sums(x.view(), pw.view()).is_err());
    }
    // Shapes.
    assert!(depthwise_sums(x.view(), d.view(), Array3::zeros((3, 3, 3)).view(), 1).is_err());
    assert!(depthwise_sums(x.view(), Array2::ones((2, 3)).view(), w.view(), 1).is_err());
    assert!(pointwise_sums(x.view(), Array2::zeros((4, 3)).view()).is_err());
    for s in [0, 3] {
        assert!(matches!(
            depthwise_sums(x.view(), d.view(), w.view(), s),
            Err(KernelError::InvalidParameter { .. })
        ));
    }
    // A quantizer with the wrong channel count, and a block with nothing in it.
    let block = CodenetBlock {
        pointwise: None,
        depthwise: Some(Depthwise {
            w,
            dilation: d,
            stride: 1,
            quant: quant(3, 1, 0, false),
        }),
    };
    assert!(codenet_block(x.view(), &block).is_err());
    assert!(codenet_block(x.view(), &CodenetBlock::default()).is_err());
}
