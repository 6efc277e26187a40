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

/// `cf_fp32_add`: fp32 `s = a + b`, round to nearest even, subnormals kept. It chains the three
/// stages of [`fp32_add_stages`], which a design that uses it must hold too ([`fp32_add_leaves`]).
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

/// The three stages of `cf_fp32_add`, in order: align (`cf_fp32_add_align`), add and count the
/// leading zeros (`cf_fp32_add_sum`), normalize and round (`cf_fp32_add_round`). Each stage's
/// inputs are named like the outputs of the stages before it that produce them, so a pipeline
/// connects them by name (`arith::FpMac::pipelined`); `cf_fp32_add` connects them by wires.
pub fn fp32_add_stages() -> [ModuleDef; 3] {
    use Dir::{Input, Output};
    let ports = |list: &[(&str, Dir, u32, &str)]| -> Vec<Port> {
        list.iter()
            .map(|&(name, dir, width, doc)| port(name, dir, width, doc))
            .collect()
    };
    [
        external(
            "cf_fp32_add_align",
            ports(&[
                ("a", Input, 32, "fp32 operand"),
                ("b", Input, 32, "fp32 operand"),
                ("is_nan", Output, 1, "the result is NaN (canonical)"),
                ("is_inf", Output, 1, "otherwise, the result is inf"),
                ("inf_sign", Output, 1, "the sign of that inf"),
                ("zero_sign", Output, 1, "sign of an exact zero sum"),
                ("eff_sub", Output, 1, "the magnitudes subtract"),
                ("res_sign", Output, 1, "sign of a nonzero finite sum"),
                ("larger_exp", Output, 8, "effective exponent of the larger"),
                ("larger_sig", Output, 24, "significand of the larger"),
                (
                    "smaller_aligned",
                    Output,
                    27,
                    "aligned smaller, guard, round, sticky",
                ),
            ]),
            include_str!("../../rtl/fp/cf_fp32_add_align.v"),
        ),
        external(
            "cf_fp32_add_sum",
            ports(&[
                ("eff_sub", Input, 1, "the magnitudes subtract"),
                ("larger_exp", Input, 8, "effective exponent of the larger"),
                ("larger_sig", Input, 24, "significand of the larger"),
                (
                    "smaller_aligned",
                    Input,
                    27,
                    "aligned smaller, guard, round, sticky",
                ),
                (
                    "sum",
                    Output,
                    28,
                    "carry, significand, guard, round, sticky",
                ),
                ("lshift", Output, 5, "left shift of a sum without carry-out"),
            ]),
            include_str!("../../rtl/fp/cf_fp32_add_sum.v"),
        ),
        external(
            "cf_fp32_add_round",
            ports(&[
                ("is_nan", Input, 1, "the result is NaN (canonical)"),
                ("is_inf", Input, 1, "otherwise, the result is inf"),
                ("inf_sign", Input, 1, "the sign of that inf"),
                ("zero_sign", Input, 1, "sign of an exact zero sum"),
                ("res_sign", Input, 1, "sign of a nonzero finite sum"),
                ("larger_exp", Input, 8, "effective exponent of the larger"),
                ("sum", Input, 28, "carry, significand, guard, round, sticky"),
                ("lshift", Input, 5, "left shift of a sum without carry-out"),
                ("s", Output, 32, "fp32 sum, RNE"),
            ]),
            include_str!("../../rtl/fp/cf_fp32_add_round.v"),
        ),
    ]
}

/// `cf_fp32_add` with the stages it instantiates, stages first: what a design adds to use it.
pub fn fp32_add_leaves() -> Vec<ModuleDef> {
    let mut leaves = fp32_add_stages().to_vec();
    leaves.push(fp32_add());
    leaves
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

/// All four units with the adder's stages, for designs (and lint runs) that want the whole set.
pub fn all() -> Vec<ModuleDef> {
    let mut units = vec![fp16_mul_exact()];
    units.extend(fp32_add_leaves());
    units.extend([fp32_mul(), fp32_to_fp16()]);
    units
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
