// cf_fp32_to_fp16_round: stage 2 of cf_fp32_to_fp16 (see cf_fp32_to_fp16.v
// for the whole rule): round a subnormal fp16 result and pick the result.
`default_nettype none

module cf_fp32_to_fp16_round (
    input  wire        sign,
    input  wire        is_nan,     // the result is NaN (canonical)
    input  wire        too_big,    // otherwise, the result is inf
    input  wire        is_norm,    // otherwise, the result is normal
    input  wire [14:0] norm_mag,   // the rounded normal result
    input  wire [9:0]  sub_k,      // the subnormal result before rounding
    input  wire        sub_guard,  // its guard bit
    input  wire        sub_sticky, // anything below the guard bit
    output wire [15:0] h
);

    localparam [15:0] CANON_NAN = 16'h7E00;

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
