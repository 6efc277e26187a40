// cf_fp32_mul_prod: stage 1 of cf_fp32_mul (see cf_fp32_mul.v for the
// whole rule): classify the operands, multiply the significands (48-bit
// product, subnormals without a hidden bit) and add the exponents.
`default_nettype none

module cf_fp32_mul_prod (
    input  wire [31:0] a,
    input  wire [31:0] b,
    output wire        is_nan,      // the result is NaN (canonical)
    output wire        inf_operand, // otherwise, an operand is inf: the result is inf
    output wire        is_zero,     // otherwise, an operand is zero: the result is zero
    output wire        res_sign,    // sign of the result (not NaN)
    output wire [9:0]  x,           // ea + eb - 126, two's complement
    output wire [47:0] prod         // significand product, binary point after bit 47
);

    // ---- Classify the inputs -------------------------------------------
    wire a_exp_max = (a[30:23] == 8'hFF);
    wire b_exp_max = (b[30:23] == 8'hFF);
    wire a_nan     = a_exp_max && (a[22:0] != 23'd0);
    wire b_nan     = b_exp_max && (b[22:0] != 23'd0);
    wire a_inf     = a_exp_max && (a[22:0] == 23'd0);
    wire b_inf     = b_exp_max && (b[22:0] == 23'd0);
    wire a_zero    = (a[30:0] == 31'd0);
    wire b_zero    = (b[30:0] == 31'd0);
    assign res_sign    = a[31] ^ b[31];
    assign is_nan      = a_nan | b_nan | (a_inf & b_zero) | (b_inf & a_zero);
    assign inf_operand = a_inf | b_inf;
    assign is_zero     = a_zero | b_zero;

    // A subnormal weighs like exponent 1 without a hidden bit.
    wire        a_is_norm = (a[30:23] != 8'd0);
    wire        b_is_norm = (b[30:23] != 8'd0);
    wire [23:0] a_sig = {a_is_norm, a[22:0]};
    wire [23:0] b_sig = {b_is_norm, b[22:0]};
    wire [7:0]  a_exp = a_is_norm ? a[30:23] : 8'd1;
    wire [7:0]  b_exp = b_is_norm ? b[30:23] : 8'd1;

    // ---- Multiply ------------------------------------------------------
    assign prod = a_sig * b_sig;

    // x = ea + eb - 126 in [-124, 382]: 10-bit two's complement.
    assign x = {2'b00, a_exp} + {2'b00, b_exp} - 10'd126;

endmodule

`default_nettype wire
