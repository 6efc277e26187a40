//! The DCNv2 (mode B) deformable engine: lint, synthesis and bit-exact co-simulation.

use coforge_generator::artifacts::{header, render_verilog};
use coforge_generator::engines::deform::dcnv2::{self, Dcnv2Params};
use coforge_testbenches::assert_lint_clean;

fn params(depthwise: bool, taps_per_cycle: u32) -> Dcnv2Params {
    Dcnv2Params {
        lanes: 3,
        max_width: 7,
        kernel: 3,
        stride: 1,
        padding: 1,
        dilation: 1,
        frac_bits: 3,
        mask_bits: 4,
        max_offset: 2,
        taps_per_cycle,
        depthwise,
        zero_point: -5,
        top: "dcnv2_top".into(),
    }
}

#[test]
fn lint_clean() {
    for (dw, t) in [(true, 4), (true, 9), (false, 4), (false, 1)] {
        let p = params(dw, t);
        let files = render_verilog(&dcnv2::generate(&p), &header("test", "test"));
        if std::env::var("DUMP").is_ok() {
            for (n, text) in &files {
                std::fs::write(format!("/tmp/dcn/{n}"), text).unwrap();
            }
        }
        assert_lint_clean(&files, &p.top, &format!("depthwise {dw}, {t} taps"));
    }
}
