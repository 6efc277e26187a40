//! Compiler flags given in the environment reach the C++ compiler. Its own test binary, because
//! it sets a process-wide environment variable.

mod common;

use coforge_sim::Verilator;
use common::*;

#[test]
fn opt_fast_from_the_environment_reaches_the_compiler() {
    let cache = tempfile::tempdir().unwrap();
    // verilated.mk assigns `OPT_FAST = -Os`, which beats the environment: the build must pass
    // the variable to make on its command line.
    std::env::set_var("OPT_FAST", "-O1");
    let lib = Verilator::build(&fresh_counter(), &cache_in(cache.path()))
        .expect("the counter builds with OPT_FAST=-O1");
    std::env::remove_var("OPT_FAST");
    let log = std::fs::read_to_string(lib.path().parent().unwrap().join("build.log")).unwrap();
    // The model (Vdut__ALL.cpp for a design this small) is compiled with OPT_FAST alone.
    let compiled_with = |flag: &str| {
        log.lines()
            .any(|l| l.contains(&format!("{flag} -c -o Vdut")))
    };
    assert!(compiled_with("-O1"), "{log}");
    assert!(!compiled_with("-Os"), "{log}");
}
