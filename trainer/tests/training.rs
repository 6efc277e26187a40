//! BDWP trains: short, seeded MLP runs on the synthetic datasets, plus the reports.

use coforge_trainer::backend::{Counting, Pass, Reference};
use coforge_trainer::data::{blobs, spirals, DatasetKind, FEATURES};
use coforge_trainer::mlp::{init_weights, softmax_xent, BatchOrder, Mlp};
use coforge_trainer::report::CSV_HEADER;
use coforge_trainer::{
    curves_csv, curves_svg, parse_pattern, pattern_label, train_mlp, Curve, MlpConfig, Record,
};
use ndarray::{array, Axis};
use sparse_kernels::bdwp::BdwpConfig;
use sparse_kernels::nm::NmPattern;

const WIDTHS: [usize; 4] = [32, 64, 64, 16];

fn cfg(pattern: &str, seed: u64) -> MlpConfig {
    let mut c = MlpConfig::new(BdwpConfig::new(parse_pattern(pattern).unwrap(), 0.1), seed);
    c.batch = 32;
    c
}

fn run(pattern: &str, steps: usize, eval_every: usize) -> Vec<Record> {
    let data = spirals(1);
    train_mlp(
        &mut Reference,
        &data,
        &WIDTHS,
        &cfg(pattern, 1),
        steps,
        eval_every,
    )
    .unwrap()
}

#[test]
fn datasets_are_deterministic_per_seed() {
    for kind in [DatasetKind::Spirals, DatasetKind::Blobs] {
        let a = kind.generate(5);
        assert_eq!(a, kind.generate(5), "{kind:?}");
        assert_ne!(a.train_x, kind.generate(6).train_x, "{kind:?}");
        assert_eq!(a.features(), FEATURES);
        assert_eq!(a.train_x.nrows(), a.train_y.len());
        assert_eq!(a.test_x.nrows(), a.test_y.len());
        assert!(a.train_x.iter().all(|v| v.is_finite()));
        assert!(a.train_y.iter().chain(&a.test_y).all(|&y| y < a.classes));
    }
    let s = spirals(1);
    assert_eq!((s.classes, s.train_y.len(), s.test_y.len()), (3, 600, 300));
    assert!((s.chance_accuracy() - 1.0 / 3.0).abs() < 1e-6);
    let b = blobs(1);
    assert_eq!((b.classes, b.train_y.len(), b.test_y.len()), (4, 600, 300));
    // Same seed, same initial weights and batch order, whatever the pattern.
    assert_eq!(init_weights(&WIDTHS, 3), init_weights(&WIDTHS, 3));
    let (mut o1, mut o2) = (BatchOrder::new(10, 3), BatchOrder::new(10, 3));
    let batches: Vec<_> = (0..4).map(|_| o1.next_batch(4)).collect();
    assert_eq!(
        batches,
        (0..4).map(|_| o2.next_batch(4)).collect::<Vec<_>>()
    );
    // The first 10 of the 16 draws are one permutation: every index exactly once.
    let mut epoch: Vec<usize> = batches.concat()[..10].to_vec();
    epoch.sort_unstable();
    assert_eq!(epoch, (0..10).collect::<Vec<_>>());
}

#[test]
fn dense_training_reduces_the_loss_and_beats_chance() {
    let r = run("dense", 120, 40);
    let (first, last) = (r[0], *r.last().unwrap());
    assert_eq!(last.step, 120);
    assert!(last.loss < 0.3 * first.loss, "{first:?} -> {last:?}");
    assert!(last.train_acc > 0.8 && last.test_acc > 0.8, "{last:?}"); // chance: 1/3
}

#[test]
fn sparse_2_4_training_also_learns() {
    let r = run("2:4", 120, 60);
    let (first, last) = (r[0], *r.last().unwrap());
    assert!(last.loss < 0.5 * first.loss, "{first:?} -> {last:?}");
    assert!(last.test_acc > 0.7, "{last:?}");
}

#[test]
fn blobs_1_16_training_learns() {
    let data = blobs(2);
    let r = train_mlp(&mut Reference, &data, &WIDTHS, &cfg("1:16", 2), 60, 60).unwrap();
    let last = *r.last().unwrap();
    assert!(last.loss < r[0].loss && last.test_acc > 0.5, "{r:?}"); // chance: 1/4
}

#[test]
fn mlp_step_pass_accounting() {
    let data = spirals(1);
    for (p, frac) in [("dense", 1u64), ("1:4", 4)] {
        let c = cfg(p, 1);
        let mut be = Counting::new(Reference);
        let mut mlp = Mlp::init(&mut be, &WIDTHS, 3, &c).unwrap();
        let before = be.work(Pass::Prune).calls;
        let idx: Vec<usize> = (0..c.batch).collect();
        let x = data.train_x.select(Axis(0), &idx);
        mlp.train_batch(&mut be, x.view(), &data.train_y[..c.batch], &c)
            .unwrap();
        let b = c.batch as u64;
        let ff: u64 = WIDTHS.windows(2).map(|w| (w[0] * w[1]) as u64).sum::<u64>() * b;
        let bp: u64 = WIDTHS[1..]
            .windows(2)
            .map(|w| (w[0] * w[1]) as u64)
            .sum::<u64>()
            * b;
        assert_eq!(be.work(Pass::Ff).work, ff / frac, "{p}");
        assert_eq!(be.work(Pass::Bp).work, bp / frac, "{p}");
        assert_eq!(be.work(Pass::Wu).work, ff, "{p}");
        assert_eq!(be.work(Pass::Update).calls, 3, "{p}");
        let prunes = if p == "dense" { 0 } else { 6 };
        assert_eq!(before, prunes, "{p}");
        assert_eq!(be.work(Pass::Prune).calls, 2 * prunes, "{p}");
    }
}

#[test]
fn loss_scale_is_divided_out_of_lr() {
    let c = cfg("2:4", 1);
    let u = c.update_config();
    assert_eq!(u.lr, 0.1 / 1024.0);
    assert_eq!(u.lambda, c.bdwp.lambda * 1024.0);
    assert_eq!(u.pattern, c.bdwp.pattern);
}

#[test]
fn softmax_ignores_padded_logits() {
    let logits = array![[1.0f32, 2.0, 100.0], [3.0, 0.0, -5.0]];
    let (loss, correct, p) = softmax_xent(logits.view(), &[1, 1], 2);
    assert_eq!(correct, 1); // row 0 predicts 1 (logit 100 is padding), row 1 predicts 0
    let l0 = (1f32.exp() + 2f32.exp()).ln() - 2.0;
    let l1 = (3f32.exp() + 0f32.exp()).ln() - 0.0;
    assert!((loss - (l0 + l1)).abs() < 1e-5);
    assert_eq!(p.dim(), (2, 2));
    assert!((p.row(0).sum() - 1.0).abs() < 1e-6);
}

#[test]
fn csv_has_header_and_one_row_per_record() {
    let curves: Vec<Curve> = ["dense", "2:4"]
        .iter()
        .map(|p| Curve {
            label: pattern_label(parse_pattern(p).unwrap()),
            records: run(p, 10, 4),
        })
        .collect();
    // Steps 0, 4, 8 and the final 10.
    assert!(curves
        .iter()
        .all(|c| c.records.iter().map(|r| r.step).eq([0, 4, 8, 10])));
    let csv = curves_csv(&curves);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(CSV_HEADER, "pattern,step,loss,train_accuracy,test_accuracy");
    assert_eq!(lines.len(), 1 + 2 * 4);
    assert!(lines[1].starts_with("dense,0,"));
    assert!(lines[5].starts_with("2:4,0,"));
    assert!(lines[1..].iter().all(|l| l.split(',').count() == 5));

    let svg = curves_svg(&curves, "t <&> \"q\"", Some(1.0 / 3.0));
    assert!(svg.starts_with("<svg "), "{}", &svg[..40]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 2 * curves.len());
    assert!(svg.contains("t &lt;&amp;&gt; &quot;q&quot;"));
    assert!(svg.contains(">dense</text>") && svg.contains(">2:4</text>"));
    // Every opened element is self-closed or closed (a cheap well-formedness check).
    let opened = svg.matches('<').count();
    let self_closed = svg.matches("/>").count();
    let closing = svg.matches("</").count();
    assert_eq!(opened, self_closed + 2 * closing);
}

#[test]
fn bad_configurations_fail_clearly() {
    let data = spirals(1);
    let e = train_mlp(&mut Reference, &data, &[32, 24, 16], &cfg("1:16", 1), 1, 1).unwrap_err();
    assert!(format!("{e:#}").contains("multiples of M = 16"), "{e:#}");
    let e = train_mlp(&mut Reference, &data, &[16, 16], &cfg("2:4", 1), 1, 1).unwrap_err();
    assert!(e.to_string().contains("32 features"), "{e}");
    let mut c = cfg("2:4", 1);
    c.loss_scale = 0.0;
    assert!(train_mlp(&mut Reference, &data, &WIDTHS, &c, 1, 1).is_err());
    assert!(NmPattern::new(2, 4).is_ok());
}
