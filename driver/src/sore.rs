//! N:M pruning of a 2-D tensor on the online pruning unit (SORE).
//!
//! The tensor is cut into groups of M along the pruned axis (axis 1: runs along a row; axis 0:
//! runs down a column), the groups are numbered lane by lane (row-major over the unpruned axis,
//! then along the pruned axis), and dealt to the P lanes round-robin: round r gives group
//! `r*P + p` to lane p. A round streams M values per lane in M cycles; rounds follow each other
//! with no bubble, and each round's selections are read in the cycle after its last value (the
//! first cycle of the next round). Lanes without a group in the last round are fed zeros and their
//! output is dropped. Values travel as raw bit patterns (fp16 bits, or int8 two's complement in
//! the low 8 bits of a `u32`).
//!
//! The result has the layout of `sparse_kernels::nm::compress` (the pruned axis shrunk by N/M,
//! kept values in increasing index order, each with its position in its group) plus the 0/1 mask
//! of `sparse_kernels::nm::mask`.

use crate::DriverError;
use coforge_generator::engines::sore::{self, ports, MagnitudeRule, SoreParams, LATENCY};
use coforge_sim::{DesignSpec, Simulator, Stimulus, Trace};
use ndarray::{Array2, ArrayView2, Axis};

/// Reset cycles before the first value (not counted in the job's cycles).
pub const RESET_CYCLES: u64 = 2;

/// Cycle accounting of one pruning job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneStats {
    /// From the first value driven to the read of the last selection, inclusive.
    pub cycles: u64,
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

/// Predicted cycles to prune `groups` groups: `ceil(groups / P)` rounds of M cycles, plus the
/// latency to the last selection. Zero groups take zero cycles.
pub fn estimate_cycles(p: &SoreParams, groups: u64) -> u64 {
    if groups == 0 {
        return 0;
    }
    groups.div_ceil(u64::from(p.lanes)) * u64::from(p.m) + LATENCY
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
            cycles: estimate_cycles(p, groups as u64),
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
    stim.reserve(RESET_CYCLES as usize + rounds * m + 1);
    stim.set_id(reset, &[1]);
    for _ in 0..RESET_CYCLES {
        stim.step(false);
    }
    stim.set_id(reset, &[0]);
    stim.set_id(valid, &[1]);
    for r in 0..rounds {
        for j in 0..m {
            for (l, &vp) in value_ports.iter().enumerate() {
                let k = r * lanes + l;
                let v = if k < groups {
                    w_bits[dense_at(k, j)]
                } else {
                    0
                };
                stim.set_id(vp, &[v]);
            }
            // The previous round's selections are shown in this round's first cycle.
            stim.step(j == 0 && r > 0);
        }
    }
    stim.set_id(valid, &[0]);
    for &vp in &value_ports {
        stim.set_id(vp, &[0]);
    }
    stim.step(true);
    debug_assert_eq!(stim.cycles(), RESET_CYCLES + out.stats.cycles);
    debug_assert_eq!(stim.captures(), rounds);

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
    if trace.len() != rounds {
        return Err(DriverError::Shape(format!(
            "the simulator returned {} captures, the schedule expects {rounds}",
            trace.len()
        )));
    }
    let out_port = |name: &str| {
        trace
            .port_id(name)
            .ok_or_else(|| DriverError::Unsupported(format!("the design has no output `{name}`")))
    };
    let out_valid = out_port(ports::OUT_VALID)?;
    let lanes = p.lanes as usize;
    let (w, ib) = (p.value_bits, p.index_bits());
    let lane_ports = (0..p.lanes)
        .map(|l| Ok((out_port(&ports::values(l))?, out_port(&ports::indices(l))?)))
        .collect::<Result<Vec<_>, DriverError>>()?;
    for r in 0..rounds {
        if trace.get_id(r, out_valid)[0] != 1 {
            return Err(DriverError::Unsupported(format!(
                "out_valid is low where round {r}'s selections were expected"
            )));
        }
        for (l, &(vp, ip)) in lane_ports.iter().enumerate() {
            let k = r * lanes + l;
            if k >= groups {
                break;
            }
            let (vals, idxs) = (trace.get_id(r, vp), trace.get_id(r, ip));
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

    #[test]
    fn cycle_model() {
        let p = SoreParams::fp16(4, 2, 8);
        assert_eq!(estimate_cycles(&p, 0), 0);
        assert_eq!(estimate_cycles(&p, 1), 9);
        assert_eq!(estimate_cycles(&p, 4), 9);
        assert_eq!(estimate_cycles(&p, 5), 17);
    }
}
