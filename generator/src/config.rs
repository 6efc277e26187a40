//! The typed configuration (TOML in, resolved JSON out).
//!
//! Every key has one meaning and one default, written here; `Config::validate` turns a bad
//! value into an error that names the key, the value and what to do instead.

use crate::rtl::names::check_module_name;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config `{path}` is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("config key `{key}` = {value} is not valid: {fix}")]
    Invalid {
        key: &'static str,
        value: String,
        fix: String,
    },
    #[error("the config has no [{section}] section; {needed_by} needs one ({fix})")]
    MissingSection {
        section: &'static str,
        needed_by: String,
        fix: &'static str,
    },
}

/// Number format of the tensor engine's operands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// int8 activations, int8 (or int4, see `weight_bits`) weights, int32 accumulation.
    #[default]
    Int8,
    /// fp16 operands, exact fp32 products, fp32 round-to-nearest-even accumulation.
    Fp16,
}

/// What the int32 accumulator does when a sum leaves its range (numerics.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    /// Two's-complement wrap, as a DSP48 accumulator does.
    #[default]
    Wrap,
    /// Clamp to [-2^31, 2^31 - 1] after every addition.
    Saturate,
}

/// How the STCE maps multiplies onto DSP slices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DspPacking {
    /// One multiplier per product.
    #[default]
    None,
    /// int8 engines for UltraScale+ (DSP48E2, Yosys family `xcup`): the two PEs of rows 2k and
    /// 2k+1 of a column share the weight, so one 27 x 18 multiply computes both products
    /// (`sparse_kernels::int::packed_mul_pair`, after Xilinx WP486): half the DSPs. A 7-series
    /// DSP48E1 (25 x 18) cannot take the 27-bit packed operand.
    Int8x2,
}

impl DspPacking {
    pub fn is_none(&self) -> bool {
        *self == DspPacking::None
    }
}

fn default_true() -> bool {
    true
}
fn is_false(value: &bool) -> bool {
    !*value
}
fn default_weight_bits() -> u32 {
    8
}
fn default_top() -> String {
    "stce_top".to_string()
}

/// The sparse tensor engine (STCE): an output-stationary `rows` x `cols` systolic array whose
/// PEs hold `n` multipliers each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StceConfig {
    pub rows: u32,
    pub cols: u32,
    #[serde(default)]
    pub dtype: Dtype,
    /// Weight width for `dtype = "int8"`: 8, or 4 for int4 weights.
    #[serde(default = "default_weight_bits")]
    pub weight_bits: u32,
    /// Multipliers per PE, and the N of N:M.
    pub n: u32,
    /// The group size M of N:M (up to 16). `n == m` builds a dense engine.
    pub m: u32,
    /// `false` builds a dense engine with `n` multipliers per PE whatever `m` says.
    #[serde(default = "default_true")]
    pub sparse: bool,
    #[serde(default)]
    pub overflow: Overflow,
    /// `"int8x2"` packs two int8 multiplies that share a weight into one DSP48E2 (int8 only).
    /// Left out of the resolved config when `"none"`, so that older configs keep their hash.
    #[serde(default, skip_serializing_if = "DspPacking::is_none")]
    pub dsp_packing: DspPacking,
    /// fp16 engines: `true` registers the product and every fp32 add of the PE, so that no
    /// path holds more than one adder; the PE then keeps N interleaved sums in its pipeline and
    /// the array streams N tiles round-robin (`engines::stce`, "fp32 adder pipeline"). Left out
    /// of the resolved config when `false`, so that older configs keep their hash.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fp_pipeline: bool,
    /// Name of the top-level module (and of its filelist).
    #[serde(default = "default_top")]
    pub top: String,
}

impl StceConfig {
    /// True when the hardware has the M:1 selection muxes (N:M sparse mode); such an engine
    /// also runs dense work by selecting lanes 0..N-1.
    pub fn has_sparse_mode(&self) -> bool {
        self.sparse && self.n < self.m
    }
    /// Activation lanes that reach a PE per cycle: M in a sparse engine, N in a dense one.
    pub fn lanes(&self) -> u32 {
        if self.has_sparse_mode() {
            self.m
        } else {
            self.n
        }
    }
    pub fn act_bits(&self) -> u32 {
        match self.dtype {
            Dtype::Int8 => 8,
            Dtype::Fp16 => 16,
        }
    }
    pub fn wgt_bits(&self) -> u32 {
        match self.dtype {
            Dtype::Int8 => self.weight_bits,
            Dtype::Fp16 => 16,
        }
    }
    pub fn acc_bits(&self) -> u32 {
        32
    }
    /// Bits of one stored index (position within a group of M).
    pub fn index_bits(&self) -> u32 {
        crate::rtl::index_bits(self.m)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: String, fix: &str| {
            Err(ConfigError::Invalid {
                key,
                value,
                fix: fix.to_string(),
            })
        };
        if !(1..=64).contains(&self.rows) {
            return invalid("stce.rows", self.rows.to_string(), "use 1 to 64 rows");
        }
        if !(1..=64).contains(&self.cols) {
            return invalid("stce.cols", self.cols.to_string(), "use 1 to 64 columns");
        }
        if !(1..=16).contains(&self.m) {
            return invalid(
                "stce.m",
                self.m.to_string(),
                "use a group size M from 1 to 16",
            );
        }
        if self.n == 0 || self.n > self.m {
            return invalid(
                "stce.n",
                self.n.to_string(),
                &format!("N must be 1 to M = {} (N = M means dense)", self.m),
            );
        }
        if self.dtype == Dtype::Int8 && !matches!(self.weight_bits, 4 | 8) {
            return invalid(
                "stce.weight_bits",
                self.weight_bits.to_string(),
                "int8 engines take 8-bit or 4-bit weights",
            );
        }
        if self.dtype == Dtype::Fp16 && self.weight_bits != default_weight_bits() {
            return invalid(
                "stce.weight_bits",
                self.weight_bits.to_string(),
                "weight_bits applies to int8 engines; fp16 engines take fp16 weights, so remove it",
            );
        }
        if self.dsp_packing == DspPacking::Int8x2 && self.dtype != Dtype::Int8 {
            return invalid(
                "stce.dsp_packing",
                "\"int8x2\"".into(),
                "int8x2 packs int8 multiplies; an fp16 engine has no int8 products, so remove it",
            );
        }
        if self.dsp_packing == DspPacking::Int8x2 && self.rows < 2 {
            return invalid(
                "stce.dsp_packing",
                "\"int8x2\"".into(),
                "int8x2 pairs the PEs of two rows that share a weight; use rows >= 2 or remove it",
            );
        }
        if self.fp_pipeline && self.dtype != Dtype::Fp16 {
            return invalid(
                "stce.fp_pipeline",
                "true".into(),
                "fp_pipeline pipelines the fp32 adders of an fp16 engine; an integer PE adds in \
                 one cycle already, so remove it",
            );
        }
        if self.dtype == Dtype::Fp16 && self.overflow != Overflow::Wrap {
            return invalid(
                "stce.overflow",
                "\"saturate\"".into(),
                "the overflow policy applies to integer engines; fp16 accumulates in IEEE fp32",
            );
        }
        Ok(())
    }
}

fn default_lanes() -> u32 {
    4
}
fn default_sore_top() -> String {
    "sore_top".to_string()
}
fn default_wuve_top() -> String {
    "wuve_top".to_string()
}

/// The training engines beside an fp16 STCE: the online pruning unit (SORE) and the
/// weight-update vector engine (WUVE). N and M of the pruning unit are the STCE's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// P: groups of M values pruned in parallel.
    #[serde(default = "default_lanes")]
    pub sore_lanes: u32,
    /// V: weights updated per cycle.
    #[serde(default = "default_lanes")]
    pub wuve_lanes: u32,
    /// `true` registers every stage of the WUVE's fp units, so that no path holds more than one
    /// stage; the WUVE then shows a result 20 cycles after its input, not 5 (`engines::wuve`,
    /// "Pipelined lane"). Left out of the resolved config when `false`, so that older configs
    /// keep their hash.
    #[serde(default, skip_serializing_if = "is_false")]
    pub wuve_pipeline: bool,
    #[serde(default = "default_sore_top")]
    pub sore_top: String,
    #[serde(default = "default_wuve_top")]
    pub wuve_top: String,
}

/// A config describes a tensor engine (`[stce]`, with its training engines in `[train]`), a
/// deformable-convolution engine (`[deform]`), or both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stce: Option<StceConfig>,
    /// Present for a training engine (requires `stce.dtype = "fp16"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deform: Option<DeformConfig>,
    /// The SAT system top around the training engines (requires `[stce]` fp16 and `[train]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemConfig>,
}

fn default_system_top() -> String {
    "sat_top".to_string()
}
fn default_act_lines() -> u32 {
    1024
}
fn default_wgt_lines() -> u32 {
    1024
}
fn default_out_lines() -> u32 {
    512
}
fn default_weight_lines() -> u32 {
    1024
}
fn default_imem_depth() -> u32 {
    1024
}
fn default_mem_bits() -> u32 {
    512
}
fn default_mem_latency() -> u32 {
    32
}
fn default_mem_bytes_per_cycle() -> u32 {
    64
}
fn default_read_requests() -> u32 {
    2
}

/// The SAT system top (`engines::sat`): the fp16 STCE, SORE and WUVE of `[stce]`/`[train]`
/// with on-chip buffers (block RAM, one line per address), a DMA engine on one external memory
/// port, and a controller that runs an instruction stream.
///
/// Defaults and where they come from:
/// - buffer depths (`act_lines` 1024, `wgt_lines` 1024, `out_lines` 512, `weight_lines` 1024,
///   `imem_depth` 1024): enough for the tiles of a CIFAR-sized layer on a small array while each
///   buffer stays a handful of block RAMs; set them from the largest tiling you schedule;
/// - `mem_bits` 512: the AXI data width of a Xilinx MIG DDR4 controller on one 64-bit channel
///   (the VCU1525 card has four such channels; the system uses one);
/// - `mem_latency` 32 cycles: a DDR4 read round trip through the MIG at an assumed 200 MHz engine
///   clock (about 160 ns);
/// - `mem_bytes_per_cycle` 64: one DDR4-2400 channel peaks at 19.2 GB/s = 96 B/cycle at
///   200 MHz; 64 B/cycle is about 2/3 of that peak, a typical sustained MIG efficiency;
/// - `read_requests` 2: a MIG controller (and AXI4 with one ID) takes several read requests
///   and answers them in order, so a LOAD queued behind a LOAD hides its latency under the
///   burst before it; the DMA keeps one queued LOAD, which is enough to keep the read channel
///   busy back to back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    #[serde(default = "default_system_top")]
    pub top: String,
    /// Depth of the activation buffer (lines of `rows * M` fp16 values).
    #[serde(default = "default_act_lines")]
    pub act_lines: u32,
    /// Depth of the weight-operand buffer (lines of `cols` compressed groups).
    #[serde(default = "default_wgt_lines")]
    pub wgt_lines: u32,
    /// Depth of the result buffer (lines of `cols` fp32 values).
    #[serde(default = "default_out_lines")]
    pub out_lines: u32,
    /// Depth of each of the master (fp32), w16 (fp16) and mask (1 bit) buffers (`cols` lanes).
    #[serde(default = "default_weight_lines")]
    pub weight_lines: u32,
    /// Instructions the instruction memory holds.
    #[serde(default = "default_imem_depth")]
    pub imem_depth: u32,
    /// Width of the external memory port's data (one beat).
    #[serde(default = "default_mem_bits")]
    pub mem_bits: u32,
    /// Cycles from a read request's acceptance to its first data beat (memory model).
    #[serde(default = "default_mem_latency")]
    pub mem_latency: u32,
    /// Sustained bytes per cycle of the memory (read and write share it; memory model).
    #[serde(default = "default_mem_bytes_per_cycle")]
    pub mem_bytes_per_cycle: u32,
    /// Read requests the DMA may have outstanding on the memory port: 2 (default) queues a
    /// LOAD behind a LOAD, whose request overlaps the current burst so that it does not pay the
    /// memory latency again (`engines::sat`, DMA); 1 runs one LOAD at a time. The memory serves
    /// requests in order, and so does the AXI wrapper's master (one ID); the top's start and
    /// end strobes still tell the two LOADs' spans apart (`driver::sat::network`).
    #[serde(default = "default_read_requests")]
    pub read_requests: u32,
}

/// Largest buffer depth: buffer addresses are 16-bit instruction fields.
pub const MAX_BUFFER_LINES: u32 = 1 << 16;

impl SystemConfig {
    fn validate(&self, stce: &StceConfig, train: &TrainConfig) -> Result<(), ConfigError> {
        let invalid =
            |key, value: String, fix: String| Err(ConfigError::Invalid { key, value, fix });
        if stce.dtype != Dtype::Fp16 {
            return invalid(
                "stce.dtype",
                format!("{:?}", stce.dtype).to_lowercase(),
                "a [system] section needs dtype = \"fp16\" (the system top trains in fp16/fp32)"
                    .into(),
            );
        }
        if stce.fp_pipeline {
            return invalid(
                "stce.fp_pipeline",
                "true".into(),
                "the system top streams one tile at a time into the STCE and does not feed the \
                 interleaved tiles a pipelined PE needs; remove fp_pipeline from a [system] \
                 config (the bare STCE and `coforge verify` take it)"
                    .into(),
            );
        }
        for (key, lanes) in [
            ("train.sore_lanes", train.sore_lanes),
            ("train.wuve_lanes", train.wuve_lanes),
        ] {
            if lanes != stce.cols {
                return invalid(
                    key,
                    lanes.to_string(),
                    format!(
                        "a [system] config needs sore_lanes = wuve_lanes = stce.cols = {} (one \
                         buffer line feeds every engine); set {key} = {}",
                        stce.cols, stce.cols
                    ),
                );
            }
        }
        if !stce.sparse && stce.n < stce.m {
            return invalid(
                "stce.sparse",
                "false".into(),
                format!(
                    "a dense-mode act line of the system top carries M/N = {}/{} groups and the \
                     PE's M:1 select takes one out, which a dense engine lacks; remove \
                     sparse = false, or set n = m for a dense engine",
                    stce.m, stce.n
                ),
            );
        }
        for (key, depth) in [
            ("system.act_lines", self.act_lines),
            ("system.wgt_lines", self.wgt_lines),
            ("system.out_lines", self.out_lines),
            ("system.weight_lines", self.weight_lines),
            ("system.imem_depth", self.imem_depth),
        ] {
            if !(2..=MAX_BUFFER_LINES).contains(&depth) {
                return invalid(
                    key,
                    depth.to_string(),
                    format!(
                        "use 2 to {MAX_BUFFER_LINES} lines (addresses are 16-bit instruction \
                         fields)"
                    ),
                );
            }
        }
        if !(1..=2).contains(&self.read_requests) {
            return invalid(
                "system.read_requests",
                self.read_requests.to_string(),
                "use 1 (one LOAD at a time) or 2 (a LOAD queued behind a LOAD)".into(),
            );
        }
        if !self.mem_bits.is_multiple_of(32) || !(32..=1024).contains(&self.mem_bits) {
            return invalid(
                "system.mem_bits",
                self.mem_bits.to_string(),
                "use a multiple of 32 from 32 to 1024 bits (512 is one DDR4 MIG channel)".into(),
            );
        }
        if !(1..=10_000).contains(&self.mem_latency) {
            return invalid(
                "system.mem_latency",
                self.mem_latency.to_string(),
                "use 1 to 10000 cycles (32 models DDR4 at 200 MHz)".into(),
            );
        }
        if self.mem_bytes_per_cycle == 0 || self.mem_bytes_per_cycle > self.mem_bits / 8 {
            return invalid(
                "system.mem_bytes_per_cycle",
                self.mem_bytes_per_cycle.to_string(),
                format!(
                    "use 1 to mem_bits / 8 = {} bytes per cycle (the port moves at most one beat \
                     per cycle)",
                    self.mem_bits / 8
                ),
            );
        }
        Ok(())
    }
}

impl TrainConfig {
    fn validate(&self, stce: &StceConfig) -> Result<(), ConfigError> {
        let invalid = |key, value: String, fix: &str| {
            Err(ConfigError::Invalid {
                key,
                value,
                fix: fix.to_string(),
            })
        };
        if stce.dtype != Dtype::Fp16 {
            return invalid(
                "stce.dtype",
                format!("{:?}", stce.dtype).to_lowercase(),
                "a [train] section needs dtype = \"fp16\" (BDWP trains in fp16/fp32)",
            );
        }
        if !(1..=256).contains(&self.sore_lanes) {
            return invalid(
                "train.sore_lanes",
                self.sore_lanes.to_string(),
                "use 1 to 256 lanes",
            );
        }
        if !(1..=256).contains(&self.wuve_lanes) {
            return invalid(
                "train.wuve_lanes",
                self.wuve_lanes.to_string(),
                "use 1 to 256 lanes",
            );
        }
        Ok(())
    }
}

impl Config {
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        if cfg.stce.is_none() && cfg.deform.is_none() {
            return Err(ConfigError::Parse {
                path: origin.to_string(),
                message: "it describes no engine; add a [stce] section (tensor engine), a \
                          [deform] section (deformable-convolution engine), or both"
                    .to_string(),
            });
        }
        if let Some(stce) = &cfg.stce {
            stce.validate()?;
        }
        if let Some(train) = &cfg.train {
            let stce = cfg.stce.as_ref().ok_or(ConfigError::MissingSection {
                section: "stce",
                needed_by: "a [train] section".to_string(),
                fix: "the training engines work beside an fp16 tensor engine",
            })?;
            train.validate(stce)?;
        }
        if let Some(deform) = &mut cfg.deform {
            deform.resolve_and_validate()?;
        }
        if let Some(system) = &cfg.system {
            let needs = |section| ConfigError::MissingSection {
                section,
                needed_by: "a [system] section".to_string(),
                fix: "the system top holds an fp16 [stce] and the [train] engines, as in \
                      configs/sat-4x4-2of8.toml",
            };
            let stce = cfg.stce.as_ref().ok_or_else(|| needs("stce"))?;
            let train = cfg.train.as_ref().ok_or_else(|| needs("train"))?;
            system.validate(stce, train)?;
        }
        cfg.check_top_names()?;
        Ok(cfg)
    }

    /// Every top module the config names, with its key, in a fixed order.
    pub fn tops(&self) -> Vec<(&'static str, &str)> {
        let mut tops = Vec::new();
        if let Some(stce) = &self.stce {
            tops.push(("stce.top", stce.top.as_str()));
        }
        if let Some(train) = &self.train {
            tops.push(("train.sore_top", train.sore_top.as_str()));
            tops.push(("train.wuve_top", train.wuve_top.as_str()));
        }
        if let Some(deform) = &self.deform {
            tops.push(("deform.top", deform.top.as_str()));
        }
        if let Some(system) = &self.system {
            tops.push(("system.top", system.top.as_str()));
        }
        tops
    }

    /// The tensor engine, or an error saying that `verb` needs one.
    pub fn stce(&self, verb: &str) -> Result<&StceConfig, ConfigError> {
        self.stce
            .as_ref()
            .ok_or_else(|| ConfigError::MissingSection {
                section: "stce",
                needed_by: verb.to_string(),
                fix: "use a config with a tensor engine, such as configs/default.toml",
            })
    }

    /// The deformable-convolution engine, or an error saying that `verb` needs one.
    pub fn deform(&self, verb: &str) -> Result<&DeformConfig, ConfigError> {
        self.deform
            .as_ref()
            .ok_or_else(|| ConfigError::MissingSection {
                section: "deform",
                needed_by: verb.to_string(),
                fix: "use a config with a deformable-convolution engine, such as \
                  configs/deform-codenet.toml",
            })
    }

    /// Each top is a plain identifier, no Verilog or SystemVerilog keyword, and differs from
    /// the other tops. (That no top takes the name of a generated module is checked where the
    /// engines are known: `artifacts::check_names`.)
    fn check_top_names(&self) -> Result<(), ConfigError> {
        let tops = self.tops();
        for (i, &(key, name)) in tops.iter().enumerate() {
            let invalid = |fix: String| ConfigError::Invalid {
                key,
                value: format!("{name:?}"),
                fix,
            };
            check_module_name(name).map_err(invalid)?;
            if let Some((other, _)) = tops[..i].iter().find(|(_, n)| *n == name) {
                return Err(invalid(format!(
                    "`{other}` already names that top; every top needs its own name"
                )));
            }
        }
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The resolved config (every default filled in), as written to `config.json`.
    pub fn resolved_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serializes") + "\n"
    }

    /// SHA-256 of the resolved config: two configs that mean the same thing share a hash.
    pub fn hash(&self) -> String {
        let digest = Sha256::digest(self.resolved_json().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What the deformable-convolution engine computes (`sparse_kernels::deform`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeformMode {
    /// Plain depthwise 3x3 (every dilation 1): the latency baseline.
    Plain,
    /// Mode A, CoDeNet-exact: one integer dilation per output pixel, in [1, max_dilation].
    Codenet,
    /// Mode B, DCNv2 in fixed point: Q·f offsets per tap, optional Q0.g mask, bilinear samples.
    Dcnv2,
}

fn default_deform_lanes() -> u32 {
    16
}
fn default_max_channels() -> u32 {
    256
}
fn default_stride() -> u32 {
    1
}
fn default_deform_top() -> String {
    "deform_top".to_string()
}

/// The deformable-convolution engine. Mode A keys (`max_dilation`, `pointwise`) and mode B keys
/// (`kernel`, `frac_bits`, `mask_bits`, `max_offset`, `depthwise`, `zero_point`,
/// `offset_groups`) are accepted only in their mode; the mode's defaults are filled in when the
/// config is loaded, so the resolved config (and its hash) always lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeformConfig {
    pub mode: DeformMode,
    /// Channels per beat (16 in CoDeNet).
    #[serde(default = "default_deform_lanes")]
    pub lanes: u32,
    /// Widest image the line buffer holds.
    pub max_width: u32,
    /// Most channels a layer may have (the depth of the parameter memories); with `pointwise`,
    /// the bound on both Cin and Cout.
    #[serde(default = "default_max_channels")]
    pub max_channels: u32,
    /// 1 or 2; `Hout = ceil(H / stride)`.
    #[serde(default = "default_stride")]
    pub stride: u32,
    /// Largest dilation (plain: 1; codenet: 1..=64, default 6). The line buffer holds
    /// `2 * max_dilation + 2` rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dilation: Option<u32>,
    /// Mode A: a `lanes x lanes` 1x1 convolution (with its quantizer) in front of the depthwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointwise: Option<bool>,
    /// Mode B: kernel side (kh = kw), odd, 1..=7. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<u32>,
    /// Mode B: fractional bits f of the offsets, 0..=12. Default 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frac_bits: Option<u32>,
    /// Mode B: bits g of the Q0.g modulation mask, 0..=16. Default 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_bits: Option<u32>,
    /// Mode B: the bound on |offset| in pixels (CoDeNet's bounded range), 1..=32. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_offset: Option<u32>,
    /// Mode B: depthwise (groups = Cin) or full convolution. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depthwise: Option<bool>,
    /// Mode B: the value of an out-of-image corner, -128..=127. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_point: Option<i32>,
    /// Mode B: offset groups G, 1..=max_channels. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_groups: Option<u32>,
    /// Mode B: zero padding on every side, 0..=16. Default `dilation * (kernel - 1) / 2`
    /// ("same" output size at stride 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<u32>,
    /// Mode B: kernel dilation, 1..=8. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dilation: Option<u32>,
    /// Mode B: taps sampled per cycle, 1..=kernel^2 (each tap slot has its own copy of the
    /// window buffer). Default kernel^2: one output pixel of `lanes` channels per cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taps_per_cycle: Option<u32>,
    /// Name of the top-level module (and of its filelist).
    #[serde(default = "default_deform_top")]
    pub top: String,
}

impl DeformConfig {
    /// Channel groups of `lanes` that the parameter memories hold.
    pub fn max_groups(&self) -> u32 {
        self.max_channels.div_ceil(self.lanes)
    }
    /// Largest dilation the line buffer supports (1 in plain mode).
    pub fn dmax(&self) -> u32 {
        self.max_dilation.unwrap_or(1)
    }
    /// Rows of the line buffer: the `2 * dmax + 1` rows a 3x3 window with dilation dmax spans,
    /// plus one row being loaded while they are read.
    pub fn line_buffer_rows(&self) -> u32 {
        2 * self.dmax() + 2
    }
    pub fn has_pointwise(&self) -> bool {
        self.pointwise == Some(true)
    }

    /// Fills in the mode's defaults, then checks every key.
    fn resolve_and_validate(&mut self) -> Result<(), ConfigError> {
        let invalid =
            |key, value: String, fix: String| Err(ConfigError::Invalid { key, value, fix });
        let mode_a = matches!(self.mode, DeformMode::Plain | DeformMode::Codenet);
        let mode_name = format!("{:?}", self.mode).to_lowercase();
        // Keys of the other mode are rejected, not ignored: a key that does nothing is a bug.
        let foreign: Vec<(&'static str, bool)> = if mode_a {
            vec![
                ("deform.kernel", self.kernel.is_some()),
                ("deform.frac_bits", self.frac_bits.is_some()),
                ("deform.mask_bits", self.mask_bits.is_some()),
                ("deform.max_offset", self.max_offset.is_some()),
                ("deform.depthwise", self.depthwise.is_some()),
                ("deform.zero_point", self.zero_point.is_some()),
                ("deform.offset_groups", self.offset_groups.is_some()),
                ("deform.padding", self.padding.is_some()),
                ("deform.dilation", self.dilation.is_some()),
                ("deform.taps_per_cycle", self.taps_per_cycle.is_some()),
            ]
        } else {
            vec![
                ("deform.max_dilation", self.max_dilation.is_some()),
                ("deform.pointwise", self.pointwise.is_some()),
            ]
        };
        if let Some((key, _)) = foreign.iter().find(|(_, given)| *given) {
            let owner = if mode_a {
                "\"dcnv2\""
            } else {
                "\"plain\" or \"codenet\""
            };
            return invalid(
                key,
                "(given)".into(),
                format!("this key applies to mode = {owner}, the config says mode = \"{mode_name}\"; remove it"),
            );
        }
        match self.mode {
            DeformMode::Plain => {
                if self.max_dilation.is_some_and(|d| d != 1) {
                    return invalid(
                        "deform.max_dilation",
                        self.dmax().to_string(),
                        "plain convolution has dilation 1; use mode = \"codenet\" for per-pixel \
                         dilations"
                            .into(),
                    );
                }
                self.max_dilation = Some(1);
                self.pointwise.get_or_insert(false);
            }
            DeformMode::Codenet => {
                self.max_dilation.get_or_insert(6);
                self.pointwise.get_or_insert(false);
            }
            DeformMode::Dcnv2 => {
                self.kernel.get_or_insert(3);
                self.frac_bits.get_or_insert(8);
                self.mask_bits.get_or_insert(8);
                self.max_offset.get_or_insert(2);
                self.depthwise.get_or_insert(true);
                self.zero_point.get_or_insert(0);
                self.offset_groups.get_or_insert(1);
                let (k, d) = (self.kernel.unwrap_or(3), *self.dilation.get_or_insert(1));
                self.padding.get_or_insert(d * k.saturating_sub(1) / 2);
                self.taps_per_cycle.get_or_insert(k * k);
            }
        }
        if !(1..=64).contains(&self.lanes) {
            return invalid(
                "deform.lanes",
                self.lanes.to_string(),
                "use 1 to 64 lanes".into(),
            );
        }
        if !(1..=4096).contains(&self.max_width) {
            return invalid(
                "deform.max_width",
                self.max_width.to_string(),
                "use a width of 1 to 4096 pixels".into(),
            );
        }
        if !(1..=8191).contains(&self.max_channels) {
            return invalid(
                "deform.max_channels",
                self.max_channels.to_string(),
                "use 1 to 8191 channels (the 1x1 sums are exact in 24 bits up to 8191 inputs)"
                    .into(),
            );
        }
        if !matches!(self.stride, 1 | 2) {
            return invalid(
                "deform.stride",
                self.stride.to_string(),
                "use stride 1 or 2".into(),
            );
        }
        if let Some(d) = self.max_dilation {
            if !(1..=64).contains(&d) {
                return invalid(
                    "deform.max_dilation",
                    d.to_string(),
                    "use 1 to 64 (the line buffer holds 2 * max_dilation + 2 rows)".into(),
                );
            }
            let bytes = u64::from(self.line_buffer_rows())
                * u64::from(self.max_width)
                * u64::from(self.lanes);
            if bytes > 1 << 20 {
                return invalid(
                    "deform.max_dilation",
                    d.to_string(),
                    format!(
                        "the line buffer would hold (2 * {d} + 2) rows x {} pixels x {} lanes = \
                         {bytes} bytes; keep it at most 1 MiB (fewer lanes, a narrower \
                         max_width or a smaller max_dilation)",
                        self.max_width, self.lanes
                    ),
                );
            }
        }
        if let Some(k) = self.kernel {
            if !(1..=7).contains(&k) || k % 2 == 0 {
                return invalid(
                    "deform.kernel",
                    k.to_string(),
                    "use an odd kernel side 1 to 7".into(),
                );
            }
        }
        if let Some(f) = self.frac_bits {
            if f > 12 {
                return invalid(
                    "deform.frac_bits",
                    f.to_string(),
                    "use 0 to 12 fractional bits (every intermediate then fits 32 bits)".into(),
                );
            }
        }
        if let Some(g) = self.mask_bits {
            if g > 16 {
                return invalid(
                    "deform.mask_bits",
                    g.to_string(),
                    "use 0 to 16 mask bits".into(),
                );
            }
        }
        if let Some(m) = self.max_offset {
            if !(1..=32).contains(&m) {
                return invalid(
                    "deform.max_offset",
                    m.to_string(),
                    "use a bound of 1 to 32 pixels".into(),
                );
            }
        }
        if let Some(z) = self.zero_point {
            if !(-128..=127).contains(&z) {
                return invalid(
                    "deform.zero_point",
                    z.to_string(),
                    "the zero point is an int8 value, -128 to 127".into(),
                );
            }
        }
        if let Some(g) = self.offset_groups {
            if g == 0 || g > self.max_channels {
                return invalid(
                    "deform.offset_groups",
                    g.to_string(),
                    format!(
                        "use 1 to max_channels = {} offset groups",
                        self.max_channels
                    ),
                );
            }
        }
        if self.mode == DeformMode::Dcnv2 {
            // The engine's own ranges (padding, dilation, taps per cycle, window rows).
            let p = crate::engines::deform::dcnv2::Dcnv2Params::of(self);
            if let Err((key, fix)) = p.validate() {
                return invalid(key, p.value_of(key), fix);
            }
        }
        // deform.top is checked with the other tops (`Config::check_top_names`).
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_filled_and_hash_ignores_spelling() {
        let a = Config::from_toml("[stce]\nrows = 4\ncols = 4\nn = 2\nm = 8\n", "a").unwrap();
        let b = Config::from_toml(
            "[stce]\nrows=4\ncols=4\ndtype=\"int8\"\nn=2\nm=8\nsparse=true\noverflow=\"wrap\"\n",
            "b",
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.hash(), b.hash());
        assert!(a.stce.as_ref().unwrap().has_sparse_mode());
        assert_eq!(a.stce.as_ref().unwrap().lanes(), 8);
    }

    #[test]
    fn dense_when_n_equals_m_or_sparse_false() {
        let a = Config::from_toml("[stce]\nrows=2\ncols=2\nn=4\nm=4\n", "a").unwrap();
        assert!(!a.stce.as_ref().unwrap().has_sparse_mode());
        let b = Config::from_toml("[stce]\nrows=2\ncols=2\nn=2\nm=8\nsparse=false\n", "b").unwrap();
        assert!(!b.stce.as_ref().unwrap().has_sparse_mode());
        assert_eq!(b.stce.as_ref().unwrap().lanes(), 2);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (toml, key) in [
            ("[stce]\nrows=0\ncols=2\nn=2\nm=4\n", "stce.rows"),
            ("[stce]\nrows=2\ncols=65\nn=2\nm=4\n", "stce.cols"),
            ("[stce]\nrows=2\ncols=2\nn=5\nm=4\n", "stce.n"),
            ("[stce]\nrows=2\ncols=2\nn=0\nm=4\n", "stce.n"),
            ("[stce]\nrows=2\ncols=2\nn=2\nm=17\n", "stce.m"),
            (
                "[stce]\nrows=2\ncols=2\nn=2\nm=4\nweight_bits=6\n",
                "stce.weight_bits",
            ),
            ("[stce]\nrows=2\ncols=2\nn=2\nm=4\ntop=\"9x\"\n", "stce.top"),
            (
                "[stce]\nrows=2\ncols=2\nn=2\nm=4\ndtype=\"fp16\"\ndsp_packing=\"int8x2\"\n",
                "stce.dsp_packing",
            ),
            (
                "[stce]\nrows=1\ncols=2\nn=2\nm=4\ndsp_packing=\"int8x2\"\n",
                "stce.dsp_packing",
            ),
            (
                "[stce]\nrows=2\ncols=2\nn=2\nm=4\ndsp_packing=\"int4x4\"\n",
                "dsp_packing",
            ),
            (
                "[stce]\nrows=2\ncols=2\nn=2\nm=4\ndtype=\"fp16\"\nweight_bits=4\n",
                "stce.weight_bits",
            ),
            (
                "[stce]\nrows=2\ncols=2\nn=2\nm=4\nfp_pipeline=true\n",
                "stce.fp_pipeline",
            ),
            (
                "[stce]\nrows=2\ncols=2\nn=2\nm=4\ndtype=\"fp16\"\nfp_pipeline=2\n",
                "fp_pipeline",
            ),
        ] {
            let err = Config::from_toml(toml, "t").unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        let err = Config::from_toml("[stce]\nrows=2\ncols=2\nn=2\nm=4\n[train]\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fp16"), "{err}");
        let fp = "[stce]\nrows=2\ncols=2\nn=2\nm=4\ndtype=\"fp16\"\n[train]\n";
        let cfg = Config::from_toml(fp, "t").unwrap();
        assert_eq!(cfg.train.as_ref().unwrap().sore_lanes, 4);
        // wuve_pipeline: off by default and then left out of the resolved config (older configs
        // keep their hash); on, it is kept; a non-boolean is refused by name.
        assert!(!cfg.train.as_ref().unwrap().wuve_pipeline);
        assert!(!cfg.resolved_json().contains("wuve_pipeline"));
        let piped = Config::from_toml(&format!("{fp}wuve_pipeline=true\n"), "t").unwrap();
        assert!(piped.train.as_ref().unwrap().wuve_pipeline);
        assert!(piped.resolved_json().contains("wuve_pipeline"));
        assert_ne!(piped.hash(), cfg.hash());
        let err = Config::from_toml(&format!("{fp}wuve_pipeline=1\n"), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("wuve_pipeline"), "{err}");
        let err = Config::from_toml(&format!("{fp}wuve_lanes=0\n"), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.wuve_lanes"), "{err}");
        let err = Config::from_toml("[stce]\nrows=2\ncols=2\nn=2\nm=4\nbogus=1\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    const SYSTEM: &str = "[stce]\nrows=4\ncols=4\nn=2\nm=8\ndtype=\"fp16\"\n[train]\n[system]\n";

    #[test]
    fn system_defaults_and_errors() {
        let cfg = Config::from_toml(SYSTEM, "t").unwrap();
        let s = cfg.system.as_ref().unwrap();
        assert_eq!(
            (s.mem_bits, s.mem_latency, s.mem_bytes_per_cycle),
            (512, 32, 64)
        );
        assert_eq!(s.top, "sat_top");
        for (extra, key) in [
            ("act_lines = 0\n", "system.act_lines"),
            ("out_lines = 65537\n", "system.out_lines"),
            ("imem_depth = 1\n", "system.imem_depth"),
            ("mem_bits = 100\n", "system.mem_bits"),
            ("mem_latency = 0\n", "system.mem_latency"),
            ("mem_bytes_per_cycle = 65\n", "system.mem_bytes_per_cycle"),
            ("top = \"stce_top\"\n", "system.top"),
            ("bogus = 1\n", "bogus"),
        ] {
            let err = Config::from_toml(&format!("{SYSTEM}{extra}"), "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
        let lanes = SYSTEM.replace("[train]\n", "[train]\nwuve_lanes = 2\n");
        let err = Config::from_toml(&lanes, "t").unwrap_err().to_string();
        assert!(
            err.contains("train.wuve_lanes") && err.contains("stce.cols"),
            "{err}"
        );
        let pipelined = SYSTEM.replace("[train]\n", "fp_pipeline = true\n[train]\n");
        let err = Config::from_toml(&pipelined, "t").unwrap_err().to_string();
        assert!(
            err.contains("stce.fp_pipeline") && err.contains("system top"),
            "{err}"
        );
        let dense = SYSTEM.replace("[train]\n", "sparse = false\n[train]\n");
        let err = Config::from_toml(&dense, "t").unwrap_err().to_string();
        assert!(
            err.contains("stce.sparse") && err.contains("n = m"),
            "{err}"
        );
        let dense_nm = SYSTEM
            .replace("n=2", "n=8")
            .replace("[train]\n", "sparse = false\n[train]\n");
        assert!(Config::from_toml(&dense_nm, "t").is_ok());
        let int8 = SYSTEM.replace("dtype=\"fp16\"\n[train]\n", "");
        let err = Config::from_toml(&int8, "t").unwrap_err().to_string();
        assert!(err.contains("[train]"), "{err}");
    }

    const CODENET: &str = "[deform]\nmode = \"codenet\"\nlanes = 4\nmax_width = 32\n";

    #[test]
    fn deform_defaults_are_resolved_per_mode() {
        let cfg = Config::from_toml(CODENET, "t").unwrap();
        assert!(cfg.stce.is_none());
        let d = cfg.deform.as_ref().unwrap();
        assert_eq!((d.dmax(), d.has_pointwise(), d.stride), (6, false, 1));
        assert_eq!(d.line_buffer_rows(), 14);
        // The resolved form lists the defaults, so spelling them out gives the same hash.
        let spelled = format!("{CODENET}max_dilation = 6\npointwise = false\nstride = 1\n");
        assert_eq!(Config::from_toml(&spelled, "t").unwrap().hash(), cfg.hash());
        let plain = Config::from_toml("[deform]\nmode = \"plain\"\nmax_width = 8\n", "t").unwrap();
        assert_eq!(plain.deform.unwrap().dmax(), 1);
        let err = cfg.stce("`coforge train`").unwrap_err().to_string();
        assert!(
            err.contains("no [stce] section") && err.contains("coforge train"),
            "{err}"
        );
    }

    #[test]
    fn deform_bad_values_name_the_key() {
        for (extra, key) in [
            ("stride = 3\n", "deform.stride"),
            ("max_dilation = 0\n", "deform.max_dilation"),
            ("max_dilation = 65\n", "deform.max_dilation"),
            ("max_channels = 0\n", "deform.max_channels"),
            ("frac_bits = 4\n", "deform.frac_bits"),
            ("zero_point = 0\n", "deform.zero_point"),
            ("top = \"1x\"\n", "deform.top"),
            ("bogus = 1\n", "bogus"),
        ] {
            let err = Config::from_toml(&format!("{CODENET}{extra}"), "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
        for (lanes, width, key) in [
            (0, 8, "deform.lanes"),
            (65, 8, "deform.lanes"),
            (4, 0, "deform.max_width"),
        ] {
            let toml =
                format!("[deform]\nmode = \"codenet\"\nlanes = {lanes}\nmax_width = {width}\n");
            let err = Config::from_toml(&toml, "t").unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        let err = Config::from_toml(
            "[deform]\nmode = \"plain\"\nmax_width = 8\nmax_dilation = 2\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("deform.max_dilation") && err.contains("codenet"),
            "{err}"
        );
        let big = "[deform]\nmode = \"codenet\"\nlanes = 64\nmax_width = 4096\n";
        let err = Config::from_toml(big, "t").unwrap_err().to_string();
        assert!(err.contains("1 MiB"), "{err}");
        let dcn = "[deform]\nmode = \"dcnv2\"\nmax_width = 8\n";
        for (extra, key) in [
            ("frac_bits = 13\n", "deform.frac_bits"),
            ("mask_bits = 17\n", "deform.mask_bits"),
            ("kernel = 4\n", "deform.kernel"),
            ("max_offset = 0\n", "deform.max_offset"),
            ("zero_point = 128\n", "deform.zero_point"),
            ("offset_groups = 0\n", "deform.offset_groups"),
            ("max_dilation = 2\n", "deform.max_dilation"),
            ("pointwise = true\n", "deform.pointwise"),
        ] {
            let err = Config::from_toml(&format!("{dcn}{extra}"), "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
        let err = Config::from_toml("", "t").unwrap_err().to_string();
        assert!(err.contains("no engine"), "{err}");
        let both = format!("[stce]\nrows=2\ncols=2\nn=2\nm=4\ntop=\"x\"\n{CODENET}top = \"x\"\n");
        let err = Config::from_toml(&both, "t").unwrap_err().to_string();
        assert!(
            err.contains("deform.top") && err.contains("own name"),
            "{err}"
        );
    }
}
