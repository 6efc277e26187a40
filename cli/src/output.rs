//! All-or-nothing output: a verb computes everything first, stages its files in memory, and only
//! then writes them. Each file is written to a hidden temporary name in the target directory and
//! renamed into place, so a reader never sees a half-written file and a failed run leaves the
//! directory as it was.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ndarray::{ArrayView, Dimension};

use crate::tensor_io::{encode, NpyElement};

/// An output directory whose files are written only by [`OutputDir::commit`].
#[derive(Debug)]
pub struct OutputDir {
    path: PathBuf,
    files: Vec<(String, Vec<u8>)>,
}

impl OutputDir {
    /// Prepares output into `path` (created on commit if missing). Fails early if `path` exists and
    /// is not a directory. Writes nothing.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        if path.exists() && !path.is_dir() {
            bail!(
                "output path {} exists and is not a directory",
                path.display()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            files: Vec::new(),
        })
    }

    /// Stages a file.
    pub fn add(&mut self, name: &str, bytes: Vec<u8>) {
        self.files.push((name.to_string(), bytes));
    }

    /// Stages an array as `.npy`.
    pub fn add_npy<T: NpyElement, D: Dimension>(&mut self, name: &str, a: ArrayView<T, D>) {
        self.add(name, encode(a));
    }

    /// Stages a pretty-printed JSON file.
    pub fn write_json(&mut self, name: &str, value: &serde_json::Value) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        self.add(name, text.into_bytes());
        Ok(())
    }

    /// Writes all staged files: every one goes to a temporary file first, and the renames happen
    /// only after all temporary files were written, so an I/O error leaves no new file behind.
    /// Returns the final paths.
    pub fn commit(self) -> anyhow::Result<Vec<PathBuf>> {
        fs::create_dir_all(&self.path)
            .with_context(|| format!("cannot create output directory {}", self.path.display()))?;
        let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
        let result = (|| {
            for (name, bytes) in &self.files {
                let tmp = self.path.join(temp_name(name));
                staged.push((tmp.clone(), self.path.join(name)));
                write_synced(&tmp, bytes)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            for (tmp, _) in &staged {
                let _ = fs::remove_file(tmp);
            }
            return Err(e);
        }
        let mut done = Vec::new();
        for (tmp, dest) in staged {
            fs::rename(&tmp, &dest)
                .with_context(|| format!("cannot move {} into place", dest.display()))?;
            done.push(dest);
        }
        Ok(done)
    }
}

/// `.<name>.tmp-<pid>`: hidden, and unique per process, so two runs never share a temporary file.
fn temp_name(name: &str) -> String {
    format!(".{name}.tmp-{}", std::process::id())
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

/// Writes one file atomically: a temporary sibling, then a rename. The parent directory must exist.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        bail!("directory {} does not exist", parent.display());
    }
    if path.is_dir() {
        bail!("{} is a directory", path.display());
    }
    let tmp = parent.join(temp_name(&name.to_string_lossy()));
    if let Err(e) = write_synced(&tmp, bytes) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_written_before_commit_and_files_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut o = OutputDir::create(&out).unwrap();
        o.add("a.bin", vec![1, 2]);
        o.write_json("meta.json", &serde_json::json!({"k": 1}))
            .unwrap();
        assert!(!out.exists());
        let written = o.commit().unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(fs::read(out.join("a.bin")).unwrap(), vec![1, 2]);
        // Re-running replaces the file and leaves no temporary behind.
        let mut o = OutputDir::create(&out).unwrap();
        o.add("a.bin", vec![3]);
        o.commit().unwrap();
        assert_eq!(fs::read(out.join("a.bin")).unwrap(), vec![3]);
        let names: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn rejects_a_file_as_output_directory() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"x").unwrap();
        assert!(OutputDir::create(&f).is_err());
    }

    #[test]
    fn atomic_single_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.npy");
        write_file_atomic(&f, b"abc").unwrap();
        write_file_atomic(&f, b"de").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"de");
        assert!(write_file_atomic(&dir.path().join("missing/t.npy"), b"x").is_err());
        assert!(write_file_atomic(dir.path(), b"x").is_err());
    }
}
