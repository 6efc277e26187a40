//! `coforge estimate`: resource estimates of every top of a config from `yosys synth_xilinx`,
//! counted by cell type (LUTs, flip-flops, DSPs, block RAMs, carries), beside a Vivado script
//! for users who have Vivado. These are Yosys estimates, not Vivado results.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::engine::{self, Progress};
use crate::output::OutputDir;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Family {
    /// 7-series (DSP48E1, RAMB36E1)
    Xc7,
    /// UltraScale+ (DSP48E2), the VCU1525's family
    Xcup,
}

impl Family {
    fn yosys_name(self) -> &'static str {
        match self {
            Family::Xc7 => "xc7",
            Family::Xcup => "xcup",
        }
    }
    /// A part of the family for the Vivado script.
    fn vivado_part(self) -> &'static str {
        match self {
            Family::Xc7 => "xc7z020clg400-1",
            Family::Xcup => "xcvu9p-fsgd2104-2L-e",
        }
    }
}

#[derive(Args, Debug)]
pub struct EstimateArgs {
    /// Engine config (TOML)
    #[arg(long)]
    pub config: PathBuf,
    /// Output folder: resources.json, resources.csv, vivado_synth.tcl
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "xc7")]
    pub family: Family,
}

/// The summary classes of Xilinx cells, by cell-name prefix.
const CLASSES: [(&str, &[&str]); 6] = [
    ("luts", &["LUT"]),
    ("flip_flops", &["FD"]),
    ("dsps", &["DSP48"]),
    ("block_rams", &["RAMB"]),
    ("carries", &["CARRY"]),
    ("shift_registers", &["SRL"]),
];

/// Cell counts from the last `stat` report in a Yosys log.
fn parse_stat(log: &str) -> BTreeMap<String, u64> {
    let start = log.rfind("Number of cells:").unwrap_or(0);
    log[start..]
        .lines()
        .skip(1)
        .map_while(|l| {
            let mut it = l.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some(cell), Some(n), None) => n.parse::<u64>().ok().map(|n| (cell.to_string(), n)),
                _ => None,
            }
        })
        .collect()
}

fn yosys_version() -> anyhow::Result<String> {
    let out = Command::new("yosys").arg("-V").output().map_err(|e| {
        anyhow::anyhow!(
            "cannot run yosys ({e}); install it with scripts/setup.sh or `apt-get install yosys`"
        )
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn run(args: EstimateArgs) -> anyhow::Result<()> {
    let mut out = OutputDir::create(&args.out)?;
    let loaded = engine::load(&args.config)?;
    let r = &loaded.rendered;
    let mut progress = Progress::new(r.tops.len() + 1);
    let version = yosys_version()?;
    let work = tempfile::Builder::new()
        .prefix("coforge-estimate-")
        .tempdir()
        .context("cannot create a work folder for Yosys")?;
    for (name, text) in &r.verilog {
        std::fs::write(work.path().join(name), text)
            .with_context(|| format!("cannot write {name} for Yosys"))?;
    }
    let mut tops = Vec::new();
    let mut csv = String::from("top,cell,count\n");
    for top in &r.tops {
        let script = format!(
            "read_verilog {}; synth_xilinx -family {} -flatten -top {}; stat",
            top.files.join(" "),
            args.family.yosys_name(),
            top.name
        );
        let out = Command::new("yosys")
            .args(["-p", &script])
            .current_dir(work.path())
            .output()
            .context("cannot run yosys")?;
        let log = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let log_path = work.keep().join("yosys.log");
            let _ = std::fs::write(&log_path, log.as_bytes());
            bail!(
                "yosys failed on `{}`: {}(log: {})",
                top.name,
                String::from_utf8_lossy(&out.stderr),
                log_path.display()
            );
        }
        let cells = parse_stat(&log);
        let mut summary = serde_json::Map::new();
        for (class, prefixes) in CLASSES {
            let n: u64 = cells
                .iter()
                .filter(|(c, _)| prefixes.iter().any(|p| c.starts_with(p)))
                .map(|(_, n)| n)
                .sum();
            summary.insert(class.to_string(), json!(n));
        }
        for (cell, n) in &cells {
            csv.push_str(&format!("{},{cell},{n}\n", top.name));
        }
        progress.step(&format!(
            "{} ({}): {} LUTs, {} flip-flops, {} DSPs, {} block RAMs",
            top.name,
            top.role,
            summary["luts"],
            summary["flip_flops"],
            summary["dsps"],
            summary["block_rams"]
        ));
        tops.push(json!({ "top": top.name, "role": top.role, "summary": summary, "cells": cells }));
    }
    let part = args.family.vivado_part();
    let mut tcl = format!(
        "# Vivado out-of-context synthesis of every top, for the real figures beside coforge's\n\
         # Yosys estimates. Run from the folder that `coforge gen` wrote:\n\
         #   vivado -mode batch -source vivado_synth.tcl\n\
         # The part is an example of the family; change it to yours.\n\
         set part {part}\n"
    );
    for top in &r.tops {
        tcl.push_str(&format!(
            "\n# {role}\nread_verilog [split [read [open {f}]]]\n\
             synth_design -top {name} -part $part -mode out_of_context\n\
             report_utilization -file {name}_utilization.rpt\nclose_design\n",
            role = top.role,
            f = top.filelist,
            name = top.name
        ));
    }
    let report = json!({
        "note": "Yosys synth_xilinx estimates, counted by cell type; not Vivado results",
        "family": args.family.yosys_name(),
        "yosys_version": version,
        "config_hash": loaded.config.hash(),
        "tops": tops,
    });
    out.write_json("resources.json", &report)?;
    out.add("resources.csv", csv.into_bytes());
    out.add("vivado_synth.tcl", tcl.into_bytes());
    out.add("config.json", loaded.config.resolved_json().into_bytes());
    out.commit()?;
    progress.step(&format!("wrote {}", args.out.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_stat;

    #[test]
    fn stat_cells_are_parsed_from_the_last_report() {
        let log = "Number of cells: 3\n  LUT2 1\n  FDRE 2\n\n=== later ===\n   Number of cells:   7\n     DSP48E1   4\n     LUT6   3\n\nEnd";
        let cells = parse_stat(log);
        assert_eq!(cells.len(), 2);
        assert_eq!(cells["DSP48E1"], 4);
        assert_eq!(cells["LUT6"], 3);
    }
}
