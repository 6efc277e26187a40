//! The system top through its AXI wrapper (`sat_top_axi`): a whole training step of a small
//! network, with the program fetched from the AXI4 memory, gives the bare top's bits at stall
//! rates 0, 0.3 and 0.9 with the protocol checker clean, and costs more cycles with more
//! stalls; and the wrapper is clean under `verilator -Wall` and accepted by `yosys
//! synth_xilinx` (its READY -> VALID paths: tests/axi.rs, every wrapper of every config).

use std::path::{Path, PathBuf};

use coforge_driver::sat::network::{seeded_f16, seeded_x, NetworkStep, NetworkTrainer};
use coforge_driver::sat::{AxiMemory, SatSystem};
use coforge_generator::artifacts::render;
use coforge_generator::config::Config;
use coforge_generator::engines::axi::wrapper_name;
use coforge_generator::rtl::Dir;
use coforge_scheduler::{schedule_network, Options, Schedule};
use coforge_sim::MemoryTiming;
use coforge_testbenches::{assert_lint_clean, cell_count, synth_xilinx_cells};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn shipped() -> Config {
    Config::load(&repo("configs/sat-4x4-2of8.toml")).expect("shipped config is valid")
}

/// A two-layer network small enough for three wrapped runs in a few seconds: a dense first
/// layer and a 2:8 sparse second one, so every instruction kind runs (PRUNE_F and PRUNE_B
/// included).
fn tiny_schedule(cfg: &Config) -> Schedule {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("tiny.toml");
    std::fs::write(
        &net,
        "name = \"tiny\"\nbatch = 8\nnm = \"sparse\"\n\
         [[layer]]\nname = \"fc1\"\nkind = \"linear\"\nin = 16\nout = 16\nnm = \"dense\"\n\
         [[layer]]\nname = \"fc2\"\nkind = \"linear\"\nin = 16\nout = 8\n",
    )
    .unwrap();
    schedule_network(
        &net,
        cfg,
        &repo("configs/sat-4x4-2of8.toml"),
        Options::default(),
    )
    .expect("the tiny network schedules on the shipped config")
}

fn step(system: &mut SatSystem, s: &Schedule, cfg: &Config) -> NetworkStep {
    let w32 = s
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| seeded_f16(l.cout, l.k, 7, 3, 0, i as u64).mapv(|v| v.to_f32() * 0.5))
        .collect();
    let mut trainer = NetworkTrainer::new(s, w32, 0.01, 2e-4).unwrap();
    let inputs = s
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                seeded_x(l, s.batch, 7, 0, i as u64),
                seeded_f16(l.r, l.cout, 7, 2, 0, i as u64),
            )
        })
        .collect();
    let sys = cfg.system.as_ref().unwrap();
    let timing = MemoryTiming::fixed(sys.mem_latency, sys.mem_bytes_per_cycle);
    let r = trainer.step(system, inputs, timing).unwrap();
    if let Some(bad) = r.first_mismatch() {
        panic!(
            "{} of {} elements differ; {}",
            bad.comparison.mismatches,
            bad.comparison.elements,
            bad.comparison.first_mismatch.as_ref().unwrap()
        );
    }
    r
}

#[test]
fn a_training_step_through_the_wrapper_gives_the_bare_tops_bits_under_stalls() {
    let cfg = shipped();
    let s = tiny_schedule(&cfg);
    let bare = step(&mut SatSystem::new(&cfg).unwrap(), &s, &cfg);
    let mut cycles = Vec::new();
    for rate in [0.0, 0.3, 0.9] {
        let mut system = SatSystem::new_axi(
            &cfg,
            AxiMemory {
                stall_rate: rate,
                seed: 5,
            },
        )
        .unwrap();
        // The checker and the wrapper's error flags fail the step inside `run`.
        let r = step(&mut system, &s, &cfg);
        for (a, b) in bare.checked.iter().zip(&r.checked) {
            assert_eq!(
                a.pair.rtl_bits(),
                b.pair.rtl_bits(),
                "{}.{} differs through the wrapper at stall rate {rate}",
                a.layer,
                a.tensor
            );
        }
        let stats = &r.run.stats;
        let axi = stats.axi.as_ref().expect("an AXI run reports its wrapper");
        eprintln!(
            "stall rate {rate}: system top {} cycles (bare {}), wrapper {} cycles with the \
             program fetch; busy {:?}",
            stats.cycles, bare.run.stats.cycles, axi.wrapper_cycles, stats.busy
        );
        assert!(axi.wrapper_cycles > stats.cycles, "the fetch costs cycles");
        assert_eq!(stats.busy["stce"], bare.run.stats.busy["stce"]);
        assert_eq!(stats.written_beats, bare.run.stats.written_beats);
        cycles.push(stats.cycles);
    }
    assert!(
        cycles[0] < cycles[1] && cycles[1] < cycles[2],
        "cycles grow with the stall rate: {cycles:?}"
    );
}

fn wrapper_files(cfg: &Config) -> (String, Vec<(String, String)>) {
    let r = render(cfg).unwrap();
    let top = wrapper_name(&cfg.system.as_ref().unwrap().top);
    let info = r
        .tops
        .iter()
        .find(|t| t.name == top)
        .expect("the system top has an AXI wrapper");
    let files = r
        .verilog
        .iter()
        .filter(|(f, _)| info.files.contains(f))
        .cloned()
        .collect();
    (top, files)
}

#[test]
fn the_wrapper_is_lint_clean_and_synthesizes() {
    let (top, files) = wrapper_files(&shipped());
    assert_lint_clean(&files, &top, "sat-4x4-2of8");
    // A 64-bit port: an instruction takes three beats, and a 4 KiB page holds more beats than
    // a burst (AxLEN is cut at 255); a 1 x 1 array keeps Yosys quick.
    let cfg = Config::from_toml(
        "[stce]\nrows = 1\ncols = 1\ndtype = \"fp16\"\nn = 1\nm = 4\n[train]\nsore_lanes = 1\n\
         wuve_lanes = 1\n[system]\nmem_bits = 64\nact_lines = 64\nwgt_lines = 64\n\
         out_lines = 64\nweight_lines = 64\nimem_depth = 64\nmem_bytes_per_cycle = 8\n",
        "1x1 system",
    )
    .unwrap();
    let (top, files) = wrapper_files(&cfg);
    assert_lint_clean(&files, &top, "1x1 system, 64-bit port");
    // The system top itself is synthesized in tests/sat_system.rs; here it is a black box, so
    // that Yosys maps only the wrapper's logic (seconds, not a minute).
    let system = cfg.system.as_ref().unwrap().top.clone();
    let r = render(&cfg).unwrap();
    let ports = &r.tops.iter().find(|t| t.name == system).unwrap().ports;
    let decls: Vec<String> = ports
        .iter()
        .map(|p| {
            let dir = if p.dir == Dir::Input {
                "input"
            } else {
                "output"
            };
            format!("{dir} wire [{}:0] {}", p.width - 1, p.name)
        })
        .collect();
    let stub = format!(
        "(* blackbox *)\nmodule {system} ({});\nendmodule\n",
        decls.join(", ")
    );
    let wrapper_file = format!("{top}.v");
    let mut only_wrapper: Vec<(String, String)> = files
        .into_iter()
        .filter(|(f, _)| *f == wrapper_file)
        .collect();
    only_wrapper.push((format!("{system}_stub.v"), stub));
    let cells = synth_xilinx_cells(&only_wrapper, &top, "1x1 system's wrapper, 64-bit port");
    assert!(cell_count(&cells, "FDRE") > 0, "{cells:?}");
}
