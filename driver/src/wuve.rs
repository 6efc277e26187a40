//! The SR-STE weight update of a 2-D tensor on the weight-update vector engine (WUVE).
//!
//! Elements are streamed row-major, V at a time: input beat c gives element `c*V + v` to lane v,
//! every cycle from the first to the last with no bubble (or with random ones,
//! [`update_with_gaps`]). `lr` and `lambda` are held on their ports for the whole job. The driver
//! captures every cycle and takes the c-th result beat the engine shows with `out_valid` as beat
//! c's, so `cycles` is the span the simulation observed, from the first element taken to the last
//! result shown; `estimated_cycles` is the engine's model ([`wuve::estimated_cycles`]) beside it.
//! After the last input the driver drives `in_valid` low (and zeros on the lanes) while the
//! pipeline drains. Lanes without an element in the last beat are fed zeros and their output is
//! dropped.
//!
//! The result is `sparse_kernels::bdwp::update_element` applied to every element, and its fp16
//! conversion (`sparse_kernels::fp::to_f16`), with every NaN canonical (`0x7FC00000` in fp32,
//! `0x7E00` in fp16): the engine's NaN policy, see `coforge_generator::engines::wuve`.

use crate::{expect_shown, idle_captured, shown, DriverError, Gaps};
use coforge_generator::engines::wuve::{self, ports, WuveParams};
use coforge_sim::{DesignSpec, Simulator, Stimulus};
use half::f16;
use ndarray::{Array2, ArrayView2};

/// Cycle accounting of one update job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateStats {
    /// Measured: from the cycle the first element was taken to the cycle the engine showed the
    /// last result (`out_valid`), both counted.
    pub cycles: u64,
    /// The engine's cycle model for the same job ([`wuve::estimated_cycles`]), with no bubbles.
    pub estimated_cycles: u64,
    /// Idle input cycles (`in_valid` low) between the first element and the last.
    pub bubbles: u64,
    /// Elements updated.
    pub elements: u64,
}

/// The engine's answer to one update job.
#[derive(Clone, Debug, PartialEq)]
pub struct Updated {
    /// Updated fp32 master weights (NaNs canonical).
    pub w32: Array2<f32>,
    /// Their fp16 conversion, RNE, overflow to inf (NaNs canonical).
    pub w16: Array2<f16>,
    pub stats: UpdateStats,
}

/// Generates the engine for `p` with top module `top` and describes it to a simulator.
///
/// # Panics
/// If `p` fails [`WuveParams::validate`].
pub fn design_spec(p: &WuveParams, top: &str) -> Result<DesignSpec, DriverError> {
    let design = wuve::generate(p, top).map_err(|e| DriverError::Input(e.to_string()))?;
    Ok(crate::design::unit_spec(&design, top, ports::CLOCK))
}

fn in_port(stim: &Stimulus, name: &str) -> Result<usize, DriverError> {
    stim.port_id(name).ok_or_else(|| {
        DriverError::Unsupported(format!(
            "the design has no input `{name}`; was it generated from these parameters?"
        ))
    })
}

/// Updates the fp32 master weights `w32` with the gradients `dw` and the forward mask `keep`
/// (0 = pruned, anything else = kept) on the engine `p`, simulated by `sim` from the design `spec`
/// (see [`design_spec`]). The simulation starts with a reset.
///
/// Errors: invalid parameters, `dw` or `keep` not of the shape of `w32`
/// ([`DriverError::Shape`]), a design without the expected ports, or a simulator failure.
#[allow(clippy::too_many_arguments)]
pub fn update(
    sim: &mut dyn Simulator,
    p: &WuveParams,
    spec: &DesignSpec,
    w32: ArrayView2<f32>,
    dw: ArrayView2<f32>,
    keep: ArrayView2<u8>,
    lr: f32,
    lambda: f32,
) -> Result<Updated, DriverError> {
    update_with_gaps(sim, p, spec, w32, dw, keep, lr, lambda, Gaps::NONE)
}

/// [`update`] with random bubbles in the input stream.
#[allow(clippy::too_many_arguments)]
pub fn update_with_gaps(
    sim: &mut dyn Simulator,
    p: &WuveParams,
    spec: &DesignSpec,
    w32: ArrayView2<f32>,
    dw: ArrayView2<f32>,
    keep: ArrayView2<u8>,
    lr: f32,
    lambda: f32,
    gaps: Gaps,
) -> Result<Updated, DriverError> {
    let mut random_bubbles = gaps.start()?;
    let (job, mut out) = UpdateJob::new(p, w32, dw, keep)?;
    let (lanes, elements) = (p.lanes as usize, job.elements());
    if elements == 0 {
        return Ok(out);
    }
    let rounds = elements.div_ceil(lanes);
    let mut stim = Stimulus::try_new(spec)?;
    let reset = in_port(&stim, ports::RESET)?;
    let valid = in_port(&stim, ports::VALID)?;
    let lr_port = in_port(&stim, ports::LR)?;
    let lambda_port = in_port(&stim, ports::LAMBDA)?;
    let lane_ports = (0..p.lanes)
        .map(|l| {
            Ok((
                in_port(&stim, &ports::w32(l))?,
                in_port(&stim, &ports::dw(l))?,
                in_port(&stim, &ports::keep(l))?,
            ))
        })
        .collect::<Result<Vec<_>, DriverError>>()?;
    // The engine shows a result LATENCY cycles after its input; the margin lets a slower engine
    // show up as measured cycles above the estimate rather than as missing results.
    let drain = 2 * wuve::latency(p) + 16;
    stim.reserve((wuve::RESET_CYCLES + out.stats.estimated_cycles + drain) as usize);
    stim.set_id(lr_port, &[lr.to_bits()]);
    stim.set_id(lambda_port, &[lambda.to_bits()]);
    stim.set_id(reset, &[1]);
    for _ in 0..wuve::RESET_CYCLES {
        stim.step(false);
    }
    stim.set_id(reset, &[0]);
    // Every cycle from the first element on is captured: results are found by `out_valid`.
    for c in 0..rounds {
        if c > 0 {
            let idle = random_bubbles.before_beat();
            stim.set_id(valid, &[0]);
            idle_captured(&mut stim, idle);
            out.stats.bubbles += idle;
        }
        stim.set_id(valid, &[1]);
        for (l, &(wp, dp, kp)) in lane_ports.iter().enumerate() {
            let (w, d, kb) = job.lane_input(c * lanes + l).unwrap_or((0, 0, 0));
            stim.set_id(wp, &[w]);
            stim.set_id(dp, &[d]);
            stim.set_id(kp, &[kb]);
        }
        stim.step(true);
    }
    stim.set_id(valid, &[0]);
    for &(wp, dp, kp) in &lane_ports {
        for port in [wp, dp, kp] {
            stim.set_id(port, &[0]);
        }
    }
    idle_captured(&mut stim, drain);

    let trace = sim.run(&stim)?;
    let shown = shown(&trace, ports::OUT_VALID)?;
    expect_shown(&shown, rounds, "result beats", trace.len())?;
    out.stats.cycles = shown.last().map_or(0, |&last| last as u64 + 1);
    let out_port = |name: &str| {
        trace
            .port_id(name)
            .ok_or_else(|| DriverError::Unsupported(format!("the design has no output `{name}`")))
    };
    let result_ports = (0..p.lanes)
        .map(|l| {
            Ok((
                out_port(&ports::w32_next(l))?,
                out_port(&ports::w16_next(l))?,
            ))
        })
        .collect::<Result<Vec<_>, DriverError>>()?;
    for (r, &capture) in shown.iter().enumerate() {
        for (l, &(wp, hp)) in result_ports.iter().enumerate() {
            job.place(
                &mut out,
                r * lanes + l,
                trace.get_id(capture, wp)[0],
                trace.get_id(capture, hp)[0],
            );
        }
    }
    Ok(out)
}

/// One update job, checked, with its elements in row-major order: what the bare engine and its
/// AXI wrapper (`crate::axi`) are fed, and where their results go.
pub(crate) struct UpdateJob {
    w32: Vec<f32>,
    dw: Vec<f32>,
    keep: Vec<u8>,
    cols: usize,
}

impl UpdateJob {
    /// Checks the shapes (see [`update`]) and makes the empty answer.
    pub fn new(
        p: &WuveParams,
        w32: ArrayView2<f32>,
        dw: ArrayView2<f32>,
        keep: ArrayView2<u8>,
    ) -> Result<(UpdateJob, Updated), DriverError> {
        p.validate().map_err(DriverError::Unsupported)?;
        let dim = w32.dim();
        for (name, d) in [("dw", dw.dim()), ("keep", keep.dim())] {
            if d != dim {
                return Err(DriverError::Shape(format!(
                    "{name} is {d:?} but w32 is {dim:?}; they must match element for element"
                )));
            }
        }
        let elements = w32.len();
        let out = Updated {
            w32: Array2::zeros(dim),
            w16: Array2::from_elem(dim, f16::ZERO),
            stats: UpdateStats {
                cycles: 0,
                estimated_cycles: wuve::estimated_cycles(p, elements as u64),
                bubbles: 0,
                elements: elements as u64,
            },
        };
        // Row-major element order, whatever the memory layout of the views.
        let job = UpdateJob {
            w32: w32.iter().copied().collect(),
            dw: dw.iter().copied().collect(),
            keep: keep.iter().copied().collect(),
            cols: dim.1,
        };
        Ok((job, out))
    }

    pub fn elements(&self) -> usize {
        self.w32.len()
    }

    /// Element k's (w32 bits, dw bits, keep bit); `None` past the last element.
    pub fn lane_input(&self, k: usize) -> Option<(u32, u32, u32)> {
        (k < self.elements()).then(|| {
            (
                self.w32[k].to_bits(),
                self.dw[k].to_bits(),
                u32::from(self.keep[k] != 0),
            )
        })
    }

    /// Stores element k's results (ignored past the last element).
    pub fn place(&self, out: &mut Updated, k: usize, w32_bits: u32, w16_bits: u32) {
        if k < self.elements() {
            let at = (k / self.cols, k % self.cols);
            out.w32[at] = f32::from_bits(w32_bits);
            out.w16[at] = f16::from_bits(w16_bits as u16);
        }
    }
}
