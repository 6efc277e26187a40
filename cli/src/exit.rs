//! Exit codes, so that a CI job can tell a broken environment from a broken design:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | pass: every comparison bit-exact, no regression |
//! | 1 | a failed comparison, a baseline regression, or a bad input (config, tensor, path) |
//! | 2 | a usage error: unknown flag, missing argument, malformed value (from clap) |
//! | 3 | a tool is missing or too old (Verilator, Icarus, Yosys): fix the machine, not the design |

use std::fmt;

use coforge_driver::DriverError;
use coforge_sim::SimError;

pub const PASS: u8 = 0;
pub const FAILED: u8 = 1;
/// clap exits with this code on its own usage errors; listed here for the documentation.
#[allow(dead_code)]
pub const USAGE: u8 = 2;
pub const TOOLS_MISSING: u8 = 3;

/// A tool that coforge runs as a program is not installed, with the fix.
#[derive(Debug)]
pub struct ToolMissing {
    pub tool: &'static str,
    pub fix: String,
}

impl fmt::Display for ToolMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} not found; {}", self.tool, self.fix)
    }
}

impl std::error::Error for ToolMissing {}

fn is_missing_tool(e: &SimError) -> bool {
    matches!(
        e,
        SimError::ToolMissing { .. } | SimError::ToolTooOld { .. }
    )
}

/// The exit code of a failed run.
pub fn code_of(err: &anyhow::Error) -> u8 {
    let missing = err.chain().any(|cause| {
        cause.is::<ToolMissing>()
            || cause.downcast_ref::<SimError>().is_some_and(is_missing_tool)
            || matches!(cause.downcast_ref::<DriverError>(), Some(DriverError::Sim(e)) if is_missing_tool(e))
    });
    if missing {
        TOOLS_MISSING
    } else {
        FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn missing_tools_are_found_through_context_and_driver_errors() {
        let sim = || SimError::ToolMissing {
            tool: "verilator".into(),
            fix: "install it".into(),
        };
        let e = Err::<(), _>(sim()).context("building").unwrap_err();
        assert_eq!(code_of(&e), TOOLS_MISSING);
        let e = anyhow::Error::new(DriverError::Sim(sim()));
        assert_eq!(code_of(&e), TOOLS_MISSING);
        let e = anyhow::Error::new(ToolMissing {
            tool: "yosys",
            fix: "apt-get install yosys".into(),
        });
        assert_eq!(code_of(&e), TOOLS_MISSING);
        let e = anyhow::anyhow!("bad config");
        assert_eq!(code_of(&e), FAILED);
        let e = anyhow::Error::new(SimError::Runtime {
            message: "x".into(),
        });
        assert_eq!(code_of(&e), FAILED);
    }
}
