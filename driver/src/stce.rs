//! A GEMM `C = A · B` on the sparse tensor engine.
//!
//! The job is tiled into `rows x cols` output tiles (partial tiles are padded with zeros), and
//! each tile streams its reduction groups. The driver only feeds: it keeps the engine's one
//! input rule (a tile's last group at least [`stce::tile_spacing`] cycles after the previous
//! one, see the protocol in `coforge_generator::engines::stce`) and may add random bubbles. On
//! an engine with several slots (the fp32 adder pipeline) cycle t is slot t mod slots's turn,
//! and the driver deals the tiles to the slots as they free up. The
//! results are whatever rows the engine shows with `out_valid`, in the order it shows them, and
//! `cycles` is the span the simulation observed, from the first group taken to the last result
//! row shown. The protocol's estimate stands beside it as `estimated_cycles`. Operands and
//! results travel as raw bit patterns, so the same code drives int8 and fp16 engines.

use crate::{expect_shown, idle_captured, shown, DriverError, Gaps};
use coforge_generator::config::StceConfig;
use coforge_generator::engines::stce::{self, ports};
use coforge_sim::{DesignSpec, Simulator, Stimulus, Trace};
use ndarray::Array2;

/// How the weight operand reaches the array.
#[derive(Clone, Debug)]
pub enum WeightStream {
    /// N:M sparse mode: per group of M reduction indices, the N kept weights of each column
    /// (rows `g*N .. g*N+N` of `values`) and their positions within the group.
    Sparse {
        values: Array2<u32>,
        indices: Array2<u8>,
    },
    /// Dense mode: N consecutive reduction indices per cycle; `values` is K x cols.
    Dense { values: Array2<u32> },
}

/// One GEMM in the engine's raw formats. `a` is rows x K (K a multiple of M in sparse mode, of
/// N in dense mode; pad with zeros, which adds nothing to any sum).
#[derive(Clone, Debug)]
pub struct GemmJob {
    pub a: Array2<u32>,
    pub weights: WeightStream,
}

/// Cycle accounting of one GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CycleStats {
    /// Measured: from the cycle the first group was taken to the cycle the engine showed the
    /// last result row (`out_valid`), both counted.
    pub cycles: u64,
    /// The protocol's cycle model for the same job ([`stce::estimated_cycles`]), which assumes
    /// no bubbles but those the tile-spacing rule needs.
    pub estimated_cycles: u64,
    pub tiles: u64,
    /// Reduction groups per tile: K/M in sparse mode, K/N in dense mode.
    pub groups_per_tile: u64,
    /// Idle input cycles (`in_valid` low) between the first group and the last: those the
    /// tile-spacing rule needs, plus random [`Gaps`].
    pub bubbles: u64,
    /// Multiplier slots that worked on real (unpadded) output elements: out_rows * out_cols *
    /// groups * N.
    pub effective_macs: u64,
}

impl CycleStats {
    /// Effective MACs per multiplier per measured cycle: `effective / (rows * cols * N * cycles)`.
    pub fn utilization(&self, cfg: &StceConfig) -> f64 {
        let capacity = (cfg.rows * cfg.cols * cfg.n) as f64 * self.cycles as f64;
        self.effective_macs as f64 / capacity
    }
}

/// Geometry of a job on an engine.
pub(crate) struct Tiling {
    pub(crate) out_rows: usize,
    pub(crate) out_cols: usize,
    pub(crate) row_tiles: usize,
    pub(crate) col_tiles: usize,
    pub(crate) groups: usize,
    /// Reduction elements per group: M in sparse mode, N in dense mode.
    pub(crate) step: usize,
    pub(crate) sparse: bool,
}

impl Tiling {
    pub(crate) fn tiles(&self) -> usize {
        self.row_tiles * self.col_tiles
    }
}

/// Cycles the driver keeps simulating after the last group, waiting for the last result row.
/// The protocol promises it `latency + rows - 1` cycles after that group; the margin lets a
/// slower engine show up as a measured figure above the estimate rather than as missing rows.
fn drain_cycles(cfg: &StceConfig) -> u64 {
    2 * (stce::latency(cfg) + u64::from(cfg.rows)) + 16
}

/// A job compiled into a cycle-by-cycle input stream, captured every cycle from its first.
pub struct Schedule {
    pub stimulus: Stimulus,
    tiling: Tiling,
    /// The first cycle after reset whose group the engine takes (counted in captures).
    first_group: usize,
    /// The tiles (row tile, column tile) in the order their last groups went in: the order
    /// the engine shows their results.
    tile_order: Vec<(usize, usize)>,
    estimated_cycles: u64,
    bubbles: u64,
    effective_macs: u64,
    rows: usize,
    cols: usize,
}

pub(crate) fn pack(values: impl Iterator<Item = u32>, bits: u32, words: &mut Vec<u32>) {
    words.clear();
    let mask = if bits == 32 {
        u32::MAX
    } else {
        (1 << bits) - 1
    };
    let mut pos = 0u32;
    for v in values {
        let v = v & mask;
        let (w, off) = ((pos / 32) as usize, pos % 32);
        if words.len() <= w + 1 {
            words.resize(w + 2, 0);
        }
        words[w] |= v << off;
        if off + bits > 32 {
            words[w + 1] |= v >> (32 - off);
        }
        pos += bits;
    }
    words.truncate(pos.div_ceil(32) as usize);
}

fn port(stim: &Stimulus, name: &str) -> Result<usize, DriverError> {
    stim.port_id(name).ok_or_else(|| {
        DriverError::Unsupported(format!(
            "the design has no port `{name}`; was it generated from this config?"
        ))
    })
}

/// Checks `job` against the engine `cfg` and returns its tiling.
pub(crate) fn tiling(cfg: &StceConfig, job: &GemmJob) -> Result<Tiling, DriverError> {
    let (n, m) = (cfg.n as usize, cfg.m as usize);
    let (rows, cols) = (cfg.rows as usize, cfg.cols as usize);
    let (out_rows, k) = job.a.dim();
    let (sparse, step, out_cols) = match &job.weights {
        WeightStream::Sparse { values, indices } => {
            if !cfg.has_sparse_mode() {
                return Err(DriverError::Unsupported(format!(
                    "this engine is dense (n = {n}, m = {m}); it has no N:M mode"
                )));
            }
            if values.dim() != indices.dim() {
                return Err(DriverError::Shape(format!(
                    "sparse weights {:?} and their indices {:?} differ in shape",
                    values.dim(),
                    indices.dim()
                )));
            }
            if values.nrows() * m != k * n {
                return Err(DriverError::Shape(format!(
                    "A has K = {k}, so {n}:{m} weights need {} rows, got {}",
                    k / m * n,
                    values.nrows()
                )));
            }
            (true, m, values.ncols())
        }
        WeightStream::Dense { values } => {
            if values.nrows() != k {
                return Err(DriverError::Shape(format!(
                    "A is {out_rows} x {k} but B has {} rows",
                    values.nrows()
                )));
            }
            (false, n, values.ncols())
        }
    };
    if k == 0 || k % step != 0 {
        return Err(DriverError::Shape(format!(
            "K = {k} must be a positive multiple of {step} in {} mode; pad A and B with zeros",
            if sparse { "sparse" } else { "dense" }
        )));
    }
    if out_rows == 0 || out_cols == 0 {
        return Err(DriverError::Shape("the GEMM has no output elements".into()));
    }
    Ok(Tiling {
        out_rows,
        out_cols,
        row_tiles: out_rows.div_ceil(rows),
        col_tiles: out_cols.div_ceil(cols),
        groups: k / step,
        step,
        sparse,
    })
}

/// The engine's data inputs for one group, packed as on its ports: `act[r]` for `act_row<r>`,
/// `wgt[c]` for `wgt_col<c>`, `idx[c]` for `idx_col<c>` (filled on engines with a sparse mode).
#[derive(Clone, Debug, Default)]
pub(crate) struct GroupWords {
    pub(crate) act: Vec<Vec<u32>>,
    pub(crate) wgt: Vec<Vec<u32>>,
    pub(crate) idx: Vec<Vec<u32>>,
}

/// Packs group `g` of tile (`tr`, `tc`) of `job` into `out`. Rows and columns past the GEMM's
/// edge are zero (with indices 0..N-1).
pub(crate) fn group_words(
    cfg: &StceConfig,
    job: &GemmJob,
    tiling: &Tiling,
    (tr, tc, g): (usize, usize, usize),
    out: &mut GroupWords,
) {
    let (n, step) = (cfg.n as usize, tiling.step);
    let (rows, cols) = (cfg.rows as usize, cfg.cols as usize);
    let lanes = cfg.lanes() as usize;
    out.act.resize(rows, Vec::new());
    out.wgt.resize(cols, Vec::new());
    out.idx
        .resize(if cfg.has_sparse_mode() { cols } else { 0 }, Vec::new());
    for (r, words) in out.act.iter_mut().enumerate() {
        let row = tr * rows + r;
        // Sparse: all M lanes of the group. Dense: N reduction indices in lanes 0..N-1 (the
        // rest of a sparse engine's lanes stay zero).
        let lane = |j: usize| -> u32 {
            if row < tiling.out_rows && j < step {
                job.a[[row, g * step + j]]
            } else {
                0
            }
        };
        pack((0..lanes).map(lane), cfg.act_bits(), words);
    }
    let dense_indices: Vec<u32> = (0..n as u32).collect();
    for c in 0..cols {
        let col = tc * cols + c;
        let (vals, idx): (Vec<u32>, Vec<u32>) = match &job.weights {
            _ if col >= tiling.out_cols => (vec![0; n], dense_indices.clone()),
            WeightStream::Sparse { values, indices } => (0..n)
                .map(|i| (values[[g * n + i, col]], indices[[g * n + i, col]] as u32))
                .unzip(),
            WeightStream::Dense { values } => (
                (0..n).map(|i| values[[g * n + i, col]]).collect(),
                dense_indices.clone(),
            ),
        };
        pack(vals.into_iter(), cfg.wgt_bits(), &mut out.wgt[c]);
        if let Some(words) = out.idx.get_mut(c) {
            pack(idx.into_iter(), cfg.index_bits(), words);
        }
    }
}

/// Compiles `job` for the engine `cfg` whose simulated design is `spec`, with `gaps`.
pub fn schedule(
    cfg: &StceConfig,
    spec: &DesignSpec,
    job: &GemmJob,
    gaps: Gaps,
) -> Result<Schedule, DriverError> {
    let mut random_bubbles = gaps.start()?;
    let tiling = tiling(cfg, job)?;
    let (n, step, sparse) = (cfg.n as usize, tiling.step, tiling.sparse);
    let (rows, cols) = (cfg.rows as usize, cfg.cols as usize);
    let (out_rows, k, out_cols) = (tiling.out_rows, tiling.groups * step, tiling.out_cols);
    let mut stim = Stimulus::try_new(spec)?;
    let valid = port(&stim, ports::VALID)?;
    let first = port(&stim, ports::FIRST)?;
    let last = port(&stim, ports::LAST)?;
    let reset = port(&stim, ports::RESET)?;
    let act_ports = (0..rows as u32)
        .map(|r| port(&stim, &ports::act_row(r)))
        .collect::<Result<Vec<_>, _>>()?;
    let wgt_ports = (0..cols as u32)
        .map(|c| port(&stim, &ports::wgt_col(c)))
        .collect::<Result<Vec<_>, _>>()?;
    let idx_ports = if cfg.has_sparse_mode() {
        (0..cols as u32)
            .map(|c| port(&stim, &ports::idx_col(c)).map(Some))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        vec![None; cols]
    };
    let estimated_cycles = stce::estimated_cycles(cfg, out_rows, k, out_cols, sparse);

    stim.reserve((stce::RESET_CYCLES + estimated_cycles + drain_cycles(cfg)) as usize);
    stim.set_id(reset, &[1]);
    for _ in 0..stce::RESET_CYCLES {
        stim.step(false);
    }
    stim.set_id(reset, &[0]);

    // Every cycle from here on is captured: the results are found by `out_valid`.
    // Cycle t is slot t mod `slots`'s turn (`stce::slots`); a free slot takes the next tile of
    // the grid (row-major) on its turn. With one slot this streams the tiles one after another.
    let spacing = stce::tile_spacing(cfg) as usize;
    let slots = stce::slots(cfg) as usize;
    let grid: Vec<(usize, usize)> = (0..tiling.row_tiles)
        .flat_map(|tr| (0..tiling.col_tiles).map(move |tc| (tr, tc)))
        .collect();
    let mut dealt = 0;
    // Per slot: the tile it works on and its next group.
    let mut busy: Vec<Option<(usize, usize)>> = vec![None; slots];
    let mut tile_order = Vec::with_capacity(grid.len());
    let mut cycle = 0usize;
    let mut first_group = None;
    let mut previous_last: Option<usize> = None;
    let mut bubbles = 0u64;
    // Random bubbles still owed before the next group (drawn before every group but the first).
    let mut owed: Option<u64> = None;
    let bubble = |stim: &mut Stimulus, cycle: &mut usize, bubbles: &mut u64| {
        // The other inputs keep the previous group, with both flags set: a bubble must
        // ignore them all.
        stim.set_id(valid, &[0]);
        stim.set_id(first, &[1]);
        stim.set_id(last, &[1]);
        stim.step(true);
        *cycle += 1;
        *bubbles += 1;
    };
    let mut group = GroupWords::default();
    loop {
        let slot = cycle % slots;
        if busy[slot].is_none() && dealt < grid.len() {
            busy[slot] = Some((dealt, 0));
            dealt += 1;
        }
        let Some((tile, g)) = busy[slot] else {
            if dealt == grid.len() && busy.iter().all(Option::is_none) {
                break;
            }
            // A slot with no tile left to take.
            bubble(&mut stim, &mut cycle, &mut bubbles);
            continue;
        };
        if first_group.is_some() {
            let n = owed.get_or_insert_with(|| random_bubbles.before_beat());
            if *n > 0 {
                *n -= 1;
                bubble(&mut stim, &mut cycle, &mut bubbles);
                continue;
            }
        }
        let is_last = g + 1 == tiling.groups;
        if is_last && previous_last.is_some_and(|p| cycle - p < spacing) {
            bubble(&mut stim, &mut cycle, &mut bubbles);
            continue;
        }
        owed = None;
        stim.set_id(valid, &[1]);
        stim.set_id(first, &[(g == 0) as u32]);
        stim.set_id(last, &[is_last as u32]);
        let (tr, tc) = grid[tile];
        group_words(cfg, job, &tiling, (tr, tc, g), &mut group);
        for (&p, w) in act_ports.iter().zip(&group.act) {
            stim.set_id(p, w);
        }
        for (&p, w) in wgt_ports.iter().zip(&group.wgt) {
            stim.set_id(p, w);
        }
        for (p, w) in idx_ports.iter().zip(&group.idx) {
            if let Some(p) = *p {
                stim.set_id(p, w);
            }
        }
        first_group.get_or_insert(cycle);
        if is_last {
            previous_last = Some(cycle);
            tile_order.push((tr, tc));
            busy[slot] = None;
        } else {
            busy[slot] = Some((tile, g + 1));
        }
        stim.step(true);
        cycle += 1;
    }
    stim.set_id(valid, &[0]);
    idle_captured(&mut stim, drain_cycles(cfg));

    Ok(Schedule {
        stimulus: stim,
        first_group: first_group.unwrap_or(0),
        tile_order,
        estimated_cycles,
        bubbles,
        effective_macs: (out_rows * out_cols * tiling.groups * n) as u64,
        tiling,
        rows,
        cols,
    })
}

/// The engine's answer to one GEMM.
#[derive(Clone, Debug)]
pub struct GemmRun {
    /// C, out_rows x out_cols, as raw accumulator bits.
    pub c: Array2<u32>,
    /// The cycle (counted from the first group) at which the engine showed each element of C.
    pub read_cycle: Array2<u64>,
    pub stats: CycleStats,
}

impl Schedule {
    /// Reassembles C from the rows the engine showed with `out_valid`: the i-th row shown is
    /// row i mod rows of the (i / rows)-th tile whose last group went in (row-major over the
    /// tile grid with one slot; with several, the slots' tiles interleave).
    pub fn extract(&self, trace: &Trace) -> Result<GemmRun, DriverError> {
        let out_port = |name: &str| {
            trace.port_id(name).ok_or_else(|| {
                DriverError::Unsupported(format!("the design has no output `{name}`"))
            })
        };
        let res_ports = (0..self.cols as u32)
            .map(|c| out_port(&ports::res_col(c)))
            .collect::<Result<Vec<_>, _>>()?;
        let (out_row, out_last) = (out_port(ports::OUT_ROW)?, out_port(ports::OUT_LAST)?);
        let t = &self.tiling;
        let shown = shown(trace, ports::OUT_VALID)?;
        expect_shown(&shown, t.tiles() * self.rows, "result rows", trace.len())?;
        let mut out = Array2::zeros((t.out_rows, t.out_cols));
        let mut read_cycle = Array2::zeros((t.out_rows, t.out_cols));
        for (i, &capture) in shown.iter().enumerate() {
            let (tile, r) = (i / self.rows, i % self.rows);
            let (row_seen, last_seen) = (
                trace.get_id(capture, out_row)[0] as usize,
                trace.get_id(capture, out_last)[0] == 1,
            );
            if row_seen != r || last_seen != (r + 1 == self.rows) {
                return Err(DriverError::Unsupported(format!(
                    "at cycle {capture} the engine showed row {row_seen} (out_last = \
                     {last_seen}) where row {r} of tile {tile} was due"
                )));
            }
            let (tr, tc) = self.tile_order[tile];
            let row = tr * self.rows + r;
            if row >= t.out_rows {
                continue;
            }
            for (c, &port) in res_ports.iter().enumerate() {
                let col = tc * self.cols + c;
                if col < t.out_cols {
                    out[[row, col]] = trace.get_id(capture, port)[0];
                    read_cycle[[row, col]] = (capture - self.first_group) as u64;
                }
            }
        }
        let last_shown = shown.last().copied().unwrap_or(self.first_group);
        Ok(GemmRun {
            c: out,
            read_cycle,
            stats: CycleStats {
                cycles: (last_shown - self.first_group + 1) as u64,
                estimated_cycles: self.estimated_cycles,
                tiles: t.tiles() as u64,
                groups_per_tile: t.groups as u64,
                bubbles: self.bubbles,
                effective_macs: self.effective_macs,
            },
        })
    }
}

/// Schedules `job` with no bubbles but those the engine needs, runs it on `sim` from reset, and
/// returns C with its cycle accounting.
pub fn run(
    sim: &mut dyn Simulator,
    cfg: &StceConfig,
    spec: &DesignSpec,
    job: &GemmJob,
) -> Result<GemmRun, DriverError> {
    run_with_gaps(sim, cfg, spec, job, Gaps::NONE)
}

/// [`run`] with random bubbles in the input stream.
pub fn run_with_gaps(
    sim: &mut dyn Simulator,
    cfg: &StceConfig,
    spec: &DesignSpec,
    job: &GemmJob,
    gaps: Gaps,
) -> Result<GemmRun, DriverError> {
    let schedule = schedule(cfg, spec, job, gaps)?;
    let trace = sim.run(&schedule.stimulus)?;
    schedule.extract(&trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_crosses_word_boundaries() {
        let mut w = Vec::new();
        pack([0x7u32, 0x0, 0x5, 0x1].into_iter(), 12, &mut w);
        assert_eq!(w, vec![0x0500_0007, 0x10]);
        pack((0..5).map(|_| 0xff), 8, &mut w);
        assert_eq!(w, vec![0xffff_ffff, 0xff]);
        pack([0xabcu32].into_iter(), 4, &mut w);
        assert_eq!(w, vec![0xc]);
    }
}
