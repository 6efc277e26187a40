//! A deformable layer through its engine's AXI wrapper (`<top>_axi`,
//! `coforge_generator::engines::axi::deform`), in closed loop with the AXI bus models of
//! `coforge_sim::axi`: an AXI4-Stream source with random `TVALID` stalls on every slave port,
//! a sink with random `TREADY` stalls on `m_axis_out`, protocol checkers on every stream, and
//! an AXI4-Lite master that writes the layer registers and START and reads the counters.
//!
//! The beats are the bare engine's (`deform::LayerJob`, `dcnv2::PlaneJob`), so the bits must
//! be the same; only the cycles change with the stalls.

use crate::axi::{
    check_rate, hold_reset, lite_ops, put_bits, read_counters, reset_pin, writes_of, Idle, Stalls,
    WrapperCounters,
};
use crate::dcnv2::{EngineRun, Layer as Dcnv2Layer, PlaneJob};
use crate::deform::{LayerJob, Outcome};
use crate::DriverError;
use coforge_generator::config::{DeformConfig, DeformMode};
use coforge_generator::engines::axi::{
    self as rtl_axi, deform_ports, deform_regs, ports, regs, DeformEngine, DEFORM_EXTRA_CYCLES,
};
use coforge_generator::engines::deform::{self as rtl_deform, dcnv2 as rtl_dcnv2};
use coforge_generator::rtl::ModuleDef;
use coforge_sim::axi::{AxisChecker, AxisSink, AxisSource, LiteOp};
use coforge_sim::{Agent, VerilatedModel};
use ndarray::ArrayView3;
use sparse_kernels::deform::codenet::CodenetBlock;

/// What the wrapper did besides the results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrapperStats {
    /// Measured: first data beat taken (any slave port but the parameters) to last result
    /// taken, both counted.
    pub cycles: u64,
    /// The engine's cycle model plus [`DEFORM_EXTRA_CYCLES`], for a run without stalls.
    pub estimated_cycles: u64,
    /// The common registers after the job (BEATS_IN counts pixels, BEATS_OUT results).
    pub counters: WrapperCounters,
    /// Beats the checkers saw on `s_axis_in` and `m_axis_out`.
    pub beats_in: u64,
    pub beats_out: u64,
    /// Cycles without a pixel beat taken between the first and the last (source stalls and
    /// back-pressure).
    pub input_stall_cycles: u64,
}

/// The wrapper's description and its engine's module, generated from `cfg` (cheap), so that
/// the beat layouts are the generator's.
fn described(cfg: &DeformConfig) -> Result<(DeformEngine, ModuleDef), DriverError> {
    let design = rtl_deform::generate(cfg)
        .map_err(|e| DriverError::Unsupported(format!("cannot generate the engine: {e}")))?;
    let engine = design
        .get(&cfg.top)
        .expect("a generated design has its top")
        .clone();
    Ok((rtl_axi::deform_engine(cfg, &engine), engine))
}

/// Beats of one field each.
fn as_fields(beats: &[Vec<u32>]) -> Vec<Vec<&[u32]>> {
    beats.iter().map(|b| vec![&b[..]]).collect()
}

/// One job through the wrapper: the slave ports' beats (`(port, fields of each beat)`, each
/// field as little-endian words in the order of the port's layout).
struct Job<'a> {
    /// Mode A's parameter beats, sent before the layer registers and START.
    params: Vec<Vec<&'a [u32]>>,
    /// Layer registers `(offset, value)`, written before START.
    registers: Vec<(u64, u32)>,
    streams: Vec<(&'static str, Vec<Vec<&'a [u32]>>)>,
    results: usize,
    estimated_cycles: u64,
}

/// The results of a job: each beat's words and the cycle it was taken.
struct Taken {
    beats: Vec<Vec<u32>>,
    cycles: Vec<u64>,
    first_in: u64,
    stats: WrapperStats,
}

/// Packs one beat of `port`: its fields at the offsets of the wrapper's layout.
fn beat(
    e: &DeformEngine,
    engine: &ModuleDef,
    port: &str,
    fields: &[&[u32]],
) -> Result<Vec<u32>, DriverError> {
    let stream = e
        .inputs
        .iter()
        .find(|s| s.axis == port)
        .ok_or_else(|| DriverError::Unsupported(format!("the wrapper has no `{port}` port")))?;
    let (layout, width) = rtl_axi::stream_layout(stream, engine);
    let mut words = vec![0; width.div_ceil(32) as usize];
    for ((_, lo, w), value) in layout.iter().zip(fields) {
        let mut padded = value.to_vec();
        padded.resize(w.div_ceil(32) as usize, 0);
        put_bits(&mut words, *lo, &padded, *w);
    }
    Ok(words)
}

/// Runs `job` on a fresh-from-reset `model` of the wrapper `e` under `stalls` (see the module
/// docs), and checks the protocol, `TLAST` on the last result only, and STATUS.
fn run_job(
    model: &mut VerilatedModel,
    (e, engine): (&DeformEngine, &ModuleDef),
    job: &Job,
    stalls: Stalls,
    watcher: Option<&mut dyn Agent>,
) -> Result<Taken, DriverError> {
    check_rate(stalls)?;
    let pins = model.pins();
    let reset = reset_pin(pins)?;
    let mut checkers: Vec<AxisChecker> = e
        .inputs
        .iter()
        .map(|s| s.axis)
        .chain([ports::OUT])
        .map(|p| Ok(AxisChecker::new(pins, p)?.with_reset(reset, 1)))
        .collect::<Result<_, DriverError>>()?;
    let seed = |i: u64| stalls.seed ^ (0x5eed_0000 + i);
    let source = |port: &str, beats: &[Vec<&[u32]>], i| -> Result<AxisSource, DriverError> {
        let mut s = AxisSource::new(pins, port)?.with_stalls(stalls.rate, seed(i))?;
        for (k, fields) in beats.iter().enumerate() {
            s.push(&beat(e, engine, port, fields)?, k + 1 == beats.len())?;
        }
        Ok(s)
    };
    let mut prm = (!job.params.is_empty())
        .then(|| source(deform_ports::PRM, &job.params, 0))
        .transpose()?;
    let mut sources: Vec<AxisSource> = job
        .streams
        .iter()
        .enumerate()
        .map(|(i, (port, beats))| source(port, beats, i as u64 + 1))
        .collect::<Result<_, _>>()?;
    let mut sink = AxisSink::new(pins, ports::OUT)?
        .with_stalls(stalls.rate, seed(99))?
        .expect(job.results);
    let mut idle = Idle;
    let watcher: &mut dyn Agent = match watcher {
        Some(w) => w,
        None => &mut idle,
    };
    {
        let mut agents: Vec<&mut dyn Agent> =
            checkers.iter_mut().map(|c| c as &mut dyn Agent).collect();
        agents.push(&mut *watcher);
        hold_reset(model, &mut agents)?;
    }
    let limit = 64 * (job.estimated_cycles + job.results as u64) + 1000;
    if let Some(prm) = prm.as_mut() {
        let mut agents: Vec<&mut dyn Agent> = vec![prm];
        agents.extend(checkers.iter_mut().map(|c| c as &mut dyn Agent));
        agents.push(&mut *watcher);
        model.run_until_done(&mut agents, 64 * job.params.len() as u64 + 1000)?;
        // One more cycle, so that the finished source drives TVALID low.
        model.cycle_with(&mut agents)?;
        // The last words leave the skid buffer once the engine takes them: wait for STATUS busy
        // to fall before the layer starts.
        let mut polls = 0;
        while lite_ops(model, &[LiteOp::Read { addr: regs::STATUS }], &mut *watcher)?[0]
            & regs::STATUS_BUSY
            != 0
        {
            polls += 1;
            if polls > 100 {
                return Err(DriverError::Unsupported(
                    "the wrapper stayed busy after the parameter words".into(),
                ));
            }
        }
    }
    let mut writes = job.registers.clone();
    writes.push((regs::CONTROL, 1));
    writes.push((deform_regs::START, 1));
    lite_ops(model, &writes_of(&writes), &mut *watcher)?;
    {
        let mut agents: Vec<&mut dyn Agent> = vec![&mut sink];
        agents.extend(sources.iter_mut().map(|s| s as &mut dyn Agent));
        agents.extend(checkers.iter_mut().map(|c| c as &mut dyn Agent));
        agents.push(&mut *watcher);
        model.run_until_done(&mut agents, limit)?;
    }
    // A few more cycles so that the last result's flags reach STATUS.
    for _ in 0..4 {
        model.cycle_with(&mut [&mut *watcher])?;
    }
    for c in &checkers {
        c.check()?;
    }
    let counters = read_counters(model, &mut *watcher)?;
    if counters.status & deform_regs::STATUS_ERROR != 0 {
        return Err(DriverError::Unsupported(format!(
            "the {} raised its error flag (STATUS = {:#x}, bit 2): {}",
            e.kind,
            counters.status,
            if e.done.is_some() {
                "a dilation outside 1..=max_dilation, or a layer size the engine cannot run"
            } else {
                "an offset beyond max_offset"
            }
        )));
    }
    if counters.status & 0b10 != 0 || counters.status & deform_regs::STATUS_DONE == 0 {
        return Err(DriverError::Unsupported(format!(
            "the AXI wrapper's STATUS is {:#x} after the job: expected done (bit 3) and no \
             overflow (bit 1)",
            counters.status
        )));
    }
    let lasts = sink.lasts();
    if let Some(i) = lasts
        .iter()
        .enumerate()
        .position(|(i, &l)| l != (i + 1 == lasts.len()))
    {
        return Err(DriverError::Unsupported(format!(
            "result {i} of {} came with TLAST = {}; TLAST belongs on the job's last result only",
            lasts.len(),
            lasts[i]
        )));
    }
    let first_in = sources
        .iter()
        .filter_map(|s| s.accepted_cycles().first().copied())
        .min()
        .unwrap_or(0);
    let cycles = sink.cycles().to_vec();
    let last = cycles.last().copied().unwrap_or(first_in);
    let beats_in = checkers[e
        .inputs
        .iter()
        .position(|s| s.axis == ports::IN)
        .expect("an s_axis_in port")]
    .beats();
    let beats_out = checkers[checkers.len() - 1].beats();
    let pixel_source = &sources[job
        .streams
        .iter()
        .position(|(p, _)| *p == ports::IN)
        .expect("pixels on s_axis_in")];
    let accepted = pixel_source.accepted_cycles();
    let input_stall_cycles = match (accepted.first(), accepted.last()) {
        (Some(a), Some(b)) => b - a + 1 - accepted.len() as u64,
        _ => 0,
    };
    Ok(Taken {
        beats: (0..sink.len()).map(|i| sink.beat(i).to_vec()).collect(),
        cycles,
        first_in,
        stats: WrapperStats {
            cycles: last + 1 - first_in,
            estimated_cycles: job.estimated_cycles,
            counters,
            beats_in,
            beats_out,
            input_stall_cycles,
        },
    })
}

/// [`crate::deform::run_layer`] through the mode-A engine's AXI wrapper: the parameter words on
/// `s_axis_prm`, the layer registers and START over AXI4-Lite, then pixels (and dilations) with
/// `stalls` on every stream.
pub fn deform_layer(
    model: &mut VerilatedModel,
    cfg: &DeformConfig,
    x: ArrayView3<i8>,
    block: &CodenetBlock,
    stalls: Stalls,
) -> Result<(Outcome, WrapperStats), DriverError> {
    deform_layer_watched(model, cfg, (x, block), stalls, None)
}

/// [`deform_layer`] with one more agent that sees every cycle, last (e.g. a
/// `coforge_sim::Recorder`, so that another simulator can replay the run).
pub fn deform_layer_watched(
    model: &mut VerilatedModel,
    cfg: &DeformConfig,
    (x, block): (ArrayView3<i8>, &CodenetBlock),
    stalls: Stalls,
    watcher: Option<&mut dyn Agent>,
) -> Result<(Outcome, WrapperStats), DriverError> {
    if cfg.mode == DeformMode::Dcnv2 {
        return Err(DriverError::Unsupported(
            "a DCNv2 engine runs a DCNv2 layer (dcnv2_engine)".into(),
        ));
    }
    let job = LayerJob::new(cfg, x, block)?;
    let (e, engine) = described(cfg)?;
    let targets: Vec<[u32; 2]> = job.params.iter().map(|(t, a, _)| [*a as u32, *t]).collect();
    let params = job
        .params
        .iter()
        .zip(&targets)
        .map(|((_, _, words), [addr, target])| {
            vec![
                &words[..],
                std::slice::from_ref(addr),
                std::slice::from_ref(target),
            ]
        })
        .collect();
    let mut registers = vec![
        (deform_regs::HEIGHT, job.layer.height),
        (deform_regs::WIDTH, job.layer.width),
        (deform_regs::GROUPS, job.layer.groups),
        (deform_regs::RELU, u32::from(job.relu)),
    ];
    if let Some(relu_pw) = job.relu_pw {
        registers.push((deform_regs::IN_GROUPS, job.layer.in_groups));
        registers.push((deform_regs::RELU_PW, u32::from(relu_pw)));
    }
    let dilations: Vec<[u32; 1]> = job.dilations.iter().map(|&d| [d as u32]).collect();
    let mut streams = vec![(ports::IN, as_fields(&job.pixels))];
    if cfg.mode == DeformMode::Codenet {
        streams.push((
            deform_ports::DIL,
            dilations.iter().map(|d| vec![&d[..]]).collect(),
        ));
    }
    let estimated = rtl_deform::estimated_cycles(cfg, &job.layer) + DEFORM_EXTRA_CYCLES;
    let taken = run_job(
        model,
        (&e, &engine),
        &Job {
            params,
            registers,
            streams,
            results: job.out_beats(),
            estimated_cycles: estimated,
        },
        stalls,
        watcher,
    )?;
    let mut o = job.outcome(
        cfg,
        &|k| taken.beats[k].clone(),
        &taken.cycles,
        taken.first_in,
        (None, job.params.len() as u64),
    )?;
    o.estimated_cycles = estimated;
    Ok((o, taken.stats))
}

/// [`crate::dcnv2::run_engine`] through the DCNv2 engine's AXI wrapper: the sizes and the
/// plane count over AXI4-Lite, START, then pixels, offsets (and weights) with `stalls` on
/// every stream. Use it with [`crate::dcnv2::verify_layer_with`].
pub fn dcnv2_engine(
    model: &mut VerilatedModel,
    cfg: &DeformConfig,
    layer: &Dcnv2Layer,
    stalls: Stalls,
) -> Result<(EngineRun, WrapperStats), DriverError> {
    let p = rtl_dcnv2::Dcnv2Params::of(cfg);
    let job = PlaneJob::new(&p, layer)?;
    let (e, engine) = described(cfg)?;
    let [h, w, hout, wout] = job.sizes().map(|v| v as u32);
    let registers = vec![
        (deform_regs::HEIGHT, h),
        (deform_regs::WIDTH, w),
        (deform_regs::OUT_HEIGHT, hout),
        (deform_regs::OUT_WIDTH, wout),
        (deform_regs::PLANES, job.planes() as u32),
    ];
    let pixels = as_fields(&job.pixels);
    let offsets = as_fields(&job.offsets);
    let weights = as_fields(&job.weights);
    let mut streams = vec![(ports::IN, pixels), (deform_ports::OFF, offsets)];
    if p.depthwise {
        streams.push((deform_ports::WGT, weights));
    }
    let estimated = job.estimated_cycles(&p) + DEFORM_EXTRA_CYCLES;
    let taken = run_job(
        model,
        (&e, &engine),
        &Job {
            params: Vec::new(),
            registers,
            streams,
            results: job.out_beats(&p),
            estimated_cycles: estimated,
        },
        stalls,
        None,
    )?;
    let mut run = job.run(
        &p,
        layer,
        &|k| taken.beats[k].clone(),
        &taken.cycles,
        (taken.first_in, None),
    );
    run.estimated_cycles = estimated;
    Ok((run, taken.stats))
}
