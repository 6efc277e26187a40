// cf_fp32_add_sum: stage 2 of cf_fp32_add (see cf_fp32_add.v for the whole
// rule): add or subtract the aligned significands, and find how far left a
// sum without carry-out must shift (its leading zeros, clamped so that the
// exponent never drops below 1).
`default_nettype none

module cf_fp32_add_sum (
    input  wire        eff_sub,
    input  wire [7:0]  larger_exp,
    input  wire [23:0] larger_sig,
    input  wire [26:0] smaller_aligned,
    output wire [27:0] sum,             // carry, 24 significand bits, guard, round, sticky
    output wire [4:0]  lshift           // left shift of a sum without carry-out
);

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

    // ---- 3. Add or subtract --------------------------------------------
    wire [27:0] larger_wide  = {1'b0, larger_sig, 3'b000};
    wire [27:0] smaller_wide = {1'b0, smaller_aligned};
    assign sum = eff_sub ? (larger_wide - smaller_wide) : (larger_wide + smaller_wide);

    // ---- 4. Normalize (the shift amount) -------------------------------
    // No carry: shift left by the leading-zero count, but never below
    // exponent 1 (max_lshift = larger_exp - 1), giving a subnormal instead.
    wire [4:0]  lz         = lzc27(sum[26:0]);
    wire [7:0]  max_lshift = larger_exp - 8'd1;
    assign      lshift     = ({3'b000, lz} <= max_lshift) ? lz : max_lshift[4:0];

endmodule

`default_nettype wire
