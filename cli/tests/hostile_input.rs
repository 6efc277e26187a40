//! The classes of bad input a hostile user tries, each closed by one mechanism and tested here by
//! the class, across verbs:
//!
//! - no allocation without a limit (`budget`, the bounded `.npy` reader);
//! - every check before the expensive work (proved by pointing `COFORGE_VERILATOR` at nothing: a
//!   run that reaches the Verilator build fails with "not found" instead of the input's error);
//! - no stale or partial output folders (`OutputDir`'s whole-folder swap), concurrent runs
//!   included, and a `--waves` window past the end of the run;
//! - nothing passes with nothing checked;
//! - messages say what is wrong, OS errors once, and the exit codes.

#[allow(dead_code)]
#[path = "../src/budget.rs"]
mod budget;
#[allow(dead_code)]
#[path = "../src/tensor_io.rs"]
mod tensor_io;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use half::f16;
use ndarray::Array2;
use tensor_io::Tensor;

/// An environment in which no Verilator exists: anything that reaches a build fails with "not
/// found".
const NO_VERILATOR: (&str, &str) = ("COFORGE_VERILATOR", "/nonexistent/verilator");

fn coforge(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coforge"));
    cmd.args(args).env_remove("COFORGE_MAX_MEMORY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run coforge")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.path(name), text).unwrap();
        self.arg(name)
    }
    fn put(&self, name: &str, t: Tensor) -> String {
        std::fs::write(self.path(name), t.to_npy_bytes()).unwrap();
        self.arg(name)
    }
    /// Every entry of the folder, hidden ones included.
    fn entries(&self) -> Vec<String> {
        names(self.0.path())
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs, expects exit code 1, an error naming every needle, and `out` not created.
fn refused(args: &[&str], env: &[(&str, &str)], out: &Path, needles: &[&str]) -> String {
    let o = coforge(args, env);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "{args:?} created {}", out.display());
    err
}

const SMALL: &str = "[stce]\nrows = 2\ncols = 3\nn = 2\nm = 4\n";
const INT4: &str = "[stce]\nrows = 2\ncols = 2\nn = 2\nm = 4\nweight_bits = 4\n";
const FP16: &str = "[stce]\nrows = 2\ncols = 2\ndtype = \"fp16\"\nn = 2\nm = 4\n";
const TRAINING: &str = "[stce]\nrows = 2\ncols = 2\ndtype = \"fp16\"\nn = 2\nm = 4\n[train]\n";

fn vectors(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testbenches/vectors")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn no_allocation_without_a_limit() {
    let d = Dir::new();
    let (c, out) = (d.write("c.toml", SMALL), d.arg("out"));
    let limit = "above the memory limit of";
    // Shapes: verify, golden random, mlp, and one whose product overflows 64 bits.
    for shape in ["99999999x1x1", "18446744073709551615x2x2"] {
        let args = ["verify", "--config", &c, "--out", &out, "--shape", shape];
        refused(
            &args,
            &[NO_VERILATOR],
            &d.path("out"),
            &[limit, "--max-memory"],
        );
    }
    let r = d.arg("r.npy");
    let args = [
        "golden",
        "random",
        "--shape",
        "100000x100000",
        "--dtype",
        "float32",
        "--seed",
        "1",
        "--out",
        &r,
    ];
    refused(&args, &[], &d.path("r.npy"), &[limit, "GiB"]);
    let args = ["mlp", "--out", &out, "--batch", "100000000"];
    refused(&args, &[], &d.path("out"), &[limit, "batch 100000000"]);
    // Small files whose product is huge: a 100000 x 1 by 1 x 100000 GEMM has 10^10 outputs.
    let a = d.put("a.npy", Tensor::I8(Array2::zeros((100_000, 1))));
    let b = d.put("b.npy", Tensor::I8(Array2::zeros((1, 100_000))));
    let args = ["golden", "gemm", "--a", &a, "--b", &b, "--out", &out];
    refused(&args, &[], &d.path("out"), &[limit]);
    // Endless and oversized inputs: refused at the magic, or at the shape before the data.
    refused(
        &[
            "verify",
            "--config",
            &c,
            "--out",
            &out,
            "--a",
            "/dev/zero",
            "--b",
            "/dev/zero",
        ],
        &[NO_VERILATOR],
        &d.path("out"),
        &["/dev/zero", "not a .npy file"],
    );
    let huge = d.arg("huge.npy");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '|i1', 'fortran_order': False, 'shape': (300000, 300000), }\n";
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    std::fs::write(&huge, bytes).unwrap();
    let args = [
        "golden",
        "prune",
        "--weights",
        &huge,
        "--n",
        "2",
        "--m",
        "4",
        "--axis",
        "0",
    ];
    let args = [&args[..], &["--out", &out]].concat();
    refused(&args, &[], &d.path("out"), &["huge.npy", limit]);
    // The limit is configurable, by flag and by environment, and a bad value is named.
    let args = [
        "golden", "random", "--shape", "100x100", "--dtype", "float32", "--seed", "1", "--out", &r,
    ];
    refused(
        &args,
        &[("COFORGE_MAX_MEMORY", "1K")],
        &d.path("r.npy"),
        &["1.0 KiB"],
    );
    let flagged = [&["--max-memory", "1K"], &args[..]].concat();
    refused(&flagged, &[], &d.path("r.npy"), &["1.0 KiB"]);
    refused(
        &args,
        &[("COFORGE_MAX_MEMORY", "lots")],
        &d.path("r.npy"),
        &["COFORGE_MAX_MEMORY"],
    );
    assert!(
        coforge(&args, &[]).status.success(),
        "the default limit allows small runs"
    );
}

#[test]
fn every_check_comes_before_the_verilator_build() {
    let d = Dir::new();
    let out = d.arg("out");
    let nothing = d.path("out");
    // --out is a file, or cannot be written.
    let c = d.write("c.toml", SMALL);
    let file = d.write("file", "x");
    let o = coforge(&["verify", "--config", &c, "--out", &file], &[NO_VERILATOR]);
    assert!(stderr(&o).contains("is a file"), "{}", stderr(&o));
    for unwritable in ["/proc/coforge-out", "/proc/self/coforge/out"] {
        let args = ["verify", "--config", &c, "--out", unwritable];
        refused(&args, &[NO_VERILATOR], Path::new(unwritable), &["--out"]);
    }
    // An int4 weight out of range, named as such.
    let c4 = d.write("int4.toml", INT4);
    let a = d.put("a.npy", Tensor::I8(Array2::ones((2, 8))));
    let mut w = Array2::<i8>::zeros((8, 3));
    w[[5, 1]] = 9;
    let b = d.put("b.npy", Tensor::I8(w));
    let args = [
        "verify", "--config", &c4, "--out", &out, "--a", &a, "--b", &b,
    ];
    let err = refused(
        &args,
        &[NO_VERILATOR],
        &nothing,
        &["9", "[5, 1]", "int4 range"],
    );
    assert!(!err.contains("shape mismatch"), "{err}");
    // A NaN operand of an fp16 engine.
    let cf = d.write("fp16.toml", FP16);
    let mut x = Array2::from_elem((2, 8), f16::ZERO);
    x[[1, 3]] = f16::NAN;
    let a16 = d.put("a16.npy", Tensor::F16(x));
    let b16 = d.put("b16.npy", Tensor::F16(Array2::from_elem((8, 2), f16::ZERO)));
    let args = [
        "verify", "--config", &cf, "--out", &out, "--a", &a16, "--b", &b16,
    ];
    refused(
        &args,
        &[NO_VERILATOR],
        &nothing,
        &["A contains NaN at index [1, 3]"],
    );
    // A fault-injection index outside A.
    let args = [
        "verify",
        "--config",
        &c,
        "--out",
        &out,
        "--corrupt-golden",
        "99,0",
    ];
    refused(&args, &[NO_VERILATOR], &nothing, &["outside A"]);
    // train: a NaN learning rate, found by the reference's first step.
    let ct = d.write("t.toml", TRAINING);
    let (x, w, dy) = (
        vectors("demo_x.npy"),
        vectors("demo_w32.npy"),
        vectors("demo_dy.npy"),
    );
    let args = [
        "train", "--config", &ct, "--x", &x, "--w", &w, "--dy", &dy, "--n", "2", "--m", "4",
        "--lr", "NaN", "--out", &out,
    ];
    refused(&args, &[NO_VERILATOR], &nothing, &["lr = NaN"]);
    // mlp: RTL options that would check nothing, or a pattern set the engine cannot run.
    for (extra, needle) in [
        (&["--rtl-steps", "0"][..], "--rtl-steps must be at least 1"),
        (
            &["--rtl-steps", "5", "--steps", "2"][..],
            "--rtl-steps 5 is more than --steps 2",
        ),
        (&["--patterns", "1:4"][..], "none of --patterns 1:4"),
        (&["--lr", "inf"][..], "--lr"),
    ] {
        let args = [&["mlp", "--out", &out, "--rtl-config", &ct][..], extra].concat();
        refused(&args, &[NO_VERILATOR], &nothing, &[needle]);
    }
    assert_eq!(d.entries().iter().filter(|n| n.starts_with('.')).count(), 0);
}

fn golden_gemm(d: &Dir, out: &str, a: Array2<i8>, b: Array2<i8>) -> Output {
    let (pa, pb) = (
        d.put("ga.npy", Tensor::I8(a)),
        d.put("gb.npy", Tensor::I8(b)),
    );
    coforge(
        &["golden", "gemm", "--a", &pa, "--b", &pb, "--out", out],
        &[],
    )
}

#[test]
fn a_reused_output_folder_holds_exactly_the_last_run() {
    let d = Dir::new();
    let out = d.arg("out");
    // gen: a renamed top leaves no old Verilog or filelist behind.
    let c1 = d.write("c1.toml", SMALL);
    let c2 = d.write("c2.toml", &format!("{SMALL}top = \"other_top\"\n"));
    for c in [&c1, &c2] {
        let o = coforge(&["gen", "--config", c, "--out", &out], &[]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let files = names(&d.path("out"));
    assert!(files.contains(&"other_top.v".to_string()), "{files:?}");
    assert!(
        !files.iter().any(|f| f.starts_with("stce_top")),
        "{files:?}"
    );
    // Another verb into the same folder: only its own files.
    let o = golden_gemm(&d, &out, Array2::ones((2, 3)), Array2::ones((3, 2)));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(names(&d.path("out")), [".coforge-output", "c.npy"]);
    // A failed run leaves the last good output untouched.
    let before = std::fs::read(d.path("out/c.npy")).unwrap();
    let o = golden_gemm(&d, &out, Array2::ones((2, 3)), Array2::ones((4, 2)));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(d.path("out/c.npy")).unwrap(), before);
    // A folder coforge did not write is never replaced.
    let mine = d.path("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep").unwrap();
    let o = golden_gemm(
        &d,
        &mine.display().to_string(),
        Array2::ones((1, 1)),
        Array2::ones((1, 1)),
    );
    assert!(stderr(&o).contains("did not write"), "{}", stderr(&o));
    assert_eq!(names(&mine), ["notes.txt"]);
    // No staging or set-aside folder is left beside the target.
    assert!(
        !d.entries().iter().any(|n| n.contains("coforge-")),
        "{:?}",
        d.entries()
    );
}

#[test]
fn concurrent_runs_into_one_folder_leave_one_whole_result() {
    let d = Dir::new();
    let out = d.arg("out");
    // Each run computes a different C (K differs), so a mix of two runs would show.
    let inputs: Vec<(String, String)> = (1..=6)
        .map(|k| {
            let a = d.put(&format!("a{k}.npy"), Tensor::I8(Array2::ones((3, k))));
            let b = d.put(&format!("b{k}.npy"), Tensor::I8(Array2::ones((k, 4))));
            (a, b)
        })
        .collect();
    let handles: Vec<_> = inputs
        .iter()
        .map(|(a, b)| {
            let args: Vec<String> = ["golden", "gemm", "--a", a, "--b", b, "--out", &out]
                .iter()
                .map(|s| s.to_string())
                .collect();
            std::thread::spawn(move || {
                Command::new(env!("CARGO_BIN_EXE_coforge"))
                    .args(&args)
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        let o = h.join().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(names(&d.path("out")), [".coforge-output", "c.npy"]);
    let Tensor::I32(c) = tensor_io::read_npy(&d.path("out/c.npy")).unwrap() else {
        panic!("c is int32")
    };
    let k = c[[0, 0]];
    assert!((1..=6).contains(&k) && c.iter().all(|&v| v == k), "{c:?}");
    assert!(
        !d.entries().iter().any(|n| n.contains("coforge-")),
        "{:?}",
        d.entries()
    );
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn a_waves_window_past_the_run_keeps_the_result_and_says_so() {
    let d = Dir::new();
    let (c, out) = (d.write("c.toml", SMALL), d.arg("out"));
    let verify = |extra: &[&str]| {
        let args = [
            &["verify", "--config", &c, "--out", &out, "--shape", "4x8x3"][..],
            extra,
        ];
        coforge(&args.concat(), &[])
    };
    // The window ends after the run: clipped, VCD written.
    let o = verify(&["--waves", "5:1000000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("clipped"), "{}", stderr(&o));
    let r = report(&d.path("out"));
    assert_eq!(r["bit_exact"], true);
    let w = &r["waves_window"];
    let simulated = w["cycles_simulated"].as_u64().unwrap();
    assert_eq!(w["recorded"], serde_json::json!([5, simulated - 1]));
    assert!(d.path("out/waves.vcd").exists());
    // The window starts after the run: no VCD, and the result is still written.
    let o = verify(&["--waves", "1000000:1000010"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&d.path("out"));
    assert_eq!(r["bit_exact"], true);
    assert_eq!(r["waves"], serde_json::Value::Null);
    assert_eq!(r["waves_window"]["recorded"], serde_json::Value::Null);
    assert!(
        !d.path("out/waves.vcd").exists(),
        "no stale VCD from the run before"
    );
    // Without --waves: no window, and the report keeps every documented field.
    let o = verify(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&d.path("out"));
    for key in [
        "bit_exact",
        "mismatches",
        "first_mismatch",
        "cycles",
        "estimated_cycles",
        "effective_macs",
        "dense_equivalent_macs",
        "utilization",
        "seed",
        "config_hash",
        "verilator_version",
        "waves",
    ] {
        assert!(r.get(key).is_some(), "report.json lacks {key}");
    }
    assert_eq!(r["waves_window"], serde_json::Value::Null);
}

#[test]
fn nothing_passes_with_nothing_checked() {
    let d = Dir::new();
    let (c, out) = (d.write("c.toml", SMALL), d.arg("out"));
    // K = 0 (and M = 0) from .npy, as --shape rejects them.
    for (a, b) in [((3, 0), (0, 2)), ((0, 4), (4, 2))] {
        let pa = d.put("a.npy", Tensor::I8(Array2::zeros(a)));
        let pb = d.put("b.npy", Tensor::I8(Array2::zeros(b)));
        let args = [
            "verify", "--config", &c, "--out", &out, "--a", &pa, "--b", &pb,
        ];
        refused(&args, &[NO_VERILATOR], &d.path("out"), &["at least 1"]);
    }
    // A pattern the RTL engine cannot run is reported as not run, beside the one that ran.
    let ct = d.write("t.toml", TRAINING);
    let args = [
        "mlp",
        "--out",
        &out,
        "--steps",
        "1",
        "--rtl-steps",
        "1",
        "--patterns",
        "2:4,1:4",
        "--rtl-config",
        &ct,
    ];
    let o = coforge(&args, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1:4: not run on RTL"), "{}", stderr(&o));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path("out/summary.json")).unwrap())
            .unwrap();
    let ran = &s["results"][0]["rtl"];
    assert_eq!(ran["bit_exact"], true);
    assert_eq!(ran["steps"], 1);
    assert!(ran["tensors_compared_per_step"].as_u64().unwrap() > 0);
    let skipped = &s["results"][1]["rtl"];
    assert_eq!(skipped["ran"], false);
    assert!(skipped["reason"]
        .as_str()
        .unwrap()
        .contains("built for 2:4"));
    assert!(
        skipped.get("bit_exact").is_none(),
        "not run is not bit-exact"
    );
}

#[test]
fn messages_say_what_is_wrong() {
    let d = Dir::new();
    let out = d.arg("out");
    // golden gemm rejects NaN like every other verb.
    let mut x = Array2::from_elem((2, 2), f16::ZERO);
    x[[0, 1]] = f16::NAN;
    let a = d.put("a.npy", Tensor::F16(x));
    let b = d.put("b.npy", Tensor::F16(Array2::from_elem((2, 2), f16::ZERO)));
    let args = ["golden", "gemm", "--a", &a, "--b", &b, "--out", &out];
    refused(
        &args,
        &[],
        &d.path("out"),
        &["a.npy contains NaN at index [0, 1]"],
    );
    // An fp16 scale that would give infinities.
    let r = d.arg("r.npy");
    let args = [
        "golden", "random", "--shape", "2x2", "--dtype", "float16", "--seed", "1", "--scale",
        "70000", "--out", &r,
    ];
    refused(&args, &[], &d.path("r.npy"), &["65504"]);
    // weight_bits on an fp16 engine.
    let c = d.write("c.toml", &format!("{FP16}weight_bits = 4\n"));
    refused(
        &["gen", "--config", &c, "--out", &out],
        &[],
        &d.path("out"),
        &["stce.weight_bits"],
    );
    // OS errors once.
    let missing = d.arg("missing.toml");
    for args in [
        vec!["gen", "--config", &missing, "--out", &out],
        vec![
            "golden", "gemm", "--a", &missing, "--b", &missing, "--out", &out,
        ],
    ] {
        let err = refused(&args, &[], &d.path("out"), &["missing.toml"]);
        assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    }
    // Exit codes: 2 for a malformed command line, 1 for bad input found by a verb.
    let o = coforge(
        &[
            "verify", "--config", &missing, "--out", &out, "--shape", "0x1x1",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = coforge(&["verify", "--config", &missing, "--out", &out], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}
