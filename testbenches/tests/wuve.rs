//! The weight-update vector engine (WUVE), co-simulated with Verilator, bit-exact against
//! `sparse_kernels::bdwp::update_element` (fp32 master weights) and `sparse_kernels::fp::to_f16`
//! (their fp16 copy).
//!
//! NaN policy (shared by RTL and reference): every NaN result is the canonical quiet NaN, so the
//! reference is `canon(update_element(..))` and `canon16(to_f16(that))` (`sparse_kernels::fp`).
//!
//! Every vector set is deterministic: random vectors come from `ChaCha8Rng` with the seeds named
//! in each test. Element counts are chosen not to be multiples of the lane counts (1, 3, 4).

use coforge_driver::wuve::{design_spec, update, update_with_gaps};
use coforge_driver::{DriverError, Gaps};
use coforge_generator::engines::wuve::{self, WuveParams};
use coforge_generator::rtl::emit;
use coforge_sim::{BuildOptions, DesignSpec, VerilatedModel, Verilator};
use coforge_testbenches::assert_lint_clean;
use half::f16;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::bdwp::update_element;
use sparse_kernels::fp::{canon, canon16, to_f16};

const TOP: &str = "wuve_top";

/// One element of a job: (w32, dw, keep).
type Elem = (f32, f32, u8);

/// The reference: fp32 and fp16 bits of the updated weight, NaNs canonical.
fn reference(w: f32, dw: f32, keep: u8, lr: f32, lambda: f32) -> (u32, u16) {
    let w32 = canon(update_element(w, dw, keep, lr, lambda));
    let w16 = canon16(to_f16(w32));
    (w32.to_bits(), w16.to_bits())
}

struct Engine {
    p: WuveParams,
    spec: DesignSpec,
    sim: VerilatedModel,
}

impl Engine {
    fn new(lanes: u32) -> Engine {
        Engine::with(WuveParams {
            lanes,
            pipelined: false,
        })
    }

    fn with(p: WuveParams) -> Engine {
        let spec = design_spec(&p, TOP).unwrap();
        let sim = Verilator::build(&spec, &BuildOptions::default())
            .unwrap_or_else(|e| panic!("Verilator build failed: {e}"))
            .instantiate()
            .unwrap_or_else(|e| panic!("cannot load the model: {e}"));
        Engine { p, spec, sim }
    }

    /// Runs one job on the engine and compares every element with the reference.
    fn check(
        &mut self,
        w: &Array2<f32>,
        dw: &Array2<f32>,
        keep: &Array2<u8>,
        lr: f32,
        lambda: f32,
        what: &str,
    ) {
        let got = update(
            &mut self.sim,
            &self.p,
            &self.spec,
            w.view(),
            dw.view(),
            keep.view(),
            lr,
            lambda,
        )
        .unwrap_or_else(|e| panic!("{what}: update failed: {e}"));
        let ctx = format!(
            "{what}: V = {} shape {:?} lr = {lr:e} ({:#010x}) lambda = {lambda:e} ({:#010x})",
            self.p.lanes,
            w.dim(),
            lr.to_bits(),
            lambda.to_bits()
        );
        for ((at, &wv), (&dv, &kv)) in w.indexed_iter().zip(dw.iter().zip(keep.iter())) {
            let (want32, want16) = reference(wv, dv, kv, lr, lambda);
            let (got32, got16) = (got.w32[at].to_bits(), got.w16[at].to_bits());
            assert!(
                got32 == want32 && got16 == want16,
                "{ctx}: element {at:?} w32 = {wv:e} ({:#010x}) dw = {dv:e} ({:#010x}) keep = {kv}: \
                 RTL w32' = {got32:#010x} w16' = {got16:#06x}, reference {want32:#010x} {want16:#06x}",
                wv.to_bits(),
                dv.to_bits()
            );
        }
        let n = w.len() as u64;
        assert_eq!(got.stats.elements, n, "{ctx}");
        // Measured from out_valid, against the engine's model: one cycle off either way fails.
        assert_eq!(
            got.stats.estimated_cycles,
            wuve::estimated_cycles(&self.p, n)
        );
        assert_eq!(got.stats.cycles, got.stats.estimated_cycles, "{ctx}");
    }

    /// Runs a list of elements as one job, laid out as a matrix of `cols` columns when that
    /// divides the count (else one row).
    fn check_elems(&mut self, elems: &[Elem], lr: f32, lambda: f32, what: &str) {
        let n = elems.len();
        let cols = [7, 5, 11]
            .into_iter()
            .find(|c| n.is_multiple_of(*c))
            .unwrap_or(n);
        let dim = (n / cols.max(1), cols);
        let w = Array2::from_shape_vec(dim, elems.iter().map(|e| e.0).collect()).unwrap();
        let dw = Array2::from_shape_vec(dim, elems.iter().map(|e| e.1).collect()).unwrap();
        let keep = Array2::from_shape_vec(dim, elems.iter().map(|e| e.2).collect()).unwrap();
        self.check(&w, &dw, &keep, lr, lambda, what);
    }
}

/// Pads `elems` with random ones so that the count is neither a multiple of 3 nor of 4.
fn odd_count(mut elems: Vec<Elem>, rng: &mut ChaCha8Rng) -> Vec<Elem> {
    while elems.len().is_multiple_of(3) || elems.len().is_multiple_of(4) {
        elems.push((
            magnitude_value(rng, -10, 10),
            magnitude_value(rng, -20, 0),
            rng.random_range(0..2),
        ));
    }
    elems
}

/// A random normal fp32 value `±1.m × 2^e`, `e` in `lo..=hi`.
fn magnitude_value(rng: &mut ChaCha8Rng, lo: i32, hi: i32) -> f32 {
    let e = rng.random_range(lo..=hi);
    let frac: u32 = rng.random_range(0..1 << 23);
    let sign = u32::from(rng.random::<bool>()) << 31;
    f32::from_bits(sign | (((e + 127) as u32) << 23) | frac)
}

fn random_subnormal(rng: &mut ChaCha8Rng) -> f32 {
    let sign = u32::from(rng.random::<bool>()) << 31;
    f32::from_bits(sign | rng.random_range(1..1 << 23))
}

/// Random weights and gradients of several magnitude ranges, random masks.
fn random_magnitudes(e: &mut Engine, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ranges = [
        (-8, 2, -20, -5),
        (-40, 20, -40, 20),
        (-3, 3, -3, 3),
        (0, 10, -30, -10),
    ];
    let rates = [
        (1e-2, 2e-4),
        (0.1, 0.5),
        (3.0, 1e-3),
        (1e-4, 2e-4),
        (-0.25, -2.0),
    ];
    for (i, &(lr, lambda)) in rates.iter().enumerate() {
        let (wl, wh, gl, gh) = ranges[i % ranges.len()];
        let n = 97 + 4 * i;
        let elems: Vec<Elem> = (0..n)
            .map(|_| {
                (
                    magnitude_value(&mut rng, wl, wh),
                    magnitude_value(&mut rng, gl, gh),
                    rng.random_range(0..2),
                )
            })
            .collect();
        e.check_elems(&odd_count(elems, &mut rng), lr, lambda, "random magnitudes");
    }
    // Uniformly random bit patterns everywhere (NaN and inf inputs included; keep any byte).
    for _ in 0..3 {
        let lr = f32::from_bits(rng.random());
        let lambda = f32::from_bits(rng.random());
        let elems: Vec<Elem> = (0..61)
            .map(|_| {
                (
                    f32::from_bits(rng.random()),
                    f32::from_bits(rng.random()),
                    rng.random(),
                )
            })
            .collect();
        e.check_elems(&odd_count(elems, &mut rng), lr, lambda, "random bits");
    }
}

/// Every sign of zero for the weight, the gradient, lr and lambda, with both mask values.
fn zero_signs(e: &mut Engine) {
    // The subtraction's zero-sign rules, checked in Rust first.
    assert_eq!(reference(0.0, 0.0, 1, 1.0, 0.0).0, 0x0000_0000); // (+0) - (+0) = +0
    assert_eq!(reference(-0.0, 0.0, 1, 1.0, 0.0).0, 0x8000_0000); // (-0) - (+0) = -0
    assert_eq!(reference(-0.0, -0.0, 1, 1.0, 0.0).0, 0x0000_0000); // (-0) - (-0) = +0
    assert_eq!(reference(0.0, -0.0, 1, 1.0, 0.0).0, 0x0000_0000); // (+0) - (-0) = +0
    let zeros = [0.0f32, -0.0];
    let mut elems = Vec::new();
    for &w in &zeros {
        for &dw in &zeros {
            for keep in [0u8, 1] {
                elems.push((w, dw, keep));
            }
        }
    }
    // Non-zero weights with zero gradients, and zero weights with non-zero gradients.
    for &z in &zeros {
        for keep in [0u8, 1] {
            elems.push((1.5, z, keep));
            elems.push((-3.0e-5, z, keep));
            elems.push((z, 2.5, keep));
            elems.push((z, -1.0e-30, keep));
        }
    }
    elems.push((1.0, 1.0, 1)); // w - lr*g = 0 exactly when lr = 1
    let elems = odd_count(elems, &mut ChaCha8Rng::seed_from_u64(7));
    for lr in [0.0f32, -0.0, 1.0, -1.0] {
        for lambda in [0.0f32, -0.0, 2e-4, -1.0] {
            e.check_elems(&elems, lr, lambda, "zero signs");
        }
    }
}

/// Subnormal weights, gradients and results.
fn subnormals(e: &mut Engine, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut elems: Vec<Elem> = Vec::new();
    for _ in 0..40 {
        elems.push((
            random_subnormal(&mut rng),
            random_subnormal(&mut rng),
            rng.random_range(0..2),
        ));
        // Normal weights near the bottom of the range with subnormal gradients: results cross
        // the normal/subnormal boundary both ways.
        elems.push((
            magnitude_value(&mut rng, -126, -120),
            random_subnormal(&mut rng),
            rng.random_range(0..2),
        ));
        elems.push((
            random_subnormal(&mut rng),
            magnitude_value(&mut rng, -126, -110),
            rng.random_range(0..2),
        ));
    }
    let min_normal = f32::MIN_POSITIVE;
    elems.push((min_normal, min_normal, 1)); // lr = 0.5: 2^-126 - 2^-127 = 2^-127, subnormal
    elems.push((f32::from_bits(1), f32::from_bits(1), 1)); // tie cases of 0.5 * min subnormal
    elems.push((f32::from_bits(2), f32::from_bits(3), 1));
    elems.push((-f32::from_bits(0x007f_ffff), f32::from_bits(1), 0));
    let elems = odd_count(elems, &mut rng);
    let with_subnormal_result = elems
        .iter()
        .filter(|&&(w, dw, k)| update_element(w, dw, k, 0.5, 0.5).is_subnormal())
        .count();
    assert!(with_subnormal_result > 20, "{with_subnormal_result}");
    for (lr, lambda) in [
        (0.5, 0.5),
        (1.0, 2e-4),
        (0.75, 3.0),
        (0.125, -1.0),
        (3.0e-3, 2e-4),
    ] {
        e.check_elems(&elems, lr, lambda, "subnormals");
    }
}

/// Updated weights that overflow the fp16 range, and weights of extreme fp32 magnitude.
fn fp16_overflow(e: &mut Engine, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut elems: Vec<Elem> = Vec::new();
    for _ in 0..50 {
        let w = rng.random_range(60000.0f32..72000.0);
        let w = if rng.random::<bool>() { -w } else { w };
        elems.push((
            w,
            rng.random_range(-2000.0f32..2000.0),
            rng.random_range(0..2),
        ));
    }
    let below = f32::from_bits(65520.0f32.to_bits() - 1);
    for w in [65504.0, below, 65520.0, 65536.0, 1e30, f32::MAX] {
        for s in [1.0f32, -1.0] {
            elems.push((s * w, 0.0, 1));
            elems.push((s * w, 0.0, 0));
        }
    }
    // g chosen so that w32' lands on 65520 exactly (lr = 1, keep = 1): w - (w - 65520).
    elems.push((65600.0, 80.0, 1));
    elems.push((65440.0, -80.0, 1));
    elems.push((65440.0, -79.99, 1));
    let elems = odd_count(elems, &mut rng);
    let lr1 = &elems;
    assert!(lr1
        .iter()
        .any(|&(w, dw, k)| to_f16(update_element(w, dw, k, 1.0, 2e-4)).is_infinite()));
    for (lr, lambda) in [(1.0, 2e-4), (0.0, 0.0), (1e-3, 0.5), (2.0, 1e-4)] {
        e.check_elems(&elems, lr, lambda, "fp16 overflow");
    }
}

/// fp32 values exactly halfway between two neighbouring fp16 values, positive and negative,
/// normal and subnormal, and the last one before the overflow midpoint.
fn fp16_midpoints(rng: &mut ChaCha8Rng, count: usize) -> Vec<f32> {
    let mut out = Vec::new();
    let mut push = |bits: u16| {
        // bits and bits + 1 are neighbours (same sign, finite); the midpoint needs 12 significand
        // bits at most, so it is exact in fp32 (and in f64).
        let lo = f64::from(f16::from_bits(bits).to_f32());
        let hi = f64::from(f16::from_bits(bits + 1).to_f32());
        let mid = ((lo + hi) / 2.0) as f32;
        assert_eq!(f64::from(mid), (lo + hi) / 2.0);
        out.push(mid);
    };
    for bits in [
        0x0000u16, 0x0001, 0x0002, 0x03fe, 0x03ff, 0x0400, 0x3bff, 0x3c00, 0x3c01, 0x7bfe,
    ] {
        push(bits);
        push(bits | 0x8000);
    }
    for _ in 0..count {
        let b: u16 = rng.random_range(0..0x7bff);
        push(b | if rng.random::<bool>() { 0x8000 } else { 0 });
    }
    out
}

/// Updated weights exactly on fp16 midpoints: lr = 0, or a kept weight with a zero gradient,
/// leave w32' = w32.
fn fp16_halfway(e: &mut Engine, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mids = fp16_midpoints(&mut rng, 60);
    // Each is a real tie: both neighbours are equally far.
    for &m in &mids {
        let h = to_f16(m);
        let d = (f64::from(h.to_f32()) - f64::from(m)).abs();
        let other = f16::from_bits(if f64::from(h.to_f32()).abs() > f64::from(m).abs() {
            h.to_bits() - 1
        } else {
            h.to_bits() + 1
        });
        assert_eq!(d, (f64::from(other.to_f32()) - f64::from(m)).abs(), "{m:e}");
    }
    // Kept weights, zero gradient: g = ±0, u = ±0, w32' = w32.
    let kept: Vec<Elem> = mids
        .iter()
        .map(|&m| (m, if rng.random::<bool>() { 0.0 } else { -0.0 }, 1))
        .collect();
    let kept = odd_count(kept, &mut rng);
    for &(w, dw, k) in &kept[..mids.len()] {
        assert_eq!(update_element(w, dw, k, 0.01, 2e-4).to_bits(), w.to_bits());
    }
    e.check_elems(&kept, 0.01, 2e-4, "fp16 midpoints, kept, dw = 0");
    // lr = 0: any gradient, any mask.
    let any: Vec<Elem> = mids
        .iter()
        .map(|&m| {
            (
                m,
                magnitude_value(&mut rng, -10, 10),
                rng.random_range(0..2),
            )
        })
        .collect();
    e.check_elems(
        &odd_count(any, &mut rng),
        0.0,
        2e-4,
        "fp16 midpoints, lr = 0",
    );
}

/// Cases where a fused multiply-add (`fma(-lr, g, w32)`) differs from the reference's separately
/// rounded `w32 - round(lr * g)`: the RTL must give the unfused bits.
fn no_fusion(e: &mut Engine, seed: u64) {
    let fused = |w: f32, lr: f32, g: f32| (-lr).mul_add(g, w).to_bits();
    let unfused = |w: f32, lr: f32, g: f32| (w - lr * g).to_bits();
    // lr*g = (1+2^-12)^2 = 1 + 2^-11 + 2^-24 rounds (tie, even) to 1 + 2^-11: unfused gives +0,
    // fused -2^-24. keep = 1 makes g = dw + (+0) = dw.
    let lr = 1.0 + 2f32.powi(-12);
    let w = 1.0 + 2f32.powi(-11);
    assert_ne!(fused(w, lr, lr), unfused(w, lr, lr));
    assert_eq!(reference(w, lr, 1, lr, 2e-4).0, 0);
    let mut elems: Vec<Elem> = vec![(w, lr, 1), (-w, -lr, 1)];
    // More, from a seeded search: w close to lr*g so that the product's rounding error survives
    // the cancellation.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    while elems.len() < 60 {
        let g = magnitude_value(&mut rng, -4, 4);
        let p = lr * g;
        let w = f32::from_bits(p.to_bits().wrapping_add(rng.random_range(0..64)));
        if w.is_finite() && fused(w, lr, g) != unfused(w, lr, g) {
            elems.push((w, g, 1));
        }
    }
    for &(w, g, k) in &elems {
        assert_ne!(fused(w, lr, g), unfused(w, lr, g), "{w:e} {g:e}");
        assert_eq!(
            update_element(w, g, k, lr, 2e-4).to_bits(),
            unfused(w, lr, g)
        );
    }
    let elems = odd_count(elems, &mut rng);
    e.check_elems(&elems, lr, 2e-4, "fma would differ");
}

/// Infinite weights and gradients, and NaN inputs: 0 * inf in the decay of a kept weight is NaN.
fn infinities(e: &mut Engine) {
    let inf = f32::INFINITY;
    let mut elems: Vec<Elem> = Vec::new();
    for w in [inf, -inf] {
        for dw in [0.0, -0.0, 1.0, -2.5e-3, inf, -inf] {
            for keep in [0u8, 1] {
                elems.push((w, dw, keep));
            }
        }
    }
    for dw in [inf, -inf] {
        for keep in [0u8, 1] {
            elems.push((1.0, dw, keep));
            elems.push((0.0, dw, keep));
        }
    }
    // NaN inputs with payloads and both signs: canonical NaN out.
    for nan in [0x7fc0_0000u32, 0xffc0_0001, 0x7f80_0001, 0xff80_1234] {
        let nan = f32::from_bits(nan);
        elems.push((nan, 1.0, 1));
        elems.push((nan, 1.0, 0));
        elems.push((2.0, nan, 1));
    }
    assert_eq!(reference(inf, 0.0, 1, 0.1, 2e-4), (0x7fc0_0000, 0x7e00));
    let elems = odd_count(elems, &mut ChaCha8Rng::seed_from_u64(11));
    for (lr, lambda) in [
        (0.1, 2e-4),
        (0.0, 2e-4),
        (0.1, 0.0),
        (-1.0, -0.5),
        (f32::MAX, 2.0),
    ] {
        e.check_elems(&elems, lr, lambda, "infinities and NaNs");
    }
}

fn suite(lanes: u32, seed: u64) {
    run_suite(&mut Engine::new(lanes), seed);
}

fn run_suite(e: &mut Engine, seed: u64) {
    let e = &mut *e;
    random_magnitudes(e, seed);
    zero_signs(e);
    subnormals(e, seed + 1);
    fp16_overflow(e, seed + 2);
    fp16_halfway(e, seed + 3);
    no_fusion(e, seed + 4);
    infinities(e);
}

#[test]
fn one_lane() {
    suite(1, 100);
}

#[test]
fn three_lanes() {
    suite(3, 200);
}

#[test]
fn four_lanes() {
    suite(4, 300);
}

/// The pipelined lane (every fp unit split into its stages, a register after each): the same
/// suite, bit-exact, with its results measured 20 cycles after their input (the estimate, which
/// `check` compares with the measured cycles); then bubbles, as below.
#[test]
fn pipelined_three_lanes() {
    let p = WuveParams {
        lanes: 3,
        pipelined: true,
    };
    assert_eq!(wuve::latency(&p), wuve::PIPELINED_LATENCY);
    let mut e = Engine::with(p);
    run_suite(&mut e, 500);
    gaps_delay_results_but_do_not_change_them(&mut e);
}

/// Random bubbles on `in_valid` (they travel down the pipeline): the same results, and the
/// measured span grows by exactly the bubbles.
#[test]
fn input_gaps_delay_results_but_do_not_change_them() {
    gaps_delay_results_but_do_not_change_them(&mut Engine::new(3));
}

fn gaps_delay_results_but_do_not_change_them(e: &mut Engine) {
    let mut rng = ChaCha8Rng::seed_from_u64(95);
    let dim = (5, 7);
    let w = Array2::from_shape_simple_fn(dim, || magnitude_value(&mut rng, -8, 8));
    let dw = Array2::from_shape_simple_fn(dim, || magnitude_value(&mut rng, -12, 0));
    let keep = Array2::from_shape_simple_fn(dim, || rng.random_range(0..2u8));
    let (w, dw, keep) = (w.view(), dw.view(), keep.view());
    let mut run =
        |gaps| update_with_gaps(&mut e.sim, &e.p, &e.spec, w, dw, keep, 0.01, 2e-4, gaps).unwrap();
    let steady = run(Gaps::NONE);
    for (rate, seed) in [(0.2, 1), (0.6, 2)] {
        let gappy = run(Gaps { rate, seed });
        let bits = |a: &Array2<f32>| a.mapv(f32::to_bits);
        assert_eq!(bits(&gappy.w32), bits(&steady.w32), "rate {rate}");
        assert_eq!(gappy.w16, steady.w16, "rate {rate}");
        let (s, g) = (steady.stats, gappy.stats);
        assert!(g.bubbles > 0, "rate {rate}");
        assert_eq!(g.cycles, s.cycles + g.bubbles, "rate {rate}: {g:?}");
    }
}

#[test]
fn driver_layout_and_bad_jobs() {
    let mut e = Engine::new(3);
    let mut rng = ChaCha8Rng::seed_from_u64(400);
    // Non-contiguous views: the driver streams in logical row-major order.
    let w = Array2::from_shape_simple_fn((5, 7), || magnitude_value(&mut rng, -5, 5));
    let dw = Array2::from_shape_simple_fn((5, 7), || magnitude_value(&mut rng, -15, -5));
    let keep = Array2::from_shape_simple_fn((5, 7), || rng.random_range(0..2u8));
    let got = update(
        &mut e.sim,
        &e.p,
        &e.spec,
        w.t(),
        dw.t(),
        keep.t(),
        0.05,
        2e-4,
    )
    .unwrap();
    for ((r, c), &v) in got.w32.indexed_iter() {
        let want = reference(w[(c, r)], dw[(c, r)], keep[(c, r)], 0.05, 2e-4);
        assert_eq!((v.to_bits(), got.w16[(r, c)].to_bits()), want, "[{r}, {c}]");
    }
    // Shape mismatches.
    let run = |e: &mut Engine, w: &Array2<f32>, dw: &Array2<f32>, k: &Array2<u8>| {
        update(
            &mut e.sim,
            &e.p,
            &e.spec,
            w.view(),
            dw.view(),
            k.view(),
            0.1,
            0.1,
        )
    };
    let z = |r, c| Array2::<f32>::zeros((r, c));
    assert!(matches!(
        run(&mut e, &z(2, 3), &z(3, 2), &Array2::zeros((2, 3))),
        Err(DriverError::Shape(_))
    ));
    assert!(matches!(
        run(&mut e, &z(2, 3), &z(2, 3), &Array2::zeros((2, 4))),
        Err(DriverError::Shape(_))
    ));
    // An empty job needs no cycles; the engine keeps working afterwards.
    let empty = run(&mut e, &z(0, 4), &z(0, 4), &Array2::zeros((0, 4))).unwrap();
    assert_eq!((empty.stats.cycles, empty.w32.dim()), (0, (0, 4)));
    e.check(&w, &dw, &keep, 0.05, 2e-4, "after errors");
}

#[test]
fn generation_is_deterministic() {
    let p = WuveParams {
        lanes: 4,
        pipelined: false,
    };
    assert_eq!(
        emit::render_verilog(&wuve::generate(&p, TOP).unwrap()),
        emit::render_verilog(&wuve::generate(&p, TOP).unwrap())
    );
    let files: Vec<String> = emit::render_verilog(&wuve::generate(&p, TOP).unwrap())
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(
        files,
        [
            "cf_fp32_add_align.v",
            "cf_fp32_add_sum.v",
            "cf_fp32_add_round.v",
            "cf_fp32_mul_prod.v",
            "cf_fp32_mul_lzc.v",
            "cf_fp32_mul_shift.v",
            "cf_fp32_mul_round.v",
            "cf_fp32_to_fp16_shift.v",
            "cf_fp32_to_fp16_round.v",
            "cf_fp32_mul.v",
            "cf_fp32_add.v",
            "cf_fp32_to_fp16.v",
            "wuve_lane.v",
            "wuve_top.v"
        ]
    );
}

/// `verilator --lint-only -Wall` prints nothing for a few lane counts.
#[test]
fn lint_clean() {
    for (lanes, pipelined) in [(1, false), (2, false), (5, false), (1, true), (2, true)] {
        let p = WuveParams { lanes, pipelined };
        assert_lint_clean(
            &emit::render_verilog(&wuve::generate(&p, TOP).unwrap()),
            TOP,
            &format!("{p:?}"),
        );
    }
}
