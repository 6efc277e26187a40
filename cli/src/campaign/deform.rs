//! The deformable-convolution engine in a campaign: small mode-A engines (plain, and CoDeNet with
//! the 1x1 front at stride 1 and 2) and small DCNv2 depthwise engines (with and without a mask,
//! one and several taps per cycle), each case a random layer against the reference
//! (`sparse_kernels::deform`), under random back-pressure.
//!
//! Values come from the same distributions as the other engines' (uniform, the int8 edges -128
//! and 127, all-equal tensors), weights are int4 edges or uniform, quantizer scales and biases
//! include the int16 extremes (so the quantizer clamps), and the dilations of mode A are uniform
//! in `[1, max_dilation]`; DCNv2 offsets are uniform in `±max_offset` pixels, with the bound
//! itself drawn often (the window buffer's border).

use std::path::Path;

use anyhow::Context;
use coforge_driver::design::design_spec_of;
use coforge_driver::{dcnv2, deform};
use coforge_generator::artifacts::render;
use coforge_generator::config::{Config, DeformConfig, DeformMode};
use coforge_generator::engines::deform::dcnv2::Dcnv2Params;
use coforge_generator::engines::deform::ports;
use ndarray::{Array1, Array2, Array3, Array4};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sparse_kernels::deform::codenet::{CodenetBlock, Depthwise, Pointwise, Quantizer};
use sparse_kernels::deform::dcnv2::Geometry;

use super::{draw_i4, draw_i8, kind, tensor, CaseResult, Failure, Kind, Model, Variant};
use crate::tensor_io::encode;

/// The engines a deformable campaign runs (`[deform]` sections), small enough to build fast:
/// plain; CoDeNet with the 1x1 front at stride 1 and at stride 2; DCNv2 depthwise at 3 taps per
/// cycle (f = 4, a 4-bit mask, ±2 pixels) and at 9 (f = 3, a 2-bit mask, ±1 pixel).
const CONFIGS: [&str; 5] = [
    "mode = \"plain\"\nlanes = 3\nmax_width = 9\nmax_channels = 8",
    "mode = \"codenet\"\nlanes = 2\nmax_width = 8\nmax_dilation = 3\nmax_channels = 6\npointwise = true",
    "mode = \"codenet\"\nlanes = 2\nmax_width = 9\nmax_dilation = 2\nmax_channels = 4\nstride = 2",
    "mode = \"dcnv2\"\nlanes = 2\nmax_width = 8\nkernel = 3\nfrac_bits = 4\nmask_bits = 4\n\
     max_offset = 2\ndepthwise = true\ntaps_per_cycle = 3",
    "mode = \"dcnv2\"\nlanes = 3\nmax_width = 9\nkernel = 3\nfrac_bits = 3\nmask_bits = 2\n\
     max_offset = 1\ndepthwise = true\ntaps_per_cycle = 9",
];

/// Every deformable variant of a campaign.
pub(super) fn variants() -> anyhow::Result<Vec<Box<dyn Variant>>> {
    CONFIGS
        .iter()
        .map(|section| {
            let toml = format!("[deform]\n{section}\n");
            let full = Config::from_toml(&toml, "campaign config")?;
            let cfg = full.deform("`coforge campaign --engine deform`")?.clone();
            let spec = design_spec_of(&render(&full)?, &cfg.top, ports::CLOCK);
            Ok(Box::new(DeformVariant {
                model: Model::new(spec),
                cfg,
                toml,
            }) as Box<dyn Variant>)
        })
        .collect()
}

fn dcnv2_params(cfg: &DeformConfig) -> Option<Dcnv2Params> {
    (cfg.mode == DeformMode::Dcnv2).then(|| Dcnv2Params::of(cfg))
}

struct DeformVariant {
    model: Model,
    cfg: DeformConfig,
    /// The config file's text, written beside a failing case for its replay.
    toml: String,
}

impl Variant for DeformVariant {
    fn name(&self) -> String {
        let c = &self.cfg;
        let mode = format!("{:?}", c.mode).to_lowercase();
        match dcnv2_params(c) {
            Some(p) => format!(
                "{mode} {} lanes, {} taps/cycle, ±{} px",
                c.lanes, p.taps_per_cycle, p.max_offset
            ),
            None => format!(
                "{mode} {} lanes, stride {}, dilation <= {}{}",
                c.lanes,
                c.stride,
                c.dmax(),
                if c.has_pointwise() { ", 1x1 front" } else { "" }
            ),
        }
    }

    fn run(
        &mut self,
        case: u64,
        round: u64,
        rng: &mut ChaCha8Rng,
        out: &Path,
    ) -> anyhow::Result<CaseResult> {
        let cfg = self.cfg.clone();
        let (sim, _) = self.model.get()?;
        let seed = rng.random();
        let stall_rate = [0.0, 0.3, 0.9][rng.random_range(0..3)];
        let stem = format!("deform-case{case}");
        let mut r = match dcnv2_params(&cfg) {
            None => run_mode_a(sim, &cfg, rng, stall_rate, seed, &stem, out)?,
            Some(p) => run_dcnv2(sim, &p, round, rng, stall_rate, seed, &stem, out)?,
        };
        // The replay command names the engine's config, written beside the case's files.
        if let Some(f) = &mut r.failure {
            f.files
                .push((format!("{stem}.toml"), self.toml.clone().into_bytes()));
        }
        Ok(r)
    }
}

/// A random int16 quantizer per channel: uniform, or the int16 extremes (clamping).
fn quantizer(rng: &mut ChaCha8Rng, c: usize, relu: bool) -> Quantizer {
    let param = |rng: &mut ChaCha8Rng, span: i16| match rng.random_range(0..4) {
        0 => [i16::MIN, i16::MAX, 0, 1, -1][rng.random_range(0..5)],
        _ => rng.random_range(-span..span),
    };
    Quantizer {
        scale: Array1::from_shape_simple_fn(c, || param(rng, 3000)),
        bias: Array1::from_shape_simple_fn(c, || param(rng, 200)),
        relu,
    }
}

fn run_mode_a(
    sim: &mut coforge_sim::VerilatedModel,
    cfg: &DeformConfig,
    rng: &mut ChaCha8Rng,
    stall_rate: f64,
    seed: u64,
    stem: &str,
    out: &Path,
) -> anyhow::Result<CaseResult> {
    let stride = cfg.stride as usize;
    let h = rng.random_range(1..=7);
    let w = rng.random_range(1..=cfg.max_width as usize);
    let c = rng.random_range(1..=cfg.max_channels as usize);
    let cin = if cfg.has_pointwise() {
        rng.random_range(1..=6)
    } else {
        c
    };
    let x = tensor3(rng, (h, w, cin));
    let dmax = cfg.dmax().min(255) as u8;
    let dilation = Array2::from_shape_simple_fn((h.div_ceil(stride), w.div_ceil(stride)), || {
        rng.random_range(1..=dmax)
    });
    // One ReLU flag for both quantizers, as the engine's `--relu` replay sets them.
    let relu = rng.random();
    let wkind = kind(rng, 1, false);
    let depthwise = Depthwise {
        w: tensor(rng, (c, 9), wkind, draw_i4)
            .into_shape_with_order((c, 3, 3))
            .expect("c x 9 is c x 3 x 3"),
        dilation: dilation.clone(),
        stride,
        quant: quantizer(rng, c, relu),
    };
    let pointwise = cfg.has_pointwise().then(|| {
        let wkind = kind(rng, 1, false);
        Pointwise {
            w: tensor(rng, (c, cin), wkind, draw_i4),
            quant: quantizer(rng, c, relu),
        }
    });
    let mut files = vec![
        (format!("{stem}-x.npy"), encode(x.view())),
        (format!("{stem}-dilation.npy"), encode(dilation.view())),
        (format!("{stem}-w.npy"), encode(depthwise.w.view())),
        (
            format!("{stem}-scale.npy"),
            encode(depthwise.quant.scale.view()),
        ),
        (
            format!("{stem}-bias.npy"),
            encode(depthwise.quant.bias.view()),
        ),
    ];
    if let Some(pw) = &pointwise {
        files.push((format!("{stem}-pw-w.npy"), encode(pw.w.view())));
        files.push((
            format!("{stem}-pw-scale.npy"),
            encode(pw.quant.scale.view()),
        ));
        files.push((format!("{stem}-pw-bias.npy"), encode(pw.quant.bias.view())));
    }
    let block = CodenetBlock {
        pointwise,
        depthwise: Some(depthwise),
    };
    let pressure = deform::Pressure { stall_rate, seed };
    let o = deform::run_layer(sim, cfg, x.view(), &block, pressure)
        .with_context(|| format!("{h}x{w}x{cin} -> {c} layer"))?;
    let failure = (!o.bit_exact()).then(|| Failure {
        detail: match (&o.fault, &o.first_mismatch) {
            (Some(f), _) => f.to_string(),
            (None, Some(m)) => format!(
                "{h}x{w}x{cin} -> {c}: {} of {} outputs differ, first at (oy, ox, c) {:?}: \
                 golden {}, RTL {} (cycle {})",
                o.mismatches,
                o.golden.len(),
                m.index,
                m.golden,
                m.rtl,
                m.cycle
            ),
            (None, None) => "not bit-exact".into(),
        },
        replay: Some(verify_replay(out, stem, &files, relu)),
        files,
    });
    Ok(CaseResult {
        pattern: format!(
            "{}{}",
            if cfg.has_pointwise() { "1x1 + " } else { "" },
            if cfg.dmax() > 1 {
                "deformable 3x3"
            } else {
                "3x3"
            }
        ),
        elements: o.golden.len() as u64,
        failure,
    })
}

/// The `coforge verify` command that replays a failing case from its files in `out`
/// (`{stem}-x.npy` for `--x`, `{stem}-pw-w.npy` for `--pw-w`, `{stem}-offset.npy` for
/// `--offset`, ...) and its config `{stem}.toml`.
fn verify_replay(out: &Path, stem: &str, files: &[(String, Vec<u8>)], relu: bool) -> String {
    let at = |f: &str| out.join(format!("{stem}{f}")).display().to_string();
    let mut cmd = format!("coforge verify --config {}", at(".toml"));
    for (name, _) in files {
        let flag = name
            .strip_prefix(&format!("{stem}-"))
            .and_then(|n| n.strip_suffix(".npy"))
            .expect("a case's files are {stem}-{flag}.npy");
        cmd += &format!(" --{flag} {}", out.join(name).display());
    }
    if relu {
        cmd += " --relu";
    }
    cmd + &format!(" --out {}", at("-replay"))
}

/// int8 `[h, w, c]` pixels from one of the campaign's distributions.
fn tensor3(rng: &mut ChaCha8Rng, (h, w, c): (usize, usize, usize)) -> Array3<i8> {
    let k = match kind(rng, 1, false) {
        Kind::GroupsEqual(_) => Kind::Uniform,
        k => k,
    };
    tensor(rng, (h * w, c), k, draw_i8)
        .into_shape_with_order((h, w, c))
        .expect("h*w x c is h x w x c")
}

#[allow(clippy::too_many_arguments)]
fn run_dcnv2(
    sim: &mut coforge_sim::VerilatedModel,
    p: &Dcnv2Params,
    round: u64,
    rng: &mut ChaCha8Rng,
    stall_rate: f64,
    seed: u64,
    stem: &str,
    out: &Path,
) -> anyhow::Result<CaseResult> {
    let k = p.kernel as usize;
    let with_mask = round.is_multiple_of(2);
    let g = rng.random_range(1..=2);
    let cin = g * rng.random_range(1..=3);
    let (h, w) = (
        rng.random_range(k..=k + 4),
        rng.random_range(k..=p.max_width as usize),
    );
    let mut t = dcnv2::LayerTensors::random(p, (1, cin, h, w), cin, g, with_mask, rng.random())?;
    t.x = tensor3(rng, (h, w, cin))
        .permuted_axes([2, 0, 1])
        .as_standard_layout()
        .to_owned()
        .insert_axis(ndarray::Axis(0));
    // The bound itself, often: the window buffer's border.
    let bound = (p.max_offset as i32) << p.frac_bits;
    t.offset.mapv_inplace(|v| match rng.random_range(0..4) {
        0 => [bound, -bound, 0][rng.random_range(0..3)],
        _ => v,
    });
    t.geometry = Geometry {
        offset_groups: g,
        ..t.geometry
    };
    let files: Vec<(String, Vec<u8>)> = [
        (format!("{stem}-x.npy"), encode(t.x.view())),
        (format!("{stem}-offset.npy"), encode(t.offset.view())),
        (format!("{stem}-w.npy"), encode(t.w.view())),
    ]
    .into_iter()
    .chain(
        t.mask
            .as_ref()
            .map(|m: &Array4<i32>| (format!("{stem}-mask.npy"), encode(m.view()))),
    )
    .collect();
    let pressure = dcnv2::Pressure {
        stall_rate,
        gap_rate: stall_rate / 2.0,
        seed,
    };
    let v = dcnv2::verify_layer(sim, p, &t.layer(), None, pressure)
        .with_context(|| format!("{cin}x{h}x{w} layer with {g} offset groups"))?;
    let failure = v.comparison.first_mismatch.as_ref().map(|m| Failure {
        detail: format!(
            "{cin}x{h}x{w}, {g} offset groups{}: {} of {} outputs differ, first at {:?}: golden \
             {}, RTL {}",
            if with_mask { ", mask" } else { "" },
            v.comparison.mismatches,
            v.golden.len(),
            v.first_index,
            m.golden,
            m.rtl
        ),
        replay: Some(verify_replay(out, stem, &files, false)),
        files,
    });
    Ok(CaseResult {
        pattern: if with_mask {
            "dcnv2 with mask".into()
        } else {
            "dcnv2".into()
        },
        elements: v.golden.len() as u64,
        failure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The replay command names each file by the flag `coforge verify` reads it with.
    #[test]
    fn a_replay_passes_every_file_by_its_flag() {
        let names = [
            "x", "dilation", "w", "scale", "bias", "pw-w", "pw-scale", "pw-bias",
        ];
        let files: Vec<(String, Vec<u8>)> = names
            .iter()
            .map(|n| (format!("deform-case3-{n}.npy"), Vec::new()))
            .collect();
        let out = Path::new("c");
        let cmd = verify_replay(out, "deform-case3", &files, true);
        let at = |f: &str| out.join(f).display().to_string();
        assert!(cmd.starts_with(&format!(
            "coforge verify --config {}",
            at("deform-case3.toml")
        )));
        for n in names {
            let arg = format!(" --{n} {}", at(&format!("deform-case3-{n}.npy")));
            assert!(cmd.contains(&arg), "{arg} in {cmd}");
        }
        assert!(cmd.ends_with(&format!(" --relu --out {}", at("deform-case3-replay"))));
        assert!(!verify_replay(out, "deform-case3", &files, false).contains("--relu"));
    }
}
