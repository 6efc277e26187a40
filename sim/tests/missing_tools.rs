//! Tool discovery errors. This file has a single test because it changes
//! environment variables, which are process-wide.

mod common;

use coforge_sim::{BuildOptions, Icarus, SimError, Verilator};

#[test]
fn missing_and_old_tools_explain_the_fix() {
    std::env::set_var("COFORGE_VERILATOR", "/nonexistent/bin/verilator");
    let e = Verilator::version().unwrap_err();
    assert!(matches!(e, SimError::ToolMissing { .. }), "{e}");
    let opts = BuildOptions {
        cache_dir: Some(common::cache_dir()),
        ..Default::default()
    };
    let msg = Verilator::build(&common::counter(), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("apt-get install verilator") && msg.contains("/nonexistent/bin/verilator"),
        "{msg}"
    );

    // A Verilator that is too old.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("verilator");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'Verilator 4.038 2020-07-11 rev v4.036-114-g0cd4a57ad'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::env::set_var("COFORGE_VERILATOR", &fake);
    match Verilator::build(&common::counter(), &opts) {
        Err(e @ SimError::ToolTooOld { .. }) => assert!(e.to_string().contains("5.006"), "{e}"),
        other => panic!("expected ToolTooOld, got {other:?}"),
    }
    std::env::remove_var("COFORGE_VERILATOR");
    assert!(Verilator::version().unwrap().at_least(5, 6));

    std::env::set_var("COFORGE_IVERILOG", "/nonexistent/iverilog");
    let msg = Icarus::new(&common::counter(), dir.path())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("apt-get install iverilog"), "{msg}");
    std::env::remove_var("COFORGE_IVERILOG");
    assert!(Icarus::version().unwrap().major >= 10);
}
