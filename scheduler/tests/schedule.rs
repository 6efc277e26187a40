//! Scheduling the shipped networks: validated programs, tilings that fit, deterministic output,
//! and the static check rejecting broken programs.

use std::path::PathBuf;

use coforge_scheduler::isa::{Buf, Engine, GemmMode, Instr};
use coforge_scheduler::validate::validate_program;
use coforge_scheduler::{
    report, schedule, validate, EnginePattern, Hardware, Network, Options, Pass, Schedule, Sparsity,
};

fn hw(rows: usize, cols: usize, n: usize, m: usize) -> Hardware {
    Hardware::with_defaults(rows, cols, n, m, |_| {})
}

fn network(file: &str, hw: &Hardware) -> Network {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../networks")
        .join(file);
    Network::load(&path, EnginePattern { n: hw.n, m: hw.m }).unwrap()
}

fn small(file: &str) -> (Schedule, Hardware) {
    let hw = hw(4, 4, 2, 8);
    let net = network(file, &hw);
    (schedule(&net, &hw, Options::default()).unwrap(), hw)
}

#[test]
fn shipped_small_networks_validate() {
    for file in ["mlp.toml", "small-cnn-ci.toml"] {
        let (s, _) = small(file);
        validate(&s).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(matches!(s.instructions.last().unwrap().instr, Instr::End));
        assert!(s.step_cycles_estimated > 0);
    }
}

/// The first layer has no BP pass (no dX) unless the network file sets `input_gradient = true`,
/// and then no dY, W_B, dX or (sparse) W_B' in DRAM and no PRUNE_B; its FF, WU, UPDATE and
/// PRUNE_F stay, and the other layers keep their BP. Checked with the shipped (dense) first
/// layer and with a sparse one.
#[test]
fn the_first_layer_computes_dx_only_with_input_gradient() {
    let hw = hw(4, 4, 2, 8);
    let shipped = network("small-cnn-ci.toml", &hw);
    assert!(!shipped.input_gradient(), "the default is off");
    for sparse_first in [false, true] {
        let net = if sparse_first {
            shipped.with_sparsity(Sparsity::Sparse)
        } else {
            shipped.clone()
        };
        for on in [false, true] {
            let s = schedule(&net.with_input_gradient(on), &hw, Options::default()).unwrap();
            validate(&s).unwrap();
            let count = |layer: usize, pass: Pass| {
                s.instructions
                    .iter()
                    .filter(|e| e.layer == Some(layer) && e.pass == Some(pass))
                    .count()
            };
            let at = format!("sparse first layer {sparse_first}, input_gradient {on}");
            assert_eq!(count(0, Pass::Bp) > 0, on, "{at}");
            assert_eq!(count(0, Pass::PruneB) > 0, on && sparse_first, "{at}");
            assert_eq!(count(0, Pass::PruneF) > 0, sparse_first, "{at}");
            for pass in [Pass::Ff, Pass::Wu, Pass::Update] {
                assert!(count(0, pass) > 0, "{at}: {pass:?}");
            }
            for layer in 1..s.layers.len() {
                assert!(count(layer, Pass::Bp) > 0, "{at}: layer {layer}");
            }
            let tensors: Vec<&str> = s
                .memory_map
                .iter()
                .filter(|r| r.layer == "conv1")
                .map(|r| r.tensor.as_str())
                .collect();
            for t in ["dy", "w_b", "dx"] {
                assert_eq!(tensors.contains(&t), on, "{at}: {t}");
            }
            assert_eq!(tensors.contains(&"w_b_new"), on && sparse_first, "{at}");
            let csv = report::layers_csv(&s);
            assert_eq!(csv.contains("\nconv1,bp,"), on, "{at}: {csv}");
            assert!(csv.contains("\nconv2,bp,"), "{at}: {csv}");
        }
    }
}

#[test]
fn resnet_macs_match_the_published_figures() {
    let hw = hw(16, 16, 2, 8);
    // Per 224 x 224 image, forward: ResNet-18 1.82 G, ResNet-50 4.1 G multiply-accumulates
    // (convs and fc; torchvision's model cards say 1.81 and 4.09 GFLOPS counted as MACs).
    for (file, low, high) in [
        ("resnet18.toml", 1.80e9, 1.83e9),
        ("resnet50.toml", 4.05e9, 4.15e9),
    ] {
        let net = network(file, &hw);
        let per_image = net.forward_macs() as f64 / net.batch as f64;
        assert!((low..high).contains(&per_image), "{file}: {per_image}");
    }
}

#[test]
fn schedules_are_deterministic() {
    let (a, _) = small("small-cnn-ci.toml");
    let (b, _) = small("small-cnn-ci.toml");
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert_eq!(report::gantt_svg(&a), report::gantt_svg(&b));
    assert_eq!(report::layers_csv(&a), report::layers_csv(&b));
    // And the JSON reads back to the same schedule.
    let back: Schedule = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    assert_eq!(back, a);
}

#[test]
fn a_gemm_that_reads_before_its_load_is_rejected() {
    let (mut s, _) = small("mlp.toml");
    // Drop the wait of the first GEMM that waits for a load: it could read its act lines before
    // they arrive.
    let at = s
        .instructions
        .iter()
        .position(|e| matches!(e.instr, Instr::Gemm { wait, .. } if wait != 0))
        .unwrap();
    if let Instr::Gemm { wait, .. } = &mut s.instructions[at].instr {
        *wait = 0;
    }
    // Take the matching signals away too, so that the tokens still pair.
    let err = validate(&s).unwrap_err();
    assert_eq!(err.index, at, "{err}");
    assert!(
        err.to_string().contains("not ordered before it") || err.to_string().contains("token"),
        "{err}"
    );
}

#[test]
fn a_gemm_moved_before_its_load_is_rejected_in_json() {
    let (s, _) = small("mlp.toml");
    let mut json: serde_json::Value = serde_json::to_value(&s).unwrap();
    let instrs = json["instructions"].as_array_mut().unwrap();
    let at = instrs.iter().position(|e| e["op"] == "gemm").unwrap();
    let gemm = instrs.remove(at);
    instrs.insert(0, gemm);
    let edited: Schedule = serde_json::from_value(json).unwrap();
    let err = validate(&edited).unwrap_err();
    assert_eq!(err.index, 0, "{err}");
    assert!(
        err.to_string().contains("no earlier instruction writes"),
        "{err}"
    );
}

fn tokens(from: Engine, to: Engine) -> u16 {
    coforge_scheduler::tokens::token(from, to)
}

/// Load act and wgt, a GEMM on them, then a load over the act lines the GEMM reads.
fn reload_program(gemm_signals: bool, reload_waits: bool) -> Vec<Instr> {
    let load = |buf, wait, signal| Instr::Load {
        buf,
        buf_addr: 0,
        dram_addr: 0,
        lines: 4,
        wait,
        signal,
    };
    let (d2s, s2d) = (
        tokens(Engine::Dma, Engine::Stce),
        tokens(Engine::Stce, Engine::Dma),
    );
    vec![
        load(Buf::Act, 0, 0),
        load(Buf::Wgt, 0, d2s),
        Instr::Gemm {
            mode: GemmMode::Sparse,
            act_addr: 0,
            wgt_addr: 0,
            groups: 4,
            out_addr: 0,
            first: true,
            last: true,
            wait: d2s,
            signal: if gemm_signals { s2d } else { 0 },
        },
        load(Buf::Act, if reload_waits { s2d } else { 0 }, 0),
        Instr::End,
    ]
}

#[test]
fn an_overwrite_before_the_reader_is_done_is_rejected() {
    let hw = hw(4, 4, 2, 8);
    validate_program(&reload_program(true, true), &hw).unwrap();
    let err = validate_program(&reload_program(false, false), &hw).unwrap_err();
    assert_eq!(err.index, 3, "{err}");
    assert!(err.to_string().contains("overwrites act line 0"), "{err}");
    assert!(err.to_string().contains("instruction 2"), "{err}");
}

mod random {
    use super::*;
    use proptest::prelude::*;

    fn layer() -> impl Strategy<Value = String> {
        prop_oneof![
            (1usize..40, 1usize..40, any::<bool>()).prop_map(|(i, o, dense)| format!(
                "[[layer]]\nkind = \"linear\"\nin = {i}\nout = {o}\nnm = \"{}\"\n",
                if dense { "dense" } else { "sparse" }
            )),
            (
                1usize..5,
                1usize..12,
                1usize..4,
                1usize..3,
                0usize..2,
                3usize..8
            )
                .prop_map(|(cin, cout, k, stride, padding, h)| format!(
                    "[[layer]]\nkind = \"conv\"\ncin = {cin}\ncout = {cout}\nkh = {k}\nkw = {k}\n\
                     stride = {stride}\npadding = {padding}\nh = {h}\nw = {h}\n"
                )),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        /// Every generated schedule of a random small network on a random system passes the
        /// static check, and so does the same network with interleave and pre-generation off.
        #[test]
        fn every_generated_schedule_validates(
            layers in prop::collection::vec(layer(), 1..4),
            batch in 1usize..4,
            shape in (1usize..5, 1usize..5),
            nm in prop_oneof![Just((2usize, 4usize)), Just((2, 8)), Just((1, 4)), Just((1, 16))],
            act in 64u32..300,
            wgt in 96u32..300,
            out in 32u32..128,
            interleave in any::<bool>(),
        ) {
            let hw = Hardware::with_defaults(shape.0, shape.1, nm.0, nm.1, |s| {
                s.act_lines = act;
                s.wgt_lines = wgt;
                s.out_lines = out;
                s.weight_lines = 512;
                s.mem_latency = 5;
            });
            let text = format!("name = \"r\"\nbatch = {batch}\n{}", layers.concat());
            let net = Network::from_toml(&text, "random", EnginePattern { n: hw.n, m: hw.m }).unwrap();
            let opts = Options { interleave, pregen: !interleave };
            match schedule(&net, &hw, opts) {
                Ok(s) => {
                    prop_assert!(validate(&s).is_ok(), "{}", validate(&s).unwrap_err());
                    prop_assert!(s.step_cycles_estimated > 0);
                }
                // Small buffers may not fit a layer: that must be a named error, not a panic.
                Err(e) => prop_assert!(e.to_string().contains("system."), "{e}"),
            }
        }
    }
}

/// A layer whose weights do not fit the weight buffers at once is pruned along Cout (PRUNE_B)
/// from W16' and M_F' reloaded from DRAM: those LOADs must come after the deferred STOREs that
/// wrote them (once they did not, and the system top read stale weights).
#[test]
fn a_prune_b_reload_reads_what_the_step_stored() {
    let hw = Hardware::with_defaults(4, 4, 2, 8, |s| s.weight_lines = 256);
    let net = network("mlp.toml", &hw);
    let s = schedule(&net, &hw, Options::default()).unwrap();
    let reloads = s
        .instructions
        .iter()
        .filter(|e| {
            e.pass == Some(coforge_scheduler::Pass::PruneB) && matches!(e.instr, Instr::Load { .. })
        })
        .count();
    assert!(reloads > 0, "the MLP's fc2 must need a reload on 256 lines");
    validate(&s).unwrap();
}

#[test]
fn a_load_of_an_output_before_its_store_is_rejected() {
    let (s, hw) = small("mlp.toml");
    let out = s
        .memory_map
        .iter()
        .find(|r| r.direction == coforge_scheduler::Direction::Output)
        .unwrap();
    let load = Instr::Load {
        buf: out.format,
        buf_addr: 0,
        dram_addr: out.addr as u32,
        lines: 1,
        wait: 0,
        signal: 0,
    };
    let err = coforge_scheduler::validate::validate_dram(&[load, Instr::End], &hw, &s.memory_map)
        .unwrap_err();
    assert_eq!(err.index, 0);
    assert!(
        err.to_string().contains("before a STORE wrote them"),
        "{err}"
    );
}
