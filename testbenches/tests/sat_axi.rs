//! The system top through its AXI wrapper (`sat_top_axi`): a whole training step of a small
//! network, with the program fetched from the AXI4 memory, gives the bare top's bits at stall
//! rates 0, 0.3 and 0.9 with the protocol checker clean, and costs more cycles with more
//! stalls; a response other than OKAY and a program longer than the instruction memory raise
//! their sticky STATUS flags; and the wrapper is clean under `verilator -Wall` and accepted by `yosys
//! synth_xilinx` (its READY -> VALID paths: tests/axi.rs, every wrapper of every config).

use std::path::{Path, PathBuf};

use coforge_driver::design::design_spec_of;
use coforge_driver::sat::network::{seeded_f16, seeded_x, NetworkStep, NetworkTrainer};
use coforge_driver::sat::{AxiMemory, SatSystem};
use coforge_generator::artifacts::render;
use coforge_generator::config::Config;
use coforge_generator::engines::axi::sat::{regs, MEM};
use coforge_generator::engines::axi::{ports, wrapper_name};
use coforge_generator::engines::sat::isa::{self, Buf, Instr};
use coforge_generator::rtl::Dir;
use coforge_scheduler::{schedule_network, Options, Schedule};
use coforge_sim::axi::{AxiLiteMaster, ResetPin};
use coforge_sim::axi4::{Axi4Checker, Axi4Memory, Axi4Timing};
use coforge_sim::{BuildOptions, MemoryTiming, VerilatedModel, Verilator};
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
    tiny_schedule_on(cfg, &repo("configs/sat-4x4-2of8.toml"))
}

/// [`tiny_schedule`] on `cfg`, read from `cfg_path`.
fn tiny_schedule_on(cfg: &Config, cfg_path: &Path) -> Schedule {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("tiny.toml");
    std::fs::write(
        &net,
        "name = \"tiny\"\nbatch = 8\nnm = \"sparse\"\n\
         [[layer]]\nname = \"fc1\"\nkind = \"linear\"\nin = 16\nout = 16\nnm = \"dense\"\n\
         [[layer]]\nname = \"fc2\"\nkind = \"linear\"\nin = 16\nout = 8\n",
    )
    .unwrap();
    schedule_network(&net, cfg, cfg_path, Options::default())
        .expect("the tiny network schedules on the config")
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
        // The same groups are fed; the STCE's busy cycles also hold the tile-spacing waits of
        // tiles fed closer than the spacing, which depend on when the memory lets GEMMs start.
        assert!(stats.busy["stce"] >= stats.busy_estimated["stce"]);
        assert_eq!(stats.written_beats, bare.run.stats.written_beats);
        cycles.push(stats.cycles);
    }
    assert!(
        cycles[0] < cycles[1] && cycles[1] < cycles[2],
        "cycles grow with the stall rate: {cycles:?}"
    );
}

#[test]
fn a_64_bit_port_fetches_each_instruction_in_three_beats_and_trains_bit_exact() {
    // Lines wider than a beat, and an instruction (192 bits) over three beats of the fetch.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo("configs/sat-4x4-2of8.toml")).unwrap();
    let path = dir.path().join("sat-64.toml");
    std::fs::write(
        &path,
        format!("{text}mem_bits = 64\nmem_bytes_per_cycle = 8\n"),
    )
    .unwrap();
    let cfg = Config::load(&path).unwrap();
    assert_eq!(
        coforge_generator::engines::axi::sat::beats_per_instruction(cfg.system.as_ref().unwrap()),
        3
    );
    let s = tiny_schedule_on(&cfg, &path);
    let memory = AxiMemory {
        stall_rate: 0.3,
        seed: 9,
    };
    // `step` compares every tensor with the reference.
    let r = step(&mut SatSystem::new_axi(&cfg, memory).unwrap(), &s, &cfg);
    assert!(r.run.stats.axi.is_some());
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

/// The wrapper of the shipped config on its own: reset, an AXI4 memory of `bytes` bytes with a
/// checker on its port, and the host's AXI4-Lite master.
struct Bench {
    model: VerilatedModel,
    mem: Axi4Memory,
    checker: Axi4Checker,
    lite: AxiLiteMaster,
}

impl Bench {
    fn new(cfg: &Config, bytes: usize) -> Bench {
        let (top, _) = wrapper_files(cfg);
        let spec = design_spec_of(&render(cfg).unwrap(), &top, ports::CLOCK);
        let mut model = Verilator::build(&spec, &BuildOptions::default())
            .unwrap()
            .instantiate()
            .unwrap();
        let pins = model.pins();
        let reset = ResetPin {
            port: pins.input(ports::RESET_N).unwrap(),
            active_low: true,
        };
        let timing = Axi4Timing {
            latency: 8,
            stall_rate: 0.0,
            seed: 0,
        };
        let mem = Axi4Memory::new(pins, MEM, bytes, timing).unwrap();
        let checker = Axi4Checker::new(pins, MEM).unwrap().with_reset(reset, 1);
        let lite = AxiLiteMaster::new(pins, ports::CTRL).unwrap();
        model.set(reset.port, 0);
        for _ in 0..16 {
            model.step().unwrap();
        }
        model.set(reset.port, 1);
        Bench {
            model,
            mem,
            checker,
            lite,
        }
    }

    /// Writes the registers, writes START and polls STATUS until DONE; returns STATUS.
    fn run(&mut self, writes: &[(u64, u32)]) -> u32 {
        for &(addr, value) in writes {
            self.lite.write(addr, value);
        }
        self.lite.write(regs::CONTROL, regs::START);
        for _ in 0..200 {
            self.lite.read(regs::STATUS);
            self.model
                .run_until_done(
                    &mut [&mut self.lite, &mut self.mem, &mut self.checker],
                    1000,
                )
                .unwrap();
            let status = self.lite.take_reads().last().unwrap().1;
            if status & regs::DONE != 0 {
                self.checker.check().unwrap();
                return status;
            }
        }
        panic!("no DONE");
    }
}

#[test]
fn error_responses_and_a_program_too_long_raise_the_sticky_status_flags() {
    let cfg = shipped();
    let sys = cfg.system.as_ref().unwrap();
    let beat = u64::from(sys.mem_bits / 8);
    let mut bench = Bench::new(&cfg, 64 * 1024);
    // A program longer than the instruction memory: refused at START, nothing read.
    let status = bench.run(&[(regs::PROG_LEN, sys.imem_depth + 1)]);
    assert_eq!(status, regs::DONE | regs::PROGRAM_ERROR, "{status:#x}");
    assert_eq!(bench.mem.traffic(), (0, 0));
    // A program fetched from past the memory's end: DECERR on every beat (the zero words read
    // are END, so nothing else runs). START clears the program error.
    let status = bench.run(&[
        (regs::MEM_BASE_LO, 1 << 20),
        (regs::PROG_ADDR, 0),
        (regs::PROG_LEN, 2),
    ]);
    assert_eq!(status, regs::DONE | regs::READ_ERROR, "{status:#x}");
    assert!(
        bench.mem.check().is_err(),
        "the memory saw the access outside it"
    );
    // A STORE past the memory's end, from a program inside it: BRESP DECERR.
    let program = [
        Instr::Store {
            buf: Buf::Out,
            buf_addr: 0,
            dram_addr: (1 << 20) / beat as u32,
            lines: 1,
            wait: 0,
            signal: 0,
        },
        Instr::End,
    ];
    for (i, word) in isa::encode_program(&program).iter().enumerate() {
        let at = i * beat as usize;
        for (k, w) in word.iter().enumerate() {
            bench.mem.bytes_mut()[at + 4 * k..at + 4 * k + 4].copy_from_slice(&w.to_le_bytes());
        }
    }
    let status = bench.run(&[(regs::MEM_BASE_LO, 0), (regs::PROG_LEN, 2)]);
    assert_eq!(status, regs::DONE | regs::WRITE_ERROR, "{status:#x}");
    // PROG_LEN = 0 reruns the program in the instruction memory without fetching it: the
    // STORE writes again, nothing is read.
    let (reads, writes) = bench.mem.traffic();
    let status = bench.run(&[(regs::PROG_LEN, 0)]);
    assert_eq!(status, regs::DONE | regs::WRITE_ERROR, "{status:#x}");
    assert_eq!(bench.mem.traffic().0, reads, "PROG_LEN = 0 fetched");
    assert!(
        bench.mem.traffic().1 > writes,
        "the STORE did not run again"
    );
}
