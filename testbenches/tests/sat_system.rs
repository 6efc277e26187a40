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

/// The shipped system with one read request outstanding (`read_requests = 1`: one LOAD at a
/// time; the default 2 queues a LOAD behind a LOAD).
fn shipped_with_one_read_request() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/sat-4x4-2of8.toml");
    let text = std::fs::read_to_string(path).unwrap();
    // The appended key lands in [system] only while that is the file's last section.
    assert_eq!(text.rfind("\n["), text.find("\n[system]"));
    let cfg = Config::from_toml(
        &format!("{text}\nread_requests = 1\n"),
        "sat-4x4-2of8 one read request",
    )
    .unwrap();
    assert_eq!(cfg.system.as_ref().unwrap().read_requests, 1);
    cfg
}

/// The shipped system with the pipelined WUVE (`[train] wuve_pipeline = true`).
fn shipped_with_pipelined_wuve() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/sat-4x4-2of8.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.replacen("[train]\n", "[train]\nwuve_pipeline = true\n", 1);
    let cfg = Config::from_toml(&text, "sat-4x4-2of8 pipelined WUVE").unwrap();
    assert!(cfg.train.as_ref().unwrap().wuve_pipeline);
    cfg
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
         out_lines = 1024\nweight_lines = 1024\nimem_depth = 256\nmem_bytes_per_cycle = 8\n",
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
    // Only the mask buffer may be LUT RAM: 1024 x 1 bit is 16 RAM64M at most.
    assert!(
        cell_count(&cells, "RAM32M") + cell_count(&cells, "RAM64M") <= 16,
        "a wide buffer went to LUT RAM: {cells:?}"
    );
}

use coforge_driver::sat::{RunStats, SatSystem, UpdateInputs};
use coforge_generator::engines::sat::isa::Engine;
use coforge_sim::MemoryTiming;
use coforge_testbenches::{adversarial_f16, random_f16};
use half::f16;
use ndarray::{Array2, ArrayView2};
use sparse_kernels::bdwp::{self, BdwpConfig};
use sparse_kernels::nm::NmPattern;
use std::collections::BTreeMap;

/// FF, BP, WU and UPDATE of one BDWP step of a linear layer on the system top, compared bit for bit
/// with `sparse_kernels::bdwp::train_step`. Returns the measured figures.
fn linear_step_on_system(
    system: &mut SatSystem,
    x: &Array2<f16>,
    w32: &Array2<f32>,
    dy: &Array2<f16>,
    pattern: NmPattern,
    timing: MemoryTiming,
) -> (RunStats, Model) {
    let cfg = BdwpConfig::new(pattern, 0.01);
    let golden = bdwp::train_step(x.view(), w32.view(), dy.view(), &cfg).unwrap();
    let ff = bdwp::ff_operand(&golden.used, &cfg).unwrap();
    let bp = bdwp::bp_operand(&golden.used, &cfg).unwrap();
    let update = UpdateInputs {
        w32,
        mask_f: &golden.used.mask_f,
        lr: cfg.lr,
        lambda: cfg.lambda,
    };
    let got = system
        .linear_gemms(x.view(), dy.view(), &ff, &bp, update, timing)
        .unwrap();
    let bits = |a: ArrayView2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    for (name, got, want) in [
        ("y", bits(got.y.view()), bits(golden.y.view())),
        ("dx", bits(got.dx.view()), bits(golden.dx.view())),
        ("dw", bits(got.dw.view()), bits(golden.dw.view())),
        ("w32", bits(got.w32.view()), bits(golden.w32.view())),
        (
            "w16",
            got.w16.iter().map(|v| u32::from(v.to_bits())).collect(),
            golden
                .next
                .w16
                .iter()
                .map(|v| u32::from(v.to_bits()))
                .collect(),
        ),
    ] {
        assert_eq!(got.len(), want.len(), "{name}");
        if let Some(i) = got.iter().zip(&want).position(|(g, w)| g != w) {
            panic!(
                "{name}: first mismatch at flat index {i}: rtl {:#010x}, golden {:#010x}",
                got[i], want[i]
            );
        }
    }
    match &got.next {
        Some(next) => {
            assert_eq!(next.mask_f, golden.next.mask_f, "next M_F");
            let ff_next = bdwp::ff_operand(&golden.next, &cfg).unwrap();
            let (k, c) = ff_next.dense_dim();
            let values: Vec<u16> = ff_next.values.iter().map(|v| v.to_bits()).collect();
            let indices: Vec<u8> = ff_next.indices.iter().copied().collect();
            let geo = system.geo;
            let want = geo.pack_wgt_sparse(&values, &indices, k, c);
            assert_eq!(geo.k_padded(k), k, "the test keeps K a multiple of Kp");
            assert_eq!(next.ff_lines, want, "next FF operand");
        }
        None => assert!(pattern.is_dense()),
    }
    // The scheduler's model of the controller (fetch, FIFOs, tokens, per-instruction timing)
    // run on the same program: its estimate of the step beside the measured cycles.
    let hw = coforge_scheduler::Hardware {
        rows: system.geo.rows as usize,
        cols: system.geo.cols as usize,
        n: system.geo.n as usize,
        m: system.geo.m as usize,
        system: system.sys.clone(),
        wuve_pipeline: system.geo.wuve_pipeline,
    };
    let timings = coforge_scheduler::estimate::simulate(&got.program, &hw).unwrap();
    // An engine is busy from an instruction's start to its end; a queued LOAD overlaps the one
    // before it, so the busy cycles are the union of the intervals.
    let mut busy = BTreeMap::new();
    for engine in Engine::ALL {
        let mut spans: Vec<(u64, u64)> = got
            .program
            .iter()
            .zip(&timings)
            .filter(|(i, _)| i.engine() == Some(engine))
            .map(|(_, t)| (t.start, t.end))
            .collect();
        spans.sort_unstable();
        let (mut total, mut reach) = (0, 0);
        for (a, b) in spans {
            total += b.saturating_sub(a.max(reach));
            reach = reach.max(b);
        }
        busy.insert(engine.name().to_string(), total);
    }
    let model = Model {
        cycles: timings.last().unwrap().end,
        busy,
    };
    eprintln!(
        "{pattern:?} step: {} cycles measured, {} estimated by the scheduler's model ({:+.1}%)",
        got.stats.cycles,
        model.cycles,
        pct(model.cycles, got.stats.cycles)
    );
    (got.stats, model)
}

/// The scheduler's controller model of a program: step cycles and per-engine busy cycles.
struct Model {
    cycles: u64,
    busy: BTreeMap<String, u64>,
}

fn pct(estimate: u64, measured: u64) -> f64 {
    if measured == 0 {
        0.0
    } else {
        100.0 * (estimate as f64 - measured as f64) / measured as f64
    }
}

/// Prints a step's measured cycles and per-engine busy cycles beside the scheduler model's
/// and the serial sum of the per-instruction estimates.
fn report_step(what: &str, s: &RunStats, model: &Model) {
    eprintln!(
        "{what}: step {} cycles measured, {} by the scheduler's model, {} serially; read {} \
         beats, wrote {}",
        s.cycles, model.cycles, s.estimated_cycles, s.read_beats, s.written_beats
    );
    for (engine, busy) in &s.busy {
        let (est, serial) = (model.busy[engine], s.busy_estimated[engine]);
        eprintln!(
            "  {engine}: busy {busy} measured, {est} by the model ({:+.1}%), {serial} serially",
            pct(est, *busy)
        );
    }
}

fn random_w32(cout: usize, cin: usize, seed: u64) -> Array2<f32> {
    random_f16(cout, cin, seed).mapv(|v| v.to_f32() * 1.5)
}

/// The memory of a config's `[system]` at its nominal latency and rate.
fn nominal_timing(cfg: &Config) -> MemoryTiming {
    let sys = cfg.system.as_ref().unwrap();
    MemoryTiming::fixed(sys.mem_latency, sys.mem_bytes_per_cycle)
}

/// The one-layer step's X, dY and W32: B = 5 (not a multiple of the array (4) nor of the dense
/// group (N = 2)), Cin = 16, Cout = 8.
fn linear_step_inputs() -> (Array2<f16>, Array2<f16>, Array2<f32>) {
    (
        random_f16(5, 16, 1),
        adversarial_f16(5, 8, 2),
        random_w32(8, 16, 3),
    )
}

#[test]
fn linear_step_gemms_are_bit_exact_and_cycles_are_measured() {
    // Queued LOADs on, as shipped (one LOAD at a time: the conv test below).
    let cfg = shipped();
    assert_eq!(cfg.system.as_ref().unwrap().read_requests, 2);
    let mut system = SatSystem::new(&cfg).unwrap();
    let timing = nominal_timing(&cfg);
    let (x, dy, w32) = linear_step_inputs();
    let pattern = NmPattern::new(2, 8).unwrap();
    let (stats, model) = linear_step_on_system(&mut system, &x, &w32, &dy, pattern, timing);
    report_step("2:8", &stats, &model);
    // With a memory that answers at its nominal latency and rate, every engine's measured busy
    // cycles equal the documented timing (`engines::sat::estimated_cycles` per instruction,
    // queued LOADs as the scheduler's controller model has them): this fails if the RTL is
    // slower or faster than its model.
    assert_eq!(stats.busy, model.busy, "{stats:?}");
    // The two observations of the run agree, every engine did work, and the serial estimate
    // bounds the run (engines overlap, so measured <= serial).
    assert_eq!(stats.sim_cycles, stats.cycles + 1);
    assert!(
        stats.busy["stce"] > 0
            && stats.busy["dma"] > 0
            && stats.busy["wuve"] > 0
            && stats.busy["sore"] > 0,
        "{stats:?}"
    );
    assert!(stats.cycles <= stats.estimated_cycles, "{stats:?}");

    // Random latency and back-pressure: the same bits, different cycles.
    let noisy = MemoryTiming {
        extra_latency: 40,
        stall_rate: 0.3,
        seed: 9,
        ..timing
    };
    let (slow, _) = linear_step_on_system(&mut system, &x, &w32, &dy, pattern, noisy);
    eprintln!("{slow:?}");
    assert!(slow.cycles > stats.cycles, "{slow:?} vs {stats:?}");
    assert_eq!(slow.busy["stce"], stats.busy["stce"]);

    // Dense training (N = M) on the same hardware: FF and BP in dense mode, more STCE cycles.
    let (dense, dense_model) = linear_step_on_system(
        &mut system,
        &x,
        &w32,
        &dy,
        NmPattern::new(8, 8).unwrap(),
        timing,
    );
    report_step("dense", &dense, &dense_model);
    assert_eq!(dense.busy, dense_model.busy, "{dense:?}");
    eprintln!(
        "step speedup of 2:8 over dense (measured cycles): {:.3}x; STCE busy {:.1}% (2:8), \
         {:.1}% (dense)",
        dense.cycles as f64 / stats.cycles as f64,
        100.0 * stats.busy["stce"] as f64 / stats.cycles as f64,
        100.0 * dense.busy["stce"] as f64 / dense.cycles as f64
    );
    assert!(
        dense.busy["stce"] > stats.busy["stce"],
        "{dense:?} vs {stats:?}"
    );
}

/// The pipelined WUVE inside the system top: a training step is bit-exact, and every engine's
/// measured busy cycles equal the scheduler's model, whose UPDATE now waits for the pipelined
/// WUVE's latency (`engines::wuve::PIPELINED_LATENCY`) through `Geometry::wuve_pipeline`.
#[test]
fn linear_step_with_the_pipelined_wuve_is_bit_exact_and_timed() {
    let cfg = shipped_with_pipelined_wuve();
    let mut system = SatSystem::new(&cfg).unwrap();
    assert!(system.geo.wuve_pipeline);
    let timing = nominal_timing(&cfg);
    let (x, dy, w32) = linear_step_inputs();
    let pattern = NmPattern::new(2, 8).unwrap();
    let (stats, model) = linear_step_on_system(&mut system, &x, &w32, &dy, pattern, timing);
    report_step("2:8, pipelined WUVE", &stats, &model);
    assert_eq!(stats.busy, model.busy, "{stats:?}");
    // The same step on the shipped (unpipelined) system: the WUVE's busy cycles grow by the
    // latency difference per UPDATE, the other engines' stay.
    let mut plain = SatSystem::new(&shipped()).unwrap();
    let (base, _) = linear_step_on_system(&mut plain, &x, &w32, &dy, pattern, timing);
    eprintln!(
        "step cycles: {} pipelined WUVE, {} unpipelined ({:.4}x); WUVE busy {} against {}",
        stats.cycles,
        base.cycles,
        stats.cycles as f64 / base.cycles as f64,
        stats.busy["wuve"],
        base.busy["wuve"]
    );
    assert!(
        stats.busy["wuve"] > base.busy["wuve"],
        "{stats:?} vs {base:?}"
    );
    for engine in ["dma", "stce", "sore"] {
        assert_eq!(stats.busy[engine], base.busy[engine], "{engine}");
    }
}

#[test]
fn im2col_conv_step_gemms_are_bit_exact() {
    // A 3x3 conv, Cin = 2 (K = Cin*Kh*Kw = 18 -> padded by the host to 24, a multiple of M),
    // Cout = 8, on a 3x3 image with padding 1: R = B*Ho*Wo = 9 rows (not a multiple of 4).
    // One read request outstanding: every LOAD waits for the one before it.
    let cfg = shipped_with_one_read_request();
    let mut system = SatSystem::new(&cfg).unwrap();
    let sys = cfg.system.clone().unwrap();
    let timing = MemoryTiming::fixed(sys.mem_latency, sys.mem_bytes_per_cycle);
    let (cin, cout, h, w, kk) = (2usize, 8usize, 3usize, 3usize, 24usize);
    let img = random_f16(h * w, cin, 21);
    // im2col in channel-major order (c, ky, kx), zero rows past K = 18.
    let mut x = Array2::from_elem((h * w, kk), f16::ZERO);
    for oy in 0..h {
        for ox in 0..w {
            for c in 0..cin {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) =
                            (oy as isize + ky as isize - 1, ox as isize + kx as isize - 1);
                        if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                            x[[oy * w + ox, c * 9 + ky * 3 + kx]] =
                                img[[iy as usize * w + ix as usize, c]];
                        }
                    }
                }
            }
        }
    }
    let dy = random_f16(h * w, cout, 22);
    let w32 = random_w32(cout, kk, 23);
    for pattern in [NmPattern::new(2, 8).unwrap(), NmPattern::new(8, 8).unwrap()] {
        let (stats, model) = linear_step_on_system(&mut system, &x, &w32, &dy, pattern, timing);
        assert_eq!(stats.busy, model.busy, "{stats:?}");
    }
}

#[test]
fn update_on_the_wuve_is_bit_exact() {
    use coforge_driver::sat::DramImage;
    use coforge_generator::engines::sat::isa::{Buf, Instr};
    use sparse_kernels::bdwp::update_element;
    use sparse_kernels::fp::to_f16;
    let cfg = shipped();
    let mut system = SatSystem::new(&cfg).unwrap();
    let geo = system.geo;
    let sys = cfg.system.clone().unwrap();
    // Cout = 6 (not a multiple of cols = 4), K = 16 (Kp = 16).
    let (cout, k) = (6usize, 16usize);
    let w32 = random_w32(cout, k, 31);
    let dw = random_w32(cout, k, 32).mapv(|v| v * 0.25);
    let mask = random_f16(cout, k, 33).mapv(|v| u8::from(v.to_f32() > 0.0));
    let (lr, lambda) = (0.125f32, 0.5f32);
    let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let mut dram = DramImage::new(&geo);
    let dw_at = dram.push(
        &geo,
        &geo.pack_weight(&bits(&dw), cout, k, Buf::Out),
        Buf::Out,
    );
    let w_lines = geo.pack_weight(&bits(&w32), cout, k, Buf::Master);
    let w_at = dram.push(&geo, &w_lines, Buf::Master);
    let mask_u32: Vec<u32> = mask.iter().map(|&m| u32::from(m)).collect();
    let m_at = dram.push(
        &geo,
        &geo.pack_weight(&mask_u32, cout, k, Buf::Mask),
        Buf::Mask,
    );
    let n = w_lines.count();
    let w32_out = dram.reserve(&geo, n, Buf::Master);
    let w16_out = dram.reserve(&geo, n, Buf::W16);
    let load = |buf, dram_addr, signal| Instr::Load {
        buf,
        buf_addr: 0,
        dram_addr,
        lines: n as u16,
        wait: 0,
        signal,
    };
    let program = vec![
        load(Buf::Out, dw_at, 1),
        load(Buf::Master, w_at, 2),
        load(Buf::Mask, m_at, 4),
        Instr::Update {
            out_addr: 0,
            master_addr: 0,
            w16_addr: 0,
            mask_addr: 0,
            lines: n as u16,
            wait: 7,
            signal: 8,
        },
        Instr::Store {
            buf: Buf::Master,
            buf_addr: 0,
            dram_addr: w32_out,
            lines: n as u16,
            wait: 8,
            signal: 0,
        },
        Instr::Store {
            buf: Buf::W16,
            buf_addr: 0,
            dram_addr: w16_out,
            lines: n as u16,
            wait: 0,
            signal: 0,
        },
        Instr::End,
    ];
    let timing = MemoryTiming::fixed(sys.mem_latency, sys.mem_bytes_per_cycle);
    let stats = system
        .run(&program, &mut dram, timing, lr, lambda, 100_000)
        .unwrap();
    eprintln!("{stats:?}");
    assert!(stats.busy["wuve"] > 0);
    let got32 = geo.unpack_weight(
        &dram.lines(&geo, w32_out, n, Buf::Master),
        cout,
        k,
        Buf::Master,
    );
    let got16 = geo.unpack_weight(&dram.lines(&geo, w16_out, n, Buf::W16), cout, k, Buf::W16);
    for o in 0..cout {
        for kk in 0..k {
            let want = update_element(w32[[o, kk]], dw[[o, kk]], mask[[o, kk]], lr, lambda);
            let at = o * k + kk;
            assert_eq!(got32[at], want.to_bits(), "w32' [{o}, {kk}]");
            assert_eq!(
                got16[at],
                u32::from(to_f16(want).to_bits()),
                "w16' [{o}, {kk}]"
            );
        }
    }
}

#[test]
fn prune_f_on_the_sore_is_bit_exact() {
    use coforge_driver::sat::DramImage;
    use coforge_generator::engines::sat::isa::{Buf, Instr};
    let cfg = shipped();
    let mut system = SatSystem::new(&cfg).unwrap();
    let geo = system.geo;
    // Cout = 8 (two cout blocks), K = 16 (two groups of M = 8); ties from the edge values.
    let (cout, k) = (8usize, 16usize);
    let w32 = adversarial_f16(cout, k, 41).mapv(|v| v.to_f32());
    let bcfg = BdwpConfig::new(NmPattern::new(2, 8).unwrap(), 0.01);
    let masks = bdwp::pregenerate(w32.view(), &bcfg).unwrap();
    let ff = bdwp::ff_operand(&masks, &bcfg).unwrap();
    let w16_bits: Vec<u32> = masks.w16.iter().map(|v| u32::from(v.to_bits())).collect();
    let mut dram = DramImage::new(&geo);
    let w16_lines = geo.pack_weight(&w16_bits, cout, k, Buf::W16);
    let w16_at = dram.push(&geo, &w16_lines, Buf::W16);
    let (kp, kg, blocks) = (geo.k_padded(k), geo.k_padded(k) / 8, cout.div_ceil(4));
    let wgt_out = dram.reserve(&geo, blocks * kg, Buf::Wgt);
    let mask_out = dram.reserve(&geo, blocks * kp, Buf::Mask);
    let mut program = vec![Instr::Load {
        buf: Buf::W16,
        buf_addr: 0,
        dram_addr: w16_at,
        lines: w16_lines.count() as u16,
        wait: 0,
        signal: 1,
    }];
    for cb in 0..blocks {
        program.push(Instr::PruneF {
            w16_addr: (cb * kp) as u16,
            lines: kp as u16,
            wgt_addr: (cb * kg) as u16,
            mask_addr: (cb * kp) as u16,
            wait: if cb == 0 { 1 } else { 0 },
            signal: if cb + 1 == blocks { 2 } else { 0 },
        });
    }
    program.extend([
        Instr::Store {
            buf: Buf::Wgt,
            buf_addr: 0,
            dram_addr: wgt_out,
            lines: (blocks * kg) as u16,
            wait: 2,
            signal: 0,
        },
        Instr::Store {
            buf: Buf::Mask,
            buf_addr: 0,
            dram_addr: mask_out,
            lines: (blocks * kp) as u16,
            wait: 0,
            signal: 0,
        },
        Instr::End,
    ]);
    let stats = run_pruning(&mut system, &program, &mut dram);
    eprintln!("{stats:?}");
    assert_eq!(stats.busy["sore"], 2 * (16 + 8 + 2));
    let values: Vec<u16> = ff.values.iter().map(|v| v.to_bits()).collect();
    let indices: Vec<u8> = ff.indices.iter().copied().collect();
    let want = geo.pack_wgt_sparse(&values, &indices, k, cout);
    assert_eq!(
        dram.lines(&geo, wgt_out, blocks * kg, Buf::Wgt),
        want,
        "FF operand lines"
    );
    let mask = geo.unpack_weight(
        &dram.lines(&geo, mask_out, blocks * kp, Buf::Mask),
        cout,
        k,
        Buf::Mask,
    );
    let want_mask: Vec<u32> = masks.mask_f.iter().map(|&b| u32::from(b)).collect();
    assert_eq!(mask, want_mask, "M_F");
}

/// Runs a pruning program (no update: lr = lambda = 0) with the config's fixed memory timing.
fn run_pruning(
    system: &mut SatSystem,
    program: &[coforge_generator::engines::sat::isa::Instr],
    dram: &mut coforge_driver::sat::DramImage,
) -> RunStats {
    let sys = &system.sys;
    let timing = MemoryTiming::fixed(sys.mem_latency, sys.mem_bytes_per_cycle);
    system
        .run(program, dram, timing, 0.0, 0.0, 100_000)
        .unwrap()
}

/// PRUNE_B of every k block of `w16 (x) mask_f` (Cout x K) on the system top, compared with
/// `sparse_kernels::nm` on that tensor padded with zero couts to whole streams (the weight
/// lines' padding) and zero k's to whole k blocks: the lines must equal `pack_wgt_sparse` of
/// the reference's selection along Cout. Returns the measured SORE busy cycles and their
/// documented estimate.
fn prune_b_on_system(
    system: &mut SatSystem,
    w16: &Array2<f16>,
    mask_f: &Array2<u8>,
) -> (RunStats, u64) {
    use coforge_driver::sat::DramImage;
    use coforge_generator::engines::sat::estimated_cycles;
    use coforge_generator::engines::sat::isa::{Buf, Instr};
    use ndarray::{s, Axis};
    use sparse_kernels::nm;
    let geo = system.geo;
    let sys = system.sys.clone();
    let (cols, m) = (geo.cols as usize, geo.m as usize);
    let (cout, k) = w16.dim();
    let kp = geo.k_padded(k);
    let (blocks, kblocks) = (cout.div_ceil(cols), k.div_ceil(cols));
    let streamed = (blocks * cols).div_ceil(m) * m;
    let groups = streamed / m;
    // Reference: S = W16 (x) M_F padded with zeros, M_B along Cout (axis 0), W_B compressed.
    let s_real = nm::apply_mask(w16.view(), mask_f.view());
    let mut s_pad = Array2::from_elem((streamed, kblocks * cols), f16::ZERO);
    s_pad.slice_mut(s![..cout, ..k]).assign(&s_real);
    let pattern = NmPattern::new(geo.n as usize, m).unwrap();
    let mask_b = nm::mask(s_pad.view(), pattern, Axis(0)).unwrap();
    let w_b = nm::compress_masked(s_pad.view(), mask_b.view(), pattern, Axis(0)).unwrap();
    let values: Vec<u16> = w_b.values.iter().map(|v| v.to_bits()).collect();
    let indices: Vec<u8> = w_b.indices.iter().copied().collect();
    let want = geo.pack_wgt_sparse(&values, &indices, streamed, kblocks * cols);

    let mut dram = DramImage::new(&geo);
    let w16_bits: Vec<u32> = w16.iter().map(|v| u32::from(v.to_bits())).collect();
    let mask_bits: Vec<u32> = mask_f.iter().map(|&b| u32::from(b)).collect();
    let w16_lines = geo.pack_weight(&w16_bits, cout, k, Buf::W16);
    let w16_at = dram.push(&geo, &w16_lines, Buf::W16);
    let mask_at = dram.push(
        &geo,
        &geo.pack_weight(&mask_bits, cout, k, Buf::Mask),
        Buf::Mask,
    );
    let wgt_out = dram.reserve(&geo, kblocks * groups, Buf::Wgt);
    // The mask lines sit at another address than the w16 lines: the two operands are apart.
    const MASK_AT: usize = 8;
    let lines = w16_lines.count() as u16;
    let mut program = vec![
        Instr::Load {
            buf: Buf::W16,
            buf_addr: 0,
            dram_addr: w16_at,
            lines,
            wait: 0,
            signal: 1,
        },
        Instr::Load {
            buf: Buf::Mask,
            buf_addr: MASK_AT as u16,
            dram_addr: mask_at,
            lines,
            wait: 0,
            signal: 2,
        },
    ];
    for kb in 0..kblocks {
        program.push(Instr::PruneB {
            w16_addr: (kb * cols) as u16,
            mask_addr: (MASK_AT + kb * cols) as u16,
            stride: kp as u16,
            blocks: blocks as u16,
            k_block: kb as u16,
            wgt_addr: (kb * groups) as u16,
            wait: if kb == 0 { 3 } else { 0 },
            signal: if kb + 1 == kblocks { 4 } else { 0 },
        });
    }
    program.extend([
        Instr::Store {
            buf: Buf::Wgt,
            buf_addr: 0,
            dram_addr: wgt_out,
            lines: (kblocks * groups) as u16,
            wait: 4,
            signal: 0,
        },
        Instr::End,
    ]);
    let stats = run_pruning(system, &program, &mut dram);
    let got = dram.lines(&geo, wgt_out, kblocks * groups, Buf::Wgt);
    for l in 0..want.count() {
        assert_eq!(
            got.line(l),
            want.line(l),
            "W_B line {l} (k block {}, group {}) of Cout {cout} x K {k}",
            l / groups,
            l % groups
        );
    }
    let estimate = program
        .iter()
        .filter(|i| matches!(i, Instr::PruneB { .. }))
        .map(|i| estimated_cycles(i, &geo, &sys))
        .sum();
    (stats, estimate)
}

#[test]
fn prune_b_on_the_sore_is_bit_exact_and_timed_as_documented() {
    let cfg = shipped();
    let mut system = SatSystem::new(&cfg).unwrap();
    // 1. The BDWP path itself: M_F and W16 from `bdwp::pregenerate`, and the lines must be
    //    `bdwp::bp_operand` packed (Cout = 16 and K = 16: no padding anywhere).
    let (cout, k) = (16usize, 16usize);
    let w32 = adversarial_f16(cout, k, 51).mapv(|v| v.to_f32());
    let bcfg = BdwpConfig::new(NmPattern::new(2, 8).unwrap(), 0.01);
    let masks = bdwp::pregenerate(w32.view(), &bcfg).unwrap();
    let (stats, estimate) = prune_b_on_system(&mut system, &masks.w16, &masks.mask_f);
    let bp = bdwp::bp_operand(&masks, &bcfg).unwrap();
    let geo = system.geo;
    let values: Vec<u16> = bp.values.iter().map(|v| v.to_bits()).collect();
    let indices: Vec<u8> = bp.indices.iter().copied().collect();
    assert_eq!(
        geo.pack_wgt_sparse(&values, &indices, cout, k).count(),
        2 * (k / 4)
    );
    eprintln!(
        "PRUNE_B 16 x 16: sore busy measured {} cycles, estimated {estimate}",
        stats.busy["sore"]
    );
    assert_eq!(stats.busy["sore"], estimate, "{stats:?}");

    // 2. Cout = 10 and K = 10: neither a multiple of M (8) nor of cols (4). Values from a
    //    small set (many ties, +0 and -0), one all-equal group (k = 3: +-1.5 over couts 0..8,
    //    all kept), one k whose couts are all pruned by M_F (k = 5), and ties across the
    //    blocks of the transposer.
    let (cout, k) = (10usize, 10usize);
    let set = [0.0f32, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5];
    let mut state = 7u32;
    let mut next = || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (state >> 16) as usize
    };
    let mut w16 = Array2::from_elem((cout, k), f16::ZERO);
    let mut mask_f = Array2::from_elem((cout, k), 0u8);
    for o in 0..cout {
        for kk in 0..k {
            w16[[o, kk]] = f16::from_f32(set[next() % set.len()]);
            mask_f[[o, kk]] = u8::from(next() % 3 != 0);
        }
    }
    for o in 0..8 {
        w16[[o, 3]] = f16::from_f32(if o % 2 == 0 { 1.5 } else { -1.5 });
        mask_f[[o, 3]] = 1;
    }
    for o in 0..cout {
        mask_f[[o, 5]] = 0;
    }
    let (stats, estimate) = prune_b_on_system(&mut system, &w16, &mask_f);
    eprintln!(
        "PRUNE_B 10 x 10: sore busy measured {} cycles, estimated {estimate}",
        stats.busy["sore"]
    );
    assert_eq!(stats.busy["sore"], estimate, "{stats:?}");
}

#[test]
fn scheduled_networks_with_prune_b_pass_the_harness_check() {
    use coforge_driver::sat::check_program;
    use coforge_generator::engines::sat::isa::Instr;
    use coforge_scheduler::{schedule, EnginePattern, Hardware, Network, Options};
    let cfg = shipped();
    let mut hw = Hardware::from_config(&cfg).unwrap();
    // The shipped config's instruction memory (512) is sized for the CI programs; a whole
    // network's step takes thousands of instructions.
    hw.system.imem_depth = 1 << 14;
    let geo = hw.geometry();
    for file in ["mlp.toml", "small-cnn-ci.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../networks")
            .join(file);
        let net = Network::load(&path, EnginePattern { n: hw.n, m: hw.m }).unwrap();
        let s = schedule(&net, &hw, Options::default()).unwrap();
        let program = s.program();
        assert!(
            program.iter().any(|i| matches!(i, Instr::PruneB { .. })),
            "{file}: no PRUNE_B"
        );
        let beats = s
            .memory_map
            .iter()
            .map(|r| r.addr + r.lines * r.beats_per_line)
            .max()
            .unwrap();
        check_program(&program, &geo, &hw.system, beats as usize)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}
