//! `coforge golden deform`: the deformable-convolution reference (`sparse_kernels::deform`) on
//! `.npy` tensors.
//!
//! - `--mode codenet`: `x` int8 `[H, W, C]` or `[B, H, W, C]`, `dilation` uint8 `[Hout, Wout]`,
//!   `w` int8 `[C, 3, 3]` (int4 values), `scale` and `bias` int16 `[C]`, optionally a 1×1 front
//!   (`pw-w` int8 `[Cout, Cin]`, `pw-scale`, `pw-bias` int16 `[Cout]`). Writes `y.npy` (int8,
//!   NHWC, the rank of `x`) and `acc.npy` (int32, the depthwise sums before quantizing).
//! - `--mode dcnv2`: torchvision's layouts, `x` int8 `[B, Cin, H, W]`, `offset` int16 or int32 Q·f,
//!   optional `mask` int16 or int32 Q0.g, `w` int8 `[Cout, Cin/groups, kh, kw]`. Writes `y.npy`
//!   (int32 `[B, Cout, Hout, Wout]`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};
use ndarray::{Array, ArrayD, Axis, Dimension, Ix4};
use sparse_kernels::deform::codenet::{self, CodenetBlock, Depthwise, Pointwise, Quantizer};
use sparse_kernels::deform::dcnv2::{self, FixedFormat, Geometry};

use super::commit;
use crate::output::OutputDir;
use crate::tensor_io::{read_npy_nd, NpyElement, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeformMode {
    /// CoDeNet-exact: depthwise 3x3, one integer dilation per output pixel, int4 weights, quantized
    Codenet,
    /// DCNv2 in fixed point: Q.f offsets, optional Q0.g mask, int32 output (torchvision layouts)
    Dcnv2,
}

#[derive(Args, Debug)]
pub struct DeformArgs {
    #[arg(long, value_enum)]
    mode: DeformMode,
    /// Activations: codenet int8 [H, W, C] or [B, H, W, C]; dcnv2 int8 [B, Cin, H, W]
    #[arg(long)]
    x: PathBuf,
    /// Weights: codenet int8 [C, 3, 3] holding int4 values; dcnv2 int8 [Cout, Cin/groups, kh, kw]
    #[arg(long)]
    w: PathBuf,
    /// codenet: the dilation map (.npy, uint8 [Hout, Wout]); dcnv2: DH,DW (default 1,1)
    #[arg(long)]
    dilation: Option<String>,
    /// codenet: 1 or 2 (default 1); dcnv2: SH,SW (default 1,1)
    #[arg(long)]
    stride: Option<String>,
    /// codenet: depthwise scale, int16 [C]
    #[arg(long)]
    scale: Option<PathBuf>,
    /// codenet: depthwise bias, int16 [C]
    #[arg(long)]
    bias: Option<PathBuf>,
    /// codenet: ReLU in both quantizers (it cannot change the output; kept for fidelity)
    #[arg(long)]
    relu: bool,
    /// codenet: 1x1 front weights, int8 [Cout, Cin] holding int4 values
    #[arg(long)]
    pw_w: Option<PathBuf>,
    /// codenet: 1x1 front scale, int16 [Cout]
    #[arg(long)]
    pw_scale: Option<PathBuf>,
    /// codenet: 1x1 front bias, int16 [Cout]
    #[arg(long)]
    pw_bias: Option<PathBuf>,
    /// dcnv2: offsets, int16 or int32 Q.f [B, 2*G*kh*kw, Hout, Wout] (dy then dx per tap)
    #[arg(long)]
    offset: Option<PathBuf>,
    /// dcnv2: fractional bits f of the offsets
    #[arg(long)]
    frac_bits: Option<u32>,
    /// dcnv2: modulation mask, int16 or int32 Q0.g [B, G*kh*kw, Hout, Wout], values 0..=2^g
    #[arg(long)]
    mask: Option<PathBuf>,
    /// dcnv2: bits g of the mask (2^g is 1.0); required with --mask
    #[arg(long)]
    mask_bits: Option<u32>,
    /// dcnv2: PH,PW (default 0,0)
    #[arg(long)]
    padding: Option<String>,
    /// dcnv2: offset groups G (default 1); Cin must be a multiple of it
    #[arg(long)]
    offset_groups: Option<usize>,
    /// dcnv2: the int8 value that out-of-image corners read (default 0)
    #[arg(long, allow_negative_numbers = true)]
    zero_point: Option<i8>,
    /// Output directory
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: DeformArgs) -> anyhow::Result<()> {
    let out = OutputDir::create(&a.out)?;
    match a.mode {
        DeformMode::Codenet => codenet_verb(&a, out),
        DeformMode::Dcnv2 => dcnv2_verb(&a, out),
    }
}

/// Rejects the flags of the other mode, so that a typo does not silently change nothing.
fn reject(mode: &str, flags: &[(&str, bool)]) -> anyhow::Result<()> {
    match flags.iter().find(|(_, given)| *given) {
        Some((name, _)) => bail!("--{name} does not apply to --mode {mode}; remove it"),
        None => Ok(()),
    }
}

fn required<'a, T>(v: &'a Option<T>, flag: &str, mode: &str) -> anyhow::Result<&'a T> {
    v.as_ref()
        .ok_or_else(|| anyhow!("--mode {mode} needs --{flag}"))
}

/// Reads `path` as an array of `T` of rank `rank`, naming the file, its role and the layout.
pub(crate) fn read<T: NpyElement, D: Dimension>(
    path: &Path,
    role: &str,
    layout: &str,
) -> anyhow::Result<Array<T, D>> {
    let a = T::unwrap(read_npy_nd(path)?).map_err(|t| {
        anyhow!(
            "{} ({role}) must be {}, not {}",
            path.display(),
            T::DTYPE.name(),
            t.dtype().name()
        )
    })?;
    ranked(a, path, role, layout)
}

fn ranked<T, D: Dimension>(
    a: ArrayD<T>,
    path: &Path,
    role: &str,
    layout: &str,
) -> anyhow::Result<Array<T, D>> {
    let shape = a.shape().to_vec();
    a.into_dimensionality().map_err(|_| {
        anyhow!(
            "{} ({role}) must be {layout}, but its shape is {shape:?}",
            path.display()
        )
    })
}

/// Reads Q-format integers stored as int16 or int32.
pub(crate) fn read_fixed(path: &Path, role: &str, layout: &str) -> anyhow::Result<Array<i32, Ix4>> {
    let a = match read_npy_nd(path)? {
        Tensor::I32(a) => a,
        Tensor::I16(a) => a.mapv(i32::from),
        t => bail!(
            "{} ({role}) must be int16 or int32, not {}",
            path.display(),
            t.dtype().name()
        ),
    };
    ranked(a, path, role, layout)
}

fn quantizer(scale: &Path, bias: &Path, relu: bool, stage: &str) -> anyhow::Result<Quantizer> {
    Ok(Quantizer {
        scale: read::<i16, _>(scale, &format!("{stage} scale"), "int16 [C]")?,
        bias: read::<i16, _>(bias, &format!("{stage} bias"), "int16 [C]")?,
        relu,
    })
}

/// The files of a CoDeNet block (`golden deform --mode codenet` and `verify` on a mode-A
/// engine read the same ones, with the same flags and messages).
pub(crate) struct CodenetFiles<'a> {
    pub w: &'a Path,
    pub dilation: &'a Path,
    pub scale: &'a Path,
    pub bias: &'a Path,
    pub relu: bool,
    pub pw_w: Option<&'a Path>,
    pub pw_scale: Option<&'a Path>,
    pub pw_bias: Option<&'a Path>,
}

impl CodenetFiles<'_> {
    /// Reads the block; each error names the file, its role and the layout it needs.
    pub(crate) fn read(&self, stride: usize) -> anyhow::Result<CodenetBlock> {
        let pointwise = match (self.pw_w, self.pw_scale, self.pw_bias) {
            (None, None, None) => None,
            (Some(w), Some(s), Some(b)) => Some(Pointwise {
                w: read::<i8, _>(w, "1x1 weights", "int8 [Cout, Cin]")?,
                quant: quantizer(s, b, self.relu, "1x1")?,
            }),
            _ => bail!(
                "the 1x1 front needs all of --pw-w, --pw-scale and --pw-bias, or none of them"
            ),
        };
        let depthwise = Depthwise {
            w: read::<i8, _>(self.w, "depthwise weights", "int8 [C, 3, 3]")?,
            dilation: read::<u8, _>(self.dilation, "dilation map", "uint8 [Hout, Wout]")?,
            stride,
            quant: quantizer(self.scale, self.bias, self.relu, "depthwise")?,
        };
        Ok(CodenetBlock {
            pointwise,
            depthwise: Some(depthwise),
        })
    }
}

fn codenet_verb(a: &DeformArgs, mut out: OutputDir) -> anyhow::Result<()> {
    let mode = "codenet";
    reject(
        mode,
        &[
            ("offset", a.offset.is_some()),
            ("frac-bits", a.frac_bits.is_some()),
            ("mask", a.mask.is_some()),
            ("mask-bits", a.mask_bits.is_some()),
            ("padding", a.padding.is_some()),
            ("offset-groups", a.offset_groups.is_some()),
            ("zero-point", a.zero_point.is_some()),
        ],
    )?;
    let x: ArrayD<i8> = read(&a.x, "x", "int8 [H, W, C] or [B, H, W, C]")?;
    let batched = match x.ndim() {
        4 => true,
        3 => false,
        _ => bail!(
            "{} (x) must be int8 [H, W, C] or [B, H, W, C], but its shape is {:?}",
            a.x.display(),
            x.shape()
        ),
    };
    let x4 = if batched { x } else { x.insert_axis(Axis(0)) };
    let x4 = x4.into_dimensionality::<Ix4>().expect("rank checked");
    let dpath = PathBuf::from(required(&a.dilation, "dilation", mode)?);
    let stride = match a.stride.as_deref() {
        None | Some("1") => 1,
        Some("2") => 2,
        Some(s) => bail!("--stride {s} is not valid for --mode codenet: use 1 or 2"),
    };
    let block = CodenetFiles {
        w: &a.w,
        dilation: &dpath,
        scale: required(&a.scale, "scale", mode)?,
        bias: required(&a.bias, "bias", mode)?,
        relu: a.relu,
        pw_w: a.pw_w.as_deref(),
        pw_scale: a.pw_scale.as_deref(),
        pw_bias: a.pw_bias.as_deref(),
    }
    .read(stride)?;
    let r = codenet::codenet_block(x4.view(), &block).with_context(|| {
        format!(
            "codenet layer failed (x = {}, w = {}, dilation = {})",
            a.x.display(),
            a.w.display(),
            dpath.display()
        )
    })?;
    if batched {
        out.add_npy("y.npy", r.y.view());
        out.add_npy("acc.npy", r.acc.view());
    } else {
        out.add_npy("y.npy", r.y.index_axis(Axis(0), 0));
        out.add_npy("acc.npy", r.acc.index_axis(Axis(0), 0));
    }
    commit(out)
}

/// Parses `A,B` (or a single `A` for both) into two positive or non-negative integers.
fn pair(flag: &str, v: Option<&str>, default: usize, min: usize) -> anyhow::Result<[usize; 2]> {
    let Some(v) = v else {
        return Ok([default; 2]);
    };
    let parts: Vec<Option<usize>> = v.split(',').map(|p| p.trim().parse().ok()).collect();
    match parts.as_slice() {
        [Some(a)] if *a >= min => Ok([*a, *a]),
        [Some(a), Some(b)] if *a >= min && *b >= min => Ok([*a, *b]),
        _ => bail!("--{flag} '{v}' is not Y,X with integers of at least {min}, e.g. 1,1"),
    }
}

fn dcnv2_verb(a: &DeformArgs, mut out: OutputDir) -> anyhow::Result<()> {
    let mode = "dcnv2";
    reject(
        mode,
        &[
            ("scale", a.scale.is_some()),
            ("bias", a.bias.is_some()),
            ("relu", a.relu),
            ("pw-w", a.pw_w.is_some()),
            ("pw-scale", a.pw_scale.is_some()),
            ("pw-bias", a.pw_bias.is_some()),
        ],
    )?;
    let f = *required(&a.frac_bits, "frac-bits", mode)?;
    let g = match (&a.mask, a.mask_bits) {
        (Some(_), Some(g)) => g,
        (None, None) => 0,
        (Some(_), None) => bail!("--mask needs --mask-bits G (the mask is Q0.G, 2^G is 1.0)"),
        (None, Some(_)) => bail!("--mask-bits applies only with --mask"),
    };
    let fmt = FixedFormat::new(f, g, a.zero_point.unwrap_or(0))
        .context("--frac-bits or --mask-bits out of range")?;
    let geom = Geometry {
        stride: pair("stride", a.stride.as_deref(), 1, 1)?,
        padding: pair("padding", a.padding.as_deref(), 0, 0)?,
        dilation: pair("dilation", a.dilation.as_deref(), 1, 1)?,
        offset_groups: a.offset_groups.unwrap_or(1),
        ..Geometry::default()
    };
    let x = read::<i8, Ix4>(&a.x, "x", "int8 [B, Cin, H, W]")?;
    let w = read::<i8, Ix4>(&a.w, "weights", "int8 [Cout, Cin/groups, kh, kw]")?;
    let offset_path = required(&a.offset, "offset", mode)?;
    let offset = read_fixed(offset_path, "offset", "[B, 2*G*kh*kw, Hout, Wout]")?;
    let mask = match &a.mask {
        Some(p) => Some(read_fixed(p, "mask", "[B, G*kh*kw, Hout, Wout]")?),
        None => None,
    };
    let y = dcnv2::dcnv2_fixed(
        x.view(),
        offset.view(),
        mask.as_ref().map(|m| m.view()),
        w.view(),
        &geom,
        &fmt,
    )
    .with_context(|| {
        let mask = a.mask.as_ref().map(|m| format!(", mask = {}", m.display()));
        format!(
            "dcnv2 layer failed (x = {}, offset = {}, w = {}{})",
            a.x.display(),
            offset_path.display(),
            a.w.display(),
            mask.unwrap_or_default()
        )
    })?;
    out.add_npy("y.npy", y.view());
    commit(out)
}
