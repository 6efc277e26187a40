//! Finding and running the external tools (verilator, make, iverilog, vvp).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::SimError;

/// Version of an external tool, as reported by the tool itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolVersion {
    /// The full first line of the version output.
    pub text: String,
    pub major: u32,
    pub minor: u32,
}

impl ToolVersion {
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

/// Static description of one tool: how to find it and how to install it.
pub(crate) struct Tool {
    pub name: &'static str,
    pub env: &'static str,
    pub fix: &'static str,
}

pub(crate) const VERILATOR: Tool = Tool {
    name: "verilator",
    env: "COFORGE_VERILATOR",
    fix: "install it with scripts/setup.sh or `apt-get install verilator` (5.006 or later), \
          or point COFORGE_VERILATOR at the binary",
};
pub(crate) const MAKE: Tool = Tool {
    name: "make",
    env: "COFORGE_MAKE",
    fix: "Verilator builds need make and a C++ compiler: `apt-get install make g++`",
};
pub(crate) const IVERILOG: Tool = Tool {
    name: "iverilog",
    env: "COFORGE_IVERILOG",
    fix: "install it with scripts/setup.sh or `apt-get install iverilog`, \
          or point COFORGE_IVERILOG at the binary",
};
pub(crate) const VVP: Tool = Tool {
    name: "vvp",
    env: "COFORGE_VVP",
    fix: "vvp comes with Icarus Verilog: `apt-get install iverilog`, or point COFORGE_VVP at it",
};

impl Tool {
    /// The binary to run: the environment override, else the plain name
    /// (looked up on PATH when spawned).
    pub fn resolve(&self) -> PathBuf {
        match std::env::var_os(self.env) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => PathBuf::from(self.name),
        }
    }

    /// Describes the binary in messages, mentioning the override if used.
    pub fn describe(&self, bin: &Path) -> String {
        if bin == Path::new(self.name) {
            format!("{} (on PATH)", self.name)
        } else {
            format!("{} ({})", self.name, bin.display())
        }
    }

    pub fn spawn_error(&self, bin: &Path, e: std::io::Error) -> SimError {
        if e.kind() == std::io::ErrorKind::NotFound {
            SimError::ToolMissing {
                tool: self.describe(bin),
                fix: self.fix.to_string(),
            }
        } else {
            SimError::ToolFailed {
                tool: self.describe(bin),
                reason: e.to_string(),
            }
        }
    }

    /// Runs `bin <arg>` and parses the first `major.minor` number in its output.
    pub fn version(&self, bin: &Path, arg: &str) -> Result<ToolVersion, SimError> {
        let out = Command::new(bin)
            .arg(arg)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(bin, e))?;
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = all
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        parse_version(&text).ok_or_else(|| SimError::ToolFailed {
            tool: self.describe(bin),
            reason: format!(
                "`{} {arg}` printed no version number: {text:?}",
                bin.display()
            ),
        })
    }
}

/// Finds the first `<digits>.<digits>` in the text ("Verilator 5.006 2023-01-22",
/// "Icarus Verilog version 11.0 (stable)").
pub(crate) fn parse_version(text: &str) -> Option<ToolVersion> {
    for word in text.split_whitespace() {
        let mut parts = word.split('.');
        let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
            continue;
        };
        let b: String = b.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let (Ok(major), Ok(minor)) = (a.parse(), b.parse()) {
            return Some(ToolVersion {
                text: text.to_string(),
                major,
                minor,
            });
        }
    }
    None
}

/// Runs a command with stdout and stderr appended to `log`. Returns whether it
/// exited successfully; spawn failures become tool errors.
pub(crate) fn run_logged(tool: &Tool, cmd: &mut Command, log: &Path) -> Result<bool, SimError> {
    let mut f = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(SimError::io(format!("opening {}", log.display())))?;
    // Record the command line so the log alone is enough to reproduce a failure.
    let _ = writeln!(f, "$ {cmd:?}");
    let err = f
        .try_clone()
        .map_err(SimError::io("duplicating log handle"))?;
    let out = f
        .try_clone()
        .map_err(SimError::io("duplicating log handle"))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| tool.spawn_error(Path::new(cmd.get_program()), e))?;
    let _ = writeln!(f, "# {status}");
    Ok(status.success())
}

/// The last `n` lines of a text file (for error messages).
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        // Logs of big designs can be large; the tail is within the last 64 KiB.
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Writes a file, naming it in the error.
pub(crate) fn write_file(path: &Path, text: impl AsRef<[u8]>) -> Result<(), SimError> {
    std::fs::write(path, text).map_err(SimError::io(format!("writing {}", path.display())))
}

pub(crate) fn create_dir(path: &Path) -> Result<(), SimError> {
    std::fs::create_dir_all(path).map_err(SimError::io(format!(
        "creating directory {}",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = parse_version("Verilator 5.006 2023-01-22 rev (Debian 5.006-3)").unwrap();
        assert_eq!((v.major, v.minor), (5, 6));
        let v = parse_version("Icarus Verilog version 11.0 (stable) ()").unwrap();
        assert_eq!((v.major, v.minor), (11, 0));
        assert!(parse_version("no digits here").is_none());
        assert!(tail(Path::new("/nonexistent/x"), 3).is_empty());
    }
}
