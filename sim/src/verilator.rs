//! Verilator backend: C++ shim generation, cached builds, loading, running.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::frames::{InputPort, Layout, OutputPort, Pins, Slot, Stimulus, Trace};
use crate::tools::{self, ToolVersion, MAKE, VERILATOR};
use crate::{DesignSpec, PortDir, SimError, Simulator};

/// Bumped whenever the shim's C ABI or the build recipe changes, so old cache
/// entries are never loaded by a newer crate.
const SHIM_ABI: u32 = 2;
const MIN_MAJOR: u32 = 5;
const MIN_MINOR: u32 = 6;
/// Simulation time per clock cycle; the rising edge is at half of it.
const CYCLE_TIME: u64 = 10;

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

impl BuildOptions {
    fn resolved_cache_dir(&self) -> PathBuf {
        if let Some(d) = &self.cache_dir {
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
    /// version and all flags. A build happens in a private temporary directory
    /// that is renamed into place atomically, so concurrent builds of the same
    /// design (threads or processes) all succeed and share the result.
    pub fn build(spec: &DesignSpec, opts: &BuildOptions) -> Result<VerilatedLib, SimError> {
        let layout = Layout::new(spec)?;
        let (bin, version) = Self::checked_version()?;
        let shim = shim_source(spec, &layout, opts.waves);
        let args = verilator_args(spec, opts);
        let key = cache_key(spec, &shim, &version, &args);
        let cache = opts.resolved_cache_dir();
        let final_dir = cache.join(&key);
        let lib_name = format!("lib{}.so", spec.top);
        let final_lib = final_dir.join(&lib_name);

        let (build_seconds, cache_hit) = if final_lib.is_file() {
            (0.0, true)
        } else {
            let t0 = Instant::now();
            build_into_cache(spec, &bin, &args, &shim, &cache, &key, &lib_name)?;
            (t0.elapsed().as_secs_f64(), false)
        };
        load(final_lib, layout, key, build_seconds, cache_hit, opts)
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

fn cache_key(spec: &DesignSpec, shim: &str, version: &ToolVersion, args: &[String]) -> String {
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

#[allow(clippy::too_many_arguments)]
fn build_into_cache(
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
    if let Err(e) = build_in(spec, bin, args, shim, &tmp, lib_name) {
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

/// Verilates, checks the ports, compiles and links inside `tmp`, leaving
/// `tmp/<lib_name>` and the generated C++ (object files are removed).
fn build_in(
    spec: &DesignSpec,
    bin: &Path,
    args: &[String],
    shim: &str,
    tmp: &Path,
    lib_name: &str,
) -> Result<(), SimError> {
    let obj = tmp.join("obj");
    let log = tmp.join("build.log");
    let src = tmp.join("src");
    let files = spec.write_sources(&src)?;
    let shim_path = tmp.join("coforge_shim.cpp");
    tools::write_file(&shim_path, shim)?;

    let failed = |log: &Path| SimError::BuildFailed {
        log: log.to_path_buf(),
        tail: tools::tail(log, 20),
    };

    // Step 1: verilate only, so the generated header can be checked against
    // the spec before spending time in the C++ compiler.
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .arg("-Mdir")
        .arg(&obj)
        .arg(format!("-I{}", src.display()))
        .args(&files)
        .arg(&shim_path);
    if !tools::run_logged(&VERILATOR, &mut cmd, &log)? {
        return Err(failed(&log));
    }
    check_header(&obj.join("Vdut.h"), spec)?;

    // Step 2: compile and link.
    let jobs = std::env::var("COFORGE_BUILD_JOBS")
        .ok()
        .and_then(|j| j.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get().min(8)))
        .max(1);
    let make = MAKE.resolve();
    let mut cmd = Command::new(&make);
    cmd.arg("-C")
        .arg(&obj)
        .arg("-f")
        .arg("Vdut.mk")
        .arg(format!("-j{jobs}"));
    // A jobserver inherited from an outer make/cargo would not be ours to use.
    cmd.env_remove("MAKEFLAGS").env_remove("MFLAGS");
    if !tools::run_logged(&MAKE, &mut cmd, &log)? {
        return Err(failed(&log));
    }
    let built = obj.join(lib_name);
    if !built.is_file() {
        let _ = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .map(|mut f| {
                use std::io::Write;
                writeln!(
                    f,
                    "coforge-sim: make succeeded but {} is missing",
                    built.display()
                )
            });
        return Err(failed(&log));
    }
    std::fs::rename(&built, tmp.join(lib_name))
        .map_err(SimError::io("moving the built library"))?;
    // Object files are only needed to build; drop them to keep the cache small
    // (the generated C++ and the log stay for debugging).
    if let Ok(entries) = std::fs::read_dir(&obj) {
        for e in entries.flatten() {
            let p = e.path();
            if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("o" | "a" | "d")
            ) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    Ok(())
}

/// Compares the ports Verilator generated (`VL_IN8(&name,msb,lsb)` etc.) with
/// the spec, so a wrong spec is reported by name instead of as a C++ error or
/// a silently undriven port.
fn check_header(header: &Path, spec: &DesignSpec) -> Result<(), SimError> {
    let text = std::fs::read_to_string(header)
        .map_err(SimError::io(format!("reading {}", header.display())))?;
    let mut found: Vec<(String, PortDir, u32)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(open) = line.find("(&") else {
            continue;
        };
        let mac = &line[..open];
        let dir = match mac {
            m if m.starts_with("VL_INOUT") => {
                return Err(SimError::PortMismatch {
                    detail: format!("{}: inout ports are not supported ({line})", spec.top),
                })
            }
            m if m.starts_with("VL_IN") => PortDir::Input,
            m if m.starts_with("VL_OUT") => PortDir::Output,
            _ => continue,
        };
        let inner = line[open + 2..].trim_end_matches(';').trim_end_matches(')');
        let mut it = inner.split(',');
        let (Some(name), Some(msb), Some(lsb)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let (Ok(msb), Ok(lsb)) = (msb.trim().parse::<u32>(), lsb.trim().parse::<u32>()) else {
            continue;
        };
        found.push((name.trim().to_string(), dir, msb - lsb.min(msb) + 1));
    }
    let mut problems = Vec::new();
    match found.iter().find(|p| p.0 == spec.clock) {
        None => problems.push(format!(
            "clock {:?} is not a port of {}",
            spec.clock, spec.top
        )),
        Some((_, PortDir::Input, 1)) => {}
        Some(_) => problems.push(format!("clock {:?} must be a 1-bit input", spec.clock)),
    }
    for p in &spec.ports {
        match found.iter().find(|f| f.0 == p.name) {
            None => problems.push(format!(
                "spec port {:?} is not a port of {}",
                p.name, spec.top
            )),
            Some((_, d, w)) if *d != p.dir || *w != p.width => problems.push(format!(
                "port {:?}: spec says {:?} {} bits, design has {:?} {} bits",
                p.name, p.dir, p.width, d, w
            )),
            _ => {}
        }
    }
    for f in &found {
        if f.0 != spec.clock && !spec.ports.iter().any(|p| p.name == f.0) {
            problems.push(format!(
                "design port {:?} ({:?}, {} bits) is missing from the spec",
                f.0, f.1, f.2
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SimError::PortMismatch {
            detail: format!(
                "{} (see {}): {}",
                spec.top,
                header.display(),
                problems.join("; ")
            ),
        })
    }
}

/// The C++ shim: one context + model per handle, and a bulk `run` that loops
/// over cycles in C++.
fn shim_source(spec: &DesignSpec, layout: &Layout, waves: bool) -> String {
    let mut apply = String::new();
    for s in &layout.inputs {
        let _ = writeln!(apply, "    {}", copy_in(s));
    }
    let mut sample = String::new();
    for s in &layout.outputs {
        let _ = writeln!(sample, "        {}", copy_out(s));
    }
    let signature = spec.signature();
    let clk = &spec.clock;
    let in_words = layout.in_words;
    let out_words = layout.out_words;
    let waves = waves as u32;
    format!(
        r#"// Generated by coforge-sim (shim ABI {SHIM_ABI}) for top module {top}. Do not edit.
#include "Vdut.h"
#include "verilated.h"
#define COFORGE_WAVES {waves}
#if COFORGE_WAVES
#include "verilated_vcd_c.h"
#endif
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#define COFORGE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {{
struct CoforgeFatal : std::runtime_error {{
    using std::runtime_error::runtime_error;
}};

struct Sim {{
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vdut> top;
    uint64_t cycle = 0;
    bool poisoned = false;
    std::string error;
#if COFORGE_WAVES
    std::unique_ptr<VerilatedVcdC> vcd;
    std::string wave_path;
    uint64_t wave_first = 0, wave_last = 0;
    bool wave_armed = false;
#endif
}};

#if COFORGE_WAVES
inline void wave_dump(Sim* s) {{
    if (!s->wave_armed || s->cycle < s->wave_first || s->cycle > s->wave_last) return;
    if (!s->vcd) {{
        s->vcd.reset(new VerilatedVcdC);
        s->top->trace(s->vcd.get(), 99);
        s->vcd->open(s->wave_path.c_str());
        if (!s->vcd->isOpen()) throw CoforgeFatal("cannot open VCD file " + s->wave_path);
    }}
    s->vcd->dump(s->ctx->time());
}}
inline void wave_close(Sim* s) {{
    if (s->vcd) {{ s->vcd->close(); s->vcd.reset(); }}
    s->wave_armed = false;
}}
#endif
}}  // namespace

// $stop, $fatal and internal Verilator errors: throw instead of abort(), so
// the error reaches Rust as a message and the process survives.
void vl_fatal(const char* filename, int linenum, const char* hier, const char* msg) {{
    (void)hier;
    std::string m = msg ? msg : "fatal error";
    if (filename && filename[0]) m = std::string(filename) + ":" + std::to_string(linenum) + ": " + m;
    throw CoforgeFatal(m);
}}
// $finish: only flag it (the default exits the process on a second $finish).
void vl_finish(const char* filename, int linenum, const char* hier) {{
    (void)filename; (void)linenum; (void)hier;
    Verilated::threadContextp()->gotFinish(true);
}}

COFORGE_EXPORT uint32_t coforge_abi() {{ return {SHIM_ABI}; }}
COFORGE_EXPORT const char* coforge_signature() {{ return "{signature}"; }}
COFORGE_EXPORT uint32_t coforge_in_words() {{ return {in_words}; }}
COFORGE_EXPORT uint32_t coforge_out_words() {{ return {out_words}; }}

namespace {{
void copy_error(const char* what, char* err, size_t err_len) {{
    if (err && err_len) {{ std::strncpy(err, what, err_len - 1); err[err_len - 1] = 0; }}
}}
}}  // namespace

// Returns nullptr on failure with the message copied into err.
COFORGE_EXPORT void* coforge_new(int unique, uint32_t seed, char* err, size_t err_len) {{
    try {{
        std::unique_ptr<Sim> s(new Sim);
        s->ctx.reset(new VerilatedContext);
        s->ctx->fatalOnError(true);
        // Random reset values must be chosen before the model is constructed.
        if (unique) {{ s->ctx->randReset(2); s->ctx->randSeed((int)seed); }}
#if COFORGE_WAVES
        s->ctx->traceEverOn(true);
#endif
        s->top.reset(new Vdut(s->ctx.get(), "dut"));
        s->top->{clk} = 0;
        return s.release();
    }} catch (const std::exception& e) {{
        copy_error(e.what(), err, err_len);
    }} catch (...) {{
        copy_error("unknown C++ exception", err, err_len);
    }}
    return nullptr;
}}

COFORGE_EXPORT void coforge_delete(void* h) {{
    Sim* s = static_cast<Sim*>(h);
    try {{
#if COFORGE_WAVES
        wave_close(s);
#endif
        Verilated::threadContextp(s->ctx.get());
        if (!s->poisoned) s->top->final();
    }} catch (...) {{}}
    try {{ delete s; }} catch (...) {{}}
}}

COFORGE_EXPORT const char* coforge_error(void* h) {{ return static_cast<Sim*>(h)->error.c_str(); }}
COFORGE_EXPORT uint64_t coforge_cycle(void* h) {{ return static_cast<Sim*>(h)->cycle; }}

// path == nullptr disables waves. Returns 0, or -1 if this is not a --trace build.
COFORGE_EXPORT int coforge_waves(void* h, const char* path, uint64_t first, uint64_t last) {{
    Sim* s = static_cast<Sim*>(h);
#if COFORGE_WAVES
    try {{
        wave_close(s);
        if (path) {{ s->wave_path = path; s->wave_first = first; s->wave_last = last; s->wave_armed = true; }}
        return 0;
    }} catch (const std::exception& e) {{ s->error = e.what(); return -1; }}
    catch (...) {{ s->error = "unknown C++ exception"; return -1; }}
#else
    (void)s; (void)path; (void)first; (void)last;
    return -1;
#endif
}}

namespace {{
// One cycle (see the crate docs): inputs from frame f, settle, sample into o
// if o is not null, one rising edge. Throws on $stop/$fatal.
inline void cycle_once(Sim* s, const uint32_t* f, uint32_t* o) {{
    Vdut* top = s->top.get();
    VerilatedContext* ctx = s->ctx.get();
    (void)f;
    // Falling edge and new inputs together, then settle.
    top->{clk} = 0;
{apply}    ctx->time(s->cycle * {CYCLE_TIME});
    top->eval();
#if COFORGE_WAVES
    wave_dump(s);
#endif
    if (o) {{
{sample}    }}
    top->{clk} = 1;
    ctx->time(s->cycle * {CYCLE_TIME} + {half});
    top->eval();
#if COFORGE_WAVES
    wave_dump(s);
    if (s->vcd && s->cycle >= s->wave_last) wave_close(s);
#endif
    ++s->cycle;
}}

// A model may be driven from a different thread than the one that created it
// (or ran it last); Verilator's thread-local context (used by vl_finish and the
// runtime's error paths) must be this model's before any evaluation.
inline bool enter(Sim* s) {{
    if (s->poisoned) {{ s->error = "the model stopped on an earlier error: " + s->error; return false; }}
    Verilated::threadContextp(s->ctx.get());
    return true;
}}

inline void fail(Sim* s, const char* what) {{
    s->poisoned = true;
    s->error = what;
}}
}}  // namespace

// Runs n cycles (see the crate docs for the semantics). Returns the number of
// cycles run (fewer than n if the design executed $finish), or -1 on error.
COFORGE_EXPORT int64_t coforge_run(void* h, uint64_t n, const uint32_t* in, const uint8_t* capture, uint32_t* out) {{
    Sim* s = static_cast<Sim*>(h);
    if (!enter(s)) return -1;
    uint32_t* o = out;
    try {{
        for (uint64_t c = 0; c < n; ++c) {{
            if (capture[c]) {{
                cycle_once(s, in + c * {in_words}, o);
                o += {out_words};
            }} else {{
                cycle_once(s, in + c * {in_words}, nullptr);
            }}
            if (s->ctx->gotFinish()) return (int64_t)(c + 1);
        }}
    }} catch (const std::exception& e) {{
        fail(s, e.what());
        return -1;
    }} catch (...) {{
        fail(s, "unknown C++ exception");
        return -1;
    }}
    return (int64_t)n;
}}

// One cycle of closed-loop simulation: inputs from `in`, every output sampled
// into `out`. Returns 0, 1 if the design executed $finish, or -1 on error.
COFORGE_EXPORT int coforge_step(void* h, const uint32_t* in, uint32_t* out) {{
    Sim* s = static_cast<Sim*>(h);
    if (!enter(s)) return -1;
    try {{
        cycle_once(s, in, out);
        return s->ctx->gotFinish() ? 1 : 0;
    }} catch (const std::exception& e) {{
        fail(s, e.what());
    }} catch (...) {{
        fail(s, "unknown C++ exception");
    }}
    return -1;
}}
"#,
        top = spec.top,
        half = CYCLE_TIME / 2,
    )
}

/// C++ that copies input `s` from frame `f` into the model (masking the top
/// word, since Verilator requires clean upper bits).
fn copy_in(s: &Slot) -> String {
    let (n, o, m) = (&s.name, s.offset, s.top_mask);
    match s.width {
        1..=8 => format!("top->{n} = (CData)(f[{o}] & {m}u);"),
        9..=16 => format!("top->{n} = (SData)(f[{o}] & {m}u);"),
        17..=32 => format!("top->{n} = (IData)(f[{o}] & {m}u);"),
        33..=64 => format!(
            "top->{n} = (QData)f[{o}] | ((QData)(f[{}] & {m}u) << 32);",
            o + 1
        ),
        _ => format!(
            "std::memcpy(top->{n}.data(), f + {o}, {} * 4); top->{n}[{}] &= {m}u;",
            s.words,
            s.words - 1
        ),
    }
}

/// C++ that copies output `s` from the model into the out frame `o`.
fn copy_out(s: &Slot) -> String {
    let (n, o, m) = (&s.name, s.offset, s.top_mask);
    match s.width {
        1..=32 => format!("o[{o}] = (uint32_t)top->{n} & {m}u;"),
        33..=64 => format!(
            "{{ const QData v = top->{n}; o[{o}] = (uint32_t)v; o[{}] = (uint32_t)(v >> 32) & {m}u; }}",
            o + 1
        ),
        _ => format!(
            "std::memcpy(o + {o}, top->{n}.data(), {} * 4); o[{}] &= {m}u;",
            s.words,
            o + s.words - 1
        ),
    }
}

type NewFn = unsafe extern "C" fn(c_int, u32, *mut c_char, usize) -> *mut c_void;
type DeleteFn = unsafe extern "C" fn(*mut c_void);
type ErrorFn = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type CycleFn = unsafe extern "C" fn(*mut c_void) -> u64;
type WavesFn = unsafe extern "C" fn(*mut c_void, *const c_char, u64, u64) -> c_int;
type RunFn = unsafe extern "C" fn(*mut c_void, u64, *const u32, *const u8, *mut u32) -> i64;
type StepFn = unsafe extern "C" fn(*mut c_void, *const u32, *mut u32) -> c_int;

struct LibInner {
    // Function pointers into `_lib`; valid as long as it is loaded. Fields
    // drop in declaration order, so `_lib` (last) is unloaded last.
    new: NewFn,
    delete: DeleteFn,
    error: ErrorFn,
    cycle: CycleFn,
    waves: WavesFn,
    run: RunFn,
    step: StepFn,
    layout: Arc<Layout>,
    path: PathBuf,
    key: String,
    build_seconds: f64,
    cache_hit: bool,
    x_initial: XInitial,
    traced: bool,
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

fn load(
    path: PathBuf,
    layout: Arc<Layout>,
    key: String,
    build_seconds: f64,
    cache_hit: bool,
    opts: &BuildOptions,
) -> Result<VerilatedLib, SimError> {
    let err = |reason: String| SimError::Load {
        path: path.clone(),
        reason,
    };
    // SAFETY: the library was built by us from a shim we generated; its
    // initialisers only set up the Verilator runtime's statics.
    let lib = unsafe { libloading::Library::new(&path) }.map_err(|e| err(e.to_string()))?;
    macro_rules! sym {
        ($name:literal, $ty:ty) => {{
            // SAFETY: the symbol types match the shim generated for SHIM_ABI,
            // checked through coforge_abi before any other symbol is used.
            let s: libloading::Symbol<$ty> = unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                .map_err(|e| {
                    err(format!(
                        "missing symbol {}: {e}; delete the cache entry",
                        $name
                    ))
                })?;
            *s
        }};
    }
    let abi = sym!("coforge_abi", unsafe extern "C" fn() -> u32);
    // SAFETY: no arguments, returns a constant.
    let abi = unsafe { abi() };
    if abi != SHIM_ABI {
        return Err(err(format!(
            "shim ABI {abi}, expected {SHIM_ABI}; delete the cache entry"
        )));
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
        build_seconds,
        cache_hit,
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
            Some(handle) => Ok(VerilatedModel {
                lib: self.inner.clone(),
                handle,
                waves: None,
                pins: Pins::new(self.inner.layout.clone()),
                next_cycle: 0,
            }),
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

    /// Path of the loaded shared library (inside the cache).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

/// One simulation instance. State persists between [`Simulator::run`] and
/// [`VerilatedModel::step`] calls, which may be mixed freely: both continue
/// the model's cycle counter.
pub struct VerilatedModel {
    lib: Arc<LibInner>,
    handle: NonNull<c_void>,
    waves: Option<WaveOptions>,
    /// Closed-loop inputs and outputs (see [`VerilatedModel::step`]).
    pins: Pins,
    /// Mirror of the shim's cycle counter: the number of the next cycle.
    next_cycle: u64,
}

// SAFETY: the C++ object is only touched through &mut self (or in Drop), so
// never from two threads at once, and it owns its VerilatedContext, which is
// passed explicitly to the model (no reliance on the creating thread's
// thread-local context). Not Sync: &self methods must not run concurrently
// with run() on another thread — and none touch the C++ object mutably.
unsafe impl Send for VerilatedModel {}

impl VerilatedModel {
    /// Dumps VCD for the window in `w` during later runs (`None` stops and
    /// closes the file). Fails if the library was not built with
    /// [`BuildOptions::waves`]. The file is created when the window's first
    /// cycle is simulated and closed after its last one.
    pub fn set_waves(&mut self, w: Option<WaveOptions>) -> Result<(), SimError> {
        if !self.lib.traced {
            return Err(SimError::Runtime {
                message: "waves need a library built with BuildOptions { waves: true, .. }".into(),
            });
        }
        let path = match &w {
            Some(o) => {
                if o.first_cycle > o.last_cycle {
                    return Err(SimError::Runtime {
                        message: format!(
                            "wave window {}..={} is empty",
                            o.first_cycle, o.last_cycle
                        ),
                    });
                }
                if let Some(parent) = o.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    tools::create_dir(parent)?;
                }
                let s = o.path.to_str().ok_or_else(|| SimError::Runtime {
                    message: format!("wave path {} is not UTF-8", o.path.display()),
                })?;
                Some(CString::new(s).map_err(|_| SimError::Runtime {
                    message: "wave path contains NUL".into(),
                })?)
            }
            None => None,
        };
        let (first, last) = w.as_ref().map_or((0, 0), |o| (o.first_cycle, o.last_cycle));
        // SAFETY: valid handle; path is NUL-terminated or null.
        let rc = unsafe {
            (self.lib.waves)(
                self.handle.as_ptr(),
                path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                first,
                last,
            )
        };
        if rc != 0 {
            return Err(SimError::Runtime {
                message: format!("setting waves failed: {}", self.last_error()),
            });
        }
        self.waves = w;
        Ok(())
    }

    /// Cycles simulated since the model was created, which is also the number
    /// of the next cycle.
    pub fn cycle(&self) -> u64 {
        self.next_cycle
    }

    /// The closed-loop ports: inputs for the next [`VerilatedModel::step`],
    /// outputs of the last one.
    pub fn pins(&self) -> &Pins {
        &self.pins
    }

    pub fn pins_mut(&mut self) -> &mut Pins {
        &mut self.pins
    }

    /// Resolves an input port by name; see [`Pins::input`].
    pub fn input(&self, name: &str) -> Result<InputPort, SimError> {
        self.pins.input(name)
    }

    /// Resolves an output port by name; see [`Pins::output`].
    pub fn output(&self, name: &str) -> Result<OutputPort, SimError> {
        self.pins.output(name)
    }

    /// Sets an input for the next step; see [`Pins::set`].
    #[inline]
    pub fn set(&mut self, port: InputPort, value: u64) {
        self.pins.set(port, value);
    }

    /// An output sampled by the last step; see [`Pins::get`].
    #[inline]
    pub fn get(&self, port: OutputPort) -> u64 {
        self.pins.get(port)
    }

    /// Runs one cycle in closed loop and returns its number: the current
    /// inputs of [`VerilatedModel::pins`] are applied (every input, also the
    /// ones not changed since the last step), combinational logic settles,
    /// every output is sampled into the pins, then one rising edge. Outputs
    /// read after `step` therefore reflect the inputs of the same cycle, as in
    /// a [`Stimulus`] cycle closed with `step(true)`. No allocation; one call
    /// into the library.
    #[inline]
    pub fn step(&mut self) -> Result<u64, SimError> {
        let cycle = self.next_cycle;
        // SAFETY: inputs holds in_words words and outputs out_words words, the
        // sizes the shim of this layout reads and writes.
        let rc = unsafe {
            (self.lib.step)(
                self.handle.as_ptr(),
                self.pins.inputs.as_ptr(),
                self.pins.outputs.as_mut_ptr(),
            )
        };
        match rc {
            0 => {
                self.next_cycle += 1;
                Ok(cycle)
            }
            1 => {
                self.next_cycle += 1;
                Err(SimError::Runtime {
                    message: format!("the design executed $finish at cycle {cycle}"),
                })
            }
            _ => Err(SimError::Runtime {
                message: format!("at cycle {cycle}: {}", self.last_error()),
            }),
        }
    }

    fn last_error(&self) -> String {
        // SAFETY: valid handle; the string lives until the next call into the model.
        unsafe { CStr::from_ptr((self.lib.error)(self.handle.as_ptr())) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Simulator for VerilatedModel {
    fn run(&mut self, stim: &Stimulus) -> Result<Trace, SimError> {
        let layout = &self.lib.layout;
        if !layout.same_design(&stim.layout) {
            return Err(SimError::PortMismatch {
                detail: format!(
                    "stimulus is for `{}`, model is `{}`",
                    stim.layout.signature, layout.signature
                ),
            });
        }
        let n = stim.cycles();
        let first_cycle = self.cycle();
        // The only allocation of a run: all output frames at once.
        let mut data = vec![0u32; stim.captures() * layout.out_words];
        // SAFETY: frames holds n * in_words words, capture n flags, and data
        // room for every capture; the shim writes nothing else.
        let done = unsafe {
            (self.lib.run)(
                self.handle.as_ptr(),
                n,
                stim.frames.as_ptr(),
                stim.capture.as_ptr(),
                data.as_mut_ptr(),
            )
        };
        // SAFETY: valid handle; reads a plain integer.
        self.next_cycle = unsafe { (self.lib.cycle)(self.handle.as_ptr()) };
        if done < 0 {
            return Err(SimError::Runtime {
                message: format!("at cycle {}: {}", self.cycle(), self.last_error()),
            });
        }
        if (done as u64) < n {
            return Err(SimError::Runtime {
                message: format!(
                    "the design executed $finish at cycle {}",
                    first_cycle + done as u64 - 1
                ),
            });
        }
        Ok(Trace {
            layout: layout.clone(),
            len: stim.captures(),
            data,
            unknown: None,
            cycles: n,
            first_cycle,
        })
    }

    fn name(&self) -> &str {
        "verilator"
    }
}

impl Drop for VerilatedModel {
    fn drop(&mut self) {
        // SAFETY: handle came from coforge_new and is deleted exactly once;
        // `lib` (an Arc field) keeps the code loaded until after this runs.
        unsafe { (self.lib.delete)(self.handle.as_ptr()) }
    }
}

impl std::fmt::Debug for VerilatedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerilatedModel")
            .field("lib", &self.lib.path)
            .field("waves", &self.waves)
            .finish()
    }
}
