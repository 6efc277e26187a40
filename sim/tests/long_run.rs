//! A long run (1M cycles, one C++ call) returns exactly the captures it was asked for.
//! Its speed is measured by the `stce` benchmark, not here.

mod common;

use coforge_sim::{Simulator, Stimulus, Verilator};

#[test]
fn a_million_cycle_run_returns_every_requested_capture() {
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
    for i in 0..n {
        s.set_id(v, &[(i & 1) as u32]);
        s.set_id(d, &[(i & 0xffff) as u32]);
        s.step(i % 16 == 0);
    }
    let t = m.run(&s).unwrap();
    assert_eq!(t.len(), (n / 16) as usize);
    assert_eq!(t.cycles, n);
}
