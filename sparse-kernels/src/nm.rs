//! N:M structured sparsity: the selection rule (ties to the lower index), masks, compression.
//!
//! A *group* is `m` consecutive elements along the pruned axis of a 2-D tensor; every group keeps the
//! `n` elements of largest [`Magnitude`]. The selection rule lives in [`select_group`] and nowhere
//! else; masks and compression call it.

use ndarray::{s, Array2, ArrayView2, Axis, Zip};

use crate::fp::f16;
use crate::KernelError;

/// Largest group size supported (indices fit in 4 bits).
pub const MAX_M: usize = 16;

/// An N:M pattern: keep `n` of every `m`. Invariant: `0 < n <= m <= 16`; `n == m` is dense.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NmPattern {
    n: usize,
    m: usize,
}

impl NmPattern {
    /// Checks `0 < n <= m <= 16`. `n == m` is allowed and means dense (see [`NmPattern::is_dense`]);
    /// front ends that only make sense for real pruning (the `prune` verb) reject it themselves.
    pub fn new(n: usize, m: usize) -> Result<Self, KernelError> {
        let reason = if m == 0 || m > MAX_M {
            Some(format!(
                "M must be in 1..={MAX_M} (indices are at most 4 bits)"
            ))
        } else if n == 0 {
            Some("N must be at least 1 (N = 0 would prune everything)".to_string())
        } else if n > m {
            Some("N must not exceed M".to_string())
        } else {
            None
        };
        match reason {
            Some(reason) => Err(KernelError::InvalidPattern { n, m, reason }),
            None => Ok(Self { n, m }),
        }
    }
    /// Elements kept per group.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Group size.
    pub fn m(&self) -> usize {
        self.m
    }
    /// `n == m`: nothing is pruned.
    pub fn is_dense(&self) -> bool {
        self.n == self.m
    }
    /// Bits of one stored index: `ceil(log2 m)`, at least 1 (so `m = 1` and `m = 2` both use 1 bit).
    pub fn index_bits(&self) -> u32 {
        (usize::BITS - (self.m - 1).leading_zeros()).max(1)
    }
}

impl std::fmt::Display for NmPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.n, self.m)
    }
}

/// The magnitude key that the selection compares, as an unsigned integer, so that the RTL comparator
/// is a plain unsigned `>`:
/// - fp16: `bits[14:0]`. Orders all finite values and inf; `+0` and `-0` are equal.
/// - f32: `bits[30:0]`, same reasoning.
/// - i8: `|x|` with `|-128| = 128`.
///
/// NaN has a key above inf. Selection itself does not care, but [`mask`] and [`compress`] reject NaN
/// inputs (through [`Magnitude::is_nan`]) so that a NaN never silently wins a group.
pub trait Magnitude: Copy + Default {
    fn magnitude(self) -> u32;
    /// Whether this value is a NaN (always false for integers).
    fn is_nan(self) -> bool {
        false
    }
}

impl Magnitude for i8 {
    fn magnitude(self) -> u32 {
        u32::from(self.unsigned_abs())
    }
}

impl Magnitude for f16 {
    fn magnitude(self) -> u32 {
        u32::from(self.to_bits() & 0x7fff)
    }
    fn is_nan(self) -> bool {
        f16::is_nan(self)
    }
}

impl Magnitude for f32 {
    fn magnitude(self) -> u32 {
        self.to_bits() & 0x7fff_ffff
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

/// THE tie rule. Keeps the `n` elements of `group` with the largest magnitude, ties to the lower
/// index, and returns their positions in increasing order. If `n >= group.len()` all positions are
/// returned.
///
/// Written as the streaming unit of the hardware: scan in index order; while fewer than `n` are kept,
/// keep; afterwards the incoming element replaces the *weakest* kept candidate only when its
/// magnitude is strictly greater (`>`). The weakest candidate is the one with the smallest magnitude,
/// and among several with that smallest magnitude, the one with the **highest index**. Strict `>`
/// makes an incoming element lose every tie (it has the highest index so far), and evicting the
/// highest-indexed weakest keeps the lower index on ties, so the result equals a sort by
/// (magnitude desc, index asc). The tests check that equivalence with proptest.
pub fn select_group<T: Magnitude>(group: &[T], n: usize) -> Vec<usize> {
    // (magnitude, index) of the kept candidates; at most n <= 16 of them, so a linear scan is fine.
    let mut kept: Vec<(u32, usize)> = Vec::with_capacity(n.min(group.len()));
    for (i, x) in group.iter().enumerate() {
        let mag = x.magnitude();
        if kept.len() < n {
            kept.push((mag, i));
            continue;
        }
        // Weakest: smallest magnitude, then highest index. Reversing the index turns that into a min.
        let weakest = kept
            .iter()
            .enumerate()
            .min_by_key(|(_, &(m, idx))| (m, std::cmp::Reverse(idx)));
        if let Some((slot, &(weak_mag, _))) = weakest {
            if mag > weak_mag {
                kept[slot] = (mag, i);
            }
        }
    }
    let mut idx: Vec<usize> = kept.into_iter().map(|(_, i)| i).collect();
    idx.sort_unstable();
    idx
}

/// Converts an [`Axis`] to 0/1, rejecting anything else.
pub(crate) fn check_axis(axis: Axis) -> Result<usize, KernelError> {
    match axis.0 {
        0 | 1 => Ok(axis.0),
        a => Err(KernelError::InvalidAxis { axis: a }),
    }
}

/// Checks that `axis` of a tensor of `shape` can be cut into whole groups of `p.m()`.
fn check_grouping(
    shape: (usize, usize),
    p: NmPattern,
    axis: Axis,
    tensor: &str,
) -> Result<(), KernelError> {
    let ax = check_axis(axis)?;
    let len = if ax == 0 { shape.0 } else { shape.1 };
    if !len.is_multiple_of(p.m()) {
        return Err(KernelError::AxisNotMultiple {
            tensor: tensor.to_string(),
            axis: ax,
            len,
            m: p.m(),
        });
    }
    Ok(())
}

/// Returns `NonFinite` naming the first NaN (row-major order) of `w`: the contract's NaN rule
/// for every input tensor.
pub fn reject_nan<T: Magnitude>(w: ArrayView2<T>, tensor: &str) -> Result<(), KernelError> {
    match w.indexed_iter().find(|(_, v)| v.is_nan()) {
        Some(((r, c), _)) => Err(KernelError::NonFinite {
            tensor: tensor.to_string(),
            index: vec![r, c],
        }),
        None => Ok(()),
    }
}

/// The 0/1 N:M mask of `w` along `axis` (0: groups run down the columns; 1: along the rows).
///
/// Errors: `axis` not 0/1, axis length not a multiple of `m`, NaN in `w`.
pub fn mask<T: Magnitude>(
    w: ArrayView2<T>,
    p: NmPattern,
    axis: Axis,
) -> Result<Array2<u8>, KernelError> {
    reject_nan(w, "weights")?;
    check_grouping(w.dim(), p, axis, "weights")?;
    let m = p.m();
    let mut out = Array2::<u8>::zeros(w.raw_dim());
    let mut buf: Vec<T> = Vec::with_capacity(m);
    for (lane, mut out_lane) in w.lanes(axis).into_iter().zip(out.lanes_mut(axis)) {
        for g in 0..lane.len() / m {
            buf.clear();
            buf.extend(lane.slice(s![g * m..(g + 1) * m]).iter().copied());
            for k in select_group(&buf, p.n()) {
                out_lane[g * m + k] = 1;
            }
        }
    }
    Ok(out)
}

/// A tensor compressed N:M along `axis`: the format the pruning unit emits and the sparse engine
/// consumes.
///
/// `values` has the shape of the dense tensor with the pruned axis shrunk by `n/m`; each group of
/// `m` becomes `n` consecutive entries, the kept values in increasing index order. `indices` has the
/// same shape and holds each value's position inside its group (`0..m`, `index_bits()` wide).
#[derive(Clone, Debug, PartialEq)]
pub struct Compressed<T> {
    pub values: Array2<T>,
    pub indices: Array2<u8>,
    pub pattern: NmPattern,
    pub axis: Axis,
}

impl<T> Compressed<T> {
    /// Shape of the dense tensor this compresses.
    pub fn dense_dim(&self) -> (usize, usize) {
        let (r, c) = self.values.dim();
        let (n, m) = (self.pattern.n(), self.pattern.m());
        if self.axis.0 == 0 {
            (r / n * m, c)
        } else {
            (r, c / n * m)
        }
    }

    /// Checks the invariants that [`compress`] guarantees, for tensors built by other means:
    /// axis 0/1, `values` and `indices` of equal shape, whole groups of `n` along the axis, indices
    /// `< m` and strictly increasing inside each group.
    pub fn validate(&self) -> Result<(), KernelError> {
        let ax = check_axis(self.axis)?;
        let bad = |msg: String| Err(KernelError::InvalidCompressed(msg));
        if self.values.dim() != self.indices.dim() {
            return bad(format!(
                "values have shape {:?} but indices have shape {:?}",
                self.values.dim(),
                self.indices.dim()
            ));
        }
        let n = self.pattern.n();
        let len = self.indices.len_of(Axis(ax));
        if !len.is_multiple_of(n) {
            return bad(format!(
                "axis {ax} has {len} entries, not a multiple of N = {n}"
            ));
        }
        let m = self.pattern.m();
        for (lane_no, lane) in self.indices.lanes(Axis(ax)).into_iter().enumerate() {
            for (g, chunk) in lane.to_vec().chunks(n).enumerate() {
                let ok = chunk.iter().all(|&i| usize::from(i) < m)
                    && chunk.windows(2).all(|w| w[0] < w[1]);
                if !ok {
                    return bad(format!(
                        "group {g} of lane {lane_no} has indices {chunk:?}; they must be < {m} and strictly increasing"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Compresses `w` N:M along `axis`, selecting with [`select_group`]. Same errors as [`mask`].
pub fn compress<T: Magnitude>(
    w: ArrayView2<T>,
    p: NmPattern,
    axis: Axis,
) -> Result<Compressed<T>, KernelError> {
    let mk = mask(w, p, axis)?;
    compress_masked(w, mk.view(), p, axis)
}

/// Compresses `w` at the positions where `mask` is 1. The mask must have exactly `n` ones in every
/// group of `m` along `axis` (this is how BDWP compresses `W⊙M_F` with a mask computed elsewhere).
pub fn compress_masked<T: Copy + Default>(
    w: ArrayView2<T>,
    mask: ArrayView2<u8>,
    p: NmPattern,
    axis: Axis,
) -> Result<Compressed<T>, KernelError> {
    if w.dim() != mask.dim() {
        return Err(KernelError::ShapeMismatch {
            op: "compress_masked".into(),
            detail: format!(
                "weights have shape {:?} but the mask has shape {:?}",
                w.dim(),
                mask.dim()
            ),
        });
    }
    check_grouping(w.dim(), p, axis, "weights")?;
    let (n, m) = (p.n(), p.m());
    let mut cdim = w.dim();
    if axis.0 == 0 {
        cdim.0 = cdim.0 / m * n;
    } else {
        cdim.1 = cdim.1 / m * n;
    }
    let mut values = Array2::<T>::default(cdim);
    let mut indices = Array2::<u8>::zeros(cdim);
    let lanes = w.lanes(axis).into_iter().zip(mask.lanes(axis)).zip(
        values
            .lanes_mut(axis)
            .into_iter()
            .zip(indices.lanes_mut(axis)),
    );
    for (lane_no, ((wl, ml), (mut vl, mut il))) in lanes.enumerate() {
        for g in 0..wl.len() / m {
            let kept: Vec<usize> = (0..m).filter(|&k| ml[g * m + k] != 0).collect();
            if kept.len() != n || (0..m).any(|k| ml[g * m + k] > 1) {
                return Err(KernelError::InvalidMask(format!(
                    "group {g} of lane {lane_no} along axis {} has {} ones (values must be 0/1, exactly N = {n} ones per group of {m})",
                    axis.0,
                    kept.len()
                )));
            }
            for (t, &k) in kept.iter().enumerate() {
                vl[g * n + t] = wl[g * m + k];
                // k < m <= 16, so it fits in a u8.
                il[g * n + t] = k as u8;
            }
        }
    }
    Ok(Compressed {
        values,
        indices,
        pattern: p,
        axis,
    })
}

/// Expands a compressed tensor back to dense, with `T::default()` (zero) at pruned positions.
///
/// # Panics
/// If `c` breaks the invariants of [`Compressed::validate`] (only possible for a hand-built value;
/// call `validate` first when the tensor comes from outside).
pub fn expand<T: Copy + Default>(c: &Compressed<T>) -> Array2<T> {
    if let Err(e) = c.validate() {
        panic!("expand: {e}");
    }
    let (n, m) = (c.pattern.n(), c.pattern.m());
    let mut out = Array2::<T>::default(c.dense_dim());
    for ((vl, il), mut ol) in c
        .values
        .lanes(c.axis)
        .into_iter()
        .zip(c.indices.lanes(c.axis))
        .zip(out.lanes_mut(c.axis))
    {
        for j in 0..vl.len() {
            ol[j / n * m + usize::from(il[j])] = vl[j];
        }
    }
    out
}

/// `w ⊙ mask`: `w` where the mask is non-zero, `T::default()` (zero) elsewhere.
///
/// # Panics
/// If the shapes differ (a programming error: masks are made from the tensor they apply to).
pub fn apply_mask<T: Copy + Default>(w: ArrayView2<T>, mask: ArrayView2<u8>) -> Array2<T> {
    assert_eq!(
        w.dim(),
        mask.dim(),
        "apply_mask: weights and mask shapes differ"
    );
    Zip::from(w)
        .and(mask)
        .map_collect(|&v, &k| if k != 0 { v } else { T::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    /// Independent sort-based selector: key (magnitude desc, index asc), take n, sort positions.
    fn select_by_sort<T: Magnitude>(group: &[T], n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..group.len()).collect();
        order.sort_by(|&a, &b| {
            group[b]
                .magnitude()
                .cmp(&group[a].magnitude())
                .then(a.cmp(&b))
        });
        order.truncate(n);
        order.sort_unstable();
        order
    }

    fn h(x: f32) -> f16 {
        f16::from_f32(x)
    }

    #[test]
    fn pattern_bounds_and_index_bits() {
        assert!(NmPattern::new(0, 4).is_err());
        assert!(NmPattern::new(5, 4).is_err());
        assert!(NmPattern::new(1, 17).is_err());
        assert!(NmPattern::new(1, 0).is_err());
        assert!(NmPattern::new(4, 4).unwrap().is_dense());
        assert!(!NmPattern::new(2, 4).unwrap().is_dense());
        let bits = |m| NmPattern::new(1, m).unwrap().index_bits();
        assert_eq!(
            [
                bits(1),
                bits(2),
                bits(3),
                bits(4),
                bits(5),
                bits(8),
                bits(9),
                bits(16)
            ],
            [1, 1, 2, 2, 3, 3, 4, 4]
        );
        assert_eq!(NmPattern::new(2, 8).unwrap().to_string(), "2:8");
    }

    #[test]
    fn magnitude_keys() {
        assert_eq!((-128i8).magnitude(), 128);
        assert_eq!(127i8.magnitude(), 127);
        assert_eq!((-1i8).magnitude(), 1);
        assert_eq!(h(0.0).magnitude(), h(-0.0).magnitude());
        assert!(f16::INFINITY.magnitude() > f16::MAX.magnitude());
        assert_eq!(f16::NEG_INFINITY.magnitude(), f16::INFINITY.magnitude());
        assert!(f16::from_bits(1).magnitude() > h(0.0).magnitude()); // subnormal > 0
        assert!(f16::MIN_POSITIVE.magnitude() > f16::from_bits(0x03ff).magnitude());
        assert_eq!((-0.0f32).magnitude(), 0);
        assert_eq!((-2.5f32).magnitude(), 2.5f32.magnitude());
    }

    #[test]
    fn ties_go_to_lower_index() {
        assert_eq!(select_group(&[1i8, 1, 1, 1], 2), vec![0, 1]);
        assert_eq!(select_group(&[0i8; 8], 3), vec![0, 1, 2]);
        assert_eq!(select_group(&[1i8, 3, 3, 3], 2), vec![1, 2]);
        assert_eq!(select_group(&[-5i8, 5, 0, 5], 1), vec![0]);
        // -128 beats 127.
        assert_eq!(select_group(&[127i8, -128, 127, 0], 1), vec![1]);
        // Eviction among equal weakest candidates: the highest index goes.
        // After [2,1,1] with n=3, a 5 arrives: evict index 2 (the later 1), keeping 0,1,3.
        assert_eq!(select_group(&[2i8, 1, 1, 5], 3), vec![0, 1, 3]);
        // ±0 are equal: the lower index wins whichever sign it has.
        assert_eq!(
            select_group(&[h(-0.0), h(0.0), h(0.0), h(-0.0)], 2),
            vec![0, 1]
        );
        assert_eq!(
            select_group(&[h(0.0), h(-0.0), h(1e-7), h(0.0)], 1),
            vec![2]
        ); // subnormal > 0
        assert_eq!(
            select_group(&[h(65504.0), f16::NEG_INFINITY, f16::INFINITY, h(1.0)], 1),
            vec![1]
        );
        assert_eq!(select_group(&[1i8, 2], 5), vec![0, 1]);
        assert_eq!(select_group::<i8>(&[], 2), Vec::<usize>::new());
    }

    proptest! {
        #[test]
        fn streaming_equals_sort_i8(group in proptest::collection::vec(prop_oneof![Just(0i8), Just(1), Just(-1), Just(2), Just(-128), Just(127)], 1..=16), n in 1usize..=16) {
            prop_assert_eq!(select_group(&group, n), select_by_sort(&group, n));
        }

        #[test]
        fn streaming_equals_sort_f16(bits in proptest::collection::vec(prop_oneof![Just(0u16), Just(0x8000), Just(0x0001), Just(0x8001), Just(0x3c00), Just(0xbc00), Just(0x7c00), Just(0xfc00), Just(0x7bff)], 1..=16), n in 1usize..=16) {
            let group: Vec<f16> = bits.into_iter().map(f16::from_bits).collect();
            prop_assert_eq!(select_group(&group, n), select_by_sort(&group, n));
        }

        #[test]
        fn streaming_equals_sort_any_f32(group in proptest::collection::vec(any::<f32>().prop_filter("no NaN", |x| !x.is_nan()), 1..=16), n in 1usize..=16) {
            prop_assert_eq!(select_group(&group, n), select_by_sort(&group, n));
        }

        #[test]
        fn compress_expand_round_trip(rows in 1usize..4, cols in 1usize..4, n in 1usize..=4, m in 1usize..=4, axis in 0usize..2,
                                      seed in proptest::collection::vec(-3i8..=3, 64)) {
            prop_assume!(n <= m);
            let p = NmPattern::new(n, m).unwrap();
            let dim = if axis == 0 { (rows * m, cols) } else { (rows, cols * m) };
            let w = Array2::from_shape_fn(dim, |(r, c)| seed[(r * 7 + c * 3) % 64]);
            let mk = mask(w.view(), p, Axis(axis)).unwrap();
            let c = compress(w.view(), p, Axis(axis)).unwrap();
            prop_assert!(c.validate().is_ok());
            prop_assert_eq!(expand(&c), apply_mask(w.view(), mk.view()));
            // Every group has exactly n ones.
            for lane in mk.lanes(Axis(axis)) {
                for g in lane.to_vec().chunks(m) {
                    prop_assert_eq!(g.iter().map(|&v| usize::from(v)).sum::<usize>(), n);
                }
            }
            prop_assert_eq!(compress_masked(w.view(), mk.view(), p, Axis(axis)).unwrap(), c);
        }
    }

    #[test]
    fn mask_along_each_axis() {
        let w = array![[1i8, -4, 3, 2], [0, 0, 0, 0]];
        let p = NmPattern::new(2, 4).unwrap();
        assert_eq!(
            mask(w.view(), p, Axis(1)).unwrap(),
            array![[0u8, 1, 1, 0], [1, 1, 0, 0]]
        );
        let p12 = NmPattern::new(1, 2).unwrap();
        assert_eq!(
            mask(w.view(), p12, Axis(0)).unwrap(),
            array![[1u8, 1, 1, 1], [0, 0, 0, 0]]
        );
        let c = compress(w.view(), p, Axis(1)).unwrap();
        assert_eq!(c.values, array![[-4i8, 3], [0, 0]]);
        assert_eq!(c.indices, array![[1u8, 2], [0, 1]]);
        assert_eq!(c.dense_dim(), (2, 4));
        let c0 = compress(w.t(), p, Axis(0)).unwrap();
        assert_eq!(c0.values, c.values.t());
        assert_eq!(c0.indices, c.indices.t());
    }

    #[test]
    fn mask_errors() {
        let p = NmPattern::new(2, 4).unwrap();
        let w = Array2::<f32>::zeros((3, 8));
        assert!(matches!(
            mask(w.view(), p, Axis(0)),
            Err(KernelError::AxisNotMultiple {
                axis: 0,
                len: 3,
                m: 4,
                ..
            })
        ));
        assert!(mask(w.view(), p, Axis(1)).is_ok());
        assert_eq!(
            mask(w.view(), p, Axis(2)),
            Err(KernelError::InvalidAxis { axis: 2 })
        );
        let mut w = w;
        w[[2, 5]] = f32::NAN;
        assert_eq!(
            mask(w.view(), p, Axis(1)),
            Err(KernelError::NonFinite {
                tensor: "weights".into(),
                index: vec![2, 5]
            })
        );
        let inf = array![[f32::INFINITY, 1.0, -f32::INFINITY, 0.0]];
        assert_eq!(
            mask(inf.view(), p, Axis(1)).unwrap(),
            array![[1u8, 0, 1, 0]]
        );
    }

    #[test]
    fn compress_masked_rejects_bad_masks() {
        let p = NmPattern::new(2, 4).unwrap();
        let w = array![[1i8, 2, 3, 4]];
        assert!(matches!(
            compress_masked(w.view(), array![[1u8, 1, 1, 0]].view(), p, Axis(1)),
            Err(KernelError::InvalidMask(_))
        ));
        assert!(matches!(
            compress_masked(w.view(), array![[2u8, 1, 0, 0]].view(), p, Axis(1)),
            Err(KernelError::InvalidMask(_))
        ));
        assert!(matches!(
            compress_masked(w.view(), array![[1u8, 1]].view(), p, Axis(1)),
            Err(KernelError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn validate_rejects_hand_built_tensors() {
        let p = NmPattern::new(2, 4).unwrap();
        let good = Compressed {
            values: array![[1i8, 2]],
            indices: array![[0u8, 3]],
            pattern: p,
            axis: Axis(1),
        };
        assert!(good.validate().is_ok());
        let mut c = good.clone();
        c.indices = array![[3u8, 0]];
        assert!(c.validate().is_err());
        c.indices = array![[0u8, 4]];
        assert!(c.validate().is_err());
        c.indices = array![[0u8, 1, 2]];
        assert!(c.validate().is_err());
        c = good.clone();
        c.axis = Axis(3);
        assert!(c.validate().is_err());
        assert_eq!(expand(&good), array![[1i8, 0, 0, 2]]);
    }
}
