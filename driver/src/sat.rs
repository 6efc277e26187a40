//! Runs programs on the SAT system top (`engines::sat`) closed loop: the DRAM image in the
//! system's line formats, the instruction memory, the memory model on the port
//! ([`coforge_sim::Memory`]), and the measured counters at the end. Also a minimal program
//! builder for GEMMs (until the offline scheduler drives the system), used for the three GEMMs
//! of a BDWP step of a linear layer.

use std::collections::BTreeMap;

use coforge_generator::artifacts::render;
use coforge_generator::config::{Config, SystemConfig};
use coforge_generator::engines::sat::isa::{self, Buf, Engine, GemmMode, Instr};
use coforge_generator::engines::sat::lines::{Geometry, Lines};
use coforge_generator::engines::sat::{
    completion_cycles, estimated_cycles, ports, DISPATCH_CYCLES, FETCH_CYCLES,
};
use coforge_sim::{
    BuildOptions, InputPort, Memory, MemoryPortNames, MemoryTiming, OutputPort, VerilatedModel,
    Verilator,
};

use crate::design::design_spec_of;

pub mod axi;
pub mod network;
use crate::DriverError;
pub use axi::{AxiMemory, AxiRunStats};

/// The external memory's contents, in beats of `mem_bits`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DramImage {
    pub words_per_beat: usize,
    pub words: Vec<u32>,
}

impl DramImage {
    pub fn new(geo: &Geometry) -> DramImage {
        DramImage {
            words_per_beat: (geo.mem_bits / 32) as usize,
            words: Vec::new(),
        }
    }

    pub fn beats(&self) -> usize {
        self.words.len() / self.words_per_beat
    }

    /// Appends `lines` of `buf` and returns their first beat.
    pub fn push(&mut self, geo: &Geometry, lines: &Lines, buf: Buf) -> u32 {
        let at = self.beats() as u32;
        self.words.extend(geo.to_beats(lines, buf));
        at
    }

    /// Reserves `count` zeroed lines of `buf` and returns their first beat.
    pub fn reserve(&mut self, geo: &Geometry, count: usize, buf: Buf) -> u32 {
        let at = self.beats() as u32;
        let beats = count * geo.beats_per_line(buf) as usize;
        self.words
            .resize(self.words.len() + beats * self.words_per_beat, 0);
        at
    }

    /// `count` lines of `buf` from beat `at`.
    pub fn lines(&self, geo: &Geometry, at: u32, count: usize, buf: Buf) -> Lines {
        let from = at as usize * self.words_per_beat;
        geo.from_beats(&self.words[from..], buf, count)
    }
}

/// What the simulation measured in one run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RunStats {
    /// The top's cycle counter: cycles from `start` to `done`.
    pub cycles: u64,
    /// Cycles the harness simulated from the `start` cycle up to the cycle before `done` was
    /// first sampled high: the start cycle plus the counter's cycles, so `cycles + 1` (a second,
    /// independent observation of the same run).
    pub sim_cycles: u64,
    /// Busy cycles per engine (the top's counters).
    pub busy: BTreeMap<String, u64>,
    /// Per engine, the sum of its instructions' `estimated_cycles` (an estimate, beside the
    /// measured `busy`): serial, so for the DMA an upper bound when a queued LOAD's request
    /// overlaps the burst before it (`engines::sat`, DMA), and for the STCE without the
    /// tile-spacing waits of tiles fed closer than the spacing; the scheduler's controller
    /// model (`coforge_scheduler::estimate::simulate`) has both.
    pub busy_estimated: BTreeMap<String, u64>,
    /// Beats the memory read and wrote.
    pub read_beats: u64,
    pub written_beats: u64,
    /// The sum of the per-instruction estimates plus fetch and dispatch (an estimate, for
    /// comparison beside the measured `cycles`).
    pub estimated_cycles: u64,
    /// Through the AXI wrapper (`sat_top_axi`): what its registers and the AXI4 memory said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub axi: Option<AxiRunStats>,
}

struct TopPorts {
    rst: InputPort,
    start: InputPort,
    lr: InputPort,
    lambda: InputPort,
    imem_we: InputPort,
    imem_addr: InputPort,
    imem_data: InputPort,
    done: OutputPort,
    conflict: OutputPort,
    cycle_count: OutputPort,
    busy: Vec<(Engine, OutputPort)>,
    /// Per engine (in [`Engine::ALL`] order): its `started_<engine>` and `ended_<engine>`.
    strobes: Vec<(OutputPort, OutputPort)>,
}

/// What the harness sees of the top after one cycle (`engines::sat`, "Per-instruction
/// observation"), each array in [`Engine::ALL`] order: the busy counters, and the start and
/// end strobes. The strobes are registers: sampled after the clock edge that ends cycle t, they
/// show their values of cycle t + 1, while the counters have counted cycle t.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub busy: [u64; 4],
    pub started: [bool; 4],
    pub ended: [bool; 4],
}

/// The system top of one config, built for Verilator: bare (`sat_top`, its native memory
/// port on [`Memory`]) or through its AXI wrapper (`sat_top_axi`, [`axi`]).
pub struct SatSystem {
    pub geo: Geometry,
    pub sys: SystemConfig,
    model: VerilatedModel,
    bus: Bus,
}

enum Bus {
    Native(Box<TopPorts>),
    Axi(AxiMemory),
}

const NAMES: MemoryPortNames<'static> = MemoryPortNames {
    rd_req_valid: ports::RD_REQ_VALID,
    rd_req_ready: ports::RD_REQ_READY,
    rd_req_addr: ports::RD_REQ_ADDR,
    rd_req_len: ports::RD_REQ_LEN,
    rd_valid: ports::RD_VALID,
    rd_ready: ports::RD_READY,
    rd_data: ports::RD_DATA,
    wr_valid: ports::WR_VALID,
    wr_ready: ports::WR_READY,
    wr_addr: ports::WR_ADDR,
    wr_data: ports::WR_DATA,
};

impl SatSystem {
    /// Renders the config's system top and builds (or loads from the cache) its model.
    pub fn new(cfg: &Config) -> Result<SatSystem, DriverError> {
        let (Some(sys), Some(geo)) = (cfg.system.clone(), Geometry::of(cfg)) else {
            return Err(DriverError::Unsupported(
                "the config has no [system] section; the system top needs one (see \
                 configs/sat-4x4-2of8.toml)"
                    .into(),
            ));
        };
        let rendered = render(cfg).map_err(|e| DriverError::Input(e.to_string()))?;
        let spec = design_spec_of(&rendered, &sys.top, ports::CLOCK);
        let model = Verilator::build(&spec, &BuildOptions::default())?.instantiate()?;
        let p = model.pins();
        let ports = TopPorts {
            rst: p.input(ports::RESET)?,
            start: p.input(ports::START)?,
            lr: p.input(ports::LR)?,
            lambda: p.input(ports::LAMBDA)?,
            imem_we: p.input(ports::IMEM_WE)?,
            imem_addr: p.input(ports::IMEM_ADDR)?,
            imem_data: p.input(ports::IMEM_DATA)?,
            done: p.output(ports::DONE)?,
            conflict: p.output(ports::CONFLICT)?,
            cycle_count: p.output(ports::CYCLE_COUNT)?,
            busy: Engine::ALL
                .iter()
                .map(|&e| Ok((e, p.output(&ports::busy(e))?)))
                .collect::<Result<_, coforge_sim::SimError>>()?,
            strobes: Engine::ALL
                .iter()
                .map(|&e| Ok((p.output(&ports::started(e))?, p.output(&ports::ended(e))?)))
                .collect::<Result<_, coforge_sim::SimError>>()?,
        };
        Ok(SatSystem {
            geo,
            sys,
            model,
            bus: Bus::Native(Box::new(ports)),
        })
    }

    /// True when the runs go through the AXI wrapper ([`SatSystem::new_axi`]).
    pub fn is_axi(&self) -> bool {
        matches!(self.bus, Bus::Axi(_))
    }

    /// Runs `program` on `dram` (updated in place with what the system wrote) and returns the
    /// measured figures. Fails on a program the system cannot run ([`check_program`]), a buffer
    /// port conflict, an access outside the memory, or no `done` within `max_cycles`.
    pub fn run(
        &mut self,
        program: &[Instr],
        dram: &mut DramImage,
        timing: MemoryTiming,
        lr: f32,
        lambda: f32,
        max_cycles: u64,
    ) -> Result<RunStats, DriverError> {
        self.run_observed(program, dram, timing, lr, lambda, max_cycles, &mut |_| {})
    }

    /// [`SatSystem::run`], handing `observe` what the top shows ([`Observed`]: its busy
    /// counters and per-instruction strobes) after every simulated cycle from `start` on: what
    /// [`network::Timeline`] turns into each instruction's measured busy span. Through the AXI
    /// wrapper the counters are registers read once at the end, so `observe` is not called.
    #[allow(clippy::too_many_arguments)]
    pub fn run_observed(
        &mut self,
        program: &[Instr],
        dram: &mut DramImage,
        timing: MemoryTiming,
        lr: f32,
        lambda: f32,
        max_cycles: u64,
        observe: &mut dyn FnMut(&Observed),
    ) -> Result<RunStats, DriverError> {
        check_program(program, &self.geo, &self.sys, dram.beats())?;
        let p = match &self.bus {
            Bus::Native(p) => p,
            &Bus::Axi(memory) => {
                // The AXI4-Lite registers are read at the end, not every cycle.
                return self.run_axi(program, dram, timing, (lr, lambda), max_cycles, memory);
            }
        };
        let m = &mut self.model;
        // Reset, then write the program.
        m.set(p.rst, 1);
        m.step()?;
        m.step()?;
        m.set(p.rst, 0);
        for (i, w) in isa::encode_program(program).iter().enumerate() {
            m.set(p.imem_we, 1);
            m.set(p.imem_addr, i as u64);
            m.pins_mut().set_words(p.imem_data, w);
            m.step()?;
        }
        m.set(p.imem_we, 0);
        m.set(p.lr, u64::from(lr.to_bits()));
        m.set(p.lambda, u64::from(lambda.to_bits()));
        let mut mem = Memory::new(m.pins(), &NAMES, dram.beats(), timing)?;
        mem.load(0, &dram.words)?;
        let busy_now = |m: &VerilatedModel| {
            let mut o = Observed::default();
            for (e, (&(_, busy), &(started, ended))) in p.busy.iter().zip(&p.strobes).enumerate() {
                o.busy[e] = m.get(busy);
                o.started[e] = m.get(started) & 1 == 1;
                o.ended[e] = m.get(ended) & 1 == 1;
            }
            o
        };
        m.set(p.start, 1);
        m.cycle_with(&mut [&mut mem])?;
        m.set(p.start, 0);
        observe(&busy_now(m));
        let mut sim_cycles = 1;
        loop {
            if m.get(p.done) & 1 == 1 {
                break;
            }
            if sim_cycles > max_cycles {
                return Err(DriverError::Unsupported(format!(
                    "the system did not finish within {max_cycles} cycles (a token that is \
                     never signalled, or a limit too small for the program)"
                )));
            }
            m.cycle_with(&mut [&mut mem])?;
            observe(&busy_now(m));
            sim_cycles += 1;
        }
        if m.get(p.conflict) & 1 == 1 {
            return Err(DriverError::Input(
                "two engines used one buffer port in the same cycle: the program runs two \
                 instructions that read (or write) one buffer without a token between them"
                    .into(),
            ));
        }
        if let Some(e) = mem.error() {
            return Err(DriverError::Input(format!("memory access error: {e}")));
        }
        let beats = dram.beats();
        dram.words.copy_from_slice(mem.read(0, beats));
        let (read_beats, written_beats) = mem.traffic();
        let busy = p
            .busy
            .iter()
            .map(|&(e, port)| (e.name().to_string(), m.get(port)))
            .collect();
        Ok(RunStats {
            cycles: m.get(p.cycle_count),
            // The cycle in which `done` was sampled high is not part of the run.
            sim_cycles: sim_cycles - 1,
            busy,
            busy_estimated: estimate_busy(program, &self.geo, &self.sys),
            read_beats,
            written_beats,
            estimated_cycles: estimate_program(program, &self.geo, &self.sys),
            axi: None,
        })
    }
}

/// A serial estimate of a program: fetch, dispatch, every instruction's busy cycles and its
/// completion one after another (an upper bound when engines overlap; it leaves no room for
/// the STCE's tile-spacing wait, which needs two tiles closer than the spacing).
pub fn estimate_program(program: &[Instr], geo: &Geometry, sys: &SystemConfig) -> u64 {
    program
        .iter()
        .map(|i| {
            FETCH_CYCLES
                + DISPATCH_CYCLES
                + estimated_cycles(i, geo, sys)
                + completion_cycles(i, geo)
        })
        .sum()
}

/// Per engine, the sum of the estimated busy cycles of its instructions.
pub fn estimate_busy(
    program: &[Instr],
    geo: &Geometry,
    sys: &SystemConfig,
) -> BTreeMap<String, u64> {
    let mut busy: BTreeMap<String, u64> = Engine::ALL
        .iter()
        .map(|e| (e.name().to_string(), 0))
        .collect();
    for i in program {
        if let Some(e) = i.engine() {
            *busy.entry(e.name().to_string()).or_default() += estimated_cycles(i, geo, sys);
        }
    }
    busy
}

/// Checks that the system can run `program` before anything is simulated: it fits the
/// instruction memory, ends with END, and every access is inside its buffer and the memory. The error names the instruction.
pub fn check_program(
    program: &[Instr],
    geo: &Geometry,
    sys: &SystemConfig,
    dram_beats: usize,
) -> Result<(), DriverError> {
    let bad = |i: usize, what: String| {
        Err(DriverError::Input(format!(
            "instruction {i} ({:?}): {what}",
            program[i]
        )))
    };
    if program.len() > sys.imem_depth as usize {
        return Err(DriverError::Input(format!(
            "the program has {} instructions but the instruction memory holds {} \
             (system.imem_depth)",
            program.len(),
            sys.imem_depth
        )));
    }
    if program.last() != Some(&Instr::End) {
        return Err(DriverError::Input(
            "the program must end with END (the system raises done after it)".into(),
        ));
    }
    let depth = |buf: Buf| match buf {
        Buf::Act => sys.act_lines,
        Buf::Wgt => sys.wgt_lines,
        Buf::Out => sys.out_lines,
        Buf::Master | Buf::W16 | Buf::Mask => sys.weight_lines,
    } as u64;
    for (i, ins) in program.iter().enumerate() {
        let within = |buf: Buf, addr: u16, count: u64| u64::from(addr) + count <= depth(buf);
        match *ins {
            Instr::Load {
                buf,
                buf_addr,
                dram_addr,
                lines,
                ..
            }
            | Instr::Store {
                buf,
                buf_addr,
                dram_addr,
                lines,
                ..
            } => {
                let beats = u64::from(lines) * u64::from(geo.beats_per_line(buf));
                if lines == 0 {
                    return bad(i, "moves no lines".into());
                }
                if !within(buf, buf_addr, lines.into()) {
                    return bad(
                        i,
                        format!("lines past the end of the {} buffer", buf.name()),
                    );
                }
                if u64::from(dram_addr) + beats > dram_beats as u64 {
                    return bad(
                        i,
                        format!("beats past the end of the {dram_beats}-beat memory"),
                    );
                }
            }
            Instr::Gemm {
                act_addr,
                wgt_addr,
                groups,
                out_addr,
                ..
            } => {
                if groups == 0 {
                    return bad(i, "has no groups".into());
                }
                if !within(Buf::Act, act_addr, groups.into())
                    || !within(Buf::Wgt, wgt_addr, groups.into())
                    || !within(Buf::Out, out_addr, geo.rows.into())
                {
                    return bad(i, "reads or writes past the end of a buffer".into());
                }
            }
            Instr::Update {
                out_addr,
                master_addr,
                w16_addr,
                mask_addr,
                lines,
                ..
            } => {
                let n = u64::from(lines);
                if lines == 0 {
                    return bad(i, "updates no lines".into());
                }
                if !within(Buf::Out, out_addr, n)
                    || !within(Buf::Master, master_addr, n)
                    || !within(Buf::W16, w16_addr, n)
                    || !within(Buf::Mask, mask_addr, n)
                {
                    return bad(i, "reads or writes past the end of a buffer".into());
                }
            }
            Instr::PruneF {
                w16_addr,
                lines,
                wgt_addr,
                mask_addr,
                ..
            } => {
                let n = u64::from(lines);
                if lines == 0 || n % u64::from(geo.m) != 0 {
                    return bad(
                        i,
                        format!(
                            "prunes {lines} lines; use a positive multiple of M = {}",
                            geo.m
                        ),
                    );
                }
                if !within(Buf::W16, w16_addr, n)
                    || !within(Buf::Mask, mask_addr, n)
                    || !within(Buf::Wgt, wgt_addr, n / u64::from(geo.m))
                {
                    return bad(i, "reads or writes past the end of a buffer".into());
                }
            }
            Instr::PruneB {
                w16_addr,
                mask_addr,
                stride,
                blocks,
                wgt_addr,
                ..
            } => {
                let (cols, m) = (u64::from(geo.cols), u64::from(geo.m));
                // The stream (couts padded to whole groups) and the block offsets are 16-bit
                // counters in the RTL.
                let streamed = (u64::from(blocks) * cols).div_ceil(m) * m;
                if blocks == 0 || streamed > u64::from(u16::MAX) {
                    return bad(
                        i,
                        format!(
                            "prunes {blocks} cout blocks; use 1 to {} (blocks * cols, rounded \
                             up to M, must fit 16 bits)",
                            (u64::from(u16::MAX) / cols).max(1) - 1
                        ),
                    );
                }
                let last = u64::from(blocks - 1) * u64::from(stride) + cols;
                if u64::from(w16_addr) + last > depth(Buf::W16)
                    || u64::from(mask_addr) + last > depth(Buf::Mask)
                    || u64::from(wgt_addr) + streamed / m > depth(Buf::Wgt)
                {
                    return bad(i, "reads or writes past the end of a buffer".into());
                }
            }
            Instr::End => {
                if i + 1 != program.len() {
                    return bad(i, "END before the end of the program".into());
                }
            }
        }
    }
    Ok(())
}

/// One `A (r x k) . B (k x c)` GEMM prepared in line format.
#[derive(Clone, Debug)]
pub struct GemmJob {
    pub mode: GemmMode,
    pub r: usize,
    pub k: usize,
    pub c: usize,
    pub act: Lines,
    pub wgt: Lines,
    /// `Some(kp)`: store the result in the weight-line layout (`Geometry::pack_weight` of its
    /// transpose: tile (rt, ct) at lines `ct * kp + rt * rows`), as UPDATE reads dW^T; `kp`
    /// must be a multiple of `rows` and at least `r`. `None`: the standard tile order.
    pub weight_layout: Option<usize>,
}

/// Where a job's result lies in the DRAM image (standard tile order, `Geometry::unpack_out`).
#[derive(Clone, Copy, Debug)]
pub struct OutRegion {
    pub dram_addr: u32,
    pub lines: usize,
}

/// A minimal program builder: every job's operands are loaded whole into the buffers (one after
/// another), its tiles run on the STCE, and its result is stored, with tokens ordering the
/// engines: job j's GEMMs wait for its two loads (token 2j mod 16 and 2j+1), its store waits
/// for its last GEMM (token 15). Operands are placed in the DRAM image; returns the program and
/// each job's result region. Fails when a job does not fit the buffers.
pub fn gemm_program(
    geo: &Geometry,
    sys: &SystemConfig,
    jobs: &[GemmJob],
    dram: &mut DramImage,
) -> Result<(Vec<Instr>, Vec<OutRegion>), DriverError> {
    if jobs.len() > 7 {
        return Err(DriverError::Unsupported(
            "the minimal program builder takes at most 7 GEMMs (14 load tokens)".into(),
        ));
    }
    let mut program = Vec::new();
    let mut regions = Vec::new();
    let (mut act_at, mut wgt_at, mut out_at) = (0usize, 0usize, 0usize);
    const DONE_TOKEN: u16 = 1 << 15;
    for (j, job) in jobs.iter().enumerate() {
        let (rows, cols) = (geo.rows as usize, geo.cols as usize);
        let kg = geo.groups(job.k, job.mode);
        let (rt_n, ct_n) = (job.r.div_ceil(rows), job.c.div_ceil(cols));
        let out_lines = match job.weight_layout {
            Some(kp) => {
                if kp % rows != 0 || kp < job.r {
                    return Err(DriverError::Unsupported(format!(
                        "GEMM {j}: the weight-line layout needs Kp = {kp} to be a multiple of \
                         rows = {rows} and at least r = {}",
                        job.r
                    )));
                }
                ct_n * kp
            }
            None => geo.out_line_count(job.r, job.c),
        };
        let fits = |at: usize, n: usize, depth: u32| at + n <= depth as usize;
        if !fits(act_at, job.act.count(), sys.act_lines)
            || !fits(wgt_at, job.wgt.count(), sys.wgt_lines)
            || !fits(out_at, out_lines, sys.out_lines)
            || kg > u16::MAX as usize
        {
            return Err(DriverError::Unsupported(format!(
                "GEMM {j} ({} x {} x {}) does not fit the buffers (act {}, wgt {}, out {} lines)",
                job.r, job.k, job.c, sys.act_lines, sys.wgt_lines, sys.out_lines
            )));
        }
        let (t_act, t_wgt) = (1u16 << (2 * j), 1u16 << (2 * j + 1));
        let act_dram = dram.push(geo, &job.act, Buf::Act);
        let wgt_dram = dram.push(geo, &job.wgt, Buf::Wgt);
        let out_dram = dram.reserve(geo, out_lines, Buf::Out);
        program.push(Instr::Load {
            buf: Buf::Act,
            buf_addr: act_at as u16,
            dram_addr: act_dram,
            lines: job.act.count() as u16,
            wait: 0,
            signal: t_act,
        });
        program.push(Instr::Load {
            buf: Buf::Wgt,
            buf_addr: wgt_at as u16,
            dram_addr: wgt_dram,
            lines: job.wgt.count() as u16,
            wait: 0,
            signal: t_wgt,
        });
        let tiles = rt_n * ct_n;
        for rt in 0..rt_n {
            for ct in 0..ct_n {
                let t = rt * ct_n + ct;
                program.push(Instr::Gemm {
                    mode: job.mode,
                    act_addr: (act_at + rt * kg) as u16,
                    wgt_addr: (wgt_at + ct * kg) as u16,
                    groups: kg as u16,
                    out_addr: (out_at
                        + match job.weight_layout {
                            Some(kp) => ct * kp + rt * rows,
                            None => t * rows,
                        }) as u16,
                    first: true,
                    last: true,
                    wait: if t == 0 { t_act | t_wgt } else { 0 },
                    signal: if t + 1 == tiles { DONE_TOKEN } else { 0 },
                });
            }
        }
        program.push(Instr::Store {
            buf: Buf::Out,
            buf_addr: out_at as u16,
            dram_addr: out_dram,
            lines: out_lines as u16,
            wait: DONE_TOKEN,
            signal: 0,
        });
        regions.push(OutRegion {
            dram_addr: out_dram,
            lines: out_lines,
        });
        act_at += job.act.count();
        wgt_at += job.wgt.count();
        out_at += out_lines;
    }
    program.push(Instr::End);
    Ok((program, regions))
}

/// The three GEMMs of a BDWP step of a linear layer as the system runs them (FF and BP sparse,
/// WU dense and transposed), with their results.
#[derive(Clone, Debug)]
pub struct LinearGemms {
    /// `Y = X . W_F^T` (B x Cout).
    pub y: ndarray::Array2<f32>,
    /// `dX = dY . W_B` (B x Cin).
    pub dx: ndarray::Array2<f32>,
    /// `dW = dY^T . X` (Cout x Cin), read back from the system's `dW^T` lines.
    pub dw: ndarray::Array2<f32>,
    /// W32' and W16' after UPDATE (Cout x Cin).
    pub w32: ndarray::Array2<f32>,
    pub w16: ndarray::Array2<half::f16>,
    /// Pre-generation on the SORE (sparse training): the next M_F and FF operand.
    pub next: Option<NextOperand>,
    pub stats: RunStats,
    /// The program that ran (for estimates of it, e.g. the scheduler's controller model).
    pub program: Vec<Instr>,
}

/// What PRUNE_F made from the updated W16.
#[derive(Clone, Debug)]
pub struct NextOperand {
    /// M_F of the next step (Cout x Cin).
    pub mask_f: ndarray::Array2<u8>,
    /// The next FF operand in wgt lines (`Geometry::pack_wgt_sparse` layout, K padded to Kp).
    pub ff_lines: Lines,
}

/// What UPDATE needs besides dW: the master weights before the step, M_F, lr and lambda.
#[derive(Clone, Copy, Debug)]
pub struct UpdateInputs<'a> {
    pub w32: &'a ndarray::Array2<f32>,
    pub mask_f: &'a ndarray::Array2<u8>,
    pub lr: f32,
    pub lambda: f32,
}

/// A weight operand compressed along K as the system runs it: the hardware's N:M in sparse
/// mode, or (N = M, dense training) the expanded matrix in dense mode.
fn weight_operand(
    geo: &Geometry,
    c: &sparse_kernels::nm::Compressed<half::f16>,
) -> Result<(GemmMode, Lines), DriverError> {
    let (k, cols) = c.dense_dim();
    let (n, m) = (c.pattern.n(), c.pattern.m());
    if c.pattern.is_dense() {
        let dense = sparse_kernels::nm::expand(c);
        return Ok((
            GemmMode::Dense,
            geo.pack_wgt_dense(&bits16(dense.view()), k, cols),
        ));
    }
    if (n, m) != (geo.n as usize, geo.m as usize) {
        return Err(DriverError::Unsupported(format!(
            "the system's STCE runs {}:{}, not {n}:{m}; use that pattern or N = M (dense)",
            geo.n, geo.m
        )));
    }
    let values: Vec<u16> = c.values.iter().map(|v| v.to_bits()).collect();
    let indices: Vec<u8> = c.indices.iter().copied().collect();
    Ok((
        GemmMode::Sparse,
        geo.pack_wgt_sparse(&values, &indices, k, cols),
    ))
}

fn bits16(a: ndarray::ArrayView2<half::f16>) -> Vec<u16> {
    a.iter().map(|v| v.to_bits()).collect()
}

impl SatSystem {
    /// Runs FF, BP, WU, UPDATE and (sparse training) PRUNE_F of one linear layer's step on the
    /// system top, in one program:
    /// `x` (B x Cin), `dy` (B x Cout), and the compressed weight operands (`ff`: W_F^T along Cin,
    /// `bp`: W_B along Cout, as `sparse_kernels::bdwp::{ff_operand, bp_operand}` make them).
    /// Operands of the hardware's N:M run in sparse mode; N = M operands (dense training) run in
    /// dense mode on the same hardware.
    pub fn linear_gemms(
        &mut self,
        x: ndarray::ArrayView2<half::f16>,
        dy: ndarray::ArrayView2<half::f16>,
        ff: &sparse_kernels::nm::Compressed<half::f16>,
        bp: &sparse_kernels::nm::Compressed<half::f16>,
        update: UpdateInputs,
        timing: MemoryTiming,
    ) -> Result<LinearGemms, DriverError> {
        let geo = self.geo;
        let ((b, cin), (db, cout)) = (x.dim(), dy.dim());
        if db != b
            || ff.dense_dim() != (cin, cout)
            || bp.dense_dim() != (cout, cin)
            || update.w32.dim() != (cout, cin)
            || update.mask_f.dim() != (cout, cin)
        {
            return Err(DriverError::Shape(format!(
                "x is {b} x {cin}, dy {db} x {cout}, the FF operand {:?} and the BP operand {:?} \
                 (expected {cin} x {cout} and {cout} x {cin})",
                ff.dense_dim(),
                bp.dense_dim()
            )));
        }
        let kp = geo.k_padded(cin);
        let xt = x.t().as_standard_layout().to_owned();
        let (ff_mode, ff_lines) = weight_operand(&geo, ff)?;
        let (bp_mode, bp_lines) = weight_operand(&geo, bp)?;
        let jobs = [
            GemmJob {
                mode: ff_mode,
                r: b,
                k: cin,
                c: cout,
                act: geo.pack_act(&bits16(x), b, cin, ff_mode),
                wgt: ff_lines,
                weight_layout: None,
            },
            GemmJob {
                mode: bp_mode,
                r: b,
                k: cout,
                c: cin,
                act: geo.pack_act(&bits16(dy), b, cout, bp_mode),
                wgt: bp_lines,
                weight_layout: None,
            },
            GemmJob {
                mode: GemmMode::Dense,
                r: cin,
                k: b,
                c: cout,
                act: geo.pack_act(&bits16(xt.view()), cin, b, GemmMode::Dense),
                wgt: geo.pack_wgt_dense(&bits16(dy), b, cout),
                weight_layout: Some(kp),
            },
        ];
        let mut dram = DramImage::new(&geo);
        let sys = self.sys.clone();
        let (mut program, regions) = gemm_program(&geo, &sys, &jobs, &mut dram)?;
        // The update: dW^T lines are in `out` in the weight-line layout after the WU GEMMs.
        // UPDATE reads them after their STORE (one reader of `out` at a time), with W32 and M_F
        // loaded beside; then W32' and W16' are stored.
        let wb = |a: &ndarray::Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
        let master = geo.pack_weight(&wb(update.w32), cout, cin, Buf::Master);
        let mask_bits: Vec<u32> = update.mask_f.iter().map(|&k| u32::from(k != 0)).collect();
        let mask = geo.pack_weight(&mask_bits, cout, cin, Buf::Mask);
        let lines = master.count();
        if lines > sys.weight_lines as usize {
            return Err(DriverError::Unsupported(format!(
                "the layer's {lines} weight lines do not fit weight_lines = {}",
                sys.weight_lines
            )));
        }
        let master_at = dram.push(&geo, &master, Buf::Master);
        let mask_at = dram.push(&geo, &mask, Buf::Mask);
        let w32_out = dram.reserve(&geo, lines, Buf::Master);
        let w16_out = dram.reserve(&geo, lines, Buf::W16);
        const WU_STORED: u16 = 1 << 13;
        const PRUNE_GO: u16 = 1 << 9;
        const PRUNED: u16 = 1 << 8;
        const UPDATED: u16 = 1 << 12;
        const MASTER_IN: u16 = 1 << 11;
        const MASK_IN: u16 = 1 << 10;
        program.pop(); // END
        if let Some(Instr::Store { signal, .. }) = program.last_mut() {
            *signal = WU_STORED;
        }
        let wu_out = match program
            .iter()
            .rev()
            .find(|i| matches!(i, Instr::Gemm { .. }))
        {
            Some(Instr::Gemm { out_addr, .. }) => {
                // The WU job's out region starts at its first tile: (rt, ct) = (0, 0).
                let ct_n = cout.div_ceil(geo.cols as usize);
                let rt_n = cin.div_ceil(geo.rows as usize);
                let last = (ct_n - 1) * kp + (rt_n - 1) * geo.rows as usize;
                out_addr - last as u16
            }
            _ => unreachable!("the program has the WU GEMMs"),
        };
        let n = lines as u16;
        let load = |buf, dram_addr, signal| Instr::Load {
            buf,
            buf_addr: 0,
            dram_addr,
            lines: n,
            wait: 0,
            signal,
        };
        program.extend([
            load(Buf::Master, master_at, MASTER_IN),
            load(Buf::Mask, mask_at, MASK_IN),
            Instr::Update {
                out_addr: wu_out,
                master_addr: 0,
                w16_addr: 0,
                mask_addr: 0,
                lines: n,
                wait: WU_STORED | MASTER_IN | MASK_IN,
                signal: UPDATED | PRUNE_GO,
            },
            Instr::Store {
                buf: Buf::Master,
                buf_addr: 0,
                dram_addr: w32_out,
                lines: n,
                wait: UPDATED,
                signal: 0,
            },
        ]);
        // Pre-generation of the next FF operand and M_F (sparse training only): PRUNE_F per
        // cout block on the updated W16, into wgt lines after this step's operands and over
        // the mask lines UPDATE has finished with. W16 is stored after the SORE has read it
        // (one reader of `w16` at a time).
        let blocks = cout.div_ceil(geo.cols as usize);
        let kg_next = kp / geo.m as usize;
        let wgt_base: usize = jobs.iter().map(|j| j.wgt.count()).sum();
        let sparse = !ff.pattern.is_dense();
        let pregen = if sparse {
            if wgt_base + blocks * kg_next > sys.wgt_lines as usize {
                return Err(DriverError::Unsupported(format!(
                    "the next FF operand ({} lines) does not fit the wgt buffer after this \
                     step's operands",
                    blocks * kg_next
                )));
            }
            let wgt_next = dram.reserve(&geo, blocks * kg_next, Buf::Wgt);
            let mask_next = dram.reserve(&geo, lines, Buf::Mask);
            for cb in 0..blocks {
                program.push(Instr::PruneF {
                    w16_addr: (cb * kp) as u16,
                    lines: kp as u16,
                    wgt_addr: (wgt_base + cb * kg_next) as u16,
                    mask_addr: (cb * kp) as u16,
                    wait: if cb == 0 { PRUNE_GO } else { 0 },
                    signal: if cb + 1 == blocks { PRUNED } else { 0 },
                });
            }
            program.push(Instr::Store {
                buf: Buf::Wgt,
                buf_addr: wgt_base as u16,
                dram_addr: wgt_next,
                lines: (blocks * kg_next) as u16,
                wait: PRUNED,
                signal: 0,
            });
            program.push(Instr::Store {
                buf: Buf::Mask,
                buf_addr: 0,
                dram_addr: mask_next,
                lines: n,
                wait: 0,
                signal: 0,
            });
            Some((wgt_next, mask_next))
        } else {
            None
        };
        program.push(Instr::Store {
            buf: Buf::W16,
            buf_addr: 0,
            dram_addr: w16_out,
            lines: n,
            wait: if sparse { 0 } else { PRUNE_GO },
            signal: 0,
        });
        program.push(Instr::End);
        let stats = self.run(
            &program,
            &mut dram,
            timing,
            update.lr,
            update.lambda,
            50_000_000,
        )?;
        let result = |j: usize| {
            let job = &jobs[j];
            let lines = dram.lines(&geo, regions[j].dram_addr, regions[j].lines, Buf::Out);
            let v: Vec<f32> = geo
                .unpack_out(&lines, job.r, job.c)
                .into_iter()
                .map(f32::from_bits)
                .collect();
            ndarray::Array2::from_shape_vec((job.r, job.c), v).expect("unpack_out gives r x c")
        };
        let dw_lines = dram.lines(&geo, regions[2].dram_addr, regions[2].lines, Buf::Out);
        let to_array = |v: Vec<u32>| {
            ndarray::Array2::from_shape_vec((cout, cin), v).expect("unpack_weight gives cout x cin")
        };
        let f32s = |v: Vec<u32>| to_array(v).mapv(f32::from_bits);
        let w16 = to_array(geo.unpack_weight(
            &dram.lines(&geo, w16_out, lines, Buf::W16),
            cout,
            cin,
            Buf::W16,
        ))
        .mapv(|b| half::f16::from_bits(b as u16));
        Ok(LinearGemms {
            y: result(0),
            dx: result(1),
            dw: f32s(geo.unpack_weight(&dw_lines, cout, cin, Buf::Out)),
            w32: f32s(geo.unpack_weight(
                &dram.lines(&geo, w32_out, lines, Buf::Master),
                cout,
                cin,
                Buf::Master,
            )),
            w16,
            next: pregen.map(|(wgt_next, mask_next)| {
                let mask = geo.unpack_weight(
                    &dram.lines(&geo, mask_next, lines, Buf::Mask),
                    cout,
                    cin,
                    Buf::Mask,
                );
                NextOperand {
                    mask_f: ndarray::Array2::from_shape_vec(
                        (cout, cin),
                        mask.into_iter().map(|b| b as u8).collect(),
                    )
                    .expect("unpack_weight gives cout x cin"),
                    ff_lines: dram.lines(&geo, wgt_next, blocks * kg_next, Buf::Wgt),
                }
            }),
            stats,
            program,
        })
    }
}
