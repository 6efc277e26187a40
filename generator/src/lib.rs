//! coforge generator: the RTL description layer (`rtl`), the typed configuration (`config`),
//! the engine generators (`engines`) and the on-disk artifacts (`artifacts`: Verilog files, a
//! filelist and a manifest).

pub mod artifacts;
pub mod config;
pub mod engines;
pub mod rtl;
