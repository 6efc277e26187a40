//! The deformable-convolution engine.

pub mod dcnv2;
