//! From a network to the instructions of one training step, in the order each engine runs them,
//! with every dependency between them and the DRAM memory map.
//!
//! # The step
//! 1. FF of every layer, first to last.
//! 2. Last layer to first: BP (`dX`) and WU (`dW^T`) of the layer, their tiles alternating
//!    (*interleave mapping*: both depend only on `dY`, so the STCE always has an independent tile
//!    to run while another one's loads are in flight). Interleaving gives each pass half of the
//!    act, wgt and out lines, so a layer is interleaved only when its tilings in halves cost the
//!    DMA no more load time than in whole buffers (recorded per pass as `interleaved`). Each WU
//!    tile is stored and, on the WUVE, updated (W32 and W16) as soon as the STCE has written it.
//!    The first layer has no BP by default (the network file's `input_gradient`, see
//!    [`crate::network`]): its WU runs alone, in the whole buffers, and it has no PRUNE_B.
//! 3. When a chunk of the layer's output-channel blocks is updated, the SORE prunes it
//!    (*pre-generation*: PRUNE_F for the next step's M_F and W_F, then PRUNE_B for M_B and W_B)
//!    while the STCE goes on with the next layer's BP and WU. The STOREs of the new weights and
//!    the PRUNE_B work (with its reloads) are queued, in pieces, and emitted where the DMA would
//!    otherwise idle during the next layers' work, so that they do not hold back their operand
//!    loads in the in-order DMA stream ([`Builder::push`]). The first chunk's W32 and M_F LOADs
//!    likewise fill the DMA's idle time during the layer's BP.
//!
//! Within a pass, each LOAD brings a block or a flow batch of operand panels (the tiling's
//! choice), and is prefetched as soon as its lines are free, up to one block by flow batch of
//! tiles (at least [`PREFETCH_STEPS`]) ahead (`hoist_loads`). Result tiles rotate through up to
//! [`OUT_SLOTS`] out slots, and one STORE writes back a run of tiles whose out lines follow each
//! other in the buffer and in DRAM (at most half the slots, so the STCE fills the other half
//! meanwhile).
//!
//! The host (the harness) prepares each layer's X, dY, W32, M_F, W_F and W_B in DRAM in their line
//! formats (it also does activations, im2col and the loss), so the layers of a step share nothing
//! in DRAM; a layer's DRAM traffic is its own operands and results.
//!
//! # Buffers
//! - `act`, `wgt` (below the SORE's slots), `out`: the GEMM passes. FF and a layer's BP+WU pair
//!   each get the whole buffers, or half each when BP and WU interleave.
//! - the top wgt lines: a ring of the SORE's outputs ([`SoreRing`]: at least two of the largest,
//!   the most wgt lines one PRUNE_B writes, a layer's output channels in whole `cols` blocks over
//!   M; up to [`SORE_RING`] lines), stored to DRAM from there, runs of consecutive outputs with
//!   one STORE. None without sparse layers.
//! - `master`, `w16`, `mask`: one chunk of a layer's weights (whole output-channel blocks of
//!   `Kp` lines each), in two halves used in turn when every layer's block fits in half.
//!
//! # Dependencies
//! The builder does not reason about hazards itself: [`crate::access::accesses`] says which lines
//! each instruction reads and writes, and [`Tracker`] turns that into edges (read after write,
//! write after read, write after write) to earlier instructions. Token masks come later
//! ([`crate::tokens`]).

use serde::{Deserialize, Serialize};

use coforge_generator::engines::sat::beat_cycles;

use crate::access::{accesses, dram_beats, Accesses};
use crate::estimate::engine_index;
use crate::hardware::Hardware;
use crate::isa::{Buf, Engine, GemmMode, Instr};
use crate::network::{Layer, Network, Sparsity};
use crate::tiling::{self, Limits, LoadCost, Order, PassShape, Room, Tiling};
use crate::ScheduleError;

/// What an instruction is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    Ff,
    Bp,
    Wu,
    Update,
    PruneF,
    PruneB,
}

impl Pass {
    pub const ALL: [Pass; 6] = [
        Pass::Ff,
        Pass::Bp,
        Pass::Wu,
        Pass::Update,
        Pass::PruneF,
        Pass::PruneB,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Pass::Ff => "ff",
            Pass::Bp => "bp",
            Pass::Wu => "wu",
            Pass::Update => "update",
            Pass::PruneF => "prune_f",
            Pass::PruneB => "prune_b",
        }
    }
}

/// Scheduling choices (both on by default; off for comparisons).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Alternate the BP and WU tiles of a layer, where that costs the DMA no more load time
    /// than giving each pass the whole buffers (see [`build`]).
    pub interleave: bool,
    /// Let the SORE prune a layer while the STCE works on the next one; when off, a layer's
    /// backward pass starts only after the previous layer's pruning is done.
    pub pregen: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interleave: true,
            pregen: true,
        }
    }
}

/// One instruction as built: no tokens yet, its layer and pass, and the earlier instructions it
/// must follow.
#[derive(Clone, Debug)]
pub struct Op {
    pub instr: Instr,
    pub layer: u32,
    pub pass: Pass,
    pub deps: Vec<u32>,
}

/// Whether the harness writes a tensor before the step or reads it after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Input,
    Output,
}

/// One tensor of one layer in DRAM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub tensor: String,
    pub layer: String,
    pub direction: Direction,
    /// The line format (the buffer the lines are loaded into or stored from).
    pub format: Buf,
    /// The matrix the lines hold, `rows x cols` before padding, and the group size along the
    /// reduction (act and wgt formats; 0 otherwise).
    pub matrix: [usize; 2],
    pub group: usize,
    /// First memory beat and number of lines (each `beats_per_line` beats).
    pub addr: u64,
    pub lines: u64,
    pub beats_per_line: u64,
}

/// The tiling of one pass of one layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassTiling {
    pub layer: String,
    pub pass: Pass,
    #[serde(flatten)]
    pub tiling: Tiling,
    /// BP and WU tiles alternate (each pass then has half of the act, wgt and out lines).
    pub interleaved: bool,
    pub row_tiles: usize,
    pub col_tiles: usize,
    pub groups: usize,
}

/// The built step.
#[derive(Clone, Debug)]
pub struct Built {
    pub ops: Vec<Op>,
    pub memory_map: Vec<Region>,
    pub tilings: Vec<PassTiling>,
}

const NONE: u32 = u32::MAX;

/// Most result tiles in flight between the STCE and their STOREs (well below the 8-bit token
/// counters' 255).
const OUT_SLOTS: usize = 128;

/// Per buffer line: the last writer and, per engine, the last reader since that write.
#[derive(Clone, Copy)]
struct LineState {
    writer: u32,
    readers: [u32; 4],
}

/// Turns line accesses into dependency edges.
pub(crate) struct Tracker {
    lines: Vec<Vec<LineState>>,
    /// Per buffer, per port (read, write), the last instruction of each engine that used it.
    ports: Vec<[[u32; 4]; 2]>,
}

impl Tracker {
    pub(crate) fn new(hw: &Hardware) -> Tracker {
        let fresh = LineState {
            writer: NONE,
            readers: [NONE; 4],
        };
        Tracker {
            lines: Buf::ALL.iter().map(|&b| vec![fresh; hw.lines(b)]).collect(),
            ports: vec![[[NONE; 4]; 2]; Buf::ALL.len()],
        }
    }

    fn buf(b: Buf) -> usize {
        Buf::ALL.iter().position(|&x| x == b).unwrap_or(0)
    }

    /// The earlier instructions instruction `index` (on `engine`, with `acc`) must follow, and
    /// records its accesses: the line hazards (read after write, write after read, write after
    /// write), and the buffer ports: a buffer's read port, and its write port, serve one engine
    /// at a time (`engines::sat`, "One reader and one writer per buffer at a time"), so a use
    /// of a port follows the last use of it by every other engine.
    fn record(&mut self, index: u32, engine: Engine, acc: &Accesses) -> Vec<u32> {
        let e = engine_index(engine);
        let mut deps = Vec::new();
        for (port, spans) in [&acc.reads, &acc.writes].into_iter().enumerate() {
            for s in spans {
                let users = &mut self.ports[Self::buf(s.buf)][port];
                deps.extend(
                    users
                        .iter()
                        .enumerate()
                        .filter(|&(o, _)| o != e)
                        .map(|(_, &u)| u),
                );
                users[e] = index;
            }
        }
        for r in &acc.reads {
            for line in &self.lines[Self::buf(r.buf)][r.start..r.start + r.lines] {
                deps.push(line.writer);
            }
        }
        for w in &acc.writes {
            for line in &self.lines[Self::buf(w.buf)][w.start..w.start + w.lines] {
                deps.push(line.writer);
                deps.extend(line.readers);
            }
        }
        for r in &acc.reads {
            for line in &mut self.lines[Self::buf(r.buf)][r.start..r.start + r.lines] {
                line.readers[e] = index;
            }
        }
        for w in &acc.writes {
            for line in &mut self.lines[Self::buf(w.buf)][w.start..w.start + w.lines] {
                *line = LineState {
                    writer: index,
                    readers: [NONE; 4],
                };
            }
        }
        deps.retain(|&d| d != NONE && d != index);
        deps.sort_unstable();
        deps.dedup();
        // A GEMM gathers one entry per line it reads; keep only the distinct ones.
        deps.shrink_to_fit();
        deps
    }
}

/// A range of buffer lines given to a pass.
#[derive(Clone, Copy, Debug)]
struct Span {
    base: usize,
    len: usize,
}

impl Span {
    fn halves(self, split: bool) -> [Span; 2] {
        if split {
            let half = self.len / 2;
            [
                Span {
                    base: self.base,
                    len: half,
                },
                Span {
                    base: self.base + half,
                    len: half,
                },
            ]
        } else {
            [self, self]
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Rooms {
    act: Span,
    wgt: Span,
    out: Span,
}

/// A tensor in DRAM: `beats` per line from beat `addr` (a GEMM operand's panel `t`, group `g`
/// is line `t * lines + g / P`, a panel being `lines` lines of P groups each: P = 1 but for
/// dense act lines).
#[derive(Clone, Copy, Debug)]
struct Operand {
    addr: u64,
    beats: u64,
}

impl Operand {
    /// The first beat of line `line`.
    fn line(&self, line: u64) -> u64 {
        self.addr + line * self.beats
    }
}

/// One GEMM pass of one layer.
#[derive(Clone, Copy, Debug)]
struct GemmPass {
    pass: Pass,
    mode: GemmMode,
    /// Groups per act line of A (`Geometry::act_groups_per_line` of `mode`).
    a_per_line: usize,
    pt: usize,
    qt: usize,
    groups: usize,
    a: Operand,
    b: Operand,
    out: Operand,
}

/// The instructions of one output tile (loads, GEMMs, the store of the result).
struct TileStep {
    ct: usize,
    rt: usize,
    out_addr: usize,
    instrs: Vec<(Instr, Pass)>,
}

struct Builder<'a> {
    hw: &'a Hardware,
    ops: Vec<Op>,
    tracker: Tracker,
    map: Vec<Region>,
    next_beat: u64,
    tilings: Vec<PassTiling>,
    /// An instruction the next GEMM must follow (pre-generation off).
    barrier: Option<u32>,
    /// The weight phase's STOREs (W32', W16', M_F', W_F', W_B'), held back so that they do not
    /// stand in the in-order DMA stream in front of the next layer's operand loads (see
    /// [`Builder::push`]).
    deferred: std::collections::VecDeque<Queued>,
    /// The DMA's estimated idle cycles so far (STCE cycles emitted minus DMA cycles emitted),
    /// within [-SLACK_CAP, SLACK_CAP]: what queued work may fill.
    slack: i64,
    /// `engines::sat::tile_spacing` of the array.
    spacing: u64,
}

/// Queued weight-phase work (see [`Builder::push`]), with what it touches and costs the DMA.
struct Queued {
    instr: Instr,
    layer: usize,
    pass: Pass,
    acc: Accesses,
    beats: Option<std::ops::Range<u64>>,
    dma_cycles: u64,
}

/// A LOAD or STORE cut into pieces of at most [`PIECE_LINES`] lines (the same transfer);
/// any other instruction alone.
fn pieces(instr: Instr, hw: &Hardware) -> Vec<Instr> {
    let (buf, buf_addr, dram_addr, lines, store) = match instr {
        Instr::Store {
            buf,
            buf_addr,
            dram_addr,
            lines,
            ..
        } => (buf, buf_addr, dram_addr, lines, true),
        Instr::Load {
            buf,
            buf_addr,
            dram_addr,
            lines,
            ..
        } => (buf, buf_addr, dram_addr, lines, false),
        _ => return vec![instr],
    };
    let per_line = hw.beats_per_line(buf) as u32;
    (0..lines)
        .step_by(PIECE_LINES)
        .map(|j| {
            let (buf_addr, dram_addr) = (buf_addr + j, dram_addr + u32::from(j) * per_line);
            let lines = (lines - j).min(PIECE_LINES as u16);
            transfer(store, buf, buf_addr, dram_addr, lines)
        })
        .collect()
}

/// A STORE (or LOAD) of `lines` lines of `buf` from (to) `buf_addr`, to (from) beat `dram_addr`,
/// without tokens.
fn transfer(store: bool, buf: Buf, buf_addr: u16, dram_addr: u32, lines: u16) -> Instr {
    let (wait, signal) = (0, 0);
    if store {
        Instr::Store {
            buf,
            buf_addr,
            dram_addr,
            lines,
            wait,
            signal,
        }
    } else {
        Instr::Load {
            buf,
            buf_addr,
            dram_addr,
            lines,
            wait,
            signal,
        }
    }
}

/// Two queued instructions that must keep their order: one writes buffer lines the other
/// reads or writes, or both move overlapping DRAM beats.
fn conflict(a: &Queued, b: &Queued) -> bool {
    let cross = |x: &[crate::access::Lines], y: &[crate::access::Lines]| {
        x.iter().any(|p| {
            y.iter().any(|q| {
                p.buf == q.buf && p.start < q.start + q.lines && q.start < p.start + p.lines
            })
        })
    };
    let dram = match (&a.beats, &b.beats) {
        (Some(x), Some(y)) => x.start < y.end && y.start < x.end,
        _ => false,
    };
    dram || cross(&a.acc.writes, &b.acc.reads)
        || cross(&a.acc.writes, &b.acc.writes)
        || cross(&a.acc.reads, &b.acc.writes)
}

/// Most lines of one queued STORE piece.
const PIECE_LINES: usize = 256;

/// The most DMA idle time (and debt) the pacing of queued work remembers: the DMA cannot use
/// idle time long past, nor make up a deficit of long ago.
const SLACK_CAP: i64 = 2048;

fn dram(addr: u64) -> Result<u32, ScheduleError> {
    u32::try_from(addr).map_err(|_| ScheduleError {
        layer: None,
        message: format!(
            "the step's DRAM image needs beat {addr}, beyond the 32-bit beat address of LOAD and \
             STORE; use a smaller batch"
        ),
    })
}

fn lines16(n: usize) -> u16 {
    u16::try_from(n).expect("buffer addresses and line counts fit the buffers (16 bits)")
}

impl Builder<'_> {
    /// Emits an instruction (its dependencies are those of this emission order), after the
    /// queued weight-phase work it must follow.
    ///
    /// Queued work keeps its meaning: before an instruction that touches buffer lines a queued
    /// instruction reads or writes (one of them writing), or DRAM beats a queued LOAD or STORE
    /// moves (the PRUNE_B reload reads back the W16' and M_F' just stored), is emitted, that
    /// queued instruction (and every one queued before it) is emitted first. So the emission
    /// order, from which the dependencies and the DMA's order come, has the same hazards as
    /// the order the work was built in.
    ///
    /// Queued work is paced by the DMA's estimated idle time: each GEMM adds its STCE cycles to
    /// [`Builder::slack`], each emitted transfer takes its DMA cycles from it, and after a GEMM
    /// that completes a tile, queued work is emitted while the slack covers its DMA cycles. The
    /// DMA then interleaves layer l's weight traffic with layer l - 1's loads and stores where it
    /// would otherwise wait: *pre-generation* (the SORE and the DMA finish layer l's weights
    /// while the STCE runs the next layers).
    fn push(&mut self, instr: Instr, layer: usize, pass: Pass) -> u32 {
        let acc = accesses(&instr, self.hw);
        let beats = dram_beats(&instr, self.hw);
        let cross = |a: &[crate::access::Lines], b: &[crate::access::Lines]| {
            a.iter().any(|x| {
                b.iter().any(|y| {
                    x.buf == y.buf && x.start < y.start + y.lines && y.start < x.start + x.lines
                })
            })
        };
        let overlaps = |q: &Queued| {
            let lines = cross(&acc.writes, &q.acc.reads)
                || cross(&acc.writes, &q.acc.writes)
                || cross(&acc.reads, &q.acc.writes);
            let dram = match (&beats, &q.beats) {
                (Some(a), Some(b)) => a.start < b.end && b.start < a.end,
                _ => false,
            };
            lines || dram
        };
        // The queued work this instruction conflicts with, and the queued work before it that
        // conflicts with that (a queued instruction keeps its order only with what it
        // conflicts with; the rest stays queued).
        let mut needed: Vec<bool> = self.deferred.iter().map(overlaps).collect();
        if needed.iter().any(|&n| n) {
            for j in (0..needed.len()).rev() {
                if !needed[j] {
                    continue;
                }
                let later = &self.deferred[j];
                for (earlier, need) in self.deferred.iter().zip(needed.iter_mut()).take(j) {
                    if !*need && conflict(earlier, later) {
                        *need = true;
                    }
                }
            }
            let queue = std::mem::take(&mut self.deferred);
            for (q, now) in queue.into_iter().zip(needed) {
                if now {
                    self.emit(q.instr, q.layer, q.pass);
                } else {
                    self.deferred.push_back(q);
                }
            }
        }
        let index = self.emit(instr, layer, pass);
        if matches!(instr, Instr::Gemm { last: true, .. }) {
            while self
                .deferred
                .front()
                .is_some_and(|q| q.dma_cycles as i64 <= self.slack)
            {
                self.flush(1);
            }
        }
        index
    }

    /// Emits prefetched LOAD pieces of layer `layer` while the DMA's idle time covers them.
    fn prefetch(&mut self, pieces: &mut std::collections::VecDeque<(Instr, Pass)>, layer: usize) {
        while pieces
            .front()
            .is_some_and(|(instr, _)| crate::estimate::cost(instr, self.hw) as i64 <= self.slack)
        {
            if let Some((instr, pass)) = pieces.pop_front() {
                self.push(instr, layer, pass);
            }
        }
    }

    /// Queues weight-phase work (or emits it at once without pre-generation); a STORE in
    /// a LOAD or STORE in pieces of at most [`PIECE_LINES`] lines, so that the pacing can fit
    /// it in.
    fn defer(&mut self, instr: Instr, layer: usize, pass: Pass, defer: bool) {
        if !defer {
            self.push(instr, layer, pass);
            return;
        }
        let pieces = pieces(instr, self.hw);
        for instr in pieces {
            let dma_cycles = if instr.engine() == Some(Engine::Dma) {
                crate::estimate::cost(&instr, self.hw)
            } else {
                0
            };
            self.deferred.push_back(Queued {
                instr,
                layer,
                pass,
                acc: accesses(&instr, self.hw),
                beats: dram_beats(&instr, self.hw),
                dma_cycles,
            });
        }
    }

    /// Emits the first `n` queued instructions.
    fn flush(&mut self, n: usize) {
        for _ in 0..n.min(self.deferred.len()) {
            if let Some(q) = self.deferred.pop_front() {
                self.emit(q.instr, q.layer, q.pass);
            }
        }
    }

    fn emit(&mut self, instr: Instr, layer: usize, pass: Pass) -> u32 {
        let index = self.ops.len() as u32;
        let engine = instr.engine().expect("the builder emits no END");
        let mut deps = self
            .tracker
            .record(index, engine, &accesses(&instr, self.hw));
        if engine == Engine::Stce {
            deps.extend(self.barrier.take());
        }
        let busy = match instr {
            Instr::Gemm { groups, last, .. } => {
                let spacing = if last { self.spacing } else { 0 };
                u64::from(groups).max(spacing) as i64
            }
            Instr::Load { .. } | Instr::Store { .. } => {
                -(crate::estimate::cost(&instr, self.hw) as i64)
            }
            _ => 0,
        };
        self.slack = (self.slack + busy).clamp(-SLACK_CAP, SLACK_CAP);
        self.ops.push(Op {
            instr,
            layer: layer as u32,
            pass,
            deps,
        });
        index
    }

    #[allow(clippy::too_many_arguments)]
    fn alloc(
        &mut self,
        tensor: &str,
        layer: &Layer,
        direction: Direction,
        format: Buf,
        matrix: [usize; 2],
        group: usize,
        lines: usize,
    ) -> Operand {
        let beats = self.hw.beats_per_line(format);
        let addr = self.next_beat;
        self.next_beat += lines as u64 * beats;
        self.map.push(Region {
            tensor: tensor.to_string(),
            layer: layer.name.clone(),
            direction,
            format,
            matrix,
            group,
            addr,
            lines: lines as u64,
            beats_per_line: beats,
        });
        Operand { addr, beats }
    }

    fn load(buf: Buf, at: usize, from: u64, lines: usize) -> Result<Instr, ScheduleError> {
        Ok(Instr::Load {
            buf,
            buf_addr: lines16(at),
            dram_addr: dram(from)?,
            lines: lines16(lines),
            wait: 0,
            signal: 0,
        })
    }

    fn store(buf: Buf, at: usize, to: u64, lines: usize) -> Result<Instr, ScheduleError> {
        Ok(Instr::Store {
            buf,
            buf_addr: lines16(at),
            dram_addr: dram(to)?,
            lines: lines16(lines),
            wait: 0,
            signal: 0,
        })
    }

    /// The tiles of one pass in their order, each with its loads, GEMMs and, for the last tile
    /// of a run of tiles whose results are consecutive in DRAM and in `out`, the STORE of the run.
    fn tile_steps(
        &self,
        g: &GemmPass,
        t: &Tiling,
        room: Rooms,
        limits: Limits,
    ) -> Result<Vec<TileStep>, ScheduleError> {
        let hw = self.hw;
        let groups = g.groups;
        // Groups per act line (P: dense act lines carry several) and lines per panel of A, B.
        let per = g.a_per_line;
        let (a_lines, b_lines) = (groups.div_ceil(per), groups);
        let panel = |op: Operand, tile: usize, g0: usize, per: usize, lines: usize| {
            op.addr + ((tile * lines + g0 / per) as u64) * op.beats
        };
        let mut steps = Vec::new();
        // Result tiles rotate through every tile slot of the pass's out lines (at most
        // OUT_SLOTS), so the DMA can fall that many tiles behind the STCE before it stalls it.
        let out_slots = out_slots(room.out.len, hw);
        let mut out_slot = 0usize;
        let mut next_out = || {
            let at = room.out.base + (out_slot % out_slots) * hw.rows;
            out_slot += 1;
            at
        };
        let gemm =
            |act: usize, wgt: usize, n: usize, out: usize, first: bool, last: bool| Instr::Gemm {
                mode: g.mode,
                act_addr: lines16(act),
                wgt_addr: lines16(wgt),
                groups: lines16(n),
                out_addr: lines16(out),
                first,
                last,
                wait: 0,
                signal: 0,
            };
        let tile = |rt: usize, ct: usize, out: usize, instrs: Vec<(Instr, Pass)>| TileStep {
            ct,
            rt,
            out_addr: out,
            instrs,
        };
        // Tiles one hoisted LOAD may move ahead: a whole block by flow batch of them.
        let mut prefetch = PREFETCH_STEPS;
        match t.order {
            Order::AStationary | Order::BStationary => {
                // A block of the stationary operand's panels stays in one half of its buffer
                // while every panel of the other operand streams past it, `t.flow` panels per
                // LOAD, double buffered (one LOAD each when it is all there is).
                let a_stays = t.order == Order::AStationary;
                let a = (Buf::Act, room.act, g.a, g.pt, per);
                let b = (Buf::Wgt, room.wgt, g.b, g.qt, 1);
                let (stay, flow) = if a_stays { (a, b) } else { (b, a) };
                // Lines of a panel of the stationary and of the streamed operand.
                let (s_lines, f_lines) = (groups.div_ceil(stay.4), groups.div_ceil(flow.4));
                prefetch = prefetch.max(t.block * t.flow);
                let mut streamed = 0usize;
                let chunks = groups.div_ceil(t.chunk);
                for (half, first) in (0..stay.3).step_by(t.block).enumerate() {
                    let block = first..(first + t.block).min(stay.3);
                    let half = if t.single { 0 } else { half % 2 };
                    let s_base = stay.1.base + half * t.block * s_lines;
                    let lines = block.len() * s_lines;
                    let from = panel(stay.2, first, 0, stay.4, s_lines);
                    let mut stay_load = Some(Self::load(stay.0, s_base, from, lines)?);
                    for f0 in (0..flow.3).step_by(t.flow) {
                        let batch = f0..(f0 + t.flow).min(flow.3);
                        // A whole batch per LOAD, or (chunks > 1) one chunk per LOAD below.
                        let f_base = flow.1.base + (streamed % 2) * t.flow * f_lines;
                        let mut flow_load = None;
                        if chunks == 1 {
                            streamed += 1;
                            let lines = batch.len() * f_lines;
                            let from = panel(flow.2, f0, 0, flow.4, f_lines);
                            flow_load = Some(Self::load(flow.0, f_base, from, lines)?);
                        }
                        // The tiles of the block and batch in the results' DRAM order.
                        let (rows, cols) = if a_stays {
                            (block.clone(), batch)
                        } else {
                            (batch, block.clone())
                        };
                        for rt in rows {
                            for ct in cols.clone() {
                                let mut instrs = Vec::new();
                                instrs.extend(stay_load.take().map(|l| (l, g.pass)));
                                instrs.extend(flow_load.take().map(|l| (l, g.pass)));
                                let (st, f) = if a_stays { (rt, ct) } else { (ct, rt) };
                                let s_at = s_base + (st - first) * s_lines;
                                let out = next_out();
                                // Chunks are whole act lines (`tiling`): chunk c starts at line
                                // g0 / P of an A panel.
                                for c in 0..chunks {
                                    let (g0, n) = (c * t.chunk, t.chunk.min(groups - c * t.chunk));
                                    let f_at = if chunks == 1 {
                                        f_base + (f - f0) * f_lines
                                    } else {
                                        let at =
                                            flow.1.base + (streamed % 2) * t.chunk.div_ceil(flow.4);
                                        streamed += 1;
                                        let from = panel(flow.2, f, g0, flow.4, f_lines);
                                        let lines = n.div_ceil(flow.4);
                                        instrs.push((Self::load(flow.0, at, from, lines)?, g.pass));
                                        at
                                    };
                                    let (a_at, b_at) = if a_stays {
                                        (s_at + g0 / stay.4, f_at)
                                    } else {
                                        (f_at, s_at + g0 / stay.4)
                                    };
                                    let (first, last) = (c == 0, c + 1 == chunks);
                                    instrs.push((gemm(a_at, b_at, n, out, first, last), g.pass));
                                }
                                steps.push(tile(rt, ct, out, instrs));
                            }
                        }
                    }
                }
            }
            Order::Split => {
                let chunks = groups.div_ceil(t.chunk);
                let mut slot = 0usize;
                let order: Vec<(usize, usize)> = if tiling::split_rows_outer(g.qt, limits) {
                    (0..g.pt)
                        .flat_map(|rt| (0..g.qt).map(move |ct| (rt, ct)))
                        .collect()
                } else {
                    (0..g.qt)
                        .flat_map(|ct| (0..g.pt).map(move |rt| (rt, ct)))
                        .collect()
                };
                for (rt, ct) in order {
                    let mut instrs = Vec::new();
                    let out = next_out();
                    for c in 0..chunks {
                        let g0 = c * t.chunk;
                        let n = t.chunk.min(groups - g0);
                        // A chunk is a multiple of P groups (`tiling`): it starts on an act line.
                        let a_at = room.act.base + (slot % 2) * t.chunk.div_ceil(per);
                        let b_at = room.wgt.base + (slot % 2) * t.chunk;
                        slot += 1;
                        let a_from = panel(g.a, rt, g0, per, a_lines);
                        let a_load = Self::load(Buf::Act, a_at, a_from, n.div_ceil(per))?;
                        let b_load = Self::load(Buf::Wgt, b_at, panel(g.b, ct, g0, 1, b_lines), n)?;
                        instrs.push((a_load, g.pass));
                        instrs.push((b_load, g.pass));
                        instrs.push((gemm(a_at, b_at, n, out, c == 0, c + 1 == chunks), g.pass));
                    }
                    steps.push(tile(rt, ct, out, instrs));
                }
            }
        }
        self.store_runs(g, t.store_run, &mut steps)?;
        hoist_loads(&mut steps, hw, prefetch);
        Ok(steps)
    }

    /// Adds the STOREs of a pass's results: one per run of at most `most` consecutive tiles
    /// whose out lines are consecutive in the buffer and in DRAM, in the step of its last tile.
    fn store_runs(
        &self,
        g: &GemmPass,
        most: usize,
        steps: &mut [TileStep],
    ) -> Result<(), ScheduleError> {
        let rows = self.hw.rows;
        let dram_line = |s: &TileStep| ((s.rt * g.qt + s.ct) * rows) as u64;
        let mut k = 0;
        while k < steps.len() {
            let mut end = k + 1;
            while end < steps.len()
                && end - k < most
                && dram_line(&steps[end]) == dram_line(&steps[end - 1]) + rows as u64
                && steps[end].out_addr == steps[end - 1].out_addr + rows
            {
                end += 1;
            }
            let (at, to) = (steps[k].out_addr, g.out.line(dram_line(&steps[k])));
            let store = Self::store(Buf::Out, at, to, (end - k) * rows)?;
            steps[end - 1].instrs.push((store, g.pass));
            k = end;
        }
        Ok(())
    }

    fn tiling(
        &mut self,
        layer: &Layer,
        g: &GemmPass,
        room: Rooms,
        limits: Limits,
        index: usize,
    ) -> Result<Tiling, ScheduleError> {
        let shape = PassShape {
            pt: g.pt,
            qt: g.qt,
            groups: g.groups,
            a_per_line: g.a_per_line,
            a_beats: g.a.beats,
            b_beats: g.b.beats,
        };
        if room.out.len < 2 * self.hw.rows {
            return Err(layer_error(
                index,
                layer,
                format!(
                    "{}: the out buffer gives {} lines to this pass and needs 2 tiles of {} rows \
                     (double buffering); raise system.out_lines",
                    g.pass.name(),
                    room.out.len,
                    self.hw.rows
                ),
            ));
        }
        let room_lines = Room {
            act: room.act.len,
            wgt: room.wgt.len,
            out_tiles: out_slots(room.out.len, self.hw),
        };
        tiling::choose(&shape, room_lines, limits, self.transfer_cost())
            .map_err(|m| layer_error(index, layer, format!("{}: {m}", g.pass.name())))
    }

    /// What a LOAD and a STORE cost the DMA on this system beyond their beats, from
    /// `engines::sat::estimated_cycles` (one line of act: its fixed part is the cycles minus
    /// the beats at the port's rate).
    fn transfer_cost(&self) -> LoadCost {
        let hw = self.hw;
        let per_beat = beat_cycles(&hw.system);
        let one = |instr: Instr| {
            let beats = dram_beats(&instr, hw).map_or(0, |b| b.end - b.start);
            crate::estimate::cost(&instr, hw).saturating_sub(beats * per_beat)
        };
        let line = |store: bool| transfer(store, Buf::Act, 0, 0, 1);
        LoadCost {
            fixed: one(line(false)),
            store_fixed: one(line(true)),
            cycles_per_beat: per_beat as f64,
        }
    }

    /// The DMA cycles of a tiling's transfers on this system.
    fn load_cycles(&self, t: &Tiling) -> f64 {
        t.load_cycles(self.transfer_cost())
    }

    fn record_tiling(&mut self, layer: &Layer, g: &GemmPass, t: Tiling, interleaved: bool) {
        self.tilings.push(PassTiling {
            layer: layer.name.clone(),
            pass: g.pass,
            tiling: t,
            interleaved,
            row_tiles: g.pt,
            col_tiles: g.qt,
            groups: g.groups,
        });
    }
}

/// Steps a LOAD may move ahead of the tile that first reads it (at least; a pass that loads
/// a block by flow batch of tiles at once may move its LOADs that far).
const PREFETCH_STEPS: usize = 8;

/// Result tiles a pass's `lines` out lines hold (at most [`OUT_SLOTS`]).
fn out_slots(lines: usize, hw: &Hardware) -> usize {
    (lines / hw.rows).clamp(2, OUT_SLOTS)
}

/// Prefetch: moves each LOAD of a pass's tiles to the end of an earlier tile's step, as soon as
/// the lines it fills are no longer used there (after the last step that touches them) and at
/// most [`PREFETCH_STEPS`] steps ahead. The DMA, which runs in program order, then fetches the
/// next operand panel while the STCE still works on the current one instead of after its
/// stores. Moving a LOAD no earlier than the last use of its lines keeps what every GEMM reads.
fn hoist_loads(steps: &mut [TileStep], hw: &Hardware, prefetch: usize) {
    let mut last_use: Vec<Vec<Option<usize>>> =
        Buf::ALL.iter().map(|&b| vec![None; hw.lines(b)]).collect();
    let buf = |b: Buf| Buf::ALL.iter().position(|&x| x == b).unwrap_or(0);
    for k in 0..steps.len() {
        let instrs = std::mem::take(&mut steps[k].instrs);
        let mut kept = Vec::with_capacity(instrs.len());
        for (instr, pass) in instrs {
            let acc = accesses(&instr, hw);
            let spans = acc.reads.iter().chain(&acc.writes);
            if let Instr::Load { buf: b, .. } = instr {
                let w = &acc.writes[0];
                let busy_until = last_use[buf(b)][w.start..w.start + w.lines]
                    .iter()
                    .flatten()
                    .max()
                    .copied();
                let at = busy_until
                    .map_or(0, |u| u + 1)
                    .max(k.saturating_sub(prefetch));
                if at < k {
                    // No step from `at` on touches these lines before step k.
                    last_use[buf(b)][w.start..w.start + w.lines].fill(Some(at));
                    steps[at].instrs.push((instr, pass));
                    continue;
                }
            }
            for sp in spans {
                last_use[buf(sp.buf)][sp.start..sp.start + sp.lines].fill(Some(k));
            }
            kept.push((instr, pass));
        }
        steps[k].instrs = kept;
    }
}

fn layer_error(index: usize, layer: &Layer, message: String) -> ScheduleError {
    ScheduleError {
        layer: Some((index, layer.name.clone())),
        message,
    }
}

/// The DRAM tensors of one layer.
struct LayerTensors {
    ff: GemmPass,
    /// `None` when the step does not compute the layer's dX ([`Layer::bp`]).
    bp: Option<GemmPass>,
    wu: GemmPass,
    w32: Operand,
    m_f: Operand,
    w32_new: Operand,
    w16_new: Operand,
    m_f_new: Operand,
    w_f_new: Operand,
    w_b_new: Operand,
}

/// Builds the step of `net` on `hw`.
pub fn build(net: &Network, hw: &Hardware, opts: Options) -> Result<Built, ScheduleError> {
    let mut b = Builder {
        hw,
        ops: Vec::new(),
        tracker: Tracker::new(hw),
        map: Vec::new(),
        next_beat: 0,
        tilings: Vec::new(),
        barrier: None,
        deferred: Default::default(),
        slack: 0,
        spacing: coforge_generator::engines::sat::tile_spacing(&hw.geometry()),
    };
    // The SORE's two output slots at the top of wgt.
    let sore_slot = net
        .layers
        .iter()
        .filter(|l| l.sparsity == Sparsity::Sparse)
        .map(|l| (l.cout.div_ceil(hw.cols) * hw.cols).div_ceil(hw.m))
        .max()
        .unwrap_or(0);
    // The SORE's outputs go round a ring at the top of wgt: at least two of the largest, and
    // up to SORE_RING lines (an eighth of wgt at most), so that runs of them share one STORE.
    // No ring without sparse layers.
    let ring = if sore_slot == 0 {
        0
    } else {
        (2 * sore_slot).max(SORE_RING.min(hw.lines(Buf::Wgt) / 8))
    };
    let gemm_wgt = hw.lines(Buf::Wgt).saturating_sub(ring);
    if gemm_wgt < 2 {
        return Err(ScheduleError {
            layer: None,
            message: format!(
                "the wgt buffer ({} lines) cannot hold the SORE's two output slots of {} lines \
                 (the widest layer's output channels, padded to whole blocks, over M) and GEMM operands; raise system.wgt_lines",
                hw.lines(Buf::Wgt), sore_slot
            ),
        });
    }
    let mut sore = SoreRing {
        base: gemm_wgt,
        len: ring,
        cursor: 0,
        run: None,
    };
    let full = Rooms {
        act: Span {
            base: 0,
            len: hw.lines(Buf::Act),
        },
        wgt: Span {
            base: 0,
            len: gemm_wgt,
        },
        out: Span {
            base: 0,
            len: hw.lines(Buf::Out),
        },
    };
    let largest_block = net.layers.iter().map(|l| hw.padded(l.k)).max().unwrap_or(0);
    let weight_halves = 2 * largest_block <= hw.lines(Buf::Master);
    let weight_room = if weight_halves {
        hw.lines(Buf::Master) / 2
    } else {
        hw.lines(Buf::Master)
    };
    for (i, l) in net.layers.iter().enumerate() {
        if hw.padded(l.k) > weight_room {
            return Err(layer_error(
                i,
                l,
                format!(
                    "one output-channel block of its weights is Kp = {} lines and the master, \
                     w16 and mask buffers hold {}; raise system.weight_lines to at least {}",
                    hw.padded(l.k),
                    hw.lines(Buf::Master),
                    hw.padded(l.k)
                ),
            ));
        }
        if hw.padded(l.k) > usize::from(u16::MAX) {
            return Err(layer_error(
                i,
                l,
                format!(
                    "Kp = {} lines of one output-channel block do not fit the 16-bit line counts \
                     of LOAD, STORE and UPDATE; split the layer (at most {} reduction elements)",
                    hw.padded(l.k),
                    u16::MAX
                ),
            ));
        }
    }
    let tensors: Vec<LayerTensors> = net
        .layers
        .iter()
        .map(|l| layer_tensors(&mut b, l))
        .collect();

    let rooms = |split: bool| {
        let [bp_act, wu_act] = full.act.halves(split);
        let [bp_wgt, wu_wgt] = full.wgt.halves(split);
        let [bp_out, wu_out] = full.out.halves(split);
        [
            Rooms {
                act: bp_act,
                wgt: bp_wgt,
                out: bp_out,
            },
            Rooms {
                act: wu_act,
                wgt: wu_wgt,
                out: wu_out,
            },
        ]
    };
    let mut weight_chunk = 0usize;
    // The plan of one layer's BP and WU: tilings, tiles, weight work (in the backward order:
    // it takes weight chunks and SORE ring lines in turn).
    let plan = |b: &mut Builder,
                i: usize,
                weight_chunk: &mut usize,
                sore: &mut SoreRing|
     -> Result<LayerPlan, ScheduleError> {
        let l = &net.layers[i];
        let lt = &tensors[i];
        let kp = hw.padded(l.k);
        let per_chunk = (weight_room / kp).max(1);
        let bp_limits = Limits {
            max_columns_in_flight: None,
        };
        let wu_limits = Limits {
            max_columns_in_flight: Some(per_chunk),
        };
        // The BP pass (with its tiling and buffers) beside WU, or none: a layer whose dX the
        // step does not compute runs WU alone in the whole buffers.
        let (bp, t_wu, wu_room, interleave) = match &lt.bp {
            Some(bp) => {
                let mut pair =
                    |split: bool| -> Result<(Tiling, Tiling, [Rooms; 2]), ScheduleError> {
                        let [bp_room, wu_room] = rooms(split);
                        let t_bp = b.tiling(l, bp, bp_room, bp_limits, i)?;
                        let t_wu = b.tiling(l, &lt.wu, wu_room, wu_limits, i)?;
                        Ok((t_bp, t_wu, [bp_room, wu_room]))
                    };
                // Interleaving halves each pass's buffers. It is used for a layer when the
                // halves cost the DMA no more load time than whole buffers (the system is
                // usually memory bound).
                let whole = pair(false)?;
                let halves = if opts.interleave {
                    pair(true).ok()
                } else {
                    None
                };
                let cost =
                    |p: &(Tiling, Tiling, [Rooms; 2])| b.load_cycles(&p.0) + b.load_cycles(&p.1);
                let interleave = halves.as_ref().is_some_and(|h| cost(h) <= cost(&whole));
                let (t_bp, t_wu, [bp_room, wu_room]) = if interleave {
                    halves.unwrap_or(whole)
                } else {
                    whole
                };
                (Some((bp, t_bp, bp_room)), t_wu, wu_room, interleave)
            }
            None => (None, b.tiling(l, &lt.wu, full, wu_limits, i)?, full, false),
        };
        if let Some((bp, t_bp, _)) = &bp {
            b.record_tiling(l, bp, *t_bp, interleave);
        }
        b.record_tiling(l, &lt.wu, t_wu, interleave);
        let bp_steps = match &bp {
            Some((bp, t_bp, bp_room)) => b.tile_steps(bp, t_bp, *bp_room, bp_limits)?,
            None => Vec::new(),
        };
        let wu_tiles = b.tile_steps(&lt.wu, &t_wu, wu_room, wu_limits)?;
        let chunk_of = |ct: usize| match t_wu.order {
            Order::AStationary => 0,
            Order::BStationary => ct / t_wu.block,
            Order::Split => ct / per_chunk,
        };
        let ctx = WeightPhase {
            hw,
            layer: l,
            lt,
            kp,
            sore_slot,
        };
        let WeightSteps {
            steps: wu_steps,
            first_loads,
        } = weight_steps(&ctx, wu_tiles, chunk_of, weight_halves, weight_chunk, sore)?;
        // Interleave: the pass with more tiles takes proportionally more turns.
        let (nb, nw) = (bp_steps.len(), wu_steps.len());
        let mut order: Vec<(usize, bool)> = Vec::with_capacity(nb + nw);
        if interleave {
            let (mut ib, mut iw) = (0usize, 0usize);
            while ib < nb || iw < nw {
                // Take BP while its share of progress is behind WU's (cross-multiplied).
                if iw >= nw || (ib < nb && ib * nw.max(1) <= iw * nb) {
                    order.push((ib, true));
                    ib += 1;
                } else {
                    order.push((iw, false));
                    iw += 1;
                }
            }
        } else {
            order.extend((0..nb).map(|k| (k, true)));
            order.extend((0..nw).map(|k| (k, false)));
        }
        Ok(LayerPlan {
            order,
            bp_steps: bp_steps.into_iter().map(|s| Some(s.instrs)).collect(),
            wu_steps: wu_steps.into_iter().map(Some).collect(),
            prefetch: first_loads
                .into_iter()
                .flat_map(|(instr, pass)| pieces(instr, hw).into_iter().map(move |p| (p, pass)))
                .collect(),
        })
    };
    // The first backward layer's plan comes first: its first weight chunk's LOADs fill the
    // DMA's idle time during FF (no earlier instruction uses the weight buffers).
    let last = net.layers.len().saturating_sub(1);
    let mut first_plan = match net.layers.is_empty() {
        true => None,
        false => Some(plan(&mut b, last, &mut weight_chunk, &mut sore)?),
    };
    for (i, l) in net.layers.iter().enumerate() {
        let t = b.tiling(
            l,
            &tensors[i].ff,
            full,
            Limits {
                max_columns_in_flight: None,
            },
            i,
        )?;
        b.record_tiling(l, &tensors[i].ff, t, false);
        let ff_limits = Limits {
            max_columns_in_flight: None,
        };
        for step in b.tile_steps(&tensors[i].ff, &t, full, ff_limits)? {
            for (instr, pass) in step.instrs {
                b.push(instr, i, pass);
            }
            if let Some(p) = first_plan.as_mut() {
                b.prefetch(&mut p.prefetch, last);
            }
        }
    }

    for i in (0..net.layers.len()).rev() {
        let LayerPlan {
            order,
            mut bp_steps,
            mut wu_steps,
            mut prefetch,
        } = match first_plan.take() {
            Some(p) => p,
            None => plan(&mut b, i, &mut weight_chunk, &mut sore)?,
        };
        for (k, is_bp) in order {
            if !is_bp {
                while let Some((instr, pass)) = prefetch.pop_front() {
                    b.push(instr, i, pass);
                }
            }
            let instrs = if is_bp {
                bp_steps[k].take()
            } else {
                wu_steps[k].take()
            };
            for (instr, pass) in instrs.unwrap_or_default() {
                // The weight phase's STOREs and PRUNE_B (with its reloads) wait in the queue.
                let weight_store = matches!(instr, Instr::Store { buf, .. } if buf != Buf::Out);
                if weight_store || pass == Pass::PruneB {
                    b.defer(instr, i, pass, opts.pregen);
                } else {
                    b.push(instr, i, pass);
                }
            }
            if is_bp {
                b.prefetch(&mut prefetch, i);
            }
        }
        if !opts.pregen {
            // The next layer's GEMMs wait until this layer's weights are done.
            b.barrier = b.ops.len().checked_sub(1).map(|l| l as u32);
        }
    }
    let rest = b.deferred.len();
    b.flush(rest);
    Ok(Built {
        ops: b.ops,
        memory_map: b.map,
        tilings: b.tilings,
    })
}

fn layer_tensors(b: &mut Builder, l: &Layer) -> LayerTensors {
    let hw = b.hw;
    let sparse = l.sparsity == Sparsity::Sparse;
    let mode = if sparse {
        GemmMode::Sparse
    } else {
        GemmMode::Dense
    };
    // Formats as `engines::sat::lines` packs them: FF and BP group their reductions by the
    // layer's mode, WU by N (dense); X^T and dW^T have Kp rows (zero rows past K), so that UPDATE
    // writes every master and w16 line of a block, padding included, and PRUNE_F reads zeros
    // there.
    let (g, gd) = (hw.group(mode), hw.n);
    let kp = hw.padded(l.k);
    let (kg, cg, rg) = (l.k.div_ceil(g), l.cout.div_ceil(g), l.r.div_ceil(gd));
    let (rt, kt, ct) = (
        l.r.div_ceil(hw.rows),
        l.k.div_ceil(hw.cols),
        l.cout.div_ceil(hw.cols),
    );
    let kt_rows = kp.div_ceil(hw.rows);
    // act lines of one row tile's panel (a dense act line carries P groups).
    let geo = hw.geometry();
    let (per, per_d) = (
        geo.act_groups_per_line(mode),
        geo.act_groups_per_line(GemmMode::Dense),
    );
    use Direction::{Input, Output};
    let x = b.alloc(
        "x",
        l,
        Input,
        Buf::Act,
        [l.r, l.k],
        g,
        rt * geo.act_lines(kg, mode),
    );
    let w_f = b.alloc("w_f", l, Input, Buf::Wgt, [l.k, l.cout], g, ct * kg);
    let y = b.alloc(
        "y",
        l,
        Output,
        Buf::Out,
        [l.r, l.cout],
        0,
        rt * ct * hw.rows,
    );
    // BP's operands and result, only when the step computes the layer's dX.
    let bp = l.bp.then(|| GemmPass {
        pass: Pass::Bp,
        mode,
        a_per_line: per,
        pt: rt,
        qt: kt,
        groups: cg,
        a: b.alloc(
            "dy",
            l,
            Input,
            Buf::Act,
            [l.r, l.cout],
            g,
            rt * geo.act_lines(cg, mode),
        ),
        b: b.alloc("w_b", l, Input, Buf::Wgt, [l.cout, l.k], g, kt * cg),
        out: b.alloc("dx", l, Output, Buf::Out, [l.r, l.k], 0, rt * kt * hw.rows),
    });
    let xt = b.alloc(
        "x_t",
        l,
        Input,
        Buf::Act,
        [kp, l.r],
        gd,
        kt_rows * geo.act_lines(rg, GemmMode::Dense),
    );
    let dy_wu = b.alloc("dy_wu", l, Input, Buf::Wgt, [l.r, l.cout], gd, ct * rg);
    let dwt = b.alloc(
        "dw_t",
        l,
        Output,
        Buf::Out,
        [kp, l.cout],
        0,
        kt_rows * ct * hw.rows,
    );
    let w = [l.cout, l.k];
    let w32 = b.alloc("w32", l, Input, Buf::Master, w, 0, ct * kp);
    let m_f = b.alloc("m_f", l, Input, Buf::Mask, w, 0, ct * kp);
    let w32_new = b.alloc("w32_new", l, Output, Buf::Master, w, 0, ct * kp);
    let w16_new = b.alloc("w16_new", l, Output, Buf::W16, w, 0, ct * kp);
    let none = Operand { addr: 0, beats: 0 };
    let (m_f_new, w_f_new) = if sparse {
        (
            b.alloc("m_f_new", l, Output, Buf::Mask, w, 0, ct * kp),
            b.alloc("w_f_new", l, Output, Buf::Wgt, [l.k, l.cout], hw.m, ct * kg),
        )
    } else {
        (none, none)
    };
    // W_B' (PRUNE_B) serves only the next step's BP.
    let w_b_new = if sparse && l.bp {
        b.alloc("w_b_new", l, Output, Buf::Wgt, [l.cout, l.k], hw.m, kt * cg)
    } else {
        none
    };
    LayerTensors {
        ff: GemmPass {
            pass: Pass::Ff,
            mode,
            a_per_line: per,
            pt: rt,
            qt: ct,
            groups: kg,
            a: x,
            b: w_f,
            out: y,
        },
        bp,
        wu: GemmPass {
            pass: Pass::Wu,
            mode: GemmMode::Dense,
            a_per_line: per_d,
            pt: kt_rows,
            qt: ct,
            groups: rg,
            a: xt,
            b: dy_wu,
            out: dwt,
        },
        w32,
        m_f,
        w32_new,
        w16_new,
        m_f_new,
        w_f_new,
        w_b_new,
    }
}

struct WeightPhase<'a> {
    hw: &'a Hardware,
    layer: &'a Layer,
    lt: &'a LayerTensors,
    kp: usize,
    sore_slot: usize,
}

/// The WU tiles of a layer with the weight work woven in: before the first tile of a chunk of
/// output-channel blocks, the chunk's W32 and M_F are loaded; after each tile, dW^T is stored and
/// UPDATE runs on it; after a chunk's last tile, W32' and W16' are stored and PRUNE_F prunes each
/// block. After the last chunk, PRUNE_B prunes every block of `cols` k's (reloading W16' and
/// M_F' from DRAM when the layer did not fit one chunk), when the step computes the layer's dX.
fn weight_steps(
    ctx: &WeightPhase,
    tiles: Vec<TileStep>,
    chunk_of: impl Fn(usize) -> usize,
    halves: bool,
    chunk_counter: &mut usize,
    sore: &mut SoreRing,
) -> Result<WeightSteps, ScheduleError> {
    let hw = ctx.hw;
    let (kp, lt) = (ctx.kp, ctx.lt);
    let sparse = ctx.layer.sparsity == Sparsity::Sparse;
    let blocks = ctx.layer.cout.div_ceil(hw.cols);
    // wgt lines FF and BP read per block: the PRUNE outputs beyond them are all-padding groups.
    let kg = ctx.layer.k.div_ceil(hw.m);
    let cg = ctx.layer.cout.div_ceil(hw.m);
    let n_chunks = tiles.iter().map(|t| chunk_of(t.ct)).max().unwrap_or(0) + 1;
    // Per chunk: its blocks, where its first and last tiles are.
    let mut first_tile = vec![usize::MAX; n_chunks];
    let mut last_tile = vec![0; n_chunks];
    let mut chunk_blocks: Vec<Vec<usize>> = vec![Vec::new(); n_chunks];
    for (k, t) in tiles.iter().enumerate() {
        let c = chunk_of(t.ct);
        first_tile[c] = first_tile[c].min(k);
        last_tile[c] = k;
        if !chunk_blocks[c].contains(&t.ct) {
            chunk_blocks[c].push(t.ct);
        }
    }
    let room = if halves {
        hw.lines(Buf::Master) / 2
    } else {
        hw.lines(Buf::Master)
    };
    let mut bases = vec![0usize; n_chunks];
    for base in bases.iter_mut() {
        *base = if halves {
            (*chunk_counter % 2) * room
        } else {
            0
        };
        *chunk_counter += 1;
    }
    let slot_of = |c: usize, ct: usize| {
        let j = chunk_blocks[c].iter().position(|&x| x == ct).unwrap_or(0);
        bases[c] + j * kp
    };
    let load = Builder::load;
    let store = Builder::store;
    let mut steps = Vec::with_capacity(tiles.len() + 1);
    let mut first_loads = Vec::new();
    for (k, t) in tiles.into_iter().enumerate() {
        let c = chunk_of(t.ct);
        let mut instrs = Vec::new();
        if first_tile[c] == k {
            let to = if k == 0 {
                &mut first_loads
            } else {
                &mut instrs
            };
            for &cb in &chunk_blocks[c] {
                let at = slot_of(c, cb);
                let from = (cb * kp) as u64;
                for (buf, tensor) in [(Buf::Master, lt.w32), (Buf::Mask, lt.m_f)] {
                    to.push((load(buf, at, tensor.line(from), kp)?, Pass::Update));
                }
            }
        }
        instrs.extend(t.instrs);
        let k0 = t.rt * hw.rows;
        let lines = hw.rows.min(kp - k0);
        let at = slot_of(c, t.ct) + k0;
        instrs.push((
            Instr::Update {
                out_addr: lines16(t.out_addr),
                master_addr: lines16(at),
                w16_addr: lines16(at),
                mask_addr: lines16(at),
                lines: lines16(lines),
                wait: 0,
                signal: 0,
            },
            Pass::Update,
        ));
        if last_tile[c] == k {
            for &cb in &chunk_blocks[c] {
                let at = slot_of(c, cb);
                let to = (cb * kp) as u64;
                for (buf, tensor) in [(Buf::Master, lt.w32_new), (Buf::W16, lt.w16_new)] {
                    instrs.push((store(buf, at, tensor.line(to), kp)?, Pass::Update));
                }
                if !sparse {
                    continue;
                }
                // PRUNE_F in pieces of at most one SORE slot of output lines; W_F' leaves the
                // ring in runs, M_F' (in place in the mask buffer) with one STORE per block.
                let piece = (ctx.sore_slot * hw.m).min(kp) / hw.m * hw.m;
                let mut k0 = 0;
                while k0 < kp {
                    let n = piece.min(kp - k0);
                    let (g0, groups) = (k0 / hw.m, (n / hw.m).min(kg.saturating_sub(k0 / hw.m)));
                    let wf = (cb * kg + g0) as u64;
                    let wgt_at = sore.put(n / hw.m, (lt.w_f_new, wf, groups), &mut instrs)?;
                    instrs.push((
                        Instr::PruneF {
                            w16_addr: lines16(at + k0),
                            lines: lines16(n),
                            wgt_addr: lines16(wgt_at),
                            mask_addr: lines16(at + k0),
                            wait: 0,
                            signal: 0,
                        },
                        Pass::PruneF,
                    ));
                    k0 += n;
                }
                sore.flush(&mut instrs, Pass::PruneF)?;
                let mf = (cb * kp) as u64;
                instrs.push((store(Buf::Mask, at, lt.m_f_new.line(mf), kp)?, Pass::PruneF));
            }
        }
        steps.push(instrs);
    }
    // M_B and W_B serve only BP: no PRUNE_B for a dense layer or one whose dX is not computed.
    if !sparse || !ctx.layer.bp {
        return Ok(WeightSteps { steps, first_loads });
    }
    let mut instrs = Vec::new();
    let kblocks = ctx.layer.k.div_ceil(hw.cols);
    let mut prune_b = |instrs: &mut Vec<(Instr, Pass)>, w16_at: usize, stride: usize, kb: usize| {
        let to = (kb * cg) as u64;
        // PRUNE_B writes the groups of every padded block's lanes (`access`); the first `cg`
        // of them are W_B' (the rest are padding lanes', never stored).
        let written = (blocks * hw.cols).div_ceil(hw.m);
        let wgt_at = sore.put(written, (lt.w_b_new, to, cg), instrs)?;
        instrs.push((
            Instr::PruneB {
                w16_addr: lines16(w16_at),
                mask_addr: lines16(w16_at),
                stride: lines16(stride),
                blocks: lines16(blocks),
                k_block: lines16(kb),
                wgt_addr: lines16(wgt_at),
                wait: 0,
                signal: 0,
            },
            Pass::PruneB,
        ));
        Ok::<_, ScheduleError>(())
    };
    if n_chunks == 1 {
        // Every block is still in the weight buffers, block cb at bases[0] + cb * Kp.
        for kb in 0..kblocks {
            prune_b(&mut instrs, bases[0] + kb * hw.cols, kp, kb)?;
        }
    } else {
        // Reload W16' and M_F' a few k blocks at a time, every output-channel block of them.
        let per = (room / (blocks * hw.cols)).max(1).min(kblocks);
        if blocks * hw.cols > room {
            return Err(ScheduleError {
                layer: None,
                message: format!(
                    "layer `{}`: PRUNE_B needs the {} lines of every output-channel block of one \
                     k block in the weight buffers, which hold {}; raise system.weight_lines",
                    ctx.layer.name,
                    blocks * hw.cols,
                    room
                ),
            });
        }
        let base = if halves {
            (*chunk_counter % 2) * room
        } else {
            0
        };
        *chunk_counter += 1;
        for kb0 in (0..kblocks).step_by(per) {
            let nk = per.min(kblocks - kb0) * hw.cols;
            let stride = per * hw.cols;
            for cb in 0..blocks {
                let from = (cb * kp + kb0 * hw.cols) as u64;
                let at = base + cb * stride;
                for (buf, tensor) in [(Buf::W16, lt.w16_new), (Buf::Mask, lt.m_f_new)] {
                    instrs.push((load(buf, at, tensor.line(from), nk)?, Pass::PruneB));
                }
            }
            for kb in kb0..kb0 + nk / hw.cols {
                prune_b(&mut instrs, base + (kb - kb0) * hw.cols, stride, kb)?;
            }
        }
    }
    sore.flush(&mut instrs, Pass::PruneB)?;
    steps.push(instrs);
    Ok(WeightSteps { steps, first_loads })
}

/// One layer's BP and WU as planned: the order of their steps (`(index, is_bp)`), the steps,
/// and the first weight chunk's LOAD pieces not emitted yet.
struct LayerPlan {
    order: Vec<(usize, bool)>,
    bp_steps: Vec<Option<Vec<(Instr, Pass)>>>,
    wu_steps: Vec<Option<Vec<(Instr, Pass)>>>,
    prefetch: std::collections::VecDeque<(Instr, Pass)>,
}

/// A layer's WU tiles with its weight work, and the first chunk's W32 and M_F LOADs, which
/// may run before the first tile (during BP: neither touches the other's lines).
struct WeightSteps {
    steps: Vec<Vec<(Instr, Pass)>>,
    first_loads: Vec<(Instr, Pass)>,
}

/// Most lines of the ring of SORE outputs at the top of wgt.
const SORE_RING: usize = 256;

/// The ring of SORE output lines at the top of wgt (PRUNE_F's W_F' and PRUNE_B's W_B'
/// groups). Outputs take its lines in turn; outputs that follow each other in the ring and in
/// DRAM are stored with one STORE (a *run*, at most half the ring, so the SORE fills the other
/// half meanwhile).
struct SoreRing {
    base: usize,
    len: usize,
    cursor: usize,
    /// The run not stored yet: first ring line, tensor, first DRAM line, lines.
    run: Option<(usize, Operand, u64, usize)>,
}

impl SoreRing {
    /// The ring line of the next output of `lines` lines, of which the first `store.2` go to
    /// line `store.1` of tensor `store.0`. The STORE of the pending run is pushed first when
    /// the new output does not extend it.
    fn put(
        &mut self,
        lines: usize,
        store: (Operand, u64, usize),
        instrs: &mut Vec<(Instr, Pass)>,
    ) -> Result<usize, ScheduleError> {
        let (tensor, line, n) = store;
        if self.cursor + lines > self.len {
            self.cursor = 0;
        }
        let at = self.base + self.cursor;
        self.cursor += lines;
        let extends = self.run.is_some_and(|(r_at, r_tensor, r_line, r_lines)| {
            r_at + r_lines == at
                && r_tensor.addr == tensor.addr
                && r_line + r_lines as u64 == line
                && r_lines + n <= self.len / 2
        });
        let pass = instrs.last().map_or(Pass::PruneF, |i| i.1);
        if !extends {
            self.flush(instrs, pass)?;
        }
        if n > 0 {
            self.run = Some(match self.run {
                Some((r_at, r_tensor, r_line, r_lines)) if extends => {
                    (r_at, r_tensor, r_line, r_lines + n)
                }
                _ => (at, tensor, line, n),
            });
        }
        Ok(at)
    }

    /// Pushes the STORE of the pending run.
    fn flush(&mut self, instrs: &mut Vec<(Instr, Pass)>, pass: Pass) -> Result<(), ScheduleError> {
        if let Some((at, tensor, line, lines)) = self.run.take() {
            instrs.push((
                Builder::store(Buf::Wgt, at, tensor.line(line), lines)?,
                pass,
            ));
        }
        Ok(())
    }
}
