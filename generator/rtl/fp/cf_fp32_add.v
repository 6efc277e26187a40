// cf_fp32_add: IEEE 754 binary32 addition, s = a + b, purely combinational.
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

    localparam [31:0] CANON_NAN = 32'h7FC0_0000;

    // Leading-zero count of a 27-bit vector (27 when the vector is zero).
    // Scans from the LSB up so the highest set bit wins; the counter runs
    // down alongside the index to avoid integer-to-5-bit width casts.
    function [4:0] lzc27;
        input [26:0] v;
        integer i;
        reg [4:0] cnt;
        begin
            lzc27 = 5'd27;
            cnt   = 5'd26;
            for (i = 0; i < 27; i = i + 1) begin
                if (v[i]) lzc27 = cnt;
                cnt = cnt - 5'd1;
            end
        end
    endfunction

    // ---- Classify the inputs -------------------------------------------
    wire a_sign = a[31];
    wire b_sign = b[31];
    wire a_exp_max = (a[30:23] == 8'hFF);
    wire b_exp_max = (b[30:23] == 8'hFF);
    wire a_nan = a_exp_max && (a[22:0] != 23'd0);
    wire b_nan = b_exp_max && (b[22:0] != 23'd0);
    wire a_inf = a_exp_max && (a[22:0] == 23'd0);
    wire b_inf = b_exp_max && (b[22:0] == 23'd0);

    // ---- 1. Order by magnitude: |larger| >= |smaller| ------------------
    // For non-negative IEEE values the bit patterns compare like the values.
    // Only the larger operand's sign matters (it is the sign of a nonzero
    // result), so the smaller one is kept as a magnitude.
    wire        swap    = (b[30:0] > a[30:0]);
    wire [31:0] larger  = swap ? b : a;
    wire [30:0] smaller = swap ? a[30:0] : b[30:0];

    // A subnormal has exponent field 0 but weighs like exponent 1 with no
    // hidden bit; using the "effective" exponent makes both cases uniform.
    wire        larger_is_norm  = (larger[30:23] != 8'd0);
    wire        smaller_is_norm = (smaller[30:23] != 8'd0);
    wire [7:0]  larger_exp  = larger_is_norm  ? larger[30:23]  : 8'd1;
    wire [7:0]  smaller_exp = smaller_is_norm ? smaller[30:23] : 8'd1;
    wire [23:0] larger_sig  = {larger_is_norm, larger[22:0]};
    wire [23:0] smaller_sig = {smaller_is_norm, smaller[22:0]};

    // ---- 2. Align the smaller operand ----------------------------------
    // Beyond 27 positions every bit lands in the sticky bit, so the shift is
    // clamped to 27; the 54-bit window keeps all shifted-out bits visible.
    wire [7:0]  exp_diff  = larger_exp - smaller_exp;
    wire [4:0]  align_amt = (exp_diff > 8'd27) ? 5'd27 : exp_diff[4:0];
    wire [53:0] smaller_ext     = {smaller_sig, 3'b000, 27'd0} >> align_amt;
    wire        align_sticky    = |smaller_ext[26:0];
    wire [26:0] smaller_aligned = {smaller_ext[53:28], smaller_ext[27] | align_sticky};

    // ---- 3. Add or subtract --------------------------------------------
    wire        eff_sub      = a_sign ^ b_sign;
    wire [27:0] larger_wide  = {1'b0, larger_sig, 3'b000};
    wire [27:0] smaller_wide = {1'b0, smaller_aligned};
    wire [27:0] sum = eff_sub ? (larger_wide - smaller_wide) : (larger_wide + smaller_wide);
    wire        sum_zero = (sum == 28'd0);

    // ---- 4. Normalize --------------------------------------------------
    // Carry out: shift right once, folding the dropped bit into sticky.
    wire        carry = sum[27];
    wire [26:0] z_carry = {sum[27:2], sum[1] | sum[0]};
    wire [8:0]  e_carry = {1'b0, larger_exp} + 9'd1;

    // No carry: shift left by the leading-zero count, but never below
    // exponent 1 (max_lshift = larger_exp - 1), giving a subnormal instead.
    wire [4:0]  lz         = lzc27(sum[26:0]);
    wire [7:0]  max_lshift = larger_exp - 8'd1;
    wire [4:0]  lshift     = ({3'b000, lz} <= max_lshift) ? lz : max_lshift[4:0];
    wire [26:0] z_left  = sum[26:0] << lshift;
    wire [8:0]  e_left  = {1'b0, larger_exp} - {4'b0000, lshift};

    wire [26:0] z     = carry ? z_carry : z_left;
    wire [8:0]  e_pre = carry ? e_carry : e_left;

    // Only the carry path can reach exponent 255 (larger_exp <= 254).
    wire        overflow = (e_pre == 9'd255);
    // Without a hidden bit after normalization the result is subnormal.
    wire [7:0]  exp_field = z[26] ? e_pre[7:0] : 8'd0;

    // ---- 5. Round to nearest, ties to even -----------------------------
    wire guard     = z[2];
    wire sticky    = z[1] | z[0];
    wire lsb       = z[3];
    wire round_up  = guard & (sticky | lsb);
    wire [30:0] magnitude = {exp_field, z[25:3]} + {30'd0, round_up};

    // Exact zero: RNE gives +0 unless both operands are -0.
    wire res_sign = sum_zero ? (a_sign & b_sign) : larger[31];

    wire [31:0] finite_result = overflow ? {res_sign, 8'hFF, 23'd0}
                                         : {res_sign, magnitude};

    // ---- Special operands ----------------------------------------------
    wire is_nan = a_nan | b_nan | (a_inf & b_inf & eff_sub);

    assign s = is_nan ? CANON_NAN :
               a_inf  ? a :
               b_inf  ? b :
               finite_result;

endmodule

`default_nettype wire
