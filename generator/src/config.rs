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

fn default_true() -> bool {
    true
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
    #[serde(default = "default_sore_top")]
    pub sore_top: String,
    #[serde(default = "default_wuve_top")]
    pub wuve_top: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub stce: StceConfig,
    /// Present for a training engine (requires `stce.dtype = "fp16"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainConfig>,
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
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        cfg.stce.validate()?;
        if let Some(train) = &cfg.train {
            train.validate(&cfg.stce)?;
        }
        cfg.check_top_names()?;
        Ok(cfg)
    }

    /// Every top module the config names, with its key, in a fixed order.
    pub fn tops(&self) -> Vec<(&'static str, &str)> {
        let mut tops = vec![("stce.top", self.stce.top.as_str())];
        if let Some(train) = &self.train {
            tops.push(("train.sore_top", &train.sore_top));
            tops.push(("train.wuve_top", &train.wuve_top));
        }
        tops
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
        assert!(a.stce.has_sparse_mode());
        assert_eq!(a.stce.lanes(), 8);
    }

    #[test]
    fn dense_when_n_equals_m_or_sparse_false() {
        let a = Config::from_toml("[stce]\nrows=2\ncols=2\nn=4\nm=4\n", "a").unwrap();
        assert!(!a.stce.has_sparse_mode());
        let b = Config::from_toml("[stce]\nrows=2\ncols=2\nn=2\nm=8\nsparse=false\n", "b").unwrap();
        assert!(!b.stce.has_sparse_mode());
        assert_eq!(b.stce.lanes(), 2);
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
                "[stce]\nrows=2\ncols=2\nn=2\nm=4\ndtype=\"fp16\"\nweight_bits=4\n",
                "stce.weight_bits",
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
        assert_eq!(cfg.train.unwrap().sore_lanes, 4);
        let err = Config::from_toml(&format!("{fp}wuve_lanes=0\n"), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.wuve_lanes"), "{err}");
        let err = Config::from_toml("[stce]\nrows=2\ncols=2\nn=2\nm=4\nbogus=1\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }
}
