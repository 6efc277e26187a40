//! Leaf blocks described with rust-hdl, and how they reach a coforge design.
//!
//! coforge's engines are built with its own RTL layer (`coforge_generator::rtl`); rust-hdl's
//! measured limits (compile-time widths, one module copy per instance, `$` in identifiers,
//! `initial` blocks instead of resets, invalid 2-D arrays: `../shared/design/ecosystem.md`) keep
//! it out of the array generator. A small leaf is another matter: this crate describes leaves
//! with rust-hdl behind the cargo feature `rust-hdl`, passes rust-hdl's Verilog through
//! [`repair`] (which repairs or refuses each known problem and checks the declared ports), and
//! hands the result to a coforge design as external black-box modules.
//!
//! # The leaves
//! - [`requant`]: `cf_requant_relu`, the requantize-and-ReLU stage after the STCE, bit-exact
//!   with `sparse_kernels::int::requantize`.
//! - [`stage`]: `requant_stage`, a coforge module (built with the RTL layer) that instantiates
//!   it as a black box, as an engine top would.
//!
//! # Writing your own leaf
//! 1. Describe the block with rust-hdl (`#[derive(LogicBlock)]`, `#[hdl_gen] fn update`), in a
//!    module behind `#[cfg(feature = "rust-hdl")]`. Use `Bits<N>` arithmetic: rust-hdl 0.46
//!    multiplies only 16 x 16 bits, shifts logically, and its `Signed` simulator is unreliable,
//!    so write two's complement by hand (see `requant.rs`). Use literals, not Rust `const`s,
//!    inside `update`: rust-hdl prints a `const`'s name, which Verilog does not know.
//! 2. Reset every control register in the block's own logic from a `reset` input (rust-hdl's
//!    `DFF` has none; the `initial` values it writes are removed by [`repair`]) and qualify data
//!    registers with a valid bit.
//! 3. Declare the ports (`Vec<Port>`: name, direction, width, doc) and call
//!    [`repair::repair`]`(&raw, "cf_my_leaf", &ports)` on `generate_verilog_unchecked`'s output,
//!    after rust-hdl's `check_all`. It returns the leaf's modules as
//!    `ModuleDef::External`s, sub-modules first, or an error that names what cannot be repaired.
//! 4. Add them to a `Design` and instantiate the last one with `ModuleBuilder::instance`, whose
//!    connections are checked against the declared ports.
//! 5. Test it as `tests/requant_rtl.rs` does: `verilator --lint-only -Wall`, `yosys
//!    synth_xilinx`, and a co-simulation against the reference at the edges.

pub mod repair;
#[cfg(feature = "rust-hdl")]
pub mod requant;
#[cfg(feature = "rust-hdl")]
pub mod stage;
