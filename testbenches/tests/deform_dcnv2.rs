//! The DCNv2 (mode B) deformable engine: lint and bit-exact closed-loop co-simulation against
//! `sparse_kernels::deform::dcnv2_fixed`.

use coforge_driver::dcnv2::{
    full_conv_on_stce, run_engine, verify_layer, EngineRun, LayerTensors, OffsetFault, Pressure,
};
use coforge_driver::design::unit_spec;
use coforge_generator::artifacts::render;
use coforge_generator::config::Config;
use coforge_generator::engines::axi::wrapper_name;
use coforge_generator::engines::deform::dcnv2::{self, ports, Dcnv2Params};
use coforge_generator::rtl::emit::render_verilog;
use coforge_sim::{BuildOptions, VerilatedModel, Verilator};
use coforge_testbenches::{assert_lint_clean, cell_count, synth_xilinx_cells, Engine};
use ndarray::{Array4, ArrayView4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::deform::{dcnv2_fixed, FixedFormat};

fn params(depthwise: bool, taps_per_cycle: u32) -> Dcnv2Params {
    Dcnv2Params {
        lanes: 3,
        max_width: 7,
        kernel: 3,
        stride: 1,
        padding: 1,
        dilation: 1,
        frac_bits: 3,
        mask_bits: 4,
        max_offset: 2,
        taps_per_cycle,
        depthwise,
        zero_point: -5,
        top: "dcnv2_top".into(),
    }
}

fn model(p: &Dcnv2Params) -> VerilatedModel {
    let spec = unit_spec(&dcnv2::generate(p), &p.top, ports::CLOCK);
    Verilator::build(&spec, &BuildOptions::default())
        .unwrap_or_else(|e| panic!("Verilator build failed: {e}"))
        .instantiate()
        .unwrap_or_else(|e| panic!("cannot load the model: {e}"))
}

fn random_layer(
    p: &Dcnv2Params,
    shape: (usize, usize, usize, usize),
    cout: usize,
    g: usize,
    mask: bool,
    seed: u64,
) -> LayerTensors {
    LayerTensors::random(p, shape, cout, g, mask, seed).unwrap()
}

/// The reference's `y` of a layer.
trait Golden {
    fn golden(&self, p: &Dcnv2Params) -> Array4<i32>;
}

impl Golden for LayerTensors {
    fn golden(&self, p: &Dcnv2Params) -> Array4<i32> {
        let fmt = FixedFormat::new(p.frac_bits, p.mask_bits, p.zero_point).unwrap();
        dcnv2_fixed(
            self.x.view(),
            self.offset.view(),
            self.mask.as_ref().map(|m| m.view()),
            self.w.view(),
            &self.geometry,
            &fmt,
        )
        .unwrap()
    }
}

fn assert_same(golden: ArrayView4<i32>, rtl: ArrayView4<i32>, what: &str) {
    assert_eq!(golden.dim(), rtl.dim(), "{what}: shapes");
    if let Some((idx, g)) = golden.indexed_iter().find(|(i, g)| rtl[*i] != **g) {
        panic!(
            "{what}: first mismatch at {idx:?}: golden {g}, rtl {}",
            rtl[idx]
        );
    }
}

fn run(m: &mut VerilatedModel, p: &Dcnv2Params, t: &LayerTensors, pressure: Pressure) -> EngineRun {
    run_engine(m, p, &t.layer(), pressure).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn lint_clean() {
    for (dw, t) in [(true, 4), (true, 9), (false, 4), (false, 1)] {
        let p = params(dw, t);
        let files = render_verilog(&dcnv2::generate(&p));
        assert_lint_clean(&files, &p.top, &format!("depthwise {dw}, {t} taps"));
    }
}

#[test]
fn depthwise_random_offsets_bit_exact() {
    let p = params(true, 4);
    let mut m = model(&p);
    for (i, (shape, g, mask)) in [
        ((1, 5, 6, 7), 1, true),
        ((1, 4, 5, 4), 2, false),
        ((2, 3, 3, 2), 3, true),
    ]
    .into_iter()
    .enumerate()
    {
        let t = random_layer(&p, shape, shape.1, g, mask, 10 + i as u64);
        let r = run(&mut m, &p, &t, Pressure::default());
        assert!(r.fault.is_none(), "{:?}", r.fault);
        assert_same(t.golden(&p).view(), r.sums.view(), &format!("case {i}"));
        println!(
            "case {i}: {} cycles measured, {} estimated",
            r.cycles, r.estimated_cycles
        );
    }
}

/// Offsets that put samples on and around the image's borders: whole pixels plus 0, +1, -1 or
/// half an LSB-pixel, within ±max_offset. With H, W <= 3 and padding 1 the samples land on
/// -1, -1 + eps, H - 1, H - 1 + eps, H and everything between.
fn border_offsets(p: &Dcnv2Params, t: &mut LayerTensors, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (m, f) = (p.max_offset as i32, p.frac_bits);
    let bound = m << f;
    let fracs = [0, 1, -1, 1 << (f - 1), (1 << f) - 1];
    t.offset.mapv_inplace(|_| {
        let whole = rng.random_range(-m..=m) << f;
        (whole + fracs[rng.random_range(0..fracs.len())]).clamp(-bound, bound)
    });
}

#[test]
fn depthwise_borders_and_tiny_images_bit_exact() {
    let p = params(true, 4);
    let mut m = model(&p);
    let sizes = [(1, 1), (1, 3), (2, 2), (3, 1), (2, 3), (3, 3)];
    for (i, &(h, w)) in sizes.iter().enumerate() {
        let mut t = random_layer(&p, (1, 4, h, w), 4, 2, i % 2 == 0, 40 + i as u64);
        border_offsets(&p, &mut t, 50 + i as u64);
        let r = run(&mut m, &p, &t, Pressure::default());
        assert!(r.fault.is_none(), "{:?}", r.fault);
        assert_same(t.golden(&p).view(), r.sums.view(), &format!("{h}x{w}"));
    }
}

#[test]
fn offsets_at_the_bound_pass_and_one_beyond_is_flagged() {
    let p = params(true, 4);
    let mut m = model(&p);
    let bound = (p.max_offset as i32) << p.frac_bits;
    let mut t = random_layer(&p, (1, 4, 5, 6), 4, 2, true, 60);
    let mut rng = ChaCha8Rng::seed_from_u64(61);
    t.offset
        .mapv_inplace(|_| if rng.random::<bool>() { bound } else { -bound });
    let r = run(&mut m, &p, &t, Pressure::default());
    assert!(
        r.fault.is_none(),
        "exactly ±max_offset is legal: {:?}",
        r.fault
    );
    assert_same(t.golden(&p).view(), r.sums.view(), "offsets at ±max_offset");
    // One offset just beyond, in offset group 1, tap 5, output pixel (3, 2): the Δx of that tap.
    for beyond in [bound + 1, -bound - 1, i32::MAX] {
        let mut bad = LayerTensors {
            offset: t.offset.clone(),
            ..t.clone()
        };
        bad.offset[[0, 2 * 9 + 2 * 5 + 1, 3, 2]] = beyond;
        let r = run(&mut m, &p, &bad, Pressure::default());
        assert_eq!(
            r.fault,
            Some(OffsetFault {
                out_y: 3,
                out_x: 2,
                tap: 5
            }),
            "offset {beyond}"
        );
        let err = verify_layer(&mut m, &p, &bad.layer(), None, Pressure::default())
            .unwrap_err()
            .to_string();
        for part in ["(y 3, x 2), tap 5", "offset group 1: dx", "±2 pixels"] {
            assert!(err.contains(part), "{part}: {err}");
        }
    }
}

#[test]
fn back_pressure_and_gaps_change_cycles_not_bits() {
    let p = params(true, 4);
    let mut m = model(&p);
    let t = random_layer(&p, (1, 5, 4, 5), 5, 1, true, 70);
    let calm = run(&mut m, &p, &t, Pressure::default());
    let golden = t.golden(&p);
    assert_same(golden.view(), calm.sums.view(), "no back-pressure");
    for seed in [1, 2] {
        let pressed = Pressure {
            stall_rate: 0.4,
            gap_rate: 0.2,
            seed,
        };
        let r = run(&mut m, &p, &t, pressed);
        assert_same(golden.view(), r.sums.view(), "back-pressure");
        assert!(r.cycles > calm.cycles, "{} vs {}", r.cycles, calm.cycles);
    }
}

#[test]
fn full_conv_im2col_through_the_stce_bit_exact() {
    // Two taps per cycle: five groups per pixel, the last with one real tap.
    let p = params(false, 2);
    let mut m = model(&p);
    let stce = Engine::stce(2, 3, 2, 2, "overflow = \"wrap\"");
    let mut stce_sim = stce.verilator();
    for (i, (shape, cout, g, mask)) in [((1, 4, 4, 5), 3, 2, true), ((1, 2, 3, 3), 4, 1, false)]
        .into_iter()
        .enumerate()
    {
        let t = random_layer(&p, shape, cout, g, mask, 80 + i as u64);
        let r = run(
            &mut m,
            &p,
            &t,
            Pressure {
                stall_rate: 0.2,
                gap_rate: 0.0,
                seed: 5,
            },
        );
        assert!(r.fault.is_none());
        let (y, gemm) =
            full_conv_on_stce(&mut stce_sim, stce.cfg(), &stce.spec, &r, &t.layer()).unwrap();
        assert_same(t.golden(&p).view(), y.view(), &format!("full conv {i}"));
        assert!(gemm.cycles > 0);
    }
}

#[test]
fn shipped_config_window_buffer_is_block_ram() {
    // Every shipped DCNv2 engine is synthesized inside its AXI wrapper (so one Yosys run also
    // shows that the wrapper is accepted); deform-dcnv2's window buffer must be block RAM.
    for name in ["deform-dcnv2", "deform-dcnv2-conv"] {
        let path = format!("{}/../configs/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let cfg = Config::load(std::path::Path::new(&path)).unwrap();
        let deform = cfg.deform.as_ref().unwrap();
        let p = Dcnv2Params::of(deform);
        let r = render(&cfg).unwrap();
        let top_name = wrapper_name(&deform.top);
        let top = r.tops.iter().find(|t| t.name == top_name).unwrap();
        let files: Vec<(String, String)> = r
            .verilog
            .iter()
            .filter(|(f, _)| top.files.contains(f))
            .cloned()
            .collect();
        let cells = synth_xilinx_cells(&files, &top.name, name);
        assert!(cell_count(&cells, "FDRE") > 0, "{name}: {cells:?}");
        if name != "deform-dcnv2" {
            // A 16-pixel-wide window buffer is small enough for LUT RAM: accepted is enough.
            continue;
        }
        // Four banks per tap slot, each one simple dual-port block RAM; no memory in LUTs but
        // the wrapper's result FIFO ({TLAST, result} words, 6 bits per RAM32M).
        let brams = cell_count(&cells, "RAMB18E1") + cell_count(&cells, "RAMB36E1");
        assert_eq!(brams, 4 * p.taps_per_cycle, "{name}: {cells:?}");
        let fifo_rams = (p.result_beat_bits() + 1).div_ceil(6);
        assert!(
            cell_count(&cells, "RAM32M") + cell_count(&cells, "RAM64M") <= fifo_rams,
            "{name}: {cells:?}"
        );
    }
}
