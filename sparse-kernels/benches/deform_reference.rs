//! Throughput of the bit-exact deformable reference on CoDeNet's published layer: a 64×64 feature
//! map with 256 channels, depthwise 3×3. One row each for plain depthwise (every dilation 1),
//! codenet mode with random dilations in [1, 6], the full CoDeNet block (1×1 256→256 in front), and
//! DCNv2 depthwise with random Q.4 offsets within ±6 pixels, without and with a Q0.8 mask. MACs are
//! the convolution's multiply-adds (9 per output for the depthwise layers; the bilinear sampling
//! of DCNv2 is work on top of them). Median of 5 timed runs, one table, ratios to plain.
//!
//! Run: `cargo bench -p sparse-kernels --bench deform_reference`

mod common;

use std::hint::black_box;

use ndarray::{Array1, Array2, Array3, Array4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::deform::codenet::{
    codenet_block, CodenetBlock, Depthwise, Pointwise, Quantizer,
};
use sparse_kernels::deform::dcnv2::{dcnv2_fixed, FixedFormat, Geometry};

use common::median;

const H: usize = 64;
const W: usize = 64;
const C: usize = 256;

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let quant = |rng: &mut ChaCha8Rng| Quantizer {
        scale: Array1::from_shape_simple_fn(C, || rng.random_range(1000..20000)),
        bias: Array1::from_shape_simple_fn(C, || rng.random_range(0..128)),
        relu: true,
    };
    let x_nhwc = Array4::from_shape_simple_fn((1, H, W, C), || rng.random::<i8>());
    let w_dw = Array3::from_shape_simple_fn((C, 3, 3), || rng.random_range(-8i8..=7));
    let depthwise = |dilation: Array2<u8>, rng: &mut ChaCha8Rng| Depthwise {
        w: w_dw.clone(),
        dilation,
        stride: 1,
        quant: quant(rng),
    };
    let plain = CodenetBlock {
        pointwise: None,
        depthwise: Some(depthwise(Array2::ones((H, W)), &mut rng)),
    };
    let random_dil = Array2::from_shape_simple_fn((H, W), || rng.random_range(1..=6u8));
    let codenet = CodenetBlock {
        pointwise: None,
        depthwise: Some(depthwise(random_dil.clone(), &mut rng)),
    };
    let block = CodenetBlock {
        pointwise: Some(Pointwise {
            w: Array2::from_shape_simple_fn((C, C), || rng.random_range(-8i8..=7)),
            quant: quant(&mut rng),
        }),
        depthwise: Some(depthwise(random_dil, &mut rng)),
    };

    let x_nchw = x_nhwc
        .view()
        .permuted_axes([0, 3, 1, 2])
        .as_standard_layout()
        .into_owned();
    let w_b = w_dw.view().insert_axis(ndarray::Axis(1)).to_owned();
    let f = 4;
    let offset =
        Array4::from_shape_simple_fn((1, 18, H, W), || rng.random_range(-(6 << f)..=(6 << f)));
    let mask = Array4::from_shape_simple_fn((1, 9, H, W), || rng.random_range(0..=256));
    let geom = Geometry {
        padding: [1, 1],
        ..Geometry::default()
    };
    let fmt = FixedFormat::new(f, 8, 0).expect("f = 4, g = 8 are in range");

    let dw_macs = (H * W * C * 9) as f64;
    let rows: Vec<(&str, f64, std::time::Duration)> = vec![
        (
            "plain depthwise (dilation 1)",
            dw_macs,
            median(5, || {
                black_box(codenet_block(x_nhwc.view(), &plain).unwrap());
            }),
        ),
        (
            "codenet, dilations in [1, 6]",
            dw_macs,
            median(5, || {
                black_box(codenet_block(x_nhwc.view(), &codenet).unwrap());
            }),
        ),
        (
            "codenet block, 1x1 + depthwise",
            dw_macs + (H * W * C * C) as f64,
            median(5, || {
                black_box(codenet_block(x_nhwc.view(), &block).unwrap());
            }),
        ),
        (
            "dcnv2 depthwise, Q.4 offsets",
            dw_macs,
            median(5, || {
                black_box(
                    dcnv2_fixed(x_nchw.view(), offset.view(), None, w_b.view(), &geom, &fmt)
                        .unwrap(),
                );
            }),
        ),
        (
            "dcnv2 depthwise, offsets + mask",
            dw_macs,
            median(5, || {
                black_box(
                    dcnv2_fixed(
                        x_nchw.view(),
                        offset.view(),
                        Some(mask.view()),
                        w_b.view(),
                        &geom,
                        &fmt,
                    )
                    .unwrap(),
                );
            }),
        ),
    ];
    println!("reference on the published layer: {H}x{W} feature map, {C} channels, 3x3 depthwise");
    println!(
        "{:>32} | {:>10} | {:>11} | {:>12} | {:>14}",
        "layer", "MMAC", "median ms", "MMAC/s", "time / plain"
    );
    println!("{}", "-".repeat(92));
    let plain_t = rows[0].2.as_secs_f64();
    for (name, macs, t) in &rows {
        let s = t.as_secs_f64();
        println!(
            "{name:>32} | {:>10.2} | {:>11.2} | {:>12.1} | {:>14.2}",
            macs / 1e6,
            s * 1e3,
            macs / s / 1e6,
            s / plain_t
        );
    }
}
