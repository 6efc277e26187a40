//! Generic co-simulation of run-time generated Verilog.
//!
//! coforge generates Verilog while it runs, so nothing here relies on the RTL
//! existing at `cargo build` time. A design is described by a [`DesignSpec`]
//! (sources, top module, ports, clock). Two independent backends simulate it:
//!
//! * [`Verilator`] (primary, fast): generates a per-design C++ shim, builds
//!   the design and shim into a shared library with Verilator 5.006 or later,
//!   caches it by content hash, and loads it with `libloading`. The clock loop
//!   runs inside C++; Rust crosses the FFI boundary once per [`Simulator::run`],
//!   never once per cycle. It also runs closed loop, one cycle per call (below).
//! * [`Icarus`] (second opinion): generates a testbench that streams the same
//!   input frames from a file and writes the captured output frames to a file.
//!
//! # Example
//!
//! ```no_run
//! use coforge_sim::*;
//! # fn main() -> Result<(), SimError> {
//! let spec = DesignSpec {
//!     top: "counter".into(),
//!     sources: vec![("counter.v".into(), "module counter(input wire clk, input wire rst, \
//!         output reg [7:0] count); always @(posedge clk) count <= rst ? 8'd0 : count + 8'd1; \
//!         endmodule".into())],
//!     ports: vec![PortSpec::input("rst", 1), PortSpec::output("count", 8)],
//!     clock: "clk".into(),
//! };
//! let lib = Verilator::build(&spec, &BuildOptions::default())?; // cached by content
//! let mut model = lib.instantiate()?;
//! let mut stim = Stimulus::new(&spec);
//! stim.set("rst", 1);
//! stim.step(false); // cycle 0: reset edge
//! stim.set("rst", 0);
//! stim.idle(3); // cycles 1..=3 count
//! stim.step(true); // cycle 4: sample before its edge
//! let trace = model.run(&stim)?;
//! assert_eq!(trace.get(0, "count"), 3);
//! # Ok(()) }
//! ```
//!
//! # Closed loop: models that answer the design's outputs every cycle
//!
//! A [`Stimulus`] is computed before the run (open loop). When the inputs of a
//! cycle depend on the outputs of earlier cycles (valid/ready handshakes, bus
//! models, a training loop), drive a [`VerilatedModel`] one cycle at a time:
//! resolve ports once to [`InputPort`]/[`OutputPort`] handles, set inputs,
//! [`VerilatedModel::step`] (one cycle with the semantics below, outputs
//! sampled every cycle), read outputs. A step makes one call into the library
//! and allocates nothing. Steps and [`Simulator::run`] can be mixed; both
//! continue the model's cycle counter, and VCD windows count the same cycles.
//!
//! Reusable bus-functional models implement [`Agent`] (`drive` before each
//! cycle, `observe` after it); [`StreamSource`] and [`StreamSink`] are generic
//! valid/ready stream agents with seeded random gaps and back-pressure.
//! Closed loop needs the Verilator backend; [`Icarus`] runs stimuli only.
//!
//! ```
//! use coforge_sim::*;
//! # fn main() -> Result<(), SimError> {
//! // A one-entry register slice: in_ready while empty (or being emptied).
//! let spec = DesignSpec {
//!     top: "slice".into(),
//!     sources: vec![("slice.v".into(), "module slice(input wire clk, input wire rst, \
//!         input wire in_valid, output wire in_ready, input wire [7:0] in_data, \
//!         output reg out_valid, input wire out_ready, output reg [7:0] out_data); \
//!         assign in_ready = !out_valid || out_ready; \
//!         always @(posedge clk) if (rst) out_valid <= 1'b0; \
//!         else if (in_ready) begin out_valid <= in_valid; out_data <= in_data; end \
//!         endmodule".into())],
//!     ports: vec![PortSpec::input("rst", 1), PortSpec::input("in_valid", 1),
//!         PortSpec::output("in_ready", 1), PortSpec::input("in_data", 8),
//!         PortSpec::output("out_valid", 1), PortSpec::input("out_ready", 1),
//!         PortSpec::output("out_data", 8)],
//!     clock: "clk".into(),
//! };
//! let mut model = Verilator::build(&spec, &BuildOptions::default())?.instantiate()?;
//! let rst = model.input("rst")?; // resolved once, then no lookup per cycle
//! model.set(rst, 1);
//! model.step()?; // cycle 0: reset
//! model.set(rst, 0);
//! let mut source = StreamSource::new(model.pins(), "in_valid", "in_ready", "in_data")?
//!     .with_gaps(0.2, 1)?;
//! for x in [1, 2, 3, 255] {
//!     source.push(x)?;
//! }
//! let mut sink = StreamSink::new(model.pins(), "out_valid", "out_ready", "out_data")?
//!     .with_stalls(0.5, 2)?
//!     .expect(4);
//! let cycles = model.run_until_done(&mut [&mut source, &mut sink], 1000)?;
//! assert_eq!(sink.values(), [1, 2, 3, 255]);
//! assert!(cycles >= 5 && sink.cycles()[0] > source.accepted_cycles()[0]);
//! # Ok(()) }
//! ```
//!
//! # Cycle semantics (identical in both backends)
//!
//! A [`Stimulus`] is a sequence of cycles. Cycle `i` (counted from 0) is:
//!
//! 1. The clock is low. The input frame of cycle `i` (the values of all input
//!    ports when [`Stimulus::step`] closed cycle `i`) is applied to the design.
//! 2. Combinational logic settles.
//! 3. If cycle `i` was closed with `step(true)`, every output port is sampled
//!    into the next frame of the [`Trace`]. Outputs therefore show the register
//!    state produced by the rising edges of cycles `0..i`, plus the
//!    combinational response to the inputs of cycle `i`.
//! 4. One rising clock edge happens; this edge ends cycle `i`.
//!
//! In simulation time, cycle `i` starts at `10*i` (clock falls, inputs change)
//! and the rising edge is at `10*i + 5`. Only rising-edge designs are supported
//! with this timing; the falling edge coincides with the input change.
//!
//! A [`VerilatedModel`] keeps its state between runs: a second `run` continues
//! from where the first stopped, and cycle numbers (also those of
//! [`WaveOptions`]) count from the model's creation. [`Icarus`] starts every
//! run from time 0, as a new simulation.
//!
//! # Values
//!
//! Ports are 1 to 4096 bits wide. Values move as little-endian `u32` words,
//! `ceil(width / 32)` per port; bits above the width are always zero.
//!
//! # Environment
//!
//! * `COFORGE_VERILATOR`: the Verilator binary (default `verilator` on `PATH`).
//! * `COFORGE_IVERILOG`, `COFORGE_VVP`: the Icarus binaries (default `iverilog`
//!   and `vvp`; if only `COFORGE_IVERILOG` is a path, `vvp` is looked up beside it).
//! * `COFORGE_CACHE_DIR`: where built libraries are cached (default
//!   `$HOME/.cache/coforge/verilator`). Entries are checked against a stamp
//!   with their library's SHA-256 before loading and rebuilt when damaged;
//!   [`BuildCache`] lists and cleans the cache.
//! * `COFORGE_BUILD_JOBS`: parallel C++ compile jobs for a build (default: the
//!   number of CPUs, at most 8).

use std::fmt::Write as _;
use std::path::PathBuf;

mod frames;
mod icarus;
mod memory;
mod testbench;
mod tools;
mod verilator;

pub mod axi;
pub mod axi4;
pub use frames::{InputPort, OutputPort, Pins, Stimulus, Trace, TraceMismatch};
pub use icarus::Icarus;
pub use memory::{Memory, MemoryPortNames, MemoryTiming};
pub use testbench::{Agent, Recorder, StreamSink, StreamSource};
pub use tools::ToolVersion;
pub use verilator::{
    BuildCache, BuildOptions, CacheEntry, EntryState, Removed, VerilatedLib, VerilatedModel,
    Verilator, WaveOptions, XInitial, STALE_AFTER, YOSYS_ESTIMATES_DIR,
};

/// The widest port supported. Wider buses should be split into several ports
/// (Verilator 5.006 also gets slow on very wide packed ports, see ecosystem.md).
pub const MAX_PORT_WIDTH: u32 = 4096;

/// Direction of a top-level port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortDir {
    Input,
    Output,
}

/// One top-level port (not the clock).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortSpec {
    pub name: String,
    pub dir: PortDir,
    /// Width in bits, `1..=4096`.
    pub width: u32,
}

impl PortSpec {
    pub fn input(name: impl Into<String>, width: u32) -> Self {
        PortSpec {
            name: name.into(),
            dir: PortDir::Input,
            width,
        }
    }
    pub fn output(name: impl Into<String>, width: u32) -> Self {
        PortSpec {
            name: name.into(),
            dir: PortDir::Output,
            width,
        }
    }
    /// Number of `u32` words a value of this port occupies.
    pub fn words(&self) -> usize {
        self.width.div_ceil(32) as usize
    }
}

/// Everything needed to simulate a design.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DesignSpec {
    /// Top module name.
    pub top: String,
    /// `(file name, Verilog text)` for every file of the design. Files ending in
    /// `.v`, `.sv` or `.vlog` are compiled; others (e.g. `.vh`) are only
    /// reachable through `` `include ``.
    pub sources: Vec<(String, String)>,
    /// All top ports except the clock, in a fixed order. Input frames hold the
    /// inputs in this order, output frames the outputs in this order.
    pub ports: Vec<PortSpec>,
    /// The clock input (rising edge), toggled by the simulator.
    pub clock: String,
}

impl DesignSpec {
    /// Checks names, widths and duplicates. Every backend calls this first.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |reason: String| Err(SimError::InvalidSpec { reason });
        if !is_identifier(&self.top) {
            return bad(format!(
                "top module name {:?} is not a plain Verilog identifier",
                self.top
            ));
        }
        if !is_identifier(&self.clock) {
            return bad(format!(
                "clock name {:?} is not a plain Verilog identifier",
                self.clock
            ));
        }
        if self.sources.is_empty() {
            return bad("the design has no source files".into());
        }
        let mut files = std::collections::HashSet::new();
        for (name, _) in &self.sources {
            let plain = !name.is_empty()
                && name != "."
                && name != ".."
                && !name.contains(['/', '\\', '\0'])
                && !name.starts_with('-');
            if !plain {
                return bad(format!(
                    "source file name {name:?} must be a plain file name (no directories)"
                ));
            }
            if !files.insert(name.as_str()) {
                return bad(format!("source file {name:?} is listed twice"));
            }
        }
        if !self.sources.iter().any(|(n, _)| is_compiled_source(n)) {
            return bad("no source file ends in .v, .sv or .vlog".into());
        }
        let mut names = std::collections::HashSet::new();
        names.insert(self.clock.as_str());
        for p in &self.ports {
            if !is_identifier(&p.name) {
                return bad(format!(
                    "port name {:?} is not a plain Verilog identifier",
                    p.name
                ));
            }
            if !names.insert(p.name.as_str()) {
                return bad(format!(
                    "port {:?} is listed twice (or is the clock)",
                    p.name
                ));
            }
            if p.width == 0 || p.width > MAX_PORT_WIDTH {
                return bad(format!(
                    "port {:?} has width {}; supported widths are 1..={MAX_PORT_WIDTH}",
                    p.name, p.width
                ));
            }
        }
        Ok(())
    }

    /// A one-line description of top, clock and ports; the Verilator shim
    /// returns the same string so a loaded library can be checked against the spec.
    pub(crate) fn signature(&self) -> String {
        let mut s = format!("coforge-sim/1;top={};clock={}", self.top, self.clock);
        for p in &self.ports {
            let d = match p.dir {
                PortDir::Input => "in",
                PortDir::Output => "out",
            };
            let _ = write!(s, ";{d} {} {}", p.name, p.width);
        }
        s
    }
}

pub(crate) fn is_compiled_source(name: &str) -> bool {
    [".v", ".sv", ".vlog"].iter().any(|e| name.ends_with(e))
}

impl DesignSpec {
    /// Writes every source file into `dir` (created if missing) and returns the paths of the
    /// ones a simulator compiles, in order.
    pub(crate) fn write_sources(
        &self,
        dir: &std::path::Path,
    ) -> Result<Vec<std::path::PathBuf>, SimError> {
        tools::create_dir(dir)?;
        let mut compiled = Vec::new();
        for (name, text) in &self.sources {
            let path = dir.join(name);
            tools::write_file(&path, text)?;
            if is_compiled_source(name) {
                compiled.push(path);
            }
        }
        Ok(compiled)
    }
}

/// Plain identifiers only: escaped identifiers and names Verilator mangles
/// (leading or double underscores) would not map 1:1 onto C++ member names.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
        && !s.contains("__")
        && s.len() <= 200
}

/// A backend that runs a [`Stimulus`] and returns the captured outputs.
pub trait Simulator {
    fn run(&mut self, stim: &Stimulus) -> Result<Trace, SimError>;
    /// Short backend name for reports, e.g. `"verilator"` or `"icarus"`.
    fn name(&self) -> &str;
}

/// Every failure of this crate. Messages name the problem and the fix.
#[derive(thiserror::Error, Debug)]
pub enum SimError {
    #[error("{tool} not found; {fix}")]
    ToolMissing { tool: String, fix: String },
    #[error("{tool} {found} is too old; coforge needs {required} or later. {fix}")]
    ToolTooOld {
        tool: String,
        found: String,
        required: String,
        fix: String,
    },
    #[error("could not run {tool}: {reason}")]
    ToolFailed { tool: String, reason: String },
    #[error("invalid design spec: {reason}")]
    InvalidSpec { reason: String },
    #[error("build failed; full log: {}\n--- last lines of the log ---\n{tail}", log.display())]
    BuildFailed { log: PathBuf, tail: String },
    #[error("could not load {}: {reason}", path.display())]
    Load { path: PathBuf, reason: String },
    #[error("ports do not match: {detail}")]
    PortMismatch { detail: String },
    #[error("unknown port {port:?}; ports are: {known}")]
    UnknownPort { port: String, known: String },
    #[error("port {port:?}: {reason}")]
    BadValue { port: String, reason: String },
    #[error(
        "Verilator build cache {}: {reason}. COFORGE_CACHE_DIR chooses the cache directory; \
         `coforge cache gc` removes damaged entries, `coforge cache clear` empties it",
        dir.display()
    )]
    Cache { dir: PathBuf, reason: String },
    #[error("simulation failed: {message}")]
    Runtime { message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl SimError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SimError {
        let context = context.into();
        move |source| SimError::Io { context, source }
    }
}
