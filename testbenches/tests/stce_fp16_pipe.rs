//! The fp16 STCE with the fp32 adder pipeline (`fp_pipeline = true`): every product and every
//! fp32 add of a PE registered, N sums in flight per PE, N tiles streamed round-robin. It must
//! give the bits of `sparse-kernels` (each output adds its products in increasing k, one RNE
//! add at a time) and show its last result exactly when `engines::stce::estimated_cycles` says.

use coforge_driver::stce::run_with_gaps;
use coforge_driver::verify::{fp16_gemm_with, Fp16Outcome, Mode};
use coforge_driver::Gaps;
use coforge_generator::engines::stce;
use coforge_testbenches::{adversarial_f16, assert_lint_clean, random_f16, Engine};
use half::f16;
use ndarray::Array2;

fn pipelined(rows: u32, cols: u32, n: u32, m: u32) -> Engine {
    Engine::stce(rows, cols, n, m, "dtype = \"fp16\"\nfp_pipeline = true")
}

fn run(e: &Engine, a: &Array2<f16>, b: &Array2<f16>, mode: Mode, gaps: Gaps) -> Fp16Outcome {
    let mut sim = e.verilator();
    let mut runner = |job: &_| run_with_gaps(&mut sim, e.cfg(), &e.spec, job, gaps);
    let out =
        fp16_gemm_with(&mut runner, e.cfg(), a.view(), b.view(), mode, None).expect("GEMM runs");
    assert!(
        out.comparison.bit_exact(),
        "{mode:?}, {gaps:?}: {:?}",
        out.comparison
    );
    out
}

#[test]
fn bit_exact_sparse_and_dense_with_partial_tiles_edges_and_bubbles() {
    let e = pipelined(2, 2, 2, 8);
    assert_eq!(stce::slots(e.cfg()), 6, "3 stages per adder, 2 adders");
    // 5 x 40 x 3 on a 2 x 2 array: partial tiles in both directions, 5 groups of 8 (sparse) or
    // 20 of 2 (dense) per tile.
    for seed in 0..2 {
        for (a, b) in [
            (random_f16(5, 40, seed), random_f16(40, 3, 10 + seed)),
            (
                adversarial_f16(5, 40, 20 + seed),
                adversarial_f16(40, 3, 30 + seed),
            ),
        ] {
            for mode in [Mode::Sparse, Mode::Dense] {
                run(&e, &a, &b, mode, Gaps::NONE);
                let gaps = Gaps {
                    rate: 0.3,
                    seed: 40 + seed,
                };
                let out = run(&e, &a, &b, mode, gaps);
                assert!(out.stats.bubbles > 0, "{mode:?}: no bubbles drawn");
            }
        }
    }
}

#[test]
fn bit_exact_on_a_dense_engine_with_four_slots() {
    // N = 4: four adders of three stages, twelve sums in flight per PE.
    let e = pipelined(2, 3, 4, 4);
    assert_eq!(stce::slots(e.cfg()), 12, "3 stages per adder, 4 adders");
    let (a, b) = (adversarial_f16(7, 36, 1), adversarial_f16(36, 8, 2));
    run(&e, &a, &b, Mode::Dense, Gaps::NONE);
    run(&e, &a, &b, Mode::Dense, Gaps { rate: 0.5, seed: 3 });
}

#[test]
fn order_signed_zeros_infinities_and_nan_policy() {
    let e = pipelined(1, 2, 2, 2);
    // 1 + 2^-24 + 2^-24 in increasing k rounds to 1.0 at each step (ties to even); the other
    // order would give 1 + 2^-23. -0 * 1 summed from +0 gives +0; -0 + -0 stays out of reach
    // (every sum starts at +0). inf * 0 and inf + -inf give the canonical NaN; 65504 * 65504
    // - 65504 * 65504 cancels exactly to +0.
    let tiny = f16::from_bits(0x0c00);
    let big = f16::from_bits(0x7bff);
    let a = Array2::from_shape_vec(
        (4, 4),
        vec![
            f16::ONE,
            tiny,
            tiny,
            f16::ZERO,
            f16::NEG_ZERO,
            f16::NEG_ZERO,
            f16::NEG_ZERO,
            f16::NEG_ZERO,
            f16::INFINITY,
            f16::ONE,
            f16::ZERO,
            f16::ZERO,
            big,
            big,
            f16::ZERO,
            f16::ZERO,
        ],
    )
    .unwrap();
    let b = Array2::from_shape_vec(
        (4, 2),
        vec![
            f16::ONE,
            f16::ZERO,
            tiny,
            f16::NEG_INFINITY,
            tiny,
            f16::ONE,
            f16::ZERO,
            f16::ONE,
        ],
    )
    .unwrap();
    let mut b_cancel = b.clone();
    b_cancel[[0, 1]] = big;
    b_cancel[[1, 1]] = -big;
    let out = run(&e, &a, &b_cancel, Mode::Dense, Gaps::NONE);
    assert_eq!(out.rtl[[0, 0]].to_bits(), 1.0f32.to_bits());
    assert_eq!(out.rtl[[1, 0]].to_bits(), 0); // +0
    assert_eq!(out.rtl[[3, 1]].to_bits(), 0); // big*big - big*big = +0
    let out = run(&e, &a, &b, Mode::Dense, Gaps::NONE);
    assert_eq!(out.rtl[[2, 1]].to_bits(), 0x7fc0_0000); // inf*0 + 1*-inf: canonical NaN
    assert_eq!(out.rtl[[2, 0]], f32::INFINITY);
}

#[test]
fn measured_cycles_equal_the_estimate() {
    // Fewer tiles than slots, one tile, short tiles (fewer groups than the tile spacing) and
    // long ones, sparse and dense: the last result row appears exactly when the protocol says.
    let e = pipelined(2, 2, 2, 8);
    let spacing = stce::tile_spacing(e.cfg());
    for (rows, k, cols) in [
        (1, 8, 1),
        (2, 8, 2),
        (2, 8, 4),
        (5, 16, 3),
        (6, 64, 6),
        (4, 200, 2),
    ] {
        let (a, b) = (random_f16(rows, k, 5), random_f16(k, cols, 6));
        for mode in [Mode::Sparse, Mode::Dense] {
            let out = run(&e, &a, &b, mode, Gaps::NONE);
            assert_eq!(
                out.stats.cycles, out.stats.estimated_cycles,
                "{rows}x{k}x{cols} {mode:?} (spacing {spacing}): measured against estimated"
            );
        }
    }
    let e = pipelined(3, 2, 4, 4);
    for (rows, k, cols) in [(7, 4, 5), (9, 48, 4)] {
        let (a, b) = (random_f16(rows, k, 7), random_f16(k, cols, 8));
        let out = run(&e, &a, &b, Mode::Dense, Gaps::NONE);
        assert_eq!(
            out.stats.cycles, out.stats.estimated_cycles,
            "{rows}x{k}x{cols}"
        );
    }
}

#[test]
fn the_pipelined_array_lints_clean_and_synthesizes() {
    let e = pipelined(2, 2, 2, 8);
    let files: Vec<(String, String)> = e.rendered.verilog.clone();
    let top = &e.cfg().top;
    assert_lint_clean(&files, top, "fp16 2x2 2:8 pipelined");
    assert!(
        !e.rendered.tops.iter().any(|t| t.wraps.is_some()),
        "a pipelined STCE has no AXI wrapper"
    );
    let stat = coforge_testbenches::synth_xilinx_cells(&files, top, "fp16 2x2 2:8 pipelined");
    let ffs = coforge_testbenches::cell_count(&stat, "FDRE");
    assert!(ffs > 0, "no flip-flops?\n{stat:?}");
}
