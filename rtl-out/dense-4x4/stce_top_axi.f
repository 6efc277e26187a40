stce_pe_int8_n4_dense.v
stce_top.v
stce_top_axi.v
