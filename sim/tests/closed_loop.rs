//! Closed-loop co-simulation: per-cycle steps, agents and valid/ready streams.

mod common;

use coforge_sim::{
    Agent, BuildOptions, DesignSpec, OutputPort, Pins, PortSpec, SimError, Simulator, Stimulus,
    StreamSink, StreamSource, VerilatedModel, Verilator, WaveOptions,
};
use common::*;

/// Checks every cycle that the design's edge counter equals the cycle number
/// the Rust side passes to agents, minus the reset cycles.
struct EdgeMonitor {
    edges: OutputPort,
    offset: u64,
    checked: u64,
}

impl Agent for EdgeMonitor {
    fn drive(&mut self, _cycle: u64, _pins: &mut Pins) {}
    fn observe(&mut self, cycle: u64, pins: &Pins) {
        assert_eq!(pins.get(self.edges), cycle - self.offset, "cycle {cycle}");
        self.checked += 1;
    }
}

/// Resets the model in two steps; returns the first cycle after reset.
fn reset(m: &mut VerilatedModel) -> u64 {
    let rst = m.input("rst").unwrap();
    m.set(rst, 1);
    m.step().unwrap();
    m.step().unwrap();
    m.set(rst, 0);
    m.cycle()
}

struct Run {
    received: Vec<u64>,
    cycles: u64,
    sent_at: Vec<u64>,
    got_at: Vec<u64>,
}

fn stream(m: &mut VerilatedModel, data: &[u64], gaps: f64, stalls: f64, seed: u64) -> Run {
    let start = reset(m);
    let mut src = StreamSource::new(m.pins(), "in_valid", "in_ready", "in_data")
        .unwrap()
        .with_gaps(gaps, seed)
        .unwrap();
    for &d in data {
        src.push(d).unwrap();
    }
    let mut sink = StreamSink::new(m.pins(), "out_valid", "out_ready", "out_data")
        .unwrap()
        .with_stalls(stalls, seed ^ 0x55)
        .unwrap()
        .expect(data.len());
    let mut mon = EdgeMonitor {
        edges: m.output("edges").unwrap(),
        offset: start,
        checked: 0,
    };
    let cycles = m
        .run_until_done(&mut [&mut src, &mut sink, &mut mon], 100_000)
        .unwrap();
    assert_eq!(mon.checked, cycles);
    assert_eq!(m.cycle(), start + cycles, "model cycle counter");
    Run {
        received: sink.values(),
        cycles,
        sent_at: src.accepted_cycles().to_vec(),
        got_at: sink.cycles().to_vec(),
    }
}

#[test]
fn fifo_stream_same_data_at_any_stall_rate() {
    let lib = Verilator::build(&fifo(), &opts()).unwrap();
    let mut rng = Rng(11);
    let data: Vec<u64> = (0..300).map(|_| rng.next() & 0xffff).collect();
    let mut cycles = Vec::new();
    for (gaps, stalls) in [(0.0, 0.0), (0.0, 0.3), (0.2, 0.5), (0.1, 0.8)] {
        let mut m = lib.instantiate().unwrap();
        let r = stream(&mut m, &data, gaps, stalls, 7);
        assert_eq!(r.received, data, "gaps {gaps} stalls {stalls}");
        // Every beat leaves after it entered, in order, and at most 4 are inside.
        for (i, (&s, &g)) in r.sent_at.iter().zip(&r.got_at).enumerate() {
            assert!(g > s, "beat {i} left at {g} before entering at {s}");
            if i >= 4 {
                assert!(r.got_at[i - 4] < s, "more than 4 beats inside at {s}");
            }
        }
        eprintln!("gaps {gaps} stalls {stalls}: {} cycles", r.cycles);
        cycles.push(r.cycles);
    }
    // Full throughput without stalls: one beat per cycle plus the FIFO latency.
    assert_eq!(cycles[0], data.len() as u64 + 1);
    assert!(cycles.windows(2).all(|w| w[0] < w[1]), "{cycles:?}");
}

#[test]
fn steps_and_runs_share_one_cycle_counter_and_waves() {
    let spec = fifo();
    let lib = Verilator::build(
        &spec,
        &BuildOptions {
            waves: true,
            ..opts()
        },
    )
    .unwrap();
    let mut m = lib.instantiate().unwrap();
    let mut s = Stimulus::new(&spec);
    s.set("rst", 1);
    s.step(false);
    s.set("rst", 0);
    s.idle(4);
    s.step(true);
    let t = m.run(&s).unwrap();
    assert_eq!(t.get(0, "edges"), 4);
    assert_eq!(m.cycle(), 6);
    let dir = tempfile::tempdir().unwrap();
    let vcd = dir.path().join("steps.vcd");
    m.set_waves(Some(WaveOptions {
        path: vcd.clone(),
        first_cycle: 8,
        last_cycle: 9,
    }))
    .unwrap();
    let edges = m.output("edges").unwrap();
    for c in 6..12 {
        assert_eq!(m.step().unwrap(), c);
        assert_eq!(m.get(edges), c - 1, "outputs are sampled before the edge");
    }
    // And back to a stimulus: it continues from cycle 12.
    let t = m.run(&s).unwrap();
    assert_eq!(t.first_cycle, 12);
    assert_eq!(t.get(0, "edges"), 4, "the stimulus reset the design again");
    assert_eq!(vcd_times(&vcd), [80, 85, 90, 95], "VCD window in step mode");
}

#[test]
fn closed_loop_errors_name_the_problem() {
    let lib = Verilator::build(&fifo(), &opts()).unwrap();
    let mut m = lib.instantiate().unwrap();
    assert!(matches!(m.input("nope"), Err(SimError::UnknownPort { .. })));
    // An output is not an input.
    assert!(matches!(
        m.input("out_data"),
        Err(SimError::UnknownPort { .. })
    ));
    let din = m.input("in_data").unwrap();
    assert!(matches!(
        m.pins_mut().try_set(din, 1 << 16),
        Err(SimError::BadValue { .. })
    ));
    assert!(
        StreamSink::new(m.pins(), "out_valid", "out_ready", "out_data")
            .unwrap()
            .with_stalls(1.0, 0)
            .is_err()
    );
    // A sink that waits for a beat nobody sends stops at the limit, not a hang.
    reset(&mut m);
    let mut sink = StreamSink::new(m.pins(), "out_valid", "out_ready", "out_data")
        .unwrap()
        .expect(1);
    let e = m.run_until_done(&mut [&mut sink], 50).unwrap_err();
    assert!(e.to_string().contains("not done after 50 cycles"), "{e}");
    assert_eq!(m.cycle(), 52);
    // A handle of another design is refused.
    let other = Verilator::build(&counter(), &opts())
        .unwrap()
        .instantiate()
        .unwrap();
    let en = other.input("en").unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.set(en, 1)));
    assert!(r.is_err());
}

#[test]
fn finish_on_another_thread_is_reported_by_step_and_run() {
    // $finish reaches the shim through Verilator's thread-local context, which
    // the shim sets on every call: models may be created and run on
    // different threads.
    let spec = DesignSpec {
        top: "finisher".into(),
        sources: vec![(
            "finisher.v".into(),
            "module finisher(input wire clk, input wire rst, output reg [3:0] n);\n\
             always @(posedge clk) begin\n\
               if (rst) n <= 4'd0; else n <= n + 4'd1;\n\
               if (!rst && n == 4'd3) $finish;\n\
             end\nendmodule\n"
                .into(),
        )],
        ports: vec![PortSpec::input("rst", 1), PortSpec::output("n", 4)],
        clock: "clk".into(),
    };
    let lib = Verilator::build(&spec, &opts()).unwrap();
    let mut a = lib.instantiate().unwrap();
    let mut b = lib.instantiate().unwrap();
    let spec2 = spec.clone();
    let a_err = std::thread::spawn(move || {
        reset(&mut a);
        loop {
            if let Err(e) = a.step() {
                return (e.to_string(), a.cycle());
            }
        }
    })
    .join()
    .unwrap();
    assert!(a_err.0.contains("$finish at cycle 5"), "{}", a_err.0);
    assert_eq!(a_err.1, 6);
    let b_err = std::thread::spawn(move || {
        let mut s = Stimulus::new(&spec2);
        s.set("rst", 1);
        s.step(false);
        s.set("rst", 0);
        s.idle(10);
        b.run(&s).unwrap_err().to_string()
    })
    .join()
    .unwrap();
    assert!(b_err.contains("$finish at cycle 4"), "{b_err}");
}
