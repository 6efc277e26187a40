//! A small MLP of bias-free BDWP linear layers, trained with SGD through a [`Backend`].
//!
//! Division of work (identical for every backend, so a run on the RTL gives the same numbers as on
//! the reference):
//!
//! | on the backend | on the host (plain f32 loops, deterministic) |
//! |---|---|
//! | FF, BP, WU GEMMs; update + fp32→fp16; pruning | ReLU and its derivative, softmax cross-entropy, loss scaling, `W16⊙M_F` mux |
//!
//! - **Activations:** layer `l` gives `Y_l` in fp32; the host applies ReLU in fp32
//!   (`y > 0 ? y : 0`) and converts to fp16 (`fp::to_f16`) for the next layer's `X`.
//! - **Loss:** softmax cross-entropy in f32 over the first `C` logits only (the last layer is
//!   padded to a multiple of 16 outputs; padded logits are ignored and get a zero gradient).
//!   `softmax`: `m = max z`, `e_j = exp(z_j − m)`, `s = Σ e_j` in increasing `j`; loss of a sample
//!   `ln s − (z_y − m)`; batch loss = sum in sample order / B.
//! - **Loss scaling:** fp16 gradients underflow, so the last layer's `dY` is
//!   `fp16(((p − onehot) / B) · S)` with a fixed scale `S` ([`DEFAULT_LOSS_SCALE`] = 1024). The
//!   scale is divided out **of the learning rate**: the update runs with `lr/S` and `λ·S`, so
//!   `W − (lr/S)·(S·dW + λS·(1−M_F)⊙W) = W − lr·(dW + λ(1−M_F)⊙W)` up to rounding (for a power-of-two
//!   `S` both factors are exact), and the backend's `dW` goes to the update untouched.
//! - **Backward through ReLU:** `dY_{l−1} = fp16(dX_l · [Y_{l−1} > 0])`, computed in f32.
//! - **First layer:** its `dX` is not needed, so BP does not run for it (as on the accelerator).
//! - **Evaluation** (loss and accuracies in [`Record`]) is not part of training: it runs the FF
//!   passes on the host with the [`Reference`](crate::Reference) backend,
//!   so that evaluation does not spend co-simulation time and is measured the same way for every
//!   backend.

use anyhow::{ensure, Context};
use half::f16;
use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sparse_kernels::bdwp::BdwpConfig;
use sparse_kernels::fp::to_f16;

use crate::backend::Backend;
use crate::data::{below, uniform_sym, Dataset};
use crate::linear::{
    apply_update, backward_data, forward, pregenerate, validate_config, weight_gradient,
    LinearState,
};

/// The loss scale applied to the last layer's `dY` (and divided out of `lr`).
pub const DEFAULT_LOSS_SCALE: f32 = 1024.0;

/// Hyper-parameters of an MLP run.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    /// Pattern, learning rate, λ and `M_B` source of every layer.
    pub bdwp: BdwpConfig,
    /// Minibatch size B.
    pub batch: usize,
    /// Loss scale `S` (see the module documentation). Must be finite and positive.
    pub loss_scale: f32,
    /// Seeds the weight initialisation (ChaCha8 stream 1) and the minibatch order (stream 2).
    pub seed: u64,
}

impl MlpConfig {
    /// Batch 64, loss scale 1024.
    pub fn new(bdwp: BdwpConfig, seed: u64) -> Self {
        Self {
            bdwp,
            batch: 64,
            loss_scale: DEFAULT_LOSS_SCALE,
            seed,
        }
    }

    /// The config the weight-update engine runs with: `lr/S`, `λ·S`.
    pub fn update_config(&self) -> BdwpConfig {
        BdwpConfig {
            lr: self.bdwp.lr / self.loss_scale,
            lambda: self.bdwp.lambda * self.loss_scale,
            ..self.bdwp.clone()
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        validate_config(&self.bdwp)?;
        ensure!(self.batch > 0, "batch size must be at least 1");
        ensure!(
            self.loss_scale.is_finite() && self.loss_scale > 0.0,
            "loss scale {} must be a finite positive number",
            self.loss_scale
        );
        Ok(())
    }
}

/// One point of a training curve. `loss` is the mean cross-entropy over the whole training set;
/// accuracies are fractions in `[0, 1]`. Step 0 is before any update.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Record {
    pub step: usize,
    pub loss: f32,
    pub train_acc: f32,
    pub test_acc: f32,
}

/// He-uniform fp32 initial weights (`U[-√(6/Cin), √(6/Cin))`, 24-bit uniforms) for layers
/// `widths[l] → widths[l+1]`, each `Cout×Cin`, from ChaCha8 stream 1 of `seed`. Depends only on
/// `widths` and `seed`, so every pattern starts from the same weights.
pub fn init_weights(widths: &[usize], seed: u64) -> Vec<Array2<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    widths
        .windows(2)
        .map(|w| {
            let (cin, cout) = (w[0], w[1]);
            let a = (6.0 / cin as f32).sqrt();
            Array2::from_shape_fn((cout, cin), |_| uniform_sym(&mut rng, a))
        })
        .collect()
}

/// Softmax cross-entropy over the first `classes` columns of `logits`: returns the summed loss,
/// the number of correct argmax predictions (ties to the lower class) and the probabilities
/// (`B×classes`).
pub fn softmax_xent(
    logits: ArrayView2<f32>,
    labels: &[usize],
    classes: usize,
) -> (f32, usize, Array2<f32>) {
    let b = logits.nrows();
    let mut probs = Array2::<f32>::zeros((b, classes));
    let mut loss = 0f32;
    let mut correct = 0;
    for (i, &y) in labels.iter().enumerate().take(b) {
        let z = logits.row(i);
        let mut m = z[0];
        let mut arg = 0;
        for j in 1..classes {
            if z[j] > m {
                m = z[j];
                arg = j;
            }
        }
        if arg == y {
            correct += 1;
        }
        let mut s = 0f32;
        for j in 0..classes {
            let e = (z[j] - m).exp();
            probs[[i, j]] = e;
            s += e;
        }
        for j in 0..classes {
            probs[[i, j]] /= s;
        }
        loss += s.ln() - (z[y] - m);
    }
    (loss, correct, probs)
}

/// `fp16(max(y, 0))` elementwise (`y > 0 ? y : 0`, so NaN becomes 0).
pub fn relu_f16(y: ArrayView2<f32>) -> Array2<f16> {
    y.mapv(|v| to_f16(if v > 0.0 { v } else { 0.0 }))
}

/// An MLP: one [`LinearState`] per layer, ReLU between layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    pub layers: Vec<LinearState>,
    /// Real classes; the last layer may have more (padded) outputs.
    pub classes: usize,
}

impl Mlp {
    /// Layers `widths[l] → widths[l+1]`, initialised by [`init_weights`] from `cfg.seed`, masks
    /// pre-generated on `backend`. Every width must be a multiple of M, and the last at least
    /// `classes`.
    pub fn init(
        backend: &mut dyn Backend,
        widths: &[usize],
        classes: usize,
        cfg: &MlpConfig,
    ) -> anyhow::Result<Self> {
        cfg.validate()?;
        ensure!(widths.len() >= 2, "an MLP needs at least two widths");
        let last = *widths.last().expect("checked");
        ensure!(
            classes >= 1 && classes <= last,
            "{classes} classes do not fit in {last} outputs"
        );
        let m = cfg.bdwp.pattern.m();
        ensure!(
            widths.iter().all(|w| w % m == 0),
            "layer widths {widths:?} must all be multiples of M = {m} (pattern {})",
            cfg.bdwp.pattern
        );
        let layers = init_weights(widths, cfg.seed)
            .into_iter()
            .enumerate()
            .map(|(l, w)| pregenerate(backend, w, &cfg.bdwp).with_context(|| format!("layer {l}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { layers, classes })
    }

    /// FF of every layer; returns each layer's fp32 output (`Y_l`), the last being the logits.
    pub fn forward_all(
        &self,
        backend: &mut dyn Backend,
        x: ArrayView2<f16>,
    ) -> anyhow::Result<Vec<Array2<f32>>> {
        let mut ys: Vec<Array2<f32>> = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            let y = match ys.last() {
                None => forward(backend, layer, x),
                Some(prev) => forward(backend, layer, relu_f16(prev.view()).view()),
            }
            .with_context(|| format!("layer {l}"))?;
            ys.push(y);
        }
        Ok(ys)
    }

    /// Mean loss and accuracy on `(x, labels)`.
    pub fn evaluate(
        &self,
        backend: &mut dyn Backend,
        x: ArrayView2<f16>,
        labels: &[usize],
    ) -> anyhow::Result<(f32, f32)> {
        let ys = self.forward_all(backend, x)?;
        let logits = ys.last().expect("at least one layer");
        let (loss, correct, _) = softmax_xent(logits.view(), labels, self.classes);
        let n = labels.len().max(1) as f32;
        Ok((loss / n, correct as f32 / n))
    }

    /// One SGD step on a minibatch: FF of all layers, loss, BP/WU from the last layer down, then the
    /// update and pre-generation of every layer. Returns the minibatch's mean loss (before the
    /// update).
    pub fn train_batch(
        &mut self,
        backend: &mut dyn Backend,
        x: ArrayView2<f16>,
        labels: &[usize],
        cfg: &MlpConfig,
    ) -> anyhow::Result<f32> {
        cfg.validate()?;
        let b = x.nrows();
        ensure!(
            labels.len() == b && b > 0,
            "{} labels for a batch of {b}",
            labels.len()
        );
        ensure!(
            labels.iter().all(|&y| y < self.classes),
            "labels must be below {}",
            self.classes
        );
        let nl = self.layers.len();
        // Inputs of every layer (fp16) and their fp32 outputs.
        let mut xs: Vec<Array2<f16>> = vec![x.to_owned()];
        let mut ys: Vec<Array2<f32>> = Vec::with_capacity(nl);
        for (l, layer) in self.layers.iter().enumerate() {
            backend.begin_layer(l);
            let y = forward(backend, layer, xs[l].view()).with_context(|| format!("layer {l}"))?;
            if l + 1 < nl {
                xs.push(relu_f16(y.view()));
            }
            ys.push(y);
        }
        let (loss, _, probs) = softmax_xent(ys[nl - 1].view(), labels, self.classes);
        let cout = self.layers[nl - 1].dim().0;
        let mut dy = Array2::<f16>::from_elem((b, cout), f16::ZERO);
        for (i, &y) in labels.iter().enumerate() {
            for j in 0..self.classes {
                let onehot = if j == y { 1.0 } else { 0.0 };
                dy[[i, j]] = to_f16((probs[[i, j]] - onehot) / b as f32 * cfg.loss_scale);
            }
        }
        let mut dws: Vec<Array2<f32>> = vec![Array2::zeros((0, 0)); nl];
        for l in (0..nl).rev() {
            backend.begin_layer(l);
            let layer = &self.layers[l];
            if l > 0 {
                let dx = backward_data(backend, layer, dy.view())
                    .with_context(|| format!("layer {l}"))?;
                let next_dy = ndarray::Zip::from(&dx)
                    .and(&ys[l - 1])
                    .map_collect(|&g, &y| to_f16(if y > 0.0 { g } else { 0.0 }));
                dws[l] = weight_gradient(backend, xs[l].view(), dy.view())
                    .with_context(|| format!("layer {l}"))?;
                dy = next_dy;
            } else {
                dws[l] = weight_gradient(backend, xs[l].view(), dy.view())
                    .with_context(|| format!("layer {l}"))?;
            }
        }
        let ucfg = cfg.update_config();
        for (l, dw) in dws.iter().enumerate() {
            backend.begin_layer(l);
            self.layers[l] = apply_update(backend, &self.layers[l], dw.view(), &ucfg)
                .with_context(|| format!("layer {l}"))?;
        }
        Ok(loss / b as f32)
    }
}

/// Minibatch order: successive permutations (Fisher–Yates on ChaCha8 stream 2 of the seed) of the
/// training indices, consumed `batch` at a time across epoch boundaries.
pub struct BatchOrder {
    rng: ChaCha8Rng,
    perm: Vec<usize>,
    pos: usize,
}

impl BatchOrder {
    pub fn new(n: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(2);
        Self {
            rng,
            perm: (0..n).collect(),
            pos: n,
        }
    }

    /// The next `batch` sample indices.
    pub fn next_batch(&mut self, batch: usize) -> Vec<usize> {
        let n = self.perm.len();
        (0..batch)
            .map(|_| {
                if self.pos == n {
                    for i in (1..n).rev() {
                        let j = below(&mut self.rng, i + 1);
                        self.perm.swap(i, j);
                    }
                    self.pos = 0;
                }
                self.pos += 1;
                self.perm[self.pos - 1]
            })
            .collect()
    }
}

/// Trains an MLP of `widths` (`widths[0]` = the dataset's features, the last ≥ its classes) for
/// `steps` minibatch steps on `backend`, and records the training-set loss and the train/test
/// accuracies at step 0, every `eval_every` steps and after the last step.
pub fn train_mlp(
    backend: &mut dyn Backend,
    data: &Dataset,
    widths: &[usize],
    cfg: &MlpConfig,
    steps: usize,
    eval_every: usize,
) -> anyhow::Result<Vec<Record>> {
    ensure!(eval_every > 0, "eval_every must be at least 1");
    ensure!(
        widths.first() == Some(&data.features()),
        "the first width must equal the dataset's {} features",
        data.features()
    );
    ensure!(!data.train_y.is_empty(), "the training set is empty");
    let mut mlp = Mlp::init(backend, widths, data.classes, cfg)?;
    let mut order = BatchOrder::new(data.train_y.len(), cfg.seed);
    let mut records = Vec::new();
    let mut host = crate::Reference;
    let mut record = |mlp: &Mlp, step: usize| -> anyhow::Result<Record> {
        let (loss, train_acc) = mlp.evaluate(&mut host, data.train_x.view(), &data.train_y)?;
        let (_, test_acc) = mlp.evaluate(&mut host, data.test_x.view(), &data.test_y)?;
        Ok(Record {
            step,
            loss,
            train_acc,
            test_acc,
        })
    };
    records.push(record(&mlp, 0)?);
    for step in 1..=steps {
        let idx = order.next_batch(cfg.batch);
        let x = data.train_x.select(Axis(0), &idx);
        let y: Vec<usize> = idx.iter().map(|&i| data.train_y[i]).collect();
        mlp.train_batch(backend, x.view(), &y, cfg)
            .with_context(|| format!("training step {step}"))?;
        if step % eval_every == 0 || step == steps {
            records.push(record(&mlp, step)?);
        }
    }
    Ok(records)
}

/// The first `steps` steps of [`train_mlp`]'s run (same initial weights, same minibatches) on
/// `backend` and on the [`Reference`](crate::Reference) side by side, comparing after every step
/// the loss and every layer's `w32`, `w16`, `M_F` and `M_B` bit for bit. Returns one comparison
/// list per step; the run stops early at the first step that differs.
pub fn lockstep_mlp(
    backend: &mut dyn Backend,
    data: &Dataset,
    widths: &[usize],
    cfg: &MlpConfig,
    steps: usize,
) -> anyhow::Result<Vec<Vec<coforge_driver::compare::Comparison>>> {
    use coforge_driver::compare::compare;
    let mut reference = crate::Reference;
    let mut golden = Mlp::init(&mut reference, widths, data.classes, cfg)?;
    let mut tested = Mlp::init(backend, widths, data.classes, cfg)?;
    let mut order = BatchOrder::new(data.train_y.len(), cfg.seed);
    let mut out = Vec::new();
    for step in 1..=steps {
        let idx = order.next_batch(cfg.batch);
        let x = data.train_x.select(Axis(0), &idx);
        let y: Vec<usize> = idx.iter().map(|&i| data.train_y[i]).collect();
        let lg = golden.train_batch(&mut reference, x.view(), &y, cfg)?;
        let lt = tested
            .train_batch(backend, x.view(), &y, cfg)
            .with_context(|| format!("step {step} on the tested backend"))?;
        let loss = |v: f32| Array2::from_elem((1, 1), v);
        let mut comparisons = vec![compare("loss", loss(lg).view(), loss(lt).view())?];
        for (l, (g, t)) in golden.layers.iter().zip(&tested.layers).enumerate() {
            comparisons.push(compare(
                &format!("layer{l}.w32"),
                g.w32.view(),
                t.w32.view(),
            )?);
            comparisons.push(compare(
                &format!("layer{l}.w16"),
                g.w16.view(),
                t.w16.view(),
            )?);
            comparisons.push(compare(
                &format!("layer{l}.mask_f"),
                g.mask_f.view(),
                t.mask_f.view(),
            )?);
            comparisons.push(compare(
                &format!("layer{l}.mask_b"),
                g.mask_b.view(),
                t.mask_b.view(),
            )?);
        }
        let exact = comparisons.iter().all(|c| c.bit_exact());
        out.push(comparisons);
        if !exact {
            break;
        }
    }
    Ok(out)
}
