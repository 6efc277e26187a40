//! The build cache: one directory per content hash, filled atomically.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{compile, BuildOptions, SHIM_ABI};
use crate::tools::{self, ToolVersion};
use crate::{DesignSpec, SimError};

/// The cache directory: the option, else `$COFORGE_CACHE_DIR`, else
/// `$HOME/.cache/coforge/verilator`.
pub(super) fn dir(opts: &BuildOptions) -> PathBuf {
    if let Some(d) = &opts.cache_dir {
        return d.clone();
    }
    if let Some(d) = std::env::var_os("COFORGE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache/coforge/verilator"),
        None => std::env::temp_dir().join("coforge-verilator-cache"),
    }
}

pub(super) fn key(spec: &DesignSpec, shim: &str, version: &ToolVersion, args: &[String]) -> String {
    let mut h = Sha256::new();
    // Length-prefix every field so that no two different inputs hash alike.
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(format!("coforge-sim shim abi {SHIM_ABI}").as_bytes());
    field(version.text.as_bytes());
    for a in args {
        field(a.as_bytes());
    }
    field(shim.as_bytes());
    for (name, text) in &spec.sources {
        field(name.as_bytes());
        field(text.as_bytes());
    }
    let digest = h.finalize();
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub(super) fn build_into(
    spec: &DesignSpec,
    bin: &Path,
    args: &[String],
    shim: &str,
    cache: &Path,
    key: &str,
    lib_name: &str,
) -> Result<(), SimError> {
    tools::create_dir(cache)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // pid + time + a process-wide counter: unique across processes and threads.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = cache.join(format!("{key}.tmp-{}-{nanos}-{n}", std::process::id()));
    if let Err(e) = compile::build_in(spec, bin, args, shim, &tmp, lib_name) {
        return Err(keep_failed(e, &tmp, &cache.join(format!("{key}.failed"))));
    }
    let final_dir = cache.join(key);
    match std::fs::rename(&tmp, &final_dir) {
        Ok(()) => Ok(()),
        // Another thread or process finished the same build first; its result
        // is identical, so use it and drop ours.
        Err(_) if final_dir.join(lib_name).is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => Err(SimError::Io {
            context: format!("moving {} to {}", tmp.display(), final_dir.display()),
            source: e,
        }),
    }
}

/// Keeps a failed build for inspection as `<key>.failed` (replacing an older
/// failure of the same key, so failures do not pile up in the cache) and
/// points the error's paths there. If the move fails (e.g. a concurrent
/// failing build), the temporary directory stays and the paths stay valid.
fn keep_failed(e: SimError, tmp: &Path, failed: &Path) -> SimError {
    let _ = std::fs::remove_dir_all(failed);
    if std::fs::rename(tmp, failed).is_err() {
        return e;
    }
    let (from, to) = (tmp.display().to_string(), failed.display().to_string());
    match e {
        SimError::BuildFailed { log, tail } => SimError::BuildFailed {
            log: log
                .strip_prefix(tmp)
                .map_or(log.clone(), |rel| failed.join(rel)),
            tail,
        },
        SimError::PortMismatch { detail } => SimError::PortMismatch {
            detail: detail.replace(&from, &to),
        },
        other => other,
    }
}
