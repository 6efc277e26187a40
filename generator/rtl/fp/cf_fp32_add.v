// cf_fp32_add: IEEE 754 binary32 addition, s = a + b, purely combinational.
//
// The datapath is three stage modules in a row, cf_fp32_add_align (steps 1
// and 2 below), cf_fp32_add_sum (step 3 and the leading-zero count of step
// 4) and cf_fp32_add_round (the rest of step 4, and step 5). This module
// chains them directly; the pipelined fp16 PE (coforge's engines::arith,
// FpMac::pipelined) puts registers between them, so both run the same rule.
//
// Bit-exact with Rust's `f32 + f32` (round to nearest, ties to even), with
// one documented exception shared by the Rust reference: NaN payloads.
//
//   * Rounding: round to nearest, ties to even (RNE), the only mode.
//   * Subnormals: fully supported on inputs and outputs (no flush to zero).
//   * Zeros: exact cancellation x + (-x) gives +0 (RNE rule);
//     -0 + -0 = -0; +0 + -0 = +0.
//   * Overflow: rounds to +-inf.
//   * inf + finite = inf; inf + inf = inf; inf + -inf = NaN.
//   * NaN policy: any NaN result is the canonical quiet NaN 32'h7FC00000
//     (sign 0, payload dropped). The Rust reference canonicalizes every NaN
//     to the same pattern before comparing, so both sides agree bit for bit.
//
// Datapath (classic guard/round/sticky adder):
//   1. Order the operands by magnitude so the difference is never negative.
//   2. Align the smaller significand right by the exponent difference,
//      keeping 3 extra bits (guard, round, sticky). The sticky bit ORs every
//      bit shifted past the round bit: RNE only needs to know whether
//      anything nonzero lies below the round position, not what it is.
//   3. Add or subtract (28 bits: 1 carry + 24 significand + 3 GRS).
//   4. Normalize: one right shift on carry-out, or a left shift by the
//      leading-zero count. Three extra bits are enough: a left shift of more
//      than one position only happens when the exponents differ by at most
//      one, and then the alignment lost no bits, so the result is exact.
//      The left shift is clamped so the exponent never drops below 1; a
//      result that still has no hidden bit is subnormal (exponent field 0).
//   5. Round by adding the round-up bit to the packed {exponent, fraction}:
//      a carry out of the fraction increments the exponent, which handles
//      rounding up into the next binade, from the largest subnormal into
//      the smallest normal, and from the largest finite value into inf.
`default_nettype none

module cf_fp32_add (
    input  wire [31:0] a,
    input  wire [31:0] b,
    output wire [31:0] s
);

    wire        is_nan;
    wire        is_inf;
    wire        inf_sign;
    wire        zero_sign;
    wire        eff_sub;
    wire        res_sign;
    wire [7:0]  larger_exp;
    wire [23:0] larger_sig;
    wire [26:0] smaller_aligned;
    wire [27:0] sum;
    wire [4:0]  lshift;

    cf_fp32_add_align align (
        .a               (a),
        .b               (b),
        .is_nan          (is_nan),
        .is_inf          (is_inf),
        .inf_sign        (inf_sign),
        .zero_sign       (zero_sign),
        .eff_sub         (eff_sub),
        .res_sign        (res_sign),
        .larger_exp      (larger_exp),
        .larger_sig      (larger_sig),
        .smaller_aligned (smaller_aligned)
    );

    cf_fp32_add_sum add (
        .eff_sub         (eff_sub),
        .larger_exp      (larger_exp),
        .larger_sig      (larger_sig),
        .smaller_aligned (smaller_aligned),
        .sum             (sum),
        .lshift          (lshift)
    );

    cf_fp32_add_round round (
        .is_nan          (is_nan),
        .is_inf          (is_inf),
        .inf_sign        (inf_sign),
        .zero_sign       (zero_sign),
        .res_sign        (res_sign),
        .larger_exp      (larger_exp),
        .sum             (sum),
        .lshift          (lshift),
        .s               (s)
    );

endmodule

`default_nettype wire
