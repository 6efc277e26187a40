// cf_fp32_to_fp16_shift: stage 1 of cf_fp32_to_fp16 (see cf_fp32_to_fp16.v
// for the whole rule): classify the input, round a normal fp16 result, and
// shift a subnormal one into place with its guard and sticky bits.
`default_nettype none

module cf_fp32_to_fp16_shift (
    input  wire [31:0] x,
    output wire        sign,
    output wire        is_nan,     // the result is NaN (canonical)
    output wire        too_big,    // otherwise, |x| >= 2^16: the result is inf
    output wire        is_norm,    // otherwise, the result is normal (or rounds to inf)
    output wire [14:0] norm_mag,   // the rounded normal result, exponent and fraction
    output wire [9:0]  sub_k,      // otherwise, the subnormal result before rounding
    output wire        sub_guard,  // ... its guard bit
    output wire        sub_sticky  // ... and whether anything lies below it
);

    wire [7:0]  exp  = x[30:23];
    wire [22:0] frac = x[22:0];

    assign sign    = x[31];
    assign is_nan  = (exp == 8'hFF) && (frac != 23'd0);
    assign too_big = (exp >= 8'd143);            // includes inf
    assign is_norm = (exp >= 8'd113) && !too_big;

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
    assign      norm_mag    = {norm_exp, frac[22:13]} + {14'd0, norm_up};

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
    assign      sub_k      = sub_ext[34:25];
    assign      sub_guard  = sub_ext[24];
    assign      sub_sticky = |sub_ext[23:0];

endmodule

`default_nettype wire
