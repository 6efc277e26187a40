// cf_fp32_to_fp16: IEEE 754 binary32 -> binary16 conversion, purely
// combinational.
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

    localparam [15:0] CANON_NAN = 16'h7E00;

    wire        sign = x[31];
    wire [7:0]  exp  = x[30:23];
    wire [22:0] frac = x[22:0];

    wire is_nan   = (exp == 8'hFF) && (frac != 23'd0);
    wire too_big  = (exp >= 8'd143);             // includes inf
    wire is_norm  = (exp >= 8'd113) && !too_big;

    // ---- Normal fp16 result -----------------------------------------------
    // Keep the top 10 fraction bits; bit 12 is the guard bit and bits 11:0
    // only matter as "is anything left below the guard" (sticky).
    wire [4:0]  norm_exp    = exp[4:0] - 5'd16;  // = e32 - 112 (mod 32)
    wire        norm_guard  = frac[12];
    wire        norm_sticky = |frac[11:0];
    wire        norm_up     = norm_guard & (norm_sticky | frac[13]);
    // Adding the round-up bit to the packed {exponent, fraction} carries
    // into the exponent when the fraction is all ones; from exponent 30
    // that gives 31 with fraction 0, i.e. inf, exactly as IEEE requires.
    wire [14:0] norm_mag    = {norm_exp, frac[22:13]} + {14'd0, norm_up};

    // ---- Subnormal fp16 result ----------------------------------------------
    // An fp16 subnormal is k * 2^-24 with k < 2^10. The input is
    // sig * 2^(e32 - 150) with sig the 24-bit significand, so
    // k = sig * 2^(e32 - 126): a right shift by 126 - e32 (>= 14 here).
    // Past 25 positions every bit of sig is below the guard position, so
    // the shift is clamped to 25: the result is then 0 with guard 0, which
    // is also what an fp32 subnormal input (hidden bit 0) must give.
    wire [23:0] sig       = {exp != 8'd0, frac};
    wire [7:0]  sub_shift = 8'd126 - exp;        // no wrap: exp <= 112 here
    wire [4:0]  sub_amt   = (sub_shift > 8'd25) ? 5'd25 : sub_shift[4:0];
    // 49-bit window: 24 bits of sig above 25 bits that catch everything
    // shifted out (guard at bit 24, sticky below it).
    wire [48:0] sub_ext   = {sig, 25'd0} >> sub_amt;
    // The shift is at least 14, so bits 48:35 are always zero.
    wire [13:0] sub_unused_zero = sub_ext[48:35];
    wire [9:0]  sub_k      = sub_ext[34:25];
    wire        sub_guard  = sub_ext[24];
    wire        sub_sticky = |sub_ext[23:0];
    wire        sub_up     = sub_guard & (sub_sticky | sub_k[0]);
    // k = 1023 rounding up gives 1024 = 0x0400, the smallest normal fp16,
    // which is exactly the right encoding: no special case needed.
    wire [14:0] sub_mag    = {5'd0, sub_k} + {14'd0, sub_up};

    assign h = is_nan  ? CANON_NAN :
               too_big ? {sign, 15'h7C00} :
               is_norm ? {sign, norm_mag} :
               {sign, sub_mag};

endmodule

`default_nettype wire
