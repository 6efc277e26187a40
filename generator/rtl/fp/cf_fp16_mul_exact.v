// cf_fp16_mul_exact: IEEE 754 binary16 x binary16 -> binary32, exact,
// purely combinational.
//
// The product of two fp16 values is always exactly representable in fp32:
// the significands have 11 bits each, so their product has at most 22
// significant bits (fp32 keeps 24), and the exponent of any nonzero product
// lies in [2^-48, 2^32), well inside fp32's normal range [2^-126, 2^128).
// So there is no rounding, no overflow and no subnormal output, and the
// result equals Rust's `f32::from(a) * f32::from(b)` (with `half::f16`).
//
//   * fp16 subnormal inputs are normalized first (leading-zero shift), so
//     the product always has its leading one in one of two positions.
//   * Zeros: x * 0 = signed zero, sign = sign(a) xor sign(b).
//   * inf * finite nonzero = signed inf; inf * 0 = NaN.
//   * NaN policy: any NaN result is the canonical quiet NaN 32'h7FC00000
//     (sign 0, payload dropped); the Rust reference canonicalizes the same.
`default_nettype none

module cf_fp16_mul_exact (
    input  wire [15:0] a,
    input  wire [15:0] b,
    output wire [31:0] p
);

    localparam [31:0] CANON_NAN = 32'h7FC0_0000;

    // Leading-zero count of an 11-bit significand (11 when zero). Scans from
    // the LSB up so the highest set bit wins.
    function [3:0] lzc11;
        input [10:0] v;
        integer i;
        reg [3:0] cnt;
        begin
            lzc11 = 4'd11;
            cnt   = 4'd10;
            for (i = 0; i < 11; i = i + 1) begin
                if (v[i]) lzc11 = cnt;
                cnt = cnt - 4'd1;
            end
        end
    endfunction

    // ---- Classify the inputs -------------------------------------------
    wire a_exp_max  = (a[14:10] == 5'h1F);
    wire b_exp_max  = (b[14:10] == 5'h1F);
    wire a_nan      = a_exp_max && (a[9:0] != 10'd0);
    wire b_nan      = b_exp_max && (b[9:0] != 10'd0);
    wire a_inf      = a_exp_max && (a[9:0] == 10'd0);
    wire b_inf      = b_exp_max && (b[9:0] == 10'd0);
    wire a_zero     = (a[14:0] == 15'd0);
    wire b_zero     = (b[14:0] == 15'd0);
    wire res_sign   = a[15] ^ b[15];

    // ---- Normalize the significands --------------------------------------
    // A subnormal (exponent field 0) weighs like exponent 1 with no hidden
    // bit. Shifting it left by its leading-zero count (1..10) puts the
    // leading one at bit 10 and lowers the exponent by the same amount.
    wire        a_is_norm = (a[14:10] != 5'd0);
    wire        b_is_norm = (b[14:10] != 5'd0);
    wire [10:0] a_sig     = {a_is_norm, a[9:0]};
    wire [10:0] b_sig     = {b_is_norm, b[9:0]};
    wire [3:0]  a_lz      = lzc11(a_sig);
    wire [3:0]  b_lz      = lzc11(b_sig);
    wire [10:0] a_norm    = a_sig << a_lz;
    wire [10:0] b_norm    = b_sig << b_lz;
    wire [4:0]  a_exp     = a_is_norm ? a[14:10] : 5'd1;
    wire [4:0]  b_exp     = b_is_norm ? b[14:10] : 5'd1;

    // ---- Multiply ------------------------------------------------------
    // Both normalized significands are in [1, 2) (scaled by 2^10), so the
    // 22-bit product is in [1, 4) (scaled by 2^20): bit 21 or bit 20 leads.
    wire [21:0] prod  = a_norm * b_norm;
    wire        carry = prod[21];

    // fp32 biased exponent = (ea - 15 - lza) + (eb - 15 - lzb) + 127 + carry
    //                      = ea + eb - lza - lzb + 97 + carry.
    // Its range is [79, 158]: always a normal fp32 exponent, and 8-bit
    // modular arithmetic is exact because the true value fits in 8 bits.
    wire [7:0] exp32 = {3'b000, a_exp} + {3'b000, b_exp} + 8'd97
                     - {4'b0000, a_lz} - {4'b0000, b_lz} + {7'd0, carry};

    // Drop the leading one; the remaining 20 or 21 bits are exact and are
    // left-aligned in the 23-bit fp32 fraction.
    wire [22:0] frac32 = carry ? {prod[20:0], 2'b00} : {prod[19:0], 3'b000};

    // ---- Special operands ----------------------------------------------
    wire is_nan = a_nan | b_nan | (a_inf & b_zero) | (b_inf & a_zero);
    wire is_inf = a_inf | b_inf;
    wire is_zero = a_zero | b_zero;

    assign p = is_nan  ? CANON_NAN :
               is_inf  ? {res_sign, 8'hFF, 23'd0} :
               is_zero ? {res_sign, 31'd0} :
               {res_sign, exp32, frac32};

endmodule

`default_nettype wire
