//! A 1M-cycle run must be fast: the clock loop is in C++ and a run allocates
//! only its output buffer.

mod common;

use coforge_sim::{Simulator, Stimulus, Verilator};

#[test]
fn million_cycles_run_fast() {
    let spec = common::pipeline();
    let lib = Verilator::build(&spec, &common::opts()).unwrap();
    let mut m = lib.instantiate().unwrap();
    let n = 1_000_000u64;
    let mut s = Stimulus::new(&spec);
    s.reserve(n as usize);
    let (v, d) = (
        s.port_id("in_valid").unwrap(),
        s.port_id("in_data").unwrap(),
    );
    let t0 = std::time::Instant::now();
    for i in 0..n {
        s.set_id(v, &[(i & 1) as u32]);
        s.set_id(d, &[(i & 0xffff) as u32]);
        s.step(i % 16 == 0);
    }
    let fill = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let t = m.run(&s).unwrap();
    let run = t1.elapsed().as_secs_f64();
    assert_eq!(t.len(), (n / 16) as usize);
    eprintln!(
        "1M cycles: stimulus {fill:.3} s, run {run:.3} s = {:.0} cycles/s (build {:.2} s, cache hit {})",
        n as f64 / run,
        lib.build_seconds(),
        lib.cache_hit()
    );
    assert!(run < 10.0, "1M cycles took {run:.1} s");
}
