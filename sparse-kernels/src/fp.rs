//! Floating-point path: fp16 operands, exact products, fp32 accumulation, fp32 → fp16 conversion.
//!
//! NaN/inf policy of these scalar rules: they are IEEE operations, so infinities propagate and
//! invalid operations give NaN (`inf * 0`, `inf + -inf`). Every NaN *result* is the canonical
//! quiet NaN ([`CANONICAL_NAN_F32`], [`CANONICAL_NAN_F16`]): IEEE leaves a NaN's sign and payload
//! to the implementation (x86 gives `0xFFC00000` for `inf - inf`), and a bit-exact contract
//! cannot, so the reference and the RTL both canonicalize. Rejecting NaN inputs is done at tensor
//! level (see [`crate::bdwp::train_step`]).

pub use half::f16;

/// The one fp32 NaN that any operation of the contract returns.
pub const CANONICAL_NAN_F32: f32 = f32::from_bits(0x7FC0_0000);
/// The one fp16 NaN that any operation of the contract returns.
pub const CANONICAL_NAN_F16: f16 = f16::from_bits(0x7E00);

/// `x`, with any NaN replaced by [`CANONICAL_NAN_F32`].
#[inline]
pub fn canon(x: f32) -> f32 {
    if x.is_nan() {
        CANONICAL_NAN_F32
    } else {
        x
    }
}

/// `x`, with any NaN replaced by [`CANONICAL_NAN_F16`].
pub fn canon16(x: f16) -> f16 {
    if x.is_nan() {
        CANONICAL_NAN_F16
    } else {
        x
    }
}

/// fp32 addition of the contract: IEEE round-to-nearest-even, subnormals kept, canonical NaN.
pub fn add(a: f32, b: f32) -> f32 {
    canon(a + b)
}

/// fp32 multiplication of the contract: IEEE round-to-nearest-even, subnormals kept, canonical NaN.
pub fn mul(a: f32, b: f32) -> f32 {
    canon(a * b)
}

/// Exact product of two fp16 values, as an f32.
///
/// No rounding happens: the significands have 11 bits, so the product has at most 22 significant
/// bits (< 24), and its magnitude lies in `[2^-48, 65504^2 ≈ 2^32]`, inside the *normal* f32 range.
/// Every non-zero product is therefore a normal f32 and exact; zero, inf and NaN follow IEEE rules.
pub fn mul_exact(a: f16, b: f16) -> f32 {
    canon(f32::from(a) * f32::from(b))
}

/// One MAC of the contract: `acc + mul_exact(a, b)`, the add in IEEE binary32 round-to-nearest-even
/// with subnormals kept (which is exactly Rust's `f32` `+`; Rust never contracts this into an FMA).
pub fn mac(acc: f32, a: f16, b: f16) -> f32 {
    add(acc, mul_exact(a, b))
}

/// fp32 → fp16, round to nearest even, overflow to ±inf (`|x| >= 65520` becomes inf), subnormal
/// results rounded too, NaN stays NaN. This is `half::f16::from_f32`; the tests pin it at the
/// halfway cases so that a change in `half` cannot go unnoticed.
pub fn to_f16(x: f32) -> f16 {
    canon16(f16::from_f32(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(bits: u16) -> f16 {
        f16::from_bits(bits)
    }

    #[test]
    fn f32_add_is_rne_with_halfway_cases() {
        let ulp_half = 2f32.powi(-24); // half an ulp of 1.0
                                       // Halfway, the even neighbour is 1.0: stays.
        assert_eq!((1.0f32 + ulp_half).to_bits(), 1.0f32.to_bits());
        // Halfway between 1+2^-23 (odd) and 1+2^-22 (even): rounds up to even.
        let odd = 1.0f32 + 2f32.powi(-23);
        assert_eq!(
            (odd + ulp_half).to_bits(),
            (1.0f32 + 2f32.powi(-22)).to_bits()
        );
        // Just above halfway rounds up.
        assert_eq!(
            1.0f32 + (ulp_half + 2f32.powi(-40)),
            1.0f32 + 2f32.powi(-23)
        );
        // Through `mac`: 1.0 + (2^-12 * 2^-12) is a halfway case too.
        let t = f16::from_f32(2f32.powi(-12));
        assert_eq!(mac(1.0, t, t).to_bits(), 1.0f32.to_bits());
        assert_eq!(
            mac(odd, t, t).to_bits(),
            (1.0f32 + 2f32.powi(-22)).to_bits()
        );
    }

    #[test]
    fn f32_add_keeps_subnormals() {
        let min_sub = f32::from_bits(1);
        assert_eq!((min_sub + min_sub).to_bits(), 2);
        // A normal minus a slightly smaller normal gives a subnormal, not zero (no flush).
        let a = f32::MIN_POSITIVE;
        let b = f32::from_bits(a.to_bits() - 1);
        assert_eq!((a - b).to_bits(), 1);
    }

    #[test]
    fn zero_signs_in_mac() {
        // +0 accumulator plus a -0 product stays +0; -0 + -0 would be -0.
        assert_eq!(mac(0.0, h(0x8000), h(0x3c00)).to_bits(), 0);
        assert_eq!(mul_exact(h(0x8000), h(0x3c00)).to_bits(), 0x8000_0000);
        assert_eq!(mac(-0.0, h(0x8000), h(0x3c00)).to_bits(), 0x8000_0000);
    }

    #[test]
    fn products_at_the_range_edges() {
        let min_sub = h(0x0001); // 2^-24
        assert_eq!(mul_exact(min_sub, min_sub), 2f32.powi(-48));
        let max = h(0x7bff); // 65504
        assert_eq!(mul_exact(max, max), 65504.0f32 * 65504.0);
        assert_eq!(f64::from(mul_exact(max, max)), 65504.0f64 * 65504.0);
        assert!(mul_exact(f16::INFINITY, f16::ZERO).is_nan());
        assert_eq!(mul_exact(f16::INFINITY, f16::NEG_ONE), f32::NEG_INFINITY);
    }

    proptest! {
        /// The product is exact: compare with the f64 product, which is exact for fp16 inputs too.
        #[test]
        fn mul_exact_is_exact(a in any::<u16>(), b in any::<u16>()) {
            let (a, b) = (h(a), h(b));
            prop_assume!(a.is_finite() && b.is_finite());
            let p = mul_exact(a, b);
            prop_assert_eq!(f64::from(p), f64::from(a) * f64::from(b));
        }
    }

    #[test]
    fn to_f16_halfway_cases_normal() {
        // 1 + 2^-11 is halfway between 1.0 (even) and 1+2^-10: stays 1.0.
        assert_eq!(to_f16(1.0 + 2f32.powi(-11)).to_bits(), 0x3c00);
        // 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even): rounds up.
        assert_eq!(to_f16(1.0 + 3.0 * 2f32.powi(-11)).to_bits(), 0x3c02);
        // Slightly above halfway rounds up.
        assert_eq!(
            to_f16(1.0 + 2f32.powi(-11) + 2f32.powi(-20)).to_bits(),
            0x3c01
        );
        // Negative mirror.
        assert_eq!(to_f16(-(1.0 + 3.0 * 2f32.powi(-11))).to_bits(), 0xbc02);
    }

    #[test]
    fn to_f16_halfway_cases_subnormal() {
        let ulp = 2f32.powi(-24); // fp16 subnormal step
        assert_eq!(to_f16(0.5 * ulp).to_bits(), 0x0000); // halfway 0 / min_sub: to even 0
        assert_eq!(to_f16(0.5 * ulp + 2f32.powi(-40)).to_bits(), 0x0001);
        assert_eq!(to_f16(1.5 * ulp).to_bits(), 0x0002); // halfway 1 / 2: to even 2
        assert_eq!(to_f16(2.5 * ulp).to_bits(), 0x0002); // halfway 2 / 3: to even 2
        assert_eq!(to_f16(-1.5 * ulp).to_bits(), 0x8002);
        assert_eq!(to_f16(-0.25 * ulp).to_bits(), 0x8000); // keeps the sign of zero
                                                           // Halfway between the largest subnormal (0x03ff) and the smallest normal (0x0400): to even.
        assert_eq!(to_f16(1023.5 * ulp).to_bits(), 0x0400);
        assert_eq!(to_f16(1022.5 * ulp).to_bits(), 0x03fe);
    }

    #[test]
    fn to_f16_overflow_threshold() {
        assert_eq!(to_f16(65504.0).to_bits(), 0x7bff);
        // 65520 is halfway between 65504 (odd significand) and 65536 (= inf): rounds to inf.
        assert_eq!(to_f16(65520.0).to_bits(), 0x7c00);
        assert_eq!(
            to_f16(f32::from_bits(65520.0f32.to_bits() - 1)).to_bits(),
            0x7bff
        );
        assert_eq!(to_f16(-65520.0).to_bits(), 0xfc00);
        assert_eq!(to_f16(f32::MAX).to_bits(), 0x7c00);
        assert_eq!(to_f16(f32::INFINITY).to_bits(), 0x7c00);
        assert!(to_f16(f32::NAN).is_nan());
    }

    proptest! {
        /// Cross-check to_f16 against an independent RNE written with f64 arithmetic.
        #[test]
        fn to_f16_matches_independent_rne(bits in any::<u32>()) {
            let x = f32::from_bits(bits);
            prop_assume!(x.is_finite());
            prop_assert_eq!(to_f16(x).to_bits(), rne_f16_reference(x));
        }
    }

    /// Round `x` to fp16 by picking the nearest of the two neighbouring fp16 values (ties to the even
    /// bit pattern), with overflow to inf above 65520. Independent of `half`.
    fn rne_f16_reference(x: f32) -> u16 {
        let sign: u16 = if x.is_sign_negative() { 0x8000 } else { 0 };
        let a = f64::from(x).abs();
        if a >= 65520.0 {
            return sign | 0x7c00;
        }
        // Find the largest non-negative fp16 pattern <= a by bisection over the ordered bit patterns.
        let (mut lo, mut hi) = (0u16, 0x7bffu16);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if f64::from(f16::from_bits(mid)) <= a {
                lo = mid
            } else {
                hi = mid - 1
            }
        }
        let below = f64::from(f16::from_bits(lo));
        if below == a {
            return sign | lo;
        }
        // For lo = 0x7bff the upper neighbour is inf, so 65504 wins below the 65520 threshold.
        let above = f64::from(f16::from_bits(lo + 1));
        let pick = if a - below < above - a {
            lo
        } else if a - below > above - a {
            lo + 1
        } else if lo % 2 == 0 {
            lo
        } else {
            lo + 1
        };
        sign | pick
    }
}
