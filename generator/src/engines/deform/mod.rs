//! The deformable-convolution engine (`deform`). Mode B (DCNv2) is [`dcnv2`], with its own
//! protocol. For mode A (plain and CoDeNet) this module is the one protocol description:
//! the ports, the reset, the parameter load, the latency, when a result is valid, the error
//! flag and the cycle estimate. The driver (`coforge_driver::deform`), the CLI and the benches
//! use these items instead of repeating them. The arithmetic is `sparse_kernels::deform`.
//!
//! # Mode A (`mode = "plain" | "codenet"`): dataflow
//! ```text
//!  in stream ──► [1x1 front: lanes x lanes MACs, quantizer]? ──► line buffer ──► 9 taps x lanes
//!  (NHWC beats)        (with pointwise = true)            (2*dmax+2 rows)       MACs ──► quantizer ──► out stream
//!  dilation stream (codenet) ──────────────────────────────────────────────┘
//! ```
//! - **Channel groups.** A layer of C channels is `G = ceil(C / lanes)` groups (the last one
//!   padded). The engine runs one *pass* per group: pass g streams the image's pixels in raster
//!   order (row by row, left to right), each beat holding the `lanes` channels `g*lanes ..` of
//!   one pixel (lane i at bits `[8i +: 8]`). With the 1x1 front, pass g computes output group g
//!   of the 1x1 layer, and each pixel is `Gin = ceil(Cin / lanes)` beats (input groups 0..Gin-1
//!   in order); the front accumulates them and writes one quantized pixel of `lanes` channels
//!   into the line buffer. Passes follow each other without a gap: the next pass is loaded
//!   while the last rows of the previous one are still being read.
//! - **Line buffer.** `R = 2*dmax + 2` rows of `max_width` pixels of `lanes` bytes: the
//!   `2*dmax + 1` rows a 3x3 window with dilation dmax spans, plus the row being loaded. Rows
//!   are slots of a circular buffer whose numbering continues across passes. It is nine copies
//!   of a simple dual-port RAM (one write port, one registered read port each, written with the
//!   same pixel, each read by one tap), the template Vivado and Yosys infer as block RAM.
//! - **Flow control.** A pixel row may be written once no output still to be read needs the
//!   row it replaces; an output (oy, ox) is issued once every row it may read (up to dmax rows
//!   below its centre, up to dmax columns to the right) is written. In steady state one output
//!   is issued per cycle and the loader runs one row ahead.
//! - **Taps.** Output (oy, ox) is centred at (s*oy, s*ox) (s = `stride`, `Hout = ceil(H/s)`);
//!   tap (i, j) reads (s*oy + d*(i-1), s*ox + d*(j-1)) with the pixel's dilation d (1 in plain
//!   mode). A tap outside the image reads -128 in every lane. The 9 products of a lane are
//!   summed exactly (16 bits suffice; the quantizer takes 24), then quantized with the group's
//!   int16 scale and bias: `sparse_kernels::deform::codenet::quantize`.
//!
//! # Ports (all synchronous to `clk`; `rst` synchronous, active high)
//! - **Parameters**, while the engine is idle (`prm_ready` high): one word per `prm_valid`
//!   cycle into the memory `prm_target` ([`param_target`]) at word `prm_addr`, data in the low
//!   bits of `prm_data` (`16*lanes` bits):
//!   - depthwise weights: target `t` (tap `t = 3i + j`, 0..8), word g, lane i's int4 weight
//!     at bits `[4i +: 4]`;
//!   - depthwise scale / bias: targets 9 / 10, word g, lane i's int16 at `[16i +: 16]`;
//!   - 1x1 scale / bias: targets 11 / 12, word g (output group);
//!   - 1x1 weights: target `16 + o` for output lane o, word `gout * max_groups + gin`, the
//!     int4 weight from input lane i of group gin at `[4i +: 4]`.
//!
//!   Parameters stay until overwritten, so several layers may share one load.
//! - **Layer**: `layer_height`, `layer_width`, `layer_groups` (G, the passes),
//!   `layer_in_groups` (Gin, with the front), `layer_relu` (and `layer_relu_pw`) are sampled
//!   in the cycle `start` is high while the engine is idle; `busy` rises the next cycle.
//! - **Streams**, each a valid/ready pair that transfers a beat in a cycle where both are high:
//!   `in_*` (pixels, `8*lanes` bits), `dil_*` (codenet: one uint8 dilation per output pixel,
//!   in output raster order, repeated for every pass), and `out_*` (the results, in output
//!   raster order per pass, `8*lanes` bits). The engine takes exactly `G * H * W * Gin` pixel
//!   beats and `G * Hout * Wout` dilations and gives `G * Hout * Wout` results. `out_valid`
//!   says a result is valid; it and `out_data` hold until `out_ready` takes them.
//! - **Done**: `done` rises in the cycle after the last result is taken and stays high until
//!   the next `start`; `busy` falls at the same time.
//! - **Error**: `error` is sticky until the next `start`. It rises in the cycle after a
//!   dilation of 0 or above `max_dilation` is taken (the engine then computes that pixel with
//!   the dilation clamped into [1, dmax], so the stream completes, but its result is not the
//!   layer's: a reader must check `error`), or after a `start` with a size the engine cannot
//!   run (a zero size, `layer_width > max_width`, or more groups than `max_groups`); such a
//!   layer takes no beats and ends at once with `done` and `error`.
//!
//! # Timing
//! - [`RESET_CYCLES`] cycles of `rst` high, then parameters, then `start`.
//! - An output issued in cycle t (its dilation taken, its taps addressed) is valid in cycle
//!   t + [`LATENCY`] when `out_ready` has been high; back-pressure (`out_ready` low) stalls
//!   the whole tap pipeline, which then holds its contents.
//! - A pixel whose last beat is taken in cycle t can be read by an output issued in cycle
//!   t + [`write_latency`] (1, or 4 through the 1x1 front).
//! - [`estimated_cycles`] is the model of a run from the first pixel beat to the last result,
//!   with both streams never waiting on the testbench.
//!
//! # Mode B (`mode = "dcnv2"`)
//! A deformable im2col sampler over a banked window buffer, feeding a depthwise MAC unit or
//! emitting the im2col columns that the STCE multiplies. Its protocol, latency, buffer sizing,
//! error flag and cycle estimate are documented in [`dcnv2`].

pub mod dcnv2;
mod mode_a;

use crate::config::{DeformConfig, DeformMode};
use crate::rtl::{Design, DesignError};

/// Port names of the top module, shared with the driver.
pub mod ports {
    pub const CLOCK: &str = "clk";
    pub const RESET: &str = "rst";
    pub const PRM_VALID: &str = "prm_valid";
    pub const PRM_READY: &str = "prm_ready";
    pub const PRM_TARGET: &str = "prm_target";
    pub const PRM_ADDR: &str = "prm_addr";
    pub const PRM_DATA: &str = "prm_data";
    pub const START: &str = "start";
    pub const HEIGHT: &str = "layer_height";
    pub const WIDTH: &str = "layer_width";
    pub const GROUPS: &str = "layer_groups";
    pub const IN_GROUPS: &str = "layer_in_groups";
    pub const RELU: &str = "layer_relu";
    pub const RELU_PW: &str = "layer_relu_pw";
    pub const IN_VALID: &str = "in_valid";
    pub const IN_READY: &str = "in_ready";
    pub const IN_DATA: &str = "in_data";
    pub const DIL_VALID: &str = "dil_valid";
    pub const DIL_READY: &str = "dil_ready";
    pub const DIL_DATA: &str = "dil_data";
    pub const OUT_VALID: &str = "out_valid";
    pub const OUT_READY: &str = "out_ready";
    pub const OUT_DATA: &str = "out_data";
    pub const BUSY: &str = "busy";
    pub const DONE: &str = "done";
    pub const ERROR: &str = "error";
}

/// The memories behind `prm_target`.
pub mod param_target {
    /// Depthwise weights of tap `t = 3*i + j` are target `t`.
    pub const DW_TAP0: u32 = 0;
    pub const DW_SCALE: u32 = 9;
    pub const DW_BIAS: u32 = 10;
    pub const PW_SCALE: u32 = 11;
    pub const PW_BIAS: u32 = 12;
    /// 1x1 weights of output lane `o` are target `PW_LANE0 + o`.
    pub const PW_LANE0: u32 = 16;
}

/// Cycles of `rst` before anything else.
pub const RESET_CYCLES: u64 = 2;

/// Cycles from an output's issue to its `out_valid` (no back-pressure): address registers,
/// line-buffer read, MAC register, quantizer register.
pub const LATENCY: u64 = 4;

/// Width of the layer height port (and of the row counters).
pub const HEIGHT_BITS: u32 = 16;

/// Cycles from a pixel's last beat to the first cycle an output may read it.
pub fn write_latency(cfg: &DeformConfig) -> u64 {
    if cfg.has_pointwise() {
        4
    } else {
        1
    }
}

/// One layer as the engine sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer {
    pub height: u32,
    pub width: u32,
    /// Passes: output channel groups of `lanes`.
    pub groups: u32,
    /// Beats per pixel: input channel groups with the 1x1 front, else 1.
    pub in_groups: u32,
}

impl Layer {
    pub fn out_height(&self, cfg: &DeformConfig) -> u32 {
        self.height.div_ceil(cfg.stride)
    }
    pub fn out_width(&self, cfg: &DeformConfig) -> u32 {
        self.width.div_ceil(cfg.stride)
    }
    pub fn in_beats(&self) -> u64 {
        u64::from(self.groups)
            * u64::from(self.height)
            * u64::from(self.width)
            * u64::from(self.in_groups)
    }
    pub fn out_beats(&self, cfg: &DeformConfig) -> u64 {
        u64::from(self.groups) * u64::from(self.out_height(cfg)) * u64::from(self.out_width(cfg))
    }
}

/// The cycle model of one layer, from the cycle of the first pixel beat to the cycle of the last
/// result, both counted (so a one-cycle run is 1), when the streams never wait on the testbench.
///
/// Two bounds, the larger wins:
/// - *output-bound*: the first output waits for the rows it may read (`dmax` rows and
///   `dmax + 1` pixels, or the whole image when it is shorter), then one output per cycle;
/// - *input-bound*: one pixel beat per cycle, then the outputs of the last pass that may read
///   the last row (centre row within `dmax` of the bottom) follow the last beat.
///
/// Passes overlap completely in both bounds; bubbles where the loader waits for the reader
/// (narrow images) are not modelled, which is why measured cycles may exceed the estimate.
pub fn estimated_cycles(cfg: &DeformConfig, layer: &Layer) -> u64 {
    let (h, w) = (u64::from(layer.height), u64::from(layer.width));
    let dmax = u64::from(cfg.dmax());
    let gin = u64::from(layer.in_groups);
    let fill_pixels = if h - 1 <= dmax {
        h * w
    } else {
        dmax * w + (dmax + 1).min(w)
    };
    let first_issue = fill_pixels * gin - 1 + write_latency(cfg);
    let output_bound = first_issue + layer.out_beats(cfg) - 1;
    let s = u64::from(cfg.stride);
    let out_h = u64::from(layer.out_height(cfg));
    // Output rows whose centre is within dmax of the last row wait for the last pixel.
    let waiting_rows = (0..out_h).filter(|oy| s * oy + dmax >= h - 1).count() as u64;
    let drain = waiting_rows * u64::from(layer.out_width(cfg));
    let input_bound = layer.in_beats() - 1 + write_latency(cfg) + drain - 1;
    output_bound.max(input_bound) + LATENCY + 1
}

/// The modules the engine defines besides its top.
pub fn module_names(cfg: &DeformConfig) -> Vec<String> {
    match cfg.mode {
        DeformMode::Plain | DeformMode::Codenet => mode_a::module_names(cfg),
        // Generation is cheap: the DCNv2 engine's modules are those of its design.
        DeformMode::Dcnv2 => dcnv2::generate(&dcnv2::Dcnv2Params::of(cfg))
            .modules()
            .map(|m| m.name().to_string())
            .filter(|n| *n != cfg.top)
            .collect(),
    }
}

/// Builds the engine of `cfg`; the returned design's last module is the top (`cfg.top`).
pub fn generate(cfg: &DeformConfig) -> Result<Design, DesignError> {
    match cfg.mode {
        DeformMode::Plain | DeformMode::Codenet => mode_a::generate(cfg),
        DeformMode::Dcnv2 => Ok(dcnv2::generate(&dcnv2::Dcnv2Params::of(cfg))),
    }
}
