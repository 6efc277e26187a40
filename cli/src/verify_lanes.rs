//! `coforge verify --axi` on a training config: besides the GEMM, a seeded pruning job on the
//! SORE and a seeded update job on the WUVE run on the bare engine and then through its AXI
//! wrapper (`<top>_axi`, `engines::axi::lanes`) under the same random stalls; the bits must be
//! the same.

use crate::engine::LoadedEngine;
use crate::report::LaneAxiReport;
use anyhow::Context;
use coforge_driver::axi::{self, LaneRun, Stalls};
use coforge_driver::design::design_spec_of;
use coforge_driver::{sore, wuve};
use coforge_generator::artifacts::sore_params;
use coforge_generator::engines::axi as axi_rtl;
use coforge_generator::engines::wuve::WuveParams;
use coforge_generator::engines::{sore as sore_rtl, wuve as wuve_rtl};
use coforge_sim::{BuildOptions, VerilatedModel, Verilator};
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub(crate) fn model(
    engine: &LoadedEngine,
    top: &str,
    clock: &str,
) -> anyhow::Result<VerilatedModel> {
    let spec = design_spec_of(&engine.rendered, top, clock);
    Ok(Verilator::build(&spec, &BuildOptions::default())
        .with_context(|| format!("building {top} in Verilator"))?
        .instantiate()?)
}

/// Runs the SORE and WUVE jobs of a training config bare and through their wrappers; empty
/// for a config without `[train]`.
pub fn run(engine: &LoadedEngine, stalls: Stalls) -> anyhow::Result<Vec<LaneAxiReport>> {
    let (Some(train), Some(p)) = (&engine.config.train, sore_params(&engine.config)) else {
        return Ok(Vec::new());
    };
    let mut rng = ChaCha8Rng::seed_from_u64(stalls.seed);
    let mut out = Vec::new();

    // Pruning: 2P + 1 lines of 2M values, so the last round has null lanes.
    let (rows, cols) = (2 * p.lanes as usize + 1, 2 * p.m as usize);
    let w = Array2::from_shape_fn((rows, cols), |_| match p.magnitude {
        sore_rtl::MagnitudeRule::Fp16Bits => {
            u32::from(half::f16::from_f32(rng.random_range(-8.0f32..8.0)).to_bits())
        }
        sore_rtl::MagnitudeRule::Int8Abs => u32::from(rng.random::<u8>()),
    });
    let top = &train.sore_top;
    let mut bare_sim = model(engine, top, sore_rtl::ports::CLOCK)?;
    let spec = design_spec_of(&engine.rendered, top, sore_rtl::ports::CLOCK);
    let bare = sore::prune(&mut bare_sim, &p, &spec, w.view(), Axis(1))?;
    let mut m = model(engine, &axi_rtl::wrapper_name(top), axi_rtl::ports::CLOCK)?;
    let (got, run) = axi::prune(&mut m, &p, top, w.view(), Axis(1), stalls)?;
    let differ = diff(&got.values, &bare.values)
        + diff(&got.indices, &bare.indices)
        + diff(&got.mask, &bare.mask);
    out.push(report(
        top,
        format!(
            "prune {rows} x {cols} along axis 1 ({} groups)",
            bare.stats.groups
        ),
        stalls,
        differ,
        (
            bare.stats.cycles,
            got.stats.cycles,
            got.stats.estimated_cycles,
        ),
        &run,
    ));

    // Update: 5 x (2V + 1) elements, so the last beat has null lanes.
    let q = WuveParams::of(train);
    let (rows, cols) = (5, 2 * q.lanes as usize + 1);
    let w32 = Array2::from_shape_fn((rows, cols), |_| rng.random_range(-2.0f32..2.0));
    let dw = Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0f32..1.0));
    let keep = Array2::from_shape_fn((rows, cols), |_| rng.random_range(0..2u8));
    let (lr, lambda) = (0.0625f32, 0.25f32);
    let top = &train.wuve_top;
    let mut bare_sim = model(engine, top, wuve_rtl::ports::CLOCK)?;
    let spec = design_spec_of(&engine.rendered, top, wuve_rtl::ports::CLOCK);
    let bare = wuve::update(
        &mut bare_sim,
        &q,
        &spec,
        w32.view(),
        dw.view(),
        keep.view(),
        lr,
        lambda,
    )?;
    let mut m = model(engine, &axi_rtl::wrapper_name(top), axi_rtl::ports::CLOCK)?;
    let (got, run) = axi::update(
        &mut m,
        &q,
        top,
        (w32.view(), dw.view(), keep.view()),
        lr,
        lambda,
        stalls,
    )?;
    let differ = diff(&got.w32.mapv(f32::to_bits), &bare.w32.mapv(f32::to_bits))
        + diff(
            &got.w16.mapv(half::f16::to_bits),
            &bare.w16.mapv(half::f16::to_bits),
        );
    out.push(report(
        top,
        format!("update {rows} x {cols} (lr {lr}, lambda {lambda})"),
        stalls,
        differ,
        (
            bare.stats.cycles,
            got.stats.cycles,
            got.stats.estimated_cycles,
        ),
        &run,
    ));
    Ok(out)
}

fn diff<T: PartialEq>(a: &Array2<T>, b: &Array2<T>) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

fn report(
    engine_top: &str,
    job: String,
    stalls: Stalls,
    differ: usize,
    (bare_cycles, cycles, estimated_cycles): (u64, u64, u64),
    run: &LaneRun,
) -> LaneAxiReport {
    LaneAxiReport {
        top: axi_rtl::wrapper_name(engine_top),
        job,
        stall_rate: stalls.rate,
        stall_seed: stalls.seed,
        same_bits_as_bare: differ == 0,
        differ_from_bare: differ,
        cycles,
        estimated_cycles,
        bare_cycles,
        input_stall_cycles: run.bubbles,
        wrapper_busy_cycles: u64::from(run.counters.cycles_busy),
        output_stall_cycles: u64::from(run.counters.out_stalls),
    }
}
