// cf_fp32_add_align: stage 1 of cf_fp32_add (see cf_fp32_add.v for the
// whole rule): classify the operands, order them by magnitude and align the
// smaller significand to the larger exponent, with guard, round and sticky.
`default_nettype none

module cf_fp32_add_align (
    input  wire [31:0] a,
    input  wire [31:0] b,
    output wire        is_nan,          // the result is NaN (canonical)
    output wire        is_inf,          // otherwise, the result is inf
    output wire        inf_sign,        // ... of this sign
    output wire        zero_sign,       // sign of an exact zero sum: -0 only for -0 + -0
    output wire        eff_sub,         // the magnitudes subtract
    output wire        res_sign,        // sign of a nonzero finite sum: the larger's
    output wire [7:0]  larger_exp,      // effective exponent (1 for a subnormal)
    output wire [23:0] larger_sig,      // significand with its hidden bit
    output wire [26:0] smaller_aligned  // aligned significand, guard, round, sticky
);

    // ---- Classify the inputs -------------------------------------------
    wire a_sign = a[31];
    wire b_sign = b[31];
    wire a_exp_max = (a[30:23] == 8'hFF);
    wire b_exp_max = (b[30:23] == 8'hFF);
    wire a_nan = a_exp_max && (a[22:0] != 23'd0);
    wire b_nan = b_exp_max && (b[22:0] != 23'd0);
    wire a_inf = a_exp_max && (a[22:0] == 23'd0);
    wire b_inf = b_exp_max && (b[22:0] == 23'd0);
    assign eff_sub   = a_sign ^ b_sign;
    assign is_nan    = a_nan | b_nan | (a_inf & b_inf & eff_sub);
    // inf + finite = inf; inf + inf of one sign = that inf.
    assign is_inf    = a_inf | b_inf;
    assign inf_sign  = a_inf ? a_sign : b_sign;
    // Exact zero: RNE gives +0 unless both operands are -0.
    assign zero_sign = a_sign & b_sign;

    // ---- 1. Order by magnitude: |larger| >= |smaller| ------------------
    // For non-negative IEEE values the bit patterns compare like the values.
    // Only the larger operand's sign matters (it is the sign of a nonzero
    // result), so the smaller one is kept as a magnitude.
    wire        swap    = (b[30:0] > a[30:0]);
    wire [31:0] larger  = swap ? b : a;
    wire [30:0] smaller = swap ? a[30:0] : b[30:0];
    assign res_sign = larger[31];

    // A subnormal has exponent field 0 but weighs like exponent 1 with no
    // hidden bit; using the "effective" exponent makes both cases uniform.
    wire        larger_is_norm  = (larger[30:23] != 8'd0);
    wire        smaller_is_norm = (smaller[30:23] != 8'd0);
    assign      larger_exp  = larger_is_norm  ? larger[30:23]  : 8'd1;
    wire [7:0]  smaller_exp = smaller_is_norm ? smaller[30:23] : 8'd1;
    assign      larger_sig  = {larger_is_norm, larger[22:0]};
    wire [23:0] smaller_sig = {smaller_is_norm, smaller[22:0]};

    // ---- 2. Align the smaller operand ----------------------------------
    // Beyond 27 positions every bit lands in the sticky bit, so the shift is
    // clamped to 27. The significand, guard and round bits are the shifted
    // {smaller_sig, 2'b00}; the sticky bit ORs every bit of smaller_sig that
    // the shift moves below the round bit: bit i does when align_amt >= i + 3.
    // It is read from the unshifted significand (sticky_below), beside the
    // shift rather than after it, which keeps the stage shallow for the
    // pipelines that register it.
    function sticky_below;
        input [23:0] sig;
        input [4:0]  amt;
        integer i;
        reg [5:0] need;
        begin
            sticky_below = 1'b0;
            need = 6'd3;
            for (i = 0; i < 24; i = i + 1) begin
                if ({1'b0, amt} >= need) sticky_below = sticky_below | sig[i];
                need = need + 6'd1;
            end
        end
    endfunction

    wire [7:0]  exp_diff        = larger_exp - smaller_exp;
    wire [4:0]  align_amt       = (exp_diff > 8'd27) ? 5'd27 : exp_diff[4:0];
    wire [25:0] smaller_shifted = {smaller_sig, 2'b00} >> align_amt;
    assign      smaller_aligned = {smaller_shifted, sticky_below(smaller_sig, align_amt)};

endmodule

`default_nettype wire
