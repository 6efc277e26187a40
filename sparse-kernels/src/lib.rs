//! Bit-exact reference kernels for coforge.
//!
//! Every numeric rule of the contract (`design/numerics.md`) is written exactly once here, as a
//! documented function, and the generated RTL mirrors each one:
//!
//! | module | rule |
//! |---|---|
//! | [`int`] | int8/int4 MAC with a named overflow policy, the CoDeNet requantizer |
//! | [`fp`] | exact fp16 product, fp32 RNE accumulate, fp32 → fp16 conversion |
//! | [`nm`] | N:M magnitude selection (ties to the lower index), masks, compression |
//! | [`gemm`] | dense and compressed GEMM, accumulation in increasing `k` |
//! | [`bdwp`] | one BDWP sparse training step (FF, BP, WU, update, mask pre-generation) |
//! | [`deform`] | deformable convolution: CoDeNet-exact mode A, DCNv2 fixed-point mode B, a float64 mode B |
pub mod bdwp;
pub mod deform;
pub mod error;
pub mod fp;
pub mod gemm;
pub mod int;
pub mod nm;

pub use error::KernelError;
