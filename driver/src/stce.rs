//! A GEMM `C = A · B` on the sparse tensor engine.
//!
//! The job is tiled into `rows x cols` output tiles (partial tiles are padded with zeros), each
//! tile streams its reduction groups back to back, and results are read one row per cycle while
//! the next tile computes (see the protocol in `coforge_generator::engines::stce`). Operands and
//! results travel as raw bit patterns, so the same code drives int8 and fp16 engines.

use crate::DriverError;
use coforge_generator::config::StceConfig;
use coforge_generator::engines::stce::ports;
use coforge_sim::{DesignSpec, Simulator, Stimulus, Trace};
use ndarray::Array2;

/// Reset cycles before the first group (not counted in the job's cycles).
pub const RESET_CYCLES: u64 = 2;

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
    /// From the first group driven to the last result row read, inclusive.
    pub cycles: u64,
    pub tiles: u64,
    /// Reduction groups per tile: K/M in sparse mode, K/N in dense mode.
    pub groups_per_tile: u64,
    /// Idle input cycles inserted because a tile was shorter than the read-out.
    pub bubbles: u64,
    /// Multiplier slots that worked on real (unpadded) output elements: out_rows * out_cols *
    /// groups * N.
    pub effective_macs: u64,
}

impl CycleStats {
    /// Effective MACs per multiplier per cycle: `effective / (rows * cols * N * cycles)`.
    pub fn utilization(&self, cfg: &StceConfig) -> f64 {
        let capacity = (cfg.rows * cfg.cols * cfg.n) as f64 * self.cycles as f64;
        self.effective_macs as f64 / capacity
    }
}

/// Geometry of a job on an engine.
struct Tiling {
    out_rows: usize,
    out_cols: usize,
    row_tiles: usize,
    col_tiles: usize,
    groups: usize,
    /// Cycles between the last groups of consecutive tiles: at least the tile length, and at
    /// least max(rows, cols) so that each tile's results are read before they are replaced.
    spacing: usize,
}

impl Tiling {
    fn new(cfg: &StceConfig, out_rows: usize, out_cols: usize, groups: usize) -> Tiling {
        let (r, c) = (cfg.rows as usize, cfg.cols as usize);
        Tiling {
            out_rows,
            out_cols,
            row_tiles: out_rows.div_ceil(r),
            col_tiles: out_cols.div_ceil(c),
            groups,
            spacing: groups.max(r).max(c),
        }
    }
    fn tiles(&self) -> usize {
        self.row_tiles * self.col_tiles
    }
    /// The cycle model: the last tile's last group, then `cols` cycles until its first row is
    /// complete, then one row per cycle.
    fn cycles(&self, cfg: &StceConfig) -> u64 {
        ((self.tiles() - 1) * self.spacing + self.groups + (cfg.cols + cfg.rows) as usize - 1)
            as u64
    }
}

/// Predicted cycles of an `out_rows x k x out_cols` GEMM, without simulating. `sparse` selects
/// the N:M mode (K rounded up to a multiple of M) or the dense mode (of N).
pub fn estimate_cycles(
    cfg: &StceConfig,
    out_rows: usize,
    k: usize,
    out_cols: usize,
    sparse: bool,
) -> u64 {
    let step = if sparse { cfg.m } else { cfg.n } as usize;
    Tiling::new(cfg, out_rows, out_cols, k.div_ceil(step)).cycles(cfg)
}

/// A job compiled into a cycle-by-cycle input stream plus the map from captures to results.
pub struct Schedule {
    pub stimulus: Stimulus,
    pub stats: CycleStats,
    tiling: Tiling,
    /// For every capture, in order: (tile row, tile col, array row, cycle of the read).
    reads: Vec<(usize, usize, usize, u64)>,
    res_ports: Vec<String>,
    rows: usize,
    cols: usize,
}

fn pack(values: impl Iterator<Item = u32>, bits: u32, words: &mut Vec<u32>) {
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

/// Compiles `job` for the engine `cfg` whose simulated design is `spec`.
pub fn schedule(
    cfg: &StceConfig,
    spec: &DesignSpec,
    job: &GemmJob,
) -> Result<Schedule, DriverError> {
    let (n, m) = (cfg.n as usize, cfg.m as usize);
    let (rows, cols) = (cfg.rows as usize, cfg.cols as usize);
    let lanes = cfg.lanes() as usize;
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
    let tiling = Tiling::new(cfg, out_rows, out_cols, k / step);
    let total = tiling.cycles(cfg);

    let mut stim = Stimulus::try_new(spec)?;
    let valid = port(&stim, ports::VALID)?;
    let first = port(&stim, ports::FIRST)?;
    let last = port(&stim, ports::LAST)?;
    let rd_row = port(&stim, ports::READ_ROW)?;
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
    let res_ports = (0..cols as u32).map(ports::res_col).collect();

    stim.reserve((RESET_CYCLES + total) as usize);
    stim.set_id(reset, &[1]);
    for _ in 0..RESET_CYCLES {
        stim.step(false);
    }
    stim.set_id(reset, &[0]);

    let mut reads_at = vec![None; total as usize];
    let mut reads = Vec::new();
    let mut words = Vec::new();
    let mut cycle = 0usize;
    let mut bubbles = 0u64;
    let dense_indices: Vec<u32> = (0..n as u32).collect();
    for tr in 0..tiling.row_tiles {
        for tc in 0..tiling.col_tiles {
            for g in 0..tiling.groups {
                stim.set_id(valid, &[1]);
                stim.set_id(first, &[(g == 0) as u32]);
                stim.set_id(last, &[(g + 1 == tiling.groups) as u32]);
                for (r, &p) in act_ports.iter().enumerate() {
                    let row = tr * rows + r;
                    // Sparse: all M lanes of the group. Dense: N reduction indices in lanes
                    // 0..N-1 (the rest of a sparse engine's lanes stay zero).
                    let lane = |j: usize| -> u32 {
                        if row < out_rows && j < step {
                            job.a[[row, g * step + j]]
                        } else {
                            0
                        }
                    };
                    pack((0..lanes).map(lane), cfg.act_bits(), &mut words);
                    stim.set_id(p, &words);
                }
                for c in 0..cols {
                    let col = tc * cols + c;
                    let (vals, idx): (Vec<u32>, Vec<u32>) = match &job.weights {
                        _ if col >= out_cols => (vec![0; n], dense_indices.clone()),
                        WeightStream::Sparse { values, indices } => (0..n)
                            .map(|i| (values[[g * n + i, col]], indices[[g * n + i, col]] as u32))
                            .unzip(),
                        WeightStream::Dense { values } => (
                            (0..n).map(|i| values[[g * n + i, col]]).collect(),
                            dense_indices.clone(),
                        ),
                    };
                    pack(vals.into_iter(), cfg.wgt_bits(), &mut words);
                    stim.set_id(wgt_ports[c], &words);
                    if let Some(p) = idx_ports[c] {
                        pack(idx.into_iter(), cfg.index_bits(), &mut words);
                        stim.set_id(p, &words);
                    }
                }
                let cap = reads_at[cycle].take();
                if let Some(r) = cap {
                    stim.set_id(rd_row, &[r as u32]);
                }
                stim.step(cap.is_some());
                cycle += 1;
            }
            // Book the read-out of this tile: row r at (last group's cycle) + cols + r.
            let last_cycle = cycle - 1;
            for r in 0..rows {
                let at = last_cycle + cols + r;
                reads_at[at] = Some(r);
                reads.push((tr, tc, r, at as u64));
            }
            let is_final = tr + 1 == tiling.row_tiles && tc + 1 == tiling.col_tiles;
            if !is_final {
                for _ in tiling.groups..tiling.spacing {
                    stim.set_id(valid, &[0]);
                    let cap = reads_at[cycle].take();
                    if let Some(r) = cap {
                        stim.set_id(rd_row, &[r as u32]);
                    }
                    stim.step(cap.is_some());
                    cycle += 1;
                    bubbles += 1;
                }
            }
        }
    }
    stim.set_id(valid, &[0]);
    while cycle < total as usize {
        let cap = reads_at[cycle].take();
        if let Some(r) = cap {
            stim.set_id(rd_row, &[r as u32]);
        }
        stim.step(cap.is_some());
        cycle += 1;
    }
    debug_assert!(reads_at.iter().all(Option::is_none));
    debug_assert_eq!(stim.captures(), reads.len());

    let stats = CycleStats {
        cycles: total,
        tiles: tiling.tiles() as u64,
        groups_per_tile: tiling.groups as u64,
        bubbles,
        effective_macs: (out_rows * out_cols * tiling.groups * n) as u64,
    };
    Ok(Schedule {
        stimulus: stim,
        stats,
        tiling,
        reads,
        res_ports,
        rows,
        cols,
    })
}

/// The engine's answer to one GEMM.
#[derive(Clone, Debug)]
pub struct GemmRun {
    /// C, out_rows x out_cols, as raw accumulator bits.
    pub c: Array2<u32>,
    /// The cycle (counted from the first group) at which each element of C was read out.
    pub read_cycle: Array2<u64>,
    pub stats: CycleStats,
}

impl Schedule {
    /// Reassembles C from the captured read-outs.
    pub fn extract(&self, trace: &Trace) -> Result<GemmRun, DriverError> {
        if trace.len() != self.reads.len() {
            return Err(DriverError::Shape(format!(
                "the simulator returned {} captures, the schedule expects {}",
                trace.len(),
                self.reads.len()
            )));
        }
        let res_ports = self
            .res_ports
            .iter()
            .map(|name| {
                trace.port_id(name).ok_or_else(|| {
                    DriverError::Unsupported(format!("the design has no output `{name}`"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let t = &self.tiling;
        let mut out = Array2::zeros((t.out_rows, t.out_cols));
        let mut read_cycle = Array2::zeros((t.out_rows, t.out_cols));
        for (capture, &(tr, tc, r, at)) in self.reads.iter().enumerate() {
            let row = tr * self.rows + r;
            if row >= t.out_rows {
                continue;
            }
            for (c, &port) in res_ports.iter().enumerate() {
                let col = tc * self.cols + c;
                if col < t.out_cols {
                    out[[row, col]] = trace.get_id(capture, port)[0];
                    read_cycle[[row, col]] = at;
                }
            }
        }
        Ok(GemmRun {
            c: out,
            read_cycle,
            stats: self.stats,
        })
    }
}

/// Schedules `job`, runs it on `sim` from reset, and returns C with its cycle accounting.
pub fn run(
    sim: &mut dyn Simulator,
    cfg: &StceConfig,
    spec: &DesignSpec,
    job: &GemmJob,
) -> Result<GemmRun, DriverError> {
    let schedule = schedule(cfg, spec, job)?;
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
