//! `coforge sweep`: a design-space sweep. Each point of a space file (a union of grids over
//! dtype, array size, N:M and DSP packing; [`space`]) gets the offline scheduler's estimated
//! cycles of one BDWP training step on every network of the space, the Yosys estimate of its
//! engine tops (cached by content hash under `$COFORGE_CACHE_DIR/yosys/`) and, with `--verify`,
//! a short bit-exact co-simulation ([`eval`]).
//!
//! `--shard I/N` evaluates the points `i` with `i mod N == I`, so that a Slurm job array or a CI
//! matrix runs the shards as separate jobs; `coforge sweep merge DIR... --out DIR` joins their
//! outputs, refusing overlapping or missing points, into one `sweep.csv` and `pareto.svg`
//! ([`report`]).

mod eval;
mod report;
mod space;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rayon::prelude::*;

use crate::output::OutputDir;
use eval::{CacheCounters, Evaluator, Record, YosysCache};
use report::{CacheStats, SweepFile};
use space::{Shard, Space};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub command: Option<SweepCommand>,
    /// Space file (TOML): networks, [system] overrides and [[grid]]s (see sweeps/small.toml)
    #[arg(long, required = true)]
    pub space: Option<PathBuf>,
    /// Output folder: sweep.json, sweep.csv, pareto.svg
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    /// Evaluate shard I of N (0 <= I < N): the points i with i mod N == I
    #[arg(long, value_name = "I/N", default_value = "0/1")]
    pub shard: Shard,
    /// Points evaluated in parallel
    #[arg(long, value_name = "J", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Skip the Yosys estimates (cycles only; no Pareto plot)
    #[arg(long)]
    pub no_yosys: bool,
    /// Also run one short seeded GEMM per point in Verilator, compared bit for bit
    #[arg(long)]
    pub verify: bool,
}

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// Join the outputs of the shards of one space into one sweep.csv, sweep.json and pareto.svg
    Merge {
        /// Output folders of `coforge sweep --shard`, one per shard
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Output folder of the merged sweep
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    match args.command {
        Some(SweepCommand::Merge { dirs, out }) => merge(&dirs, &out),
        None => sweep(args),
    }
}

fn sweep(args: SweepArgs) -> anyhow::Result<()> {
    let (Some(space_path), Some(out_path)) = (&args.space, &args.out) else {
        bail!("coforge sweep needs --space and --out");
    };
    let mut out = OutputDir::create(out_path)?;
    let space = Space::load(space_path)?;
    let cache = if args.no_yosys {
        YosysCache::unused()
    } else {
        YosysCache::open()?
    };
    if args.verify {
        coforge_sim::Verilator::version()?;
    }
    let mine: Vec<usize> = (0..space.points.len())
        .filter(|&i| args.shard.holds(i))
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.into())
        .build()
        .context("cannot start the worker threads")?;
    let ev = Evaluator {
        space: &space,
        yosys: !args.no_yosys,
        verify: args.verify,
        cache,
        counters: CacheCounters::default(),
    };
    eprintln!(
        "sweep: shard {} holds {} of the space's {} points; {} network(s), {} job(s)",
        args.shard,
        mine.len(),
        space.points.len(),
        space.networks.len(),
        args.jobs
    );
    // The scheduler first, for every point: cheap, and an unschedulable point stops the run
    // before any Yosys or Verilator time is spent.
    let cycles: Vec<Vec<u64>> = pool.install(|| {
        mine.par_iter()
            .map(|&i| ev.cycles(i, &space.points[i]))
            .collect::<anyhow::Result<_>>()
    })?;
    let ticker = Ticker::new(mine.len());
    let records: Vec<Record> = pool.install(|| {
        mine.par_iter()
            .zip(cycles)
            .map(|(&i, c)| {
                let r = ev.finish(i, &space.points[i], c)?;
                ticker.done(&r);
                Ok(r)
            })
            .collect::<anyhow::Result<_>>()
    })?;
    ticker.finish();
    let stats = CacheStats {
        hits: ev.counters.hits.load(Ordering::Relaxed),
        misses: ev.counters.misses.load(Ordering::Relaxed),
    };
    let file = SweepFile {
        note: report::NOTE.to_string(),
        space_hash: space.hash.clone(),
        family: space.family.yosys_name().to_string(),
        networks: space.networks.iter().map(|n| n.name.clone()).collect(),
        system: space.system()?,
        point_ids: space.points.iter().map(|p| p.id()).collect(),
        shards: vec![args.shard],
        yosys: !args.no_yosys,
        verify: args.verify,
        yosys_version: (!args.no_yosys).then(|| ev.cache.yosys_version.clone()),
        yosys_cache: stats,
        records,
    };
    write(&mut out, &file)?;
    out.commit()?;
    say!(
        "sweep: {} points evaluated (shard {} of a {}-point space) into {}",
        file.records.len(),
        args.shard,
        file.point_ids.len(),
        out_path.display()
    );
    if !args.no_yosys {
        say!(
            "yosys estimates: {} from the cache, {} synthesized (cache {})",
            stats.hits,
            stats.misses,
            ev.cache.dir().display()
        );
    }
    Ok(())
}

fn write(out: &mut OutputDir, file: &SweepFile) -> anyhow::Result<()> {
    out.write_json("sweep.json", file)?;
    out.add("sweep.csv", report::csv(file).into_bytes());
    out.add("pareto.svg", report::pareto_svg(file).into_bytes());
    Ok(())
}

/// Progress of the evaluated points: an indicatif bar with an ETA on a terminal, numbered lines
/// otherwise (logs, CI, tests).
struct Ticker {
    bar: Option<indicatif::ProgressBar>,
    done: AtomicUsize,
    total: usize,
    started: Instant,
}

impl Ticker {
    fn new(total: usize) -> Ticker {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:40}] {pos}/{len} points, ETA {eta} {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar
        });
        Ticker {
            bar,
            done: AtomicUsize::new(0),
            total,
            started: Instant::now(),
        }
    }

    fn done(&self, r: &Record) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(r.id.clone());
                bar.inc(1);
            }
            None => eprintln!(
                "[{n}/{}] point {} `{}` ({:.1} s)",
                self.total,
                r.index,
                r.id,
                self.started.elapsed().as_secs_f64()
            ),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn merge(dirs: &[PathBuf], out_path: &std::path::Path) -> anyhow::Result<()> {
    let mut out = OutputDir::create(out_path)?;
    let mut files = Vec::new();
    for d in dirs {
        let path = d.join("sweep.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} holds no readable sweep.json; give the output folders of `coforge sweep \
                 --shard I/N`",
                d.display()
            )
        })?;
        let f: SweepFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a sweep.json written by coforge sweep",
                path.display()
            )
        })?;
        files.push((d, f));
    }
    let (first_dir, first) = &files[0];
    for (d, f) in &files[1..] {
        if f.space_hash != first.space_hash {
            bail!(
                "{} and {} are sweeps of different spaces (space hashes {} and {}); merge the \
                 shards of one space file with the same networks",
                first_dir.display(),
                d.display(),
                &first.space_hash[..12],
                &f.space_hash[..12]
            );
        }
        if (f.yosys, f.verify) != (first.yosys, first.verify) {
            bail!(
                "{} ran with{} Yosys and with{} --verify, {} with{} and with{}; run every shard \
                 with the same flags",
                first_dir.display(),
                if first.yosys { "" } else { "out" },
                if first.verify { "" } else { "out" },
                d.display(),
                if f.yosys { "" } else { "out" },
                if f.verify { "" } else { "out" }
            );
        }
    }
    let total = first.point_ids.len();
    let mut owner: Vec<Option<usize>> = vec![None; total];
    let mut records = Vec::with_capacity(total);
    for (k, (d, f)) in files.iter().enumerate() {
        for r in &f.records {
            if r.index >= total || first.point_ids[r.index] != r.id {
                bail!(
                    "{}: point {} (`{}`) is not point {} of the space",
                    d.display(),
                    r.index,
                    r.id,
                    r.index
                );
            }
            if let Some(other) = owner[r.index] {
                bail!(
                    "point {} (`{}`) is in both {} and {}: the shards overlap; give each shard's \
                     folder once (shards {} and {})",
                    r.index,
                    r.id,
                    files[other].0.display(),
                    d.display(),
                    shards_of(&files[other].1),
                    shards_of(f)
                );
            }
            owner[r.index] = Some(k);
            records.push(r.clone());
        }
    }
    let missing: Vec<String> = (0..total)
        .filter(|&i| owner[i].is_none())
        .map(|i| format!("{i} (`{}`)", first.point_ids[i]))
        .collect();
    if !missing.is_empty() {
        let given: Vec<String> = files.iter().map(|(_, f)| shards_of(f)).collect();
        let shown = missing.len().min(10);
        bail!(
            "{} of the space's {total} points are in no given folder: {}{}; the folders hold \
             shards {}: run the missing shards and merge them all",
            missing.len(),
            missing[..shown].join(", "),
            if missing.len() > shown {
                format!(" and {} more", missing.len() - shown)
            } else {
                String::new()
            },
            given.join(", ")
        );
    }
    records.sort_by_key(|r| r.index);
    let mut shards: Vec<Shard> = files
        .iter()
        .flat_map(|(_, f)| f.shards.iter().copied())
        .collect();
    shards.sort_by_key(|s| (s.count, s.index));
    let stats = files
        .iter()
        .fold(CacheStats::default(), |a, (_, f)| CacheStats {
            hits: a.hits + f.yosys_cache.hits,
            misses: a.misses + f.yosys_cache.misses,
        });
    let merged = SweepFile {
        shards,
        yosys_cache: stats,
        records,
        ..first.clone()
    };
    write(&mut out, &merged)?;
    out.commit()?;
    say!(
        "sweep merge: {} points from {} folders into {}",
        merged.records.len(),
        files.len(),
        out_path.display()
    );
    Ok(())
}

fn shards_of(f: &SweepFile) -> String {
    f.shards
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("+")
}
