//! The generated Verilog of every shipped config: lint-clean under `verilator -Wall`,
//! synthesizable by `yosys synth_xilinx`, deterministic, one module definition per parameter
//! set, and identical to what `rtl-out/` ships.

use coforge_generator::artifacts::{render, Rendered};
use coforge_generator::config::{Config, DeformMode, DspPacking, Dtype};
use coforge_generator::engines::axi::wrapper_name;
use coforge_testbenches::{assert_lint_clean, cell_count, synth_xilinx_cells};
use std::path::{Path, PathBuf};

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

#[test]
fn verilator_lint_wall_is_clean_on_every_shipped_config() {
    for (stem, cfg) in shipped_configs() {
        let r = render(&cfg).unwrap();
        for top in &r.tops {
            let files: Vec<(String, String)> = r
                .verilog
                .iter()
                .filter(|(f, _)| top.files.contains(f))
                .cloned()
                .collect();
            assert_lint_clean(&files, &top.name, &stem);
        }
    }
}

/// Cell counts of one top of a rendered config under `yosys synth_xilinx`.
fn synth_xilinx(r: &Rendered, top: &str, what: &str) -> Vec<(String, u32)> {
    let info = r.tops.iter().find(|t| t.name == top).unwrap();
    let files: Vec<(String, String)> = r
        .verilog
        .iter()
        .filter(|(f, _)| info.files.contains(f))
        .cloned()
        .collect();
    synth_xilinx_cells(&files, top, what)
}

#[test]
fn yosys_synth_xilinx_maps_one_dsp_per_int8_multiplier() {
    // The shipped int8 engines up to 16 PEs; bigger arrays and the fp16 engines belong to the
    // resource benchmark (minutes of synthesis), see the next test for the fp16 path.
    for (stem, cfg) in shipped_configs() {
        let Some(s) = &cfg.stce else { continue };
        if s.rows * s.cols > 16 || s.dtype != Dtype::Int8 {
            continue;
        }
        let stat = synth_xilinx(&render(&cfg).unwrap(), &s.top, &stem);
        if s.weight_bits == 8 {
            let dsps = cell_count(&stat, "DSP48E1");
            assert_eq!(dsps, s.rows * s.cols * s.n, "{stem}: DSP count\n{stat:?}");
        }
    }
}

#[test]
fn yosys_synth_xilinx_maps_the_deform_line_buffer_to_block_ram() {
    // Mode A's line buffer is nine copies of one simple dual-port RAM (one per tap); each must
    // be a block RAM, not LUT RAM or flip-flops. (The DCNv2 engine's window buffer has its own
    // check, with its exact bank count, in tests/deform_dcnv2.rs.) The engine is synthesized
    // inside its AXI wrapper, so one Yosys run also shows that the wrapper is accepted.
    for (stem, cfg) in shipped_configs() {
        let Some(d) = cfg.deform.as_ref().filter(|d| d.mode != DeformMode::Dcnv2) else {
            continue;
        };
        let stat = synth_xilinx(&render(&cfg).unwrap(), &wrapper_name(&d.top), &stem);
        let brams = cell_count(&stat, "RAMB18E1") + cell_count(&stat, "RAMB36E1");
        assert!(
            brams >= 9,
            "{stem}: the line buffer should take at least 9 block RAMs, found {brams}\n{stat:?}"
        );
    }
}

#[test]
fn yosys_synth_xilinx_accepts_the_training_engines() {
    // The smallest training engine: every fp unit, the SORE and the WUVE, each top synthesized.
    let cfg = Config::from_toml(
        "[stce]\nrows = 1\ncols = 1\ndtype = \"fp16\"\nn = 1\nm = 4\n\
         [train]\nsore_lanes = 1\nwuve_lanes = 1\n",
        "tiny training engine",
    )
    .unwrap();
    let r = render(&cfg).unwrap();
    for top in &r.tops {
        let stat = synth_xilinx(&r, &top.name, "tiny training engine");
        assert!(
            cell_count(&stat, "FDRE") > 0,
            "{}: no flip-flops?\n{stat:?}",
            top.name
        );
    }
}

#[test]
fn generation_is_deterministic_and_defines_each_module_once() {
    for (stem, cfg) in shipped_configs() {
        let a = render(&cfg).unwrap();
        let b =
            render(&Config::from_toml(&toml::to_string(&cfg).unwrap(), "again").unwrap()).unwrap();
        let files = |r: &Rendered| r.files().cloned().collect::<Vec<_>>();
        assert_eq!(files(&a), files(&b), "{stem}: two renders differ");
        let definitions: usize = a
            .verilog
            .iter()
            .map(|(_, t)| t.lines().filter(|l| l.starts_with("module ")).count())
            .sum();
        assert_eq!(definitions, a.verilog.len(), "{stem}: one module per file");
        // rows x cols PE instances share one definition (with int8x2 packing: one for the
        // upper and one for the lower PE of each row pair, and one for an odd last row).
        let Some(stce) = &cfg.stce else { continue };
        let pes: Vec<&str> = a
            .verilog
            .iter()
            .map(|(f, _)| f.trim_end_matches(".v"))
            .filter(|m| m.starts_with("stce_pe_"))
            .collect();
        let expected = match stce.dsp_packing {
            DspPacking::None => 1,
            DspPacking::Int8x2 => 2 + stce.rows as usize % 2,
        };
        assert_eq!(pes.len(), expected, "{stem}: PE definitions {pes:?}");
        let top = &a
            .verilog
            .iter()
            .find(|(f, _)| *f == format!("{}.v", stce.top))
            .unwrap()
            .1;
        let instances = top
            .lines()
            .filter(|l| {
                let name = l.split_whitespace().next().unwrap_or("");
                pes.contains(&name)
            })
            .count();
        assert_eq!(instances as u32, stce.rows * stce.cols, "{stem}");
    }
}

#[test]
fn rtl_out_matches_a_fresh_generation_byte_for_byte() {
    for (stem, cfg) in shipped_configs() {
        let dir = workspace().join("rtl-out").join(&stem);
        let r = render(&cfg).unwrap();
        let mut expected: Vec<String> = r.files().map(|(n, _)| n.clone()).collect();
        expected.sort();
        let mut found: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|_| panic!("rtl-out/{stem} is missing: run scripts/regen-rtl.sh"))
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            // The marker `coforge gen` leaves in every output folder (see cli/src/output.rs).
            .filter(|n| n != ".coforge-output")
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
