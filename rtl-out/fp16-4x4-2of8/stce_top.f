cf_fp16_mul_exact.v
cf_fp32_add_align.v
cf_fp32_add_sum.v
cf_fp32_add_round.v
cf_fp32_add.v
stce_pe_fp16_n2_m8.v
stce_top.v
