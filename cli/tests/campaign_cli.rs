//! `coforge campaign`: a small slice of each engine's differential campaign (the full runs of
//! 10,000+ cases are run by hand, see the README), reproducibility, and the failure path.

use std::path::Path;
use std::process::{Command, Output};

fn coforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coforge"))
        .args(args)
        .output()
        .expect("run coforge")
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Runs a campaign and returns its summary, asserting it passed.
fn passes(engine: &str, cases: u64, seed: u64, out: &Path) -> serde_json::Value {
    let o = coforge(&[
        "campaign",
        "--engine",
        engine,
        "--cases",
        &cases.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "{engine} campaign failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = summary(out);
    assert_eq!(s["cases"], cases);
    assert_eq!(s["mismatches"], 0);
    let variants = s["variants"].as_array().unwrap();
    let per_variant: u64 = variants.iter().map(|v| v["cases"].as_u64().unwrap()).sum();
    assert_eq!(per_variant, cases);
    assert!(variants.iter().all(|v| v["cases"].as_u64().unwrap() > 0));
    assert!(s["elements_compared"].as_u64().unwrap() > cases);
    s
}

#[test]
fn a_slice_of_every_engine_campaign_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let stce = passes("stce", 52, 1, &dir.path().join("stce"));
    // Every STCE variant ran in each of its modes.
    for v in stce["variants"].as_array().unwrap() {
        let patterns: Vec<&str> = v["patterns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pattern"].as_str().unwrap())
            .collect();
        assert!(patterns.contains(&"dense"), "{v}");
    }
    let names: Vec<&str> = stce["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["variant"].as_str().unwrap())
        .collect();
    for dtype in ["int8", "int4", "fp16"] {
        assert!(names.iter().any(|n| n.starts_with(dtype)), "{names:?}");
    }
    passes("sore", 50, 1, &dir.path().join("sore"));
    // Seeded: the same seed gives the same cases, another seed other cases.
    let a = passes("wuve", 50, 1, &dir.path().join("wuve-a"));
    let b = passes("wuve", 50, 1, &dir.path().join("wuve-b"));
    let c = passes("wuve", 50, 2, &dir.path().join("wuve-c"));
    assert_eq!(a["elements_compared"], b["elements_compared"]);
    assert_ne!(a["elements_compared"], c["elements_compared"]);
}

/// The deformable engine: two cases on each of its five small engines (plain, CoDeNet at stride
/// 1 and 2, DCNv2 with and without a mask), random back-pressure included.
#[test]
fn a_slice_of_the_deformable_campaign_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let s = passes("deform", 10, 5, &dir.path().join("deform"));
    let patterns: Vec<String> = s["variants"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| v["patterns"].as_array().unwrap().iter())
        .map(|p| p["pattern"].as_str().unwrap().to_string())
        .collect();
    for want in ["3x3", "1x1 + deformable 3x3", "dcnv2", "dcnv2 with mask"] {
        assert!(patterns.iter().any(|p| p == want), "{want}: {patterns:?}");
    }
}

#[test]
fn a_failing_case_is_written_out_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[stce]\nrows = 2\ncols = 3\nn = 2\nm = 4\n").unwrap();
    let out = dir.path().join("out");
    let o = coforge(&[
        "campaign",
        "--engine",
        "stce",
        "--config",
        config.to_str().unwrap(),
        "--cases",
        "4",
        "--out",
        out.to_str().unwrap(),
        "--corrupt-case",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("MISMATCH case 2"), "{err}");
    let s = summary(&out);
    assert_eq!(s["cases"], 4);
    assert_eq!(s["mismatches"], 1);
    let failure = &s["failures"][0];
    assert_eq!(failure["case"], 2);
    let replay = failure["replay"].as_str().unwrap();
    assert!(replay.contains("--only 2"), "{replay}");
    for f in ["stce-case2-a.npy", "stce-case2-b.npy", "stce-case2.toml"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The written inputs replay through `coforge verify`, which (without the injected fault)
    // agrees with the reference.
    let verify = replay.lines().next().unwrap();
    assert!(verify.starts_with("coforge verify "), "{verify}");
    let args: Vec<&str> = verify.split_whitespace().skip(1).collect();
    let o = coforge(&args);
    assert!(
        o.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("BIT-EXACT"), "{stdout}");
}
