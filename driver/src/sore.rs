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
use coforge_sim::{DesignSpec, Simulator, Stimulus, Trace};
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
fn field(words: &[u32], lo: u32, width: u32) -> u32 {
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
    p.validate().map_err(DriverError::Unsupported)?;
    let mut random_bubbles = gaps.start()?;
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
    // Element j of group k, and where kept entry t of group k goes in the compressed tensor.
    let dense_at = |k: usize, j: usize| {
        let (line, g) = (k / per_line, k % per_line);
        if ax == 0 {
            (g * m + j, line)
        } else {
            (line, g * m + j)
        }
    };
    let packed_at = |k: usize, t: usize| {
        let (line, g) = (k / per_line, k % per_line);
        if ax == 0 {
            (g * n + t, line)
        } else {
            (line, g * n + t)
        }
    };
    let packed_dim = if ax == 0 {
        (rows / m * n, cols)
    } else {
        (rows, cols / m * n)
    };
    let mut out = Pruned {
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
    if groups == 0 {
        return Ok(out);
    }

    let rounds = groups.div_ceil(lanes);
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
    for r in 0..rounds {
        for j in 0..m {
            if r + j > 0 {
                let idle = random_bubbles.before_beat();
                stim.set_id(valid, &[0]);
                idle_captured(&mut stim, idle);
                out.stats.bubbles += idle;
            }
            stim.set_id(valid, &[1]);
            for (l, &vp) in value_ports.iter().enumerate() {
                let k = r * lanes + l;
                let v = if k < groups {
                    w_bits[dense_at(k, j)]
                } else {
                    0
                };
                stim.set_id(vp, &[v]);
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
    extract(p, &trace, rounds, groups, &mut out, dense_at, packed_at)?;
    Ok(out)
}

fn extract(
    p: &SoreParams,
    trace: &Trace,
    rounds: usize,
    groups: usize,
    out: &mut Pruned,
    dense_at: impl Fn(usize, usize) -> (usize, usize),
    packed_at: impl Fn(usize, usize) -> (usize, usize),
) -> Result<(), DriverError> {
    let shown = shown(trace, ports::OUT_VALID)?;
    expect_shown(&shown, rounds, "rounds of selections", trace.len())?;
    out.stats.cycles = shown.last().map_or(0, |&last| last as u64 + 1);
    let out_port = |name: &str| {
        trace
            .port_id(name)
            .ok_or_else(|| DriverError::Unsupported(format!("the design has no output `{name}`")))
    };
    let lanes = p.lanes as usize;
    let (w, ib) = (p.value_bits, p.index_bits());
    let lane_ports = (0..p.lanes)
        .map(|l| Ok((out_port(&ports::values(l))?, out_port(&ports::indices(l))?)))
        .collect::<Result<Vec<_>, DriverError>>()?;
    for (r, &capture) in shown.iter().enumerate() {
        for (l, &(vp, ip)) in lane_ports.iter().enumerate() {
            let k = r * lanes + l;
            if k >= groups {
                break;
            }
            let (vals, idxs) = (trace.get_id(capture, vp), trace.get_id(capture, ip));
            for t in 0..p.n {
                let idx = field(idxs, t * ib, ib);
                if idx >= p.m {
                    return Err(DriverError::Unsupported(format!(
                        "lane {l} returned index {idx} >= M = {} for group {k}",
                        p.m
                    )));
                }
                let at = packed_at(k, t as usize);
                out.values[at] = field(vals, t * w, w);
                out.indices[at] = idx as u8;
                out.mask[dense_at(k, idx as usize)] = 1;
            }
        }
    }
    Ok(())
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
