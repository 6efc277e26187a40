//! coforge driver: compiles work onto the generated engines and runs it on a simulator.
//!
//! - `design`: from rendered Verilog to a simulator's `DesignSpec`.
//! - `stce`: a GEMM on the sparse tensor engine: tiling, the cycle-exact input stream, the
//!   read-out schedule, and the cycle model that predicts its length.
//! - `compare` and `mismatch_map`: bit-for-bit comparison naming the first difference, and a
//!   heat map of every difference (`mismatch.svg`).
//! - `sore`: N:M pruning of a tensor on the online pruning unit, and its cycle model.
//! - `wuve`: the SR-STE weight update (fp32 master weights and their fp16 copy) on the
//!   weight-update vector engine, and its cycle model.

pub mod axi;
pub mod compare;
pub mod dcnv2;
pub mod deform;
pub mod design;
pub mod mismatch_map;
pub mod sat;
pub mod sore;
pub mod stce;
pub mod verify;
pub mod wuve;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DriverError {
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("the engine cannot run this: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Sim(#[from] coforge_sim::SimError),
}
