//! The cost model: how long each instruction keeps its engine busy and when it completes, and a
//! list-scheduling simulation of a program under the controller's rules. Every figure here is
//! an estimate (`*_estimated`), never a measurement.
//!
//! # The controller, as modelled (`engines::sat`, section "Controller")
//! - Fetch: one instruction every `FETCH_CYCLES` cycles in program order into the FIFO of its
//!   engine (`FIFO_DEPTH` entries); fetch stalls while that FIFO is full. An entry leaves the
//!   FIFO when its instruction is dispatched.
//! - Dispatch: the head of an engine's FIFO is dispatched once the engine is idle and every
//!   token in `wait` is above zero; it starts `DISPATCH_CYCLES` later and keeps the engine busy
//!   for `engines::sat::estimated_cycles`, the system's own formula (the one description of an
//!   instruction's timing). It signals its tokens when it completes,
//!   `engines::sat::completion_cycles` after that time (a GEMM with `last` completes when the
//!   array has written its tile out, while the STCE already feeds the next GEMM).
//! - Tile spacing: a GEMM with `last` feeds its last group no earlier than `tile_spacing` cycles
//!   after the previous such GEMM's (`engines::stce::tile_spacing`); the wait is busy time.
//! - The DMA's queued LOAD: a LOAD right behind a LOAD, or behind a STORE whose DRAM beats it
//!   does not read, may be dispatched while that instruction runs (from its second cycle: the
//!   cycle after a LOAD's read request is accepted, which the model takes as its first cycle,
//!   until the cycle before it finishes). Its request then overlaps the burst or the STORE's
//!   beats, and its own burst follows at the memory's rate: its last beat is
//!   `max(start + mem_latency, previous last beat + beat_cycles) + (beats - 1) * beat_cycles`.
//! - A token's k-th wait is granted by its k-th signal (one signalling engine per token, which
//!   is how [`crate::tokens`] assigns them).
//! - Not modelled: the fixed dispatch priority when two engines that wait on a common token
//!   could start in the same cycle (at most one cycle each time; engines with disjoint `wait`
//!   masks start together), and a memory that stalls (the model's memory answers after
//!   `mem_latency` at `mem_bytes_per_cycle`, as `estimated_cycles` assumes).

use coforge_generator::engines::sat::{
    beat_cycles, completion_cycles, estimated_cycles, tile_spacing, DISPATCH_CYCLES, FETCH_CYCLES,
    FIFO_DEPTH, TOKEN_BITS,
};

use crate::hardware::Hardware;
use crate::isa::{Engine, Instr};

/// Cycles an instruction keeps its engine busy (from its start to its completion).
pub fn cost(instr: &Instr, hw: &Hardware) -> u64 {
    estimated_cycles(instr, &hw.geometry(), &hw.system)
}

/// Estimated start and end cycle of one instruction's busy time, and the cycle from which its
/// completion is seen (its tokens are signalled; `done >= end`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub start: u64,
    pub end: u64,
    pub done: u64,
}

/// The STCE's tile-spacing rule: the cycle a GEMM with `last` that starts at `start` feeds
/// its last group, given the previous such feed.
fn last_feed(groups: u64, start: u64, previous: Option<u64>, spacing: u64) -> u64 {
    let earliest = start + groups.max(1) - 1;
    previous.map_or(earliest, |p| earliest.max(p + spacing))
}

pub fn engine_index(e: Engine) -> usize {
    Engine::ALL.iter().position(|&x| x == e).unwrap_or(0)
}

/// The DMA's last instruction, which a LOAD may be queued behind.
#[derive(Clone, Copy)]
struct DmaRun {
    start: u64,
    end: u64,
    /// The first cycle it is the DMA's current instruction (later than `start` when queued).
    current: u64,
    /// The DRAM beats `[lo, hi)` it writes, when it is a STORE.
    written: Option<(u64, u64)>,
}

/// Simulates `program` under the controller's rules. Fails when a wait would never be granted
/// by an earlier instruction (the program would hang or depend on a later one), naming it.
pub fn simulate(program: &[Instr], hw: &Hardware) -> Result<Vec<Timing>, String> {
    let depth = FIFO_DEPTH as usize;
    let mut timings = Vec::with_capacity(program.len());
    let mut fetched = 0u64;
    let mut idle_at = [0u64; 4];
    let mut dispatches: [std::collections::VecDeque<u64>; 4] = Default::default();
    let mut signals: Vec<Vec<u64>> = vec![Vec::new(); 16];
    let mut taken = [0usize; 16];
    let mut grants: Vec<Vec<u64>> = vec![Vec::new(); 16];
    let mut last_dma: Option<DmaRun> = None;
    let geometry = hw.geometry();
    let spacing = tile_spacing(&geometry);
    let mut tile_fed: Option<u64> = None;
    let mut all_done = 0u64;
    for (i, instr) in program.iter().enumerate() {
        let Some(engine) = instr.engine() else {
            // END: done once every engine is idle.
            let end = idle_at
                .iter()
                .copied()
                .max()
                .unwrap_or(0)
                .max(fetched)
                .max(all_done);
            timings.push(Timing {
                start: end,
                end,
                done: end,
            });
            continue;
        };
        let e = engine_index(engine);
        let queue = &mut dispatches[e];
        // The FIFO has room once the entry `depth` places ahead has been dispatched: fetch,
        // waiting in its push phase, sees the lower count the cycle after that dispatch and
        // pushes then, and the entry can be dispatched the cycle after the push.
        let room_at = if queue.len() >= depth {
            queue[queue.len() - depth] + 2
        } else {
            0
        };
        fetched = (fetched + FETCH_CYCLES).max(room_at);
        let mut dispatch = fetched;
        let (wait, signal) = instr.tokens();
        for t in (0..16).filter(|t| wait >> t & 1 == 1) {
            let k = taken[t];
            let Some(&at) = signals[t].get(k) else {
                return Err(format!(
                    "instruction {i} ({}) waits for token {t} a {} time, but only {} earlier \
                     instructions signal it: it would wait forever",
                    engine.name(),
                    ordinal(k + 1),
                    signals[t].len()
                ));
            };
            taken[t] += 1;
            dispatch = dispatch.max(at);
        }
        let queued = match (instr, last_dma) {
            (
                Instr::Load {
                    buf,
                    lines,
                    dram_addr,
                    ..
                },
                Some(DmaRun {
                    start: p_start,
                    end: p_end,
                    current: p_current,
                    written,
                }),
            ) if engine == Engine::Dma
                && hw.system.read_requests > 1
                && dispatch.max(p_start + 1).max(p_current) + 1 < p_end
                && written.is_none_or(|(lo, hi)| {
                    let from = u64::from(*dram_addr);
                    from + u64::from(*lines) * hw.beats_per_line(*buf) <= lo || hi <= from
                }) =>
            {
                let at = dispatch.max(p_start + 1).max(p_current);
                let start = at + DISPATCH_CYCLES;
                let bc = beat_cycles(&hw.system);
                let beats = u64::from(*lines) * hw.beats_per_line(*buf);
                let first = (start + u64::from(hw.system.mem_latency)).max(p_end - 1 + bc);
                Some((at, start, first + beats.saturating_sub(1) * bc + 1, p_end))
            }
            _ => None,
        };
        let (start, end) = match queued {
            Some((at, start, end, current)) => {
                dispatch = at;
                last_dma = Some(DmaRun {
                    start,
                    end,
                    current,
                    written: None,
                });
                (start, end)
            }
            None => {
                dispatch = dispatch.max(idle_at[e]);
                let start = dispatch + DISPATCH_CYCLES;
                let end = match *instr {
                    Instr::Gemm {
                        groups, last: true, ..
                    } => {
                        let fed = last_feed(u64::from(groups), start, tile_fed, spacing);
                        tile_fed = Some(fed);
                        fed + 1
                    }
                    _ => start + cost(instr, hw),
                };
                if engine == Engine::Dma {
                    let written = match *instr {
                        Instr::Store {
                            buf,
                            lines,
                            dram_addr,
                            ..
                        } => {
                            let from = u64::from(dram_addr);
                            Some((from, from + u64::from(lines) * hw.beats_per_line(buf)))
                        }
                        _ => None,
                    };
                    last_dma = Some(DmaRun {
                        start,
                        end,
                        current: start,
                        written,
                    });
                }
                (start, end)
            }
        };
        for t in (0..16).filter(|t| wait >> t & 1 == 1) {
            grants[t].push(dispatch);
        }
        idle_at[e] = end;
        queue.push_back(dispatch);
        if queue.len() > depth {
            queue.pop_front();
        }
        let done = end + completion_cycles(instr, &geometry);
        all_done = all_done.max(done);
        for t in (0..16).filter(|t| signal >> t & 1 == 1) {
            signals[t].push(done);
        }
        timings.push(Timing { start, end, done });
    }
    check_token_counts(&signals, &grants)?;
    Ok(timings)
}

/// The tokens are `TOKEN_BITS`-bit counters: fails when the estimated run would have more
/// signals outstanding on one token (given, not yet taken) than a counter holds.
fn check_token_counts(signals: &[Vec<u64>], grants: &[Vec<u64>]) -> Result<(), String> {
    let limit = (1usize << TOKEN_BITS) - 1;
    for (t, (given, taken)) in signals.iter().zip(grants).enumerate() {
        let (mut given, mut taken) = (given.clone(), taken.clone());
        given.sort_unstable();
        taken.sort_unstable();
        // Outstanding just after each signal: signals up to it minus grants strictly before.
        let mut g = 0;
        for (k, &at) in given.iter().enumerate() {
            while g < taken.len() && taken[g] < at {
                g += 1;
            }
            if k + 1 - g.min(k + 1) > limit {
                return Err(format!(
                    "token {t} would hold more than {limit} signals at cycle {at} (its counter \
                     has {TOKEN_BITS} bits)"
                ));
            }
        }
    }
    Ok(())
}

/// Earliest start of every op when only its dependency edges and its engine's order hold it
/// back (unbounded FIFOs): the order in which the program is then written.
pub(crate) fn asap(ops: &[crate::build::Op], hw: &Hardware) -> Vec<Timing> {
    let geometry = hw.geometry();
    let mut idle_at = [0u64; 4];
    let mut out: Vec<Timing> = Vec::with_capacity(ops.len());
    for op in ops {
        let e = engine_index(op.instr.engine().unwrap_or(Engine::Dma));
        let mut start = idle_at[e];
        for &d in &op.deps {
            start = start.max(out[d as usize].done);
        }
        let end = start + cost(&op.instr, hw).max(1);
        idle_at[e] = end;
        out.push(Timing {
            start,
            end,
            done: end + completion_cycles(&op.instr, &geometry),
        });
    }
    out
}

pub(crate) fn ordinal(k: usize) -> String {
    let suffix = match (k % 10, k % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{k}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::{Buf, GemmMode};
    use crate::tokens::token;

    fn program(loads: usize) -> Vec<Instr> {
        let t = token(Engine::Dma, Engine::Stce);
        let load = Instr::Load {
            buf: Buf::Act,
            buf_addr: 0,
            dram_addr: 0,
            lines: 1,
            wait: 0,
            signal: t,
        };
        let gemm = Instr::Gemm {
            mode: GemmMode::Dense,
            act_addr: 0,
            wgt_addr: 0,
            groups: 1,
            out_addr: 0,
            first: true,
            last: true,
            wait: t,
            signal: 0,
        };
        let mut p = vec![load; loads];
        p.extend(vec![gemm; loads]);
        p.push(Instr::End);
        p
    }

    #[test]
    fn timing_follows_fetch_tokens_and_engine_order() {
        let hw = Hardware::with_defaults(4, 4, 2, 8, |s| s.read_requests = 1);
        let t = simulate(&program(2), &hw).unwrap();
        let load = cost(&program(1)[0], &hw);
        // One read request at a time: loads run back to back on the DMA.
        assert_eq!(t[1].start, t[0].end + DISPATCH_CYCLES);
        // Two (the default): the second load is queued behind the first (dispatched one fetch
        // later, while the first awaits its data), so both pay the latency at once.
        let queued_hw = Hardware::with_defaults(4, 4, 2, 8, |_| {});
        assert_eq!(queued_hw.system.read_requests, 2);
        let q = simulate(&program(2), &queued_hw).unwrap();
        assert_eq!(q[1].start, q[0].start + FETCH_CYCLES);
        assert_eq!(q[1].end, q[0].end + FETCH_CYCLES);
        // Each GEMM starts after its load's signal.
        assert!(t[2].start > t[0].end && t[3].start >= t[2].end);
        assert_eq!(t[0].end - t[0].start, load);
        // The one-group tiles are fed the tile spacing apart, and the STCE is free long before
        // the last one is read out; END waits for the read-out.
        assert!(t[3].end - t[2].end >= 4);
        assert!(t[3].done > t[3].end && t[4].end == t[3].done);
    }

    #[test]
    fn a_load_is_queued_behind_a_store_only_when_it_reads_none_of_its_beats() {
        let hw = Hardware::with_defaults(4, 4, 2, 8, |_| {});
        let store = Instr::Store {
            buf: Buf::Out,
            buf_addr: 0,
            dram_addr: 100,
            lines: 8,
            wait: 0,
            signal: 0,
        };
        let load = |dram_addr| Instr::Load {
            buf: Buf::Act,
            buf_addr: 0,
            dram_addr,
            lines: 1,
            wait: 0,
            signal: 0,
        };
        let beats = 8 * hw.beats_per_line(Buf::Out);
        // Beats 100 .. 100 + beats are written: a LOAD of beat 99 or of the first beat after
        // them is queued (its request overlaps the STORE: it ends before a LOAD that started
        // after the STORE could); one of the last written beat waits for the STORE to end.
        for (at, queued) in [
            (99, true),
            (100 + beats as u32, true),
            (99 + beats as u32, false),
        ] {
            let t = simulate(&[store, load(at), Instr::End], &hw).unwrap();
            let alone = cost(&load(at), &hw);
            if queued {
                assert!(t[1].start < t[0].end, "beat {at}: {t:?}");
                assert!(
                    t[1].end < t[0].end + DISPATCH_CYCLES + alone,
                    "beat {at}: {t:?}"
                );
            } else {
                assert_eq!(t[1].start, t[0].end + DISPATCH_CYCLES, "beat {at}: {t:?}");
                assert_eq!(t[1].end, t[1].start + alone);
            }
        }
        // One read request outstanding: never queued.
        let one = Hardware::with_defaults(4, 4, 2, 8, |s| s.read_requests = 1);
        let t = simulate(&[store, load(0), Instr::End], &one).unwrap();
        assert_eq!(t[1].start, t[0].end + DISPATCH_CYCLES);
    }

    #[test]
    fn more_outstanding_signals_than_a_token_counter_holds_are_refused() {
        let hw = Hardware::with_defaults(4, 4, 2, 8, |_| {});
        assert!(simulate(&program(200), &hw).is_ok());
        let err = simulate(&program(300), &hw).unwrap_err();
        assert!(err.contains("more than 255"), "{err}");
    }
}
