//! Opt-in VCD windows and --x-initial unique.

mod common;

use coforge_sim::{
    BuildOptions, DesignSpec, PortSpec, Simulator, Stimulus, Verilator, WaveOptions, XInitial,
};
use common::*;

#[test]
fn waves_only_inside_the_window() {
    let spec = counter();
    let lib = Verilator::build(
        &spec,
        &BuildOptions {
            waves: true,
            ..opts()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut m = lib.instantiate().unwrap();
    let mut s = Stimulus::new(&spec);
    s.set("en", 1);
    s.idle(20);
    // Nothing is dumped unless asked for.
    m.run(&s).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // Window in model cycles (the model is now at cycle 20).
    let path = dir.path().join("w/win.vcd");
    m.set_waves(Some(WaveOptions {
        path: path.clone(),
        first_cycle: 25,
        last_cycle: 29,
    }))
    .unwrap();
    m.run(&s).unwrap();
    let times = vcd_times(&path);
    assert!(!times.is_empty(), "no timestamps in {}", path.display());
    assert!(times.iter().all(|&t| (250..=295).contains(&t)), "{times:?}");
    assert_eq!(times.first(), Some(&250));
    assert_eq!(times.last(), Some(&295));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("count"), "signal missing from VCD");
    // A second window into another file.
    let path2 = dir.path().join("second.vcd");
    m.set_waves(Some(WaveOptions {
        path: path2.clone(),
        first_cycle: 40,
        last_cycle: 41,
    }))
    .unwrap();
    m.run(&s).unwrap();
    assert_eq!(vcd_times(&path2), vec![400, 405, 410, 415]);

    // A library built without waves says how to get them.
    let plain = Verilator::build(&spec, &opts()).unwrap();
    let err = plain.instantiate().unwrap().set_waves(Some(WaveOptions {
        path,
        first_cycle: 0,
        last_cycle: 1,
    }));
    assert!(err.unwrap_err().to_string().contains("waves: true"));
}

#[test]
fn x_initial_unique_randomises_unreset_state_only() {
    // `junk` is never reset; `count` is.
    let spec = DesignSpec {
        top: "xinit".into(),
        sources: vec![(
            "xinit.v".into(),
            "`default_nettype none\nmodule xinit(input wire clk, input wire rst, output reg [7:0] count, output reg [31:0] junk);\n\
             always @(posedge clk) begin if (rst) count <= 0; else count <= count + 1; junk <= junk + 1; end\nendmodule\n"
                .into(),
        )],
        ports: vec![PortSpec::input("rst", 1), PortSpec::output("count", 8), PortSpec::output("junk", 32)],
        clock: "clk".into(),
    };
    let lib = Verilator::build(
        &spec,
        &BuildOptions {
            x_initial: XInitial::Unique { seed: 1 },
            ..opts()
        },
    )
    .unwrap();
    let mut s = Stimulus::new(&spec);
    s.set("rst", 1);
    s.step(false);
    s.set("rst", 0);
    s.idle(6);
    s.step(true);
    let mut junk = Vec::new();
    for seed in 1..=4 {
        let mut m = lib.instantiate_with_seed(seed).unwrap();
        let t = m.run(&s).unwrap();
        assert_eq!(t.get(0, "count"), 6, "seed {seed}");
        junk.push(t.get(0, "junk"));
    }
    junk.dedup();
    assert!(junk.len() > 1, "unreset state was not randomised: {junk:?}");
    // Same seed, same result.
    let a = lib.instantiate().unwrap().run(&s).unwrap().get(0, "junk");
    let b = lib.instantiate().unwrap().run(&s).unwrap().get(0, "junk");
    assert_eq!(a, b);
}
