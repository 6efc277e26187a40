//! Co-simulation of the deformable engine, mode A (plain and CoDeNet), bit for bit against
//! `sparse_kernels::deform::codenet_block`, in closed loop (valid/ready streams).

use coforge_driver::deform::{run_layer, Outcome, Pressure};
use coforge_generator::config::{Config, DeformConfig};
use coforge_testbenches::Engine;
use ndarray::{Array1, Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::deform::codenet::{CodenetBlock, Depthwise, Pointwise, Quantizer};

fn engine(toml: &str) -> (Engine, DeformConfig) {
    let e = Engine::from_toml(toml);
    let cfg = e.config.deform.clone().expect("a deform config");
    (e, cfg)
}

/// A seeded layer: int8 pixels, int4 weights, scales that keep results away from the clamps
/// most of the time (and sometimes not), and the given dilation map.
fn layer(
    seed: u64,
    (h, w, cin, c): (usize, usize, usize, usize),
    stride: usize,
    dilation: Array2<u8>,
    pointwise: bool,
) -> (Array3<i8>, CodenetBlock) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array3::from_shape_simple_fn((h, w, cin), || rng.random::<i8>());
    let quant = |n: usize, rng: &mut ChaCha8Rng| Quantizer {
        scale: Array1::from_shape_simple_fn(n, || rng.random_range(-3000i16..3000)),
        bias: Array1::from_shape_simple_fn(n, || rng.random_range(-200i16..200)),
        relu: rng.random::<bool>(),
    };
    let dw = Depthwise {
        w: ndarray::Array3::from_shape_simple_fn((c, 3, 3), || rng.random_range(-8i8..=7)),
        dilation,
        stride,
        quant: quant(c, &mut rng),
    };
    let pw = pointwise.then(|| Pointwise {
        w: Array2::from_shape_simple_fn((c, cin), || rng.random_range(-8i8..=7)),
        quant: quant(c, &mut rng),
    });
    (
        x,
        CodenetBlock {
            pointwise: pw,
            depthwise: Some(dw),
        },
    )
}

fn random_dilation(seed: u64, hout: usize, wout: usize, dmax: u8) -> Array2<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((hout, wout), || rng.random_range(1..=dmax))
}

fn run(
    e: &Engine,
    cfg: &DeformConfig,
    x: &Array3<i8>,
    block: &CodenetBlock,
    stall: f64,
) -> Outcome {
    let mut model = e.verilator();
    run_layer(
        &mut model,
        cfg,
        x.view(),
        block,
        Pressure {
            stall_rate: stall,
            seed: 7,
        },
    )
    .unwrap_or_else(|err| panic!("layer failed: {err}"))
}

fn assert_exact(o: &Outcome, what: &str) {
    assert!(o.fault.is_none(), "{what}: {}", o.fault.unwrap());
    assert_eq!(o.mismatches, 0, "{what}: {:?}", o.first_mismatch);
}

const CODENET: &str = "[deform]\nmode = \"codenet\"\nlanes = 4\nmax_width = 12\nmax_dilation = 3\nmax_channels = 16\n";

#[test]
fn codenet_random_dilations_and_awkward_sizes_are_bit_exact() {
    let (e, cfg) = engine(CODENET);
    // Channels not a multiple of the lanes; heights and widths of 1, 2, 3 and odd sizes.
    for (i, &(h, w, c)) in [
        (7, 9, 6),
        (1, 1, 3),
        (2, 3, 5),
        (3, 2, 4),
        (1, 12, 9),
        (9, 1, 2),
        (6, 12, 16),
    ]
    .iter()
    .enumerate()
    {
        let d = random_dilation(i as u64, h, w, 3);
        let (x, block) = layer(10 + i as u64, (h, w, c, c), 1, d, false);
        let o = run(&e, &cfg, &x, &block, 0.0);
        assert_exact(&o, &format!("{h}x{w}x{c}"));
    }
}

#[test]
fn dilation_at_max_is_exact_and_above_max_raises_the_error_naming_the_pixel() {
    let (e, cfg) = engine(CODENET);
    let (h, w, c) = (8, 10, 4);
    let at_max = Array2::from_elem((h, w), 3u8);
    let (x, block) = layer(3, (h, w, c, c), 1, at_max, false);
    assert_exact(
        &run(&e, &cfg, &x, &block, 0.0),
        "dilation = max_dilation everywhere",
    );

    let mut over = random_dilation(4, h, w, 3);
    over[[5, 7]] = 4;
    let (x, block) = layer(3, (h, w, c, c), 1, over, false);
    let o = run(&e, &cfg, &x, &block, 0.0);
    let fault = o
        .fault
        .expect("dilation 4 > max_dilation 3 raises the error flag");
    assert_eq!(
        (fault.out_y, fault.out_x, fault.dilation),
        (5, 7, 4),
        "{fault}"
    );
    assert!(fault.to_string().contains("(5, 7)") && fault.to_string().contains("1..=3"));

    let mut zero = random_dilation(5, h, w, 3);
    zero[[0, 2]] = 0;
    let (x, mut block) = layer(3, (h, w, c, c), 1, zero.clone(), false);
    // The reference rejects a dilation of 0, so compare only the flag.
    let mut model = e.verilator();
    block.depthwise.as_mut().unwrap().dilation = zero;
    let err = run_layer(&mut model, &cfg, x.view(), &block, Pressure::default());
    assert!(err.is_err() || err.unwrap().fault.is_some());
}

#[test]
fn stride_two_with_odd_sizes_is_bit_exact() {
    let (e, cfg) = engine(&format!("{CODENET}stride = 2\ntop = \"deform_top\"\n"));
    for (i, &(h, w, c)) in [(7usize, 9usize, 5usize), (1, 1, 4), (3, 3, 8), (2, 5, 3)]
        .iter()
        .enumerate()
    {
        let d = random_dilation(20 + i as u64, h.div_ceil(2), w.div_ceil(2), 3);
        let (x, block) = layer(30 + i as u64, (h, w, c, c), 2, d, false);
        assert_exact(
            &run(&e, &cfg, &x, &block, 0.0),
            &format!("stride 2, {h}x{w}x{c}"),
        );
    }
}

#[test]
fn pointwise_front_is_bit_exact_with_channels_not_multiples_of_lanes() {
    let (e, cfg) = engine(
        "[deform]\nmode = \"plain\"\nlanes = 4\nmax_width = 8\nmax_channels = 12\npointwise = true\n",
    );
    for (i, &(h, w, cin, cout)) in [(5, 6, 7, 6), (1, 2, 3, 9), (3, 1, 12, 4)]
        .iter()
        .enumerate()
    {
        let d = Array2::from_elem((h, w), 1u8);
        let (x, block) = layer(40 + i as u64, (h, w, cin, cout), 1, d, true);
        assert_exact(
            &run(&e, &cfg, &x, &block, 0.0),
            &format!("1x1 front {h}x{w}x{cin}x{cout}"),
        );
    }
}

#[test]
fn back_pressure_gives_the_same_bits_and_more_cycles() {
    let (e, cfg) = engine(CODENET);
    let (h, w, c) = (9, 12, 7);
    let d = random_dilation(50, h, w, 3);
    let (x, block) = layer(51, (h, w, c, c), 1, d, false);
    let free = run(&e, &cfg, &x, &block, 0.0);
    let pressed = run(&e, &cfg, &x, &block, 0.4);
    assert_exact(&free, "no back-pressure");
    assert_exact(&pressed, "40% back-pressure");
    assert_eq!(free.rtl, pressed.rtl);
    assert!(
        pressed.cycles > free.cycles,
        "{} cycles with back-pressure, {} without",
        pressed.cycles,
        free.cycles
    );
}

/// The engine against its own model: measured cycles within 5% (plus the pipeline) of
/// `estimated_cycles`, in both directions, on a layer wide enough for the steady state.
#[test]
fn measured_cycles_stay_within_five_percent_of_the_estimate() {
    for toml in [
        "[deform]\nmode = \"plain\"\nlanes = 4\nmax_width = 32\nmax_channels = 16\n",
        "[deform]\nmode = \"codenet\"\nlanes = 4\nmax_width = 32\nmax_dilation = 3\nmax_channels = 16\n",
    ] {
        let (e, cfg) = engine(toml);
        let (h, w, c) = (16, 32, 16);
        let d = random_dilation(60, h, w, cfg.dmax() as u8);
        let (x, block) = layer(61, (h, w, c, c), 1, d, false);
        let o = run(&e, &cfg, &x, &block, 0.0);
        assert_exact(&o, toml);
        let (m, est) = (o.cycles as f64, o.estimated_cycles as f64);
        assert!(
            m <= est * 1.05 + 8.0 && m >= est * 0.95 - 8.0,
            "{toml}: measured {m} cycles, estimated {est}"
        );
    }
}

#[test]
fn an_image_wider_than_max_width_is_rejected_before_simulating() {
    let (e, cfg) = engine(CODENET);
    let (x, block) = layer(70, (2, 13, 4, 4), 1, Array2::from_elem((2, 13), 1), false);
    let mut model = e.verilator();
    let err = run_layer(&mut model, &cfg, x.view(), &block, Pressure::default()).unwrap_err();
    assert!(err.to_string().contains("max_width = 12"), "{err}");
    assert_eq!(model.cycle(), 0, "nothing was simulated");
    let _ = Config::from_toml(CODENET, "t").unwrap();
}
