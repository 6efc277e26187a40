//! `coforge verify --axi`: the same GEMM through the STCE's AXI wrapper under random stalls, with
//! the same bits as the bare engine, and the flag's bad uses refused.

mod common;

use common::{is_empty_or_missing, stderr, Case, SMALL};

#[test]
fn verify_through_the_axi_wrapper_gives_the_bare_engines_bits() {
    let c = Case::new(SMALL);
    let o = c.verify(&["--shape", "5x16x7", "--axi", "--stall-rate", "0.3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = c.report();
    let axi = &r["axi"];
    assert_eq!(axi["top"], "stce_top_axi");
    assert_eq!(axi["bit_exact"], true);
    assert_eq!(axi["same_bits_as_bare"], true);
    assert_eq!(axi["differ_from_bare"], 0);
    assert_eq!(axi["stall_rate"], 0.3);
    // Stalls on both streams make the wrapped run slower than the bare engine's.
    let (wrapped, bare) = (
        axi["cycles"].as_u64().unwrap(),
        r["cycles"].as_u64().unwrap(),
    );
    assert!(
        wrapped > bare,
        "{wrapped} cycles through the wrapper, {bare} bare"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("SAME BITS: through stce_top_axi"),
        "{stdout}"
    );
}

#[test]
fn bad_axi_options_are_refused() {
    let c = Case::new(SMALL);
    let o = c.verify(&["--axi", "--stall-rate", "1.5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("outside 0 <= R < 1"), "{}", stderr(&o));
    let o = c.verify(&["--stall-rate", "0.3"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--axi"), "{}", stderr(&o));
    let o = c.verify(&["--axi", "--simulator", "icarus"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--simulator verilator"),
        "{}",
        stderr(&o)
    );
    assert!(is_empty_or_missing(&c.path("out")));
}
