//! The weight-update vector engine (WUVE): V parallel lanes, each applying the SR-STE update to
//! one fp32 master weight per cycle and converting the result to fp16. It mirrors
//! `sparse_kernels::bdwp::update_element` operation by operation, followed by
//! `sparse_kernels::fp::to_f16` (`design/numerics.md`, "Floating-point path").
//!
//! # The rule, as the lane computes it
//! Every operation is one IEEE fp32 unit of `engines::fp` (round to nearest even, subnormals
//! kept), in the reference's literal order, with no fused multiply-add:
//! ```text
//! stage 1  t      = one_minus_keep * w32     cf_fp32_mul   one_minus_keep = keep ? +0.0 : +1.0
//! stage 2  decay  = lambda * t               cf_fp32_mul
//! stage 3  g      = dw + decay               cf_fp32_add
//! stage 4  u      = lr * g                   cf_fp32_mul
//! stage 5  w32'   = w32 + (-u)               cf_fp32_add   (-u: sign bit flipped)
//!          w16'   = fp16(w32')               cf_fp32_to_fp16
//! ```
//! `w32 - u` is computed as `w32 + (-u)`: IEEE defines `a - b` as `a + (-b)`, including the sign
//! of an exact zero (`(+0) - (+0) = +0 + -0 = +0`, `(-0) - (+0) = -0`, `(-0) - (-0) = +0`), and
//! the adder's result for a NaN operand is canonical whatever its sign. The decay is a real
//! product even for kept weights: `0 * ±inf` is NaN, exactly as in the reference.
//!
//! NaN policy (shared with the fp units and the reference comparison): every NaN result is the
//! canonical quiet NaN, `0x7FC00000` in fp32 and `0x7E00` in fp16 (`sparse_kernels::fp::canon`,
//! `canon16`).
//!
//! # Port protocol (all synchronous to `clk`; `rst` synchronous, active high)
//! - `lr` and `lambda` are shared by all lanes and must be held stable from the first element of
//!   a job until its last result is read (they feed the multipliers directly, unregistered).
//! - Cycle t: `in_valid` high, and `lane<v>_w32`, `lane<v>_dw`, `lane<v>_keep` driven for every
//!   lane (`in_valid` is shared: all lanes advance together; a lane without real work is fed
//!   anything, and its output ignored).
//! - Cycle t + [`LATENCY`] (= 5): `out_valid` is high and `lane<v>_w32_next`, `lane<v>_w16_next`
//!   show that element's updated weight. The outputs come straight from registers.
//! - **Throughput:** one element per lane per cycle; elements stream back to back, and idle cycles
//!   (`in_valid` low) are bubbles that travel down the pipeline (`out_valid` low 5 cycles later).
//! - Data registers load only when their stage holds a valid element, so the outputs keep the last
//!   result until the next one arrives. Only the valid bits are reset; data registers are not.
//! - No back-pressure: a result is shown with `out_valid` for one cycle and must be taken then.
//! - Reset: [`RESET_CYCLES`] cycles of `rst` high before the first element. [`estimated_cycles`]
//!   is the cycle model of a job, and [`ports`] the port names; drivers use these.
//!
//! One port per lane, not one packed bus: Verilator 5.006 is slow on very wide packed ports.

use crate::engines::fp;
use crate::rtl::{set, when, when_else, Design, DesignError, Expr, ModuleBuilder, ModuleDef};

/// Parameters of one weight-update engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WuveParams {
    /// V: parallel lanes, one element each per cycle.
    pub lanes: u32,
}

/// The most lanes one engine may have.
pub const MAX_LANES: u32 = 256;

/// Cycles of `rst` high before the first element.
pub const RESET_CYCLES: u64 = 2;

/// Cycles from an element's input cycle to the cycle its result is shown (one per fp operation
/// stage; the fp16 conversion shares the last stage with the final add).
pub const LATENCY: u64 = 5;

/// The cycle model of updating `elements` weights, V per cycle, from the cycle the first
/// element is taken to the cycle the last result is shown, both counted, with no input
/// bubbles: `ceil(elements / V)` input cycles, then [`LATENCY`]. Zero elements take zero cycles.
pub fn estimated_cycles(p: &WuveParams, elements: u64) -> u64 {
    if elements == 0 {
        return 0;
    }
    elements.div_ceil(u64::from(p.lanes)) + LATENCY
}

/// fp32 `+1.0`.
const ONE_F32: u64 = 0x3F80_0000;

/// Name of the lane module (it has no parameters: every lane is the same).
pub const LANE_MODULE: &str = "wuve_lane";

impl WuveParams {
    /// Checks `1 <= lanes <= 256`.
    pub fn validate(&self) -> Result<(), String> {
        if self.lanes == 0 || self.lanes > MAX_LANES {
            return Err(format!("lanes = {} must be in 1..={MAX_LANES}", self.lanes));
        }
        Ok(())
    }
}

/// Port names of the top module, shared with the driver that feeds it.
pub mod ports {
    pub const CLOCK: &str = "clk";
    pub const RESET: &str = "rst";
    pub const LR: &str = "lr";
    pub const LAMBDA: &str = "lambda";
    pub const VALID: &str = "in_valid";
    pub const OUT_VALID: &str = "out_valid";
    pub fn w32(lane: u32) -> String {
        format!("lane{lane}_w32")
    }
    pub fn dw(lane: u32) -> String {
        format!("lane{lane}_dw")
    }
    pub fn keep(lane: u32) -> String {
        format!("lane{lane}_keep")
    }
    pub fn w32_next(lane: u32) -> String {
        format!("lane{lane}_w32_next")
    }
    pub fn w16_next(lane: u32) -> String {
        format!("lane{lane}_w16_next")
    }
}

/// Builds the engine: the three fp units, one lane module shared by all lanes, then the top
/// named `top`.
///
/// # Errors
/// A `top` named like one of the engine's other modules ([`module_names`]) clashes with it.
///
/// # Panics
/// If `p` fails [`WuveParams::validate`] (a caller bug: validate untrusted parameters first).
pub fn generate(p: &WuveParams, top: &str) -> Result<Design, DesignError> {
    if let Err(e) = p.validate() {
        panic!("invalid WUVE parameters: {e}");
    }
    let mut design = Design::new();
    let [mul, add, to16] = fp_units();
    for unit in fp::fp32_add_stages().iter().chain([&mul, &add, &to16]) {
        design.add(unit.clone())?;
    }
    let lane = lane_module(&mul, &add, &to16);
    design.add(lane.clone())?;
    design.add(top_module(p, top, &lane))?;
    Ok(design)
}

/// The fp units a lane instantiates: multiplier, adder (whose stages the design holds too),
/// fp32-to-fp16 conversion.
fn fp_units() -> [ModuleDef; 3] {
    [fp::fp32_mul(), fp::fp32_add(), fp::fp32_to_fp16()]
}

/// The modules the engine defines besides its top, leaves first.
pub fn module_names() -> Vec<String> {
    let mut names: Vec<String> = fp::fp32_add_stages()
        .iter()
        .chain(&fp_units())
        .map(|m| m.name().to_string())
        .collect();
    names.push(LANE_MODULE.to_string());
    names
}

fn lane_module(mul: &ModuleDef, add: &ModuleDef, to16: &ModuleDef) -> ModuleDef {
    ModuleBuilder::build(LANE_MODULE, |b| {
        b.doc(
        "WUVE lane: w32' = w32 - lr * (dw + lambda * ((keep ? 0 : 1) * w32)), w16' = fp16(w32').",
    );
        b.doc("Each operation is one fp32 RNE unit in the reference's order (no fusion); one");
        b.doc(format!(
            "element per cycle, results shown {LATENCY} cycles after their input cycle."
        ));
        b.doc("Protocol: see the generator's `engines::wuve` documentation (coforge).");
        let clk = b.input(ports::CLOCK, 1, "");
        let rst = b.input(ports::RESET, 1, "synchronous, active high");
        let lr = b.input(ports::LR, 32, "fp32 learning rate, held for the job");
        let lambda = b.input(ports::LAMBDA, 32, "fp32 decay of pruned weights, held");
        let in_valid = b.input("in_valid", 1, "an element is present");
        let in_w32 = b.input("in_w32", 32, "fp32 master weight");
        let in_dw = b.input("in_dw", 32, "fp32 gradient");
        let in_keep = b.input("in_keep", 1, "forward mask bit: 1 = kept");
        let out_valid = b.output_reg("out_valid", 1, "an updated weight is shown");
        let out_w32 = b.output_reg("out_w32", 32, "fp32 updated master weight");
        let out_w16 = b.output_reg("out_w16", 16, "fp16 of the updated weight, RNE");

        // Valid bit of each pipeline register stage 1..4 (stage 5 is `out_valid`).
        let v: Vec<Expr> = (1..=4).map(|s| b.reg(&format!("s{s}_valid"), 1)).collect();

        b.comment("Stage 1: t = one_minus_keep * w32 (a real product: 0 * inf is NaN).");
        let one_minus_keep = b.name(
            "one_minus_keep",
            Expr::mux(&in_keep, &Expr::zero(32), &Expr::lit(ONE_F32, 32)),
        );
        let t = b.wire("t", 32);
        b.instance(
            mul,
            "mul_t",
            vec![
                ("a", one_minus_keep),
                ("b", in_w32.clone()),
                ("p", t.clone()),
            ],
        );
        let s1_t = b.reg("s1_t", 32);
        let s1_w32 = b.reg("s1_w32", 32);
        let s1_dw = b.reg("s1_dw", 32);

        b.comment("Stage 2: decay = lambda * t.");
        let decay = b.wire("decay", 32);
        b.instance(
            mul,
            "mul_decay",
            vec![("a", lambda), ("b", s1_t.clone()), ("p", decay.clone())],
        );
        let s2_decay = b.reg("s2_decay", 32);
        let s2_w32 = b.reg("s2_w32", 32);
        let s2_dw = b.reg("s2_dw", 32);

        b.comment("Stage 3: g = dw + decay.");
        let g = b.wire("g", 32);
        b.instance(
            add,
            "add_g",
            vec![
                ("a", s2_dw.clone()),
                ("b", s2_decay.clone()),
                ("s", g.clone()),
            ],
        );
        let s3_g = b.reg("s3_g", 32);
        let s3_w32 = b.reg("s3_w32", 32);

        b.comment("Stage 4: u = lr * g, stored negated (sign bit flipped) for the final add.");
        let u = b.wire("u", 32);
        b.instance(
            mul,
            "mul_u",
            vec![("a", lr), ("b", s3_g.clone()), ("p", u.clone())],
        );
        let s4_neg_u = b.reg("s4_neg_u", 32);
        let s4_w32 = b.reg("s4_w32", 32);

        b.comment("Stage 5: w32' = w32 + (-u) (= w32 - u exactly), w16' = fp16(w32').");
        let w32_next = b.wire("w32_next", 32);
        b.instance(
            add,
            "add_w32",
            vec![
                ("a", s4_w32.clone()),
                ("b", s4_neg_u.clone()),
                ("s", w32_next.clone()),
            ],
        );
        let w16_next = b.wire("w16_next", 16);
        b.instance(
            to16,
            "to_fp16",
            vec![("x", w32_next.clone()), ("h", w16_next.clone())],
        );

        b.comment("Control: valid bits travel with the data.");
        b.clocked(
            &clk,
            vec![when_else(
                rst,
                vec![
                    set(&v[0], Expr::bit(false)),
                    set(&v[1], Expr::bit(false)),
                    set(&v[2], Expr::bit(false)),
                    set(&v[3], Expr::bit(false)),
                    set(&out_valid, Expr::bit(false)),
                ],
                vec![
                    set(&v[0], in_valid.clone()),
                    set(&v[1], v[0].clone()),
                    set(&v[2], v[1].clone()),
                    set(&v[3], v[2].clone()),
                    set(&out_valid, v[3].clone()),
                ],
            )],
        );

        b.comment("Data: each stage loads only when it receives a valid element (no reset).");
        let neg_u = Expr::concat(vec![u.msb().not(), u.slice(0, 31)]);
        b.clocked(
            &clk,
            vec![
                when(
                    in_valid,
                    vec![set(&s1_t, t), set(&s1_w32, in_w32), set(&s1_dw, in_dw)],
                ),
                when(
                    v[0].clone(),
                    vec![
                        set(&s2_decay, decay),
                        set(&s2_w32, s1_w32.clone()),
                        set(&s2_dw, s1_dw.clone()),
                    ],
                ),
                when(
                    v[1].clone(),
                    vec![set(&s3_g, g), set(&s3_w32, s2_w32.clone())],
                ),
                when(
                    v[2].clone(),
                    vec![set(&s4_neg_u, neg_u), set(&s4_w32, s3_w32.clone())],
                ),
                when(
                    v[3].clone(),
                    vec![set(&out_w32, w32_next), set(&out_w16, w16_next)],
                ),
            ],
        );
    })
}

fn top_module(p: &WuveParams, top: &str, lane: &ModuleDef) -> ModuleDef {
    ModuleBuilder::build(top, |b| {
        b.doc(format!(
        "WUVE weight-update vector engine: {} lanes of w32' = w32 - lr * (dw + lambda * ((1 - keep) * w32)), w16' = fp16(w32').",
        p.lanes
    ));
        b.doc(format!(
        "Latency {LATENCY} cycles from an element's input cycle to out_valid; one element per lane per cycle."
    ));
        b.doc("Protocol: see the generator's `engines::wuve` documentation (coforge).");
        let clk = b.input(ports::CLOCK, 1, "");
        let rst = b.input(ports::RESET, 1, "synchronous, active high");
        let lr = b.input(ports::LR, 32, "fp32 learning rate, held for the job");
        let lambda = b.input(ports::LAMBDA, 32, "fp32 decay of pruned weights, held");
        let valid = b.input(ports::VALID, 1, "every lane takes its element this cycle");
        let mut lane_in = Vec::new();
        for l in 0..p.lanes {
            let w32 = b.input(&ports::w32(l), 32, "fp32 master weight");
            let dw = b.input(&ports::dw(l), 32, "fp32 gradient");
            let keep = b.input(&ports::keep(l), 1, "forward mask bit: 1 = kept");
            lane_in.push((w32, dw, keep));
        }
        let out_valid = b.output(ports::OUT_VALID, 1, "every lane shows an updated weight");
        let mut lane_out = Vec::new();
        for l in 0..p.lanes {
            let w32 = b.output(&ports::w32_next(l), 32, "fp32 updated master weight");
            let w16 = b.output(&ports::w16_next(l), 16, "fp16 of the updated weight");
            lane_out.push((w32, w16));
        }

        // All lanes advance in lockstep, so lane 0's flag speaks for all; the other lanes' flags are
        // left unconnected on purpose (`unused_*` tells readers and Verilator so).
        for l in 0..p.lanes {
            let lane_valid = if l == 0 {
                out_valid.clone()
            } else {
                b.wire(&format!("unused_out_valid_lane{l}"), 1)
            };
            let (w32, dw, keep) = lane_in[l as usize].clone();
            let (w32_next, w16_next) = lane_out[l as usize].clone();
            b.instance(
                lane,
                &format!("lane{l}"),
                vec![
                    (ports::CLOCK, clk.clone()),
                    (ports::RESET, rst.clone()),
                    (ports::LR, lr.clone()),
                    (ports::LAMBDA, lambda.clone()),
                    ("in_valid", valid.clone()),
                    ("in_w32", w32),
                    ("in_dw", dw),
                    ("in_keep", keep),
                    ("out_valid", lane_valid),
                    ("out_w32", w32_next),
                    ("out_w16", w16_next),
                ],
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::emit;

    fn text(p: &WuveParams) -> Vec<String> {
        generate(p, "wuve_top")
            .unwrap()
            .modules()
            .map(|m| emit::module_file(m, "test"))
            .collect()
    }

    /// The model by hand: one beat of V elements per cycle, plus 5 to the last result.
    #[test]
    fn cycle_model() {
        let p = WuveParams { lanes: 4 };
        assert_eq!(estimated_cycles(&p, 0), 0);
        assert_eq!(estimated_cycles(&p, 1), 6);
        assert_eq!(estimated_cycles(&p, 4), 6);
        assert_eq!(estimated_cycles(&p, 5), 7);
        assert_eq!(estimated_cycles(&WuveParams { lanes: 1 }, 7), 12);
    }

    #[test]
    fn one_definition_per_module_and_deterministic() {
        let p = WuveParams { lanes: 4 };
        let d = generate(&p, "wuve_top").unwrap();
        let names: Vec<&str> = d.modules().map(|m| m.name()).collect();
        assert_eq!(
            names,
            [
                "cf_fp32_add_align",
                "cf_fp32_add_sum",
                "cf_fp32_add_round",
                "cf_fp32_mul",
                "cf_fp32_add",
                "cf_fp32_to_fp16",
                LANE_MODULE,
                "wuve_top"
            ]
        );
        assert_eq!(module_names(), names[..names.len() - 1]);
        assert!(generate(&p, LANE_MODULE).is_err());
        assert_eq!(text(&p), text(&p));
        for lanes in [1, 3, 17] {
            text(&WuveParams { lanes });
        }
    }

    #[test]
    fn invalid_parameters_are_named() {
        assert!(WuveParams { lanes: 0 }.validate().is_err());
        assert!(WuveParams {
            lanes: MAX_LANES + 1
        }
        .validate()
        .is_err());
        assert!(WuveParams { lanes: MAX_LANES }.validate().is_ok());
    }
}
