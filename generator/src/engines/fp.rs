//! Hand-written floating-point leaf units for the training engine, exposed as external modules.
//!
//! Each unit is a combinational Verilog-2005 module in `generator/rtl/fp/`, bit-exact with Rust's
//! IEEE `f32` arithmetic (round to nearest even, subnormals kept) and with `half::f16` for the
//! fp16 conversions. One rule differs from "whatever the FPU does" and is shared with the Rust
//! reference: every NaN result is the canonical quiet NaN (`0x7FC00000` in fp32, `0x7E00` in
//! fp16), see `sparse_kernels::fp::canon`. The co-simulation tests are in
//! `testbenches/tests/fp_units.rs`.

use crate::rtl::{Dir, ExternalModule, ModuleDef, Port};

/// The canonical fp32 NaN produced by every unit (`sparse_kernels::fp::CANONICAL_NAN_F32`).
pub const CANON_NAN_F32: u32 = 0x7FC0_0000;
/// The canonical fp16 NaN produced by every unit (`sparse_kernels::fp::CANONICAL_NAN_F16`).
pub const CANON_NAN_F16: u16 = 0x7E00;

fn port(name: &str, dir: Dir, width: u32, doc: &str) -> Port {
    Port {
        name: name.to_string(),
        dir,
        width,
        is_reg: false,
        doc: Some(doc.to_string()),
    }
}

fn external(name: &str, ports: Vec<Port>, source: &str) -> ModuleDef {
    ModuleDef::External(ExternalModule {
        name: name.to_string(),
        ports,
        source: source.to_string(),
    })
}

/// `cf_fp16_mul_exact`: fp16 `a` x fp16 `b` -> fp32 `p`, exact (no rounding ever needed).
pub fn fp16_mul_exact() -> ModuleDef {
    external(
        "cf_fp16_mul_exact",
        vec![
            port("a", Dir::Input, 16, "fp16 operand"),
            port("b", Dir::Input, 16, "fp16 operand"),
            port("p", Dir::Output, 32, "fp32 exact product"),
        ],
        include_str!("../../rtl/fp/cf_fp16_mul_exact.v"),
    )
}

/// `cf_fp32_add`: fp32 `s = a + b`, round to nearest even, subnormals kept.
pub fn fp32_add() -> ModuleDef {
    external(
        "cf_fp32_add",
        vec![
            port("a", Dir::Input, 32, "fp32 operand"),
            port("b", Dir::Input, 32, "fp32 operand"),
            port("s", Dir::Output, 32, "fp32 sum, RNE"),
        ],
        include_str!("../../rtl/fp/cf_fp32_add.v"),
    )
}

/// `cf_fp32_mul`: fp32 `p = a * b`, round to nearest even, subnormals kept.
pub fn fp32_mul() -> ModuleDef {
    external(
        "cf_fp32_mul",
        vec![
            port("a", Dir::Input, 32, "fp32 operand"),
            port("b", Dir::Input, 32, "fp32 operand"),
            port("p", Dir::Output, 32, "fp32 product, RNE"),
        ],
        include_str!("../../rtl/fp/cf_fp32_mul.v"),
    )
}

/// `cf_fp32_to_fp16`: fp32 `x` -> fp16 `h`, round to nearest even, overflow to inf.
pub fn fp32_to_fp16() -> ModuleDef {
    external(
        "cf_fp32_to_fp16",
        vec![
            port("x", Dir::Input, 32, "fp32 value"),
            port("h", Dir::Output, 16, "fp16 value, RNE"),
        ],
        include_str!("../../rtl/fp/cf_fp32_to_fp16.v"),
    )
}

/// All four units, for designs (and lint runs) that want the whole set.
pub fn all() -> Vec<ModuleDef> {
    vec![fp16_mul_exact(), fp32_add(), fp32_mul(), fp32_to_fp16()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_named_like_their_sources() {
        for def in all() {
            let ModuleDef::External(ext) = &def else {
                panic!("external expected")
            };
            assert!(
                ext.source.contains(&format!("module {} (", ext.name)),
                "{}",
                ext.name
            );
            assert!(ext.source.contains("`default_nettype none"));
            assert!(ext.source.trim_end().ends_with("`default_nettype wire"));
        }
    }
}
