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
//! - The outputs are functions of registers only (no path from an input to an output).
//!   (One 32-bit port per column, not one packed port for the whole array: Verilator 5.006 is
//!   slow on very wide packed ports, see the design notes.)

use super::arith::{FpMac, IntMac, PeArith};
use crate::config::{Dtype, StceConfig};
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
/// (`out_valid`): the group crosses the `cols` columns of row 0, one register per PE. Row r
/// follows r cycles later.
pub fn latency(cfg: &StceConfig) -> u64 {
    u64::from(cfg.cols)
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
    let spacing = groups.max(tile_spacing(cfg));
    (tiles - 1) * spacing + groups + latency(cfg) + u64::from(cfg.rows) - 1
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
    let pe = processing_element(cfg, arith.as_ref());
    design.add(pe.clone())?;
    design.add(array_top(cfg, &pe))?;
    Ok(design)
}

/// The modules the engine defines besides its top, leaves first.
pub fn module_names(cfg: &StceConfig) -> Vec<String> {
    let arith = arithmetic(cfg);
    let mut names: Vec<String> = arith
        .leaf_modules()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    names.push(pe_name(cfg, arith.as_ref()));
    names
}

fn arithmetic(cfg: &StceConfig) -> Box<dyn PeArith> {
    match cfg.dtype {
        Dtype::Int8 => Box::new(IntMac {
            wgt_bits: cfg.weight_bits,
            overflow: cfg.overflow,
        }),
        Dtype::Fp16 => Box::new(FpMac),
    }
}

/// The PE's name encodes every parameter its body depends on.
fn pe_name(cfg: &StceConfig, arith: &dyn PeArith) -> String {
    if cfg.has_sparse_mode() {
        format!("stce_pe_{}_n{}_m{}", arith.tag(), cfg.n, cfg.m)
    } else {
        format!("stce_pe_{}_n{}_dense", arith.tag(), cfg.n)
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
}

fn processing_element(cfg: &StceConfig, arith: &dyn PeArith) -> ModuleDef {
    let s = Shape::of(cfg);
    let mut b = ModuleBuilder::new(pe_name(cfg, arith));
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
    b.doc("Activations and flags pass right, weights pass down, each through one register.");
    let clk = b.input(ports::CLOCK, 1, "");
    let rst = b.input(ports::RESET, 1, "synchronous, active high");
    let in_valid = b.input("in_valid", 1, "a group is present");
    let in_first = b.input("in_first", 1, "first group of a tile: start a new sum");
    let in_last = b.input("in_last", 1, "last group of a tile: publish the sum");
    let in_act = b.input("in_act", s.act_bus(), "activation lanes, from the left");
    let in_wgt = b.input("in_wgt", s.wgt_bus(), "weights, from above");
    let in_idx = s
        .sparse
        .then(|| b.input("in_idx", s.idx_bus(), "weight positions in the group"));
    let out_valid = b.output_reg("out_valid", 1, "");
    let out_first = b.output_reg("out_first", 1, "");
    let out_last = b.output_reg("out_last", 1, "");
    let out_act = b.output_reg("out_act", s.act_bus(), "to the right");
    let out_wgt = b.output_reg("out_wgt", s.wgt_bus(), "downwards");
    let out_idx = s
        .sparse
        .then(|| b.output_reg("out_idx", s.idx_bus(), "downwards"));
    let result = b.output_reg("result", s.acc, "sum of the last finished tile");

    let acc = b.reg("acc", s.acc);
    b.describe("running sum of the current tile");

    let mut pairs = Vec::with_capacity(s.n as usize);
    for i in 0..s.n {
        let activation = match &in_idx {
            Some(idx_bus) => {
                // M:1 selection: lane offset = index * act_bits (act_bits is a power of two).
                let idx = b.name(&format!("idx_{i}"), idx_bus.slice(i * s.idx, s.idx));
                let shift = s.act.trailing_zeros();
                let offset = Expr::concat(vec![idx, Expr::zero(shift)]);
                b.name(&format!("act_{i}"), in_act.dyn_slice(offset, s.act))
            }
            None => b.name(&format!("act_{i}"), in_act.slice(i * s.act, s.act)),
        };
        let weight = b.name(&format!("wgt_{i}"), in_wgt.slice(i * s.wgt, s.wgt));
        pairs.push((activation, weight));
    }
    let sum_base = b.name("sum_base", Expr::mux(&in_first, &Expr::zero(s.acc), &acc));
    let acc_next = arith.accumulate(&mut b, "", sum_base, &pairs);

    b.comment("Control and accumulator: reset, then one group per valid cycle.");
    b.clocked(
        &clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&out_valid, Expr::bit(false)),
                set(&out_first, Expr::bit(false)),
                set(&out_last, Expr::bit(false)),
                set(&acc, Expr::zero(s.acc)),
                set(&result, Expr::zero(s.acc)),
            ],
            vec![
                set(&out_valid, in_valid.clone()),
                set(&out_first, in_first.clone()),
                set(&out_last, in_last.clone()),
                when(
                    in_valid.clone(),
                    vec![
                        set(&acc, acc_next.clone()),
                        when(in_last.clone(), vec![set(&result, acc_next)]),
                    ],
                ),
            ],
        )],
    );
    b.comment("Operand pipeline: data needs no reset, the valid flag qualifies it.");
    let mut data = vec![set(&out_act, in_act), set(&out_wgt, in_wgt)];
    if let (Some(out_idx), Some(in_idx)) = (out_idx, in_idx) {
        data.push(set(&out_idx, in_idx));
    }
    b.clocked(&clk, data);
    b.finish()
}

fn array_top(cfg: &StceConfig, pe: &ModuleDef) -> ModuleDef {
    let s = Shape::of(cfg);
    let (rows, cols) = (cfg.rows, cfg.cols);
    let mut b = ModuleBuilder::new(cfg.top.clone());
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
    b.output(ports::OUT_VALID, 1, "a result row is shown this cycle");
    let out_row = b.output(ports::OUT_ROW, index_bits(rows), "which row of its tile");
    b.output(ports::OUT_LAST, 1, "the tile's last row");
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
        for d in 1..=r {
            let v = b.reg(&format!("valid_row{r}_d{d}"), 1);
            let f = b.reg(&format!("first_row{r}_d{d}"), 1);
            let l = b.reg(&format!("last_row{r}_d{d}"), 1);
            let a = b.reg(&format!("act_row{r}_d{d}"), s.act_bus());
            control_stmts.push((v.clone(), ctrl.0));
            control_stmts.push((f.clone(), ctrl.1));
            control_stmts.push((l.clone(), ctrl.2));
            data_stmts.push(set(&a, act));
            ctrl = (v, f, l);
            act = a;
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
    // The valid and last flags leaving row r eastwards say that row r of a tile is complete.
    let mut results = vec![Vec::new(); cols as usize];
    let mut row_done = Vec::with_capacity(rows as usize);
    let mut from_above: Vec<(Expr, Option<Expr>)> = col_heads;
    for r in 0..rows {
        let ((mut v, mut f, mut l), mut act) = row_heads[r as usize].clone();
        for c in 0..cols {
            let east = |what: &str| match (c + 1 == cols, what) {
                (true, "valid" | "last") => format!("{what}_r{r}_east"),
                (true, _) => format!("unused_{what}_r{r}_east"),
                (false, _) => format!("{what}_r{r}_c{}", c + 1),
            };
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
            let out_a = b.wire(&east("act"), s.act_bus());
            let out_w = b.wire(&south("wgt"), s.wgt_bus());
            let out_i = s.sparse.then(|| b.wire(&south("idx"), s.idx_bus()));
            let res = b.wire(&format!("result_r{r}_c{c}"), s.acc);
            let (w_in, i_in) = &from_above[c as usize];
            let mut conns = vec![
                (ports::CLOCK, clk.clone()),
                (ports::RESET, rst.clone()),
                ("in_valid", v),
                ("in_first", f),
                ("in_last", l),
                ("in_act", act),
                ("in_wgt", w_in.clone()),
                ("out_valid", out_v.clone()),
                ("out_first", out_f.clone()),
                ("out_last", out_l.clone()),
                ("out_act", out_a.clone()),
                ("out_wgt", out_w.clone()),
                ("result", res.clone()),
            ];
            if let (Some(i_in), Some(out_i)) = (i_in, &out_i) {
                conns.push(("in_idx", i_in.clone()));
                conns.push(("out_idx", out_i.clone()));
            }
            b.instance(pe, &format!("pe_r{r}_c{c}"), conns);
            (v, f, l, act) = (out_v, out_f, out_l, out_a);
            from_above[c as usize] = (out_w, out_i);
            results[c as usize].push(res);
        }
        row_done.push(b.name(&format!("row_done_r{r}"), v.and(&l)));
    }

    b.comment(
        "Read-out: row r of a tile is complete when its last group leaves the row eastwards.",
    );
    b.comment("The tile spacing rule keeps at most one row_done high per cycle.");
    let any_done = row_done[1..]
        .iter()
        .fold(row_done[0].clone(), |acc, d| acc.or(d));
    b.drive(ports::OUT_VALID, any_done);
    let row_bits = out_row.width();
    let row_index = (0..rows as usize)
        .rev()
        .fold(Expr::zero(row_bits), |rest, r| {
            Expr::mux(&row_done[r], &Expr::lit(r as u64, row_bits), &rest)
        });
    b.drive(ports::OUT_ROW, row_index);
    b.drive(ports::OUT_LAST, row_done[rows as usize - 1].clone());
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
    b.finish()
}
