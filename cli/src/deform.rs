//! `coforge verify` on a `[deform]` engine (mode A: plain or CoDeNet): a seeded layer through
//! the engine in Verilator closed-loop co-simulation, compared bit for bit with the reference.

use anyhow::{bail, Context};
use coforge_driver::deform::{
    check, run_layer, seeded_layer, DilationFault, FirstMismatch, Pressure,
};
use coforge_driver::design::design_spec_of;
use coforge_generator::engines::deform::ports;
use coforge_sim::{BuildOptions, Verilator};
use serde::Serialize;

use ndarray::{Array3, Ix3};
use sparse_kernels::deform::codenet::CodenetBlock;

use crate::engine::{LoadedEngine, Progress};
use crate::golden::deform::{read, CodenetFiles};
use crate::output::OutputDir;
use crate::report::LaneAxiReport;
use crate::verify::VerifyArgs;
use crate::verify_axi_deform as axi;

/// `report.json` of a deform verification.
#[derive(Serialize)]
struct Report<'a> {
    bit_exact: bool,
    mismatches: usize,
    elements: usize,
    first_mismatch: Option<FirstMismatch>,
    /// The engine's error flag, with the output pixel whose dilation raised it.
    error: Option<DilationFault>,
    /// Measured: first pixel beat taken to last result taken, both counted.
    cycles: u64,
    estimated_cycles: u64,
    /// H * W * C / lanes: one output beat per cycle.
    ideal_cycles: u64,
    parameter_load_cycles: u64,
    macs: u64,
    utilization: f64,
    mode: &'a str,
    /// [H, W, C] or [H, W, Cin, Cout].
    shape: Vec<usize>,
    /// The seed of a seeded layer; null when the layer was read from files.
    seed: Option<u64>,
    /// ReLU in the quantizers (`--relu`).
    relu: bool,
    config_hash: String,
    verilator_version: Option<String>,
    coforge_version: &'static str,
    /// With `--axi`: the same layer through the engine's AXI wrapper.
    #[serde(skip_serializing_if = "Option::is_none")]
    axi: Option<LaneAxiReport>,
}

/// The layer given as files (`--x`, `--w`, `--dilation`, `--scale`, `--bias`, optional
/// `--pw-*` and `--relu`: the names `verify` writes and a campaign's failures use), or `None`
/// when none is given and the layer is seeded.
fn given_layer(
    args: &VerifyArgs,
    stride: usize,
) -> anyhow::Result<Option<(Array3<i8>, CodenetBlock)>> {
    let optional = [
        args.pw_w.is_some(),
        args.pw_scale.is_some(),
        args.pw_bias.is_some(),
        args.relu,
    ];
    let (Some(x), Some(w), Some(dilation), Some(scale), Some(bias)) =
        (&args.x, &args.w, &args.dilation, &args.scale, &args.bias)
    else {
        let any = [&args.x, &args.w, &args.dilation, &args.scale, &args.bias]
            .iter()
            .any(|f| f.is_some())
            || optional.contains(&true);
        if any {
            bail!(
                "a layer from files needs all of --x, --w, --dilation, --scale and --bias (and \
                 --pw-w, --pw-scale, --pw-bias for a 1x1 front); give them all, or none for a \
                 seeded layer"
            );
        }
        return Ok(None);
    };
    if args.shape.is_some() {
        bail!("--shape is for a seeded layer; a layer from files has the shape of its --x");
    }
    let block = CodenetFiles {
        w,
        dilation,
        scale,
        bias,
        relu: args.relu,
        pw_w: args.pw_w.as_deref(),
        pw_scale: args.pw_scale.as_deref(),
        pw_bias: args.pw_bias.as_deref(),
    }
    .read(stride)?;
    let x = read::<i8, Ix3>(x, "x", "int8 [H, W, C]")?;
    Ok(Some((x, block)))
}

fn layer_shape(dims: &[usize], pointwise: bool) -> anyhow::Result<(usize, usize, usize, usize)> {
    match (dims, pointwise) {
        (&[h, w, c], false) => Ok((h, w, c, c)),
        (&[h, w, cin, cout], true) => Ok((h, w, cin, cout)),
        (_, false) => bail!("--shape: this engine takes HxWxC (it has no 1x1 front)"),
        (_, true) => bail!("--shape: this engine has a 1x1 front; give HxWxCINxCOUT"),
    }
}

pub fn verify(
    args: &VerifyArgs,
    engine: &LoadedEngine,
    mut out: OutputDir,
    mut progress: Progress,
) -> anyhow::Result<()> {
    let cfg = engine
        .config
        .deform("`coforge verify --engine deform`")
        .with_context(|| format!("config {}", args.config.display()))?;
    if args.a.is_some() || args.b.is_some() || args.corrupt_golden.is_some() {
        bail!(
            "--a, --b and --corrupt-golden are for the tensor engine; a plain or CoDeNet engine \
             takes --shape and --seed, or the layer's files (--x, --w, --dilation, --scale, --bias)"
        );
    }
    if args.offset.is_some() || args.mask.is_some() {
        bail!("--offset and --mask are inputs of a DCNv2 engine; this engine is {:?} (mode A), which takes --dilation", cfg.mode);
    }
    let (x, block, seed) = match given_layer(args, cfg.stride as usize)? {
        Some((x, block)) => (x, block, None),
        None => {
            let default_shape: &[usize] = if cfg.has_pointwise() {
                &[12, 12, 10, 10]
            } else {
                &[12, 12, 10]
            };
            let dims = args.shape.as_ref().map_or(default_shape, |d| &d.0[..]);
            let shape = layer_shape(dims, cfg.has_pointwise())?;
            let (x, block) = seeded_layer(cfg, shape, args.seed);
            (x, block, Some(args.seed))
        }
    };
    let cout = block.depthwise.as_ref().map_or(0, |d| d.w.dim().0);
    let shape = (x.dim().0, x.dim().1, x.dim().2, cout);
    // Everything the engine cannot hold (an image wider than max_width, ...) fails here,
    // before anything is built or simulated.
    let layer = check(cfg, x.view(), &block)?;
    let mode = format!("{:?}", cfg.mode).to_lowercase();
    progress.step(&format!(
        "engine `{}` ({mode}, {} lanes), layer {}x{}x{}{}, {}",
        cfg.top,
        cfg.lanes,
        shape.0,
        shape.1,
        shape.2,
        if cfg.has_pointwise() {
            format!("x{}", shape.3)
        } else {
            String::new()
        },
        seed.map_or("from files".to_string(), |s| format!("seed {s}"))
    ));
    let spec = design_spec_of(&engine.rendered, &cfg.top, ports::CLOCK);
    let lib = Verilator::build(&spec, &BuildOptions::default())?;
    progress.step(if lib.cache_hit() {
        "Verilator model from the cache"
    } else {
        "Verilator build"
    });
    let mut model = lib.instantiate()?;
    let o = run_layer(&mut model, cfg, x.view(), &block, Pressure::default())?;
    progress.step(&format!("simulated {} cycles", o.cycles));
    // A layer the engine flags fails below with the bare run's fault; the wrapper is not run.
    let axi_report = if args.axi && o.fault.is_none() {
        let stalls = axi::stalls(args.stall_rate, args.seed);
        progress.add_steps(1);
        let mut wrapped = axi::wrapper_model(engine, &cfg.top)?;
        let (w, s) =
            coforge_driver::axi_deform::deform_layer(&mut wrapped, cfg, x.view(), &block, stalls)?;
        let differ = w.rtl.iter().zip(&o.rtl).filter(|(a, b)| a != b).count();
        let r = axi::report(
            &cfg.top,
            format!("layer {}x{}x{}", shape.0, shape.1, shape.3),
            stalls,
            (differ, o.cycles),
            &s,
        );
        progress.step(&format!(
            "through {}: {} cycles at stall rate {} ({} without the wrapper)",
            r.top, r.cycles, r.stall_rate, o.cycles
        ));
        Some(r)
    } else {
        None
    };

    out.add_npy("x.npy", x.view());
    let dw = block
        .depthwise
        .as_ref()
        .expect("check() refuses a layer without a depthwise stage");
    out.add_npy("dilation.npy", dw.dilation.view());
    out.add_npy("w.npy", dw.w.view());
    out.add_npy("scale.npy", dw.quant.scale.view());
    out.add_npy("bias.npy", dw.quant.bias.view());
    if let Some(pw) = &block.pointwise {
        out.add_npy("pw_w.npy", pw.w.view());
        out.add_npy("pw_scale.npy", pw.quant.scale.view());
        out.add_npy("pw_bias.npy", pw.quant.bias.view());
    }
    out.add_npy("golden.npy", o.golden.view());
    out.add_npy("rtl.npy", o.rtl.view());
    let ideal = u64::from(layer.height) * u64::from(layer.width) * u64::from(layer.groups);
    let report = Report {
        bit_exact: o.bit_exact(),
        mismatches: o.mismatches,
        elements: o.golden.len(),
        first_mismatch: o.first_mismatch.clone(),
        error: o.fault,
        cycles: o.cycles,
        estimated_cycles: o.estimated_cycles,
        ideal_cycles: ideal,
        parameter_load_cycles: o.load_cycles,
        macs: o.macs,
        utilization: o.utilization(cfg),
        mode: &mode,
        shape: if cfg.has_pointwise() {
            vec![shape.0, shape.1, shape.2, shape.3]
        } else {
            vec![shape.0, shape.1, shape.2]
        },
        seed,
        relu: args.relu,
        config_hash: engine.config.hash(),
        verilator_version: Verilator::version().map(|v| v.text).ok(),
        coforge_version: env!("CARGO_PKG_VERSION"),
        axi: axi_report,
    };
    out.write_json("report.json", &serde_json::to_value(&report)?)?;
    out.add("config.json", engine.config.resolved_json().into_bytes());
    out.commit()
        .with_context(|| format!("cannot write results to {}", args.out.display()))?;
    progress.step(&format!("wrote {}", args.out.display()));
    say!(
        "{}: {}x{}x{} on the {mode} engine, {} cycles (estimated {}, ideal {}), {} of {} elements differ",
        if o.bit_exact() { "BIT-EXACT" } else { "MISMATCH" },
        shape.0,
        shape.1,
        shape.3,
        o.cycles,
        o.estimated_cycles,
        ideal,
        o.mismatches,
        o.golden.len()
    );
    if let Some(a) = &report.axi {
        axi::print_and_check(a)?;
    }
    if let Some(fault) = &o.fault {
        bail!("{fault}");
    }
    if let Some(m) = &o.first_mismatch {
        bail!(
            "first mismatch in `y` at [oy, ox, c] = {:?}: golden {} but RTL {} (taken at cycle {})",
            m.index,
            m.golden,
            m.rtl,
            m.cycle
        );
    }
    Ok(())
}
