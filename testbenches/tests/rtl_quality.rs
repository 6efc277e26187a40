//! The generated Verilog of every shipped config: lint-clean under `verilator -Wall`,
//! synthesizable by `yosys synth_xilinx`, deterministic, one module definition per parameter
//! set, and identical to what `rtl-out/` ships.

use coforge_generator::artifacts::{render, Rendered};
use coforge_generator::config::Config;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `configs/*.toml`, by file stem.
fn shipped_configs() -> Vec<(String, Config)> {
    let mut out: Vec<(String, Config)> = std::fs::read_dir(workspace().join("configs"))
        .expect("configs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().to_string();
            (stem, Config::load(&p).expect("shipped config is valid"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 3,
        "expected the shipped configs, found {}",
        out.len()
    );
    out
}

fn write(r: &Rendered, dir: &Path) {
    for (name, text) in r.files() {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

#[test]
fn verilator_lint_wall_is_clean_on_every_shipped_config() {
    for (stem, cfg) in shipped_configs() {
        let r = render(&cfg);
        let dir = tempfile::tempdir().unwrap();
        write(&r, dir.path());
        let out = Command::new("verilator")
            .args(["--lint-only", "-Wall", "-f"])
            .arg(&r.filelist.0)
            .args(["--top-module", &r.top])
            .current_dir(dir.path())
            .output()
            .expect("verilator runs (scripts/setup.sh installs it)");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && log.trim().is_empty(),
            "{stem}: {log}"
        );
    }
}

#[test]
fn yosys_synth_xilinx_maps_one_dsp_per_multiplier() {
    for (stem, cfg) in shipped_configs() {
        let s = &cfg.stce;
        if s.rows * s.cols > 16 {
            continue; // big arrays belong to the resource benchmark, not to the test suite
        }
        let r = render(&cfg);
        let dir = tempfile::tempdir().unwrap();
        write(&r, dir.path());
        let files = &r.tops[0].files;
        let script = format!(
            "read_verilog {}; synth_xilinx -family xc7 -flatten -top {}; stat",
            files.join(" "),
            r.top
        );
        let out = Command::new("yosys")
            .args(["-p", &script])
            .current_dir(dir.path())
            .output()
            .expect("yosys runs (scripts/setup.sh installs it)");
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stem}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if s.dtype == coforge_generator::config::Dtype::Int8 && s.weight_bits == 8 {
            let dsps = log
                .lines()
                .find_map(|l| l.trim().strip_prefix("DSP48E1"))
                .map(|n| n.trim().parse::<u32>().unwrap())
                .unwrap_or(0);
            assert_eq!(dsps, s.rows * s.cols * s.n, "{stem}: DSP count\n{log}");
        }
    }
}

#[test]
fn generation_is_deterministic_and_defines_each_module_once() {
    for (stem, cfg) in shipped_configs() {
        let a = render(&cfg);
        let b = render(&Config::from_toml(&toml::to_string(&cfg).unwrap(), "again").unwrap());
        let files = |r: &Rendered| r.files().cloned().collect::<Vec<_>>();
        assert_eq!(files(&a), files(&b), "{stem}: two renders differ");
        let definitions: usize = a
            .verilog
            .iter()
            .map(|(_, t)| t.lines().filter(|l| l.starts_with("module ")).count())
            .sum();
        assert_eq!(definitions, a.verilog.len(), "{stem}: one module per file");
        // rows x cols PE instances share one definition.
        let pes: Vec<&str> = a
            .verilog
            .iter()
            .map(|(f, _)| f.trim_end_matches(".v"))
            .filter(|m| m.starts_with("stce_pe_"))
            .collect();
        assert_eq!(pes.len(), 1, "{stem}: one PE definition");
        let top = &a.verilog.last().unwrap().1;
        let pe_name = pes[0];
        let instances = top
            .lines()
            .filter(|l| l.trim_start().starts_with(pe_name))
            .count();
        assert_eq!(instances as u32, cfg.stce.rows * cfg.stce.cols, "{stem}");
    }
}

#[test]
fn rtl_out_matches_a_fresh_generation_byte_for_byte() {
    for (stem, cfg) in shipped_configs() {
        let dir = workspace().join("rtl-out").join(&stem);
        let r = render(&cfg);
        let mut expected: Vec<String> = r.files().map(|(n, _)| n.clone()).collect();
        expected.sort();
        let mut found: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|_| panic!("rtl-out/{stem} is missing: run scripts/regen-rtl.sh"))
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        found.sort();
        assert_eq!(found, expected, "rtl-out/{stem}: run scripts/regen-rtl.sh");
        for (name, text) in r.files() {
            let shipped = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(
                shipped == *text,
                "rtl-out/{stem}/{name} differs from a fresh generation: run scripts/regen-rtl.sh"
            );
        }
    }
}
