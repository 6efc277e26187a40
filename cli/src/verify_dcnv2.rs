//! `coforge verify` on a DCNv2 (mode B) deformable engine: a seeded or given layer runs through
//! the engine (and, for a full conv, the STCE) in closed-loop Verilator co-simulation and is
//! compared bit for bit with `sparse_kernels::deform::dcnv2_fixed`.

use anyhow::{bail, Context};
use coforge_driver::axi_deform::dcnv2_engine;
use coforge_driver::dcnv2::{verify_layer, verify_layer_with, LayerTensors, Pressure, StceStage};
use coforge_driver::design::design_spec_of;
use coforge_generator::config::DeformConfig;
use coforge_generator::config::StceConfig;
use coforge_generator::engines::deform::dcnv2::{ports, Dcnv2Params};
use coforge_sim::{BuildOptions, DesignSpec, VerilatedModel, Verilator};
use ndarray::Ix4;
use serde_json::json;
use sparse_kernels::deform::Geometry;

use crate::engine::{LoadedEngine, Progress, SimulatorArg};
use crate::golden::deform::{read, read_fixed};
use crate::output::OutputDir;
use crate::verify::VerifyArgs;
use crate::verify_axi_deform as axi;

/// A seeded layer of `dims` = HxWxC (depthwise) or HxWxCINxCOUT (full conv), with a mask.
fn seeded(p: &Dcnv2Params, g: usize, dims: &[usize], seed: u64) -> anyhow::Result<LayerTensors> {
    let (h, w, cin, cout) = match (dims, p.depthwise) {
        (&[h, w, c], true) => (h, w, c, c),
        (&[h, w, cin, cout], false) => (h, w, cin, cout),
        (_, true) => bail!("--shape for a depthwise engine is HxWxC (for example 8x8x16)"),
        (_, false) => bail!("--shape for a full-conv engine is HxWxCINxCOUT (for example 8x8x8x4)"),
    };
    Ok(LayerTensors::random(
        p,
        (1, cin, h, w),
        cout,
        g,
        true,
        seed,
    )?)
}

/// The STCE stage of a full conv: its model and config, when the engine has one.
fn stage<'a>(
    sim: &'a mut Option<(VerilatedModel, DesignSpec)>,
    config: Option<&'a StceConfig>,
) -> Option<StceStage<'a>> {
    match (sim, config) {
        (Some((sim, spec)), Some(config)) => Some(StceStage { sim, config, spec }),
        _ => None,
    }
}

/// `out` is the output folder `coforge verify` already checked and staged before any work.
pub fn run(
    args: &VerifyArgs,
    engine: &LoadedEngine,
    deform: &DeformConfig,
    mut out: OutputDir,
    mut progress: Progress,
) -> anyhow::Result<()> {
    let p = Dcnv2Params::of(deform);
    if args.sim.simulator != SimulatorArg::Verilator || args.sim.waves.is_some() {
        bail!("a DCNv2 engine runs in closed-loop co-simulation, on Verilator only (no --simulator icarus, no --waves)");
    }
    if args.a.is_some() || args.b.is_some() {
        bail!("--a and --b are GEMM operands; a deformable engine takes --x, --offset, [--mask] and --w");
    }
    if let Some(flag) = args
        .deformable_inputs()
        .into_iter()
        .find(|f| !["x", "w", "offset", "mask"].contains(f))
    {
        bail!("--{flag} is an input of a plain or CoDeNet engine; a DCNv2 engine takes --x, --offset, [--mask] and --w");
    }
    let groups_g = deform.offset_groups.unwrap_or(1) as usize;
    let (mut t, seed) = match (&args.x, &args.offset, &args.w) {
        (Some(x), Some(off), Some(w)) => (
            LayerTensors {
                x: read::<i8, Ix4>(x, "x", "int8 [B, Cin, H, W]")?,
                offset: read_fixed(off, "offset", "[B, 2*G*kh*kw, Hout, Wout]")?,
                mask: match &args.mask {
                    Some(m) => Some(read_fixed(m, "mask", "[B, G*kh*kw, Hout, Wout]")?),
                    None => None,
                },
                w: read::<i8, Ix4>(w, "weights", "int8 [Cout, Cin/groups, kh, kw]")?,
                geometry: Geometry::default(),
            },
            None,
        ),
        (None, None, None) => {
            if args.mask.is_some() {
                bail!("--mask goes with --x, --offset and --w");
            }
            let dims = args.shape.clone().map(|d| d.0).unwrap_or_else(|| {
                if p.depthwise {
                    vec![8, 8, 2 * p.lanes as usize]
                } else {
                    vec![6, 6, p.lanes as usize + 1, 3]
                }
            });
            (seeded(&p, groups_g, &dims, args.seed)?, Some(args.seed))
        }
        _ => bail!("give all of --x, --offset and --w (and --mask if the layer has one), or none for a seeded layer"),
    };
    // The offset groups of given tensors follow from the offset's channels.
    let k = p.taps() as usize;
    let groups_g = if seed.is_some() {
        groups_g
    } else {
        (t.offset.dim().1 / (2 * k)).max(1)
    };
    t.geometry = Geometry {
        stride: [p.stride as usize; 2],
        padding: [p.padding as usize; 2],
        dilation: [p.dilation as usize; 2],
        offset_groups: groups_g,
        ..Geometry::default()
    };
    let layer = t.layer();
    let (b, cin, h, w) = t.x.dim();
    progress.step(&format!(
        "DCNv2 engine `{}` ({} lanes, {}x{} kernel, {} taps per cycle, {}), layer {b} x {cin} x {h} x {w}, G = {groups_g}",
        p.top,
        p.lanes,
        p.kernel,
        p.kernel,
        p.taps_per_cycle,
        if p.depthwise { "depthwise" } else { "full conv on the STCE" }
    ));
    let spec = design_spec_of(&engine.rendered, &p.top, ports::CLOCK);
    let version = Verilator::version()?;
    let mut model = Verilator::build(&spec, &BuildOptions::default())?.instantiate()?;
    let mut stce_sim = None;
    let stce_cfg = if p.depthwise {
        None
    } else {
        let s = engine.config.stce("a full-conv DCNv2 engine")?;
        let spec = design_spec_of(&engine.rendered, &s.top, ports::CLOCK);
        stce_sim = Some((
            Verilator::build(&spec, &BuildOptions::default())?.instantiate()?,
            spec,
        ));
        Some(s)
    };
    progress.step("Verilator models ready");
    let v = verify_layer(
        &mut model,
        &p,
        &layer,
        stage(&mut stce_sim, stce_cfg),
        Pressure::default(),
    )?;
    progress.step(&format!("simulated {} cycles", v.cycles));
    let axi_report = if args.axi {
        let stalls = axi::stalls(args.stall_rate, args.seed);
        progress.add_steps(1);
        let mut wrapped = axi::wrapper_model(engine, &p.top)?;
        let mut stats = None;
        let w = verify_layer_with(
            &mut |l| {
                let (run, s) = dcnv2_engine(&mut wrapped, deform, l, stalls)?;
                stats = Some(s);
                Ok(run)
            },
            &p,
            &layer,
            stage(&mut stce_sim, stce_cfg),
        )?;
        let differ = w.rtl.iter().zip(&v.rtl).filter(|(a, b)| a != b).count();
        let r = axi::report(
            &p.top,
            format!("layer {b} x {cin} x {h} x {w}", w = t.x.dim().3),
            stalls,
            (differ, v.cycles),
            &stats.expect("the wrapper ran"),
        );
        progress.step(&format!(
            "through {}: {} cycles at stall rate {} ({} without the wrapper)",
            r.top, r.cycles, r.stall_rate, v.cycles
        ));
        Some(r)
    } else {
        None
    };

    out.add_npy("x.npy", t.x.view());
    out.add_npy("offset.npy", t.offset.view());
    if let Some(m) = &t.mask {
        out.add_npy("mask.npy", m.view());
    }
    out.add_npy("w.npy", t.w.view());
    out.add_npy("golden.npy", v.golden.view());
    out.add_npy("rtl.npy", v.rtl.view());
    let c = &v.comparison;
    let mut first = serde_json::to_value(&c.first_mismatch)?;
    if let (Some(obj), Some(idx)) = (first.as_object_mut(), v.first_index) {
        obj.insert("index".into(), json!(idx));
    }
    let report = json!({
        "bit_exact": c.bit_exact(),
        "mismatches": c.mismatches,
        "elements": c.elements,
        "first_mismatch": first,
        "cycles": v.cycles,
        "estimated_cycles": v.estimated_cycles,
        "stce_cycles": v.stce.map(|s| s.cycles),
        "stce_estimated_cycles": v.stce.map(|s| s.estimated_cycles),
        "macs": v.macs,
        "utilization": v.utilization(&p),
        "planes": v.planes,
        "mode": "dcnv2",
        "shape": [b, cin, h, w],
        "offset_groups": groups_g,
        "mask": t.mask.is_some(),
        "seed": seed,
        "config_hash": engine.config.hash(),
        "simulator": "verilator",
        "verilator_version": version.text,
        "coforge_version": env!("CARGO_PKG_VERSION"),
    });
    let mut report = report;
    if let Some(a) = &axi_report {
        report["axi"] = serde_json::to_value(a)?;
    }
    out.write_json("report.json", &report)?;
    out.add("config.json", engine.config.resolved_json().into_bytes());
    out.commit()
        .with_context(|| format!("cannot write results to {}", args.out.display()))?;
    progress.step(&format!("wrote {}", args.out.display()));
    say!(
        "{}: DCNv2 {} x {} x {} x {} ({}), {} cycles (estimated {}){}, {} of {} elements differ",
        if c.bit_exact() {
            "BIT-EXACT"
        } else {
            "MISMATCH"
        },
        b,
        cin,
        h,
        w,
        if p.depthwise {
            "depthwise"
        } else {
            "full conv"
        },
        v.cycles,
        v.estimated_cycles,
        v.stce
            .map(|s| format!(
                " + {} STCE cycles (estimated {})",
                s.cycles, s.estimated_cycles
            ))
            .unwrap_or_default(),
        c.mismatches,
        c.elements
    );
    if let Some(a) = &axi_report {
        axi::print_and_check(a)?;
    }
    if let (Some(m), Some(idx)) = (&c.first_mismatch, v.first_index) {
        bail!(
            "first mismatch in y at [b, c, y, x] = {idx:?}: golden {} but RTL {}{}",
            m.golden,
            m.rtl,
            m.cycle
                .map(|c| format!(" (left the engine at cycle {c})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
