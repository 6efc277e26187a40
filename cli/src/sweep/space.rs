//! The space file of `coforge sweep`: which engines (a union of grids), which networks, which
//! Yosys family and which `[system]` the scheduler estimates on. Everything is checked here,
//! before any work: the file's keys, every point as an engine config, every network on every
//! point's N:M, and the `[system]` keys on every point's array.
//!
//! ```toml
//! family = "xcup"                      # Yosys family: "xcup" (default) or "xc7"
//! networks = ["../networks/mlp.toml"]  # paths relative to this file
//!
//! [system]                             # optional: overrides of the [system] defaults
//! weight_lines = 4096
//!
//! [[grid]]                             # one or more; the space is their union
//! dtype = ["int8"]                     # default ["int8"]; "int8" or "fp16"
//! array = ["2x2", "4x4"]               # rows x cols
//! nm = ["2:8", "1:4"]                  # N:M; N = M is a dense engine
//! dsp_packing = ["none", "int8x2"]     # default ["none"]; int8 only
//! lanes = ["cols"]                     # default ["cols"]; fp16 only: SORE and WUVE lanes
//! ```
//!
//! `lanes` sets the SORE and WUVE lanes of the fp16 points, `"cols"` (each point's own `cols`)
//! or a number. The cycles are estimated on a SAT system, and a `[system]` config needs
//! `sore_lanes = wuve_lanes = stce.cols` (one buffer line feeds every engine,
//! `generator::config::SystemConfig`), so a point whose lanes differ from its cols is refused
//! with that rule, before any work; a number serves grids whose arrays share one `cols`.
//!
//! # Order and shards
//! The points are listed grid by grid in file order, and inside a grid as nested loops in the
//! order dtype, array, nm, dsp_packing, lanes (the last varies fastest), each axis in the order
//! written.
//! Point `i` of that list belongs to shard `i mod N` of `--shard I/N`: round robin, so that every
//! shard gets a share of the large arrays at the end of each axis.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use coforge_generator::config::{Config, DspPacking, Dtype, SystemConfig};
use coforge_scheduler::{EnginePattern, Hardware, Network};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::estimate::Family;

/// One engine of the space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    pub dtype: Dtype,
    pub rows: u32,
    pub cols: u32,
    pub n: u32,
    pub m: u32,
    pub dsp_packing: DspPacking,
    /// The SORE and WUVE lanes of an fp16 point (`None` for int8: no training engines).
    pub lanes: Option<u32>,
}

impl Point {
    /// `int8-4x4-2of8`, with `-int8x2` for a packed engine and `-lanes<L>` for lanes other
    /// than `cols`: unique within a space.
    pub fn id(&self) -> String {
        let dtype = match self.dtype {
            Dtype::Int8 => "int8",
            Dtype::Fp16 => "fp16",
        };
        let packing = match self.dsp_packing {
            DspPacking::None => "",
            DspPacking::Int8x2 => "-int8x2",
        };
        let lanes = match self.lanes {
            Some(l) if l != self.cols => format!("-lanes{l}"),
            _ => String::new(),
        };
        format!(
            "{dtype}-{}x{}-{}of{}{packing}{lanes}",
            self.rows, self.cols, self.n, self.m
        )
    }

    /// The engine config of the point: `[stce]`, and `[train]` for fp16.
    pub fn config_toml(&self) -> String {
        let mut text = format!(
            "[stce]\nrows = {}\ncols = {}\ndtype = \"{}\"\nn = {}\nm = {}\n",
            self.rows,
            self.cols,
            if self.dtype == Dtype::Fp16 {
                "fp16"
            } else {
                "int8"
            },
            self.n,
            self.m
        );
        if self.dsp_packing == DspPacking::Int8x2 {
            text.push_str("dsp_packing = \"int8x2\"\n");
        }
        if let Some(lanes) = self.lanes {
            text.push_str(&format!(
                "\n[train]\nsore_lanes = {lanes}\nwuve_lanes = {lanes}\n"
            ));
        }
        text
    }

    pub fn config(&self) -> anyhow::Result<Config> {
        Ok(Config::from_toml(&self.config_toml(), &self.id())?)
    }

    fn pattern(&self) -> EnginePattern {
        EnginePattern {
            n: self.n as usize,
            m: self.m as usize,
        }
    }
}

/// `--shard I/N`: this run evaluates the points `i` with `i mod N == I`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub fn holds(&self, point: usize) -> bool {
        point % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let usage = "give I/N with 0 <= I < N, for example 0/4 (I counts from 0, as \
                     SLURM_ARRAY_TASK_ID of `--array=0-3` does)";
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not I/N; {usage}"))?;
        let number = |t: &str, what: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{t}` in `{s}` is not a {what}; {usage}"))
        };
        let (index, count) = (number(i, "shard index")?, number(n, "shard count")?);
        if count == 0 {
            return Err(format!("`{s}` has 0 shards; {usage}"));
        }
        if index >= count {
            return Err(format!(
                "`{s}`: shard {index} does not exist among {count} shards (they are 0 to {}); \
                 {usage}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

/// A network of the space: its name (the `cycles_<name>` column), file and text.
#[derive(Clone, Debug)]
pub struct NetworkFile {
    pub name: String,
    pub path: PathBuf,
    pub text: String,
}

/// A checked space.
#[derive(Debug)]
pub struct Space {
    pub family: Family,
    pub networks: Vec<NetworkFile>,
    pub points: Vec<Point>,
    /// The `[system]` every point's schedule uses: the defaults with the file's overrides.
    system: toml::Table,
    /// SHA-256 of everything that decides the results: the points, the networks' text, the
    /// family and the system. Shards of one space share it; `merge` checks that.
    pub hash: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpaceFile {
    #[serde(default)]
    family: Option<String>,
    networks: Vec<String>,
    #[serde(default)]
    system: toml::Table,
    #[serde(default)]
    grid: Vec<GridFile>,
}

fn default_dtypes() -> Vec<String> {
    vec!["int8".into()]
}
fn default_packings() -> Vec<String> {
    vec!["none".into()]
}
fn default_lanes() -> Vec<LanesValue> {
    vec![LanesValue::Named("cols".into())]
}

/// A value of the `lanes` axis: `"cols"` or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum LanesValue {
    Count(u32),
    Named(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    #[serde(default = "default_dtypes")]
    dtype: Vec<String>,
    array: Vec<String>,
    nm: Vec<String>,
    #[serde(default = "default_packings")]
    dsp_packing: Vec<String>,
    #[serde(default = "default_lanes")]
    lanes: Vec<LanesValue>,
}

impl Space {
    pub fn load(path: &Path) -> anyhow::Result<Space> {
        let at = path.display().to_string();
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read space `{at}`"))?;
        let file: SpaceFile = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("space `{at}` is not valid: {}", e.message()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Space::from_file(file, base, &at)
    }

    fn from_file(file: SpaceFile, base: &Path, at: &str) -> anyhow::Result<Space> {
        let family = match file.family.as_deref() {
            None | Some("xcup") => Family::Xcup,
            Some("xc7") => Family::Xc7,
            Some(other) => bail!(
                "space `{at}`: family = {other:?} is not a Yosys family coforge estimates; use \
                 \"xcup\" (UltraScale+, needed for dsp_packing = \"int8x2\") or \"xc7\""
            ),
        };
        if file.grid.is_empty() {
            bail!("space `{at}` has no [[grid]]; add one with array = [...] and nm = [...]");
        }
        if file.networks.is_empty() {
            bail!(
                "space `{at}`: networks is empty; list network files such as \
                 \"../networks/mlp.toml\" (paths relative to the space file)"
            );
        }
        let mut points = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (g, grid) in file.grid.iter().enumerate() {
            for p in
                grid_points(grid).map_err(|e| anyhow::anyhow!("space `{at}`, grid {g}: {e}"))?
            {
                let id = p.id();
                if let Some(first) = seen.insert(id.clone(), g) {
                    let place = if first == g {
                        format!(
                            "twice in grid {g} (lanes = \"cols\" and its number are one engine)"
                        )
                    } else {
                        format!("in grid {first} and again in grid {g}")
                    };
                    bail!("space `{at}`: point `{id}` is {place}; list each engine once");
                }
                p.config().map_err(|e| {
                    anyhow::anyhow!(
                        "space `{at}`: point {} (`{id}`, grid {g}) is not a valid engine: {e:#}",
                        points.len()
                    )
                })?;
                points.push(p);
            }
        }
        let mut networks: Vec<NetworkFile> = Vec::new();
        for rel in &file.networks {
            let path = base.join(rel);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "space `{at}`: cannot read network `{rel}` (at {}; paths are relative to the \
                     space file)",
                    path.display()
                )
            })?;
            let name = network_name(&text, &path)?;
            if let Some(other) = networks.iter().find(|n| n.name == name) {
                bail!(
                    "space `{at}`: networks `{}` and `{rel}` are both named `{name}`; each \
                     network needs its own name (its column is cycles_<name>)",
                    other.path.display()
                );
            }
            networks.push(NetworkFile { name, path, text });
        }
        let space = Space {
            family,
            networks,
            points,
            system: file.system,
            hash: String::new(),
        };
        // Every network on every N:M, and the [system] on every array, before any work.
        for (i, p) in space.points.iter().enumerate() {
            space
                .hardware(p)
                .map_err(|e| anyhow::anyhow!("space `{at}`: point {i} (`{}`): {e:#}", p.id()))?;
            for net in &space.networks {
                net.load(p.pattern())
                    .map_err(|e| anyhow::anyhow!("space `{at}`: point {i} (`{}`): {e}", p.id()))?;
            }
        }
        let hash = space.compute_hash();
        Ok(Space { hash, ..space })
    }

    /// The SAT system the scheduler estimates a point on: the point's array and N:M in fp16 with
    /// the point's `[train]` lanes (`cols` for an int8 point) and the `[system]` defaults
    /// (`generator::config::SystemConfig`) overridden by the space's `[system]`, validated as a
    /// config: lanes other than `cols` are refused there, with the rule.
    pub fn hardware(&self, p: &Point) -> anyhow::Result<Hardware> {
        let system = toml::to_string(&self.system).context("the space's [system]")?;
        let text = format!(
            "[stce]\nrows = {r}\ncols = {c}\ndtype = \"fp16\"\nn = {n}\nm = {m}\n\n[train]\n\
             sore_lanes = {l}\nwuve_lanes = {l}\n\n[system]\n{system}",
            r = p.rows,
            c = p.cols,
            n = p.n,
            m = p.m,
            l = p.lanes.unwrap_or(p.cols)
        );
        let cfg = Config::from_toml(&text, "the space's [system]")?;
        Hardware::from_config(&cfg).map_err(anyhow::Error::msg)
    }

    /// The resolved `[system]` (every default filled in) the schedules use.
    pub fn system(&self) -> anyhow::Result<SystemConfig> {
        Ok(toml::Table::try_into(self.system.clone())?)
    }

    fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(b"coforge sweep space 1");
        field(format!("{:?}", self.family).as_bytes());
        field(
            serde_json::to_string(&self.system().ok())
                .unwrap_or_default()
                .as_bytes(),
        );
        for net in &self.networks {
            field(net.name.as_bytes());
            field(net.text.as_bytes());
        }
        for p in &self.points {
            field(p.id().as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl NetworkFile {
    pub fn load(&self, pattern: EnginePattern) -> anyhow::Result<Network> {
        Ok(Network::from_toml(
            &self.text,
            &self.path.display().to_string(),
            pattern,
        )?)
    }
}

fn network_name(text: &str, path: &Path) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Named {
        name: String,
    }
    let named: Named = toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|t| toml::Table::try_into(t).ok())
        .with_context(|| format!("network `{}` has no `name = \"...\"`", path.display()))?;
    let ok = !named.name.is_empty()
        && named
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        bail!(
            "network `{}`: name = {:?} is not usable as a column name; use letters, digits, \
             '-', '_' and '.'",
            path.display(),
            named.name
        );
    }
    Ok(named.name)
}

/// `"4x2"` split at `sep` into two numbers.
fn pair(s: &str, sep: char) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(sep)?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// The points of one grid, in the documented order.
fn grid_points(g: &GridFile) -> Result<Vec<Point>, String> {
    for (axis, count) in [
        ("dtype", g.dtype.len()),
        ("array", g.array.len()),
        ("nm", g.nm.len()),
        ("dsp_packing", g.dsp_packing.len()),
        ("lanes", g.lanes.len()),
    ] {
        if count == 0 {
            return Err(format!("{axis} is empty; give at least one value"));
        }
    }
    let dtypes = g
        .dtype
        .iter()
        .map(|d| match d.as_str() {
            "int8" => Ok(Dtype::Int8),
            "fp16" => Ok(Dtype::Fp16),
            _ => Err(format!("dtype {d:?} is not \"int8\" or \"fp16\"")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let arrays = g
        .array
        .iter()
        .map(|a| {
            pair(a, 'x').ok_or_else(|| format!("array {a:?} is not ROWSxCOLS, for example \"4x4\""))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let nms = g
        .nm
        .iter()
        .map(|s| pair(s, ':').ok_or_else(|| format!("nm {s:?} is not N:M, for example \"2:8\"")))
        .collect::<Result<Vec<_>, _>>()?;
    let packings = g
        .dsp_packing
        .iter()
        .map(|p| match p.as_str() {
            "none" => Ok(DspPacking::None),
            "int8x2" => Ok(DspPacking::Int8x2),
            _ => Err(format!("dsp_packing {p:?} is not \"none\" or \"int8x2\"")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // `None` stands for "cols".
    let lanes = g
        .lanes
        .iter()
        .map(|l| match l {
            LanesValue::Count(n) => Ok(Some(*n)),
            LanesValue::Named(s) if s == "cols" => Ok(None),
            LanesValue::Named(s) => Err(format!(
                "lanes {s:?} is not \"cols\" or a number of lanes, for example 4"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if lanes.iter().any(Option::is_some) && !dtypes.contains(&Dtype::Fp16) {
        return Err(
            "lanes sets the SORE and WUVE lanes of fp16 points, and this grid has none; \
                    remove lanes or add dtype = [\"fp16\"]"
                .to_string(),
        );
    }
    let mut points = Vec::new();
    for &dtype in &dtypes {
        for &(rows, cols) in &arrays {
            for &(n, m) in &nms {
                for &dsp_packing in &packings {
                    let point = |lanes| Point {
                        dtype,
                        rows,
                        cols,
                        n,
                        m,
                        dsp_packing,
                        lanes,
                    };
                    if dtype == Dtype::Fp16 {
                        points.extend(lanes.iter().map(|l| point(Some(l.unwrap_or(cols)))));
                    } else {
                        // An int8 point has no training engines: the lanes axis leaves it alone.
                        points.push(point(None));
                    }
                }
            }
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_values_are_checked() {
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
        for bad in ["0/0", "3/2", "2/2", "a/b", "1/0", "1", "-1/2", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("I/N") || e.contains("0 <= I < N"), "{bad}: {e}");
        }
        assert!("3/2".parse::<Shard>().unwrap_err().contains("0 to 1"));
    }

    #[test]
    fn every_point_is_in_exactly_one_shard() {
        for count in 1..6 {
            for point in 0..40 {
                let holders = (0..count)
                    .filter(|&index| Shard { index, count }.holds(point))
                    .count();
                assert_eq!(holders, 1);
            }
        }
    }
}
