//! Whole-folder output: every verb writes its results into a fresh hidden folder beside the
//! target and swaps it in whole when the run succeeded, so a reused `--out` never mixes the files
//! of two runs (an old `stce_top.v` beside a new manifest, an old `waves.vcd` beside a report that
//! says `"waves": null`), and a failed run leaves the target as it was.
//!
//! The life of an [`OutputDir`]:
//! 1. [`OutputDir::create`] runs first, before any expensive work. It checks that `--out` is not a
//!    file and that an existing folder is one coforge wrote (or is empty), and it creates the
//!    staging folder `.<name>.coforge-tmp-<pid>-<n>` beside the target, which proves the location
//!    is writable.
//! 2. The verb stages files with [`OutputDir::add`] (kept in memory), or lets a tool write into
//!    the staging folder through [`OutputDir::staged_path`] (the simulator's VCD).
//! 3. [`OutputDir::commit`] writes the staged files, then moves the old target away
//!    (`.<name>.coforge-old-<pid>-<n>`), renames the staging folder into place and removes the old
//!    one. Concurrent runs into one target each retry until their rename wins; the target always
//!    holds the complete output of one run.
//! 4. Dropping an uncommitted `OutputDir` (an error, a panic) removes the staging folder and any
//!    parent folders that `create` made.
//!
//! A folder is only ever replaced if it is empty or holds the marker file [`MARKER`] that every
//! run writes, so a mistyped `--out ~` cannot delete a user's files. Staging folders of runs that
//! were killed (their process no longer exists) are removed by the next run into the same target.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context};
use ndarray::{ArrayView, Dimension};
use serde::Serialize;

use crate::tensor_io::{encode, NpyElement};

/// Written into every output folder; its presence allows the next run to replace the folder.
pub const MARKER: &str = ".coforge-output";

const TMP_TAG: &str = "coforge-tmp";
const OLD_TAG: &str = "coforge-old";

/// Makes hidden sibling names unique within this process (the pid makes them unique across).
static SERIAL: AtomicU32 = AtomicU32::new(0);

/// An output folder whose contents appear only, and all at once, on [`OutputDir::commit`].
#[derive(Debug)]
pub struct OutputDir {
    target: PathBuf,
    staging: PathBuf,
    /// Parent folders `create` made, deepest first: removed again if the run fails.
    made_parents: Vec<PathBuf>,
    files: Vec<(String, Vec<u8>)>,
    committed: bool,
}

impl OutputDir {
    /// Checks the output location and creates the staging folder beside it. Call it before any
    /// expensive work: every problem with `--out` is found here.
    pub fn create(target: &Path) -> anyhow::Result<Self> {
        let (parent, name) = split(target)?;
        if target.exists() || target.is_symlink() {
            if !target.is_dir() {
                bail!(
                    "--out {} is a file, not a folder; give a folder path (it is created if missing)",
                    target.display()
                );
            }
            check_replaceable(target)?;
        }
        let made_parents = create_parents(&parent)?;
        remove_stale_siblings(&parent, &name);
        let staging = parent.join(sibling(&name, TMP_TAG));
        let mut dir = OutputDir {
            target: target.to_path_buf(),
            staging: staging.clone(),
            made_parents,
            files: Vec::new(),
            committed: false,
        };
        if let Err(e) = fs::create_dir(&staging) {
            dir.staging = PathBuf::new(); // nothing to remove
            bail!(
                "cannot write into {} ({e}); choose a writable --out",
                parent.display()
            );
        }
        Ok(dir)
    }

    /// The final folder.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Where a tool that writes its own file (a VCD) should put `name`: inside the staging folder,
    /// so it moves into the target with the rest. The final path is `target().join(name)`.
    pub fn staged_path(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    /// Stages a file (written on commit).
    pub fn add(&mut self, name: &str, bytes: Vec<u8>) {
        self.files.push((name.to_string(), bytes));
    }

    /// Stages an array as `.npy`.
    pub fn add_npy<T: NpyElement, D: Dimension>(&mut self, name: &str, a: ArrayView<T, D>) {
        self.add(name, encode(a));
    }

    /// Stages a pretty-printed JSON file (a typed report or a `serde_json::Value`).
    pub fn write_json<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        self.add(name, text.into_bytes());
        Ok(())
    }

    /// Writes the staged files and swaps the folder into place. Returns the final paths of the
    /// files (staged ones, then those tools wrote), without the marker.
    pub fn commit(mut self) -> anyhow::Result<Vec<PathBuf>> {
        let marker = format!(
            "Written by coforge {}. The next coforge run into this folder replaces it whole.\n",
            env!("CARGO_PKG_VERSION")
        );
        write_synced(&self.staging.join(MARKER), marker.as_bytes())?;
        for (name, bytes) in &self.files {
            write_synced(&self.staging.join(name), bytes)?;
        }
        let mut names: Vec<String> = self.files.iter().map(|(n, _)| n.clone()).collect();
        let mut others: Vec<String> = fs::read_dir(&self.staging)
            .with_context(|| format!("cannot list {}", self.staging.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != MARKER && !names.contains(n))
            .collect();
        others.sort();
        names.extend(others);
        self.swap_in()?;
        self.committed = true;
        Ok(names.iter().map(|n| self.target.join(n)).collect())
    }

    fn swap_in(&self) -> anyhow::Result<()> {
        let (parent, name) = split(&self.target)?;
        let mut old = Vec::new();
        let mut result = Ok(());
        // Each pass either wins the rename or moves the current occupant away; a concurrent run
        // can take the place in between, so a few passes may be needed.
        for _ in 0..64 {
            match fs::rename(&self.staging, &self.target) {
                Ok(()) => {
                    result = Ok(());
                    break;
                }
                Err(e) => result = Err(e),
            }
            if !self.target.is_dir() {
                if self.target.exists() {
                    bail!(
                        "{} appeared as a file during the run; nothing was replaced",
                        self.target.display()
                    );
                }
                continue; // moved away by another run: retry the rename
            }
            check_replaceable(&self.target)?;
            let aside = parent.join(sibling(&name, OLD_TAG));
            if fs::rename(&self.target, &aside).is_ok() {
                old.push(aside);
            }
        }
        for dir in &old {
            if let Err(e) = fs::remove_dir_all(dir) {
                eprintln!(
                    "warning: cannot remove the previous output {} ({e})",
                    dir.display()
                );
            }
        }
        result.with_context(|| format!("cannot move the results into {}", self.target.display()))
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if !self.staging.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.staging);
        }
        for p in &self.made_parents {
            let _ = fs::remove_dir(p);
        }
    }
}

/// `(parent, file name)` of an output path; `parent` is `.` for a bare name.
fn split(target: &Path) -> anyhow::Result<(PathBuf, String)> {
    let name = target
        .file_name()
        .filter(|_| !target.ends_with(".."))
        .with_context(|| {
            format!(
                "--out {} does not name a folder; give a path that ends in a folder name",
                target.display()
            )
        })?;
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((parent.to_path_buf(), name.to_string_lossy().into_owned()))
}

/// `.<name>.<tag>-<pid>-<serial>`: hidden, and unique per process and per call.
fn sibling(name: &str, tag: &str) -> String {
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    format!(".{name}.{tag}-{}-{serial}", std::process::id())
}

/// An existing target may be replaced if it is empty or holds the marker.
fn check_replaceable(target: &Path) -> anyhow::Result<()> {
    if target.join(MARKER).is_file() {
        return Ok(());
    }
    let mut entries =
        fs::read_dir(target).with_context(|| format!("cannot read {}", target.display()))?;
    if entries.next().is_some() {
        bail!(
            "--out {} holds files that coforge did not write, and a run replaces its output folder \
             whole; choose a new or empty folder (or remove this one)",
            target.display()
        );
    }
    Ok(())
}

/// Creates the missing ancestors of `parent`, returning those it made, deepest first.
fn create_parents(parent: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut p = parent;
    while !p.as_os_str().is_empty() && !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(up) => p = up,
            None => break,
        }
    }
    if let Some(file) = parent.ancestors().find(|a| a.is_file()) {
        bail!(
            "cannot create the output folder: {} is a file",
            file.display()
        );
    }
    fs::create_dir_all(parent).with_context(|| {
        format!(
            "cannot create {}; choose a writable --out",
            parent.display()
        )
    })?;
    Ok(missing)
}

/// Removes staging and set-aside folders of `name` left by runs whose process is gone (killed).
/// Only where `/proc` shows processes; elsewhere they stay (they are hidden and harmless).
fn remove_stale_siblings(parent: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&format!(".{name}.")) else {
            continue;
        };
        let pid = [TMP_TAG, OLD_TAG].iter().find_map(|tag| {
            let tail = rest.strip_prefix(tag)?.strip_prefix('-')?;
            tail.split('-').next()?.parse::<u32>().ok()
        });
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("cannot flush {}", path.display()))?;
    Ok(())
}

/// A single output file (`golden random --out t.npy`), checked and reserved before the work and
/// written atomically: a hidden temporary sibling, renamed into place on commit, removed on drop.
#[derive(Debug)]
pub struct OutputFile {
    path: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

impl OutputFile {
    /// Fails if the parent folder is missing or not writable, or if `path` is a folder.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let (parent, name) = split(path)?;
        if path.is_dir() {
            bail!(
                "--out {} is a folder; give a file path such as {}",
                path.display(),
                path.join("t.npy").display()
            );
        }
        if !parent.is_dir() {
            bail!(
                "the folder {} of --out does not exist; create it first",
                parent.display()
            );
        }
        let tmp = parent.join(sibling(&name, TMP_TAG));
        fs::File::create(&tmp).with_context(|| {
            format!(
                "cannot write into {}; choose a writable --out",
                parent.display()
            )
        })?;
        Ok(OutputFile {
            path: path.to_path_buf(),
            tmp,
            committed: false,
        })
    }

    /// Writes `bytes` and renames the file into place.
    pub fn commit(mut self, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        write_synced(&self.tmp, bytes)?;
        fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("cannot move {} into place", self.path.display()))?;
        self.committed = true;
        Ok(self.path.clone())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes one file atomically (see [`OutputFile`]); the parent folder must exist.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    OutputFile::create(path)?.commit(bytes).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_run_replaces_the_whole_folder() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut o = OutputDir::create(&out).unwrap();
        o.add("a.bin", vec![1, 2]);
        o.add("old.bin", vec![9]);
        o.write_json("meta.json", &serde_json::json!({"k": 1}))
            .unwrap();
        assert!(!out.exists(), "nothing appears before commit");
        assert_eq!(o.commit().unwrap().len(), 3);
        assert_eq!(fs::read(out.join("a.bin")).unwrap(), vec![1, 2]);
        // The second run does not write old.bin: it must not survive.
        let mut o = OutputDir::create(&out).unwrap();
        o.add("a.bin", vec![3]);
        fs::write(o.staged_path("tool.vcd"), b"x").unwrap();
        let written = o.commit().unwrap();
        assert_eq!(written, vec![out.join("a.bin"), out.join("tool.vcd")]);
        assert_eq!(names(&out), [MARKER, "a.bin", "tool.vcd"]);
        assert_eq!(names(dir.path()), ["out"], "no staging or old folder left");
    }

    #[test]
    fn a_failed_run_leaves_everything_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new/deeper/out");
        let o = OutputDir::create(&out).unwrap();
        fs::write(o.staged_path("partial.vcd"), b"x").unwrap();
        drop(o);
        assert_eq!(names(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn bad_locations_are_refused_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"x").unwrap();
        let e = format!("{:#}", OutputDir::create(&f).unwrap_err());
        assert!(e.contains("is a file"), "{e}");
        let e = format!("{:#}", OutputDir::create(&f.join("sub")).unwrap_err());
        assert!(e.contains("is a file"), "{e}");
        let mine = dir.path().join("mine");
        fs::create_dir(&mine).unwrap();
        fs::write(mine.join("thesis.tex"), b"x").unwrap();
        let e = format!("{:#}", OutputDir::create(&mine).unwrap_err());
        assert!(e.contains("did not write"), "{e}");
        assert!(OutputDir::create(Path::new("/")).is_err());
        assert_eq!(names(dir.path()), ["f", "mine"]);
    }

    #[test]
    fn stale_staging_folders_of_dead_runs_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // No process has pid u32::MAX - 1 (Linux pids stay below 2^22).
        let stale = dir
            .path()
            .join(format!(".out.{TMP_TAG}-{}-0", u32::MAX - 1));
        fs::create_dir(&stale).unwrap();
        let o = OutputDir::create(&dir.path().join("out")).unwrap();
        o.commit().unwrap();
        if Path::new("/proc/self").exists() {
            assert!(!stale.exists());
        }
    }

    #[test]
    fn single_files_are_atomic_and_checked_first() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.npy");
        OutputFile::create(&f).unwrap().commit(b"abc").unwrap();
        OutputFile::create(&f).unwrap().commit(b"de").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"de");
        drop(OutputFile::create(&f).unwrap());
        assert_eq!(names(dir.path()), ["t.npy"]);
        assert!(OutputFile::create(&dir.path().join("missing/t.npy")).is_err());
        assert!(OutputFile::create(dir.path()).is_err());
    }
}
