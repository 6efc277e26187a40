//! The int8 STCE, co-simulated with Verilator, bit-exact against `sparse-kernels` across
//! sparsity patterns, array shapes, partial tiles and adversarial values.

use coforge_driver::stce::{run_with_gaps, GemmJob, WeightStream};
use coforge_driver::verify::{int8_gemm, Int8Outcome, Mode};
use coforge_driver::Gaps;
use coforge_generator::engines::stce;
use coforge_sim::{BuildOptions, XInitial};
use coforge_testbenches::{adversarial_i8, random_i8, Engine};
use ndarray::Array2;

fn run(engine: &Engine, a: &Array2<i8>, b: &Array2<i8>, mode: Mode) -> Int8Outcome {
    let mut sim = engine.verilator();
    int8_gemm(
        &mut sim,
        engine.cfg(),
        &engine.spec,
        a.view(),
        b.view(),
        mode,
        None,
    )
    .expect("GEMM runs")
}

fn assert_exact(out: &Int8Outcome, what: &str) {
    assert!(out.comparison.bit_exact(), "{what}: {:?}", out.comparison);
}

fn random_gemm(engine: &Engine, rows: usize, k: usize, cols: usize, seed: u64, mode: Mode) {
    let a = random_i8(rows, k, seed);
    let b = random_i8(k, cols, seed + 1000);
    let out = run(engine, &a, &b, mode);
    assert_exact(&out, &format!("{rows}x{k}x{cols} seed {seed} {mode:?}"));
}

#[test]
fn every_sparsity_pattern_sparse_and_dense_mode() {
    for (n, m) in [(2, 4), (4, 8), (2, 8), (1, 4), (1, 8), (1, 16)] {
        let e = Engine::stce(2, 3, n, m, "");
        random_gemm(
            &e,
            5,
            4 * m as usize,
            7,
            n as u64 * 100 + m as u64,
            Mode::Sparse,
        );
        random_gemm(&e, 4, 2 * m as usize + 3, 3, 7, Mode::Dense);
    }
}

#[test]
fn dense_engine() {
    let e = Engine::stce(4, 4, 4, 4, "");
    random_gemm(&e, 9, 40, 6, 11, Mode::Dense);
    let e = Engine::stce(2, 2, 2, 8, "sparse = false");
    random_gemm(&e, 3, 10, 5, 12, Mode::Dense);
}

#[test]
fn tiny_and_non_square_arrays_with_partial_tiles() {
    let e = Engine::stce(1, 1, 2, 8, "");
    random_gemm(&e, 3, 24, 2, 21, Mode::Sparse);
    let e = Engine::stce(3, 5, 2, 4, "");
    random_gemm(&e, 7, 13, 11, 22, Mode::Sparse);
    random_gemm(&e, 1, 1, 1, 23, Mode::Sparse);
    // Short reductions (fewer groups than the array is wide) need bubbles between tiles.
    random_gemm(&e, 10, 4, 12, 24, Mode::Sparse);
}

#[test]
fn adversarial_values_ties_and_extremes() {
    let e = Engine::stce(3, 4, 2, 8, "");
    let a = adversarial_i8(6, 48, 31);
    let b = adversarial_i8(48, 9, 32);
    assert_exact(&run(&e, &a, &b, Mode::Sparse), "adversarial 2:8");
    // -128 * -128 everywhere: the largest product, in every lane.
    let a = Array2::from_elem((4, 64), -128i8);
    let b = Array2::from_elem((64, 4), -128i8);
    let out = run(&e, &a, &b, Mode::Sparse);
    assert_exact(&out, "all -128");
    // K = 64 at 2:8 keeps 16 products per output.
    assert_eq!(out.rtl[[0, 0]], 16 * 16384);
}

#[test]
fn int32_wrap_and_saturate_at_the_edges() {
    // 131072 products of 16384 = 2^31: one past i32::MAX, so wrap gives i32::MIN and
    // saturate gives i32::MAX.
    let k = 131_072;
    let a = Array2::from_elem((1, k), -128i8);
    let b = Array2::from_elem((k, 1), -128i8);
    let wrap = Engine::stce(1, 1, 4, 4, "");
    let out = run(&wrap, &a, &b, Mode::Dense);
    assert_exact(&out, "wrap");
    assert_eq!(out.rtl[[0, 0]], i32::MIN);
    let sat = Engine::stce(1, 1, 4, 4, "overflow = \"saturate\"");
    let out = run(&sat, &a, &b, Mode::Dense);
    assert_exact(&out, "saturate");
    assert_eq!(out.rtl[[0, 0]], i32::MAX);
    // Negative saturation, then recovery: saturation is applied after every addition, so the
    // eight +1 products at the end count in full. (140000 * -16256 < -2^31.)
    let k = 140_000;
    let mut a = Array2::from_elem((1, k + 8), -128i8);
    a.slice_mut(ndarray::s![0, k..]).fill(1);
    let mut b = Array2::from_elem((k + 8, 1), 127i8);
    b.slice_mut(ndarray::s![k.., 0]).fill(1);
    let out = run(&sat, &a, &b, Mode::Dense);
    assert_exact(&out, "saturate low then add");
    assert_eq!(out.rtl[[0, 0]], i32::MIN + 8);
}

#[test]
fn int4_weights() {
    let e = Engine::stce(2, 2, 1, 4, "weight_bits = 4");
    let a = random_i8(5, 32, 41);
    let b = random_i8(32, 3, 42).mapv(|v| v >> 4);
    assert_exact(&run(&e, &a, &b, Mode::Sparse), "int4");
    let b = Array2::from_elem((32, 3), -8i8);
    assert_exact(&run(&e, &a, &b, Mode::Sparse), "int4 -8");
}

#[test]
fn results_do_not_depend_on_uninitialised_state() {
    let e = Engine::stce(2, 3, 2, 4, "");
    let opts = BuildOptions {
        x_initial: XInitial::Unique { seed: 7 },
        ..BuildOptions::default()
    };
    let a = random_i8(5, 16, 51);
    let b = random_i8(16, 4, 52);
    for seed in [1, 2, 3] {
        let lib = coforge_sim::Verilator::build(&e.spec, &opts).expect("build");
        let mut sim = lib.instantiate_with_seed(seed).expect("load");
        let out = int8_gemm(
            &mut sim,
            e.cfg(),
            &e.spec,
            a.view(),
            b.view(),
            Mode::Sparse,
            None,
        )
        .expect("GEMM runs");
        assert_exact(&out, &format!("x-initial unique, seed {seed}"));
    }
}

/// The measured span (first group taken to the last `out_valid` row) equals the protocol's
/// estimate exactly, on shapes where tiles are long, short (the tile-spacing rule adds
/// bubbles), partial, and one tile only: an engine one cycle slower or faster fails this.
#[test]
fn measured_cycles_equal_the_estimate_and_utilization_is_high() {
    let e = Engine::stce(4, 4, 2, 8, "");
    let a = random_i8(16, 256, 61);
    let b = random_i8(256, 16, 62);
    let out = run(&e, &a, &b, Mode::Sparse);
    assert_exact(&out, "16x256x16");
    assert_eq!(
        out.stats.cycles, out.stats.estimated_cycles,
        "{:?}",
        out.stats
    );
    assert_eq!(out.stats.bubbles, 0);
    assert!(out.stats.utilization(e.cfg()) > 0.9, "{:?}", out.stats);

    let e = Engine::stce(3, 5, 2, 4, "");
    for (rows, k, cols, mode) in [
        (10, 4, 12, Mode::Sparse),
        (7, 13, 11, Mode::Sparse),
        (1, 1, 1, Mode::Sparse),
        (6, 9, 10, Mode::Dense),
    ] {
        let out = run(&e, &random_i8(rows, k, 71), &random_i8(k, cols, 72), mode);
        let what = format!("{rows}x{k}x{cols} {mode:?}");
        assert_exact(&out, &what);
        assert_eq!(
            out.stats.cycles,
            stce::estimated_cycles(e.cfg(), rows, k, cols, mode == Mode::Sparse),
            "{what}: {:?}",
            out.stats
        );
    }
}

/// Random bubbles on the input (`in_valid` low, with junk flags): the same bits, and the
/// measured span grows by at most the bubbles inserted.
#[test]
fn input_gaps_delay_results_but_do_not_change_them() {
    let e = Engine::stce(3, 4, 2, 8, "");
    let (rows, k, cols) = (7, 48, 9);
    let (a, b) = (random_i8(rows, k, 81), random_i8(k, cols, 82));
    let steady = run(&e, &a, &b, Mode::Dense);
    assert_exact(&steady, "no gaps");
    let raw = |x: &Array2<i8>| x.mapv(|v| u32::from(v as u8));
    let job = GemmJob {
        a: raw(&a),
        weights: WeightStream::Dense { values: raw(&b) },
    };
    for (rate, seed) in [(0.3, 1), (0.7, 2)] {
        let mut sim = e.verilator();
        let gappy = run_with_gaps(&mut sim, e.cfg(), &e.spec, &job, Gaps { rate, seed })
            .expect("GEMM with gaps runs");
        assert_eq!(gappy.c, steady.rtl.mapv(|v| v as u32), "rate {rate}");
        let (s, g) = (steady.stats, gappy.stats);
        assert_eq!(g.estimated_cycles, s.estimated_cycles);
        assert!(g.bubbles > s.bubbles, "rate {rate}: {g:?}");
        assert!(
            g.cycles > s.cycles && g.cycles <= s.cycles + g.bubbles,
            "rate {rate}: measured {} with gaps, {} without, {} bubbles",
            g.cycles,
            s.cycles,
            g.bubbles
        );
    }
}

/// int8x2 DSP packing (`dsp_packing = "int8x2"`): the results equal the reference bit for bit,
/// with every operand at -128 and 127 (both signs of the lower product, so the WP486 correction
/// is exercised both ways), in sparse and dense mode, on an odd number of rows (the last row
/// unpacked), with saturation and with int4 weights.
#[test]
fn int8x2_dsp_packing_is_bit_exact_at_the_operand_edges() {
    let e = Engine::stce(3, 2, 2, 4, "dsp_packing = \"int8x2\"");
    // Activations and weights from {-128, 127} in a pattern that gives rows of a pair different
    // signs, so each lower product is negative against some upper ones and positive against
    // others.
    let edge = |i: usize, j: usize, salt: usize| {
        if (i * 7 + j * 3 + salt).is_multiple_of(3) {
            -128i8
        } else {
            127
        }
    };
    let a = Array2::from_shape_fn((7, 24), |(i, j)| edge(i, j, 1));
    let b = Array2::from_shape_fn((24, 5), |(i, j)| edge(i, j, 2));
    for mode in [Mode::Sparse, Mode::Dense] {
        assert_exact(&run(&e, &a, &b, mode), &format!("edges {mode:?}"));
    }
    for (x, w) in [(-128i8, -128i8), (-128, 127), (127, -128), (127, 127)] {
        let a = Array2::from_elem((4, 16), x);
        let b = Array2::from_elem((16, 2), w);
        let out = run(&e, &a, &b, Mode::Sparse);
        assert_exact(&out, &format!("all {x} x {w}"));
        // K = 16 at 2:4 keeps 8 products per output.
        assert_eq!(out.rtl[[1, 0]], 8 * i32::from(x) * i32::from(w));
    }
    random_gemm(&e, 6, 40, 5, 71, Mode::Sparse);
    let sat = Engine::stce(
        2,
        2,
        4,
        4,
        "dsp_packing = \"int8x2\"\noverflow = \"saturate\"",
    );
    let a = adversarial_i8(4, 32, 72);
    let b = adversarial_i8(32, 3, 73);
    assert_exact(&run(&sat, &a, &b, Mode::Dense), "saturate");
    let int4 = Engine::stce(2, 2, 1, 4, "dsp_packing = \"int8x2\"\nweight_bits = 4");
    let b = Array2::from_shape_fn(
        (32, 3),
        |(i, j)| if (i + j).is_multiple_of(2) { -8i8 } else { 7 },
    );
    assert_exact(&run(&int4, &a, &b, Mode::Sparse), "int4 weights");
}
