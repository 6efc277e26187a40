//! `coforge train --net`: whole-network BDWP training steps on the system top. The scheduler
//! writes the step's program and memory map; the harness (`coforge_driver::sat::network`)
//! prepares each layer's inputs in DRAM, runs the program in Verilator and compares every
//! tensor of every layer with the reference, step after step. A tensor the step does not
//! produce (the first layer's dX, unless the network file says `input_gradient = true`) is
//! named in `report.json` (`not_computed`), and neither compared nor written.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, ensure, Context};
use coforge_driver::mismatch_map::DiffMap;
use coforge_driver::sat::network::{
    check_schedule, pass_cycles, seeded_f16, seeded_x, NetworkTrainer, TensorPair,
};
use coforge_generator::config::Config;
use coforge_generator::engines::sat::lines::Geometry;
use coforge_scheduler::{schedule_network, Options, Schedule};
use coforge_sim::MemoryTiming;
use half::f16;
use ndarray::Array2;

use super::TrainArgs;
use crate::budget;
use crate::engine::Progress;
use crate::golden::{expect_f16, expect_f32};
use crate::output::OutputDir;
use crate::report::{NetStepReport, NetTrainReport, COFORGE_VERSION};

/// Default learning rate of `--net` runs.
const LR: f32 = 0.01;

/// The per-layer `.npy` inputs of `--inputs DIR`, checked against the layers.
struct Given {
    x: Option<Array2<f16>>,
    dy: Option<Array2<f16>>,
    w32: Option<Array2<f32>>,
}

fn read_inputs(dir: &Path, layers: &[coforge_scheduler::Layer]) -> anyhow::Result<Vec<Given>> {
    ensure!(
        dir.is_dir(),
        "--inputs {} is not a folder; give a folder of <layer>.x.npy, <layer>.dy.npy and \
         <layer>.w32.npy files",
        dir.display()
    );
    let mut expected = Vec::new();
    let mut given = Vec::new();
    for l in layers {
        let path = |t: &str| dir.join(format!("{}.{t}.npy", l.name));
        expected.extend(["x", "dy", "w32"].map(|t| format!("{}.{t}.npy", l.name)));
        let shape_ok = |what: &str, got: (usize, usize), want: (usize, usize)| {
            ensure!(
                got == want,
                "{} is {} x {}, but layer `{}` needs {what} of {} x {}",
                path(what).display(),
                got.0,
                got.1,
                l.name,
                want.0,
                want.1
            );
            Ok(())
        };
        let x = match path("x") {
            p if p.exists() => Some(expect_f16(&p, "X, R x K")?),
            _ => None,
        };
        let dy = match path("dy") {
            p if p.exists() => Some(expect_f16(&p, "dY, R x Cout")?),
            _ => None,
        };
        let w32 = match path("w32") {
            p if p.exists() => Some(expect_f32(&p, "W32, Cout x K")?),
            _ => None,
        };
        let finite = |what: &str, e: Result<(), sparse_kernels::KernelError>| {
            e.with_context(|| format!("{}: NaN is not a valid input", path(what).display()))
        };
        if let Some(a) = &x {
            shape_ok("x", a.dim(), (l.r, l.k))?;
            finite("x", sparse_kernels::nm::reject_nan(a.view(), "x"))?;
        }
        if let Some(a) = &dy {
            shape_ok("dy", a.dim(), (l.r, l.cout))?;
            finite("dy", sparse_kernels::nm::reject_nan(a.view(), "dy"))?;
        }
        if let Some(a) = &w32 {
            shape_ok("w32", a.dim(), (l.cout, l.k))?;
            finite("w32", sparse_kernels::nm::reject_nan(a.view(), "w32"))?;
        }
        given.push(Given { x, dy, w32 });
    }
    let mut unknown: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".npy") && !expected.contains(n))
        .collect();
    unknown.sort();
    if let Some(first) = unknown.first() {
        bail!(
            "--inputs {}: `{first}` is not an input of this network; the files are \
             <layer>.x.npy, <layer>.dy.npy and <layer>.w32.npy for the layers {}",
            dir.display(),
            layers
                .iter()
                .map(|l| format!("`{}`", l.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(given)
}

pub(super) fn run(args: &TrainArgs, net: &Path) -> anyhow::Result<()> {
    ensure!(args.steps >= 1, "--steps must be at least 1");
    let lr = args.lr.unwrap_or(LR);
    ensure!(
        lr.is_finite() && args.lambda.is_finite(),
        "--lr and --lambda must be finite numbers"
    );
    let mut progress = Progress::new(3 + args.steps);
    let mut out = OutputDir::create(&args.out)?;
    let config = Config::load(&args.config)?;
    let mut schedule = schedule_network(net, &config, &args.config, Options::default())?;
    if let Some(path) = &args.schedule {
        let given = Schedule::load(path).map_err(anyhow::Error::msg)?;
        ensure!(
            given.hardware == schedule.hardware,
            "{} was scheduled for another system than the one of {}; schedule it again with              `coforge schedule --net {} --config {}`",
            path.display(),
            args.config.display(),
            net.display(),
            args.config.display()
        );
        ensure!(
            given.layers == schedule.layers && given.batch == schedule.batch,
            "{} holds the layers of `{}`, not those of {}; give the network it was scheduled for",
            path.display(),
            given.network,
            net.display()
        );
        schedule = given;
    }
    let (Some(sys), Some(geo)) = (config.system.clone(), Geometry::of(&config)) else {
        bail!("the config has no [system] section (the scheduler checks this)");
    };
    check_schedule(&schedule, &geo, &sys).with_context(|| {
        format!(
            "the program of `{}` cannot run on the system of {}",
            net.display(),
            args.config.display()
        )
    })?;
    let given = match &args.inputs {
        Some(dir) => read_inputs(dir, &schedule.layers)?,
        None => schedule
            .layers
            .iter()
            .map(|_| Given {
                x: None,
                dy: None,
                w32: None,
            })
            .collect(),
    };
    // The DRAM image, and per layer the golden and RTL tensors of a step (about 24 copies of
    // its largest matrices, inputs and padded reference copies included).
    let beats: u64 = schedule
        .memory_map
        .iter()
        .map(|r| r.addr + r.lines * r.beats_per_line)
        .max()
        .unwrap_or(0);
    let mut estimate = budget::Estimate::new(format!("training `{}`", schedule.network)).tensor(
        "DRAM image",
        2,
        &[beats as usize, geo.mem_bits as usize / 8],
        1,
    );
    for l in &schedule.layers {
        estimate = estimate.tensor(&l.name, 24, &[l.r.max(l.cout), l.k.max(l.cout)], 4);
    }
    estimate.check()?;
    let w32: Vec<Array2<f32>> = schedule
        .layers
        .iter()
        .zip(&given)
        .enumerate()
        .map(|(i, (l, g))| {
            g.w32.clone().unwrap_or_else(|| {
                seeded_f16(l.cout, l.k, args.seed, 3, 0, i as u64).mapv(|v| v.to_f32() * 0.5)
            })
        })
        .collect();
    let mut trainer = NetworkTrainer::new(&schedule, w32, lr, args.lambda)?;
    progress.step(&format!(
        "`{}`: {} layers, {} instructions, {} cycles per step estimated by the scheduler",
        schedule.network,
        schedule.layers.len(),
        schedule.instructions.len(),
        schedule.step_cycles_estimated
    ));
    let mut system = super::new_system(&config, args)?;
    let timing = MemoryTiming::fixed(sys.mem_latency, sys.mem_bytes_per_cycle);
    progress.step("system top built and loaded");
    let mut steps = Vec::new();
    let mut first_mismatch = None;
    for step in 0..args.steps {
        let inputs = schedule
            .layers
            .iter()
            .zip(&given)
            .enumerate()
            .map(|(i, (l, g))| {
                let (s, i) = (step as u64, i as u64);
                (
                    g.x.clone()
                        .unwrap_or_else(|| seeded_x(l, schedule.batch, args.seed, s, i)),
                    g.dy.clone()
                        .unwrap_or_else(|| seeded_f16(l.r, l.cout, args.seed, 2, s, i)),
                )
            })
            .collect();
        let r = trainer
            .step(&mut system, inputs, timing)
            .with_context(|| format!("step {step} on the system top"))?;
        for c in &r.checked {
            let name = format!("step{step}.{}.{}", c.layer, c.tensor);
            match &c.pair {
                TensorPair::F32(g, t) => {
                    out.add_npy(&format!("{name}.golden.npy"), g.view());
                    out.add_npy(&format!("{name}.rtl.npy"), t.view());
                }
                TensorPair::F16(g, t) => {
                    out.add_npy(&format!("{name}.golden.npy"), g.view());
                    out.add_npy(&format!("{name}.rtl.npy"), t.view());
                }
                TensorPair::U8(g, t) => {
                    out.add_npy(&format!("{name}.golden.npy"), g.view());
                    out.add_npy(&format!("{name}.rtl.npy"), t.view());
                }
            }
        }
        if first_mismatch.is_none() {
            if let Some(bad) = r.first_mismatch() {
                let first = bad
                    .comparison
                    .first_mismatch
                    .clone()
                    .context("a differing comparison names its first mismatch")?;
                let map = match &bad.pair {
                    TensorPair::F32(g, t) => DiffMap::of(&first.tensor, g.view(), t.view()),
                    TensorPair::F16(g, t) => DiffMap::of(&first.tensor, g.view(), t.view()),
                    TensorPair::U8(g, t) => DiffMap::of(&first.tensor, g.view(), t.view()),
                };
                out.add("mismatch.svg", map.svg(&first, None).into_bytes());
                first_mismatch = Some(format!("step {step}: {first}"));
            }
        }
        let stats = &r.run.stats;
        let passes = pass_cycles(&schedule, &r.run.timeline);
        let through = stats.axi.as_ref().map_or(String::new(), |a| {
            format!(
                "; through the AXI wrapper at stall rate {}: {} cycles from START to DONE with \
                 the program fetch",
                a.stall_rate, a.wrapper_cycles
            )
        });
        progress.step(&format!(
            "step {step}: {}, {} cycles measured ({} estimated by the scheduler){through}",
            if r.bit_exact() {
                "bit-exact"
            } else {
                "MISMATCH"
            },
            stats.cycles,
            schedule.step_cycles_estimated
        ));
        steps.push(NetStepReport {
            step,
            bit_exact: r.bit_exact(),
            step_cycles_measured: stats.cycles,
            step_cycles_estimated: schedule.step_cycles_estimated,
            busy_measured: stats.busy.clone(),
            read_beats: stats.read_beats,
            written_beats: stats.written_beats,
            axi: stats.axi.clone(),
            passes,
            comparisons: r.checked.iter().map(|c| c.comparison.clone()).collect(),
        });
    }
    let report = NetTrainReport {
        bit_exact: steps.iter().all(|s| s.bit_exact),
        network: schedule.network.clone(),
        batch: schedule.batch,
        pattern: format!("{}:{}", geo.n, geo.m),
        layers: schedule
            .layers
            .iter()
            .map(|l| (l.name.clone(), [l.r, l.k, l.cout]))
            .collect::<BTreeMap<_, _>>(),
        input_gradient: schedule.layers.first().is_some_and(|l| l.bp),
        not_computed: trainer
            .dims
            .iter()
            .flat_map(|l| {
                l.not_computed()
                    .into_iter()
                    .map(|t| format!("{}.{t}", l.name))
            })
            .collect(),
        seed: args.seed,
        lr,
        lambda: args.lambda,
        mem_latency: sys.mem_latency,
        mem_bytes_per_cycle: sys.mem_bytes_per_cycle,
        instructions: schedule.instructions.len(),
        steps,
        config_hash: config.hash(),
        coforge_version: COFORGE_VERSION,
    };
    out.write_json("report.json", &report)?;
    out.write_json("schedule.json", &schedule)?;
    out.add("config.json", config.resolved_json().into_bytes());
    out.commit()
        .with_context(|| format!("cannot write results to {}", args.out.display()))?;
    progress.step(&format!("wrote {}", args.out.display()));
    if let Some(first) = first_mismatch {
        bail!(
            "the system top and the reference differ; {first} (see mismatch.svg in {})",
            args.out.display()
        );
    }
    say!(
        "BIT-EXACT: {} step(s) of `{}`, every tensor of every layer equal to the reference",
        args.steps,
        schedule.network
    );
    Ok(())
}
