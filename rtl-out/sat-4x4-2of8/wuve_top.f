cf_fp32_add_align.v
cf_fp32_add_sum.v
cf_fp32_add_round.v
cf_fp32_mul.v
cf_fp32_add.v
cf_fp32_to_fp16.v
wuve_lane.v
wuve_top.v
