//! `coforge schedule`: the three files, deterministic, validated; every bad input class exits 1
//! with an error naming the problem and writes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SYSTEM: &str = "[stce]\nrows = 4\ncols = 4\nn = 2\nm = 8\ndtype = \"fp16\"\n[train]\n\
                      [system]\n";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn coforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coforge"))
        .args(args)
        .output()
        .unwrap()
}

fn schedule(net: &Path, config: &Path, out: &Path) -> Output {
    coforge(&[
        "schedule",
        "--net",
        net.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn writes_a_valid_deterministic_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "sat.toml", SYSTEM);
    let net = repo().join("networks/small-cnn-ci.toml");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let o = schedule(&net, &config, out);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains("estimated"), "{stdout}");
    }
    for file in ["schedule.json", "layers.csv", "schedule.svg"] {
        let (x, y) = (
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
        );
        assert!(!x.is_empty() && x == y, "{file} differs between two runs");
    }
    let s: coforge_scheduler::Schedule =
        serde_json::from_slice(&std::fs::read(a.join("schedule.json")).unwrap()).unwrap();
    coforge_scheduler::validate(&s).unwrap();
    let csv = std::fs::read_to_string(a.join("layers.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("conv2,ff,")), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("fc,prune_b,")), "{csv}");
    // No input gradient (the network file's default): the first layer has no bp row.
    assert!(csv.lines().any(|l| l.starts_with("conv2,bp,")), "{csv}");
    assert!(!csv.lines().any(|l| l.starts_with("conv1,bp,")), "{csv}");
    let svg = std::fs::read_to_string(a.join("schedule.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("dma (memory port)"),
        "{svg}"
    );
}

#[test]
fn bad_inputs_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "sat.toml", SYSTEM);
    let tiny = write(
        dir.path(),
        "tiny.toml",
        &SYSTEM.replace("[system]\n", "[system]\nout_lines = 4\n"),
    );
    let no_system = write(
        dir.path(),
        "stce.toml",
        "[stce]\nrows = 4\ncols = 4\nn = 2\nm = 8\n",
    );
    let head = "name = \"n\"\nbatch = 2\n";
    let linear = "[[layer]]\nkind = \"linear\"\nin = 64\nout = 64\n";
    let cases: Vec<(&str, String, &Path, &str)> = vec![
        ("kind", format!("{head}[[layer]]\nkind = \"pool\"\n"), &config, "unknown layer kind `pool`"),
        ("zero", format!("{head}[[layer]]\nkind = \"linear\"\nin = 0\nout = 4\n"), &config, "`in` = 0"),
        (
            "conv",
            format!("{head}[[layer]]\nkind = \"conv\"\ncin = 1\ncout = 4\nkh = 5\nkw = 5\nh = 3\nw = 3\n"),
            &config,
            "output is empty",
        ),
        (
            "gradient",
            format!("{head}input_gradient = 3\n{linear}"),
            &config,
            "`input_gradient` = 3 is not a boolean; use `input_gradient = false`",
        ),
        ("buffers", format!("{head}{linear}"), &tiny, "system.out_lines"),
        ("system", format!("{head}{linear}"), &no_system, "[system]"),
    ];
    for (name, text, config, needle) in cases {
        let net = write(dir.path(), &format!("{name}.toml"), &text);
        let out = dir.path().join(format!("out-{name}"));
        let o = schedule(&net, config, &out);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(needle), "{name}: {stderr}");
        assert!(stderr.starts_with("error: "), "{name}: {stderr}");
        assert!(!out.exists(), "{name}: {} was written", out.display());
    }
}

/// A reader that goes away (`coforge schedule ... | head -0`) does not make the finished run
/// panic: the summary lines are dropped, the files are written and the run succeeds.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "sat.toml", SYSTEM);
    let net = repo().join("networks/small-cnn-ci.toml");
    let out = dir.path().join("s");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coforge"))
        .args(["schedule", "--net", net.to_str().unwrap()])
        .args([
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the only reader before the command prints anything.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(o.status.success(), "{stderr}");
    assert!(out.join("schedule.json").is_file());
}
