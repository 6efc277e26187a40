deform_quantizer.v
deform_ram_w32_d256.v
deform_ram_w16_d8.v
deform_ram_w64_d8.v
deform_top.v
deform_top_axi.v
