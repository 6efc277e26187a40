//! The cost model: how long each instruction keeps its engine busy and when it completes, and a
//! list-scheduling simulation of a program under the controller's rules. Every figure here is
//! an estimate (`*_estimated`), never a measurement.
//!
//! # The controller, as modelled
//! - Fetch: one instruction per cycle in program order into the FIFO of its engine
//!   ([`Hardware::fifo_depth`] entries); fetch stalls while that FIFO is full. An entry leaves
//!   the FIFO when its instruction starts.
//! - An instruction starts when it is at the head of its engine's FIFO, the engine is free, and
//!   every token in `wait` is above zero (it takes one of each). It gives one of each token in
//!   `signal` when it completes. Each engine completes its instructions in order.
//! - A token's k-th wait is granted by its k-th signal (one signalling engine per token, which
//!   is how [`crate::tokens`] assigns them).

use crate::hardware::Hardware;
use crate::isa::{Engine, Instr};

/// Cycles an instruction occupies its engine (`busy`: the next instruction of the engine may
/// start after it) and takes to complete (`done`, from its start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub busy: u64,
    pub done: u64,
}

/// Cycles to move `beats` memory beats over the port: the memory's latency, then one beat per
/// `mem_bits / 8 / mem_bytes_per_cycle` cycles.
pub fn transfer_cycles(hw: &Hardware, beats: u64) -> u64 {
    let bytes = beats * (hw.mem_bits as u64 / 8);
    hw.mem_latency + bytes.div_ceil(hw.mem_bytes_per_cycle)
}

/// The cost of one instruction on `hw`.
pub fn cost(instr: &Instr, hw: &Hardware) -> Cost {
    let (rows, cols) = (hw.rows as u64, hw.cols as u64);
    let same = |c: u64| Cost { busy: c, done: c };
    match *instr {
        Instr::Load { buf, lines, .. } | Instr::Store { buf, lines, .. } => {
            same(transfer_cycles(hw, u64::from(lines) * hw.beats_per_line(buf)))
        }
        Instr::Gemm { groups, last, .. } => {
            let groups = u64::from(groups);
            // One group per cycle into the array; the next GEMM streams in right behind, unless
            // the tile is shorter than its read-out (one result row per cycle).
            let busy = groups.max(if last { rows } else { 1 });
            // The last group reaches PE(rows-1, cols-1) rows + cols - 2 cycles after it enters,
            // then rows result rows are written to `out`.
            let done = if last { groups + rows + cols } else { groups };
            Cost { busy, done }
        }
        Instr::Update { lines, .. } => same(u64::from(lines) + wuve_latency()),
        Instr::PruneF { lines, .. } => same(u64::from(lines) + sore_latency()),
        Instr::PruneB { blocks, .. } => {
            // Every block's cols lines pass through the cols x cols transposer.
            same(u64::from(blocks) * cols + cols + sore_latency())
        }
        Instr::End => same(1),
    }
}

fn wuve_latency() -> u64 {
    coforge_generator::engines::wuve::LATENCY
}

fn sore_latency() -> u64 {
    coforge_generator::engines::sore::LATENCY
}

/// Estimated start and end cycle of one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub start: u64,
    pub end: u64,
}

pub fn engine_index_pub(e: Engine) -> usize {
    engine_index(e)
}

pub(crate) fn engine_index(e: Engine) -> usize {
    Engine::ALL.iter().position(|&x| x == e).unwrap_or(0)
}

/// Simulates `program` under the controller's rules. Fails when a wait would never be granted
/// by an earlier instruction (the program would hang or depend on a later one), naming it.
pub fn simulate(program: &[Instr], hw: &Hardware) -> Result<Vec<Timing>, String> {
    let mut timings = Vec::with_capacity(program.len());
    let mut fetched = 0u64;
    let mut ready = [0u64; 4];
    let mut last_end = [0u64; 4];
    let mut starts: [std::collections::VecDeque<u64>; 4] = Default::default();
    let mut signals: Vec<Vec<u64>> = vec![Vec::new(); 16];
    let mut taken = [0usize; 16];
    for (i, instr) in program.iter().enumerate() {
        let Some(engine) = instr.engine() else {
            let end = last_end.iter().copied().max().unwrap_or(0).max(fetched) + 1;
            timings.push(Timing { start: end - 1, end });
            continue;
        };
        let e = engine_index(engine);
        let fifo = &mut starts[e];
        let room_at = if fifo.len() >= hw.fifo_depth {
            fifo[fifo.len() - hw.fifo_depth]
        } else {
            0
        };
        fetched = (fetched + 1).max(room_at);
        let mut start = (fetched + 1).max(ready[e]);
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
            start = start.max(at);
        }
        let c = cost(instr, hw);
        let end = (start + c.done).max(last_end[e]);
        ready[e] = start + c.busy;
        last_end[e] = end;
        fifo.push_back(start);
        if fifo.len() > hw.fifo_depth {
            fifo.pop_front();
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
    let mut ready = [0u64; 4];
    let mut last_end = [0u64; 4];
    let mut out: Vec<Timing> = Vec::with_capacity(ops.len());
    for op in ops {
        let e = engine_index(op.instr.engine().unwrap_or(Engine::Dma));
        let mut start = ready[e];
        for &d in &op.deps {
            start = start.max(out[d as usize].end);
        }
        let c = cost(&op.instr, hw);
        let end = (start + c.done).max(last_end[e]);
        ready[e] = start + c.busy;
        last_end[e] = end;
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
