//! A DCNv2 layer (mode B) on the deformable engine, in closed-loop co-simulation.
//!
//! The layer is cut into planes (`lanes` channels of one image and one offset group, see the
//! protocol in `coforge_generator::engines::deform::dcnv2`): for every plane the driver streams
//! the pixels, the offset group's offsets (and mask) once per output pixel, and in depthwise mode
//! the plane's weights. A depthwise layer's sums come out of the engine; a full conv's sampled
//! im2col columns come out of it and are multiplied on the STCE (dense int8, wrap), so the whole
//! layer runs on RTL. `cycles` are measured from the first input beat to the last output beat.

use crate::compare::{compare, Comparison};
use crate::verify::{int8_gemm, Mode};
use crate::DriverError;
use coforge_generator::config::{Overflow, StceConfig};
use coforge_generator::engines::deform::dcnv2::{self, ports, Dcnv2Params};
use coforge_sim::{DesignSpec, StreamSink, StreamSource, VerilatedModel};
use ndarray::{Array2, Array4, ArrayView4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::deform::dcnv2::weight_matrix;
use sparse_kernels::deform::{dcnv2_fixed, FixedFormat, Geometry};

/// One mode-B layer in torchvision's layouts (see `sparse_kernels::deform::dcnv2`).
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a> {
    /// int8 `[B, Cin, H, W]`.
    pub x: ArrayView4<'a, i8>,
    /// Q.f `[B, 2*G*K, Hout, Wout]`.
    pub offset: ArrayView4<'a, i32>,
    /// Q0.g `[B, G*K, Hout, Wout]`, values 0..=2^g.
    pub mask: Option<ArrayView4<'a, i32>>,
    /// int8 `[Cout, Cin/groups, kh, kw]`.
    pub w: ArrayView4<'a, i8>,
    /// Stride, padding and dilation must be the engine's; `offset_groups` is G.
    pub geometry: Geometry,
}

/// The first offset beyond `max_offset` that the engine flagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetFault {
    pub out_y: usize,
    pub out_x: usize,
    pub tap: usize,
}

/// What one pass of the layer through the engine gave.
#[derive(Clone, Debug)]
pub struct EngineRun {
    /// Depthwise: the int32 sums `[B, C, Hout, Wout]`; im2col: empty.
    pub sums: Array4<i32>,
    /// im2col: the sampled matrix `[B*Hout*Wout, Cin*K]`; depthwise: empty.
    pub columns: Array2<i8>,
    /// From the first input beat to the last output beat, inclusive (measured).
    pub cycles: u64,
    pub estimated_cycles: u64,
    pub planes: u64,
    /// Multiply-adds the layer needs (depthwise: B*C*Hout*Wout*K; full: times Cin/groups).
    pub macs: u64,
    /// Cycle (since reset) in which each output element left the engine, `sums` layout.
    pub result_cycle: Array4<u64>,
    /// The engine's sticky error, if it rose.
    pub fault: Option<OffsetFault>,
}

/// The layer's shape, checked against the engine.
#[derive(Clone, Debug)]
struct Shape {
    b: usize,
    cin: usize,
    h: usize,
    w: usize,
    hout: usize,
    wout: usize,
    k: usize,
    groups_g: usize,
    /// Channels per offset group, and planes per offset group.
    cg: usize,
    beats_per_group: usize,
}

fn check(p: &Dcnv2Params, layer: &Layer) -> Result<Shape, DriverError> {
    let (b, cin, h, w) = layer.x.dim();
    let (ob, oc, hout, wout) = layer.offset.dim();
    let k = p.taps() as usize;
    let geom = &layer.geometry;
    let want = |what: &str, got: [usize; 2], engine: u32| -> Result<(), DriverError> {
        if got != [engine as usize; 2] {
            return Err(DriverError::Unsupported(format!(
                "the layer's {what} is {got:?} but this engine is built for {engine} in both \
                 axes; use a config with {what} = {}",
                got[0]
            )));
        }
        Ok(())
    };
    want("stride", geom.stride, p.stride)?;
    want("padding", geom.padding, p.padding)?;
    want("dilation", geom.dilation, p.dilation)?;
    let (cout, cin_g, kh, kw) = layer.w.dim();
    if [kh, kw] != [p.kernel as usize; 2] {
        return Err(DriverError::Unsupported(format!(
            "the weights have a {kh}x{kw} kernel but this engine is built for {0}x{0}",
            p.kernel
        )));
    }
    if w > p.max_width as usize {
        return Err(DriverError::Unsupported(format!(
            "the image is {w} pixels wide but the window buffer holds {}; use a config with \
             max_width >= {w}",
            p.max_width
        )));
    }
    if h >= 1 << (dcnv2::COORD_BITS - 2) {
        return Err(DriverError::Unsupported(format!(
            "the image has {h} rows; the engine takes fewer than {}",
            1 << (dcnv2::COORD_BITS - 2)
        )));
    }
    let g = geom.offset_groups;
    if g == 0 || cin % g != 0 {
        return Err(DriverError::Shape(format!(
            "offset groups G = {g} must divide Cin = {cin}"
        )));
    }
    if ob != b || oc != 2 * g * k {
        return Err(DriverError::Shape(format!(
            "offset is {:?} but must be [B, 2*G*K, Hout, Wout] with B = {b}, G = {g}, K = {k}",
            layer.offset.dim()
        )));
    }
    let depthwise_ok = cin_g == 1 && cout == cin;
    if p.depthwise && !depthwise_ok {
        return Err(DriverError::Unsupported(format!(
            "this engine is depthwise (weights [C, 1, k, k]); the weights are {:?}",
            layer.w.dim()
        )));
    }
    if !p.depthwise && cin_g != cin {
        return Err(DriverError::Unsupported(format!(
            "this engine feeds a full conv (groups = 1, weights [Cout, Cin, k, k]); the weights \
             are {:?}: use a depthwise engine for groups = Cin",
            layer.w.dim()
        )));
    }
    let cg = cin / g;
    Ok(Shape {
        b,
        cin,
        h,
        w,
        hout,
        wout,
        k,
        groups_g: g,
        cg,
        beats_per_group: cg.div_ceil(p.lanes as usize),
    })
}

/// Writes `width` bits of `value` at bit `lo` of a little-endian word buffer.
fn put(words: &mut [u32], lo: u32, width: u32, value: u64) {
    for bit in 0..width {
        if value >> bit & 1 == 1 {
            let at = lo + bit;
            words[(at / 32) as usize] |= 1 << (at % 32);
        }
    }
}

fn get(words: &[u32], lo: u32, width: u32) -> u64 {
    (0..width).fold(0, |v, bit| {
        let at = lo + bit;
        v | (((words[(at / 32) as usize] >> (at % 32)) & 1) as u64) << bit
    })
}

/// An offset as the engine's port takes it: saturated to `bits` bits. A value that does not fit
/// is beyond `max_offset` anyway (`offset_bits` leaves room above the bound), so the engine flags
/// it just as it would the original.
fn saturate(v: i32, bits: u32) -> u64 {
    let (lo, hi) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
    (i64::from(v).clamp(lo, hi) as u64) & ((1u64 << bits) - 1)
}

/// Output-stream back-pressure and input gaps, for tests: `ready` low with probability
/// `stall_rate`, input `valid` low with probability `gap_rate`, from `seed`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pressure {
    pub stall_rate: f64,
    pub gap_rate: f64,
    pub seed: u64,
}

/// A layer as the engine's beats (the same on the bare engine and through its AXI wrapper):
/// pixels, offsets and (depthwise) weights, plane by plane.
#[derive(Clone, Debug)]
pub struct PlaneJob {
    sh: Shape,
    /// Per plane: image, offset group, and the channel of each lane (none: a padding lane).
    planes: Vec<(usize, usize, Vec<Option<usize>>)>,
    pub pixels: Vec<Vec<u32>>,
    pub offsets: Vec<Vec<u32>>,
    /// Depthwise only.
    pub weights: Vec<Vec<u32>>,
}

impl PlaneJob {
    /// The beats of `layer` on engine `p`, after checking that the engine can run it.
    pub fn new(p: &Dcnv2Params, layer: &Layer) -> Result<PlaneJob, DriverError> {
        let sh = check(p, layer)?;
        let lanes = p.lanes as usize;
        let k = sh.k;
        let fmt_mask_one = 1i64 << p.mask_bits;
        if let Some(m) = &layer.mask {
            let want = (sh.b, sh.groups_g * k, sh.hout, sh.wout);
            if m.dim() != want {
                return Err(DriverError::Shape(format!(
                    "mask is {:?} but must be [B, G*K, Hout, Wout] = {want:?}",
                    m.dim()
                )));
            }
            if let Some((idx, v)) = m
                .indexed_iter()
                .find(|(_, &v)| !(0..=fmt_mask_one).contains(&i64::from(v)))
            {
                return Err(DriverError::Input(format!(
                    "mask{idx:?} = {v} is outside Q0.{} (0..={fmt_mask_one})",
                    p.mask_bits
                )));
            }
        }
        // Planes in order: image, offset group, beat of `lanes` channels within the group.
        let mut planes: Vec<(usize, usize, Vec<Option<usize>>)> = Vec::new();
        for n in 0..sh.b {
            for g in 0..sh.groups_g {
                for beat in 0..sh.beats_per_group {
                    let chans = (0..lanes)
                        .map(|l| {
                            let local = beat * lanes + l;
                            (local < sh.cg).then_some(g * sh.cg + local)
                        })
                        .collect();
                    planes.push((n, g, chans));
                }
            }
        }
        let px_words = p.pixel_beat_bits().div_ceil(32) as usize;
        let off_bits = p.offset_bits();
        let entry = p.tap_entry_bits();
        let off_words = p.offset_beat_bits().div_ceil(32) as usize;
        let (mut pixels, mut offsets, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        for (n, g, chans) in &planes {
            for y in 0..sh.h {
                for x in 0..sh.w {
                    let mut buf = vec![0; px_words];
                    for (l, c) in chans.iter().enumerate() {
                        if let Some(c) = c {
                            put(
                                &mut buf,
                                8 * l as u32,
                                8,
                                layer.x[[*n, *c, y, x]] as u8 as u64,
                            );
                        }
                    }
                    pixels.push(buf);
                }
            }
            for oy in 0..sh.hout {
                for ox in 0..sh.wout {
                    let mut buf = vec![0; off_words];
                    for tap in 0..k {
                        let lo = tap as u32 * entry;
                        let dy = layer.offset[[*n, g * 2 * k + 2 * tap, oy, ox]];
                        let dx = layer.offset[[*n, g * 2 * k + 2 * tap + 1, oy, ox]];
                        let m = layer
                            .mask
                            .as_ref()
                            .map_or(fmt_mask_one, |m| i64::from(m[[*n, g * k + tap, oy, ox]]));
                        put(&mut buf, lo, off_bits, saturate(dy, off_bits));
                        put(&mut buf, lo + off_bits, off_bits, saturate(dx, off_bits));
                        put(&mut buf, lo + 2 * off_bits, p.mask_bits + 1, m as u64);
                    }
                    offsets.push(buf);
                }
            }
            if p.depthwise {
                for tap in 0..k {
                    let mut buf = vec![0; px_words];
                    for (l, c) in chans.iter().enumerate() {
                        if let Some(c) = c {
                            let wv =
                                layer.w[[*c, 0, tap / p.kernel as usize, tap % p.kernel as usize]];
                            put(&mut buf, 8 * l as u32, 8, wv as u8 as u64);
                        }
                    }
                    weights.push(buf);
                }
            }
        }
        Ok(PlaneJob {
            sh,
            planes,
            pixels,
            offsets,
            weights,
        })
    }

    /// `[H, W, Hout, Wout]` of the layer.
    pub fn sizes(&self) -> [usize; 4] {
        [self.sh.h, self.sh.w, self.sh.hout, self.sh.wout]
    }

    pub fn planes(&self) -> usize {
        self.planes.len()
    }

    /// Result beats: per plane, one per output pixel (depthwise) or per work item (im2col).
    pub fn out_beats(&self, p: &Dcnv2Params) -> usize {
        let per_pixel = if p.depthwise { 1 } else { p.groups() as usize };
        self.planes.len() * self.sh.hout * self.sh.wout * per_pixel
    }

    /// The engine's cycle model of the job.
    pub fn estimated_cycles(&self, p: &Dcnv2Params) -> u64 {
        let sh = &self.sh;
        dcnv2::estimated_cycles(
            p,
            sh.h as u64,
            sh.w as u64,
            sh.hout as u64,
            sh.wout as u64,
            self.planes.len() as u64,
        )
    }

    /// What the result beats `beats` (`out_data` words, in order) taken at `cycles` give;
    /// `cycles` of the run are measured from `first_in`, the first input beat's cycle.
    pub fn run(
        &self,
        p: &Dcnv2Params,
        layer: &Layer,
        beats: &dyn Fn(usize) -> Vec<u32>,
        cycles: &[u64],
        (first_in, fault): (u64, Option<OffsetFault>),
    ) -> EngineRun {
        let sh = &self.sh;
        let (lanes, k, t_slots) = (p.lanes as usize, sh.k, p.taps_per_cycle as usize);
        let groups = p.groups() as usize;
        let last_out = cycles.last().copied().unwrap_or(first_in);
        let (b, hout, wout) = (sh.b, sh.hout, sh.wout);
        let mut sums = Array4::zeros((0, 0, 0, 0));
        let mut columns = Array2::zeros((0, 0));
        let mut result_cycle = Array4::zeros((b, sh.cin, hout, wout));
        if p.depthwise {
            sums = Array4::zeros((b, sh.cin, hout, wout));
        } else {
            columns = Array2::zeros((b * hout * wout, sh.cin * k));
        }
        let mut beat = 0;
        for (n, _, chans) in &self.planes {
            for oy in 0..hout {
                for ox in 0..wout {
                    for t in 0..(if p.depthwise { 1 } else { groups }) {
                        let words = beats(beat);
                        let cycle = cycles[beat];
                        beat += 1;
                        for (l, c) in chans.iter().enumerate() {
                            let Some(c) = *c else { continue };
                            result_cycle[[*n, c, oy, ox]] = cycle;
                            if p.depthwise {
                                sums[[*n, c, oy, ox]] =
                                    get(&words, 32 * l as u32, 32) as u32 as i32;
                            } else {
                                for r in 0..t_slots {
                                    let tap = t * t_slots + r;
                                    if tap < k {
                                        let v =
                                            get(&words, 8 * (r * lanes + l) as u32, 8) as u8 as i8;
                                        columns[[(n * hout + oy) * wout + ox, c * k + tap]] = v;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let per_output = if p.depthwise { k } else { sh.cin * k };
        let cout = layer.w.dim().0;
        EngineRun {
            sums,
            columns,
            cycles: last_out + 1 - first_in,
            estimated_cycles: self.estimated_cycles(p),
            planes: self.planes.len() as u64,
            macs: (b * cout * hout * wout * per_output) as u64,
            result_cycle,
            fault,
        }
    }
}

/// Runs the layer's planes through the engine and collects what it gives.
pub fn run_engine(
    model: &mut VerilatedModel,
    p: &Dcnv2Params,
    layer: &Layer,
    pressure: Pressure,
) -> Result<EngineRun, DriverError> {
    let job = PlaneJob::new(p, layer)?;
    let sim = |e: coforge_sim::SimError| DriverError::Sim(e);
    let pin = |name: &str| model.input(name).map_err(sim);
    let (rst, hgt, wid, ohgt, owid) = (
        pin(ports::RESET)?,
        pin(ports::HEIGHT)?,
        pin(ports::WIDTH)?,
        pin(ports::OUT_HEIGHT)?,
        pin(ports::OUT_WIDTH)?,
    );
    let out = |name: &str| model.output(name).map_err(sim);
    let (err, err_y, err_x, err_tap) = (
        out(ports::ERROR)?,
        out(ports::ERROR_OUT_Y)?,
        out(ports::ERROR_OUT_X)?,
        out(ports::ERROR_TAP)?,
    );
    for (port, v) in [hgt, wid, ohgt, owid].into_iter().zip(job.sizes()) {
        model.set(port, v as u64);
    }
    model.set(rst, 1);
    for _ in 0..dcnv2::RESET_CYCLES {
        model.step().map_err(sim)?;
    }
    model.set(rst, 0);

    let pins = model.pins();
    let source = |valid, ready, data, beats: &[Vec<u32>]| -> Result<StreamSource, DriverError> {
        let mut s = StreamSource::new(pins, valid, ready, data).map_err(sim)?;
        for b in beats {
            s.push_words(b).map_err(sim)?;
        }
        Ok(s)
    };
    let mut pixels = source(
        ports::PIXEL_VALID,
        ports::PIXEL_READY,
        ports::PIXEL_DATA,
        &job.pixels,
    )?;
    let mut offsets = source(
        ports::OFFSET_VALID,
        ports::OFFSET_READY,
        ports::OFFSET_DATA,
        &job.offsets,
    )?;
    let mut weights = if p.depthwise {
        Some(source(
            ports::WEIGHT_VALID,
            ports::WEIGHT_READY,
            ports::WEIGHT_DATA,
            &job.weights,
        )?)
    } else {
        None
    };
    if pressure.gap_rate > 0.0 {
        pixels = pixels
            .with_gaps(pressure.gap_rate, pressure.seed ^ 1)
            .map_err(sim)?;
        offsets = offsets
            .with_gaps(pressure.gap_rate, pressure.seed ^ 2)
            .map_err(sim)?;
    }
    let mut sink = StreamSink::new(
        pins,
        ports::RESULT_VALID,
        ports::RESULT_READY,
        ports::RESULT_DATA,
    )
    .map_err(sim)?
    .expect(job.out_beats(p));
    if pressure.stall_rate > 0.0 {
        sink = sink
            .with_stalls(pressure.stall_rate, pressure.seed ^ 3)
            .map_err(sim)?;
    }
    let limit = 16 * job.estimated_cycles(p) + 10_000;
    {
        let mut agents: Vec<&mut dyn coforge_sim::Agent> =
            vec![&mut pixels, &mut offsets, &mut sink];
        if let Some(ws) = weights.as_mut() {
            agents.push(ws);
        }
        model.run_until_done(&mut agents, limit).map_err(sim)?;
    }
    // A few more cycles so that a flag raised by the last item is visible.
    for _ in 0..dcnv2::LATENCY {
        model.step().map_err(sim)?;
    }
    let fault = (model.get(err) & 1 == 1).then(|| OffsetFault {
        out_y: model.get(err_y) as usize,
        out_x: model.get(err_x) as usize,
        tap: model.get(err_tap) as usize,
    });
    let first_in = [
        pixels.accepted_cycles().first(),
        offsets.accepted_cycles().first(),
    ]
    .into_iter()
    .flatten()
    .chain(weights.as_ref().and_then(|w| w.accepted_cycles().first()))
    .min()
    .copied()
    .unwrap_or(0);
    Ok(job.run(
        p,
        layer,
        &|i| sink.beat(i).to_vec(),
        sink.cycles(),
        (first_in, fault),
    ))
}

/// The cycles of the STCE pass of a full conv.
#[derive(Clone, Copy, Debug, Default)]
pub struct GemmCycles {
    pub cycles: u64,
    pub estimated_cycles: u64,
}

/// A full conv (groups = 1): the engine's im2col columns times the weights on the STCE, dense
/// int8 with wrap, which adds in increasing column index, the contract's `(cin, i, j)` order.
/// Returns `y` as `[B, Cout, Hout, Wout]`.
pub fn full_conv_on_stce(
    stce_sim: &mut dyn coforge_sim::Simulator,
    stce: &StceConfig,
    stce_spec: &DesignSpec,
    run: &EngineRun,
    layer: &Layer,
) -> Result<(Array4<i32>, GemmCycles), DriverError> {
    if stce.overflow != Overflow::Wrap || stce.weight_bits != 8 {
        return Err(DriverError::Unsupported(
            "the full conv needs an int8 STCE with 8-bit weights and overflow = \"wrap\"".into(),
        ));
    }
    let (b, _, hout, wout) = layer.offset.dim();
    let cout = layer.w.dim().0;
    let wm = weight_matrix(layer.w, 1, 0);
    let o = int8_gemm(
        stce_sim,
        stce,
        stce_spec,
        run.columns.view(),
        wm.view(),
        Mode::Dense,
        None,
    )?;
    if !o.comparison.bit_exact() {
        return Err(DriverError::Unsupported(format!(
            "the STCE pass of the full conv differs from its reference GEMM: {:?}",
            o.comparison.first_mismatch
        )));
    }
    let mut y = Array4::zeros((b, cout, hout, wout));
    for ((row, co), &v) in o.rtl.indexed_iter() {
        let (n, pix) = (row / (hout * wout), row % (hout * wout));
        y[[n, co, pix / wout, pix % wout]] = v;
    }
    Ok((
        y,
        GemmCycles {
            cycles: o.stats.cycles,
            estimated_cycles: o.stats.estimated_cycles,
        },
    ))
}

/// A verified layer: golden and RTL `y` (`[B, Cout, Hout, Wout]`), their comparison, and the
/// cycles.
#[derive(Clone, Debug)]
pub struct Verified {
    pub golden: Array4<i32>,
    pub rtl: Array4<i32>,
    /// Compared as `[B * Cout, Hout * Wout]`; a mismatch's 4-D index is in `first_index`.
    pub comparison: Comparison,
    pub first_index: Option<[usize; 4]>,
    /// The deformable engine, first input beat to last output beat (measured).
    pub cycles: u64,
    pub estimated_cycles: u64,
    /// The STCE pass of a full conv.
    pub stce: Option<GemmCycles>,
    pub macs: u64,
    pub planes: u64,
}

impl Verified {
    /// MACs per multiplier per cycle of the deformable engine: `macs / (cycles * lanes *
    /// taps_per_cycle)` for a depthwise engine (its multipliers); for a full conv, the STCE's
    /// share is its own utilization and this is `None`.
    pub fn utilization(&self, p: &Dcnv2Params) -> Option<f64> {
        p.depthwise
            .then(|| self.macs as f64 / (self.cycles as f64 * (p.lanes * p.taps_per_cycle) as f64))
    }
}

/// The STCE that multiplies a full conv's columns.
pub struct StceStage<'a> {
    pub sim: &'a mut dyn coforge_sim::Simulator,
    pub config: &'a StceConfig,
    pub spec: &'a DesignSpec,
}

/// Runs the layer on RTL (the deformable engine, then the STCE for a full conv) and compares
/// it bit for bit with `sparse_kernels::deform::dcnv2_fixed`. An offset beyond the engine's
/// `max_offset` fails with the output pixel, tap and limit the engine flagged.
pub fn verify_layer(
    model: &mut VerilatedModel,
    p: &Dcnv2Params,
    layer: &Layer,
    stce: Option<StceStage>,
    pressure: Pressure,
) -> Result<Verified, DriverError> {
    verify_layer_with(
        &mut |layer| run_engine(model, p, layer, pressure),
        p,
        layer,
        stce,
    )
}

/// [`verify_layer`] with the deformable engine run by `engine` (the bare engine, or its AXI
/// wrapper).
pub fn verify_layer_with(
    engine: &mut dyn FnMut(&Layer) -> Result<EngineRun, DriverError>,
    p: &Dcnv2Params,
    layer: &Layer,
    stce: Option<StceStage>,
) -> Result<Verified, DriverError> {
    let fmt = FixedFormat::new(p.frac_bits, p.mask_bits, p.zero_point)
        .map_err(|e| DriverError::Unsupported(e.to_string()))?;
    let golden = dcnv2_fixed(
        layer.x,
        layer.offset,
        layer.mask,
        layer.w,
        &layer.geometry,
        &fmt,
    )
    .map_err(|e| DriverError::Input(e.to_string()))?;
    let run = engine(layer)?;
    if let Some(fault) = run.fault {
        return Err(DriverError::Input(describe_fault(p, layer, fault)));
    }
    let (rtl, stce_cycles) = if p.depthwise {
        (run.sums.clone(), None)
    } else {
        let s = stce.ok_or_else(|| {
            DriverError::Unsupported(
                "a full conv needs the STCE: use a config with an [stce] section".into(),
            )
        })?;
        let (y, c) = full_conv_on_stce(s.sim, s.config, s.spec, &run, layer)?;
        (y, Some(c))
    };
    let (b, cout, hout, wout) = golden.dim();
    let flat = |a: &Array4<i32>| {
        a.to_shape((b * cout, hout * wout))
            .expect("a 4-D array reshapes to 2-D")
            .to_owned()
    };
    let mut comparison = compare("y", flat(&golden).view(), flat(&rtl).view())?;
    let first_index = comparison.first_mismatch.as_mut().map(|m| {
        let [row, col] = m.index;
        let idx = [row / cout, row % cout, col / wout, col % wout];
        if p.depthwise {
            m.cycle = Some(run.result_cycle[idx]);
        }
        idx
    });
    Ok(Verified {
        golden,
        rtl,
        comparison,
        first_index,
        cycles: run.cycles,
        estimated_cycles: run.estimated_cycles,
        stce: stce_cycles,
        macs: run.macs,
        planes: run.planes,
    })
}

/// The error message of a flagged offset: the output pixel, the tap, the offsets the layer has
/// there (in every offset group) and the limit.
pub fn describe_fault(p: &Dcnv2Params, layer: &Layer, f: OffsetFault) -> String {
    let k = p.taps() as usize;
    let bound = i64::from(p.max_offset) << p.frac_bits;
    let (b, oc, _, _) = layer.offset.dim();
    let mut found = Vec::new();
    for n in 0..b {
        for g in 0..oc / (2 * k) {
            for (axis, ch) in [("dy", 2 * f.tap), ("dx", 2 * f.tap + 1)] {
                let v = layer.offset[[n, g * 2 * k + ch, f.out_y, f.out_x]];
                if i64::from(v).abs() > bound {
                    found.push(format!("image {n}, offset group {g}: {axis} = {v}"));
                }
            }
        }
    }
    format!(
        "offset beyond max_offset at output pixel (y {}, x {}), tap {} (i {}, j {}): {}; the \
         engine takes offsets within ±{} pixels (±{bound} in Q.{}); clip the offsets or use a \
         config with a larger max_offset",
        f.out_y,
        f.out_x,
        f.tap,
        f.tap / p.kernel as usize,
        f.tap % p.kernel as usize,
        if found.is_empty() {
            "the engine flagged it".to_string()
        } else {
            found.join(", ")
        },
        p.max_offset,
        p.frac_bits
    )
}

/// The tensors of a mode-B layer, owned (see [`Layer`] for the layouts).
#[derive(Clone, Debug)]
pub struct LayerTensors {
    pub x: Array4<i8>,
    pub offset: Array4<i32>,
    pub mask: Option<Array4<i32>>,
    pub w: Array4<i8>,
    pub geometry: Geometry,
}

impl LayerTensors {
    pub fn layer(&self) -> Layer<'_> {
        Layer {
            x: self.x.view(),
            offset: self.offset.view(),
            mask: self.mask.as_ref().map(|m| m.view()),
            w: self.w.view(),
            geometry: self.geometry,
        }
    }

    /// A seeded layer for engine `p` (ChaCha8): uniform int8 `x [b, cin, h, w]` and weights
    /// (`[cin, 1, k, k]` on a depthwise engine, else `[cout, cin, k, k]`), offsets uniform in
    /// `±max_offset` pixels (Q.f), `g` offset groups, and a uniform Q0.g mask if `with_mask`.
    #[allow(clippy::too_many_arguments)]
    pub fn random(
        p: &Dcnv2Params,
        (b, cin, h, w): (usize, usize, usize, usize),
        cout: usize,
        g: usize,
        with_mask: bool,
        seed: u64,
    ) -> Result<LayerTensors, DriverError> {
        let k = p.kernel as usize;
        let out = |n: usize, axis: &str| {
            let span = p.dilation as usize * (k - 1) + 1;
            let padded = n + 2 * p.padding as usize;
            if padded < span {
                return Err(DriverError::Shape(format!(
                    "{n} {axis}s are too few for the engine's {k}x{k} kernel (span {span}, \
                     padding {})",
                    p.padding
                )));
            }
            Ok((padded - span) / p.stride as usize + 1)
        };
        let (hout, wout) = (out(h, "row")?, out(w, "column")?);
        if g == 0 || cin % g != 0 {
            return Err(DriverError::Shape(format!(
                "C = {cin} is not a multiple of the offset groups G = {g}"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bound = (p.max_offset as i32) << p.frac_bits;
        let one = 1i32 << p.mask_bits;
        let x = Array4::from_shape_simple_fn((b, cin, h, w), || rng.random::<i8>());
        let offset = Array4::from_shape_simple_fn((b, 2 * g * k * k, hout, wout), || {
            rng.random_range(-bound..=bound)
        });
        let mask = with_mask.then(|| {
            Array4::from_shape_simple_fn((b, g * k * k, hout, wout), || rng.random_range(0..=one))
        });
        let (cout, cin_g) = if p.depthwise { (cin, 1) } else { (cout, cin) };
        let w = Array4::from_shape_simple_fn((cout, cin_g, k, k), || rng.random::<i8>());
        Ok(LayerTensors {
            x,
            offset,
            mask,
            w,
            geometry: Geometry {
                stride: [p.stride as usize; 2],
                padding: [p.padding as usize; 2],
                dilation: [p.dilation as usize; 2],
                offset_groups: g,
                ..Geometry::default()
            },
        })
    }
}
