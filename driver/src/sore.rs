//! N:M pruning of a 2-D tensor on the online pruning unit (SORE).
//!
//! The tensor is cut into groups of M along the pruned axis (axis 1: runs along a row; axis 0:
//! runs down a column), the groups are numbered lane by lane (row-major over the unpruned axis,
//! then along the pruned axis), and dealt to the P lanes round-robin: round r gives group
//! `r*P + p` to lane p. A round streams M values per lane in M cycles; rounds follow each other
//! with no bubble (or with random ones, [`prune_with_gaps`]). The driver captures every cycle and
//! takes the r-th selection the unit shows with `out_valid` as round r's, so `cycles` is the span
//! the simulation observed, from the first value taken to the last selection shown;
//! `estimated_cycles` is the unit's model ([`sore::estimated_cycles`]) beside it. Lanes without a
//! group in the last round are fed zeros and their output is dropped. Values travel as raw bit patterns (fp16 bits, or int8 two's complement in
//! the low 8 bits of a `u32`).
//!
//! The result has the layout of `sparse_kernels::nm::compress` (the pruned axis shrunk by N/M,
//! kept values in increasing index order, each with its position in its group) plus the 0/1 mask
//! of `sparse_kernels::nm::mask`.

use crate::{expect_shown, idle_captured, shown, DriverError, Gaps};
use coforge_generator::engines::sore::{self, ports, MagnitudeRule, SoreParams};
use coforge_sim::{DesignSpec, Simulator, Stimulus};
use ndarray::{Array2, ArrayView2, Axis};

/// Cycle accounting of one pruning job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneStats {
    /// Measured: from the cycle the first value was taken to the cycle the unit showed the last
    /// selection (`out_valid`), both counted.
    pub cycles: u64,
    /// The unit's cycle model for the same job ([`sore::estimated_cycles`]), with no bubbles.
    pub estimated_cycles: u64,
    /// Idle input cycles (`in_valid` low) between the first value and the last.
    pub bubbles: u64,
    /// Groups of M pruned.
    pub groups: u64,
}

/// The unit's answer to one pruning job.
#[derive(Clone, Debug, PartialEq)]
pub struct Pruned {
    /// Kept values (raw bits), the pruned axis shrunk by N/M, as `nm::compress` lays them out.
    pub values: Array2<u32>,
    /// Position of each kept value within its group (`0..M`).
    pub indices: Array2<u8>,
    /// 0/1 mask of the dense tensor's shape: 1 where a value was kept.
    pub mask: Array2<u8>,
    pub stats: PruneStats,
}

/// Generates the unit for `p` with top module `top` and describes it to a simulator.
///
/// # Panics
/// If `p` fails [`SoreParams::validate`].
pub fn design_spec(p: &SoreParams, top: &str) -> Result<DesignSpec, DriverError> {
    let design = sore::generate(p, top).map_err(|e| DriverError::Input(e.to_string()))?;
    Ok(crate::design::unit_spec(&design, top, ports::CLOCK))
}

fn port(stim: &Stimulus, name: &str) -> Result<usize, DriverError> {
    stim.port_id(name).ok_or_else(|| {
        DriverError::Unsupported(format!(
            "the design has no port `{name}`; was it generated from these parameters?"
        ))
    })
}

/// Bits `[lo, lo + width)` of a little-endian word vector (width <= 32).
pub(crate) fn field(words: &[u32], lo: u32, width: u32) -> u32 {
    let (w, off) = ((lo / 32) as usize, lo % 32);
    let mut v = u64::from(words.get(w).copied().unwrap_or(0)) >> off;
    if off + width > 32 {
        v |= u64::from(words.get(w + 1).copied().unwrap_or(0)) << (32 - off);
    }
    (v & ((1u64 << width) - 1)) as u32
}

/// Prunes `w_bits` N:M along `axis` on the unit `p`, simulated by `sim` from the design `spec`
/// (see [`design_spec`]). The simulation starts with a reset.
///
/// Errors: invalid parameters, `axis` not 0/1, the axis length not a multiple of M, a value wider
/// than `value_bits`, an fp16 NaN (rejected like `sparse_kernels::nm::mask` does: the unit would
/// rank it above infinity), a design without the expected ports, or a simulator failure.
pub fn prune(
    sim: &mut dyn Simulator,
    p: &SoreParams,
    spec: &DesignSpec,
    w_bits: ArrayView2<u32>,
    axis: Axis,
) -> Result<Pruned, DriverError> {
    prune_with_gaps(sim, p, spec, w_bits, axis, Gaps::NONE)
}

/// [`prune`] with random bubbles in the input stream.
pub fn prune_with_gaps(
    sim: &mut dyn Simulator,
    p: &SoreParams,
    spec: &DesignSpec,
    w_bits: ArrayView2<u32>,
    axis: Axis,
    gaps: Gaps,
) -> Result<Pruned, DriverError> {
    let mut random_bubbles = gaps.start()?;
    let (job, mut out) = PruneJob::new(p, w_bits, axis)?;
    if job.groups == 0 {
        return Ok(out);
    }
    let mut stim = Stimulus::try_new(spec)?;
    let reset = port(&stim, ports::RESET)?;
    let valid = port(&stim, ports::VALID)?;
    let value_ports = (0..p.lanes)
        .map(|l| port(&stim, &ports::value(l)))
        .collect::<Result<Vec<_>, _>>()?;
    // The unit shows a group's selection LATENCY cycles after its last value; the margin lets
    // a slower unit show up as measured cycles above the estimate rather than as missing rounds.
    let drain = 2 * sore::LATENCY + 16;
    stim.reserve((sore::RESET_CYCLES + out.stats.estimated_cycles + drain) as usize);
    stim.set_id(reset, &[1]);
    for _ in 0..sore::RESET_CYCLES {
        stim.step(false);
    }
    stim.set_id(reset, &[0]);
    // Every cycle from the first value on is captured: selections are found by `out_valid`.
    for r in 0..job.rounds {
        for j in 0..job.m {
            if r + j > 0 {
                let idle = random_bubbles.before_beat();
                stim.set_id(valid, &[0]);
                idle_captured(&mut stim, idle);
                out.stats.bubbles += idle;
            }
            stim.set_id(valid, &[1]);
            for (l, &vp) in value_ports.iter().enumerate() {
                stim.set_id(vp, &[job.value(w_bits, r, l, j).unwrap_or(0)]);
            }
            stim.step(true);
        }
    }
    stim.set_id(valid, &[0]);
    for &vp in &value_ports {
        stim.set_id(vp, &[0]);
    }
    idle_captured(&mut stim, drain);

    let trace = sim.run(&stim)?;
    let shown = shown(&trace, ports::OUT_VALID)?;
    expect_shown(&shown, job.rounds, "rounds of selections", trace.len())?;
    out.stats.cycles = shown.last().map_or(0, |&last| last as u64 + 1);
    let out_port = |name: &str| {
        trace
            .port_id(name)
            .ok_or_else(|| DriverError::Unsupported(format!("the design has no output `{name}`")))
    };
    let lane_ports = (0..p.lanes)
        .map(|l| Ok((out_port(&ports::values(l))?, out_port(&ports::indices(l))?)))
        .collect::<Result<Vec<_>, DriverError>>()?;
    job.extract(&mut out, |r, l| {
        let (vp, ip) = lane_ports[l];
        (trace.get_id(shown[r], vp), trace.get_id(shown[r], ip))
    })?;
    Ok(out)
}

/// One pruning job, checked: how its groups are dealt to the lanes (see the module docs), so
/// that the bare unit and its AXI wrapper (`crate::axi`) are fed alike and read back alike.
pub(crate) struct PruneJob {
    p: SoreParams,
    /// The pruned axis (0 or 1) and its number of groups per line.
    ax: usize,
    per_line: usize,
    pub groups: usize,
    pub rounds: usize,
    pub m: usize,
}

impl PruneJob {
    /// Checks the job (see [`prune`] for the errors) and makes its empty answer.
    pub fn new(
        p: &SoreParams,
        w_bits: ArrayView2<u32>,
        axis: Axis,
    ) -> Result<(PruneJob, Pruned), DriverError> {
        p.validate().map_err(DriverError::Unsupported)?;
        let (n, m, lanes) = (p.n as usize, p.m as usize, p.lanes as usize);
        let ax = match axis.0 {
            0 | 1 => axis.0,
            a => {
                return Err(DriverError::Shape(format!(
                    "axis {a} does not exist: a 2-D tensor is pruned along axis 0 or 1"
                )))
            }
        };
        let (rows, cols) = w_bits.dim();
        let len = if ax == 0 { rows } else { cols };
        let across = if ax == 0 { cols } else { rows };
        if len % m != 0 {
            return Err(DriverError::Shape(format!(
                "axis {ax} has {len} entries, not a multiple of M = {m}; pad the tensor"
            )));
        }
        let limit = if p.value_bits == 32 {
            u32::MAX
        } else {
            (1u32 << p.value_bits) - 1
        };
        for ((r, c), &v) in w_bits.indexed_iter() {
            if v > limit {
                return Err(DriverError::Shape(format!(
                    "value {v:#x} at [{r}, {c}] does not fit {} bits",
                    p.value_bits
                )));
            }
            if p.magnitude == MagnitudeRule::Fp16Bits && v & 0x7fff > 0x7c00 {
                return Err(DriverError::Unsupported(format!(
                    "NaN ({v:#06x}) at [{r}, {c}]: N:M selection is defined for non-NaN values only"
                )));
            }
        }
        let per_line = len / m;
        let groups = across * per_line;
        let packed_dim = if ax == 0 {
            (rows / m * n, cols)
        } else {
            (rows, cols / m * n)
        };
        let out = Pruned {
            values: Array2::zeros(packed_dim),
            indices: Array2::zeros(packed_dim),
            mask: Array2::zeros((rows, cols)),
            stats: PruneStats {
                cycles: 0,
                estimated_cycles: sore::estimated_cycles(p, groups as u64),
                bubbles: 0,
                groups: groups as u64,
            },
        };
        let job = PruneJob {
            p: *p,
            ax,
            per_line,
            groups,
            rounds: groups.div_ceil(lanes),
            m,
        };
        Ok((job, out))
    }

    /// Where element j of group k, or kept entry j of group k (`stride` N), sits.
    fn at(&self, k: usize, j: usize, stride: usize) -> (usize, usize) {
        let (line, g) = (k / self.per_line, k % self.per_line);
        if self.ax == 0 {
            (g * stride + j, line)
        } else {
            (line, g * stride + j)
        }
    }

    /// The value lane `l` takes at position `j` of round `r`; `None` for a lane without a group
    /// in that round.
    pub fn value(&self, w_bits: ArrayView2<u32>, r: usize, l: usize, j: usize) -> Option<u32> {
        let k = r * self.p.lanes as usize + l;
        (k < self.groups).then(|| w_bits[self.at(k, j, self.m)])
    }

    /// Fills `out` from the selections: `selection(r, l)` is lane l's (values, indices) words of
    /// round r.
    pub fn extract<'a>(
        &self,
        out: &mut Pruned,
        selection: impl Fn(usize, usize) -> (&'a [u32], &'a [u32]),
    ) -> Result<(), DriverError> {
        let p = &self.p;
        let (w, ib) = (p.value_bits, p.index_bits());
        for r in 0..self.rounds {
            for l in 0..p.lanes as usize {
                let k = r * p.lanes as usize + l;
                if k >= self.groups {
                    break;
                }
                let (vals, idxs) = selection(r, l);
                for t in 0..p.n {
                    let idx = field(idxs, t * ib, ib);
                    if idx >= p.m {
                        return Err(DriverError::Unsupported(format!(
                            "lane {l} returned index {idx} >= M = {} for group {k}",
                            p.m
                        )));
                    }
                    let at = self.at(k, t as usize, p.n as usize);
                    out.values[at] = field(vals, t * w, w);
                    out.indices[at] = idx as u8;
                    out.mask[self.at(k, idx as usize, self.m)] = 1;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cross_words() {
        let words = [0xdead_beefu32, 0x0000_1234];
        assert_eq!(field(&words, 0, 16), 0xbeef);
        assert_eq!(field(&words, 16, 16), 0xdead);
        assert_eq!(field(&words, 24, 16), 0x34de);
        assert_eq!(field(&words, 32, 4), 0x4);
        assert_eq!(field(&words, 60, 4), 0);
    }
}
