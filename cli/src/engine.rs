//! Shared by the verbs that run an engine: load a config, render it, and build a simulator
//! (with progress on stderr, since a first Verilator build takes seconds).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use coforge_driver::design::design_spec;
use coforge_generator::artifacts::{render, Rendered};
use coforge_generator::config::Config;
use coforge_generator::engines::stce::ports;
use coforge_sim::{
    BuildOptions, DesignSpec, Icarus, SimError, Simulator, Stimulus, Trace, Verilator, WaveOptions,
};
use serde::Serialize;

use crate::output::OutputDir;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SimulatorArg {
    Verilator,
    Icarus,
}

/// Simulator options common to every verb that simulates.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Simulator backend
    #[arg(long, value_enum, default_value = "verilator")]
    pub simulator: SimulatorArg,
    /// Dump a VCD of cycles FIRST:LAST (inclusive, counted from reset) into the output folder
    #[arg(long, value_name = "FIRST:LAST", value_parser = parse_window)]
    pub waves: Option<(u64, u64)>,
}

fn parse_window(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not FIRST:LAST (for example 0:200)"))?;
    let first: u64 = a
        .trim()
        .parse()
        .map_err(|_| format!("`{a}` is not a cycle number"))?;
    let last: u64 = b
        .trim()
        .parse()
        .map_err(|_| format!("`{b}` is not a cycle number"))?;
    if last < first {
        return Err(format!("the window {first}:{last} ends before it starts"));
    }
    Ok((first, last))
}

/// Numbered progress lines, in the style `[i/N] step ... (time)`.
pub struct Progress {
    step: usize,
    total: usize,
    started: Instant,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Progress {
            step: 0,
            total,
            started: Instant::now(),
        }
    }
    /// `n` more steps than announced (an optional stage that runs).
    pub fn add_steps(&mut self, n: usize) {
        self.total += n;
    }
    pub fn step(&mut self, what: &str) {
        self.step += 1;
        eprintln!(
            "[{}/{}] {what} ({:.1} s)",
            self.step,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
    }
}

pub struct LoadedEngine {
    pub config: Config,
    pub rendered: Rendered,
    pub spec: DesignSpec,
}

pub fn load(config: &Path) -> anyhow::Result<LoadedEngine> {
    let config = Config::load(config)?;
    let rendered = render(&config)?;
    let spec = design_spec(&rendered, ports::CLOCK);
    Ok(LoadedEngine {
        config,
        rendered,
        spec,
    })
}

/// A ready simulator plus what the report needs to say about it.
pub struct ReadySim {
    pub sim: Box<dyn Simulator>,
    pub name: &'static str,
    pub version: String,
    /// The `--waves` request and where the VCD goes (inside the staging folder; it moves into
    /// the output folder with the rest on commit).
    waves: Option<((u64, u64), PathBuf)>,
    /// Cycles simulated so far, counted by [`CountCycles`].
    cycles: Rc<Cell<u64>>,
    /// Keeps the Icarus work folder alive for the run.
    _workdir: Option<tempfile::TempDir>,
}

/// What became of a `--waves FIRST:LAST` request: the run may end before LAST (the window is
/// clipped) or even before FIRST (no VCD). Neither throws away the run's result.
#[derive(Clone, Debug, Serialize)]
pub struct WaveWindow {
    /// The window asked for, `[FIRST, LAST]`.
    pub requested: [u64; 2],
    /// The cycles the VCD holds; `null` when the run ended before FIRST.
    pub recorded: Option<[u64; 2]>,
    /// Cycles the model simulated, counted from its creation (as the window is).
    pub cycles_simulated: u64,
}

/// Counts the cycles of every stimulus run through the simulator it wraps.
struct CountCycles {
    inner: Box<dyn Simulator>,
    cycles: Rc<Cell<u64>>,
}

impl Simulator for CountCycles {
    fn run(&mut self, stim: &Stimulus) -> Result<Trace, SimError> {
        let trace = self.inner.run(stim)?;
        self.cycles.set(self.cycles.get() + stim.cycles());
        Ok(trace)
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// Builds (or loads from the cache) the simulator. A `--waves` VCD is written into `out`'s
/// staging folder as `waves.vcd`.
pub fn build_simulator(
    spec: &DesignSpec,
    args: &SimArgs,
    out: &OutputDir,
    progress: &mut Progress,
) -> anyhow::Result<ReadySim> {
    let cycles = Rc::new(Cell::new(0));
    let counted = |inner: Box<dyn Simulator>| -> Box<dyn Simulator> {
        Box::new(CountCycles {
            inner,
            cycles: cycles.clone(),
        })
    };
    match args.simulator {
        SimulatorArg::Verilator => {
            let version = Verilator::version()?;
            let opts = BuildOptions {
                waves: args.waves.is_some(),
                ..BuildOptions::default()
            };
            let lib = Verilator::build(spec, &opts)?;
            progress.step(&if lib.cache_hit() {
                format!(
                    "Verilator model from the cache ({})",
                    &lib.cache_key()[..12]
                )
            } else {
                format!("Verilator build in {:.1} s", lib.build_seconds())
            });
            let mut model = lib.instantiate()?;
            let mut waves = None;
            if let Some((first, last)) = args.waves {
                let path = out.staged_path(WAVES_FILE);
                model.set_waves(Some(WaveOptions {
                    path: path.clone(),
                    first_cycle: first,
                    last_cycle: last,
                }))?;
                waves = Some(((first, last), path));
            }
            Ok(ReadySim {
                sim: counted(Box::new(model)),
                name: "verilator",
                version: version.text,
                waves,
                cycles,
                _workdir: None,
            })
        }
        SimulatorArg::Icarus => {
            if args.waves.is_some() {
                anyhow::bail!("--waves is supported with --simulator verilator only");
            }
            let version = Icarus::version()?;
            let dir = tempfile::Builder::new()
                .prefix("coforge-icarus-")
                .tempdir()
                .context("cannot create a work folder for Icarus")?;
            let sim = Icarus::new(spec, dir.path())?;
            progress.step("Icarus Verilog testbench compiled");
            Ok(ReadySim {
                sim: counted(Box::new(sim)),
                name: "icarus",
                version: version.text,
                waves: None,
                cycles,
                _workdir: Some(dir),
            })
        }
    }
}

/// The VCD's name in the output folder.
pub const WAVES_FILE: &str = "waves.vcd";

impl ReadySim {
    /// Closes the simulator, which flushes its VCD. Returns what the VCD holds (`None` without
    /// `--waves`), and says on stderr when the window was clipped to the run.
    pub fn finish(self) -> Option<WaveWindow> {
        let ReadySim {
            sim, waves, cycles, ..
        } = self;
        drop(sim);
        let ((first, last), path) = waves?;
        let simulated = cycles.get();
        let recorded =
            (path.exists() && first < simulated).then(|| [first, last.min(simulated - 1)]);
        match recorded {
            None => eprintln!(
                "note: --waves {first}:{last} starts after the run's last cycle ({}): no VCD written",
                simulated.saturating_sub(1)
            ),
            Some([_, end]) if end < last => eprintln!(
                "note: --waves {first}:{last} clipped to {first}:{end}, the run's last cycle"
            ),
            Some(_) => {}
        }
        Some(WaveWindow {
            requested: [first, last],
            recorded,
            cycles_simulated: simulated,
        })
    }
}
