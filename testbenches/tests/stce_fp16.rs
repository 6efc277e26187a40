//! The fp16 STCE (exact fp16 products, fp32 RNE accumulation in increasing k), co-simulated
//! with Verilator, bit-exact against `sparse-kernels`, dense and N:M sparse.

use coforge_driver::verify::{fp16_gemm, Fp16Outcome, Mode};
use coforge_testbenches::{adversarial_f16, random_f16, Engine};
use half::f16;
use ndarray::Array2;

fn fp16(rows: u32, cols: u32, n: u32, m: u32) -> Engine {
    Engine::stce(rows, cols, n, m, "dtype = \"fp16\"")
}

fn run(e: &Engine, a: &Array2<f16>, b: &Array2<f16>, mode: Mode) -> Fp16Outcome {
    let mut sim = e.verilator();
    let out =
        fp16_gemm(&mut sim, e.cfg(), &e.spec, a.view(), b.view(), mode, None).expect("GEMM runs");
    assert!(out.comparison.bit_exact(), "{mode:?}: {:?}", out.comparison);
    out
}

#[test]
fn random_operands_dense_and_every_sparsity_pattern() {
    for (n, m) in [(2, 4), (2, 8), (1, 16)] {
        let e = fp16(2, 3, n, m);
        let (a, b) = (
            random_f16(5, 3 * m as usize, 1),
            random_f16(3 * m as usize, 4, 2),
        );
        run(&e, &a, &b, Mode::Sparse);
        run(&e, &a, &b, Mode::Dense);
    }
    let e = fp16(3, 2, 4, 4);
    run(
        &e,
        &random_f16(7, 33, 3),
        &random_f16(33, 5, 4),
        Mode::Dense,
    );
}

#[test]
fn adversarial_values_zeros_subnormals_halfway_sums() {
    let e = fp16(3, 4, 2, 4);
    for seed in 0..3 {
        let a = adversarial_f16(6, 64, 10 + seed);
        let b = adversarial_f16(64, 5, 20 + seed);
        run(&e, &a, &b, Mode::Sparse);
        run(&e, &a, &b, Mode::Dense);
    }
}

#[test]
fn accumulation_order_is_increasing_k() {
    // 1 + 2^-24 + 2^-24: in increasing k each tiny term is a halfway case that rounds to even
    // (1.0); summed the other way round they would make 1 + 2^-23. The RTL must give 1.0.
    let e = fp16(1, 1, 4, 4);
    let tiny = f16::from_bits(0x0c00); // 2^-12, squared 2^-24
    let a = Array2::from_shape_vec((1, 4), vec![f16::ONE, tiny, tiny, f16::ZERO]).unwrap();
    let b = Array2::from_shape_vec((4, 1), vec![f16::ONE, tiny, tiny, f16::ZERO]).unwrap();
    let out = run(&e, &a, &b, Mode::Dense);
    assert_eq!(out.rtl[[0, 0]].to_bits(), 1.0f32.to_bits());
}

#[test]
fn signed_zero_results_and_inf_nan_policy() {
    let e = fp16(1, 2, 2, 2);
    // (-0) * 1 summed from +0 gives +0; inf * 0 gives the canonical NaN; inf + -inf too.
    let z = f16::NEG_ZERO;
    let a = Array2::from_shape_vec((2, 2), vec![z, z, f16::INFINITY, f16::ONE]).unwrap();
    let b = Array2::from_shape_vec(
        (2, 2),
        vec![f16::ONE, f16::ZERO, f16::ONE, f16::NEG_INFINITY],
    )
    .unwrap();
    let out = run(&e, &a, &b, Mode::Dense);
    assert_eq!(out.rtl[[0, 0]].to_bits(), 0); // +0
    assert_eq!(out.rtl[[1, 1]].to_bits(), 0x7fc0_0000); // inf*0 + 1*-inf -> NaN, canonical
    assert_eq!(out.rtl[[1, 0]], f32::INFINITY);
}

#[test]
fn nan_operands_are_rejected_with_the_index() {
    let e = fp16(1, 1, 2, 2);
    let mut a = random_f16(2, 4, 1);
    a[[1, 2]] = f16::NAN;
    let b = random_f16(4, 1, 2);
    let mut sim = e.verilator();
    let err = fp16_gemm(
        &mut sim,
        e.cfg(),
        &e.spec,
        a.view(),
        b.view(),
        Mode::Dense,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("NaN at index [1, 2]"), "{err}");
}
