//! The compute backend: the five operations a BDWP training step needs from the accelerator.
//!
//! [`Reference`] implements them with `sparse-kernels` (the bit-exact contract). An RTL backend
//! implements the same trait by running the generated engines in co-simulation; because every
//! operation is specified bit for bit, a training run gives identical numbers on both.

use std::collections::HashMap;

use half::f16;
use ndarray::{Array2, ArrayView2, Axis, Zip};
use sparse_kernels::bdwp::update_element;
use sparse_kernels::fp::to_f16;
use sparse_kernels::gemm::{self, Fp16Arith};
use sparse_kernels::nm::{self, Compressed, NmPattern};

/// What the accelerator computes. Every method is one engine pass; results must equal the
/// [`Reference`] bit for bit.
pub trait Backend {
    /// C = A · B, A: rows×K fp16, B compressed N:M along K (axis 0 of the K×cols matrix). Only kept
    /// products are added, in increasing k (`sparse_kernels::gemm::gemm_nm` with `Fp16Arith`).
    fn gemm_nm(&mut self, a: ArrayView2<f16>, b: &Compressed<f16>) -> anyhow::Result<Array2<f32>>;
    /// Dense C = A · B, fp16 → fp32, increasing k (`gemm` with `Fp16Arith`).
    fn gemm(&mut self, a: ArrayView2<f16>, b: ArrayView2<f16>) -> anyhow::Result<Array2<f32>>;
    /// N:M selection of `w` along `axis` (0 or 1): compressed form + 0/1 mask (`nm::compress` +
    /// `nm::mask` semantics).
    fn prune(
        &mut self,
        w: ArrayView2<f16>,
        pattern: NmPattern,
        axis: usize,
    ) -> anyhow::Result<(Compressed<f16>, Array2<u8>)>;
    /// Elementwise weight update (`bdwp::update_element`) and fp32→fp16 (`fp::to_f16`) of the
    /// result.
    fn update(
        &mut self,
        w32: ArrayView2<f32>,
        dw: ArrayView2<f32>,
        mask_f: ArrayView2<u8>,
        lr: f32,
        lambda: f32,
    ) -> anyhow::Result<(Array2<f32>, Array2<f16>)>;
    /// Cycle accounting hook: the backend records what it measured per pass (the reference records
    /// nothing).
    fn begin_pass(&mut self, _pass: Pass) {}
    /// Announces which layer of a network the following operations belong to (layer 0 for a
    /// single-layer step), so that a backend can account cycles per layer.
    fn begin_layer(&mut self, _layer: usize) {}
}

/// The engine pass an operation belongs to (announced through [`Backend::begin_pass`] right before
/// the operation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Pass {
    /// Forward GEMM `Y = X·(W⊙M_F)ᵀ` (sparse tensor engine).
    Ff,
    /// Backward-data GEMM `dX = dY·(S⊙M_B)` (sparse tensor engine).
    Bp,
    /// Weight-gradient GEMM `dW = dYᵀ·X` (tensor engine, dense).
    Wu,
    /// fp32 master-weight update and fp32→fp16 conversion (weight-update vector engine).
    Update,
    /// N:M selection of the next masks (online pruning unit).
    Prune,
}

impl Pass {
    /// All passes, in the order of a training step.
    pub const ALL: [Pass; 5] = [Pass::Ff, Pass::Bp, Pass::Wu, Pass::Update, Pass::Prune];
}

/// The bit-exact Rust reference (`sparse-kernels`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

impl Backend for Reference {
    fn gemm_nm(&mut self, a: ArrayView2<f16>, b: &Compressed<f16>) -> anyhow::Result<Array2<f32>> {
        Ok(gemm::gemm_nm(&Fp16Arith, a, b)?)
    }

    fn gemm(&mut self, a: ArrayView2<f16>, b: ArrayView2<f16>) -> anyhow::Result<Array2<f32>> {
        Ok(gemm::gemm(&Fp16Arith, a, b)?)
    }

    fn prune(
        &mut self,
        w: ArrayView2<f16>,
        pattern: NmPattern,
        axis: usize,
    ) -> anyhow::Result<(Compressed<f16>, Array2<u8>)> {
        // nm::compress is compress_masked(w, mask(w)); computing the mask once gives both outputs.
        let mask = nm::mask(w, pattern, Axis(axis))?;
        let c = nm::compress_masked(w, mask.view(), pattern, Axis(axis))?;
        Ok((c, mask))
    }

    fn update(
        &mut self,
        w32: ArrayView2<f32>,
        dw: ArrayView2<f32>,
        mask_f: ArrayView2<u8>,
        lr: f32,
        lambda: f32,
    ) -> anyhow::Result<(Array2<f32>, Array2<f16>)> {
        if w32.dim() != dw.dim() || w32.dim() != mask_f.dim() {
            anyhow::bail!(
                "update: w32 is {:?}, dw is {:?}, mask_f is {:?}; all three must have the same shape",
                w32.dim(),
                dw.dim(),
                mask_f.dim()
            );
        }
        let new_w32 = Zip::from(w32)
            .and(dw)
            .and(mask_f)
            .map_collect(|&w, &g, &k| update_element(w, g, k, lr, lambda));
        let w16 = new_w32.mapv(to_f16);
        Ok((new_w32, w16))
    }
}

/// Work done in one pass, as counted by [`Counting`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassWork {
    /// Operations issued (GEMMs, updates, prunes).
    pub calls: u64,
    /// Multiply-accumulates actually performed (GEMMs: kept products only; update: elements
    /// updated; prune: elements scanned).
    pub work: u64,
}

/// Wraps a backend and counts, per [`Pass`], the operations and the MACs (or elements) it was given.
/// This is an analytical count from operand shapes, not a cycle measurement: it shows the work that
/// N:M sparsity removes (FF and BP shrink by N/M, WU stays dense).
#[derive(Debug, Default)]
pub struct Counting<B> {
    pub inner: B,
    pass: Option<Pass>,
    counts: HashMap<Pass, PassWork>,
}

impl<B> Counting<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            pass: None,
            counts: HashMap::new(),
        }
    }

    /// The work counted for `pass` so far.
    pub fn work(&self, pass: Pass) -> PassWork {
        self.counts.get(&pass).copied().unwrap_or_default()
    }

    /// All passes in step order, with their counts (zero for passes that never ran).
    pub fn summary(&self) -> Vec<(Pass, PassWork)> {
        Pass::ALL.iter().map(|&p| (p, self.work(p))).collect()
    }

    fn add(&mut self, fallback: Pass, work: u64) {
        let e = self
            .counts
            .entry(self.pass.unwrap_or(fallback))
            .or_default();
        e.calls += 1;
        e.work += work;
    }
}

impl<B: Backend> Backend for Counting<B> {
    fn gemm_nm(&mut self, a: ArrayView2<f16>, b: &Compressed<f16>) -> anyhow::Result<Array2<f32>> {
        let r = self.inner.gemm_nm(a, b)?;
        let (kept, cols) = b.values.dim();
        self.add(Pass::Ff, (a.nrows() * kept * cols) as u64);
        Ok(r)
    }

    fn gemm(&mut self, a: ArrayView2<f16>, b: ArrayView2<f16>) -> anyhow::Result<Array2<f32>> {
        let r = self.inner.gemm(a, b)?;
        self.add(Pass::Wu, (a.nrows() * a.ncols() * b.ncols()) as u64);
        Ok(r)
    }

    fn prune(
        &mut self,
        w: ArrayView2<f16>,
        pattern: NmPattern,
        axis: usize,
    ) -> anyhow::Result<(Compressed<f16>, Array2<u8>)> {
        let r = self.inner.prune(w, pattern, axis)?;
        self.add(Pass::Prune, w.len() as u64);
        Ok(r)
    }

    fn update(
        &mut self,
        w32: ArrayView2<f32>,
        dw: ArrayView2<f32>,
        mask_f: ArrayView2<u8>,
        lr: f32,
        lambda: f32,
    ) -> anyhow::Result<(Array2<f32>, Array2<f16>)> {
        let r = self.inner.update(w32, dw, mask_f, lr, lambda)?;
        self.add(Pass::Update, w32.len() as u64);
        Ok(r)
    }

    fn begin_pass(&mut self, pass: Pass) {
        self.pass = Some(pass);
        self.inner.begin_pass(pass);
    }

    fn begin_layer(&mut self, layer: usize) {
        self.inner.begin_layer(layer);
    }
}
