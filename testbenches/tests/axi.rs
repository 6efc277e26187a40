//! The AXI wrappers: a GEMM through the STCE's wrapper under random stalls gives the bare
//! engine's bits, the protocol checker catches a broken master, and every wrapper of every
//! shipped config keeps the structural AXI rule and is accepted by Yosys.

use coforge_driver::axi::{self, Stalls};
use coforge_driver::design::design_spec_of;
use coforge_driver::verify::{int8_gemm, int8_gemm_with, Int8Outcome, Mode};
use coforge_generator::artifacts::render;
use coforge_generator::config::Config;
use coforge_generator::engines::axi::{ports, ready_to_valid_paths, wrapper_name};
use coforge_generator::rtl::ModuleDef;
use coforge_sim::axi::{AxisChecker, ResetPin};
use coforge_sim::{BuildOptions, VerilatedModel, Verilator};
use coforge_testbenches::{random_i8, synth_xilinx_cells, BrokenSource, Engine};
use std::collections::BTreeMap;

fn wrapper_model(engine: &Engine) -> VerilatedModel {
    let top = wrapper_name(&engine.cfg().top);
    let spec = design_spec_of(&engine.rendered, &top, ports::CLOCK);
    Verilator::build(&spec, &BuildOptions::default())
        .unwrap_or_else(|e| panic!("Verilator build failed: {e}"))
        .instantiate()
        .unwrap_or_else(|e| panic!("cannot load the model: {e}"))
}

fn through_wrapper(
    engine: &Engine,
    a: &ndarray::Array2<i8>,
    b: &ndarray::Array2<i8>,
    rate: f64,
) -> (Int8Outcome, axi::WrapperCounters) {
    let mut model = wrapper_model(engine);
    let mut counters = None;
    let mut runner = |job: &coforge_driver::stce::GemmJob| {
        let r = axi::run(&mut model, engine.cfg(), job, Stalls { rate, seed: 7 })?;
        counters = Some(r.counters);
        Ok(r.run)
    };
    let out = int8_gemm_with(
        &mut runner,
        engine.cfg(),
        a.view(),
        b.view(),
        Mode::Sparse,
        None,
    )
    .unwrap_or_else(|e| panic!("GEMM through the wrapper at stall rate {rate}: {e}"));
    (out, counters.expect("the job ran"))
}

#[test]
fn wrapper_gives_the_engines_bits_under_random_stalls_and_more_cycles_with_more_stalls() {
    let engine = Engine::stce(2, 3, 2, 4, "");
    let (a, b) = (random_i8(5, 24, 1), random_i8(24, 7, 2));
    let mut sim = engine.verilator();
    let bare = int8_gemm(
        &mut sim,
        engine.cfg(),
        &engine.spec,
        a.view(),
        b.view(),
        Mode::Sparse,
        None,
    )
    .expect("bare GEMM runs");
    assert!(bare.comparison.bit_exact());
    let mut cycles = Vec::new();
    for rate in [0.0, 0.3, 0.9] {
        let (out, counters) = through_wrapper(&engine, &a, &b, rate);
        assert!(
            out.comparison.bit_exact(),
            "stall rate {rate}: {:?}",
            out.comparison
        );
        assert_eq!(
            out.rtl, bare.rtl,
            "stall rate {rate}: not the bare engine's bits"
        );
        let tiles = out.stats.tiles as u32;
        assert_eq!(
            counters.groups,
            tiles * out.stats.groups_per_tile as u32,
            "GROUPS register"
        );
        assert_eq!(counters.rows, tiles * 2, "ROWS register");
        assert_eq!(counters.status, 0, "STATUS: idle, no error flag");
        assert_eq!(
            counters.info,
            2 | 3 << 8 | 2 << 16 | 4 << 24,
            "INFO register"
        );
        if rate == 0.0 {
            assert_eq!(
                out.stats.cycles, out.stats.estimated_cycles,
                "without stalls the wrapper adds exactly STCE_EXTRA_CYCLES"
            );
            assert_eq!(out.stats.cycles, bare.stats.cycles + 3);
        }
        cycles.push(out.stats.cycles);
    }
    assert!(
        cycles[0] < cycles[1] && cycles[1] < cycles[2],
        "cycles {cycles:?}"
    );
}

#[test]
fn protocol_checker_fails_a_source_that_changes_tdata_before_the_handshake() {
    let engine = Engine::stce(2, 2, 2, 4, "");
    let mut model = wrapper_model(&engine);
    let pins = model.pins();
    let reset = ResetPin {
        port: pins.input(ports::RESET_N).unwrap(),
        active_low: true,
    };
    let mut checker = AxisChecker::new(pins, ports::STCE_IN)
        .unwrap()
        .with_reset(reset, 1);
    let mut broken = BrokenSource::new(pins, ports::STCE_IN, 200);
    model.set(reset.port, 0);
    for _ in 0..axi::RESET_CYCLES {
        model.cycle_with(&mut [&mut checker]).unwrap();
    }
    model.set(reset.port, 1);
    // Nobody takes the results, so the wrapper runs out of result credits and stops taking
    // beats: the broken source then changes TDATA under a waiting TVALID.
    model
        .run_until_done(&mut [&mut broken, &mut checker], 1000)
        .unwrap();
    let err = checker
        .check()
        .expect_err("the checker must catch the broken source");
    let msg = err.to_string();
    assert!(
        msg.contains("TDATA changed while TVALID was high and TREADY low"),
        "{msg}"
    );
    assert!(msg.contains("s_axis_in"), "{msg}");
}

fn shipped_configs() -> Vec<(String, Config)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut out: Vec<(String, Config)> = std::fs::read_dir(&dir)
        .expect("configs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (stem.clone(), Config::from_toml(&text, &stem).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn no_wrapper_valid_depends_combinationally_on_its_ready() {
    let mut wrappers = 0;
    for (stem, cfg) in shipped_configs() {
        let r = render(&cfg).unwrap();
        let design = coforge_generator::artifacts::engines(&cfg).unwrap();
        let mut modules: BTreeMap<String, ModuleDef> = BTreeMap::new();
        for (_, _, d) in &design {
            for m in d.modules() {
                modules.insert(m.name().to_string(), m.clone());
            }
        }
        for plan in coforge_generator::artifacts::plan(&cfg) {
            let d = plan.generate().unwrap();
            if let Some(w) = plan.axi_wrapper(&d) {
                assert!(
                    r.tops.iter().any(|t| t.name == w.name()),
                    "{stem}: {} is a top",
                    w.name()
                );
                let paths = ready_to_valid_paths(&w, &modules);
                assert!(
                    paths.is_empty(),
                    "{stem}: {}: READY -> VALID paths {paths:?}",
                    w.name()
                );
                wrappers += 1;
            }
        }
    }
    assert!(wrappers > 0, "the shipped configs have AXI wrappers");
}

#[test]
fn the_ready_to_valid_check_finds_a_combinational_path() {
    use coforge_generator::rtl::ModuleBuilder;
    let bad = ModuleBuilder::build("bad_master", |b| {
        let ready = b.input("m_axis_x_tready", 1, "");
        let want = b.input("want", 1, "");
        let m_axis_x_tvalid = b.output("m_axis_x_tvalid", 1, "");
        b.drive(&m_axis_x_tvalid, ready.land(&want));
    });
    let paths = ready_to_valid_paths(&bad, &BTreeMap::new());
    assert_eq!(
        paths,
        vec![("m_axis_x_tready".to_string(), "m_axis_x_tvalid".to_string())]
    );
}

#[test]
fn yosys_synth_xilinx_accepts_the_stce_wrapper() {
    let engine = Engine::stce(2, 2, 2, 4, "");
    let top = wrapper_name(&engine.cfg().top);
    let info = engine
        .rendered
        .tops
        .iter()
        .find(|t| t.name == top)
        .expect("wrapper top");
    let files: Vec<(String, String)> = engine
        .rendered
        .verilog
        .iter()
        .filter(|(f, _)| info.files.contains(f))
        .cloned()
        .collect();
    let cells = synth_xilinx_cells(&files, &top, "2x2 2:4 STCE wrapper");
    assert!(!cells.is_empty());
}

#[test]
fn icarus_replays_a_stalled_wrapper_run_with_the_same_outputs_every_cycle() {
    // Icarus runs no closed loop, so the Verilator run's inputs (bus models, stalls, reset and
    // the AXI4-Lite reads) are recorded cycle by cycle and replayed; every output bit Icarus
    // knows must match in every cycle.
    use coforge_driver::stce::{GemmJob, WeightStream};
    use coforge_sim::{Icarus, Recorder, Simulator};
    let engine = Engine::stce(2, 2, 2, 4, "");
    let top = wrapper_name(&engine.cfg().top);
    let spec = design_spec_of(&engine.rendered, &top, ports::CLOCK);
    let mut model = wrapper_model(&engine);
    let mut recorder = Recorder::new(&spec, model.pins()).unwrap();
    let a = random_i8(3, 8, 5).mapv(|x| x as u8 as u32);
    let values = random_i8(4, 3, 6).mapv(|x| x as u8 as u32);
    let indices = ndarray::Array2::from_shape_fn((4, 3), |(i, c)| ((i % 2) * 2 + c % 2) as u8);
    let job = GemmJob {
        a,
        weights: WeightStream::Sparse { values, indices },
    };
    let stalls = Stalls { rate: 0.3, seed: 3 };
    let run = axi::run_watched(&mut model, engine.cfg(), &job, stalls, Some(&mut recorder))
        .expect("the wrapper runs in Verilator");
    assert_eq!(run.beats_out, 8, "4 tiles of 2 rows");
    let dir = tempfile::tempdir().unwrap();
    let trace = Icarus::new(&spec, &dir.path().join(&top))
        .and_then(|mut sim| sim.run(recorder.stimulus()))
        .unwrap_or_else(|e| panic!("Icarus run failed: {e}"));
    assert_eq!(
        recorder.first_difference(&trace),
        None,
        "Icarus and Verilator differ"
    );
    // Not a vacuous match: Icarus itself offered result rows, with known data.
    let known = |c: usize, p: &str| {
        trace
            .unknown_words(c, p)
            .is_some_and(|u| u.iter().all(|&w| w == 0))
    };
    let offered = (0..trace.len())
        .filter(|&c| {
            trace.get(c, "m_axis_out_tvalid") == 1
                && known(c, "m_axis_out_tvalid")
                && known(c, "m_axis_out_tdata")
        })
        .count();
    assert!(
        offered >= 8,
        "Icarus offered rows in {offered} of {} cycles",
        trace.len()
    );
}
