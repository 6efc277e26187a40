// cf_fp32_add_round: stage 3 of cf_fp32_add (see cf_fp32_add.v for the
// whole rule): normalize the sum, round to nearest even, and pick the
// special result (canonical NaN, inf) where the operands call for one.
`default_nettype none

module cf_fp32_add_round (
    input  wire        is_nan,
    input  wire        is_inf,
    input  wire        inf_sign,
    input  wire        zero_sign,
    input  wire        res_sign,
    input  wire [7:0]  larger_exp,
    input  wire [27:0] sum,
    input  wire [4:0]  lshift,
    output wire [31:0] s
);

    localparam [31:0] CANON_NAN = 32'h7FC0_0000;

    // ---- 4. Normalize --------------------------------------------------
    // Carry out: shift right once, folding the dropped bit into sticky.
    wire        carry = sum[27];
    wire [26:0] z_carry = {sum[27:2], sum[1] | sum[0]};
    wire [8:0]  e_carry = {1'b0, larger_exp} + 9'd1;

    // No carry: shift left by lshift (cf_fp32_add_sum).
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

    wire sum_zero = (sum == 28'd0);
    wire sign     = sum_zero ? zero_sign : res_sign;

    wire [31:0] finite_result = overflow ? {sign, 8'hFF, 23'd0}
                                         : {sign, magnitude};

    // ---- Special operands ----------------------------------------------
    assign s = is_nan ? CANON_NAN :
               is_inf ? {inf_sign, 8'hFF, 23'd0} :
               finite_result;

endmodule

`default_nettype wire
