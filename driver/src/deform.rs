//! A mode-A layer (plain or CoDeNet: optional 1x1, quantize, depthwise 3x3 with per-pixel
//! dilation, quantize) on the deformable engine, in closed-loop co-simulation.
//!
//! The driver loads the parameters, starts the layer, and streams the pixels pass by pass
//! (channel group g of every pixel in raster order, see the protocol in
//! `coforge_generator::engines::deform`) and the dilation map once per pass, while a sink takes
//! the results with optional random back-pressure. `cycles` is *measured*: from the cycle the
//! first pixel beat is taken to the cycle the last result is taken, both counted. The model's
//! value is `estimated_cycles`, kept beside it. The golden result is
//! `sparse_kernels::deform::codenet_block`; the comparison names the first differing element.

use crate::compare::{compare, Comparison};
use crate::DriverError;
use coforge_generator::config::{DeformConfig, DeformMode};
use coforge_generator::engines::deform::{
    self as engine, estimated_cycles, param_target, ports, Layer, RESET_CYCLES,
};
use coforge_sim::{Agent, OutputPort, Pins, SimError, StreamSink, StreamSource, VerilatedModel};
use ndarray::{Array3, ArrayView3, Axis};
use serde::Serialize;
use sparse_kernels::deform::codenet::{codenet_block, CodenetBlock};

/// Random back-pressure on the result stream: `ready` low with probability `stall_rate`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pressure {
    pub stall_rate: f64,
    pub seed: u64,
}

/// The first element where RTL and reference differ, as an (oy, ox, channel) position.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FirstMismatch {
    pub tensor: &'static str,
    /// `[oy, ox, channel]` of the NHWC output.
    pub index: [usize; 3],
    pub golden: i8,
    pub rtl: i8,
    /// Cycle (since reset) in which the engine gave that result.
    pub cycle: u64,
}

/// The engine's sticky error, with the output pixel whose dilation raised it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DilationFault {
    pub out_y: usize,
    pub out_x: usize,
    pub dilation: u8,
    pub max_dilation: u32,
}

impl std::fmt::Display for DilationFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the engine raised its error flag: output pixel (oy, ox) = ({}, {}) has dilation {}, \
             outside 1..={} (the engine's max_dilation; its line buffer holds 2 * {} + 2 rows)",
            self.out_y, self.out_x, self.dilation, self.max_dilation, self.max_dilation
        )
    }
}

/// What one layer on the engine gave.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// int8 `[Hout, Wout, C]` from the reference and from the engine.
    pub golden: Array3<i8>,
    pub rtl: Array3<i8>,
    pub mismatches: usize,
    pub first_mismatch: Option<FirstMismatch>,
    /// Measured: first pixel beat taken to last result taken, both counted.
    pub cycles: u64,
    pub estimated_cycles: u64,
    /// Multiply-adds of the layer: 9 per output element, plus Cin per 1x1 output element.
    pub macs: u64,
    /// Set when the engine raised its error flag (the results are then not the layer's).
    pub fault: Option<DilationFault>,
    /// Cycles spent loading parameters before the layer (not in `cycles`).
    pub load_cycles: u64,
}

impl Outcome {
    pub fn bit_exact(&self) -> bool {
        self.mismatches == 0 && self.fault.is_none()
    }
    /// MACs per MAC unit per measured cycle (9 * lanes depthwise units, plus lanes^2 1x1 ones).
    pub fn utilization(&self, cfg: &DeformConfig) -> f64 {
        let lanes = u64::from(cfg.lanes);
        let units = 9 * lanes
            + if cfg.has_pointwise() {
                lanes * lanes
            } else {
                0
            };
        self.macs as f64 / (units * self.cycles) as f64
    }
}

/// Records the first cycle in which a one-bit output is high.
struct FlagMonitor {
    port: OutputPort,
    first: Option<u64>,
}

impl Agent for FlagMonitor {
    fn drive(&mut self, _cycle: u64, _pins: &mut Pins) {}
    fn observe(&mut self, cycle: u64, pins: &Pins) {
        if self.first.is_none() && pins.get(self.port) & 1 == 1 {
            self.first = Some(cycle);
        }
    }
}

fn input_err(msg: String) -> DriverError {
    DriverError::Input(msg)
}

/// The layer's shape on the engine, after checking it fits.
pub fn check(
    cfg: &DeformConfig,
    x: ArrayView3<i8>,
    block: &CodenetBlock,
) -> Result<Layer, DriverError> {
    let (h, w, cin) = x.dim();
    let dw = block.depthwise.as_ref().ok_or_else(|| {
        DriverError::Unsupported("the engine always runs the depthwise stage; give one".into())
    })?;
    if dw.stride != cfg.stride as usize {
        return Err(DriverError::Unsupported(format!(
            "the layer has stride {} but the engine is built for stride {}; use a config with \
             stride = {}",
            dw.stride, cfg.stride, dw.stride
        )));
    }
    if block.pointwise.is_some() != cfg.has_pointwise() {
        return Err(DriverError::Unsupported(if cfg.has_pointwise() {
            "the engine has a 1x1 front, so the layer needs 1x1 weights, scale and bias".into()
        } else {
            "the layer has a 1x1 stage but the engine has no 1x1 front; use a config with \
             pointwise = true"
                .into()
        }));
    }
    if h == 0 || w == 0 || cin == 0 {
        return Err(input_err(format!(
            "x is [{h}, {w}, {cin}]; every size must be at least 1"
        )));
    }
    if w > cfg.max_width as usize {
        return Err(input_err(format!(
            "the image is {w} pixels wide but the engine holds rows of at most max_width = {}; \
             use a config with max_width >= {w}",
            cfg.max_width
        )));
    }
    if h >= 1 << engine::HEIGHT_BITS {
        return Err(input_err(format!(
            "the image is {h} rows high; the engine takes at most 65535"
        )));
    }
    let c = dw.w.dim().0;
    let cout_pw = block.pointwise.as_ref().map(|p| p.w.nrows());
    if let Some(cout) = cout_pw {
        if cout != c {
            return Err(DriverError::Shape(format!(
                "the 1x1 stage gives {cout} channels but the depthwise weights are for {c}"
            )));
        }
    } else if c != cin {
        return Err(DriverError::Shape(format!(
            "x has {cin} channels but the depthwise weights are for {c}"
        )));
    }
    for (what, n) in [("channels", c), ("input channels", cin)] {
        if n > cfg.max_channels as usize {
            return Err(input_err(format!(
                "the layer has {n} {what} but the engine holds parameters for max_channels = {}; \
                 use a config with max_channels >= {n}",
                cfg.max_channels
            )));
        }
    }
    let (hout, wout) = (h.div_ceil(dw.stride), w.div_ceil(dw.stride));
    if dw.dilation.dim() != (hout, wout) {
        return Err(DriverError::Shape(format!(
            "the dilation map is {:?} but must be [Hout, Wout] = [{hout}, {wout}]",
            dw.dilation.dim()
        )));
    }
    if cfg.mode == DeformMode::Plain {
        if let Some(((oy, ox), d)) = dw.dilation.indexed_iter().find(|(_, &d)| d != 1) {
            return Err(DriverError::Unsupported(format!(
                "a plain engine computes dilation 1, but pixel ({oy}, {ox}) has dilation {d}; \
                 use a config with mode = \"codenet\""
            )));
        }
    }
    let lanes = cfg.lanes as usize;
    Ok(Layer {
        height: h as u32,
        width: w as u32,
        groups: c.div_ceil(lanes) as u32,
        in_groups: if cfg.has_pointwise() {
            cin.div_ceil(lanes) as u32
        } else {
            1
        },
    })
}

/// Packs `values` (each `bits` wide, two's complement) into little-endian words.
fn pack(values: impl Iterator<Item = i64>, bits: u32, words: &mut Vec<u32>) {
    words.clear();
    let mut pos = 0u32;
    for v in values {
        let v = (v as u64) & ((1u64 << bits) - 1);
        let mut rest = bits;
        let mut v = v;
        while rest > 0 {
            let (w, off) = ((pos / 32) as usize, pos % 32);
            if words.len() <= w {
                words.resize(w + 1, 0);
            }
            let take = rest.min(32 - off);
            words[w] |= ((v & ((1u64 << take) - 1)) as u32) << off;
            v >>= take;
            rest -= take;
            pos += take;
        }
    }
}

/// One layer as beats: what goes into the engine's streams (the same on the bare engine and
/// through its AXI wrapper) and the reference it must match.
#[derive(Clone, Debug)]
pub struct LayerJob {
    pub layer: Layer,
    /// Parameter words in load order: `(prm_target, prm_addr, prm_data words)`.
    pub params: Vec<(u32, u64, Vec<u32>)>,
    /// Pixel beats (`in_data` words), pass by pass.
    pub pixels: Vec<Vec<u32>>,
    /// Dilation beats (CoDeNet; empty on a plain engine), once per pass.
    pub dilations: Vec<u64>,
    pub relu: bool,
    /// ReLU in the 1x1 quantizer (with the front).
    pub relu_pw: Option<bool>,
    /// The reference's int8 `[Hout, Wout, C]`.
    pub golden: Array3<i8>,
    /// Output channels C.
    pub channels: usize,
    /// Multiply-adds of the layer.
    pub macs: u64,
}

impl LayerJob {
    /// The beats of the layer `x` (int8 `[H, W, Cin]`) through `block` on `cfg`'s engine; a
    /// layer the engine cannot hold is rejected.
    pub fn new(
        cfg: &DeformConfig,
        x: ArrayView3<i8>,
        block: &CodenetBlock,
    ) -> Result<LayerJob, DriverError> {
        let layer = check(cfg, x, block)?;
        let dw = block.depthwise.as_ref().expect("checked");
        let golden4 = codenet_block(x.insert_axis(Axis(0)), block)
            .map_err(|e| DriverError::Input(e.to_string()))?
            .y;
        let golden = golden4.index_axis(Axis(0), 0).to_owned();
        let lanes = cfg.lanes as usize;
        let (h, w, cin) = x.dim();
        let c = dw.w.dim().0;
        let (groups, in_groups) = (layer.groups as usize, layer.in_groups as usize);
        let lane_or_zero =
            |g: usize, l: usize, n: usize| (g * lanes + l < n).then_some(g * lanes + l);
        let mut params = Vec::new();
        let mut load = |target: u32, addr: usize, values: &mut dyn Iterator<Item = i64>, bits| {
            let mut words = Vec::new();
            pack(values, bits, &mut words);
            params.push((target, addr as u64, words));
        };
        for g in 0..groups {
            for t in 0..9 {
                let mut it = (0..lanes).map(|l| {
                    lane_or_zero(g, l, c).map_or(0, |ch| i64::from(dw.w[[ch, t / 3, t % 3]]))
                });
                load(param_target::DW_TAP0 + t as u32, g, &mut it, 4);
            }
            let mut it = (0..lanes)
                .map(|l| lane_or_zero(g, l, c).map_or(0, |ch| i64::from(dw.quant.scale[ch])));
            load(param_target::DW_SCALE, g, &mut it, 16);
            let mut it = (0..lanes)
                .map(|l| lane_or_zero(g, l, c).map_or(0, |ch| i64::from(dw.quant.bias[ch])));
            load(param_target::DW_BIAS, g, &mut it, 16);
            if let Some(pw) = &block.pointwise {
                let mut it = (0..lanes)
                    .map(|l| lane_or_zero(g, l, c).map_or(0, |ch| i64::from(pw.quant.scale[ch])));
                load(param_target::PW_SCALE, g, &mut it, 16);
                let mut it = (0..lanes)
                    .map(|l| lane_or_zero(g, l, c).map_or(0, |ch| i64::from(pw.quant.bias[ch])));
                load(param_target::PW_BIAS, g, &mut it, 16);
                for o in 0..lanes {
                    for gin in 0..in_groups {
                        let mut it = (0..lanes).map(|i| {
                            match (lane_or_zero(g, o, c), lane_or_zero(gin, i, cin)) {
                                (Some(co), Some(ci)) => i64::from(pw.w[[co, ci]]),
                                _ => 0,
                            }
                        });
                        let addr = g * cfg.max_groups() as usize + gin;
                        load(param_target::PW_LANE0 + o as u32, addr, &mut it, 4);
                    }
                }
            }
        }
        let mut pixels = Vec::with_capacity(groups * h * w * in_groups);
        for g in 0..groups {
            for y in 0..h {
                for xx in 0..w {
                    for gin in 0..in_groups {
                        // With the 1x1 front a pixel is its input groups; without, group g.
                        let src = if block.pointwise.is_some() { gin } else { g };
                        let it = (0..lanes).map(|l| {
                            lane_or_zero(src, l, cin).map_or(0, |ch| i64::from(x[[y, xx, ch]]))
                        });
                        let mut words = Vec::new();
                        pack(it, 8, &mut words);
                        pixels.push(words);
                    }
                }
            }
        }
        let dilations = if cfg.mode == DeformMode::Codenet {
            (0..groups)
                .flat_map(|_| dw.dilation.iter().map(|&d| u64::from(d)))
                .collect()
        } else {
            Vec::new()
        };
        let (hout, wout) = dw.dilation.dim();
        let macs =
            (hout * wout * c * 9 + block.pointwise.as_ref().map_or(0, |_| h * w * c * cin)) as u64;
        Ok(LayerJob {
            layer,
            params,
            pixels,
            dilations,
            relu: dw.quant.relu,
            relu_pw: block.pointwise.as_ref().map(|p| p.quant.relu),
            golden,
            channels: c,
            macs,
        })
    }

    /// Output beats: one per output pixel per pass.
    pub fn out_beats(&self) -> usize {
        let (hout, wout, _) = self.golden.dim();
        self.layer.groups as usize * hout * wout
    }

    /// The outcome of the result beats `beats` (`out_data` words, in order) taken at `cycles`
    /// (since reset), with the first pixel beat taken at `first_in`.
    pub fn outcome(
        &self,
        cfg: &DeformConfig,
        beats: &dyn Fn(usize) -> Vec<u32>,
        cycles: &[u64],
        first_in: u64,
        (fault, load_cycles): (Option<DilationFault>, u64),
    ) -> Result<Outcome, DriverError> {
        let lanes = cfg.lanes as usize;
        let (hout, wout, c) = self.golden.dim();
        let mut rtl = Array3::<i8>::zeros((hout, wout, c));
        let mut result_cycle = Array3::<u64>::zeros((hout, wout, c));
        // Pass g, output raster order, lane l is channel g * lanes + l.
        for (k, &cycle) in cycles.iter().enumerate() {
            let (g, p) = (k / (hout * wout), k % (hout * wout));
            let beat = beats(k);
            for l in 0..lanes {
                let ch = g * lanes + l;
                if ch < c {
                    let v = (beat[l / 4] >> (8 * (l % 4))) as u8 as i8;
                    rtl[[p / wout, p % wout, ch]] = v;
                    result_cycle[[p / wout, p % wout, ch]] = cycle;
                }
            }
        }
        let last_out = *cycles.last().expect("at least one result");
        let golden = &self.golden;
        let flat = |a: &Array3<i8>| {
            a.view()
                .into_shape_with_order((hout * wout, c))
                .expect("contiguous")
                .to_owned()
        };
        let comparison: Comparison = compare("y", flat(golden).view(), flat(&rtl).view())?;
        let first_mismatch = comparison.first_mismatch.as_ref().map(|m| {
            let (p, ch) = (m.index[0], m.index[1]);
            let (oy, ox) = (p / wout, p % wout);
            FirstMismatch {
                tensor: "y",
                index: [oy, ox, ch],
                golden: golden[[oy, ox, ch]],
                rtl: rtl[[oy, ox, ch]],
                cycle: result_cycle[[oy, ox, ch]],
            }
        });
        Ok(Outcome {
            golden: golden.clone(),
            rtl,
            mismatches: comparison.mismatches,
            first_mismatch,
            cycles: last_out - first_in + 1,
            estimated_cycles: estimated_cycles(cfg, &self.layer),
            macs: self.macs,
            fault,
            load_cycles,
        })
    }
}

/// Runs the layer `x` (int8 `[H, W, Cin]`) through `block` on the engine and compares the result
/// with the reference bit for bit. A layer the engine cannot hold is rejected before simulating.
pub fn run_layer(
    model: &mut VerilatedModel,
    cfg: &DeformConfig,
    x: ArrayView3<i8>,
    block: &CodenetBlock,
    pressure: Pressure,
) -> Result<Outcome, DriverError> {
    let job = LayerJob::new(cfg, x, block)?;
    let dw = block.depthwise.as_ref().expect("checked");
    let (hout, wout) = dw.dilation.dim();
    let (h, w) = (job.layer.height, job.layer.width);
    let sim = |e: SimError| DriverError::Sim(e);

    // Reset.
    let rst = model.input(ports::RESET).map_err(sim)?;
    model.set(rst, 1);
    for _ in 0..RESET_CYCLES {
        model.step().map_err(sim)?;
    }
    model.set(rst, 0);

    // Parameters: one word per cycle while the engine is idle.
    let (prm_valid, prm_target, prm_addr, prm_data) = (
        model.input(ports::PRM_VALID).map_err(sim)?,
        model.input(ports::PRM_TARGET).map_err(sim)?,
        model.input(ports::PRM_ADDR).map_err(sim)?,
        model.input(ports::PRM_DATA).map_err(sim)?,
    );
    let prm_ready = model.output(ports::PRM_READY).map_err(sim)?;
    for (target, addr, words) in &job.params {
        model.set(prm_valid, 1);
        model.set(prm_target, u64::from(*target));
        model.set(prm_addr, *addr);
        model.pins_mut().set_words(prm_data, words);
        if model.get(prm_ready) & 1 != 1 {
            return Err(DriverError::Unsupported(
                "the engine is not ready for parameters".into(),
            ));
        }
        model.step().map_err(sim)?;
    }
    model.set(prm_valid, 0);

    // Start the layer.
    let set = |model: &mut VerilatedModel, name: &str, v: u64| -> Result<(), DriverError> {
        let p = model.input(name).map_err(sim)?;
        model.set(p, v);
        Ok(())
    };
    set(model, ports::HEIGHT, u64::from(h))?;
    set(model, ports::WIDTH, u64::from(w))?;
    set(model, ports::GROUPS, u64::from(job.layer.groups))?;
    set(model, ports::RELU, u64::from(job.relu))?;
    if let Some(relu_pw) = job.relu_pw {
        set(model, ports::IN_GROUPS, u64::from(job.layer.in_groups))?;
        set(model, ports::RELU_PW, u64::from(relu_pw))?;
    }
    set(model, ports::START, 1)?;
    model.step().map_err(sim)?;
    set(model, ports::START, 0)?;

    // Streams.
    let pins = model.pins();
    let mut pixels =
        StreamSource::new(pins, ports::IN_VALID, ports::IN_READY, ports::IN_DATA).map_err(sim)?;
    for words in &job.pixels {
        pixels.push_words(words).map_err(sim)?;
    }
    let mut dilations = if cfg.mode == DeformMode::Codenet {
        let mut s = StreamSource::new(pins, ports::DIL_VALID, ports::DIL_READY, ports::DIL_DATA)
            .map_err(sim)?;
        for &d in &job.dilations {
            s.push(d).map_err(sim)?;
        }
        Some(s)
    } else {
        None
    };
    let mut sink = StreamSink::new(pins, ports::OUT_VALID, ports::OUT_READY, ports::OUT_DATA)
        .map_err(sim)?
        .with_stalls(pressure.stall_rate, pressure.seed)
        .map_err(sim)?
        .expect(job.out_beats());
    let mut error = FlagMonitor {
        port: pins.output(ports::ERROR).map_err(sim)?,
        first: None,
    };
    let estimated = estimated_cycles(cfg, &job.layer);
    let budget = 64 + 8 * estimated + (estimated as f64 * 4.0 / (1.0 - pressure.stall_rate)) as u64;
    {
        let mut agents: Vec<&mut dyn Agent> = vec![&mut pixels, &mut sink, &mut error];
        if let Some(d) = dilations.as_mut() {
            agents.push(d);
        }
        model.run_until_done(&mut agents, budget).map_err(sim)?;
    }

    let first_in = *pixels
        .accepted_cycles()
        .first()
        .expect("at least one pixel");
    let fault = error.first.map(|flag_cycle| {
        // The flag rises in the cycle after the offending dilation was taken.
        let taken = dilations
            .as_ref()
            .map(|d| {
                d.accepted_cycles()
                    .iter()
                    .filter(|&&t| t < flag_cycle)
                    .count()
            })
            .unwrap_or(0);
        let p = taken.saturating_sub(1) % (hout * wout);
        let (oy, ox) = (p / wout, p % wout);
        DilationFault {
            out_y: oy,
            out_x: ox,
            dilation: dw.dilation[[oy, ox]],
            max_dilation: cfg.dmax(),
        }
    });
    job.outcome(
        cfg,
        &|k| sink.beat(k).to_vec(),
        sink.cycles(),
        first_in,
        (fault, job.params.len() as u64),
    )
}

/// A seeded mode-A layer for `cfg` (ChaCha8, so a seed reproduces it anywhere): uniform int8
/// pixels `[H, W, Cin]`, int4 weights, int16 scales in [-3000, 3000) and biases in [-200, 200)
/// (most results inside the int8 range, some clamped), ReLU off, and the dilations uniform in
/// [1, max_dilation] (all 1 on a plain engine). The 1x1 stage (Cin -> C) exists exactly when
/// the engine has the front; without it Cin = C.
pub fn seeded_layer(
    cfg: &DeformConfig,
    (h, w, cin, c): (usize, usize, usize, usize),
    seed: u64,
) -> (Array3<i8>, CodenetBlock) {
    use rand::{Rng, SeedableRng};
    use sparse_kernels::deform::codenet::{Depthwise, Pointwise, Quantizer};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x = Array3::from_shape_simple_fn((h, w, cin), || rng.random::<i8>());
    let quant = |n: usize, rng: &mut rand_chacha::ChaCha8Rng| Quantizer {
        scale: ndarray::Array1::from_shape_simple_fn(n, || rng.random_range(-3000i16..3000)),
        bias: ndarray::Array1::from_shape_simple_fn(n, || rng.random_range(-200i16..200)),
        relu: false,
    };
    let stride = cfg.stride as usize;
    let dmax = cfg.dmax().min(255) as u8;
    let dilation =
        ndarray::Array2::from_shape_simple_fn((h.div_ceil(stride), w.div_ceil(stride)), || {
            rng.random_range(1..=dmax)
        });
    let depthwise = Depthwise {
        w: Array3::from_shape_simple_fn((c, 3, 3), || rng.random_range(-8i8..=7)),
        dilation,
        stride,
        quant: quant(c, &mut rng),
    };
    let pointwise = cfg.has_pointwise().then(|| Pointwise {
        w: ndarray::Array2::from_shape_simple_fn((c, cin), || rng.random_range(-8i8..=7)),
        quant: quant(c, &mut rng),
    });
    (
        x,
        CodenetBlock {
            pointwise,
            depthwise: Some(depthwise),
        },
    )
}
