//! Training-step benchmark: one BDWP step of a linear layer on the RTL training engines, dense
//! against every N:M pattern on the same 4 x 4 array, each run bit-exact against the reference.
//!
//! Run: `cargo bench -p coforge-testbenches --bench training`
//!
//! Per pattern it builds the engine with that N:M (same array, same lanes), runs one step dense
//! (N = M on the same hardware) and one step sparse, and prints the modelled step cycles of the
//! offline schedule (`coforge_trainer::schedule`: each engine's cycles measured alone in
//! co-simulation from its out_valid, update and pruning overlapped as modelled there), the same
//! model over the engines' estimates, the speedup beside the ideal 3/(1+2N/M) and the published
//! 1.75x at 2:8, and how much of the SORE and WUVE time hides under STCE time.

use coforge_generator::config::Config;
use coforge_testbenches::random_f16;
use coforge_trainer::rtl::{compare_step, RtlBackend};
use coforge_trainer::schedule::{schedule_step, StepSchedule};
use coforge_trainer::{dense_pattern, pregenerate, train_step_state, Reference};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::bdwp::BdwpConfig;
use sparse_kernels::nm::NmPattern;

const ROWS: u32 = 4;
const COLS: u32 = 4;
const LANES: u32 = 8;
const BATCH: usize = 64;
const CIN: usize = 64;
const COUT: usize = 64;

fn step(rtl: &mut RtlBackend, pattern: NmPattern) -> StepSchedule {
    let x = random_f16(BATCH, CIN, 1);
    let dy = random_f16(BATCH, COUT, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let w32 = Array2::from_shape_simple_fn((COUT, CIN), || rng.random_range(-0.5f32..0.5));
    let cfg = BdwpConfig::new(pattern, 0.01);
    let golden_state = pregenerate(&mut Reference, w32.clone(), &cfg).unwrap();
    let rtl_state = pregenerate(rtl, w32, &cfg).unwrap();
    let first = rtl.ops.len();
    let (g, _) =
        train_step_state(&mut Reference, &golden_state, x.view(), dy.view(), &cfg).unwrap();
    let (r, _) = train_step_state(rtl, &rtl_state, x.view(), dy.view(), &cfg).unwrap();
    for c in compare_step(&g, &r).unwrap() {
        assert!(c.bit_exact(), "{pattern}: {c:?}");
    }
    schedule_step(&rtl.ops[first..], ROWS as usize)
}

fn main() {
    println!(
        "# Training-step benchmark (coforge {})",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "\nOne BDWP step of a {COUT} x {CIN} linear layer, batch {BATCH}, on a {ROWS} x {COLS} fp16 \
         STCE with a {LANES}-lane SORE and a {LANES}-lane WUVE. Every step bit-exact on every tensor.\n"
    );
    println!("| N:M | dense step (from estimates) | sparse step (from estimates) | speedup | ideal 3/(1+2N/M) | of ideal | published (SAT, 2:8) | sparse STCE | update + prune | hidden | speedup, no overlap |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (n, m) in [(2, 4), (4, 8), (2, 8), (1, 4), (1, 8), (1, 16)] {
        let config = Config::from_toml(
            &format!(
                "[stce]\nrows = {ROWS}\ncols = {COLS}\ndtype = \"fp16\"\nn = {n}\nm = {m}\n\
                 [train]\nsore_lanes = {LANES}\nwuve_lanes = {LANES}\n"
            ),
            "bench",
        )
        .unwrap();
        let mut rtl = RtlBackend::new(&config).expect("engines build");
        let pattern = NmPattern::new(n, m).unwrap();
        let dense = step(&mut rtl, dense_pattern());
        let sparse = step(&mut rtl, pattern);
        let speedup = dense.step_cycles as f64 / sparse.step_cycles as f64;
        let ideal = 3.0 / (1.0 + 2.0 * n as f64 / m as f64);
        println!(
            "| {n}:{m} | {} ({}) | {} ({}) | {speedup:.3}x | {ideal:.3}x | {:.1}% | {} | {} | {} | {:.1}% | {:.3}x |",
            dense.step_cycles,
            dense.estimated_step_cycles,
            sparse.step_cycles,
            sparse.estimated_step_cycles,
            100.0 * speedup / ideal,
            if (n, m) == (2, 8) { "1.75x" } else { "" },
            sparse.tensor_cycles,
            sparse.update_cycles + sparse.prune_cycles,
            100.0 * sparse.hidden_fraction,
            dense.sequential_cycles as f64 / sparse.sequential_cycles as f64,
        );
    }
    println!(
        "\nStep cycles are modelled: each engine's cycles are measured alone in co-simulation \
         (first input taken to last out_valid), and the update and pre-generation are overlapped \
         with the STCE by the offline schedule model (coforge_trainer::schedule). In brackets: \
         the same model over the engines' estimated cycles. The last column runs the engines one \
         after the other."
    );
}
