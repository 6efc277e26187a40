//! `coforge verify`: one GEMM on the generated engine, compared bit for bit with the reference.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use coforge_driver::axi::{self, Stalls};
use coforge_driver::compare::Bits;
use coforge_driver::design::design_spec_of;
use coforge_driver::mismatch_map::DiffMap;
use coforge_driver::stce::GemmJob;
use coforge_driver::verify::{
    check_int4_weights, fp16_gemm, fp16_gemm_with, int8_gemm, int8_gemm_with, reject_nan_operands,
    CorruptGolden, Mode, Outcome, Raw,
};
use coforge_generator::config::StceConfig;
use coforge_generator::config::{DeformMode, Dtype};
use coforge_generator::engines::axi as axi_rtl;
use coforge_generator::engines::stce::estimated_cycles;
use coforge_sim::{BuildOptions, Verilator};
use half::f16;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::budget;
use crate::engine::{self, Progress, SimArgs};
use crate::junit::{self, Junit};
use crate::output::OutputDir;
use crate::report::{AxiReport, VerifyReport, COFORGE_VERSION};
use crate::tensor_io::{read_npy, NpyElement, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// The engine's native mode: N:M sparse when it has one
    Native,
    Sparse,
    Dense,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    Stce,
    Deform,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Engine config (TOML)
    #[arg(long)]
    pub config: PathBuf,
    /// Output folder for a.npy, b.npy, golden.npy, rtl.npy, report.json, config.json
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the random operands (ChaCha8)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Shape of the seeded work: a GEMM MxKxN (default 16x64x16); on a [deform] engine HxWxC,
    /// or HxWxCINxCOUT with the 1x1 front (default 12x12x10 or 12x12x10x10)
    #[arg(long, value_parser = parse_dims)]
    pub shape: Option<Dims>,
    /// Which engine of a config that has both a [stce] and a [deform] section
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    /// Deformable engine: activations; plain/CoDeNet int8 [H, W, C] (needs --w, --dilation,
    /// --scale, --bias), DCNv2 int8 [B, Cin, H, W] (needs --offset and --w)
    #[arg(long)]
    pub x: Option<std::path::PathBuf>,
    /// DCNv2 engine: offsets in Q.f (the config's frac_bits), int16 or int32 [B, 2*G*K, Hout, Wout]
    #[arg(long)]
    pub offset: Option<std::path::PathBuf>,
    /// DCNv2 engine: modulation mask in Q0.g (the config's mask_bits), int16 or int32
    /// [B, G*K, Hout, Wout]
    #[arg(long)]
    pub mask: Option<std::path::PathBuf>,
    /// Deformable engine: weights; plain/CoDeNet int8 [C, 3, 3] holding int4 values, DCNv2 int8
    /// [Cout, Cin/groups, k, k]
    #[arg(long)]
    pub w: Option<std::path::PathBuf>,
    /// Plain/CoDeNet engine: the dilation map, uint8 [Hout, Wout]
    #[arg(long)]
    pub dilation: Option<PathBuf>,
    /// Plain/CoDeNet engine: depthwise quantizer scale, int16 [C]
    #[arg(long)]
    pub scale: Option<PathBuf>,
    /// Plain/CoDeNet engine: depthwise quantizer bias, int16 [C]
    #[arg(long)]
    pub bias: Option<PathBuf>,
    /// Plain/CoDeNet engine: ReLU in both quantizers
    #[arg(long)]
    pub relu: bool,
    /// CoDeNet engine with a 1x1 front: its weights, int8 [Cout, Cin] holding int4 values
    #[arg(long)]
    pub pw_w: Option<PathBuf>,
    /// CoDeNet engine with a 1x1 front: its scale, int16 [Cout]
    #[arg(long)]
    pub pw_scale: Option<PathBuf>,
    /// CoDeNet engine with a 1x1 front: its bias, int16 [Cout]
    #[arg(long)]
    pub pw_bias: Option<PathBuf>,
    /// Activations A (M x K; int8 or float16, as the engine's dtype); needs --b
    #[arg(long, requires = "b")]
    pub a: Option<PathBuf>,
    /// Weights B (K x N, same dtype as A), pruned N:M along K before use; needs --a
    #[arg(long, requires = "a")]
    pub b: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "native")]
    pub mode: ModeArg,
    #[command(flatten)]
    pub sim: SimArgs,
    /// Also run the same GEMM through the engine's AXI wrapper (`<top>_axi`) in closed loop
    /// with AXI bus models (Verilator), and require the same bits as the bare engine
    #[arg(long)]
    pub axi: bool,
    /// With --axi: the probability, per cycle, that the AXI4-Stream source holds TVALID low
    /// and the sink holds TREADY low (0 <= R < 1)
    #[arg(long, value_name = "R", requires = "axi", value_parser = parse_stall_rate)]
    pub stall_rate: Option<f64>,
    /// Also write a JUnit XML report here (one test case per compared tensor), even when the
    /// comparison fails
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Fault injection: flip the lowest bit of A[ROW,COL] as the reference sees it, to prove
    /// that the comparison catches and localizes a difference
    #[arg(long, value_name = "ROW,COL", value_parser = parse_index, hide = true)]
    pub corrupt_golden: Option<[usize; 2]>,
}

impl VerifyArgs {
    /// The deformable engines' input flags that were given (for the rejection of flags that do
    /// not apply to the engine being verified).
    pub fn deformable_inputs(&self) -> Vec<&'static str> {
        [
            ("x", self.x.is_some()),
            ("w", self.w.is_some()),
            ("offset", self.offset.is_some()),
            ("mask", self.mask.is_some()),
            ("dilation", self.dilation.is_some()),
            ("scale", self.scale.is_some()),
            ("bias", self.bias.is_some()),
            ("relu", self.relu),
            ("pw-w", self.pw_w.is_some()),
            ("pw-scale", self.pw_scale.is_some()),
            ("pw-bias", self.pw_bias.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }
}

pub(crate) fn parse_stall_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..1.0).contains(&r) => Ok(r),
        Ok(r) => Err(format!(
            "{r} is outside 0 <= R < 1 (a stall probability per cycle)"
        )),
        Err(_) => Err(format!(
            "`{s}` is not a number; give a probability such as 0.3"
        )),
    }
}

/// A shape given as sizes joined by `x`: three (a GEMM, or an image HxWxC) or four (HxWxCINxCOUT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dims(pub Vec<usize>);

fn parse_dims(s: &str) -> Result<Dims, String> {
    let dims: Vec<usize> = s
        .split('x')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("`{s}` is not MxKxN, HxWxC or HxWxCINxCOUT (for example 16x64x16)"))?;
    if !(3..=4).contains(&dims.len()) || dims.contains(&0) {
        return Err(format!(
            "`{s}` is not MxKxN, HxWxC or HxWxCINxCOUT with positive sizes"
        ));
    }
    Ok(Dims(dims))
}

pub fn parse_index(s: &str) -> Result<[usize; 2], String> {
    let (a, b) = s.split_once(',').ok_or("expected ROW,COL")?;
    Ok([
        a.trim().parse().map_err(|_| format!("bad row `{a}`"))?,
        b.trim().parse().map_err(|_| format!("bad column `{b}`"))?,
    ])
}

/// The operands, in the engine's number format.
enum Operands {
    Int8(Array2<i8>, Array2<i8>),
    Fp16(Array2<f16>, Array2<f16>),
}

impl Operands {
    fn read(dtype: Dtype, pa: &PathBuf, pb: &PathBuf) -> anyhow::Result<Operands> {
        let wrong = |role: &str, path: &PathBuf, t: &Tensor, want: &str, np: &str| {
            anyhow::anyhow!(
                "{role} {} is {}, but this engine takes {want}; convert it (numpy: x.astype(np.{np}))",
                path.display(),
                t.dtype().name()
            )
        };
        let (ta, tb) = (read_npy(pa)?, read_npy(pb)?);
        Ok(match (dtype, ta, tb) {
            (Dtype::Int8, Tensor::I8(a), Tensor::I8(b)) => Operands::Int8(a, b),
            (Dtype::Fp16, Tensor::F16(a), Tensor::F16(b)) => Operands::Fp16(a, b),
            (Dtype::Int8, Tensor::I8(_), t) => return Err(wrong("B", pb, &t, "int8", "int8")),
            (Dtype::Int8, t, _) => return Err(wrong("A", pa, &t, "int8", "int8")),
            (Dtype::Fp16, Tensor::F16(_), t) => {
                return Err(wrong("B", pb, &t, "float16", "float16"))
            }
            (Dtype::Fp16, t, _) => return Err(wrong("A", pa, &t, "float16", "float16")),
        })
    }

    /// Seeded operands (ChaCha8): uniform int8, or fp16 uniform in [-1, 1).
    fn random(
        dtype: Dtype,
        weight_bits: u32,
        (m, k, n): (usize, usize, usize),
        seed: u64,
    ) -> Operands {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        match dtype {
            Dtype::Int8 => {
                let a = Array2::from_shape_simple_fn((m, k), || rng.random::<i8>());
                let mut b = Array2::from_shape_simple_fn((k, n), || rng.random::<i8>());
                if weight_bits == 4 {
                    b.mapv_inplace(|v| v >> 4);
                }
                Operands::Int8(a, b)
            }
            Dtype::Fp16 => {
                let mut f = || f16::from_f32(rng.random_range(-1.0f32..1.0));
                let a = Array2::from_shape_simple_fn((m, k), &mut f);
                let b = Array2::from_shape_simple_fn((k, n), &mut f);
                Operands::Fp16(a, b)
            }
        }
    }

    fn dims(&self) -> ((usize, usize), (usize, usize)) {
        match self {
            Operands::Int8(a, b) => (a.dim(), b.dim()),
            Operands::Fp16(a, b) => (a.dim(), b.dim()),
        }
    }
}

/// The tensors of a finished run, staged for writing, and `mismatch.svg` when they differ (with
/// the engine's array tiles, `tile`, drawn).
fn stage<A: NpyElement, W: NpyElement, C: NpyElement + Bits>(
    out: &mut OutputDir,
    a: &Array2<A>,
    o: &Outcome<W, C>,
    tile: (usize, usize),
) {
    out.add_npy("a.npy", a.view());
    out.add_npy("b.npy", o.b_fed.view());
    out.add_npy("golden.npy", o.golden.view());
    out.add_npy("rtl.npy", o.rtl.view());
    if let Some(first) = &o.comparison.first_mismatch {
        let map = DiffMap::of(&o.comparison.tensor, o.golden.view(), o.rtl.view());
        out.add("mismatch.svg", map.svg(first, Some(tile)).into_bytes());
    }
}

/// The memory a GEMM of `m x k x n` takes, before anything is allocated: the operands and their
/// padded, pruned and raw copies, the results, then the cycle-by-cycle stimulus and trace (every
/// port's words on every cycle of the cycle model). Checked against the memory budget.
fn check_memory(
    engine: &engine::LoadedEngine,
    cfg: &coforge_generator::config::StceConfig,
    (m, k, n): (usize, usize, usize),
    mode: Mode,
) -> anyhow::Result<()> {
    let elem = match cfg.dtype {
        Dtype::Int8 => 1,
        Dtype::Fp16 => 2,
    };
    let step = match mode {
        Mode::Sparse => cfg.m,
        Mode::Dense => cfg.n,
    } as usize;
    let kp = k.div_ceil(step).saturating_mul(step);
    let what = format!("verify of a {m} x {k} x {n} GEMM");
    let data = budget::Estimate::new(&what)
        .tensor("A and its padded copies", 3, &[m, kp], elem)
        .tensor("A as engine words", 1, &[m, kp], 4)
        .tensor("B and its padded and pruned copies", 4, &[kp, n], elem)
        .tensor("B as engine words", 2, &[kp, n], 4)
        .tensor("the results and their read-out cycles", 5, &[m, n], 4);
    data.check()?;
    // Now every size is bounded, so the cycle model cannot overflow.
    let cycles = estimated_cycles(cfg, m, kp, n, mode == Mode::Sparse);
    let words: usize = engine.spec.ports.iter().map(|p| p.words()).sum();
    data.tensor(
        "the cycle-by-cycle stimulus and trace",
        1,
        &[usize::try_from(cycles).unwrap_or(usize::MAX), words],
        4,
    )
    .check()
}

pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut progress = Progress::new(4);
    let mut out = OutputDir::create(&args.out)?;
    let engine = engine::load(&args.config)?;
    let on_deform = match args.engine {
        Some(EngineArg::Deform) => true,
        Some(EngineArg::Stce) => false,
        None => engine.config.stce.is_none(),
    };
    if on_deform {
        if let Some(d) = engine
            .config
            .deform
            .as_ref()
            .filter(|d| d.mode == DeformMode::Dcnv2)
        {
            return crate::verify_dcnv2::run(&args, &engine, d, out, progress);
        }
        return crate::deform::verify(&args, &engine, out, progress);
    }
    if let Some(flag) = args.deformable_inputs().first() {
        bail!("--{flag} is an input of a deformable engine; a GEMM on the tensor engine takes --a and --b");
    }
    let cfg = engine
        .config
        .stce("`coforge verify`")
        .with_context(|| format!("config {}", args.config.display()))?;
    let shape = match args.shape.as_ref().map(|d| &d.0[..]) {
        None => (16, 64, 16),
        Some(&[m, k, n]) => (m, k, n),
        Some(_) => bail!("--shape: a GEMM on the tensor engine is MxKxN (three sizes)"),
    };
    let mode = match args.mode {
        ModeArg::Native => Mode::native(cfg),
        ModeArg::Sparse => {
            if !cfg.has_sparse_mode() {
                bail!("--mode sparse needs an engine with n < m and sparse = true");
            }
            Mode::Sparse
        }
        ModeArg::Dense => Mode::Dense,
    };
    if args.sim.waves.is_some() && args.sim.simulator != engine::SimulatorArg::Verilator {
        bail!("--waves is supported with --simulator verilator only");
    }
    if args.axi && args.sim.simulator != engine::SimulatorArg::Verilator {
        bail!("--axi runs closed loop, which needs --simulator verilator");
    }
    if args.axi && cfg.fp_pipeline {
        bail!(
            "--axi: an STCE with fp_pipeline = true has no AXI wrapper (its stalls would move \
             groups into other slots of the interleaved stream); run without --axi"
        );
    }
    let (operands, seed) = match (&args.a, &args.b) {
        (Some(pa), Some(pb)) => (Operands::read(cfg.dtype, pa, pb)?, None),
        _ => {
            check_memory(&engine, cfg, shape, mode)?;
            (
                Operands::random(cfg.dtype, cfg.weight_bits, shape, args.seed),
                Some(args.seed),
            )
        }
    };
    let ((m, k), (kb, n)) = operands.dims();
    if k != kb {
        bail!("A is {m} x {k} but B is {kb} x {n}: the inner dimensions must match");
    }
    if m == 0 || k == 0 || n == 0 {
        bail!("A is {m} x {k} and B is {kb} x {n}: a GEMM needs M, K and N of at least 1");
    }
    check_memory(&engine, cfg, (m, k, n), mode)?;
    // Every operand check that does not need the engine, before the engine is built.
    match &operands {
        Operands::Int8(_, b) if cfg.weight_bits == 4 => check_int4_weights(b.view())?,
        Operands::Fp16(a, b) => reject_nan_operands(a.view(), b.view())?,
        Operands::Int8(..) => {}
    }
    if let Some([row, col]) = args.corrupt_golden {
        if row >= m || col >= k {
            bail!("--corrupt-golden {row},{col} is outside A ({m} x {k})");
        }
    }
    progress.step(&format!(
        "engine `{}` ({} x {}, {}:{}), GEMM {} x {} x {} in {:?} mode",
        cfg.top, cfg.rows, cfg.cols, cfg.n, cfg.m, m, k, n, mode
    ));
    let mut ready = engine::build_simulator(&engine.spec, &args.sim, &out, &mut progress)?;
    let corrupt = args.corrupt_golden.map(|index| CorruptGolden { index });
    let sim = ready.sim.as_mut();
    let tile = (cfg.rows as usize, cfg.cols as usize);
    let (stats, c, bare_bits) = match &operands {
        Operands::Int8(a, b) => {
            let o = int8_gemm(sim, cfg, &engine.spec, a.view(), b.view(), mode, corrupt)?;
            stage(&mut out, a, &o, tile);
            (o.stats, o.comparison, o.rtl.mapv(Raw::to_raw))
        }
        Operands::Fp16(a, b) => {
            let o = fp16_gemm(sim, cfg, &engine.spec, a.view(), b.view(), mode, corrupt)?;
            stage(&mut out, a, &o, tile);
            (o.stats, o.comparison, o.rtl.mapv(Raw::to_raw))
        }
    };
    let (simulator, sim_version) = (ready.name, ready.version.clone());
    let waves_window = ready.finish();
    progress.step(&format!("simulated {} cycles on {simulator}", stats.cycles));
    let axi_report = if args.axi {
        let stalls = Stalls {
            rate: args.stall_rate.unwrap_or(0.0),
            seed: args.seed,
        };
        let r = run_through_axi(&engine, cfg, &operands, mode, corrupt, stalls, &bare_bits)?;
        progress.step(&format!(
            "through {}: {} cycles at stall rate {} ({} without the wrapper)",
            r.top, r.cycles, r.stall_rate, stats.cycles
        ));
        Some(r)
    } else {
        None
    };
    let axi_lanes = if args.axi {
        let stalls = Stalls {
            rate: args.stall_rate.unwrap_or(0.0),
            seed: args.seed,
        };
        let lanes = crate::verify_lanes::run(&engine, stalls)?;
        for r in &lanes {
            progress.step(&format!(
                "through {}: {}: {} cycles at stall rate {} ({} without the wrapper)",
                r.top, r.job, r.cycles, r.stall_rate, r.bare_cycles
            ));
        }
        lanes
    } else {
        Vec::new()
    };

    let waves = waves_window
        .as_ref()
        .filter(|w| w.recorded.is_some())
        .map(|_| out.target().join(engine::WAVES_FILE).display().to_string());
    let report = VerifyReport {
        bit_exact: c.bit_exact(),
        mismatches: c.mismatches,
        elements: c.elements,
        first_mismatch: c.first_mismatch.clone(),
        cycles: stats.cycles,
        estimated_cycles: stats.estimated_cycles,
        tiles: stats.tiles,
        groups_per_tile: stats.groups_per_tile,
        bubble_cycles: stats.bubbles,
        effective_macs: stats.effective_macs,
        // Bounded by the memory check above, so the product fits.
        dense_equivalent_macs: (m as u64) * (k as u64) * (n as u64),
        utilization: stats.utilization(cfg),
        mode: format!("{mode:?}").to_lowercase(),
        shape: [m, k, n],
        seed,
        config_hash: engine.config.hash(),
        simulator: simulator.to_string(),
        simulator_version: sim_version,
        verilator_version: coforge_sim::Verilator::version().map(|v| v.text).ok(),
        coforge_version: COFORGE_VERSION,
        waves,
        waves_window,
        axi: axi_report,
        axi_lanes,
    };
    out.write_json("report.json", &report)?;
    out.add("config.json", engine.config.resolved_json().into_bytes());
    out.commit()
        .with_context(|| format!("cannot write results to {}", args.out.display()))?;
    progress.step(&format!("wrote {}", args.out.display()));
    if let Some(path) = &args.junit {
        let config = junit::config_name(&args.config);
        let mut properties = vec![
            ("config".to_string(), args.config.display().to_string()),
            ("config_hash".to_string(), engine.config.hash()),
            ("shape".to_string(), format!("{m}x{k}x{n}")),
            ("mode".to_string(), report.mode.clone()),
            (
                "simulator".to_string(),
                format!("{simulator} {}", report.simulator_version),
            ),
            ("cycles".to_string(), stats.cycles.to_string()),
            ("replay".to_string(), junit::command_line()),
        ];
        if let Some(seed) = seed {
            properties.insert(0, ("seed".to_string(), seed.to_string()));
        }
        let mut case = junit::Case::from_comparison(
            &format!("verify.{config}"),
            &format!("{}.{}", cfg.top, c.tensor),
            &c,
        );
        let time = started.elapsed().as_secs_f64();
        case.time = Some(time);
        Junit {
            name: "coforge verify".into(),
            suites: vec![junit::Suite {
                name: format!("verify.{config}"),
                time,
                properties,
                cases: vec![case],
            }],
        }
        .write(path)?;
    }

    say!(
        "{}: {} x {} x {} on {} x {} PEs, {} cycles (estimated {}), utilization {:.1}%, {} of {} elements differ",
        if c.bit_exact() { "BIT-EXACT" } else { "MISMATCH" },
        m,
        k,
        n,
        cfg.rows,
        cfg.cols,
        stats.cycles,
        report.estimated_cycles,
        100.0 * stats.utilization(cfg),
        c.mismatches,
        c.elements
    );
    if let Some(a) = &report.axi {
        say!(
            "{}: through {} at stall rate {}: {} cycles (estimated {} without stalls), bare engine {} cycles",
            if a.same_bits_as_bare { "SAME BITS" } else { "DIFFERENT BITS" },
            a.top,
            a.stall_rate,
            a.cycles,
            a.estimated_cycles,
            stats.cycles
        );
    }
    for a in &report.axi_lanes {
        say!("{}", a.summary_line());
    }
    if let Some(first) = &c.first_mismatch {
        bail!("{first}; see mismatch.svg in {}", args.out.display());
    }
    if let Some(a) = report.axi_lanes.iter().find(|a| !a.same_bits_as_bare) {
        bail!(
            "the AXI wrapper {} gave different bits from the bare engine ({} elements differ \
             in {}); report.json has the details",
            a.top,
            a.differ_from_bare,
            a.job
        );
    }
    if let Some(a) = report.axi.as_ref().filter(|a| !a.same_bits_as_bare) {
        bail!(
            "the AXI wrapper {} gave different bits from the bare engine ({} of {} elements \
             differ); report.json has the details",
            a.top,
            a.differ_from_bare,
            c.elements
        );
    }
    Ok(())
}

/// The same GEMM through the engine's AXI wrapper, compared with the bare engine's result.
fn run_through_axi(
    engine: &engine::LoadedEngine,
    cfg: &StceConfig,
    operands: &Operands,
    mode: Mode,
    corrupt: Option<CorruptGolden>,
    stalls: Stalls,
    bare: &Array2<u32>,
) -> anyhow::Result<AxiReport> {
    let top = axi_rtl::wrapper_name(&cfg.top);
    let spec = design_spec_of(&engine.rendered, &top, axi_rtl::ports::CLOCK);
    let mut model = Verilator::build(&spec, &BuildOptions::default())?.instantiate()?;
    let mut counters = None;
    let mut runner = |job: &GemmJob| {
        let r = axi::run(&mut model, cfg, job, stalls)?;
        counters = Some(r.counters);
        Ok(r.run)
    };
    let (stats, c, bits) = match operands {
        Operands::Int8(a, b) => {
            let o = int8_gemm_with(&mut runner, cfg, a.view(), b.view(), mode, corrupt)?;
            (o.stats, o.comparison, o.rtl.mapv(Raw::to_raw))
        }
        Operands::Fp16(a, b) => {
            let o = fp16_gemm_with(&mut runner, cfg, a.view(), b.view(), mode, corrupt)?;
            (o.stats, o.comparison, o.rtl.mapv(Raw::to_raw))
        }
    };
    let counters = counters.expect("the job ran");
    let differ = bits.iter().zip(bare).filter(|(x, y)| x != y).count();
    Ok(AxiReport {
        top,
        stall_rate: stalls.rate,
        stall_seed: stalls.seed,
        bit_exact: c.bit_exact(),
        same_bits_as_bare: differ == 0,
        differ_from_bare: differ,
        mismatches: c.mismatches,
        cycles: stats.cycles,
        estimated_cycles: stats.estimated_cycles,
        input_stall_cycles: stats.bubbles,
        wrapper_busy_cycles: u64::from(counters.cycles_busy),
        output_stall_cycles: u64::from(counters.out_stalls),
    })
}

/// One seeded GEMM of `shape` on a ready simulator of `engine`: its cycle statistics (measured,
/// with the protocol's estimate beside them) and the bit-for-bit comparison (the fixed workloads
/// of `coforge baseline`).
pub(crate) fn seeded_gemm(
    sim: &mut dyn coforge_sim::Simulator,
    engine: &engine::LoadedEngine,
    shape: (usize, usize, usize),
    seed: u64,
    mode: Mode,
) -> anyhow::Result<(
    coforge_driver::stce::CycleStats,
    coforge_driver::compare::Comparison,
)> {
    let cfg = engine.config.stce("a seeded GEMM")?;
    let (stats, comparison) = match Operands::random(cfg.dtype, cfg.weight_bits, shape, seed) {
        Operands::Int8(a, b) => {
            let o = int8_gemm(sim, cfg, &engine.spec, a.view(), b.view(), mode, None)?;
            (o.stats, o.comparison)
        }
        Operands::Fp16(a, b) => {
            let o = fp16_gemm(sim, cfg, &engine.spec, a.view(), b.view(), mode, None)?;
            (o.stats, o.comparison)
        }
    };
    Ok((stats, comparison))
}
