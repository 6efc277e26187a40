//! The int8 STCE, co-simulated with Verilator, bit-exact against `sparse-kernels`.

use coforge_driver::verify::{int8_gemm, Mode};
use coforge_testbenches::{adversarial_i8, random_i8, Engine};

fn check(engine: &Engine, rows: usize, k: usize, cols: usize, seed: u64, mode: Mode) {
    let mut sim = engine.verilator();
    let a = random_i8(rows, k, seed);
    let b = random_i8(k, cols, seed + 1);
    let out = int8_gemm(
        &mut sim,
        engine.cfg(),
        &engine.spec,
        a.view(),
        b.view(),
        mode,
        None,
    )
    .expect("GEMM runs");
    assert!(
        out.comparison.bit_exact(),
        "{rows}x{k}x{cols} seed {seed}: {:?}",
        out.comparison
    );
}

#[test]
fn default_2_of_8_random() {
    let e = Engine::stce(4, 4, 2, 8, "");
    check(&e, 8, 64, 8, 1, Mode::Sparse);
    check(&e, 5, 37, 7, 2, Mode::Sparse);
    check(&e, 8, 64, 8, 3, Mode::Dense);
}
