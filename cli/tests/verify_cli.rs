//! `coforge gen` and `coforge verify` end to end: the built binary on small engines, including
//! the failure paths a user meets (bad config, bad tensors, no Verilator, a real mismatch).

#[allow(dead_code)]
#[path = "../src/budget.rs"]
mod budget;
#[allow(dead_code)]
#[path = "../src/tensor_io.rs"]
mod tensor_io;

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{coforge, is_empty_or_missing, stderr, Case, SMALL};

use ndarray::Array2;
use tensor_io::{read_npy, Tensor};

#[test]
fn verify_is_bit_exact_and_writes_every_artifact() {
    let c = Case::new(SMALL);
    let o = c.verify(&["--shape", "5x18x7", "--seed", "9"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "a.npy",
        "b.npy",
        "golden.npy",
        "rtl.npy",
        "report.json",
        "config.json",
    ] {
        assert!(c.path("out").join(f).exists(), "{f} missing");
    }
    let r = c.report();
    assert_eq!(r["bit_exact"], true);
    assert_eq!(r["mismatches"], 0);
    assert_eq!(r["seed"], 9);
    assert_eq!(r["shape"], serde_json::json!([5, 18, 7]));
    assert_eq!(r["cycles"], r["estimated_cycles"]);
    assert_eq!(r["dense_equivalent_macs"], 5 * 18 * 7);
    assert!(r["verilator_version"]
        .as_str()
        .unwrap()
        .starts_with("Verilator 5"));
    let (Tensor::I32(g), Tensor::I32(t)) = (
        read_npy(&c.path("out/golden.npy")).unwrap(),
        read_npy(&c.path("out/rtl.npy")).unwrap(),
    ) else {
        panic!("golden and rtl are int32")
    };
    assert_eq!(g, t);
    // b.npy is B as fed: every group of 4 along K keeps at most 2 non-zeros.
    let Tensor::I8(b) = read_npy(&c.path("out/b.npy")).unwrap() else {
        panic!("b is int8")
    };
    for col in b.columns() {
        for group in col.to_vec().chunks(4) {
            assert!(group.iter().filter(|&&v| v != 0).count() <= 2);
        }
    }
}

#[test]
fn a_corrupted_reference_operand_fails_and_names_the_element() {
    let c = Case::new(SMALL);
    // A clean run first, to pick a reduction index k that the pruned B actually uses.
    let o = c.verify(&["--shape", "6x16x5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let Tensor::I8(b) = read_npy(&c.path("out/b.npy")).unwrap() else {
        panic!("b is int8")
    };
    let kept = |k: usize| b.row(k).iter().filter(|&&v| v != 0).count();
    let k = (0..16).find(|&k| kept(k) > 0).expect("some weight is kept");
    let o = c.verify(&["--shape", "6x16x5", "--corrupt-golden", &format!("3,{k}")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("first mismatch in `c` at [3, "), "{err}");
    let r = c.report();
    assert_eq!(r["bit_exact"], false);
    let first = &r["first_mismatch"];
    assert_eq!(first["tensor"], "c");
    assert_eq!(first["index"][0], 3);
    assert!(first["cycle"].as_u64().is_some());
    // Only row 3 differs, exactly where the pruned B kept reduction index k.
    assert_eq!(r["mismatches"].as_u64().unwrap() as usize, kept(k));
}

#[test]
fn icarus_gives_the_same_answer() {
    let c = Case::new(SMALL);
    let o = c.verify(&["--shape", "4x12x4", "--simulator", "icarus"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(c.report()["simulator"], "icarus");
    assert_eq!(c.report()["bit_exact"], true);
}

#[test]
fn bad_inputs_are_rejected_with_a_clear_message_and_no_output() {
    // Invalid config value.
    let c = Case::new("[stce]\nrows = 2\ncols = 2\nn = 5\nm = 4\n");
    let o = c.verify(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("stce.n"), "{}", stderr(&o));
    assert!(is_empty_or_missing(&c.path("out")));

    // Unknown key.
    let c = Case::new("[stce]\nrows = 2\ncols = 2\nn = 2\nm = 4\nrowz = 3\n");
    let o = c.verify(&[]);
    assert!(stderr(&o).contains("rowz"), "{}", stderr(&o));

    // Shape mismatch between A and B, and a float tensor where int8 is needed.
    let c = Case::new(SMALL);
    let a = Array2::<i8>::zeros((3, 8));
    let b = Array2::<i8>::zeros((9, 2));
    std::fs::write(c.path("a.npy"), Tensor::I8(a).to_npy_bytes()).unwrap();
    std::fs::write(c.path("b.npy"), Tensor::I8(b).to_npy_bytes()).unwrap();
    let o = c.verify(&["--a", &c.arg("a.npy"), "--b", &c.arg("b.npy")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("inner dimensions"), "{}", stderr(&o));
    assert!(is_empty_or_missing(&c.path("out")));
    let f = Array2::<f32>::zeros((8, 2));
    std::fs::write(c.path("f.npy"), Tensor::F32(f).to_npy_bytes()).unwrap();
    let o = c.verify(&["--a", &c.arg("a.npy"), "--b", &c.arg("f.npy")]);
    assert!(stderr(&o).contains("takes int8"), "{}", stderr(&o));

    // A malformed .npy.
    std::fs::write(c.path("bad.npy"), b"\x93NUMPY garbage").unwrap();
    let o = c.verify(&["--a", &c.arg("bad.npy"), "--b", &c.arg("b.npy")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad.npy"), "{}", stderr(&o));
    assert!(is_empty_or_missing(&c.path("out")));
}

#[test]
fn gen_writes_verilog_filelist_manifest_and_config_deterministically() {
    let c = Case::new(SMALL);
    let (config, out) = (c.arg("c.toml"), c.arg("gen"));
    let o = coforge(&["gen", "--config", &config, "--out", &out], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let filelist = std::fs::read_to_string(c.path("gen/stce_top.f")).unwrap();
    assert_eq!(filelist, "stce_pe_int8_n2_m4.v\nstce_top.v\n");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.path("gen/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["top"], "stce_top");
    // The PE, the engine and its AXI wrapper, whose filelist adds its own file to the engine's.
    assert_eq!(manifest["modules"].as_array().unwrap().len(), 3);
    let wrapper = std::fs::read_to_string(c.path("gen/stce_top_axi.f")).unwrap();
    assert_eq!(
        wrapper,
        "stce_pe_int8_n2_m4.v\nstce_top.v\nstce_top_axi.v\n"
    );
    assert_eq!(manifest["tops"][1]["wraps"], "stce_top");
    assert_eq!(manifest["config_hash"].as_str().unwrap().len(), 64);
    let first = std::fs::read(c.path("gen/stce_top.v")).unwrap();
    let o = coforge(&["gen", "--config", &config, "--out", &out], &[]);
    assert!(o.status.success());
    assert_eq!(std::fs::read(c.path("gen/stce_top.v")).unwrap(), first);
}

#[test]
fn gen_refuses_a_top_named_like_a_keyword_or_a_generated_module() {
    for (top, fix) in [("module", "keyword"), ("stce_pe_int8_n2_m4", "generates")] {
        let c = Case::new(&format!(
            "[stce]\nrows = 2\ncols = 2\nn = 2\nm = 4\ntop = \"{top}\"\n"
        ));
        let (config, out) = (c.arg("c.toml"), c.arg("gen"));
        let o = coforge(&["gen", "--config", &config, "--out", &out], &[]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("stce.top") && err.contains(top) && err.contains(fix),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(is_empty_or_missing(&c.path("gen")));
    }
}

const TRAINING: &str = "[stce]\nrows = 2\ncols = 2\ndtype = \"fp16\"\nn = 2\nm = 4\n[train]\n";

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testbenches/vectors")
}

fn train(c: &Case, n: &str, m: &str) -> Output {
    let v = vectors();
    let arg = |f: &str| v.join(f).display().to_string();
    let (config, out) = (c.arg("c.toml"), c.arg("out"));
    let (x, w, dy) = (arg("demo_x.npy"), arg("demo_w32.npy"), arg("demo_dy.npy"));
    coforge(
        &[
            "train", "--config", &config, "--x", &x, "--w", &w, "--dy", &dy, "--n", n, "--m", m,
            "--lr", "0.01", "--steps", "2", "--out", &out,
        ],
        &[],
    )
}

#[test]
fn train_is_bit_exact_on_rtl_and_reports_cycles_per_pass() {
    let c = Case::new(TRAINING);
    let o = train(&c, "2", "4");
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "y.npy",
        "dx.npy",
        "dw.npy",
        "w32.npy",
        "w16.npy",
        "mask_f.npy",
        "mask_b.npy",
    ] {
        assert!(c.path("out").join(f).exists(), "{f} missing");
    }
    let r = c.report();
    assert_eq!(r["bit_exact"], true);
    assert_eq!(r["steps"].as_array().unwrap().len(), 2);
    for pass in ["ff", "bp", "wu", "update", "prune"] {
        assert!(r["cycles"][pass].as_u64().unwrap() > 0, "{pass}");
    }
    assert!(r["effective_macs"].as_u64() < r["dense_equivalent_macs"].as_u64());

    // Dense training on the same hardware.
    let o = train(&c, "4", "4");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        c.report()["effective_macs"],
        c.report()["dense_equivalent_macs"]
    );
}

#[test]
fn train_on_a_system_config_reports_measured_step_cycles_beside_the_estimate() {
    let c = Case::new(&format!(
        "{TRAINING}sore_lanes = 2\nwuve_lanes = 2\n[system]\n"
    ));
    for (n, m) in [("2", "4"), ("4", "4")] {
        let o = train(&c, n, m);
        assert!(o.status.success(), "{}", stderr(&o));
        let r = c.report();
        assert_eq!(r["bit_exact"], true);
        for step in r["steps"].as_array().unwrap() {
            let measured = step["step_cycles_measured"].as_u64().unwrap();
            let estimated = step["step_cycles_estimated"].as_u64().unwrap();
            assert!(measured > 0 && estimated > 0, "{step}");
            assert!(
                step["system"]["busy"]["stce"].as_u64().unwrap() > 0,
                "{step}"
            );
            let names: Vec<&str> = step["comparisons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["tensor"].as_str().unwrap())
                .collect();
            for t in [
                "system.y",
                "system.dx",
                "system.dw",
                "system.w32",
                "system.w16",
            ] {
                assert!(names.contains(&t), "{names:?}");
            }
            assert_eq!(names.contains(&"system.mask_f"), n != m, "{names:?}");
        }
    }
}

#[test]
fn train_rejects_a_pattern_the_hardware_lacks_and_a_config_without_train() {
    let c = Case::new(TRAINING);
    let o = train(&c, "1", "4");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("built for 2:4"), "{}", stderr(&o));
    assert!(is_empty_or_missing(&c.path("out")));
    let c = Case::new("[stce]\nrows = 2\ncols = 2\ndtype = \"fp16\"\nn = 2\nm = 4\n");
    let o = train(&c, "2", "4");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("[train]"), "{}", stderr(&o));
}

#[test]
fn waves_are_dumped_only_on_request_and_only_inside_the_window() {
    let c = Case::new(SMALL);
    let o = c.verify(&["--shape", "4x8x3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!c.path("out/waves.vcd").exists(), "no VCD unless asked");
    let o = c.verify(&["--shape", "4x8x3", "--waves", "5:9"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let vcd = std::fs::read_to_string(c.path("out/waves.vcd")).unwrap();
    let times: Vec<u64> = vcd
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|t| t.parse().unwrap())
        .collect();
    assert!(!times.is_empty());
    // Cycle i spans times 10*i .. 10*i + 5 (see coforge-sim).
    assert!(times.iter().all(|&t| (50..100).contains(&t)), "{times:?}");
    assert_eq!(
        c.report()["waves"].as_str().unwrap(),
        c.arg("out/waves.vcd")
    );
    let o = c.verify(&["--waves", "9:5"]);
    assert_eq!(o.status.code(), Some(2), "clap rejects a reversed window");
}

#[test]
fn estimate_counts_cells_and_the_longest_path_per_top_and_writes_a_vivado_script() {
    let c = Case::new("[stce]\nrows = 1\ncols = 2\nn = 2\nm = 4\n");
    let (config, out) = (c.arg("c.toml"), c.arg("out"));
    let o = coforge(&["estimate", "--config", &config, "--out", &out], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.path("out/resources.json")).unwrap())
            .unwrap();
    let top = &r["tops"][0];
    assert_eq!(top["top"], "stce_top");
    // One DSP48E1 per int8 multiplier: 2 PEs x 2 multipliers.
    assert_eq!(top["summary"]["dsps"], 4);
    assert!(top["summary"]["flip_flops"].as_u64().unwrap() > 0);
    assert!(r["note"].as_str().unwrap().contains("not Vivado"));
    let tcl = std::fs::read_to_string(c.path("out/vivado_synth.tcl")).unwrap();
    assert!(tcl.contains("synth_design -top stce_top"));
    let csv = std::fs::read_to_string(c.path("out/resources.csv")).unwrap();
    assert!(csv.starts_with("top,cell,count\n") && csv.contains("stce_top,DSP48E1,4"));
    // The longest path is reported beside the cells, in the report, the CSV and the table.
    let longest = top["longest_path"].as_u64().unwrap();
    assert!(longest > 0);
    assert!(csv.contains(&format!("stce_top,longest_path,{longest}\n")));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("longest path"), "{table}");
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("stce_top"));
    assert!(
        row.is_some_and(|l| l.trim_end().ends_with(&format!(" {longest}"))),
        "{table}"
    );
}

#[test]
fn int8x2_packing_halves_the_dsps_on_ultrascale_plus() {
    // The same 2 x 2 engine with and without packing, through `coforge estimate --family xcup`.
    let engine = "[stce]\nrows = 2\ncols = 2\nn = 2\nm = 4\n";
    let mut dsps = Vec::new();
    for extra in ["", "dsp_packing = \"int8x2\"\n"] {
        let c = Case::new(&format!("{engine}{extra}"));
        let (config, out) = (c.arg("c.toml"), c.arg("out"));
        let o = coforge(
            &[
                "estimate", "--config", &config, "--family", "xcup", "--out", &out,
            ],
            &[],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(c.path("out/resources.json")).unwrap())
                .unwrap();
        dsps.push(r["tops"][0]["summary"]["dsps"].as_u64().unwrap());
    }
    // 4 PEs x 2 multipliers: 8 DSP48E2 unpacked, 4 packed.
    assert_eq!(dsps, [8, 4]);
}

/// A plain/CoDeNet layer given as files (the names `verify` writes and a campaign's failures
/// use) replays bit for bit: the same golden and RTL bytes as the seeded run that wrote them,
/// with a 1x1 front and `--relu`.
#[test]
fn a_codenet_layer_replays_from_its_files() {
    let c = Case::new(
        "[deform]\nmode = \"codenet\"\nlanes = 2\nmax_width = 8\nmax_dilation = 3\n\
         max_channels = 6\npointwise = true\n",
    );
    let o = c.verify(&["--shape", "5x7x3x4", "--seed", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let seeded = c.path("seeded");
    std::fs::rename(c.path("out"), &seeded).unwrap();
    let file = |f: &str| seeded.join(f).display().to_string();
    let inputs = [
        ("--x", "x.npy"),
        ("--w", "w.npy"),
        ("--dilation", "dilation.npy"),
        ("--scale", "scale.npy"),
        ("--bias", "bias.npy"),
        ("--pw-w", "pw_w.npy"),
        ("--pw-scale", "pw_scale.npy"),
        ("--pw-bias", "pw_bias.npy"),
    ];
    let mut args: Vec<String> = inputs
        .iter()
        .flat_map(|(flag, f)| [flag.to_string(), file(f)])
        .collect();
    args.push("--relu".into());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = c.verify(&argv);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["golden.npy", "rtl.npy", "x.npy", "pw_w.npy"] {
        assert_eq!(
            std::fs::read(seeded.join(f)).unwrap(),
            std::fs::read(c.path("out").join(f)).unwrap(),
            "{f}"
        );
    }
    let r = c.report();
    assert_eq!(r["bit_exact"], true);
    assert_eq!(r["seed"], serde_json::Value::Null);
    assert_eq!(r["relu"], true);
    assert_eq!(r["shape"], serde_json::json!([5, 7, 3, 4]));

    // Each mistake is named before anything is built, and nothing is written.
    std::fs::remove_dir_all(c.path("out")).unwrap();
    let partial = c.verify(&argv[..4]);
    let wrong_dtype = c.verify(&[
        "--x",
        &file("x.npy"),
        "--w",
        &file("w.npy"),
        "--dilation",
        &file("dilation.npy"),
        "--scale",
        &file("scale.npy"),
        "--bias",
        &file("x.npy"),
    ]);
    let with_shape = {
        let mut a = argv.clone();
        a.extend(["--shape", "5x7x3x4"]);
        c.verify(&a)
    };
    let dcnv2_flag = c.verify(&["--offset", &file("x.npy")]);
    for (o, want) in [
        (
            partial,
            "needs all of --x, --w, --dilation, --scale and --bias",
        ),
        (wrong_dtype, "(depthwise bias) must be int16, not int8"),
        (with_shape, "--shape is for a seeded layer"),
        (
            dcnv2_flag,
            "--offset and --mask are inputs of a DCNv2 engine",
        ),
    ] {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(want), "{want}: {}", stderr(&o));
        assert!(is_empty_or_missing(&c.path("out")));
    }
}

#[test]
fn deformable_inputs_are_refused_on_the_tensor_engine() {
    let c = Case::new(SMALL);
    std::fs::write(c.path("d.npy"), b"not read").unwrap();
    let o = c.verify(&["--dilation", &c.arg("d.npy")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--dilation is an input of a deformable engine"),
        "{}",
        stderr(&o)
    );
    assert!(is_empty_or_missing(&c.path("out")));
}

#[test]
fn plain_and_codenet_inputs_are_refused_on_a_dcnv2_engine() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/deform-dcnv2.toml");
    let c = Case::new("");
    std::fs::write(c.path("d.npy"), b"not read").unwrap();
    let out = c.arg("out");
    let o = coforge(
        &[
            "verify",
            "--config",
            config.to_str().unwrap(),
            "--out",
            &out,
            "--dilation",
            &c.arg("d.npy"),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--dilation is an input of a plain or CoDeNet engine"),
        "{}",
        stderr(&o)
    );
    assert!(is_empty_or_missing(&c.path("out")));
}
