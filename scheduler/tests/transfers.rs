//! The scheduler's DMA traffic: result STOREs that cover several tiles, LOADs that bring many
//! panels at once, a stationary panel reused over a reduction too long to double buffer, the
//! SORE's outputs stored in runs, and a bound on the estimated step that the
//! one-tile-per-transfer programs exceeded. Every schedule here also passes the static
//! dependency check.

use std::path::PathBuf;

use coforge_scheduler::isa::{Buf, Instr};
use coforge_scheduler::{schedule, validate, EnginePattern, Hardware, Network, Options, Pass};

/// The bench's 4 x 4 2:8 system (`cargo bench -p coforge-scheduler --bench networks`).
fn bench_hw() -> Hardware {
    Hardware::with_defaults(4, 4, 2, 8, |s| {
        s.act_lines = 4096;
        s.wgt_lines = 4096;
        s.out_lines = 512;
        s.weight_lines = 8192;
    })
}

fn shipped(file: &str, hw: &Hardware) -> Network {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../networks")
        .join(file);
    Network::load(&path, EnginePattern { n: hw.n, m: hw.m }).unwrap()
}

/// A network file written for one test (unique name per test and process).
fn inline(name: &str, text: &str, hw: &Hardware) -> Network {
    let path = std::env::temp_dir().join(format!("coforge-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let net = Network::load(&path, EnginePattern { n: hw.n, m: hw.m });
    std::fs::remove_file(&path).ok();
    net.unwrap()
}

fn count(s: &coforge_scheduler::Schedule, f: impl Fn(&Instr) -> bool) -> usize {
    s.instructions.iter().filter(|e| f(&e.instr)).count()
}

#[test]
fn a_store_covers_the_results_of_several_tiles() {
    let hw = bench_hw();
    for file in ["mlp.toml", "small-cnn-ci.toml"] {
        let s = schedule(&shipped(file, &hw), &hw, Options::default()).unwrap();
        validate(&s).unwrap();
        let tiles = count(&s, |i| matches!(i, Instr::Gemm { last: true, .. }));
        let stores = count(&s, |i| matches!(i, Instr::Store { buf: Buf::Out, .. }));
        let widest = s
            .instructions
            .iter()
            .filter_map(|e| match e.instr {
                Instr::Store {
                    buf: Buf::Out,
                    lines,
                    ..
                } => Some(usize::from(lines)),
                _ => None,
            })
            .max()
            .unwrap();
        // One STORE per tile moved `rows` lines each; runs of tiles now share one.
        assert!(
            widest >= 8 * hw.rows,
            "{file}: widest result STORE {widest}"
        );
        assert!(
            4 * stores <= tiles,
            "{file}: {stores} STOREs for {tiles} tiles"
        );
    }
}

#[test]
fn a_wide_linear_layers_wu_loads_many_tiles_per_load() {
    // The small CNN's head: K = 4096 makes 1024 row tiles of X^T, each 4 act lines (batch 8
    // over N = 2), against 3 column tiles of dY.
    let hw = bench_hw();
    let net = inline(
        "fc",
        "name = \"fc\"\nbatch = 8\nnm = \"sparse\"\n\n[[layer]]\nname = \"fc\"\nkind = \"linear\"\nin = 4096\nout = 10\n",
        &hw,
    );
    let s = schedule(&net, &hw, Options::default()).unwrap();
    validate(&s).unwrap();
    let wu = |e: &&coforge_scheduler::Entry| e.pass == Some(Pass::Wu);
    let act_loads: Vec<u16> = s
        .instructions
        .iter()
        .filter(wu)
        .filter_map(|e| match e.instr {
            Instr::Load {
                buf: Buf::Act,
                lines,
                ..
            } => Some(lines),
            _ => None,
        })
        .collect();
    let gemms = s.instructions.iter().filter(wu).count();
    assert!(!act_loads.is_empty());
    // Each LOAD brings at least 16 tiles' X^T panels (4 lines each), so the 3 x 1024 tiles
    // need a few dozen LOADs, not one per tile.
    assert!(act_loads
        .iter()
        .all(|&l| l >= 16 * 4 || l == act_loads[act_loads.len() - 1]));
    assert!(
        act_loads.len() * 16 <= gemms,
        "{} act LOADs",
        act_loads.len()
    );
    // And the layer's BP (1024 column tiles of 2 groups of W_B) likewise.
    let bp_loads = count(&s, |i| matches!(i, Instr::Load { buf: Buf::Wgt, .. }));
    assert!(bp_loads < 200, "{bp_loads} wgt LOADs");
}

#[test]
fn the_estimated_steps_stay_below_the_one_tile_per_transfer_programs() {
    // Estimated steps of the programs that loaded one panel and stored one tile per transfer
    // (2:8 / dense, the first layer's dX not computed): MLP 42,962 / 53,887, small CNN
    // 1,604,895 / 2,373,405. The bounds leave room for small changes of the cost model but fail
    // if transfers go back to one tile or weight work back to one STORE per GEMM.
    let hw = bench_hw();
    for (file, sparse_bound, dense_bound) in [
        ("mlp.toml", 41_000, 51_000),
        ("small-cnn.toml", 1_500_000, 2_340_000),
    ] {
        let net = shipped(file, &hw);
        let sparse = schedule(&net, &hw, Options::default()).unwrap();
        let dense = schedule(
            &net.with_sparsity(coforge_scheduler::Sparsity::Dense),
            &hw,
            Options::default(),
        )
        .unwrap();
        eprintln!(
            "{file}: 2:8 {} dense {}",
            sparse.step_cycles_estimated, dense.step_cycles_estimated
        );
        assert!(sparse.step_cycles_estimated <= sparse_bound, "{file} 2:8");
        assert!(dense.step_cycles_estimated <= dense_bound, "{file} dense");
    }
}

#[test]
fn a_reduction_too_long_to_double_buffer_still_reuses_the_stationary_panel() {
    // The small CNN's conv1 at batch 8: WU reduces over R = 8192 rows (4096 groups), so no
    // panel of X^T or dY fits twice in 4096 lines. The old Split order read both operands for
    // every tile (8 x 4 tiles: 262,144 beats); one panel now stays while the other streams in
    // reduction chunks, and the stationary one is read once.
    let hw = bench_hw();
    let net = inline(
        "conv1",
        "name = \"conv1\"\nbatch = 8\nnm = \"dense\"\n\n[[layer]]\nname = \"conv1\"\nkind = \"conv\"\ncin = 3\ncout = 16\nkh = 3\nkw = 3\npadding = 1\nh = 32\nw = 32\n",
        &hw,
    );
    let s = schedule(&net, &hw, Options::default()).unwrap();
    validate(&s).unwrap();
    let wu = s.tilings.iter().find(|t| t.pass == Pass::Wu).unwrap();
    assert_eq!(wu.groups, 4096);
    assert_ne!(
        wu.tiling.order,
        coforge_scheduler::tiling::Order::Split,
        "{wu:?}"
    );
    assert!(wu.tiling.single && wu.tiling.chunk < wu.groups, "{wu:?}");
    assert!(wu.tiling.operand_beats <= 170_000, "{wu:?}");
    // Each tile's GEMMs keep the sum in the PEs over the chunks: first, then last.
    let gemms: Vec<(bool, bool)> = s
        .instructions
        .iter()
        .filter(|e| e.pass == Some(Pass::Wu))
        .filter_map(|e| match e.instr {
            Instr::Gemm { first, last, .. } => Some((first, last)),
            _ => None,
        })
        .collect();
    assert_eq!(gemms.iter().filter(|g| g.1).count(), 8 * 4);
    assert!(gemms.len() > 8 * 4);
}

#[test]
fn the_sores_outputs_leave_the_wgt_ring_in_runs() {
    // The head again, with its dX (so PRUNE_B makes W_B for it): 1024 k blocks, each PRUNE_B
    // writing 2 wgt lines of W_B' (10 output channels over M = 8). They used to leave with one
    // STORE each; consecutive ones now share a STORE.
    let hw = bench_hw();
    let net = inline(
        "fc-dx",
        "name = \"fc\"\nbatch = 8\nnm = \"sparse\"\ninput_gradient = true\n\n[[layer]]\nname = \"fc\"\nkind = \"linear\"\nin = 4096\nout = 10\n",
        &hw,
    );
    let s = schedule(&net, &hw, Options::default()).unwrap();
    validate(&s).unwrap();
    let prune_b = count(&s, |i| matches!(i, Instr::PruneB { .. }));
    let w_b_stores = s
        .instructions
        .iter()
        .filter(|e| e.pass == Some(Pass::PruneB))
        .filter(|e| matches!(e.instr, Instr::Store { buf: Buf::Wgt, .. }))
        .count();
    assert_eq!(prune_b, 1024);
    assert!(16 * w_b_stores <= prune_b, "{w_b_stores} W_B' STOREs");
}
