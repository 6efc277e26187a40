//! The static dependency check of a program, run before anything executes it.
//!
//! What is ordered: instruction `a` is *before* `b` when `a` is sure to have completed when `b`
//! starts: `a` is earlier on the same engine (engines run and complete in order), or a chain of
//! token edges and engine orders leads from `a` to `b`. A token edge joins the k-th signal of a
//! token to its k-th wait; that pairing is only certain when one engine signals the token and
//! one engine waits on it, so a token shared more widely is rejected.
//!
//! What is checked, per buffer line, in program order:
//! - every read is of a line that an earlier instruction wrote, and that write is before it;
//! - every write comes after the last write of the line and after every read of that write's
//!   value (no write-after-read overwrite while a reader may still need the line);
//! - every access is inside the buffer; every wait has an earlier signal to grant it;
//! - a buffer's read port, and its write port, are used by one engine at a time: each use is
//!   ordered after the previous uses of that port by other engines (`engines::sat`, "One reader
//!   and one writer per buffer at a time").
//!
//! The ordering relation is kept as a vector clock per instruction (for each engine, how many of
//! its instructions are before this one), so the check is linear in the program's accesses.

use crate::access::{accesses, dram_beats, Lines};
use crate::build::{Direction, Region};
use crate::estimate::{engine_index, ordinal};
use crate::hardware::Hardware;
use crate::isa::{Buf, Instr};

/// A dependency the program does not guarantee, at the instruction that would go wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("instruction {index} ({instr}): {message}")]
pub struct ValidateError {
    pub index: usize,
    /// The instruction, as `schedule.json` shows it.
    pub instr: String,
    pub message: String,
}

const NONE: usize = usize::MAX;

#[derive(Clone, Copy)]
struct LineState {
    writer: usize,
    /// Per engine, the last reader of the current value.
    readers: [usize; 4],
}

fn describe(i: &Instr) -> String {
    serde_json::to_string(i).unwrap_or_else(|_| format!("{i:?}"))
}

/// Checks `program` on `hw`; the first violation is the error.
pub fn validate_program(program: &[Instr], hw: &Hardware) -> Result<(), ValidateError> {
    let fail = |index: usize, message: String| ValidateError {
        index,
        instr: describe(&program[index]),
        message,
    };
    let engine = |i: usize| program[i].engine().map(engine_index);
    // Token edges: the k-th wait is granted by the k-th signal.
    let mut signallers: Vec<Vec<usize>> = vec![Vec::new(); 16];
    let mut token_engines: Vec<(Option<usize>, Option<usize>)> = vec![(None, None); 16];
    for (i, instr) in program.iter().enumerate() {
        let (wait, signal) = instr.tokens();
        let e = engine(i);
        for t in 0..16 {
            for (bit, side) in [(signal, 0), (wait, 1)] {
                if bit >> t & 1 == 0 {
                    continue;
                }
                let slot = if side == 0 {
                    &mut token_engines[t].0
                } else {
                    &mut token_engines[t].1
                };
                if slot.is_some_and(|prev| Some(prev) != e) {
                    return Err(fail(
                        i,
                        format!(
                            "token {t} is {} by two engines; each token must join one \
                             signalling engine to one waiting engine",
                            if side == 0 { "signalled" } else { "waited on" }
                        ),
                    ));
                }
                *slot = e;
            }
            if signal >> t & 1 == 1 {
                signallers[t].push(i);
            }
        }
    }
    // Vector clocks.
    let mut clock: Vec<[u32; 4]> = Vec::with_capacity(program.len());
    let mut engine_pos = vec![0u32; program.len()];
    let mut counts = [0u32; 4];
    let mut last_on = [NONE; 4];
    let mut waits_taken = [0usize; 16];
    let mut token_error: Option<ValidateError> = None;
    for (i, instr) in program.iter().enumerate() {
        let mut c = [0u32; 4];
        let join = |c: &mut [u32; 4], from: usize, clock: &Vec<[u32; 4]>, pos: &Vec<u32>| {
            for (x, y) in c.iter_mut().zip(clock[from]) {
                *x = (*x).max(y);
            }
            let e = program[from].engine().map(engine_index).unwrap_or(0);
            c[e] = c[e].max(pos[from] + 1);
        };
        let Some(e) = engine(i) else {
            clock.push(c);
            continue;
        };
        if last_on[e] != NONE {
            join(&mut c, last_on[e], &clock, &engine_pos);
        }
        let (wait, _) = instr.tokens();
        for t in (0..16).filter(|t| wait >> t & 1 == 1) {
            let k = waits_taken[t];
            waits_taken[t] += 1;
            match signallers[t].get(k) {
                Some(&s) if s < i => join(&mut c, s, &clock, &engine_pos),
                // No edge; reported after the buffer check, which names a read or write
                // that goes wrong because of it if there is one.
                Some(&s) => {
                    token_error.get_or_insert_with(|| {
                        fail(
                            i,
                            format!(
                                "it waits for token {t} a {} time, which only instruction {s} \
                                 later in the program signals: move the signal earlier",
                                ordinal(k + 1)
                            ),
                        )
                    });
                }
                None => {
                    token_error.get_or_insert_with(|| {
                        fail(
                            i,
                            format!(
                                "it waits for token {t} a {} time, but only {} instructions \
                                 signal it: it would wait forever",
                                ordinal(k + 1),
                                signallers[t].len()
                            ),
                        )
                    });
                }
            }
        }
        engine_pos[i] = counts[e];
        counts[e] += 1;
        last_on[e] = i;
        clock.push(c);
    }
    let before = |a: usize, b: usize| match engine(a) {
        Some(e) => clock[b][e] > engine_pos[a],
        None => false,
    };
    // Buffer lines.
    let fresh = LineState {
        writer: NONE,
        readers: [NONE; 4],
    };
    let mut lines: Vec<Vec<LineState>> =
        Buf::ALL.iter().map(|&b| vec![fresh; hw.lines(b)]).collect();
    let buf_index = |b: Buf| Buf::ALL.iter().position(|&x| x == b).unwrap_or(0);
    let range = |i: usize, l: &Lines| {
        let depth = hw.lines(l.buf);
        if l.start + l.lines > depth {
            Err(fail(
                i,
                format!(
                    "it accesses {l}, beyond the {}-line {} buffer",
                    depth,
                    l.buf.name()
                ),
            ))
        } else {
            Ok(l.start..l.start + l.lines)
        }
    };
    let mut ports = vec![[[NONE; 4]; 2]; Buf::ALL.len()];
    for (i, instr) in program.iter().enumerate() {
        let Some(e) = engine(i) else { continue };
        if token_error.as_ref().is_some_and(|t| t.index < i) {
            break;
        }
        let acc = accesses(instr, hw);
        // A buffer's read port, and its write port, serve one engine at a time.
        for (port, spans) in [&acc.reads, &acc.writes].into_iter().enumerate() {
            for span in spans {
                let users = &mut ports[buf_index(span.buf)][port];
                for (other, &u) in users.iter().enumerate() {
                    if other != e && u != NONE && !before(u, i) {
                        return Err(fail(
                            i,
                            format!(
                                "it {} the {} buffer while instruction {u} ({}) may still {} it: \
                                 a buffer's {} port serves one engine at a time, so {u} must \
                                 signal a token this instruction waits on",
                                ["reads", "writes"][port],
                                span.buf.name(),
                                describe(&program[u]),
                                ["read", "write"][port],
                                ["read", "write"][port],
                            ),
                        ));
                    }
                }
                users[e] = i;
            }
        }
        for r in &acc.reads {
            let b = buf_index(r.buf);
            for line in range(i, r)? {
                let w = lines[b][line].writer;
                if w == NONE {
                    return Err(fail(
                        i,
                        format!(
                            "it reads {} line {line} (of {r}), which no earlier instruction \
                             writes",
                            r.buf.name()
                        ),
                    ));
                }
                if w != i && !before(w, i) {
                    return Err(fail(
                        i,
                        format!(
                            "it reads {} line {line} (of {r}), written by instruction {w} ({}), \
                             which is not ordered before it: {w} must signal a token this \
                             instruction waits on",
                            r.buf.name(),
                            describe(&program[w])
                        ),
                    ));
                }
            }
        }
        for wr in &acc.writes {
            let b = buf_index(wr.buf);
            for line in range(i, wr)? {
                let state = lines[b][line];
                let others = state.readers.into_iter().filter(|&r| r != NONE && r != i);
                for r in others.chain((state.writer != NONE).then_some(state.writer)) {
                    if r != i && !before(r, i) {
                        let what = if r == state.writer { "writes" } else { "reads" };
                        return Err(fail(
                            i,
                            format!(
                                "it overwrites {} line {line} (of {wr}) while instruction {r} \
                                 ({}), which {what} it, may not be done: {r} must signal a \
                                 token this instruction waits on",
                                wr.buf.name(),
                                describe(&program[r])
                            ),
                        ));
                    }
                }
            }
        }
        for r in &acc.reads {
            let b = buf_index(r.buf);
            for line in r.start..r.start + r.lines {
                lines[b][line].readers[e] = i;
            }
        }
        for wr in &acc.writes {
            let b = buf_index(wr.buf);
            for line in wr.start..wr.start + wr.lines {
                lines[b][line] = LineState {
                    writer: i,
                    readers: [NONE; 4],
                };
            }
        }
    }
    token_error.map_or(Ok(()), Err)
}

/// Checks that every LOAD of beats of an output region of `map` (a tensor the step writes) comes
/// after STOREs that wrote each of those beats, in program order (the DMA runs LOADs and STOREs
/// in program order). Input regions hold what the host wrote before the step.
pub fn validate_dram(
    program: &[Instr],
    hw: &Hardware,
    map: &[Region],
) -> Result<(), ValidateError> {
    let outputs: Vec<std::ops::Range<u64>> = map
        .iter()
        .filter(|r| r.direction == Direction::Output)
        .map(|r| r.addr..r.addr + r.lines * r.beats_per_line)
        .collect();
    // Beats stored so far, as sorted disjoint ranges.
    let mut stored: Vec<std::ops::Range<u64>> = Vec::new();
    for (i, instr) in program.iter().enumerate() {
        let Some(beats) = dram_beats(instr, hw) else {
            continue;
        };
        let load = matches!(instr, Instr::Load { .. });
        if !load {
            stored.push(beats);
            stored.sort_by_key(|r| r.start);
            let mut merged: Vec<std::ops::Range<u64>> = Vec::with_capacity(stored.len());
            for r in stored.drain(..) {
                match merged.last_mut() {
                    Some(m) if r.start <= m.end => m.end = m.end.max(r.end),
                    _ => merged.push(r),
                }
            }
            stored = merged;
            continue;
        }
        for out in &outputs {
            let (lo, hi) = (beats.start.max(out.start), beats.end.min(out.end));
            if lo >= hi {
                continue;
            }
            let covered = stored.iter().any(|s| s.start <= lo && hi <= s.end);
            if !covered {
                return Err(ValidateError {
                    index: i,
                    instr: describe(instr),
                    message: format!(
                        "loads DRAM beats {lo}..{hi} of a tensor the step writes before a STORE \
                         wrote them (it would read the previous contents)"
                    ),
                });
            }
        }
    }
    Ok(())
}
