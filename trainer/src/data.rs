//! Synthetic classification datasets, generated in code from a ChaCha8 seed (nothing is
//! downloaded). Every dataset has [`FEATURES`] = 32 input features, so that every N:M pattern up to
//! 1:16 groups the first layer's Cin into whole groups.
//!
//! The random numbers are drawn with explicit formulas on top of `next_u32` (not `rand`'s
//! distributions), so that a seed gives the same data whatever the `rand` version. Normal samples
//! use Box–Muller with `f32::ln`/`sqrt`/`cos`: deterministic on a platform, and identical for every
//! backend of a run (the data never depends on the backend).

use std::str::FromStr;

use half::f16;
use ndarray::Array2;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::fp::to_f16;

/// Input features of every generated dataset.
pub const FEATURES: usize = 32;

/// A labelled train/test split with fp16 features (the accelerator's activation format).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `spirals` or `blobs`.
    pub name: String,
    pub seed: u64,
    /// Number of real classes (labels are `0..classes`).
    pub classes: usize,
    /// Samples × [`FEATURES`].
    pub train_x: Array2<f16>,
    pub train_y: Vec<usize>,
    pub test_x: Array2<f16>,
    pub test_y: Vec<usize>,
}

impl Dataset {
    /// Input features per sample.
    pub fn features(&self) -> usize {
        self.train_x.ncols()
    }

    /// Accuracy of always guessing the most frequent test class.
    pub fn chance_accuracy(&self) -> f32 {
        let mut counts = vec![0usize; self.classes];
        for &y in &self.test_y {
            counts[y] += 1;
        }
        counts.iter().copied().max().unwrap_or(0) as f32 / self.test_y.len().max(1) as f32
    }
}

/// Which generator to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// 3 interleaved 2-D spiral arms, lifted to 32 features by a fixed random affine projection.
    Spirals,
    /// 4 overlapping Gaussian blobs in 32 dimensions.
    Blobs,
}

impl DatasetKind {
    pub fn generate(self, seed: u64) -> Dataset {
        match self {
            DatasetKind::Spirals => spirals(seed),
            DatasetKind::Blobs => blobs(seed),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Spirals => "spirals",
            DatasetKind::Blobs => "blobs",
        }
    }
}

impl FromStr for DatasetKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "spirals" => Ok(DatasetKind::Spirals),
            "blobs" => Ok(DatasetKind::Blobs),
            _ => anyhow::bail!("unknown dataset '{s}' (expected spirals or blobs)"),
        }
    }
}

/// Uniform in `[0, 1)` with 24 random bits (exact).
pub fn uniform01(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 * 2f32.powi(-24)
}

/// Uniform in `[-a, a)`.
pub fn uniform_sym(rng: &mut ChaCha8Rng, a: f32) -> f32 {
    (2.0 * uniform01(rng) - 1.0) * a
}

/// Standard normal by Box–Muller (one sample per two uniforms).
pub fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1 = 1.0 - uniform01(rng); // (0, 1]: ln is finite
    let u2 = uniform01(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// Uniform index in `0..n` (`next_u64 % n`; the bias is below 2^-50 for the sizes used here).
pub fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// Spirals: class `k` of 3, `t` uniform in `[0, 1)`, radius `t`, angle `2πk/3 + 4t + 0.2·N(0,1)`;
/// the point `(x1, x2)` becomes 32 features `P·[x1, x2, 1]ᵀ` with a fixed `P` (32×3, N(0,1)
/// entries) drawn first from the same stream. The constant 1 gives the first layer an effective
/// bias (the MLP has no bias terms, and a bias-free ReLU network could only separate rays from the
/// origin). 200 train and 100 test points per class.
pub fn spirals(seed: u64) -> Dataset {
    const CLASSES: usize = 3;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let proj: Vec<[f32; 3]> = (0..FEATURES)
        .map(|_| [normal(&mut rng), normal(&mut rng), normal(&mut rng)])
        .collect();
    let mut split = |per_class: usize| {
        let mut x = Array2::<f16>::default((per_class * CLASSES, FEATURES));
        let mut y = Vec::with_capacity(per_class * CLASSES);
        for k in 0..CLASSES {
            for _ in 0..per_class {
                let t = uniform01(&mut rng);
                let angle = 2.0 * std::f32::consts::PI * k as f32 / CLASSES as f32
                    + 4.0 * t
                    + 0.2 * normal(&mut rng);
                let (x1, x2) = (t * angle.sin(), t * angle.cos());
                let row = y.len();
                for (f, p) in proj.iter().enumerate() {
                    x[[row, f]] = to_f16(p[0] * x1 + p[1] * x2 + p[2]);
                }
                y.push(k);
            }
        }
        (x, y)
    };
    let (train_x, train_y) = split(200);
    let (test_x, test_y) = split(100);
    Dataset {
        name: "spirals".into(),
        seed,
        classes: CLASSES,
        train_x,
        train_y,
        test_x,
        test_y,
    }
}

/// Blobs: 4 classes in 32 dimensions, centres with N(0, 0.35²) coordinates, unit-variance
/// isotropic noise (the classes overlap, so accuracy saturates below 100%). 150 train and 75 test
/// points per class.
pub fn blobs(seed: u64) -> Dataset {
    const CLASSES: usize = 4;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..CLASSES)
        .map(|_| (0..FEATURES).map(|_| 0.35 * normal(&mut rng)).collect())
        .collect();
    let mut split = |per_class: usize| {
        let mut x = Array2::<f16>::default((per_class * CLASSES, FEATURES));
        let mut y = Vec::with_capacity(per_class * CLASSES);
        for (k, c) in centres.iter().enumerate() {
            for _ in 0..per_class {
                let row = y.len();
                for (f, &cf) in c.iter().enumerate() {
                    x[[row, f]] = to_f16(cf + normal(&mut rng));
                }
                y.push(k);
            }
        }
        (x, y)
    };
    let (train_x, train_y) = split(150);
    let (test_x, test_y) = split(75);
    Dataset {
        name: "blobs".into(),
        seed,
        classes: CLASSES,
        train_x,
        train_y,
        test_x,
        test_y,
    }
}
