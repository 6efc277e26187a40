//! `coforge schedule`: the offline schedule of one BDWP training step of a network on a SAT
//! system config (`coforge_scheduler`): `schedule.json` (the instruction stream with each
//! instruction's engine and estimated start and end cycle, the DRAM memory map and the tilings),
//! `layers.csv` (per layer and pass: estimated cycles, MACs, utilization) and `schedule.svg` (a
//! Gantt chart, one lane per engine, the DMA lane being the memory port). Every cycle figure is
//! an estimate of the scheduler's cost model.

use std::path::PathBuf;

use clap::Args;
use coforge_generator::config::Config;
use coforge_scheduler::{report, schedule_network, Options};

use crate::budget;
use crate::output::OutputDir;

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    /// Network file (TOML): batch, layers (linear, conv) and N:M per layer
    #[arg(long)]
    net: PathBuf,
    /// System config (TOML) with an fp16 [stce], [train] and [system]
    #[arg(long)]
    config: PathBuf,
    /// Output folder: schedule.json, layers.csv, schedule.svg
    #[arg(long)]
    out: PathBuf,
    /// Run each layer's BP tiles, then its WU tiles, instead of alternating them
    #[arg(long)]
    no_interleave: bool,
    /// Start a layer's backward pass only once the previous layer is pruned (no pre-generation)
    #[arg(long)]
    no_pregen: bool,
}

/// Bytes one scheduled instruction takes while it is built, simulated and written as JSON.
const BYTES_PER_INSTRUCTION: usize = 600;

pub fn run(args: ScheduleArgs) -> anyhow::Result<()> {
    let mut out = OutputDir::create(&args.out)?;
    let cfg = Config::load(&args.config)?;
    // A cheap upper bound of the program's size (instructions per output tile), before building.
    if let (Some(stce), Ok(text)) = (&cfg.stce, std::fs::read_to_string(&args.net)) {
        let pattern = coforge_scheduler::EnginePattern {
            n: stce.n as usize,
            m: stce.m as usize,
        };
        if let Ok(net) = coforge_scheduler::Network::from_toml(&text, "", pattern) {
            let (rows, cols) = (stce.rows as usize, stce.cols as usize);
            let tiles: usize = net
                .layers
                .iter()
                .map(|l| {
                    let (rt, kt, ct) = (
                        l.r.div_ceil(rows),
                        l.k.div_ceil(cols),
                        l.cout.div_ceil(cols),
                    );
                    rt * ct + rt * kt + l.k.div_ceil(rows) * ct
                })
                .sum();
            budget::Estimate::new(format!("the schedule of `{}`", args.net.display()))
                .tensor("instructions", 4, &[tiles], BYTES_PER_INSTRUCTION)
                .check()?;
        }
    }
    let opts = Options {
        interleave: !args.no_interleave,
        pregen: !args.no_pregen,
    };
    let s = schedule_network(&args.net, &cfg, &args.config, opts)?;
    out.write_json("schedule.json", &s)?;
    out.add("layers.csv", report::layers_csv(&s).into_bytes());
    out.add("schedule.svg", report::gantt_svg(&s).into_bytes());
    let files = out.commit()?;
    say!(
        "{}: {} layers, {} instructions, one training step in {} cycles (estimated by the \
         scheduler's cost model, not measured)",
        s.network,
        s.layers.len(),
        s.instructions.len(),
        s.step_cycles_estimated
    );
    let imem = s.hardware.system.imem_depth as usize;
    if s.instructions.len() > imem {
        say!(
            "note: the program has {} instructions and the instruction memory holds {imem}; to \
             run it on the system top, raise system.imem_depth",
            s.instructions.len()
        );
    }
    for f in files {
        say!("wrote {}", f.display());
    }
    Ok(())
}
