//! The deformable engines' AXI wrappers (`engines::axi::deform`): a mode-A layer (CoDeNet with
//! the 1x1 front, stride 2) and a DCNv2 layer (depthwise, and im2col for the STCE) through the
//! wrapper under random stalls give the bare engine's bits, with more cycles at higher stall
//! rates; the protocol checker catches a broken master on a deformable wrapper's port.

use coforge_driver::axi::Stalls;
use coforge_driver::axi_deform::{dcnv2_engine, deform_layer, WrapperStats};
use coforge_driver::dcnv2::{run_engine, EngineRun, LayerTensors, Pressure as Dcnv2Pressure};
use coforge_driver::deform::{run_layer, seeded_layer, Pressure};
use coforge_driver::design::design_spec_of;
use coforge_generator::config::DeformConfig;
use coforge_generator::engines::axi::{deform_regs, ports, wrapper_name};
use coforge_generator::engines::deform::dcnv2::Dcnv2Params;
use coforge_sim::axi::{AxisChecker, ResetPin};
use coforge_sim::{BuildOptions, VerilatedModel, Verilator};
use coforge_testbenches::{BrokenSource, Engine};

fn wrapper_model(e: &Engine, top: &str) -> VerilatedModel {
    let spec = design_spec_of(&e.rendered, &wrapper_name(top), ports::CLOCK);
    Verilator::build(&spec, &BuildOptions::default())
        .unwrap_or_else(|e| panic!("Verilator build failed: {e}"))
        .instantiate()
        .unwrap_or_else(|e| panic!("cannot load the model: {e}"))
}

fn bare_model(e: &Engine, top: &str) -> VerilatedModel {
    let spec = design_spec_of(&e.rendered, top, "clk");
    Verilator::build(&spec, &BuildOptions::default())
        .unwrap_or_else(|e| panic!("Verilator build failed: {e}"))
        .instantiate()
        .unwrap_or_else(|e| panic!("cannot load the model: {e}"))
}

const RATES: [f64; 3] = [0.0, 0.3, 0.9];

/// The counters every run must show, and the cycles growing with the stall rate.
fn check_stats(stats: &[WrapperStats], pixels: u64, results: u64, info: u32, what: &str) {
    for (s, rate) in stats.iter().zip(RATES) {
        let c = &s.counters;
        assert_eq!(
            c.status,
            deform_regs::STATUS_DONE,
            "{what} at {rate}: STATUS done, idle, no error"
        );
        assert_eq!(u64::from(c.groups), pixels, "{what} at {rate}: BEATS_IN");
        assert_eq!(u64::from(c.rows), results, "{what} at {rate}: BEATS_OUT");
        assert_eq!((s.beats_in, s.beats_out), (pixels, results), "{what}");
        assert_eq!(c.info, info, "{what}: INFO");
        assert!(
            u64::from(c.cycles_busy) >= s.cycles,
            "{what} at {rate}: CYCLES {} covers the measured span {}",
            c.cycles_busy,
            s.cycles
        );
    }
    let cycles: Vec<u64> = stats.iter().map(|s| s.cycles).collect();
    assert!(
        cycles[0] < cycles[1] && cycles[1] < cycles[2],
        "{what}: cycles {cycles:?} at stall rates {RATES:?}"
    );
    assert_eq!(
        stats[0].counters.out_stalls, 0,
        "{what}: no stalls at rate 0"
    );
    assert!(stats[2].counters.out_stalls > 0, "{what}: stalls at 0.9");
}

fn mode_a(toml: &str, shape: (usize, usize, usize, usize), info: u32, what: &str) {
    let e = Engine::from_toml(toml);
    let cfg: DeformConfig = e.config.deform.clone().unwrap();
    let (x, block) = seeded_layer(&cfg, shape, 11);
    let bare = run_layer(
        &mut bare_model(&e, &cfg.top),
        &cfg,
        x.view(),
        &block,
        Pressure::default(),
    )
    .unwrap_or_else(|err| panic!("{what}: bare: {err}"));
    assert!(bare.bit_exact(), "{what}: bare run");
    let mut model = wrapper_model(&e, &cfg.top);
    let mut stats = Vec::new();
    for rate in RATES {
        // A fresh reset for every run: the driver starts from aresetn.
        let (o, s) = deform_layer(&mut model, &cfg, x.view(), &block, Stalls { rate, seed: 5 })
            .unwrap_or_else(|err| panic!("{what} at stall rate {rate}: {err}"));
        assert_eq!(
            o.rtl, bare.rtl,
            "{what} at {rate}: not the bare engine's bits"
        );
        assert!(o.bit_exact(), "{what} at {rate}");
        if rate == 0.0 {
            println!(
                "{what}: bare {} cycles, wrapped {} (estimated {})",
                bare.cycles, s.cycles, s.estimated_cycles
            );
        }
        stats.push(s);
    }
    let (h, w, cin, c) = shape;
    let lanes = cfg.lanes as usize;
    let gin = if cfg.has_pointwise() {
        cin.div_ceil(lanes)
    } else {
        1
    };
    let groups = c.div_ceil(lanes);
    let s = cfg.stride as usize;
    check_stats(
        &stats,
        (groups * h * w * gin) as u64,
        (groups * h.div_ceil(s) * w.div_ceil(s)) as u64,
        info,
        what,
    );
    println!(
        "{what}: cycles at {RATES:?}: {:?}",
        stats.iter().map(|s| s.cycles).collect::<Vec<_>>()
    );
}

/// CoDeNet with the 1x1 front at stride 2: every mode-A stream (parameters with the 1x1
/// targets, pixels of several input groups, dilations) and every layer register. One small
/// engine keeps the Verilator builds of this test few.
const CODENET: &str = "[deform]\nmode = \"codenet\"\nlanes = 2\nmax_width = 8\n\
                       max_dilation = 2\nmax_channels = 6\npointwise = true\nstride = 2\n";

#[test]
fn codenet_layer_with_the_1x1_front_through_the_wrapper_gives_the_bare_bits_under_stalls() {
    mode_a(
        CODENET,
        (5, 6, 3, 4),
        2 | 3 << 8 | 2 << 16 | 5 << 24,
        "codenet with 1x1, stride 2",
    );
}

fn dcnv2(toml: &str, shape: (usize, usize, usize, usize), cout: usize, info: u32, what: &str) {
    let e = Engine::from_toml(toml);
    let cfg: DeformConfig = e.config.deform.clone().unwrap();
    let p = Dcnv2Params::of(&cfg);
    let t = LayerTensors::random(&p, shape, cout, 1, true, 3).unwrap();
    let layer = t.layer();
    let bare: EngineRun = run_engine(
        &mut bare_model(&e, &cfg.top),
        &p,
        &layer,
        Dcnv2Pressure::default(),
    )
    .unwrap_or_else(|err| panic!("{what}: bare: {err}"));
    assert!(bare.fault.is_none());
    let mut model = wrapper_model(&e, &cfg.top);
    let mut stats = Vec::new();
    for rate in RATES {
        let (run, s) = dcnv2_engine(&mut model, &cfg, &layer, Stalls { rate, seed: 9 })
            .unwrap_or_else(|err| panic!("{what} at stall rate {rate}: {err}"));
        assert_eq!(run.sums, bare.sums, "{what} at {rate}: sums");
        assert_eq!(run.columns, bare.columns, "{what} at {rate}: columns");
        if rate == 0.0 {
            println!(
                "{what}: bare {} cycles, wrapped {} (estimated {})",
                bare.cycles, s.cycles, s.estimated_cycles
            );
        }
        stats.push(s);
    }
    let (b, cin, h, w) = shape;
    let planes = (b * cin.div_ceil(p.lanes as usize)) as u64;
    let per_pixel = if p.depthwise { 1 } else { p.groups() as u64 };
    let (hout, wout) = (bare.result_cycle.dim().2, bare.result_cycle.dim().3);
    check_stats(
        &stats,
        planes * (h * w) as u64,
        planes * (hout * wout) as u64 * per_pixel,
        info,
        what,
    );
    println!(
        "{what}: cycles at {RATES:?}: {:?}",
        stats.iter().map(|s| s.cycles).collect::<Vec<_>>()
    );
}

const DCNV2: &str = "[deform]\nmode = \"dcnv2\"\nlanes = 2\nmax_width = 6\nkernel = 3\n\
                     frac_bits = 3\nmask_bits = 4\nmax_offset = 1\ntaps_per_cycle = 3\n";

#[test]
fn dcnv2_depthwise_layer_through_the_wrapper_gives_the_bare_bits_under_stalls() {
    dcnv2(
        &format!("{DCNV2}depthwise = true\n"),
        (1, 3, 4, 5),
        3,
        2 | 3 << 8 | 1 << 16 | 2 << 24,
        "dcnv2 depthwise",
    );
}

#[test]
fn dcnv2_im2col_layer_through_the_wrapper_gives_the_bare_bits_under_stalls() {
    dcnv2(
        &format!("{DCNV2}depthwise = false\nzero_point = -128\n"),
        (1, 2, 4, 4),
        2,
        2 | 3 << 8 | 1 << 16 | 3 << 24,
        "dcnv2 im2col",
    );
}

#[test]
fn protocol_checker_fails_a_broken_source_on_a_deformable_wrapper() {
    // Before START the wrapper holds its input beats (TREADY falls once the skid buffer is
    // full), so a source that changes TDATA while waiting breaks the rule within cycles.
    let e = Engine::from_toml(&format!("{DCNV2}depthwise = true\n"));
    let top = e.config.deform.as_ref().unwrap().top.clone();
    let mut model = wrapper_model(&e, &top);
    let pins = model.pins();
    let reset = ResetPin {
        port: pins.input(ports::RESET_N).unwrap(),
        active_low: true,
    };
    let mut checker = AxisChecker::new(pins, ports::IN)
        .unwrap()
        .with_reset(reset, 1);
    let mut broken = BrokenSource::new(pins, ports::IN, 50);
    model.set(reset.port, 0);
    for _ in 0..16 {
        model.cycle_with(&mut [&mut checker]).unwrap();
    }
    model.set(reset.port, 1);
    checker
        .check()
        .expect("no violation while the source is quiet");
    model
        .run_until_done(&mut [&mut broken, &mut checker], 100)
        .unwrap();
    let msg = checker.check().unwrap_err().to_string();
    assert!(
        msg.contains("s_axis_in") && msg.contains("TDATA changed"),
        "{msg}"
    );
}

#[test]
fn a_dilation_beyond_the_engine_raises_the_wrappers_error_flag() {
    // The engine's sticky error reaches STATUS bit 2, and the driver refuses the results.
    let e = Engine::from_toml(CODENET);
    let cfg: DeformConfig = e.config.deform.clone().unwrap();
    let (x, mut block) = seeded_layer(&cfg, (5, 6, 3, 4), 11);
    block.depthwise.as_mut().unwrap().dilation[[1, 2]] = 3;
    let mut model = wrapper_model(&e, &cfg.top);
    let err = deform_layer(&mut model, &cfg, x.view(), &block, Stalls::NONE)
        .expect_err("max_dilation is 2")
        .to_string();
    assert!(
        err.contains("error flag") && err.contains("bit 2") && err.contains("dilation"),
        "{err}"
    );
}

#[test]
fn icarus_replays_a_stalled_codenet_wrapper_run_with_the_same_outputs_every_cycle() {
    // As for the STCE wrapper (tests/axi.rs): the Verilator run's inputs (bus models, stalls,
    // reset, AXI4-Lite) are recorded cycle by cycle and replayed in Icarus; every output bit
    // Icarus knows must match in every cycle.
    use coforge_sim::{Icarus, Recorder, Simulator};
    let e = Engine::from_toml(CODENET);
    let cfg: DeformConfig = e.config.deform.clone().unwrap();
    let top = wrapper_name(&cfg.top);
    let spec = design_spec_of(&e.rendered, &top, ports::CLOCK);
    let mut model = wrapper_model(&e, &cfg.top);
    let mut recorder = Recorder::new(&spec, model.pins()).unwrap();
    let (x, block) = seeded_layer(&cfg, (3, 4, 2, 2), 4);
    // Stride 2: 2 x 2 results per pass, one pass.
    let stalls = Stalls { rate: 0.3, seed: 3 };
    let (o, s) = coforge_driver::axi_deform::deform_layer_watched(
        &mut model,
        &cfg,
        (x.view(), &block),
        stalls,
        Some(&mut recorder),
    )
    .expect("the wrapper runs in Verilator");
    assert!(o.bit_exact());
    assert_eq!(s.beats_out, 4, "one pass of 2 x 2 results");
    let dir = tempfile::tempdir().unwrap();
    let trace = Icarus::new(&spec, &dir.path().join(&top))
        .and_then(|mut sim| sim.run(recorder.stimulus()))
        .unwrap_or_else(|e| panic!("Icarus run failed: {e}"));
    assert_eq!(
        recorder.first_difference(&trace),
        None,
        "Icarus and Verilator differ"
    );
    // Not a vacuous match: Icarus itself offered the results, with known data.
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
        offered >= 4,
        "Icarus offered results in {offered} of {} cycles",
        trace.len()
    );
}
