//! Closed loop against open loop: the cost of one library call per cycle.
//!
//! Run: `cargo bench -p coforge-sim --bench closed_loop`. On the 4-entry FIFO of the tests, the
//! same random valid/ready inputs run (1) as one precomputed `Stimulus` with every output
//! captured, (2) one `VerilatedModel::step` per cycle, setting inputs through port handles and
//! reading outputs, and (3) through `StreamSource`/`StreamSink` agents. Medians of 3 runs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use coforge_sim::{Simulator, Stimulus, StreamSink, StreamSource, Verilator};
use common::{fifo, opts, Rng};

const CYCLES: u64 = 1_000_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let spec = fifo();
    let lib = Verilator::build(&spec, &opts()).expect("the FIFO builds");
    let mut rng = Rng(1);
    let inputs: Vec<(u64, u64, u64)> = (0..CYCLES)
        .map(|_| (rng.next() & 1, rng.next() & 1, rng.next() & 0xffff))
        .collect();

    let mut stim = Stimulus::new(&spec);
    stim.reserve(CYCLES as usize);
    for &(v, r, d) in &inputs {
        stim.set("in_valid", v);
        stim.set("out_ready", r);
        stim.set("in_data", d);
        stim.step(true);
    }
    let mut model = lib.instantiate().unwrap();
    let open = median(
        (0..3)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(model.run(&stim).unwrap());
                CYCLES as f64 / t.elapsed().as_secs_f64()
            })
            .collect(),
    );

    let (iv, or, id) = (
        model.input("in_valid").unwrap(),
        model.input("out_ready").unwrap(),
        model.input("in_data").unwrap(),
    );
    let od = model.output("out_data").unwrap();
    let closed = median(
        (0..3)
            .map(|_| {
                let t = Instant::now();
                let mut sum = 0u64;
                for &(v, r, d) in &inputs {
                    model.set(iv, v);
                    model.set(or, r);
                    model.set(id, d);
                    model.step().unwrap();
                    sum = sum.wrapping_add(model.get(od));
                }
                std::hint::black_box(sum);
                CYCLES as f64 / t.elapsed().as_secs_f64()
            })
            .collect(),
    );

    let beats = (CYCLES / 4) as usize;
    let agents = median(
        (0..3)
            .map(|seed| {
                let mut m = lib.instantiate().unwrap();
                let mut src = StreamSource::new(m.pins(), "in_valid", "in_ready", "in_data")
                    .unwrap()
                    .with_gaps(0.3, seed)
                    .unwrap();
                for i in 0..beats {
                    src.push(i as u64 & 0xffff).unwrap();
                }
                let mut sink = StreamSink::new(m.pins(), "out_valid", "out_ready", "out_data")
                    .unwrap()
                    .with_stalls(0.3, seed + 10)
                    .unwrap()
                    .expect(beats);
                let t = Instant::now();
                let cycles = m
                    .run_until_done(&mut [&mut src, &mut sink], 100 * CYCLES)
                    .unwrap();
                assert_eq!(sink.len(), beats);
                cycles as f64 / t.elapsed().as_secs_f64()
            })
            .collect(),
    );

    println!("# Closed loop against open loop, 4-entry FIFO, {CYCLES} cycles (median of 3)\n");
    println!("| mode | cycles/s | / open loop |\n|---|---|---|");
    println!("| open loop: one run of a Stimulus, every output captured | {open:.0} | 1.00 |");
    println!(
        "| closed loop: one step per cycle, 3 inputs set, 1 output read | {closed:.0} | {:.2} |",
        closed / open
    );
    println!(
        "| closed loop: StreamSource + StreamSink agents, 30% gaps and stalls | {agents:.0} | {:.2} |",
        agents / open
    );
}
