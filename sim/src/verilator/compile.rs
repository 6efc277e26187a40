//! Verilating, checking the generated ports against the spec, compiling and
//! linking one design into a shared library.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::cache::Toolchain;
use crate::tools::{self, ToolVersion, MAKE, VERILATOR};
use crate::{DesignSpec, PortDir, SimError};

/// Make variables that Verilator's makefiles take from the environment and
/// pass to the compiler or linker.
const MAKE_ENV: [&str; 8] = [
    "CXXFLAGS",
    "CPPFLAGS",
    "LDFLAGS",
    "LDLIBS",
    "OPT",
    "OPT_FAST",
    "OPT_SLOW",
    "OPT_GLOBAL",
];

/// The variables of [`MAKE_ENV`] that verilated.mk assigns outright, so the build passes them to
/// `make` on its command line (the others it appends to, or leaves to the environment).
const MAKE_OVERRIDES: [&str; 3] = ["OPT_FAST", "OPT_SLOW", "OPT_GLOBAL"];

/// The toolchain that `make` will use for a build with this Verilator: the C++
/// compiler named in Verilator's `verilated.mk` (its `--version`), that file's
/// hash (it holds the default flags) and the flag variables set in the
/// environment. Found once per process and environment.
pub(super) fn toolchain(bin: &Path, version: &ToolVersion) -> Result<Toolchain, SimError> {
    static KNOWN: Mutex<Option<HashMap<String, Toolchain>>> = Mutex::new(None);
    // An override is marked as one: such builds used to ignore it, and their cache entries
    // (keyed by the variable all the same) must not be taken for builds that apply it.
    let env: String = MAKE_ENV
        .iter()
        .filter_map(|v| {
            let value = std::env::var(v).ok()?;
            let how = if MAKE_OVERRIDES.contains(v) {
                " (make argument)"
            } else {
                ""
            };
            Some(format!("{v}={value}{how};"))
        })
        .collect();
    let memo = format!("{}\n{}\n{env}", bin.display(), version.text);
    if let Some(t) = KNOWN
        .lock()
        .ok()
        .and_then(|m| m.as_ref()?.get(&memo).cloned())
    {
        return Ok(t);
    }
    let failed = |reason: String| SimError::ToolFailed {
        tool: VERILATOR.describe(bin),
        reason,
    };
    let out = Command::new(bin)
        .args(["--getenv", "VERILATOR_ROOT"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| VERILATOR.spawn_error(bin, e))?;
    let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let mk_path = root.join("include/verilated.mk");
    let mk = std::fs::read_to_string(&mk_path).map_err(|e| {
        failed(format!(
            "cannot read {} ({e}); the Verilator installation is incomplete",
            mk_path.display()
        ))
    })?;
    let cxx = mk
        .lines()
        .find_map(|l| {
            l.strip_prefix("CXX = ")
                .or_else(|| l.strip_prefix("CXX ?= "))
        })
        .map_or("g++", str::trim)
        .to_string();
    let cxx_version = Command::new(&cxx)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SimError::ToolMissing {
            tool: format!("the C++ compiler `{cxx}` named in {}", mk_path.display()),
            fix: format!("{e}; install it (`apt-get install g++`)"),
        })?;
    let cxx_version = String::from_utf8_lossy(&cxx_version.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let mk_hash: String = Sha256::digest(mk.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let t = Toolchain {
        verilator: version.text.clone(),
        cxx: format!("{cxx}: {cxx_version}"),
        make_config: format!("verilated.mk sha256 {mk_hash}; {env}"),
    };
    if let Ok(mut m) = KNOWN.lock() {
        m.get_or_insert_with(HashMap::new).insert(memo, t.clone());
    }
    Ok(t)
}

/// Verilates, checks the ports, compiles and links inside `tmp`, leaving
/// `tmp/<lib_name>` and the generated C++ (object files are removed).
pub(super) fn build_in(
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
    // verilated.mk assigns OPT_FAST, OPT_SLOW and OPT_GLOBAL (`OPT_FAST = -Os`), and a makefile
    // assignment beats the environment: only a command-line variable overrides it. Without this,
    // `OPT_FAST=-O2` in the environment would change the cache key but not the build.
    for v in MAKE_OVERRIDES {
        if let Ok(value) = std::env::var(v) {
            cmd.arg(format!("{v}={value}"));
        }
    }
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
