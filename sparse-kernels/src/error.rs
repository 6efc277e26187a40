//! The one error type of the crate. Each message names the problem and, where there is one, the fix.

/// Errors returned by the reference kernels. Kernels never panic on bad input data; they return one
/// of these instead.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum KernelError {
    /// An N:M pattern outside `0 < n <= m <= 16`.
    #[error("invalid N:M pattern {n}:{m}: {reason}")]
    InvalidPattern { n: usize, m: usize, reason: String },

    /// The pruned axis cannot be cut into whole groups of `m`.
    #[error(
        "axis {axis} of {tensor} has length {len}, which is not a multiple of M = {m}; \
         pad or reshape the tensor so that every group of {m} elements is complete"
    )]
    AxisNotMultiple {
        tensor: String,
        axis: usize,
        len: usize,
        m: usize,
    },

    /// A 2-D tensor only has axes 0 and 1.
    #[error("invalid axis {axis} for a 2-D tensor: use 0 (down the rows) or 1 (along a row)")]
    InvalidAxis { axis: usize },

    /// Operand shapes that do not fit together.
    #[error("shape mismatch in {op}: {detail}")]
    ShapeMismatch { op: String, detail: String },

    /// A NaN in an input tensor. Only NaN is rejected: infinities are allowed and propagate by
    /// IEEE rules (see [`crate::bdwp::train_step`]).
    #[error(
        "{tensor} contains NaN at index {index:?}; NaN inputs are rejected \
         (infinities are allowed), so fix the producer of {tensor}"
    )]
    NonFinite { tensor: String, index: Vec<usize> },

    /// A 0/1 mask that is not a valid N:M mask for the pattern it is used with.
    #[error("invalid N:M mask: {0}")]
    InvalidMask(String),

    /// An integer outside the range of its declared format (for example int4).
    #[error("{tensor} has {value} at index {index:?}, outside the {format} range [{min}, {max}]")]
    OutOfRange {
        tensor: String,
        format: String,
        index: Vec<usize>,
        value: i64,
        min: i64,
        max: i64,
    },

    /// A [`crate::nm::Compressed`] tensor whose parts disagree (built by hand, not by `compress`).
    #[error("invalid compressed tensor: {0}")]
    InvalidCompressed(String),

    /// A scalar parameter outside its domain (for example a NaN learning rate).
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        name: String,
        value: String,
        reason: String,
    },
}
