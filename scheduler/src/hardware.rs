//! What the scheduler needs to know about a SAT system: the array, the N:M, the buffer depths and
//! the memory port (from a config's `[stce]`, `[train]` and `[system]`).

use serde::{Deserialize, Serialize};

use crate::isa::Buf;

/// The system parameters the scheduler tiles and estimates for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardware {
    pub rows: usize,
    pub cols: usize,
    pub n: usize,
    pub m: usize,
    pub act_lines: usize,
    pub wgt_lines: usize,
    pub out_lines: usize,
    /// Depth of each of the master, w16 and mask buffers.
    pub weight_lines: usize,
    pub imem_depth: usize,
    pub mem_bits: usize,
    pub mem_latency: u64,
    pub mem_bytes_per_cycle: u64,
    /// Instructions the controller's FIFO of each engine holds.
    pub fifo_depth: usize,
}

impl Hardware {
    /// Bits of one index in a compressed group: ceil(log2 M), at least 1.
    pub fn index_bits(&self) -> usize {
        let mut bits = 1;
        while (1usize << bits) < self.m {
            bits += 1;
        }
        bits
    }

    /// Reduction elements per group: M in sparse mode, N in dense mode.
    pub fn group(&self, sparse: bool) -> usize {
        if sparse {
            self.m
        } else {
            self.n
        }
    }

    /// Width of one line of a buffer in bits (SAT-CONTRACT section 2).
    pub fn line_bits(&self, buf: Buf) -> usize {
        match buf {
            Buf::Act => self.rows * self.m * 16,
            Buf::Wgt => self.cols * self.n * (16 + self.index_bits()),
            Buf::Out | Buf::Master => self.cols * 32,
            Buf::W16 => self.cols * 16,
            Buf::Mask => self.cols,
        }
    }

    /// Memory beats per line of `buf` in the DRAM image (each line padded to whole beats).
    pub fn beats_per_line(&self, buf: Buf) -> u64 {
        self.line_bits(buf).div_ceil(self.mem_bits) as u64
    }

    /// Depth of a buffer.
    pub fn lines(&self, buf: Buf) -> usize {
        match buf {
            Buf::Act => self.act_lines,
            Buf::Wgt => self.wgt_lines,
            Buf::Out => self.out_lines,
            Buf::Master | Buf::W16 | Buf::Mask => self.weight_lines,
        }
    }

    /// `len` padded to a multiple of M and of `cols` (the layout of master/w16/mask lines).
    pub fn padded(&self, len: usize) -> usize {
        len.next_multiple_of(lcm(self.m, self.cols))
    }
}

fn lcm(a: usize, b: usize) -> usize {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}
