// cf_fp32_mul: IEEE 754 binary32 multiplication, p = a * b, purely
// combinational.
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

    localparam [31:0] CANON_NAN = 32'h7FC0_0000;

    // Leading-zero count of a 48-bit vector (48 when zero). Scans from the
    // LSB up so the highest set bit wins.
    function [5:0] lzc48;
        input [47:0] v;
        integer i;
        reg [5:0] cnt;
        begin
            lzc48 = 6'd48;
            cnt   = 6'd47;
            for (i = 0; i < 48; i = i + 1) begin
                if (v[i]) lzc48 = cnt;
                cnt = cnt - 6'd1;
            end
        end
    endfunction

    // ---- Classify the inputs -------------------------------------------
    wire a_exp_max = (a[30:23] == 8'hFF);
    wire b_exp_max = (b[30:23] == 8'hFF);
    wire a_nan     = a_exp_max && (a[22:0] != 23'd0);
    wire b_nan     = b_exp_max && (b[22:0] != 23'd0);
    wire a_inf     = a_exp_max && (a[22:0] == 23'd0);
    wire b_inf     = b_exp_max && (b[22:0] == 23'd0);
    wire a_zero    = (a[30:0] == 31'd0);
    wire b_zero    = (b[30:0] == 31'd0);
    wire res_sign  = a[31] ^ b[31];

    // A subnormal weighs like exponent 1 without a hidden bit.
    wire        a_is_norm = (a[30:23] != 8'd0);
    wire        b_is_norm = (b[30:23] != 8'd0);
    wire [23:0] a_sig = {a_is_norm, a[22:0]};
    wire [23:0] b_sig = {b_is_norm, b[22:0]};
    wire [7:0]  a_exp = a_is_norm ? a[30:23] : 8'd1;
    wire [7:0]  b_exp = b_is_norm ? b[30:23] : 8'd1;

    // ---- Multiply ------------------------------------------------------
    wire [47:0] prod = a_sig * b_sig;

    // x = ea + eb - 126 in [-124, 382]: 10-bit two's complement.
    wire signed [9:0] x = $signed({2'b00, a_exp}) + $signed({2'b00, b_exp}) - 10'sd126;
    wire              x_pos = (x > 10'sd0);

    // ---- Normalize (x >= 1): left shift, clamped at exponent 1 -------------
    // x_pos implies x - 1 >= 0; larger clamps than 48 never matter because
    // the leading-zero count is at most 48.
    wire [9:0]  x_minus1   = x - 10'sd1;
    wire [5:0]  lz         = lzc48(prod);
    wire [5:0]  lshift     = ({4'd0, lz} <= x_minus1) ? lz : x_minus1[5:0];
    wire [47:0] prod_left  = prod << lshift;
    wire [9:0]  exp_left   = x - {4'd0, lshift};

    // ---- Denormalize (x <= 0): right shift by 1 - x with sticky -------------
    // From 25 positions on, the guard bit q[23] = prod[23 + shift] is above
    // the 48-bit product, so the result rounds to zero whatever the sticky
    // bit says; clamping the shift to 25 keeps the shifter small. The 73-bit
    // window (48 + 25) keeps every shifted-out bit for the sticky OR.
    wire [9:0]  rshift_raw = 10'd1 - x;
    wire [4:0]  rshift     = (rshift_raw > 10'd25) ? 5'd25 : rshift_raw[4:0];
    wire [72:0] prod_ext   = {prod, 25'd0} >> rshift;
    wire        rsticky    = |prod_ext[24:0];

    // ---- Select, then round ------------------------------------------------
    // q[47] is the hidden bit, q[46:24] the fraction, q[23] the guard bit,
    // q[22:0] plus the denormalization sticky the sticky bit.
    wire [47:0] q         = x_pos ? prod_left : prod_ext[72:25];
    wire        sticky    = (|q[22:0]) | (~x_pos & rsticky);
    wire        guard     = q[23];
    wire        round_up  = guard & (sticky | q[24]);
    // The exponent is exp_left for a normal result, and the field is 0 for a
    // subnormal one (hidden bit 0: clamped left shift or right shift).
    wire        overflow  = x_pos & q[47] & (exp_left >= 10'd255);
    wire [7:0]  exp_field = (x_pos & q[47]) ? exp_left[7:0] : 8'd0;
    wire [30:0] magnitude = {exp_field, q[46:24]} + {30'd0, round_up};

    // ---- Special operands ----------------------------------------------
    wire is_nan  = a_nan | b_nan | (a_inf & b_zero) | (b_inf & a_zero);
    wire is_inf  = a_inf | b_inf | overflow;
    wire is_zero = a_zero | b_zero;

    assign p = is_nan  ? CANON_NAN :
               is_inf  ? {res_sign, 8'hFF, 23'd0} :
               is_zero ? {res_sign, 31'd0} :
               {res_sign, magnitude};

endmodule

`default_nettype wire
