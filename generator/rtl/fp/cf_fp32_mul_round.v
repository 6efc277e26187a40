// cf_fp32_mul_round: stage 3 of cf_fp32_mul (see cf_fp32_mul.v for the
// whole rule): round to nearest even, detect overflow, and pick the special
// result (canonical NaN, inf, zero) where the operands call for one.
`default_nettype none

module cf_fp32_mul_round (
    input  wire        is_nan,      // the result is NaN (canonical)
    input  wire        inf_operand, // otherwise, an operand is inf
    input  wire        is_zero,     // otherwise, an operand is zero
    input  wire        res_sign,    // sign of the result (not NaN)
    input  wire        x_pos,       // normalized by a left shift
    input  wire [9:0]  exp_left,    // exponent after the left shift
    input  wire [24:0] q,           // hidden bit, 23 fraction bits, guard bit
    input  wire        sticky,      // some bit below the guard bit is set
    output wire [31:0] p            // fp32 product, RNE
);

    localparam [31:0] CANON_NAN = 32'h7FC0_0000;

    wire        guard     = q[0];
    wire        round_up  = guard & (sticky | q[1]);
    // The exponent is exp_left for a normal result, and the field is 0 for a
    // subnormal one (hidden bit 0: clamped left shift or right shift).
    wire        overflow  = x_pos & q[24] & (exp_left >= 10'd255);
    wire [7:0]  exp_field = (x_pos & q[24]) ? exp_left[7:0] : 8'd0;
    wire [30:0] magnitude = {exp_field, q[23:1]} + {30'd0, round_up};

    assign p = is_nan                 ? CANON_NAN :
               inf_operand | overflow ? {res_sign, 8'hFF, 23'd0} :
               is_zero                ? {res_sign, 31'd0} :
               {res_sign, magnitude};

endmodule

`default_nettype wire
