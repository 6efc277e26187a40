// cf_fp32_to_fp16: IEEE 754 binary32 -> binary16 conversion, purely
// combinational.
//
// The datapath is two stage modules in a row: cf_fp32_to_fp16_shift
// (classify, round a normal result, shift a subnormal one into place) and
// cf_fp32_to_fp16_round (round the subnormal result, pick the result). This
// module chains them directly; the pipelined WUVE (coforge's engines::wuve)
// puts a register between them, so both run the same rule.
//
// Bit-exact with `half::f16::from_f32` (and IEEE convertFormat):
//
//   * Rounding: round to nearest, ties to even (RNE).
//   * Overflow: |x| >= 65520 (the midpoint between the largest fp16,
//     65504, and 65536) rounds to +-inf; +-inf stays +-inf.
//   * fp16 subnormal results (|x| < 2^-14) are correctly rounded, including
//     rounding up into the smallest normal 2^-14 and rounding down to a
//     signed zero (|x| <= 2^-25 gives +-0; exactly 2^-25 is a tie to even).
//   * fp32 subnormal inputs (|x| < 2^-126) are far below 2^-25, so they
//     give a zero with the input's sign.
//   * NaN policy: any NaN input gives the canonical quiet NaN 16'h7E00
//     (sign 0, payload dropped). The Rust reference canonicalizes every
//     NaN to the same pattern before comparing.
//
// The fp16 biased exponent is e16 = e32 - 127 + 15 = e32 - 112, so the
// cases are decided on the fp32 exponent field alone:
//   e32 >= 143        : |x| >= 2^16                  -> inf
//   113 <= e32 <= 142 : normal fp16 range (possibly rounding up to inf)
//   e32 <= 112        : fp16 subnormal range (or zero)
`default_nettype none

module cf_fp32_to_fp16 (
    input  wire [31:0] x,
    output wire [15:0] h
);

    wire        sign;
    wire        is_nan;
    wire        too_big;
    wire        is_norm;
    wire [14:0] norm_mag;
    wire [9:0]  sub_k;
    wire        sub_guard;
    wire        sub_sticky;

    cf_fp32_to_fp16_shift shift (
        .x          (x),
        .sign       (sign),
        .is_nan     (is_nan),
        .too_big    (too_big),
        .is_norm    (is_norm),
        .norm_mag   (norm_mag),
        .sub_k      (sub_k),
        .sub_guard  (sub_guard),
        .sub_sticky (sub_sticky)
    );

    cf_fp32_to_fp16_round round (
        .sign       (sign),
        .is_nan     (is_nan),
        .too_big    (too_big),
        .is_norm    (is_norm),
        .norm_mag   (norm_mag),
        .sub_k      (sub_k),
        .sub_guard  (sub_guard),
        .sub_sticky (sub_sticky),
        .h          (h)
    );

endmodule

`default_nettype wire
