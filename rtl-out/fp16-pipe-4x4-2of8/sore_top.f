sore_lane_fp16_n2_m8.v
sore_top.v
