//! AXI wrappers: one module `<top>_axi` per engine top, with the standard interfaces that
//! Vivado IP Integrator and Vitis connect to without glue. The engine inside keeps its native
//! ports; the wrapper turns them into AXI4-Stream and AXI4-Lite.
//!
//! # Ports (Xilinx interface-inference names)
//! - `aclk`, `aresetn`: the clock and the AXI reset, active low, synchronous to `aclk`. The
//!   wrapper registers `aresetn` once (`rst`, active high) and resets itself and the engine with
//!   that register, as Xilinx IP does (the register cuts the reset net's fan-out from the
//!   pin). Hold `aresetn` low for at least 16 cycles (Xilinx's rule for AXI IP; the engine
//!   needs only `stce::RESET_CYCLES`). From the second cycle of reset on, every `TVALID`,
//!   `TREADY`, `AWREADY`, `WREADY`, `ARREADY`, `BVALID` and `RVALID` of the wrapper is low.
//! - `s_axis_in_tdata/_tkeep/_tvalid/_tready/_tlast`: the AXI4-Stream slave, `m_axis_out_...`:
//!   the master. `TKEEP` is there only where a beat can be partial (the lane engines' last
//!   beat of a job); the STCE's beats are always whole, so it has none (Xilinx treats a
//!   missing `TKEEP` as all ones).
//! - `s_axi_ctrl_*`: an AXI4-Lite slave (`awaddr awvalid awready wdata wstrb wvalid wready
//!   bresp bvalid bready araddr arvalid arready rdata rresp rvalid rready`) with 32-bit
//!   registers at byte addresses 4·i (see each wrapper's register map below). Writes to a
//!   read-only or unmapped register are ignored and answered OKAY; unmapped reads give 0.
//!
//! # AXI rules the wrappers keep
//! - Every `TVALID`, `BVALID` and `RVALID` the wrapper drives is a register, so it never
//!   depends combinationally on the matching `TREADY`/`BREADY`/`RREADY`, and once high it
//!   stays high with `TDATA`/`TLAST` (or `RDATA`) unchanged until the handshake.
//!   [`ready_to_valid_paths`] checks the first property on the generated module, and the
//!   tests run it on every wrapper (the closed-loop simulation evaluates a cycle once, so it
//!   cannot toggle `TREADY` within a cycle; this structural check is its documented
//!   equivalent).
//! - Every `TREADY` the wrapper drives is a register too (a skid buffer on every slave
//!   stream): it depends on nothing the master drives in the same cycle.
//!
//! # The STCE wrapper ([`stce_wrapper`])
//! - `s_axis_in`: one beat per reduction group. `TDATA` packs, from bit 0 up, `act_row0 ..
//!   act_row<rows-1>`, then `wgt_col0 .. wgt_col<cols-1>`, then (sparse engines)
//!   `idx_col0 .. idx_col<cols-1>`, each at its engine width (`stce` protocol), zero-padded to
//!   whole bytes. `TLAST` marks a tile's last group; the first beat after reset and every beat
//!   after a `TLAST` beat starts a new tile (the engine's `in_first`). Dense mode is the same
//!   stream with indices 0..N-1, so the mode is part of the data, not a register.
//! - `m_axis_out`: one beat per result row, `res_col0 .. res_col<cols-1>` from bit 0 up,
//!   `TLAST` on each tile's last row. Rows come in the order of the tiles' `TLAST` beats.
//! - **Back-pressure rule.** The engine cannot be stalled on its output: a row it shows must be
//!   taken in that cycle. So results land in a FIFO of [`stce_fifo_depth`] rows, and the wrapper
//!   hands the engine a tile's last group only when (a) the FIFO has room for that tile's `rows`
//!   rows counting every row still in flight (a credit counter: `rows` credits are taken when
//!   the last group is issued, one is returned when `m_axis_out` hands a row out), and (b) the
//!   engine's pacing rule holds (`stce::tile_spacing` cycles since the previous last group).
//!   Other groups are issued as soon as they arrive. A slow sink therefore stalls the input
//!   stream, never the engine, and no row is ever dropped; `STATUS.overflow` would say so.
//!
//! - Registers: the common map below, where a beat in is a group and a beat out a result
//!   row; STATUS bits 1 overflow, 2 order (the engine showed a row out of order); INFO is
//!   rows \| cols << 8 \| N << 16 \| M << 24.
//!
//! # The lane wrappers (SORE, WUVE: [`lane_wrapper`])
//! Described in `lanes`: a slot of whole bytes per lane in every beat, `TKEEP` per lane, one
//! result beat per completed result, the same credit rule; the WUVE's `lr` and `lambda` are
//! parameter registers.
//!
//! # The common register map (every wrapper; [`regs`])
//! | offset | register | access | meaning |
//! |---|---|---|---|
//! | 0x00 | CONTROL | write | bit 0: clear the counters and sticky flags (reads 0) |
//! | 0x04 | STATUS | read | bit 0 busy (a beat or a result is inside the wrapper); bits 1.. the wrapper's sticky flags, bit 1 always overflow (a result arrived at a full FIFO; the credit rule makes this impossible) and bit 2 order |
//! | 0x08 | CYCLES | read | cycles with the wrapper busy since the last clear |
//! | 0x0C | BEATS_IN | read | beats handed to the engine |
//! | 0x10 | BEATS_OUT | read | result beats handed out on `m_axis_out` |
//! | 0x14 | OUT_STALLS | read | cycles a result beat waited for `m_axis_out_tready` |
//! | 0x18 | INFO | read | the engine's shape (per wrapper) |
//! | 0x1C.. | parameters | read/write | the wrapper's run-time parameters, in order |
//!
//! The closed-loop bus models that drive these wrappers in simulation are written once, in
//! Rust, in `coforge_sim::axi` (not in the C++ shim).

mod deform;
mod lanes;
pub mod sat;

pub use deform::{
    deform_engine, deform_ports, deform_regs, deform_wrapper, stream_layout, DeformEngine,
    DeformStream, Extent, Start, DEFORM_EXTRA_CYCLES,
};
pub use lanes::{
    lane_wrapper, sore_engine, wuve_engine, LaneEngine, LaneField, LaneLayout, LANE_EXTRA_CYCLES,
};

use super::stce;
use crate::config::StceConfig;
use crate::rtl::{
    case, index_bits, set, when, when_else, Dir, Expr, ExprNode, Item, ModuleBuilder, ModuleDef,
    Reserved, StmtNode,
};
use std::collections::{BTreeMap, BTreeSet};

/// Port names shared by the wrappers and the bus models that drive them.
pub mod ports {
    pub const CLOCK: &str = "aclk";
    pub const RESET_N: &str = "aresetn";
    /// Every wrapper's input stream (`s_axis_in_*`).
    pub const IN: &str = "s_axis_in";
    /// Every wrapper's result stream (`m_axis_out_*`).
    pub const OUT: &str = "m_axis_out";
    /// The STCE's input stream.
    pub const STCE_IN: &str = IN;
    /// The STCE's result stream.
    pub const STCE_OUT: &str = OUT;
    /// The AXI4-Lite control slave (`s_axi_ctrl_*`).
    pub const CTRL: &str = "s_axi_ctrl";
}

/// Byte address width of the AXI4-Lite register space (64 registers).
pub const CTRL_ADDR_BITS: u32 = 8;

/// Register offsets every wrapper has (bytes), as in the common register map of the module docs.
pub mod regs {
    pub const CONTROL: u64 = 0x00;
    pub const STATUS: u64 = 0x04;
    pub const CYCLES: u64 = 0x08;
    pub const BEATS_IN: u64 = 0x0C;
    pub const BEATS_OUT: u64 = 0x10;
    pub const OUT_STALLS: u64 = 0x14;
    pub const INFO: u64 = 0x18;
    /// The first run-time parameter register; parameter i is at `PARAMS + 4*i`.
    pub const PARAMS: u64 = 0x1C;
    /// STATUS bit 0: a beat or a result is inside the wrapper.
    pub const STATUS_BUSY: u32 = 1;
}

/// Register offsets of the STCE wrapper (bytes): the common map, where a beat in is a group and
/// a beat out a result row.
pub mod stce_regs {
    pub use super::regs::{CONTROL, CYCLES, INFO, OUT_STALLS, STATUS};
    pub const GROUPS: u64 = super::regs::BEATS_IN;
    pub const ROWS: u64 = super::regs::BEATS_OUT;
}

/// Cycles the STCE wrapper adds to the engine's own (`stce::estimated_cycles`) when no stream
/// stalls: one at the input (a beat taken at a clock edge reaches the engine from the skid
/// buffer's head register in the next cycle) and two at the output (a row the engine shows is
/// written into the FIFO at that cycle's edge, read into the bus register at the next, and
/// taken in the cycle after).
pub const STCE_EXTRA_CYCLES: u64 = 3;

/// The wrapper's module name for an engine top.
pub fn wrapper_name(top: &str) -> String {
    format!("{top}_axi")
}

/// Bits of one `s_axis_in` beat before byte padding: act rows, weight columns, index columns.
fn stce_in_fields(cfg: &StceConfig) -> Vec<(String, u32)> {
    let lanes = cfg.lanes();
    let mut out: Vec<(String, u32)> = (0..cfg.rows)
        .map(|r| (stce::ports::act_row(r), lanes * cfg.act_bits()))
        .collect();
    out.extend((0..cfg.cols).map(|c| (stce::ports::wgt_col(c), cfg.n * cfg.wgt_bits())));
    if cfg.has_sparse_mode() {
        out.extend((0..cfg.cols).map(|c| (stce::ports::idx_col(c), cfg.n * cfg.index_bits())));
    }
    out
}

/// `(engine port, bit offset in TDATA, width)` of every field of an `s_axis_in` beat.
pub fn stce_in_layout(cfg: &StceConfig) -> Vec<(String, u32, u32)> {
    let mut lo = 0;
    stce_in_fields(cfg)
        .into_iter()
        .map(|(name, w)| {
            let field = (name, lo, w);
            lo += w;
            field
        })
        .collect()
}

/// Width of `s_axis_in_tdata`: the fields rounded up to whole bytes.
pub fn stce_in_width(cfg: &StceConfig) -> u32 {
    let bits: u32 = stce_in_fields(cfg).iter().map(|(_, w)| w).sum();
    bits.div_ceil(8) * 8
}

/// Width of `m_axis_out_tdata`: one accumulator per column.
pub fn stce_out_width(cfg: &StceConfig) -> u32 {
    cfg.cols * cfg.acc_bits()
}

/// Rows the result FIFO holds: enough credits for the tiles in flight when the sink takes a
/// row every cycle, so the credit rule costs no throughput then. A tile's rows come back
/// `latency + rows + 2` cycles after its last group at most (engine, FIFO write, read
/// register, handshake), and last groups are at least `tile_spacing` apart; one more tile's
/// worth lets the next last group go at once. Rounded up to a power of two (pointer wrap).
pub fn stce_fifo_depth(cfg: &StceConfig) -> u32 {
    let rows = u64::from(cfg.rows);
    let turnaround = stce::latency(cfg) + rows + 2;
    let tiles = turnaround.div_ceil(stce::tile_spacing(cfg)) + 1;
    ((rows * tiles) as u32).next_power_of_two().max(2)
}

/// The AXI reset: `rst` is `!aresetn` registered once (see the module docs).
fn reset_register<'id>(b: &mut ModuleBuilder<'id>, clk: &Expr<'id>) -> Expr<'id> {
    let aresetn = b.input(
        ports::RESET_N,
        1,
        "AXI reset, active low, synchronous to aclk",
    );
    let rst = b.reg("rst", 1);
    b.describe("!aresetn, registered: the reset of the wrapper and the engine (active high)");
    b.clocked(clk, vec![set(&rst, aresetn.not())]);
    rst
}

/// A free-running 32-bit counter: +1 when `inc`, 0 on reset or `clear`.
fn counter<'id>(
    b: &mut ModuleBuilder<'id>,
    clk: &Expr<'id>,
    rst: &Expr<'id>,
    name: &str,
    inc: Expr<'id>,
    clear: &Expr<'id>,
) -> Expr<'id> {
    let c = b.reg(name, 32);
    b.clocked(
        clk,
        vec![when_else(
            rst.lor(clear),
            vec![set(&c, Expr::zero(32))],
            vec![when(inc, vec![set(&c, c.add(&Expr::lit(1, 32)))])],
        )],
    );
    c
}

/// A sticky flag: set when `raise`, cleared on reset or `clear`.
fn sticky<'id>(
    b: &mut ModuleBuilder<'id>,
    clk: &Expr<'id>,
    rst: &Expr<'id>,
    name: &str,
    raise: Expr<'id>,
    clear: &Expr<'id>,
) -> Expr<'id> {
    let f = b.reg(name, 1);
    b.clocked(
        clk,
        vec![when_else(
            rst.lor(clear),
            vec![set(&f, Expr::bit(false))],
            vec![when(raise, vec![set(&f, Expr::bit(true))])],
        )],
    );
    f
}

/// One register of an AXI4-Lite register file.
pub enum LiteReg<'id> {
    /// A value the wrapper computes (zero-extended to 32 bits).
    Status(Expr<'id>),
    /// A register the host writes and reads back, `width` bits, reset to `reset`.
    /// The register is reserved ahead (its value usually feeds the engine before the
    /// register file is built, see [`reserve_param`]) and declared by the register file.
    Param { reg: Reserved<'id>, reset: u64 },
    /// Reads 0; a write of a word with bit 0 set makes a one-cycle pulse.
    Pulse { name: String },
    /// A [`LiteReg::Pulse`] whose register is reserved ahead, like a `Param`'s.
    ReservedPulse { reg: Reserved<'id> },
}

/// An AXI4-Lite slave over `regs` (register i at byte 4·i). Returns, per register, the
/// register's value for `Param`s and the pulse for `Pulse`s (`None` for `Status`).
///
/// Writes: `AWREADY` and `WREADY` rise together for one cycle once both `AWVALID` and `WVALID`
/// are high and no response is pending, the register is written with `WSTRB` applied, and
/// `BVALID` follows in the next cycle. Reads: `ARREADY` is high while no read data is pending;
/// `RDATA` is registered and shown with `RVALID` in the next cycle.
fn axi_lite_slave<'id>(
    b: &mut ModuleBuilder<'id>,
    clk: &Expr<'id>,
    rst: &Expr<'id>,
    regs: Vec<LiteReg<'id>>,
) -> Vec<Option<Expr<'id>>> {
    let p = ports::CTRL;
    let awaddr = b.input(&format!("{p}_awaddr"), CTRL_ADDR_BITS, "");
    let awvalid = b.input(&format!("{p}_awvalid"), 1, "");
    let awready = b.output_reg(&format!("{p}_awready"), 1, "");
    let wdata = b.input(&format!("{p}_wdata"), 32, "");
    let wstrb = b.input(&format!("{p}_wstrb"), 4, "");
    let wvalid = b.input(&format!("{p}_wvalid"), 1, "");
    let wready = b.output_reg(&format!("{p}_wready"), 1, "");
    let bresp = b.output(&format!("{p}_bresp"), 2, "always OKAY");
    let bvalid = b.output_reg(&format!("{p}_bvalid"), 1, "");
    let bready = b.input(&format!("{p}_bready"), 1, "");
    let araddr = b.input(&format!("{p}_araddr"), CTRL_ADDR_BITS, "");
    let arvalid = b.input(&format!("{p}_arvalid"), 1, "");
    let arready = b.output_reg(&format!("{p}_arready"), 1, "");
    let rdata = b.output_reg(&format!("{p}_rdata"), 32, "");
    let rresp = b.output(&format!("{p}_rresp"), 2, "always OKAY");
    let rvalid = b.output_reg(&format!("{p}_rvalid"), 1, "");
    let rready = b.input(&format!("{p}_rready"), 1, "");
    b.drive(&bresp, Expr::zero(2));
    b.drive(&rresp, Expr::zero(2));
    let _ = (bresp, rresp);

    let word_bits = CTRL_ADDR_BITS - 2;
    // The two low address bits select a byte within a word: registers are word aligned.
    // (and registers narrower than 32 bits leave write data unused).
    b.name(
        "ctrl_unused_bits",
        Expr::concat(vec![
            awaddr.slice(0, 2),
            araddr.slice(0, 2),
            wdata.clone(),
            wstrb.clone(),
        ]),
    );
    let aw_word = awaddr.slice(2, word_bits);
    let ar_word = araddr.slice(2, word_bits);

    // Write channel: one write at a time; the address and data handshakes happen together.
    let write = b.name(
        "ctrl_write",
        awvalid
            .land(&wvalid)
            .land(&bvalid.not())
            .land(&awready.not()),
    );
    b.clocked(
        clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&awready, Expr::bit(false)),
                set(&wready, Expr::bit(false)),
                set(&bvalid, Expr::bit(false)),
            ],
            vec![
                set(&awready, write.clone()),
                set(&wready, write.clone()),
                when_else(
                    awready.clone(),
                    vec![set(&bvalid, Expr::bit(true))],
                    vec![when(bready.clone(), vec![set(&bvalid, Expr::bit(false))])],
                ),
            ],
        )],
    );
    // The register write happens in the cycle AWREADY/WREADY are high (the handshake cycle).
    // A register narrower than 32 bits takes the low bits of the bytes it overlaps.
    let strobe = |word: &Expr<'id>, old: &Expr<'id>, width: u32| -> Expr<'id> {
        let bytes: Vec<Expr> = (0..width.div_ceil(8))
            .map(|i| {
                let bits = (width - 8 * i).min(8);
                Expr::mux(
                    &wstrb.bit_at(i),
                    &word.slice(8 * i, bits),
                    &old.slice(8 * i, bits),
                )
            })
            .collect();
        Expr::concat(bytes.into_iter().rev().collect())
    };
    let mut values = Vec::new();
    let mut reads = Vec::new();
    for (i, reg) in regs.into_iter().enumerate() {
        let here = aw_word.eq(&Expr::lit(i as u64, word_bits));
        let hit_name = format!("ctrl_write_{i}");
        let hit_expr = awready.land(&here);
        match reg {
            LiteReg::Status(v) => {
                reads.push((i as u64, v.zext(32)));
                values.push(None);
            }
            LiteReg::Param { reg, reset } => {
                let hit = b.name(&hit_name, hit_expr);
                let r = b.place(reg);
                let width = r.width();
                b.clocked(
                    clk,
                    vec![when_else(
                        rst.clone(),
                        vec![set(&r, Expr::lit(reset, width))],
                        vec![when(hit, vec![set(&r, strobe(&wdata, &r, width))])],
                    )],
                );
                reads.push((i as u64, r.zext(32)));
                values.push(Some(r));
            }
            LiteReg::Pulse { .. } | LiteReg::ReservedPulse { .. } => {
                let hit = b.name(&hit_name, hit_expr);
                let r = match reg {
                    LiteReg::ReservedPulse { reg } => b.place(reg),
                    LiteReg::Pulse { name } => b.reg(&name, 1),
                    _ => unreachable!("a pulse register"),
                };
                b.clocked(
                    clk,
                    vec![when_else(
                        rst.clone(),
                        vec![set(&r, Expr::bit(false))],
                        vec![set(&r, hit.land(&wstrb.bit_at(0)).land(&wdata.bit_at(0)))],
                    )],
                );
                values.push(Some(r));
            }
        }
    }

    // Read channel.
    let read = b.name("ctrl_read", arvalid.land(&arready));
    let read_stmt = case(
        ar_word,
        reads
            .into_iter()
            .map(|(i, v)| (i, vec![set(&rdata, v)]))
            .collect(),
        vec![set(&rdata, Expr::zero(32))],
    );
    b.clocked(
        clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&arready, Expr::bit(false)),
                set(&rvalid, Expr::bit(false)),
                set(&rdata, Expr::zero(32)),
            ],
            vec![
                // ARREADY is low while a read is answered, and in the cycle after a handshake.
                set(&arready, rvalid.not().land(&read.not())),
                when_else(
                    read.clone(),
                    vec![set(&rvalid, Expr::bit(true)), read_stmt],
                    vec![when(rready.clone(), vec![set(&rvalid, Expr::bit(false))])],
                ),
            ],
        )],
    );
    values
}

/// An AXI4-Stream slave `<prefix>_*` (`tdata` of `width` bits, `tkeep` of `keep_bytes` bits
/// when that is not 0, `tvalid`, `tready`, `tlast`) behind a two-entry skid buffer. `TREADY`
/// is a register (low only while the skid entry is full), so it does not depend on anything
/// driven in the same cycle. `payload(b, tdata, tkeep, tlast)` picks what a beat carries
/// inward (and names the bits it leaves unused). Returns `(valid, payload)` of the head beat;
/// the head leaves when `pop` (a wire the caller drives later, high only with `valid`) is
/// high.
fn axis_slave<'id>(
    b: &mut ModuleBuilder<'id>,
    clk: &Expr<'id>,
    rst: &Expr<'id>,
    prefix: &str,
    (width, keep_bytes): (u32, u32),
    payload: impl FnOnce(
        &mut ModuleBuilder<'id>,
        &Expr<'id>,
        Option<&Expr<'id>>,
        &Expr<'id>,
    ) -> Expr<'id>,
    pop: &Expr<'id>,
) -> (Expr<'id>, Expr<'id>) {
    let tdata = b.input(&format!("{prefix}_tdata"), width, "");
    let tkeep = (keep_bytes > 0).then(|| {
        b.input(
            &format!("{prefix}_tkeep"),
            keep_bytes,
            "one bit per byte of TDATA",
        )
    });
    let tvalid = b.input(&format!("{prefix}_tvalid"), 1, "");
    let tready = b.output(
        &format!("{prefix}_tready"),
        1,
        "a register: the skid entry is empty",
    );
    let tlast = b.input(&format!("{prefix}_tlast"), 1, "");
    let beat = payload(b, &tdata, tkeep.as_ref(), &tlast);
    let bits = beat.width();
    let head_valid = b.reg(&format!("{prefix}_head_valid"), 1);
    let head = b.reg(&format!("{prefix}_head"), bits);
    b.describe("the beat offered to the engine");
    let skid_valid = b.reg(&format!("{prefix}_skid_valid"), 1);
    let skid = b.reg(&format!("{prefix}_skid"), bits);
    b.describe("a beat taken while the head could not move");
    b.drive(&tready, skid_valid.not().land(&rst.not()));
    let take = b.name(
        &format!("{prefix}_take"),
        tvalid.land(&skid_valid.not()).land(&rst.not()),
    );
    let head_free = head_valid.not().lor(pop);
    b.clocked(
        clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&head_valid, Expr::bit(false)),
                set(&skid_valid, Expr::bit(false)),
            ],
            vec![when_else(
                head_free.clone(),
                vec![when_else(
                    skid_valid.clone(),
                    // TREADY was low, so nothing is taken in this cycle.
                    vec![
                        set(&head_valid, Expr::bit(true)),
                        set(&skid_valid, Expr::bit(false)),
                    ],
                    vec![set(&head_valid, take.clone())],
                )],
                vec![when(take.clone(), vec![set(&skid_valid, Expr::bit(true))])],
            )],
        )],
    );
    // Data registers need no reset: they are read only with their valid bits.
    b.clocked(
        clk,
        vec![when_else(
            head_free.clone(),
            vec![when_else(
                skid_valid.clone(),
                vec![set(&head, skid.clone())],
                vec![when(take.clone(), vec![set(&head, beat.clone())])],
            )],
            vec![when(take, vec![set(&skid, beat)])],
        )],
    );
    (head_valid, head)
}

/// An AXI4-Stream master `<prefix>_*` fed by a FIFO of `depth` words (`depth` a power of two).
/// The engine side writes a beat (`data`, `keep` when the stream has `TKEEP`, `last`) when
/// `write`; the caller guarantees room (the credit rule). `TVALID`, `TDATA`, `TKEEP` and `TLAST`
/// are registers.
#[allow(clippy::too_many_arguments)]
fn axis_master_fifo<'id>(
    b: &mut ModuleBuilder<'id>,
    clk: &Expr<'id>,
    rst: &Expr<'id>,
    prefix: &str,
    depth: u32,
    write: &Expr<'id>,
    (data, keep, last): (&Expr<'id>, Option<&Expr<'id>>, &Expr<'id>),
) -> MasterFifo<'id> {
    let width = data.width();
    let keep_bytes = keep.map_or(0, Expr::width);
    let tdata = b.output(&format!("{prefix}_tdata"), width, "");
    let tkeep = (keep_bytes > 0).then(|| {
        b.output(
            &format!("{prefix}_tkeep"),
            keep_bytes,
            "one bit per byte of TDATA",
        )
    });
    let tvalid = b.output_reg(&format!("{prefix}_tvalid"), 1, "");
    let tready = b.input(&format!("{prefix}_tready"), 1, "");
    let tlast = b.output(&format!("{prefix}_tlast"), 1, "");
    let mut parts = vec![last.clone()];
    parts.extend(keep.cloned());
    parts.push(data.clone());
    let beat = &Expr::concat(parts);
    let word_bits = beat.width();
    let fifo = head_fifo(
        b,
        (clk, rst),
        prefix,
        depth,
        (write, beat),
        (&tvalid, &tready),
        "the word on the bus: {tlast, tkeep, tdata}",
    );
    let overflow = b.name(&format!("{prefix}_overflow"), write.land(&fifo.full));
    let word = &fifo.word;
    b.drive(&tdata, word.slice(0, width));
    if let Some(tkeep) = &tkeep {
        b.drive(tkeep, word.slice(width, keep_bytes));
    }
    b.drive(&tlast, word.bit_at(word_bits - 1));
    let (handshake, count) = (fifo.handshake, fifo.count);
    MasterFifo {
        stall: tvalid.land(&tready.not()),
        handshake,
        overflow,
        count,
        last: tlast,
    }
}

/// A FIFO whose oldest word waits in a register (`<name>_word`, described by `word_doc`) for
/// the handshake of `valid` (a register the caller declared: a `TVALID`, `AWVALID` or `WVALID`
/// output) with `ready`. `write` pushes `data` unless the FIFO is full (the callers' credit
/// rules keep it from being full then; `full` lets them tell). `depth` is a power of two.
/// Shared by every master channel of the wrappers: result streams and the AXI4 write channels.
fn head_fifo<'id>(
    b: &mut ModuleBuilder<'id>,
    (clk, rst): (&Expr<'id>, &Expr<'id>),
    name: &str,
    depth: u32,
    (write, data): (&Expr<'id>, &Expr<'id>),
    (valid, ready): (&Expr<'id>, &Expr<'id>),
    word_doc: &str,
) -> HeadFifo<'id> {
    let word_bits = data.width();
    let abits = index_bits(depth);
    let mem = b.memory(&format!("{name}_fifo"), word_bits, depth);
    let wptr = b.reg(&format!("{name}_wptr"), abits);
    let rptr = b.reg(&format!("{name}_rptr"), abits);
    let count = b.reg(&format!("{name}_count"), abits + 1);
    b.describe("words in the FIFO memory (not counting the one on the bus)");
    let word = b.reg(&format!("{name}_word"), word_bits);
    b.describe(word_doc);
    let handshake = b.name(&format!("{name}_handshake"), valid.land(ready));
    let nonempty = count.ne(&Expr::zero(abits + 1));
    let read = b.name(
        &format!("{name}_read"),
        nonempty.land(&valid.not().lor(&handshake)),
    );
    let full = count.eq(&Expr::lit(u64::from(depth), abits + 1));
    let accept = write.land(&full.not());
    b.memory_write(clk, &mem, &accept, &wptr, data);
    b.memory_read(clk, &mem, &word, &read, &rptr);
    let one = |w| Expr::lit(1, w);
    b.clocked(
        clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&wptr, Expr::zero(abits)),
                set(&rptr, Expr::zero(abits)),
                set(&count, Expr::zero(abits + 1)),
                set(valid, Expr::bit(false)),
            ],
            vec![
                when(accept.clone(), vec![set(&wptr, wptr.add(&one(abits)))]),
                when(read.clone(), vec![set(&rptr, rptr.add(&one(abits)))]),
                when_else(
                    accept.land(&read.not()),
                    vec![set(&count, count.add(&one(abits + 1)))],
                    vec![when(
                        read.land(&accept.not()),
                        vec![set(&count, count.sub(&one(abits + 1)))],
                    )],
                ),
                when_else(
                    read,
                    vec![set(valid, Expr::bit(true))],
                    vec![when(handshake.clone(), vec![set(valid, Expr::bit(false))])],
                ),
            ],
        )],
    );
    HeadFifo {
        word,
        handshake,
        full,
        count,
    }
}

/// What [`head_fifo`] gives its caller.
struct HeadFifo<'id> {
    /// The oldest word (valid with the caller's `valid`).
    word: Expr<'id>,
    /// A word left this cycle.
    handshake: Expr<'id>,
    full: Expr<'id>,
    /// Words in the FIFO memory, not counting `word`.
    count: Expr<'id>,
}

/// What [`axis_master_fifo`] gives its caller.
struct MasterFifo<'id> {
    /// A word left on the bus this cycle.
    handshake: Expr<'id>,
    /// A write found the FIFO full.
    overflow: Expr<'id>,
    /// Words in the FIFO memory.
    count: Expr<'id>,
    /// `TVALID && !TREADY`: a word waits for the sink (OUT_STALLS counts these cycles).
    stall: Expr<'id>,
    /// `TLAST` of the word on the bus.
    last: Expr<'id>,
}

/// The AXI wrapper of an STCE top `engine` generated from `cfg` (see the module docs).
pub fn stce_wrapper(cfg: &StceConfig, engine: &ModuleDef) -> ModuleDef {
    let (rows, cols) = (cfg.rows, cfg.cols);
    ModuleBuilder::build(wrapper_name(&cfg.top), |b| {
        b.doc(format!(
            "AXI wrapper of the STCE `{}`: AXI4-Stream in (one reduction group per beat), \
         AXI4-Stream out (one result row per beat), AXI4-Lite control and status.",
            cfg.top
        ));
        b.doc("Beat layouts, back-pressure rule and register map: the generator's `engines::axi`.");
        let clk = b.input(ports::CLOCK, 1, "");
        let rst = reset_register(b, &clk);

        // Input stream.
        let in_width = stce_in_width(cfg);
        let fields = stce_in_layout(cfg);
        let used: u32 = fields.iter().map(|(_, _, w)| w).sum();
        let pop = b.wire("in_pop", 1);
        let (head_valid, head_beat) = axis_slave(
            b,
            &clk,
            &rst,
            ports::STCE_IN,
            (in_width, 0),
            |b, tdata, _, tlast| {
                if used < in_width {
                    b.name(
                        &format!("{}_unused_pad", ports::STCE_IN),
                        tdata.slice(used, in_width - used),
                    );
                }
                Expr::concat(vec![tlast.clone(), tdata.slice(0, used)])
            },
            &pop,
        );
        let (head, head_last) = (head_beat.slice(0, used), head_beat.bit_at(used));

        // Credits and pacing for last groups.
        let depth = stce_fifo_depth(cfg);
        let cbits = index_bits(depth + 1);
        let credits = b.reg("credits", cbits);
        b.describe("FIFO rows neither holding a row nor reserved for a tile in flight");
        let spacing = stce::tile_spacing(cfg);
        let sbits = index_bits(spacing as u32 + 1);
        let since_last = b.reg("since_last", sbits);
        b.describe("cycles since the last group of the previous tile went in (saturates)");
        let next_first = b.reg("next_first", 1);
        b.describe("the next group starts a tile");
        let rows_lit = Expr::lit(u64::from(rows), cbits);
        let may_finish = b.name(
            "may_finish",
            credits
                .lt(&rows_lit)
                .not()
                .land(&since_last.lt(&Expr::lit(spacing, sbits)).not()),
        );
        let issue = b.name("issue", head_valid.land(&head_last.not().lor(&may_finish)));
        b.drive(&pop, issue.clone());
        let issue_last = issue.land(&head_last);

        // The engine.
        let eng_out_valid = b.wire("eng_out_valid", 1);
        let eng_out_row = b.wire("eng_out_row", index_bits(rows));
        let eng_out_last = b.wire("eng_out_last", 1);
        let res: Vec<Expr> = (0..cols)
            .map(|c| b.wire(&format!("eng_res_col{c}"), cfg.acc_bits()))
            .collect();
        let mut conn: Vec<(String, Expr)> = vec![
            (stce::ports::CLOCK.into(), clk.clone()),
            (stce::ports::RESET.into(), rst.clone()),
            (stce::ports::VALID.into(), issue.clone()),
            (stce::ports::FIRST.into(), next_first.clone()),
            (stce::ports::LAST.into(), head_last.clone()),
            (stce::ports::OUT_VALID.into(), eng_out_valid.clone()),
            (stce::ports::OUT_ROW.into(), eng_out_row.clone()),
            (stce::ports::OUT_LAST.into(), eng_out_last.clone()),
        ];
        for (name, lo, w) in &fields {
            conn.push((name.clone(), head.slice(*lo, *w)));
        }
        for (c, r) in res.iter().enumerate() {
            conn.push((stce::ports::res_col(c as u32), r.clone()));
        }
        let conn_ref: Vec<(&str, Expr)> =
            conn.iter().map(|(n, e)| (n.as_str(), e.clone())).collect();
        b.instance(engine, "engine", conn_ref);

        // Result rows.
        let row_data = Expr::concat(res.iter().rev().cloned().collect());
        let out = axis_master_fifo(
            b,
            &clk,
            &rst,
            ports::STCE_OUT,
            depth,
            &eng_out_valid,
            (&row_data, None, &eng_out_last),
        );
        let expected_row = b.reg("expected_row", index_bits(rows));
        b.describe("the row the engine should show next");
        let order_now = b.name(
            "order_now",
            eng_out_valid.land(
                &eng_out_row.ne(&expected_row).lor(
                    &eng_out_last
                        .ne(&expected_row.eq(&Expr::lit(u64::from(rows - 1), index_bits(rows)))),
                ),
            ),
        );

        let one = |w| Expr::lit(1, w);
        b.clocked(
            &clk,
            vec![when_else(
                rst.clone(),
                vec![
                    set(&credits, Expr::lit(u64::from(depth), cbits)),
                    set(&since_last, Expr::lit(spacing, sbits)),
                    set(&next_first, Expr::bit(true)),
                    set(&expected_row, Expr::zero(index_bits(rows))),
                ],
                vec![
                    set(
                        &credits,
                        Expr::mux(&issue_last, &credits.sub(&rows_lit), &credits)
                            .add(&out.handshake.zext(cbits)),
                    ),
                    when_else(
                        issue_last.clone(),
                        vec![set(&since_last, one(sbits))],
                        vec![when(
                            since_last.lt(&Expr::lit(spacing, sbits)),
                            vec![set(&since_last, since_last.add(&one(sbits)))],
                        )],
                    ),
                    when(issue.clone(), vec![set(&next_first, head_last.clone())]),
                    when(
                        eng_out_valid.clone(),
                        vec![set(
                            &expected_row,
                            Expr::mux(
                                &eng_out_last,
                                &Expr::zero(index_bits(rows)),
                                &expected_row.add(&one(index_bits(rows))),
                            ),
                        )],
                    ),
                ],
            )],
        );

        // Control and status.
        let in_flight = credits.ne(&Expr::lit(u64::from(depth), cbits));
        let busy = head_valid
            .lor(&in_flight)
            .lor(&out.count.ne(&Expr::zero(out.count.width())));
        control_block(
            b,
            &clk,
            &rst,
            Activity {
                busy,
                beat_in: issue,
                beat_out: out.handshake,
                out_stall: out.stall,
                flags: vec![("error_overflow", out.overflow), ("error_order", order_now)],
                info: rows | cols << 8 | cfg.n << 16 | cfg.m << 24,
            },
            Vec::new(),
        );
    })
}

/// What a wrapper's AXI4-Lite block reports (the common registers of the module docs).
struct Activity<'id> {
    /// A beat or a result is inside the wrapper (counted in CYCLES).
    busy: Expr<'id>,
    /// A beat went into the engine this cycle (counted in BEATS_IN).
    beat_in: Expr<'id>,
    /// A beat left on the output stream this cycle (counted in BEATS_OUT).
    beat_out: Expr<'id>,
    /// The output stream's `TVALID && !TREADY` (counted in OUT_STALLS).
    out_stall: Expr<'id>,
    /// STATUS bits 1, 2, ...: sticky flags, each with the condition that raises it.
    flags: Vec<(&'static str, Expr<'id>)>,
    /// The INFO register.
    info: u32,
}

/// A run-time parameter register of a wrapper: the host writes it (register `PARAMS + 4*i`)
/// and the wrapper drives the engine port of the same meaning from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamReg {
    /// The register's name in the register map (lower case in the Verilog).
    pub name: &'static str,
    pub width: u32,
    pub reset: u64,
    /// A START-like register: reads 0, a write with bit 0 set makes a one-cycle pulse.
    pub pulse: bool,
}

/// Reserves the parameter register of `p` (`param_<name>`): its value, and the [`LiteReg`]
/// that [`control_block`] declares.
fn reserve_param<'id>(b: &mut ModuleBuilder<'id>, p: &ParamReg) -> (Expr<'id>, LiteReg<'id>) {
    let (value, reg) = b.reserve_reg(&format!("param_{}", p.name), p.width);
    let lite = match p.pulse {
        true => LiteReg::ReservedPulse { reg },
        false => LiteReg::Param {
            reg,
            reset: p.reset,
        },
    };
    (value, lite)
}

/// The AXI4-Lite block every wrapper has: CONTROL, STATUS, CYCLES, BEATS_IN, BEATS_OUT,
/// OUT_STALLS, INFO, then the wrapper's `params` (from [`reserve_param`]) from
/// [`regs::PARAMS`] on.
fn control_block<'id>(
    b: &mut ModuleBuilder<'id>,
    clk: &Expr<'id>,
    rst: &Expr<'id>,
    a: Activity<'id>,
    params: Vec<LiteReg<'id>>,
) {
    let clear = b.wire("clear_counters", 1);
    let busy = b.name("busy", a.busy);
    let cycles = counter(b, clk, rst, "count_cycles", busy.clone(), &clear);
    let beats_in = counter(b, clk, rst, "count_beats_in", a.beat_in, &clear);
    let beats_out = counter(b, clk, rst, "count_beats_out", a.beat_out, &clear);
    let stalls = counter(b, clk, rst, "count_out_stalls", a.out_stall, &clear);
    let mut status = vec![busy];
    for (name, raise) in a.flags {
        status.push(sticky(b, clk, rst, name, raise, &clear));
    }
    status.reverse();
    let mut regs = vec![
        LiteReg::Pulse {
            name: "control_clear".into(),
        },
        LiteReg::Status(Expr::concat(status)),
        LiteReg::Status(cycles),
        LiteReg::Status(beats_in),
        LiteReg::Status(beats_out),
        LiteReg::Status(stalls),
        LiteReg::Status(Expr::lit(u64::from(a.info), 32)),
    ];
    regs.extend(params);
    let values = axi_lite_slave(b, clk, rst, regs);
    b.drive(
        &clear,
        values[0].clone().expect("CONTROL is a pulse register"),
    );
}

/// `TREADY -> TVALID` (and `BREADY -> BVALID`, `RREADY -> RVALID`) combinational paths of a
/// wrapper: the AXI rule that a master's `VALID` must not wait for `READY`. Empty when the rule
/// holds.
pub fn ready_to_valid_paths(
    module: &ModuleDef,
    modules: &BTreeMap<String, ModuleDef>,
) -> Vec<(String, String)> {
    let deps = port_dependencies(module, modules);
    let mut out = Vec::new();
    for (output, inputs) in deps {
        if let Some(prefix) = output.strip_suffix("valid") {
            let ready = format!("{prefix}ready");
            if inputs.contains(&ready) {
                out.push((ready, output.clone()));
            }
        }
    }
    out
}

/// For every output port, the input ports it depends on combinationally.
fn port_dependencies(
    module: &ModuleDef,
    modules: &BTreeMap<String, ModuleDef>,
) -> BTreeMap<String, BTreeSet<String>> {
    let ModuleDef::Generated(m) = module else {
        // A black box: every output may depend on every input.
        let inputs: BTreeSet<String> = module
            .ports()
            .iter()
            .filter(|p| p.dir == Dir::Input)
            .map(|p| p.name.clone())
            .collect();
        return module
            .ports()
            .iter()
            .filter(|p| p.dir == Dir::Output)
            .map(|p| (p.name.clone(), inputs.clone()))
            .collect();
    };
    // Edges: signal -> the signals it is computed from in the same cycle.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let refs = |e: &ExprNode, set: &mut BTreeSet<String>| {
        e.visit(&mut |x| {
            if let ExprNode::Ref { name, .. } = x {
                set.insert(name.clone());
            }
        })
    };
    fn stmt_refs(
        s: &StmtNode,
        targets: &mut BTreeSet<String>,
        srcs: &mut BTreeSet<String>,
        refs: &dyn Fn(&ExprNode, &mut BTreeSet<String>),
    ) {
        match s {
            StmtNode::Assign { target, value } => {
                targets.insert(target.name.clone());
                refs(value, srcs);
                if let Some(w) = &target.word {
                    refs(w, srcs);
                }
            }
            StmtNode::If { cond, then, els } => {
                refs(cond, srcs);
                for s in then.iter().chain(els) {
                    stmt_refs(s, targets, srcs, refs);
                }
            }
            StmtNode::Case { sel, arms, default } => {
                refs(sel, srcs);
                for s in arms.iter().flat_map(|(_, a)| a).chain(default) {
                    stmt_refs(s, targets, srcs, refs);
                }
            }
        }
    }
    for item in &m.items {
        match item {
            Item::Assign { name, value } => {
                refs(value, edges.entry(name.clone()).or_default());
            }
            Item::Combinational { body } => {
                let (mut targets, mut srcs) = (BTreeSet::new(), BTreeSet::new());
                for s in body {
                    stmt_refs(s, &mut targets, &mut srcs, &refs);
                }
                for t in targets {
                    edges.entry(t).or_default().extend(srcs.iter().cloned());
                }
            }
            Item::Instance {
                module: sub,
                connections,
                ..
            } => {
                let Some(def) = modules.get(sub) else {
                    // Unknown module: every connection may depend on every other.
                    let mut all = BTreeSet::new();
                    for (_, e) in connections {
                        refs(e, &mut all);
                    }
                    for t in &all {
                        edges
                            .entry(t.clone())
                            .or_default()
                            .extend(all.iter().cloned());
                    }
                    continue;
                };
                let sub_deps = port_dependencies(def, modules);
                for (port, e) in connections {
                    let Some(inputs) = sub_deps.get(port) else {
                        continue;
                    };
                    let mut srcs = BTreeSet::new();
                    for (p, pe) in connections {
                        if inputs.contains(p) {
                            refs(pe, &mut srcs);
                        }
                    }
                    let mut targets = BTreeSet::new();
                    refs(e, &mut targets);
                    for t in targets {
                        edges.entry(t).or_default().extend(srcs.iter().cloned());
                    }
                }
            }
            Item::Clocked { .. } | Item::Comment(_) => {}
        }
    }
    let inputs: BTreeSet<&str> = m
        .ports
        .iter()
        .filter(|p| p.dir == Dir::Input)
        .map(|p| p.name.as_str())
        .collect();
    let mut out = BTreeMap::new();
    for p in m.ports.iter().filter(|p| p.dir == Dir::Output) {
        let mut seen = BTreeSet::new();
        let mut stack = vec![p.name.clone()];
        let mut found = BTreeSet::new();
        while let Some(s) = stack.pop() {
            if !seen.insert(s.clone()) {
                continue;
            }
            if inputs.contains(s.as_str()) {
                found.insert(s.clone());
            }
            if let Some(next) = edges.get(&s) {
                stack.extend(next.iter().cloned());
            }
        }
        out.insert(p.name.clone(), found);
    }
    out
}
