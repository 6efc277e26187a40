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
//!   instruction's timing). It signals its tokens when it completes, at the end of that time.
//! - A token's k-th wait is granted by its k-th signal (one signalling engine per token, which
//!   is how [`crate::tokens`] assigns them).
//! - Not modelled: the fixed dispatch priority when two engines could start in the same cycle
//!   (at most one cycle each time), and a memory that stalls (the model's memory answers after
//!   `mem_latency` at `mem_bytes_per_cycle`, as `estimated_cycles` assumes).

use coforge_generator::engines::sat::{
    estimated_cycles, DISPATCH_CYCLES, FETCH_CYCLES, FIFO_DEPTH,
};

use crate::hardware::Hardware;
use crate::isa::{Engine, Instr};

/// Cycles an instruction keeps its engine busy (from its start to its completion).
pub fn cost(instr: &Instr, hw: &Hardware) -> u64 {
    estimated_cycles(instr, &hw.geometry(), &hw.system)
}

/// Estimated start and end cycle of one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub start: u64,
    pub end: u64,
}

pub fn engine_index(e: Engine) -> usize {
    Engine::ALL.iter().position(|&x| x == e).unwrap_or(0)
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
    for (i, instr) in program.iter().enumerate() {
        let Some(engine) = instr.engine() else {
            // END: done once every engine is idle.
            let end = idle_at.iter().copied().max().unwrap_or(0).max(fetched);
            timings.push(Timing { start: end, end });
            continue;
        };
        let e = engine_index(engine);
        let queue = &mut dispatches[e];
        // The FIFO has room once the entry `depth` places ahead has been dispatched.
        let room_at = if queue.len() >= depth {
            queue[queue.len() - depth]
        } else {
            0
        };
        fetched = (fetched + FETCH_CYCLES).max(room_at);
        let mut dispatch = fetched.max(idle_at[e]);
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
        let start = dispatch + DISPATCH_CYCLES;
        let end = start + cost(instr, hw);
        idle_at[e] = end;
        queue.push_back(dispatch);
        if queue.len() > depth {
            queue.pop_front();
        }
        for t in (0..16).filter(|t| signal >> t & 1 == 1) {
            signals[t].push(end);
        }
        timings.push(Timing { start, end });
    }
    Ok(timings)
}

/// Earliest start of every op when only its dependency edges and its engine's order hold it
/// back (unbounded FIFOs): the order in which the program is then written.
pub(crate) fn asap(ops: &[crate::build::Op], hw: &Hardware) -> Vec<Timing> {
    let mut idle_at = [0u64; 4];
    let mut out: Vec<Timing> = Vec::with_capacity(ops.len());
    for op in ops {
        let e = engine_index(op.instr.engine().unwrap_or(Engine::Dma));
        let mut start = idle_at[e];
        for &d in &op.deps {
            start = start.max(out[d as usize].end);
        }
        let end = start + cost(&op.instr, hw).max(1);
        idle_at[e] = end;
        out.push(Timing { start, end });
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
