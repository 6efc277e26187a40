//! Loading a built library and its C entry points.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use super::cache::Fetched;
use super::model::VerilatedModel;
use super::{BuildOptions, XInitial, SHIM_ABI};
use crate::frames::Layout;
use crate::SimError;

pub(super) type NewFn = unsafe extern "C" fn(c_int, u32, *mut c_char, usize) -> *mut c_void;
pub(super) type DeleteFn = unsafe extern "C" fn(*mut c_void);
pub(super) type ErrorFn = unsafe extern "C" fn(*mut c_void) -> *const c_char;
pub(super) type CycleFn = unsafe extern "C" fn(*mut c_void) -> u64;
pub(super) type WavesFn = unsafe extern "C" fn(*mut c_void, *const c_char, u64, u64) -> c_int;
pub(super) type RunFn =
    unsafe extern "C" fn(*mut c_void, u64, *const u32, *const u8, *mut u32) -> i64;
pub(super) type StepFn = unsafe extern "C" fn(*mut c_void, *const u32, *mut u32) -> c_int;

pub(super) struct LibInner {
    // Function pointers into `_lib`; valid as long as it is loaded. Fields
    // drop in declaration order, so `_lib` (last) is unloaded last.
    pub new: NewFn,
    pub delete: DeleteFn,
    pub error: ErrorFn,
    pub cycle: CycleFn,
    pub waves: WavesFn,
    pub run: RunFn,
    pub step: StepFn,
    pub layout: Arc<Layout>,
    pub path: PathBuf,
    key: String,
    build_seconds: f64,
    cache_hit: bool,
    cache_repair: Option<String>,
    pub x_initial: XInitial,
    pub traced: bool,
    _lib: libloading::Library,
}

/// A built and loaded design. Cheap to clone; the library stays loaded while
/// any clone or model exists.
#[derive(Clone)]
pub struct VerilatedLib {
    inner: Arc<LibInner>,
}

impl std::fmt::Debug for VerilatedLib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerilatedLib")
            .field("path", &self.inner.path)
            .field("cache_hit", &self.inner.cache_hit)
            .field("build_seconds", &self.inner.build_seconds)
            .finish()
    }
}

pub(super) fn load(
    fetched: Fetched,
    layout: Arc<Layout>,
    key: String,
    opts: &BuildOptions,
) -> Result<VerilatedLib, SimError> {
    let path = fetched.lib;
    let err = |reason: String| SimError::Load {
        path: path.clone(),
        reason: format!(
            "{reason}. The library is in the Verilator build cache \
             (COFORGE_CACHE_DIR); `coforge cache clear` removes it"
        ),
    };
    // SAFETY: the library was built by us from a shim we generated; its
    // initialisers only set up the Verilator runtime's statics.
    let lib = unsafe { libloading::Library::new(&path) }.map_err(|e| err(e.to_string()))?;
    macro_rules! sym {
        ($name:literal, $ty:ty) => {{
            // SAFETY: the symbol types match the shim generated for SHIM_ABI,
            // checked through coforge_abi before any other symbol is used.
            let s: libloading::Symbol<$ty> = unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                .map_err(|e| err(format!("missing symbol {}: {e}", $name)))?;
            *s
        }};
    }
    let abi = sym!("coforge_abi", unsafe extern "C" fn() -> u32);
    // SAFETY: no arguments, returns a constant.
    let abi = unsafe { abi() };
    if abi != SHIM_ABI {
        return Err(err(format!("shim ABI {abi}, expected {SHIM_ABI}")));
    }
    let sig = sym!("coforge_signature", unsafe extern "C" fn() -> *const c_char);
    // SAFETY: returns a pointer to a NUL-terminated string literal in the library.
    let sig = unsafe { CStr::from_ptr(sig()) }
        .to_string_lossy()
        .into_owned();
    if sig != layout.signature {
        return Err(SimError::PortMismatch {
            detail: format!(
                "library {} was built for `{sig}`, spec is `{}`",
                path.display(),
                layout.signature
            ),
        });
    }
    let inner = LibInner {
        new: sym!("coforge_new", NewFn),
        delete: sym!("coforge_delete", DeleteFn),
        error: sym!("coforge_error", ErrorFn),
        cycle: sym!("coforge_cycle", CycleFn),
        waves: sym!("coforge_waves", WavesFn),
        run: sym!("coforge_run", RunFn),
        step: sym!("coforge_step", StepFn),
        layout,
        path: path.clone(),
        key,
        build_seconds: fetched.build_seconds,
        cache_hit: fetched.cache_hit,
        cache_repair: fetched.repaired,
        x_initial: opts.x_initial,
        traced: opts.waves,
        _lib: lib,
    };
    Ok(VerilatedLib {
        inner: Arc::new(inner),
    })
}

impl VerilatedLib {
    /// A new model with its own Verilator context; any number can coexist.
    pub fn instantiate(&self) -> Result<VerilatedModel, SimError> {
        match self.inner.x_initial {
            XInitial::Fast => self.create(false, 0),
            XInitial::Unique { seed } => self.create(true, seed),
        }
    }

    /// Like [`VerilatedLib::instantiate`] with another random-reset seed (only
    /// meaningful for [`XInitial::Unique`] builds; ignored otherwise).
    pub fn instantiate_with_seed(&self, seed: u32) -> Result<VerilatedModel, SimError> {
        self.create(
            matches!(self.inner.x_initial, XInitial::Unique { .. }),
            seed,
        )
    }

    fn create(&self, unique: bool, seed: u32) -> Result<VerilatedModel, SimError> {
        let mut err = [0 as c_char; 512];
        // SAFETY: err is a writable buffer of the given length.
        let h = unsafe { (self.inner.new)(unique as c_int, seed, err.as_mut_ptr(), err.len()) };
        match NonNull::new(h) {
            Some(handle) => Ok(VerilatedModel::new(self.inner.clone(), handle)),
            None => {
                // SAFETY: coforge_new NUL-terminates err on failure.
                let msg = unsafe { CStr::from_ptr(err.as_ptr()) }
                    .to_string_lossy()
                    .into_owned();
                Err(SimError::Runtime {
                    message: format!("creating the model failed: {msg}"),
                })
            }
        }
    }

    /// Hex SHA-256 cache key (also the cache directory name).
    pub fn cache_key(&self) -> &str {
        &self.inner.key
    }

    /// Wall time of the build, 0 on a cache hit.
    pub fn build_seconds(&self) -> f64 {
        self.inner.build_seconds
    }

    pub fn cache_hit(&self) -> bool {
        self.inner.cache_hit
    }

    /// Why the cache entry was rebuilt (a missing or truncated library, a
    /// hash that does not match its stamp), or `None` if it was not damaged.
    pub fn cache_repair(&self) -> Option<&str> {
        self.inner.cache_repair.as_deref()
    }

    /// Path of the loaded shared library (inside the cache).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}
