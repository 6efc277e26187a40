//! The rust-hdl leaf `cf_requant_relu` inside the coforge module `requant_stage`: the repaired
//! Verilog is clean under `verilator --lint-only -Wall` and accepted by `yosys synth_xilinx`, and
//! the stage co-simulated in Verilator equals `sparse_kernels::int::requantize` bit for bit at
//! the edges (saturation at -128 and 127, rounding ties, zero, shifts 0 to 63, the int32 and
//! int16 extremes, ReLU on and off) and on seeded random inputs.

use coforge_driver::design::unit_spec;
use coforge_generator::rtl::{emit, ModuleDef};
use coforge_leaves::{requant, stage};
use coforge_sim::{BuildOptions, Simulator, Stimulus, Verilator};
use coforge_testbenches::{assert_lint_clean, synth_xilinx_cells};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::int::{requantize, Requant};

#[test]
fn the_repaired_verilog_has_no_rust_hdl_traps() {
    let raw = requant::raw_verilog().unwrap();
    // What rust-hdl wrote: the traps the repair exists for are really there.
    assert!(
        raw.contains("module top(") && raw.contains("valid_reg$d"),
        "{raw}"
    );
    assert!(raw.contains("initial begin"), "{raw}");
    let modules = requant::modules().unwrap();
    let names: Vec<&str> = modules.iter().map(ModuleDef::name).collect();
    assert_eq!(
        names,
        [
            "cf_requant_relu_q_reg",
            "cf_requant_relu_valid_reg",
            "cf_requant_relu"
        ]
    );
    for m in &modules {
        let ModuleDef::External(e) = m else {
            panic!("leaves are external modules")
        };
        let code: String = e.source.lines().filter(|l| !l.starts_with("//")).collect();
        assert!(!code.contains("initial"), "{}", e.source);
        assert!(!code.contains("top"), "{}", e.source);
        // `$` only as a system function.
        assert!(
            code.match_indices('$').all(|(i, _)| {
                code[i..].starts_with("$signed(") || code[i..].starts_with("$unsigned(")
            }),
            "{}",
            e.source
        );
    }
    // Deterministic: a second generation gives the same text.
    assert_eq!(requant::modules().unwrap(), modules);
}

#[test]
fn the_stage_is_lint_clean_and_synthesizes() {
    let design = stage::design().unwrap();
    let files = emit::render_verilog(&design);
    assert_lint_clean(&files, stage::TOP, "rust-hdl leaf");
    let cells = synth_xilinx_cells(&files, stage::TOP, "rust-hdl leaf");
    let count = |prefix: &str| -> u32 {
        cells
            .iter()
            .filter(|(c, _)| c.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    };
    // The 8-bit result and the valid bit are the only registers; no latch.
    assert_eq!(count("FD"), 9, "{cells:?}");
    assert_eq!(count("LD"), 0, "{cells:?}");
    assert!(count("LUT") > 0, "{cells:?}");
}

/// One input of the stage.
#[derive(Clone, Copy, Debug)]
struct Case {
    acc: i32,
    q: Requant,
}

fn case(acc: i32, scale: i16, shift: u32, bias: i16, zero_point: i16, relu: bool) -> Case {
    Case {
        acc,
        q: Requant {
            scale: scale.into(),
            bias: bias.into(),
            shift,
            relu,
            zero_point: zero_point.into(),
        },
    }
}

fn edge_cases() -> Vec<Case> {
    let mut v = Vec::new();
    // Saturation at both ends, and the values just inside.
    for acc in [
        126,
        127,
        128,
        129,
        1 << 20,
        i32::MAX,
        -127,
        -128,
        -129,
        -130,
        i32::MIN,
    ] {
        for relu in [false, true] {
            v.push(case(acc, 1, 0, 0, 0, relu));
        }
    }
    // Rounding ties (x.5 goes up, also below zero) and their neighbours, at several shifts.
    for shift in [1, 2, 3, 7, 15] {
        let half = 1i64 << (shift - 1);
        for k in -3i64..=3 {
            for d in [-1, 0, 1] {
                let acc = (2 * k + 1) * half + d;
                v.push(case(acc as i32, 1, shift, 0, 0, false));
            }
        }
    }
    // Zero in, zero scale, and ReLU exactly at zero.
    v.push(case(0, 1, 0, 0, 0, false));
    v.push(case(0, 0, 5, 0, 0, true));
    v.push(case(i32::MAX, 0, 0, 3, 0, false));
    v.push(case(-1, 1, 1, 0, 0, true)); // p = 0 -> 0
    v.push(case(-2, 1, 1, 0, 0, true)); // q = -1 -> ReLU 0
                                        // CoDeNet's zero point: ReLU then -128.
    for acc in [-50, 0, 1, 255, 256] {
        v.push(case(acc, 1, 0, 0, 128, true));
    }
    // The extremes of every operand, with every shift from 0 to 63 (the largest).
    for shift in 0..64 {
        for (acc, scale) in [
            (i32::MIN, i16::MIN),
            (i32::MIN, i16::MAX),
            (i32::MAX, i16::MIN),
            (i32::MAX, i16::MAX),
            (-1, i16::MIN),
            (1, -1),
        ] {
            for (bias, zp, relu) in [
                (0, 0, false),
                (i16::MIN, i16::MAX, true),
                (i16::MAX, i16::MIN, false),
            ] {
                v.push(case(acc, scale, shift, bias, zp, relu));
            }
        }
    }
    v
}

fn random_cases(n: usize, seed: u64) -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            // Small accumulators and shifts as often as the full range, so results land inside
            // [-128, 127] and not only on the clamp.
            let acc = if rng.random() {
                rng.random::<i32>()
            } else {
                rng.random_range(-4096..4096)
            };
            let shift = if rng.random() {
                rng.random_range(0..64)
            } else {
                rng.random_range(0..12)
            };
            case(
                acc,
                rng.random(),
                shift,
                rng.random_range(-200..200),
                rng.random_range(-200..200),
                rng.random(),
            )
        })
        .collect()
}

/// `requant_stage` built with Verilator.
fn stage_model() -> (coforge_sim::DesignSpec, coforge_sim::VerilatedModel) {
    let design = stage::design().unwrap();
    let spec = unit_spec(&design, stage::TOP, "clk");
    let sim = Verilator::build(&spec, &BuildOptions::default())
        .unwrap()
        .instantiate()
        .unwrap();
    (spec, sim)
}

/// Runs every case through the stage, one per cycle, and returns the results in order.
fn simulate(cases: &[Case]) -> Vec<i8> {
    let (spec, mut sim) = stage_model();
    let mut stim = Stimulus::new(&spec);
    stim.set("rst", 1);
    stim.step(false);
    stim.step(true);
    stim.set("rst", 0);
    for c in cases {
        stim.set("in_valid", 1);
        stim.set("acc", c.acc as u32 as u64);
        stim.set("scale", c.q.scale as u16 as u64);
        stim.set("bias", c.q.bias as u16 as u64);
        stim.set("zero_point", c.q.zero_point as u16 as u64);
        stim.set("shift", c.q.shift.into());
        stim.set("relu", c.q.relu.into());
        stim.step(true);
    }
    stim.set("in_valid", 0);
    for _ in 0..3 {
        stim.step(true);
    }
    let trace = sim.run(&stim).unwrap();
    (0..trace.len())
        .filter(|&i| trace.get(i, "out_valid") == 1)
        .map(|i| trace.get(i, "q") as u8 as i8)
        .collect()
}

fn check(cases: &[Case]) {
    let rtl = simulate(cases);
    assert_eq!(rtl.len(), cases.len(), "one result per input");
    for (c, got) in cases.iter().zip(&rtl) {
        assert_eq!(*got, requantize(c.acc, &c.q), "{c:?}");
    }
}

#[test]
fn bit_exact_with_the_reference_at_the_edges_and_on_random_inputs() {
    let edges = edge_cases();
    assert_eq!(edges.len(), 1289, "the README counts them");
    // The edges reach both clamp values, zero, and unclamped values.
    let golden: Vec<i8> = edges.iter().map(|c| requantize(c.acc, &c.q)).collect();
    for v in [-128, 127, 0, 1, -1] {
        assert!(golden.contains(&v), "no edge case gives {v}");
    }
    let mut all = edges;
    all.extend(random_cases(20_000, 2026));
    check(&all);
}

#[test]
fn reset_clears_the_valid_bit() {
    let (spec, mut sim) = stage_model();
    let mut stim = Stimulus::new(&spec);
    stim.set("in_valid", 1);
    stim.set("rst", 1);
    for _ in 0..3 {
        stim.step(true);
    }
    let trace = sim.run(&stim).unwrap();
    assert!((0..trace.len()).all(|i| trace.get(i, "out_valid") == 0));
}
