//! Yosys as a resource estimator, shared by `coforge estimate` and `coforge baseline`:
//! `synth_xilinx -flatten` of one top, cell counts by type from `stat`, summary classes, and
//! optionally the longest path from `ltp -noff`.
//!
//! The binary is `$COFORGE_YOSYS`, else `yosys` on `PATH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::exit::ToolMissing;

/// The summary classes of Xilinx cells, by cell-name prefix.
pub const CLASSES: [(&str, &[&str]); 6] = [
    ("luts", &["LUT"]),
    ("flip_flops", &["FD"]),
    ("dsps", &["DSP48"]),
    ("block_rams", &["RAMB"]),
    ("carries", &["CARRY"]),
    ("shift_registers", &["SRL"]),
];

fn binary() -> PathBuf {
    std::env::var_os("COFORGE_YOSYS")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("yosys"), PathBuf::from)
}

fn missing() -> ToolMissing {
    ToolMissing {
        tool: "yosys",
        fix: format!(
            "install it with scripts/setup.sh or `apt-get install yosys`, or point COFORGE_YOSYS \
             at the binary (tried `{}`)",
            binary().display()
        ),
    }
}

/// `Yosys 0.23 (git sha1 ...)`.
pub fn version() -> anyhow::Result<String> {
    let out = Command::new(binary())
        .arg("-V")
        .output()
        .map_err(|_| missing())?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A temporary work folder (`coforge-<verb>-...`) holding the Verilog `files` for Yosys.
pub fn work_folder(verb: &str, files: &[(String, String)]) -> anyhow::Result<tempfile::TempDir> {
    let work = tempfile::Builder::new()
        .prefix(&format!("coforge-{verb}-"))
        .tempdir()
        .context("cannot create a work folder for Yosys")?;
    for (name, text) in files {
        std::fs::write(work.path().join(name), text)
            .with_context(|| format!("cannot write {name} for Yosys"))?;
    }
    Ok(work)
}

/// What Yosys found for one top.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Synthesis {
    /// Cells by Xilinx cell type.
    pub cells: BTreeMap<String, u64>,
    /// Cells by summary class ([`CLASSES`]).
    pub summary: BTreeMap<String, u64>,
    /// Nodes on the longest topological path (`ltp -noff`, with Xilinx flip-flops, shift
    /// registers and block RAMs left out so that they cut paths; LUTs, carries, DSPs and I/O
    /// buffers count one each). A logic-depth proxy, not a timing figure.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub longest_path: Option<u64>,
}

/// Synthesizes `top` from `files` (in `dir`) with `synth_xilinx -family FAMILY -flatten`.
pub fn synthesize(
    dir: &Path,
    files: &[String],
    top: &str,
    family: &str,
    longest_path: bool,
) -> anyhow::Result<Synthesis> {
    let mut script = format!(
        "read_verilog {}; synth_xilinx -family {family} -flatten -top {top}; tee -q -o stat.txt stat",
        files.join(" ")
    );
    if longest_path {
        // DSP48 accumulators feed back through the DSP cell, which ltp reports as a loop per bit
        // (and breaks); the warnings alone would be megabytes.
        // `ltp -noff` cuts paths only at Yosys's internal flip-flop types; after synth_xilinx
        // the flip-flops are FDRE/FDSE cells (and shift registers SRL*, block RAMs RAMB*), which
        // it would walk through as if they were logic. They are left out of the selection, so
        // they cut paths as a register does.
        script += "; logger -nowarn \"Detected loop\"; \
                   tee -q -o ltp.txt ltp -noff t:FD* t:SRL* t:RAMB* %u %u %n";
    }
    let out = Command::new(binary())
        .args(["-q", "-p", &script])
        .current_dir(dir)
        .output()
        .map_err(|_| missing())?;
    if !out.status.success() {
        let log_path = dir.join("yosys.log");
        let _ = std::fs::write(&log_path, &out.stdout);
        bail!(
            "yosys failed on `{top}`: {}(log: {})",
            String::from_utf8_lossy(&out.stderr),
            log_path.display()
        );
    }
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .with_context(|| format!("yosys wrote no {name} for `{top}`"))
    };
    let cells = parse_stat(&read("stat.txt")?);
    let summary = CLASSES
        .iter()
        .map(|(class, prefixes)| {
            let n = cells
                .iter()
                .filter(|(c, _)| prefixes.iter().any(|p| c.starts_with(p)))
                .map(|(_, n)| n)
                .sum();
            (class.to_string(), n)
        })
        .collect();
    let longest_path = if longest_path {
        Some(parse_ltp(&read("ltp.txt")?).with_context(|| {
            format!("no `Longest topological path` line in yosys's ltp output for `{top}`")
        })?)
    } else {
        None
    };
    Ok(Synthesis {
        cells,
        summary,
        longest_path,
    })
}

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

/// `Longest topological path in stce_top (length=139):` → 139.
fn parse_ltp(log: &str) -> Option<u64> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.starts_with("Longest topological path"))?;
    let n = line.split("length=").nth(1)?;
    n.trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cells_are_parsed_from_the_last_report() {
        let log = "Number of cells: 3\n  LUT2 1\n  FDRE 2\n\n=== later ===\n   Number of cells:   7\n     DSP48E1   4\n     LUT6   3\n\nEnd";
        let cells = parse_stat(log);
        assert_eq!(cells.len(), 2);
        assert_eq!(cells["DSP48E1"], 4);
        assert_eq!(cells["LUT6"], 3);
    }

    #[test]
    fn longest_path_is_parsed() {
        let log =
            "5. Executing LTP pass\nLongest topological path in stce_top (length=139):\n  1: a\n";
        assert_eq!(parse_ltp(log), Some(139));
        assert_eq!(parse_ltp("nothing"), None);
    }
}
