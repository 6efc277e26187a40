//! `coforge baseline record | check`: the committed baselines pass, a wider array is a
//! regression (more LUTs), a better figure is an improvement that does not fail, and a different
//! tool version is named.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::stderr;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `coforge ARGS` run in `dir` (baselines store config paths relative to where they were recorded).
fn coforge_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coforge"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run coforge")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_committed_default_baseline_passes() {
    // One config with its Yosys part, to keep the test short; scripts/test.sh checks them all.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_root().join("baselines/default.json"),
        tmp.path().join("default.json"),
    )
    .unwrap();
    let dir = tmp.path().display().to_string();
    let o = coforge_in(&repo_root(), &["baseline", "check", "--baseline", &dir]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("every figure equal to the baseline"),
        "{}",
        stdout(&o)
    );
}

const NARROW: &str = "[stce]\nrows = 2\ncols = 2\nn = 2\nm = 4\n";
const WIDE: &str = "[stce]\nrows = 2\ncols = 4\nn = 2\nm = 4\n";

#[test]
fn record_then_check_regressions_improvements_and_tool_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("c.toml"), NARROW).unwrap();
    let o = coforge_in(
        dir,
        &["baseline", "record", "--config", "c.toml", "--out", "bl"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let recorded = read_json(&dir.join("bl/c.json"));
    assert_eq!(recorded["config"], "c.toml");
    let top = &recorded["resources"][0];
    assert_eq!(top["dsps"], 8, "one DSP per multiplier: 4 PEs x 2");
    assert!(top["luts"].as_u64().unwrap() > 0 && top["longest_path"].as_u64().unwrap() > 0);
    let names: Vec<&str> = recorded["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "stce gemm 16x64x16 sparse seed 1",
            "stce gemm 16x64x16 dense seed 1",
            "stce gemm 7x40x9 sparse seed 2"
        ]
    );
    assert!(recorded["tools"]["yosys"]
        .as_str()
        .unwrap()
        .starts_with("Yosys"));

    // Unchanged: passes.
    let o = coforge_in(dir, &["baseline", "check", "--baseline", "bl"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    // An improvement: the recorded figures were worse than today's. Reported, not a failure.
    let mut better = recorded.clone();
    better["workloads"][0]["cycles"] =
        (recorded["workloads"][0]["cycles"].as_u64().unwrap() + 10).into();
    better["resources"][0]["luts"] = (top["luts"].as_u64().unwrap() + 100).into();
    // A tool version other than today's is said, not hidden.
    better["tools"]["verilator"] = "Verilator 4.228 2022-01-17".into();
    std::fs::write(dir.join("bl/c.json"), better.to_string()).unwrap();
    let o = coforge_in(dir, &["baseline", "check", "--baseline", "bl"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains("improvement") && !out.contains("REGRESSION"),
        "{out}"
    );
    assert!(
        out.contains("2 figure(s) improved") && out.contains("re-record"),
        "{out}"
    );
    assert!(
        out.contains("tool version differs") && out.contains("Verilator 4.228"),
        "{out}"
    );
    std::fs::write(dir.join("bl/c.json"), recorded.to_string()).unwrap();

    // A wider array: more LUTs, flip-flops and DSPs is a regression, within a 2% LUT tolerance
    // or not; fewer cycles are an improvement at the same time.
    std::fs::write(dir.join("c.toml"), WIDE).unwrap();
    let o = coforge_in(
        dir,
        &[
            "baseline",
            "check",
            "--baseline",
            "bl",
            "--tolerance",
            "luts=2%",
        ],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    let row = |figure: &str| {
        out.lines()
            .find(|l| l.split_whitespace().any(|w| w == figure))
            .unwrap_or_else(|| panic!("no {figure} row:\n{out}"))
            .to_string()
    };
    assert!(row("luts").ends_with("REGRESSION"), "{out}");
    assert!(
        row("dsps").contains("8  ") && row("dsps").contains("16 +8 (+100.0%)"),
        "{out}"
    );
    assert!(row("cycles").ends_with("improvement"), "{out}");
    assert!(
        out.contains("c: c.toml changed since the baseline was recorded"),
        "{out}"
    );
    let err = stderr(&o);
    assert!(
        err.contains("regressed beyond the tolerance")
            && err.contains("coforge baseline record --config c.toml --out bl"),
        "{err}"
    );

    // Cycles only: the wider array's fewer cycles are improvements, nothing fails.
    let o = coforge_in(
        dir,
        &["baseline", "check", "--baseline", "bl", "--no-yosys"],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("Yosys figures not checked"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bad_baselines_and_tolerances_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("empty")).unwrap();
    let o = coforge_in(dir, &["baseline", "check", "--baseline", "empty"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("holds no baseline"), "{}", stderr(&o));
    std::fs::write(dir.join("empty/x.json"), "{}").unwrap();
    let o = coforge_in(dir, &["baseline", "check", "--baseline", "empty"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not a coforge baseline"),
        "{}",
        stderr(&o)
    );
    let o = coforge_in(
        dir,
        &[
            "baseline",
            "check",
            "--baseline",
            "empty",
            "--tolerance",
            "lut=2%",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "a malformed tolerance is a usage error"
    );
    assert!(
        stderr(&o).contains("unknown figure `lut`"),
        "{}",
        stderr(&o)
    );
}
