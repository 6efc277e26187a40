//! Cache behaviour, concurrent builds and build failures.

mod common;

use coforge_sim::{BuildOptions, SimError, Simulator, Stimulus, Verilator};
use common::*;

#[test]
fn concurrent_builds_of_one_key_both_succeed_then_hit_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let spec = fresh_counter();
    let opts = cache_in(cache.path());
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
        counts_to(lib, &spec, 5);
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
    let opts = cache_in(cache.path());
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

/// Sets a directory's modification time `secs` seconds into the past.
fn age_dir(dir: &std::path::Path, secs: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    std::fs::File::open(dir).unwrap().set_modified(t).unwrap();
}

fn counts_to(lib: &coforge_sim::VerilatedLib, spec: &coforge_sim::DesignSpec, n: u64) {
    let mut m = lib.instantiate().unwrap();
    let mut s = Stimulus::new(spec);
    s.set("rst", 1);
    s.step(false);
    s.set("rst", 0);
    s.set("en", 1);
    s.idle(n);
    s.step(true);
    assert_eq!(m.run(&s).unwrap().get(0, "count"), n);
}

#[test]
fn damaged_entries_are_rebuilt_and_stale_temporaries_removed() {
    use coforge_sim::{BuildCache, EntryState};
    let cache = tempfile::tempdir().unwrap();
    let spec = fresh_counter();
    let opts = cache_in(cache.path());
    let lib = Verilator::build(&spec, &opts).unwrap();
    assert!(!lib.cache_hit() && lib.cache_repair().is_none());
    let so = lib.path().to_path_buf();
    let key = lib.cache_key().to_string();
    // Unload before damaging the file: a loaded library must not be truncated.
    drop(lib);

    // A build left behind by a killed run, and one still running.
    let dead = cache.path().join(format!("{key}.tmp-1-2-3"));
    let running = cache.path().join(format!("{key}.tmp-4-5-6"));
    for d in [&dead, &running] {
        std::fs::create_dir_all(d.join("obj")).unwrap();
    }
    age_dir(&dead.join("obj"), 7200);
    age_dir(&dead, 7200);

    let listed = BuildCache::new(Some(cache.path().to_path_buf()))
        .list()
        .unwrap();
    let ready = listed.iter().find(|e| e.name == key).unwrap();
    assert_eq!(ready.state, EntryState::Ready);
    assert_eq!(ready.top.as_deref(), Some("counter"));
    assert!(ready.verilator.as_deref().unwrap().contains("Verilator"));
    assert!(ready.bytes > 10_000, "{ready:?}");

    // Truncated: would map fine and then raise SIGBUS; it is rebuilt instead.
    let len = std::fs::metadata(&so).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&so)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let listed = BuildCache::new(Some(cache.path().to_path_buf()))
        .list()
        .unwrap();
    let entry = listed.iter().find(|e| e.name == key).unwrap();
    assert!(
        matches!(&entry.state, EntryState::Damaged(why) if why.contains("bytes")),
        "{entry:?}"
    );
    let lib = Verilator::build(&spec, &opts).unwrap();
    assert!(!lib.cache_hit());
    let why = lib.cache_repair().expect("a repair reason");
    assert!(why.contains("bytes"), "{why}");
    assert_eq!(std::fs::metadata(&so).unwrap().len(), len);
    counts_to(&lib, &spec, 7);
    drop(lib);
    // The repair build removed the dead temporary, not the running one.
    assert!(!dead.exists(), "stale temporary directory left behind");
    assert!(running.exists(), "an active build's directory was removed");

    // Same length, different bytes: caught by the hash.
    let mut bytes = std::fs::read(&so).unwrap();
    bytes[len as usize / 2] ^= 0xff;
    std::fs::write(&so, &bytes).unwrap();
    let lib = Verilator::build(&spec, &opts).unwrap();
    assert!(lib.cache_repair().unwrap().contains("SHA-256"));
    drop(lib);

    // Missing: rebuilt too (it used to fail with "Directory not empty").
    std::fs::remove_file(&so).unwrap();
    let lib = Verilator::build(&spec, &opts).unwrap();
    assert!(!lib.cache_hit() && lib.cache_repair().is_some());
    counts_to(&lib, &spec, 3);
    let again = Verilator::build(&spec, &opts).unwrap();
    assert!(again.cache_hit() && again.cache_repair().is_none());
}

#[test]
fn cache_verbs_list_gc_and_clear() {
    use coforge_sim::{BuildCache, EntryState};
    let dir = tempfile::tempdir().unwrap();
    let cache = BuildCache::new(Some(dir.path().join("c")));
    // A missing cache is an empty one.
    assert!(cache.list().unwrap().is_empty());
    let spec = fresh_counter();
    let opts = cache_in(cache.dir());
    let lib = Verilator::build(&spec, &opts).unwrap();
    let key = lib.cache_key().to_string();
    drop(lib);
    let root = cache.dir();
    // A damaged copy, a failed build, a dead and a running temporary.
    let damaged = root.join("0".repeat(64));
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(damaged.join("libcounter.so"), b"junk").unwrap();
    std::fs::create_dir_all(root.join(format!("{key}.failed"))).unwrap();
    let dead = root.join(format!("{key}.tmp-1-1-1"));
    let running = root.join(format!("{key}.tmp-2-2-2"));
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::create_dir_all(&running).unwrap();
    age_dir(&dead, 7200);
    let states: Vec<_> = cache.list().unwrap().into_iter().map(|e| e.state).collect();
    assert_eq!(states.len(), 5, "{states:?}");

    let removed = cache.gc(None).unwrap();
    let names: Vec<&str> = removed.entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 3, "{removed:?}");
    assert!(names.contains(&damaged.file_name().unwrap().to_str().unwrap()));
    assert!(names.contains(&format!("{key}.failed").as_str()));
    assert!(names.contains(&dead.file_name().unwrap().to_str().unwrap()));
    let left: Vec<_> = cache.list().unwrap();
    assert_eq!(left.len(), 2);
    assert!(left
        .iter()
        .any(|e| e.name == key && e.state == EntryState::Ready));

    // Recently used entries survive gc with a day limit.
    assert!(cache
        .gc(Some(std::time::Duration::from_secs(86_400)))
        .unwrap()
        .entries
        .is_empty());
    // clear removes the entry but not a build in progress.
    let removed = cache.clear().unwrap();
    assert_eq!(removed.entries.len(), 1, "{removed:?}");
    assert!(removed.bytes > 10_000);
    assert!(running.exists());
    assert!(!root.join(&key).exists());
}

#[test]
fn cache_errors_name_the_cache_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let spec = fresh_counter();
    let e = Verilator::build(&spec, &cache_in(&file)).unwrap_err();
    assert!(matches!(e, SimError::Cache { .. }), "{e:?}");
    assert!(e.to_string().contains("COFORGE_CACHE_DIR"), "{e}");
    assert!(e.to_string().contains("not-a-dir"), "{e}");
}
