//! Throughput of the bit-exact reference GEMMs (int8 with wrap, fp16 with fp32 RNE accumulation)
//! against ndarray's f32 `.dot()` (matrixmultiply: BLAS-like, FMA, not bit-exact to the contract)
//! on the same shapes, single-threaded and on every rayon thread, in one table.
//!
//! No criterion: each figure is the median of several timed runs (fewer for the large shapes).
//! ndarray's `dot` is single-threaded (its `matrixmultiply-threading` feature is off), so every
//! ratio is against the single-threaded `dot`. `scaling` is the all-threads speed over the
//! single-thread speed of the same kernel.
//!
//! On a shared machine the wall-clock figures (and above all the thread scaling) depend on the
//! other load, so the bench prints the load average, and a second table from the CPU time of the
//! running thread (Linux `schedstat`): the single-thread speed while the kernel had a core, which
//! other processes do not change much.
//!
//! Run: `cargo bench -p sparse-kernels --bench reference_gemm [-- MAX_SIZE]` (default 2048)

mod common;

use std::hint::black_box;
use std::time::Duration;

use half::f16;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::ThreadPool;
use sparse_kernels::gemm::{gemm, Fp16Arith, IntArith};

use common::median;

/// CPU time of the calling thread so far, where Linux reports it.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        s.split_whitespace().next()?.parse().ok()?,
    ))
}

/// CPU time of one call of `f` on the calling thread, averaged over enough calls to outweigh
/// the coarse accounting (at least 200 ms).
fn cpu_per_call(mut f: impl FnMut()) -> Option<Duration> {
    f();
    let start = thread_cpu()?;
    let mut calls = 0;
    loop {
        f();
        calls += 1;
        let used = thread_cpu()? - start;
        if used >= Duration::from_millis(200) {
            return Some(used / calls);
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn pool(threads: usize) -> ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
}

fn main() {
    let max: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2048);
    let threads = rayon::current_num_threads();
    let (single, all) = (pool(1), pool(threads));
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    println!("load average before: {}", load_average());
    let mut cpu_rows = Vec::new();
    println!("GMAC/s, median wall clock (1 MAC = one multiply and one add); 1T = one thread, {threads}T = {threads} rayon threads");
    println!(
        "{:>14} | {:>8} {:>8} | {:>8} {:>8} | {:>8} | {:>8} {:>8} | {:>8} {:>8} | {:>4}",
        "shape MxKxN",
        "int8 1T",
        format!("int8 {threads}T"),
        "fp16 1T",
        format!("fp16 {threads}T"),
        "dot 1T",
        "int8/dot",
        "fp16/dot",
        "int8 x",
        "fp16 x",
        "runs"
    );
    println!("{}", "-".repeat(112));
    let mut s = 128;
    while s <= max {
        let runs = if s >= 1024 { 3 } else { 5 };
        let macs = (s * s * s) as f64;
        let ai = Array2::from_shape_simple_fn((s, s), || rng.random::<i8>());
        let bi = Array2::from_shape_simple_fn((s, s), || rng.random::<i8>());
        let ah =
            Array2::from_shape_simple_fn((s, s), || f16::from_f32(rng.random_range(-1.0..1.0)));
        let bh =
            Array2::from_shape_simple_fn((s, s), || f16::from_f32(rng.random_range(-1.0..1.0)));
        let af = ah.mapv(f32::from);
        let bf = bh.mapv(f32::from);
        let int8 = || {
            black_box(gemm(&IntArith::default(), ai.view(), bi.view()).unwrap());
        };
        let fp16 = || {
            black_box(gemm(&Fp16Arith, ah.view(), bh.view()).unwrap());
        };
        let g = |t: Duration| macs / t.as_secs_f64() / 1e9;
        let i1 = g(median(runs, || single.install(int8)));
        let i_all = g(median(runs, || all.install(int8)));
        let h1 = g(median(runs, || single.install(fp16)));
        let h_all = g(median(runs, || all.install(fp16)));
        let dot = g(median(runs, || {
            black_box(af.dot(&bf));
        }));
        println!(
            "{:>14} | {:>8.2} {:>8.2} | {:>8.2} {:>8.2} | {:>8.2} | {:>8.3} {:>8.3} | {:>8.2} {:>8.2} | {:>4}",
            format!("{s}x{s}x{s}"),
            i1,
            i_all,
            h1,
            h_all,
            dot,
            i1 / dot,
            h1 / dot,
            i_all / i1,
            h_all / h1,
            runs
        );
        let on_cpu = |f: &(dyn Fn() + Sync)| single.install(|| cpu_per_call(f)).map(g);
        cpu_rows.push((
            s,
            on_cpu(&int8),
            on_cpu(&fp16),
            cpu_per_call(|| {
                black_box(af.dot(&bf));
            })
            .map(g),
        ));
        s *= 2;
    }
    println!("load average after: {}", load_average());
    println!();
    println!("GMAC/s per CPU second of the running thread (one thread)");
    println!(
        "{:>14} | {:>8} | {:>8} | {:>8} | {:>8} {:>8}",
        "shape MxKxN", "int8", "fp16", "dot", "int8/dot", "fp16/dot"
    );
    println!("{}", "-".repeat(68));
    for (s, i, h, d) in cpu_rows {
        let (Some(i), Some(h), Some(d)) = (i, h, d) else {
            println!("(no per-thread CPU time on this system)");
            break;
        };
        println!(
            "{:>14} | {i:>8.2} | {h:>8.2} | {d:>8.2} | {:>8.3} {:>8.3}",
            format!("{s}x{s}x{s}"),
            i / d,
            h / d
        );
    }
}
