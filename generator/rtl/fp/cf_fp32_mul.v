// cf_fp32_mul: IEEE 754 binary32 multiplication, p = a * b, purely
// combinational.
//
// The datapath is four stage modules in a row: cf_fp32_mul_prod (classify,
// multiply, add the exponents), cf_fp32_mul_lzc (count the leading zeros,
// choose the shift), cf_fp32_mul_shift (normalize or denormalize) and
// cf_fp32_mul_round (round, pick the special result). This module
// chains them directly; the pipelined WUVE (coforge's engines::wuve) puts
// registers between them, so both run the same rule.
//
// Bit-exact with Rust's `f32 * f32`:
//
//   * Rounding: round to nearest, ties to even (RNE).
//   * Subnormals: fully supported on inputs and outputs. Tiny products are
//     denormalized before rounding (gradual underflow), so they are rounded
//     once, at the subnormal precision; this includes rounding up into the
//     smallest normal 2^-126 and rounding down to a signed zero.
//   * Overflow: rounds to +-inf.
//   * Zeros: sign = sign(a) xor sign(b). 0 * inf = NaN; inf * nonzero = inf.
//   * NaN policy: any NaN result is the canonical quiet NaN 32'h7FC00000
//     (sign 0, payload dropped). The Rust reference canonicalizes every NaN
//     to the same pattern before comparing.
//
// Datapath: the full 48-bit significand product is formed without
// normalizing subnormal inputs first. Its value is prod * 2^(x - 127 - 47)
// with x = ea + eb - 126 (effective biased exponents), i.e. prod read as a
// fixed-point number with the binary point after bit 47 and biased exponent
// x. Then:
//   * x >= 1: shift left by the leading-zero count so bit 47 holds the
//     hidden one, but never past exponent 1 (the left shift is clamped to
//     x - 1); if bit 47 is still 0 the result is subnormal.
//   * x <  1: the product is below the normal range; shift right by 1 - x
//     to reach exponent 1 (subnormal), ORing the dropped bits into sticky.
// Rounding adds the round-up bit to the packed {exponent, fraction}, so a
// carry out of the fraction moves into the exponent (next binade, smallest
// normal, or inf).
`default_nettype none

module cf_fp32_mul (
    input  wire [31:0] a,
    input  wire [31:0] b,
    output wire [31:0] p
);

    wire        is_nan;
    wire        inf_operand;
    wire        is_zero;
    wire        res_sign;
    wire [9:0]  x;
    wire [47:0] prod;
    wire        x_pos;
    wire [5:0]  lshift;
    wire [4:0]  rshift;
    wire [9:0]  exp_left;
    wire [24:0] q;
    wire        sticky;

    cf_fp32_mul_prod product (
        .a           (a),
        .b           (b),
        .is_nan      (is_nan),
        .inf_operand (inf_operand),
        .is_zero     (is_zero),
        .res_sign    (res_sign),
        .x           (x),
        .prod        (prod)
    );

    cf_fp32_mul_lzc count (
        .x           (x),
        .prod        (prod),
        .x_pos       (x_pos),
        .lshift      (lshift),
        .rshift      (rshift),
        .exp_left    (exp_left)
    );

    cf_fp32_mul_shift shift (
        .prod        (prod),
        .x_pos       (x_pos),
        .lshift      (lshift),
        .rshift      (rshift),
        .q           (q),
        .sticky      (sticky)
    );

    cf_fp32_mul_round round (
        .is_nan      (is_nan),
        .inf_operand (inf_operand),
        .is_zero     (is_zero),
        .res_sign    (res_sign),
        .x_pos       (x_pos),
        .exp_left    (exp_left),
        .q           (q),
        .sticky      (sticky),
        .p           (p)
    );

endmodule

`default_nettype wire
