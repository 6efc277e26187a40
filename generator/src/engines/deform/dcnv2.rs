//! The general deformable engine (mode B, DCNv2 in fixed point): a deformable im2col sampler over
//! a banked window buffer, feeding a depthwise MAC unit (`depthwise = true`) or emitting the
//! sampled im2col columns that the STCE multiplies (a full conv). Every rule it computes is
//! `sparse_kernels::deform::dcnv2` (`position`, `sample_fixed`, `modulate`, int32 wrap sums).
//!
//! # Work order
//! The engine works on *planes*: one plane is `lanes` channels of one image, all in one offset
//! group (the driver pads a group's last plane with zero channels). A plane streams its `H x W`
//! pixels in raster order, one beat of `lanes` int8 channels per pixel; the offsets of the plane's
//! offset group stream once per output pixel. Planes follow each other back to back; the next
//! plane's pixels load while the current one computes. A full conv's `Cin x K` im2col columns are
//! therefore produced plane by plane; the driver gathers them in `(cin, i, j)` order for the STCE.
//!
//! # Dataflow
//! - **Window buffer.** `D = even(R + stride)` rows of `max_width` pixels, where
//!   `R = (kernel - 1) * dilation + 2 * max_offset + 2` rows hold every row a sample of one output
//!   row can touch (its taps span `(kernel-1)*dilation` rows, an offset moves a tap by at most
//!   `max_offset` rows either way, and the bilinear sample reads the row below), and `stride` more
//!   rows let the loader fill the next output row's rows while this one computes. Rows are kept in
//!   a circular order of *slots*. The buffer is split into four banks by (slot parity, column
//!   parity), so the four corners of a bilinear sample, which always differ in row parity and in
//!   column parity, come from four different banks in one cycle. The four banks are replicated
//!   once per tap slot (`taps_per_cycle` samples per cycle); every replica is written with every
//!   pixel. Each bank is one simple dual-port RAM with a registered read (block RAM).
//! - **Loader.** Accepts a pixel beat whenever a slot is free (`occupied < D`) and writes it to
//!   every replica. A row becomes *occupied* when its last pixel is written.
//! - **Issue.** One work item per cycle: output pixel `(oy, ox)` of the current plane and a group
//!   of `taps_per_cycle` taps (`ceil(K / taps_per_cycle)` groups per pixel, taps in increasing
//!   `k = i*kernel + j`). An item issues when the pixel's offset beat is valid, the rows the output
//!   row needs are loaded (all `H` rows for the plane's last output row), the plane's weights are
//!   loaded (depthwise), and the pipeline advances. The offset beat is consumed with the pixel's
//!   last group. When an output row ends, the rows no later output row needs are freed; when a
//!   plane ends, all of its rows are.
//! - **Pipeline** (one item per stage, all stages advance together):
//!   - S0 issue: per tap, `P = base * 2^f + delta` for y and x (`base = o * stride - padding +
//!     i * dilation`), `y0 = P >> f`, `ly = P & (2^f - 1)`, the corners' in-image bits, the bank
//!     addresses, and the `max_offset` check;
//!   - S1: the banks' registered reads, with the fractions, parities and in-image bits;
//!   - S2: corners routed by parity, outside corners replaced by `zero_point`, the four products
//!     summed exactly and rounded, `s = (sum + 2^(2f-1)) >> 2f`;
//!   - S3: `s' = (s * m + 2^(g-1)) >> g`;
//!   - S4: depthwise: `acc + sum over the group's taps of w * s'` in int32 (wrap: the order of a
//!     wrapping sum does not change it), shown with the pixel's last group; im2col: the group's
//!     samples.
//!
//! # Ports (all synchronous to `clk`; `rst` synchronous, active high)
//! - `layer_height`, `layer_width`, `layer_out_height`, `layer_out_width`: the layer's `H`, `W`,
//!   `Hout`, `Wout`, unsigned; held stable from reset to the end of the job. `W <= max_width`.
//! - `in_{valid,ready,data}`: pixels, lane `c` at `in_data[8c +: 8]`.
//! - `off_{valid,ready,data}`: one beat per output pixel per plane. Tap `k` holds
//!   `delta_y` at `[k*E +: O]`, `delta_x` at `[k*E + O +: O]` (Q.f, two's complement) and the
//!   mask `m` at `[k*E + 2*O +: g + 1]` (Q0.g, `0..=2^g`; `2^g` when the layer has no mask, which
//!   gives `s' = s` exactly: `(s * 2^g + 2^(g-1)) >> g = s`), `E = 2*O + g + 1`, where
//!   `O` ([`Dcnv2Params::offset_bits`]) holds `±(max_offset * 2^f + 1)`: an offset that does not
//!   fit is beyond the bound anyway, and the driver saturates it into `O` bits.
//! - `wgt_{valid,ready,data}` (depthwise only): K beats per plane, beat `k` holds tap
//!   `k`'s weights, lane `c` at `[8c +: 8]`. The next plane's weights load while a plane computes.
//! - `out_{valid,ready,data}`: depthwise: one beat per output pixel per plane, lane
//!   `c`'s int32 sum at `[32c +: 32]`; im2col: one beat per item, tap slot `r`'s samples at
//!   `[8 * (r * lanes + c) +: 8]` (slots past the last tap hold don't-cares).
//! - Handshake: a beat moves in a cycle where `valid` and `ready` are both high. Every `ready`
//!   of the engine may depend on `out_ready`, never on an input `valid`.
//! - `error` (sticky until reset): an offset beyond `±max_offset` pixels (`|delta| > max_offset *
//!   2^f`) was issued; `error_out_y`, `error_out_x`, `error_tap` name the first such output pixel
//!   (within its plane) and tap. The results of such a pixel are not meaningful.
//!
//! # Latency and throughput
//! An item issued in cycle t shows its result from cycle t + 4 on. At most one item issues per
//! cycle and one pixel loads per cycle, so a plane takes about `max(H * W, Hout * Wout * groups)`
//! cycles; a back-pressured output stalls the whole pipeline. [`estimated_cycles`] is that model;
//! it is an estimate, kept beside the cycles the simulation measures.

use crate::config::DeformConfig;
use crate::rtl::{index_bits, set, when, when_else, Design, Expr, ModuleBuilder, ModuleDef};

/// Bits of a coordinate, an image size and an offset: signed 16-bit positions.
pub const COORD_BITS: u32 = 16;
/// Pipeline stages from issue to the result register.
pub const LATENCY: u64 = 4;

/// Cycles of `rst` high before anything else: the same as every deformable engine's.
pub use super::RESET_CYCLES;

/// Parameters of one DCNv2 engine (the `[deform]` config with `mode = "dcnv2"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dcnv2Params {
    /// Channels per beat.
    pub lanes: u32,
    /// The widest image row the window buffer holds.
    pub max_width: u32,
    /// Square kernel size (kh = kw).
    pub kernel: u32,
    pub stride: u32,
    pub padding: u32,
    pub dilation: u32,
    /// f: fractional bits of the Q.f offsets.
    pub frac_bits: u32,
    /// g: fractional bits of the Q0.g mask.
    pub mask_bits: u32,
    /// The bound on |offset|, in pixels.
    pub max_offset: u32,
    /// Taps sampled per cycle (1..=kernel^2).
    pub taps_per_cycle: u32,
    /// A depthwise MAC unit (true) or im2col columns for the STCE (false).
    pub depthwise: bool,
    /// What an out-of-image corner reads.
    pub zero_point: i8,
    pub top: String,
}

/// Largest supported f, as in the reference (`sparse_kernels::deform::dcnv2::MAX_FRAC_BITS`).
pub const MAX_FRAC_BITS: u32 = 12;
/// Largest supported g, as in the reference.
pub const MAX_MASK_BITS: u32 = 16;

impl Dcnv2Params {
    /// The engine of a resolved `[deform]` config with `mode = "dcnv2"` (every mode-B key is
    /// filled in when the config is loaded).
    ///
    /// # Panics
    /// If a mode-B key is missing (a config that was not resolved).
    pub fn of(cfg: &DeformConfig) -> Dcnv2Params {
        let key = |v: Option<u32>, name: &str| {
            v.unwrap_or_else(|| panic!("deform.{name} is resolved for mode = \"dcnv2\""))
        };
        Dcnv2Params {
            lanes: cfg.lanes,
            max_width: cfg.max_width,
            kernel: key(cfg.kernel, "kernel"),
            stride: cfg.stride,
            padding: key(cfg.padding, "padding"),
            dilation: key(cfg.dilation, "dilation"),
            frac_bits: key(cfg.frac_bits, "frac_bits"),
            mask_bits: key(cfg.mask_bits, "mask_bits"),
            max_offset: key(cfg.max_offset, "max_offset"),
            taps_per_cycle: key(cfg.taps_per_cycle, "taps_per_cycle"),
            depthwise: cfg.depthwise.unwrap_or(true),
            zero_point: cfg.zero_point.unwrap_or(0) as i8,
            top: cfg.top.clone(),
        }
    }

    /// The value of config key `key`, for error messages.
    pub fn value_of(&self, key: &str) -> String {
        match key {
            "deform.lanes" => self.lanes.to_string(),
            "deform.max_width" => self.max_width.to_string(),
            "deform.kernel" => self.kernel.to_string(),
            "deform.stride" => self.stride.to_string(),
            "deform.padding" => self.padding.to_string(),
            "deform.dilation" => self.dilation.to_string(),
            "deform.frac_bits" => self.frac_bits.to_string(),
            "deform.mask_bits" => self.mask_bits.to_string(),
            "deform.max_offset" => self.max_offset.to_string(),
            "deform.taps_per_cycle" => self.taps_per_cycle.to_string(),
            _ => "?".into(),
        }
    }

    /// Checks the ranges the hardware supports; the message names the key and the fix.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let bad = |key, fix: String| Err((key, fix));
        if !(1..=64).contains(&self.lanes) {
            return bad("deform.lanes", "use 1 to 64 lanes".into());
        }
        if !(1..=4096).contains(&self.max_width) {
            return bad("deform.max_width", "use 1 to 4096 pixels".into());
        }
        if !(1..=7).contains(&self.kernel) {
            return bad("deform.kernel", "use a square kernel of 1 to 7".into());
        }
        if !(1..=4).contains(&self.stride) {
            return bad("deform.stride", "use a stride of 1 to 4".into());
        }
        if !(1..=8).contains(&self.dilation) {
            return bad("deform.dilation", "use a dilation of 1 to 8".into());
        }
        if self.padding > 16 {
            return bad("deform.padding", "use a padding of 0 to 16".into());
        }
        if self.frac_bits > MAX_FRAC_BITS {
            return bad(
                "deform.frac_bits",
                format!("the engine takes Q.f offsets with f in 0..={MAX_FRAC_BITS}"),
            );
        }
        if self.mask_bits > MAX_MASK_BITS {
            return bad(
                "deform.mask_bits",
                format!("the engine takes a Q0.g mask with g in 0..={MAX_MASK_BITS}"),
            );
        }
        if !(1..=64).contains(&self.max_offset) {
            return bad("deform.max_offset", "use 1 to 64 pixels".into());
        }
        let k = self.kernel * self.kernel;
        if !(1..=k).contains(&self.taps_per_cycle) {
            return bad(
                "deform.taps_per_cycle",
                format!("use 1 to kernel^2 = {k} taps per cycle"),
            );
        }
        if self.stride > self.window_rows() {
            return bad(
                "deform.stride",
                "the stride may not exceed the window's rows".into(),
            );
        }
        Ok(())
    }

    /// K: taps of the kernel.
    pub fn taps(&self) -> u32 {
        self.kernel * self.kernel
    }
    /// Work items per output pixel: ceil(K / taps_per_cycle).
    pub fn groups(&self) -> u32 {
        self.taps().div_ceil(self.taps_per_cycle)
    }
    /// R: rows one output row's samples can touch.
    pub fn window_rows(&self) -> u32 {
        (self.kernel - 1) * self.dilation + 2 * self.max_offset + 2
    }
    /// D: rows of the window buffer (even, so a slot's parity is its row's parity).
    pub fn buffer_rows(&self) -> u32 {
        (self.window_rows() + self.stride).next_multiple_of(2)
    }
    /// Bits of one offset on the offset stream: two's complement wide enough for
    /// `±(max_offset * 2^f + 1)`, so that the driver can saturate any wider offset to a value the
    /// engine still sees as beyond the bound.
    pub fn offset_bits(&self) -> u32 {
        index_bits(((self.max_offset as u64) << self.frac_bits) as u32 + 2) + 1
    }
    /// Bits of one tap's entry on the offset stream.
    pub fn tap_entry_bits(&self) -> u32 {
        2 * self.offset_bits() + self.mask_bits + 1
    }
    pub fn offset_beat_bits(&self) -> u32 {
        self.taps() * self.tap_entry_bits()
    }
    pub fn pixel_beat_bits(&self) -> u32 {
        self.lanes * 8
    }
    pub fn result_beat_bits(&self) -> u32 {
        if self.depthwise {
            self.lanes * 32
        } else {
            self.taps_per_cycle * self.lanes * 8
        }
    }
    /// Column address bits of a bank: ceil(max_width / 2) columns.
    fn col_bits(&self) -> u32 {
        index_bits(self.max_width.div_ceil(2))
    }
    fn row_bits(&self) -> u32 {
        index_bits(self.buffer_rows() / 2)
    }
    /// Words of one bank: D/2 rows of 2^col_bits columns.
    pub fn bank_words(&self) -> u32 {
        (self.buffer_rows() / 2) << self.col_bits()
    }
    /// Rows of the plane that must be loaded before output row 0 can start.
    fn first_rows(&self, h: u64) -> u64 {
        let need = (self.kernel - 1) as i64 * self.dilation as i64 + self.max_offset as i64 + 2
            - self.padding as i64;
        need.clamp(0, h as i64) as u64
    }
}

/// Predicted cycles of `planes` planes of an `h x w` layer with `hout x wout` outputs: the first
/// plane's first rows, then per plane the slower of the loader (one pixel per cycle) and the
/// issue stage (one item per cycle), then the pipeline. An estimate: bubbles between planes and
/// rows are not modelled.
pub fn estimated_cycles(p: &Dcnv2Params, h: u64, w: u64, hout: u64, wout: u64, planes: u64) -> u64 {
    let per_plane = (h * w).max(hout * wout * p.groups() as u64);
    p.first_rows(h) * w + planes * per_plane + LATENCY
}

/// Port names of the top module, shared with the driver.
pub mod ports {
    pub const CLOCK: &str = "clk";
    pub const RESET: &str = "rst";
    pub const HEIGHT: &str = "layer_height";
    pub const WIDTH: &str = "layer_width";
    pub const OUT_HEIGHT: &str = "layer_out_height";
    pub const OUT_WIDTH: &str = "layer_out_width";
    pub const PIXEL_VALID: &str = "in_valid";
    pub const PIXEL_READY: &str = "in_ready";
    pub const PIXEL_DATA: &str = "in_data";
    pub const OFFSET_VALID: &str = "off_valid";
    pub const OFFSET_READY: &str = "off_ready";
    pub const OFFSET_DATA: &str = "off_data";
    pub const WEIGHT_VALID: &str = "wgt_valid";
    pub const WEIGHT_READY: &str = "wgt_ready";
    pub const WEIGHT_DATA: &str = "wgt_data";
    pub const RESULT_VALID: &str = "out_valid";
    pub const RESULT_READY: &str = "out_ready";
    pub const RESULT_DATA: &str = "out_data";
    pub const ERROR: &str = "error";
    pub const ERROR_OUT_Y: &str = "error_out_y";
    pub const ERROR_OUT_X: &str = "error_out_x";
    pub const ERROR_TAP: &str = "error_tap";
}

/// Builds the engine; the returned design's last module is the top.
///
/// # Panics
/// If `p` fails [`Dcnv2Params::validate`] (validate untrusted parameters first).
pub fn generate(p: &Dcnv2Params) -> Design {
    if let Err((key, fix)) = p.validate() {
        panic!("invalid DCNv2 parameters: {key}: {fix}");
    }
    let mut design = Design::new();
    // One bank: a simple dual-port RAM with a registered read, the template of block RAM.
    let bank = super::mode_a::ram(p.pixel_beat_bits(), p.bank_words());
    let sampler = sampler_module(p);
    design
        .add(bank.clone())
        .expect("bank names encode their parameters");
    design
        .add(sampler.clone())
        .expect("sampler names encode their parameters");
    design
        .add(top_module(p, &bank, &sampler))
        .expect("top name is unique in its design");
    design
}

/// A two's-complement constant of `width` bits.
fn signed_lit<'id>(value: i64, width: u32) -> Expr<'id> {
    Expr::lit((value as u64) & ((1u64 << width) - 1), width)
}

/// Signed `a < b` on equal widths: flipping both sign bits maps two's complement onto unsigned
/// order.
fn lt_signed<'id>(a: &Expr<'id>, b: &Expr<'id>) -> Expr<'id> {
    let sign = Expr::lit(1 << (a.width() - 1), a.width());
    a.xor(&sign).lt(&b.xor(&sign))
}

/// Width of the fraction ports: f, or 1 (driven with 0) when f = 0.
fn frac_port_bits(p: &Dcnv2Params) -> u32 {
    p.frac_bits.max(1)
}

/// Width of the exact bilinear sum: |sum| <= 128 * 2^(2f), plus the rounding term.
fn sum_bits(p: &Dcnv2Params) -> u32 {
    2 * p.frac_bits + 9
}
/// Width of `s * m + 2^(g-1)`: |s * m| <= 128 * 2^g.
fn modulate_bits(p: &Dcnv2Params) -> u32 {
    p.mask_bits + 9
}

/// One tap slot's sample datapath, S2 and S3: corners routed from the banks by parity, the
/// zero point for outside corners, the exact bilinear sum and its rounding, then the mask.
fn sampler_module(p: &Dcnv2Params) -> ModuleDef {
    let (f, g, lanes) = (p.frac_bits, p.mask_bits, p.lanes);
    let word = p.pixel_beat_bits();
    let zp = p.zero_point;
    let zp_tag = if zp < 0 {
        format!("m{}", -(zp as i32))
    } else {
        zp.to_string()
    };
    ModuleBuilder::build(format!("dcnv2_sampler_l{lanes}_f{f}_g{g}_z{zp_tag}"), |b| {
        b.doc(format!(
        "DCNv2 bilinear sampler, {lanes} lanes, f = {f}, g = {g}: s = (sum of corner * weight + \
         2^(2f-1)) >> 2f, then"
    ));
        b.doc(format!(
            "s' = (s * m + 2^(g-1)) >> g (arithmetic shifts, no rounding term for a 0 shift). \
         Outside corners read {zp}."
        ));
        b.doc("Two stages: s is registered after the first, s' after the second, both when en.");
        let clk = b.input(ports::CLOCK, 1, "");
        let en = b.input("en", 1, "advance the two stages");
        let bank: Vec<Expr> = (0..4)
            .map(|i| {
                b.input(
                    &format!("bank{}{}", i >> 1, i & 1),
                    word,
                    "read word of bank (row parity, column parity)",
                )
            })
            .collect();
        let row_par = b.input("row_parity", 1, "bank row parity of corner row y0");
        let col_par = b.input("col_parity", 1, "bank column parity of corner column x0");
        // With f = 0 there is no fraction: the ports keep one bit, driven with 0.
        let fw = frac_port_bits(p);
        let ly = b.input("ly", fw, "fraction of y");
        let lx = b.input("lx", fw, "fraction of x");
        let inside = b.input(
            "corners_inside",
            4,
            "corner (dy, dx) is in the image, bit 2*dy + dx",
        );
        let mask = b.input("mask", g + 1, "m in Q0.g, 0..=2^g");
        let sample = b.output_reg("sample", word, "s' of each lane, lane c at [8c +: 8]");

        let one = Expr::lit(1 << f, fw + 1);
        let wy = [
            b.name("weight_y0", one.sub(&ly.zext(fw + 1))),
            ly.zext(fw + 1),
        ];
        let wx = [
            b.name("weight_x0", one.sub(&lx.zext(fw + 1))),
            lx.zext(fw + 1),
        ];
        let sw = sum_bits(p);
        b.comment("Corner weights (2^f - ly)(2^f - lx), (2^f - ly) lx, ly (2^f - lx), ly lx.");
        let weights: Vec<Expr> = (0..4)
            .map(|c| {
                let (dy, dx) = (c >> 1, c & 1);
                let prod = wy[dy].zext(sw).mul(&wx[dx].zext(sw));
                b.name(&format!("weight{dy}{dx}"), prod)
            })
            .collect();
        b.comment("Corner (dy, dx) lives in bank (row_parity ^ dy, col_parity ^ dx).");
        let corners: Vec<Expr> = (0..4)
            .map(|c| {
                let (dy, dx) = (c >> 1, c & 1);
                let sel = Expr::concat(vec![
                    row_par.xor(&Expr::bit(dy == 1)),
                    col_par.xor(&Expr::bit(dx == 1)),
                ]);
                let routed = Expr::select(
                    &sel,
                    &[
                        bank[0].clone(),
                        bank[1].clone(),
                        bank[2].clone(),
                        bank[3].clone(),
                    ],
                );
                let zero = Expr::lit(zp as u8 as u64, 8).repeat(lanes);
                b.name(
                    &format!("corner{dy}{dx}"),
                    Expr::mux(&inside.bit_at(c as u32), &routed, &zero),
                )
            })
            .collect();
        let s_reg = b.reg("sample_unmasked", word);
        b.describe("s of each lane (stage S2)");
        let mask_reg = b.reg("mask_s2", g + 1);
        // Round half up; no rounding term when the shift is 0 (f = 0, or g = 0).
        let half =
            |bits: u32, width: u32| Expr::lit(if bits == 0 { 0 } else { 1 << (bits - 1) }, width);
        let half_2f = half(2 * f, sw);
        let mw = modulate_bits(p);
        let half_g = half(g, mw);
        let mut s_lanes = Vec::new();
        let mut out_lanes = Vec::new();
        for lane in 0..lanes {
            let terms: Vec<Expr> = (0..4)
                .map(|c| corners[c].slice(8 * lane, 8).sext(sw).mul(&weights[c]))
                .collect();
            let sum = terms[1..]
                .iter()
                .fold(terms[0].clone(), |acc, t| acc.add(t))
                .add(&half_2f);
            let rounded = b.name(&format!("sum_lane{lane}"), sum);
            s_lanes.push(rounded.slice(2 * f, 8));
            let mut dropped = vec![rounded.slice(2 * f + 8, sw - 2 * f - 8)];
            if f > 0 {
                dropped.push(rounded.slice(0, 2 * f));
            }
            b.name(
                &format!("unused_sum_lane{lane}_bits"),
                Expr::concat(dropped),
            );
            let s = s_reg.slice(8 * lane, 8);
            let prod = s.sext(mw).mul(&mask_reg.zext(mw)).add(&half_g);
            let modulated = b.name(&format!("modulated_lane{lane}"), prod);
            out_lanes.push(modulated.slice(g, 8));
            let mut dropped = vec![modulated.slice(g + 8, mw - g - 8)];
            if g > 0 {
                dropped.push(modulated.slice(0, g));
            }
            b.name(
                &format!("unused_modulated_lane{lane}_bits"),
                Expr::concat(dropped),
            );
        }
        s_lanes.reverse();
        out_lanes.reverse();
        b.comment("S2: the rounded sample; S3: the modulated sample.");
        b.clocked(
            &clk,
            vec![when(
                en,
                vec![
                    set(&s_reg, Expr::concat(s_lanes)),
                    set(&mask_reg, mask),
                    set(&sample, Expr::concat(out_lanes)),
                ],
            )],
        );
    })
}

/// Per-tap-slot signals of stage S0 and S1.
struct Slot<'id> {
    /// S1 registers: row parity, column parity, ly, lx, inside bits, mask.
    row_par: Expr<'id>,
    col_par: Expr<'id>,
    ly: Expr<'id>,
    lx: Expr<'id>,
    inside: Expr<'id>,
    mask: Expr<'id>,
    banks: Vec<Expr<'id>>,
    /// S0: this slot's offset is out of bounds (only for real taps).
    bad: Expr<'id>,
}

fn top_module(p: &Dcnv2Params, bank: &ModuleDef, sampler: &ModuleDef) -> ModuleDef {
    ModuleBuilder::build(p.top.clone(), |b| top_module_body(b, p, bank, sampler))
}

/// The contents of [`top_module`]'s module, described with its builder.
fn top_module_body<'id>(
    b: &mut ModuleBuilder<'id>,
    p: &Dcnv2Params,
    bank: &ModuleDef,
    sampler: &ModuleDef,
) {
    let cw = COORD_BITS;
    let (f, g, lanes) = (p.frac_bits, p.mask_bits, p.lanes);
    let k_taps = p.taps();
    let ob_bits = p.offset_bits();
    let t_slots = p.taps_per_cycle;
    let groups = p.groups();
    let d = p.buffer_rows();
    let sb = index_bits(d) + 1; // a slot sum below 2D
    let ob = index_bits(d + 1); // occupied rows, 0..=D
    let rb = p.row_bits();
    let cb = p.col_bits();
    let gb = index_bits(groups);
    let word = p.pixel_beat_bits();
    let entry = p.tap_entry_bits();
    b.doc(format!(
        "DCNv2 deformable engine: {}x{} kernel, stride {}, padding {}, dilation {}, {lanes} lanes,",
        p.kernel, p.kernel, p.stride, p.padding, p.dilation
    ));
    b.doc(format!(
        "Q.{f} offsets bounded by +-{} pixels, Q0.{g} mask, {} taps per cycle, {}.",
        p.max_offset,
        t_slots,
        if p.depthwise {
            "depthwise MAC"
        } else {
            "im2col output for the STCE"
        }
    ));
    b.doc(format!(
        "Window buffer: {d} rows x {} pixels in 4 banks of {} words, x{t_slots} replicas.",
        p.max_width,
        p.bank_words()
    ));
    b.doc("Protocol: see the generator's `engines::deform::dcnv2` documentation (coforge).");
    let clk = b.input(ports::CLOCK, 1, "");
    let rst = b.input(ports::RESET, 1, "synchronous, active high");
    let height = b.input(ports::HEIGHT, cw, "H, stable during a job");
    let width = b.input(ports::WIDTH, cw, "W <= max_width, stable during a job");
    let out_height = b.input(ports::OUT_HEIGHT, cw, "Hout, stable during a job");
    let out_width = b.input(ports::OUT_WIDTH, cw, "Wout, stable during a job");
    let px_valid = b.input(ports::PIXEL_VALID, 1, "");
    let px_ready = b.output(ports::PIXEL_READY, 1, "a free row slot");
    let px_data = b.input(ports::PIXEL_DATA, word, "lane c at [8c +: 8]");
    let off_valid = b.input(ports::OFFSET_VALID, 1, "");
    let off_ready = b.output(ports::OFFSET_READY, 1, "the pixel's last tap group issues");
    let off_data = b.input(
        ports::OFFSET_DATA,
        p.offset_beat_bits(),
        "tap k: dy, dx, mask",
    );
    let wgt = p.depthwise.then(|| {
        (
            b.input(ports::WEIGHT_VALID, 1, ""),
            b.output(ports::WEIGHT_READY, 1, "the weight file has room"),
            b.input(
                ports::WEIGHT_DATA,
                word,
                "tap k's weights, lane c at [8c +: 8]",
            ),
        )
    });
    let res_valid = b.output_reg(ports::RESULT_VALID, 1, "");
    let res_ready = b.input(ports::RESULT_READY, 1, "");
    let res_data = b.output_reg(ports::RESULT_DATA, p.result_beat_bits(), "");
    let error = b.output_reg(ports::ERROR, 1, "sticky: an offset beyond max_offset");
    let error_y = b.output_reg(ports::ERROR_OUT_Y, cw, "first such output row");
    let error_x = b.output_reg(ports::ERROR_OUT_X, cw, "first such output column");
    let error_tap = b.output_reg(ports::ERROR_TAP, index_bits(k_taps), "first such tap");

    let advance = b.name("advance", res_valid.not().or(&res_ready));
    b.describe("the pipeline moves: the result register is empty or being read");

    // ---- State ----
    let occupied = b.reg("occupied", ob);
    b.describe("rows loaded and not yet freed, from window_top on");
    let write_slot = b.reg("write_slot", sb - 1);
    b.describe("slot of the row being loaded");
    let write_x = b.reg("write_x", cw);
    let window_top = b.reg("window_top", cw);
    b.describe("lowest row of the plane still held");
    let top_slot = b.reg("top_slot", sb - 1);
    b.describe("slot of window_top");
    let oy = b.reg("out_y", cw);
    let ox = b.reg("out_x", cw);
    let base_y = b.reg("base_y", cw);
    b.describe("out_y * stride - padding");
    let base_x = b.reg("base_x", cw);
    let group = b.reg("tap_group", gb);
    let plane_first = b.reg("plane_first", 1);
    b.describe("the next item starts a plane");

    // ---- Loader ----
    b.comment("Loader: a pixel is accepted while a row slot is free, and written to every bank.");
    b.drive(&px_ready, occupied.lt(&Expr::lit(d as u64, ob)));
    let px_take = b.name("pixel_take", px_valid.land(&px_ready));
    let row_done = b.name(
        "row_loaded",
        px_take.land(&write_x.eq(&width.sub(&Expr::lit(1, cw)))),
    );
    let write_addr = b.name(
        "write_addr",
        Expr::concat(vec![write_slot.slice(1, rb), write_x.slice(1, cb)]),
    );
    b.name(
        "unused_write_x_bits",
        Expr::concat(vec![write_x.slice(cb + 1, cw - cb - 1)]),
    );
    let write_bank: Vec<Expr> = (0..4)
        .map(|i| {
            let (py, pxp) = (i >> 1, i & 1);
            let hit = write_slot
                .bit_at(0)
                .eq(&Expr::bit(py == 1))
                .land(&write_x.bit_at(0).eq(&Expr::bit(pxp == 1)));
            b.name(&format!("write_bank{py}{pxp}"), px_take.land(&hit))
        })
        .collect();

    // ---- Issue (S0) ----
    b.comment("Issue: the rows this output row needs are loaded (all rows for the last row).");
    let last_group = b.name("last_group", group.eq(&Expr::lit((groups - 1) as u64, gb)));
    let last_x = b.name("last_x", ox.eq(&out_width.sub(&Expr::lit(1, cw))));
    let last_y = b.name("last_y", oy.eq(&out_height.sub(&Expr::lit(1, cw))));
    let span = (p.kernel - 1) * p.dilation;
    let bottom_end = b.name(
        "rows_end",
        base_y.add(&Expr::lit((span + p.max_offset + 2) as u64, cw)),
    );
    b.describe("one past the lowest row this output row can read");
    let need = b.name(
        "rows_needed_end",
        Expr::mux(
            &last_y.lor(&lt_signed(&height, &bottom_end)),
            &height,
            &bottom_end,
        ),
    );
    let avail = b.name("rows_loaded_end", window_top.add(&occupied.zext(cw)));
    let rows_ready = b.name("rows_ready", lt_signed(&avail, &need).not());
    // The weight file's flags (depthwise): the next plane's weights are loaded (`full`), and an
    // issued plane-first item has claimed them but not yet taken them at S4 (`claimed`).
    let wgt_flags = p
        .depthwise
        .then(|| (b.reg("weights_full", 1), b.reg("weights_claimed", 1)));
    let weights_ok = match &wgt_flags {
        Some((full, claimed)) => b.name(
            "weights_ok",
            plane_first.not().lor(&full.land(&claimed.not())),
        ),
        None => Expr::bit(true),
    };
    let issue = b.name(
        "issue",
        advance.land(&off_valid).land(&rows_ready).land(&weights_ok),
    );
    b.drive(&off_ready, issue.land(&last_group));
    let end_of_row = b.name("end_of_row", issue.land(&last_group).land(&last_x));
    let end_of_plane = b.name("end_of_plane", end_of_row.land(&last_y));

    // Per-slot addressing.
    let one_row = Expr::lit(1, cw);
    let mut slots = Vec::new();
    for r in 0..t_slots {
        // Tap of this slot in each group, or None past the last tap.
        let taps: Vec<Option<u32>> = (0..groups)
            .map(|t| Some(t * t_slots + r).filter(|&k| k < k_taps))
            .collect();
        let pick =
            |b: &mut ModuleBuilder<'id>, name: &str, choice: &dyn Fn(Option<u32>) -> Expr<'id>| {
                let choices: Vec<Expr> = taps.iter().map(|&k| choice(k)).collect();
                let e = if groups == 1 {
                    choices[0].clone()
                } else {
                    Expr::select(&group, &choices)
                };
                b.name(name, e)
            };
        let field = |k: Option<u32>, lo: u32, w: u32| match k {
            Some(k) => off_data.slice(k * entry + lo, w),
            None => Expr::zero(w),
        };
        let dy = pick(b, &format!("slot{r}_dy"), &|k| field(k, 0, ob_bits));
        let dx = pick(b, &format!("slot{r}_dx"), &|k| field(k, ob_bits, ob_bits));
        let mask = pick(b, &format!("slot{r}_mask"), &|k| {
            field(k, 2 * ob_bits, g + 1)
        });
        let real = pick(b, &format!("slot{r}_real"), &|k| Expr::bit(k.is_some()));
        let dil = p.dilation;
        let row_off = pick(b, &format!("slot{r}_row_offset"), &|k| {
            Expr::lit((k.unwrap_or(0) / p.kernel * dil) as u64, cw)
        });
        let col_off = pick(b, &format!("slot{r}_col_offset"), &|k| {
            Expr::lit((k.unwrap_or(0) % p.kernel * dil) as u64, cw)
        });
        let pw = cw + f;
        let pos = |b: &mut ModuleBuilder<'id>,
                   axis: &str,
                   base: &Expr<'id>,
                   off: &Expr<'id>,
                   delta: &Expr<'id>| {
            let tap_base = base.add(off);
            let scaled = if f == 0 {
                tap_base
            } else {
                Expr::concat(vec![tap_base, Expr::zero(f)])
            };
            let fixed = scaled.add(&delta.sext(pw));
            b.name(&format!("slot{r}_pos_{axis}"), fixed)
        };
        let fraction = |pos: &Expr<'id>| {
            if f == 0 {
                Expr::zero(1)
            } else {
                pos.slice(0, f)
            }
        };
        let py = pos(b, "y", &base_y, &row_off, &dy);
        let pxx = pos(b, "x", &base_x, &col_off, &dx);
        let y0 = b.name(&format!("slot{r}_y0"), py.slice(f, cw));
        let x0 = b.name(&format!("slot{r}_x0"), pxx.slice(f, cw));
        let y1 = b.name(&format!("slot{r}_y1"), y0.add(&one_row));
        let x1 = b.name(&format!("slot{r}_x1"), x0.add(&one_row));
        let inside_of = |v: &Expr<'id>, size: &Expr<'id>| v.msb().not().land(&v.lt(size));
        let row_in = [inside_of(&y0, &height), inside_of(&y1, &height)];
        let col_in = [inside_of(&x0, &width), inside_of(&x1, &width)];
        let inside = b.name(
            &format!("slot{r}_inside"),
            Expr::concat(vec![
                row_in[1].land(&col_in[1]),
                row_in[1].land(&col_in[0]),
                row_in[0].land(&col_in[1]),
                row_in[0].land(&col_in[0]),
            ]),
        );
        let bound = (p.max_offset as i64) << f;
        let out_of_range = |v: &Expr<'id>| {
            lt_signed(v, &signed_lit(-bound, ob_bits))
                .lor(&lt_signed(&signed_lit(bound, ob_bits), v))
        };
        let bad = b.name(
            &format!("slot{r}_beyond_max_offset"),
            real.land(&out_of_range(&dy).lor(&out_of_range(&dx))),
        );
        // Slots: row y lives in slot (top_slot + y - window_top) mod D while it is held.
        let slot_of = |b: &mut ModuleBuilder<'id>, name: &str, y: &Expr<'id>| {
            let rel = b.name(&format!("{name}_rel"), y.sub(&window_top));
            b.name(&format!("unused_{name}_rel_bits"), rel.slice(sb, cw - sb));
            let sum = b.name(
                &format!("{name}_sum"),
                top_slot.zext(sb).add(&rel.slice(0, sb)),
            );
            let wrapped = Expr::mux(
                &sum.lt(&Expr::lit(d as u64, sb)),
                &sum,
                &sum.sub(&Expr::lit(d as u64, sb)),
            );
            let slot = b.name(name, wrapped);
            b.name(
                &format!("unused_{name}_bits"),
                Expr::concat(vec![slot.slice(rb + 1, sb - rb - 1), slot.bit_at(0)]),
            );
            slot.slice(1, rb)
        };
        let slot0 = slot_of(b, &format!("slot{r}_row0_slot"), &y0);
        let slot1 = slot_of(b, &format!("slot{r}_row1_slot"), &y1);
        // Parity of y0's slot from the row itself: D is even, so it is well defined even when
        // y0 lies outside the window (then its corners are outside the image and ignored).
        let row_par = b.name(
            &format!("slot{r}_row_parity"),
            top_slot
                .bit_at(0)
                .xor(&window_top.bit_at(0))
                .xor(&y0.bit_at(0)),
        );
        let col_par = x0.bit_at(0);
        let col0 = x0.slice(1, cb);
        let col1 = x1.slice(1, cb);
        b.name(
            &format!("unused_slot{r}_col_bits"),
            Expr::concat(vec![
                x0.slice(cb + 1, cw - cb - 1),
                x1.slice(cb + 1, cw - cb - 1),
                x1.bit_at(0),
            ]),
        );
        let mut banks = Vec::new();
        for i in 0..4u32 {
            let (bpy, bpx) = (i >> 1, i & 1);
            // Bank row parity bpy holds y0 when row_par == bpy, else y1; likewise for columns.
            let row = Expr::mux(&row_par.eq(&Expr::bit(bpy == 1)), &slot0, &slot1);
            let col = Expr::mux(&col_par.eq(&Expr::bit(bpx == 1)), &col0, &col1);
            let raddr = b.name(
                &format!("slot{r}_bank{bpy}{bpx}_raddr"),
                Expr::concat(vec![row, col]),
            );
            let rdata = b.wire(&format!("slot{r}_bank{bpy}{bpx}_rdata"), word);
            b.instance(
                bank,
                &format!("bank_slot{r}_{bpy}{bpx}"),
                vec![
                    (ports::CLOCK, clk.clone()),
                    ("wr_en", write_bank[i as usize].clone()),
                    ("wr_addr", write_addr.clone()),
                    ("wr_data", px_data.clone()),
                    ("rd_en", advance.clone()),
                    ("rd_addr", raddr),
                    ("rd_data", rdata.clone()),
                ],
            );
            banks.push(rdata);
        }
        let s1 = |b: &mut ModuleBuilder<'id>, what: &str, w: u32| {
            b.reg(&format!("s1_slot{r}_{what}"), w)
        };
        let slot = Slot {
            row_par: s1(b, "row_parity", 1),
            col_par: s1(b, "col_parity", 1),
            ly: s1(b, "ly", frac_port_bits(p)),
            lx: s1(b, "lx", frac_port_bits(p)),
            inside: s1(b, "inside", 4),
            mask: s1(b, "mask", g + 1),
            banks,
            bad,
        };
        b.clocked(
            &clk,
            vec![when(
                advance.clone(),
                vec![
                    set(&slot.row_par, row_par),
                    set(&slot.col_par, col_par),
                    set(&slot.ly, fraction(&py)),
                    set(&slot.lx, fraction(&pxx)),
                    set(&slot.inside, inside),
                    set(&slot.mask, mask),
                ],
            )],
        );
        slots.push(slot);
    }

    // ---- Pipeline control ----
    let s_valid: Vec<Expr> = (1..=3).map(|s| b.reg(&format!("s{s}_valid"), 1)).collect();
    let s_group: Vec<Expr> = (1..=3)
        .map(|s| b.reg(&format!("s{s}_tap_group"), gb))
        .collect();
    let s_plane_first: Vec<Expr> = (1..=3)
        .map(|s| b.reg(&format!("s{s}_plane_first"), 1))
        .collect();

    b.comment("Samplers: S2 and S3 of every tap slot.");
    let mut samples = Vec::new();
    for (r, slot) in slots.iter().enumerate() {
        let out = b.wire(&format!("slot{r}_sample"), word);
        let mut conns = vec![
            (ports::CLOCK, clk.clone()),
            ("en", advance.clone()),
            ("row_parity", slot.row_par.clone()),
            ("col_parity", slot.col_par.clone()),
            ("ly", slot.ly.clone()),
            ("lx", slot.lx.clone()),
            ("corners_inside", slot.inside.clone()),
            ("mask", slot.mask.clone()),
            ("sample", out.clone()),
        ];
        let bank_ports = ["bank00", "bank01", "bank10", "bank11"];
        for (port, data) in bank_ports.iter().zip(&slot.banks) {
            conns.push((port, data.clone()));
        }
        b.instance(sampler, &format!("sampler_slot{r}"), conns);
        samples.push(out);
    }

    // ---- Weights (depthwise) ----
    // Registers without reset (data qualified by valid bits) and with reset (control).
    let mut data_stmts = Vec::new();
    let mut control_stmts = Vec::new();
    let mut wgt_of_tap: Vec<Expr> = Vec::new();
    if let (Some((wvalid, wready, wdata)), Some((wgt_full, wgt_claimed))) = (&wgt, &wgt_flags) {
        b.comment("Weights: K beats fill the next plane's file; its first item takes them at S4.");
        let next: Vec<Expr> = (0..k_taps)
            .map(|k| b.reg(&format!("weight_next_tap{k}"), word))
            .collect();
        let cur: Vec<Expr> = (0..k_taps)
            .map(|k| b.reg(&format!("weight_tap{k}"), word))
            .collect();
        let kb = index_bits(k_taps);
        let count = b.reg("weight_count", kb);
        b.drive(wready, wgt_full.not());
        let take = b.name("weight_take", wvalid.land(wready));
        let claim = b.name("weight_claim", issue.land(&plane_first));
        let consume = b.name(
            "weight_consume",
            advance.land(&s_valid[2]).land(&s_plane_first[2]),
        );
        let mut shift = Vec::new();
        for k in 0..k_taps as usize {
            let from = if k + 1 == k_taps as usize {
                wdata.clone()
            } else {
                next[k + 1].clone()
            };
            shift.push(set(&next[k], from));
        }
        data_stmts.push(when(take.clone(), shift));
        data_stmts.push(when(
            consume.clone(),
            cur.iter()
                .zip(&next)
                .map(|(c, n)| set(c, n.clone()))
                .collect(),
        ));
        let last_beat = count.eq(&Expr::lit((k_taps - 1) as u64, kb));
        control_stmts.push(when_else(
            rst.clone(),
            vec![
                set(&count, Expr::zero(kb)),
                set(wgt_full, Expr::bit(false)),
                set(wgt_claimed, Expr::bit(false)),
            ],
            vec![
                when(
                    take,
                    vec![
                        set(
                            &count,
                            Expr::mux(&last_beat, &Expr::zero(kb), &count.add(&Expr::lit(1, kb))),
                        ),
                        when(last_beat, vec![set(wgt_full, Expr::bit(true))]),
                    ],
                ),
                when(claim, vec![set(wgt_claimed, Expr::bit(true))]),
                when(
                    consume,
                    vec![
                        set(wgt_full, Expr::bit(false)),
                        set(wgt_claimed, Expr::bit(false)),
                    ],
                ),
            ],
        ));
        // S4 reads the file it is about to take when its item starts a plane.
        for k in 0..k_taps as usize {
            wgt_of_tap.push(b.name(
                &format!("weight_s4_tap{k}"),
                Expr::mux(&s_plane_first[2], &next[k], &cur[k]),
            ));
        }
    }

    // ---- S4: result ----
    let s3_valid = &s_valid[2];
    if p.depthwise {
        b.comment("S4: w * s' over the group's taps, added in int32 (wrap) to the pixel's sum.");
        let first_group = s_group[2].eq(&Expr::zero(gb));
        let s3_last = s_group[2].eq(&Expr::lit((groups - 1) as u64, gb));
        let acc: Vec<Expr> = if groups > 1 {
            (0..lanes)
                .map(|c| b.reg(&format!("acc_lane{c}"), 32))
                .collect()
        } else {
            Vec::new()
        };
        let mut sums = Vec::new();
        for c in 0..lanes {
            let mut total = if groups > 1 {
                Expr::mux(&first_group, &Expr::zero(32), &acc[c as usize])
            } else {
                Expr::zero(32)
            };
            for (r, sample) in samples.iter().enumerate() {
                let r = r as u32;
                // The weight of slot r in the S4 item's group, zero past the last tap.
                let choices: Vec<Expr> = (0..groups)
                    .map(|t| {
                        let k = t * t_slots + r;
                        if k < k_taps {
                            wgt_of_tap[k as usize].slice(8 * c, 8)
                        } else {
                            Expr::zero(8)
                        }
                    })
                    .collect();
                let w = if groups == 1 {
                    choices[0].clone()
                } else {
                    b.name(
                        &format!("weight_s4_slot{r}_lane{c}"),
                        Expr::select(&s_group[2], &choices),
                    )
                };
                let prod = w.sext(32).mul(&sample.slice(8 * c, 8).sext(32));
                total = total.add(&prod);
            }
            sums.push(b.name(&format!("sum_lane{c}"), total));
        }
        if groups > 1 {
            data_stmts.push(when(
                advance.land(s3_valid),
                acc.iter()
                    .zip(&sums)
                    .map(|(a, s)| set(a, s.clone()))
                    .collect(),
            ));
        }
        let rev: Vec<Expr> = sums.iter().rev().cloned().collect();
        data_stmts.push(when(
            advance.land(s3_valid).land(&s3_last),
            vec![set(&res_data, Expr::concat(rev))],
        ));
        let shows = b.name("result_shows", s3_valid.land(&s3_last));
        control_stmts.push(when_else(
            rst.clone(),
            vec![set(&res_valid, Expr::bit(false))],
            vec![when(advance.clone(), vec![set(&res_valid, shows)])],
        ));
    } else {
        b.comment("S4: the group's samples, slot r at [8 lanes r +: 8 lanes].");
        let rev: Vec<Expr> = samples.iter().rev().cloned().collect();
        data_stmts.push(when(
            advance.land(s3_valid),
            vec![set(&res_data, Expr::concat(rev))],
        ));
        control_stmts.push(when_else(
            rst.clone(),
            vec![set(&res_valid, Expr::bit(false))],
            vec![when(
                advance.clone(),
                vec![set(&res_valid, s3_valid.clone())],
            )],
        ));
        b.name(
            "unused_s3_flags",
            Expr::concat(vec![s_group[2].clone(), s_plane_first[2].clone()]),
        );
    }

    // ---- Control registers ----
    b.comment("Window bookkeeping: rows freed at the end of an output row or of a plane.");
    let next_base_y = b.name("next_base_y", base_y.add(&Expr::lit(p.stride as u64, cw)));
    let next_top_raw = b.name(
        "next_top_raw",
        next_base_y.sub(&Expr::lit(p.max_offset as u64, cw)),
    );
    let clamped_top = Expr::mux(
        &next_top_raw.msb(),
        &Expr::zero(cw),
        &Expr::mux(&lt_signed(&height, &next_top_raw), &height, &next_top_raw),
    );
    let new_top = b.name(
        "next_window_top",
        Expr::mux(&last_y, &Expr::zero(cw), &clamped_top),
    );
    let free_end = Expr::mux(&last_y, &height, &clamped_top);
    let freed = b.name("rows_freed", free_end.sub(&window_top));
    b.describe("rows no later output row of the plane reads");
    b.name("unused_rows_freed_bits", freed.slice(sb, cw - sb));
    let freed_now = b.name(
        "rows_freed_now",
        Expr::mux(&end_of_row, &freed.slice(0, sb), &Expr::zero(sb)),
    );
    let top_sum = b.name("top_slot_sum", top_slot.zext(sb).add(&freed.slice(0, sb)));
    let top_next = Expr::mux(
        &top_sum.lt(&Expr::lit(d as u64, sb)),
        &top_sum,
        &top_sum.sub(&Expr::lit(d as u64, sb)),
    );
    let top_next = b.name("top_slot_next", top_next);
    b.name("unused_top_slot_next_msb", top_next.msb());
    let occ_next = occupied
        .zext(sb.max(ob))
        .add(&row_done.zext(sb.max(ob)))
        .sub(&freed_now.zext(sb.max(ob)));
    let occ_next = b.name("occupied_next", occ_next);
    if sb > ob {
        b.name("unused_occupied_next_bits", occ_next.slice(ob, sb - ob));
    }
    let write_slot_next = Expr::mux(
        &write_slot.eq(&Expr::lit((d - 1) as u64, sb - 1)),
        &Expr::zero(sb - 1),
        &write_slot.add(&Expr::lit(1, sb - 1)),
    );
    let group_next = if groups == 1 {
        Expr::zero(gb)
    } else {
        Expr::mux(&last_group, &Expr::zero(gb), &group.add(&Expr::lit(1, gb)))
    };
    let pad = signed_lit(-(p.padding as i64), cw);
    let stride = Expr::lit(p.stride as u64, cw);
    // First bad slot of the item, as a tap index.
    let kb = index_bits(k_taps);
    let mut bad_tap = Expr::zero(kb);
    for (r, slot) in slots.iter().enumerate().rev() {
        let tap = if groups == 1 {
            Expr::lit(r as u64, kb)
        } else {
            let choices: Vec<Expr> = (0..groups)
                .map(|t| Expr::lit(((t * t_slots + r as u32).min(k_taps - 1)) as u64, kb))
                .collect();
            Expr::select(&group, &choices)
        };
        bad_tap = Expr::mux(&slot.bad, &tap, &bad_tap);
    }
    let any_bad = slots
        .iter()
        .skip(1)
        .fold(slots[0].bad.clone(), |acc, s| acc.lor(&s.bad));
    let any_bad = b.name("beyond_max_offset", issue.land(&any_bad));
    let bad_tap = b.name("beyond_max_offset_tap", bad_tap);

    let mut reset = vec![
        set(&occupied, Expr::zero(ob)),
        set(&write_slot, Expr::zero(sb - 1)),
        set(&write_x, Expr::zero(cw)),
        set(&window_top, Expr::zero(cw)),
        set(&top_slot, Expr::zero(sb - 1)),
        set(&oy, Expr::zero(cw)),
        set(&ox, Expr::zero(cw)),
        set(&base_y, pad.clone()),
        set(&base_x, pad.clone()),
        set(&group, Expr::zero(gb)),
        set(&plane_first, Expr::bit(true)),
        set(&error, Expr::bit(false)),
        set(&error_y, Expr::zero(cw)),
        set(&error_x, Expr::zero(cw)),
        set(&error_tap, Expr::zero(kb)),
    ];
    for v in &s_valid {
        reset.push(set(v, Expr::bit(false)));
    }
    let mut pipe = vec![
        set(&s_valid[0], issue.clone()),
        set(&s_valid[1], s_valid[0].clone()),
        set(&s_valid[2], s_valid[1].clone()),
    ];
    let run = vec![
        set(&occupied, occ_next.slice(0, ob)),
        when(
            px_take.clone(),
            vec![set(
                &write_x,
                Expr::mux(&row_done, &Expr::zero(cw), &write_x.add(&one_row)),
            )],
        ),
        when(row_done.clone(), vec![set(&write_slot, write_slot_next)]),
        when(advance.clone(), std::mem::take(&mut pipe)),
        when(
            issue.clone(),
            vec![
                set(&group, group_next),
                set(&plane_first, end_of_plane.clone()),
                when(
                    last_group.clone(),
                    vec![when_else(
                        last_x.clone(),
                        vec![
                            set(&ox, Expr::zero(cw)),
                            set(&base_x, pad.clone()),
                            set(&window_top, new_top),
                            set(&top_slot, top_next.slice(0, sb - 1)),
                            when_else(
                                last_y.clone(),
                                vec![set(&oy, Expr::zero(cw)), set(&base_y, pad.clone())],
                                vec![
                                    set(&oy, oy.add(&one_row)),
                                    set(&base_y, next_base_y.clone()),
                                ],
                            ),
                        ],
                        vec![
                            set(&ox, ox.add(&one_row)),
                            set(&base_x, base_x.add(&stride)),
                        ],
                    )],
                ),
            ],
        ),
        when(
            any_bad.land(&error.not()),
            vec![
                set(&error, Expr::bit(true)),
                set(&error_y, oy.clone()),
                set(&error_x, ox.clone()),
                set(&error_tap, bad_tap),
            ],
        ),
    ];
    b.comment("Control: loader, issue counters, pipeline valid bits, the sticky error.");
    b.clocked(&clk, vec![when_else(rst.clone(), reset, run)]);
    b.comment("Pipeline data: qualified by the valid bits, no reset needed.");
    let mut data = vec![when(
        advance.clone(),
        vec![
            set(&s_group[0], group.clone()),
            set(&s_group[1], s_group[0].clone()),
            set(&s_group[2], s_group[1].clone()),
            set(&s_plane_first[0], plane_first.clone()),
            set(&s_plane_first[1], s_plane_first[0].clone()),
            set(&s_plane_first[2], s_plane_first[1].clone()),
        ],
    )];
    data.extend(data_stmts);
    b.clocked(&clk, data);
    b.clocked(&clk, control_stmts);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const DCN: &str = "[deform]\nmode = \"dcnv2\"\nlanes = 4\nmax_width = 16\n";

    #[test]
    fn mode_b_keys_resolve_to_the_engine() {
        let cfg = Config::from_toml(DCN, "t").unwrap();
        let p = Dcnv2Params::of(cfg.deform.as_ref().unwrap());
        assert_eq!((p.kernel, p.padding, p.dilation), (3, 1, 1));
        assert_eq!((p.taps_per_cycle, p.groups()), (9, 1));
        // R = 2 + 2*2 + 2 rows, plus one for the stride, rounded up to even.
        assert_eq!((p.window_rows(), p.buffer_rows()), (8, 10));
        // max_offset 2 at f = 8: +-513 needs 11 bits.
        assert_eq!(p.offset_bits(), 11);
        let spelled = format!("{DCN}padding = 1\ndilation = 1\ntaps_per_cycle = 9\n");
        assert_eq!(Config::from_toml(&spelled, "t").unwrap().hash(), cfg.hash());
        let five = Config::from_toml(&format!("{DCN}kernel = 5\ndilation = 2\n"), "t").unwrap();
        let p = Dcnv2Params::of(five.deform.as_ref().unwrap());
        assert_eq!((p.padding, p.taps_per_cycle, p.window_rows()), (4, 25, 14));
    }

    #[test]
    fn mode_b_bad_keys_name_the_key() {
        for (extra, key) in [
            ("taps_per_cycle = 0\n", "deform.taps_per_cycle"),
            ("taps_per_cycle = 10\n", "deform.taps_per_cycle"),
            ("dilation = 0\n", "deform.dilation"),
            ("padding = 17\n", "deform.padding"),
        ] {
            let err = Config::from_toml(&format!("{DCN}{extra}"), "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
        let codenet = "[deform]\nmode = \"codenet\"\nmax_width = 8\npadding = 1\n";
        let err = Config::from_toml(codenet, "t").unwrap_err().to_string();
        assert!(
            err.contains("deform.padding") && err.contains("dcnv2"),
            "{err}"
        );
    }
}
