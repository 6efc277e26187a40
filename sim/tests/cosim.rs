//! Verilator and Icarus agree with each other and with Rust models.

mod common;

use coforge_sim::{Icarus, PortSpec, SimError, Simulator, Stimulus, Trace, Verilator};
use common::*;

fn run_both(spec: &coforge_sim::DesignSpec, stim: &Stimulus, name: &str) -> (Trace, Trace) {
    let lib = Verilator::build(spec, &opts()).unwrap();
    let mut v = lib.instantiate().unwrap();
    let tv = v.run(stim).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut ic = Icarus::new(spec, &dir.path().join(name)).unwrap();
    let ti = ic.run(stim).unwrap();
    assert_eq!(tv.len(), stim.captures());
    assert!(!ti.has_unknown(), "icarus saw X/Z outputs");
    if let Some(m) = tv.first_mismatch(&ti) {
        panic!("verilator vs icarus: {m}");
    }
    (tv, ti)
}

#[test]
fn counter_matches_icarus_and_model() {
    let spec = counter();
    let mut s = Stimulus::new(&spec);
    s.set("rst", 1);
    s.step(false);
    s.step(false);
    s.set("rst", 0);
    let mut rng = Rng(7);
    let mut expect = Vec::new();
    let mut count: u8 = 0;
    for i in 0..600 {
        let en = rng.next() & 3 > 0;
        let rst = i == 300;
        s.set("en", en as u64);
        s.set("rst", rst as u64);
        expect.push((count, en && count == 0xff));
        s.step(true);
        count = if rst { 0 } else { count.wrapping_add(en as u8) };
    }
    let (t, _) = run_both(&spec, &s, "counter");
    assert_eq!(t.cycles, 602);
    for (c, &(count, wrap)) in expect.iter().enumerate() {
        assert_eq!(t.get(c, "count"), count as u64, "capture {c}");
        assert_eq!(t.get(c, "wrap"), wrap as u64, "capture {c}");
    }
}

#[test]
fn wide_ports_round_trip() {
    let spec = wide_adder();
    let mut s = Stimulus::new(&spec);
    s.set("rst", 1);
    s.step(false);
    s.set("rst", 0);
    let mut rng = Rng(99);
    let mask100 = (1u128 << 100) - 1;
    let mut acc: u64 = 0;
    let mut expect = Vec::new();
    for i in 0..300 {
        let a = if i == 0 {
            mask100
        } else {
            (((rng.next() as u128) << 64) | rng.next() as u128) & mask100
        };
        let b = if i == 1 {
            (1u64 << 33) - 1
        } else {
            rng.next() & ((1 << 33) - 1)
        };
        let words = [
            a as u32,
            (a >> 32) as u32,
            (a >> 64) as u32,
            (a >> 96) as u32,
        ];
        s.set_words("a", &words);
        s.set("b", b);
        expect.push((a, (a + b as u128) & mask100, acc));
        s.step(true);
        acc = (acc + b) & ((1 << 33) - 1);
    }
    let (t, _) = run_both(&spec, &s, "wide");
    let sum_id = t.port_id("sum").unwrap();
    for (c, &(a, sum, acc)) in expect.iter().enumerate() {
        let w = t.get_id(c, sum_id);
        assert_eq!(w.len(), 4);
        let got = w.iter().rev().fold(0u128, |x, &y| (x << 32) | y as u128);
        assert_eq!(got, sum, "sum at capture {c}");
        assert_eq!(t.get(c, "acc"), acc, "acc at capture {c}");
        let echo = t
            .words(c, "echo")
            .iter()
            .rev()
            .fold(0u128, |x, &y| (x << 32) | y as u128);
        assert_eq!(echo, a | ((a & 0xfff_ffff) << 100), "echo at capture {c}");
    }
    // Values that do not fit are rejected, not truncated.
    assert!(matches!(
        s.try_set("b", 1 << 33),
        Err(SimError::BadValue { .. })
    ));
    assert!(matches!(
        s.try_set_words("a", &[0, 0, 0, 0x10]),
        Err(SimError::BadValue { .. })
    ));
    assert!(matches!(
        s.try_set("nope", 0),
        Err(SimError::UnknownPort { .. })
    ));
    assert!(matches!(
        t.try_get(0, "sum"),
        Err(SimError::BadValue { .. })
    ));
}

#[test]
fn pipeline_latency_and_chunked_runs() {
    let spec = pipeline();
    let f = |x: u16| x.wrapping_mul(3).wrapping_add(1);
    let mut rng = Rng(3);
    let inputs: Vec<(bool, u16)> = (0..400)
        .map(|_| (!rng.next().is_multiple_of(3), rng.next() as u16))
        .collect();
    let mut s = Stimulus::new(&spec);
    s.set("rst", 1);
    s.step(false);
    s.set("rst", 0);
    for &(v, d) in &inputs {
        s.set("in_valid", v as u64);
        s.set("in_data", d as u64);
        s.step(true);
    }
    let (t, _) = run_both(&spec, &s, "pipe");
    for (c, &(v, d)) in inputs.iter().enumerate().skip(3) {
        let (pv, pd) = inputs[c - 3];
        let _ = (v, d);
        assert_eq!(t.get(c, "out_valid"), pv as u64, "valid at {c}");
        assert_eq!(t.get(c, "out_data"), f(f(f(pd))) as u64, "data at {c}");
    }

    // State persists between runs: the same stimulus in chunks gives the
    // same outputs as one run.
    let lib = Verilator::build(&spec, &opts()).unwrap();
    let mut m = lib.instantiate().unwrap();
    let mut chunk = Stimulus::new(&spec);
    chunk.set("rst", 1);
    chunk.step(false);
    chunk.set("rst", 0);
    let mut all = Vec::new();
    for part in inputs.chunks(64) {
        for &(v, d) in part {
            chunk.set("in_valid", v as u64);
            chunk.set("in_data", d as u64);
            chunk.step(true);
        }
        let tr = m.run(&chunk).unwrap();
        all.extend((0..tr.len()).map(|c| tr.frame(c).to_vec()));
        chunk.clear_cycles();
    }
    assert_eq!(m.cycle(), 401);
    let whole: Vec<Vec<u32>> = (0..t.len()).map(|c| t.frame(c).to_vec()).collect();
    assert_eq!(all, whole);
}

#[test]
fn models_coexist_and_move_between_threads() {
    let lib_c = Verilator::build(&counter(), &opts()).unwrap();
    let lib_p = Verilator::build(&pipeline(), &opts()).unwrap();
    let mut a = lib_c.instantiate().unwrap();
    let mut b = lib_c.instantiate().unwrap();
    let mut p = lib_p.instantiate().unwrap();
    let spec = counter();
    let mut s = Stimulus::new(&spec);
    s.set("rst", 1);
    s.step(false);
    s.set("rst", 0);
    s.set("en", 1);
    s.idle(10);
    s.step(true);
    assert_eq!(a.run(&s).unwrap().get(0, "count"), 10);
    // b is independent of a; a continues from its state.
    assert_eq!(b.run(&s).unwrap().get(0, "count"), 10);
    s.clear_cycles();
    s.idle(4);
    s.step(true);
    assert_eq!(a.run(&s).unwrap().get(0, "count"), 15);
    // A different design loaded in the same process works too.
    let mut ps = Stimulus::new(&pipeline());
    ps.set("in_valid", 1);
    ps.set("in_data", 5);
    ps.idle(3);
    ps.step(true);
    // Three stages of 3x+1: 5 -> 16 -> 49 -> 148.
    assert_eq!(p.run(&ps).unwrap().get(0, "out_data"), 148);
    // Models are Send: run one on another thread.
    let h = std::thread::spawn(move || {
        let t = b.run(&s).unwrap();
        t.get(0, "count")
    });
    assert_eq!(h.join().unwrap(), 15);
    // A stimulus for another design is refused.
    assert!(matches!(a.run(&ps), Err(SimError::PortMismatch { .. })));
}

#[test]
fn wrong_spec_is_a_port_mismatch() {
    let mut spec = counter();
    spec.ports[2] = PortSpec::output("count", 9);
    match Verilator::build(&spec, &opts()) {
        Err(SimError::PortMismatch { detail }) => assert!(detail.contains("count"), "{detail}"),
        other => panic!("expected PortMismatch, got {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    match Icarus::new(&spec, dir.path()) {
        Err(SimError::PortMismatch { detail }) => assert!(detail.contains("count"), "{detail}"),
        other => panic!("expected PortMismatch, got {other:?}"),
    }
    let mut spec = counter();
    spec.ports.remove(3);
    let e = Verilator::build(&spec, &opts()).unwrap_err();
    assert!(e.to_string().contains("wrap"), "{e}");
}

#[test]
fn stop_in_design_is_an_error_not_an_abort() {
    let spec = coforge_sim::DesignSpec {
        top: "stopper".into(),
        sources: vec![(
            "stopper.v".into(),
            "module stopper(input wire clk, input wire go, output reg [3:0] n);\n\
             initial n = 0;\n\
             always @(posedge clk) begin n <= n + 1; if (go) $stop; end\nendmodule\n"
                .into(),
        )],
        ports: vec![PortSpec::input("go", 1), PortSpec::output("n", 4)],
        clock: "clk".into(),
    };
    let lib = Verilator::build(&spec, &opts()).unwrap();
    let mut m = lib.instantiate().unwrap();
    let mut s = Stimulus::new(&spec);
    s.idle(3);
    s.set("go", 1);
    s.step(true);
    let e = m.run(&s).unwrap_err();
    assert!(matches!(e, SimError::Runtime { .. }), "{e}");
    assert!(
        e.to_string().contains("$stop") || e.to_string().contains("stop"),
        "{e}"
    );
    // The poisoned model refuses to continue, with the reason.
    assert!(m.run(&s).is_err());
}
