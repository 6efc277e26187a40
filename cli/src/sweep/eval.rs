//! One point of a sweep: the scheduler's estimated cycles of a training step per network, the
//! Yosys estimate (cached by content hash), and optionally a short bit-exact co-simulation.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context};
use coforge_driver::design::design_spec;
use coforge_driver::verify::Mode;
use coforge_generator::artifacts::{render, Rendered};
use coforge_generator::engines::stce::ports;
use coforge_scheduler::{schedule, Options};
use coforge_sim::{BuildCache, BuildOptions, Verilator};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::space::{Point, Space};
use crate::engine::LoadedEngine;
use crate::output::write_file_atomic;
use crate::yosys::{self, Synthesis};

/// What a sweep found for one point (a row of `sweep.csv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the space's point list (the shard rule's `i`).
    pub index: usize,
    pub id: String,
    /// The engine, with its SORE and WUVE lanes (fp16 points; `cols`, as the SAT system needs).
    #[serde(flatten)]
    pub point: Point,
    pub config_hash: String,
    /// Estimated cycles of one BDWP training step per network, in the space's network order:
    /// the offline scheduler's cost model on the point's SAT system. Not measured.
    pub cycles_estimated: Vec<u64>,
    /// Yosys estimate over the engine tops (`None` with `--no-yosys`).
    pub resources: Option<Resources>,
    /// The short co-simulation (`--verify`).
    pub verify: Option<VerifyResult>,
}

/// Yosys `synth_xilinx -flatten` cells summed over the point's engine tops (STCE; with SORE and
/// WUVE for fp16), with the longest path of any of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub luts: u64,
    pub flip_flops: u64,
    pub dsps: u64,
    pub block_rams: u64,
    pub carries: u64,
    /// Cells on the longest `ltp -noff` path of any top (a logic-depth proxy, not timing).
    pub longest_path: u64,
    pub tops: Vec<String>,
}

/// One seeded GEMM through the point's STCE in Verilator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// `MxKxN`.
    pub shape: String,
    pub bit_exact: bool,
    /// Measured: first group taken to the last result row shown.
    pub cycles: u64,
    pub estimated_cycles: u64,
}

/// Hits and misses of the Yosys estimate cache during one run.
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub hits: AtomicUsize,
    pub misses: AtomicUsize,
}

/// What evaluating a point needs besides the point.
pub struct Evaluator<'a> {
    pub space: &'a Space,
    pub yosys: bool,
    pub verify: bool,
    pub cache: YosysCache,
    pub counters: CacheCounters,
}

impl Evaluator<'_> {
    /// The scheduler's estimate of one training step per network (cheap: run for every point
    /// of a shard before the Yosys and simulation work, so an unschedulable point stops the run
    /// early, naming the point and the network).
    pub fn cycles(&self, index: usize, p: &Point) -> anyhow::Result<Vec<u64>> {
        let hw = self.space.hardware(p)?;
        let opts = Options {
            interleave: true,
            pregen: true,
        };
        self.space
            .networks
            .iter()
            .map(|net| {
                let network = net.load(coforge_scheduler::EnginePattern {
                    n: p.n as usize,
                    m: p.m as usize,
                })?;
                let s = schedule(&network, &hw, opts).map_err(|e| {
                    anyhow::anyhow!(
                        "point {index} (`{}`) cannot run network `{}`: {e}; change the space's \
                         [system] (its keys are a config's [system] keys) or leave the point out",
                        p.id(),
                        net.name
                    )
                })?;
                Ok(s.step_cycles_estimated)
            })
            .collect()
    }

    /// Resources and the co-simulation of a point whose cycles are known.
    pub fn finish(&self, index: usize, p: &Point, cycles: Vec<u64>) -> anyhow::Result<Record> {
        let config = p.config()?;
        let rendered = render(&config)?;
        let tops: Vec<String> = config.tops().iter().map(|(_, t)| t.to_string()).collect();
        let resources = if self.yosys {
            Some(self.resources(&rendered, &tops, &config.hash())?)
        } else {
            None
        };
        let verify = if self.verify {
            let spec = design_spec(&rendered, ports::CLOCK);
            let engine = LoadedEngine {
                config: config.clone(),
                rendered,
                spec,
            };
            Some(verify(index, p, &engine)?)
        } else {
            None
        };
        Ok(Record {
            index,
            id: p.id(),
            point: *p,
            config_hash: config.hash(),
            cycles_estimated: cycles,
            resources,
            verify,
        })
    }

    fn resources(
        &self,
        rendered: &Rendered,
        tops: &[String],
        config_hash: &str,
    ) -> anyhow::Result<Resources> {
        let family = self.space.family.yosys_name();
        let key = self.cache.key(rendered, tops, family)?;
        let per_top = match self.cache.get(&key) {
            Some(entry) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                entry.tops
            }
            None => {
                let work = yosys::work_folder("sweep", &rendered.verilog)?;
                let mut per_top = Vec::new();
                for top in tops {
                    let info = rendered
                        .tops
                        .iter()
                        .find(|t| &t.name == top)
                        .with_context(|| format!("the rendered design has no top `{top}`"))?;
                    let syn = yosys::synthesize(work.path(), &info.files, top, family, true)?;
                    per_top.push((top.clone(), syn));
                }
                self.cache.put(
                    &key,
                    &CacheEntry {
                        key: key.clone(),
                        config_hash: config_hash.to_string(),
                        family: family.to_string(),
                        yosys_version: self.cache.yosys_version.clone(),
                        tops: per_top.clone(),
                    },
                )?;
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                per_top
            }
        };
        let sum = |class: &str| {
            per_top
                .iter()
                .map(|(_, s)| s.summary.get(class).copied().unwrap_or(0))
                .sum()
        };
        Ok(Resources {
            luts: sum("luts"),
            flip_flops: sum("flip_flops"),
            dsps: sum("dsps"),
            block_rams: sum("block_rams"),
            carries: sum("carries"),
            longest_path: per_top
                .iter()
                .filter_map(|(_, s)| s.longest_path)
                .max()
                .unwrap_or(0),
            tops: per_top.iter().map(|(t, _)| t.clone()).collect(),
        })
    }
}

/// The GEMM of `--verify`: two row tiles, four reduction groups and two column tiles, seeded
/// by the point's index.
fn verify(index: usize, p: &Point, engine: &LoadedEngine) -> anyhow::Result<VerifyResult> {
    let shape = (2 * p.rows as usize, 4 * p.m as usize, 2 * p.cols as usize);
    let lib = Verilator::build(&engine.spec, &BuildOptions::default())
        .with_context(|| format!("building point {index} (`{}`) with Verilator", p.id()))?;
    let mut sim = lib.instantiate()?;
    let cfg = engine.config.stce("--verify")?;
    let (stats, c) =
        crate::verify::seeded_gemm(&mut sim, engine, shape, index as u64, Mode::native(cfg))?;
    if let Some(first) = &c.first_mismatch {
        bail!(
            "point {index} (`{}`) is not bit-exact on its seeded {}x{}x{} GEMM ({first}); replay \
             it with `coforge verify --seed {index} --shape {}x{}x{}` on this config:\n{}",
            p.id(),
            shape.0,
            shape.1,
            shape.2,
            shape.0,
            shape.1,
            shape.2,
            p.config_toml()
        );
    }
    Ok(VerifyResult {
        shape: format!("{}x{}x{}", shape.0, shape.1, shape.2),
        bit_exact: true,
        cycles: stats.cycles,
        estimated_cycles: stats.estimated_cycles,
    })
}

/// One cached Yosys estimate: `<cache>/yosys/<key>.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CacheEntry {
    pub key: String,
    pub config_hash: String,
    pub family: String,
    pub yosys_version: String,
    pub tops: Vec<(String, Synthesis)>,
}

/// Yosys estimates by content hash, under the coforge cache folder (`$COFORGE_CACHE_DIR`, the
/// Verilator build cache's folder) in `yosys/`: one JSON file per key, written atomically
/// (a temporary sibling renamed into place), so parallel sweeps share it safely; two runs that
/// miss the same key both synthesize and write the same content.
pub struct YosysCache {
    dir: PathBuf,
    pub yosys_version: String,
}

impl YosysCache {
    /// The cache folder and Yosys's version (part of every key).
    pub fn open() -> anyhow::Result<YosysCache> {
        let dir = BuildCache::new(None)
            .dir()
            .join(coforge_sim::YOSYS_ESTIMATES_DIR);
        Ok(YosysCache {
            dir,
            yosys_version: yosys::version()?,
        })
    }

    /// A cache that is never read (`--no-yosys`).
    pub fn unused() -> YosysCache {
        YosysCache {
            dir: PathBuf::new(),
            yosys_version: String::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SHA-256 of what decides Yosys's answer: its version, the family, the tops and every
    /// Verilog file (so a generator change that alters the Verilog of the same config misses).
    fn key(&self, rendered: &Rendered, tops: &[String], family: &str) -> anyhow::Result<String> {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(b"coforge sweep yosys estimate 1");
        field(self.yosys_version.as_bytes());
        field(family.as_bytes());
        for top in tops {
            field(top.as_bytes());
        }
        for (name, text) in &rendered.verilog {
            field(name.as_bytes());
            field(text.as_bytes());
        }
        Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The entry of `key`, if present and readable (a damaged file is a miss, and is replaced).
    fn get(&self, key: &str) -> Option<CacheEntry> {
        let text = std::fs::read_to_string(self.dir.join(format!("{key}.json"))).ok()?;
        let entry: CacheEntry = serde_json::from_str(&text).ok()?;
        (entry.key == key).then_some(entry)
    }

    fn put(&self, key: &str, entry: &CacheEntry) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| {
            format!(
                "cannot create the Yosys estimate cache {} (COFORGE_CACHE_DIR chooses its parent)",
                self.dir.display()
            )
        })?;
        let mut text = serde_json::to_string_pretty(entry)?;
        text.push('\n');
        write_file_atomic(&self.dir.join(format!("{key}.json")), text.as_bytes())
    }
}
