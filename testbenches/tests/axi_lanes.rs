//! The AXI wrappers of the lane engines (SORE, WUVE): a job through a wrapper under random
//! stalls at 0%, 30% and 90% gives the bare engine's bits, with more cycles as the stalls grow;
//! partial beats come back with their null lanes; the wrapper's own checks and the stream
//! protocol checker fail a broken run.

use coforge_driver::axi::{self, LaneBeat, Stalls};
use coforge_driver::design::design_spec_of;
use coforge_generator::artifacts::{render, sore_params, Rendered};
use coforge_generator::config::Config;
use coforge_generator::engines::axi::{ports, sore_engine, wrapper_name};
use coforge_generator::engines::wuve::WuveParams;
use coforge_sim::axi::{AxisChecker, ResetPin};
use coforge_sim::{Agent, BuildOptions, InputPort, Pins, VerilatedModel, Verilator};
use half::f16;
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A small fp16 training config: a 2:4 SORE and a WUVE, 3 lanes each (so jobs end with
/// partial beats).
fn training() -> (Config, Rendered) {
    let cfg = Config::from_toml(
        "[stce]\nrows = 2\ncols = 2\ndtype = \"fp16\"\nn = 2\nm = 4\n\
         [train]\nsore_lanes = 3\nwuve_lanes = 3\n",
        "lane wrappers",
    )
    .unwrap();
    let r = render(&cfg).unwrap();
    (cfg, r)
}

/// The Verilator model of a top: a wrapper (clocked by `aclk`) or a bare engine (`clk`).
fn model(r: &Rendered, top: &str) -> VerilatedModel {
    let clock = if top.ends_with("_axi") {
        ports::CLOCK
    } else {
        "clk"
    };
    let spec = design_spec_of(r, top, clock);
    Verilator::build(&spec, &BuildOptions::default())
        .unwrap_or_else(|e| panic!("Verilator build of {top} failed: {e}"))
        .instantiate()
        .unwrap_or_else(|e| panic!("cannot load {top}: {e}"))
}

fn assert_cycles_grow(cycles: &[u64], what: &str) {
    assert!(
        cycles[0] < cycles[1] && cycles[1] < cycles[2],
        "{what}: cycles at 0/30/90% stalls {cycles:?}"
    );
}

#[test]
fn sore_wrapper_gives_the_units_bits_under_random_stalls() {
    let (cfg, r) = training();
    let p = sore_params(&cfg).unwrap();
    let top = cfg.train.as_ref().unwrap().sore_top.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // 5 x 16 along axis 1: 20 groups of 4 on 3 lanes, so the last round has a null lane.
    let w = Array2::from_shape_fn((5, 16), |_| {
        u32::from(f16::from_f32(rng.random_range(-4.0f32..4.0)).to_bits())
    });
    let mut bare_sim = model(&r, &top);
    let spec = design_spec_of(&r, &top, "clk");
    let bare = coforge_driver::sore::prune(&mut bare_sim, &p, &spec, w.view(), Axis(1))
        .expect("bare SORE runs");
    let wrapper = wrapper_name(&top);
    let mut cycles = Vec::new();
    for rate in [0.0, 0.3, 0.9] {
        let mut m = model(&r, &wrapper);
        let (got, run) = axi::prune(
            &mut m,
            &p,
            &top,
            w.view(),
            Axis(1),
            Stalls { rate, seed: 5 },
        )
        .unwrap_or_else(|e| panic!("stall rate {rate}: {e}"));
        assert_eq!(got.values, bare.values, "stall rate {rate}: values");
        assert_eq!(got.indices, bare.indices, "stall rate {rate}: indices");
        assert_eq!(got.mask, bare.mask, "stall rate {rate}: mask");
        let rounds = 7;
        assert_eq!(run.counters.groups, rounds * 4, "BEATS_IN");
        assert_eq!(run.counters.rows, rounds, "BEATS_OUT");
        assert_eq!(run.counters.status, 0b1000, "STATUS: idle, done, no error");
        assert_eq!(run.counters.info, 3 | 2 << 8 | 4 << 16 | 16 << 24, "INFO");
        let lasts: Vec<usize> = (0..run.lasts.len()).filter(|&i| run.lasts[i]).collect();
        assert_eq!(
            lasts,
            vec![rounds as usize - 1],
            "TLAST only on the last result"
        );
        let last = &run.results[rounds as usize - 1];
        assert!(last[0].is_some() && last[1].is_some() && last[2].is_none());
        if rate == 0.0 {
            assert_eq!(got.stats.cycles, bare.stats.cycles + 3);
            assert_eq!(got.stats.cycles, got.stats.estimated_cycles);
        }
        cycles.push(got.stats.cycles);
    }
    assert_cycles_grow(&cycles, "SORE wrapper");
}

#[test]
fn wuve_wrapper_gives_the_engines_bits_under_random_stalls() {
    let (cfg, r) = training();
    let train = cfg.train.as_ref().unwrap();
    let p = WuveParams::of(train);
    let top = train.wuve_top.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let (rows, cols) = (5, 7);
    let w32 = Array2::from_shape_fn((rows, cols), |_| rng.random_range(-2.0f32..2.0));
    let dw = Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0f32..1.0));
    let keep = Array2::from_shape_fn((rows, cols), |_| rng.random_range(0..2u8));
    let (lr, lambda) = (0.0625f32, 0.375f32);
    let mut bare_sim = model(&r, &top);
    let spec = design_spec_of(&r, &top, "clk");
    let bare = coforge_driver::wuve::update(
        &mut bare_sim,
        &p,
        &spec,
        w32.view(),
        dw.view(),
        keep.view(),
        lr,
        lambda,
    )
    .expect("bare WUVE runs");
    let wrapper = wrapper_name(&top);
    let mut cycles = Vec::new();
    for rate in [0.0, 0.3, 0.9] {
        let mut m = model(&r, &wrapper);
        let (got, run) = axi::update(
            &mut m,
            &p,
            &top,
            (w32.view(), dw.view(), keep.view()),
            lr,
            lambda,
            Stalls { rate, seed: 9 },
        )
        .unwrap_or_else(|e| panic!("stall rate {rate}: {e}"));
        let bits = |a: &Array2<f32>| a.mapv(f32::to_bits);
        assert_eq!(bits(&got.w32), bits(&bare.w32), "stall rate {rate}: w32");
        assert_eq!(
            got.w16.mapv(f16::to_bits),
            bare.w16.mapv(f16::to_bits),
            "stall rate {rate}: w16"
        );
        // 35 elements on 3 lanes: 12 beats, the last with one null lane.
        assert_eq!((run.counters.groups, run.counters.rows), (12, 12));
        assert_eq!(run.counters.status, 0b1000, "STATUS: idle, done, no error");
        assert!(run.results[11][2].is_none() && run.results[11][1].is_some());
        if rate == 0.0 {
            assert_eq!(got.stats.cycles, bare.stats.cycles + 3);
            assert_eq!(got.stats.cycles, got.stats.estimated_cycles);
        }
        cycles.push(got.stats.cycles);
    }
    assert_cycles_grow(&cycles, "WUVE wrapper");
    // Not vacuous: the update changed weights (lr and lambda reached the engine).
    assert_ne!(bare.w32.mapv(f32::to_bits), w32.mapv(f32::to_bits));
}

#[test]
fn sore_wrapper_flags_a_tlast_inside_a_group() {
    let (cfg, r) = training();
    let p = sore_params(&cfg).unwrap();
    let top = cfg.train.as_ref().unwrap().sore_top.clone();
    let e = sore_engine(&p, &top);
    let mut m = model(&r, &wrapper_name(&top));
    // Six beats: a whole group of 4, then TLAST on the second beat of the next group.
    let beats: Vec<LaneBeat> = (0..6)
        .map(|i| LaneBeat {
            lanes: vec![Some(vec![vec![i]]); 3],
            last: i == 5,
        })
        .collect();
    let err = axi::run_lanes(&mut m, &e, &beats, &[], Stalls::NONE, 10)
        .expect_err("a TLAST inside a group must fail the run");
    let msg = err.to_string();
    assert!(msg.contains("TLAST inside a group"), "{msg}");
}

/// A master that changes TKEEP under a waiting TVALID (TDATA and TLAST held).
struct KeepFlipper {
    tvalid: InputPort,
    tkeep: InputPort,
    cycles: u64,
}

impl Agent for KeepFlipper {
    fn drive(&mut self, cycle: u64, pins: &mut Pins) {
        pins.set(self.tvalid, 1);
        pins.set(self.tkeep, cycle & 1);
    }
    fn observe(&mut self, _cycle: u64, _pins: &Pins) {
        self.cycles += 1;
    }
    fn done(&self) -> bool {
        self.cycles >= 300
    }
}

#[test]
fn protocol_checker_fails_a_source_that_changes_tkeep_before_the_handshake() {
    let (cfg, r) = training();
    let top = wrapper_name(&cfg.train.as_ref().unwrap().wuve_top);
    let mut m = model(&r, &top);
    let pins = m.pins();
    let reset = ResetPin {
        port: pins.input(ports::RESET_N).unwrap(),
        active_low: true,
    };
    let mut checker = AxisChecker::new(pins, ports::IN)
        .unwrap()
        .with_reset(reset, 1);
    let mut broken = KeepFlipper {
        tvalid: pins.input("s_axis_in_tvalid").unwrap(),
        tkeep: pins.input("s_axis_in_tkeep").unwrap(),
        cycles: 0,
    };
    m.set(reset.port, 0);
    for _ in 0..axi::RESET_CYCLES {
        m.cycle_with(&mut [&mut checker]).unwrap();
    }
    m.set(reset.port, 1);
    // Nobody takes the results, so the wrapper runs out of credits and stops taking beats.
    m.run_until_done(&mut [&mut broken, &mut checker], 1000)
        .unwrap();
    let msg = checker
        .check()
        .expect_err("the checker must catch the broken source")
        .to_string();
    assert!(
        msg.contains("TKEEP changed while TVALID was high and TREADY low"),
        "{msg}"
    );
}

#[test]
fn icarus_replays_a_stalled_sore_wrapper_run_with_the_same_outputs_every_cycle() {
    // As for the STCE wrapper (tests/axi.rs): the Verilator run's inputs are recorded cycle by
    // cycle and replayed in Icarus; every output bit Icarus knows must match in every cycle.
    use coforge_sim::{Icarus, Recorder, Simulator};
    let (cfg, r) = training();
    let p = sore_params(&cfg).unwrap();
    let top = cfg.train.as_ref().unwrap().sore_top.clone();
    let wrapper = wrapper_name(&top);
    let spec = design_spec_of(&r, &wrapper, ports::CLOCK);
    let mut m = model(&r, &wrapper);
    let mut recorder = Recorder::new(&spec, m.pins()).unwrap();
    // Two rounds of 4 values on 3 lanes, the second with a null lane.
    let beats: Vec<LaneBeat> = (0..8u32)
        .map(|i| LaneBeat {
            lanes: (0..3u32)
                .map(|l| (i < 4 || l < 2).then(|| vec![vec![(i * 0x1357 + l * 0x2468) & 0x7bff]]))
                .collect(),
            last: i == 7,
        })
        .collect();
    let e = sore_engine(&p, &top);
    let stalls = Stalls { rate: 0.3, seed: 4 };
    let run = axi::run_lanes_watched(&mut m, &e, &beats, &[], (stalls, 9), Some(&mut recorder))
        .expect("the wrapper runs in Verilator");
    assert_eq!(run.beats_out, 2);
    let dir = tempfile::tempdir().unwrap();
    let trace = Icarus::new(&spec, &dir.path().join(&wrapper))
        .and_then(|mut sim| sim.run(recorder.stimulus()))
        .unwrap_or_else(|e| panic!("Icarus run failed: {e}"));
    assert_eq!(
        recorder.first_difference(&trace),
        None,
        "Icarus and Verilator differ"
    );
    // Not a vacuous match: Icarus itself offered selections, with known data and keep, and the
    // last one with TLAST.
    let known = |c: usize, p: &str| {
        trace
            .unknown_words(c, p)
            .is_some_and(|u| u.iter().all(|&w| w == 0))
    };
    let offered: Vec<usize> = (0..trace.len())
        .filter(|&c| {
            trace.get(c, "m_axis_out_tvalid") == 1
                && known(c, "m_axis_out_tvalid")
                && known(c, "m_axis_out_tdata")
                && known(c, "m_axis_out_tkeep")
        })
        .collect();
    assert!(
        offered.len() >= 2,
        "Icarus offered selections in {offered:?}"
    );
    assert!(
        offered
            .iter()
            .any(|&c| trace.get(c, "m_axis_out_tlast") == 1 && known(c, "m_axis_out_tlast")),
        "Icarus never offered the last selection"
    );
}
