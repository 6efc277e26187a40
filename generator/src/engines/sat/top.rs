//! The RTL of the system top (`sat_top`): the controller, the DMA engine, the STCE feeder and
//! the buffers, around an instance of the fp16 STCE. Behaviour and timing: the parent module.

use super::isa::{self, Buf};
use super::lines::Geometry;
use super::{ports, COUNTER_BITS, FIFO_DEPTH, LEN_BITS, READOUT_DEPTH, TOKEN_BITS};
use crate::config::{Config, StceConfig, SystemConfig};
use crate::engines::sore;
use crate::engines::stce;
use crate::engines::wuve::{self, WuveParams};
use crate::rtl::{
    index_bits, set, when, when_else, Design, DesignError, Expr, ModuleBuilder, ModuleDef, Stmt,
};

/// The modules of the system besides its top: the STCE's and the WUVE's (their tops are tops of
/// the config too).
pub fn module_names(cfg: &Config) -> Vec<String> {
    let stce_cfg = cfg.stce.as_ref().expect("a [system] config has [stce]");
    let mut names = stce::module_names(stce_cfg);
    let train = cfg.train.as_ref().expect("a [system] config has [train]");
    names.extend(wuve::module_names(&WuveParams::of(train)));
    if let Some(p) = sore::SoreParams::of(cfg) {
        names.extend(sore::module_names(&p));
    }
    names
}

/// Builds the STCE and the system top around it; the design's last module is `sat_top`.
///
/// # Panics
/// If `cfg` has no `[stce]` or `[system]` (a caller bug: plan only system configs).
pub fn generate(cfg: &Config) -> Result<Design, DesignError> {
    let stce_cfg = cfg.stce.as_ref().expect("a [system] config has [stce]");
    let sys = cfg.system.as_ref().expect("a [system] config has [system]");
    let mut design = stce::generate(stce_cfg)?;
    let stce_def = design
        .get(&stce_cfg.top)
        .expect("the STCE design has its top")
        .clone();
    let train = cfg.train.as_ref().expect("a [system] config has [train]");
    let wuve_design = wuve::generate(&WuveParams::of(train), &train.wuve_top)?;
    for module in wuve_design.modules() {
        design.add(module.clone())?;
    }
    let wuve_def = design
        .get(&train.wuve_top)
        .expect("the WUVE design has its top")
        .clone();
    let sore_p = sore::SoreParams::of(cfg).expect("a [system] config has [train]");
    for module in sore::generate(&sore_p, &train.sore_top)?.modules() {
        design.add(module.clone())?;
    }
    let sore_def = design
        .get(&train.sore_top)
        .expect("the SORE design has its top")
        .clone();
    let geo = Geometry::of(cfg).expect("a [system] config has a geometry");
    design.add(system_top(
        stce_cfg, sys, &geo, &stce_def, &wuve_def, &sore_def,
    ))?;
    Ok(design)
}

/// One engine's use of a buffer port in a cycle.
struct PortUse<'id> {
    en: Expr<'id>,
    addr: Expr<'id>,
    data: Option<Expr<'id>>,
}

/// The shared read and write ports of one buffer.
#[derive(Default)]
struct BufferPorts<'id> {
    writers: Vec<PortUse<'id>>,
    readers: Vec<PortUse<'id>>,
}

fn lit<'id>(v: u64, w: u32) -> Expr<'id> {
    Expr::lit(v, w)
}

/// `a && b && ...` of one-bit expressions.
fn all<'id>(terms: &[Expr<'id>]) -> Expr<'id> {
    terms
        .iter()
        .skip(1)
        .fold(terms[0].clone(), |acc, t| acc.land(t))
}

/// `a || b || ...` of one-bit expressions (false when empty).
fn any<'id>(terms: &[Expr<'id>]) -> Expr<'id> {
    terms.iter().fold(Expr::bit(false), |acc, t| acc.lor(t))
}

/// Priority multiplexer: the value of the first enabled use, else the last one's.
fn pick<'id>(uses: &[(Expr<'id>, Expr<'id>)]) -> Expr<'id> {
    let (_, last) = uses.last().expect("at least one use");
    uses.iter()
        .rev()
        .skip(1)
        .fold(last.clone(), |rest, (en, v)| Expr::mux(en, v, &rest))
}

/// True when two or more of `ens` are high.
fn two_or_more<'id>(ens: &[Expr<'id>]) -> Expr<'id> {
    let mut pairs = Vec::new();
    for i in 0..ens.len() {
        for j in i + 1..ens.len() {
            pairs.push(ens[i].land(&ens[j]));
        }
    }
    any(&pairs)
}

fn system_top(
    stce_cfg: &StceConfig,
    sys: &SystemConfig,
    geo: &Geometry,
    stce_def: &ModuleDef,
    wuve_def: &ModuleDef,
    sore_def: &ModuleDef,
) -> ModuleDef {
    ModuleBuilder::build(sys.top.clone(), |b| {
        system_top_body(b, stce_cfg, sys, geo, stce_def, wuve_def, sore_def)
    })
}

/// The contents of [`system_top`]'s module, described with its builder.
fn system_top_body<'id>(
    b: &mut ModuleBuilder<'id>,
    stce_cfg: &StceConfig,
    sys: &SystemConfig,
    geo: &Geometry,
    stce_def: &ModuleDef,
    wuve_def: &ModuleDef,
    sore_def: &ModuleDef,
) {
    let (rows, cols, n, m) = (geo.rows, geo.cols, geo.n, geo.m);
    let ib = geo.index_bits();
    let mem_bits = sys.mem_bits;
    let word = isa::WORD_BITS;
    b.doc(format!(
        "SAT system top: a {rows} x {cols} fp16 STCE ({n}:{m}), buffers, a DMA engine on one \
         {mem_bits}-bit memory port and a controller that runs an instruction stream."
    ));
    b.doc("Protocol, instruction set and timing: the generator's `engines::sat` documentation.");

    // ---------------------------------------------------------------- ports
    let clk = b.input(ports::CLOCK, 1, "");
    let rst = b.input(ports::RESET, 1, "synchronous, active high");
    let start = b.input(ports::START, 1, "pulse: run the program from address 0");
    let done = b.output_reg(
        ports::DONE,
        1,
        "the program has ended and every engine is idle",
    );
    let conflict = b.output_reg(
        ports::CONFLICT,
        1,
        "sticky: two engines used one buffer port in one cycle (a schedule bug)",
    );
    let lr = b.input(ports::LR, 32, "fp32 learning rate, held for the run");
    let lambda = b.input(
        ports::LAMBDA,
        32,
        "fp32 decay of pruned weights, held for the run",
    );
    let pc_bits = index_bits(sys.imem_depth);
    let imem_we = b.input(
        ports::IMEM_WE,
        1,
        "write the instruction memory (while idle)",
    );
    let imem_addr = b.input(ports::IMEM_ADDR, pc_bits, "");
    let imem_data = b.input(ports::IMEM_DATA, word, "one instruction word");
    let rd_req_valid = b.output_reg(ports::RD_REQ_VALID, 1, "read request");
    let rd_req_ready = b.input(ports::RD_REQ_READY, 1, "");
    let rd_req_addr = b.output_reg(ports::RD_REQ_ADDR, 32, "first beat");
    let rd_req_len = b.output_reg(ports::RD_REQ_LEN, LEN_BITS, "beats");
    let rd_valid = b.input(ports::RD_VALID, 1, "read data beat");
    let rd_ready = b.output(ports::RD_READY, 1, "");
    let rd_data = b.input(ports::RD_DATA, mem_bits, "");
    let wr_valid = b.output(ports::WR_VALID, 1, "write beat");
    let wr_ready = b.input(ports::WR_READY, 1, "");
    let wr_addr = b.output(ports::WR_ADDR, 32, "beat address");
    let wr_data = b.output(ports::WR_DATA, mem_bits, "");
    let cycle_count = b.output_reg(
        ports::CYCLE_COUNT,
        COUNTER_BITS,
        "cycles from start to done",
    );
    let busy_dma = b.output_reg(&ports::busy(isa::Engine::Dma), COUNTER_BITS, "busy cycles");
    let busy_stce = b.output_reg(&ports::busy(isa::Engine::Stce), COUNTER_BITS, "busy cycles");
    let busy_wuve = b.output_reg(&ports::busy(isa::Engine::Wuve), COUNTER_BITS, "busy cycles");
    let busy_sore = b.output_reg(&ports::busy(isa::Engine::Sore), COUNTER_BITS, "busy cycles");
    let started: Vec<Expr> = isa::Engine::ALL
        .iter()
        .map(|&e| {
            b.output_reg(
                &ports::started(e),
                1,
                "pulse: an instruction's first busy cycle",
            )
        })
        .collect();
    let ended: Vec<Expr> = isa::Engine::ALL
        .iter()
        .map(|&e| {
            b.output_reg(
                &ports::ended(e),
                1,
                "pulse: the first cycle after an instruction's busy time",
            )
        })
        .collect();

    // ---------------------------------------------------------------- buffers
    let depth = |buf: Buf| match buf {
        Buf::Act => sys.act_lines,
        Buf::Wgt => sys.wgt_lines,
        Buf::Out => sys.out_lines,
        Buf::Master | Buf::W16 | Buf::Mask => sys.weight_lines,
    };
    let abits = |buf: Buf| index_bits(depth(buf));
    let mut rdata = Vec::new();
    for buf in Buf::ALL {
        let r = b.reg(&format!("{}_rdata", buf.name()), geo.line_bits(buf));
        b.describe(&format!("read port of the {} buffer", buf.name()));
        rdata.push(r);
    }
    let rdata_of = |buf: Buf| rdata[buf.code() as usize].clone();
    let mut uses: Vec<BufferPorts> = Buf::ALL.iter().map(|_| BufferPorts::default()).collect();
    // Bits that are read by nothing on purpose (reserved fields, address bits above a buffer's
    // depth, the update parameters until the WUVE is in): collected in one `unused_bits` wire.
    let mut unused = Vec::new();

    // ---------------------------------------------------------------- controller state
    let running = b.reg("running", 1);
    b.describe("between start and done");
    let end_seen = b.reg("end_seen", 1);
    b.describe("END has been fetched");
    let pc = b.reg("pc", pc_bits);
    let fetch_phase = b.reg("fetch_phase", 1);
    b.describe("0: read the instruction memory; 1: the word is in fetch_word");
    let fetch_word = b.reg("fetch_word", word);
    let imem = b.memory("imem", word, sys.imem_depth);
    b.memory_write(&clk, &imem, &imem_we, &imem_addr, &imem_data);
    let fetch_re = b.name(
        "fetch_re",
        running.land(&end_seen.not()).land(&fetch_phase.not()),
    );
    b.memory_read(&clk, &imem, &fetch_word, &fetch_re, &pc);
    let opcode = b.name("fetch_opcode", fetch_word.slice(0, 8));
    unused.push(fetch_word.slice(40, 24));
    unused.push(fetch_word.slice(isa::SLOT0 + 6 * isa::SLOT_BITS, 2 * isa::SLOT_BITS));
    let is_end = b.name("fetch_is_end", opcode.eq(&lit(isa::opcode::END as u64, 8)));
    let is_load = opcode.eq(&lit(isa::opcode::LOAD as u64, 8));
    let is_store = b.name(
        "fetch_is_store",
        opcode.eq(&lit(isa::opcode::STORE as u64, 8)),
    );
    let is_dma = b.name("fetch_is_dma", is_load.lor(&is_store));
    let is_gemm = b.name(
        "fetch_is_gemm",
        opcode.eq(&lit(isa::opcode::GEMM as u64, 8)),
    );
    let is_prune_f = b.name(
        "fetch_is_prune_f",
        opcode.eq(&lit(isa::opcode::PRUNE_F as u64, 8)),
    );
    let is_prune_b = b.name(
        "fetch_is_prune_b",
        opcode.eq(&lit(isa::opcode::PRUNE_B as u64, 8)),
    );
    let is_prune = b.name("fetch_is_prune", is_prune_f.lor(&is_prune_b));
    let is_update = b.name(
        "fetch_is_update",
        opcode.eq(&lit(isa::opcode::UPDATE as u64, 8)),
    );
    let slot = |s: u32| fetch_word.slice(isa::SLOT0 + s * isa::SLOT_BITS, isa::SLOT_BITS);
    let wait_field = fetch_word.slice(8, 16);
    let signal_field = fetch_word.slice(24, 16);

    // Per-engine FIFOs of decoded payloads. DMA payload: {signal, wait, lines, dram, buf_addr,
    // buf[2:0], is_store}; STCE payload: {signal, wait, out, groups, wgt, act, flags[2:0]}.
    unused.push(slot(0).slice(3, 13));
    let dma_payload = Expr::concat(vec![
        signal_field.clone(),
        wait_field.clone(),
        slot(4),
        slot(3),
        slot(2),
        slot(1),
        slot(0).slice(0, 3),
        is_store.clone(),
    ]);
    // SORE payload: {is_prune_b, signal, wait, s5, s3, s2, s1, s0}. PRUNE_F: s0 w16, s1 lines,
    // s2 wgt, s3 mask; PRUNE_B: s0 w16, s1 mask, s2 stride, s3 blocks, s5 wgt (s4, k_block,
    // names the k block for the scheduler and is not needed by the hardware).
    unused.push(slot(4));
    let prune_payload = Expr::concat(vec![
        is_prune_b.clone(),
        signal_field.clone(),
        wait_field.clone(),
        slot(5),
        slot(3),
        slot(2),
        slot(1),
        slot(0),
    ]);
    // UPDATE payload: {signal, wait, lines, mask, w16, master, out}.
    let update_payload = Expr::concat(vec![
        signal_field.clone(),
        wait_field.clone(),
        slot(4),
        slot(3),
        slot(2),
        slot(1),
        slot(0),
    ]);
    let gemm_payload = Expr::concat(vec![
        signal_field,
        wait_field,
        slot(4),
        slot(3),
        slot(2),
        slot(1),
        slot(0).slice(0, 3),
    ]);
    let ptr_bits = index_bits(FIFO_DEPTH);
    let count_bits = index_bits(FIFO_DEPTH + 1);
    let fifo =
        |b: &mut ModuleBuilder<'id>, name: &str, payload: Expr<'id>, push_sel: &Expr<'id>| {
            let width = payload.width();
            let entries: Vec<Expr> = (0..FIFO_DEPTH)
                .map(|i| b.reg(&format!("{name}_fifo{i}"), width))
                .collect();
            let wp = b.reg(&format!("{name}_fifo_wp"), ptr_bits);
            let rp = b.reg(&format!("{name}_fifo_rp"), ptr_bits);
            let count = b.reg(&format!("{name}_fifo_count"), count_bits);
            let full = b.name(
                &format!("{name}_fifo_full"),
                count.eq(&lit(FIFO_DEPTH as u64, count_bits)),
            );
            let push = b.name(
                &format!("{name}_fifo_push"),
                fetch_phase.land(push_sel).land(&full.not()),
            );
            let head = b.name(&format!("{name}_head"), Expr::select(&rp, &entries));
            let stmts: Vec<Stmt> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    when(
                        push.land(&wp.eq(&lit(i as u64, ptr_bits))),
                        vec![set(e, payload.clone())],
                    )
                })
                .collect();
            b.clocked(&clk, stmts);
            (entries, wp, rp, count, full, push, head)
        };
    let (_, dma_wp, dma_rp, dma_count, dma_full, dma_push, dma_head) =
        fifo(b, "dma", dma_payload, &is_dma);
    let (_, gemm_wp, gemm_rp, gemm_count, gemm_full, gemm_push, gemm_head) =
        fifo(b, "gemm", gemm_payload, &is_gemm);
    let (_, upd_wp, upd_rp, upd_count, upd_full, upd_push, upd_head) =
        fifo(b, "update", update_payload, &is_update);
    let (_, pf_wp, pf_rp, pf_count, pf_full, pf_push, pf_head) =
        fifo(b, "prune", prune_payload, &is_prune);
    // An opcode outside the instruction set (the harness's `check_program` refuses it) is
    // skipped rather than stalling fetch.
    let fetch_take = b.name(
        "fetch_take",
        fetch_phase.land(&any(&[
            is_end.clone(),
            is_dma.land(&dma_full.not()),
            is_gemm.land(&gemm_full.not()),
            is_update.land(&upd_full.not()),
            is_prune.land(&pf_full.not()),
            all(&[
                is_end.not(),
                is_dma.not(),
                is_gemm.not(),
                is_update.not(),
                is_prune.not(),
            ]),
        ])),
    );

    // ---------------------------------------------------------------- tokens and dispatch
    let tokens: Vec<Expr> = (0..isa::TOKENS)
        .map(|i| b.reg(&format!("token{i}"), TOKEN_BITS))
        .collect();
    let tokens_ok = |b: &mut ModuleBuilder<'id>, name: &str, wait: &Expr<'id>| {
        let bits: Vec<Expr> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                wait.bit_at(i as u32)
                    .not()
                    .lor(&t.ne(&Expr::zero(TOKEN_BITS)))
            })
            .collect();
        b.name(name, any(&[all(&bits)]))
    };
    // Field positions in the payloads.
    let dma_wait = dma_head.slice(1 + 3 + 16 * 4, 16);
    let dma_signal = dma_head.slice(1 + 3 + 16 * 5, 16);
    let gemm_wait = gemm_head.slice(3 + 16 * 4, 16);
    let gemm_signal = gemm_head.slice(3 + 16 * 5, 16);
    let upd_wait = upd_head.slice(16 * 5, 16);
    let upd_signal = upd_head.slice(16 * 6, 16);
    let upd_busy = b.reg("update_busy", 1);
    let pf_wait = pf_head.slice(16 * 5, 16);
    let pf_signal = pf_head.slice(16 * 6, 16);
    let pf_busy = b.reg("prune_busy", 1);
    let dma_busy = b.reg("dma_busy", 1);
    let gemm_busy = b.reg("gemm_busy", 1);
    let dma_ok = tokens_ok(b, "dma_tokens_ok", &dma_wait);
    let gemm_ok = tokens_ok(b, "gemm_tokens_ok", &gemm_wait);
    let upd_ok = tokens_ok(b, "update_tokens_ok", &upd_wait);
    let pf_ok = tokens_ok(b, "prune_tokens_ok", &pf_wait);
    // A LOAD may also be dispatched while the DMA is receiving an earlier LOAD's data (its
    // read request then overlaps that burst): `dma_queue_load`, driven by the DMA engine.
    let dma_queue_load = b.wire("dma_queue_load", 1);
    // Engines start in the same cycle unless they wait on a common token; then the fixed
    // priority DMA, STCE, WUVE, SORE decides and the later engine starts a cycle after.
    let shares_token = |higher_start: &Expr<'id>, higher_wait: &Expr<'id>, wait: &Expr<'id>| {
        higher_start.land(&higher_wait.and(wait).any())
    };
    let dma_start = b.name(
        "dma_start",
        all(&[
            running.clone(),
            dma_count.ne(&Expr::zero(count_bits)),
            dma_busy.not().lor(&dma_queue_load),
            dma_ok,
        ]),
    );
    let gemm_start = b.name(
        "gemm_start",
        all(&[
            running.clone(),
            gemm_count.ne(&Expr::zero(count_bits)),
            gemm_busy.not(),
            gemm_ok,
            shares_token(&dma_start, &dma_wait, &gemm_wait).not(),
        ]),
    );
    let upd_start = b.name(
        "update_start",
        all(&[
            running.clone(),
            upd_count.ne(&Expr::zero(count_bits)),
            upd_busy.not(),
            upd_ok,
            shares_token(&dma_start, &dma_wait, &upd_wait).not(),
            shares_token(&gemm_start, &gemm_wait, &upd_wait).not(),
        ]),
    );
    let pf_start = b.name(
        "prune_start",
        all(&[
            running.clone(),
            pf_count.ne(&Expr::zero(count_bits)),
            pf_busy.not(),
            pf_ok,
            shares_token(&dma_start, &dma_wait, &pf_wait).not(),
            shares_token(&gemm_start, &gemm_wait, &pf_wait).not(),
            shares_token(&upd_start, &upd_wait, &pf_wait).not(),
        ]),
    );
    let pf_sig = b.reg("prune_signal", 16);
    let pf_finish = b.wire("prune_finish", 1);
    let upd_sig = b.reg("update_signal", 16);
    let upd_finish = b.wire("update_finish", 1);
    let dma_sig = b.reg("dma_signal", 16);
    let gemm_sig = b.reg("gemm_signal", 16);
    let dma_finish = b.wire("dma_finish", 1);
    let gemm_finish = b.wire("gemm_finish", 1);
    b.describe("a GEMM without `last` completes (its last group is fed)");
    let readout_finish = b.wire("readout_finish", 1);
    b.describe("a tile's last result row is written: its GEMM completes");
    let readout_signal = b.wire("readout_signal", 16);
    let readout_empty = b.wire("readout_empty", 1);
    // The engines that start in one cycle wait on disjoint tokens, so each token is taken at
    // most once per cycle.
    let taken_by = |start: &Expr<'id>, wait: &Expr<'id>| Expr::mux(start, wait, &Expr::zero(16));
    let taken = b.name(
        "tokens_taken",
        taken_by(&dma_start, &dma_wait)
            .or(&taken_by(&gemm_start, &gemm_wait))
            .or(&taken_by(&upd_start, &upd_wait))
            .or(&taken_by(&pf_start, &pf_wait)),
    );
    let one = |e: Expr<'id>| Expr::concat(vec![Expr::zero(TOKEN_BITS - 1), e]);

    // ---------------------------------------------------------------- controller process
    let engines_idle = b.name(
        "engines_idle",
        all(&[
            dma_count.eq(&Expr::zero(count_bits)),
            gemm_count.eq(&Expr::zero(count_bits)),
            readout_empty.clone(),
            upd_count.eq(&Expr::zero(count_bits)),
            pf_count.eq(&Expr::zero(count_bits)),
            dma_busy.not(),
            gemm_busy.not(),
            upd_busy.not(),
            pf_busy.not(),
        ]),
    );
    let finishing = b.name(
        "program_finishing",
        all(&[running.clone(), end_seen.clone(), engines_idle]),
    );
    let fifo_update =
        |wp: &Expr<'id>, rp: &Expr<'id>, count: &Expr<'id>, push: &Expr<'id>, pop: &Expr<'id>| {
            vec![
                when(push.clone(), vec![set(wp, wp.add(&lit(1, ptr_bits)))]),
                when(pop.clone(), vec![set(rp, rp.add(&lit(1, ptr_bits)))]),
                when_else(
                    push.land(&pop.not()),
                    vec![set(count, count.add(&lit(1, count_bits)))],
                    vec![when(
                        pop.land(&push.not()),
                        vec![set(count, count.sub(&lit(1, count_bits)))],
                    )],
                ),
            ]
        };
    let mut clear = vec![
        set(&running, Expr::bit(false)),
        set(&end_seen, Expr::bit(false)),
        set(&pc, Expr::zero(pc_bits)),
        set(&fetch_phase, Expr::bit(false)),
        set(&done, Expr::bit(false)),
        set(&conflict, Expr::bit(false)),
        set(&cycle_count, Expr::zero(COUNTER_BITS)),
        set(&busy_dma, Expr::zero(COUNTER_BITS)),
        set(&busy_stce, Expr::zero(COUNTER_BITS)),
        set(&busy_wuve, Expr::zero(COUNTER_BITS)),
        set(&busy_sore, Expr::zero(COUNTER_BITS)),
    ];
    for (wp, rp, count) in [
        (&dma_wp, &dma_rp, &dma_count),
        (&gemm_wp, &gemm_rp, &gemm_count),
        (&upd_wp, &upd_rp, &upd_count),
        (&pf_wp, &pf_rp, &pf_count),
    ] {
        clear.push(set(wp, Expr::zero(ptr_bits)));
        clear.push(set(rp, Expr::zero(ptr_bits)));
        clear.push(set(count, Expr::zero(count_bits)));
    }
    for t in &tokens {
        clear.push(set(t, Expr::zero(TOKEN_BITS)));
    }
    let mut run = vec![
        when(fetch_re.clone(), vec![set(&fetch_phase, Expr::bit(true))]),
        when(
            fetch_take.clone(),
            vec![
                set(&fetch_phase, Expr::bit(false)),
                when_else(
                    is_end.clone(),
                    vec![set(&end_seen, Expr::bit(true))],
                    vec![set(&pc, pc.add(&lit(1, pc_bits)))],
                ),
            ],
        ),
        set(&cycle_count, cycle_count.add(&lit(1, COUNTER_BITS))),
        when(
            dma_busy.clone(),
            vec![set(&busy_dma, busy_dma.add(&lit(1, COUNTER_BITS)))],
        ),
        when(
            gemm_busy.clone(),
            vec![set(&busy_stce, busy_stce.add(&lit(1, COUNTER_BITS)))],
        ),
        when(
            upd_busy.clone(),
            vec![set(&busy_wuve, busy_wuve.add(&lit(1, COUNTER_BITS)))],
        ),
        when(
            pf_busy.clone(),
            vec![set(&busy_sore, busy_sore.add(&lit(1, COUNTER_BITS)))],
        ),
        when(
            finishing.clone(),
            vec![set(&running, Expr::bit(false)), set(&done, Expr::bit(true))],
        ),
    ];
    run.extend(fifo_update(
        &dma_wp, &dma_rp, &dma_count, &dma_push, &dma_start,
    ));
    run.extend(fifo_update(
        &gemm_wp,
        &gemm_rp,
        &gemm_count,
        &gemm_push,
        &gemm_start,
    ));
    run.extend(fifo_update(
        &upd_wp, &upd_rp, &upd_count, &upd_push, &upd_start,
    ));
    run.extend(fifo_update(&pf_wp, &pf_rp, &pf_count, &pf_push, &pf_start));
    for (i, t) in tokens.iter().enumerate() {
        let i = i as u32;
        let give_dma = one(dma_finish.land(&dma_sig.bit_at(i)));
        let give_gemm = one(gemm_finish.land(&gemm_sig.bit_at(i)));
        let give_readout = one(readout_finish.land(&readout_signal.bit_at(i)));
        let give_upd = one(upd_finish.land(&upd_sig.bit_at(i)));
        let give_pf = one(pf_finish.land(&pf_sig.bit_at(i)));
        let take = one(taken.bit_at(i));
        run.push(set(
            t,
            t.add(&give_dma)
                .add(&give_gemm)
                .add(&give_readout)
                .add(&give_upd)
                .add(&give_pf)
                .sub(&take),
        ));
    }
    let conflict_now = b.wire("conflict_now", 1);
    run.push(when(
        conflict_now.clone(),
        vec![set(&conflict, Expr::bit(true))],
    ));
    let mut start_run = clear.clone();
    start_run.push(set(&running, Expr::bit(true)));
    b.comment("Controller: fetch, FIFOs, tokens, counters and done.");
    b.clocked(
        &clk,
        vec![when_else(
            rst.clone(),
            clear,
            vec![when_else(
                start.land(&running.not()),
                start_run,
                vec![when(running.clone(), run)],
            )],
        )],
    );

    // ---------------------------------------------------------------- DMA engine
    const LOAD_REQ: u64 = 0;
    const LOAD_DATA: u64 = 1;
    const STORE_READ: u64 = 2;
    const STORE_LATCH: u64 = 3;
    const STORE_SEND: u64 = 4;
    let dma_state = b.reg("dma_state", 3);
    let dma_buf = b.reg("dma_buf", 3);
    let dma_buf_addr = b.reg("dma_buf_addr", 16);
    let dma_lines = b.reg("dma_lines", 16);
    let dma_line = b.reg("dma_line", 16);
    b.describe("line of the current transfer");
    let dma_beat = b.reg("dma_beat", 16);
    b.describe("beat within the current line");
    let dma_waddr = b.reg("dma_waddr", 32);
    let max_beats = Buf::ALL
        .iter()
        .map(|&x| geo.beats_per_line(x))
        .max()
        .unwrap();
    let beats_of = |buf_sel: &Expr<'id>, width: u32| {
        Expr::select(
            buf_sel,
            &Buf::ALL
                .iter()
                .map(|&x| lit(u64::from(geo.beats_per_line(x)), width))
                .collect::<Vec<_>>(),
        )
    };
    let dma_bpl = b.name("dma_beats_per_line", beats_of(&dma_buf, 16));
    let in_state = |s: u64| dma_busy.land(&dma_state.eq(&lit(s, 3)));
    let last_beat = b.name("dma_last_beat", dma_beat.eq(&dma_bpl.sub(&lit(1, 16))));
    let last_line = b.name("dma_last_line", dma_line.eq(&dma_lines.sub(&lit(1, 16))));
    b.drive(&rd_ready, in_state(LOAD_DATA));
    let beat_in = b.name("dma_beat_in", rd_ready.land(&rd_valid));
    let line_in = b.name("dma_line_in", beat_in.land(&last_beat));
    b.drive(&wr_valid, in_state(STORE_SEND));
    let beat_out = b.name("dma_beat_out", wr_valid.land(&wr_ready));
    b.drive(
        &dma_finish,
        line_in
            .land(&last_line)
            .lor(&beat_out.land(&last_beat).land(&last_line)),
    );
    // Line assembly: beat k of a line lands at bits [k*mem_bits +: mem_bits].
    let asm_bits = max_beats * mem_bits;
    let (line_word, asm_stmts) = if max_beats == 1 {
        (rd_data.clone(), vec![])
    } else {
        let asm = b.reg("dma_assembly", asm_bits);
        let shift = dma_beat.zext(32).mul(&lit(u64::from(mem_bits), 32));
        let next = b.name(
            "dma_assembly_next",
            asm.or(&rd_data.zext(asm_bits).shl(&shift)),
        );
        let stmts = vec![when(
            beat_in.clone(),
            vec![set(
                &asm,
                Expr::mux(&last_beat, &Expr::zero(asm_bits), &next),
            )],
        )];
        (next, stmts)
    };
    let sreg = b.reg("dma_store_line", asm_bits);
    b.describe("the line being stored, shifted down one beat per accepted beat");
    b.drive(&wr_data, sreg.slice(0, mem_bits));
    b.drive(&wr_addr, dma_waddr.clone());
    // A STORE reads line n + 1 in the cycle it latches line n into the shift register; the
    // line then waits in the buffer's read register (no other engine reads that buffer while
    // the STORE runs: one reader per buffer) and is latched in the cycle the last beat of line
    // n is accepted. So lines follow each other with no gap: a line costs only its beats.
    let next_latch = b.name(
        "dma_store_next_line",
        all(&[beat_out.clone(), last_beat.clone(), last_line.not()]),
    );
    let second_last = dma_line.add(&lit(1, 16)).eq(&dma_lines.sub(&lit(1, 16)));
    let read_ahead = b.name(
        "dma_read_ahead",
        in_state(STORE_LATCH)
            .land(&last_line.not())
            .lor(&next_latch.land(&second_last.not())),
    );
    let read_line = b.name(
        "dma_read_line",
        Expr::mux(
            &in_state(STORE_READ),
            &dma_line,
            &dma_line.add(&Expr::mux(&in_state(STORE_LATCH), &lit(1, 16), &lit(2, 16))),
        ),
    );
    let store_read = b.name("dma_store_read", in_state(STORE_READ).lor(&read_ahead));
    unused.push(read_line.slice(0, 16));
    for buf in Buf::ALL {
        let bits = geo.line_bits(buf);
        let sel = dma_buf.eq(&lit(u64::from(buf.code()), 3));
        let addr = dma_buf_addr
            .slice(0, abits(buf))
            .add(&dma_line.slice(0, abits(buf)));
        uses[buf.code() as usize].writers.push(PortUse {
            en: line_in.land(&sel),
            addr,
            data: Some(line_word.slice(0, bits)),
        });
        uses[buf.code() as usize].readers.push(PortUse {
            en: store_read.land(&sel),
            addr: dma_buf_addr
                .slice(0, abits(buf))
                .add(&read_line.slice(0, abits(buf))),
            data: None,
        });
    }
    if max_beats > 1 {
        // Upper assembly bits beyond the widest line are never part of a line.
        let widest = Buf::ALL.iter().map(|&x| geo.line_bits(x)).max().unwrap();
        if widest < asm_bits {
            unused.push(line_word.slice(widest, asm_bits - widest));
        }
    } else {
        let widest = Buf::ALL.iter().map(|&x| geo.line_bits(x)).max().unwrap();
        if widest < mem_bits {
            unused.push(rd_data.slice(widest, mem_bits - widest));
        }
    }
    let head_field = |lo: u32, w: u32| dma_head.slice(lo, w);
    let head_is_store = head_field(0, 1);
    let head_buf = head_field(1, 3);
    let head_lines = head_field(4 + 16 * 3, 16);
    let head_dram = head_field(4 + 16, 32);
    let head_beats = b.name(
        "dma_head_beats",
        head_lines
            .zext(LEN_BITS)
            .mul(&beats_of(&head_buf, LEN_BITS)),
    );
    // The DRAM beats of the running STORE, `[lo, hi)`: a LOAD is queued behind it only when it
    // reads none of them.
    let store_lo = b.reg("dma_store_lo", 33);
    let store_hi = b.reg("dma_store_hi", 33);
    let head_lo = head_dram.zext(33);
    let head_hi = head_lo.add(&head_beats.zext(33));
    let apart = b.name(
        "dma_head_apart",
        store_lo
            .lt(&head_hi)
            .not()
            .lor(&head_lo.lt(&store_hi).not()),
    );
    let storing = in_state(STORE_LATCH).lor(&in_state(STORE_SEND));
    // One queued LOAD: dispatched while the current LOAD receives its data (once that LOAD's
    // request has been accepted) or while a STORE of other beats runs (from its second cycle),
    // and not in the cycle the current instruction finishes. Its data is taken once it is the
    // current instruction.
    let dma_next = b.reg("dma_next", 1);
    b.describe("a LOAD is queued behind the current one (its read request issued early)");
    let next_buf = b.reg("dma_next_buf", 3);
    let next_buf_addr = b.reg("dma_next_buf_addr", 16);
    let next_lines = b.reg("dma_next_lines", 16);
    let next_sig = b.reg("dma_next_signal", 16);
    b.drive(
        &dma_queue_load,
        all(&[
            Expr::bit(sys.read_requests > 1),
            in_state(LOAD_DATA).lor(&storing.land(&apart)),
            rd_req_valid.not(),
            dma_next.not(),
            dma_finish.not(),
            head_is_store.not(),
        ]),
    );
    let latched = Expr::select(
        &dma_buf,
        &Buf::ALL
            .iter()
            .map(|&x| rdata_of(x).zext(asm_bits))
            .collect::<Vec<_>>(),
    );
    let mut dma_run = vec![
        when(
            rd_req_valid.land(&rd_req_ready),
            vec![
                set(&rd_req_valid, Expr::bit(false)),
                // A queued LOAD's request leaves the current instruction's state alone.
                when(dma_next.not(), vec![set(&dma_state, lit(LOAD_DATA, 3))]),
            ],
        ),
        when(
            beat_in.clone(),
            vec![when_else(
                last_beat.clone(),
                vec![
                    set(&dma_beat, Expr::zero(16)),
                    set(&dma_line, dma_line.add(&lit(1, 16))),
                ],
                vec![set(&dma_beat, dma_beat.add(&lit(1, 16)))],
            )],
        ),
        when(
            in_state(STORE_READ),
            vec![set(&dma_state, lit(STORE_LATCH, 3))],
        ),
        when(
            in_state(STORE_LATCH),
            vec![
                set(&sreg, latched.clone()),
                set(&dma_beat, Expr::zero(16)),
                set(&dma_state, lit(STORE_SEND, 3)),
            ],
        ),
        when(
            beat_out.clone(),
            vec![
                set(&dma_waddr, dma_waddr.add(&lit(1, 32))),
                when_else(
                    last_beat.clone(),
                    vec![
                        set(&dma_line, dma_line.add(&lit(1, 16))),
                        set(&dma_beat, Expr::zero(16)),
                        set(&sreg, latched.clone()),
                    ],
                    vec![
                        set(&dma_beat, dma_beat.add(&lit(1, 16))),
                        set(
                            &sreg,
                            sreg.shr(&lit(u64::from(mem_bits), index_bits(asm_bits + 1))),
                        ),
                    ],
                ),
            ],
        ),
        when(
            dma_finish.clone(),
            vec![when_else(
                dma_next.clone(),
                vec![
                    // The queued LOAD becomes the current one; its request may still wait.
                    set(&dma_next, Expr::bit(false)),
                    set(&dma_buf, next_buf.clone()),
                    set(&dma_buf_addr, next_buf_addr.clone()),
                    set(&dma_lines, next_lines.clone()),
                    set(&dma_line, Expr::zero(16)),
                    set(&dma_beat, Expr::zero(16)),
                    set(&dma_sig, next_sig.clone()),
                    set(
                        &dma_state,
                        Expr::mux(
                            &rd_req_valid.land(&rd_req_ready.not()),
                            &lit(LOAD_REQ, 3),
                            &lit(LOAD_DATA, 3),
                        ),
                    ),
                ],
                vec![set(&dma_busy, Expr::bit(false))],
            )],
        ),
        when(
            dma_start.land(&dma_busy),
            vec![
                set(&dma_next, Expr::bit(true)),
                set(&next_buf, head_buf.clone()),
                set(&next_buf_addr, head_field(4, 16)),
                set(&next_lines, head_lines.clone()),
                set(&next_sig, dma_signal.clone()),
                set(&rd_req_valid, Expr::bit(true)),
                set(&rd_req_addr, head_dram.clone()),
                set(&rd_req_len, head_beats.clone()),
            ],
        ),
        when(
            dma_start.land(&dma_busy.not()),
            vec![
                set(&dma_busy, Expr::bit(true)),
                set(&dma_buf, head_buf.clone()),
                set(&dma_buf_addr, head_field(4, 16)),
                set(&dma_lines, head_lines.clone()),
                set(&dma_line, Expr::zero(16)),
                set(&dma_beat, Expr::zero(16)),
                set(&dma_waddr, head_dram.clone()),
                set(&dma_sig, dma_signal.clone()),
                set(
                    &dma_state,
                    Expr::mux(&head_is_store, &lit(STORE_READ, 3), &lit(LOAD_REQ, 3)),
                ),
                set(&rd_req_valid, head_is_store.not()),
                set(&rd_req_addr, head_dram),
                set(&rd_req_len, head_beats),
                set(&store_lo, head_lo),
                set(&store_hi, head_hi),
            ],
        ),
    ];
    dma_run.extend(asm_stmts);
    b.comment("DMA engine: LOAD (one read burst, lines assembled from beats) and STORE.");
    b.clocked(
        &clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&dma_busy, Expr::bit(false)),
                set(&dma_next, Expr::bit(false)),
                set(&rd_req_valid, Expr::bit(false)),
            ],
            dma_run,
        )],
    );

    // ---------------------------------------------------------------- STCE feeder
    let g_busy = gemm_busy;
    let g_group = b.reg("gemm_group", 16);
    let g_act = b.reg("gemm_act_addr", 16);
    let g_wgt = b.reg("gemm_wgt_addr", 16);
    let g_groups = b.reg("gemm_groups", 16);
    let g_out = b.reg("gemm_out_addr", 16);
    let g_flags = b.reg("gemm_flags", 3);
    let v_d = b.reg("stce_valid", 1);
    let f_d = b.reg("stce_first", 1);
    let l_d = b.reg("stce_last", 1);
    let dense_d = b.reg("stce_dense", 1);
    // Dense mode packs P = M/N groups into one act line (`lines::Geometry::pack_act`): the
    // act line advances every P groups (`gemm_act_line`), and `gemm_act_slot` (the group's
    // first slot in its line, `(g % P) * N`) steps by N and wraps at P, so no divider is needed.
    // Sparse mode advances the line every group. With P = 1 the slot is always 0.
    let per_line = geo.act_groups_per_line(isa::GemmMode::Dense) as u32;
    let g_act_line = b.reg("gemm_act_line", 16);
    let slot = (per_line > 1).then(|| (b.reg("gemm_act_slot", ib), b.reg("stce_act_slot", ib)));
    let last_group = b.name("gemm_last_group", g_group.eq(&g_groups.sub(&lit(1, 16))));
    let flag = |bit: u16| g_flags.bit_at(bit.trailing_zeros());
    // The array takes a tile's last group at least `tile_spacing` cycles after the previous
    // one's (`engines::stce`); `since_last` counts the cycles since the feeder fed one,
    // saturating there.
    let spacing = super::tile_spacing(geo);
    let since_bits = index_bits(spacing as u32 + 1);
    let since_last = b.reg("gemm_since_last_tile", since_bits);
    let tile_end = b.name(
        "gemm_tile_end",
        last_group.land(&flag(isa::gemm_flags::LAST)),
    );
    let streaming = b.name(
        "gemm_streaming",
        g_busy.land(
            &tile_end
                .not()
                .lor(&since_last.eq(&lit(spacing, since_bits))),
        ),
    );
    let fed_last = b.name("gemm_fed_last", streaming.land(&last_group));
    let tile_fed = b.name("gemm_tile_fed", fed_last.land(&flag(isa::gemm_flags::LAST)));
    b.drive(
        &gemm_finish,
        fed_last.land(&flag(isa::gemm_flags::LAST).not()),
    );
    // The STCE shows each result row itself (`engines::stce`: out_valid, out_row, out_last).
    let stce_out_valid = b.wire("stce_out_valid", 1);
    let stce_out_row = b.wire("stce_out_row", index_bits(rows));
    let stce_out_last = b.wire("stce_out_last", 1);
    // Fed tiles waiting for their rows, in feeding order (the order the array shows them):
    // each entry's `out_addr` and `signal`.
    let ro_ptr_bits = index_bits(READOUT_DEPTH);
    let ro_count_bits = index_bits(READOUT_DEPTH + 1);
    let ro_addr: Vec<Expr> = (0..READOUT_DEPTH)
        .map(|i| b.reg(&format!("readout_out_addr{i}"), 16))
        .collect();
    let ro_sig: Vec<Expr> = (0..READOUT_DEPTH)
        .map(|i| b.reg(&format!("readout_signal{i}"), 16))
        .collect();
    let ro_wp = b.reg("readout_wp", ro_ptr_bits);
    let ro_rp = b.reg("readout_rp", ro_ptr_bits);
    let ro_count = b.reg("readout_count", ro_count_bits);
    let readout_base = b.name("readout_out_addr", Expr::select(&ro_rp, &ro_addr));
    b.drive(&readout_signal, Expr::select(&ro_rp, &ro_sig));
    b.drive(&readout_finish, stce_out_valid.land(&stce_out_last));
    b.drive(&readout_empty, ro_count.eq(&Expr::zero(ro_count_bits)));
    let head = |lo: u32, w: u32| gemm_head.slice(lo, w);
    b.comment(
        "STCE feeder: one group per cycle from act/wgt lines; fed tiles wait for their rows.",
    );
    // Every GEMM starts on a line boundary, at slot 0.
    let slot_reset: Vec<Stmt> = slot.iter().map(|(at, _)| set(at, Expr::zero(ib))).collect();
    let mut ro_push: Vec<Stmt> = (0..READOUT_DEPTH)
        .map(|i| {
            when(
                ro_wp.eq(&lit(u64::from(i), ro_ptr_bits)),
                vec![
                    set(&ro_addr[i as usize], g_out.clone()),
                    set(&ro_sig[i as usize], gemm_sig.clone()),
                ],
            )
        })
        .collect();
    ro_push.push(set(&ro_wp, ro_wp.add(&lit(1, ro_ptr_bits))));
    b.clocked(
        &clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&g_busy, Expr::bit(false)),
                set(&v_d, Expr::bit(false)),
                set(&f_d, Expr::bit(false)),
                set(&l_d, Expr::bit(false)),
                set(&since_last, lit(spacing, since_bits)),
                set(&ro_wp, Expr::zero(ro_ptr_bits)),
                set(&ro_rp, Expr::zero(ro_ptr_bits)),
                set(&ro_count, Expr::zero(ro_count_bits)),
            ]
            .into_iter()
            .chain(slot_reset.clone())
            .collect(),
            vec![
                set(&v_d, streaming.clone()),
                set(
                    &f_d,
                    streaming
                        .land(&flag(isa::gemm_flags::FIRST))
                        .land(&g_group.eq(&Expr::zero(16))),
                ),
                set(&l_d, streaming.land(&tile_end)),
                set(&dense_d, flag(isa::gemm_flags::DENSE)),
                when_else(
                    tile_fed.clone(),
                    vec![set(&since_last, lit(1, since_bits))],
                    vec![when(
                        since_last.ne(&lit(spacing, since_bits)),
                        vec![set(&since_last, since_last.add(&lit(1, since_bits)))],
                    )],
                ),
                when(streaming.clone(), {
                    let mut advance = vec![set(&g_group, g_group.add(&lit(1, 16)))];
                    match &slot {
                        None => advance.push(set(&g_act_line, g_act_line.add(&lit(1, 16)))),
                        Some((at, at_d)) => {
                            let line_done = flag(isa::gemm_flags::DENSE)
                                .not()
                                .lor(&at.eq(&lit(u64::from((per_line - 1) * n), ib)));
                            advance.push(set(at_d, at.clone()));
                            advance.push(when_else(
                                line_done,
                                vec![
                                    set(&g_act_line, g_act_line.add(&lit(1, 16))),
                                    set(at, Expr::zero(ib)),
                                ],
                                vec![set(at, at.add(&lit(u64::from(n), ib)))],
                            ));
                        }
                    }
                    advance
                }),
                when(tile_fed.clone(), ro_push),
                when(
                    readout_finish.clone(),
                    vec![set(&ro_rp, ro_rp.add(&lit(1, ro_ptr_bits)))],
                ),
                when_else(
                    tile_fed.land(&readout_finish.not()),
                    vec![set(&ro_count, ro_count.add(&lit(1, ro_count_bits)))],
                    vec![when(
                        readout_finish.land(&tile_fed.not()),
                        vec![set(&ro_count, ro_count.sub(&lit(1, ro_count_bits)))],
                    )],
                ),
                when(fed_last.clone(), vec![set(&g_busy, Expr::bit(false))]),
                when(
                    gemm_start.clone(),
                    vec![
                        set(&g_busy, Expr::bit(true)),
                        set(&g_group, Expr::zero(16)),
                        set(&g_act_line, Expr::zero(16)),
                        set(&g_flags, head(0, 3)),
                        set(&g_act, head(3, 16)),
                        set(&g_wgt, head(19, 16)),
                        set(&g_groups, head(35, 16)),
                        set(&g_out, head(51, 16)),
                        set(&gemm_sig, gemm_signal.clone()),
                    ]
                    .into_iter()
                    .chain(slot_reset)
                    .collect(),
                ),
            ],
        )],
    );
    for (buf, base, offset) in [
        (Buf::Act, &g_act, &g_act_line),
        (Buf::Wgt, &g_wgt, &g_group),
    ] {
        uses[buf.code() as usize].readers.push(PortUse {
            en: streaming.clone(),
            addr: base.slice(0, abits(buf)).add(&offset.slice(0, abits(buf))),
            data: None,
        });
    }

    // The STCE instance.
    let act_line = rdata_of(Buf::Act);
    let wgt_line = rdata_of(Buf::Wgt);
    let lanes = stce_cfg.lanes();
    let sparse = stce_cfg.has_sparse_mode();
    let mut conns: Vec<(String, Expr)> = vec![
        (ports::CLOCK.into(), clk.clone()),
        (ports::RESET.into(), rst.clone()),
        (stce::ports::VALID.into(), v_d.clone()),
        (stce::ports::FIRST.into(), f_d.clone()),
        (stce::ports::LAST.into(), l_d.clone()),
    ];
    for r in 0..rows {
        conns.push((
            stce::ports::act_row(r),
            act_line.slice(r * m * 16, lanes * 16),
        ));
        if lanes < m {
            unused.push(act_line.slice(r * m * 16 + lanes * 16, (m - lanes) * 16));
        }
    }
    let slot_bits = 16 + ib;
    for c in 0..cols {
        let values: Vec<Expr> = (0..n)
            .rev()
            .map(|i| wgt_line.slice((c * n + i) * slot_bits, 16))
            .collect();
        conns.push((stce::ports::wgt_col(c), Expr::concat(values)));
        let indices: Vec<Expr> = (0..n)
            .rev()
            .map(|i| wgt_line.slice((c * n + i) * slot_bits + 16, ib))
            .collect();
        if sparse {
            // Dense mode on a sparse engine: lanes `(g % P) * N + i` (`engines::stce`), the
            // group's slots in its act line. The slot register lines up with the buffers'
            // registered read data; the index travels down the column with the wgt value.
            let fixed: Vec<Expr> = (0..n)
                .rev()
                .map(|i| match &slot {
                    None => lit(u64::from(i), ib),
                    Some((_, at_d)) => at_d.add(&lit(u64::from(i), ib)),
                })
                .collect();
            let idx = Expr::mux(&dense_d, &Expr::concat(fixed), &Expr::concat(indices));
            conns.push((stce::ports::idx_col(c), idx));
        } else {
            unused.push(Expr::concat(indices));
            unused.push(dense_d.clone());
        }
    }
    conns.push((stce::ports::OUT_VALID.into(), stce_out_valid.clone()));
    conns.push((stce::ports::OUT_ROW.into(), stce_out_row.clone()));
    conns.push((stce::ports::OUT_LAST.into(), stce_out_last.clone()));
    let results: Vec<Expr> = (0..cols)
        .map(|c| b.wire(&format!("stce_res_col{c}"), 32))
        .collect();
    for (c, r) in results.iter().enumerate() {
        conns.push((stce::ports::res_col(c as u32), r.clone()));
    }
    let conn_refs: Vec<(&str, Expr)> = conns.iter().map(|(p, e)| (p.as_str(), e.clone())).collect();
    b.instance(stce_def, "stce", conn_refs);
    uses[Buf::Out.code() as usize].writers.push(PortUse {
        en: stce_out_valid.clone(),
        addr: readout_base
            .slice(0, abits(Buf::Out))
            .add(&stce_out_row.zext(16).slice(0, abits(Buf::Out))),
        data: Some(Expr::concat(results.iter().rev().cloned().collect())),
    });
    for (base, buf) in [
        (&g_act, Buf::Act),
        (&g_act_line, Buf::Act),
        (&g_wgt, Buf::Wgt),
        (&readout_base, Buf::Out),
    ] {
        if abits(buf) < 16 {
            unused.push(base.slice(abits(buf), 16 - abits(buf)));
        }
    }
    for buf in Buf::ALL {
        if abits(buf) < 16 {
            unused.push(dma_buf_addr.slice(abits(buf), 16 - abits(buf)));
            unused.push(dma_line.slice(abits(buf), 16 - abits(buf)));
        }
    }

    // ---------------------------------------------------------------- WUVE (UPDATE)
    let lanes_w = cols;
    let u_lines = b.reg("update_lines", 16);
    let u_read = b.reg("update_read", 16);
    b.describe("lines read so far");
    let u_write = b.reg("update_write", 16);
    b.describe("lines written so far");
    let u_out = b.reg("update_out_addr", 16);
    let u_master = b.reg("update_master_addr", 16);
    let u_w16 = b.reg("update_w16_addr", 16);
    let u_mask = b.reg("update_mask_addr", 16);
    let u_valid = b.reg("wuve_valid", 1);
    b.describe("the read lines are in the buffers' read registers this cycle");
    let u_reading = b.name("update_reading", upd_busy.land(&u_read.lt(&u_lines)));
    let w_out_valid = b.wire("wuve_out_valid", 1);
    let w_last = b.name("update_last_write", u_write.eq(&u_lines.sub(&lit(1, 16))));
    b.drive(&upd_finish, upd_busy.land(&w_out_valid).land(&w_last));
    let uh = |lo: u32| upd_head.slice(lo, 16);
    b.comment(
        "Update feeder: one line of dW^T, W32 and M_F per cycle into the WUVE, W32'/W16' back.",
    );
    b.clocked(
        &clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&upd_busy, Expr::bit(false)),
                set(&u_valid, Expr::bit(false)),
            ],
            vec![
                set(&u_valid, u_reading.clone()),
                when(
                    u_reading.clone(),
                    vec![set(&u_read, u_read.add(&lit(1, 16)))],
                ),
                when(
                    upd_busy.land(&w_out_valid),
                    vec![set(&u_write, u_write.add(&lit(1, 16)))],
                ),
                when(upd_finish.clone(), vec![set(&upd_busy, Expr::bit(false))]),
                when(
                    upd_start.clone(),
                    vec![
                        set(&upd_busy, Expr::bit(true)),
                        set(&u_read, Expr::zero(16)),
                        set(&u_write, Expr::zero(16)),
                        set(&u_out, uh(0)),
                        set(&u_master, uh(16)),
                        set(&u_w16, uh(32)),
                        set(&u_mask, uh(48)),
                        set(&u_lines, uh(64)),
                        set(&upd_sig, upd_signal.clone()),
                    ],
                ),
            ],
        )],
    );
    let at = |base: &Expr<'id>, count: &Expr<'id>, buf: Buf| {
        base.slice(0, abits(buf)).add(&count.slice(0, abits(buf)))
    };
    for (buf, base) in [
        (Buf::Out, &u_out),
        (Buf::Master, &u_master),
        (Buf::Mask, &u_mask),
    ] {
        uses[buf.code() as usize].readers.push(PortUse {
            en: u_reading.clone(),
            addr: at(base, &u_read, buf),
            data: None,
        });
    }
    let mut wconns: Vec<(String, Expr)> = vec![
        (wuve::ports::CLOCK.into(), clk.clone()),
        (wuve::ports::RESET.into(), rst.clone()),
        (wuve::ports::LR.into(), lr.clone()),
        (wuve::ports::LAMBDA.into(), lambda.clone()),
        (wuve::ports::VALID.into(), u_valid.clone()),
        (wuve::ports::OUT_VALID.into(), w_out_valid.clone()),
    ];
    let mut w32_next = Vec::new();
    let mut w16_next = Vec::new();
    for v in 0..lanes_w {
        wconns.push((wuve::ports::w32(v), rdata_of(Buf::Master).slice(v * 32, 32)));
        wconns.push((wuve::ports::dw(v), rdata_of(Buf::Out).slice(v * 32, 32)));
        wconns.push((wuve::ports::keep(v), rdata_of(Buf::Mask).slice(v, 1)));
        let w32n = b.wire(&format!("wuve_w32_next{v}"), 32);
        let w16n = b.wire(&format!("wuve_w16_next{v}"), 16);
        wconns.push((wuve::ports::w32_next(v), w32n.clone()));
        wconns.push((wuve::ports::w16_next(v), w16n.clone()));
        w32_next.push(w32n);
        w16_next.push(w16n);
    }
    let wconn_refs: Vec<(&str, Expr)> = wconns
        .iter()
        .map(|(p, e)| (p.as_str(), e.clone()))
        .collect();
    b.instance(wuve_def, "wuve", wconn_refs);
    let u_writing = b.name("update_writing", upd_busy.land(&w_out_valid));
    uses[Buf::Master.code() as usize].writers.push(PortUse {
        en: u_writing.clone(),
        addr: at(&u_master, &u_write, Buf::Master),
        data: Some(Expr::concat(w32_next.into_iter().rev().collect())),
    });
    uses[Buf::W16.code() as usize].writers.push(PortUse {
        en: u_writing,
        addr: at(&u_w16, &u_write, Buf::W16),
        data: Some(Expr::concat(w16_next.into_iter().rev().collect())),
    });
    for (base, buf) in [
        (&u_out, Buf::Out),
        (&u_master, Buf::Master),
        (&u_w16, Buf::W16),
        (&u_mask, Buf::Mask),
    ] {
        if abits(buf) < 16 {
            unused.push(base.slice(abits(buf), 16 - abits(buf)));
        }
    }
    for counter in [&u_read, &u_write] {
        let used = abits(Buf::Master)
            .max(abits(Buf::Out))
            .max(abits(Buf::Mask));
        if used < 16 {
            unused.push(counter.slice(used, 16 - used));
        }
    }

    // ---------------------------------------------------------------- SORE (PRUNE_F, PRUNE_B)
    let p_backward = b.reg("prune_backward", 1);
    b.describe("the SORE runs a PRUNE_B (else a PRUNE_F)");
    let p_lines = b.reg("prune_lines", 16);
    let p_read = b.reg("prune_read", 16);
    b.describe("w16 lines read so far (one k of the cout block each)");
    let p_group = b.reg("prune_group_base", 16);
    b.describe("first k of the group whose mask lines are being written");
    let p_wgt_line = b.reg("prune_wgt_line", 16);
    b.describe("wgt lines written so far (one per group)");
    let p_w16 = b.reg("prune_w16_addr", 16);
    let p_wgt = b.reg("prune_wgt_addr", 16);
    let p_mask = b.reg("prune_mask_addr", 16);
    let p_valid = b.reg("sore_valid", 1);
    let p_keep_idx = b.reg("prune_indices", cols * n * ib);
    b.describe("the last group's kept indices, every lane, expanded into M mask lines");
    let p_mask_pending = b.reg("prune_mask_pending", 1);
    let j_bits = index_bits(m);
    let p_j = b.reg("prune_mask_line", j_bits);
    let p_reading = b.name(
        "prune_reading",
        all(&[pf_busy.clone(), p_backward.not(), p_read.lt(&p_lines)]),
    );
    let s_out_valid = b.wire("sore_out_valid", 1);
    let last_j = b.name(
        "prune_last_mask_line",
        p_j.eq(&lit(u64::from(m - 1), j_bits)),
    );
    let writing_mask = b.name("prune_writing_mask", pf_busy.land(&p_mask_pending));
    let mask_k = b.name("prune_mask_k", p_group.add(&p_j.zext(16)));
    let pb_finish = b.wire("prune_b_finish", 1);
    b.drive(
        &pf_finish,
        writing_mask
            .land(&mask_k.eq(&p_lines.sub(&lit(1, 16))))
            .lor(&pb_finish),
    );
    let ph = |lo: u32| pf_head.slice(lo, 16);
    b.comment("PRUNE_F feeder: one w16 line (one k, every cout of the block) per cycle into the");
    b.comment("SORE; each group's selection is one wgt line, then M mask lines.");
    b.clocked(
        &clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&pf_busy, Expr::bit(false)),
                set(&p_valid, Expr::bit(false)),
                set(&p_mask_pending, Expr::bit(false)),
            ],
            vec![
                set(&p_valid, p_reading.clone()),
                when(
                    p_reading.clone(),
                    vec![set(&p_read, p_read.add(&lit(1, 16)))],
                ),
                when(
                    writing_mask.clone(),
                    vec![
                        set(&p_j, p_j.add(&lit(1, j_bits))),
                        when(
                            last_j.clone(),
                            vec![
                                set(&p_mask_pending, Expr::bit(false)),
                                set(&p_group, p_group.add(&lit(u64::from(m), 16))),
                            ],
                        ),
                    ],
                ),
                when(
                    pf_busy.land(&s_out_valid),
                    vec![
                        set(&p_mask_pending, p_backward.not()),
                        set(&p_j, Expr::zero(j_bits)),
                        set(&p_wgt_line, p_wgt_line.add(&lit(1, 16))),
                    ],
                ),
                when(pf_finish.clone(), vec![set(&pf_busy, Expr::bit(false))]),
                when(
                    pf_start.clone(),
                    vec![
                        set(&pf_busy, Expr::bit(true)),
                        set(&p_read, Expr::zero(16)),
                        set(&p_group, Expr::zero(16)),
                        set(&p_wgt_line, Expr::zero(16)),
                        set(&p_mask_pending, Expr::bit(false)),
                        set(&p_backward, pf_head.bit_at(16 * 7)),
                        set(&p_w16, ph(0)),
                        set(&p_lines, ph(16)),
                        set(&p_wgt, Expr::mux(&pf_head.bit_at(16 * 7), &ph(64), &ph(32))),
                        set(
                            &p_mask,
                            Expr::mux(&pf_head.bit_at(16 * 7), &ph(16), &ph(48)),
                        ),
                        set(&pf_sig, pf_signal.clone()),
                    ],
                ),
            ],
        )],
    );
    uses[Buf::W16.code() as usize].readers.push(PortUse {
        en: p_reading.clone(),
        addr: at(&p_w16, &p_read, Buf::W16),
        data: None,
    });

    // PRUNE_B: M_B along Cout of W16 (x) M_F for one k block. The SORE's lanes are the block's
    // `cols` k's and its stream is the couts, so the (k, cout block) lines go through a
    // cols x cols register transposer. Block b's line j (k = j, one value per cout lane) is
    // written as row j when b is even and as column j when b is odd; cout c is then read as
    // column c (b even) or row c (b odd). Reading cout c of block b frees exactly the row or
    // column that line c of block b + 1 is written into in the same cycle, so one bank of
    // registers streams one cout per cycle with no gap between blocks.
    let pb_blocks = b.reg("prune_b_blocks", 16);
    let pb_stride = b.reg("prune_b_stride", 16);
    let cj_bits = index_bits(cols);
    let last_cj = lit(u64::from(cols - 1), cj_bits);
    let pb_rj = b.reg("prune_b_read_line", cj_bits);
    b.describe("line (k) of the block being read");
    let pb_rblock = b.reg("prune_b_read_block", 16);
    let pb_rbase = b.reg("prune_b_read_base", 16);
    b.describe("rblock * stride: the block's first line");
    let pb_wv = b.reg("prune_b_write_valid", 1);
    b.describe("the line read last cycle is in the w16 and mask read registers");
    let pb_wj = b.reg("prune_b_write_line", cj_bits);
    let pb_wcol = b.reg("prune_b_write_columns", 1);
    b.describe("the block being written goes into columns (odd block) rather than rows");
    let pb_wblock = b.reg("prune_b_written_blocks", 16);
    let pb_qj = b.reg("prune_b_cout", cj_bits);
    b.describe("cout (within its block) streamed next");
    let pb_qblock = b.reg("prune_b_cout_block", 16);
    let pb_qcol = b.reg("prune_b_read_rows", 1);
    b.describe("the block being streamed was written into columns, so its couts are rows");
    let pb_pos = b.reg("prune_b_position", j_bits);
    b.describe("position of the next streamed cout in its group of M");
    let pb_sdone = b.reg("prune_b_streamed", 1);
    b.describe("every group (the couts, then zero padding to a whole group) has been streamed");
    let pb_svalid = b.reg("prune_b_sore_valid", 1);
    let pb_value: Vec<Expr> = (0..cols)
        .map(|j| b.reg(&format!("prune_b_value{j}"), 16))
        .collect();
    let tr: Vec<Vec<Expr>> = (0..cols)
        .map(|i| {
            (0..cols)
                .map(|j| b.reg(&format!("transposer_r{i}_c{j}"), 16))
                .collect()
        })
        .collect();
    let pb_active = b.name("prune_b_active", pf_busy.land(&p_backward));
    let pb_reading = b.name("prune_b_reading", pb_active.land(&pb_rblock.ne(&pb_blocks)));
    let pb_stream = b.name(
        "prune_b_streaming",
        all(&[
            pb_active.clone(),
            pb_sdone.not(),
            pb_wblock.ne(&Expr::zero(16)),
        ]),
    );
    let pb_real = b.name("prune_b_real_cout", pb_qblock.ne(&pb_blocks));
    let pb_last_real = b.name(
        "prune_b_last_real_cout",
        pb_qblock
            .eq(&pb_blocks.sub(&lit(1, 16)))
            .land(&pb_qj.eq(&last_cj)),
    );
    let last_pos = pb_pos.eq(&lit(u64::from(m - 1), j_bits));
    b.drive(
        &pb_finish,
        all(&[
            pb_active.clone(),
            s_out_valid.clone(),
            pb_sdone.clone(),
            pb_svalid.not(),
        ]),
    );
    // W16 (x) M_F of the line in the read registers, lane c = cout c.
    let masked: Vec<Expr> = (0..cols)
        .map(|c| {
            let v = rdata_of(Buf::W16).slice(c * 16, 16);
            b.name(
                &format!("prune_b_masked{c}"),
                Expr::mux(&rdata_of(Buf::Mask).bit_at(c), &v, &Expr::zero(16)),
            )
        })
        .collect();
    let mut tr_stmts = Vec::new();
    for i in 0..cols {
        for j in 0..cols {
            let as_row = pb_wcol.not().land(&pb_wj.eq(&lit(u64::from(i), cj_bits)));
            let as_col = pb_wcol.land(&pb_wj.eq(&lit(u64::from(j), cj_bits)));
            tr_stmts.push(when(
                pb_wv.land(&as_row.lor(&as_col)),
                vec![set(
                    &tr[i as usize][j as usize],
                    Expr::mux(&pb_wcol, &masked[i as usize], &masked[j as usize]),
                )],
            ));
        }
    }
    for j in 0..cols as usize {
        let column = Expr::select(&pb_qj, &tr[j]);
        let row = Expr::select(&pb_qj, &tr.iter().map(|r| r[j].clone()).collect::<Vec<_>>());
        let v = Expr::mux(&pb_qcol, &row, &column);
        tr_stmts.push(when(
            pb_stream.clone(),
            vec![set(&pb_value[j], Expr::mux(&pb_real, &v, &Expr::zero(16)))],
        ));
    }
    b.comment("PRUNE_B feeder: w16 and mask lines of each cout block into the transposer, one");
    b.comment(
        "cout (every k of the block) per cycle into the SORE, zero couts up to a whole group.",
    );
    b.clocked(&clk, tr_stmts);
    let ph_b = |lo: u32| pf_head.slice(lo, 16);
    // Steps a line-within-block counter (0 .. cols-1); `on_wrap` runs as a block ends.
    let next_in_block = |j: &Expr<'id>, mut on_wrap: Vec<Stmt<'id>>| {
        on_wrap.insert(0, set(j, Expr::zero(cj_bits)));
        when_else(
            j.eq(&last_cj),
            on_wrap,
            vec![set(j, j.add(&lit(1, cj_bits)))],
        )
    };
    b.clocked(
        &clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&pb_wv, Expr::bit(false)),
                set(&pb_svalid, Expr::bit(false)),
            ],
            vec![
                set(&pb_wv, pb_reading.clone()),
                set(&pb_svalid, pb_stream.clone()),
                when(
                    pb_reading.clone(),
                    vec![next_in_block(
                        &pb_rj,
                        vec![
                            set(&pb_rblock, pb_rblock.add(&lit(1, 16))),
                            set(&pb_rbase, pb_rbase.add(&pb_stride)),
                        ],
                    )],
                ),
                when(
                    pb_wv.clone(),
                    vec![next_in_block(
                        &pb_wj,
                        vec![
                            set(&pb_wcol, pb_wcol.not()),
                            set(&pb_wblock, pb_wblock.add(&lit(1, 16))),
                        ],
                    )],
                ),
                when(
                    pb_stream.clone(),
                    vec![
                        set(
                            &pb_pos,
                            Expr::mux(&last_pos, &Expr::zero(j_bits), &pb_pos.add(&lit(1, j_bits))),
                        ),
                        when(
                            last_pos.land(&pb_real.not().lor(&pb_last_real)),
                            vec![set(&pb_sdone, Expr::bit(true))],
                        ),
                        when(
                            pb_real.clone(),
                            vec![next_in_block(
                                &pb_qj,
                                vec![
                                    set(&pb_qcol, pb_qcol.not()),
                                    set(&pb_qblock, pb_qblock.add(&lit(1, 16))),
                                ],
                            )],
                        ),
                    ],
                ),
                when(
                    pf_start.clone(),
                    vec![
                        set(&pb_blocks, ph_b(48)),
                        set(&pb_stride, ph_b(32)),
                        set(&pb_rj, Expr::zero(cj_bits)),
                        set(&pb_rblock, Expr::zero(16)),
                        set(&pb_rbase, Expr::zero(16)),
                        set(&pb_wj, Expr::zero(cj_bits)),
                        set(&pb_wcol, Expr::bit(false)),
                        set(&pb_wblock, Expr::zero(16)),
                        set(&pb_qj, Expr::zero(cj_bits)),
                        set(&pb_qcol, Expr::bit(false)),
                        set(&pb_qblock, Expr::zero(16)),
                        set(&pb_pos, Expr::zero(j_bits)),
                        set(&pb_sdone, Expr::bit(false)),
                    ],
                ),
            ],
        )],
    );
    let pb_line = b.name("prune_b_line", pb_rbase.add(&pb_rj.zext(16)));
    for (buf, base) in [(Buf::W16, &p_w16), (Buf::Mask, &p_mask)] {
        uses[buf.code() as usize].readers.push(PortUse {
            en: pb_reading.clone(),
            addr: at(base, &pb_line, buf),
            data: None,
        });
    }
    unused.push(pb_line.clone());

    let mut sconns: Vec<(String, Expr)> = vec![
        (sore::ports::CLOCK.into(), clk.clone()),
        (sore::ports::RESET.into(), rst.clone()),
        (sore::ports::VALID.into(), p_valid.lor(&pb_svalid)),
        (sore::ports::OUT_VALID.into(), s_out_valid.clone()),
    ];
    let mut wgt_slots = Vec::new();
    let mut idx_all = Vec::new();
    for c in 0..cols {
        let value = Expr::mux(
            &p_backward,
            &pb_value[c as usize],
            &rdata_of(Buf::W16).slice(c * 16, 16),
        );
        sconns.push((sore::ports::value(c), value));
        let vals = b.wire(&format!("sore_values{c}"), n * 16);
        let idxs = b.wire(&format!("sore_indices{c}"), n * ib);
        sconns.push((sore::ports::values(c), vals.clone()));
        sconns.push((sore::ports::indices(c), idxs.clone()));
        for i in 0..n {
            wgt_slots.push(Expr::concat(vec![
                idxs.slice(i * ib, ib),
                vals.slice(i * 16, 16),
            ]));
        }
        idx_all.push(idxs);
    }
    let sconn_refs: Vec<(&str, Expr)> = sconns
        .iter()
        .map(|(p, e)| (p.as_str(), e.clone()))
        .collect();
    b.instance(sore_def, "sore", sconn_refs);
    b.clocked(
        &clk,
        vec![when(
            s_out_valid.clone(),
            vec![set(
                &p_keep_idx,
                Expr::concat(idx_all.into_iter().rev().collect()),
            )],
        )],
    );
    let p_wgt_write = b.name("prune_wgt_write", pf_busy.land(&s_out_valid));
    uses[Buf::Wgt.code() as usize].writers.push(PortUse {
        en: p_wgt_write,
        addr: at(&p_wgt, &p_wgt_line, Buf::Wgt),
        data: Some(Expr::concat(wgt_slots.into_iter().rev().collect())),
    });
    // Mask line j of the group: lane c keeps k = group + j when one of its N indices is j.
    let j_as_index = if ib >= j_bits {
        p_j.zext(ib)
    } else {
        p_j.slice(0, ib)
    };
    let mask_bits: Vec<Expr> = (0..cols)
        .rev()
        .map(|c| {
            let hits: Vec<Expr> = (0..n)
                .map(|i| p_keep_idx.slice((c * n + i) * ib, ib).eq(&j_as_index))
                .collect();
            any(&hits)
        })
        .collect();
    uses[Buf::Mask.code() as usize].writers.push(PortUse {
        en: writing_mask,
        addr: at(&p_mask, &mask_k, Buf::Mask),
        data: Some(Expr::concat(mask_bits)),
    });
    for (base, buf) in [(&p_w16, Buf::W16), (&p_wgt, Buf::Wgt), (&p_mask, Buf::Mask)] {
        if abits(buf) < 16 {
            unused.push(base.slice(abits(buf), 16 - abits(buf)));
        }
    }
    for counter in [&p_read, &mask_k, &p_wgt_line] {
        unused.push(counter.slice(0, 16));
    }

    // ---------------------------------------------------------------- observation
    // Each engine's dispatch (its instruction starts the next cycle) and the last busy cycle of
    // its instruction, in `isa::Engine::ALL` order, registered into the strobes.
    let starts = [&dma_start, &gemm_start, &upd_start, &pf_start];
    let finishes = [&dma_finish, &fed_last, &upd_finish, &pf_finish];
    let mut strobes = Vec::new();
    let mut strobes_clear = Vec::new();
    for (i, (start_now, finish_now)) in starts.iter().zip(finishes).enumerate() {
        strobes.push(set(&started[i], (*start_now).clone()));
        strobes.push(set(&ended[i], finish_now.clone()));
        strobes_clear.push(set(&started[i], Expr::bit(false)));
        strobes_clear.push(set(&ended[i], Expr::bit(false)));
    }
    b.comment("Per-instruction observation: start and end strobes of every engine.");
    b.clocked(&clk, vec![when_else(rst.clone(), strobes_clear, strobes)]);

    // ---------------------------------------------------------------- buffer ports
    let mut conflicts = Vec::new();
    for buf in Buf::ALL {
        let name = buf.name();
        let u = &uses[buf.code() as usize];
        let mem = b.memory(&format!("{name}_mem"), geo.line_bits(buf), depth(buf));
        let wens: Vec<Expr> = u.writers.iter().map(|w| w.en.clone()).collect();
        let we = b.name(&format!("{name}_we"), any(&wens));
        let waddr = b.name(
            &format!("{name}_waddr"),
            pick(
                &u.writers
                    .iter()
                    .map(|w| (w.en.clone(), w.addr.clone()))
                    .collect::<Vec<_>>(),
            ),
        );
        let wdata = b.name(
            &format!("{name}_wdata"),
            pick(
                &u.writers
                    .iter()
                    .map(|w| (w.en.clone(), w.data.clone().expect("a writer has data")))
                    .collect::<Vec<_>>(),
            ),
        );
        b.memory_write(&clk, &mem, &we, &waddr, &wdata);
        let rens: Vec<Expr> = u.readers.iter().map(|r| r.en.clone()).collect();
        let re = b.name(&format!("{name}_re"), any(&rens));
        let raddr = b.name(
            &format!("{name}_raddr"),
            pick(
                &u.readers
                    .iter()
                    .map(|r| (r.en.clone(), r.addr.clone()))
                    .collect::<Vec<_>>(),
            ),
        );
        b.memory_read(&clk, &mem, &rdata_of(buf), &re, &raddr);
        conflicts.push(two_or_more(&wens));
        conflicts.push(two_or_more(&rens));
    }
    b.drive(&conflict_now, any(&conflicts));
    let unused_all = Expr::concat(unused);
    b.name("unused_bits", unused_all);
}
