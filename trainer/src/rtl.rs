//! The RTL backend: every operation of a training step runs on the generated engines in
//! Verilator co-simulation, GEMMs on the fp16 STCE, N:M selection on the SORE, the update on the
//! WUVE.
//!
//! The engines are separate designs, and this harness sequences them: it moves tensors between
//! them and records each engine's measured cycles. Keeping the sequencing in the harness (rather
//! than in an RTL controller) keeps every engine testable alone and every tensor visible for the
//! bit-for-bit comparison; how the engines overlap in a real step is then computed from the
//! measured cycles by the offline schedule (`crate::schedule`).

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context};
use coforge_driver::compare::{compare, Bits, Comparison, Mismatch};
use coforge_driver::design::design_spec_of;
use coforge_driver::mismatch_map::DiffMap;
use coforge_driver::stce::{self, GemmJob, WeightStream};
use coforge_driver::{sore, wuve};
use coforge_generator::artifacts::{render, sore_params};
use coforge_generator::config::{Config, Dtype, StceConfig};
use coforge_generator::engines::sore::SoreParams;
use coforge_generator::engines::wuve::WuveParams;
use coforge_generator::engines::{sore as sore_rtl, stce as stce_rtl, wuve as wuve_rtl};
use coforge_sim::{BuildOptions, DesignSpec, VerilatedModel, Verilator};
use half::f16;
use ndarray::{s, Array2, ArrayView2, Axis};
use serde::Serialize;
use sparse_kernels::nm::{Compressed, NmPattern};

use crate::backend::{Backend, Pass};

/// Which engine ran an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Stce,
    Sore,
    Wuve,
}

/// One operation as it ran on an engine, in program order.
#[derive(Clone, Debug, Serialize)]
pub struct OpRecord {
    pub layer: usize,
    pub pass: Pass,
    pub engine: Engine,
    /// Measured: from the engine taking the operation's first input to its last result shown
    /// with `out_valid`, as the driver observed it in co-simulation.
    pub cycles: u64,
    /// The engine's cycle model for the same operation (`estimated_cycles` in its generator
    /// module), beside the measured figure.
    pub estimated_cycles: u64,
    /// GEMMs: multiplier slots used (effective MACs); SORE/WUVE: elements processed.
    pub work: u64,
    /// GEMMs: the output shape; SORE/WUVE: the tensor shape.
    pub shape: (usize, usize),
}

struct Unit<P> {
    params: P,
    spec: DesignSpec,
    sim: VerilatedModel,
}

/// The training engines of one config, built (or taken from the build cache) and loaded.
pub struct RtlBackend {
    stce_cfg: StceConfig,
    stce: Unit<()>,
    sore: Unit<SoreParams>,
    wuve: Unit<WuveParams>,
    pass: Pass,
    layer: usize,
    /// Every operation so far, in order.
    pub ops: Vec<OpRecord>,
    /// Verilator version text, for reports.
    pub verilator_version: String,
}

fn load(spec: &DesignSpec) -> anyhow::Result<VerilatedModel> {
    let lib = Verilator::build(spec, &BuildOptions::default())
        .with_context(|| format!("building `{}` with Verilator", spec.top))?;
    Ok(lib.instantiate()?)
}

impl RtlBackend {
    /// Builds the three engines of `config`, which needs `dtype = "fp16"` and a `[train]`
    /// section.
    pub fn new(config: &Config) -> anyhow::Result<RtlBackend> {
        let stce_cfg = config.stce("training on the RTL engines")?;
        ensure!(
            stce_cfg.dtype == Dtype::Fp16,
            "training needs an fp16 tensor engine: set dtype = \"fp16\" in [stce]"
        );
        let (Some(train), Some(sore_params)) = (&config.train, sore_params(config)) else {
            bail!("training needs a [train] section in the config (sore_lanes, wuve_lanes)");
        };
        let rendered = render(config)?;
        let spec_of = |top: &str| design_spec_of(&rendered, top, stce_rtl::ports::CLOCK);
        let (stce_spec, sore_spec, wuve_spec) = (
            spec_of(&stce_cfg.top),
            spec_of(&train.sore_top),
            spec_of(&train.wuve_top),
        );
        debug_assert_eq!(sore_rtl::ports::CLOCK, wuve_rtl::ports::CLOCK);
        Ok(RtlBackend {
            stce_cfg: stce_cfg.clone(),
            stce: Unit {
                params: (),
                sim: load(&stce_spec)?,
                spec: stce_spec,
            },
            sore: Unit {
                params: sore_params,
                sim: load(&sore_spec)?,
                spec: sore_spec,
            },
            wuve: Unit {
                params: WuveParams::of(train),
                sim: load(&wuve_spec)?,
                spec: wuve_spec,
            },
            pass: Pass::Ff,
            layer: 0,
            ops: Vec::new(),
            verilator_version: Verilator::version()?.text,
        })
    }

    /// The hardware's N:M.
    pub fn pattern(&self) -> NmPattern {
        NmPattern::new(self.stce_cfg.n as usize, self.stce_cfg.m as usize)
            .expect("a validated config has a valid pattern")
    }

    pub fn stce_config(&self) -> &StceConfig {
        &self.stce_cfg
    }

    /// Measured cycles per pass over all recorded operations.
    pub fn cycles_per_pass(&self) -> BTreeMap<String, u64> {
        cycles_per_pass(&self.ops)
    }

    fn record(
        &mut self,
        engine: Engine,
        (cycles, estimated_cycles): (u64, u64),
        work: u64,
        shape: (usize, usize),
    ) {
        self.ops.push(OpRecord {
            layer: self.layer,
            pass: self.pass,
            engine,
            cycles,
            estimated_cycles,
            work,
            shape,
        });
    }

    fn run_gemm(&mut self, job: GemmJob) -> anyhow::Result<Array2<f32>> {
        let run = stce::run(&mut self.stce.sim, &self.stce_cfg, &self.stce.spec, &job)?;
        let shape = run.c.dim();
        self.record(
            Engine::Stce,
            (run.stats.cycles, run.stats.estimated_cycles),
            run.stats.effective_macs,
            shape,
        );
        Ok(run.c.mapv(f32::from_bits))
    }
}

fn raw16(x: ArrayView2<f16>) -> Array2<u32> {
    x.mapv(|v| v.to_bits() as u32)
}

/// `x` with zero columns appended up to `cols`.
fn pad_cols(x: Array2<u32>, cols: usize) -> Array2<u32> {
    if x.ncols() == cols {
        return x;
    }
    let mut out = Array2::zeros((x.nrows(), cols));
    out.slice_mut(s![.., ..x.ncols()]).assign(&x);
    out
}

impl Backend for RtlBackend {
    fn gemm_nm(&mut self, a: ArrayView2<f16>, b: &Compressed<f16>) -> anyhow::Result<Array2<f32>> {
        b.validate()?;
        ensure!(
            b.pattern == self.pattern() && b.axis == Axis(0),
            "the engine runs {} along K; got weights compressed {} along axis {}",
            self.pattern(),
            b.pattern,
            b.axis.0
        );
        ensure!(
            a.ncols() == b.dense_dim().0,
            "A is {:?} but the weights have K = {}",
            a.dim(),
            b.dense_dim().0
        );
        self.run_gemm(GemmJob {
            a: raw16(a),
            weights: WeightStream::Sparse {
                values: b.values.mapv(|v| v.to_bits() as u32),
                indices: b.indices.clone(),
            },
        })
    }

    fn gemm(&mut self, a: ArrayView2<f16>, b: ArrayView2<f16>) -> anyhow::Result<Array2<f32>> {
        ensure!(
            a.ncols() == b.nrows(),
            "A is {:?} but B is {:?}: inner dimensions differ",
            a.dim(),
            b.dim()
        );
        // Dense mode takes N reduction elements per cycle: pad K with zeros, which add nothing.
        let n = self.stce_cfg.n as usize;
        let kp = a.ncols().div_ceil(n).max(1) * n;
        let b_raw = pad_cols(raw16(b).reversed_axes(), kp).reversed_axes();
        self.run_gemm(GemmJob {
            a: pad_cols(raw16(a), kp),
            weights: WeightStream::Dense {
                values: b_raw.as_standard_layout().into_owned(),
            },
        })
    }

    fn prune(
        &mut self,
        w: ArrayView2<f16>,
        pattern: NmPattern,
        axis: usize,
    ) -> anyhow::Result<(Compressed<f16>, Array2<u8>)> {
        ensure!(
            pattern == self.pattern(),
            "the pruning unit is built for {}, not {pattern}",
            self.pattern()
        );
        let p = sore::prune(
            &mut self.sore.sim,
            &self.sore.params,
            &self.sore.spec,
            raw16(w).view(),
            Axis(axis),
        )?;
        let cycles = (p.stats.cycles, p.stats.estimated_cycles);
        self.record(Engine::Sore, cycles, w.len() as u64, w.dim());
        let compressed = Compressed {
            values: p.values.mapv(|v| f16::from_bits(v as u16)),
            indices: p.indices,
            pattern,
            axis: Axis(axis),
        };
        Ok((compressed, p.mask))
    }

    fn update(
        &mut self,
        w32: ArrayView2<f32>,
        dw: ArrayView2<f32>,
        mask_f: ArrayView2<u8>,
        lr: f32,
        lambda: f32,
    ) -> anyhow::Result<(Array2<f32>, Array2<f16>)> {
        let u = wuve::update(
            &mut self.wuve.sim,
            &self.wuve.params,
            &self.wuve.spec,
            w32,
            dw,
            mask_f,
            lr,
            lambda,
        )?;
        let cycles = (u.stats.cycles, u.stats.estimated_cycles);
        self.record(Engine::Wuve, cycles, w32.len() as u64, w32.dim());
        Ok((u.w32, u.w16))
    }

    fn begin_pass(&mut self, pass: Pass) {
        self.pass = pass;
    }

    fn begin_layer(&mut self, layer: usize) {
        self.layer = layer;
    }
}

/// Measured cycles per pass (`ff`, `bp`, `wu`, `update`, `prune`) over `ops`.
pub fn cycles_per_pass(ops: &[OpRecord]) -> BTreeMap<String, u64> {
    per_pass(ops, |op| op.cycles)
}

/// The engines' estimated cycles per pass over `ops`, beside [`cycles_per_pass`].
pub fn estimated_cycles_per_pass(ops: &[OpRecord]) -> BTreeMap<String, u64> {
    per_pass(ops, |op| op.estimated_cycles)
}

fn per_pass(ops: &[OpRecord], figure: fn(&OpRecord) -> u64) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for op in ops {
        *out.entry(format!("{:?}", op.pass).to_lowercase())
            .or_insert(0) += figure(op);
    }
    out
}

/// Receives the tensors of a training step, golden beside RTL, from [`visit_step`].
pub trait StepVisitor {
    /// One tensor pair. `producer` is the engine that computed it in this step, or `None` for the
    /// state the step started from (`*_used`).
    fn tensor<T: Bits>(
        &mut self,
        name: &'static str,
        producer: Option<Engine>,
        golden: ArrayView2<T>,
        rtl: ArrayView2<T>,
    ) -> anyhow::Result<()>;
}

/// Walks every tensor of a training step in a fixed order: `y`, `dx`, `dw`, `w32`, `w16`,
/// `mask_f`, `mask_b` (the next step's), then the masks this step used.
pub fn visit_step(
    golden: &sparse_kernels::bdwp::StepOutputs,
    rtl: &sparse_kernels::bdwp::StepOutputs,
    v: &mut impl StepVisitor,
) -> anyhow::Result<()> {
    use Engine::{Sore, Stce, Wuve};
    let (g, r) = (golden, rtl);
    v.tensor("y", Some(Stce), g.y.view(), r.y.view())?;
    v.tensor("dx", Some(Stce), g.dx.view(), r.dx.view())?;
    v.tensor("dw", Some(Stce), g.dw.view(), r.dw.view())?;
    v.tensor("w32", Some(Wuve), g.w32.view(), r.w32.view())?;
    v.tensor("w16", Some(Wuve), g.next.w16.view(), r.next.w16.view())?;
    v.tensor(
        "mask_f",
        Some(Sore),
        g.next.mask_f.view(),
        r.next.mask_f.view(),
    )?;
    v.tensor(
        "mask_b",
        Some(Sore),
        g.next.mask_b.view(),
        r.next.mask_b.view(),
    )?;
    v.tensor("w16_used", None, g.used.w16.view(), r.used.w16.view())?;
    v.tensor(
        "mask_f_used",
        None,
        g.used.mask_f.view(),
        r.used.mask_f.view(),
    )?;
    v.tensor(
        "mask_b_used",
        None,
        g.used.mask_b.view(),
        r.used.mask_b.view(),
    )
}

/// Every tensor of a step compared bit for bit, each with the engine that produced it, and the
/// map of the first tensor that differs (for `mismatch.svg`).
#[derive(Debug, Default)]
pub struct StepCheck {
    pub comparisons: Vec<(Option<Engine>, Comparison)>,
    pub first_diff: Option<(DiffMap, Mismatch)>,
}

impl StepVisitor for StepCheck {
    fn tensor<T: Bits>(
        &mut self,
        name: &'static str,
        producer: Option<Engine>,
        golden: ArrayView2<T>,
        rtl: ArrayView2<T>,
    ) -> anyhow::Result<()> {
        let c = compare(name, golden, rtl)?;
        if let (None, Some(first)) = (&self.first_diff, &c.first_mismatch) {
            self.first_diff = Some((DiffMap::of(name, golden, rtl), first.clone()));
        }
        self.comparisons.push((producer, c));
        Ok(())
    }
}

impl StepCheck {
    /// Compares every tensor of a training step, in the order of [`visit_step`].
    pub fn of(
        golden: &sparse_kernels::bdwp::StepOutputs,
        rtl: &sparse_kernels::bdwp::StepOutputs,
    ) -> anyhow::Result<StepCheck> {
        let mut check = StepCheck::default();
        visit_step(golden, rtl, &mut check)?;
        Ok(check)
    }
}

/// Compares every tensor of a training step bit for bit, in the order of [`visit_step`].
pub fn compare_step(
    golden: &sparse_kernels::bdwp::StepOutputs,
    rtl: &sparse_kernels::bdwp::StepOutputs,
) -> anyhow::Result<Vec<Comparison>> {
    let check = StepCheck::of(golden, rtl)?;
    Ok(check.comparisons.into_iter().map(|(_, c)| c).collect())
}
