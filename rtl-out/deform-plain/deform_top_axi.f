deform_quantizer.v
deform_ram_w64_d128.v
deform_ram_w32_d8.v
deform_ram_w128_d8.v
deform_ram_w32_d64.v
deform_top.v
deform_top_axi.v
