//! Bit-for-bit comparison of golden and RTL tensors, naming the first difference.

use crate::DriverError;
use half::f16;
use ndarray::ArrayView2;
use serde::Serialize;

/// A value whose identity is its bit pattern (so +0 and -0 differ, and NaN equals itself).
pub trait Bits: Copy {
    fn bits(self) -> u64;
    fn show(self) -> String;
}

macro_rules! int_bits {
    ($($t:ty => $u:ty),*) => {$(
        impl Bits for $t {
            fn bits(self) -> u64 { self as $u as u64 }
            fn show(self) -> String { self.to_string() }
        }
    )*};
}
int_bits!(i8 => u8, u8 => u8, i32 => u32, u32 => u32);

impl Bits for f32 {
    fn bits(self) -> u64 {
        self.to_bits() as u64
    }
    fn show(self) -> String {
        format!("{self:e} (0x{:08x})", self.to_bits())
    }
}

impl Bits for f16 {
    fn bits(self) -> u64 {
        self.to_bits() as u64
    }
    fn show(self) -> String {
        format!("{} (0x{:04x})", self.to_f32(), self.to_bits())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mismatch {
    pub tensor: String,
    pub index: [usize; 2],
    pub golden: String,
    pub rtl: String,
    /// Cycle at which the RTL produced the element, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycle: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub tensor: String,
    pub elements: usize,
    pub mismatches: usize,
    /// The first differing element in row-major order.
    pub first_mismatch: Option<Mismatch>,
}

impl Comparison {
    pub fn bit_exact(&self) -> bool {
        self.mismatches == 0
    }
}

/// `first mismatch in `c` at [3, 5]: golden 1 but RTL 2 (read out at cycle 40)`: the one-line form
/// that error messages, JUnit failures and pictures share.
impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "first mismatch in `{}` at {:?}: golden {} but RTL {}",
            self.tensor, self.index, self.golden, self.rtl
        )?;
        match self.cycle {
            Some(c) => write!(f, " (read out at cycle {c})"),
            None => Ok(()),
        }
    }
}

/// Compares two tensors of the same shape bit for bit.
pub fn compare<T: Bits>(
    tensor: &str,
    golden: ArrayView2<T>,
    rtl: ArrayView2<T>,
) -> Result<Comparison, DriverError> {
    if golden.dim() != rtl.dim() {
        return Err(DriverError::Shape(format!(
            "`{tensor}`: golden is {:?} but RTL is {:?}",
            golden.dim(),
            rtl.dim()
        )));
    }
    let mut mismatches = 0;
    let mut first = None;
    for ((index, g), r) in golden.indexed_iter().zip(rtl.iter()) {
        if g.bits() != r.bits() {
            mismatches += 1;
            if first.is_none() {
                first = Some(Mismatch {
                    tensor: tensor.to_string(),
                    index: [index.0, index.1],
                    golden: g.show(),
                    rtl: r.show(),
                    cycle: None,
                });
            }
        }
    }
    Ok(Comparison {
        tensor: tensor.to_string(),
        elements: golden.len(),
        mismatches,
        first_mismatch: first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn names_the_first_difference_in_row_major_order() {
        let g = array![[1i32, 2], [3, 4]];
        let r = array![[1i32, 2], [5, 6]];
        let c = compare("c", g.view(), r.view()).unwrap();
        assert_eq!(c.mismatches, 2);
        let m = c.first_mismatch.unwrap();
        assert_eq!(m.index, [1, 0]);
        assert_eq!((m.golden.as_str(), m.rtl.as_str()), ("3", "5"));
    }

    #[test]
    fn signed_zeros_differ_and_nan_matches_itself() {
        let g = array![[0.0f32, f32::NAN]];
        let r = array![[-0.0f32, f32::NAN]];
        let c = compare("y", g.view(), r.view()).unwrap();
        assert_eq!(c.mismatches, 1);
        assert_eq!(c.first_mismatch.unwrap().index, [0, 0]);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let g = array![[1i32, 2]];
        let r = array![[1i32], [2]];
        assert!(compare("c", g.view(), r.view()).is_err());
    }
}
