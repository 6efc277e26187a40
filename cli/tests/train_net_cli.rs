//! `coforge train --net`: whole-network steps on the system top. Bad input of every kind exits
//! 1 naming the problem before anything is built, and writes nothing; a hand-edited schedule
//! that reads a tile before it is written is refused naming the instruction; a run writes the
//! golden and RTL tensors and a report with measured cycles beside the scheduler's estimates;
//! with --axi (a network, or the one-layer step's system program) the run goes through
//! `sat_top_axi` and writes the bare top's bits.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shipped() -> PathBuf {
    repo().join("configs/sat-4x4-2of8.toml")
}

fn coforge(args: &[&str]) -> Output {
    common::coforge(args, &[])
}

fn train(net: &Path, config: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--net",
        net.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    coforge(&args)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Exit 1, an error naming `needle`, and no output folder.
fn refused(o: &Output, out: &Path, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(!out.exists(), "a refused run wrote {}", out.display());
}

const TINY_DENSE: &str = "name = \"tiny\"\nbatch = 3\nnm = \"dense\"\n[[layer]]\nname = \"a\"\n\
                          kind = \"linear\"\nin = 12\nout = 5\n[[layer]]\nname = \"b\"\n\
                          kind = \"linear\"\nin = 5\nout = 6\n";

#[test]
fn bad_input_is_refused_before_building_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mlp = repo().join("networks/mlp.toml");
    let cases: Vec<(Vec<String>, PathBuf, PathBuf, &str)> = vec![
        (
            vec![],
            dir.path().join("missing.toml"),
            shipped(),
            "missing.toml",
        ),
        (
            vec![],
            write(
                dir.path(),
                "kind.toml",
                "name = \"x\"\nbatch = 2\n[[layer]]\nkind = \"pool\"\n",
            ),
            shipped(),
            "pool",
        ),
        (
            vec![],
            write(
                dir.path(),
                "zero.toml",
                "name = \"x\"\nbatch = 2\n[[layer]]\nkind = \"linear\"\nin = 0\nout = 4\n",
            ),
            shipped(),
            "layer 0",
        ),
        (
            vec!["--steps".into(), "0".into()],
            mlp.clone(),
            shipped(),
            "--steps",
        ),
        (
            vec![],
            write(
                dir.path(),
                "grad.toml",
                &format!("input_gradient = 3\n{TINY_DENSE}"),
            ),
            shipped(),
            "`input_gradient` = 3 is not a boolean",
        ),
        (
            vec![],
            mlp.clone(),
            write(
                dir.path(),
                "nosys.toml",
                "[stce]\nrows = 4\ncols = 4\nn = 2\nm = 8\ndtype = \"fp16\"\n[train]\n",
            ),
            "[system]",
        ),
        (
            vec![],
            mlp.clone(),
            write(
                dir.path(),
                "small-imem.toml",
                "[stce]\nrows = 4\ncols = 4\nn = 2\nm = 8\ndtype = \"fp16\"\n[train]\n\
                 [system]\nimem_depth = 512\n",
            ),
            "imem_depth",
        ),
    ];
    for (extra, net, config, needle) in &cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        refused(&train(net, config, &out, &extra), &out, needle);
    }
    // .npy inputs of the wrong shape, and a file that is no input of the network.
    let inputs = dir.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let npy = |name: &str, rows: usize, cols: usize| {
        let a = ndarray::Array2::<f32>::zeros((rows, cols));
        let p = inputs.join(name);
        ndarray_npy_write(&p, &a);
    };
    let tiny = write(dir.path(), "tiny.toml", TINY_DENSE);
    npy("a.w32.npy", 5, 11);
    let o = train(
        &tiny,
        &shipped(),
        &out,
        &["--inputs", inputs.to_str().unwrap()],
    );
    refused(&o, &out, "a.w32.npy is 5 x 11");
    std::fs::remove_file(inputs.join("a.w32.npy")).unwrap();
    npy("fc9.w32.npy", 64, 32);
    let o = train(
        &tiny,
        &shipped(),
        &out,
        &["--inputs", inputs.to_str().unwrap()],
    );
    refused(&o, &out, "fc9.w32.npy");
    // --out that is a file.
    let file = write(dir.path(), "a-file", "x");
    let o = train(&mlp, &shipped(), &file, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// Writes a float32 `.npy` (version 1.0, little endian, C order).
fn ndarray_npy_write(path: &Path, a: &ndarray::Array2<f32>) {
    let header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        a.nrows(),
        a.ncols()
    );
    let mut h = header.into_bytes();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend(h);
    for v in a.iter() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_hand_edited_schedule_that_reads_before_the_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = repo().join("networks/small-cnn-ci.toml");
    let sched = dir.path().join("sched");
    let o = coforge(&[
        "schedule",
        "--net",
        net.to_str().unwrap(),
        "--config",
        shipped().to_str().unwrap(),
        "--out",
        sched.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let path = sched.join("schedule.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // Move the first GEMM to the front: it reads act and wgt lines no instruction wrote yet.
    let instrs = json["instructions"].as_array_mut().unwrap();
    let at = instrs.iter().position(|e| e["op"] == "gemm").unwrap();
    let gemm = instrs.remove(at);
    instrs.insert(0, gemm);
    let edited = write(dir.path(), "edited.json", &json.to_string());
    let out = dir.path().join("out");
    let o = train(
        &net,
        &shipped(),
        &out,
        &["--schedule", edited.to_str().unwrap()],
    );
    refused(&o, &out, "instruction 0");
}

#[test]
fn a_dense_network_trains_bit_exact_with_measured_cycles() {
    let dir = tempfile::tempdir().unwrap();
    // Cin 12, Cout 5 and 6, batch 3: nothing a multiple of the 4 x 4 array or of M = 8. With
    // the input gradient, so that the first layer's BP pass runs and its dX is compared.
    let net = write(
        dir.path(),
        "tiny.toml",
        &format!("input_gradient = true\n{TINY_DENSE}"),
    );
    let out = dir.path().join("out");
    let o = train(&net, &shipped(), &out, &["--steps", "2", "--seed", "5"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["bit_exact"], true);
    assert_eq!(report["input_gradient"], true);
    assert_eq!(report["not_computed"], serde_json::json!([]));
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for s in steps {
        assert!(s["step_cycles_measured"].as_u64().unwrap() > 0);
        assert!(s["step_cycles_estimated"].as_u64().unwrap() > 0);
        let passes = s["passes"].as_array().unwrap();
        for pass in ["ff", "bp", "wu", "update"] {
            for layer in ["a", "b"] {
                let p = passes
                    .iter()
                    .find(|p| p["layer"] == layer && p["pass"] == pass)
                    .unwrap_or_else(|| panic!("{layer} {pass} missing"));
                assert!(p["cycles_measured"].as_u64().unwrap() > 0, "{p}");
            }
        }
        assert_eq!(s["comparisons"].as_array().unwrap().len(), 10);
    }
    for f in [
        "step1.a.y.golden.npy",
        "step1.a.dx.rtl.npy",
        "step1.b.w16.rtl.npy",
        "schedule.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
}

#[test]
fn small_cnn_ci_trains_two_sparse_steps_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let net = repo().join("networks/small-cnn-ci.toml");
    let out = dir.path().join("out");
    let o = train(&net, &shipped(), &out, &["--steps", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["bit_exact"], true);
    let step = &report["steps"][1];
    let passes = step["passes"].as_array().unwrap();
    for pass in ["prune_f", "prune_b"] {
        let p = passes
            .iter()
            .find(|p| p["layer"] == "fc" && p["pass"] == pass)
            .unwrap_or_else(|| panic!("fc {pass} missing"));
        assert!(p["busy_measured"]["sore"].as_u64().unwrap() > 0, "{p}");
    }
    // Sparse layers compare the new masks and compressed operands too.
    let names: Vec<&str> = step["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tensor"].as_str().unwrap())
        .collect();
    for t in [
        "fc.mask_f",
        "fc.w_f.values",
        "fc.w_b.indices",
        "conv1.y",
        "conv1.dw",
        "conv2.dx",
    ] {
        assert!(names.contains(&t), "{t} not compared: {names:?}");
    }
    // The network does not ask for its input gradient: conv1 has no BP pass, and its dX is
    // neither compared nor written, and the report says so.
    assert!(!names.contains(&"conv1.dx"), "{names:?}");
    assert!(!passes
        .iter()
        .any(|p| p["layer"] == "conv1" && p["pass"] == "bp"));
    assert_eq!(report["input_gradient"], false);
    assert_eq!(report["not_computed"], serde_json::json!(["conv1.dx"]));
    assert!(out.join("step1.conv2.dx.rtl.npy").exists());
    let stale: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("conv1.dx"))
        .collect();
    assert!(stale.is_empty(), "{stale:?}");
}

#[test]
fn a_step_through_the_axi_wrapper_writes_the_bare_tops_bits() {
    let dir = tempfile::tempdir().unwrap();
    let net = write(dir.path(), "tiny.toml", TINY_DENSE);
    let (bare, axi) = (dir.path().join("bare"), dir.path().join("axi"));
    let o = train(&net, &shipped(), &bare, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = train(&net, &shipped(), &axi, &["--axi", "--stall-rate", "0.3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut compared = 0;
    for entry in std::fs::read_dir(&bare).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".rtl.npy") {
            let same =
                std::fs::read(bare.join(&name)).unwrap() == std::fs::read(axi.join(&name)).unwrap();
            assert!(same, "{name} differs through the AXI wrapper");
            compared += 1;
        }
    }
    // y, dw, w32, w16 of both layers and dX of the second: no input gradient (layer a's dX).
    assert_eq!(compared, 9);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(axi.join("report.json")).unwrap()).unwrap();
    let step = &report["steps"][0];
    assert_eq!(step["axi"]["stall_rate"], 0.3);
    assert!(
        step["axi"]["wrapper_cycles"].as_u64().unwrap()
            > step["step_cycles_measured"].as_u64().unwrap()
    );
    // A stall rate outside [0, 1), or without --axi, is a usage error; nothing is written.
    for extra in [
        &["--axi", "--stall-rate", "1.5"][..],
        &["--stall-rate", "0.3"][..],
    ] {
        let out = dir.path().join("refused");
        let o = train(&net, &shipped(), &out, extra);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("stall-rate"), "{err}");
        assert!(!out.exists());
    }
}

#[test]
fn the_one_layer_train_runs_its_system_program_through_the_axi_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let v = repo().join("testbenches/vectors");
    let arg = |f: &str| v.join(f).display().to_string();
    let (x, w, dy) = (arg("demo_x.npy"), arg("demo_w32.npy"), arg("demo_dy.npy"));
    let one_layer = |config: &Path, out: &Path, n_m: [&str; 2]| {
        coforge(&[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--x",
            &x,
            "--w",
            &w,
            "--dy",
            &dy,
            "--n",
            n_m[0],
            "--m",
            n_m[1],
            "--lr",
            "0.01",
            "--out",
            out.to_str().unwrap(),
            "--axi",
            "--stall-rate",
            "0.5",
        ])
    };
    let out = dir.path().join("out");
    let o = one_layer(&shipped(), &out, ["2", "8"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["bit_exact"], true);
    let step = &report["steps"][0];
    let system: Vec<&serde_json::Value> = step["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["tensor"].as_str().unwrap().starts_with("system."))
        .collect();
    assert!(system.len() >= 5, "{system:?}");
    // The one-layer step's dX is its output: it is computed and compared on the system top.
    assert!(
        system.iter().any(|c| c["tensor"] == "system.dx"),
        "{system:?}"
    );
    let axi = &step["system"]["axi"];
    assert_eq!(axi["stall_rate"], 0.5);
    assert!(
        axi["wrapper_cycles"].as_u64().unwrap() > step["step_cycles_measured"].as_u64().unwrap()
    );
    // A config without [system] has no system top to wrap: refused before any build.
    let nosys = write(
        dir.path(),
        "nosys.toml",
        "[stce]\nrows = 2\ncols = 2\ndtype = \"fp16\"\nn = 2\nm = 4\n[train]\n",
    );
    let out = dir.path().join("refused");
    refused(&one_layer(&nosys, &out, ["2", "4"]), &out, "[system]");
}
