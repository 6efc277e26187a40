//! Which buffer lines each instruction reads and writes: the one description of an instruction's
//! data effects, from which the builder derives its dependencies and [`crate::validate`] checks a
//! schedule. DRAM is not tracked here: one DMA engine runs every LOAD and STORE in program order,
//! so a STORE and a later LOAD of the same beats can never pass each other; the builder keeps
//! that program order right when it defers STOREs (`Builder::push`).

use crate::hardware::Hardware;
use crate::isa::{Buf, Instr};

/// `lines` consecutive lines of `buf` from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lines {
    pub buf: Buf,
    pub start: usize,
    pub lines: usize,
}

impl std::fmt::Display for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lines {}..{}",
            self.buf.name(),
            self.start,
            self.start + self.lines
        )
    }
}

/// The lines an instruction reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accesses {
    pub reads: Vec<Lines>,
    pub writes: Vec<Lines>,
}

fn span(buf: Buf, start: impl Into<usize>, lines: usize) -> Lines {
    Lines {
        buf,
        start: start.into(),
        lines,
    }
}

/// The buffer lines `instr` reads and writes on `hw`.
///
/// - LOAD writes `lines` lines of its buffer; STORE reads them.
/// - GEMM reads `groups` wgt lines and the act lines of `groups` groups
///   (`Geometry::act_lines`: `ceil(groups / P)` dense); with `last` it writes `rows` out lines (a GEMM
///   without `last` keeps its sums in the PEs, for the next GEMM of the same tile).
/// - UPDATE reads `lines` out, master and mask lines and writes the master and w16 lines.
/// - PRUNE_F reads `lines` w16 lines and writes `ceil(lines / M)` wgt lines and `lines` mask
///   lines (the new M_F).
/// - PRUNE_B reads `cols` w16 and mask lines of each of `blocks` blocks, block b from
///   `addr + b * stride`, and writes `ceil(blocks * cols / M)` wgt lines.
pub fn accesses(instr: &Instr, hw: &Hardware) -> Accesses {
    let mut a = Accesses::default();
    match *instr {
        Instr::Load {
            buf,
            buf_addr,
            lines,
            ..
        } => a.writes.push(span(buf, buf_addr, lines.into())),
        Instr::Store {
            buf,
            buf_addr,
            lines,
            ..
        } => a.reads.push(span(buf, buf_addr, lines.into())),
        Instr::Gemm {
            mode,
            act_addr,
            wgt_addr,
            groups,
            out_addr,
            last,
            ..
        } => {
            let act_lines = hw.geometry().act_lines(groups.into(), mode);
            a.reads.push(span(Buf::Act, act_addr, act_lines));
            a.reads.push(span(Buf::Wgt, wgt_addr, groups.into()));
            if last {
                a.writes.push(span(Buf::Out, out_addr, hw.rows));
            }
        }
        Instr::Update {
            out_addr,
            master_addr,
            w16_addr,
            mask_addr,
            lines,
            ..
        } => {
            let lines = usize::from(lines);
            a.reads.push(span(Buf::Out, out_addr, lines));
            a.reads.push(span(Buf::Master, master_addr, lines));
            a.reads.push(span(Buf::Mask, mask_addr, lines));
            a.writes.push(span(Buf::Master, master_addr, lines));
            a.writes.push(span(Buf::W16, w16_addr, lines));
        }
        Instr::PruneF {
            w16_addr,
            lines,
            wgt_addr,
            mask_addr,
            ..
        } => {
            let lines = usize::from(lines);
            a.reads.push(span(Buf::W16, w16_addr, lines));
            a.writes
                .push(span(Buf::Wgt, wgt_addr, lines.div_ceil(hw.m)));
            a.writes.push(span(Buf::Mask, mask_addr, lines));
        }
        Instr::PruneB {
            w16_addr,
            mask_addr,
            stride,
            blocks,
            wgt_addr,
            ..
        } => {
            for b in 0..usize::from(blocks) {
                let offset = b * usize::from(stride);
                a.reads
                    .push(span(Buf::W16, usize::from(w16_addr) + offset, hw.cols));
                a.reads
                    .push(span(Buf::Mask, usize::from(mask_addr) + offset, hw.cols));
            }
            let out = (usize::from(blocks) * hw.cols).div_ceil(hw.m);
            a.writes.push(span(Buf::Wgt, wgt_addr, out));
        }
        Instr::End => {}
    }
    a
}

/// The DRAM beats a LOAD reads or a STORE writes.
pub fn dram_beats(instr: &Instr, hw: &Hardware) -> Option<std::ops::Range<u64>> {
    match *instr {
        Instr::Load {
            buf,
            dram_addr,
            lines,
            ..
        }
        | Instr::Store {
            buf,
            dram_addr,
            lines,
            ..
        } => {
            let start = u64::from(dram_addr);
            Some(start..start + u64::from(lines) * hw.beats_per_line(buf))
        }
        _ => None,
    }
}
