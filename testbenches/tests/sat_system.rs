//! The SAT system top (`engines::sat`): lint, block RAM under Yosys, and programs run closed
//! loop against the memory model, compared bit for bit with the reference.

use coforge_generator::artifacts::render;
use coforge_generator::config::Config;
use coforge_testbenches::{assert_lint_clean, cell_count, synth_xilinx_cells};
use std::path::Path;

fn shipped() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/sat-4x4-2of8.toml");
    Config::load(&path).expect("shipped config is valid")
}

fn system_files(cfg: &Config) -> (String, Vec<(String, String)>) {
    let r = render(cfg).unwrap();
    let top = cfg.system.as_ref().unwrap().top.clone();
    let info = r.tops.iter().find(|t| t.name == top).unwrap();
    let files = r
        .verilog
        .iter()
        .filter(|(f, _)| info.files.contains(f))
        .cloned()
        .collect();
    (top, files)
}

#[test]
fn system_top_is_lint_clean() {
    let cfg = shipped();
    let (top, files) = system_files(&cfg);
    assert_lint_clean(&files, &top, "sat-4x4-2of8");
    // A dense engine, deep beats (lines wider than a beat) and tiny buffers.
    let other = Config::from_toml(
        "[stce]\nrows = 2\ncols = 3\ndtype = \"fp16\"\nn = 4\nm = 4\n[train]\nsore_lanes = 3\n\
         wuve_lanes = 3\n[system]\nmem_bits = 64\nact_lines = 2\nwgt_lines = 3\nout_lines = 5\n\
         weight_lines = 7\nimem_depth = 16\nmem_bytes_per_cycle = 3\n",
        "t",
    )
    .unwrap();
    let (top, files) = system_files(&other);
    assert_lint_clean(&files, &top, "2x3 dense, 64-bit port");
}

#[test]
fn system_buffers_are_block_ram() {
    // A 1 x 1 array keeps Yosys quick; the buffers are deep enough for block RAM.
    let cfg = Config::from_toml(
        "[stce]\nrows = 1\ncols = 1\ndtype = \"fp16\"\nn = 1\nm = 4\n[train]\nsore_lanes = 1\n\
         wuve_lanes = 1\n[system]\nmem_bits = 64\nact_lines = 1024\nwgt_lines = 1024\n\
         out_lines = 1024\nweight_lines = 1024\nimem_depth = 256\n",
        "1x1 system",
    )
    .unwrap();
    let (top, files) = system_files(&cfg);
    let cells = synth_xilinx_cells(&files, &top, "1x1 system");
    let ramb36 = cell_count(&cells, "RAMB36E1");
    let ramb18 = cell_count(&cells, "RAMB18E1");
    // In 18-Kib units: act 1024 x 64 (4), wgt 1024 x 18 (1), out 1024 x 32 (2), master
    // 1024 x 32 (2), w16 1024 x 16 (1), imem 256 x 192 (at least 3); the 1-bit mask buffer
    // (1 Kib) may go to LUT RAM.
    assert!(2 * ramb36 + ramb18 >= 13, "{cells:?}");
    assert_eq!(
        cell_count(&cells, "RAM32M") + cell_count(&cells, "RAM64M"),
        0,
        "a buffer went to LUT RAM: {cells:?}"
    );
}

use coforge_driver::sat::{gemm_program, DramImage, GemmJob, RunStats, SatSystem};
use coforge_generator::engines::sat::isa::{Buf, GemmMode};
use coforge_generator::engines::sat::lines::Geometry;
use coforge_sim::MemoryTiming;
use coforge_testbenches::{adversarial_f16, random_f16};
use half::f16;
use ndarray::{Array2, ArrayView2};
use sparse_kernels::bdwp::{self, BdwpConfig};
use sparse_kernels::nm::{Compressed, NmPattern};

fn bits16(a: ArrayView2<f16>) -> Vec<u16> {
    a.iter().map(|v| v.to_bits()).collect()
}

fn sparse_operand(
    geo: &Geometry,
    c: &Compressed<f16>,
) -> coforge_generator::engines::sat::lines::Lines {
    let (k, cols) = c.dense_dim();
    let values: Vec<u16> = c.values.iter().map(|v| v.to_bits()).collect();
    let indices: Vec<u8> = c.indices.iter().copied().collect();
    geo.pack_wgt_sparse(&values, &indices, k, cols)
}

/// FF, BP and WU of one BDWP step of a linear layer on the system top, compared bit for bit
/// with `sparse_kernels::bdwp::train_step`. Returns the measured figures.
fn linear_step_on_system(
    system: &mut SatSystem,
    x: &Array2<f16>,
    w32: &Array2<f32>,
    dy: &Array2<f16>,
    timing: MemoryTiming,
) -> RunStats {
    let geo = system.geo;
    let sys = system.sys.clone();
    let (b, cin) = x.dim();
    let cout = w32.dim().0;
    let cfg = BdwpConfig::new(
        NmPattern::new(geo.n as usize, geo.m as usize).unwrap(),
        0.01,
    );
    let golden = bdwp::train_step(x.view(), w32.view(), dy.view(), &cfg).unwrap();
    let ff = bdwp::ff_operand(&golden.used, &cfg).unwrap();
    let bp = bdwp::bp_operand(&golden.used, &cfg).unwrap();
    let xt = x.t().as_standard_layout().to_owned();
    let jobs = [
        GemmJob {
            mode: GemmMode::Sparse,
            r: b,
            k: cin,
            c: cout,
            act: geo.pack_act(&bits16(x.view()), b, cin, GemmMode::Sparse),
            wgt: sparse_operand(&geo, &ff),
        },
        GemmJob {
            mode: GemmMode::Sparse,
            r: b,
            k: cout,
            c: cin,
            act: geo.pack_act(&bits16(dy.view()), b, cout, GemmMode::Sparse),
            wgt: sparse_operand(&geo, &bp),
        },
        GemmJob {
            mode: GemmMode::Dense,
            r: cin,
            k: b,
            c: cout,
            act: geo.pack_act(&bits16(xt.view()), cin, b, GemmMode::Dense),
            wgt: geo.pack_wgt_dense(&bits16(dy.view()), b, cout),
        },
    ];
    let mut dram = DramImage::new(&geo);
    let (program, regions) = gemm_program(&geo, &sys, &jobs, &mut dram).unwrap();
    let stats = system
        .run(&program, &mut dram, timing, cfg.lr, cfg.lambda, 1_000_000)
        .unwrap();
    let result = |j: usize| {
        let job = &jobs[j];
        let lines = dram.lines(&geo, regions[j].dram_addr, regions[j].lines, Buf::Out);
        geo.unpack_out(&lines, job.r, job.c)
    };
    let f32_bits = |a: ArrayView2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    for (name, got, want) in [
        ("y", result(0), f32_bits(golden.y.view())),
        ("dx", result(1), f32_bits(golden.dx.view())),
        ("dw^T", result(2), f32_bits(golden.dw.t())),
    ] {
        let diff = got.iter().zip(&want).position(|(g, w)| g != w);
        assert!(
            diff.is_none(),
            "{name}: first mismatch at flat index {:?}: rtl {:#010x}, golden {:#010x}",
            diff,
            got[diff.unwrap()],
            want[diff.unwrap()]
        );
    }
    stats
}

fn random_w32(cout: usize, cin: usize, seed: u64) -> Array2<f32> {
    random_f16(cout, cin, seed).mapv(|v| v.to_f32() * 1.5)
}

#[test]
fn linear_step_gemms_are_bit_exact_and_cycles_are_measured() {
    let cfg = shipped();
    let mut system = SatSystem::new(&cfg).unwrap();
    let sys = cfg.system.clone().unwrap();
    let timing = MemoryTiming::fixed(sys.mem_latency, sys.mem_bytes_per_cycle);
    // B = 5: not a multiple of the array (4) nor of the dense group (N = 2); Cin = 16, Cout = 8.
    let x = random_f16(5, 16, 1);
    let dy = adversarial_f16(5, 8, 2);
    let w32 = random_w32(8, 16, 3);
    let stats = linear_step_on_system(&mut system, &x, &w32, &dy, timing);
    eprintln!("{stats:?}");
    // The two observations of the run agree, every engine did work, and the serial estimate
    // bounds the run (engines overlap, so measured <= serial).
    assert_eq!(stats.sim_cycles, stats.cycles + 1);
    assert!(stats.busy["stce"] > 0 && stats.busy["dma"] > 0, "{stats:?}");
    assert!(stats.cycles <= stats.estimated_cycles, "{stats:?}");

    // Random latency and back-pressure: the same bits, different cycles.
    let noisy = MemoryTiming {
        extra_latency: 40,
        stall_rate: 0.3,
        seed: 9,
        ..timing
    };
    let slow = linear_step_on_system(&mut system, &x, &w32, &dy, noisy);
    eprintln!("{slow:?}");
    assert!(slow.cycles > stats.cycles, "{slow:?} vs {stats:?}");
    assert_eq!(slow.busy["stce"], stats.busy["stce"]);
}
