//! `coforge verify --axi`: the same GEMM through the STCE's AXI wrapper under random stalls, with
//! the same bits as the bare engine, and the flag's bad uses refused.

mod common;

use common::{is_empty_or_missing, stderr, Case, SMALL};

#[test]
fn verify_through_the_axi_wrapper_gives_the_bare_engines_bits() {
    let c = Case::new(SMALL);
    let o = c.verify(&["--shape", "5x16x7", "--axi", "--stall-rate", "0.3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = c.report();
    let axi = &r["axi"];
    assert_eq!(axi["top"], "stce_top_axi");
    assert_eq!(axi["bit_exact"], true);
    assert_eq!(axi["same_bits_as_bare"], true);
    assert_eq!(axi["differ_from_bare"], 0);
    assert_eq!(axi["stall_rate"], 0.3);
    // Stalls on both streams make the wrapped run slower than the bare engine's.
    let (wrapped, bare) = (
        axi["cycles"].as_u64().unwrap(),
        r["cycles"].as_u64().unwrap(),
    );
    assert!(
        wrapped > bare,
        "{wrapped} cycles through the wrapper, {bare} bare"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("SAME BITS: through stce_top_axi"),
        "{stdout}"
    );
}

#[test]
fn bad_axi_options_are_refused() {
    let c = Case::new(SMALL);
    let o = c.verify(&["--axi", "--stall-rate", "1.5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("outside 0 <= R < 1"), "{}", stderr(&o));
    let o = c.verify(&["--stall-rate", "0.3"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--axi"), "{}", stderr(&o));
    let o = c.verify(&["--axi", "--simulator", "icarus"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--simulator verilator"),
        "{}",
        stderr(&o)
    );
    assert!(is_empty_or_missing(&c.path("out")));
}

#[test]
fn verify_axi_on_a_training_config_runs_the_sore_and_wuve_wrappers_too() {
    let c = Case::new(
        "[stce]\nrows = 2\ncols = 2\ndtype = \"fp16\"\nn = 2\nm = 4\n\
         [train]\nsore_lanes = 3\nwuve_lanes = 2\n",
    );
    let o = c.verify(&["--shape", "3x8x2", "--axi", "--stall-rate", "0.3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = c.report();
    let lanes = r["axi_lanes"].as_array().expect("an axi_lanes section");
    let tops: Vec<&str> = lanes.iter().map(|l| l["top"].as_str().unwrap()).collect();
    assert_eq!(tops, ["sore_top_axi", "wuve_top_axi"]);
    for l in lanes {
        assert_eq!(l["same_bits_as_bare"], true, "{l}");
        assert_eq!(l["differ_from_bare"], 0, "{l}");
        let (wrapped, bare) = (
            l["cycles"].as_u64().unwrap(),
            l["bare_cycles"].as_u64().unwrap(),
        );
        assert!(wrapped > bare, "{l}");
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("SAME BITS: through wuve_top_axi"),
        "{stdout}"
    );
}

#[test]
fn verify_axi_refuses_the_pipelined_fp16_engine() {
    // Its wrapper's stalls would move groups into other slots: no wrapper, a clear error.
    let c = Case::new(
        "[stce]\nrows = 1\ncols = 1\ndtype = \"fp16\"\nn = 2\nm = 4\nfp_pipeline = true\n",
    );
    let o = c.verify(&["--axi"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("fp_pipeline") && stderr(&o).contains("without --axi"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn verify_axi_on_deformable_engines_gives_the_bare_engines_bits() {
    // Mode A (CoDeNet) and DCNv2 (depthwise), small engines: the layer runs bare and then
    // through deform_top_axi under stalls, with the same bits.
    let cases = [
        (
            // The engines of testbenches/tests/axi_deform.rs, so the Verilator cache serves both.
            "[deform]\nmode = \"codenet\"\nlanes = 2\nmax_width = 8\nmax_dilation = 2\n\
             max_channels = 6\npointwise = true\nstride = 2\n",
            "5x6x3x4",
        ),
        (
            "[deform]\nmode = \"dcnv2\"\nlanes = 2\nmax_width = 6\nkernel = 3\nfrac_bits = 3\n\
             mask_bits = 4\nmax_offset = 1\ntaps_per_cycle = 3\ndepthwise = true\n",
            "4x5x3",
        ),
    ];
    for (config, shape) in cases {
        let c = Case::new(config);
        let o = c.verify(&["--shape", shape, "--axi", "--stall-rate", "0.3"]);
        assert!(o.status.success(), "{config}: {}", stderr(&o));
        let r = c.report();
        let axi = &r["axi"];
        assert_eq!(axi["top"], "deform_top_axi", "{r}");
        assert_eq!(axi["same_bits_as_bare"], true, "{r}");
        assert_eq!(axi["differ_from_bare"], 0, "{r}");
        assert_eq!(axi["stall_rate"], 0.3);
        let (wrapped, bare) = (
            axi["cycles"].as_u64().unwrap(),
            axi["bare_cycles"].as_u64().unwrap(),
        );
        assert_eq!(bare, r["cycles"].as_u64().unwrap());
        assert!(
            wrapped > bare,
            "{wrapped} cycles through the wrapper, {bare} bare"
        );
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout.contains("SAME BITS: through deform_top_axi"),
            "{stdout}"
        );
    }
}

#[test]
fn bad_axi_options_on_a_deformable_engine_are_refused_with_nothing_written() {
    let c = Case::new("[deform]\nmode = \"plain\"\nlanes = 2\nmax_width = 8\nmax_channels = 4\n");
    for (args, code, says) in [
        (
            &["--axi", "--stall-rate", "1.5"][..],
            2,
            "outside 0 <= R < 1",
        ),
        (&["--axi", "--stall-rate", "x"][..], 2, "is not a number"),
        (&["--stall-rate", "0.3"][..], 2, "--axi"),
    ] {
        let o = c.verify(args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert!(is_empty_or_missing(&c.path("out")), "{args:?} wrote output");
    }
}
