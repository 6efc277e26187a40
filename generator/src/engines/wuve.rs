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
//! With `pipelined` (`[train] wuve_pipeline = true`), the same units run split into their stages
//! with a register after each, so that no register-to-register path holds more than one stage
//! (see "Pipelined lane" below); the operations, their order and the bits are the same.
//!
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
//! - Cycle t + [`latency`] (5, or [`PIPELINED_LATENCY`] = 20 pipelined): `out_valid` is high
//!   and `lane<v>_w32_next`, `lane<v>_w16_next` show that element's updated weight. The outputs
//!   come straight from registers.
//! - **Throughput:** one element per lane per cycle; elements stream back to back, and idle cycles
//!   (`in_valid` low) are bubbles that travel down the pipeline (`out_valid` low [`latency`]
//!   cycles later).
//! - Data registers load only when their stage holds a valid element, so the outputs keep the last
//!   result until the next one arrives. Only the valid bits are reset; data registers are not.
//! - No back-pressure: a result is shown with `out_valid` for one cycle and must be taken then.
//! - Reset: [`RESET_CYCLES`] cycles of `rst` high before the first element. [`estimated_cycles`]
//!   is the cycle model of a job, and [`ports`] the port names; drivers use these.
//!
//! One port per lane, not one packed bus: Verilator 5.006 is slow on very wide packed ports.
//!
//! # Pipelined lane
//! The unpipelined lane puts a whole fp unit in each cycle, and the last cycle an fp32 add and
//! the fp16 conversion: Yosys's longest path (`ltp -noff` after `synth_xilinx -flatten`, the
//! metric of `coforge estimate`) is 73 cells for one lane (xcup), against 21 for the pipelined
//! fp16 PE; the pipelined lane measures 19 (README, "WUVE pipeline"). The pipelined
//! lane (`wuve_lane_pipelined`) runs every multiplier as the four stages of `cf_fp32_mul`
//! (`fp::fp32_mul_stages`: multiply, leading zeros, shift, round), every adder as the three of
//! `cf_fp32_add` (`fp::fp32_add_stages`) and the fp16 conversion as the two of
//! `cf_fp32_to_fp16` (`fp::fp32_to_fp16_stages`): the modules the combinational units chain,
//! so one rule serves both. A register follows every stage, and `w32`, `dw` and `w32'` travel
//! beside the operations that precede their use:
//! ```text
//! t = (1 - keep) * w32      4 stages       g = dw + decay     3 stages
//! decay = lambda * t        4 stages       u = lr * g         4 stages (stored as -u)
//! w32' = w32 + (-u)         3 stages       w16' = fp16(w32')  2 stages     = 20 cycles
//! ```
//! Nothing is loop-carried, so the lane still takes one element per cycle; only the latency
//! grows. `lr` and `lambda` still feed their multipliers unregistered (held for the job).

use crate::config::TrainConfig;
use crate::engines::fp;
use crate::rtl::{set, when, when_else, Design, DesignError, Expr, ModuleBuilder, ModuleDef};

/// Parameters of one weight-update engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WuveParams {
    /// V: parallel lanes, one element each per cycle.
    pub lanes: u32,
    /// A register after every stage of every fp unit (`[train] wuve_pipeline`): the latency is
    /// [`PIPELINED_LATENCY`] in place of [`LATENCY`].
    pub pipelined: bool,
}

/// The most lanes one engine may have.
pub const MAX_LANES: u32 = 256;

/// Cycles of `rst` high before the first element.
pub const RESET_CYCLES: u64 = 2;

/// Cycles from an element's input cycle to the cycle its result is shown, unpipelined (one per
/// fp operation; the fp16 conversion shares the last cycle with the final add).
pub const LATENCY: u64 = 5;

/// The same, pipelined: one cycle per stage, three multipliers of four stages, two adders of
/// three and the fp16 conversion of two (see "Pipelined lane"; the generator checks the count).
pub const PIPELINED_LATENCY: u64 = 20;

/// Cycles from an element's input cycle to the cycle its result is shown.
pub fn latency(p: &WuveParams) -> u64 {
    if p.pipelined {
        PIPELINED_LATENCY
    } else {
        LATENCY
    }
}

/// The cycle model of updating `elements` weights, V per cycle, from the cycle the first
/// element is taken to the cycle the last result is shown, both counted, with no input
/// bubbles: `ceil(elements / V)` input cycles, then [`latency`]. Zero elements take zero cycles.
pub fn estimated_cycles(p: &WuveParams, elements: u64) -> u64 {
    if elements == 0 {
        return 0;
    }
    elements.div_ceil(u64::from(p.lanes)) + latency(p)
}

/// fp32 `+1.0`.
const ONE_F32: u64 = 0x3F80_0000;

/// Name of the lane module (it has no parameters: every lane is the same).
pub const LANE_MODULE: &str = "wuve_lane";
/// Name of the pipelined lane module.
pub const PIPELINED_LANE_MODULE: &str = "wuve_lane_pipelined";

impl WuveParams {
    /// The WUVE of a `[train]` section.
    pub fn of(train: &TrainConfig) -> WuveParams {
        WuveParams {
            lanes: train.wuve_lanes,
            pipelined: train.wuve_pipeline,
        }
    }

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
    for unit in leaves(p) {
        design.add(unit)?;
    }
    let lane = if p.pipelined {
        pipelined_lane_module()
    } else {
        let [mul, add, to16] = fp_units();
        lane_module(&mul, &add, &to16)
    };
    design.add(lane.clone())?;
    design.add(top_module(p, top, &lane))?;
    Ok(design)
}

/// The fp units the unpipelined lane instantiates: multiplier, adder (whose stages the design
/// holds too), fp32-to-fp16 conversion.
fn fp_units() -> [ModuleDef; 3] {
    [fp::fp32_mul(), fp::fp32_add(), fp::fp32_to_fp16()]
}

/// The fp modules a lane instantiates, stages first: the units' stages, and for the unpipelined
/// lane the whole units (which chain the stages).
fn leaves(p: &WuveParams) -> Vec<ModuleDef> {
    let mut units: Vec<ModuleDef> = fp::fp32_add_stages().to_vec();
    units.extend(fp::fp32_mul_stages());
    units.extend(fp::fp32_to_fp16_stages());
    if !p.pipelined {
        units.extend(fp_units());
    }
    units
}

/// The modules the engine defines besides its top, leaves first.
pub fn module_names(p: &WuveParams) -> Vec<String> {
    let mut names: Vec<String> = leaves(p).iter().map(|m| m.name().to_string()).collect();
    names.push(lane_module_name(p).to_string());
    names
}

/// The lane module's name.
fn lane_module_name(p: &WuveParams) -> &'static str {
    if p.pipelined {
        PIPELINED_LANE_MODULE
    } else {
        LANE_MODULE
    }
}

/// The ports of a lane module, the same in both lanes.
struct LanePorts<'id> {
    clk: Expr<'id>,
    rst: Expr<'id>,
    lr: Expr<'id>,
    lambda: Expr<'id>,
    in_valid: Expr<'id>,
    in_w32: Expr<'id>,
    in_dw: Expr<'id>,
    in_keep: Expr<'id>,
    out_valid: Expr<'id>,
    out_w32: Expr<'id>,
    out_w16: Expr<'id>,
}

fn lane_ports<'id>(b: &mut ModuleBuilder<'id>) -> LanePorts<'id> {
    LanePorts {
        clk: b.input(ports::CLOCK, 1, ""),
        rst: b.input(ports::RESET, 1, "synchronous, active high"),
        lr: b.input(ports::LR, 32, "fp32 learning rate, held for the job"),
        lambda: b.input(ports::LAMBDA, 32, "fp32 decay of pruned weights, held"),
        in_valid: b.input("in_valid", 1, "an element is present"),
        in_w32: b.input("in_w32", 32, "fp32 master weight"),
        in_dw: b.input("in_dw", 32, "fp32 gradient"),
        in_keep: b.input("in_keep", 1, "forward mask bit: 1 = kept"),
        out_valid: b.output_reg("out_valid", 1, "an updated weight is shown"),
        out_w32: b.output_reg("out_w32", 32, "fp32 updated master weight"),
        out_w16: b.output_reg("out_w16", 16, "fp16 of the updated weight, RNE"),
    }
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
        let LanePorts {
            clk,
            rst,
            lr,
            lambda,
            in_valid,
            in_w32,
            in_dw,
            in_keep,
            out_valid,
            out_w32,
            out_w16,
        } = lane_ports(b);

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

/// The registers of the pipelined lane as it is built: stage s's element is valid when
/// `valid[s]` is high (`valid[0]` is `in_valid`), and a register that stage s loads takes its
/// value only then, like the unpipelined lane's.
struct LanePipeline<'id> {
    /// The stage the next operation starts in.
    stage: usize,
    valid: Vec<Expr<'id>>,
    /// `(stage, register, next value)`.
    data: Vec<(usize, Expr<'id>, Expr<'id>)>,
    /// Values that travel beside the operations until one reads them, by name.
    carried: Vec<(&'static str, Expr<'id>)>,
}

impl<'id> LanePipeline<'id> {
    /// A register named `name` that stage `at` loads with `value`.
    fn register(
        &mut self,
        b: &mut ModuleBuilder<'id>,
        at: usize,
        name: String,
        value: Expr<'id>,
    ) -> Expr<'id> {
        let reg = b.reg(&name, value.width());
        self.data.push((at, reg.clone(), value));
        reg
    }

    /// Instantiates `stages` from the current stage on, a register after each but the last, and
    /// delays the carried values alongside; returns the last stage's single output (the
    /// operation's result, not registered yet).
    fn operation(
        &mut self,
        b: &mut ModuleBuilder<'id>,
        name: &str,
        stages: &[ModuleDef],
        inputs: Vec<(&str, Expr<'id>)>,
    ) -> Expr<'id> {
        let base = self.stage;
        let inputs = inputs
            .into_iter()
            .map(|(port, value)| (port.to_string(), value))
            .collect();
        let mut outputs = fp::instantiate_stages(
            b,
            &format!("{name}_"),
            stages,
            inputs,
            |b, k, reg, value| self.register(b, base + k, reg, value),
        );
        assert_eq!(outputs.len(), 1, "an operation's last stage has one output");
        for _ in 1..stages.len() {
            self.advance(b);
        }
        outputs.pop().expect("one output").1
    }

    /// Delays the carried values through the register after the current stage and moves on.
    fn advance(&mut self, b: &mut ModuleBuilder<'id>) {
        let at = self.stage;
        let carried = std::mem::take(&mut self.carried);
        self.carried = carried
            .into_iter()
            .map(|(name, value)| (name, self.register(b, at, format!("{name}_d{at}"), value)))
            .collect();
        self.stage += 1;
    }

    /// Registers an operation's `result` as `name` after the current stage, and moves on.
    fn result(&mut self, b: &mut ModuleBuilder<'id>, name: &str, result: Expr<'id>) -> Expr<'id> {
        let reg = self.register(b, self.stage, name.to_string(), result);
        self.advance(b);
        reg
    }

    /// Takes a carried value out: its last reader is the next operation.
    fn take(&mut self, name: &str) -> Expr<'id> {
        let at = self
            .carried
            .iter()
            .position(|(n, _)| *n == name)
            .expect("the value is carried");
        self.carried.remove(at).1
    }
}

/// The pipelined lane (module docs, "Pipelined lane"): the unpipelined lane's operations, each
/// split into its unit's stages with a register after every stage.
fn pipelined_lane_module() -> ModuleDef {
    let (mul, add) = (fp::fp32_mul_stages(), fp::fp32_add_stages());
    let to16 = fp::fp32_to_fp16_stages();
    ModuleBuilder::build(PIPELINED_LANE_MODULE, |b| {
        pipelined_lane(b, &mul, &add, &to16)
    })
}

/// The body of [`pipelined_lane_module`].
fn pipelined_lane<'id>(
    b: &mut ModuleBuilder<'id>,
    mul: &[ModuleDef],
    add: &[ModuleDef],
    to16: &[ModuleDef],
) {
    b.doc(
        "WUVE lane: w32' = w32 - lr * (dw + lambda * ((keep ? 0 : 1) * w32)), w16' = fp16(w32').",
    );
    b.doc("Each operation is one fp32 RNE unit in the reference's order (no fusion), split into");
    b.doc(format!(
        "its stages with a register after each; one element per cycle, results shown \
         {PIPELINED_LATENCY} cycles after their input cycle."
    ));
    b.doc("Protocol: see the generator's `engines::wuve` documentation (coforge).");
    let LanePorts {
        clk,
        rst,
        lr,
        lambda,
        in_valid,
        in_w32,
        in_dw,
        in_keep,
        out_valid,
        out_w32,
        out_w16,
    } = lane_ports(b);

    let last = PIPELINED_LATENCY as usize - 1;
    let mut valid = vec![in_valid.clone()];
    valid.extend((1..=last).map(|s| b.reg(&format!("s{s}_valid"), 1)));
    let mut pipe = LanePipeline {
        stage: 0,
        valid,
        data: Vec::new(),
        carried: vec![("w32", in_w32.clone()), ("dw", in_dw)],
    };

    b.comment("t = one_minus_keep * w32 (a real product: 0 * inf is NaN).");
    let one_minus_keep = b.name(
        "one_minus_keep",
        Expr::mux(&in_keep, &Expr::zero(32), &Expr::lit(ONE_F32, 32)),
    );
    let t = pipe.operation(b, "t", mul, vec![("a", one_minus_keep), ("b", in_w32)]);
    let t = pipe.result(b, "t", t);
    b.comment("decay = lambda * t.");
    let decay = pipe.operation(b, "decay", mul, vec![("a", lambda), ("b", t)]);
    let decay = pipe.result(b, "decay", decay);
    b.comment("g = dw + decay.");
    let dw = pipe.take("dw");
    let g = pipe.operation(b, "g", add, vec![("a", dw), ("b", decay)]);
    let g = pipe.result(b, "g", g);
    b.comment("u = lr * g, stored negated (sign bit flipped) for the final add.");
    let u = pipe.operation(b, "u", mul, vec![("a", lr), ("b", g)]);
    let neg_u = pipe.result(
        b,
        "neg_u",
        Expr::concat(vec![u.msb().not(), u.slice(0, 31)]),
    );
    b.comment("w32' = w32 + (-u) (= w32 - u exactly).");
    let w32 = pipe.take("w32");
    let sum = pipe.operation(b, "w32_next", add, vec![("a", w32), ("b", neg_u)]);
    let w32_next = pipe.result(b, "w32_next", sum);
    b.comment("w16' = fp16(w32'); w32' waits beside it, and both are shown together.");
    pipe.carried.push(("w32_next", w32_next.clone()));
    let w16_next = pipe.operation(b, "w16_next", to16, vec![("x", w32_next)]);
    let w32_next = pipe.take("w32_next");
    assert_eq!(pipe.stage, last, "PIPELINED_LATENCY counts the stages");
    pipe.data.push((last, out_w32.clone(), w32_next));
    pipe.data.push((last, out_w16.clone(), w16_next));

    b.comment("Control: valid bits travel with the data.");
    let (reset, run): (Vec<_>, Vec<_>) = pipe.valid[1..]
        .iter()
        .chain([&out_valid])
        .zip(&pipe.valid)
        .map(|(reg, prev)| (set(reg, Expr::bit(false)), set(reg, prev.clone())))
        .unzip();
    b.clocked(&clk, vec![when_else(rst, reset, run)]);

    b.comment("Data: each stage loads only when it holds a valid element (no reset).");
    let loads = (0..=last)
        .map(|s| {
            let sets = pipe
                .data
                .iter()
                .filter(|(at, _, _)| *at == s)
                .map(|(_, reg, next)| set(reg, next.clone()))
                .collect();
            when(pipe.valid[s].clone(), sets)
        })
        .collect();
    b.clocked(&clk, loads);
}

fn top_module(p: &WuveParams, top: &str, lane: &ModuleDef) -> ModuleDef {
    ModuleBuilder::build(top, |b| {
        b.doc(format!(
        "WUVE weight-update vector engine: {} lanes of w32' = w32 - lr * (dw + lambda * ((1 - keep) * w32)), w16' = fp16(w32').",
        p.lanes
    ));
        b.doc(format!(
        "Latency {} cycles from an element's input cycle to out_valid; one element per lane per cycle.",
        latency(p)
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

    fn params(lanes: u32) -> WuveParams {
        WuveParams {
            lanes,
            pipelined: false,
        }
    }

    fn pipelined(lanes: u32) -> WuveParams {
        WuveParams {
            lanes,
            pipelined: true,
        }
    }

    /// The model by hand: one beat of V elements per cycle, plus 5 (pipelined 20) to the last
    /// result.
    #[test]
    fn cycle_model() {
        let p = params(4);
        assert_eq!(estimated_cycles(&p, 0), 0);
        assert_eq!(estimated_cycles(&p, 1), 6);
        assert_eq!(estimated_cycles(&p, 4), 6);
        assert_eq!(estimated_cycles(&p, 5), 7);
        assert_eq!(estimated_cycles(&params(1), 7), 12);
        assert_eq!(estimated_cycles(&pipelined(4), 0), 0);
        assert_eq!(estimated_cycles(&pipelined(4), 5), 22);
        assert_eq!(estimated_cycles(&pipelined(1), 7), 27);
    }

    #[test]
    fn one_definition_per_module_and_deterministic() {
        let p = params(4);
        let d = generate(&p, "wuve_top").unwrap();
        let names: Vec<&str> = d.modules().map(|m| m.name()).collect();
        assert_eq!(
            names,
            [
                "cf_fp32_add_align",
                "cf_fp32_add_sum",
                "cf_fp32_add_round",
                "cf_fp32_mul_prod",
                "cf_fp32_mul_lzc",
                "cf_fp32_mul_shift",
                "cf_fp32_mul_round",
                "cf_fp32_to_fp16_shift",
                "cf_fp32_to_fp16_round",
                "cf_fp32_mul",
                "cf_fp32_add",
                "cf_fp32_to_fp16",
                LANE_MODULE,
                "wuve_top"
            ]
        );
        assert_eq!(module_names(&p), names[..names.len() - 1]);
        assert!(generate(&p, LANE_MODULE).is_err());
        assert_eq!(text(&p), text(&p));
        for lanes in [1, 3, 17] {
            text(&params(lanes));
        }
        // Pipelined: the stages and the conversion, not the whole units.
        let q = pipelined(4);
        let d = generate(&q, "wuve_top").unwrap();
        let names: Vec<&str> = d.modules().map(|m| m.name()).collect();
        assert_eq!(module_names(&q), names[..names.len() - 1]);
        assert!(!names.contains(&"cf_fp32_mul") && !names.contains(&"cf_fp32_add"));
        assert!(names.contains(&PIPELINED_LANE_MODULE));
        assert!(generate(&q, PIPELINED_LANE_MODULE).is_err());
        assert_eq!(text(&q), text(&q));
    }

    #[test]
    fn invalid_parameters_are_named() {
        assert!(params(0).validate().is_err());
        assert!(params(MAX_LANES + 1).validate().is_err());
        assert!(params(MAX_LANES).validate().is_ok());
    }
}
