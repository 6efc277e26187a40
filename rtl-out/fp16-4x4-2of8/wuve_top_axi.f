cf_fp32_mul.v
cf_fp32_add.v
cf_fp32_to_fp16.v
wuve_lane.v
wuve_top.v
wuve_top_axi.v
