//! The SAT system top (`sat_top`, from `[system]`): the fp16 STCE, the SORE and the WUVE of a
//! training config, on-chip buffers, a DMA engine on one external memory port, and a controller
//! that runs an instruction stream ([`isa`]) written by the offline scheduler. This module is the
//! contract between the hardware, the harness (`coforge_driver::sat`) and the scheduler
//! (`coforge_scheduler`): names, line formats ([`lines`]), instruction semantics and timing
//! ([`estimated_cycles`]).
//!
//! # Shape
//! `sore_lanes = wuve_lanes = stce.cols` (validated), so one buffer line feeds every engine.
//! Per layer, `W` is `Cout x K` (K = Cin, or Cin*Kh*Kw for an im2col-lowered conv), and the batch
//! gives R rows. The STCE runs `A x B`:
//! - FF: `Y (R x Cout) = X (R x K) . W_F^T`: A = X, B = W_F^T compressed along K (sparse mode);
//! - BP: `dX (R x K) = dY (R x Cout) . W_B`: A = dY, B = W_B compressed along Cout;
//! - WU: `dW^T (K x Cout) = X^T (K x R) . dY (R x Cout)`: dense mode, reduction over R in
//!   increasing r, which is the reference's `dW = dY^T . X` element by element (fp16 products are
//!   exact in fp32).
//!
//! # Buffers and line formats
//! Every buffer is a simple dual-port block RAM: one write port, one registered read port (one
//! cycle read latency, read-first), one line per address. Widths ([`lines::Geometry::line_bits`]):
//! | buffer | line | depth key |
//! |---|---|---|
//! | `act` | `rows * M * 16`: for every array row, one group (sparse) or P = floor(M/N) groups (dense) | `act_lines` |
//! | `wgt` | `cols * N * (16 + IB)`: one compressed group per column | `wgt_lines` |
//! | `out` | `cols * 32`: one fp32 result row of a tile | `out_lines` |
//! | `master` | `cols * 32`: W32 of (k, cout block) | `weight_lines` |
//! | `w16` | `cols * 16` | `weight_lines` |
//! | `mask` | `cols * 1` | `weight_lines` |
//!
//! An act line carries M fp16 slots per row. In sparse mode a group is M reduction elements
//! and fills them; in dense mode a group is N elements (the PE's N multipliers), and a line
//! carries P = floor(M/N) consecutive groups (group g of a row tile in line `g / P`, slots
//! `(g % P)*N ..`; [`lines::Geometry::pack_act`], [`lines::Geometry::act_lines`]), so a dense
//! pass moves no zero padding beyond the last line of a row tile. A dense GEMM of `groups`
//! groups reads `ceil(groups / P)` act lines from `act_addr` and `groups` wgt lines. The PE's
//! M:1 select takes each group out of its line, which needs a sparse engine (or N = M, P = 1):
//! a `[system]` config does not take `stce.sparse = false` with N < M.
//! The layouts of a matrix in those lines are in [`lines`]. The DRAM image holds the same lines,
//! each padded to whole `mem_bits` beats, so a LOAD or STORE of L lines of buffer b moves
//! `L * beats_per_line(b)` beats; DRAM addresses count beats.
//!
//! **One reader and one writer per buffer at a time.** Each buffer's read port and write port are
//! shared by the engines that use them through a multiplexer, not an arbiter: two instructions on
//! different engines that read the same buffer (or both write it) must not run at the same time;
//! the scheduler orders them with tokens. A reader and a writer of one buffer may run together
//! (e.g. a STORE of `out` beside a GEMM writing other `out` lines). If two engines ever drive one
//! port in the same cycle, the top raises its sticky `conflict` output, which the harness reports
//! as an error: a schedule bug never turns into silently wrong numbers.
//!
//! # Controller
//! - The harness writes the program into the instruction memory (`imem_we`, `imem_addr`,
//!   `imem_data`, one [`isa::WORD_BITS`]-bit word per address) while the top is idle, sets `lr`
//!   and `lambda`, and pulses `start` for one cycle. `start` clears the tokens and counters and
//!   starts fetching at address 0.
//! - Fetch: one instruction every [`FETCH_CYCLES`] cycles, in program order, into the FIFO of its
//!   engine ([`FIFO_DEPTH`] entries each); fetch stalls only while that FIFO is full. END stops
//!   fetching.
//! - Dispatch: an idle engine takes the head of its FIFO when every token in its `wait` mask is
//!   above zero, and decrements those tokens. Several engines start in one cycle when their
//!   `wait` masks are disjoint; an engine that shares a waited token with a higher-priority
//!   engine starting in that cycle (priority DMA, STCE, WUVE, SORE) waits a cycle, so a token is
//!   taken at most once per cycle. An instruction starts in the cycle after its dispatch.
//! - Completion: the engine increments every token in `signal` when the instruction is complete
//!   (LOAD: its last line is written into the buffer; STORE: its last beat is accepted by the
//!   memory; GEMM: its last result line is written into `out` (or its last group is consumed, for
//!   a GEMM without `last`)). Tokens are 8-bit counters; several engines may increment one token
//!   in the same cycle.
//! - `done` rises (and stays high until the next `start`) once END has been fetched, every FIFO is
//!   empty and every engine is idle. `cycle_count` counts the cycles from `start` to `done`;
//!   `busy_<engine>` counts the cycles each engine spent executing an instruction. They are
//!   measured figures: the harness reads them at the end.
//! - Per-instruction observation: `started_<engine>` is high for one cycle, the first busy
//!   cycle of each instruction the engine starts, and `ended_<engine>` for one cycle, the first
//!   cycle after each instruction's busy time (both registers). An engine ends its
//!   instructions in the order it started them, so its k-th `started` and k-th `ended` pulses
//!   bound its k-th instruction's busy span `[start, end)`, even when two spans touch or
//!   overlap (a queued LOAD starts while the LOAD before it receives its data). The harness
//!   (`coforge_driver::sat::network`) builds each instruction's measured span from them and
//!   checks them against `busy_<engine>`, which counts the cycles inside at least one span.
//!
//! # Engines and instruction timing
//! A `cycles` figure below is from the cycle an engine starts an instruction to the cycle it is
//! idle again (its busy cycles), with a memory that never stalls. [`estimated_cycles`] computes
//! it; the scheduler adds dispatch ([`DISPATCH_CYCLES`]) and the token waits.
//! - **DMA** (`Dma`: LOAD, STORE; one engine, so stores are serialized with everything on the
//!   port, and loads with stores).
//!   - Queued LOAD (outstanding reads, `[system] read_requests = 2`, the default; 1 runs one
//!     LOAD at a time): while a LOAD receives its data (its read request has been accepted),
//!     or while a STORE runs (from its second cycle) whose DRAM beats the LOAD does not read,
//!     the next instruction of the DMA, if it is a LOAD whose tokens are available, is
//!     dispatched and issues its read request at once (not in the cycle the current
//!     instruction finishes; one LOAD queued at a time). The memory serves requests in order,
//!     so its burst follows the current one (or the STORE's last beat) without paying the
//!     latency again; it becomes the current instruction when that one finishes, and only then
//!     takes its data (so its lines are written after everything the instruction before it
//!     did, as in program order). The memory port's signals are unchanged, but the port has up
//!     to two read requests outstanding, and a read request may be accepted while write beats
//!     of other addresses are still coming (the AXI wrapper `sat_top_axi` takes the second
//!     request when its burst splitter is free, issues its bursts behind the first's, one ID,
//!     answered in order, and holds them while a write waits for its response). The two
//!     instructions' busy spans overlap: `started_dma` and `ended_dma` bound each.
//!     `estimated_cycles` below is a LOAD on its own; the scheduler's controller model
//!     (`coforge_scheduler::estimate`) has the overlap.
//!   - A LOAD that reads beats the STORE before it writes waits until the STORE ends (the
//!     memory sees the read after the writes), and a STORE waits until the DMA is idle: its
//!     beats would share the memory's bytes per cycle with the burst before it, so overlapping
//!     them would save at most the STORE's first two cycles.
//!   - LOAD of L lines of buffer b (B = beats per line): one read request of `L*B` beats
//!     (`mem_rd_req_*`, `len` in beats); the beats are collected into lines and each line is
//!     written when its last beat arrives. The request is valid from the first busy cycle, the
//!     memory's first beat comes `mem_latency` cycles after it is accepted and the next ones
//!     every `beat_cycles`, so `cycles = mem_latency + 1 + (L*B - 1) * beat_cycles`.
//!   - STORE of L lines: one cycle to read the first line and one to latch it, then the B
//!     beats of each line on the write channel (`mem_wr_*`, one address per beat) back to
//!     back: line n + 1 is read when line n is latched, waits in the buffer's read register
//!     and is latched in the cycle the last beat of line n is accepted (this relies on the
//!     one-reader-per-buffer rule below). `cycles = 3 + (L*B - 1) * beat_cycles` with
//!     `beat_cycles = ceil(mem_bits/8 / mem_bytes_per_cycle)` (the memory model's rate; a
//!     beat that finds the rate's budget short costs up to `beat_cycles - 1` more).
//! - **STCE** (`Stce`: GEMM), through the feeder: group g's act line (`act_addr + g` sparse,
//!   `act_addr + g / P` dense) and wgt line (`wgt_addr + g`) are read in cycle g (of the
//!   instruction) and drive the array in cycle g + 1. Dense mode drives the indices
//!   `(g % P)*N + i`, i < N (the group's slots in its act line, from a line counter and a slot
//!   counter that wraps at P, registered beside the read data); each index travels down its
//!   column with the wgt value, as a sparse index does. The feeder is busy while it feeds
//!   groups, `cycles = groups`, and then takes the next GEMM while the array reads the tile
//!   out: tiles stream back to back. A GEMM starts at slot 0, so one that continues a row
//!   tile's reduction (`first` clear) starts at a group that is a multiple of P.
//!   - Read-out (`last`): result row r of a tile whose last group was fed in cycle F is
//!     written to `out[out_addr + r]` in cycle `F + 1 + cols + r` (the STCE's read-out timing,
//!     `engines::stce`), and the GEMM completes (signals its tokens) when its last row is
//!     written: [`completion_cycles`] = `cols + rows` after its busy time. Tiles complete in the
//!     order they were fed; a queue of `READOUT_DEPTH` entries holds each fed tile's `out_addr`
//!     and `signal` until its rows are written. A GEMM without `last` completes with its last
//!     group.
//!   - Tile spacing: the array takes a tile's last group at least `stce::tile_spacing` =
//!     max(rows, cols) cycles after the previous tile's last group (so no two tiles show rows
//!     in the same cycle). The feeder holds a `last` group until then; those cycles are busy
//!     cycles of the GEMM (only tiles of fewer groups than the spacing, fed right after
//!     another tile, wait). The scheduler's model has the rule.
//! - **WUVE** (`Wuve`: UPDATE of L lines): line l of `out` (dW^T), `master` (W32) and `mask`
//!   (M_F) is read in cycle l and enters the WUVE (`engines::wuve`, `cols` lanes) in cycle l + 1;
//!   its W32' and W16' are written to `master[master_addr + l]` and `w16[w16_addr + l]` in cycle
//!   `l + 1 + wuve::latency` (5, or 20 with `[train] wuve_pipeline`).
//!   `cycles = L + 1 + wuve::latency`. `lr` and `lambda` are the top's ports. The update reads
//!   and writes `master` in place: its read and write ports are separate.
//! - **SORE** (`Sore`: PRUNE_F of L lines, L a multiple of M): w16 line l (reduction index
//!   k = l of one cout block, lane c = cout c) is read in cycle l and enters the SORE
//!   (`engines::sore`, `cols` lanes, groups of M along k) in cycle l + 1. When a group's
//!   selection shows (`out_valid`, one cycle after its last value), it is written as one wgt
//!   line (`wgt_addr + g`: lane c's N values and indices, the FF operand's line format), and
//!   the next M cycles write its M mask lines (`mask_addr + g*M + j`: bit c set when lane c
//!   kept position j). `cycles = L + M + 2`.
//! - **SORE** (`Sore`: PRUNE_B of `blocks` cout blocks, one k block): M_B along Cout of
//!   `W16 (x) M_F`, the BP operand `W_B` (Cout x K) compressed along Cout in the wgt line
//!   format (line g = group g of M couts; lane j = k `k_block*cols + j`, its N values and
//!   indices). In cycle `b*cols + j` (b < blocks, j < cols) it reads w16 line
//!   `w16_addr + b*stride + j` and mask line `mask_addr + b*stride + j` (k = j of the block,
//!   lane c = cout `b*cols + c`); the masked line (`mask ? w16 : +0`, as
//!   `sparse_kernels::nm::apply_mask`) enters a `cols x cols` register transposer the next
//!   cycle. From cycle `cols + 1` one cout per cycle (lane j = k j) leaves the transposer into
//!   the SORE (the SORE's lanes are the k's, its groups run along Cout), couts `0 ..
//!   blocks*cols` and then zero couts up to `Q = ceil(blocks*cols / M) * M`; a group's
//!   selection is written as wgt line `wgt_addr + g` when it shows. `cycles = Q + cols + 3`.
//!   Couts past the layer's Cout are the zero padding of the weight lines, so a last group
//!   that is not whole selects as the reference does on W padded with zero rows (zeros tie
//!   and go to the lower index: the real couts first). `k_block` is not read by the
//!   hardware: it names the k block (the scheduler's destination of the lines). What PRUNE_B
//!   reads and writes is `coforge_scheduler::access` (the scheduler derives its
//!   dependencies from it): `cols` w16 and mask lines per block, `Q / M` wgt lines.
//!   Only the SORE is shared with PRUNE_F (one selection unit; its FIFO runs both in order).
pub mod isa;
pub mod lines;
pub mod top;

use crate::config::SystemConfig;
use isa::{Buf, Instr};
use lines::Geometry;

/// Entries of each engine's instruction FIFO.
pub const FIFO_DEPTH: u32 = 4;
/// Cycles the controller spends per fetched instruction (read the instruction memory, decode
/// and push).
pub const FETCH_CYCLES: u64 = 2;
/// Cycles from an instruction reaching the head of its FIFO (tokens available, engine idle) to
/// the engine starting it.
pub const DISPATCH_CYCLES: u64 = 1;
/// Width of a read request's length (beats).
pub const LEN_BITS: u32 = 32;
/// Width of each token's counter.
pub const TOKEN_BITS: u32 = 8;
/// Width of the cycle and busy counters.
pub const COUNTER_BITS: u32 = 48;

/// Port names of the system top, shared with the harness.
pub mod ports {
    pub const CLOCK: &str = "clk";
    pub const RESET: &str = "rst";
    pub const START: &str = "start";
    pub const DONE: &str = "done";
    pub const CONFLICT: &str = "conflict";
    pub const LR: &str = "lr";
    pub const LAMBDA: &str = "lambda";
    pub const IMEM_WE: &str = "imem_we";
    pub const IMEM_ADDR: &str = "imem_addr";
    pub const IMEM_DATA: &str = "imem_data";
    pub const RD_REQ_VALID: &str = "mem_rd_req_valid";
    pub const RD_REQ_READY: &str = "mem_rd_req_ready";
    pub const RD_REQ_ADDR: &str = "mem_rd_req_addr";
    pub const RD_REQ_LEN: &str = "mem_rd_req_len";
    pub const RD_VALID: &str = "mem_rd_valid";
    pub const RD_READY: &str = "mem_rd_ready";
    pub const RD_DATA: &str = "mem_rd_data";
    pub const WR_VALID: &str = "mem_wr_valid";
    pub const WR_READY: &str = "mem_wr_ready";
    pub const WR_ADDR: &str = "mem_wr_addr";
    pub const WR_DATA: &str = "mem_wr_data";
    pub const CYCLE_COUNT: &str = "cycle_count";
    /// `busy_dma`, `busy_stce`, `busy_wuve`, `busy_sore`.
    pub fn busy(engine: super::isa::Engine) -> String {
        format!("busy_{}", engine.name())
    }
    /// `started_<engine>`: high for one cycle, the first busy cycle of each instruction the
    /// engine starts (the cycle after its dispatch).
    pub fn started(engine: super::isa::Engine) -> String {
        format!("started_{}", engine.name())
    }
    /// `ended_<engine>`: high for one cycle, the first cycle after each instruction's busy time
    /// (the engine may already run the next one: a queued LOAD).
    pub fn ended(engine: super::isa::Engine) -> String {
        format!("ended_{}", engine.name())
    }
}

/// Fed tiles whose rows are not all written yet that the feeder can hold: a tile's rows are
/// written `cols + rows` cycles after its last group, and last groups are at least
/// `stce::tile_spacing` = max(rows, cols) >= (rows + cols) / 2 cycles apart, so at most three
/// are outstanding.
pub const READOUT_DEPTH: u32 = 4;

/// `engines::stce::tile_spacing` of the system's array (a system config has no
/// `fp_pipeline`): the fewest cycles between two tiles' last groups.
pub fn tile_spacing(g: &Geometry) -> u64 {
    u64::from(g.rows.max(g.cols))
}

/// Cycles from the end of an instruction's busy time to its completion, when it signals its
/// tokens: a GEMM with `last` completes when the array has written its tile's rows to `out`;
/// every other instruction completes with its last busy cycle.
pub fn completion_cycles(instr: &Instr, g: &Geometry) -> u64 {
    match *instr {
        Instr::Gemm { last: true, .. } => u64::from(g.cols) + u64::from(g.rows),
        _ => 0,
    }
}

/// Cycles one beat occupies the memory port at `mem_bytes_per_cycle`.
pub fn beat_cycles(sys: &SystemConfig) -> u64 {
    u64::from(sys.mem_bits / 8).div_ceil(u64::from(sys.mem_bytes_per_cycle))
}

/// The busy cycles of one instruction on its engine (formulas in the module docs), with a memory
/// that answers at `mem_latency` and never stalls. An estimate: the measured figure is what the
/// simulation counts.
pub fn estimated_cycles(instr: &Instr, g: &Geometry, sys: &SystemConfig) -> u64 {
    let beats = |buf: Buf| u64::from(g.beats_per_line(buf));
    match *instr {
        // The last beat moves `(beats - 1) * beat_cycles` cycles after the first one.
        Instr::Load { buf, lines, .. } => {
            let rest = (u64::from(lines) * beats(buf)).saturating_sub(1) * beat_cycles(sys);
            u64::from(sys.mem_latency) + 1 + rest
        }
        Instr::Store { buf, lines, .. } => {
            let rest = (u64::from(lines) * beats(buf)).saturating_sub(1) * beat_cycles(sys);
            3 + rest
        }
        // Without the tile-spacing wait (see the module docs).
        Instr::Gemm { groups, .. } => u64::from(groups),
        Instr::Update { lines, .. } => {
            let wuve = &crate::engines::wuve::WuveParams {
                lanes: g.cols,
                pipelined: g.wuve_pipeline,
            };
            u64::from(lines) + 1 + crate::engines::wuve::latency(wuve)
        }
        Instr::PruneF { lines, .. } => u64::from(lines) + u64::from(g.m) + 2,
        Instr::PruneB { blocks, .. } => {
            let couts = u64::from(blocks) * u64::from(g.cols);
            let m = u64::from(g.m);
            couts.div_ceil(m) * m + u64::from(g.cols) + 3
        }
        Instr::End => 0,
    }
}
