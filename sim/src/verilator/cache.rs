//! The build cache: one directory per content hash, filled atomically, checked
//! before every load and repaired when damaged.
//!
//! Layout of the cache directory:
//!
//! * `<key>/`: a finished entry: `lib<top>.so`, the stamp `coforge.stamp`, the
//!   generated C++, the sources and `build.log`. The stamp holds the library's
//!   SHA-256 and size, written after the build and checked before every
//!   `dlopen`, so a truncated or replaced library is rebuilt instead of
//!   crashing the process (a truncated `.so` maps fine and then raises SIGBUS).
//!   Its modification time records the last use.
//! * `<key>.tmp-<pid>-<nanos>-<n>/`: a build in progress. Renamed to `<key>`
//!   when done; left behind only by a killed build, and removed once idle for
//!   [`STALE_AFTER`].
//! * `<key>.old-<pid>-<nanos>-<n>/`: a damaged entry moved aside before its
//!   replacement is renamed into place, then removed.
//! * `<key>.failed/`: the last failed build of a key, kept for its log.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{BuildOptions, SHIM_ABI};
use crate::tools;
use crate::{DesignSpec, SimError};

/// A temporary directory untouched for this long belongs to a build that died.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The folder of the cache directory that holds `coforge sweep`'s Yosys estimates (one JSON
/// file per content hash). It is not a build: `list`, `gc` and `clear` leave it alone.
pub const YOSYS_ESTIMATES_DIR: &str = "yosys";

const STAMP: &str = "coforge.stamp";
const STAMP_HEADER: &str = "coforge-sim cache entry 1";

/// The cache directory: the option, else `$COFORGE_CACHE_DIR`, else
/// `$HOME/.cache/coforge/verilator`.
pub(super) fn dir(opts: &BuildOptions) -> PathBuf {
    opts.cache_dir.clone().unwrap_or_else(default_dir)
}

fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("COFORGE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache/coforge/verilator"),
        None => std::env::temp_dir().join("coforge-verilator-cache"),
    }
}

/// A cache error, naming the directory and how to choose or repair it.
fn error(dir: &Path, reason: impl Into<String>) -> SimError {
    SimError::Cache {
        dir: dir.to_path_buf(),
        reason: reason.into(),
    }
}

fn io_error(dir: &Path, what: &str, path: &Path, e: std::io::Error) -> SimError {
    error(dir, format!("{what} {}: {e}", path.display()))
}

/// What, besides the design, decides the bytes of a built library: the
/// Verilator and C++ compiler versions and every flag. All of it is hashed
/// into the key and written into the stamp.
#[derive(Clone, Debug)]
pub(super) struct Toolchain {
    pub verilator: String,
    pub cxx: String,
    /// Verilator's make configuration and the make variables taken from the
    /// environment, which change the compiler flags.
    pub make_config: String,
}

/// Hex SHA-256 of the design, the shim, the toolchain and the arguments.
pub(super) fn key(spec: &DesignSpec, shim: &str, tools: &Toolchain, args: &[String]) -> String {
    let mut h = Sha256::new();
    // Length-prefix every field so that no two different inputs hash alike.
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(format!("coforge-sim shim abi {SHIM_ABI}").as_bytes());
    field(tools.verilator.as_bytes());
    field(tools.cxx.as_bytes());
    field(tools.make_config.as_bytes());
    for a in args {
        field(a.as_bytes());
    }
    field(shim.as_bytes());
    for (name, text) in &spec.sources {
        field(name.as_bytes());
        field(text.as_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A library ready to load from the cache.
pub(super) struct Fetched {
    pub lib: PathBuf,
    pub cache_hit: bool,
    pub build_seconds: f64,
    /// Why an existing entry was rebuilt, if it was.
    pub repaired: Option<String>,
}

/// The verified library of `key`, built with `build` (into the directory it is
/// given) when the entry is missing or damaged.
pub(super) fn fetch_or_build(
    cache: &Path,
    key: &str,
    top: &str,
    tools: &Toolchain,
    build: impl FnOnce(&Path) -> Result<(), SimError>,
) -> Result<Fetched, SimError> {
    let lib_name = format!("lib{top}.so");
    let entry = cache.join(key);
    let repaired = match verify(&entry, &lib_name) {
        Ok(_) => {
            touch(&entry.join(STAMP));
            return Ok(Fetched {
                lib: entry.join(&lib_name),
                cache_hit: true,
                build_seconds: 0.0,
                repaired: None,
            });
        }
        Err(Problem::Missing) => None,
        Err(Problem::Damaged(why)) => Some(why),
    };
    tools::create_dir(cache).map_err(|e| error(cache, e.to_string()))?;
    remove_stale(cache);
    let t0 = std::time::Instant::now();
    let tmp = cache.join(format!("{key}.tmp-{}", unique_suffix()));
    if let Err(e) = build(&tmp).and_then(|()| write_stamp(&tmp, &lib_name, top, tools)) {
        return Err(keep_failed(e, &tmp, &cache.join(format!("{key}.failed"))));
    }
    install(cache, &tmp, &entry, &lib_name)?;
    Ok(Fetched {
        lib: entry.join(&lib_name),
        cache_hit: false,
        build_seconds: t0.elapsed().as_secs_f64(),
        repaired,
    })
}

/// pid + time + a process-wide counter: unique across processes and threads.
fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}-{n}", std::process::id())
}

/// Renames the finished build `tmp` to `entry`. A damaged entry in the way is
/// first moved aside (a rename cannot replace a non-empty directory); a good
/// one, finished meanwhile by a concurrent build of the same key, wins and
/// ours is dropped: both are the same build.
fn install(cache: &Path, tmp: &Path, entry: &Path, lib_name: &str) -> Result<(), SimError> {
    for _ in 0..3 {
        match std::fs::rename(tmp, entry) {
            Ok(()) => return Ok(()),
            Err(e) if !entry.exists() => {
                return Err(io_error(cache, "cannot move the build to", entry, e))
            }
            Err(_) => {}
        }
        if verify(entry, lib_name).is_ok() {
            let _ = std::fs::remove_dir_all(tmp);
            return Ok(());
        }
        discard(entry);
    }
    Err(error(
        cache,
        format!(
            "cannot replace the damaged entry {} (is another program writing to the cache?)",
            entry.display()
        ),
    ))
}

/// Removes a directory without ever exposing it half-deleted under its own
/// name: it is renamed aside first, so readers see it whole or not at all.
fn discard(dir: &Path) {
    let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let key = name.split('.').next().unwrap_or(name);
    let aside = dir.with_file_name(format!("{key}.old-{}", unique_suffix()));
    if std::fs::rename(dir, &aside).is_ok() {
        let _ = std::fs::remove_dir_all(&aside);
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

/// The contents of a stamp.
#[derive(Clone, Debug, Default)]
struct Stamp {
    lib: String,
    sha256: String,
    size: u64,
    top: String,
    verilator: String,
    cxx: String,
    built: u64,
}

fn write_stamp(dir: &Path, lib_name: &str, top: &str, tools: &Toolchain) -> Result<(), SimError> {
    let lib = dir.join(lib_name);
    let (sha256, size) = hash_file(&lib).map_err(SimError::io(format!(
        "hashing the built library {}",
        lib.display()
    )))?;
    let built = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let text = format!(
        "{STAMP_HEADER}\nlib {lib_name}\nsha256 {sha256}\nsize {size}\ntop {top}\n\
         verilator {}\ncxx {}\nbuilt {built}\n",
        tools.verilator, tools.cxx
    );
    tools::write_file(&dir.join(STAMP), text)
}

fn read_stamp(path: &Path) -> Option<Stamp> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()? != STAMP_HEADER {
        return None;
    }
    let mut s = Stamp::default();
    for line in lines {
        let (k, v) = line.split_once(' ')?;
        match k {
            "lib" => s.lib = v.into(),
            "sha256" => s.sha256 = v.into(),
            "size" => s.size = v.parse().ok()?,
            "top" => s.top = v.into(),
            "verilator" => s.verilator = v.into(),
            "cxx" => s.cxx = v.into(),
            "built" => s.built = v.parse().ok()?,
            _ => {}
        }
    }
    Some(s)
}

fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex(&h.finalize()), size))
}

enum Problem {
    /// No entry at all: an ordinary cache miss.
    Missing,
    /// An entry that must not be loaded, and why.
    Damaged(String),
}

/// Checks an entry against its stamp: the library exists, has the recorded
/// size and SHA-256.
fn verify(entry: &Path, lib_name: &str) -> Result<Stamp, Problem> {
    if !entry.exists() {
        return Err(Problem::Missing);
    }
    let damaged = |why: String| Err(Problem::Damaged(why));
    let Some(stamp) = read_stamp(&entry.join(STAMP)) else {
        return damaged(format!("{STAMP} is missing or unreadable"));
    };
    if stamp.lib != lib_name {
        return damaged(format!("the stamp is for {}, not {lib_name}", stamp.lib));
    }
    let lib = entry.join(lib_name);
    let size = std::fs::metadata(&lib).map(|m| m.len());
    match size {
        Err(e) => return damaged(format!("{lib_name}: {e}")),
        Ok(n) if n != stamp.size => {
            return damaged(format!(
                "{lib_name} has {n} bytes, the stamp says {}",
                stamp.size
            ))
        }
        Ok(_) => {}
    }
    match hash_file(&lib) {
        Err(e) => damaged(format!("{lib_name}: {e}")),
        Ok((sha, _)) if sha != stamp.sha256 => damaged(format!(
            "{lib_name} has SHA-256 {sha}, the stamp says {}",
            stamp.sha256
        )),
        Ok(_) => Ok(stamp),
    }
}

/// Records a use in the stamp's modification time (best effort).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// The latest modification time of a directory and of its direct children
/// (a running build keeps writing into `obj/`, which changes `obj`'s time).
fn last_activity(dir: &Path) -> Option<SystemTime> {
    let mut t = std::fs::metadata(dir).and_then(|m| m.modified()).ok()?;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
            t = t.max(m);
        }
    }
    Some(t)
}

fn idle_for(dir: &Path) -> Duration {
    last_activity(dir)
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

fn is_temporary(name: &str) -> bool {
    name.contains(".tmp-") || name.contains(".old-")
}

/// Whether `dir` (named `name`) is a temporary directory left by a build that
/// died: idle for longer than [`STALE_AFTER`].
fn is_stale(name: &str, dir: &Path) -> bool {
    is_temporary(name) && idle_for(dir) > STALE_AFTER
}

/// Removes the stale temporary directories (best effort: a concurrent run may
/// be removing them too).
fn remove_stale(cache: &Path) {
    for e in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        if is_stale(&e.file_name().to_string_lossy(), &e.path()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => total += dir_size(&e.path()),
            Ok(_) => total += e.metadata().map_or(0, |m| m.len()),
            Err(_) => {}
        }
    }
    total
}

/// The state of one directory in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryState {
    /// A finished entry whose library matches its stamp.
    Ready,
    /// A finished entry that would be rebuilt on its next use, and why.
    Damaged(String),
    /// The log of the last failed build of a key.
    Failed,
    /// A build in progress, or left behind by one that died.
    Temporary,
}

/// One directory of the build cache, as listed by [`BuildCache::list`].
#[derive(Clone, Debug)]
pub struct CacheEntry {
    /// Directory name: the key, with a suffix for failed and temporary ones.
    pub name: String,
    pub state: EntryState,
    /// Top module (from the stamp; `None` when it cannot be read).
    pub top: Option<String>,
    /// Bytes on disk.
    pub bytes: u64,
    /// When the entry was built (from the stamp), else its modification time.
    pub built: Option<SystemTime>,
    /// When it was last loaded (or last written, for unfinished ones).
    pub last_used: Option<SystemTime>,
    /// The Verilator version that built it (from the stamp).
    pub verilator: Option<String>,
}

/// What [`BuildCache::gc`] or [`BuildCache::clear`] removed.
#[derive(Clone, Debug, Default)]
pub struct Removed {
    /// `(directory name, reason)`.
    pub entries: Vec<(String, String)>,
    pub bytes: u64,
}

/// The Verilator build cache, for listing and cleaning it. Builds use it
/// through [`crate::Verilator::build`].
#[derive(Clone, Debug)]
pub struct BuildCache {
    dir: PathBuf,
}

impl BuildCache {
    /// The cache at `dir`, or the default one (`$COFORGE_CACHE_DIR`, else
    /// `$HOME/.cache/coforge/verilator`).
    pub fn new(dir: Option<PathBuf>) -> Self {
        BuildCache {
            dir: dir.unwrap_or_else(default_dir),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every directory of the cache, checked (this hashes every library), in
    /// name order. A missing cache directory is an empty cache.
    pub fn list(&self) -> Result<Vec<CacheEntry>, SimError> {
        let read = match std::fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&self.dir, "cannot read", &self.dir, e)),
        };
        let mut out = Vec::new();
        for e in read.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) || e.file_name() == YOSYS_ESTIMATES_DIR {
                continue;
            }
            out.push(self.describe(&e.path()));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn describe(&self, path: &Path) -> CacheEntry {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stamp_path = path.join(STAMP);
        let stamp = read_stamp(&stamp_path);
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let state = if is_temporary(&name) {
            EntryState::Temporary
        } else if name.ends_with(".failed") {
            EntryState::Failed
        } else {
            let lib = stamp.as_ref().map_or(String::new(), |s| s.lib.clone());
            match verify(path, &lib) {
                Ok(_) => EntryState::Ready,
                Err(Problem::Damaged(why)) => EntryState::Damaged(why),
                Err(Problem::Missing) => EntryState::Damaged("vanished while listing".into()),
            }
        };
        CacheEntry {
            top: stamp.as_ref().map(|s| s.top.clone()),
            bytes: dir_size(path),
            built: stamp
                .as_ref()
                .map(|s| UNIX_EPOCH + Duration::from_secs(s.built))
                .or_else(|| modified(path)),
            last_used: if stamp.is_some() {
                modified(&stamp_path)
            } else {
                last_activity(path)
            },
            verilator: stamp.map(|s| s.verilator),
            state,
            name,
        }
    }

    /// Removes temporary directories idle for over an hour ([`STALE_AFTER`]),
    /// damaged entries, failed builds, and, with `unused_for`, ready entries
    /// not loaded for that long.
    pub fn gc(&self, unused_for: Option<Duration>) -> Result<Removed, SimError> {
        self.remove_where(|e| match &e.state {
            EntryState::Temporary => is_stale(&e.name, &self.dir.join(&e.name))
                .then(|| "temporary directory of a build that died".to_string()),
            EntryState::Damaged(why) => Some(format!("damaged: {why}")),
            EntryState::Failed => Some("failed build".into()),
            EntryState::Ready => {
                let limit = unused_for?;
                let idle = SystemTime::now()
                    .duration_since(e.last_used?)
                    .unwrap_or_default();
                (idle > limit).then(|| format!("unused for {} days", idle.as_secs() / 86_400))
            }
        })
    }

    /// Removes every entry. Builds in progress (temporary directories active
    /// within the last hour) are left alone.
    pub fn clear(&self) -> Result<Removed, SimError> {
        self.remove_where(|e| match e.state {
            EntryState::Temporary if !is_stale(&e.name, &self.dir.join(&e.name)) => None,
            _ => Some("cleared".into()),
        })
    }

    fn remove_where(
        &self,
        reason: impl Fn(&CacheEntry) -> Option<String>,
    ) -> Result<Removed, SimError> {
        let mut removed = Removed::default();
        for e in self.list()? {
            let Some(why) = reason(&e) else { continue };
            let path = self.dir.join(&e.name);
            if e.state == EntryState::Temporary {
                std::fs::remove_dir_all(&path)
                    .map_err(|err| io_error(&self.dir, "cannot remove", &path, err))?;
            } else {
                discard(&path);
                if path.exists() {
                    return Err(error(
                        &self.dir,
                        format!("cannot remove {}", path.display()),
                    ));
                }
            }
            removed.bytes += e.bytes;
            removed.entries.push((e.name, why));
        }
        Ok(removed)
    }
}
