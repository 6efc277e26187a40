//! Cache behaviour, concurrent builds and build failures.

mod common;

use coforge_sim::{BuildOptions, SimError, Simulator, Stimulus, Verilator};
use common::*;

#[test]
fn concurrent_builds_of_one_key_both_succeed_then_hit_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    // A comment makes the design, hence the cache key, new for this run.
    let mut spec = counter();
    spec.sources[0]
        .1
        .push_str(&format!("// fresh {}\n", unique_tag()));
    let opts = BuildOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let builds: Vec<_> = (0..2)
        .map(|_| {
            let (spec, opts) = (spec.clone(), opts.clone());
            std::thread::spawn(move || Verilator::build(&spec, &opts))
        })
        .collect();
    let libs: Vec<_> = builds
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert_eq!(libs[0].cache_key(), libs[1].cache_key());
    for lib in &libs {
        assert!(!lib.cache_hit());
        assert!(lib.build_seconds() > 0.0);
        eprintln!("fresh build took {:.2} s", lib.build_seconds());
        let mut m = lib.instantiate().unwrap();
        let mut s = Stimulus::new(&spec);
        s.set("rst", 1);
        s.step(false);
        s.set("rst", 0);
        s.set("en", 1);
        s.idle(5);
        s.step(true);
        assert_eq!(m.run(&s).unwrap().get(0, "count"), 5);
    }
    // Exactly one finished entry, no leftover temporary directories.
    let entries: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        entries,
        vec![libs[0].cache_key().to_string()],
        "{entries:?}"
    );

    let again = Verilator::build(&spec, &opts).unwrap();
    assert!(again.cache_hit());
    assert_eq!(again.build_seconds(), 0.0);
    assert_eq!(again.cache_key(), libs[0].cache_key());

    // Different flags are a different key.
    let waves = Verilator::build(
        &spec,
        &BuildOptions {
            waves: true,
            ..opts.clone()
        },
    );
    assert_ne!(waves.unwrap().cache_key(), libs[0].cache_key());
}

#[test]
fn syntax_error_is_build_failed_with_log() {
    let mut spec = counter();
    spec.sources[0].1 = spec.sources[0].1.replace("endmodule", "oops endmodule");
    let cache = tempfile::tempdir().unwrap();
    let opts = BuildOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    match Verilator::build(&spec, &opts) {
        Err(SimError::BuildFailed { log, tail }) => {
            assert!(log.is_file(), "log {} missing", log.display());
            // Failures are kept once per key, not once per attempt.
            assert!(
                log.to_string_lossy().contains(".failed"),
                "{}",
                log.display()
            );
            assert!(
                tail.contains("counter.v"),
                "tail does not name the file: {tail}"
            );
            let msg = Verilator::build(&spec, &opts).unwrap_err().to_string();
            assert!(msg.contains("build.log"), "{msg}");
            assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
        }
        other => panic!("expected BuildFailed, got {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    match coforge_sim::Icarus::new(&spec, dir.path()) {
        Err(SimError::BuildFailed { log, .. }) => assert!(log.is_file()),
        other => panic!("expected BuildFailed, got {other:?}"),
    }
}

#[test]
fn invalid_specs_are_rejected_before_building() {
    let mut spec = counter();
    spec.ports[0].width = 0;
    assert!(matches!(
        Verilator::build(&spec, &opts()),
        Err(SimError::InvalidSpec { .. })
    ));
    let mut spec = counter();
    spec.sources[0].0 = "../evil.v".into();
    assert!(matches!(spec.validate(), Err(SimError::InvalidSpec { .. })));
    let mut spec = counter();
    spec.ports.push(coforge_sim::PortSpec::input("clk", 1));
    assert!(matches!(
        Stimulus::try_new(&spec),
        Err(SimError::InvalidSpec { .. })
    ));
}
