//! The line formats of the SAT system (`engines::sat`, section "Buffers and line formats"):
//! matrices to buffer lines and back, line counts, and lines to memory beats. The harness and the
//! scheduler both use these, so that the DRAM image and the instruction stream agree.
//!
//! Values are raw bits (fp16 as `u16`, fp32 as `u32`, mask bits as 0/1) in row-major slices.
//! Padding (partial tiles, partial groups) is zero, which is +0.0 in fp16 and fp32: a zero
//! product adds +0.0 or -0.0 to a sum, and the padded elements are never read back.

use super::isa::{Buf, GemmMode};
use crate::config::Config;

/// Lines of one buffer format: `count` lines of `words` little-endian u32 words each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lines {
    pub words: usize,
    pub data: Vec<u32>,
}

impl Lines {
    pub fn new(bits: u32, count: usize) -> Lines {
        let words = bits.div_ceil(32) as usize;
        Lines {
            words,
            data: vec![0; words * count],
        }
    }
    pub fn count(&self) -> usize {
        self.data.len().checked_div(self.words).unwrap_or(0)
    }
    pub fn line(&self, i: usize) -> &[u32] {
        &self.data[i * self.words..(i + 1) * self.words]
    }
    fn set(&mut self, line: usize, lo: u32, width: u32, value: u64) {
        set_bits(
            &mut self.data[line * self.words..(line + 1) * self.words],
            lo,
            width,
            value,
        );
    }
    fn get(&self, line: usize, lo: u32, width: u32) -> u64 {
        get_bits(self.line(line), lo, width)
    }
}

/// Writes `width <= 64` bits of `value` at bit `lo` of `words`.
pub fn set_bits(words: &mut [u32], lo: u32, width: u32, value: u64) {
    for i in 0..width {
        let b = lo + i;
        let w = &mut words[(b / 32) as usize];
        let mask = 1u32 << (b % 32);
        if (value >> i) & 1 == 1 {
            *w |= mask;
        } else {
            *w &= !mask;
        }
    }
}

/// Reads `width <= 64` bits at bit `lo` of `words`.
pub fn get_bits(words: &[u32], lo: u32, width: u32) -> u64 {
    (0..width).fold(0u64, |v, i| {
        let b = lo + i;
        v | (u64::from((words[(b / 32) as usize] >> (b % 32)) & 1) << i)
    })
}

/// The shape parameters every line format depends on, and the one the instructions' timing
/// adds (`wuve_pipeline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub rows: u32,
    pub cols: u32,
    pub n: u32,
    pub m: u32,
    pub mem_bits: u32,
    /// The WUVE is pipelined (`[train] wuve_pipeline`): an UPDATE's results come
    /// `engines::wuve::PIPELINED_LATENCY` cycles after its lines enter, not `LATENCY`.
    pub wuve_pipeline: bool,
}

impl Geometry {
    /// The geometry of a config with `[stce]` and `[system]` (`None` without them).
    pub fn of(cfg: &Config) -> Option<Geometry> {
        let (stce, system) = (cfg.stce.as_ref()?, cfg.system.as_ref()?);
        Some(Geometry {
            rows: stce.rows,
            cols: stce.cols,
            n: stce.n,
            m: stce.m,
            mem_bits: system.mem_bits,
            wuve_pipeline: cfg.train.as_ref().is_some_and(|t| t.wuve_pipeline),
        })
    }

    /// IB: bits of one stored index, ceil(log2 M), at least 1.
    pub fn index_bits(&self) -> u32 {
        crate::rtl::index_bits(self.m)
    }

    /// Reduction elements per group: M sparse, N dense.
    pub fn group(&self, mode: GemmMode) -> u32 {
        match mode {
            GemmMode::Sparse => self.m,
            GemmMode::Dense => self.n,
        }
    }

    /// Width of one line of `buf`.
    pub fn line_bits(&self, buf: Buf) -> u32 {
        match buf {
            Buf::Act => self.rows * self.m * 16,
            Buf::Wgt => self.cols * self.n * (16 + self.index_bits()),
            Buf::Out | Buf::Master => self.cols * 32,
            Buf::W16 => self.cols * 16,
            Buf::Mask => self.cols,
        }
    }

    /// Memory beats one line of `buf` occupies in DRAM (and moves on the port).
    pub fn beats_per_line(&self, buf: Buf) -> u32 {
        self.line_bits(buf).div_ceil(self.mem_bits)
    }

    /// Kp: a weight tensor's K padded to a multiple of M and of cols (the lines of one cout block
    /// in the master/w16/mask formats).
    pub fn k_padded(&self, k: usize) -> usize {
        let unit = lcm(self.m as usize, self.cols as usize);
        k.div_ceil(unit) * unit
    }

    /// Groups along a reduction of length `k` (Kg).
    pub fn groups(&self, k: usize, mode: GemmMode) -> usize {
        k.div_ceil(self.group(mode) as usize)
    }

    /// Groups one act line holds in `mode`: 1 sparse (a group is M elements and fills the
    /// line), P = floor(M / N) dense (a group is N elements: group `g` of a row tile sits at
    /// slots `(g % P) * N ..` of line `g / P`, and the PE's M:1 select takes it out).
    pub fn act_groups_per_line(&self, mode: GemmMode) -> usize {
        match mode {
            GemmMode::Sparse => 1,
            GemmMode::Dense => (self.m / self.n) as usize,
        }
    }

    /// act lines that `groups` groups of one row tile take in `mode` (a row tile's panel:
    /// Lp = ceil(groups / P)).
    pub fn act_lines(&self, groups: usize, mode: GemmMode) -> usize {
        groups.div_ceil(self.act_groups_per_line(mode))
    }

    /// act lines of A (`r x k`, fp16): line `t * Lp + g / P` holds rows `t*rows ..` of group `g`
    /// (Kg groups of G = [`Geometry::group`] elements, P = [`Geometry::act_groups_per_line`],
    /// Lp = [`Geometry::act_lines`] of Kg); row `rr`, element `j` of the group at bits
    /// `[(rr*M + (g % P)*G + j)*16 +: 16]`. Sparse mode (P = 1) fills a line with one group;
    /// slots past the last group of a line are zero.
    pub fn pack_act(&self, a: &[u16], r: usize, k: usize, mode: GemmMode) -> Lines {
        assert_eq!(a.len(), r * k, "pack_act: A is not r x k");
        let (rows, g_size, kg) = (
            self.rows as usize,
            self.group(mode) as usize,
            self.groups(k, mode),
        );
        let (per_line, lp) = (self.act_groups_per_line(mode), self.act_lines(kg, mode));
        let tiles = r.div_ceil(rows);
        let mut out = Lines::new(self.line_bits(Buf::Act), tiles * lp);
        for t in 0..tiles {
            for g in 0..kg {
                let (line, slot0) = (t * lp + g / per_line, (g % per_line) * g_size);
                for rr in 0..rows.min(r - t * rows) {
                    for j in 0..g_size.min(k - g * g_size) {
                        let v = a[(t * rows + rr) * k + g * g_size + j];
                        let lo = (rr as u32 * self.m + (slot0 + j) as u32) * 16;
                        out.set(line, lo, 16, u64::from(v));
                    }
                }
            }
        }
        out
    }

    /// Position of value `i` of column `c` in a wgt line, and of its index (just above it).
    fn wgt_slot(&self, c: u32, i: u32) -> u32 {
        (c * self.n + i) * (16 + self.index_bits())
    }

    /// wgt lines of a dense B (`k x c`, fp16) for dense mode: line `ct * Kg + g` holds columns
    /// `ct*cols ..` of group `g` (N consecutive reduction elements, indices zero).
    pub fn pack_wgt_dense(&self, b: &[u16], k: usize, c: usize) -> Lines {
        assert_eq!(b.len(), k * c, "pack_wgt_dense: B is not k x c");
        let (cols, n) = (self.cols as usize, self.n as usize);
        let kg = self.groups(k, GemmMode::Dense);
        let ctiles = c.div_ceil(cols);
        let mut out = Lines::new(self.line_bits(Buf::Wgt), ctiles * kg);
        for ct in 0..ctiles {
            for g in 0..kg {
                for cc in 0..cols.min(c - ct * cols) {
                    for i in 0..n.min(k - g * n) {
                        let v = b[(g * n + i) * c + ct * cols + cc];
                        out.set(
                            ct * kg + g,
                            self.wgt_slot(cc as u32, i as u32),
                            16,
                            u64::from(v),
                        );
                    }
                }
            }
        }
        out
    }

    /// wgt lines of a B compressed N:M along K for sparse mode: `values` and `indices` are
    /// `(k/M*N) x c` (the `sparse_kernels::nm::Compressed` layout along axis 0; `k` a multiple
    /// of M). Line `ct * Kg + g`; column `cc`, value `i` at `[(cc*N + i)*(16+IB) +: 16]`, its
    /// index in the IB bits just above.
    pub fn pack_wgt_sparse(&self, values: &[u16], indices: &[u8], k: usize, c: usize) -> Lines {
        let (cols, n, m) = (self.cols as usize, self.n as usize, self.m as usize);
        assert!(
            k.is_multiple_of(m),
            "pack_wgt_sparse: K = {k} is not a multiple of M = {m}"
        );
        let kg = k / m;
        assert_eq!(
            values.len(),
            kg * n * c,
            "pack_wgt_sparse: values are not (K/M*N) x C"
        );
        assert_eq!(
            indices.len(),
            values.len(),
            "pack_wgt_sparse: indices differ from values"
        );
        let ctiles = c.div_ceil(cols);
        let mut out = Lines::new(self.line_bits(Buf::Wgt), ctiles * kg);
        for ct in 0..ctiles {
            for g in 0..kg {
                for cc in 0..cols.min(c - ct * cols) {
                    for i in 0..n {
                        let at = (g * n + i) * c + ct * cols + cc;
                        let lo = self.wgt_slot(cc as u32, i as u32);
                        out.set(ct * kg + g, lo, 16, u64::from(values[at]));
                        out.set(
                            ct * kg + g,
                            lo + 16,
                            self.index_bits(),
                            u64::from(indices[at]),
                        );
                    }
                }
            }
        }
        out
    }

    /// Result lines of C (`r x c`, fp32) in the standard tile order: tile `(rt, ct)` occupies
    /// lines `(rt * Ct + ct) * rows ..` (Ct = ceil(c/cols)), one line per tile row, column `cc` at
    /// `[cc*32 +: 32]`. Returns C row-major; padding lines and lanes are dropped.
    pub fn unpack_out(&self, lines: &Lines, r: usize, c: usize) -> Vec<u32> {
        let (rows, cols) = (self.rows as usize, self.cols as usize);
        let ct_n = c.div_ceil(cols);
        let mut out = vec![0u32; r * c];
        for i in 0..r {
            for j in 0..c {
                let line = ((i / rows) * ct_n + j / cols) * rows + i % rows;
                out[i * c + j] = lines.get(line, (j % cols) as u32 * 32, 32) as u32;
            }
        }
        out
    }

    /// Result lines a `r x c` matrix takes in the standard tile order.
    pub fn out_line_count(&self, r: usize, c: usize) -> usize {
        r.div_ceil(self.rows as usize) * c.div_ceil(self.cols as usize) * self.rows as usize
    }

    /// master/w16/mask lines of W^T (`k x cout`, W given as `cout x k` row-major, `bits` per
    /// lane: 32, 16 or 1): line `cb * Kp + kk` holds couts `cb*cols ..` of reduction index `kk`,
    /// lane `cc` at `[cc*bits +: bits]`.
    pub fn pack_weight(&self, w: &[u32], cout: usize, k: usize, buf: Buf) -> Lines {
        assert_eq!(w.len(), cout * k, "pack_weight: W is not cout x k");
        let bits = self.line_bits(buf) / self.cols;
        let (cols, kp) = (self.cols as usize, self.k_padded(k));
        let blocks = cout.div_ceil(cols);
        let mut out = Lines::new(self.line_bits(buf), blocks * kp);
        for o in 0..cout {
            for kk in 0..k {
                let lo = (o % cols) as u32 * bits;
                out.set((o / cols) * kp + kk, lo, bits, u64::from(w[o * k + kk]));
            }
        }
        out
    }

    /// The inverse of [`Geometry::pack_weight`]: W (`cout x k`) row-major.
    pub fn unpack_weight(&self, lines: &Lines, cout: usize, k: usize, buf: Buf) -> Vec<u32> {
        let bits = self.line_bits(buf) / self.cols;
        let (cols, kp) = (self.cols as usize, self.k_padded(k));
        let mut w = vec![0u32; cout * k];
        for o in 0..cout {
            for kk in 0..k {
                let lo = (o % cols) as u32 * bits;
                w[o * k + kk] = lines.get((o / cols) * kp + kk, lo, bits) as u32;
            }
        }
        w
    }

    /// The DRAM image of `lines` of `buf`: each line padded to whole beats, beat `b` of a line
    /// being its bits `[b*mem_bits +: mem_bits]`. Returned as u32 words, `mem_bits/32` per beat.
    pub fn to_beats(&self, lines: &Lines, buf: Buf) -> Vec<u32> {
        let per_beat = (self.mem_bits / 32) as usize;
        let beats = self.beats_per_line(buf) as usize;
        let mut out = vec![0u32; lines.count() * beats * per_beat];
        for l in 0..lines.count() {
            let dst = &mut out[l * beats * per_beat..(l + 1) * beats * per_beat];
            dst[..lines.words].copy_from_slice(lines.line(l));
        }
        out
    }

    /// The inverse of [`Geometry::to_beats`]: `count` lines of `buf` from DRAM words.
    pub fn from_beats(&self, words: &[u32], buf: Buf, count: usize) -> Lines {
        let per_beat = (self.mem_bits / 32) as usize;
        let beats = self.beats_per_line(buf) as usize;
        let mut out = Lines::new(self.line_bits(buf), count);
        let lw = out.words;
        let bits = self.line_bits(buf);
        for l in 0..count {
            let src = &words[l * beats * per_beat..l * beats * per_beat + lw];
            out.data[l * lw..(l + 1) * lw].copy_from_slice(src);
            // Bits above the line width are not part of the line.
            if !bits.is_multiple_of(32) {
                out.data[(l + 1) * lw - 1] &= (1u32 << (bits % 32)) - 1;
            }
        }
        out
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Geometry = Geometry {
        rows: 4,
        cols: 4,
        n: 2,
        m: 8,
        mem_bits: 128,
        wuve_pipeline: false,
    };

    #[test]
    fn widths_and_counts() {
        assert_eq!(G.line_bits(Buf::Act), 512);
        assert_eq!(G.line_bits(Buf::Wgt), 4 * 2 * 19);
        assert_eq!(G.beats_per_line(Buf::Act), 4);
        assert_eq!(G.beats_per_line(Buf::Wgt), 2);
        assert_eq!(G.beats_per_line(Buf::Mask), 1);
        assert_eq!(G.k_padded(9), 16);
        assert_eq!(G.groups(9, GemmMode::Sparse), 2);
        assert_eq!(G.groups(9, GemmMode::Dense), 5);
    }

    #[test]
    fn act_layout_is_as_documented() {
        // A: 5 x 9, value = 100*r + k.
        let a: Vec<u16> = (0..5)
            .flat_map(|r| (0..9).map(move |k| 100 * r + k))
            .collect();
        let l = G.pack_act(&a, 5, 9, GemmMode::Sparse);
        assert_eq!(l.count(), 2 * 2);
        // Tile 0, group 1, row 3, slot 0 = A[3][8].
        assert_eq!(l.get(1, (3 * 8) * 16, 16), 308);
        // Group 1 slot 1 is k = 9: padding.
        assert_eq!(l.get(1, (3 * 8 + 1) * 16, 16), 0);
        // Tile 1 holds row 4 only.
        assert_eq!(l.get(2, 16 * 2, 16), 402);
        assert_eq!(l.get(2, (8 + 2) * 16, 16), 0);
        // Dense 2:8: 5 groups of 2 (K = 9 is not a multiple of N), P = 4 per line, so a row
        // tile takes 2 lines, the second one partial (K is not a multiple of P*N either).
        assert_eq!(G.act_groups_per_line(GemmMode::Dense), 4);
        assert_eq!(G.act_lines(5, GemmMode::Dense), 2);
        let d = G.pack_act(&a, 5, 9, GemmMode::Dense);
        assert_eq!(d.count(), 2 * 2);
        // Group 3 of tile 0, row 1: k = 6, 7 at slots 6, 7 of line 0.
        assert_eq!(d.get(0, (8 + 6) * 16, 16), 106);
        assert_eq!(d.get(0, (8 + 7) * 16, 16), 107);
        // Group 4 of tile 0, row 1: k = 8 at slot 0 of line 1, then padding (k = 9 and the
        // groups the partial line does not hold).
        assert_eq!(d.get(1, 8 * 16, 16), 108);
        for slot in 1..8 {
            assert_eq!(d.get(1, (8 + slot) * 16, 16), 0);
        }
        // Tile 1 (row 4 only) starts at line Lp = 2.
        assert_eq!(d.get(2, 3 * 16, 16), 403);
        assert_eq!(d.get(3, 0, 16), 408);
    }

    /// Element `kk` of row `rr` of A as `pack_act` places it: (line, slot) for every dense
    /// group size, checked against the documented formula on a geometry with N:M.
    fn dense_act_checks(n: u32, m: u32, r: usize, k: usize) {
        let geo = Geometry { n, m, ..G };
        let a: Vec<u16> = (0..r * k).map(|i| i as u16 + 1).collect();
        let d = geo.pack_act(&a, r, k, GemmMode::Dense);
        let p = (m / n) as usize;
        let kg = k.div_ceil(n as usize);
        let lp = kg.div_ceil(p);
        assert_eq!(geo.act_lines(kg, GemmMode::Dense), lp);
        assert_eq!(d.count(), r.div_ceil(4) * lp, "{n}:{m} k = {k}");
        let mut seen = 0usize;
        for t in 0..d.count() {
            for rr in 0..4 {
                for slot in 0..m as usize {
                    let v = d.get(t, (rr as u32 * m + slot as u32) * 16, 16) as usize;
                    let (tile, line) = (t / lp, t % lp);
                    let g = line * p + slot / n as usize;
                    let kk = g * n as usize + slot % n as usize;
                    let row = tile * 4 + rr;
                    let inside = slot < p * n as usize && g < kg && kk < k && row < r;
                    let want = if inside { a[row * k + kk] as usize } else { 0 };
                    assert_eq!(v, want, "{n}:{m} line {t} row {rr} slot {slot}");
                    seen += usize::from(inside);
                }
            }
        }
        assert_eq!(seen, r * k, "{n}:{m}: every element placed once");
    }

    #[test]
    fn dense_act_lines_carry_p_groups() {
        // 2:8 (P = 4), 4:8 (P = 2), 1:16 (P = 16), 3:8 (P = 2, slots 6 and 7 stay zero),
        // 4:4 (P = 1, a dense engine: one group per line as before).
        for (n, m) in [(2, 8), (4, 8), (1, 16), (3, 8), (4, 4)] {
            for k in [1, 7, 8, 9, 17, 33] {
                dense_act_checks(n, m, 5, k);
            }
        }
        let p1 = Geometry { n: 4, m: 4, ..G };
        assert_eq!(p1.act_groups_per_line(GemmMode::Dense), 1);
        assert_eq!(p1.act_lines(5, GemmMode::Dense), 5);
        assert_eq!(G.act_groups_per_line(GemmMode::Sparse), 1);
        assert_eq!(
            Geometry { n: 1, m: 16, ..G }.act_groups_per_line(GemmMode::Dense),
            16
        );
        // When N divides M, P groups of N are M consecutive elements: the dense lines are the
        // sparse lines.
        let a: Vec<u16> = (0..5 * 19).map(|i| i as u16 + 1).collect();
        for (n, m) in [(2, 8), (4, 8), (1, 16)] {
            let geo = Geometry { n, m, ..G };
            assert_eq!(
                geo.pack_act(&a, 5, 19, GemmMode::Dense),
                geo.pack_act(&a, 5, 19, GemmMode::Sparse)
            );
        }
    }

    #[test]
    fn weight_lines_round_trip_and_beats() {
        let (cout, k) = (6, 9);
        let w: Vec<u32> = (0..(cout * k) as u32).map(|i| i * 7 + 1).collect();
        for buf in [Buf::Master, Buf::W16, Buf::Mask] {
            let bits = G.line_bits(buf) / G.cols;
            let wm: Vec<u32> = w.iter().map(|&x| x & ((1u64 << bits) - 1) as u32).collect();
            let l = G.pack_weight(&wm, cout, k, buf);
            assert_eq!(l.count(), 2 * 16);
            assert_eq!(G.unpack_weight(&l, cout, k, buf), wm);
            let beats = G.to_beats(&l, buf);
            assert_eq!(G.from_beats(&beats, buf, l.count()), l);
        }
    }

    #[test]
    fn wgt_sparse_layout() {
        // K = 8, C = 5: one group, values (2 x 5), indices.
        let values: Vec<u16> = (0..10).map(|i| 1000 + i).collect();
        let indices: Vec<u8> = (0..10).map(|i| if i < 5 { 1 } else { 6 }).collect();
        let l = G.pack_wgt_sparse(&values, &indices, 8, 5);
        assert_eq!(l.count(), 2);
        // Column 3 value 1 = values[1][3] = 1008, index 6.
        let lo = (3 * 2 + 1) * 19;
        assert_eq!(l.get(0, lo, 16), 1008);
        assert_eq!(l.get(0, lo + 16, 3), 6);
        // Column tile 1 holds column 4 only.
        assert_eq!(l.get(1, 0, 16), 1004);
        assert_eq!(l.get(1, 2 * 19, 16), 0);
    }
}
