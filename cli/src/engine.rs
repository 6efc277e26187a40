//! Shared by the verbs that run an engine: load a config, render it, and build a simulator
//! (with progress on stderr, since a first Verilator build takes seconds).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use coforge_driver::design::design_spec;
use coforge_generator::artifacts::{render, Rendered};
use coforge_generator::config::Config;
use coforge_generator::engines::stce::ports;
use coforge_sim::{BuildOptions, DesignSpec, Icarus, Simulator, Verilator, WaveOptions};

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
    /// Where the VCD is being written (a temporary name, see `finish_waves`).
    pub waves: Option<(PathBuf, PathBuf)>,
    /// Keeps the Icarus work folder alive for the run.
    _workdir: Option<tempfile::TempDir>,
}

pub fn build_simulator(
    spec: &DesignSpec,
    args: &SimArgs,
    out: &Path,
    progress: &mut Progress,
) -> anyhow::Result<ReadySim> {
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
                std::fs::create_dir_all(out)
                    .with_context(|| format!("cannot create {}", out.display()))?;
                let tmp = out.join(format!(".waves.vcd.tmp-{}", std::process::id()));
                model.set_waves(Some(WaveOptions {
                    path: tmp.clone(),
                    first_cycle: first,
                    last_cycle: last,
                }))?;
                waves = Some((tmp, out.join("waves.vcd")));
            }
            Ok(ReadySim {
                sim: Box::new(model),
                name: "verilator",
                version: version.text,
                waves,
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
                sim: Box::new(sim),
                name: "icarus",
                version: version.text,
                waves: None,
                _workdir: Some(dir),
            })
        }
    }
}

impl ReadySim {
    /// Closes the simulator, which flushes its VCD, and moves the VCD to its final name.
    pub fn finish(self) -> anyhow::Result<Option<PathBuf>> {
        let ReadySim { sim, waves, .. } = self;
        drop(sim);
        match waves {
            Some((tmp, dest)) => {
                std::fs::rename(&tmp, &dest)
                    .with_context(|| format!("cannot move the VCD to {}", dest.display()))?;
                Ok(Some(dest))
            }
            None => Ok(None),
        }
    }
}
