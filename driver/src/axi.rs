//! A GEMM on the STCE through its AXI wrapper (`<top>_axi`, `coforge_generator::engines::axi`),
//! in closed loop with the AXI bus models of `coforge_sim::axi`: an AXI4-Stream source with
//! random `TVALID` stalls feeds one reduction group per beat, an AXI4-Stream sink with random
//! `TREADY` stalls takes the result rows, protocol checkers watch both streams, and an
//! AXI4-Lite master reads the wrapper's counters and status at the end.
//!
//! The groups are the same as the bare engine's ([`stce::group_words`]), so the bits must be the
//! same too; only the cycles change with the stalls.

use crate::sore::{PruneJob, Pruned};
use crate::stce::{self, CycleStats, GemmJob, GemmRun, GroupWords};
use crate::wuve::{UpdateJob, Updated};
use crate::DriverError;
use coforge_generator::config::StceConfig;
use coforge_generator::engines::axi::{self as rtl_axi, ports, regs, LaneEngine};
use coforge_generator::engines::sore::SoreParams;
use coforge_generator::engines::stce as rtl_stce;
use coforge_generator::engines::wuve::WuveParams;
use coforge_sim::axi::{AxiLiteMaster, AxisChecker, AxisSink, AxisSource, LiteOp, ResetPin};
use coforge_sim::{Agent, Pins, VerilatedModel};
use ndarray::{Array2, ArrayView2, Axis};

/// Cycles `aresetn` is held low (Xilinx's minimum for AXI IP).
pub const RESET_CYCLES: u64 = 16;

/// Random stalls on both streams: the source leaves `TVALID` low and the sink `TREADY` low,
/// each with probability `rate` per cycle, from generators seeded by `seed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stalls {
    pub rate: f64,
    pub seed: u64,
}

impl Stalls {
    pub const NONE: Stalls = Stalls { rate: 0.0, seed: 0 };
}

/// What the wrapper's AXI4-Lite registers said after the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrapperCounters {
    pub status: u32,
    pub cycles_busy: u32,
    pub groups: u32,
    pub rows: u32,
    pub out_stalls: u32,
    pub info: u32,
}

/// The answer of one GEMM through the wrapper.
#[derive(Clone, Debug)]
pub struct AxiGemmRun {
    pub run: GemmRun,
    pub counters: WrapperCounters,
    /// Beats the checkers saw on the input and the output stream.
    pub beats_in: u64,
    pub beats_out: u64,
}

/// An agent that does nothing: the watcher when none is given.
pub(crate) struct Idle;

impl Agent for Idle {
    fn drive(&mut self, _cycle: u64, _pins: &mut Pins) {}
    fn observe(&mut self, _cycle: u64, _pins: &Pins) {}
}

/// Copies `width` bits of `src` into `dst` from bit `lo` on.
pub(crate) fn put_bits(dst: &mut [u32], lo: u32, src: &[u32], width: u32) {
    for i in 0..width {
        if src[(i / 32) as usize] >> (i % 32) & 1 == 1 {
            let at = lo + i;
            dst[(at / 32) as usize] |= 1 << (at % 32);
        }
    }
}

/// `width <= 32` bits of `src` from bit `lo` on.
pub(crate) fn get_bits(src: &[u32], lo: u32, width: u32) -> u32 {
    (0..width).fold(0, |v, i| {
        let at = lo + i;
        v | (src[(at / 32) as usize] >> (at % 32) & 1) << i
    })
}

/// The `s_axis_in` beat of one group: the fields at the offsets of
/// [`rtl_axi::stce_in_layout`].
fn beat(cfg: &StceConfig, group: &GroupWords, beat: &mut Vec<u32>) {
    beat.clear();
    beat.resize(rtl_axi::stce_in_width(cfg).div_ceil(32) as usize, 0);
    let fields = group.act.iter().chain(&group.wgt).chain(&group.idx);
    for ((_, lo, width), words) in rtl_axi::stce_in_layout(cfg).iter().zip(fields) {
        put_bits(beat, *lo, words, *width);
    }
}

/// Runs `job` on a fresh-from-reset `model` of the wrapper of `cfg`'s STCE, with `stalls`.
///
/// `cycles` is measured: from the cycle the first input beat is taken to the cycle the last
/// result row is taken, both counted. `estimated_cycles` is the engine's model plus the
/// wrapper's [`rtl_axi::STCE_EXTRA_CYCLES`], for a run without stalls.
pub fn run(
    model: &mut VerilatedModel,
    cfg: &StceConfig,
    job: &GemmJob,
    stalls: Stalls,
) -> Result<AxiGemmRun, DriverError> {
    run_watched(model, cfg, job, stalls, None)
}

/// [`run`] with one more agent that sees every cycle, last (e.g. a `coforge_sim::Recorder`, so
/// that another simulator can replay the run).
pub fn run_watched(
    model: &mut VerilatedModel,
    cfg: &StceConfig,
    job: &GemmJob,
    stalls: Stalls,
    watcher: Option<&mut dyn Agent>,
) -> Result<AxiGemmRun, DriverError> {
    check_rate(stalls)?;
    let tiling = stce::tiling(cfg, job)?;
    let pins: &Pins = model.pins();
    let mut source =
        AxisSource::new(pins, ports::STCE_IN)?.with_stalls(stalls.rate, stalls.seed)?;
    let rows = cfg.rows as usize;
    let expected = tiling.tiles() * rows;
    let mut sink = AxisSink::new(pins, ports::STCE_OUT)?
        .with_stalls(stalls.rate, stalls.seed ^ 0x5eed_f0a1_1000)?
        .expect(expected);

    let mut group = GroupWords::default();
    let mut words = Vec::new();
    for tr in 0..tiling.row_tiles {
        for tc in 0..tiling.col_tiles {
            for g in 0..tiling.groups {
                stce::group_words(cfg, job, &tiling, (tr, tc, g), &mut group);
                beat(cfg, &group, &mut words);
                source.push(&words, g + 1 == tiling.groups)?;
            }
        }
    }

    let estimated_cycles = rtl_stce::estimated_cycles(
        cfg,
        tiling.out_rows,
        tiling.groups * tiling.step,
        tiling.out_cols,
        tiling.sparse,
    ) + rtl_axi::STCE_EXTRA_CYCLES;
    let (counters, beats_in, beats_out) = drive(
        model,
        &mut source,
        &mut sink,
        &[],
        (estimated_cycles, expected),
        watcher,
    )?;
    if counters.status & 0b110 != 0 {
        return Err(DriverError::Unsupported(format!(
            "the AXI wrapper raised an error flag: STATUS = {:#x} (bit 1 overflow, bit 2 row order)",
            counters.status
        )));
    }

    // The i-th row out is row i mod rows of tile i / rows.
    let mut c = Array2::zeros((tiling.out_rows, tiling.out_cols));
    let mut read_cycle = Array2::zeros((tiling.out_rows, tiling.out_cols));
    let first_in = source.accepted_cycles()[0];
    let acc = cfg.acc_bits();
    for i in 0..sink.len() {
        let (tile, r) = (i / rows, i % rows);
        if sink.lasts()[i] != (r + 1 == rows) {
            return Err(DriverError::Unsupported(format!(
                "result row {i} came with TLAST = {}, expected it on each tile's row {}",
                sink.lasts()[i],
                rows - 1
            )));
        }
        let (tr, tc) = (tile / tiling.col_tiles, tile % tiling.col_tiles);
        let row = tr * rows + r;
        if row >= tiling.out_rows {
            continue;
        }
        let b = sink.beat(i);
        for cc in 0..cfg.cols as usize {
            let col = tc * cfg.cols as usize + cc;
            if col < tiling.out_cols {
                c[[row, col]] = get_bits(b, cc as u32 * acc, acc);
                read_cycle[[row, col]] = sink.cycles()[i] - first_in;
            }
        }
    }
    let accepted = source.accepted_cycles();
    let span_in = accepted[accepted.len() - 1] - first_in + 1;
    let last_out = sink.cycles()[sink.len() - 1];
    let n = cfg.n as u64;
    Ok(AxiGemmRun {
        run: GemmRun {
            c,
            read_cycle,
            stats: CycleStats {
                cycles: last_out - first_in + 1,
                estimated_cycles,
                tiles: tiling.tiles() as u64,
                groups_per_tile: tiling.groups as u64,
                bubbles: span_in - accepted.len() as u64,
                effective_macs: (tiling.out_rows * tiling.out_cols * tiling.groups) as u64 * n,
            },
        },
        counters,
        beats_in,
        beats_out,
    })
}

/// Resets the wrapper (`aresetn` low for [`RESET_CYCLES`]), writes `writes` over AXI4-Lite,
/// runs `source` and `sink` to the end with protocol checkers on both streams (and `watcher`),
/// then reads the common registers. Returns them and the beats each checker saw.
fn drive(
    model: &mut VerilatedModel,
    source: &mut AxisSource,
    sink: &mut AxisSink,
    writes: &[(u64, u32)],
    (estimated_cycles, expected): (u64, usize),
    watcher: Option<&mut dyn Agent>,
) -> Result<(WrapperCounters, u64, u64), DriverError> {
    let pins: &Pins = model.pins();
    let reset = reset_pin(pins)?;
    // The wrapper's outputs are defined from the second cycle of reset (its reset register).
    let mut check_in = AxisChecker::new(pins, ports::IN)?.with_reset(reset, 1);
    let mut check_out = AxisChecker::new(pins, ports::OUT)?.with_reset(reset, 1);
    let mut idle = Idle;
    let watcher: &mut dyn Agent = match watcher {
        Some(w) => w,
        None => &mut idle,
    };
    hold_reset(model, &mut [&mut check_in, &mut check_out, watcher])?;
    lite_ops(model, &writes_of(writes), watcher)?;
    // A generous bound: every beat may wait for many stall cycles.
    let limit = 64 * (estimated_cycles + (source.len() + expected) as u64) + 1000;
    model.run_until_done(
        &mut [source, sink, &mut check_in, &mut check_out, watcher],
        limit,
    )?;
    check_in.check()?;
    check_out.check()?;
    let counters = read_counters(model, watcher)?;
    Ok((counters, check_in.beats(), check_out.beats()))
}

/// The wrapper's `aresetn`, for the checkers.
pub(crate) fn reset_pin(pins: &Pins) -> Result<ResetPin, DriverError> {
    Ok(ResetPin {
        port: pins.input(ports::RESET_N)?,
        active_low: true,
    })
}

/// Holds `aresetn` low for [`RESET_CYCLES`] cycles with `agents` watching, then releases it.
pub(crate) fn hold_reset(
    model: &mut VerilatedModel,
    agents: &mut [&mut dyn Agent],
) -> Result<(), DriverError> {
    let reset = reset_pin(model.pins())?;
    model.set(reset.port, 0);
    for _ in 0..RESET_CYCLES {
        model.cycle_with(agents)?;
    }
    model.set(reset.port, 1);
    Ok(())
}

/// AXI4-Lite writes of `(address, data)` pairs.
pub(crate) fn writes_of(writes: &[(u64, u32)]) -> Vec<LiteOp> {
    writes
        .iter()
        .map(|&(addr, data)| LiteOp::Write { addr, data })
        .collect()
}

/// Runs `ops` on the wrapper's AXI4-Lite port, in order; returns the data of the reads.
pub(crate) fn lite_ops(
    model: &mut VerilatedModel,
    ops: &[LiteOp],
    watcher: &mut dyn Agent,
) -> Result<Vec<u32>, DriverError> {
    let mut lite = AxiLiteMaster::new(model.pins(), ports::CTRL)?;
    for op in ops {
        match *op {
            LiteOp::Write { addr, data } => lite.write(addr, data),
            LiteOp::Read { addr } => lite.read(addr),
        }
    }
    model.run_until_done(&mut [&mut lite, watcher], 1000 + 16 * ops.len() as u64)?;
    lite.check()?;
    Ok(lite.reads().iter().map(|&(_, d)| d).collect())
}

/// Reads the common registers.
pub(crate) fn read_counters(
    model: &mut VerilatedModel,
    watcher: &mut dyn Agent,
) -> Result<WrapperCounters, DriverError> {
    let ops: Vec<LiteOp> = [
        regs::STATUS,
        regs::CYCLES,
        regs::BEATS_IN,
        regs::BEATS_OUT,
        regs::OUT_STALLS,
        regs::INFO,
    ]
    .into_iter()
    .map(|addr| LiteOp::Read { addr })
    .collect();
    let reads = lite_ops(model, &ops, watcher)?;
    Ok(WrapperCounters {
        status: reads[0],
        cycles_busy: reads[1],
        groups: reads[2],
        rows: reads[3],
        out_stalls: reads[4],
        info: reads[5],
    })
}

/// One beat into a lane wrapper: per lane, its fields' values (little-endian words each, in
/// the order of `LaneEngine::inputs`), or `None` for a null lane (`TKEEP` low on its bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaneBeat {
    pub lanes: Vec<Option<Vec<Vec<u32>>>>,
    pub last: bool,
}

/// What came out of a lane wrapper.
#[derive(Clone, Debug)]
pub struct LaneRun {
    /// Per result beat, per lane, its fields (in the order of `LaneEngine::outputs`), or `None`
    /// for a null lane.
    pub results: Vec<Vec<Option<Vec<Vec<u32>>>>>,
    /// `TLAST` of every result beat.
    pub lasts: Vec<bool>,
    /// Measured: from the cycle the first beat was taken to the cycle the last result was
    /// taken, both counted.
    pub cycles: u64,
    /// Input cycles without a beat taken between the first and the last.
    pub bubbles: u64,
    pub counters: WrapperCounters,
    pub beats_in: u64,
    pub beats_out: u64,
}

/// Copies `width` bits of `words` from bit `lo` on, as little-endian words.
fn take_bits(words: &[u32], lo: u32, width: u32) -> Vec<u32> {
    (0..width.div_ceil(32))
        .map(|i| get_bits(words, lo + 32 * i, (width - 32 * i).min(32)))
        .collect()
}

/// Runs `beats` through a fresh-from-reset `model` of the wrapper of the lane engine `e`, with
/// `params` written into its parameter registers first, and `stalls` on both streams;
/// `engine_estimate` is the engine's own cycle model of the job, for the run's time limit.
pub fn run_lanes(
    model: &mut VerilatedModel,
    e: &LaneEngine,
    beats: &[LaneBeat],
    params: &[u32],
    stalls: Stalls,
    engine_estimate: u64,
) -> Result<LaneRun, DriverError> {
    run_lanes_watched(model, e, beats, params, (stalls, engine_estimate), None)
}

/// [`run_lanes`] with one more agent that sees every cycle, last (e.g. a
/// `coforge_sim::Recorder`, so that another simulator can replay the run).
pub fn run_lanes_watched(
    model: &mut VerilatedModel,
    e: &LaneEngine,
    beats: &[LaneBeat],
    params: &[u32],
    (stalls, engine_estimate): (Stalls, u64),
    watcher: Option<&mut dyn Agent>,
) -> Result<LaneRun, DriverError> {
    check_rate(stalls)?;
    if params.len() != e.params.len() {
        return Err(DriverError::Input(format!(
            "the {} wrapper has {} parameter registers, {} values given",
            e.kind,
            e.params.len(),
            params.len()
        )));
    }
    let (inl, outl) = (e.in_layout(), e.out_layout());
    let pins: &Pins = model.pins();
    let mut source = AxisSource::new(pins, ports::IN)?.with_stalls(stalls.rate, stalls.seed)?;
    let results = beats
        .iter()
        .enumerate()
        .filter(|(i, _)| (i + 1) % e.beats_per_result as usize == 0);
    let expected = results.count();
    let mut sink = AxisSink::new(pins, ports::OUT)?
        .with_stalls(stalls.rate, stalls.seed ^ 0x5eed_f0a1_1000)?
        .expect(expected);
    let mut words = Vec::new();
    let mut keep = Vec::new();
    for beat in beats {
        words.clear();
        words.resize(inl.data_bits().div_ceil(32) as usize, 0);
        keep.clear();
        keep.resize(inl.keep_bits().div_ceil(32) as usize, 0);
        for (l, lane) in beat.lanes.iter().enumerate() {
            let l = l as u32;
            let Some(fields) = lane else { continue };
            for (f, value) in fields.iter().enumerate() {
                put_bits(&mut words, inl.lo(l, f), value, inl.fields[f].1);
            }
            let all = [u32::MAX; 4];
            put_bits(&mut keep, l * inl.slot_bytes, &all, inl.slot_bytes);
        }
        source.push_kept(&words, &keep, beat.last)?;
    }
    let writes: Vec<(u64, u32)> = params
        .iter()
        .enumerate()
        .map(|(i, &v)| (regs::PARAMS + 4 * i as u64, v))
        .collect();
    let estimated = engine_estimate + rtl_axi::LANE_EXTRA_CYCLES;
    let (counters, beats_in, beats_out) = drive(
        model,
        &mut source,
        &mut sink,
        &writes,
        (estimated, expected),
        watcher,
    )?;
    if counters.status & 0b10110 != 0 {
        return Err(DriverError::Unsupported(format!(
            "the {} AXI wrapper raised an error flag: STATUS = {:#x} (bit 1 overflow, bit 2 \
             result order, bit 4 TLAST inside a group)",
            e.kind, counters.status
        )));
    }
    let mut out = Vec::with_capacity(sink.len());
    for i in 0..sink.len() {
        let (data, keep) = (sink.beat(i), sink.keep(i));
        let lanes = (0..e.lanes)
            .map(|l| {
                let kept = get_bits(keep, l * outl.slot_bytes, 1) == 1;
                kept.then(|| {
                    (0..e.outputs.len())
                        .map(|f| take_bits(data, outl.lo(l, f), outl.fields[f].1))
                        .collect()
                })
            })
            .collect();
        out.push(lanes);
    }
    let accepted = source.accepted_cycles();
    let first_in = accepted.first().copied().unwrap_or(0);
    let span_in = accepted.last().map_or(0, |last| last - first_in + 1);
    let cycles = sink.cycles().last().map_or(0, |last| last - first_in + 1);
    Ok(LaneRun {
        results: out,
        lasts: sink.lasts().to_vec(),
        cycles,
        bubbles: span_in - accepted.len() as u64,
        counters,
        beats_in,
        beats_out,
    })
}

pub(crate) fn check_rate(stalls: Stalls) -> Result<(), DriverError> {
    if !(0.0..1.0).contains(&stalls.rate) {
        return Err(DriverError::Input(format!(
            "a stall rate of {} is outside [0, 1)",
            stalls.rate
        )));
    }
    Ok(())
}

/// [`crate::sore::prune`] through the SORE's AXI wrapper: round r's M beats carry the values of
/// its groups (null lanes past the last group), `TLAST` on the job's last beat. `stats.cycles`
/// is the wrapper run's measured span; `estimated_cycles` the unit's model plus
/// [`rtl_axi::LANE_EXTRA_CYCLES`].
pub fn prune(
    model: &mut VerilatedModel,
    p: &SoreParams,
    top: &str,
    w_bits: ArrayView2<u32>,
    axis: Axis,
    stalls: Stalls,
) -> Result<(Pruned, LaneRun), DriverError> {
    let (job, mut out) = PruneJob::new(p, w_bits, axis)?;
    let e = rtl_axi::sore_engine(p, top);
    let mut beats = Vec::with_capacity(job.rounds * job.m);
    for r in 0..job.rounds {
        for j in 0..job.m {
            beats.push(LaneBeat {
                lanes: (0..p.lanes as usize)
                    .map(|l| job.value(w_bits, r, l, j).map(|v| vec![vec![v]]))
                    .collect(),
                last: r + 1 == job.rounds && j + 1 == job.m,
            });
        }
    }
    let run = run_lanes(model, &e, &beats, &[], stalls, out.stats.estimated_cycles)?;
    job.extract(&mut out, |r, l| match &run.results[r][l] {
        Some(f) => (&f[0][..], &f[1][..]),
        None => (&[][..], &[][..]),
    })?;
    out.stats.cycles = run.cycles;
    out.stats.bubbles = run.bubbles;
    out.stats.estimated_cycles += rtl_axi::LANE_EXTRA_CYCLES;
    Ok((out, run))
}

/// [`crate::wuve::update`] through the WUVE's AXI wrapper: `lr` and `lambda` written into its
/// LR and LAMBDA registers, V elements per beat (null lanes past the last), `TLAST` on the last
/// beat. Cycles as for [`prune`].
#[allow(clippy::too_many_arguments)]
pub fn update(
    model: &mut VerilatedModel,
    p: &WuveParams,
    top: &str,
    (w32, dw, keep): (ArrayView2<f32>, ArrayView2<f32>, ArrayView2<u8>),
    lr: f32,
    lambda: f32,
    stalls: Stalls,
) -> Result<(Updated, LaneRun), DriverError> {
    let (job, mut out) = UpdateJob::new(p, w32, dw, keep)?;
    let e = rtl_axi::wuve_engine(p, top);
    let lanes = p.lanes as usize;
    let rounds = job.elements().div_ceil(lanes);
    let beats: Vec<LaneBeat> = (0..rounds)
        .map(|c| LaneBeat {
            lanes: (0..lanes)
                .map(|l| {
                    job.lane_input(c * lanes + l)
                        .map(|(w, d, k)| vec![vec![w], vec![d], vec![k]])
                })
                .collect(),
            last: c + 1 == rounds,
        })
        .collect();
    let params = [lr.to_bits(), lambda.to_bits()];
    let run = run_lanes(
        model,
        &e,
        &beats,
        &params,
        stalls,
        out.stats.estimated_cycles,
    )?;
    for (r, result) in run.results.iter().enumerate() {
        for (l, lane) in result.iter().enumerate() {
            if let Some(f) = lane {
                job.place(&mut out, r * lanes + l, f[0][0], f[1][0]);
            }
        }
    }
    out.stats.cycles = run.cycles;
    out.stats.bubbles = run.bubbles;
    out.stats.estimated_cycles += rtl_axi::LANE_EXTRA_CYCLES;
    Ok((out, run))
}
