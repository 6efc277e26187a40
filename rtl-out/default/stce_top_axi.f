stce_pe_int8_n2_m8.v
stce_top.v
stce_top_axi.v
