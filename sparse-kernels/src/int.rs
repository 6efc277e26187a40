//! Integer path: int8 × int8 (or int4) products, int32 accumulation, CoDeNet requantizer.

use ndarray::{ArrayView, Dimension, IntoDimension};

use crate::KernelError;

/// What an int32 accumulator does when a sum leaves the i32 range. The same policy must be set on the
/// RTL side. Wrap is the default because a DSP48 accumulator wraps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Two's complement wrap-around modulo 2^32.
    #[default]
    Wrap,
    /// Clamp to `[i32::MIN, i32::MAX]` after each add.
    Saturate,
}

/// `acc + x` under `policy`. This is the only place where the accumulator add is defined.
#[inline]
pub fn add(acc: i32, x: i32, policy: Overflow) -> i32 {
    match policy {
        Overflow::Wrap => acc.wrapping_add(x),
        Overflow::Saturate => acc.saturating_add(x),
    }
}

/// One integer MAC: `acc + a*w` under `policy`.
///
/// The product is exact: it lies in `[-16256, 16384]` (`-128 * -128 = 16384`), well inside i16+1 bit,
/// so only the add can overflow.
pub fn mac(acc: i32, a: i8, w: i8, policy: Overflow) -> i32 {
    add(acc, i32::from(a) * i32::from(w), policy)
}

/// Offset of the upper product's field in a packed multiply ([`packed_mul_pair`]).
pub const PACK_SHIFT: u32 = 18;

/// Two int8 products that share the operand `w`, from one wide multiply, as a DSP48E2 computes
/// them (Xilinx WP486, "Deep Learning with INT8 Optimization on Xilinx Devices"): the pre-adder
/// forms `x = (a_upper << 18) + a_lower` (27 bits), the 27 x 18 multiplier forms `P = x * w`, and
/// the two products are read from P's fields. Returns `(a_upper * w, a_lower * w)`; the STCE's
/// int8x2 packing (`dsp_packing = "int8x2"`) emits exactly these steps.
///
/// # The sign correction
/// `P = a_upper*w * 2^18 + L` with `L = a_lower*w`. Since `|L| <= 2^14 < 2^17`, L is exact in the
/// 18-bit lower field, as two's complement: `lower = sign_extend(P[17:0])`, and `P[17]` is 1
/// exactly when `L < 0`. The upper field is `floor(P / 2^18) = a_upper*w + floor(L / 2^18)
/// = a_upper*w - P[17]`: a negative lower product borrows one from the upper field. So
///
/// ```text
/// upper = P[33:18] + P[17]     (16-bit add; a_upper*w is in [-16256, 16384], exact in 16 bits)
/// lower = P[17:0]              (18-bit field, sign-extended)
/// ```
///
/// That `+ P[17]` is WP486's correction of the upper product by the lower product's sign. The
/// test `packed_mul_pair_is_exact_for_every_int8_triple` checks all 2^24 operand triples.
pub fn packed_mul_pair(a_upper: i8, a_lower: i8, w: i8) -> (i32, i32) {
    let x = (i64::from(a_upper) << PACK_SHIFT) + i64::from(a_lower);
    let p = x * i64::from(w); // |p| < 2^33: exact, as in the DSP's 45-bit product
    let field = |lo: u32, bits: u32| (p >> lo) & ((1i64 << bits) - 1);
    let sign_extend = |v: i64, bits: u32| (v << (64 - bits)) >> (64 - bits);
    let lower = sign_extend(field(0, PACK_SHIFT), PACK_SHIFT);
    let correction = field(PACK_SHIFT - 1, 1);
    let upper = sign_extend((field(PACK_SHIFT, 16) + correction) & 0xffff, 16);
    (upper as i32, lower as i32)
}

/// Parameters of the CoDeNet-style requantizer (see [`requantize`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Requant {
    /// Multiplier applied to the accumulator (16-bit in the default hardware, any i32 here).
    pub scale: i32,
    /// Added after the shift.
    pub bias: i32,
    /// Right shift `s`; `s > 0` rounds half up (adds `2^(s-1)` first), `s = 0` does not round.
    pub shift: u32,
    /// Apply `max(q, 0)` before the zero-point shift.
    pub relu: bool,
    /// Subtracted after the ReLU (CoDeNet uses 128 so that the ReLU output fills int8); 0 = none.
    pub zero_point: i32,
}

/// CoDeNet requantizer (numerics.md, deformable.md):
///
/// ```text
/// p = acc * scale + (s > 0 ? 2^(s-1) : 0)
/// q = (p >> s) + bias            // arithmetic shift = floor division by 2^s
/// if relu { q = max(q, 0) }
/// q = q - zero_point
/// return clamp(q, -128, 127)
/// ```
///
/// Intermediate width: everything is computed in i128, so no step can overflow for any input.
/// (i64 is *not* enough: with `acc = scale = i32::MIN` and `s = 63`, `p = 2^62 + 2^62 = 2^63`.)
/// For `s >= 127` the shift is done as `s = 127`, which gives the same floor because
/// `|acc * scale| <= 2^62`. The RTL only needs `32 + scale_width + 1` bits for its parameter widths.
pub fn requantize(acc: i32, q: &Requant) -> i8 {
    let s = q.shift.min(127);
    let round: i128 = if s > 0 { 1i128 << (s - 1) } else { 0 };
    let p = i128::from(acc) * i128::from(q.scale) + round;
    let mut v = (p >> s) + i128::from(q.bias);
    if q.relu {
        v = v.max(0);
    }
    v -= i128::from(q.zero_point);
    // The clamp makes the cast lossless.
    v.clamp(i128::from(i8::MIN), i128::from(i8::MAX)) as i8
}

/// Smallest int4 value.
pub const INT4_MIN: i8 = -8;
/// Largest int4 value.
pub const INT4_MAX: i8 = 7;

/// Int4 weights are carried as i8 values in `[-8, 7]`; this checks that a tensor (of any rank) really
/// is int4 and names the first offending element (row-major order) otherwise. Out-of-range values are
/// an error, never clamped.
pub fn check_int4<D: Dimension>(w: ArrayView<i8, D>, tensor: &str) -> Result<(), KernelError> {
    match w
        .indexed_iter()
        .find(|(_, &v)| !(INT4_MIN..=INT4_MAX).contains(&v))
    {
        None => Ok(()),
        Some((index, &v)) => Err(KernelError::OutOfRange {
            tensor: tensor.to_string(),
            format: "int4".to_string(),
            index: index.into_dimension().slice().to_vec(),
            value: i64::from(v),
            min: i64::from(INT4_MIN),
            max: i64::from(INT4_MAX),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn packed_mul_pair_is_exact_for_every_int8_triple() {
        // All 2^24 (a_upper, a_lower, w): every int8 pair against every int8 weight (int4
        // weights are among them).
        for w in i8::MIN..=i8::MAX {
            for a_upper in i8::MIN..=i8::MAX {
                for a_lower in i8::MIN..=i8::MAX {
                    let want = (
                        i32::from(a_upper) * i32::from(w),
                        i32::from(a_lower) * i32::from(w),
                    );
                    assert_eq!(
                        packed_mul_pair(a_upper, a_lower, w),
                        want,
                        "a_upper {a_upper}, a_lower {a_lower}, w {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_correction_is_what_makes_packing_exact() {
        // Without `+ P[17]` the upper product is one too small whenever the lower one is
        // negative: the borrow WP486's correction undoes.
        let p = ((3i64 << PACK_SHIFT) + -5) * 7;
        assert_eq!(p >> PACK_SHIFT, 3 * 7 - 1);
        assert_eq!(packed_mul_pair(3, -5, 7), (21, -35));
        assert_eq!(packed_mul_pair(-128, -128, -128), (16384, 16384));
        assert_eq!(packed_mul_pair(127, -128, 127), (16129, -16256));
    }

    #[test]
    fn product_of_min_values_is_exact() {
        assert_eq!(mac(0, -128, -128, Overflow::Wrap), 16384);
        assert_eq!(mac(0, -128, 127, Overflow::Wrap), -16256);
        assert_eq!(mac(0, 127, 127, Overflow::Saturate), 16129);
    }

    #[test]
    fn wrap_at_both_edges() {
        assert_eq!(mac(i32::MAX, 1, 1, Overflow::Wrap), i32::MIN);
        assert_eq!(mac(i32::MIN, -1, 1, Overflow::Wrap), i32::MAX);
        assert_eq!(mac(i32::MAX - 16383, -128, -128, Overflow::Wrap), i32::MIN);
        // Exactly reaching the edge does not wrap.
        assert_eq!(mac(i32::MAX - 16384, -128, -128, Overflow::Wrap), i32::MAX);
    }

    #[test]
    fn saturate_at_both_edges() {
        assert_eq!(mac(i32::MAX, 1, 1, Overflow::Saturate), i32::MAX);
        assert_eq!(mac(i32::MAX - 1, -128, -128, Overflow::Saturate), i32::MAX);
        assert_eq!(mac(i32::MIN, -128, 127, Overflow::Saturate), i32::MIN);
        assert_eq!(mac(i32::MIN + 5, -1, 5, Overflow::Saturate), i32::MIN);
        assert_eq!(mac(i32::MIN + 5, -1, 4, Overflow::Saturate), i32::MIN + 1);
        // Saturation is sticky per add, not a clamp of the final sum: from MAX, +1 then -1 is MAX-1.
        let a = add(add(i32::MAX, 1, Overflow::Saturate), -1, Overflow::Saturate);
        assert_eq!(a, i32::MAX - 1);
        let w = add(add(i32::MAX, 1, Overflow::Wrap), -1, Overflow::Wrap);
        assert_eq!(w, i32::MAX);
    }

    #[test]
    fn all_max_accumulation_overflows() {
        // 2^31 / 16384 = 131072 products of -128*-128 reach exactly 2^31: one past i32::MAX.
        let (mut w, mut s) = (0i32, 0i32);
        for _ in 0..131072 {
            w = mac(w, -128, -128, Overflow::Wrap);
            s = mac(s, -128, -128, Overflow::Saturate);
        }
        assert_eq!(w, i32::MIN);
        assert_eq!(s, i32::MAX);
    }

    fn rq(scale: i32, bias: i32, shift: u32, relu: bool, zero_point: i32) -> Requant {
        Requant {
            scale,
            bias,
            shift,
            relu,
            zero_point,
        }
    }

    #[test]
    fn requant_rounds_half_up_including_negatives() {
        let q = rq(1, 0, 2, false, 0);
        // x / 4 rounded half up (floor(x/4 + 1/2)).
        assert_eq!(requantize(2, &q), 1); // 0.5 -> 1
        assert_eq!(requantize(1, &q), 0); // 0.25 -> 0
        assert_eq!(requantize(-2, &q), 0); // -0.5 -> 0 (half up, not away from zero)
        assert_eq!(requantize(-3, &q), -1); // -0.75 -> -1
        assert_eq!(requantize(-6, &q), -1); // -1.5 -> -1
        assert_eq!(requantize(-7, &q), -2); // -1.75 -> -2
                                            // s = 0 does not add a rounding term.
        assert_eq!(requantize(-7, &rq(1, 0, 0, false, 0)), -7);
    }

    #[test]
    fn requant_relu_at_exactly_zero_and_zero_point() {
        let q = rq(1, 0, 1, true, 0);
        assert_eq!(requantize(-1, &q), 0); // p = 0 -> q = 0, relu keeps 0
        assert_eq!(requantize(-2, &q), 0); // q = -1 -> relu 0
        assert_eq!(requantize(1, &q), 1); // p = 2 -> q = 1
                                          // CoDeNet: relu then minus 128, so a zero maps to -128 and 255 to 127.
        let c = rq(1, 0, 0, true, 128);
        assert_eq!(requantize(0, &c), -128);
        assert_eq!(requantize(-50, &c), -128);
        assert_eq!(requantize(255, &c), 127);
        assert_eq!(requantize(256, &c), 127); // clamp
                                              // Without relu the zero point shifts negatives too, then the clamp applies.
        let n = rq(1, 0, 0, false, 128);
        assert_eq!(requantize(-1, &n), -128);
        assert_eq!(requantize(200, &n), 72);
    }

    #[test]
    fn requant_clamp_edges_and_bias() {
        let q = rq(1, 0, 0, false, 0);
        assert_eq!(requantize(127, &q), 127);
        assert_eq!(requantize(128, &q), 127);
        assert_eq!(requantize(-128, &q), -128);
        assert_eq!(requantize(-129, &q), -128);
        assert_eq!(requantize(i32::MAX, &q), 127);
        assert_eq!(requantize(i32::MIN, &q), -128);
        assert_eq!(requantize(100, &rq(1, 27, 0, false, 0)), 127);
        assert_eq!(requantize(100, &rq(1, 28, 0, false, 0)), 127);
        assert_eq!(requantize(100, &rq(1, -228, 0, false, 0)), -128);
        assert_eq!(requantize(100, &rq(1, -229, 0, false, 0)), -128);
        // The hardware default: 16-bit scale, shift 16.
        assert_eq!(requantize(1000, &rq(3277, 5, 16, false, 0)), 55); // 1000*3277/65536 = 50.003 -> 50 + 5
    }

    #[test]
    fn requant_extreme_parameters_do_not_overflow() {
        // The case that overflows i64: acc*scale = 2^62, plus 2^62 rounding, then >> 63 = 1.
        assert_eq!(requantize(i32::MIN, &rq(i32::MIN, 0, 63, false, 0)), 1);
        assert_eq!(requantize(i32::MIN, &rq(i32::MIN, 0, 64, false, 0)), 0);
        assert_eq!(requantize(i32::MIN, &rq(i32::MAX, 0, 200, false, 0)), 0);
        assert_eq!(
            requantize(i32::MIN, &rq(i32::MAX, i32::MIN, 0, false, i32::MAX)),
            -128
        );
        assert_eq!(
            requantize(i32::MAX, &rq(i32::MAX, i32::MAX, 0, true, i32::MIN)),
            127
        );
    }

    #[test]
    fn int4_check_names_the_element() {
        assert!(check_int4(array![[-8, 7], [0, 1]].view(), "w").is_ok());
        let e = check_int4(array![[-8, 7], [8, -9]].view(), "w").unwrap_err();
        assert_eq!(
            e,
            KernelError::OutOfRange {
                tensor: "w".into(),
                format: "int4".into(),
                index: vec![1, 0],
                value: 8,
                min: -8,
                max: 7
            }
        );
        assert!(check_int4(array![[-9]].view(), "w").is_err());
    }
}
