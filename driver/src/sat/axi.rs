//! Programs on the system top through its AXI wrapper (`sat_top_axi`,
//! `coforge_generator::engines::axi::sat`), closed loop: an AXI4 memory slave
//! ([`coforge_sim::axi4::Axi4Memory`], the config's `mem_latency`, seeded random stalls on all
//! five channels) and an [`Axi4Checker`] on `m_axi_mem_*`, and an AXI4-Lite master on
//! `s_axi_ctrl_*` that does what a host does: it sets the memory base, the program's place and
//! length, `lr` and `lambda`, writes START, polls STATUS until DONE and reads the counters.
//!
//! The DRAM image is the bare run's, placed at [`DRAM_BASE`] (not 4 KiB aligned, so the
//! wrapper's bursts are cut at other places than the native beat addresses suggest), with the
//! program after it, one instruction per `beats_per_instruction` beats. The same program on
//! the same image must give the same bits as the bare top; only the cycles change.

use coforge_generator::artifacts::render;
use coforge_generator::config::Config;
use coforge_generator::engines::axi::sat::{beats_per_instruction, has_wrapper, regs, MEM};
use coforge_generator::engines::axi::{ports as axi_ports, wrapper_name};
use coforge_generator::engines::sat::isa::{self, Engine, Instr};
use coforge_generator::engines::sat::lines::Geometry;
use coforge_sim::axi::{AxiLiteMaster, ResetPin};
use coforge_sim::axi4::{Axi4Checker, Axi4Memory, Axi4Timing};
use coforge_sim::{BuildOptions, MemoryTiming, Verilator};

use super::{estimate_busy, estimate_program, Bus, DramImage, RunStats, SatSystem};
use crate::design::design_spec_of;
use crate::DriverError;

/// Byte address of the DRAM image's beat 0 in the AXI memory (the wrapper's MEM_BASE): 4 KiB
/// plus one 64-byte beat, so that no native address is 4 KiB aligned.
pub const DRAM_BASE: u64 = 0x1040;
/// Cycles `aresetn` is held low (Xilinx's minimum for AXI IP).
pub const RESET_CYCLES: u64 = 16;
/// A bound on any AXI4-Lite transaction of the host (no stalls on that port).
const LITE_CYCLES: u64 = 100;

/// The AXI4 memory on the wrapper's master port: random stalls on each channel at
/// `stall_rate` (`0 <= stall_rate < 1`) from generators seeded by `seed`; its latency is the
/// config's `mem_latency`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct AxiMemory {
    pub stall_rate: f64,
    pub seed: u64,
}

/// What a run through the wrapper measured besides the system top's own counters.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AxiRunStats {
    /// The wrapper's CYCLES register: START to DONE, the program fetch and the last write
    /// response included (measured).
    pub wrapper_cycles: u64,
    /// The memory's stall rate and latency in this run.
    pub stall_rate: f64,
    pub latency: u32,
    /// Instructions the wrapper fetched from the memory before starting the system top.
    pub program_instructions: usize,
}

impl SatSystem {
    /// The system top of `cfg` through its AXI wrapper, with the AXI4 memory `memory`.
    pub fn new_axi(cfg: &Config, memory: AxiMemory) -> Result<SatSystem, DriverError> {
        let (Some(sys), Some(geo)) = (cfg.system.clone(), Geometry::of(cfg)) else {
            return Err(DriverError::Unsupported(
                "the config has no [system] section; the system top and its AXI wrapper need \
                 one (see configs/sat-4x4-2of8.toml)"
                    .into(),
            ));
        };
        if !has_wrapper(&sys) {
            return Err(DriverError::Unsupported(format!(
                "system.mem_bits = {} is not a power of two bytes, so the system top has no AXI \
                 wrapper; use 64, 128, 256, 512 or 1024",
                sys.mem_bits
            )));
        }
        if !(0.0..1.0).contains(&memory.stall_rate) {
            return Err(DriverError::Input(format!(
                "stall rate {} is outside [0, 1): give a probability per cycle below 1",
                memory.stall_rate
            )));
        }
        let rendered = render(cfg).map_err(|e| DriverError::Input(e.to_string()))?;
        let spec = design_spec_of(&rendered, &wrapper_name(&sys.top), axi_ports::CLOCK);
        let model = Verilator::build(&spec, &BuildOptions::default())?.instantiate()?;
        Ok(SatSystem {
            geo,
            sys,
            model,
            bus: Bus::Axi(memory),
        })
    }

    /// [`SatSystem::run`] through the wrapper (see the module docs). `timing` gives the
    /// memory's latency; the AXI memory moves a beat per cycle when it does not stall.
    pub(super) fn run_axi(
        &mut self,
        program: &[Instr],
        dram: &mut DramImage,
        timing: MemoryTiming,
        (lr, lambda): (f32, f32),
        max_cycles: u64,
        memory: AxiMemory,
    ) -> Result<RunStats, DriverError> {
        let geo = self.geo;
        let beat_bytes = (geo.mem_bits / 8) as usize;
        let bpi = beats_per_instruction(&self.sys) as usize;
        let prog_addr = dram.beats();
        let base = DRAM_BASE as usize;
        let size = base + (prog_addr + program.len() * bpi) * beat_bytes;
        let m = &mut self.model;
        let pins = m.pins();
        let reset = ResetPin {
            port: pins.input(axi_ports::RESET_N)?,
            active_low: true,
        };
        let mut mem = Axi4Memory::new(
            pins,
            MEM,
            size,
            Axi4Timing {
                latency: timing.latency,
                stall_rate: memory.stall_rate,
                seed: memory.seed,
            },
        )?;
        // The wrapper's outputs are defined from the second cycle of reset (its reset register).
        let mut checker = Axi4Checker::new(pins, MEM)?.with_reset(reset, 1);
        let mut lite = AxiLiteMaster::new(pins, axi_ports::CTRL)?;
        {
            let bytes = mem.bytes_mut();
            for (i, w) in dram.words.iter().enumerate() {
                bytes[base + 4 * i..base + 4 * i + 4].copy_from_slice(&w.to_le_bytes());
            }
            for (i, word) in isa::encode_program(program).iter().enumerate() {
                let at = base + (prog_addr + i * bpi) * beat_bytes;
                for (k, w) in word.iter().enumerate() {
                    bytes[at + 4 * k..at + 4 * k + 4].copy_from_slice(&w.to_le_bytes());
                }
            }
        }
        m.set(reset.port, 0);
        for _ in 0..RESET_CYCLES {
            m.cycle_with(&mut [&mut mem, &mut checker, &mut lite])?;
        }
        m.set(reset.port, 1);
        for (addr, value) in [
            (regs::MEM_BASE_LO, DRAM_BASE as u32),
            (regs::MEM_BASE_HI, (DRAM_BASE >> 32) as u32),
            (regs::PROG_ADDR, prog_addr as u32),
            (regs::PROG_LEN, program.len() as u32),
            (regs::LR, lr.to_bits()),
            (regs::LAMBDA, lambda.to_bits()),
            (regs::CONTROL, regs::START),
        ] {
            lite.write(addr, value);
        }
        m.run_until_done(&mut [&mut lite, &mut mem, &mut checker], 8 * LITE_CYCLES)?;
        // Poll STATUS until DONE, as a host does.
        let mut sim_cycles = 0u64;
        let status = loop {
            lite.read(regs::STATUS);
            sim_cycles +=
                m.run_until_done(&mut [&mut lite, &mut mem, &mut checker], LITE_CYCLES)?;
            let status = lite.take_reads()[0].1;
            if status & regs::DONE != 0 {
                break status;
            }
            if sim_cycles > max_cycles {
                return Err(DriverError::Unsupported(format!(
                    "the system did not finish within {max_cycles} cycles through its AXI \
                     wrapper (a token that is never signalled, or a limit too small for the \
                     program)"
                )));
            }
        };
        checker.check()?;
        mem.check()?;
        if status & regs::PROGRAM_ERROR != 0 {
            return Err(DriverError::Input(format!(
                "the wrapper refused a program of {} instructions: the instruction memory holds {}",
                program.len(),
                self.sys.imem_depth
            )));
        }
        if status & (regs::READ_ERROR | regs::WRITE_ERROR) != 0 {
            return Err(DriverError::Input(format!(
                "the AXI4 memory answered a {} burst with an error response (STATUS {status:#x})",
                if status & regs::READ_ERROR != 0 {
                    "read"
                } else {
                    "write"
                }
            )));
        }
        if status & regs::CONFLICT != 0 {
            return Err(DriverError::Input(
                "two engines used one buffer port in the same cycle: the program runs two \
                 instructions that read (or write) one buffer without a token between them"
                    .into(),
            ));
        }
        let mut counters = vec![
            regs::CYCLES_LO,
            regs::CYCLES_HI,
            regs::SAT_CYCLES_LO,
            regs::SAT_CYCLES_HI,
        ];
        for i in 0..Engine::ALL.len() as u64 {
            counters.extend([regs::BUSY + 8 * i, regs::BUSY + 8 * i + 4]);
        }
        for &addr in &counters {
            lite.read(addr);
        }
        m.run_until_done(&mut [&mut lite, &mut mem, &mut checker], 16 * LITE_CYCLES)?;
        lite.check()?;
        checker.check()?;
        let reads: Vec<u64> = lite
            .take_reads()
            .iter()
            .map(|&(_, v)| u64::from(v))
            .collect();
        let wide = |i: usize| reads[2 * i] | reads[2 * i + 1] << 32;
        let bytes = mem.bytes();
        for (i, w) in dram.words.iter_mut().enumerate() {
            let at = base + 4 * i;
            *w = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"));
        }
        let (read_beats, written_beats) = mem.traffic();
        Ok(RunStats {
            cycles: wide(1),
            sim_cycles,
            busy: Engine::ALL
                .iter()
                .enumerate()
                .map(|(i, e)| (e.name().to_string(), wide(2 + i)))
                .collect(),
            busy_estimated: estimate_busy(program, &geo, &self.sys),
            read_beats,
            written_beats,
            estimated_cycles: estimate_program(program, &geo, &self.sys),
            axi: Some(AxiRunStats {
                wrapper_cycles: wide(0),
                stall_rate: memory.stall_rate,
                latency: timing.latency,
                program_instructions: program.len(),
            }),
        })
    }
}
