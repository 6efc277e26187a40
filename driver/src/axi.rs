//! A GEMM on the STCE through its AXI wrapper (`<top>_axi`, `coforge_generator::engines::axi`),
//! in closed loop with the AXI bus models of `coforge_sim::axi`: an AXI4-Stream source with
//! random `TVALID` stalls feeds one reduction group per beat, an AXI4-Stream sink with random
//! `TREADY` stalls takes the result rows, protocol checkers watch both streams, and an
//! AXI4-Lite master reads the wrapper's counters and status at the end.
//!
//! The groups are the same as the bare engine's ([`stce::group_words`]), so the bits must be the
//! same too; only the cycles change with the stalls.

use crate::stce::{self, CycleStats, GemmJob, GemmRun, GroupWords};
use crate::DriverError;
use coforge_generator::config::StceConfig;
use coforge_generator::engines::axi::{self as rtl_axi, ports, stce_regs};
use coforge_generator::engines::stce as rtl_stce;
use coforge_sim::axi::{AxiLiteMaster, AxisChecker, AxisSink, AxisSource, ResetPin};
use coforge_sim::{Agent, Pins, VerilatedModel};
use ndarray::Array2;

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
struct Idle;

impl Agent for Idle {
    fn drive(&mut self, _cycle: u64, _pins: &mut Pins) {}
    fn observe(&mut self, _cycle: u64, _pins: &Pins) {}
}

/// Copies `width` bits of `src` into `dst` from bit `lo` on.
fn put_bits(dst: &mut [u32], lo: u32, src: &[u32], width: u32) {
    for i in 0..width {
        if src[(i / 32) as usize] >> (i % 32) & 1 == 1 {
            let at = lo + i;
            dst[(at / 32) as usize] |= 1 << (at % 32);
        }
    }
}

/// `width <= 32` bits of `src` from bit `lo` on.
fn get_bits(src: &[u32], lo: u32, width: u32) -> u32 {
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
    if !(0.0..1.0).contains(&stalls.rate) {
        return Err(DriverError::Input(format!(
            "a stall rate of {} is outside [0, 1)",
            stalls.rate
        )));
    }
    let tiling = stce::tiling(cfg, job)?;
    let pins: &Pins = model.pins();
    let mut source =
        AxisSource::new(pins, ports::STCE_IN)?.with_stalls(stalls.rate, stalls.seed)?;
    let rows = cfg.rows as usize;
    let expected = tiling.tiles() * rows;
    let mut sink = AxisSink::new(pins, ports::STCE_OUT)?
        .with_stalls(stalls.rate, stalls.seed ^ 0x5eed_f0a1_1000)?
        .expect(expected);
    let reset = ResetPin {
        port: pins.input(ports::RESET_N)?,
        active_low: true,
    };
    // The wrapper's outputs are defined from the second cycle of reset (its reset register).
    let mut check_in = AxisChecker::new(pins, ports::STCE_IN)?.with_reset(reset, 1);
    let mut check_out = AxisChecker::new(pins, ports::STCE_OUT)?.with_reset(reset, 1);
    let mut lite = AxiLiteMaster::new(pins, ports::CTRL)?;

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

    model.set(reset.port, 0);
    let mut idle = Idle;
    let watcher: &mut dyn Agent = match watcher {
        Some(w) => w,
        None => &mut idle,
    };
    for _ in 0..RESET_CYCLES {
        model.cycle_with(&mut [&mut check_in, &mut check_out, watcher])?;
    }
    model.set(reset.port, 1);
    let estimated_cycles = rtl_stce::estimated_cycles(
        cfg,
        tiling.out_rows,
        tiling.groups * tiling.step,
        tiling.out_cols,
        tiling.sparse,
    ) + rtl_axi::STCE_EXTRA_CYCLES;
    // A generous bound: every beat may wait for many stall cycles.
    let limit = 64 * (estimated_cycles + source.len() as u64 + expected as u64) + 1000;
    model.run_until_done(
        &mut [
            &mut source,
            &mut sink,
            &mut check_in,
            &mut check_out,
            watcher,
        ],
        limit,
    )?;
    check_in.check()?;
    check_out.check()?;

    for addr in [
        stce_regs::STATUS,
        stce_regs::CYCLES,
        stce_regs::GROUPS,
        stce_regs::ROWS,
        stce_regs::OUT_STALLS,
        stce_regs::INFO,
    ] {
        lite.read(addr);
    }
    model.run_until_done(&mut [&mut lite, watcher], 1000)?;
    lite.check()?;
    let reads: Vec<u32> = lite.reads().iter().map(|&(_, d)| d).collect();
    let counters = WrapperCounters {
        status: reads[0],
        cycles_busy: reads[1],
        groups: reads[2],
        rows: reads[3],
        out_stalls: reads[4],
        info: reads[5],
    };
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
        beats_in: check_in.beats(),
        beats_out: check_out.beats(),
    })
}
