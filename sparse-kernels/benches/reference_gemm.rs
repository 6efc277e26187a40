//! Throughput of the bit-exact reference GEMMs against ndarray's f32 `.dot()` (BLAS-like, not
//! bit-exact to the contract) on the same shapes. No criterion: median of 5 timed runs, one table.
//!
//! Run: `cargo bench -p sparse-kernels --bench reference_gemm`

mod common;

use std::hint::black_box;
use std::time::Duration;

use half::f16;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::gemm::{gemm, Fp16Arith, IntArith};

use common::median_of_5;

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    println!(
        "{:>13} | {:>14} | {:>14} | {:>14} | {:>10} | {:>10}",
        "shape MxKxN", "int8 GMAC/s", "fp16 GMAC/s", "f32 dot GMAC/s", "int8/dot", "fp16/dot"
    );
    println!("{}", "-".repeat(92));
    for s in [128usize, 256] {
        let macs = (s * s * s) as f64;
        let ai = Array2::from_shape_simple_fn((s, s), || rng.random::<i8>());
        let bi = Array2::from_shape_simple_fn((s, s), || rng.random::<i8>());
        let ah =
            Array2::from_shape_simple_fn((s, s), || f16::from_f32(rng.random_range(-1.0..1.0)));
        let bh =
            Array2::from_shape_simple_fn((s, s), || f16::from_f32(rng.random_range(-1.0..1.0)));
        let af = ah.mapv(f32::from);
        let bf = bh.mapv(f32::from);
        let ti = median_of_5(|| {
            black_box(gemm(&IntArith::default(), ai.view(), bi.view()).unwrap());
        });
        let th = median_of_5(|| {
            black_box(gemm(&Fp16Arith, ah.view(), bh.view()).unwrap());
        });
        let tf = median_of_5(|| {
            black_box(af.dot(&bf));
        });
        let g = |t: Duration| macs / t.as_secs_f64() / 1e9;
        println!(
            "{:>13} | {:>14.3} | {:>14.3} | {:>14.3} | {:>10.3} | {:>10.3}",
            format!("{s}x{s}x{s}"),
            g(ti),
            g(th),
            g(tf),
            g(ti) / g(tf),
            g(th) / g(tf)
        );
    }
}
