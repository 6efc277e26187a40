//! `coforge sweep` and `coforge sweep merge`: sharding (the union of N shards is the whole
//! sweep, with no duplicates), merge refusing overlap and missing points, bad `--shard` values
//! and bad space files refused before any work, deterministic output, and the Yosys estimate
//! cache hit on a second run (with a short co-simulation on the first).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{coforge, is_empty_or_missing, stderr};

/// A network small enough that scheduling it is instant.
const NET: &str = "name = \"tiny\"\nbatch = 4\nnm = \"sparse\"\n\n[[layer]]\nkind = \"linear\"\n\
                   in = 16\nout = 8\nnm = \"dense\"\n\n[[layer]]\nkind = \"linear\"\nin = 8\n\
                   out = 8\n";

/// 2 grids, 11 points.
const SPACE: &str = "networks = [\"tiny.toml\"]\n\n[[grid]]\narray = [\"1x1\", \"2x2\", \"2x3\"]\n\
                     nm = [\"2:4\", \"1:4\", \"2:2\"]\n\n[[grid]]\narray = [\"2x2\", \"4x2\"]\n\
                     nm = [\"2:8\"]\ndsp_packing = [\"int8x2\"]\n";

struct Sweep {
    tmp: tempfile::TempDir,
}

impl Sweep {
    fn new(space: &str) -> Sweep {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("tiny.toml"), NET).unwrap();
        std::fs::write(tmp.path().join("space.toml"), space).unwrap();
        Sweep { tmp }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
    /// `coforge sweep --space space.toml --out OUT EXTRA...` with the cache in the temp folder.
    fn run(&self, out: &str, extra: &[&str]) -> std::process::Output {
        let (space, out) = (self.arg("space.toml"), self.arg(out));
        let mut args = vec!["sweep", "--space", &space, "--out", &out];
        args.extend_from_slice(extra);
        let cache = self.arg("cache");
        coforge(&args, &[("COFORGE_CACHE_DIR", &cache)])
    }
    fn merge(&self, dirs: &[&str], out: &str) -> std::process::Output {
        let dirs: Vec<String> = dirs.iter().map(|d| self.arg(d)).collect();
        let out = self.arg(out);
        let mut args = vec!["sweep", "merge"];
        args.extend(dirs.iter().map(String::as_str));
        args.extend(["--out", &out]);
        coforge(&args, &[])
    }
    fn json(&self, dir: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path(dir).join("sweep.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
    fn read(&self, dir: &str, file: &str) -> String {
        std::fs::read_to_string(self.path(dir).join(file)).unwrap()
    }
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

fn indices(v: &serde_json::Value) -> Vec<u64> {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect()
}

#[test]
fn the_union_of_n_shards_is_the_whole_sweep_without_duplicates() {
    let s = Sweep::new(SPACE);
    ok(&s.run("whole", &["--no-yosys", "--jobs", "2"]));
    let whole = s.json("whole");
    assert_eq!(whole["point_ids"].as_array().unwrap().len(), 11);
    assert_eq!(indices(&whole), (0..11).collect::<Vec<_>>());
    let csv = s.read("whole", "sweep.csv");
    assert_eq!(csv.lines().count(), 12, "{csv}");
    assert!(csv
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("0,int8-1x1-2of4,int8,1,1,2,4,none,,"));
    // Every row has an estimate for the network.
    for r in whole["records"].as_array().unwrap() {
        assert!(r["cycles_estimated"][0].as_u64().unwrap() > 0, "{r}");
    }

    for n in [2usize, 3, 5, 11, 13] {
        let mut seen = BTreeSet::new();
        let mut dirs = Vec::new();
        for i in 0..n {
            let dir = format!("n{n}-s{i}");
            ok(&s.run(&dir, &["--no-yosys", "--shard", &format!("{i}/{n}")]));
            let shard = s.json(&dir);
            for (r, idx) in shard["records"]
                .as_array()
                .unwrap()
                .iter()
                .zip(indices(&shard))
            {
                assert_eq!(idx as usize % n, i, "point {idx} in shard {i}/{n}");
                assert!(seen.insert(idx), "point {idx} in two shards of {n}");
                // The shard's record equals the whole sweep's record of that point.
                assert_eq!(r, &whole["records"][idx as usize], "n = {n}");
            }
            dirs.push(dir);
        }
        assert_eq!(seen, (0..11).collect::<BTreeSet<_>>(), "n = {n}");
        let refs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let merged = format!("merged-{n}");
        ok(&s.merge(&refs, &merged));
        assert_eq!(s.read(&merged, "sweep.csv"), csv, "n = {n}");
        assert_eq!(s.json(&merged)["records"], whole["records"]);
    }

    // Deterministic: a second whole run writes the same bytes.
    ok(&s.run("again", &["--no-yosys"]));
    for f in ["sweep.csv", "sweep.json", "pareto.svg"] {
        assert_eq!(s.read("again", f), s.read("whole", f), "{f}");
    }
}

#[test]
fn merge_refuses_overlapping_and_missing_points_and_writes_nothing() {
    let s = Sweep::new(SPACE);
    for i in 0..3 {
        ok(&s.run(
            &format!("s{i}"),
            &["--no-yosys", "--shard", &format!("{i}/3")],
        ));
    }
    ok(&s.run("half", &["--no-yosys", "--shard", "0/2"]));

    let o = s.merge(&["s0", "s1", "s2", "s1"], "m1");
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("point 1 (`int8-1x1-1of4`) is in both"), "{e}");
    assert!(e.contains("overlap"), "{e}");

    let o = s.merge(&["s0", "s1", "s2", "half"], "m2");
    assert!(
        stderr(&o).contains("point 0 (`int8-1x1-2of4`) is in both"),
        "{}",
        stderr(&o)
    );

    let o = s.merge(&["s0", "s2"], "m3");
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("4 of the space's 11 points are in no given folder: 1 (`int8-1x1-1of4`), 4 (`int8-2x2-1of4`), 7 (`int8-2x3-1of4`), 10 (`int8-4x2-2of8-int8x2`)"),
        "{e}"
    );
    assert!(e.contains("shards 0/3, 2/3"), "{e}");

    // Shards of another space.
    let other = Sweep::new(&SPACE.replace("\"1x1\", ", ""));
    ok(&other.run("o0", &["--no-yosys", "--shard", "0/1"]));
    let o = s.merge(&["s0", &other.arg("o0")], "m4");
    assert!(stderr(&o).contains("different spaces"), "{}", stderr(&o));

    let o = s.merge(&["s0", "nowhere"], "m5");
    assert!(
        stderr(&o).contains("holds no readable sweep.json"),
        "{}",
        stderr(&o)
    );

    for m in ["m1", "m2", "m3", "m4", "m5"] {
        assert!(is_empty_or_missing(&s.path(m)), "{m} was written");
    }
}

#[test]
fn bad_shards_and_spaces_are_refused_before_any_work() {
    let s = Sweep::new(SPACE);
    for bad in ["0/0", "3/2", "a/b", "1/0", "2/2", "1"] {
        let o = s.run("out", &["--no-yosys", "--shard", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(bad) && e.contains("0 <= I < N"), "{bad}: {e}");
        assert!(is_empty_or_missing(&s.path("out")), "{bad}");
    }
    let o = s.run("out", &["--no-yosys", "--jobs", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let cases: &[(&str, &str)] = &[
        ("networks = [\"tiny.toml\"\n", "is not valid"),
        (
            "networks = [\"tiny.toml\"]\n[[grid]]\narray = [\"4x4\"]\nnm = [\"2:8\"]\nsize = 3\n",
            "unknown field `size`",
        ),
        (
            "networks = [\"tiny.toml\"]\n[[grid]]\narray = [\"4x4\", \"1x4\"]\nnm = [\"2:8\"]\n\
             dsp_packing = [\"int8x2\"]\n",
            "point 1 (`int8-1x4-2of8-int8x2`, grid 0) is not a valid engine: config key \
             `stce.dsp_packing`",
        ),
        (
            "networks = [\"tiny.toml\"]\n[[grid]]\ndtype = [\"fp16\"]\narray = [\"2x2\"]\n\
             nm = [\"2:8\"]\ndsp_packing = [\"int8x2\"]\n",
            "point 0 (`fp16-2x2-2of8-int8x2`, grid 0) is not a valid engine",
        ),
        (
            "networks = [\"tiny.toml\"]\n[[grid]]\narray = [\"4by4\"]\nnm = [\"2:8\"]\n",
            "array \"4by4\" is not ROWSxCOLS",
        ),
        (
            "networks = [\"tiny.toml\"]\n[[grid]]\narray = [\"2x2\"]\nnm = [\"9:8\"]\n",
            "config key `stce.n` = 9",
        ),
        (
            "networks = [\"tiny.toml\"]\n[[grid]]\narray = [\"2x2\"]\nnm = [\"2:8\"]\n\
             [[grid]]\narray = [\"2x2\"]\nnm = [\"2:8\"]\n",
            "point `int8-2x2-2of8` is in grid 0 and again in grid 1",
        ),
        (
            "networks = [\"missing.toml\"]\n[[grid]]\narray = [\"2x2\"]\nnm = [\"2:8\"]\n",
            "cannot read network `missing.toml`",
        ),
        (
            "networks = [\"tiny.toml\"]\n[system]\nweight_lines = 1\n[[grid]]\narray = \
             [\"2x2\"]\nnm = [\"2:8\"]\n",
            "system.weight_lines",
        ),
        (
            "networks = [\"tiny.toml\"]\nfamily = \"xc9\"\n[[grid]]\narray = [\"2x2\"]\n\
             nm = [\"2:8\"]\n",
            "family = \"xc9\"",
        ),
        ("networks = [\"tiny.toml\"]\n", "has no [[grid]]"),
        // lanes: the system's rule (SORE and WUVE lanes = cols), int8 grids, bad values.
        (
            "networks = [\"tiny.toml\"]\n[[grid]]\ndtype = [\"fp16\"]\narray = [\"4x4\"]\n\
             nm = [\"2:8\"]\nlanes = [2]\n",
            "point 0 (`fp16-4x4-2of8-lanes2`): config key `train.sore_lanes` = 2",
        ),
        (
            "networks = [\"tiny.toml\"]\n[[grid]]\narray = [\"4x4\"]\nnm = [\"2:8\"]\nlanes = [4]\n",
            "lanes sets the SORE and WUVE lanes of fp16 points",
        ),
        (
            "networks = [\"tiny.toml\"]\n[[grid]]\ndtype = [\"fp16\"]\narray = [\"2x2\"]\n\
             nm = [\"2:8\"]\nlanes = [\"all\"]\n",
            "lanes \"all\" is not \"cols\" or a number",
        ),
        (
            "networks = [\"tiny.toml\"]\n[[grid]]\ndtype = [\"fp16\"]\narray = [\"2x2\"]\n\
             nm = [\"2:8\"]\nlanes = [2, \"cols\"]\n",
            "point `fp16-2x2-2of8` is twice in grid 0",
        ),
    ];
    for (space, expected) in cases {
        let bad = Sweep::new(space);
        let o = bad.run("out", &["--no-yosys"]);
        assert_eq!(o.status.code(), Some(1), "{space}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{space}: {}", stderr(&o));
        assert!(is_empty_or_missing(&bad.path("out")), "{space}");
    }

    // A network the default [system] cannot hold names the point and the network.
    let big = "name = \"wide\"\nbatch = 4\n\n[[layer]]\nkind = \"linear\"\nin = 65536\nout = 4\n";
    let s = Sweep::new("networks = [\"wide.toml\"]\n[[grid]]\narray = [\"2x2\"]\nnm = [\"2:8\"]\n");
    std::fs::write(s.path("wide.toml"), big).unwrap();
    let o = s.run("out", &["--no-yosys"]);
    let e = stderr(&o);
    assert!(
        e.contains("point 0 (`int8-2x2-2of8`) cannot run network `wide`") && e.contains("[system]"),
        "{e}"
    );
    assert!(is_empty_or_missing(&s.path("out")));
}

/// The lanes axis: the SORE and WUVE lanes of the fp16 points, a number or "cols", equal to the
/// point's cols as the SAT system the cycles are estimated on needs (the refusals are above);
/// an int8 point of a mixed grid is left alone.
#[test]
fn the_lanes_axis_sets_the_fp16_points_lanes() {
    let s = Sweep::new(
        "networks = [\"tiny.toml\"]\n[[grid]]\ndtype = [\"int8\", \"fp16\"]\n\
         array = [\"2x2\"]\nnm = [\"2:8\"]\nlanes = [2]\n[[grid]]\ndtype = [\"fp16\"]\n\
         array = [\"4x4\"]\nnm = [\"2:8\"]\n",
    );
    ok(&s.run("out", &["--no-yosys"]));
    let v = s.json("out");
    let records = v["records"].as_array().unwrap();
    let got: Vec<(String, serde_json::Value)> = records
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["lanes"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("int8-2x2-2of8".to_string(), serde_json::Value::Null),
            ("fp16-2x2-2of8".to_string(), 2.into()),
            ("fp16-4x4-2of8".to_string(), 4.into()),
        ]
    );
    let csv = s.read("out", "sweep.csv");
    assert!(
        csv.lines()
            .nth(2)
            .unwrap()
            .contains(",fp16,2,2,2,8,none,2,"),
        "{csv}"
    );
}

fn resources(v: &serde_json::Value) -> serde_json::Value {
    v["records"][0]["resources"].clone()
}

#[test]
fn yosys_estimates_are_cached_and_verify_is_bit_exact() {
    let s = Sweep::new("networks = [\"tiny.toml\"]\n[[grid]]\narray = [\"2x2\"]\nnm = [\"1:2\"]\n");
    let o = s.run("first", &["--verify"]);
    ok(&o);
    let first = s.json("first");
    assert_eq!(first["yosys_cache"]["hits"], 0);
    assert_eq!(first["yosys_cache"]["misses"], 1);
    let res = resources(&first);
    assert!(res["luts"].as_u64().unwrap() > 0, "{res}");
    assert!(res["dsps"].as_u64().unwrap() > 0, "{res}");
    assert!(res["longest_path"].as_u64().unwrap() > 0, "{res}");
    let v = &first["records"][0]["verify"];
    assert_eq!(v["bit_exact"], true, "{v}");
    assert_eq!(v["shape"], "4x8x4");
    assert!(v["cycles"].as_u64().unwrap() > 0, "{v}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 from the cache, 1 synthesized"));

    let o = s.run("second", &[]);
    ok(&o);
    let second = s.json("second");
    assert_eq!(second["yosys_cache"]["hits"], 1);
    assert_eq!(second["yosys_cache"]["misses"], 0);
    assert_eq!(resources(&second), res);
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 from the cache, 0 synthesized"));
    let svg = s.read("second", "pareto.svg");
    assert!(
        svg.starts_with("<svg") && svg.contains("int8-2x2-1of2"),
        "{svg}"
    );

    // The estimates live beside the Verilator builds, which `coforge cache gc` and `clear` leave
    // them alone.
    let cache = s.path("cache");
    let entries = |dir: &Path| std::fs::read_dir(dir).map_or(0, |d| d.count());
    assert_eq!(entries(&cache.join("yosys")), 1);
    for verb in ["gc", "clear"] {
        let o = coforge(
            &["cache", verb],
            &[("COFORGE_CACHE_DIR", &cache.display().to_string())],
        );
        ok(&o);
        assert!(!String::from_utf8_lossy(&o.stdout).contains("yosys"));
    }
    assert_eq!(entries(&cache.join("yosys")), 1);
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_slurm_array_script_runs_the_shards_that_merge_into_the_whole_sweep() {
    let s = Sweep::new(SPACE);
    ok(&s.run("whole", &["--no-yosys"]));
    let run_task = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(repo_root().join("scripts/sweep-slurm.sh"))
            .args([&s.arg("space.toml"), &s.arg("array")])
            .env("COFORGE", env!("CARGO_BIN_EXE_coforge"))
            .env("COFORGE_SWEEP_ARGS", "--no-yosys")
            .env("COFORGE_CACHE_DIR", s.arg("cache"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    for task in ["0", "1", "2"] {
        let o = run_task(&[
            ("SLURM_ARRAY_TASK_ID", task),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_CPUS_PER_TASK", "2"),
        ]);
        ok(&o);
    }
    ok(&s.merge(
        &[
            "array/shard-0-of-3",
            "array/shard-1-of-3",
            "array/shard-2-of-3",
        ],
        "merged",
    ));
    assert_eq!(s.read("merged", "sweep.csv"), s.read("whole", "sweep.csv"));
    // An array that does not start at 0 would skip shards: refused.
    let o = run_task(&[
        ("SLURM_ARRAY_TASK_ID", "1"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("0..N-1"), "{}", stderr(&o));
}

#[test]
fn the_ci_matrix_example_runs_every_shard_and_merges_them() {
    let yml = std::fs::read_to_string(repo_root().join("scripts/sweep-ci-matrix.yml")).unwrap();
    let shards: usize = yml
        .lines()
        .find_map(|l| l.trim().strip_prefix("SHARDS: "))
        .unwrap()
        .parse()
        .unwrap();
    let list = yml
        .lines()
        .find_map(|l| l.trim().strip_prefix("shard: ["))
        .unwrap()
        .trim_end_matches(']');
    let listed: Vec<usize> = list.split(',').map(|x| x.trim().parse().unwrap()).collect();
    assert_eq!(listed, (0..shards).collect::<Vec<_>>());
    assert!(yml.contains("--shard \"${{ matrix.shard }}/$SHARDS\""));
    assert!(yml.contains("coforge sweep merge sweep-shard-* --out sweep"));
    // The space it names exists.
    let space = yml
        .lines()
        .find_map(|l| l.trim().strip_prefix("SPACE: "))
        .unwrap();
    assert!(repo_root().join(space).is_file(), "{space}");
}
