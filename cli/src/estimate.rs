//! `coforge estimate`: resource estimates of every top of a config from `yosys synth_xilinx
//! -flatten`, counted by cell type (LUTs, flip-flops, DSPs, block RAMs, carries), with the longest
//! topological path (`ltp -noff` with the Xilinx flip-flops left out of the selection, so that
//! they cut paths: nodes on the longest register-to-register path, a logic-depth proxy, see
//! `yosys::synthesize`) so that regressions show, beside a Vivado script for users who have Vivado. These are
//! Yosys estimates, not Vivado results; `coforge vivado` writes the full Vivado flow.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::engine::{self, Progress};
use crate::output::OutputDir;
use crate::yosys;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Family {
    /// 7-series (DSP48E1, RAMB36E1)
    Xc7,
    /// UltraScale+ (DSP48E2), the VCU1525's family
    Xcup,
}

impl Family {
    pub(crate) fn yosys_name(self) -> &'static str {
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
    /// Output folder: resources.json, resources.csv (cells and the longest path), vivado_synth.tcl
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "xc7")]
    pub family: Family,
}

pub fn run(args: EstimateArgs) -> anyhow::Result<()> {
    let mut out = OutputDir::create(&args.out)?;
    let loaded = engine::load(&args.config)?;
    let r = &loaded.rendered;
    let mut progress = Progress::new(r.tops.len() + 1);
    let version = yosys::version()?;
    let work = yosys::work_folder("estimate", &r.verilog)?;
    let mut tops = Vec::new();
    let mut rows = vec![TABLE_HEADER.map(String::from).to_vec()];
    let mut csv = String::from("top,cell,count\n");
    for top in &r.tops {
        let syn = match yosys::synthesize(
            work.path(),
            &top.files,
            &top.name,
            args.family.yosys_name(),
            true,
        ) {
            Ok(syn) => syn,
            Err(e) => {
                // Keep the work folder, with its log, for the user to inspect.
                let _ = work.keep();
                return Err(e);
            }
        };
        let longest_path = syn
            .longest_path
            .context("yosys was asked for the longest path")?;
        for (cell, n) in &syn.cells {
            csv.push_str(&format!("{},{cell},{n}\n", top.name));
        }
        csv.push_str(&format!("{},longest_path,{longest_path}\n", top.name));
        let summary = &syn.summary;
        progress.step(&format!(
            "{} ({}): {} LUTs, {} flip-flops, {} DSPs, {} block RAMs, longest path {longest_path} cells",
            top.name,
            top.role,
            summary["luts"],
            summary["flip_flops"],
            summary["dsps"],
            summary["block_rams"]
        ));
        rows.push(table_row(&top.name, summary, longest_path));
        tops.push(json!({
            "top": top.name,
            "role": top.role,
            "summary": syn.summary,
            "longest_path": longest_path,
            "cells": syn.cells,
        }));
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
        "note": "Yosys synth_xilinx -flatten estimates, counted by cell type; not Vivado results; \
                 longest_path counts nodes on the longest path of `ltp -noff` (Xilinx flip-flops cut \
                 paths), a logic-depth proxy, not a timing figure",
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
    say!(
        "{} estimates (synth_xilinx -family {} -flatten; not Vivado results):\n{}",
        version,
        args.family.yosys_name(),
        format_table(&rows)
    );
    Ok(())
}

const TABLE_HEADER: [&str; 7] = [
    "top",
    "LUTs",
    "flip-flops",
    "DSPs",
    "block RAMs",
    "carries",
    "longest path",
];

fn table_row(top: &str, summary: &BTreeMap<String, u64>, longest_path: u64) -> Vec<String> {
    let mut row = vec![top.to_string()];
    for class in ["luts", "flip_flops", "dsps", "block_rams", "carries"] {
        row.push(summary.get(class).copied().unwrap_or(0).to_string());
    }
    row.push(longest_path.to_string());
    row
}

/// Columns padded to their widest entry; the first column left-aligned, numbers right-aligned.
fn format_table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
