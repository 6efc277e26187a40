//! `coforge`: the command line. Each top-level verb lives in its own module and adds one variant to
//! [`Command`].

/// `println!` to standard output that never panics: a reader that went away (`coforge
/// schedule ... | head`, a closed pipe) must not turn a finished run into a panic, and what is
/// printed is a summary of files already written, so a failed write is dropped.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` to standard output that never panics (see [`say!`]).
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod baseline;
mod budget;
mod cache;
mod campaign;
mod deform;
mod engine;
mod estimate;
mod exit;
mod gen;
mod golden;
mod junit;
mod mlp;
mod output;
mod report;
mod schedule;
mod sweep;
mod tensor_io;
mod train;
mod verify;
mod verify_axi_deform;
mod verify_dcnv2;
mod verify_lanes;
mod vivado;
mod yosys;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "coforge",
    version,
    about = "N:M sparse training engines: generate Verilog, co-simulate it bit-exactly against a Rust reference"
)]
struct Cli {
    /// Refuse runs that would need more memory than SIZE (e.g. 512M, 8G) [env: COFORGE_MAX_MEMORY;
    /// default: 8G, or half the RAM if less]
    #[arg(long, global = true, value_name = "SIZE")]
    max_memory: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Bit-exact golden tensors from the reference kernels (.npy in, .npy out)
    Golden(golden::GoldenArgs),
    /// Generate an engine's Verilog, filelist, manifest and resolved config
    Gen(gen::GenArgs),
    /// Run a GEMM on the generated engine in co-simulation and compare it bit for bit
    Verify(Box<verify::VerifyArgs>),
    /// BDWP training steps on the RTL engines, every tensor compared bit for bit
    Train(train::TrainArgs),
    /// Yosys estimates (synth_xilinx cells and longest path) of every top; not Vivado results
    Estimate(estimate::EstimateArgs),
    /// Vivado scripts for a machine with Vivado: build.tcl, XDC, package_ip.tcl (not run here)
    Vivado(vivado::VivadoArgs),
    /// Regression baselines of cycles and resources: record them, or check against them
    #[command(subcommand)]
    Baseline(baseline::BaselineCommand),
    /// Train a small MLP with BDWP per N:M pattern on a seeded dataset; write curves and a summary
    Mlp(mlp::MlpArgs),
    /// Schedule a network's training step on a SAT system: instructions, memory map, estimated cycles
    Schedule(schedule::ScheduleArgs),
    /// Differential campaign: N seeded random cases on an engine's RTL against the reference
    Campaign(campaign::CampaignArgs),
    /// Design-space sweep: scheduler cycles, Yosys estimates (cached) and optional co-simulation per
    /// point of a grid, sharded for job arrays; `sweep merge` joins shards into a Pareto plot
    Sweep(sweep::SweepArgs),
    /// The Verilator build cache: list, gc or clear it
    Cache(cache::CacheArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    budget::init(cli.max_memory.as_deref())?;
    match cli.command {
        Command::Golden(args) => golden::run(args),
        Command::Gen(args) => gen::run(args),
        Command::Verify(args) => verify::run(*args),
        Command::Train(args) => train::run(args),
        Command::Estimate(args) => estimate::run(args),
        Command::Vivado(args) => vivado::run(args),
        Command::Mlp(args) => mlp::run(args),
        Command::Baseline(cmd) => baseline::run(cmd),
        Command::Schedule(args) => schedule::run(args),
        Command::Campaign(args) => campaign::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Cache(args) => cache::run(args),
    }
}

/// The error and its causes on one line, each cause once: an error type that both shows its source
/// in its own message and returns it as `source()` (thiserror's `{source}`) would otherwise print the
/// OS error twice.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn main() -> ExitCode {
    // clap prints its own usage errors and exits with 2; the other codes are in `exit`.
    match run(Cli::parse()) {
        Ok(()) => ExitCode::from(exit::PASS),
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(exit::code_of(&e))
        }
    }
}
