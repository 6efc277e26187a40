//! `coforge mlp`: train a small MLP with BDWP on a seeded synthetic dataset, once per N:M pattern
//! (same seed, data and initial weights for all), on the Rust reference backend; write the curves
//! (`curves.csv`, `curves.svg`) and `summary.json`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use coforge_trainer::{
    curves_csv, curves_svg, parse_pattern, pattern_label, train_mlp, Counting, Curve, DatasetKind,
    MlpConfig, Pass, Reference,
};
use sparse_kernels::bdwp::{BdwpConfig, MaskBSource, DEFAULT_LAMBDA};
use sparse_kernels::nm::NmPattern;

use crate::budget;
use crate::output::OutputDir;
use crate::report::{GemmMacs, MlpResult, MlpSummary, RtlCheck, COFORGE_VERSION};
use coforge_generator::config::Config;
use coforge_trainer::linear::validate_config;
use coforge_trainer::lockstep_mlp;
use coforge_trainer::rtl::RtlBackend;

/// Layer widths: 32 input features → 64 → 64 → 16 outputs (the real classes come first; the
/// padded logits are ignored). All multiples of 16, so every pattern up to 1:16 groups every axis.
pub const WIDTHS: [usize; 4] = [32, 64, 64, 16];

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DatasetArg {
    /// 3 spiral arms, 2-D points lifted to 32 features by a fixed random affine projection
    Spirals,
    /// 4 overlapping Gaussian blobs in 32 dimensions
    Blobs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MaskBSourceArg {
    /// M_B from W16⊙M_F (Bi-Mask)
    ForwardMasked,
    /// M_B from the dense W16
    Dense,
}

#[derive(Args, Debug)]
pub struct MlpArgs {
    /// Output directory (curves.csv, curves.svg, summary.json)
    #[arg(long)]
    out: PathBuf,
    /// Comma-separated patterns: `dense` or N:M (M <= 16 and dividing 16)
    #[arg(long, default_value = "dense,2:4,2:8,1:4")]
    patterns: String,
    /// Training steps (minibatches) per pattern
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Seed of the dataset, the initial weights and the minibatch order (ChaCha8)
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// SGD learning rate
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    lr: f32,
    /// Decay on pruned weights (SR-STE λ)
    #[arg(long, default_value_t = DEFAULT_LAMBDA, allow_negative_numbers = true)]
    lambda: f32,
    /// Minibatch size
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Evaluate (train loss, train and test accuracy) every this many steps
    #[arg(long, default_value_t = 10)]
    eval_every: usize,
    #[arg(long, value_enum, default_value = "spirals")]
    dataset: DatasetArg,
    /// Which tensor the backward mask is selected from
    #[arg(long, value_enum, default_value = "forward-masked")]
    mask_b_source: MaskBSourceArg,
    /// Also run the first --rtl-steps steps of every pattern this training engine can run (its
    /// own N:M, and dense) on the RTL in co-simulation, compared bit for bit with the reference
    #[arg(long, value_name = "CONFIG.toml")]
    rtl_config: Option<PathBuf>,
    #[arg(long, default_value_t = 3, requires = "rtl_config")]
    rtl_steps: usize,
}

fn parse_patterns(s: &str) -> anyhow::Result<Vec<NmPattern>> {
    let mut out: Vec<NmPattern> = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let p = parse_pattern(part).with_context(|| "in --patterns")?;
        if let Some(w) = WIDTHS.iter().find(|w| *w % p.m() != 0) {
            anyhow::bail!(
                "in --patterns: pattern {p}: M = {} does not divide the layer width {w} (widths are {WIDTHS:?})",
                p.m()
            );
        }
        if out.iter().any(|q| pattern_label(*q) == pattern_label(p)) {
            anyhow::bail!("in --patterns: '{}' appears twice", part.trim());
        }
        out.push(p);
    }
    anyhow::ensure!(!out.is_empty(), "--patterns is empty");
    Ok(out)
}

/// Whether the training engine built for `engine` (its N:M) runs `pattern`: its own N:M, and
/// dense on the same hardware.
fn rtl_can_run(engine: NmPattern, pattern: NmPattern) -> Result<(), String> {
    if pattern.is_dense() || engine == pattern {
        Ok(())
    } else {
        Err(format!(
            "the RTL engine is built for {engine}; it runs that pattern and dense only"
        ))
    }
}

pub fn run(a: MlpArgs) -> anyhow::Result<()> {
    let mut out = OutputDir::create(&a.out)?;
    let patterns = parse_patterns(&a.patterns)?;
    anyhow::ensure!(a.steps > 0, "--steps must be at least 1");
    anyhow::ensure!(a.eval_every > 0, "--eval-every must be at least 1");
    anyhow::ensure!(a.batch > 0, "--batch must be at least 1");
    if a.rtl_config.is_some() {
        anyhow::ensure!(
            a.rtl_steps >= 1,
            "--rtl-steps must be at least 1: a check of 0 steps compares nothing"
        );
        anyhow::ensure!(
            a.rtl_steps <= a.steps,
            "--rtl-steps {} is more than --steps {}; the RTL repeats the first steps of the run",
            a.rtl_steps,
            a.steps
        );
    }
    validate_config(&BdwpConfig {
        pattern: patterns[0],
        lr: a.lr,
        lambda: a.lambda,
        mask_b_source: MaskBSource::ForwardMasked,
    })
    .context("in --lr or --lambda")?;
    // A step holds the minibatch's activations (fp16 and f32), the gradients and their masked
    // copies for every layer.
    let width_sum: usize = WIDTHS.iter().sum();
    budget::Estimate::new(format!("training with batch {}", a.batch))
        .tensor(
            "activations and gradients of a minibatch",
            8,
            &[a.batch, width_sum],
            4,
        )
        .tensor("the minibatch's sample indices", 1, &[a.batch], 8)
        .check()?;
    let kind = match a.dataset {
        DatasetArg::Spirals => DatasetKind::Spirals,
        DatasetArg::Blobs => DatasetKind::Blobs,
    };
    let mask_b_source = match a.mask_b_source {
        MaskBSourceArg::ForwardMasked => MaskBSource::ForwardMasked,
        MaskBSourceArg::Dense => MaskBSource::Dense,
    };
    let data = kind.generate(a.seed);
    let rtl_config = a.rtl_config.as_deref().map(Config::load).transpose()?;
    if let Some(c) = &rtl_config {
        let s = c.stce("`coforge mlp --rtl-config`")?;
        let engine = NmPattern::new(s.n as usize, s.m as usize)?;
        if patterns.iter().all(|&p| rtl_can_run(engine, p).is_err()) {
            anyhow::bail!(
                "--rtl-config: the engine is built for {engine}, and none of --patterns {} is \
                 that or dense; add {engine} or dense to --patterns",
                a.patterns
            );
        }
    }
    let mut rtl = rtl_config.as_ref().map(RtlBackend::new).transpose()?;
    let mut rtl_exact = true;
    let started = Instant::now();
    let mut curves = Vec::new();
    let mut results = Vec::new();
    let mut last_cfg = None;
    for &pattern in &patterns {
        let label = pattern_label(pattern);
        let t0 = Instant::now();
        let mut cfg = MlpConfig::new(
            BdwpConfig {
                pattern,
                lr: a.lr,
                lambda: a.lambda,
                mask_b_source,
            },
            a.seed,
        );
        cfg.batch = a.batch;
        let mut backend = Counting::new(Reference);
        let records = train_mlp(&mut backend, &data, &WIDTHS, &cfg, a.steps, a.eval_every)
            .with_context(|| format!("training with pattern {label}"))?;
        let last = *records.last().expect("train_mlp records step 0");
        let best = records.iter().map(|r| r.test_acc).fold(0f32, f32::max);
        let macs = |p: Pass| backend.work(p).work;
        eprintln!(
            "  {label}: {} steps in {:.2} s",
            a.steps,
            t0.elapsed().as_secs_f64()
        );
        let rtl_check = match rtl.as_mut() {
            None => None,
            Some(rtl) => Some(match rtl_can_run(rtl.pattern(), pattern) {
                Err(reason) => {
                    eprintln!("  {label}: not run on RTL: {reason}");
                    RtlCheck::NotRun { ran: false, reason }
                }
                Ok(()) => {
                    let steps = lockstep_mlp(rtl, &data, &WIDTHS, &cfg, a.rtl_steps)
                        .with_context(|| format!("pattern {label} on RTL"))?;
                    let compared = steps.first().map_or(0, Vec::len);
                    let exact = steps.len() == a.rtl_steps
                        && compared > 0
                        && steps.iter().flatten().all(|c| c.bit_exact());
                    rtl_exact &= exact;
                    eprintln!(
                        "  {label}: first {} steps on RTL {}",
                        a.rtl_steps,
                        if exact {
                            "bit-exact on every tensor"
                        } else {
                            "DIFFER"
                        }
                    );
                    RtlCheck::Ran {
                        steps: a.rtl_steps,
                        bit_exact: exact,
                        tensors_compared_per_step: compared,
                        first_mismatch: steps
                            .iter()
                            .flatten()
                            .find_map(|c| c.first_mismatch.clone()),
                    }
                }
            }),
        };
        results.push(MlpResult {
            pattern: label.clone(),
            final_loss: last.loss,
            final_train_accuracy: last.train_acc,
            final_test_accuracy: last.test_acc,
            best_test_accuracy: best,
            training_gemm_macs: GemmMacs {
                ff: macs(Pass::Ff),
                bp: macs(Pass::Bp),
                wu: macs(Pass::Wu),
                total: macs(Pass::Ff) + macs(Pass::Bp) + macs(Pass::Wu),
            },
            rtl: rtl_check,
        });
        curves.push(Curve { label, records });
        last_cfg = Some(cfg);
    }
    let cfg = last_cfg.expect("at least one pattern");
    let title = format!(
        "BDWP MLP {:?} on {} (seed {}, lr {}, batch {}, loss scale {})",
        WIDTHS, data.name, a.seed, a.lr, cfg.batch, cfg.loss_scale
    );
    out.add("curves.csv", curves_csv(&curves).into_bytes());
    out.add(
        "curves.svg",
        curves_svg(&curves, &title, Some(data.chance_accuracy())).into_bytes(),
    );
    let summary = MlpSummary {
        backend: "reference",
        coforge_version: COFORGE_VERSION,
        dataset: data.name.to_string(),
        seed: a.seed,
        classes: data.classes,
        train_samples: data.train_y.len(),
        test_samples: data.test_y.len(),
        chance_accuracy: data.chance_accuracy(),
        widths: WIDTHS,
        steps: a.steps,
        eval_every: a.eval_every,
        batch: cfg.batch,
        lr: a.lr,
        lambda: a.lambda,
        loss_scale: cfg.loss_scale,
        mask_b_source: format!("{mask_b_source:?}"),
        results,
    };
    out.write_json("summary.json", &summary)?;
    for p in out.commit()? {
        say!("wrote {}", p.display());
    }
    anyhow::ensure!(
        rtl_exact,
        "the RTL run differs from the reference: see `rtl` in summary.json"
    );
    say!(
        "{:<8} {:>11} {:>10} {:>10}",
        "pattern",
        "final loss",
        "train acc",
        "test acc"
    );
    for c in &curves {
        let r = c.records.last().expect("non-empty");
        say!(
            "{:<8} {:>11.4} {:>10.3} {:>10.3}",
            c.label,
            r.loss,
            r.train_acc,
            r.test_acc
        );
    }
    say!(
        "{} pattern(s) x {} steps on {} in {:.1} s (chance accuracy {:.3})",
        curves.len(),
        a.steps,
        data.name,
        started.elapsed().as_secs_f64(),
        data.chance_accuracy()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_checked() {
        let p = parse_patterns("dense, 2:4,1:16").unwrap();
        assert_eq!(p.len(), 3);
        for (bad, msg) in [
            ("2:4,x", "'x' is not 'dense' or N:M"),
            ("2:3", "M = 3 does not divide the layer width 32"),
            ("2:4,2:4", "'2:4' appears twice"),
            ("dense,4:4", "'4:4' appears twice"),
            ("5:4", "N must not exceed M"),
            (",", "--patterns is empty"),
        ] {
            let e = format!("{:#}", parse_patterns(bad).unwrap_err());
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }
}
