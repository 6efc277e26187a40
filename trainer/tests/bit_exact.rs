//! The backend-generic composition (pregenerate, forward, backward, apply_update) equals
//! `sparse_kernels::bdwp::train_step` bit for bit, for every pattern and both M_B sources, over
//! several chained steps.

use coforge_trainer::backend::{Backend, Counting, Pass, Reference};
use coforge_trainer::data::{normal, uniform_sym};
use coforge_trainer::linear::{self, LinearState};
use half::f16;
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sparse_kernels::bdwp::{self, BdwpConfig, MaskBSource, StepOutputs};
use sparse_kernels::fp::to_f16;
use sparse_kernels::nm::NmPattern;

const PATTERNS: [(usize, usize); 8] = [
    (2, 4),
    (4, 8),
    (2, 8),
    (1, 4),
    (1, 8),
    (1, 16),
    (16, 16),
    (1, 1),
];

fn bits32(a: &Array2<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}
fn bits16(a: &Array2<f16>) -> Vec<u16> {
    a.iter().map(|v| v.to_bits()).collect()
}

fn assert_same(name: &str, got: &StepOutputs, want: &StepOutputs) {
    assert_eq!(got.y.dim(), want.y.dim(), "{name}: y shape");
    assert_eq!(bits32(&got.y), bits32(&want.y), "{name}: y");
    assert_eq!(bits32(&got.dx), bits32(&want.dx), "{name}: dx");
    assert_eq!(bits32(&got.dw), bits32(&want.dw), "{name}: dw");
    assert_eq!(bits32(&got.w32), bits32(&want.w32), "{name}: w32");
    for (which, g, w) in [
        ("used", &got.used, &want.used),
        ("next", &got.next, &want.next),
    ] {
        assert_eq!(bits16(&g.w16), bits16(&w.w16), "{name}: {which} w16");
        assert_eq!(g.mask_f, w.mask_f, "{name}: {which} mask_f");
        assert_eq!(g.mask_b, w.mask_b, "{name}: {which} mask_b");
    }
}

/// Random tensors with some exact ties (values drawn from a small fp16 grid) so the tie rule is
/// exercised, plus zeros.
fn tensors(
    seed: u64,
    b: usize,
    cin: usize,
    cout: usize,
) -> (Array2<f16>, Array2<f32>, Array2<f16>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((b, cin), |_| to_f16(normal(&mut rng)));
    let w = Array2::from_shape_fn((cout, cin), |(r, c)| {
        if (r + c) % 7 == 0 {
            // Ties: a coarse grid of magnitudes, signs mixed.
            (uniform_sym(&mut rng, 4.0) * 2.0).round() / 8.0
        } else {
            uniform_sym(&mut rng, 0.5)
        }
    });
    let dy = Array2::from_shape_fn((b, cout), |_| to_f16(0.1 * normal(&mut rng)));
    (x, w, dy)
}

#[test]
fn composition_equals_reference_train_step_for_all_patterns() {
    let (b, cin, cout) = (8, 48, 32);
    for (pi, &(n, m)) in PATTERNS.iter().enumerate() {
        for source in [MaskBSource::ForwardMasked, MaskBSource::Dense] {
            let cfg = BdwpConfig {
                pattern: NmPattern::new(n, m).unwrap(),
                lr: 0.25,
                lambda: 0.5, // large, so the decay on pruned weights visibly matters
                mask_b_source: source,
            };
            let name = format!("{n}:{m} {source:?}");
            let (x, w, dy) = tensors(100 + pi as u64, b, cin, cout);
            let mut backend = Reference;

            // The test data makes the two M_B sources differ (so the comparison can tell them apart).
            if n != m {
                let other = BdwpConfig {
                    mask_b_source: match source {
                        MaskBSource::Dense => MaskBSource::ForwardMasked,
                        MaskBSource::ForwardMasked => MaskBSource::Dense,
                    },
                    ..cfg.clone()
                };
                let a = bdwp::train_step(x.view(), w.view(), dy.view(), &other).unwrap();
                let b = bdwp::train_step(x.view(), w.view(), dy.view(), &cfg).unwrap();
                assert_ne!(
                    a.used.mask_b, b.used.mask_b,
                    "{name}: sources should differ"
                );
            }

            // Single step through the public one-call API.
            let want = bdwp::train_step(x.view(), w.view(), dy.view(), &cfg).unwrap();
            let got =
                linear::train_step(&mut backend, x.view(), w.view(), dy.view(), &cfg).unwrap();
            assert_same(&name, &got, &want);

            // The operands the state carries are the reference's compressed operands.
            let state = linear::pregenerate(&mut backend, w.clone(), &cfg).unwrap();
            assert_eq!(
                state.ff_weights,
                bdwp::ff_operand(&want.used, &cfg).unwrap(),
                "{name}: ff operand"
            );
            assert_eq!(
                state.bp_weights,
                bdwp::bp_operand(&want.used, &cfg).unwrap(),
                "{name}: bp operand"
            );

            // Chained steps with the pieces: the next W16 comes from the backend's update, the
            // reference re-derives it from w32 each step; both must agree at every step.
            let mut state: LinearState = state;
            let mut w_ref = w.clone();
            for step in 0..3 {
                let (x, _, dy) = tensors(1000 * (pi as u64 + 1) + step, b, cin, cout);
                let want = bdwp::train_step(x.view(), w_ref.view(), dy.view(), &cfg).unwrap();
                let y = linear::forward(&mut backend, &state, x.view()).unwrap();
                let (dx, dw) = linear::backward(&mut backend, &state, x.view(), dy.view()).unwrap();
                let next = linear::apply_update(&mut backend, &state, dw.view(), &cfg).unwrap();
                let got = StepOutputs {
                    used: state.masks(),
                    y,
                    dx,
                    dw,
                    w32: next.w32.clone(),
                    next: next.masks(),
                };
                assert_same(&format!("{name} step {step}"), &got, &want);
                assert_eq!(next.ff_weights, bdwp::ff_operand(&want.next, &cfg).unwrap());
                assert_eq!(next.bp_weights, bdwp::bp_operand(&want.next, &cfg).unwrap());
                w_ref = want.w32;
                state = next;
            }
        }
    }
}

#[test]
fn dense_training_bypasses_the_pruning_unit_and_uses_dense_gemms() {
    let cfg = BdwpConfig::new(NmPattern::new(4, 4).unwrap(), 0.1);
    let (x, w, dy) = tensors(7, 4, 16, 16);
    let mut c = Counting::new(Reference);
    let got = linear::train_step(&mut c, x.view(), w.view(), dy.view(), &cfg).unwrap();
    let want = bdwp::train_step(x.view(), w.view(), dy.view(), &cfg).unwrap();
    assert_same("dense", &got, &want);
    assert_eq!(c.work(Pass::Prune).calls, 0);
    // FF, BP and WU each do the full 4*16*16 MACs.
    for p in [Pass::Ff, Pass::Bp, Pass::Wu] {
        assert_eq!(c.work(p).calls, 1, "{p:?}");
        assert_eq!(c.work(p).work, 4 * 16 * 16, "{p:?}");
    }
}

#[test]
fn sparse_passes_shrink_by_n_over_m_and_are_announced() {
    let cfg = BdwpConfig::new(NmPattern::new(2, 8).unwrap(), 0.1);
    let (x, w, dy) = tensors(8, 4, 16, 16);
    let mut c = Counting::new(Reference);
    linear::train_step(&mut c, x.view(), w.view(), dy.view(), &cfg).unwrap();
    assert_eq!(c.work(Pass::Ff).work, 4 * 16 * 16 / 4);
    assert_eq!(c.work(Pass::Bp).work, 4 * 16 * 16 / 4);
    assert_eq!(c.work(Pass::Wu).work, 4 * 16 * 16);
    assert_eq!(c.work(Pass::Update).work, 16 * 16);
    // Two prunes (M_F, M_B) before the step and two after the update.
    assert_eq!(c.work(Pass::Prune).calls, 4);
}

#[test]
fn errors_are_reported_like_the_reference() {
    let cfg = BdwpConfig::new(NmPattern::new(2, 4).unwrap(), 0.1);
    let (x, w, dy) = tensors(9, 4, 16, 16);
    let mut r = Reference;
    let e = linear::train_step(
        &mut r,
        x.view(),
        w.view(),
        dy.slice(ndarray::s![.., ..8]),
        &cfg,
    )
    .unwrap_err();
    assert!(e.to_string().contains("dy is 4x8"), "{e}");
    let mut xn = x.clone();
    xn[[1, 2]] = f16::NAN;
    let e = linear::train_step(&mut r, xn.view(), w.view(), dy.view(), &cfg).unwrap_err();
    assert!(e.to_string().contains("x has a NaN at [1, 2]"), "{e}");
    let bad = BdwpConfig {
        lr: f32::NAN,
        ..cfg.clone()
    };
    assert!(linear::train_step(&mut r, x.view(), w.view(), dy.view(), &bad).is_err());
    let w12 = Array2::<f32>::zeros((16, 12));
    let e = linear::pregenerate(
        &mut r,
        w12,
        &BdwpConfig::new(NmPattern::new(1, 8).unwrap(), 0.1),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("Cin = 12 is not a multiple of M = 8"),
        "{e}"
    );
}

/// A backend whose pruning unit returns the wrong axis is caught with a clear message.
#[test]
fn malformed_backend_results_are_caught() {
    struct Broken;
    impl Backend for Broken {
        fn gemm_nm(
            &mut self,
            a: ndarray::ArrayView2<f16>,
            b: &sparse_kernels::nm::Compressed<f16>,
        ) -> anyhow::Result<Array2<f32>> {
            Reference.gemm_nm(a, b)
        }
        fn gemm(
            &mut self,
            a: ndarray::ArrayView2<f16>,
            b: ndarray::ArrayView2<f16>,
        ) -> anyhow::Result<Array2<f32>> {
            Reference.gemm(a, b)
        }
        fn prune(
            &mut self,
            w: ndarray::ArrayView2<f16>,
            p: NmPattern,
            _axis: usize,
        ) -> anyhow::Result<(sparse_kernels::nm::Compressed<f16>, Array2<u8>)> {
            Reference.prune(w, p, 0)
        }
        fn update(
            &mut self,
            w32: ndarray::ArrayView2<f32>,
            dw: ndarray::ArrayView2<f32>,
            m: ndarray::ArrayView2<u8>,
            lr: f32,
            l: f32,
        ) -> anyhow::Result<(Array2<f32>, Array2<f16>)> {
            Reference.update(w32, dw, m, lr, l)
        }
    }
    let cfg = BdwpConfig::new(NmPattern::new(2, 4).unwrap(), 0.1);
    let e = linear::pregenerate(&mut Broken, Array2::zeros((16, 16)), &cfg).unwrap_err();
    assert!(
        format!("{e:#}").contains("backend prune for M_F returned"),
        "{e:#}"
    );
}
