//! `train_step` checked against a straightforward, independent implementation written here with plain
//! loops: sort-based N:M selection, triple-loop GEMMs over the masked dense weights, the update
//! formula written out. Nothing from the crate is used except the types and `train_step` itself.

use half::f16;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::bdwp::{train_step, BdwpConfig, MaskBSource};
use sparse_kernels::nm::NmPattern;

/// Sort-based selection: key (magnitude desc, index asc). Magnitude = |x| via the sign-cleared bits.
fn keep_positions(mags: &[u32], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..mags.len()).collect();
    order.sort_by(|&a, &b| mags[b].cmp(&mags[a]).then(a.cmp(&b)));
    order.truncate(n);
    order
}

/// N:M mask of an fp16 matrix; `along_rows` = groups run along a row (axis 1).
fn naive_mask(w: &Array2<f16>, n: usize, m: usize, along_rows: bool) -> Array2<u8> {
    let (r, c) = w.dim();
    let mut out = Array2::<u8>::zeros((r, c));
    let (lanes, len) = if along_rows { (r, c) } else { (c, r) };
    for lane in 0..lanes {
        for g in 0..len / m {
            let at = |t: usize| {
                if along_rows {
                    (lane, g * m + t)
                } else {
                    (g * m + t, lane)
                }
            };
            let mags: Vec<u32> = (0..m)
                .map(|t| u32::from(w[at(t)].to_bits() & 0x7fff))
                .collect();
            for t in keep_positions(&mags, n) {
                out[at(t)] = 1;
            }
        }
    }
    out
}

struct Naive {
    y: Array2<f32>,
    dx: Array2<f32>,
    dw: Array2<f32>,
    w32: Array2<f32>,
    mask_f: Array2<u8>,
    mask_b: Array2<u8>,
    next_mask_f: Array2<u8>,
    next_mask_b: Array2<u8>,
}

fn naive_masks(
    w32: &Array2<f32>,
    n: usize,
    m: usize,
    fwd: bool,
) -> (Array2<f16>, Array2<u8>, Array2<u8>) {
    let w16 = w32.mapv(f16::from_f32);
    let mf = naive_mask(&w16, n, m, true);
    let src = if fwd {
        Array2::from_shape_fn(
            w16.dim(),
            |ix| if mf[ix] == 1 { w16[ix] } else { f16::ZERO },
        )
    } else {
        w16.clone()
    };
    let mb = naive_mask(&src, n, m, false);
    (w16, mf, mb)
}

// Each argument is one independent knob of the step; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn naive_step(
    x: &Array2<f16>,
    w32: &Array2<f32>,
    dy: &Array2<f16>,
    n: usize,
    m: usize,
    lr: f32,
    lambda: f32,
    fwd: bool,
) -> Naive {
    let (b, cin) = x.dim();
    let cout = w32.nrows();
    let (w16, mf, mb) = naive_masks(w32, n, m, fwd);
    let f = |v: f16| f32::from(v);
    // FF: only kept products, increasing k = ci.
    let mut y = Array2::<f32>::zeros((b, cout));
    for i in 0..b {
        for o in 0..cout {
            let mut acc = 0.0f32;
            for ci in 0..cin {
                if mf[(o, ci)] == 1 {
                    acc += f(x[(i, ci)]) * f(w16[(o, ci)]);
                }
            }
            y[(i, o)] = acc;
        }
    }
    // BP: only M_B positions; with ForwardMasked the weight is W16⊙M_F.
    let mut dx = Array2::<f32>::zeros((b, cin));
    for i in 0..b {
        for ci in 0..cin {
            let mut acc = 0.0f32;
            for o in 0..cout {
                if mb[(o, ci)] == 1 {
                    let wv = if fwd && mf[(o, ci)] == 0 {
                        0.0
                    } else {
                        f(w16[(o, ci)])
                    };
                    acc += f(dy[(i, o)]) * wv;
                }
            }
            dx[(i, ci)] = acc;
        }
    }
    // WU: dense, increasing batch index.
    let mut dw = Array2::<f32>::zeros((cout, cin));
    for o in 0..cout {
        for ci in 0..cin {
            let mut acc = 0.0f32;
            for i in 0..b {
                acc += f(dy[(i, o)]) * f(x[(i, ci)]);
            }
            dw[(o, ci)] = acc;
        }
    }
    // The contract's NaN rule: whatever NaN an operation yields, the result is the canonical
    // one. NaN propagates through every later operation, so canonicalizing final values suffices.
    let canon = |v: f32| {
        if v.is_nan() {
            f32::from_bits(0x7fc0_0000)
        } else {
            v
        }
    };
    let (y, dx, dw) = (y.mapv(canon), dx.mapv(canon), dw.mapv(canon));
    let new_w = Array2::from_shape_fn((cout, cin), |ix| {
        let w = w32[ix];
        let decay = lambda * ((1.0 - f32::from(mf[ix])) * w);
        let g = dw[ix] + decay;
        canon(w - lr * g)
    });
    let (_, nf, nb) = naive_masks(&new_w, n, m, fwd);
    Naive {
        y,
        dx,
        dw,
        w32: new_w,
        mask_f: mf,
        mask_b: mb,
        next_mask_f: nf,
        next_mask_b: nb,
    }
}

fn bits32(a: &Array2<f32>) -> Array2<u32> {
    a.mapv(f32::to_bits)
}

/// Random fp16 from a mixture: ordinary values, exact ties, ±0, subnormals, large values.
fn adversarial_f16(rng: &mut ChaCha8Rng) -> f16 {
    match rng.random_range(0..8) {
        0 => f16::from_bits(0x8000),
        1 => f16::ZERO,
        2 => f16::from_bits(rng.random_range(1..0x400) | if rng.random() { 0x8000 } else { 0 }),
        3 => f16::from_f32([0.5, -0.5, 1.0, -1.0][rng.random_range(0..4)]),
        4 => f16::from_f32(rng.random_range(-1000.0..1000.0)),
        _ => f16::from_f32(rng.random_range(-1.0..1.0)),
    }
}

fn adversarial_f32(rng: &mut ChaCha8Rng) -> f32 {
    match rng.random_range(0..8) {
        0 => -0.0,
        1 => 0.0,
        2 => [0.25f32, -0.25, 1.0][rng.random_range(0..3)],
        // Around the fp16 overflow threshold and the fp16 halfway points.
        3 => [65504.0f32, 65519.0, -65520.0, 1.0 + 2f32.powi(-11)][rng.random_range(0..4)],
        4 => f32::from_bits(rng.random_range(1..0x0080_0000)), // f32 subnormal
        _ => rng.random_range(-1.0..1.0),
    }
}

// One axis of the test matrix per argument.
#[allow(clippy::too_many_arguments)]
fn check(
    seed: u64,
    b: usize,
    cout: usize,
    cin: usize,
    n: usize,
    m: usize,
    fwd: bool,
    adversarial: bool,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gen16 = |rng: &mut ChaCha8Rng| {
        if adversarial {
            adversarial_f16(rng)
        } else {
            f16::from_f32(rng.random_range(-1.0..1.0))
        }
    };
    let x = Array2::from_shape_simple_fn((b, cin), || gen16(&mut rng));
    let dy = Array2::from_shape_simple_fn((b, cout), || gen16(&mut rng));
    let w32 = Array2::from_shape_simple_fn((cout, cin), || {
        if adversarial {
            adversarial_f32(&mut rng)
        } else {
            rng.random_range(-1.0..1.0)
        }
    });
    let (lr, lambda) = (0.0625f32, 2e-4f32);
    let cfg = BdwpConfig {
        pattern: NmPattern::new(n, m).unwrap(),
        lr,
        lambda,
        mask_b_source: if fwd {
            MaskBSource::ForwardMasked
        } else {
            MaskBSource::Dense
        },
    };
    let got = train_step(x.view(), w32.view(), dy.view(), &cfg).unwrap();
    let want = naive_step(&x, &w32, &dy, n, m, lr, lambda, fwd);
    let ctx = format!("seed {seed}, {n}:{m}, fwd {fwd}, adversarial {adversarial}");
    assert_eq!(got.used.mask_f, want.mask_f, "mask_f, {ctx}");
    assert_eq!(got.used.mask_b, want.mask_b, "mask_b, {ctx}");
    assert_eq!(
        got.used.w16.mapv(f16::to_bits),
        w32.mapv(|v| f16::from_f32(v).to_bits()),
        "w16, {ctx}"
    );
    assert_eq!(bits32(&got.y), bits32(&want.y), "y, {ctx}");
    assert_eq!(bits32(&got.dx), bits32(&want.dx), "dx, {ctx}");
    assert_eq!(bits32(&got.dw), bits32(&want.dw), "dw, {ctx}");
    assert_eq!(bits32(&got.w32), bits32(&want.w32), "w32, {ctx}");
    assert_eq!(got.next.mask_f, want.next_mask_f, "next mask_f, {ctx}");
    assert_eq!(got.next.mask_b, want.next_mask_b, "next mask_b, {ctx}");
    assert_eq!(
        got.next.w16.mapv(f16::to_bits),
        want.w32.mapv(|v| f16::from_f32(v).to_bits()),
        "next w16, {ctx}"
    );

    // Shapes.
    assert_eq!(got.y.dim(), (b, cout));
    assert_eq!(got.dx.dim(), (b, cin));
    assert_eq!(got.dw.dim(), (cout, cin));
    // Mask counts: exactly n ones per group, both masks, both steps.
    for masks in [&got.used, &got.next] {
        for row in masks.mask_f.rows() {
            for g in row.to_vec().chunks(m) {
                assert_eq!(g.iter().map(|&v| usize::from(v)).sum::<usize>(), n, "{ctx}");
            }
        }
        for col in masks.mask_b.columns() {
            for g in col.to_vec().chunks(m) {
                assert_eq!(g.iter().map(|&v| usize::from(v)).sum::<usize>(), n, "{ctx}");
            }
        }
        // M_B ⊆ M_F wherever the group of W16⊙M_F has at least n non-zero magnitudes.
        if fwd {
            for c in 0..cin {
                for g in 0..cout / m {
                    let rows = g * m..(g + 1) * m;
                    let nonzero = rows
                        .clone()
                        .filter(|&r| {
                            masks.mask_f[(r, c)] == 1 && masks.w16[(r, c)].to_bits() & 0x7fff != 0
                        })
                        .count();
                    if nonzero >= n {
                        for r in rows {
                            assert!(
                                masks.mask_b[(r, c)] <= masks.mask_f[(r, c)],
                                "M_B not in M_F at ({r},{c}), {ctx}"
                            );
                        }
                    }
                }
            }
        }
    }
}

const PATTERNS: [(usize, usize); 7] = [(2, 4), (1, 4), (2, 8), (4, 8), (1, 8), (1, 16), (4, 4)];

#[test]
fn random_tensors_match_the_naive_step() {
    for (i, &(n, m)) in PATTERNS.iter().enumerate() {
        for fwd in [true, false] {
            check(100 + i as u64, 5, 2 * m, 3 * m, n, m, fwd, false);
        }
    }
}

#[test]
fn adversarial_tensors_match_the_naive_step() {
    for (i, &(n, m)) in PATTERNS.iter().enumerate() {
        for fwd in [true, false] {
            for s in 0..3 {
                check(1000 + 10 * i as u64 + s, 7, 2 * m, 2 * m, n, m, fwd, true);
            }
        }
    }
}

/// Forward-masked M_B really is a subset of M_F when no group runs short of non-zero weights.
#[test]
fn forward_masked_backward_mask_is_a_subset() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // Row r keeps column r % 4 of each group (it is 10x larger), so every column group of W⊙M_F has
    // exactly one non-zero, which M_B must then pick: M_B = M_F.
    let w32 = Array2::from_shape_fn((8, 8), |(r, c)| {
        if c % 4 == r % 4 {
            10.0 + rng.random::<f32>()
        } else {
            rng.random::<f32>()
        }
    });
    let cfg = BdwpConfig::new(NmPattern::new(1, 4).unwrap(), 0.0);
    let m = sparse_kernels::bdwp::pregenerate(w32.view(), &cfg).unwrap();
    assert!(m.mask_b.iter().zip(&m.mask_f).all(|(&b, &f)| b <= f));
    assert_eq!(m.mask_b, m.mask_f);
}
