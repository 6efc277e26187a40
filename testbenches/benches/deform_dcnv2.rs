//! DCNv2 (mode B) depthwise on the published layer (CoDeNet, Ultra96): a 64 x 64 feature map with
//! 256 channels on a 16-lane engine, random offsets within ±2 pixels (Q.8) and a Q0.8 mask, every
//! run bit-exact against `sparse_kernels::deform::dcnv2_fixed`. Rows for the shipped design point
//! (all 9 taps per cycle) and for 3 taps per cycle (a third of the window-buffer copies): measured
//! cycles beside the estimate, cycles over the ideal H*W*C/lanes, and milliseconds at 250 MHz
//! beside the published 20.5 ms of CoDeNet's general deformable layer.
//!
//! Run: `cargo bench -p coforge-testbenches --bench deform_dcnv2`.

use coforge_driver::dcnv2::{verify_layer, LayerTensors, Pressure};
use coforge_generator::engines::deform::dcnv2::Dcnv2Params;
use coforge_testbenches::Engine;

const CLOCK_MHZ: f64 = 250.0;
const LANES: u32 = 16;
const SHAPE: (usize, usize, usize, usize) = (1, 256, 64, 64);

fn main() {
    let (_, c, h, w) = SHAPE;
    let ideal = (h * w * c) as u64 / u64::from(LANES);
    println!("# DCNv2 depthwise 3x3, 64 x 64 x 256, 16 lanes, offsets within ±2 pixels, bit-exact");
    println!();
    println!("| taps per cycle | measured cycles | estimated | cycles / ideal | ms at 250 MHz | published general deformable (Ultra96) |");
    println!("|---|---|---|---|---|---|");
    for taps in [9, 3] {
        let e = Engine::from_toml(&format!(
            "[deform]\nmode = \"dcnv2\"\nlanes = {LANES}\nmax_width = 64\nkernel = 3\n\
             frac_bits = 8\nmask_bits = 8\nmax_offset = 2\ntaps_per_cycle = {taps}\n"
        ));
        let p = Dcnv2Params::of(e.config.deform.as_ref().unwrap());
        let t = LayerTensors::random(&p, SHAPE, c, 1, true, 1).unwrap();
        let mut model = e.verilator();
        let v = verify_layer(&mut model, &p, &t.layer(), None, Pressure::default())
            .unwrap_or_else(|err| panic!("{taps} taps: {err}"));
        assert!(
            v.comparison.bit_exact(),
            "{:?}",
            v.comparison.first_mismatch
        );
        println!(
            "| {taps} | {} | {} | {:.3} | {:.3} | 20.5 ms |",
            v.cycles,
            v.estimated_cycles,
            v.cycles as f64 / ideal as f64,
            v.cycles as f64 / (CLOCK_MHZ * 1e3),
        );
    }
}
