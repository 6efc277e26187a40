//! `coforge train`: BDWP training steps of one linear layer on the RTL engines (fp16 STCE, SORE,
//! WUVE) in co-simulation, every tensor of every step compared bit for bit with the reference.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use clap::Args;
use coforge_driver::compare::{compare, Comparison};
use coforge_driver::sat::{AxiMemory, SatSystem, UpdateInputs};
use coforge_generator::config::Config;
use coforge_sim::MemoryTiming;
use coforge_trainer::rtl::{
    cycles_per_pass, estimated_cycles_per_pass, Engine, RtlBackend, StepCheck,
};
use coforge_trainer::schedule::schedule_step;
use coforge_trainer::{pregenerate, train_step_state, Reference};
use half::f16;
use sparse_kernels::bdwp::{BdwpConfig, MaskBSource, DEFAULT_LAMBDA};
use sparse_kernels::nm::NmPattern;

use crate::budget;
use crate::engine::Progress;
use crate::golden::{expect_f16, expect_f32, stage_step};
use crate::junit::{self, Junit};
use crate::output::OutputDir;
mod network;

use crate::report::{LayerShape, TrainReport, TrainStepReport, COFORGE_VERSION};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training engine config (TOML): an fp16 [stce] and a [train] section (and [system] for
    /// `--net`)
    #[arg(long)]
    pub config: PathBuf,
    /// A network file (networks/*.toml): train the whole network on the system top (`sat_top`)
    /// with the scheduler's program, instead of one linear layer from --x --w --dy
    #[arg(long, conflicts_with_all = ["x", "w", "dy", "n", "m", "junit", "corrupt_golden"])]
    pub net: Option<PathBuf>,
    /// With --net: run this schedule.json (as `coforge schedule` wrote it, or edited by hand)
    /// instead of scheduling the network; it is checked (dependencies, the config's system,
    /// the network's layers) before anything is built
    #[arg(long, requires = "net", value_name = "FILE")]
    pub schedule: Option<PathBuf>,
    /// With --net: the seed of every input the host draws (X, dY per step and layer; W32 once)
    #[arg(long, default_value_t = 1, requires = "net")]
    pub seed: u64,
    /// With --net: a folder of per-layer .npy inputs that replace the seeded ones:
    /// `<layer>.x.npy` (float16, R x K: im2col rows for a conv), `<layer>.dy.npy` (float16,
    /// R x Cout), `<layer>.w32.npy` (float32, Cout x K); each is optional, and a given X or dY is
    /// used by every step
    #[arg(long, requires = "net", value_name = "DIR")]
    pub inputs: Option<PathBuf>,
    /// Activations X (float16, B x Cin)
    #[arg(long, required_unless_present = "net")]
    pub x: Option<PathBuf>,
    /// fp32 master weights W (float32, Cout x Cin)
    #[arg(long, required_unless_present = "net")]
    pub w: Option<PathBuf>,
    /// Output gradient dY (float16, B x Cout); every step takes the same dY
    #[arg(long, required_unless_present = "net")]
    pub dy: Option<PathBuf>,
    /// N of N:M: the engine's N, or N = M to train dense on the same hardware
    #[arg(long, required_unless_present = "net")]
    pub n: Option<usize>,
    /// M of N:M: the engine's M (or any M = N for dense training)
    #[arg(long, required_unless_present = "net")]
    pub m: Option<usize>,
    /// Learning rate (required without --net; 0.01 with it)
    #[arg(long, allow_negative_numbers = true, required_unless_present = "net")]
    pub lr: Option<f32>,
    /// Decay on pruned weights (SR-STE λ)
    #[arg(long = "lambda", default_value_t = DEFAULT_LAMBDA, allow_negative_numbers = true)]
    pub lambda: f32,
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
    /// Output folder: the last step's RTL tensors (names as `golden train-step`) and report.json
    /// (with --net: golden and rtl .npy of every tensor the step produced, for every layer and
    /// step; the first layer's dX only with `input_gradient = true` in the network file)
    #[arg(long)]
    pub out: PathBuf,
    /// Also write a JUnit XML report here (one test case per tensor and step), even when a
    /// comparison fails
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run the system top through its AXI wrapper (`sat_top_axi`): the program fetched from an
    /// AXI4 memory with the config's latency, a protocol checker on the port, control over
    /// AXI4-Lite; the bits must equal the bare top's (needs [system])
    #[arg(long)]
    pub axi: bool,
    /// With --axi: the probability per cycle that the AXI4 memory stalls each channel
    /// (0 <= R < 1)
    #[arg(long, requires = "axi", default_value_t = 0.0, value_name = "R",
          value_parser = crate::verify::parse_stall_rate)]
    pub stall_rate: f64,
    /// Fault injection: flip the lowest bit of X[ROW,COL] as the reference sees it (the engines get
    /// the true X), to prove that the comparison, the JUnit report and mismatch.svg catch and
    /// localize a difference
    #[arg(long, value_name = "ROW,COL", value_parser = crate::verify::parse_index, hide = true)]
    pub corrupt_golden: Option<[usize; 2]>,
}

/// The system top of `config`, bare or (with `--axi`) through its AXI wrapper.
fn new_system(config: &Config, args: &TrainArgs) -> anyhow::Result<SatSystem> {
    if !args.axi {
        return Ok(SatSystem::new(config)?);
    }
    Ok(SatSystem::new_axi(
        config,
        AxiMemory {
            stall_rate: args.stall_rate,
            seed: STALL_SEED,
        },
    )?)
}

/// The seed of the AXI4 memory's stalls with --axi (fixed, so that runs repeat).
const STALL_SEED: u64 = 1;

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if let Some(net) = args.net.clone() {
        return network::run(&args, &net);
    }
    let mut progress = Progress::new(3 + args.steps);
    ensure!(args.steps >= 1, "--steps must be at least 1");
    // clap requires these without --net.
    let missing = |flag: &str| anyhow::anyhow!("{flag} is required without --net");
    let (x_path, w_path, dy_path) = (
        args.x.clone().ok_or_else(|| missing("--x"))?,
        args.w.clone().ok_or_else(|| missing("--w"))?,
        args.dy.clone().ok_or_else(|| missing("--dy"))?,
    );
    let (arg_n, arg_m) = (
        args.n.ok_or_else(|| missing("--n"))?,
        args.m.ok_or_else(|| missing("--m"))?,
    );
    let lr = args.lr.ok_or_else(|| missing("--lr"))?;
    let mut out = OutputDir::create(&args.out)?;
    let config = Config::load(&args.config)?;
    ensure!(
        !args.axi || config.system.is_some(),
        "--axi runs the system top through its AXI wrapper, and {} has no [system] section \
         (see configs/sat-4x4-2of8.toml)",
        args.config.display()
    );
    let pattern = NmPattern::new(arg_n, arg_m)?;
    let stce_cfg = config
        .stce("`coforge train`")
        .with_context(|| format!("config {}", args.config.display()))?;
    let (hw_n, hw_m) = (stce_cfg.n as usize, stce_cfg.m as usize);
    if !pattern.is_dense() && (arg_n, arg_m) != (hw_n, hw_m) {
        bail!(
            "the engine in {} is built for {hw_n}:{hw_m}; train with --n {hw_n} --m {hw_m}, \
             or with N = M for dense training on the same hardware",
            args.config.display()
        );
    }
    let x = expect_f16(&x_path, "X, B x Cin")?;
    let w = expect_f32(&w_path, "W, Cout x Cin")?;
    let dy = expect_f16(&dy_path, "dY, B x Cout")?;
    let ((b, cin), cout) = (x.dim(), w.nrows());
    // Each step keeps the golden and the RTL tensors: activations and gradients (f32), the weights
    // in three forms, their gradient, and four masks per side.
    budget::Estimate::new(format!("training a {cout} x {cin} layer with batch {b}"))
        .tensor("activations and gradients", 4, &[b, cin + cout], 4)
        .tensor("weights, gradients and masks", 16, &[cout, cin], 4)
        .check()?;
    let mut x_golden = x.clone();
    if let Some([r, c]) = args.corrupt_golden {
        let v = x_golden.get_mut([r, c]).with_context(|| {
            format!(
                "--corrupt-golden {r},{c} is outside X, which is {:?}",
                x.dim()
            )
        })?;
        *v = f16::from_bits(v.to_bits() ^ 1);
    }
    let cfg = BdwpConfig {
        pattern,
        lr,
        lambda: args.lambda,
        mask_b_source: MaskBSource::ForwardMasked,
    };
    // The reference first, and its first step too: it validates shapes, NaNs, divisibility and
    // the learning rate with clear messages before any engine is built.
    let mut golden_state = pregenerate(&mut Reference, w.clone(), &cfg)
        .context("the reference rejects these inputs")?;
    let mut golden_first = Some(
        train_step_state(
            &mut Reference,
            &golden_state,
            x_golden.view(),
            dy.view(),
            &cfg,
        )
        .context("the reference rejects these inputs")?,
    );
    progress.step(&format!(
        "layer {cout} x {cin} (Cout x Cin), batch {b}, {} training",
        if pattern.is_dense() {
            "dense".to_string()
        } else {
            pattern.to_string()
        }
    ));
    let mut rtl = RtlBackend::new(&config)?;
    // With [system], FF, BP and WU also run on the system top, from DRAM, in one program.
    let mut system = match &config.system {
        Some(sys) => Some((
            new_system(&config, &args)?,
            MemoryTiming::fixed(sys.mem_latency, sys.mem_bytes_per_cycle),
        )),
        None => None,
    };
    progress.step(if system.is_some() {
        "engines built and loaded (STCE, SORE, WUVE, and the system top)"
    } else {
        "engines built and loaded (STCE, SORE, WUVE)"
    });
    let mut rtl_state = pregenerate(&mut rtl, w, &cfg)?;

    let train = config
        .train
        .as_ref()
        .context("RtlBackend::new checks for [train]")?;
    let top_of = |e: Option<Engine>| match e {
        Some(Engine::Stce) => stce_cfg.top.as_str(),
        Some(Engine::Sore) => train.sore_top.as_str(),
        Some(Engine::Wuve) => train.wuve_top.as_str(),
        None => "step_inputs",
    };
    let config_name = junit::config_name(&args.config);
    let mut suites = Vec::new();
    let mut first_diff = None;
    let mut system_mismatch: Option<String> = None;
    let system_top = config
        .system
        .as_ref()
        .map_or(String::new(), |s| s.top.clone());
    let mut steps = Vec::new();
    let mut last = None;
    for step in 0..args.steps {
        let step_started = Instant::now();
        let first_op = rtl.ops.len();
        let (g, g_next) = match golden_first.take() {
            Some(first) => first,
            None => train_step_state(
                &mut Reference,
                &golden_state,
                x_golden.view(),
                dy.view(),
                &cfg,
            )?,
        };
        let (r, r_next) = train_step_state(&mut rtl, &rtl_state, x.view(), dy.view(), &cfg)
            .with_context(|| format!("step {step} on RTL"))?;
        let check = StepCheck::of(&g, &r)?;
        let on_system = match &mut system {
            Some((sat, timing)) => {
                let run = sat
                    .linear_gemms(
                        x.view(),
                        dy.view(),
                        &rtl_state.ff_weights,
                        &rtl_state.bp_weights,
                        UpdateInputs {
                            w32: &rtl_state.w32,
                            mask_f: &rtl_state.mask_f,
                            lr: cfg.lr,
                            lambda: cfg.lambda,
                        },
                        *timing,
                    )
                    .with_context(|| format!("step {step} on the system top"))?;
                let compared = vec![
                    compare("system.y", g.y.view(), run.y.view())?,
                    compare("system.dx", g.dx.view(), run.dx.view())?,
                    compare("system.dw", g.dw.view(), run.dw.view())?,
                    compare("system.w32", g.w32.view(), run.w32.view())?,
                    compare("system.w16", g.next.w16.view(), run.w16.view())?,
                ];
                let mut compared = compared;
                if let Some(next) = &run.next {
                    compared.push(compare(
                        "system.mask_f",
                        g.next.mask_f.view(),
                        next.mask_f.view(),
                    )?);
                }
                Some((compared, run.stats))
            }
            None => None,
        };
        let class = format!("train.{config_name}.step{step}");
        suites.push(junit::Suite {
            name: class.clone(),
            time: step_started.elapsed().as_secs_f64(),
            properties: Vec::new(),
            cases: check
                .comparisons
                .iter()
                .map(|(e, c)| {
                    junit::Case::from_comparison(&class, &format!("{}.{}", top_of(*e), c.tensor), c)
                })
                .collect(),
        });
        if first_diff.is_none() {
            first_diff = check.first_diff;
        }
        let mut comparisons: Vec<Comparison> =
            check.comparisons.into_iter().map(|(_, c)| c).collect();
        let system_stats = on_system.map(|(compared, stats)| {
            for c in &compared {
                let name = format!("{}.{}", system_top, &c.tensor["system.".len()..]);
                suites
                    .last_mut()
                    .expect("this step's suite")
                    .cases
                    .push(junit::Case::from_comparison(&class, &name, c));
                if system_mismatch.is_none() {
                    system_mismatch = c.first_mismatch.as_ref().map(|m| m.to_string());
                }
            }
            comparisons.extend(compared);
            stats
        });
        let exact = comparisons.iter().all(|c| c.bit_exact());
        let ops = &rtl.ops[first_op..];
        let schedule = schedule_step(ops, stce_cfg.rows as usize);
        let on_top = system_stats.as_ref().map_or(String::new(), |s| {
            format!(
                "; system top: FF, BP, WU, update and (sparse) M_F pre-generation in {} cycles \
                 measured ({} estimated)",
                s.cycles, s.estimated_cycles
            )
        });
        progress.step(&format!(
            "step {step}: {} ({} STCE cycles, step {} cycles with update and pruning \
             overlapped{on_top})",
            if exact { "bit-exact" } else { "MISMATCH" },
            schedule.tensor_cycles,
            schedule.step_cycles
        ));
        steps.push(TrainStepReport {
            step,
            bit_exact: exact,
            comparisons,
            cycles: cycles_per_pass(ops),
            estimated_cycles: estimated_cycles_per_pass(ops),
            schedule,
            step_cycles_measured: system_stats.as_ref().map(|s| s.cycles),
            step_cycles_estimated: system_stats.as_ref().map(|s| s.estimated_cycles),
            system_passes: system_stats.as_ref().map(|_| {
                let mut passes = vec!["ff", "bp", "wu", "update"];
                if !pattern.is_dense() {
                    passes.push("prune_f");
                }
                passes
            }),
            system: system_stats,
        });
        (golden_state, rtl_state) = (g_next, r_next);
        last = Some(r);
    }
    let last = last.expect("at least one step");

    let (n, m) = (pattern.n() as u64, pattern.m() as u64);
    let gemm = (b * cin * cout) as u64;
    let runs = args.steps as u64;
    let report = TrainReport {
        bit_exact: steps.iter().all(|s| s.bit_exact),
        steps,
        pattern: format!("{arg_n}:{arg_m}"),
        shape: LayerShape {
            batch: b as u64,
            cin: cin as u64,
            cout: cout as u64,
        },
        dense_equivalent_macs: 3 * gemm * runs,
        effective_macs: (2 * gemm * n / m + gemm) * runs,
        cycles: rtl.cycles_per_pass(),
        estimated_cycles: estimated_cycles_per_pass(&rtl.ops),
        lr,
        lambda: args.lambda,
        config_hash: config.hash(),
        verilator_version: rtl.verilator_version.clone(),
        coforge_version: COFORGE_VERSION,
    };
    stage_step(&mut out, &last);
    out.write_json("report.json", &report)?;
    out.add("config.json", config.resolved_json().into_bytes());
    if let Some((map, first)) = &first_diff {
        out.add("mismatch.svg", map.svg(first, None).into_bytes());
    }
    out.commit()
        .with_context(|| format!("cannot write results to {}", args.out.display()))?;
    progress.step(&format!("wrote {}", args.out.display()));
    if let Some(path) = &args.junit {
        let properties = vec![
            ("config".to_string(), args.config.display().to_string()),
            ("config_hash".to_string(), config.hash()),
            ("pattern".to_string(), format!("{arg_n}:{arg_m}")),
            (
                "inputs".to_string(),
                format!(
                    "x={} w={} dy={}",
                    x_path.display(),
                    w_path.display(),
                    dy_path.display()
                ),
            ),
            (
                "verilator_version".to_string(),
                rtl.verilator_version.clone(),
            ),
            ("replay".to_string(), junit::command_line()),
        ];
        for suite in &mut suites {
            suite.properties = properties.clone();
        }
        Junit {
            name: "coforge train".into(),
            suites,
        }
        .write(path)?;
    }
    if let Some((_, first)) = &first_diff {
        bail!(
            "RTL and reference differ; {first} (see mismatch.svg in {})",
            args.out.display()
        );
    }
    if let Some(first) = &system_mismatch {
        bail!("the system top and the reference differ; {first}");
    }
    say!(
        "BIT-EXACT: {} step(s), every tensor (y, dx, dw, w32, w16, mask_f, mask_b) equal to the reference",
        args.steps
    );
    Ok(())
}
