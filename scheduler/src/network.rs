//! Network files: the layers of a network as TOML, validated and lowered to GEMM dimensions.
//!
//! ```toml
//! name = "small-cnn"
//! batch = 8
//! nm = "sparse"          # default of every layer: "sparse" (the engine's N:M), "N:M" or "dense"
//! input_gradient = false # default: the step does not compute dX of the first layer
//!
//! [[layer]]
//! name = "conv1"         # optional; default "layer<i>"
//! kind = "conv"          # cin, cout, kh, kw, stride (default 1), padding (default 0), h, w
//! cin = 3
//! cout = 16
//! kh = 3
//! kw = 3
//! padding = 1
//! h = 32
//! w = 32
//! nm = "dense"           # BDWP leaves the first layer dense
//!
//! [[layer]]
//! kind = "linear"        # in, out
//! in = 1024
//! out = 10
//! ```
//!
//! # Lowering
//! A linear layer is `X: batch x in`, `W: out x in`: R = batch, K = in, Cout = out.
//! A conv layer is lowered with im2col: `Ho = (h + 2*padding - kh) / stride + 1` (likewise `Wo`),
//! R = batch * Ho * Wo rows in `(b, oy, ox)` order and K = cin * kh * kw columns in `(c, i, j)`
//! order, column `(c*kh + i)*kw + j`: the order of `sparse_kernels::deform::dcnv2::im2col` and of
//! a torchvision weight `[cout, cin, kh, kw]` flattened row-major. The N:M groups of M_F run along
//! that K order, so a group holds M consecutive taps of one channel's kernel window (crossing into
//! the next channel when kh*kw is not a multiple of M).
//!
//! A layer's `nm` must be the engine's N:M or dense: the STCE has one N:M in hardware.
//!
//! # The input gradient
//! `input_gradient` (a boolean, default `false`) says whether the step computes dX of the first
//! layer, the gradient of the network's input. A training step does not need it (PyTorch does
//! not compute it for an input without `requires_grad`, and SAT does not either), so by default
//! the first layer has no BP pass ([`Layer::bp`] is false): no BP instructions, no dY operand in
//! the BP format, no W_B and no dX in DRAM. Its W_B' (PRUNE_B, when the layer is sparse) is not
//! pre-generated either: M_B and W_B serve only BP, so the next step would not read it. FF, WU,
//! UPDATE and PRUNE_F (the next M_F and W_F) stay. `input_gradient = true` computes dX (and
//! W_B') of the first layer like every other layer's, for a network that is a part of a larger
//! one or to compare dX.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A network file that cannot be used, with where and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct NetworkError {
    /// The file (or "network" for an in-memory text).
    pub origin: String,
    /// `(index, name)` of the layer at fault, if one is.
    pub layer: Option<(usize, String)>,
    pub message: String,
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "network `{}`", self.origin)?;
        if let Some((i, name)) = &self.layer {
            write!(f, ", layer {i} (`{name}`)")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The N:M pattern a layer trains with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sparsity {
    /// FF and BP in the STCE's dense mode; M_F and M_B are not pruned.
    Dense,
    /// FF and BP in sparse mode with the engine's N:M.
    Sparse,
}

/// What a layer computes, as written in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LayerKind {
    Linear {
        inputs: usize,
        outputs: usize,
    },
    Conv {
        cin: usize,
        cout: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        padding: usize,
        h: usize,
        w: usize,
    },
}

/// One layer, lowered: `X: r x k`, `W: cout x k`, `Y: r x cout`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub name: String,
    /// The layer as the file gives it.
    #[serde(rename = "spec")]
    pub kind: LayerKind,
    pub sparsity: Sparsity,
    /// Rows of X and Y: batch (linear) or batch * Ho * Wo (conv).
    pub r: usize,
    /// The reduction of FF: in (linear) or cin * kh * kw (conv).
    pub k: usize,
    pub cout: usize,
    /// The step runs the layer's BP pass (dX, and for a sparse layer the PRUNE_B of the next
    /// W_B): false only for the first layer of a network with `input_gradient = false` (the
    /// module docs). Absent in a `schedule.json` written before the key existed: true.
    #[serde(default = "computed")]
    pub bp: bool,
}

fn computed() -> bool {
    true
}

impl Layer {
    /// Multiply-accumulates of one dense GEMM of the layer (FF, BP and WU each have this many).
    pub fn macs(&self) -> u64 {
        (self.r * self.k * self.cout) as u64
    }
}

/// A validated network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Network {
    pub name: String,
    pub batch: usize,
    pub layers: Vec<Layer>,
}

/// The hardware's N:M, against which `nm = "N:M"` in a file is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnginePattern {
    pub n: usize,
    pub m: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkFile {
    name: String,
    batch: usize,
    #[serde(default)]
    nm: Option<String>,
    #[serde(default)]
    input_gradient: Option<toml::Value>,
    #[serde(default)]
    layer: Vec<LayerFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerFile {
    kind: String,
    name: Option<String>,
    nm: Option<String>,
    #[serde(rename = "in")]
    inputs: Option<usize>,
    #[serde(rename = "out")]
    outputs: Option<usize>,
    cin: Option<usize>,
    cout: Option<usize>,
    kh: Option<usize>,
    kw: Option<usize>,
    stride: Option<usize>,
    padding: Option<usize>,
    h: Option<usize>,
    w: Option<usize>,
}

impl Network {
    /// Reads and validates a network file.
    pub fn load(path: &Path, engine: EnginePattern) -> Result<Network, NetworkError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| NetworkError {
            origin: origin.clone(),
            layer: None,
            message: format!("cannot read it ({e}); check the --net path"),
        })?;
        Network::from_toml(&text, &origin, engine)
    }

    /// Parses and validates a network file's text; `origin` names it in errors.
    pub fn from_toml(
        text: &str,
        origin: &str,
        engine: EnginePattern,
    ) -> Result<Network, NetworkError> {
        let fail = |layer: Option<(usize, String)>, message: String| NetworkError {
            origin: origin.to_string(),
            layer,
            message,
        };
        let file: NetworkFile = toml::from_str(text)
            .map_err(|e| fail(None, format!("not a valid network file: {e}")))?;
        if file.batch == 0 {
            return Err(fail(None, "`batch` = 0; use a batch of at least 1".into()));
        }
        if file.layer.is_empty() {
            return Err(fail(
                None,
                "it has no layers; add `[[layer]]` entries (kind = \"linear\" or \"conv\")".into(),
            ));
        }
        let default = parse_nm(file.nm.as_deref().unwrap_or("sparse"), engine)
            .map_err(|m| fail(None, format!("`nm`: {m}")))?;
        let input_gradient = match &file.input_gradient {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                return Err(fail(
                    None,
                    format!(
                        "`input_gradient` = {other} is not a boolean; use `input_gradient = false` \
                         (the default: the step does not compute dX of the first layer) or \
                         `input_gradient = true` (it does)"
                    ),
                ))
            }
        };
        let mut layers = Vec::with_capacity(file.layer.len());
        for (i, l) in file.layer.iter().enumerate() {
            let name = l.name.clone().unwrap_or_else(|| format!("layer{i}"));
            let at = Some((i, name.clone()));
            let mut layer =
                lower(l, file.batch, name, default, engine).map_err(|m| fail(at.clone(), m))?;
            layer.bp = i > 0 || input_gradient;
            if layers.iter().any(|p: &Layer| p.name == layer.name) {
                return Err(fail(
                    at,
                    "two layers have this name; give each a unique `name`".into(),
                ));
            }
            layers.push(layer);
        }
        Ok(Network {
            name: file.name,
            batch: file.batch,
            layers,
        })
    }

    /// Every layer trained with the given sparsity (the dense baseline of a network).
    pub fn with_sparsity(&self, sparsity: Sparsity) -> Network {
        let mut net = self.clone();
        for l in &mut net.layers {
            l.sparsity = sparsity;
        }
        net
    }

    /// The network with the first layer's dX computed (`true`) or not: the file's
    /// `input_gradient`.
    pub fn with_input_gradient(&self, on: bool) -> Network {
        let mut net = self.clone();
        if let Some(first) = net.layers.first_mut() {
            first.bp = on;
        }
        net
    }

    /// Whether the step computes dX of the first layer (the file's `input_gradient`).
    pub fn input_gradient(&self) -> bool {
        self.layers.first().is_some_and(|l| l.bp)
    }

    /// Dense multiply-accumulates of one forward pass of the whole batch.
    pub fn forward_macs(&self) -> u64 {
        self.layers.iter().map(Layer::macs).sum()
    }

    /// The step's GEMM work in dense-mode MAC slots: FF, BP (where the step runs it) and WU of
    /// every layer, a sparse layer's FF and BP at `N/M` of their dense MACs (the STCE's sparse
    /// mode does M reduction elements in the time dense mode does N). WU is always dense.
    pub fn step_gemm_work(&self, pattern: EnginePattern) -> f64 {
        let nm = pattern.n as f64 / pattern.m as f64;
        self.layers
            .iter()
            .map(|l| {
                let macs = l.macs() as f64;
                let passes = if l.bp { 2.0 } else { 1.0 };
                let scale = match l.sparsity {
                    Sparsity::Sparse => nm,
                    Sparsity::Dense => 1.0,
                };
                macs * (passes * scale + 1.0)
            })
            .sum()
    }

    /// This network's ideal N:M speedup over its all-dense baseline on the same array: the
    /// ratio of [`step_gemm_work`](Self::step_gemm_work), as if every GEMM ran at the array's
    /// full rate and nothing else took time. It is `3 / (1 + 2N/M)` when every layer is sparse
    /// and every BP runs; a dense first layer (BDWP) or a skipped input gradient lowers it.
    pub fn ideal_speedup(&self, pattern: EnginePattern) -> f64 {
        self.with_sparsity(Sparsity::Dense).step_gemm_work(pattern) / self.step_gemm_work(pattern)
    }
}

fn parse_nm(text: &str, engine: EnginePattern) -> Result<Sparsity, String> {
    match text {
        "dense" => return Ok(Sparsity::Dense),
        "sparse" => return Ok(Sparsity::Sparse),
        _ => {}
    }
    let nm = text.split_once(':').and_then(|(n, m)| {
        Some((
            n.trim().parse::<usize>().ok()?,
            m.trim().parse::<usize>().ok()?,
        ))
    });
    let Some((n, m)) = nm else {
        return Err(format!(
            "`{text}` is not a pattern; use \"dense\", \"sparse\" (the engine's {}:{}) or \"N:M\"",
            engine.n, engine.m
        ));
    };
    if n == m {
        return Ok(Sparsity::Dense);
    }
    if (n, m) != (engine.n, engine.m) {
        return Err(format!(
            "{n}:{m} is not the engine's pattern {}:{} (the STCE has one N:M in hardware); use \
             \"{}:{}\", \"sparse\" or \"dense\", or a config with n = {n}, m = {m}",
            engine.n, engine.m, engine.n, engine.m
        ));
    }
    Ok(Sparsity::Sparse)
}

fn lower(
    l: &LayerFile,
    batch: usize,
    name: String,
    default: Sparsity,
    engine: EnginePattern,
) -> Result<Layer, String> {
    let sparsity = match &l.nm {
        Some(text) => parse_nm(text, engine).map_err(|m| format!("`nm`: {m}"))?,
        None => default,
    };
    let present: Vec<(&str, Option<usize>)> = vec![
        ("in", l.inputs),
        ("out", l.outputs),
        ("cin", l.cin),
        ("cout", l.cout),
        ("kh", l.kh),
        ("kw", l.kw),
        ("stride", l.stride),
        ("padding", l.padding),
        ("h", l.h),
        ("w", l.w),
    ];
    let (needed, optional): (&[&str], &[&str]) = match l.kind.as_str() {
        "linear" => (&["in", "out"], &[]),
        "conv" => (
            &["cin", "cout", "kh", "kw", "h", "w"],
            &["stride", "padding"],
        ),
        other => {
            return Err(format!(
                "unknown layer kind `{other}`; use \"linear\" (in, out) or \"conv\" (cin, cout, \
                 kh, kw, stride, padding, h, w)"
            ))
        }
    };
    for (key, value) in &present {
        let allowed = needed.contains(key) || optional.contains(key);
        match (value, allowed) {
            (Some(_), false) => {
                return Err(format!(
                    "`{key}` does not apply to a {} layer; remove it (it takes {})",
                    l.kind,
                    [needed, optional].concat().join(", ")
                ))
            }
            (None, true) if needed.contains(key) => {
                return Err(format!("a {} layer needs `{key}`", l.kind))
            }
            (Some(0), true) if *key != "padding" => {
                return Err(format!("`{key}` = 0; every size must be at least 1"))
            }
            _ => {}
        }
    }
    let get = |key: &str| {
        present
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| *v)
    };
    let (kind, r, k, cout) = if l.kind == "linear" {
        let (inputs, outputs) = (get("in").unwrap_or(0), get("out").unwrap_or(0));
        (
            LayerKind::Linear { inputs, outputs },
            batch,
            inputs,
            outputs,
        )
    } else {
        let [cin, cout, kh, kw, h, w] =
            ["cin", "cout", "kh", "kw", "h", "w"].map(|key| get(key).unwrap_or(0));
        let stride = get("stride").unwrap_or(1);
        let padding = get("padding").unwrap_or(0);
        let ho = out_size(h, kh, stride, padding, "h", "kh")?;
        let wo = out_size(w, kw, stride, padding, "w", "kw")?;
        (
            LayerKind::Conv {
                cin,
                cout,
                kh,
                kw,
                stride,
                padding,
                h,
                w,
            },
            batch * ho * wo,
            cin * kh * kw,
            cout,
        )
    };
    Ok(Layer {
        name,
        kind,
        sparsity,
        r,
        k,
        cout,
        bp: true,
    })
}

/// `(size + 2*padding - kernel) / stride + 1`, or an error when it is not positive.
fn out_size(
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    size_key: &str,
    kernel_key: &str,
) -> Result<usize, String> {
    let padded = size + 2 * padding;
    if padded < kernel {
        return Err(format!(
            "the output is empty: {size_key} + 2*padding = {padded} is smaller than {kernel_key} \
             = {kernel}; use a larger input or padding, or a smaller kernel"
        ));
    }
    Ok((padded - kernel) / stride + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: EnginePattern = EnginePattern { n: 2, m: 8 };

    fn parse(text: &str) -> Result<Network, NetworkError> {
        Network::from_toml(text, "t.toml", E)
    }

    #[test]
    fn conv_lowering_dims() {
        let net = parse(
            "name = \"c\"\nbatch = 2\n[[layer]]\nkind = \"conv\"\ncin = 3\ncout = 64\nkh = 7\n\
             kw = 7\nstride = 2\npadding = 3\nh = 224\nw = 224\n",
        )
        .unwrap();
        let l = &net.layers[0];
        // torchvision ResNet conv1: 224 -> 112.
        assert_eq!((l.r, l.k, l.cout), (2 * 112 * 112, 3 * 49, 64));
        assert_eq!(l.sparsity, Sparsity::Sparse);
        assert_eq!(l.name, "layer0");
        let net = parse(
            "name = \"c\"\nbatch = 1\nnm = \"dense\"\n[[layer]]\nkind = \"conv\"\ncin = 4\n\
             cout = 8\nkh = 3\nkw = 2\nstride = 3\nh = 10\nw = 7\nnm = \"2:8\"\n",
        )
        .unwrap();
        let l = &net.layers[0];
        // Ho = (10 - 3) / 3 + 1 = 3, Wo = (7 - 2) / 3 + 1 = 2.
        assert_eq!((l.r, l.k, l.cout, l.sparsity), (6, 24, 8, Sparsity::Sparse));
    }

    #[test]
    fn ideal_speedup_counts_dense_layers_and_the_skipped_input_gradient() {
        // Two linear layers of 8x16x16 and 8x16x4 MACs (batch 8): 2048 and 512.
        let net = |head: &str, first: &str| {
            parse(&format!(
                "name = \"n\"\nbatch = 8\n{head}[[layer]]\nkind = \"linear\"\nin = 16\n\
                 out = 16\n{first}[[layer]]\nkind = \"linear\"\nin = 16\nout = 4\n"
            ))
            .unwrap()
        };
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} != {b}");
        // Every layer sparse, every BP run: the textbook 3 / (1 + 2N/M) = 2 at 2:8.
        close(net("input_gradient = true\n", "").ideal_speedup(E), 2.0);
        // First layer dense (BDWP): dense 3 * 2560 = 7680 against 3 * 2048 + 1.5 * 512.
        close(
            net("input_gradient = true\n", "nm = \"dense\"\n").ideal_speedup(E),
            7680.0 / 6912.0,
        );
        // ... and its dX skipped: 2 * 2048 + 3 * 512 against 2 * 2048 + 1.5 * 512.
        close(
            net("", "nm = \"dense\"\n").ideal_speedup(E),
            5632.0 / 4864.0,
        );
        // A sparse first layer without its dX: FF at N/M and WU dense.
        close(
            net("", "").ideal_speedup(E),
            5632.0 / (2048.0 * 1.25 + 512.0 * 1.5),
        );
    }

    #[test]
    fn input_gradient_is_off_by_default_and_a_boolean() {
        let body = "[[layer]]\nkind = \"linear\"\nin = 8\nout = 8\n\
                    [[layer]]\nkind = \"linear\"\nin = 8\nout = 4\n";
        let bp = |head: &str| {
            let net = parse(&format!("name = \"n\"\nbatch = 2\n{head}{body}")).unwrap();
            (
                net.input_gradient(),
                net.layers.iter().map(|l| l.bp).collect::<Vec<_>>(),
            )
        };
        assert_eq!(bp(""), (false, vec![false, true]));
        assert_eq!(bp("input_gradient = false\n"), (false, vec![false, true]));
        assert_eq!(bp("input_gradient = true\n"), (true, vec![true, true]));
        for bad in ["3", "\"yes\"", "1.0"] {
            let err = parse(&format!(
                "name = \"n\"\nbatch = 2\ninput_gradient = {bad}\n{body}"
            ))
            .unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("`input_gradient`") && text.contains("not a boolean"),
                "{text}"
            );
            assert!(text.contains("input_gradient = true"), "{text}");
            assert!(err.layer.is_none(), "{text}");
        }
        // The key is the network's, not a layer's.
        let err = parse(&format!(
            "name = \"n\"\nbatch = 2\n{body}input_gradient = true\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("input_gradient"), "{err}");
    }

    #[test]
    fn bad_inputs_name_the_layer_and_the_fix() {
        let head = "name = \"n\"\nbatch = 4\n";
        for (body, layer, needle) in [
            ("[[layer]]\nkind = \"pool\"\n", true, "unknown layer kind `pool`"),
            ("[[layer]]\nkind = \"linear\"\nin = 0\nout = 3\n", true, "`in` = 0"),
            ("[[layer]]\nkind = \"linear\"\nin = 3\n", true, "needs `out`"),
            ("[[layer]]\nkind = \"linear\"\nin = 3\nout = 2\nkh = 3\n", true, "`kh` does not apply"),
            (
                "[[layer]]\nkind = \"conv\"\ncin = 1\ncout = 1\nkh = 5\nkw = 1\nh = 2\nw = 2\n",
                true,
                "output is empty",
            ),
            (
                "[[layer]]\nkind = \"conv\"\ncin = 1\ncout = 1\nkh = 1\nkw = 1\nh = 2\nw = 2\nstride = 0\n",
                true,
                "`stride` = 0",
            ),
            ("[[layer]]\nkind = \"linear\"\nin = 8\nout = 8\nnm = \"2:4\"\n", true, "not the engine's pattern"),
            ("[[layer]]\nkind = \"linear\"\nin = 8\nout = 8\nnm = \"two\"\n", true, "not a pattern"),
            ("", false, "no layers"),
            ("[[layer]]\nkind = \"linear\"\nin = 8\nout = 8\nbogus = 1\n", false, "bogus"),
        ] {
            let err = parse(&format!("{head}{body}")).unwrap_err();
            assert_eq!(err.layer.is_some(), layer, "{body}: {err}");
            assert!(err.to_string().contains(needle), "{body}: {err}");
            assert!(err.to_string().contains("t.toml"), "{err}");
        }
        let err = parse("name = \"n\"\nbatch = 0\n[[layer]]\nkind = \"linear\"\nin = 1\nout = 1\n")
            .unwrap_err();
        assert!(err.to_string().contains("batch"), "{err}");
    }
}
