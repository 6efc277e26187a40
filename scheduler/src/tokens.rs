//! Program order and token masks.
//!
//! The program is written in the order of the ops' earliest starts with unbounded FIFOs
//! ([`crate::estimate::asap`]), so the controller, which fetches in program order, fetches
//! each engine's work roughly when the engine can use it, and a full FIFO of one engine does
//! not hold back the others for long. Every dependency then points backwards in the program,
//! which also rules out deadlock: the earliest unfinished instruction always has its producers
//! done and is at the head of its FIFO.
//!
//! Tokens: one per ordered pair of engines (`from` signals, `to` waits), 12 of the 16. Walking
//! the program in order, an instruction on engine `to` needs, from each other engine `from`,
//! only its latest producer there (engines run in order and complete in order). If that
//! producer is later in `from`'s order than the last one already waited for on this pair, the
//! producer signals the pair's token and this instruction waits on it. Signals and waits of a
//! token are thus created in pairs, in the order of both engines, so the k-th wait is granted by
//! exactly the k-th signal, the producer it was meant for. A producer that is already sure to be
//! done when the instruction starts (an earlier wait of its engine, or a producer it waits for,
//! waited for it or a later one) gets no token: fewer signals stay outstanding on the 8-bit
//! counters.

use crate::build::Op;
use crate::estimate::engine_index;
use crate::isa::{Engine, Instr};

/// The token from engine `from` to engine `to` (`from != to`).
pub fn token(from: Engine, to: Engine) -> u16 {
    let (f, t) = (engine_index(from), engine_index(to));
    let index = f * 3 + if t > f { t - 1 } else { t };
    1 << index
}

fn with_tokens(instr: Instr, add_wait: u16, add_signal: u16) -> Instr {
    let mut i = instr;
    match &mut i {
        Instr::Load { wait, signal, .. }
        | Instr::Store { wait, signal, .. }
        | Instr::Gemm { wait, signal, .. }
        | Instr::Update { wait, signal, .. }
        | Instr::PruneF { wait, signal, .. }
        | Instr::PruneB { wait, signal, .. } => {
            *wait |= add_wait;
            *signal |= add_signal;
        }
        Instr::End => {}
    }
    i
}

/// The instructions of `ops` in program order `order` (a permutation of the op indices that
/// keeps each engine's order and puts every dependency first), with token masks, and `END`.
pub fn assign(ops: &[Op], order: &[usize]) -> Vec<Instr> {
    let engine_of = |op: &Op| engine_index(op.instr.engine().expect("no END among ops"));
    // Position of each op in its engine's order, and the program position of each.
    let mut engine_pos = vec![0usize; ops.len()];
    let mut program_pos = vec![0usize; ops.len()];
    let mut counts = [0usize; 4];
    for (p, &i) in order.iter().enumerate() {
        let e = engine_of(&ops[i]);
        engine_pos[i] = counts[e];
        counts[e] += 1;
        program_pos[i] = p;
    }
    let mut program: Vec<Instr> = order.iter().map(|&i| ops[i].instr).collect();
    let mut covered = [[None::<usize>; 4]; 4];
    // Per op, for each engine, how many of its instructions are sure to have completed when the
    // op starts (the vector clock `crate::validate` keeps), and the last op of each engine.
    let mut clock = vec![[0usize; 4]; ops.len()];
    let mut last_on: [Option<usize>; 4] = [None; 4];
    for &c in order {
        let to = engine_of(&ops[c]);
        let mut latest: [Option<usize>; 4] = [None; 4];
        for &d in &ops[c].deps {
            let d = d as usize;
            let from = engine_of(&ops[d]);
            if from != to && latest[from].is_none_or(|l| engine_pos[l] < engine_pos[d]) {
                latest[from] = Some(d);
            }
        }
        // What the engine's previous instruction waited for is done; so is what a producer
        // waited for once it completes. A producer already known to be done needs no token:
        // later producers first, since waiting for them may cover earlier ones.
        let mut known = last_on[to].map_or([0; 4], |p| clock[p]);
        let mut producers: Vec<usize> = latest.iter().flatten().copied().collect();
        producers.sort_unstable_by_key(|&p| std::cmp::Reverse(program_pos[p]));
        for p in producers {
            let from = engine_of(&ops[p]);
            if known[from] > engine_pos[p] {
                continue;
            }
            for (k, &v) in known.iter_mut().zip(&clock[p]) {
                *k = (*k).max(v);
            }
            known[from] = engine_pos[p] + 1;
            if covered[from][to].is_some_and(|done| done >= engine_pos[p]) {
                continue;
            }
            covered[from][to] = Some(engine_pos[p]);
            let t = token(Engine::ALL[from], Engine::ALL[to]);
            program[program_pos[p]] = with_tokens(program[program_pos[p]], 0, t);
            program[program_pos[c]] = with_tokens(program[program_pos[c]], t, 0);
        }
        clock[c] = known;
        last_on[to] = Some(c);
    }
    program.push(Instr::End);
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_tokens_are_distinct_bits() {
        let mut seen = 0u16;
        for f in Engine::ALL {
            for t in Engine::ALL.into_iter().filter(|&t| t != f) {
                let bit = token(f, t);
                assert_eq!(bit.count_ones(), 1);
                assert_eq!(seen & bit, 0, "{f:?} -> {t:?}");
                seen |= bit;
            }
        }
        assert_eq!(seen.count_ones(), 12);
    }
}
