//! `coforge gen`: Verilog, filelist, manifest and resolved config for one engine config.

use std::path::PathBuf;

use clap::Args;

use crate::engine;
use crate::output::OutputDir;

#[derive(Args, Debug)]
pub struct GenArgs {
    /// Engine config (TOML)
    #[arg(long)]
    pub config: PathBuf,
    /// Output folder (created if missing; files in it are replaced atomically)
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: GenArgs) -> anyhow::Result<()> {
    let mut out = OutputDir::create(&args.out)?;
    let loaded = engine::load(&args.config)?;
    let r = &loaded.rendered;
    for (name, text) in r.files() {
        out.add(name, text.clone().into_bytes());
    }
    out.commit()?;
    let lines: usize = r.verilog.iter().map(|(_, t)| t.lines().count()).sum();
    say!(
        "generated {} module definitions, {lines} lines of Verilog, config hash {}",
        r.verilog.len(),
        &loaded.config.hash()[..16]
    );
    for t in &r.tops {
        say!(
            "  {:<10} {}: filelist {}",
            t.name,
            t.role,
            args.out.join(&t.filelist).display()
        );
    }
    Ok(())
}
