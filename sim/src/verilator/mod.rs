//! Verilator backend: builds a design and a generated C++ shim into a shared
//! library, caches it, loads it and runs it.
//!
//! * `shim`: the C++ shim (`shim.cpp`, a template filled in per design);
//! * `compile`: verilating, checking the ports, compiling and linking;
//! * `cache`: the content-addressed build cache, checked before every load
//!   and repaired when damaged ([`BuildCache`] lists and cleans it);
//! * `ffi`: loading a library and its C entry points ([`VerilatedLib`]);
//! * `model`: one simulation instance ([`VerilatedModel`]), open and closed loop.

use std::path::PathBuf;

use crate::frames::Layout;
use crate::tools::{ToolVersion, VERILATOR};
use crate::{DesignSpec, SimError};

mod cache;
mod compile;
mod ffi;
mod model;
mod shim;

pub use cache::{BuildCache, CacheEntry, EntryState, Removed, STALE_AFTER, YOSYS_ESTIMATES_DIR};
pub use ffi::VerilatedLib;
pub use model::VerilatedModel;

/// Bumped whenever the shim's C ABI or the build recipe changes, so old cache
/// entries are never loaded by a newer crate.
pub(crate) const SHIM_ABI: u32 = 2;
const MIN_MAJOR: u32 = 5;
const MIN_MINOR: u32 = 6;
/// Simulation time per clock cycle; the rising edge is at half of it.
pub(crate) const CYCLE_TIME: u64 = 10;

/// VCD dump of a cycle window (inclusive, cycle numbers since the model was
/// created). Waves are opt-in: a library must be built with
/// [`BuildOptions::waves`], and nothing is dumped until [`VerilatedModel::set_waves`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaveOptions {
    pub path: PathBuf,
    pub first_cycle: u64,
    pub last_cycle: u64,
}

/// Initial value of state that the design does not reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum XInitial {
    /// Whatever is fastest (zeros in practice). The default.
    #[default]
    Fast,
    /// `--x-initial unique --x-assign unique` at build time and random reset
    /// values from `seed` at run time, so a test can show that outputs do not
    /// depend on uninitialised state. Seed 0 means "random seed" (Verilator's
    /// convention); use [`VerilatedLib::instantiate_with_seed`] to vary it
    /// without rebuilding.
    Unique { seed: u32 },
}

/// How to build a design with Verilator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildOptions {
    pub x_initial: XInitial,
    /// Build with `--trace` so [`VerilatedModel::set_waves`] can dump VCD.
    /// Tracing slows simulation down, so it is off by default.
    pub waves: bool,
    /// Cache directory; `None`: `$COFORGE_CACHE_DIR`, else
    /// `$HOME/.cache/coforge/verilator`.
    pub cache_dir: Option<PathBuf>,
    /// Extra Verilator arguments, e.g. `-Wno-fatal` or `-Wno-WIDTH`. Warnings
    /// are fatal by default because generated RTL is meant to be lint-clean.
    pub extra_args: Vec<String>,
}

/// The Verilator backend. See [`Verilator::build`].
pub struct Verilator;

impl Verilator {
    /// Version of the Verilator binary (`$COFORGE_VERILATOR` or `verilator`).
    pub fn version() -> Result<ToolVersion, SimError> {
        let bin = VERILATOR.resolve();
        VERILATOR.version(&bin, "--version")
    }

    /// Checks the tool and version, without building anything.
    fn checked_version() -> Result<(PathBuf, ToolVersion), SimError> {
        let bin = VERILATOR.resolve();
        let v = VERILATOR.version(&bin, "--version")?;
        if !v.at_least(MIN_MAJOR, MIN_MINOR) {
            return Err(SimError::ToolTooOld {
                tool: VERILATOR.describe(&bin),
                found: v.text.clone(),
                required: format!("{MIN_MAJOR}.{MIN_MINOR:03}"),
                fix: "install a newer Verilator (scripts/setup.sh) and/or set COFORGE_VERILATOR"
                    .into(),
            });
        }
        Ok((bin, v))
    }

    /// Builds (or fetches from the cache) a shared library simulating `spec`.
    ///
    /// The cache key covers the sources, the generated shim, the Verilator
    /// and C++ compiler versions and all flags. A build happens in a private
    /// temporary directory that is renamed into place atomically, so
    /// concurrent builds of the same design (threads or processes) all succeed
    /// and share the result. Every entry is checked against its stamp (the
    /// library's SHA-256) before it is loaded; a damaged entry is rebuilt and
    /// replaced (see [`VerilatedLib::cache_repair`]).
    pub fn build(spec: &DesignSpec, opts: &BuildOptions) -> Result<VerilatedLib, SimError> {
        let layout = Layout::new(spec)?;
        let (bin, version) = Self::checked_version()?;
        let toolchain = compile::toolchain(&bin, &version)?;
        let shim = shim::source(spec, &layout, opts.waves);
        let args = verilator_args(spec, opts);
        let key = cache::key(spec, &shim, &toolchain, &args);
        let fetched =
            cache::fetch_or_build(&cache::dir(opts), &key, &spec.top, &toolchain, |tmp| {
                compile::build_in(
                    spec,
                    &bin,
                    &args,
                    &shim,
                    tmp,
                    &format!("lib{}.so", spec.top),
                )
            })?;
        ffi::load(fetched, layout, key, opts)
    }
}

fn verilator_args(spec: &DesignSpec, opts: &BuildOptions) -> Vec<String> {
    let x = match opts.x_initial {
        XInitial::Fast => ["--x-assign", "fast", "--x-initial", "fast"],
        XInitial::Unique { .. } => ["--x-assign", "unique", "--x-initial", "unique"],
    };
    let mut a: Vec<String> = ["--cc", "--exe", "-O3"]
        .iter()
        .chain(x.iter())
        .map(|s| s.to_string())
        .collect();
    a.extend([
        "--prefix".into(),
        "Vdut".into(),
        "--top-module".into(),
        spec.top.clone(),
        "-o".into(),
        format!("lib{}.so", spec.top),
        // -fvisibility=hidden and -Bsymbolic keep each library's copy of the
        // Verilator runtime private, so several different designs can be
        // loaded into one process; -fno-gnu-unique stops the runtime's
        // statics from being merged across libraries. VL_USER_FATAL/FINISH
        // let the shim turn $stop/$fatal/$finish into errors instead of
        // abort()/exit() of the whole Rust process.
        "-CFLAGS".into(),
        "-fPIC -fvisibility=hidden -fno-gnu-unique -DVL_USER_FATAL -DVL_USER_FINISH".into(),
        "-LDFLAGS".into(),
        "-shared -Wl,-Bsymbolic".into(),
    ]);
    if opts.waves {
        a.push("--trace".into());
    }
    a.extend(opts.extra_args.iter().cloned());
    a
}
