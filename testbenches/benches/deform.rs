//! Deformable engine benchmark on the published layer (CoDeNet, Ultra96): a 64 x 64 feature map
//! with 256 channels on a 16-lane engine. One row each for plain depthwise and CoDeNet mode with
//! random dilations in [1, 6], each bit-exact against the reference: measured cycles, cycles
//! over the ideal H*W*C/lanes, milliseconds at 250 MHz beside the published figures, and the
//! ratios. Also the reference's own throughput on the layer.
//!
//! Run: `cargo bench -p coforge-testbenches --bench deform`.

use coforge_driver::dcnv2::{verify_layer, LayerTensors};
use coforge_driver::deform::{run_layer, seeded_layer, Pressure};
use coforge_generator::engines::deform::dcnv2::Dcnv2Params;
use coforge_testbenches::Engine;
use ndarray::Axis;
use sparse_kernels::deform::codenet::codenet_block;
use std::time::Instant;

const CLOCK_MHZ: f64 = 250.0;
const SHAPE: (usize, usize, usize, usize) = (64, 64, 256, 256);
const LANES: u64 = 16;

fn main() {
    let (h, w, c, _) = SHAPE;
    let ideal = (h * w * c) as u64 / LANES;
    println!("# Deformable engine, 64 x 64 x 256 depthwise 3x3, 16 lanes, bit-exact runs");
    println!();
    println!("| row | measured cycles | estimated | cycles / ideal | ms at 250 MHz | published (Ultra96) |");
    println!("|---|---|---|---|---|---|");
    let mut measured = Vec::new();
    for (name, toml, published) in [
        (
            "plain depthwise",
            "[deform]\nmode = \"plain\"\nlanes = 16\nmax_width = 64\nmax_channels = 256\n",
            "1.9 ms",
        ),
        (
            "codenet, dilations in [1, 6]",
            "[deform]\nmode = \"codenet\"\nlanes = 16\nmax_width = 64\nmax_dilation = 6\nmax_channels = 256\n",
            "2.1 ms (bounded + square)",
        ),
    ] {
        let e = Engine::from_toml(toml);
        let cfg = e.config.deform.clone().unwrap();
        let (x, block) = seeded_layer(&cfg, SHAPE, 1);
        let mut model = e.verilator();
        let o = run_layer(&mut model, &cfg, x.view(), &block, Pressure::default())
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(o.bit_exact(), "{name}: {:?} {:?}", o.first_mismatch, o.fault);
        println!(
            "| {name} | {} | {} | {:.3} | {:.3} | {published} |",
            o.cycles,
            o.estimated_cycles,
            o.cycles as f64 / ideal as f64,
            o.cycles as f64 / (CLOCK_MHZ * 1e3),
        );
        measured.push(o.cycles);
    }
    for taps in [9, 3] {
        let e = Engine::from_toml(&format!(
            "[deform]\nmode = \"dcnv2\"\nlanes = {LANES}\nmax_width = 64\nkernel = 3\n\
             frac_bits = 8\nmask_bits = 8\nmax_offset = 2\ntaps_per_cycle = {taps}\n"
        ));
        let p = Dcnv2Params::of(e.config.deform.as_ref().unwrap());
        // DCNv2 takes NCHW, as torchvision does: [B, C, H, W].
        let t = LayerTensors::random(&p, (1, c, h, w), c, 1, true, 1).unwrap();
        let mut model = e.verilator();
        let v = verify_layer(
            &mut model,
            &p,
            &t.layer(),
            None,
            coforge_driver::dcnv2::Pressure::default(),
        )
        .unwrap_or_else(|err| panic!("dcnv2, {taps} taps per cycle: {err}"));
        assert!(
            v.comparison.bit_exact(),
            "{:?}",
            v.comparison.first_mismatch
        );
        println!(
            "| DCNv2 depthwise, {taps} taps per cycle | {} | {} | {:.3} | {:.3} | 20.5 ms (general deformable) |",
            v.cycles,
            v.estimated_cycles,
            v.cycles as f64 / ideal as f64,
            v.cycles as f64 / (CLOCK_MHZ * 1e3),
        );
        measured.push(v.cycles);
    }
    println!();
    println!(
        "codenet / plain = {:.3} (target <= 1.05; CoDeNet measured 2.1 / 1.9 = 1.105)",
        measured[1] as f64 / measured[0] as f64
    );
    for (i, taps) in [(2, 9), (3, 3)] {
        println!(
            "dcnv2 ({taps} taps per cycle) / codenet = {:.3} (target <= 3; CoDeNet measured 20.5 / 2.1 = 9.76)",
            measured[i] as f64 / measured[1] as f64
        );
    }
    println!(
        "plain / ideal = {:.3} (target <= 1.1)",
        measured[0] as f64 / ideal as f64
    );

    // The reference on the same layer: median of 3.
    let e = Engine::from_toml(
        "[deform]\nmode = \"codenet\"\nlanes = 16\nmax_width = 64\nmax_dilation = 6\nmax_channels = 256\n",
    );
    let cfg = e.config.deform.clone().unwrap();
    let (x, block) = seeded_layer(&cfg, SHAPE, 1);
    let mut times: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let y = codenet_block(x.view().insert_axis(Axis(0)), &block).unwrap();
            std::hint::black_box(y);
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let macs = (h * w * c * 9) as f64;
    println!(
        "reference (sparse_kernels::deform::codenet_block): {:.1} ms per layer, {:.0} M MAC/s (median of 3)",
        times[1] * 1e3,
        macs / times[1] / 1e6
    );
}
