//! The AXI wrapper of the SAT system top (`sat_top_axi`, [`sat_wrapper`]): the system top's
//! native memory port becomes an AXI4 master `m_axi_mem_*` with bursts, and its control
//! ports (start, done, the instruction memory, `lr`, `lambda`, the counters) an AXI4-Lite
//! slave `s_axi_ctrl_*`. `aclk` and `aresetn` as every wrapper (the parent module).
//!
//! # The memory master (`m_axi_mem_*`, Xilinx names: `araddr arlen arsize arburst arvalid
//! arready rdata rresp rlast rvalid rready awaddr awlen awsize awburst awvalid awready wdata
//! wstrb wlast wvalid wready bresp bvalid bready`)
//! - Addresses are 64-bit byte addresses: a native beat address `a` is at
//!   `MEM_BASE + a * bytes`, with `bytes = mem_bits / 8` (the bus width; `MEM_BASE`'s low
//!   `log2(bytes)` bits are ignored, so every beat is aligned). Every burst is INCR with
//!   `AxSIZE` = the bus width, at most [`MAX_BURST`] beats, and never crosses a 4 KiB
//!   boundary. One ID (0): the memory answers reads in order, as the native port expects.
//! - **Reads.** A native read request (`addr`, `len` beats; the system top may have two
//!   outstanding, `[system] read_requests`) is accepted when the splitter is free and split
//!   into bursts of up to 256 beats cut at every 4 KiB boundary, one `AR` per cycle at most.
//!   `R` beats go straight to the system top's read-data channel (`RREADY` is its
//!   `mem_rd_ready`), so the native stream is the concatenation of the bursts; `RLAST` is not
//!   needed.
//! - **Writes.** The native write channel gives one beat per address. Consecutive beats with
//!   consecutive addresses are gathered into one burst of at most [`WRITE_BURST`] beats
//!   (closed at the 4 KiB boundary, when a beat does not follow on, or in a cycle no beat
//!   comes: a STORE sends its beats back to back). A beat is held one cycle (so that `WLAST`
//!   is known) and then written into a [`WRITE_FIFO_DEPTH`]-beat data FIFO; a closed burst's
//!   address and length go into a [`WRITE_CMD_DEPTH`]-entry command FIFO. `AW` and `W` drain
//!   their FIFOs independently (neither waits for the other's handshake, as AXI requires).
//!   `WSTRB` is all ones; `BREADY` is always high.
//! - **Ordering.** The native port treats a beat as written once it is accepted; here it is
//!   written when its burst's response (`B`) has come. So no read burst is issued while a
//!   write is pending (a held beat, or a closed burst without its response): a LOAD after a
//!   STORE of the same lines reads what the STORE wrote. And `done` waits for the last write
//!   response, so the memory holds every result when the host sees it.
//! - Responses other than OKAY (`RRESP`, `BRESP`) raise sticky STATUS flags; the data is
//!   used as it came.
//! - `ARVALID`, `AWVALID`, `WVALID` and their payloads are registers; `RREADY` is the system
//!   top's `mem_rd_ready` (from its state registers), `BREADY` a constant.
//!
//! # The program: fetched from DRAM by the wrapper
//! The host places the program in the memory (instruction i at beats
//! `PROG_ADDR + i*B .. + B`, `B` = [`beats_per_instruction`], its 192 bits from bit 0 of the
//! first beat up), sets `PROG_ADDR` and `PROG_LEN` and writes START. The wrapper reads the
//! program with the same burst machinery into the instruction memory, then starts the system
//! top. `PROG_LEN = 0` runs the program already in the instruction memory (a second step of
//! the same program fetches nothing). Why not AXI4-Lite writes into the instruction memory:
//! a word is 192 bits, six 32-bit register writes each, and a training step's program is
//! thousands of instructions (networks/mlp.toml: about 4.3k); a host writes AXI4-Lite
//! registers at ~1 µs each over PCIe, so the fetch from DRAM, which the host fills with its
//! tensors anyway, costs a burst read instead of ~26k register writes.
//!
//! # Register map (`s_axi_ctrl_*`, 32-bit registers; [`regs`])
//! | offset | register | access | meaning |
//! |---|---|---|---|
//! | 0x00 | CONTROL | write | bit 0 START: fetch the program, run it (ignored while busy); clears DONE, the error flags and the counters |
//! | 0x04 | STATUS | read | bit 0 DONE (sticky until the next START), 1 BUSY, 2 CONFLICT (the system top's: two engines on one buffer port, a schedule bug), 3 READ_ERROR (an `RRESP` not OKAY), 4 WRITE_ERROR (a `BRESP` not OKAY), 5 PROGRAM_ERROR (`PROG_LEN` > the instruction memory; nothing ran) |
//! | 0x08, 0x0C | CYCLES_LO, _HI | read | cycles from START to DONE (program fetch and the last write response included) |
//! | 0x10, 0x14 | SAT_CYCLES_LO, _HI | read | the system top's `cycle_count`: its start to its done |
//! | 0x18 .. 0x34 | BUSY_<engine>_LO, _HI | read | the system top's busy counters: DMA 0x18, STCE 0x20, WUVE 0x28, SORE 0x30 |
//! | 0x38, 0x3C | MEM_BASE_LO, _HI | read/write | byte address of native beat 0 |
//! | 0x40 | PROG_ADDR | read/write | the program's first beat (native beat address) |
//! | 0x44 | PROG_LEN | read/write | instructions to fetch (0: keep the instruction memory) |
//! | 0x48 | LR | read/write | fp32 learning rate, held for the run |
//! | 0x4C | LAMBDA | read/write | fp32 decay of pruned weights |
//! | 0x50 | INFO | read | `mem_bits` (bits 0..15), beats per instruction (16..23) |

use super::{axi_lite_slave, head_fifo, reset_register, sticky, LiteReg};
use crate::config::SystemConfig;
use crate::engines::sat::{isa, ports as sat_ports, COUNTER_BITS, LEN_BITS};
use crate::rtl::{index_bits, set, when, when_else, Expr, ModuleBuilder, ModuleDef};

/// The AXI4 memory master's prefix.
pub const MEM: &str = "m_axi_mem";
/// Width of the master's byte addresses.
pub const ADDR_BITS: u32 = 64;
/// The longest read burst (AXI4 INCR: `AxLEN` <= 255).
pub const MAX_BURST: u64 = 256;
/// The 4 KiB boundary no burst crosses.
pub const BOUNDARY: u64 = 4096;
/// The longest write burst: short enough that a burst's beats wait little in the wrapper,
/// long enough for a DDR controller (1 KiB on a 512-bit bus).
pub const WRITE_BURST: u32 = 16;
/// Beats the write data FIFO holds: two bursts, so one drains while the next gathers.
pub const WRITE_FIFO_DEPTH: u32 = 2 * WRITE_BURST;
/// Closed write bursts waiting for their `AW`.
pub const WRITE_CMD_DEPTH: u32 = 4;
/// Write bursts at most in flight (closed, response not yet taken): the counter's range.
pub const MAX_WRITES_IN_FLIGHT: u64 = 255;

/// Register offsets (bytes) and STATUS bits of the wrapper (see the module docs).
pub mod regs {
    pub const CONTROL: u64 = 0x00;
    pub const STATUS: u64 = 0x04;
    pub const CYCLES_LO: u64 = 0x08;
    pub const CYCLES_HI: u64 = 0x0C;
    pub const SAT_CYCLES_LO: u64 = 0x10;
    pub const SAT_CYCLES_HI: u64 = 0x14;
    /// BUSY of engine i (in `isa::Engine::ALL` order): LO at `BUSY + 8*i`, HI 4 above.
    pub const BUSY: u64 = 0x18;
    pub const MEM_BASE_LO: u64 = 0x38;
    pub const MEM_BASE_HI: u64 = 0x3C;
    pub const PROG_ADDR: u64 = 0x40;
    pub const PROG_LEN: u64 = 0x44;
    pub const LR: u64 = 0x48;
    pub const LAMBDA: u64 = 0x4C;
    pub const INFO: u64 = 0x50;
    /// CONTROL bit 0.
    pub const START: u32 = 1;
    pub const DONE: u32 = 1;
    pub const BUSY_FLAG: u32 = 1 << 1;
    pub const CONFLICT: u32 = 1 << 2;
    pub const READ_ERROR: u32 = 1 << 3;
    pub const WRITE_ERROR: u32 = 1 << 4;
    pub const PROGRAM_ERROR: u32 = 1 << 5;
}

/// Beats one instruction word occupies in the program image: `ceil(WORD_BITS / mem_bits)`.
pub fn beats_per_instruction(sys: &SystemConfig) -> u32 {
    isa::WORD_BITS.div_ceil(sys.mem_bits)
}

/// The wrapper exists for a bus width AXI can carry: a power of two bytes.
pub fn has_wrapper(sys: &SystemConfig) -> bool {
    sys.mem_bits.is_power_of_two()
}

fn lit<'id>(v: u64, w: u32) -> Expr<'id> {
    Expr::lit(v, w)
}

fn min<'id>(a: &Expr<'id>, b: &Expr<'id>) -> Expr<'id> {
    Expr::mux(&a.lt(b), a, b)
}

/// The AXI wrapper of the system top `engine` (`sys.top`) of a `[system]` config (see the
/// module docs). `None` for a bus width that is not a power of two bytes ([`has_wrapper`]).
pub fn sat_wrapper(sys: &SystemConfig, engine: &ModuleDef) -> Option<ModuleDef> {
    if !has_wrapper(sys) {
        return None;
    }
    Some(ModuleBuilder::build(super::wrapper_name(&sys.top), |b| {
        sat_wrapper_body(b, sys, engine)
    }))
}

/// The contents of [`sat_wrapper`]'s module, described with its builder.
fn sat_wrapper_body<'id>(b: &mut ModuleBuilder<'id>, sys: &SystemConfig, engine: &ModuleDef) {
    let width = sys.mem_bits;
    let bytes = u64::from(width / 8);
    let size = bytes.trailing_zeros();
    let page_beats = BOUNDARY / bytes;
    let bpi = beats_per_instruction(sys);
    let pc_bits = index_bits(sys.imem_depth);
    let word_bits = isa::WORD_BITS;
    b.doc(format!(
        "AXI wrapper of the SAT system top `{}`: an AXI4 master on the {width}-bit memory \
         port (INCR bursts) and AXI4-Lite control; the program is fetched from the memory.",
        sys.top
    ));
    b.doc("Bursts, ordering and register map: the generator's `engines::axi::sat`.");
    let clk = b.input(super::ports::CLOCK, 1, "");
    let rst = reset_register(b, &clk);

    // ---------------------------------------------------------------- AXI4 master ports
    let p = |s: &str| format!("{MEM}_{s}");
    let araddr = b.output_reg(&p("araddr"), ADDR_BITS, "byte address");
    let arlen = b.output_reg(&p("arlen"), 8, "beats - 1");
    let arsize = b.output(&p("arsize"), 3, "the bus width");
    let arburst = b.output(&p("arburst"), 2, "INCR");
    let arvalid = b.output_reg(&p("arvalid"), 1, "");
    let arready = b.input(&p("arready"), 1, "");
    let rdata = b.input(&p("rdata"), width, "");
    let rresp = b.input(&p("rresp"), 2, "");
    let rlast = b.input(&p("rlast"), 1, "not needed: bursts are counted");
    let rvalid = b.input(&p("rvalid"), 1, "");
    let rready_port = b.output(&p("rready"), 1, "");
    let awaddr = b.output(&p("awaddr"), ADDR_BITS, "byte address");
    let awlen = b.output(&p("awlen"), 8, "beats - 1");
    let awsize = b.output(&p("awsize"), 3, "the bus width");
    let awburst = b.output(&p("awburst"), 2, "INCR");
    let awvalid = b.output_reg(&p("awvalid"), 1, "");
    let awready = b.input(&p("awready"), 1, "");
    let wdata = b.output(&p("wdata"), width, "");
    let wstrb = b.output(&p("wstrb"), width / 8, "all ones");
    let wlast = b.output(&p("wlast"), 1, "");
    let wvalid = b.output_reg(&p("wvalid"), 1, "");
    let wready = b.input(&p("wready"), 1, "");
    let bresp = b.input(&p("bresp"), 2, "");
    let bvalid = b.input(&p("bvalid"), 1, "");
    let bready = b.output(&p("bready"), 1, "always high");
    for (size_port, burst_port) in [(&arsize, &arburst), (&awsize, &awburst)] {
        b.drive(size_port, lit(u64::from(size), 3));
        b.drive(burst_port, lit(1, 2));
    }
    b.drive(&wstrb, Expr::zero(width / 8).not());
    b.drive(&bready, Expr::bit(true));

    // ---------------------------------------------------------------- the system top's ports
    let sat_start = b.reg("sat_start", 1);
    b.describe("the system top's start pulse");
    let sat_done = b.wire("sat_done", 1);
    let sat_conflict = b.wire("sat_conflict", 1);
    let imem_we = b.wire("imem_we", 1);
    let imem_addr = b.wire("imem_addr", pc_bits);
    let imem_data = b.wire("imem_data", word_bits);
    let rd_req_valid = b.wire("sat_rd_req_valid", 1);
    let rd_req_ready = b.wire("sat_rd_req_ready", 1);
    let rd_req_addr = b.wire("sat_rd_req_addr", 32);
    let rd_req_len = b.wire("sat_rd_req_len", LEN_BITS);
    let rd_valid = b.wire("sat_rd_valid", 1);
    let rd_ready = b.wire("sat_rd_ready", 1);
    let wr_valid = b.wire("sat_wr_valid", 1);
    let wr_ready = b.wire("sat_wr_ready", 1);
    let wr_addr = b.wire("sat_wr_addr", 32);
    let wr_data = b.wire("sat_wr_data", width);
    let sat_cycles = b.wire("sat_cycle_count", COUNTER_BITS);
    let busy: Vec<Expr> = isa::Engine::ALL
        .iter()
        .map(|&e| b.wire(&format!("sat_{}", sat_ports::busy(e)), COUNTER_BITS))
        .collect();

    // ---------------------------------------------------------------- control registers
    let start_word = b.wire("start_word", 1);
    let status = b.wire("status", 6);
    let cycles = b.reg("count_cycles", COUNTER_BITS);
    b.describe("cycles from START to DONE");
    let split = |e: &Expr<'id>| {
        vec![
            LiteReg::Status(e.slice(0, 32)),
            LiteReg::Status(e.slice(32, COUNTER_BITS - 32)),
        ]
    };
    let mut lite = vec![
        LiteReg::Pulse {
            name: "control_start".into(),
        },
        LiteReg::Status(status.clone()),
    ];
    lite.extend(split(&cycles));
    lite.extend(split(&sat_cycles));
    for e in &busy {
        lite.extend(split(e));
    }
    for name in [
        "mem_base_lo",
        "mem_base_hi",
        "prog_addr",
        "prog_len",
        "lr",
        "lambda",
    ] {
        let (_, reg) = b.reserve_reg(&format!("param_{name}"), 32);
        lite.push(LiteReg::Param { reg, reset: 0 });
    }
    lite.push(LiteReg::Status(lit(
        u64::from(width) | u64::from(bpi) << 16,
        32,
    )));
    assert_eq!(lite.len() as u64 - 1, regs::INFO / 4, "the register map");
    let values = axi_lite_slave(b, &clk, &rst, lite);
    let reg = |off: u64| {
        values[(off / 4) as usize]
            .clone()
            .expect("a parameter or pulse register")
    };
    b.drive(&start_word, reg(regs::CONTROL));
    let (base_lo, base_hi) = (reg(regs::MEM_BASE_LO), reg(regs::MEM_BASE_HI));
    let (prog_addr, prog_len) = (reg(regs::PROG_ADDR), reg(regs::PROG_LEN));
    let (lr, lambda) = (reg(regs::LR), reg(regs::LAMBDA));
    // Every beat is aligned: the base's byte-in-beat bits are ignored.
    let base = b.name(
        "mem_base",
        Expr::concat(vec![
            base_hi,
            base_lo.slice(size, 32 - size),
            Expr::zero(size),
        ]),
    );
    let mut unused = vec![base_lo.slice(0, size), rlast];
    let byte_addr = |beat: &Expr<'id>| {
        base.add(&Expr::concat(vec![
            beat.zext(ADDR_BITS - size),
            Expr::zero(size),
        ]))
    };

    // ---------------------------------------------------------------- sequencer
    const IDLE: u64 = 0;
    const FETCH: u64 = 1;
    const RUN: u64 = 2;
    let phase = b.reg("phase", 2);
    b.describe("0 idle, 1 fetching the program, 2 the system top runs");
    let done = b.reg("done", 1);
    let fetching = b.name("fetching", phase.eq(&lit(FETCH, 2)));
    let go = b.name("go", start_word.land(&phase.eq(&lit(IDLE, 2))));
    let too_long = prog_len.gt(&lit(u64::from(sys.imem_depth), 32));
    let fetch_req = b.reg("fetch_req", 1);
    b.describe("the program's read request, until the splitter takes it");
    let fetch_count = b.reg("fetch_count", 32);
    b.describe("instructions written into the instruction memory");

    // ---------------------------------------------------------------- write path
    let wb = WRITE_BURST;
    let cbits = index_bits(wb + 1);
    let hold_valid = b.reg("wr_hold_valid", 1);
    b.describe("a beat taken and not yet in the data FIFO (its burst is open)");
    let hold_data = b.reg("wr_hold_data", width);
    let w_next = b.reg("wr_next_addr", 32);
    b.describe("the beat address that would extend the open burst");
    let w_start = b.reg("wr_burst_addr", 32);
    let w_count = b.reg("wr_burst_beats", cbits);
    b.describe("beats of the open burst, the held one included");
    let in_flight = b.reg("wr_in_flight", 8);
    b.describe("closed write bursts whose response has not come");
    let data_full = b.wire("wr_data_full", 1);
    let cmd_full = b.wire("wr_cmd_full", 1);
    let push_ok = b.name(
        "wr_push_ok",
        data_full
            .not()
            .land(&cmd_full.not())
            .land(&in_flight.ne(&lit(MAX_WRITES_IN_FLIGHT, 8))),
    );
    b.drive(&wr_ready, rst.not().land(&hold_valid.not().lor(&push_ok)));
    let accept = b.name("wr_accept", wr_valid.land(&wr_ready));
    let push = b.name("wr_push", hold_valid.land(&push_ok));
    // The 4 KiB page ends after the held beat when the next beat would start a page.
    let next_byte = b.name("wr_next_byte_addr", byte_addr(&w_next));
    let next_low = next_byte.slice(0, 12);
    unused.push(next_byte.slice(12, ADDR_BITS - 12));
    let extend = b.name(
        "wr_extend",
        all(&[
            accept.clone(),
            hold_valid.clone(),
            wr_addr.eq(&w_next),
            w_count.ne(&lit(u64::from(wb), cbits)),
            next_low.ne(&Expr::zero(12)),
        ]),
    );
    let close = b.name("wr_close", push.land(&extend.not()));
    let awlen_now = w_count.sub(&lit(1, cbits)).zext(8);
    let cmd = Expr::concat(vec![awlen_now, byte_addr(&w_start)]);
    let aw = head_fifo(
        b,
        (&clk, &rst),
        "wr_cmd",
        WRITE_CMD_DEPTH,
        (&close, &cmd),
        (&awvalid, &awready),
        "the AW channel's payload: {awlen, awaddr}",
    );
    b.drive(&cmd_full, aw.full);
    b.drive(&awaddr, aw.word.slice(0, ADDR_BITS));
    b.drive(&awlen, aw.word.slice(ADDR_BITS, 8));
    let w = head_fifo(
        b,
        (&clk, &rst),
        "wr_data",
        WRITE_FIFO_DEPTH,
        (&push, &Expr::concat(vec![close.clone(), hold_data.clone()])),
        (&wvalid, &wready),
        "the W channel's payload: {wlast, wdata}",
    );
    b.drive(&data_full, w.full);
    b.drive(&wdata, w.word.slice(0, width));
    b.drive(&wlast, w.word.bit_at(width));
    let b_take = bvalid.clone();
    b.clocked(
        &clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&hold_valid, Expr::bit(false)),
                set(&in_flight, Expr::zero(8)),
            ],
            vec![
                set(
                    &in_flight,
                    in_flight.add(&close.zext(8)).sub(&b_take.zext(8)),
                ),
                when_else(
                    accept.clone(),
                    vec![
                        set(&hold_valid, Expr::bit(true)),
                        set(&hold_data, wr_data.clone()),
                        set(&w_next, wr_addr.add(&lit(1, 32))),
                        when_else(
                            extend.clone(),
                            vec![set(&w_count, w_count.add(&lit(1, cbits)))],
                            vec![set(&w_start, wr_addr.clone()), set(&w_count, lit(1, cbits))],
                        ),
                    ],
                    vec![when(push.clone(), vec![set(&hold_valid, Expr::bit(false))])],
                ),
            ],
        )],
    );
    let write_pending = b.name(
        "write_pending",
        hold_valid.lor(&in_flight.ne(&Expr::zero(8))),
    );

    // ---------------------------------------------------------------- read path
    let req_valid = Expr::mux(&fetching, &fetch_req, &rd_req_valid);
    let req_addr = Expr::mux(&fetching, &prog_addr, &rd_req_addr);
    let req_len = Expr::mux(
        &fetching,
        &prog_len.mul(&lit(u64::from(bpi), 32)),
        &rd_req_len,
    );
    let sp_busy = b.reg("rd_split_busy", 1);
    b.describe("a read request is being cut into bursts");
    let sp_addr = b.reg("rd_split_addr", ADDR_BITS);
    b.describe("byte address of the next read burst");
    let sp_left = b.reg("rd_split_left", LEN_BITS);
    b.describe("beats of the request not yet asked for");
    let req_take = b.name("rd_req_take", req_valid.land(&sp_busy.not()));
    b.drive(
        &rd_req_ready,
        sp_busy.not().land(&fetching.not()).land(&rst.not()),
    );
    let cap = page_beats.min(MAX_BURST);
    let nbits = index_bits(page_beats as u32 + 1);
    let page_used = sp_addr.slice(size, 12 - size).zext(nbits);
    let to_page_end = lit(page_beats, nbits).sub(&page_used);
    let left_capped = Expr::mux(
        &sp_left.lt(&lit(cap, LEN_BITS)),
        &sp_left.slice(0, nbits),
        &lit(cap, nbits),
    );
    let burst = b.name("rd_burst_beats", min(&left_capped, &to_page_end));
    let burst_len = b.name("rd_burst_len", burst.sub(&lit(1, nbits)));
    // At most 256 beats: the length fits AxLEN's 8 bits.
    let arlen_now = if nbits >= 8 {
        if nbits > 8 {
            unused.push(burst_len.slice(8, nbits - 8));
        }
        burst_len.slice(0, 8)
    } else {
        burst_len.zext(8)
    };
    let ar_issue = b.name(
        "rd_ar_issue",
        all(&[
            sp_busy.clone(),
            arvalid.not().lor(&arready),
            write_pending.not(),
        ]),
    );
    b.clocked(
        &clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&sp_busy, Expr::bit(false)),
                set(&arvalid, Expr::bit(false)),
            ],
            vec![
                when_else(
                    ar_issue.clone(),
                    vec![
                        set(&arvalid, Expr::bit(true)),
                        set(&araddr, sp_addr.clone()),
                        set(&arlen, arlen_now),
                        set(
                            &sp_addr,
                            sp_addr.add(&Expr::concat(vec![
                                burst.zext(ADDR_BITS - size),
                                Expr::zero(size),
                            ])),
                        ),
                        set(&sp_left, sp_left.sub(&burst.zext(LEN_BITS))),
                        when(
                            sp_left.eq(&burst.zext(LEN_BITS)),
                            vec![set(&sp_busy, Expr::bit(false))],
                        ),
                    ],
                    vec![when(arready.clone(), vec![set(&arvalid, Expr::bit(false))])],
                ),
                when(
                    req_take.clone(),
                    vec![
                        set(&sp_busy, req_len.ne(&Expr::zero(LEN_BITS))),
                        set(&sp_addr, byte_addr(&req_addr)),
                        set(&sp_left, req_len.clone()),
                    ],
                ),
            ],
        )],
    );
    let rready = b.name("rd_ready", fetching.lor(&rd_ready));
    b.drive(&rready_port, rready.clone());
    b.drive(&rd_valid, rvalid.land(&fetching.not()));
    let r_take = b.name("rd_take", rvalid.land(&rready));

    // ---------------------------------------------------------------- program fetch
    let fetch_beat_in = b.name("fetch_beat_in", r_take.land(&fetching));
    let (word_done, word) = if bpi == 1 {
        (fetch_beat_in.clone(), rdata.slice(0, word_bits))
    } else {
        let fbits = index_bits(bpi);
        let beat = b.reg("fetch_beat", fbits);
        b.describe("beat within the instruction being fetched");
        let asm_bits = bpi * width;
        let asm = b.reg("fetch_assembly", asm_bits - width);
        b.describe("the instruction's earlier beats, shifted in from the top");
        let next = b.name(
            "fetch_assembly_next",
            Expr::concat(vec![rdata.clone(), asm.clone()]),
        );
        let last = beat.eq(&lit(u64::from(bpi - 1), fbits));
        b.clocked(
            &clk,
            vec![when_else(
                go.clone(),
                vec![set(&beat, Expr::zero(fbits))],
                vec![when(
                    fetch_beat_in.clone(),
                    vec![
                        set(&asm, next.slice(width, asm_bits - width)),
                        set(
                            &beat,
                            Expr::mux(&last, &Expr::zero(fbits), &beat.add(&lit(1, fbits))),
                        ),
                    ],
                )],
            )],
        );
        if asm_bits > word_bits {
            unused.push(next.slice(word_bits, asm_bits - word_bits));
        }
        (fetch_beat_in.land(&last), next.slice(0, word_bits))
    };
    let word_done = b.name("fetch_word_done", word_done);
    b.drive(&imem_we, word_done.clone());
    b.drive(&imem_addr, fetch_count.slice(0, pc_bits));
    b.drive(&imem_data, word);
    if pc_bits < 32 {
        unused.push(fetch_count.slice(pc_bits, 32 - pc_bits));
    }
    let fetched_all = word_done.land(&fetch_count.eq(&prog_len.sub(&lit(1, 32))));

    // ---------------------------------------------------------------- sequencer
    let finish = b.name(
        "finish",
        all(&[
            phase.eq(&lit(RUN, 2)),
            sat_start.not(),
            sat_done.clone(),
            write_pending.not(),
        ]),
    );
    let clear = go.clone();
    let read_error = sticky(
        b,
        &clk,
        &rst,
        "error_read",
        r_take.land(&rresp.ne(&Expr::zero(2))),
        &clear,
    );
    let write_error = sticky(
        b,
        &clk,
        &rst,
        "error_write",
        bvalid.land(&bresp.ne(&Expr::zero(2))),
        &clear,
    );
    // START both clears and raises this one: a clear would win over a raise in one cycle.
    let program_error = sticky(
        b,
        &clk,
        &rst,
        "error_program",
        go.land(&too_long),
        &go.land(&too_long.not()),
    );
    let busy_now = phase.ne(&lit(IDLE, 2));
    b.drive(
        &status,
        Expr::concat(vec![
            program_error,
            write_error,
            read_error,
            sat_conflict.clone(),
            busy_now.clone(),
            done.clone(),
        ]),
    );
    b.clocked(
        &clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&phase, lit(IDLE, 2)),
                set(&done, Expr::bit(false)),
                set(&sat_start, Expr::bit(false)),
                set(&fetch_req, Expr::bit(false)),
                set(&cycles, Expr::zero(COUNTER_BITS)),
            ],
            vec![
                set(&sat_start, Expr::bit(false)),
                when(
                    busy_now,
                    vec![set(&cycles, cycles.add(&lit(1, COUNTER_BITS)))],
                ),
                when(
                    fetching.land(&req_take),
                    vec![set(&fetch_req, Expr::bit(false))],
                ),
                when(
                    word_done.clone(),
                    vec![set(&fetch_count, fetch_count.add(&lit(1, 32)))],
                ),
                when(
                    fetched_all,
                    vec![set(&phase, lit(RUN, 2)), set(&sat_start, Expr::bit(true))],
                ),
                when(
                    finish,
                    vec![set(&phase, lit(IDLE, 2)), set(&done, Expr::bit(true))],
                ),
                when(
                    go,
                    vec![
                        set(&cycles, Expr::zero(COUNTER_BITS)),
                        set(&fetch_count, Expr::zero(32)),
                        when_else(
                            too_long,
                            vec![set(&done, Expr::bit(true))],
                            vec![
                                set(&done, Expr::bit(false)),
                                when_else(
                                    prog_len.eq(&Expr::zero(32)),
                                    vec![
                                        set(&phase, lit(RUN, 2)),
                                        set(&sat_start, Expr::bit(true)),
                                    ],
                                    vec![
                                        set(&phase, lit(FETCH, 2)),
                                        set(&fetch_req, Expr::bit(true)),
                                    ],
                                ),
                            ],
                        ),
                    ],
                ),
            ],
        )],
    );

    // ---------------------------------------------------------------- the system top
    let mut conn: Vec<(String, Expr)> = vec![
        (sat_ports::CLOCK.into(), clk.clone()),
        (sat_ports::RESET.into(), rst.clone()),
        (sat_ports::START.into(), sat_start.clone()),
        (sat_ports::DONE.into(), sat_done),
        (sat_ports::CONFLICT.into(), sat_conflict),
        (sat_ports::LR.into(), lr),
        (sat_ports::LAMBDA.into(), lambda),
        (sat_ports::IMEM_WE.into(), imem_we),
        (sat_ports::IMEM_ADDR.into(), imem_addr),
        (sat_ports::IMEM_DATA.into(), imem_data),
        (sat_ports::RD_REQ_VALID.into(), rd_req_valid),
        (sat_ports::RD_REQ_READY.into(), rd_req_ready),
        (sat_ports::RD_REQ_ADDR.into(), rd_req_addr),
        (sat_ports::RD_REQ_LEN.into(), rd_req_len),
        (sat_ports::RD_VALID.into(), rd_valid),
        (sat_ports::RD_READY.into(), rd_ready),
        (sat_ports::RD_DATA.into(), rdata.clone()),
        (sat_ports::WR_VALID.into(), wr_valid),
        (sat_ports::WR_READY.into(), wr_ready),
        (sat_ports::WR_ADDR.into(), wr_addr),
        (sat_ports::WR_DATA.into(), wr_data),
        (sat_ports::CYCLE_COUNT.into(), sat_cycles),
    ];
    for (&e, w) in isa::Engine::ALL.iter().zip(&busy) {
        conn.push((sat_ports::busy(e), w.clone()));
    }
    // The per-instruction strobes are for a harness that watches every cycle; the registers
    // give the counters at the end.
    for e in isa::Engine::ALL {
        for port in [sat_ports::started(e), sat_ports::ended(e)] {
            let strobe = b.wire(&format!("sat_{port}"), 1);
            unused.push(strobe.clone());
            conn.push((port, strobe));
        }
    }
    let conn_ref: Vec<(&str, Expr)> = conn.iter().map(|(n, e)| (n.as_str(), e.clone())).collect();
    b.instance(engine, "system", conn_ref);
    b.name("unused_bits", Expr::concat(unused));
}

/// `a && b && ...` of one-bit expressions.
fn all<'id>(terms: &[Expr<'id>]) -> Expr<'id> {
    terms
        .iter()
        .skip(1)
        .fold(terms[0].clone(), |acc, t| acc.land(t))
}
