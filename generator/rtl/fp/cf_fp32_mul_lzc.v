// cf_fp32_mul_lzc: stage 2 of cf_fp32_mul (see cf_fp32_mul.v for the
// whole rule): count the product's leading zeros and choose the shift that
// normalizes it (left, clamped at exponent 1) or denormalizes it (right, to
// exponent 1).
`default_nettype none

module cf_fp32_mul_lzc (
    input  wire [9:0]  x,        // ea + eb - 126, two's complement
    input  wire [47:0] prod,     // significand product
    output wire        x_pos,    // x >= 1: normalized by a left shift
    output wire [5:0]  lshift,   // left shift (x >= 1)
    output wire [4:0]  rshift,   // right shift (x <= 0), clamped at 25
    output wire [9:0]  exp_left  // exponent after the left shift
);

    // Leading-zero count of a nonzero 16-bit vector. Scans from the LSB up
    // so the highest set bit wins.
    function [3:0] lzc16;
        input [15:0] v;
        integer i;
        reg [3:0] cnt;
        begin
            lzc16 = 4'd15;
            cnt   = 4'd15;
            for (i = 0; i < 16; i = i + 1) begin
                if (v[i]) lzc16 = cnt;
                cnt = cnt - 4'd1;
            end
        end
    endfunction

    // Leading-zero count of a 48-bit vector (48 when zero): the first
    // nonzero 16-bit chunk from the top decides. Counting the chunks side by
    // side, not one 48-bit scan, keeps the logic shallow (the stage must fit
    // in one cycle of the pipelined WUVE).
    function [5:0] lzc48;
        input [47:0] v;
        begin
            if (|v[47:32])     lzc48 = {2'd0, lzc16(v[47:32])};
            else if (|v[31:16]) lzc48 = 6'd16 + {2'd0, lzc16(v[31:16])};
            else if (|v[15:0])  lzc48 = 6'd32 + {2'd0, lzc16(v[15:0])};
            else                lzc48 = 6'd48;
        end
    endfunction

    assign x_pos = ($signed(x) > 10'sd0);

    // ---- Normalize (x >= 1): left shift, clamped at exponent 1 -------------
    // x_pos implies x - 1 >= 0; larger clamps than 48 never matter because
    // the leading-zero count is at most 48.
    wire [9:0] x_minus1 = x - 10'd1;
    wire [5:0] lz       = lzc48(prod);
    assign     lshift   = ({4'd0, lz} <= x_minus1) ? lz : x_minus1[5:0];
    assign     exp_left = x - {4'd0, lshift};

    // ---- Denormalize (x <= 0): right shift by 1 - x -----------------------
    // From 25 positions on, the guard bit is above the 48-bit product, so
    // the result rounds to zero whatever the sticky bit says; clamping the
    // shift to 25 keeps the shifter small.
    wire [9:0] rshift_raw = 10'd1 - x;
    assign     rshift     = (rshift_raw > 10'd25) ? 5'd25 : rshift_raw[4:0];

endmodule

`default_nettype wire
