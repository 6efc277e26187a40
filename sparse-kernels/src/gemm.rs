//! GEMM, dense and N:M-compressed, written once over a [`MacArith`].
//!
//! Accumulation order (part of the contract): every output element starts from
//! [`MacArith::zero`] and adds its products in increasing reduction index `k`.

use ndarray::{Array2, ArrayView2, Axis};

use crate::int::{self, Overflow};
use crate::nm::Compressed;
use crate::{fp, KernelError};

/// The arithmetic of one MAC, so that each GEMM loop exists once for every number format.
pub trait MacArith {
    /// Activation (left operand) element.
    type A: Copy;
    /// Weight (right operand) element.
    type W: Copy;
    /// Accumulator.
    type Acc: Copy;
    /// The forms the inner loop multiplies: a GEMM converts each operand once (exactly), instead
    /// of once per product.
    type LoadedA: Copy;
    type LoadedW: Copy;
    fn load_a(&self, a: Self::A) -> Self::LoadedA;
    fn load_w(&self, w: Self::W) -> Self::LoadedW;
    /// Value an accumulator starts from.
    fn zero(&self) -> Self::Acc;
    /// `acc + a*w` under this arithmetic's rules, on loaded operands.
    fn mac_loaded(&self, acc: Self::Acc, a: Self::LoadedA, w: Self::LoadedW) -> Self::Acc;
    /// `acc + a*w` under this arithmetic's rules.
    fn mac(&self, acc: Self::Acc, a: Self::A, w: Self::W) -> Self::Acc {
        self.mac_loaded(acc, self.load_a(a), self.load_w(w))
    }
}

/// int8 × int8 → int32 with the given overflow policy ([`int::mac`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntArith {
    pub overflow: Overflow,
}

impl MacArith for IntArith {
    type A = i8;
    type W = i8;
    type Acc = i32;
    type LoadedA = i8;
    type LoadedW = i8;
    fn load_a(&self, a: i8) -> i8 {
        a
    }
    fn load_w(&self, w: i8) -> i8 {
        w
    }
    fn zero(&self) -> i32 {
        0
    }
    fn mac_loaded(&self, acc: i32, a: i8, w: i8) -> i32 {
        int::mac(acc, a, w, self.overflow)
    }
}

/// fp16 × fp16 → fp32: exact product, RNE add ([`fp::mac`]), accumulators start at +0.0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fp16Arith;

impl MacArith for Fp16Arith {
    type A = fp::f16;
    type W = fp::f16;
    type Acc = f32;
    // fp16 -> f32 is exact, and the f32 product of two widened fp16 values is the exact product,
    // so `add(acc, mul(a, w))` on loaded operands is `fp::mac` bit for bit (tested).
    type LoadedA = f32;
    type LoadedW = f32;
    fn load_a(&self, a: fp::f16) -> f32 {
        f32::from(a)
    }
    fn load_w(&self, w: fp::f16) -> f32 {
        f32::from(w)
    }
    fn zero(&self) -> f32 {
        0.0
    }
    fn mac_loaded(&self, acc: f32, a: f32, w: f32) -> f32 {
        fp::add(acc, fp::mul(a, w))
    }
    fn mac(&self, acc: f32, a: fp::f16, w: fp::f16) -> f32 {
        fp::mac(acc, a, w)
    }
}

/// `C = A (M×K) · B (K×N)`, products added in increasing `k` from `zero()`.
pub fn gemm<Ar: MacArith>(
    ar: &Ar,
    a: ArrayView2<Ar::A>,
    b: ArrayView2<Ar::W>,
) -> Result<Array2<Ar::Acc>, KernelError> {
    let (m, k) = a.dim();
    let (kb, n) = b.dim();
    if k != kb {
        return Err(KernelError::ShapeMismatch {
            op: "gemm".into(),
            detail: format!("A is {m}x{k} and B is {kb}x{n}: A's columns must equal B's rows"),
        });
    }
    // Row-major copies so the inner loop walks two contiguous slices; this changes memory order
    // only, never the order of the adds.
    let a_rows: Vec<Ar::LoadedA> = a.iter().map(|&x| ar.load_a(x)).collect();
    let b_cols: Vec<Ar::LoadedW> = b.t().iter().map(|&w| ar.load_w(w)).collect();
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        let arow = &a_rows[i * k..(i + 1) * k];
        for j in 0..n {
            let bcol = &b_cols[j * k..(j + 1) * k];
            let acc = arow
                .iter()
                .zip(bcol)
                .fold(ar.zero(), |acc, (&x, &w)| ar.mac_loaded(acc, x, w));
            out.push(acc);
        }
    }
    Ok(Array2::from_shape_vec((m, n), out).expect("m*n elements were pushed"))
}

/// `C = A · expand(B)` with `B` compressed N:M along K (its axis 0): only the kept products are
/// added, in increasing `k` (the sparse engine skips pruned positions instead of multiplying by 0).
///
/// Equal bit for bit to `gemm(A, expand(B))` whenever `A` has no inf/NaN at pruned positions: a pruned
/// product is `±0`, the accumulator starts at `+0` and can never become `-0` (RNE gives `-0` only for
/// `-0 + -0`), and `acc + ±0 = acc` for every other `acc`. If `A` has an inf where `B` is pruned,
/// `gemm` on the dense tensor gets `inf * 0 = NaN` but this function (and the hardware) does not.
pub fn gemm_nm<Ar: MacArith>(
    ar: &Ar,
    a: ArrayView2<Ar::A>,
    b: &Compressed<Ar::W>,
) -> Result<Array2<Ar::Acc>, KernelError> {
    b.validate()?;
    if b.axis != Axis(0) {
        return Err(KernelError::ShapeMismatch {
            op: "gemm_nm".into(),
            detail: "B must be compressed along axis 0 (the reduction axis K)".into(),
        });
    }
    let (m, k) = a.dim();
    let (kb, n) = b.dense_dim();
    if k != kb {
        return Err(KernelError::ShapeMismatch {
            op: "gemm_nm".into(),
            detail: format!(
                "A is {m}x{k} and the expanded B is {kb}x{n}: A's columns must equal B's rows"
            ),
        });
    }
    let (pn, pm) = (b.pattern.n(), b.pattern.m());
    let kept = b.values.nrows();
    // Per output column: its kept (k, weight) pairs. Entry t of a column belongs to group t / n,
    // and indices grow inside a group, so k grows along the list.
    let cols: Vec<Vec<(usize, Ar::LoadedW)>> = (0..n)
        .map(|j| {
            (0..kept)
                .map(|t| {
                    let kk = t / pn * pm + usize::from(b.indices[[t, j]]);
                    (kk, ar.load_w(b.values[[t, j]]))
                })
                .collect()
        })
        .collect();
    let a_rows: Vec<Ar::LoadedA> = a.iter().map(|&x| ar.load_a(x)).collect();
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        let arow = &a_rows[i * k..(i + 1) * k];
        for col in &cols {
            let acc = col
                .iter()
                .fold(ar.zero(), |acc, &(kk, w)| ar.mac_loaded(acc, arow[kk], w));
            out.push(acc);
        }
    }
    Ok(Array2::from_shape_vec((m, n), out).expect("m*n elements were pushed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fp::f16;
    use crate::nm::{compress, expand, NmPattern};
    use ndarray::array;
    use proptest::prelude::*;

    #[test]
    fn int_gemm_small_and_edges() {
        let a = array![[1i8, 2], [-128, 127]];
        let b = array![[3i8, -1], [4, -128]];
        let c = gemm(&IntArith::default(), a.view(), b.view()).unwrap();
        assert_eq!(c, array![[11, -257], [-128 * 3 + 127 * 4, 128 - 127 * 128]]);
        // Wrap versus saturate on a long all-max reduction.
        let k = 131_073;
        let a = Array2::from_elem((1, k), -128i8);
        let b = Array2::from_elem((k, 1), -128i8);
        let w = gemm(
            &IntArith {
                overflow: Overflow::Wrap,
            },
            a.view(),
            b.view(),
        )
        .unwrap();
        let s = gemm(
            &IntArith {
                overflow: Overflow::Saturate,
            },
            a.view(),
            b.view(),
        )
        .unwrap();
        assert_eq!(w[[0, 0]], i32::MIN.wrapping_add(16384));
        assert_eq!(s[[0, 0]], i32::MAX);
    }

    #[test]
    fn shape_errors() {
        let a = Array2::<i8>::zeros((2, 3));
        let b = Array2::<i8>::zeros((4, 2));
        assert!(matches!(
            gemm(&IntArith::default(), a.view(), b.view()),
            Err(KernelError::ShapeMismatch { .. })
        ));
        let c = compress(
            Array2::<i8>::zeros((4, 2)).view(),
            NmPattern::new(2, 4).unwrap(),
            Axis(0),
        )
        .unwrap();
        assert!(matches!(
            gemm_nm(&IntArith::default(), a.view(), &c),
            Err(KernelError::ShapeMismatch { .. })
        ));
        let c1 = compress(
            Array2::<i8>::zeros((3, 4)).view(),
            NmPattern::new(2, 4).unwrap(),
            Axis(1),
        )
        .unwrap();
        assert!(matches!(
            gemm_nm(&IntArith::default(), a.view(), &c1),
            Err(KernelError::ShapeMismatch { .. })
        ));
        // K = 0: every output is zero().
        let e = gemm(
            &Fp16Arith,
            Array2::<f16>::default((2, 0)).view(),
            Array2::<f16>::default((0, 3)).view(),
        )
        .unwrap();
        assert_eq!(e, Array2::<f32>::zeros((2, 3)));
    }

    /// Order matters, and the contract's order is increasing k.
    /// Products: 1.0, 2^-24, 2^-24 (as fp16 products 1*1, 2^-12*2^-12, 2^-12*2^-12).
    /// Increasing k: (1 + 2^-24) = 1 (tie to even), + 2^-24 = 1  -> 1.0
    /// Decreasing k: (2^-24 + 2^-24) = 2^-23, + 1 = 1 + 2^-23     -> 1.00000012
    #[test]
    fn accumulation_order_is_increasing_k() {
        let t = f16::from_f32(2f32.powi(-12));
        let a = array![[f16::ONE, t, t]];
        let b = array![[f16::ONE], [t], [t]];
        let c = gemm(&Fp16Arith, a.view(), b.view()).unwrap();
        assert_eq!(c[[0, 0]].to_bits(), 1.0f32.to_bits());
        let reversed = (0..3)
            .rev()
            .fold(0.0f32, |acc, k| fp::mac(acc, a[[0, k]], b[[k, 0]]));
        assert_eq!(reversed.to_bits(), (1.0f32 + 2f32.powi(-23)).to_bits());
        assert_ne!(c[[0, 0]].to_bits(), reversed.to_bits());
        // The compressed GEMM follows the same order.
        let cb = compress(b.view(), NmPattern::new(3, 3).unwrap(), Axis(0)).unwrap();
        assert_eq!(
            gemm_nm(&Fp16Arith, a.view(), &cb).unwrap()[[0, 0]].to_bits(),
            c[[0, 0]].to_bits()
        );
    }

    /// Zeros with both signs: dense gemm adds -0 products to a +0 accumulator, which stays +0.
    #[test]
    fn negative_zero_products_do_not_change_the_result() {
        let nz = f16::from_bits(0x8000);
        let a = array![[nz, f16::ONE, nz, nz]];
        let b = array![[f16::ONE], [nz], [nz], [f16::ONE]];
        let c = gemm(&Fp16Arith, a.view(), b.view()).unwrap();
        assert_eq!(c[[0, 0]].to_bits(), 0); // +0, not -0
        let cb = compress(b.view(), NmPattern::new(2, 4).unwrap(), Axis(0)).unwrap();
        assert_eq!(
            gemm_nm(&Fp16Arith, a.view(), &cb).unwrap()[[0, 0]].to_bits(),
            0
        );
    }

    #[test]
    fn inf_at_a_pruned_position_differs_from_dense() {
        let a = array![[f16::INFINITY, f16::ONE]];
        let b = array![[f16::ZERO], [f16::ONE]];
        let cb = compress(b.view(), NmPattern::new(1, 2).unwrap(), Axis(0)).unwrap();
        assert!(gemm(&Fp16Arith, a.view(), expand(&cb).view()).unwrap()[[0, 0]].is_nan());
        assert_eq!(gemm_nm(&Fp16Arith, a.view(), &cb).unwrap()[[0, 0]], 1.0);
    }

    fn f16_special() -> impl Strategy<Value = f16> {
        prop_oneof![
            Just(0u16),
            Just(0x8000),
            Just(0x0001),
            Just(0x83ff),
            Just(0x0400),
            Just(0x7bff),
            Just(0xfbff),
            any::<u16>().prop_filter("finite", |b| b & 0x7c00 != 0x7c00),
        ]
        .prop_map(f16::from_bits)
    }

    fn int_special() -> impl Strategy<Value = i8> {
        prop_oneof![Just(0i8), Just(-128), Just(127), Just(-1), any::<i8>()]
    }

    proptest! {
        /// The GEMMs run on loaded (widened) operands; that must be `fp::mac` bit for bit,
        /// for every fp16 pair (NaN and inf included) and any accumulator.
        #[test]
        fn loaded_fp16_mac_is_the_contract_mac(a in any::<u16>(), w in any::<u16>(), acc in any::<u32>()) {
            let (a, w, acc) = (fp::f16::from_bits(a), fp::f16::from_bits(w), f32::from_bits(acc));
            let ar = Fp16Arith;
            let loaded = ar.mac_loaded(acc, ar.load_a(a), ar.load_w(w));
            prop_assert_eq!(loaded.to_bits(), fp::mac(acc, a, w).to_bits());
        }

        #[test]
        fn gemm_nm_equals_dense_gemm_fp16(
            rows in 1usize..4, groups in 1usize..4, cols in 1usize..4, (n, m) in (1usize..=8).prop_flat_map(|m| (1..=m, Just(m))),
            vals in proptest::collection::vec(f16_special(), 512),
        ) {
            let k = groups * m;
            let a = Array2::from_shape_fn((rows, k), |(i, j)| vals[(i * k + j) % 256]);
            let w = Array2::from_shape_fn((k, cols), |(i, j)| vals[256 + (i * cols + j) % 256]);
            let cb = compress(w.view(), NmPattern::new(n, m).unwrap(), Axis(0)).unwrap();
            let dense = gemm(&Fp16Arith, a.view(), expand(&cb).view()).unwrap();
            let sparse = gemm_nm(&Fp16Arith, a.view(), &cb).unwrap();
            prop_assert_eq!(dense.mapv(f32::to_bits), sparse.mapv(f32::to_bits));
        }

        #[test]
        fn gemm_nm_equals_dense_gemm_int(
            rows in 1usize..4, groups in 1usize..4, cols in 1usize..4, (n, m) in (1usize..=8).prop_flat_map(|m| (1..=m, Just(m))),
            vals in proptest::collection::vec(int_special(), 512), sat in any::<bool>(),
        ) {
            let ar = IntArith { overflow: if sat { Overflow::Saturate } else { Overflow::Wrap } };
            let k = groups * m;
            let a = Array2::from_shape_fn((rows, k), |(i, j)| vals[(i * k + j) % 256]);
            let w = Array2::from_shape_fn((k, cols), |(i, j)| vals[256 + (i * cols + j) % 256]);
            let cb = compress(w.view(), NmPattern::new(n, m).unwrap(), Axis(0)).unwrap();
            prop_assert_eq!(gemm(&ar, a.view(), expand(&cb).view()).unwrap(), gemm_nm(&ar, a.view(), &cb).unwrap());
        }

        /// The dense GEMM equals a naive triple loop written without the fold.
        #[test]
        fn gemm_matches_naive_loop(rows in 1usize..5, k in 0usize..9, cols in 1usize..5, vals in proptest::collection::vec(f16_special(), 128)) {
            let a = Array2::from_shape_fn((rows, k), |(i, j)| vals[(i * 9 + j) % 64]);
            let b = Array2::from_shape_fn((k, cols), |(i, j)| vals[64 + (i * 5 + j) % 64]);
            let c = gemm(&Fp16Arith, a.view(), b.view()).unwrap();
            for i in 0..rows { for j in 0..cols {
                let mut acc = 0.0f32;
                for kk in 0..k { acc += f32::from(a[[i, kk]]) * f32::from(b[[kk, j]]); }
                prop_assert_eq!(c[[i, j]].to_bits(), acc.to_bits());
            }}
        }
    }
}
