//! Signed shapes and the combinational `case` of the RTL layer, as simulators see them: the
//! printed `$signed(a) < $signed(b)`, `{$signed(a) >>> i}`, sign extension, and a `case` with a
//! default agree with Rust's i8/i16 arithmetic in Verilator and Icarus, and lint clean.

use coforge_driver::design::sim_ports;
use coforge_generator::rtl::{case, emit, set, Expr, ModuleBuilder, ModuleDef};
use coforge_sim::{DesignSpec, Stimulus};
use coforge_testbenches::{assert_lint_clean, run_in_both_simulators};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Combinational signed operations on 8-bit `a`, `b` and a 3-bit shift `i`.
fn signed_ops() -> ModuleDef {
    ModuleBuilder::build("signed_ops", |b| {
        // The simulators need a clock; `unused_*` tells Verilator the logic does not use it.
        b.input("unused_clk", 1, "");
        let a = b.input("a", 8, "").as_signed();
        let bb = b.input("b", 8, "").as_signed();
        let i = b.input("i", 3, "");
        let lt = b.output("lt", 1, "");
        let gt = b.output("gt", 1, "");
        let shr = b.output("shr", 8, "");
        let sum = b.output("sum", 16, "");
        let product = b.output("product", 16, "");
        let pick = b.output_reg("pick", 8, "");
        b.drive(&lt, a.lt(&bb));
        b.drive(&gt, a.gt(&bb));
        // Inside a wider unsigned expression, the arithmetic shift must stay arithmetic.
        let shifted = a.shr(&i).add(&Expr::signed_lit(0, 8));
        b.drive(&shr, shifted.as_unsigned());
        b.drive(&sum, a.resize(16).add(&bb.resize(16)).as_unsigned());
        b.drive(&product, a.resize(16).mul(&bb.resize(16)).as_unsigned());
        b.combinational(vec![case(
            i.clone(),
            vec![
                (0, vec![set(&pick, a.as_unsigned())]),
                (5, vec![set(&pick, bb.as_unsigned())]),
            ],
            vec![set(&pick, Expr::lit(0x5a, 8))],
        )]);
    })
}

fn files(def: &ModuleDef) -> Vec<(String, String)> {
    vec![(emit::file_name(def), emit::module_file(def, "test"))]
}

#[test]
fn signed_operations_match_rust_in_both_simulators() {
    let def = signed_ops();
    let text = files(&def);
    assert_lint_clean(&text, "signed_ops", "signed operations");
    let spec = DesignSpec {
        top: "signed_ops".into(),
        sources: text,
        ports: sim_ports(def.ports(), "unused_clk"),
        clock: "unused_clk".into(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut stim = Stimulus::new(&spec);
    let mut cases = Vec::new();
    let edges = [-128i8, -127, -1, 0, 1, 127];
    for k in 0..600 {
        let (a, b): (i8, i8) = if k < 36 {
            (edges[k / 6], edges[k % 6])
        } else {
            (rng.random(), rng.random())
        };
        let i = rng.random_range(0..8u32);
        stim.set("a", a as u8 as u64);
        stim.set("b", b as u8 as u64);
        stim.set("i", i as u64);
        stim.step(true);
        cases.push((a, b, i));
    }
    for (trace, sim) in &run_in_both_simulators(&spec, &stim) {
        for (c, &(a, b, i)) in cases.iter().enumerate() {
            let what = format!("{sim}: a = {a}, b = {b}, i = {i}");
            assert_eq!(trace.get(c, "lt"), (a < b) as u64, "{what}");
            assert_eq!(trace.get(c, "gt"), (a > b) as u64, "{what}");
            assert_eq!(trace.get(c, "shr"), (a >> i) as u8 as u64, "{what}");
            let sum = i16::from(a) + i16::from(b);
            assert_eq!(trace.get(c, "sum"), sum as u16 as u64, "{what}");
            let product = i16::from(a) * i16::from(b);
            assert_eq!(trace.get(c, "product"), product as u16 as u64, "{what}");
            let pick = match i {
                0 => a as u8,
                5 => b as u8,
                _ => 0x5a,
            };
            assert_eq!(trace.get(c, "pick"), u64::from(pick), "{what}");
        }
    }
}
