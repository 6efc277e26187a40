//! Whole BDWP training steps on RTL: FF and BP on the sparse fp16 STCE, WU dense on it, the
//! update on the WUVE and pre-generation on the SORE, every tensor of every step bit for bit
//! against the reference.

use coforge_driver::compare::Comparison;
use coforge_generator::config::Config;
use coforge_testbenches::random_f16;
use coforge_trainer::data::spirals;
use coforge_trainer::rtl::{compare_step, RtlBackend};
use coforge_trainer::{
    dense_pattern, lockstep_mlp, pregenerate, train_step_state, MlpConfig, Reference,
};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::bdwp::BdwpConfig;
use sparse_kernels::nm::NmPattern;

fn training_engine(n: u32, m: u32) -> Config {
    Config::from_toml(
        &format!(
            "[stce]\nrows = 2\ncols = 3\ndtype = \"fp16\"\nn = {n}\nm = {m}\n\
             [train]\nsore_lanes = 3\nwuve_lanes = 2\n"
        ),
        "test",
    )
    .unwrap()
}

fn assert_all_exact(comparisons: &[Comparison], what: &str) {
    for c in comparisons {
        assert!(c.bit_exact(), "{what}: {c:?}");
    }
}

fn random_w32(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || rng.random_range(-0.5f32..0.5))
}

fn linear_steps(config: &Config, pattern: NmPattern, steps: usize) {
    let (b, cin, cout) = (8, 32, 16);
    let x = random_f16(b, cin, 1);
    let dy = random_f16(b, cout, 2).mapv(|v| v * half::f16::from_f32(0.25));
    let cfg = BdwpConfig::new(pattern, 0.05);
    let mut rtl = RtlBackend::new(config).expect("engines build");
    let w32 = random_w32(cout, cin, 3);
    let mut golden_state = pregenerate(&mut Reference, w32.clone(), &cfg).unwrap();
    let mut rtl_state = pregenerate(&mut rtl, w32, &cfg).unwrap();
    for step in 0..steps {
        let (g, gn) =
            train_step_state(&mut Reference, &golden_state, x.view(), dy.view(), &cfg).unwrap();
        let (r, rn) = train_step_state(&mut rtl, &rtl_state, x.view(), dy.view(), &cfg).unwrap();
        assert_all_exact(
            &compare_step(&g, &r).unwrap(),
            &format!("{pattern} step {step}"),
        );
        (golden_state, rtl_state) = (gn, rn);
    }
    // Every engine did real work, and the sparse passes were shorter than the dense one.
    let cycles = rtl.cycles_per_pass();
    for pass in ["ff", "bp", "wu", "update"] {
        assert!(
            cycles.get(pass).copied().unwrap_or(0) > 0,
            "{pass}: {cycles:?}"
        );
    }
    if !pattern.is_dense() {
        assert!(cycles["ff"] < cycles["wu"], "{cycles:?}");
        assert!(cycles["prune"] > 0);
    }
}

#[test]
fn linear_layer_three_steps_2_of_8() {
    linear_steps(&training_engine(2, 8), NmPattern::new(2, 8).unwrap(), 3);
}

#[test]
fn linear_layer_2_of_4_and_dense_on_the_same_hardware() {
    let engine = training_engine(2, 4);
    linear_steps(&engine, NmPattern::new(2, 4).unwrap(), 2);
    linear_steps(&engine, dense_pattern(), 2);
}

#[test]
fn mlp_three_steps_bit_exact_on_every_tensor() {
    let pattern = NmPattern::new(2, 8).unwrap();
    let data = spirals(1);
    let mut cfg = MlpConfig::new(BdwpConfig::new(pattern, 0.1), 1);
    cfg.batch = 16;
    let widths = [data.features(), 32, 16];
    let mut rtl = RtlBackend::new(&training_engine(2, 8)).expect("engines build");
    let steps = lockstep_mlp(&mut rtl, &data, &widths, &cfg, 3).unwrap();
    assert_eq!(steps.len(), 3);
    for (step, comparisons) in steps.iter().enumerate() {
        // loss + 4 tensors for each of the 2 layers
        assert_eq!(comparisons.len(), 9);
        assert_all_exact(comparisons, &format!("MLP step {step}"));
    }
    let layers: std::collections::BTreeSet<usize> = rtl.ops.iter().map(|o| o.layer).collect();
    assert_eq!(layers.len(), 2, "cycles are accounted per layer");
}
