//! The CI workflow users copy (scripts/ci/): the script that both the GitHub Actions workflow
//! and the GitLab job call, run here exactly as they call it, on a passing config, on an injected
//! mismatch (JUnit report, waves and mismatch picture for the artifacts) and on a machine without
//! Verilator; and the two workflow files checked to call it and publish what it writes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::SMALL;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ci_script(dir: &Path, verify_args: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/ci/coforge-ci.sh"))
        .args(["out", "c.toml"])
        .current_dir(dir)
        .env("COFORGE", env!("CARGO_BIN_EXE_coforge"))
        .env("COFORGE_VERIFY_ARGS", verify_args)
        .env("COFORGE_WAVES_BEFORE", "20");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run bash")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_ci_script_passes_fails_with_artifacts_and_tells_a_missing_tool() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("c.toml"), SMALL).unwrap();
    let args = "--shape 4x16x3 --seed 5";

    let o = ci_script(dir, args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(dir.join("out/junit/c.xml").is_file());
    assert!(dir.join("out/c/report.json").is_file());
    assert!(!dir.join("out/c/waves.vcd").exists() && !dir.join("out/c/mismatch.svg").exists());

    // A[1, k] flipped for the reference: the first k that the pruned B keeps makes a mismatch.
    let o = (0..16)
        .map(|k| ci_script(dir, &format!("{args} --corrupt-golden 1,{k}"), &[]))
        .find(|o| o.status.code() != Some(0))
        .expect("B keeps some k");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/c/report.json")).unwrap())
            .unwrap();
    let cycle = report["first_mismatch"]["cycle"].as_u64().unwrap();
    assert!(
        text(&o).contains(&format!(
            "dumping waves of cycles {}:{cycle}",
            cycle.saturating_sub(20)
        )),
        "{}",
        text(&o)
    );
    let vcd = std::fs::read_to_string(dir.join("out/c/waves.vcd")).unwrap();
    assert!(vcd.contains("$enddefinitions"), "a VCD");
    assert!(dir.join("out/c/mismatch.svg").is_file());
    let junit = std::fs::read_to_string(dir.join("out/junit/c.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    assert_eq!(doc.root_element().attribute("failures"), Some("1"));

    let o = ci_script(
        dir,
        args,
        &[("COFORGE_VERILATOR", "/nonexistent/verilator")],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
}

#[test]
fn both_workflows_install_verilator_cache_run_the_script_and_publish_its_output() {
    for file in ["github-workflow.yml", "gitlab-ci.yml"] {
        let w = std::fs::read_to_string(repo_root().join("scripts/ci").join(file)).unwrap();
        for needle in [
            "apt-get install -y --no-install-recommends verilator",
            "COFORGE_CACHE_DIR",
            ".coforge-cache",
            "scripts/ci/coforge-ci.sh coforge-out $CONFIGS",
            "coforge-out/junit/*.xml",
            "coforge-out/*/waves.vcd",
            "coforge-out/*/mismatch.svg",
        ] {
            assert!(w.contains(needle), "{file} lacks {needle:?}");
        }
        assert!(!w.contains('\t'), "{file}: YAML forbids tabs");
    }
    let gh = std::fs::read_to_string(repo_root().join("scripts/ci/github-workflow.yml")).unwrap();
    assert!(gh.contains("key: coforge-${{ steps.verilator.outputs.version }}"));
}
