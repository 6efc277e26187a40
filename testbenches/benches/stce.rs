//! STCE benchmark: sparse against dense cycles for every N:M pattern, PE utilization,
//! co-simulation speed (Verilator at 16x16 and 32x32, Verilator against Icarus), and generation
//! time and size for a 64x64 array.
//!
//! Run: `cargo bench -p coforge-testbenches --bench stce` (add `-- --quick` to skip 32x32, and
//! `-- --speed` for the co-simulation speed alone).
//! The co-simulation speeds are medians of interleaved runs (every engine once, then again), so
//! their ratios come from one stretch of machine load; cycle counts are exact and come from
//! bit-exact runs.

use coforge_driver::verify::{int8_gemm, Mode};
use coforge_generator::artifacts::render;
use coforge_generator::config::Config;
use coforge_generator::engines::stce::ports;
use coforge_sim::{Icarus, Simulator, Stimulus};
use coforge_testbenches::{random_i8, Engine};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// A stream of `cycles` random groups (tiles of 16 groups), capturing every cycle or never.
fn random_stream(e: &Engine, cycles: u64, capture_every_cycle: bool) -> Stimulus {
    let cfg = e.cfg();
    let mut stim = Stimulus::new(&e.spec);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let act_bits = cfg.lanes() * cfg.act_bits();
    let wgt_bits = cfg.n * cfg.wgt_bits();
    let ids = |f: &dyn Fn(u32) -> String, n: u32| -> Vec<usize> {
        (0..n).map(|i| stim.port_id(&f(i)).unwrap()).collect()
    };
    let acts = ids(&ports::act_row, cfg.rows);
    let wgts = ids(&ports::wgt_col, cfg.cols);
    let (valid, first, last) = (
        stim.port_id(ports::VALID).unwrap(),
        stim.port_id(ports::FIRST).unwrap(),
        stim.port_id(ports::LAST).unwrap(),
    );
    stim.set(ports::RESET, 1);
    stim.step(false);
    stim.set(ports::RESET, 0);
    stim.reserve(cycles as usize);
    let mut words = Vec::new();
    let mut random_bits = |bits: u32, words: &mut Vec<u32>| {
        words.clear();
        for w in 0..bits.div_ceil(32) {
            let width = (bits - 32 * w).min(32);
            let mask = if width == 32 {
                u32::MAX
            } else {
                (1 << width) - 1
            };
            words.push(rng.random::<u32>() & mask);
        }
    };
    for c in 0..cycles {
        stim.set_id(valid, &[1]);
        stim.set_id(first, &[(c % 16 == 0) as u32]);
        stim.set_id(last, &[(c % 16 == 15) as u32]);
        for &p in &acts {
            random_bits(act_bits, &mut words);
            stim.set_id(p, &words);
        }
        for &p in &wgts {
            random_bits(wgt_bits, &mut words);
            stim.set_id(p, &words);
        }
        stim.step(capture_every_cycle);
    }
    stim
}

fn cycles_per_second(sim: &mut dyn Simulator, stim: &Stimulus) -> f64 {
    median(
        (0..3)
            .map(|_| {
                let t = Instant::now();
                sim.run(stim).expect("simulation runs");
                stim.cycles() as f64 / t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn sparse_vs_dense() {
    println!(
        "\n## Sparse against dense cycles, 8 x 8 array, GEMM 64 x 512 x 64 (bit-exact runs)\n"
    );
    println!("| N:M | dense cycles (estimated) | sparse cycles (estimated) | dense/sparse | ideal M/N | ratio / ideal | sparse utilization | dense utilization |");
    println!("|---|---|---|---|---|---|---|---|");
    let (rows, k, cols) = (64, 512, 64);
    let a = random_i8(rows, k, 1);
    let b = random_i8(k, cols, 2);
    for (n, m) in [(2, 4), (4, 8), (2, 8), (1, 4), (1, 8), (1, 16)] {
        let e = Engine::stce(8, 8, n, m, "");
        let mut sim = e.verilator();
        let mut run = |mode| {
            let o = int8_gemm(&mut sim, e.cfg(), &e.spec, a.view(), b.view(), mode, None)
                .expect("GEMM runs");
            assert!(o.comparison.bit_exact(), "{n}:{m} {mode:?} not bit-exact");
            o.stats
        };
        let (dense, sparse) = (run(Mode::Dense), run(Mode::Sparse));
        let ratio = dense.cycles as f64 / sparse.cycles as f64;
        let ideal = m as f64 / n as f64;
        println!(
            "| {n}:{m} | {} ({}) | {} ({}) | {ratio:.3} | {ideal:.2} | {:.3} | {:.1}% | {:.1}% |",
            dense.cycles,
            dense.estimated_cycles,
            sparse.cycles,
            sparse.estimated_cycles,
            ratio / ideal,
            100.0 * sparse.utilization(e.cfg()),
            100.0 * dense.utilization(e.cfg()),
        );
    }
}

/// The machine's 1-minute load average (Linux), printed beside the speeds: the bench shares
/// the cores with whatever else runs, so its absolute figures are only comparable at equal load.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// The CPU time this thread has run, in ns (Linux: `/proc/thread-self/schedstat`, first field).
/// A speed per CPU-second leaves out the time other processes held the core, so on a shared
/// machine it is steadier than the wall-clock speed (it still pays for their cache pollution).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn speed(quick: bool) {
    // Interleaved runs (A B C A B C ...) so that every engine sees the same machine load: the
    // ratios below compare medians taken over the same stretch of time.
    const REPEATS: usize = 7;
    let cycles = 200_000;
    println!(
        "\n## Co-simulation speed (int8, {cycles} cycles a run, {REPEATS} interleaved runs per row, medians)\n"
    );
    // The dense 16 x 16 engine (n = m = 1) first: the 2:8 arrays are compared with it, and the
    // 32 x 32 array with the 2:8 16 x 16 one, as ratios from this one run.
    let mut points = vec![(16, 1, 1), (16, 2, 8)];
    if !quick {
        points.push((32, 2, 8));
    }
    struct Row {
        label: String,
        build: f64,
        every_cycle: bool,
        stim: Stimulus,
        speeds: Vec<f64>,
        /// Cycles per CPU-second of each run (empty where the CPU time is unknown).
        cpu_speeds: Vec<f64>,
    }
    // One model per engine; its rows are the read-out-only and the capture-every-cycle streams.
    let mut models = Vec::new();
    let mut rows = Vec::new();
    for (s, n, m) in points {
        let e = Engine::stce(s, s, n, m, "");
        let t = Instant::now();
        models.push(e.verilator());
        let build = t.elapsed().as_secs_f64();
        for every_cycle in [false, true] {
            rows.push(Row {
                label: format!("{s} x {s} | {n}:{m}"),
                build,
                every_cycle,
                stim: random_stream(&e, cycles, every_cycle),
                speeds: Vec::new(),
                cpu_speeds: Vec::new(),
            });
        }
    }
    let load_before = load_average();
    for _ in 0..REPEATS {
        for (i, row) in rows.iter_mut().enumerate() {
            let (t, cpu) = (Instant::now(), thread_cpu_ns());
            models[i / 2].run(&row.stim).expect("simulation runs");
            row.speeds.push(cycles as f64 / t.elapsed().as_secs_f64());
            if let (Some(before), Some(after)) = (cpu, thread_cpu_ns()) {
                row.cpu_speeds
                    .push(cycles as f64 * 1e9 / after.saturating_sub(before).max(1) as f64);
            }
        }
    }
    let load_after = load_average();
    let medians: Vec<f64> = rows.iter().map(|r| median(r.speeds.clone())).collect();
    let cpu_medians: Option<Vec<f64>> = rows
        .iter()
        .map(|r| (r.cpu_speeds.len() == REPEATS).then(|| median(r.cpu_speeds.clone())))
        .collect();
    println!(
        "| array | N:M | build s | capture | cycles/s, median | min .. max | / dense 16 x 16 | cycles per CPU-second, median | min .. max | / dense 16 x 16 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        format!("{lo:.0} .. {hi:.0}")
    };
    for (i, row) in rows.iter().enumerate() {
        // Read-out-only rows against the dense read-out-only row, capturing rows against the
        // dense capturing row.
        let cpu = match &cpu_medians {
            Some(m) => format!(
                "{:.0} | {} | {:.3}",
                m[i],
                range(&row.cpu_speeds),
                m[i] / m[i % 2]
            ),
            None => "unknown | | ".into(),
        };
        println!(
            "| {} | {:.1} | {} | {:.0} | {} | {:.3} | {cpu} |",
            row.label,
            row.build,
            if row.every_cycle {
                "every cycle"
            } else {
                "read-out only"
            },
            medians[i],
            range(&row.speeds),
            medians[i] / medians[i % 2]
        );
    }
    println!("\nLoad average: {load_before} before the runs, {load_after} after (2 cores here).");
    let mut ratios = vec![("wall clock", &medians)];
    if let Some(m) = &cpu_medians {
        ratios.push(("CPU time", m));
    }
    for (clock, m) in ratios {
        println!(
            "{clock}: 2:8 16 x 16 / dense 16 x 16 = {:.3} read-out only, {:.3} capturing every cycle (target >= 0.90)",
            m[2] / m[0],
            m[3] / m[1]
        );
        if m.len() > 4 {
            println!(
                "{clock}: 2:8 32 x 32 / 2:8 16 x 16 = {:.3} read-out only, {:.3} capturing every cycle (target >= 0.25, linear in the PE count)",
                m[4] / m[2],
                m[5] / m[3]
            );
        }
    }

    println!("\n## Verilator against Icarus, 4 x 4 array, 2:8 int8, capture every cycle\n");
    let e = Engine::stce(4, 4, 2, 8, "");
    let mut verilator = e.verilator();
    let dir = tempfile::tempdir().unwrap();
    let mut icarus = Icarus::new(&e.spec, dir.path()).expect("Icarus compiles the design");
    let v = cycles_per_second(&mut verilator, &random_stream(&e, 200_000, true));
    let stim = random_stream(&e, 5_000, true);
    let t0 = verilator.run(&stim).unwrap();
    let t1 = icarus.run(&stim).unwrap();
    assert!(
        t0.first_mismatch(&t1).is_none(),
        "Verilator and Icarus disagree"
    );
    let i = cycles_per_second(&mut icarus, &stim);
    println!("| simulator | cycles/s |\n|---|---|");
    println!("| Verilator | {v:.0} |\n| Icarus | {i:.0} |");
    println!(
        "\nVerilator / Icarus = {:.0}x (traces identical on 5000 cycles)",
        v / i
    );
}

fn generation() {
    println!("\n## Generation of a 64 x 64 array (2:8 int8)\n");
    let cfg = Config::from_toml("[stce]\nrows = 64\ncols = 64\nn = 2\nm = 8\n", "bench").unwrap();
    let times: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let r = render(&cfg);
            std::hint::black_box(&r);
            t.elapsed().as_secs_f64()
        })
        .collect();
    let r = render(&cfg).expect("the bench config renders");
    let bytes: usize = r.verilog.iter().map(|(_, t)| t.len()).sum();
    let lines: usize = r.verilog.iter().map(|(_, t)| t.lines().count()).sum();
    println!(
        "{} module definitions for 4096 PEs, {lines} lines, {:.1} MiB of Verilog, generated in {:.2} s (median of 3)",
        r.verilog.len(),
        bytes as f64 / (1024.0 * 1024.0),
        median(times)
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!("# STCE benchmark (coforge {})", env!("CARGO_PKG_VERSION"));
    if std::env::args().any(|a| a == "--speed") {
        return speed(quick);
    }
    sparse_vs_dense();
    speed(quick);
    generation();
}
