//! The offline scheduler of the SAT system top (SAT-CONTRACT section 5): a network file in, the
//! instruction stream of one BDWP training step out, with token dependencies, a DRAM memory map
//! and an estimated start and end cycle for every instruction.
//!
//! The pipeline, one module each:
//! 1. [`network`]: the network file, validated and lowered to GEMM dimensions (im2col for convs);
//! 2. [`tiling`]: per pass, the loop order and blocking that fit the buffers with the least DRAM
//!    traffic;
//! 3. [`build`]: the step's instructions per engine (FF; BP and WU interleaved; UPDATE and
//!    pre-generation on the WUVE and SORE), with dependency edges derived from the buffer lines
//!    each instruction reads and writes ([`access`]), and the memory map;
//! 4. [`tokens`]: the program order and the token masks that enforce every edge;
//! 5. [`estimate`]: the cost model and the list-scheduling simulation of the token semantics;
//! 6. [`validate`]: the static check of any program (also a hand-edited `schedule.json`);
//! 7. [`report`]: `layers.csv` and the Gantt chart `schedule.svg`.
//!
//! All cycle figures are estimates from the cost model, named `*_estimated`.

pub mod access;
pub mod build;
pub mod estimate;
pub mod hardware;
pub mod network;
pub mod report;
pub mod tiling;
pub mod tokens;
pub mod validate;

/// The instruction set (`engines::sat::isa`), re-exported for the scheduler's users.
pub use coforge_generator::engines::sat::isa;

use serde::{Deserialize, Serialize};

pub use build::{Direction, Options, Pass, PassTiling, Region};
pub use hardware::Hardware;
pub use network::{EnginePattern, Layer, Network, NetworkError, Sparsity};
pub use validate::ValidateError;

use isa::{Engine, Instr};

/// A network that cannot be scheduled on a system, with the layer and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScheduleError {
    pub layer: Option<(usize, String)>,
    pub message: String,
}

impl std::fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.layer {
            Some((i, name)) => write!(f, "layer {i} (`{name}`): {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// One instruction of the program with what it is for and its estimated timing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub instr: Instr,
    /// The engine that runs it (derived from the opcode; `None` for END).
    #[serde(default)]
    pub engine: Option<Engine>,
    /// Index into [`Schedule::layers`].
    #[serde(default)]
    pub layer: Option<usize>,
    #[serde(default)]
    pub pass: Option<Pass>,
    pub start_estimated: u64,
    pub end_estimated: u64,
}

/// One training step of a network on a system: what `schedule.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub network: String,
    pub batch: usize,
    pub hardware: Hardware,
    pub options: Options,
    pub layers: Vec<Layer>,
    /// END's estimated end: the step's cycles from start to done.
    pub step_cycles_estimated: u64,
    pub instructions: Vec<Entry>,
    pub memory_map: Vec<Region>,
    pub tilings: Vec<PassTiling>,
}

impl Schedule {
    /// Reads a `schedule.json` (as `coforge schedule` wrote it, or edited by hand) and runs
    /// [`validate`] on it, so that a program whose dependencies do not hold is refused before
    /// anything runs it. The error names the file and, for a broken dependency, the instruction.
    pub fn load(path: &std::path::Path) -> Result<Schedule, String> {
        let at = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {at}: {e}"))?;
        let s: Schedule = serde_json::from_str(&text)
            .map_err(|e| format!("{at} is not a schedule written by coforge schedule: {e}"))?;
        validate(&s).map_err(|e| format!("{at} does not hold its dependencies: {e}"))?;
        Ok(s)
    }

    /// The instruction words' contents in program order (what the controller runs).
    pub fn program(&self) -> Vec<Instr> {
        self.instructions.iter().map(|e| e.instr).collect()
    }
}

/// Schedules one training step of `net` on `hw`.
pub fn schedule(net: &Network, hw: &Hardware, opts: Options) -> Result<Schedule, ScheduleError> {
    let built = build::build(net, hw, opts)?;
    let asap = estimate::asap(&built.ops, hw);
    let mut order: Vec<usize> = (0..built.ops.len()).collect();
    order.sort_by_key(|&i| (asap[i].start, i));
    drop(asap);
    let program = tokens::assign(&built.ops, &order);
    // What each program position is for; the ops and their edges are no longer needed.
    let meta: Vec<(usize, Pass)> = order
        .iter()
        .map(|&i| (built.ops[i].layer as usize, built.ops[i].pass))
        .collect();
    drop(order);
    let build::Built {
        ops,
        memory_map,
        tilings,
    } = built;
    drop(ops);
    let timings = estimate::simulate(&program, hw).map_err(|m| ScheduleError {
        layer: None,
        message: format!("internal error, the built program does not run: {m}"),
    })?;
    let step_cycles_estimated = timings.last().map_or(0, |t| t.end);
    let instructions = program
        .iter()
        .zip(&timings)
        .enumerate()
        .map(|(p, (instr, t))| Entry {
            instr: *instr,
            engine: instr.engine(),
            layer: meta.get(p).map(|m| m.0),
            pass: meta.get(p).map(|m| m.1),
            start_estimated: t.start,
            end_estimated: t.end,
        })
        .collect();
    Ok(Schedule {
        network: net.name.clone(),
        batch: net.batch,
        hardware: hw.clone(),
        options: opts,
        layers: net.layers.clone(),
        step_cycles_estimated,
        instructions,
        memory_map,
        tilings,
    })
}

/// Why a network file and a config give no schedule.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("config `{path}`: {message}")]
    Config { path: String, message: String },
    #[error("network `{path}` on config `{config}`: {source}")]
    Schedule {
        path: String,
        config: String,
        source: ScheduleError,
    },
}

/// The schedule of one training step of the network file `net` on the system of `cfg` (read
/// from `config_path`, named in errors): what `coforge schedule` writes and what the system
/// harness runs for `coforge train --net`. The schedule has passed [`validate`].
pub fn schedule_network(
    net: &std::path::Path,
    cfg: &coforge_generator::config::Config,
    config_path: &std::path::Path,
    opts: Options,
) -> Result<Schedule, Error> {
    let hw = Hardware::from_config(cfg).map_err(|message| Error::Config {
        path: config_path.display().to_string(),
        message,
    })?;
    let network = Network::load(net, EnginePattern { n: hw.n, m: hw.m })?;
    let s = schedule(&network, &hw, opts).map_err(|source| Error::Schedule {
        path: net.display().to_string(),
        config: config_path.display().to_string(),
        source,
    })?;
    validate(&s).map_err(|e| Error::Schedule {
        path: net.display().to_string(),
        config: config_path.display().to_string(),
        source: ScheduleError {
            layer: None,
            message: format!("internal error, the scheduler built an invalid program: {e}"),
        },
    })?;
    Ok(s)
}

/// The static dependency check of a schedule's program (see [`validate`]): every buffer read is
/// ordered after the write it reads, and no write overtakes a reader or writer of the line; and
/// in DRAM, every LOAD of a step's output region (a tensor the step writes, such as the W16' a
/// PRUNE_B reload reads back) comes after the STOREs that wrote those beats, in the one DMA's
/// program order.
pub fn validate(s: &Schedule) -> Result<(), ValidateError> {
    let program = s.program();
    validate::validate_program(&program, &s.hardware)?;
    validate::validate_dram(&program, &s.hardware, &s.memory_map)
}
