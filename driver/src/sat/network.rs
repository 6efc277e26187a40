//! Whole-network training steps on the system top: a scheduled program
//! (`coforge_scheduler::Schedule`) run with the DRAM image its memory map describes.
//!
//! The host (this module) does what is not the accelerator's (SAT-CONTRACT section 1): it
//! writes every layer's inputs into the memory map's regions in their line formats (X, X^T, dY
//! in the FF/BP and WU formats, W32, M_F, and the compressed W_F and W_B, or for a dense layer
//! the dense W16 operands), runs the program, and reads every output region back as tensors.
//!
//! # Tensors a step does not produce
//! A layer whose dX the step does not compute ([`LayerDims::bp`] false: the first layer of a
//! network with `input_gradient = false`, the scheduler's default) has no dY in the BP format,
//! no W_B and no dX in the memory map, and no W_B' (PRUNE_B). The harness places none of them,
//! reads none back (`dx` and `w_b` are `None`), and compares none: [`LayerDims::not_computed`]
//! names them.
//!
//! # Padding
//! The reference (`sparse_kernels::bdwp`) needs Cout and K in whole groups of M; a layer whose
//! dimensions are not is computed on its tensors zero-padded to the next multiple of M (X and
//! dY gain zero columns, W zero rows and columns) and cropped. The system pads the same way in
//! its line formats (zero lanes, zero rows of X^T, zero W32 past K), so the padded zeros stay
//! +0 through every pass and update and only the real elements are compared.
//!
//! # Measured cycles per instruction
//! [`Timeline`] is built from the top's per-instruction strobes, sampled after every cycle
//! ([`SatSystem::run_observed`]; `engines::sat`, "Per-instruction observation"): an engine's
//! k-th `started_<engine>` pulse is its k-th instruction's first busy cycle, and its k-th
//! `ended_<engine>` pulse the first cycle after that instruction's busy time (engines run and
//! end their instructions in program order). So two instructions of an engine are told apart
//! with no idle cycle between them, and a queued LOAD's span overlaps the LOAD before it as it
//! does in the hardware. Every cycle the spans are checked against the busy counters (a cycle
//! is counted busy exactly when a span is open), and the number of spans against the program:
//! a top whose strobes were wrong would be reported, not mis-attributed.

use half::f16;
use ndarray::{s, Array2, ArrayView2};

use coforge_generator::engines::sat::isa::{Buf, Engine, GemmMode, Instr};
use coforge_generator::engines::sat::lines::{get_bits, Geometry, Lines};
use coforge_sim::MemoryTiming;
use sparse_kernels::nm::Compressed;

use super::{DramImage, Observed, RunStats, SatSystem};
use crate::DriverError;

/// One layer's step, as the system and the reference see it (`r x k` activations, `cout x k`
/// weights; unpadded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerDims {
    pub name: String,
    pub r: usize,
    pub k: usize,
    pub cout: usize,
    pub sparse: bool,
    /// The step computes the layer's dX (its BP pass) and, sparse, its W_B'
    /// (`coforge_scheduler::Layer::bp`).
    pub bp: bool,
}

impl LayerDims {
    /// The tensors of the reference's step that this layer's step does not produce and the
    /// harness does not compare (names as in [`Checked::tensor`]).
    pub fn not_computed(&self) -> Vec<&'static str> {
        match (self.bp, self.sparse) {
            (true, _) => vec![],
            (false, false) => vec!["dx"],
            (false, true) => vec!["dx", "w_b.values", "w_b.indices"],
        }
    }
}

/// The weights a layer starts a step from, in the forms the system loads.
#[derive(Clone, Debug)]
pub enum Weights {
    /// A sparse layer: M_F (`cout x k`), and the compressed FF and BP operands in their wgt
    /// lines (`w_f`: `(W16⊙M_F)^T` along K; `w_b`: `S⊙M_B` along Cout), as the previous step's
    /// PRUNE_F and PRUNE_B wrote them or as [`host_weights`] packs them. `w_b` is `None` for a
    /// layer whose dX the step does not compute.
    Sparse {
        mask_f: Lines,
        w_f: Lines,
        w_b: Option<Lines>,
    },
    /// A dense layer: W16 (`cout x k`), loaded as dense FF and BP operands.
    Dense { w16: Array2<f16> },
}

/// What the host gives one layer for one step.
#[derive(Clone, Debug)]
pub struct LayerInputs {
    /// X (`r x k`, im2col rows for a conv) and dY (`r x cout`).
    pub x: Array2<f16>,
    pub dy: Array2<f16>,
    /// fp32 master weights (`cout x k`).
    pub w32: Array2<f32>,
    pub weights: Weights,
}

/// A compressed operand read back from wgt lines: `values` and `indices` in the
/// `sparse_kernels::nm::Compressed` layout along axis 0 (`(kg*N) x c`).
#[derive(Clone, Debug, PartialEq)]
pub struct CompressedLines {
    pub values: Array2<f16>,
    pub indices: Array2<u8>,
}

/// Everything one layer's step wrote, read back from DRAM.
#[derive(Clone, Debug)]
pub struct LayerOutputs {
    pub y: Array2<f32>,
    /// `None` when the step does not compute the layer's dX ([`LayerDims::bp`]).
    pub dx: Option<Array2<f32>>,
    /// `dW` (`cout x k`), from the system's dW^T lines.
    pub dw: Array2<f32>,
    pub w32: Array2<f32>,
    pub w16: Array2<f16>,
    /// Sparse layers: the next M_F and compressed operands (PRUNE_F, PRUNE_B).
    pub next: Option<NextWeights>,
}

#[derive(Clone, Debug)]
pub struct NextWeights {
    pub mask_f: Array2<u8>,
    pub w_f: CompressedLines,
    /// `None` when the step does not compute the layer's dX (no PRUNE_B).
    pub w_b: Option<CompressedLines>,
    /// The same in line format, for the next step.
    pub weights: Weights,
}

/// One instruction's measured busy span on its engine: cycles `start .. end` after `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

/// Each instruction's measured busy span (`None` for END), in program order.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub spans: Vec<Option<Span>>,
}

/// Collects every engine's instruction spans from the sampled strobes, and checks them against
/// the busy counters.
#[derive(Default)]
struct Runs {
    /// The cycle the next sample counted (0: the `start` cycle).
    cycle: u64,
    last: [u64; 4],
    /// Per engine: spans started and not yet ended (their start cycles, oldest first).
    open: [std::collections::VecDeque<u64>; 4],
    spans: [Vec<Span>; 4],
    /// The first disagreement between the strobes and a busy counter.
    error: Option<String>,
}

impl Runs {
    fn sample(&mut self, seen: &Observed) {
        let t = self.cycle;
        for e in 0..4 {
            // The counter counted cycle t; the spans open in cycle t are the ones whose start
            // strobe has been seen (in an earlier sample) and whose end strobe has not.
            let counted = seen.busy[e] - self.last[e];
            let running = u64::from(!self.open[e].is_empty());
            if counted != running && self.error.is_none() {
                self.error = Some(format!(
                    "cycle {t}: the {} busy counter counted {counted} but {} of its instructions \
                     were running (start and end strobes)",
                    Engine::ALL[e].name(),
                    self.open[e].len()
                ));
            }
            // The strobes show cycle t + 1: an end there closes the oldest open span (an
            // engine ends its instructions in order), a start there opens one.
            if seen.ended[e] {
                match self.open[e].pop_front() {
                    Some(start) => self.spans[e].push(Span { start, end: t + 1 }),
                    None if self.error.is_none() => {
                        self.error = Some(format!(
                            "cycle {}: the {} showed an end strobe with no instruction running",
                            t + 1,
                            Engine::ALL[e].name()
                        ));
                    }
                    None => {}
                }
            }
            if seen.started[e] {
                self.open[e].push_back(t + 1);
            }
        }
        self.last = seen.busy;
        self.cycle += 1;
    }

    fn timeline(self, program: &[Instr]) -> Result<Timeline, DriverError> {
        if let Some(e) = self.error {
            return Err(DriverError::Unsupported(format!(
                "the top's per-instruction strobes disagree with its busy counters: {e}"
            )));
        }
        let mut next = [0usize; 4];
        let mut spans = Vec::with_capacity(program.len());
        for instr in program {
            spans.push(match instr.engine() {
                Some(engine) => {
                    let e = engine_slot(engine);
                    let span = self.spans[e].get(next[e]).copied();
                    next[e] += 1;
                    span
                }
                None => None,
            });
        }
        for (e, &engine) in Engine::ALL.iter().enumerate() {
            if next[e] != self.spans[e].len() || !self.open[e].is_empty() {
                return Err(DriverError::Unsupported(format!(
                    "the {} ran {} instructions but its strobes show {} ended and {} unended \
                     spans",
                    engine.name(),
                    next[e],
                    self.spans[e].len(),
                    self.open[e].len()
                )));
            }
        }
        Ok(Timeline { spans })
    }
}

fn engine_slot(engine: Engine) -> usize {
    Engine::ALL
        .iter()
        .position(|&e| e == engine)
        .expect("Engine::ALL lists every engine")
}

/// One region of the memory map, as the harness needs it.
#[derive(Clone, Debug)]
pub struct Region {
    pub tensor: String,
    pub layer: String,
    pub format: Buf,
    pub addr: u64,
    pub lines: u64,
}

/// The result of one step.
#[derive(Clone, Debug)]
pub struct StepRun {
    pub layers: Vec<LayerOutputs>,
    pub stats: RunStats,
    pub timeline: Timeline,
}

fn bits16(a: ArrayView2<f16>) -> Vec<u16> {
    a.iter().map(|v| v.to_bits()).collect()
}

/// Pads `a` with zeros to `rows x cols`.
pub fn pad<T: Copy + Default>(a: ArrayView2<T>, rows: usize, cols: usize) -> Array2<T> {
    let mut out = Array2::from_elem((rows, cols), T::default());
    out.slice_mut(s![..a.nrows(), ..a.ncols()]).assign(&a);
    out
}

/// The wgt lines of a compressed operand (`Compressed` along axis 0, `k x c` dense, K a
/// multiple of M).
pub fn pack_compressed(geo: &Geometry, c: &Compressed<f16>) -> Lines {
    let (k, cols) = c.dense_dim();
    let values: Vec<u16> = c.values.iter().map(|v| v.to_bits()).collect();
    let indices: Vec<u8> = c.indices.iter().copied().collect();
    geo.pack_wgt_sparse(&values, &indices, k, cols)
}

/// The inverse of `Geometry::pack_wgt_sparse` for the first `c` columns of `groups` groups.
pub fn unpack_compressed(
    geo: &Geometry,
    lines: &Lines,
    groups: usize,
    c: usize,
) -> CompressedLines {
    let (cols, n) = (geo.cols as usize, geo.n as usize);
    let ib = geo.index_bits();
    let mut values = Array2::from_elem((groups * n, c), f16::ZERO);
    let mut indices = Array2::zeros((groups * n, c));
    for g in 0..groups {
        for j in 0..c {
            let line = lines.line((j / cols) * groups + g);
            for i in 0..n {
                let lo = ((j % cols) * n + i) as u32 * (16 + ib);
                values[[g * n + i, j]] = f16::from_bits(get_bits(line, lo, 16) as u16);
                indices[[g * n + i, j]] = get_bits(line, lo + 16, ib) as u8;
            }
        }
    }
    CompressedLines { values, indices }
}

/// The host's weights of a layer from its M_F and compressed operands (the reference's
/// `Masks`, on tensors padded to whole groups): what step 0 loads. `bp` is `None` for a layer
/// whose dX the step does not compute.
pub fn host_weights(
    geo: &Geometry,
    mask_f: ArrayView2<u8>,
    ff: &Compressed<f16>,
    bp: Option<&Compressed<f16>>,
    cout: usize,
    k: usize,
) -> Weights {
    let bits: Vec<u32> = mask_f
        .slice(s![..cout, ..k])
        .iter()
        .map(|&b| u32::from(b != 0))
        .collect();
    Weights::Sparse {
        mask_f: geo.pack_weight(&bits, cout, k, Buf::Mask),
        w_f: pack_compressed(geo, ff),
        w_b: bp.map(|bp| pack_compressed(geo, bp)),
    }
}

/// Rows of the im2col matrix of an NCHW fp16 image for a `kh x kw` conv: row `(b, oy, ox)`,
/// column `(c*kh + i)*kw + j`, zero outside the image (the order of the scheduler's lowering).
pub fn im2col(
    x: &ndarray::Array4<f16>,
    kh: usize,
    kw: usize,
    stride: usize,
    padding: usize,
) -> Array2<f16> {
    let (b, c, h, w) = x.dim();
    let ho = (h + 2 * padding - kh) / stride + 1;
    let wo = (w + 2 * padding - kw) / stride + 1;
    let mut out = Array2::from_elem((b * ho * wo, c * kh * kw), f16::ZERO);
    for n in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                let row = (n * ho + oy) * wo + ox;
                for ch in 0..c {
                    for i in 0..kh {
                        for j in 0..kw {
                            let (y, xx) = (oy * stride + i, ox * stride + j);
                            if y >= padding && xx >= padding && y - padding < h && xx - padding < w
                            {
                                out[[row, (ch * kh + i) * kw + j]] =
                                    x[[n, ch, y - padding, xx - padding]];
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

impl SatSystem {
    /// Runs `program` (a scheduled training step) with the layers' inputs placed in the
    /// `regions` of the memory map, and reads every layer's outputs back. `layers[i]` and
    /// `inputs[i]` are the layer whose regions name `layers[i].name`.
    #[allow(clippy::too_many_arguments)]
    pub fn network_step(
        &mut self,
        program: &[Instr],
        regions: &[Region],
        layers: &[LayerDims],
        inputs: &[LayerInputs],
        timing: MemoryTiming,
        lr: f32,
        lambda: f32,
    ) -> Result<StepRun, DriverError> {
        let geo = self.geo;
        let beats = regions
            .iter()
            .map(|r| r.addr + r.lines * u64::from(geo.beats_per_line(r.format)))
            .max()
            .unwrap_or(0);
        let mut dram = DramImage::new(&geo);
        dram.words = vec![0; beats as usize * dram.words_per_beat];
        let find = |layer: &str, tensor: &str| {
            regions
                .iter()
                .find(|r| r.layer == layer && r.tensor == tensor)
                .ok_or_else(|| {
                    DriverError::Input(format!(
                        "the memory map has no `{tensor}` region for layer `{layer}`"
                    ))
                })
        };
        let place = |dram: &mut DramImage, layer: &str, tensor: &str, lines: &Lines| {
            let r = find(layer, tensor)?;
            if r.lines != lines.count() as u64 {
                return Err(DriverError::Input(format!(
                    "layer `{layer}`: the memory map gives `{tensor}` {} lines, the host packs {}",
                    r.lines,
                    lines.count()
                )));
            }
            let words = geo.to_beats(lines, r.format);
            let at = r.addr as usize * dram.words_per_beat;
            dram.words[at..at + words.len()].copy_from_slice(&words);
            Ok(())
        };
        for (l, inp) in layers.iter().zip(inputs) {
            if inp.x.dim() != (l.r, l.k)
                || inp.dy.dim() != (l.r, l.cout)
                || inp.w32.dim() != (l.cout, l.k)
            {
                return Err(DriverError::Shape(format!(
                    "layer `{}`: x is {:?}, dy {:?}, w32 {:?}; expected {} x {}, {} x {}, {} x {}",
                    l.name,
                    inp.x.dim(),
                    inp.dy.dim(),
                    inp.w32.dim(),
                    l.r,
                    l.k,
                    l.r,
                    l.cout,
                    l.cout,
                    l.k
                )));
            }
            let mode = if l.sparse {
                GemmMode::Sparse
            } else {
                GemmMode::Dense
            };
            let kp = geo.k_padded(l.k);
            place(
                &mut dram,
                &l.name,
                "x",
                &geo.pack_act(&bits16(inp.x.view()), l.r, l.k, mode),
            )?;
            if l.bp {
                place(
                    &mut dram,
                    &l.name,
                    "dy",
                    &geo.pack_act(&bits16(inp.dy.view()), l.r, l.cout, mode),
                )?;
            }
            let xt = pad(inp.x.t(), kp, l.r);
            place(
                &mut dram,
                &l.name,
                "x_t",
                &geo.pack_act(&bits16(xt.view()), kp, l.r, GemmMode::Dense),
            )?;
            place(
                &mut dram,
                &l.name,
                "dy_wu",
                &geo.pack_wgt_dense(&bits16(inp.dy.view()), l.r, l.cout),
            )?;
            let w32: Vec<u32> = inp.w32.iter().map(|v| v.to_bits()).collect();
            place(
                &mut dram,
                &l.name,
                "w32",
                &geo.pack_weight(&w32, l.cout, l.k, Buf::Master),
            )?;
            match &inp.weights {
                Weights::Sparse { mask_f, w_f, w_b } => {
                    place(&mut dram, &l.name, "m_f", mask_f)?;
                    place(&mut dram, &l.name, "w_f", w_f)?;
                    match (l.bp, w_b) {
                        (true, Some(w_b)) => place(&mut dram, &l.name, "w_b", w_b)?,
                        (false, _) => {}
                        (true, None) => {
                            return Err(DriverError::Input(format!(
                                "layer `{}`: its step computes dX, and the host gives no W_B",
                                l.name
                            )))
                        }
                    }
                }
                Weights::Dense { w16 } => {
                    let ones = vec![1u32; l.cout * l.k];
                    place(
                        &mut dram,
                        &l.name,
                        "m_f",
                        &geo.pack_weight(&ones, l.cout, l.k, Buf::Mask),
                    )?;
                    let wt = w16.t().as_standard_layout().to_owned();
                    place(
                        &mut dram,
                        &l.name,
                        "w_f",
                        &geo.pack_wgt_dense(&bits16(wt.view()), l.k, l.cout),
                    )?;
                    if l.bp {
                        place(
                            &mut dram,
                            &l.name,
                            "w_b",
                            &geo.pack_wgt_dense(&bits16(w16.view()), l.cout, l.k),
                        )?;
                    }
                }
            }
        }
        let mut runs = Runs::default();
        let stats = self.run_observed(
            program,
            &mut dram,
            timing,
            lr,
            lambda,
            u64::MAX,
            &mut |seen| runs.sample(seen),
        )?;
        // Through the AXI wrapper the busy counters are read once, at the end: no spans.
        let timeline = if self.is_axi() {
            Timeline {
                spans: vec![None; program.len()],
            }
        } else {
            runs.timeline(program)?
        };
        let read = |layer: &str, tensor: &str| {
            let r = find(layer, tensor)?;
            Ok::<_, DriverError>(dram.lines(&geo, r.addr as u32, r.lines as usize, r.format))
        };
        let mut outputs = Vec::with_capacity(layers.len());
        for l in layers {
            let out = |tensor: &str, r: usize, c: usize| {
                let v: Vec<f32> = geo
                    .unpack_out(&read(&l.name, tensor)?, r, c)
                    .into_iter()
                    .map(f32::from_bits)
                    .collect();
                Ok::<_, DriverError>(
                    Array2::from_shape_vec((r, c), v).expect("unpack_out gives r x c"),
                )
            };
            let weight = |tensor: &str, buf: Buf| {
                let v = geo.unpack_weight(&read(&l.name, tensor)?, l.cout, l.k, buf);
                Ok::<_, DriverError>(
                    Array2::from_shape_vec((l.cout, l.k), v).expect("unpack_weight gives cout x k"),
                )
            };
            let kp = geo.k_padded(l.k);
            let dwt = out("dw_t", kp, l.cout)?;
            let next = if l.sparse {
                let (mask_f, w_f) = (read(&l.name, "m_f_new")?, read(&l.name, "w_f_new")?);
                let w_b = l.bp.then(|| read(&l.name, "w_b_new")).transpose()?;
                let m = geo.m as usize;
                Some(NextWeights {
                    mask_f: weight("m_f_new", Buf::Mask)?.mapv(|b| b as u8),
                    w_f: unpack_compressed(&geo, &w_f, l.k.div_ceil(m), l.cout),
                    w_b: w_b
                        .as_ref()
                        .map(|w_b| unpack_compressed(&geo, w_b, l.cout.div_ceil(m), l.k)),
                    weights: Weights::Sparse { mask_f, w_f, w_b },
                })
            } else {
                None
            };
            outputs.push(LayerOutputs {
                y: out("y", l.r, l.cout)?,
                dx: l.bp.then(|| out("dx", l.r, l.k)).transpose()?,
                dw: dwt.slice(s![..l.k, ..]).t().to_owned(),
                w32: weight("w32_new", Buf::Master)?.mapv(f32::from_bits),
                w16: weight("w16_new", Buf::W16)?.mapv(|b| f16::from_bits(b as u16)),
                next,
            });
        }
        Ok(StepRun {
            layers: outputs,
            stats,
            timeline,
        })
    }
}

/// The reference's results of one layer's step, cropped to the layer.
#[derive(Clone, Debug)]
pub struct GoldenLayer {
    pub y: Array2<f32>,
    /// `None` when the layer's step does not compute dX (the reference always does; it is
    /// dropped so that nothing compares it).
    pub dx: Option<Array2<f32>>,
    pub dw: Array2<f32>,
    pub w32: Array2<f32>,
    pub w16: Array2<f16>,
    /// Sparse layers: the next M_F and compressed operands.
    pub next: Option<GoldenNext>,
}

#[derive(Clone, Debug)]
pub struct GoldenNext {
    pub mask_f: Array2<u8>,
    pub w_f: CompressedLines,
    /// `None` when the layer's step does not compute dX (no PRUNE_B).
    pub w_b: Option<CompressedLines>,
}

fn crop_compressed(c: &Compressed<f16>, cols: usize) -> Compressed<f16> {
    Compressed {
        values: c.values.slice(s![.., ..cols]).to_owned(),
        indices: c.indices.slice(s![.., ..cols]).to_owned(),
        pattern: c.pattern,
        axis: c.axis,
    }
}

fn as_lines(c: &Compressed<f16>) -> CompressedLines {
    CompressedLines {
        values: c.values.clone(),
        indices: c.indices.clone(),
    }
}

/// One layer's step on the reference (`sparse_kernels::bdwp::train_step` on the tensors padded
/// to whole groups of M, see the module docs), and the weights the host loads for it: the
/// masks and compressed operands pre-generated from `w32`.
pub fn reference_layer(
    geo: &Geometry,
    l: &LayerDims,
    x: ArrayView2<f16>,
    dy: ArrayView2<f16>,
    w32: ArrayView2<f32>,
    lr: f32,
    lambda: f32,
) -> Result<(GoldenLayer, Weights), DriverError> {
    use sparse_kernels::bdwp::{self, BdwpConfig, MaskBSource};
    let m = geo.m as usize;
    let (kp, cp) = (l.k.next_multiple_of(m), l.cout.next_multiple_of(m));
    let n = if l.sparse { geo.n as usize } else { m };
    let pattern = sparse_kernels::nm::NmPattern::new(n, m)
        .map_err(|e| DriverError::Input(format!("layer `{}`: {e}", l.name)))?;
    let cfg = BdwpConfig {
        pattern,
        lr,
        lambda,
        mask_b_source: MaskBSource::ForwardMasked,
    };
    let bad = |e: sparse_kernels::KernelError| {
        DriverError::Input(format!(
            "layer `{}`: the reference rejects the inputs: {e}",
            l.name
        ))
    };
    let step = bdwp::train_step(
        pad(x, l.r, kp).view(),
        pad(w32, cp, kp).view(),
        pad(dy, l.r, cp).view(),
        &cfg,
    )
    .map_err(bad)?;
    let (r, k, c) = (l.r, l.k, l.cout);
    // The BP operand of a layer whose dX the step computes, cropped to its K columns.
    let bp_operand = |masks: &bdwp::Masks| -> Result<Option<Compressed<f16>>, DriverError> {
        if !l.bp {
            return Ok(None);
        }
        let bp = bdwp::bp_operand(masks, &cfg).map_err(bad)?;
        Ok(Some(crop_compressed(&bp, k)))
    };
    let host = if l.sparse {
        let ff = crop_compressed(&bdwp::ff_operand(&step.used, &cfg).map_err(bad)?, c);
        let bp = bp_operand(&step.used)?;
        host_weights(geo, step.used.mask_f.view(), &ff, bp.as_ref(), c, k)
    } else {
        Weights::Dense {
            w16: step.used.w16.slice(s![..c, ..k]).to_owned(),
        }
    };
    let next = if l.sparse {
        let ff = crop_compressed(&bdwp::ff_operand(&step.next, &cfg).map_err(bad)?, c);
        Some(GoldenNext {
            mask_f: step.next.mask_f.slice(s![..c, ..k]).to_owned(),
            w_f: as_lines(&ff),
            w_b: bp_operand(&step.next)?.as_ref().map(as_lines),
        })
    } else {
        None
    };
    let golden = GoldenLayer {
        y: step.y.slice(s![..r, ..c]).to_owned(),
        dx: l.bp.then(|| step.dx.slice(s![..r, ..k]).to_owned()),
        dw: step.dw.slice(s![..c, ..k]).to_owned(),
        w32: step.w32.slice(s![..c, ..k]).to_owned(),
        w16: step.next.w16.slice(s![..c, ..k]).to_owned(),
        next,
    };
    Ok((golden, host))
}

/// A golden and an RTL tensor of one layer, as compared.
#[derive(Clone, Debug)]
pub enum TensorPair {
    F32(Array2<f32>, Array2<f32>),
    F16(Array2<f16>, Array2<f16>),
    U8(Array2<u8>, Array2<u8>),
}

impl TensorPair {
    /// The RTL tensor's elements as bit patterns, row-major.
    pub fn rtl_bits(&self) -> Vec<u64> {
        use crate::compare::Bits;
        match self {
            TensorPair::F32(_, r) => r.iter().map(|v| v.bits()).collect(),
            TensorPair::F16(_, r) => r.iter().map(|v| v.bits()).collect(),
            TensorPair::U8(_, r) => r.iter().map(|v| v.bits()).collect(),
        }
    }
}

/// One compared tensor: `<layer>.<tensor>`.
#[derive(Clone, Debug)]
pub struct Checked {
    pub layer: String,
    pub tensor: String,
    pub pair: TensorPair,
    pub comparison: crate::compare::Comparison,
}

/// Compares every tensor a layer's step wrote with the reference's, bit for bit: Y, dX (when
/// the step computes it), dW, W32', W16' and, for a sparse layer, the new M_F and the values and
/// indices of the new compressed W_F and (with dX) W_B.
pub fn check_layer(
    layer: &str,
    golden: &GoldenLayer,
    rtl: &LayerOutputs,
) -> Result<Vec<Checked>, DriverError> {
    use crate::compare::compare;
    let disagree = |what: &str| {
        Err(DriverError::Input(format!(
            "layer `{layer}`: the reference and the system disagree on whether {what}"
        )))
    };
    let mut pairs = vec![("y", TensorPair::F32(golden.y.clone(), rtl.y.clone()))];
    match (&golden.dx, &rtl.dx) {
        (Some(g), Some(r)) => pairs.push(("dx", TensorPair::F32(g.clone(), r.clone()))),
        (None, None) => {}
        _ => return disagree("the step computes dX"),
    }
    pairs.extend([
        ("dw", TensorPair::F32(golden.dw.clone(), rtl.dw.clone())),
        ("w32", TensorPair::F32(golden.w32.clone(), rtl.w32.clone())),
        ("w16", TensorPair::F16(golden.w16.clone(), rtl.w16.clone())),
    ]);
    match (&golden.next, &rtl.next) {
        (Some(g), Some(r)) => {
            pairs.extend([
                ("mask_f", TensorPair::U8(g.mask_f.clone(), r.mask_f.clone())),
                (
                    "w_f.values",
                    TensorPair::F16(g.w_f.values.clone(), r.w_f.values.clone()),
                ),
                (
                    "w_f.indices",
                    TensorPair::U8(g.w_f.indices.clone(), r.w_f.indices.clone()),
                ),
            ]);
            match (&g.w_b, &r.w_b) {
                (Some(g), Some(r)) => pairs.extend([
                    (
                        "w_b.values",
                        TensorPair::F16(g.values.clone(), r.values.clone()),
                    ),
                    (
                        "w_b.indices",
                        TensorPair::U8(g.indices.clone(), r.indices.clone()),
                    ),
                ]),
                (None, None) => {}
                _ => return disagree("the step pre-generates W_B"),
            }
        }
        (None, None) => {}
        _ => return disagree("it is sparse"),
    }
    pairs
        .into_iter()
        .map(|(tensor, pair)| {
            let name = format!("{layer}.{tensor}");
            let comparison = match &pair {
                TensorPair::F32(g, r) => compare(&name, g.view(), r.view()),
                TensorPair::F16(g, r) => compare(&name, g.view(), r.view()),
                TensorPair::U8(g, r) => compare(&name, g.view(), r.view()),
            }?;
            Ok(Checked {
                layer: layer.to_string(),
                tensor: tensor.to_string(),
                pair,
                comparison,
            })
        })
        .collect()
}

/// The layers of a schedule as the harness needs them.
pub fn layer_dims(schedule: &coforge_scheduler::Schedule) -> Vec<LayerDims> {
    schedule
        .layers
        .iter()
        .map(|l| LayerDims {
            name: l.name.clone(),
            r: l.r,
            k: l.k,
            cout: l.cout,
            sparse: l.sparsity == coforge_scheduler::Sparsity::Sparse,
            bp: l.bp,
        })
        .collect()
}

/// The schedule's memory map as the harness needs it.
pub fn regions(schedule: &coforge_scheduler::Schedule) -> Vec<Region> {
    schedule
        .memory_map
        .iter()
        .map(|r| Region {
            tensor: r.tensor.clone(),
            layer: r.layer.clone(),
            format: r.format,
            addr: r.addr,
            lines: r.lines,
        })
        .collect()
}

/// Seeded inputs: fp16 uniform in [-1, 1) from (seed, what, step, layer), so each step and
/// layer draws its own values and a run is reproducible from its seed.
pub fn seeded_f16(
    rows: usize,
    cols: usize,
    seed: u64,
    what: u64,
    step: u64,
    layer: u64,
) -> Array2<f16> {
    use rand::{Rng, SeedableRng};
    let mix = seed
        ^ what.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ step.wrapping_mul(0xbf58_476d_1ce4_e5b9)
        ^ layer.wrapping_mul(0x94d0_49bb_1331_11eb);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(mix);
    Array2::from_shape_simple_fn((rows, cols), || {
        f16::from_f32(rng.random_range(-1.0f32..1.0))
    })
}

/// A layer's seeded X for one step: for a conv, the im2col rows of a seeded NCHW image (the
/// host's lowering); for a linear layer, a seeded `batch x in` matrix.
pub fn seeded_x(
    layer: &coforge_scheduler::Layer,
    batch: usize,
    seed: u64,
    step: u64,
    index: u64,
) -> Array2<f16> {
    match layer.kind {
        coforge_scheduler::network::LayerKind::Conv {
            cin,
            kh,
            kw,
            stride,
            padding,
            h,
            w,
            ..
        } => {
            let flat = seeded_f16(batch * cin, h * w, seed, 1, step, index);
            let image = flat
                .into_shape_with_order((batch, cin, h, w))
                .expect("batch*cin x h*w is batch x cin x h x w");
            im2col(&image, kh, kw, stride, padding)
        }
        coforge_scheduler::network::LayerKind::Linear { .. } => {
            seeded_f16(layer.r, layer.k, seed, 1, step, index)
        }
    }
}

/// The result of one network step: the run, and every layer's comparisons.
#[derive(Clone, Debug)]
pub struct NetworkStep {
    pub run: StepRun,
    pub checked: Vec<Checked>,
}

impl NetworkStep {
    pub fn bit_exact(&self) -> bool {
        self.checked.iter().all(|c| c.comparison.bit_exact())
    }
    /// The first comparison that differs, if any.
    pub fn first_mismatch(&self) -> Option<&Checked> {
        self.checked.iter().find(|c| !c.comparison.bit_exact())
    }
}

/// Training steps of a scheduled network on the system: the reference and the system each
/// chain their own weights (step s+1 starts from what step s wrote), and every step compares
/// every tensor of every layer.
pub struct NetworkTrainer {
    pub program: Vec<Instr>,
    pub regions: Vec<Region>,
    pub dims: Vec<LayerDims>,
    golden_w32: Vec<Array2<f32>>,
    rtl_w32: Vec<Array2<f32>>,
    rtl_weights: Option<Vec<Weights>>,
    pub lr: f32,
    pub lambda: f32,
}

impl NetworkTrainer {
    /// `w32[i]` is layer i's fp32 master weights (`cout x k`) before the first step.
    pub fn new(
        schedule: &coforge_scheduler::Schedule,
        w32: Vec<Array2<f32>>,
        lr: f32,
        lambda: f32,
    ) -> Result<NetworkTrainer, DriverError> {
        let dims = layer_dims(schedule);
        for (l, w) in dims.iter().zip(&w32) {
            if w.dim() != (l.cout, l.k) {
                return Err(DriverError::Shape(format!(
                    "layer `{}`: w32 is {:?}, expected {} x {}",
                    l.name,
                    w.dim(),
                    l.cout,
                    l.k
                )));
            }
        }
        Ok(NetworkTrainer {
            program: schedule.program(),
            regions: regions(schedule),
            dims,
            golden_w32: w32.clone(),
            rtl_w32: w32,
            rtl_weights: None,
            lr,
            lambda,
        })
    }

    /// One step with `inputs[i] = (X, dY)` of layer i.
    pub fn step(
        &mut self,
        system: &mut SatSystem,
        inputs: Vec<(Array2<f16>, Array2<f16>)>,
        timing: MemoryTiming,
    ) -> Result<NetworkStep, DriverError> {
        let geo = system.geo;
        let mut golden = Vec::with_capacity(self.dims.len());
        let mut host = Vec::with_capacity(self.dims.len());
        for ((l, (x, dy)), w32) in self.dims.iter().zip(&inputs).zip(&self.golden_w32) {
            let (g, h) = reference_layer(
                &geo,
                l,
                x.view(),
                dy.view(),
                w32.view(),
                self.lr,
                self.lambda,
            )?;
            golden.push(g);
            host.push(h);
        }
        // Step 0 loads the host's pre-generated weights; later steps what the system wrote.
        let weights = self.rtl_weights.take().unwrap_or(host);
        let layer_inputs: Vec<LayerInputs> = inputs
            .into_iter()
            .zip(weights)
            .zip(&self.rtl_w32)
            .map(|(((x, dy), weights), w32)| LayerInputs {
                x,
                dy,
                w32: w32.clone(),
                weights,
            })
            .collect();
        let run = system.network_step(
            &self.program,
            &self.regions,
            &self.dims,
            &layer_inputs,
            timing,
            self.lr,
            self.lambda,
        )?;
        let mut checked = Vec::new();
        for ((l, g), r) in self.dims.iter().zip(&golden).zip(&run.layers) {
            checked.extend(check_layer(&l.name, g, r)?);
        }
        self.golden_w32 = golden.iter().map(|g| g.w32.clone()).collect();
        self.rtl_w32 = run.layers.iter().map(|r| r.w32.clone()).collect();
        self.rtl_weights = Some(
            run.layers
                .iter()
                .map(|r| match &r.next {
                    Some(next) => next.weights.clone(),
                    None => Weights::Dense { w16: r.w16.clone() },
                })
                .collect(),
        );
        Ok(NetworkStep { run, checked })
    }
}

/// One layer's pass in one step: the span from its first instruction's start to its last
/// instruction's end, and the busy cycles of each engine on its instructions, measured (from
/// the [`Timeline`]) beside the scheduler's estimates (`start_estimated`, `end_estimated`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PassCycles {
    pub layer: String,
    pub pass: String,
    pub instructions: usize,
    /// Measured: from the first busy cycle of the pass's first instruction to the end of its
    /// last, each instruction's busy span observed from the top's busy counters every cycle.
    pub cycles_measured: u64,
    /// The scheduler's estimate of the same span (`end_estimated - start_estimated`).
    pub cycles_estimated: u64,
    /// The estimate's error: `cycles_estimated / cycles_measured - 1`.
    pub estimate_error: f64,
    /// Measured busy cycles of each engine (`dma`, `stce`, `wuve`, `sore`) on the pass's
    /// instructions.
    pub busy_measured: std::collections::BTreeMap<String, u64>,
    /// The scheduler's estimate of the same.
    pub busy_estimated: std::collections::BTreeMap<String, u64>,
}

/// Per layer and pass (in the schedule's layer order, then `Pass::ALL` order), the measured and
/// estimated cycles of one step.
pub fn pass_cycles(schedule: &coforge_scheduler::Schedule, timeline: &Timeline) -> Vec<PassCycles> {
    use std::collections::BTreeMap;
    let mut out = Vec::new();
    for (li, layer) in schedule.layers.iter().enumerate() {
        for pass in coforge_scheduler::Pass::ALL {
            let mut n = 0;
            let (mut m0, mut m1, mut e0, mut e1) = (u64::MAX, 0u64, u64::MAX, 0u64);
            let mut busy_m: BTreeMap<String, u64> = BTreeMap::new();
            let mut busy_e: BTreeMap<String, u64> = BTreeMap::new();
            for (entry, span) in schedule.instructions.iter().zip(&timeline.spans) {
                if entry.layer != Some(li) || entry.pass != Some(pass) {
                    continue;
                }
                let (Some(engine), Some(span)) = (entry.engine, span) else {
                    continue;
                };
                n += 1;
                (m0, m1) = (m0.min(span.start), m1.max(span.end));
                (e0, e1) = (e0.min(entry.start_estimated), e1.max(entry.end_estimated));
                *busy_m.entry(engine.name().to_string()).or_default() += span.end - span.start;
                *busy_e.entry(engine.name().to_string()).or_default() +=
                    entry.end_estimated - entry.start_estimated;
            }
            if n == 0 {
                continue;
            }
            let (measured, estimated) = (m1 - m0, e1 - e0);
            out.push(PassCycles {
                layer: layer.name.clone(),
                pass: pass.name().to_string(),
                instructions: n,
                cycles_measured: measured,
                cycles_estimated: estimated,
                estimate_error: estimated as f64 / measured.max(1) as f64 - 1.0,
                busy_measured: busy_m,
                busy_estimated: busy_e,
            });
        }
    }
    out
}

/// Checks, before anything is built, that the system can run the schedule's program (it fits
/// the instruction memory, every access is inside its buffer and the DRAM image).
pub fn check_schedule(
    schedule: &coforge_scheduler::Schedule,
    geo: &Geometry,
    sys: &coforge_generator::config::SystemConfig,
) -> Result<(), DriverError> {
    let beats = regions(schedule)
        .iter()
        .map(|r| r.addr + r.lines * u64::from(geo.beats_per_line(r.format)))
        .max()
        .unwrap_or(0);
    super::check_program(&schedule.program(), geo, sys, beats as usize)
}
