//! coforge in CI: the JUnit report and mismatch.svg on passing and failing runs of `verify` and
//! `train`, and one test per exit code (0 pass, 1 failed comparison or bad input, 2 usage error,
//! 3 missing tool).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{coforge, is_empty_or_missing, stderr, Case, SMALL};

/// `coforge verify` with a JUnit report at `junit.xml` beside the config.
fn verify(c: &Case, extra: &[&str]) -> Output {
    let junit = c.arg("junit.xml");
    let mut args = vec!["--junit", junit.as_str()];
    args.extend_from_slice(extra);
    c.verify(&args)
}

const TRAINING: &str = "[stce]\nrows = 2\ncols = 2\ndtype = \"fp16\"\nn = 2\nm = 4\n[train]\n";

/// The parsed JUnit file: (tests, failures) of `<testsuites>`, every test case's name, and the
/// failure messages.
struct JunitSummary {
    tests: usize,
    failures: usize,
    cases: Vec<String>,
    messages: Vec<String>,
    properties: Vec<(String, String)>,
}

fn read_junit(path: &Path) -> JunitSummary {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed JUnit XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let count = |attr: &str| root.attribute(attr).unwrap().parse::<usize>().unwrap();
    let nodes = |tag: &'static str| root.descendants().filter(move |n| n.has_tag_name(tag));
    for suite in nodes("testsuite") {
        assert!(suite.attribute("time").unwrap().parse::<f64>().unwrap() >= 0.0);
    }
    JunitSummary {
        tests: count("tests"),
        failures: count("failures"),
        cases: nodes("testcase")
            .map(|n| n.attribute("name").unwrap().to_string())
            .collect(),
        messages: nodes("failure")
            .map(|n| n.attribute("message").unwrap().to_string())
            .collect(),
        properties: nodes("property")
            .map(|n| {
                (
                    n.attribute("name").unwrap().to_string(),
                    n.attribute("value").unwrap().to_string(),
                )
            })
            .collect(),
    }
}

fn assert_svg(path: &Path, needle: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        doc.descendants().any(|n| n.has_tag_name("circle")),
        "first mismatch marked"
    );
    assert!(text.contains(needle), "{needle:?} not in the picture");
}

#[test]
fn verify_junit_and_picture_on_a_pass_and_on_an_injected_mismatch() {
    let c = Case::new(SMALL);
    let o = verify(&c, &["--shape", "4x16x3", "--seed", "5"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = read_junit(&c.path("junit.xml"));
    assert_eq!((j.tests, j.failures), (1, 0));
    assert_eq!(j.cases, ["stce_top.c"]);
    assert!(j.properties.contains(&("seed".into(), "5".into())));
    assert!(
        !c.path("out/mismatch.svg").exists(),
        "no picture on a bit-exact run"
    );

    // A[1, k] flipped as the reference sees it hits row 1 of C wherever the pruned B keeps k;
    // take the first k that B keeps.
    let o = (0..16)
        .map(|k| {
            let index = format!("1,{k}");
            verify(
                &c,
                &[
                    "--shape",
                    "4x16x3",
                    "--seed",
                    "5",
                    "--corrupt-golden",
                    &index,
                ],
            )
        })
        .find(|o| o.status.code() != Some(0))
        .expect("B keeps some k");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.path("out/report.json")).unwrap()).unwrap();
    let mismatches = report["mismatches"].as_u64().unwrap();
    let j = read_junit(&c.path("junit.xml"));
    assert_eq!((j.tests, j.failures), (1, 1));
    let m = &j.messages[0];
    assert!(
        m.starts_with("first mismatch in `c` at [1, ")
            && m.contains("golden ")
            && m.contains("but RTL ")
            && m.contains("read out at cycle ")
            && m.ends_with(&format!("; {mismatches} of 12 elements differ")),
        "{m}"
    );
    assert_svg(&c.path("out/mismatch.svg"), "first mismatch in `c` at [1, ");
    assert!(stderr(&o).contains("mismatch.svg"), "{}", stderr(&o));
}

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testbenches/vectors")
}

fn train(c: &Case, steps: &str, extra: &[&str]) -> Output {
    let v = vectors();
    let arg = |f: &str| v.join(f).display().to_string();
    let (config, out, junit) = (c.arg("c.toml"), c.arg("out"), c.arg("junit.xml"));
    let (x, w, dy) = (arg("demo_x.npy"), arg("demo_w32.npy"), arg("demo_dy.npy"));
    let mut args = vec![
        "train", "--config", &config, "--x", &x, "--w", &w, "--dy", &dy, "--n", "2", "--m", "4",
        "--lr", "0.01", "--steps", steps, "--out", &out, "--junit", &junit,
    ];
    args.extend_from_slice(extra);
    coforge(&args, &[])
}

#[test]
fn train_junit_has_one_case_per_tensor_and_step_and_a_picture_on_mismatch() {
    let c = Case::new(TRAINING);
    let o = train(&c, "2", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = read_junit(&c.path("junit.xml"));
    assert_eq!((j.tests, j.failures), (20, 0), "10 tensors x 2 steps");
    for name in [
        "stce_top.y",
        "wuve_top.w16",
        "sore_top.mask_f",
        "step_inputs.w16_used",
    ] {
        assert_eq!(j.cases.iter().filter(|c| *c == name).count(), 2, "{name}");
    }
    assert!(!c.path("out/mismatch.svg").exists());

    // X[0, 1] flipped for the reference only: y differs first (row 0), then everything
    // downstream of it.
    let o = train(&c, "1", &["--corrupt-golden", "0,1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j = read_junit(&c.path("junit.xml"));
    assert_eq!(j.tests, 10);
    assert!(j.failures >= 2, "y and dw differ at least: {}", j.failures);
    assert!(
        j.messages[0].starts_with("first mismatch in `y` at [0, "),
        "{}",
        j.messages[0]
    );
    assert_svg(&c.path("out/mismatch.svg"), "first mismatch in `y` at [0, ");
    assert!(
        stderr(&o).contains("first mismatch in `y`"),
        "{}",
        stderr(&o)
    );

    let o = train(&c, "1", &["--corrupt-golden", "999,0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("outside X"), "{}", stderr(&o));
}

#[test]
fn exit_code_0_on_a_bit_exact_run() {
    let c = Case::new(SMALL);
    let o = verify(&c, &["--shape", "2x8x2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn exit_code_1_on_bad_input() {
    let c = Case::new("[stce]\nrows = 0\ncols = 2\nn = 2\nm = 4\n");
    let o = verify(&c, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("stce.rows"), "{}", stderr(&o));
    assert!(
        !c.path("junit.xml").exists(),
        "no report when nothing was compared"
    );
}

#[test]
fn exit_code_2_on_a_usage_error() {
    let c = Case::new(SMALL);
    let o = verify(&c, &["--shape", "4x4"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = coforge(&["verify", "--no-such-flag"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn exit_code_3_when_a_tool_is_missing() {
    let c = Case::new(SMALL);
    let (config, out) = (c.arg("c.toml"), c.arg("out"));
    let o = coforge(
        &["verify", "--config", &config, "--out", &out],
        &[("COFORGE_VERILATOR", "/nonexistent/verilator")],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("/nonexistent/verilator) not found") && err.contains("setup.sh"),
        "{err}"
    );
    assert!(is_empty_or_missing(&c.path("out")));
    let o = coforge(
        &["estimate", "--config", &config, "--out", &out],
        &[("COFORGE_YOSYS", "/nonexistent/yosys")],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("yosys not found"), "{}", stderr(&o));
}
