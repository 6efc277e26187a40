//! The sparse tensor engine (STCE): an output-stationary systolic array for `C = A · B`, where
//! `B` (the weights, K x N) may be pruned N:M along the reduction axis K.
//!
//! # Dataflow (output-stationary)
//! PE(r, c) owns one output element of a `rows x cols` tile of C. A *group* is one cycle's worth
//! of reduction: in sparse mode, M consecutive reduction indices; in dense mode, N of them.
//! Activations (a row of A) flow left to right, weights (a column of B) top to bottom, one PE per
//! cycle. Every group carries `first` (start a new sum) and `last` (the sum is complete) flags
//! alongside the activations, so tiles stream back to back with no bubbles.
//!
//! # Sparse mode
//! A PE receives M activations per cycle plus N kept weights and their N indices (positions
//! 0..M-1 within the group, in increasing order). Multiplier i takes activation `idx[i]` through
//! an M:1 multiplexer. One group of M reduction elements costs one cycle, against M/N cycles
//! dense. Dense mode on the same hardware is the same stream with indices 0..N-1.
//!
//! # Accumulation order
//! Within a group, the N products are added one at a time in increasing index; groups are added
//! in increasing K. So every output is the sum in increasing k, which is what
//! `sparse_kernels::gemm` computes.
//!
//! # int8x2 DSP packing (`dsp_packing = "int8x2"`)
//! PE(2k, c) and PE(2k+1, c) multiply by the same weights, one cycle apart. With packing, row
//! 2k+1's activations enter the array one cycle early (one skew register fewer) and travel
//! along row 2k's PEs, so PE(2k, c) holds both rows' activations of a group together with its
//! weights: it computes each pair of products in one DSP multiply (`arith::packed_products`,
//! after Xilinx WP486) and hands row 2k+1's products to PE(2k+1, c) through a register. PE(2k+1,
//! c) therefore adds the same products in the same cycle as without packing: the protocol, the
//! latency and the accumulation order are unchanged. An odd last row keeps plain PEs.
//!
//! # fp32 adder pipeline (`fp_pipeline = true`, fp16 engines)
//! Without it, an fp16 PE adds its N products and its running sum through a chain of N
//! combinational fp32 adders, in one cycle. With it, the PE registers its products (stage 0)
//! and each of the three stages of every adder (align | add | normalize and round, the stage
//! modules of `cf_fp32_add`; `arith::FpMac::pipelined`), so no register-to-register path holds
//! more than one multiplier or one adder stage. Adder 0 adds to the sum that left the last
//! adder, 3N cycles after the group that made it: the loop holds 3N independent sums, one per
//! *slot* ([`slots`] = 3N). Cycle t belongs to slot t mod 3N (counted from any cycle: the
//! groups taken in cycles t and t + 3N are the same slot's), and each group continues its
//! slot's sum, so the array works on 3N tiles at once, interleaved cycle by cycle. Each output still adds
//! its products one at a time in increasing k, with separate RNE adds: the accumulation order
//! is the same as above. A bubble leaves its slot's sum as it is (its products enter as -0,
//! which adds exactly nothing); any slot may take a bubble in any cycle. The sum of a tile's
//! last group is published [`pipeline_cycles`] = 3N cycles later than without the pipeline,
//! which [`latency`] includes; everything else below holds as written, the tile-spacing rule
//! included (it counts last groups of any slot). Drivers deal the tiles to the slots as they
//! free up; [`estimated_cycles`] models that. Neither the system top nor the AXI wrapper feeds
//! slots: a config with a `[system]` section rejects the option, and no wrapper is generated.
//!
//! # Port protocol (all synchronous to `clk`, reset `rst` synchronous and active high)
//! [`RESET_CYCLES`], [`latency`], [`tile_spacing`], [`ports`] and [`estimated_cycles`] hold the
//! same facts as code; drivers, the trainer, the CLI and benches use them rather than repeating
//! them.
//! - Reset: hold `rst` high for [`RESET_CYCLES`] cycles before the first group.
//! - Input: in a cycle with `in_valid` high the engine takes one group: `in_first`, `in_last`,
//!   `act_row<r>` (group g of row r of A, lane j = bits `[8j +: 8]`) and `wgt_col<c>` /
//!   `idx_col<c>` (the N kept weights of group g of column c of B and their indices, entry i at
//!   `[i*W +: W]`). All rows and columns of one group are driven in the same cycle; the engine
//!   skews them internally. A cycle with `in_valid` low is a bubble: the other inputs are
//!   ignored and nothing is summed, so groups may arrive with any gaps (the tile's sums are the
//!   same, only later).
//! - PE(r, c) consumes a group taken in cycle t at cycle t + r + c. When that group has
//!   `in_last` set, the PE's finished sum is copied to its `result` register at the end of that
//!   cycle, and the PE starts the next tile's sum at once.
//! - Output: the engine reads its results out by itself. A tile whose last group was taken in
//!   cycle t shows result row r in cycle t + cols + r ([`latency`] = cols cycles to
//!   the first row, then one row per cycle): `out_valid` is high, `out_row` = r, `out_last` is
//!   high with the tile's last row (r = rows - 1), and `res_col<c>` holds the result of
//!   PE(r, c). Tiles come out in the order their last groups went in. Outside `out_valid`
//!   cycles `out_row`, `out_last` and `res_col<c>` mean nothing.
//! - No back-pressure: a row is shown for exactly one cycle and must be taken then. The
//!   engine's own pacing is the one rule on the input: a tile's last group must be taken at
//!   least [`tile_spacing`] = max(rows, cols) cycles after the previous tile's last
//!   group. Then no two tiles' rows are shown in the same cycle, and a result is read before
//!   the next tile overwrites it. Tiles of at least that many groups stream back to back;
//!   shorter tiles need bubbles before their last group.
//! - `out_valid`, `out_row` and `out_last` are registers, and `res_col<c>` a multiplexer of
//!   result registers selected by `out_row`: no path from an input to an output.
//!   (One 32-bit port per column, not one packed port for the whole array: Verilator 5.006 is
//!   slow on very wide packed ports, see the design notes.)

use super::arith::{packed_products, FpMac, IntMac, PeArith, FP32_ADD_STAGES, PACKED_LOWER_BITS};
use crate::config::{DspPacking, Dtype, StceConfig};
use crate::rtl::{
    case, index_bits, set, when, when_else, Design, DesignError, Expr, ModuleBuilder, ModuleDef,
    Stmt,
};

/// Port names of the top module, shared with the driver that feeds it.
pub mod ports {
    pub const CLOCK: &str = "clk";
    pub const RESET: &str = "rst";
    pub const VALID: &str = "in_valid";
    pub const FIRST: &str = "in_first";
    pub const LAST: &str = "in_last";
    pub const OUT_VALID: &str = "out_valid";
    pub const OUT_ROW: &str = "out_row";
    pub const OUT_LAST: &str = "out_last";
    pub fn act_row(r: u32) -> String {
        format!("act_row{r}")
    }
    pub fn wgt_col(c: u32) -> String {
        format!("wgt_col{c}")
    }
    pub fn idx_col(c: u32) -> String {
        format!("idx_col{c}")
    }
    pub fn res_col(c: u32) -> String {
        format!("res_col{c}")
    }
}

/// Cycles of `rst` high before the first group.
pub const RESET_CYCLES: u64 = 2;

/// Cycles from the cycle a tile's last group is taken to the cycle its result row 0 is shown
/// (`out_valid`): the group crosses the `cols` columns of row 0, one register per PE, then (with
/// the fp32 adder pipeline) the last PE's [`pipeline_cycles`]. Row r follows r cycles later.
pub fn latency(cfg: &StceConfig) -> u64 {
    u64::from(cfg.cols) + pipeline_cycles(cfg)
}

/// Cycles a group spends in a PE's fp32 adder pipeline before its sum can be published: the
/// product register and the registers after each of the N adders' 3 stages but the last (whose
/// input the result register takes), so 3N with `fp_pipeline`, 0 without.
pub fn pipeline_cycles(cfg: &StceConfig) -> u64 {
    if cfg.fp_pipeline {
        u64::from(cfg.n * FP32_ADD_STAGES)
    } else {
        0
    }
}

/// Independent sums a PE keeps in flight: the groups taken in cycles t and t + slots belong to
/// the same slot, and a group continues the sum its slot's previous group left. 3N with the
/// fp32 adder pipeline (the registers of its loop: 3 per adder), 1 without.
pub fn slots(cfg: &StceConfig) -> u64 {
    if cfg.fp_pipeline {
        u64::from(cfg.n * FP32_ADD_STAGES)
    } else {
        1
    }
}

/// The fewest cycles between the cycles two consecutive tiles' last groups are taken:
/// max(rows, cols). Fewer, and rows of the two tiles would be shown in one cycle (rows), or a
/// result row would be overwritten before it is shown (cols).
pub fn tile_spacing(cfg: &StceConfig) -> u64 {
    u64::from(cfg.rows.max(cfg.cols))
}

/// Reduction groups of one tile of a GEMM with reduction length `k`: K/M in sparse mode, K/N in
/// dense mode (rounded up: the driver pads K with zeros).
pub fn groups_per_tile(cfg: &StceConfig, k: usize, sparse: bool) -> u64 {
    let step = if sparse { cfg.m } else { cfg.n } as usize;
    k.div_ceil(step) as u64
}

/// The cycle model of an `out_rows x k x out_cols` GEMM, from the cycle its first group is taken
/// to the cycle its last result row is shown, both counted, when groups come with no gaps
/// but those the [`tile_spacing`] rule needs. `sparse` selects the N:M mode (K rounded up to a
/// multiple of M) or the dense mode (of N).
///
/// The tiles' last groups are [`tile_spacing`] or the tile length apart, whichever is more;
/// the last tile's last group is followed by [`latency`] cycles to its first row and
/// `rows - 1` more rows.
///
/// With several [`slots`], the tiles are dealt to the slots as they free up (see "fp32 adder
/// pipeline" above) and [`last_group_of_last_tile`] finds when the last tile ends.
pub fn estimated_cycles(
    cfg: &StceConfig,
    out_rows: usize,
    k: usize,
    out_cols: usize,
    sparse: bool,
) -> u64 {
    let tiles =
        (out_rows.div_ceil(cfg.rows as usize) * out_cols.div_ceil(cfg.cols as usize)) as u64;
    let groups = groups_per_tile(cfg, k, sparse);
    let last_group = if slots(cfg) == 1 {
        (tiles - 1) * groups.max(tile_spacing(cfg)) + groups - 1
    } else {
        last_group_of_last_tile(tiles, groups, slots(cfg), tile_spacing(cfg))
    };
    last_group + latency(cfg) + u64::from(cfg.rows)
}

/// The cycle (from 0, the first group's) in which the last tile's last group is taken, when
/// `tiles` tiles of `groups` groups stream through `slots` slots with no bubbles but those the
/// [`tile_spacing`] rule needs: slot s takes cycles s, s + slots, ...; a free slot takes the
/// next tile on its turn; a last group that would come less than `spacing` cycles after the
/// previous last group waits for its slot's next turn. One event per tile: the slots' next
/// last groups are compared, the earliest goes. With one slot this is the closed form of
/// [`estimated_cycles`] (a test checks it).
pub fn last_group_of_last_tile(tiles: u64, groups: u64, slots: u64, spacing: u64) -> u64 {
    // The cycle each busy slot wants its current tile's last group in.
    let mut wanted: Vec<u64> = (0..slots.min(tiles))
        .map(|s| s + (groups - 1) * slots)
        .collect();
    let mut dealt = wanted.len() as u64;
    let mut previous: Option<u64> = None;
    while !wanted.is_empty() {
        // The first turn of each slot at or after its wanted cycle that keeps the spacing.
        let allowed = |want: u64| match previous {
            Some(p) if want < p + spacing => want + (p + spacing - want).div_ceil(slots) * slots,
            _ => want,
        };
        let (slot, cycle) = wanted
            .iter()
            .enumerate()
            .map(|(i, &w)| (i, allowed(w)))
            .min_by_key(|&(_, c)| c)
            .expect("a busy slot");
        previous = Some(cycle);
        if dealt < tiles {
            // The slot's next turn starts the next tile.
            wanted[slot] = cycle + groups * slots;
            dealt += 1;
        } else {
            wanted.swap_remove(slot);
        }
    }
    previous.expect("a GEMM has at least one tile")
}

/// Builds the whole engine; the returned design's last module is the top.
///
/// # Errors
/// A top named like one of the engine's other modules ([`module_names`]) clashes with it.
pub fn generate(cfg: &StceConfig) -> Result<Design, DesignError> {
    let arith = arithmetic(cfg);
    let mut design = Design::new();
    for leaf in arith.leaf_modules() {
        design.add(leaf)?;
    }
    let pes = PeRole::ALL.map(|role| {
        role.used_in(cfg)
            .then(|| processing_element(cfg, arith.as_ref(), role))
    });
    for pe in pes.iter().flatten() {
        design.add(pe.clone())?;
    }
    design.add(array_top(cfg, &pes))?;
    Ok(design)
}

/// A PE's part in int8x2 DSP packing (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeRole {
    /// Multiplies its own operands: every PE without packing, and an odd last row's.
    Alone,
    /// Row 2k with packing: multiplies its own and row 2k+1's activations by the shared weights.
    Upper,
    /// Row 2k+1 with packing: adds the products the PE above computed for it.
    Lower,
}

impl PeRole {
    const ALL: [PeRole; 3] = [PeRole::Alone, PeRole::Upper, PeRole::Lower];

    /// The role of row `r`'s PEs.
    fn of_row(cfg: &StceConfig, r: u32) -> PeRole {
        let paired = cfg.dsp_packing == DspPacking::Int8x2 && r / 2 < cfg.rows / 2;
        match (paired, r % 2) {
            (false, _) => PeRole::Alone,
            (true, 0) => PeRole::Upper,
            (true, _) => PeRole::Lower,
        }
    }

    fn used_in(self, cfg: &StceConfig) -> bool {
        (0..cfg.rows).any(|r| PeRole::of_row(cfg, r) == self)
    }

    fn index(self) -> usize {
        self as usize
    }

    fn suffix(self) -> &'static str {
        match self {
            PeRole::Alone => "",
            PeRole::Upper => "_pack_upper",
            PeRole::Lower => "_pack_lower",
        }
    }
}

/// The modules the engine defines besides its top, leaves first.
pub fn module_names(cfg: &StceConfig) -> Vec<String> {
    let arith = arithmetic(cfg);
    let mut names: Vec<String> = arith
        .leaf_modules()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    for role in PeRole::ALL {
        if role.used_in(cfg) {
            names.push(pe_name(cfg, arith.as_ref(), role));
        }
    }
    names
}

fn arithmetic(cfg: &StceConfig) -> Box<dyn PeArith> {
    match cfg.dtype {
        Dtype::Int8 => Box::new(IntMac {
            wgt_bits: cfg.weight_bits,
            overflow: cfg.overflow,
        }),
        Dtype::Fp16 => Box::new(FpMac {
            pipelined: cfg.fp_pipeline,
        }),
    }
}

/// The PE's name encodes every parameter its body depends on.
fn pe_name(cfg: &StceConfig, arith: &dyn PeArith, role: PeRole) -> String {
    let role = role.suffix();
    let pipeline = if cfg.fp_pipeline { "_pipe" } else { "" };
    if cfg.has_sparse_mode() {
        format!(
            "stce_pe_{}_n{}_m{}{role}{pipeline}",
            arith.tag(),
            cfg.n,
            cfg.m
        )
    } else {
        format!("stce_pe_{}_n{}_dense{role}{pipeline}", arith.tag(), cfg.n)
    }
}

/// The integer arithmetic of a packed engine (validated to be int8).
fn int_mac(cfg: &StceConfig) -> IntMac {
    IntMac {
        wgt_bits: cfg.weight_bits,
        overflow: cfg.overflow,
    }
}

/// Widths shared by the PE and the top.
struct Shape {
    lanes: u32,
    n: u32,
    act: u32,
    wgt: u32,
    idx: u32,
    acc: u32,
    sparse: bool,
}

impl Shape {
    fn of(cfg: &StceConfig) -> Shape {
        Shape {
            lanes: cfg.lanes(),
            n: cfg.n,
            act: cfg.act_bits(),
            wgt: cfg.wgt_bits(),
            idx: cfg.index_bits(),
            acc: cfg.acc_bits(),
            sparse: cfg.has_sparse_mode(),
        }
    }
    fn act_bus(&self) -> u32 {
        self.lanes * self.act
    }
    fn wgt_bus(&self) -> u32 {
        self.n * self.wgt
    }
    fn idx_bus(&self) -> u32 {
        self.n * self.idx
    }
    /// Row 2k+1's N products, handed down by a packing PE.
    fn products_bus(&self) -> u32 {
        self.n * PACKED_LOWER_BITS
    }
}

fn processing_element(cfg: &StceConfig, arith: &dyn PeArith, role: PeRole) -> ModuleDef {
    ModuleBuilder::build(pe_name(cfg, arith, role), |b| {
        processing_element_body(b, cfg, arith, role)
    })
}

/// The contents of [`processing_element`]'s module, described with its builder.
fn processing_element_body<'id>(
    b: &mut ModuleBuilder<'id>,
    cfg: &StceConfig,
    arith: &dyn PeArith,
    role: PeRole,
) {
    let s = Shape::of(cfg);
    b.doc("STCE processing element (output-stationary).");
    if s.sparse {
        b.doc(format!(
            "Each cycle: one group of {} activations, {} kept weights and their indices;",
            cfg.m, s.n
        ));
        b.doc("multiplier i takes activation idx[i]. Products are added in increasing index.");
    } else {
        b.doc(format!(
            "Each cycle: {} activations and {} weights, multiplied lane by lane.",
            s.n, s.n
        ));
    }
    if cfg.fp_pipeline {
        b.doc(format!(
            "fp32 adder pipeline: products and each add registered; {} interleaved sums (slots).",
            s.n
        ));
    }
    match role {
        PeRole::Alone => {}
        PeRole::Upper => {
            b.doc("int8x2 packing, upper PE: the row below's activations come along this row one");
            b.doc("cycle early; each pair of products is one DSP multiply (WP486), and the row");
            b.doc("below's products go down through out_products.");
        }
        PeRole::Lower => {
            b.doc("int8x2 packing, lower PE: adds the products the PE above computed for it.");
        }
    }
    b.doc("Activations and flags pass right, weights pass down, each through one register.");
    let clk = b.input(ports::CLOCK, 1, "");
    let rst = b.input(ports::RESET, 1, "synchronous, active high");
    let in_valid = b.input("in_valid", 1, "a group is present");
    let in_first = b.input("in_first", 1, "first group of a tile: start a new sum");
    let in_last = b.input("in_last", 1, "last group of a tile: publish the sum");
    let in_act = (role != PeRole::Lower)
        .then(|| b.input("in_act", s.act_bus(), "activation lanes, from the left"));
    let in_act_lower = (role == PeRole::Upper).then(|| {
        b.input(
            "in_act_lower",
            s.act_bus(),
            "the row below's activation lanes, one cycle early",
        )
    });
    let in_products = (role == PeRole::Lower).then(|| {
        b.input(
            "in_products",
            s.products_bus(),
            "this PE's products, from the PE above",
        )
    });
    let in_wgt = b.input("in_wgt", s.wgt_bus(), "weights, from above");
    let in_idx = s
        .sparse
        .then(|| b.input("in_idx", s.idx_bus(), "weight positions in the group"));
    let out_valid = b.output_reg("out_valid", 1, "");
    let out_first = b.output_reg("out_first", 1, "");
    let out_last = b.output_reg("out_last", 1, "");
    let out_act = in_act
        .is_some()
        .then(|| b.output_reg("out_act", s.act_bus(), "to the right"));
    let out_act_lower = in_act_lower
        .is_some()
        .then(|| b.output_reg("out_act_lower", s.act_bus(), "to the right"));
    let out_wgt = b.output_reg("out_wgt", s.wgt_bus(), "downwards");
    let out_idx = s
        .sparse
        .then(|| b.output_reg("out_idx", s.idx_bus(), "downwards"));
    let out_products = (role == PeRole::Upper).then(|| {
        b.output_reg(
            "out_products",
            s.products_bus(),
            "the row below's products, downwards",
        )
    });
    let result = b.output_reg("result", s.acc, "sum of the last finished tile");

    // With the fp32 adder pipeline, the running sums live in the pipeline (`FpMac::pipelined`).
    let acc = (!cfg.fp_pipeline).then(|| {
        let acc = b.reg("acc", s.acc);
        b.describe("running sum of the current tile");
        acc
    });

    // Multiplier i's operands: activation idx[i] of a lane bus (M:1 selection in sparse mode;
    // lane offset = index * act_bits, a power of two) and weight i. A lower PE multiplies
    // nothing: its weights and indices only pass down.
    let select = |b: &mut ModuleBuilder<'id>,
                  name: &str,
                  bus: &Expr<'id>,
                  idx: &Option<Expr<'id>>,
                  i: u32| match idx {
        Some(idx) => {
            let offset = Expr::concat(vec![idx.clone(), Expr::zero(s.act.trailing_zeros())]);
            b.name(name, bus.dyn_slice(offset, s.act))
        }
        None => b.name(name, bus.slice(i * s.act, s.act)),
    };
    let mut operands = Vec::with_capacity(s.n as usize);
    if let Some(bus) = &in_act {
        for i in 0..s.n {
            let idx = in_idx
                .as_ref()
                .map(|idx_bus| b.name(&format!("idx_{i}"), idx_bus.slice(i * s.idx, s.idx)));
            let activation = select(b, &format!("act_{i}"), bus, &idx, i);
            let lower = in_act_lower
                .as_ref()
                .map(|lower_bus| select(b, &format!("act_lower_{i}"), lower_bus, &idx, i));
            let weight = b.name(&format!("wgt_{i}"), in_wgt.slice(i * s.wgt, s.wgt));
            operands.push((activation, lower, weight));
        }
    }
    let mut lower_products = Vec::new();
    // The sum's registers: their reset, and their update in a cycle out of reset.
    let (sum_reset, sum_update) = if cfg.fp_pipeline {
        let pairs: Vec<(Expr, Expr)> = operands.into_iter().map(|(a, _, w)| (a, w)).collect();
        let end = FpMac { pipelined: true }
            .pipelined(b, &clk, &rst, &in_valid, &in_first, &in_last, &pairs);
        (
            vec![set(&result, Expr::zero(s.acc))],
            vec![when(end.completes, vec![set(&result, end.sum)])],
        )
    } else {
        let acc = acc.expect("a PE without the adder pipeline has an accumulator");
        let sum_base = b.name("sum_base", Expr::mux(&in_first, &Expr::zero(s.acc), &acc));
        let acc_next = match role {
            PeRole::Alone => {
                let pairs: Vec<(Expr, Expr)> =
                    operands.into_iter().map(|(a, _, w)| (a, w)).collect();
                arith.accumulate(b, "", sum_base, &pairs)
            }
            PeRole::Upper => {
                let mut products = Vec::with_capacity(s.n as usize);
                for (i, (a, a_lower, w)) in operands.iter().enumerate() {
                    let a_lower = a_lower
                        .as_ref()
                        .expect("an upper PE has the row below's lanes");
                    let (upper, lower) = packed_products(b, &format!("mul_{i}_"), a, a_lower, w);
                    products.push(upper);
                    lower_products.push(lower.as_unsigned());
                }
                int_mac(cfg).accumulate_products(b, "", sum_base, &products)
            }
            PeRole::Lower => {
                let bus = in_products.clone().expect("a lower PE gets its products");
                let products: Vec<Expr> = (0..s.n)
                    .map(|i| {
                        bus.slice(i * PACKED_LOWER_BITS, PACKED_LOWER_BITS)
                            .as_signed()
                    })
                    .collect();
                int_mac(cfg).accumulate_products(b, "", sum_base, &products)
            }
        };
        (
            vec![
                set(&acc, Expr::zero(s.acc)),
                set(&result, Expr::zero(s.acc)),
            ],
            vec![when(
                in_valid.clone(),
                vec![
                    set(&acc, acc_next.clone()),
                    when(in_last.clone(), vec![set(&result, acc_next)]),
                ],
            )],
        )
    };

    b.comment("Control and accumulator: reset, then one group per valid cycle.");
    let mut reset = vec![
        set(&out_valid, Expr::bit(false)),
        set(&out_first, Expr::bit(false)),
        set(&out_last, Expr::bit(false)),
    ];
    reset.extend(sum_reset);
    let mut run = vec![
        set(&out_valid, in_valid.clone()),
        set(&out_first, in_first.clone()),
        set(&out_last, in_last.clone()),
    ];
    run.extend(sum_update);
    b.clocked(&clk, vec![when_else(rst.clone(), reset, run)]);
    b.comment("Operand pipeline: data needs no reset, the valid flag qualifies it.");
    let mut data = Vec::new();
    if let (Some(out_act), Some(in_act)) = (out_act, in_act) {
        data.push(set(&out_act, in_act));
    }
    if let (Some(out), Some(input)) = (out_act_lower, in_act_lower) {
        data.push(set(&out, input));
    }
    data.push(set(&out_wgt, in_wgt));
    if let (Some(out_idx), Some(in_idx)) = (out_idx, in_idx) {
        data.push(set(&out_idx, in_idx));
    }
    if let Some(out_products) = out_products {
        // Entry i at [18i +: 18], most significant part first in the concatenation.
        lower_products.reverse();
        data.push(set(&out_products, Expr::concat(lower_products)));
    }
    b.clocked(&clk, data);
}

fn array_top(cfg: &StceConfig, pes: &[Option<ModuleDef>; 3]) -> ModuleDef {
    let s = Shape::of(cfg);
    let (rows, cols) = (cfg.rows, cfg.cols);
    ModuleBuilder::build(cfg.top.clone(), |b| {
        b.doc(format!(
            "STCE: {rows} x {cols} output-stationary systolic array, {} multipliers per PE, {}.",
            s.n,
            if s.sparse {
                format!(
                    "N:M sparse mode with M = {} (dense mode: indices 0..N-1)",
                    cfg.m
                )
            } else {
                "dense".to_string()
            }
        ));
        b.doc("Protocol: see the generator's `engines::stce` documentation (coforge).");
        let clk = b.input(ports::CLOCK, 1, "");
        let rst = b.input(ports::RESET, 1, "synchronous, active high");
        let valid = b.input(ports::VALID, 1, "a group is driven this cycle");
        let first = b.input(ports::FIRST, 1, "first group of a tile");
        let last = b.input(ports::LAST, 1, "last group of a tile");
        let act_in: Vec<Expr> = (0..rows)
            .map(|r| b.input(&ports::act_row(r), s.act_bus(), ""))
            .collect();
        let wgt_in: Vec<Expr> = (0..cols)
            .map(|c| b.input(&ports::wgt_col(c), s.wgt_bus(), ""))
            .collect();
        let idx_in: Vec<Option<Expr>> = (0..cols)
            .map(|c| {
                s.sparse
                    .then(|| b.input(&ports::idx_col(c), s.idx_bus(), ""))
            })
            .collect();
        let out_valid = b.output_reg(ports::OUT_VALID, 1, "a result row is shown this cycle");
        let out_row = b.output_reg(ports::OUT_ROW, index_bits(rows), "which row of its tile");
        let out_last = b.output_reg(ports::OUT_LAST, 1, "the tile's last row");
        let res_out: Vec<Expr> = (0..cols)
            .map(|c| b.output_reg(&ports::res_col(c), s.acc, "result of PE(out_row, c)"))
            .collect();

        // Skew: row r enters r cycles late and column c enters c cycles late, so that PE(r, c)
        // sees matching operands at t + r + c.
        let mut control_stmts = Vec::new();
        let mut data_stmts = Vec::new();
        let mut row_heads = Vec::new();
        for r in 0..rows {
            let mut ctrl = (valid.clone(), first.clone(), last.clone());
            let mut act = act_in[r as usize].clone();
            // With packing, a lower row's activations enter one cycle early (see the module doc).
            let act_delay = match PeRole::of_row(cfg, r) {
                PeRole::Lower => r - 1,
                PeRole::Alone | PeRole::Upper => r,
            };
            for d in 1..=r {
                let v = b.reg(&format!("valid_row{r}_d{d}"), 1);
                let f = b.reg(&format!("first_row{r}_d{d}"), 1);
                let l = b.reg(&format!("last_row{r}_d{d}"), 1);
                control_stmts.push((v.clone(), ctrl.0));
                control_stmts.push((f.clone(), ctrl.1));
                control_stmts.push((l.clone(), ctrl.2));
                if d <= act_delay {
                    let a = b.reg(&format!("act_row{r}_d{d}"), s.act_bus());
                    data_stmts.push(set(&a, act));
                    act = a;
                }
                ctrl = (v, f, l);
            }
            row_heads.push((ctrl, act));
        }
        let mut col_heads = Vec::new();
        for c in 0..cols {
            let mut wgt = wgt_in[c as usize].clone();
            let mut idx = idx_in[c as usize].clone();
            for d in 1..=c {
                let w = b.reg(&format!("wgt_col{c}_d{d}"), s.wgt_bus());
                data_stmts.push(set(&w, wgt));
                wgt = w;
                if let Some(i) = idx {
                    let q = b.reg(&format!("idx_col{c}_d{d}"), s.idx_bus());
                    data_stmts.push(set(&q, i));
                    idx = Some(q);
                }
            }
            col_heads.push((wgt, idx));
        }
        if !control_stmts.is_empty() {
            b.comment("Row skew, control: reset so that no phantom group enters the array.");
            let (reset, run): (Vec<_>, Vec<_>) = control_stmts
                .into_iter()
                .map(|(reg, next)| (set(&reg, Expr::bit(false)), set(&reg, next)))
                .unzip();
            b.clocked(&clk, vec![when_else(rst.clone(), reset, run)]);
        }
        if !data_stmts.is_empty() {
            b.comment("Row and column skew, data.");
            b.clocked(&clk, data_stmts);
        }

        // The array. Wires named `unused_*` are the east and south edges, where operands leave the
        // array; the name tells readers (and Verilator's UNUSED check) that dropping them is meant.
        // The valid and last flags entering row r's last PE say that row r of a tile completes at
        // the coming edge.
        let mut results = vec![Vec::new(); cols as usize];
        let mut row_completes = Vec::with_capacity(rows as usize);
        let mut from_above: Vec<(Expr, Option<Expr>)> = col_heads;
        // Each row's activation chain; a packed lower row's runs along the row above.
        let mut row_acts: Vec<Expr> = row_heads.iter().map(|(_, act)| act.clone()).collect();
        // The products a packing PE hands to the PE below it, per column.
        let mut products_from_above: Vec<Option<Expr>> = vec![None; cols as usize];
        let east_name = |what: &str, r: u32, c: u32| {
            if c + 1 == cols {
                format!("unused_{what}_r{r}_east")
            } else {
                format!("{what}_r{r}_c{}", c + 1)
            }
        };
        for r in 0..rows {
            let role = PeRole::of_row(cfg, r);
            let pe = pes[role.index()]
                .as_ref()
                .expect("the PE of every row's role is generated");
            let ((mut v, mut f, mut l), _) = row_heads[r as usize].clone();
            for c in 0..cols {
                let east = |what: &str| east_name(what, r, c);
                let south = |what: &str| {
                    if r + 1 == rows {
                        format!("unused_{what}_c{c}_south")
                    } else {
                        format!("{what}_r{}_c{c}", r + 1)
                    }
                };
                let out_v = b.wire(&east("valid"), 1);
                let out_f = b.wire(&east("first"), 1);
                let out_l = b.wire(&east("last"), 1);
                let out_a = (role != PeRole::Lower).then(|| b.wire(&east("act"), s.act_bus()));
                let out_w = b.wire(&south("wgt"), s.wgt_bus());
                let out_i = s.sparse.then(|| b.wire(&south("idx"), s.idx_bus()));
                let res = b.wire(&format!("result_r{r}_c{c}"), s.acc);
                let (w_in, i_in) = &from_above[c as usize];
                if c + 1 == cols {
                    let completes = v.and(&l);
                    row_completes.push(b.name(&format!("row_completes_r{r}"), completes));
                }
                let mut conns = vec![
                    (ports::CLOCK, clk.clone()),
                    (ports::RESET, rst.clone()),
                    ("in_valid", v),
                    ("in_first", f),
                    ("in_last", l),
                ];
                if out_a.is_some() {
                    conns.push(("in_act", row_acts[r as usize].clone()));
                }
                conns.push(("in_wgt", w_in.clone()));
                conns.push(("out_valid", out_v.clone()));
                conns.push(("out_first", out_f.clone()));
                conns.push(("out_last", out_l.clone()));
                if let Some(out_a) = &out_a {
                    conns.push(("out_act", out_a.clone()));
                    row_acts[r as usize] = out_a.clone();
                }
                conns.push(("out_wgt", out_w.clone()));
                conns.push(("result", res.clone()));
                if let (Some(i_in), Some(out_i)) = (i_in, &out_i) {
                    conns.push(("in_idx", i_in.clone()));
                    conns.push(("out_idx", out_i.clone()));
                }
                match role {
                    PeRole::Alone => {}
                    PeRole::Upper => {
                        let below = (r + 1) as usize;
                        let out_lower = b.wire(&east_name("act", r + 1, c), s.act_bus());
                        let products =
                            b.wire(&format!("products_r{}_c{c}", r + 1), s.products_bus());
                        conns.push(("in_act_lower", row_acts[below].clone()));
                        conns.push(("out_act_lower", out_lower.clone()));
                        conns.push(("out_products", products.clone()));
                        row_acts[below] = out_lower;
                        products_from_above[c as usize] = Some(products);
                    }
                    PeRole::Lower => {
                        let products = products_from_above[c as usize]
                            .take()
                            .expect("a lower PE sits below an upper one");
                        conns.push(("in_products", products));
                    }
                }
                b.instance(pe, &format!("pe_r{r}_c{c}"), conns);
                (v, f, l) = (out_v, out_f, out_l);
                from_above[c as usize] = (out_w, out_i);
                results[c as usize].push(res);
            }
        }

        b.comment("Read-out: row r of a tile is shown in the cycle after its last PE takes the");
        b.comment("tile's last group. The tile spacing rule keeps at most one row completing per");
        b.comment("cycle. The row index is a register, so the result multiplexer's select is one.");
        let any = row_completes[1..]
            .iter()
            .fold(row_completes[0].clone(), |acc, d| acc.or(d));
        let row_bits = out_row.width();
        let row_index = (0..rows as usize)
            .rev()
            .fold(Expr::zero(row_bits), |rest, r| {
                Expr::mux(&row_completes[r], &Expr::lit(r as u64, row_bits), &rest)
            });
        let last_row = row_completes[rows as usize - 1].clone();
        // With the fp32 adder pipeline a PE publishes its sum `pipeline_cycles` after it takes the
        // last group: the read-out flags wait as long.
        let mut heads = [any, row_index, last_row];
        let mut registers = Vec::new();
        for d in 0..pipeline_cycles(cfg) {
            for (what, head) in ["valid", "row", "last"].iter().zip(heads.iter_mut()) {
                let delayed = b.reg(&format!("completes_{what}_d{d}"), head.width());
                registers.push((delayed.clone(), std::mem::replace(head, delayed)));
            }
        }
        let [any, row_index, last_row] = heads;
        registers.extend([
            (out_valid, any),
            (out_row.clone(), row_index),
            (out_last, last_row),
        ]);
        b.clocked(
            &clk,
            vec![when_else(
                rst.clone(),
                registers
                    .iter()
                    .map(|(reg, _)| set(reg, Expr::zero(reg.width())))
                    .collect(),
                registers
                    .into_iter()
                    .map(|(reg, next)| set(&reg, next))
                    .collect(),
            )],
        );
        let row = |r: usize| -> Vec<Stmt> {
            res_out
                .iter()
                .zip(&results)
                .map(|(out, column)| set(out, column[r].clone()))
                .collect()
        };
        let zeros = res_out
            .iter()
            .map(|out| set(out, Expr::zero(s.acc)))
            .collect();
        let arms = (0..rows as usize).map(|r| (r as u64, row(r))).collect();
        b.combinational(vec![case(out_row, arms, zeros)]);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slot_tile_events_give_the_closed_form() {
        for tiles in 1..6 {
            for groups in 1..12 {
                for spacing in 1..9 {
                    let closed = (tiles - 1) * groups.max(spacing) + groups - 1;
                    assert_eq!(
                        last_group_of_last_tile(tiles, groups, 1, spacing),
                        closed,
                        "{tiles} tiles of {groups} groups, spacing {spacing}"
                    );
                }
            }
        }
    }

    #[test]
    fn slots_stagger_their_last_groups_by_the_spacing() {
        // Two slots, spacing 4, tiles of 10 groups: the slots' last groups want cycles 18 and
        // 19; 19 is too close, so slot 1 waits for cycle 23. Slot 0's next tile wants 18 + 20.
        assert_eq!(last_group_of_last_tile(2, 10, 2, 4), 23);
        assert_eq!(last_group_of_last_tile(3, 10, 2, 4), 38);
        // One tile on two slots: just its groups, every other cycle.
        assert_eq!(last_group_of_last_tile(1, 5, 2, 4), 8);
    }
}
