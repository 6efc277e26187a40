// cf_fp32_mul_shift: stage 3 of cf_fp32_mul (see cf_fp32_mul.v for the
// whole rule): shift the product by the amount of cf_fp32_mul_lzc and gather
// the bits below the guard bit into sticky.
`default_nettype none

module cf_fp32_mul_shift (
    input  wire [47:0] prod,   // significand product
    input  wire        x_pos,  // x >= 1: normalized by a left shift
    input  wire [5:0]  lshift, // left shift (x >= 1)
    input  wire [4:0]  rshift, // right shift (x <= 0)
    output wire [24:0] q,      // hidden bit, 23 fraction bits, guard bit
    output wire        sticky  // some bit below the guard bit is set
);

    wire [47:0] prod_left = prod << lshift;
    // The 73-bit window (48 + 25) keeps every shifted-out bit for the
    // sticky OR.
    wire [72:0] prod_ext  = {prod, 25'd0} >> rshift;
    wire        rsticky   = |prod_ext[24:0];

    // full[47] is the hidden bit, full[46:24] the fraction, full[23] the
    // guard bit, full[22:0] plus the denormalization sticky the sticky bit.
    wire [47:0] full = x_pos ? prod_left : prod_ext[72:25];
    assign q      = full[47:23];
    assign sticky = (|full[22:0]) | (~x_pos & rsticky);

endmodule

`default_nettype wire
