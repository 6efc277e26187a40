//! `coforge cache list|gc|clear` on a cache of its own (COFORGE_CACHE_DIR).

use std::process::{Command, Output};

use coforge_sim::{BuildOptions, DesignSpec, PortSpec, Verilator};

fn coforge(cache: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coforge"))
        .args(args)
        .env("COFORGE_CACHE_DIR", cache)
        .output()
        .expect("run coforge")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "coforge failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn cache_verbs_list_gc_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    assert!(stdout(&coforge(&cache, &["cache", "list"])).contains("empty"));

    let spec = DesignSpec {
        top: "inverter".into(),
        sources: vec![(
            "inverter.v".into(),
            "module inverter(input wire clk, input wire a, output reg y);\n\
             always @(posedge clk) y <= !a;\nendmodule\n"
                .into(),
        )],
        ports: vec![PortSpec::input("a", 1), PortSpec::output("y", 1)],
        clock: "clk".into(),
    };
    let lib = Verilator::build(
        &spec,
        &BuildOptions {
            cache_dir: Some(cache.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let key = lib.cache_key().to_string();
    drop(lib);
    // A damaged entry and the folder of a build that died two hours ago.
    let damaged = cache.join("f".repeat(64));
    std::fs::create_dir_all(&damaged).unwrap();
    let dead = cache.join(format!("{key}.tmp-1-2-3"));
    std::fs::create_dir_all(&dead).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::open(&dead)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();

    let list = stdout(&coforge(&cache, &["cache", "list"]));
    assert!(list.contains("COFORGE_CACHE_DIR"), "{list}");
    let ready = list.lines().find(|l| l.starts_with(&key[..12])).unwrap();
    assert!(
        ready.contains("ready") && ready.contains("inverter"),
        "{list}"
    );
    assert!(ready.contains("Verilator"), "{list}");
    assert!(
        list.contains("damaged") && list.contains("temporary"),
        "{list}"
    );
    assert!(list.contains("3 entries"), "{list}");

    let gc = stdout(&coforge(&cache, &["cache", "gc", "--unused-days", "30"]));
    assert!(gc.contains("removed 2 entries"), "{gc}");
    assert!(!damaged.exists() && !dead.exists());
    assert!(cache.join(&key).exists());

    let clear = stdout(&coforge(&cache, &["cache", "clear"]));
    assert!(clear.contains("removed 1 entries"), "{clear}");
    assert!(stdout(&coforge(&cache, &["cache", "list"])).contains("empty"));

    // A bad argument is a usage error (exit code 2).
    let o = coforge(&cache, &["cache", "gc", "--unused-days", "soon"]);
    assert_eq!(o.status.code(), Some(2));
}
