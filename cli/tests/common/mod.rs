//! Helpers shared by the CLI tests: run the built binary, and a temporary folder holding a config.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn coforge(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coforge"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run coforge")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub struct Case {
    pub tmp: tempfile::TempDir,
}

impl Case {
    pub fn new(config: &str) -> Case {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("c.toml"), config).unwrap();
        Case { tmp }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    pub fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
    pub fn verify(&self, extra: &[&str]) -> Output {
        let (config, out) = (self.arg("c.toml"), self.arg("out"));
        let mut args = vec!["verify", "--config", &config, "--out", &out];
        args.extend_from_slice(extra);
        coforge(&args, &[])
    }
    pub fn report(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path("out/report.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

pub const SMALL: &str = "[stce]\nrows = 2\ncols = 3\nn = 2\nm = 4\n";

pub fn is_empty_or_missing(dir: &Path) -> bool {
    !dir.exists() || std::fs::read_dir(dir).unwrap().next().is_none()
}
