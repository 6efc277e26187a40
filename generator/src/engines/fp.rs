//! Hand-written floating-point leaf units for the training engine, exposed as external modules.
//!
//! Each unit is a combinational Verilog-2005 module in `generator/rtl/fp/`, bit-exact with Rust's
//! IEEE `f32` arithmetic (round to nearest even, subnormals kept) and with `half::f16` for the
//! fp16 conversions. One rule differs from "whatever the FPU does" and is shared with the Rust
//! reference: every NaN result is the canonical quiet NaN (`0x7FC00000` in fp32, `0x7E00` in
//! fp16), see `sparse_kernels::fp::canon`. The co-simulation tests are in
//! `testbenches/tests/fp_units.rs`.

use crate::rtl::{Dir, Expr, ExternalModule, ModuleBuilder, ModuleDef, Port};

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

/// Ports from `(name, direction, width, doc)` rows.
fn ports(list: &[(&str, Dir, u32, &str)]) -> Vec<Port> {
    list.iter()
        .map(|&(name, dir, width, doc)| port(name, dir, width, doc))
        .collect()
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
/// connects them by name ([`instantiate_stages`]); `cf_fp32_add` connects them by wires.
pub fn fp32_add_stages() -> [ModuleDef; 3] {
    use Dir::{Input, Output};
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

/// Instantiates the stage modules of one unit (`fp32_add_stages`, `fp32_mul_stages`) in a row
/// in `b`. A stage's input connects by name to one of `inputs` or to the output of an earlier
/// stage (a wire `<prefix><port>`); its instance is `<prefix><role>_stage`, the role being the
/// end of the stage module's name (`align`, `prod`). After stage k (but the last), every value
/// a later stage reads goes through `between(b, k, "<prefix><port>_q<k>", value)`, and the later
/// stages read what it returns: a register of that name, for a pipeline. Returns the last
/// stage's outputs by port name.
///
/// # Panics
/// If a stage reads a port that neither `inputs` nor an earlier stage gives (a caller bug).
pub fn instantiate_stages<'id>(
    b: &mut ModuleBuilder<'id>,
    prefix: &str,
    stages: &[ModuleDef],
    inputs: Vec<(String, Expr<'id>)>,
    mut between: impl FnMut(&mut ModuleBuilder<'id>, usize, String, Expr<'id>) -> Expr<'id>,
) -> Vec<(String, Expr<'id>)> {
    let mut values = inputs;
    let mut outputs = Vec::new();
    for (k, stage) in stages.iter().enumerate() {
        let mut conns = Vec::new();
        outputs = Vec::new();
        for port in stage.ports() {
            let name = port.name.as_str();
            if port.dir == Dir::Input {
                let (_, value) = values
                    .iter()
                    .find(|(v, _)| v == name)
                    .unwrap_or_else(|| panic!("no value for input `{name}` of {}", stage.name()));
                conns.push((name, value.clone()));
            } else {
                let wire = b.wire(&format!("{prefix}{name}"), port.width);
                conns.push((name, wire.clone()));
                outputs.push((port.name.clone(), wire));
            }
        }
        let role = stage.name().rsplit('_').next().unwrap_or_default();
        b.instance(stage, &format!("{prefix}{role}_stage"), conns);
        let Some(later) = stages.get(k + 1..).filter(|later| !later.is_empty()) else {
            break;
        };
        values.extend(outputs.iter().cloned());
        // Only what a later stage reads goes on.
        values = values
            .into_iter()
            .filter(|(v, _)| {
                later.iter().any(|st| {
                    st.ports()
                        .iter()
                        .any(|p| p.dir == Dir::Input && p.name == *v)
                })
            })
            .map(|(v, value)| {
                let next = between(b, k, format!("{prefix}{v}_q{k}"), value);
                (v, next)
            })
            .collect();
    }
    outputs
}

/// `cf_fp32_mul`: fp32 `p = a * b`, round to nearest even, subnormals kept. It chains the four
/// stages of [`fp32_mul_stages`], which a design that uses it must hold too ([`fp32_mul_leaves`]).
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

/// The four stages of `cf_fp32_mul`, in order: classify and multiply (`cf_fp32_mul_prod`), count
/// the leading zeros and choose the shift (`cf_fp32_mul_lzc`), shift (`cf_fp32_mul_shift`),
/// round (`cf_fp32_mul_round`). Named for [`instantiate_stages`] like [`fp32_add_stages`].
pub fn fp32_mul_stages() -> [ModuleDef; 4] {
    use Dir::{Input, Output};
    [
        external(
            "cf_fp32_mul_prod",
            ports(&[
                ("a", Input, 32, "fp32 operand"),
                ("b", Input, 32, "fp32 operand"),
                ("is_nan", Output, 1, "the result is NaN (canonical)"),
                ("inf_operand", Output, 1, "otherwise, an operand is inf"),
                ("is_zero", Output, 1, "otherwise, an operand is zero"),
                ("res_sign", Output, 1, "sign of the result"),
                ("x", Output, 10, "ea + eb - 126, two's complement"),
                ("prod", Output, 48, "significand product"),
            ]),
            include_str!("../../rtl/fp/cf_fp32_mul_prod.v"),
        ),
        external(
            "cf_fp32_mul_lzc",
            ports(&[
                ("x", Input, 10, "ea + eb - 126, two's complement"),
                ("prod", Input, 48, "significand product"),
                ("x_pos", Output, 1, "x >= 1: normalized by a left shift"),
                ("lshift", Output, 6, "left shift (x >= 1)"),
                ("rshift", Output, 5, "right shift (x <= 0)"),
                ("exp_left", Output, 10, "exponent after the left shift"),
            ]),
            include_str!("../../rtl/fp/cf_fp32_mul_lzc.v"),
        ),
        external(
            "cf_fp32_mul_shift",
            ports(&[
                ("prod", Input, 48, "significand product"),
                ("x_pos", Input, 1, "x >= 1: normalized by a left shift"),
                ("lshift", Input, 6, "left shift (x >= 1)"),
                ("rshift", Input, 5, "right shift (x <= 0)"),
                ("q", Output, 25, "hidden bit, fraction, guard bit"),
                ("sticky", Output, 1, "some bit below the guard bit is set"),
            ]),
            include_str!("../../rtl/fp/cf_fp32_mul_shift.v"),
        ),
        external(
            "cf_fp32_mul_round",
            ports(&[
                ("is_nan", Input, 1, "the result is NaN (canonical)"),
                ("inf_operand", Input, 1, "otherwise, an operand is inf"),
                ("is_zero", Input, 1, "otherwise, an operand is zero"),
                ("res_sign", Input, 1, "sign of the result"),
                ("x_pos", Input, 1, "normalized by a left shift"),
                ("exp_left", Input, 10, "exponent after the left shift"),
                ("q", Input, 25, "hidden bit, fraction, guard bit"),
                ("sticky", Input, 1, "some bit below the guard bit is set"),
                ("p", Output, 32, "fp32 product, RNE"),
            ]),
            include_str!("../../rtl/fp/cf_fp32_mul_round.v"),
        ),
    ]
}

/// `cf_fp32_mul` with the stages it instantiates, stages first: what a design adds to use it.
pub fn fp32_mul_leaves() -> Vec<ModuleDef> {
    let mut leaves = fp32_mul_stages().to_vec();
    leaves.push(fp32_mul());
    leaves
}

/// `cf_fp32_to_fp16`: fp32 `x` -> fp16 `h`, round to nearest even, overflow to inf. It chains
/// the two stages of [`fp32_to_fp16_stages`], which a design that uses it must hold too
/// ([`fp32_to_fp16_leaves`]).
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

/// The two stages of `cf_fp32_to_fp16`, in order: classify, round a normal result and shift a
/// subnormal one (`cf_fp32_to_fp16_shift`), round the subnormal result and pick
/// (`cf_fp32_to_fp16_round`). Named for [`instantiate_stages`] like [`fp32_add_stages`].
pub fn fp32_to_fp16_stages() -> [ModuleDef; 2] {
    use Dir::{Input, Output};
    [
        external(
            "cf_fp32_to_fp16_shift",
            ports(&[
                ("x", Input, 32, "fp32 value"),
                ("sign", Output, 1, "sign of the input"),
                ("is_nan", Output, 1, "the result is NaN (canonical)"),
                ("too_big", Output, 1, "otherwise, the result is inf"),
                ("is_norm", Output, 1, "otherwise, the result is normal"),
                ("norm_mag", Output, 15, "the rounded normal result"),
                ("sub_k", Output, 10, "the subnormal result before rounding"),
                ("sub_guard", Output, 1, "its guard bit"),
                ("sub_sticky", Output, 1, "anything below the guard bit"),
            ]),
            include_str!("../../rtl/fp/cf_fp32_to_fp16_shift.v"),
        ),
        external(
            "cf_fp32_to_fp16_round",
            ports(&[
                ("sign", Input, 1, "sign of the input"),
                ("is_nan", Input, 1, "the result is NaN (canonical)"),
                ("too_big", Input, 1, "otherwise, the result is inf"),
                ("is_norm", Input, 1, "otherwise, the result is normal"),
                ("norm_mag", Input, 15, "the rounded normal result"),
                ("sub_k", Input, 10, "the subnormal result before rounding"),
                ("sub_guard", Input, 1, "its guard bit"),
                ("sub_sticky", Input, 1, "anything below the guard bit"),
                ("h", Output, 16, "fp16 value, RNE"),
            ]),
            include_str!("../../rtl/fp/cf_fp32_to_fp16_round.v"),
        ),
    ]
}

/// `cf_fp32_to_fp16` with the stages it instantiates, stages first: what a design adds to use it.
pub fn fp32_to_fp16_leaves() -> Vec<ModuleDef> {
    let mut leaves = fp32_to_fp16_stages().to_vec();
    leaves.push(fp32_to_fp16());
    leaves
}

/// All four units with their stages, for designs (and lint runs) that want the whole set.
pub fn all() -> Vec<ModuleDef> {
    let mut units = vec![fp16_mul_exact()];
    units.extend(fp32_add_leaves());
    units.extend(fp32_mul_leaves());
    units.extend(fp32_to_fp16_leaves());
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
