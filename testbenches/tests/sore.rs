//! The online pruning unit (SORE), co-simulated with Verilator, bit-exact against
//! `sparse_kernels::nm::{compress, mask}`: kept values, their indices and the mask.

use coforge_driver::sore::{design_spec, prune, prune_with_gaps};
use coforge_driver::{DriverError, Gaps};
use coforge_generator::engines::sore::{self, SoreParams};
use coforge_generator::rtl::emit;
use coforge_sim::{BuildOptions, DesignSpec, VerilatedModel, Verilator};
use coforge_testbenches::assert_lint_clean;
use half::f16;
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::nm::{compress, mask, Magnitude, NmPattern};

const TOP: &str = "sore_top";

struct Unit {
    p: SoreParams,
    spec: DesignSpec,
    sim: VerilatedModel,
}

impl Unit {
    fn new(p: SoreParams) -> Unit {
        let spec = design_spec(&p, TOP).unwrap();
        let sim = Verilator::build(&spec, &BuildOptions::default())
            .unwrap_or_else(|e| panic!("Verilator build failed: {e}"))
            .instantiate()
            .unwrap_or_else(|e| panic!("cannot load the model: {e}"));
        Unit { p, spec, sim }
    }

    fn pattern(&self) -> NmPattern {
        NmPattern::new(self.p.n as usize, self.p.m as usize).unwrap()
    }

    /// Prunes `w` (raw bits in `bits`) on the unit and compares with the reference.
    fn check<T: Magnitude>(
        &mut self,
        w: &Array2<T>,
        bits: impl Fn(T) -> u32,
        axis: usize,
        what: &str,
    ) {
        let pat = self.pattern();
        let want = compress(w.view(), pat, Axis(axis)).expect("reference compresses");
        let want_mask = mask(w.view(), pat, Axis(axis)).expect("reference masks");
        let raw = w.mapv(&bits);
        let got = prune(&mut self.sim, &self.p, &self.spec, raw.view(), Axis(axis))
            .unwrap_or_else(|e| panic!("{what}: prune failed: {e}"));
        let ctx = format!(
            "{what}: {}:{} P = {} axis {axis} shape {:?}",
            self.p.n,
            self.p.m,
            self.p.lanes,
            w.dim()
        );
        assert_eq!(got.values, want.values.mapv(&bits), "{ctx}: values");
        assert_eq!(got.indices, want.indices, "{ctx}: indices");
        assert_eq!(got.mask, want_mask, "{ctx}: mask");
        let groups = (w.len() / pat.m()) as u64;
        assert_eq!(got.stats.groups, groups, "{ctx}");
        // Measured from out_valid, against the unit's model: one cycle off either way fails.
        assert_eq!(
            got.stats.estimated_cycles,
            sore::estimated_cycles(&self.p, groups)
        );
        assert_eq!(got.stats.cycles, got.stats.estimated_cycles, "{ctx}");
    }

    fn check_f16(&mut self, w: &Array2<f16>, axis: usize, what: &str) {
        self.check(w, |x: f16| u32::from(x.to_bits()), axis, what);
    }

    fn check_i8(&mut self, w: &Array2<i8>, axis: usize, what: &str) {
        self.check(w, |x: i8| u32::from(x as u8), axis, what);
    }
}

/// Shape with `lines` lines of `groups_per_line` groups of M along `axis`.
fn shape(m: u32, axis: usize, lines: usize, groups_per_line: usize) -> (usize, usize) {
    let len = groups_per_line * m as usize;
    if axis == 0 {
        (len, lines)
    } else {
        (lines, len)
    }
}

/// Seeded fp16 tensor of uniformly random bit patterns (NaNs turned into infinities): covers
/// subnormals, both zeros, infinities and the largest finite values.
fn random_f16(dim: (usize, usize), seed: u64) -> Array2<f16> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn(dim, || {
        let b: u16 = rng.random();
        let b = if b & 0x7fff > 0x7c00 { b & 0xfc00 } else { b };
        f16::from_bits(b)
    })
}

/// Seeded fp16 tensor drawn from a few edge values, so that groups are full of ties.
fn adversarial_f16(dim: (usize, usize), seed: u64) -> Array2<f16> {
    const BITS: [u16; 12] = [
        0x0000, 0x8000, // +0, -0
        0x0001, 0x8001, // smallest subnormals
        0x03ff, 0x0400, // largest subnormal, smallest normal
        0x3c00, 0xbc00, // ±1
        0x7bff, 0xfbff, // ±65504
        0x7c00, 0xfc00, // ±inf
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn(dim, || {
        f16::from_bits(BITS[rng.random_range(0..BITS.len())])
    })
}

/// Every group made of one magnitude with random signs: all ties.
fn all_equal_f16(dim: (usize, usize), magnitude: u16, seed: u64) -> Array2<f16> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn(dim, || {
        let sign = if rng.random::<bool>() { 0x8000 } else { 0 };
        f16::from_bits(magnitude | sign)
    })
}

/// The fp16 suite, on both axes: ties, equal groups, edge values and random tensors. Group
/// counts are chosen not to be multiples of the lane count (and one job has fewer groups than
/// lanes).
fn fp16_suite(lanes: u32, n: u32, m: u32, seed: u64) {
    let mut u = Unit::new(SoreParams::fp16(lanes, n, m));
    for axis in [0, 1] {
        let s = |lines, gpl| shape(m, axis, lines, gpl);
        u.check_f16(&Array2::from_elem(s(3, 2), f16::ZERO), axis, "all +0");
        u.check_f16(&all_equal_f16(s(5, 1), 0x0000, seed), axis, "+0/-0 mix");
        u.check_f16(&all_equal_f16(s(2, 3), 0x3c00, seed + 1), axis, "±1 only");
        u.check_f16(&all_equal_f16(s(1, 2), 0x7c00, seed + 2), axis, "±inf only");
        u.check_f16(&all_equal_f16(s(3, 1), 0x7bff, seed + 3), axis, "±max only");
        u.check_f16(
            &all_equal_f16(s(1, 1), 0x0001, seed + 4),
            axis,
            "one subnormal group",
        );
        u.check_f16(&adversarial_f16(s(7, 3), seed + 5), axis, "edge values");
        u.check_f16(&random_f16(s(5, 5), seed + 6), axis, "random bits");
        let small =
            random_f16(s(4, 4), seed + 7).mapv(|x| f16::from_f32(x.to_f32().clamp(-4.0, 4.0)));
        u.check_f16(&small, axis, "random small values");
    }
    // Ascending and descending magnitudes within each group: every slot gets evicted at some point.
    let up = Array2::from_shape_fn((2, m as usize), |(r, c)| {
        let k = if r == 0 { c } else { m as usize - 1 - c };
        f16::from_f32(k as f32 * if c % 2 == 0 { 1.0 } else { -1.0 })
    });
    u.check_f16(&up, 1, "monotone groups");
}

#[test]
fn fp16_2_of_4_three_lanes() {
    fp16_suite(3, 2, 4, 10);
}

#[test]
fn fp16_4_of_8_four_lanes() {
    fp16_suite(4, 4, 8, 20);
}

#[test]
fn fp16_2_of_8_four_lanes() {
    fp16_suite(4, 2, 8, 30);
}

#[test]
fn fp16_1_of_4_one_lane() {
    fp16_suite(1, 1, 4, 40);
}

#[test]
fn fp16_1_of_8_three_lanes() {
    fp16_suite(3, 1, 8, 50);
}

#[test]
fn fp16_1_of_16_four_lanes() {
    fp16_suite(4, 1, 16, 60);
}

#[test]
fn fp16_dense_4_of_4_three_lanes() {
    fp16_suite(3, 4, 4, 70);
}

#[test]
fn int8_2_of_4_three_lanes() {
    let mut u = Unit::new(SoreParams::int8(3, 2, 4));
    // |-128| = 128 beats 127 wherever it sits; ties go to the lower index.
    let w = ndarray::array![
        [127i8, -128, 127, 0],
        [-128, 127, -127, 127],
        [127, 127, 127, -128],
        [0, 0, 0, 0],
        [-1, 1, -1, 1],
    ];
    u.check_i8(&w, 1, "-128 vs 127");
    u.check_i8(&w.t().to_owned(), 0, "-128 vs 127, transposed");
    let mut rng = ChaCha8Rng::seed_from_u64(80);
    const VALUES: [i8; 7] = [-128, 127, 0, 1, -1, -127, 64];
    for axis in [0, 1] {
        let adversarial = Array2::from_shape_simple_fn(shape(4, axis, 5, 4), || {
            VALUES[rng.random_range(0..VALUES.len())]
        });
        u.check_i8(&adversarial, axis, "int8 edge values");
        let random = Array2::from_shape_simple_fn(shape(4, axis, 7, 2), || rng.random::<i8>());
        u.check_i8(&random, axis, "int8 random");
    }
}

/// Random bubbles on `in_valid` (the unit holds its state): the same selections, and the
/// measured span grows by exactly the bubbles, since every bubble delays every later value.
#[test]
fn input_gaps_delay_selections_but_do_not_change_them() {
    let mut u = Unit::new(SoreParams::fp16(3, 2, 8));
    let w = random_f16(shape(8, 1, 7, 3), 90).mapv(|x| u32::from(x.to_bits()));
    let steady = prune(&mut u.sim, &u.p, &u.spec, w.view(), Axis(1)).unwrap();
    for (rate, seed) in [(0.2, 1), (0.6, 2)] {
        let gappy = prune_with_gaps(
            &mut u.sim,
            &u.p,
            &u.spec,
            w.view(),
            Axis(1),
            Gaps { rate, seed },
        )
        .unwrap();
        assert_eq!(
            (&gappy.values, &gappy.indices, &gappy.mask),
            (&steady.values, &steady.indices, &steady.mask),
            "rate {rate}"
        );
        let (s, g) = (steady.stats, gappy.stats);
        assert!(g.bubbles > 0, "rate {rate}");
        assert_eq!(g.cycles, s.cycles + g.bubbles, "rate {rate}: {g:?}");
    }
}

#[test]
fn driver_rejects_bad_jobs() {
    let mut u = Unit::new(SoreParams::fp16(1, 1, 2));
    let run = |u: &mut Unit, w: Array2<u32>, axis: usize| {
        prune(&mut u.sim, &u.p, &u.spec, w.view(), Axis(axis))
    };
    assert!(matches!(
        run(&mut u, Array2::zeros((3, 2)), 0),
        Err(DriverError::Shape(_))
    ));
    assert!(matches!(
        run(&mut u, Array2::zeros((2, 2)), 2),
        Err(DriverError::Shape(_))
    ));
    assert!(matches!(
        run(&mut u, Array2::from_elem((2, 2), 0x1_0000), 1),
        Err(DriverError::Shape(_))
    ));
    let nan = Array2::from_shape_vec((1, 2), vec![0x3c00, 0x7e00]).unwrap();
    assert!(matches!(
        run(&mut u, nan, 1),
        Err(DriverError::Unsupported(_))
    ));
    // An empty tensor needs no cycles; the unit keeps working afterwards.
    let empty = run(&mut u, Array2::zeros((0, 4)), 1).unwrap();
    assert_eq!((empty.stats.cycles, empty.values.dim()), (0, (0, 2)));
    u.check_f16(&adversarial_f16((3, 4), 90), 1, "1:2 after errors");
}

#[test]
fn generation_is_deterministic() {
    let p = SoreParams::fp16(4, 2, 8);
    assert_eq!(
        emit::render_verilog(&sore::generate(&p, TOP).unwrap()),
        emit::render_verilog(&sore::generate(&p, TOP).unwrap())
    );
    let files: Vec<String> = emit::render_verilog(&sore::generate(&p, TOP).unwrap())
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(files, ["sore_lane_fp16_n2_m8.v", "sore_top.v"]);
}

/// `verilator --lint-only -Wall` prints nothing for a spread of configurations.
#[test]
fn lint_clean() {
    let configs = [
        SoreParams::fp16(4, 2, 8),
        SoreParams::fp16(3, 4, 8),
        SoreParams::fp16(1, 1, 16),
        SoreParams::fp16(2, 3, 5),
        SoreParams::fp16(2, 4, 4),
        SoreParams::fp16(1, 1, 1),
        SoreParams::int8(3, 2, 4),
        SoreParams::int8(2, 8, 16),
    ];
    for p in configs {
        assert_lint_clean(
            &emit::render_verilog(&sore::generate(&p, TOP).unwrap()),
            TOP,
            &format!("{p:?}"),
        );
    }
}
