//! The memory budget: every verb estimates the memory a run needs *before* it allocates, and
//! refuses a run above the limit with a message that names both sizes.
//!
//! The limit is, in order of precedence: `--max-memory SIZE`, the environment variable
//! `COFORGE_MAX_MEMORY`, or [`DEFAULT_LIMIT`] (8 GiB, or half of the machine's RAM if that is
//! less). `SIZE` is a byte count with an optional binary suffix: `512M`, `8G`, `1.5GiB`, `4096`.
//!
//! Sizes are counted in `u128` with checked multiplication, so an absurd shape (`99999999999 x
//! 99999999999`) becomes "too large" instead of an overflow or an allocator abort.

use std::sync::OnceLock;

use anyhow::{bail, Context};

/// The environment variable that sets the limit when `--max-memory` is not given.
pub const ENV: &str = "COFORGE_MAX_MEMORY";

/// 8 GiB, lowered to half of the physical RAM on smaller machines (see [`default_limit`]).
pub const DEFAULT_LIMIT: u64 = 8 << 30;

static LIMIT: OnceLock<u64> = OnceLock::new();

/// Sets the process-wide limit from `--max-memory` (if given) or the environment. Called once by
/// `main` before any verb runs; a bad value is an input error.
pub fn init(flag: Option<&str>) -> anyhow::Result<()> {
    let limit = match flag {
        Some(s) => parse_size(s).with_context(|| format!("--max-memory {s}"))?,
        None => match std::env::var(ENV) {
            Ok(s) => parse_size(&s).with_context(|| format!("{ENV}={s}"))?,
            Err(_) => default_limit(),
        },
    };
    let _ = LIMIT.set(limit);
    Ok(())
}

/// The limit in bytes.
pub fn limit() -> u64 {
    *LIMIT.get_or_init(default_limit)
}

/// [`DEFAULT_LIMIT`], or half of `MemTotal` from `/proc/meminfo` when that is smaller.
pub fn default_limit() -> u64 {
    let half_ram = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024 / 2)
    });
    half_ram.map_or(DEFAULT_LIMIT, |h| h.min(DEFAULT_LIMIT))
}

/// Parses `4096`, `512K`, `512M`, `8G`, `1T`, with an optional `i`/`iB`/`B` (`8GiB`, `8GB`: all
/// binary). Fractions are allowed with a suffix (`1.5G`).
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => bail!("`{s}` is not a size; write bytes or a number with K, M, G or T (e.g. 8G)"),
    };
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .with_context(|| format!("`{s}` is not a positive size (e.g. 8G)"))?;
    let bytes = v * (1u64 << shift) as f64;
    if bytes >= u64::MAX as f64 {
        bail!("`{s}` is too large");
    }
    Ok(bytes as u64)
}

/// `1.5 GiB`, `12.0 MiB`, `300 B`.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The memory a run will need: named parts, each a tensor of `dims` elements of `bytes` bytes.
/// Build it before allocating anything, then [`Estimate::check`] it against the limit.
#[derive(Debug, Clone)]
pub struct Estimate {
    what: String,
    parts: Vec<(String, u128)>,
}

impl Estimate {
    /// `what` names the run in the error: "verify of a 16 x 64 x 16 GEMM".
    pub fn new(what: impl Into<String>) -> Self {
        Estimate {
            what: what.into(),
            parts: Vec::new(),
        }
    }

    /// Adds `copies` tensors of `dims` elements of `elem_bytes` each. Overflow saturates, which
    /// is always above the limit.
    pub fn tensor(mut self, name: &str, copies: usize, dims: &[usize], elem_bytes: usize) -> Self {
        let n = dims
            .iter()
            .chain([&copies, &elem_bytes])
            .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
            .unwrap_or(u128::MAX);
        self.parts.push((name.to_string(), n));
        self
    }

    /// The total in bytes (saturating).
    pub fn bytes(&self) -> u128 {
        self.parts
            .iter()
            .fold(0u128, |acc, (_, n)| acc.saturating_add(*n))
    }

    /// Fails when the total exceeds the limit, naming the total, its largest part and the limit.
    pub fn check(&self) -> anyhow::Result<()> {
        check_bytes(&self.what, self.bytes(), self.largest())
    }

    fn largest(&self) -> Option<&(String, u128)> {
        self.parts.iter().max_by_key(|(_, n)| *n)
    }
}

fn check_bytes(what: &str, bytes: u128, largest: Option<&(String, u128)>) -> anyhow::Result<()> {
    let limit = limit();
    if bytes <= u128::from(limit) {
        return Ok(());
    }
    let need = if bytes == u128::MAX {
        "more memory than any machine has".to_string()
    } else {
        format!("about {}", human(bytes))
    };
    let part = largest
        .filter(|(_, n)| *n != bytes)
        .map(|(name, n)| {
            if *n == u128::MAX {
                format!(" ({name} alone overflows)")
            } else {
                format!(" ({name} alone is {})", human(*n))
            }
        })
        .unwrap_or_default();
    bail!(
        "{what} needs {need}{part}, above the memory limit of {}; use smaller sizes, or raise \
         the limit with --max-memory SIZE or {ENV}=SIZE",
        human(u128::from(limit))
    )
}

/// Checks that one file of `bytes` bytes may be read into memory.
pub fn check_file(what: &str, bytes: u128) -> anyhow::Result<()> {
    check_bytes(what, bytes, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("8GiB").unwrap(), 8 << 30);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        for bad in ["", "x", "-1G", "0", "8Q", "1e999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn estimates_saturate_and_name_the_sizes() {
        let e = Estimate::new("a test").tensor("A", 1, &[usize::MAX, usize::MAX, 4], 8);
        assert_eq!(e.bytes(), u128::MAX);
        let msg = format!("{:#}", e.check().unwrap_err());
        assert!(
            msg.contains("a test") && msg.contains("--max-memory"),
            "{msg}"
        );
        let e = Estimate::new("big")
            .tensor("A", 1, &[1 << 20, 1 << 20], 4)
            .tensor("B", 1, &[4], 1);
        let msg = format!("{:#}", e.check().unwrap_err());
        assert!(msg.contains("4.0 TiB") && msg.contains("A alone"), "{msg}");
        assert!(Estimate::new("small")
            .tensor("A", 2, &[16, 16], 4)
            .check()
            .is_ok());
        assert_eq!(human(1536), "1.5 KiB");
    }
}
