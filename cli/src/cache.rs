//! `coforge cache list|gc|clear`: the Verilator build cache (`$COFORGE_CACHE_DIR`, default
//! `~/.cache/coforge/verilator`).

use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use coforge_sim::{BuildCache, EntryState, Removed};

#[derive(Args, Debug)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub verb: CacheVerb,
}

#[derive(Subcommand, Debug)]
pub enum CacheVerb {
    /// List every entry: key, state, top, size, age, last use and Verilator version
    List,
    /// Remove damaged entries, failed builds, temporary folders of builds that died, and
    /// entries unused for N days (with --unused-days)
    Gc {
        /// Also remove working entries not used for this many days
        #[arg(long, value_name = "N")]
        unused_days: Option<u64>,
    },
    /// Remove every entry (builds in progress are left alone)
    Clear,
}

pub fn run(args: CacheArgs) -> anyhow::Result<()> {
    let cache = BuildCache::new(None);
    match args.verb {
        CacheVerb::List => list(&cache),
        CacheVerb::Gc { unused_days } => {
            let limit = unused_days.map(|d| Duration::from_secs(d.saturating_mul(86_400)));
            report(&cache, "gc", cache.gc(limit)?);
            Ok(())
        }
        CacheVerb::Clear => {
            report(&cache, "clear", cache.clear()?);
            Ok(())
        }
    }
}

fn list(cache: &BuildCache) -> anyhow::Result<()> {
    let entries = cache.list()?;
    say!("cache {} (COFORGE_CACHE_DIR)", cache.dir().display());
    if entries.is_empty() {
        say!("empty");
        return Ok(());
    }
    say!(
        "{:<14} {:<10} {:<16} {:>9} {:>8} {:>9}  verilator",
        "key",
        "state",
        "top",
        "size",
        "age",
        "last use"
    );
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    for e in &entries {
        let state = match &e.state {
            EntryState::Ready => "ready",
            EntryState::Damaged(_) => "damaged",
            EntryState::Failed => "failed",
            EntryState::Temporary => "temporary",
        };
        say!(
            "{:<14} {:<10} {:<16} {:>9} {:>8} {:>9}  {}",
            &e.name[..e.name.len().min(12)],
            state,
            e.top.as_deref().unwrap_or("-"),
            size(e.bytes),
            ago(e.built),
            ago(e.last_used),
            e.verilator.as_deref().unwrap_or("-")
        );
        if let EntryState::Damaged(why) = &e.state {
            say!("{:<14} ({why}; `coforge cache gc` removes it)", "");
        }
    }
    say!("{} entries, {}", entries.len(), size(total));
    Ok(())
}

fn report(cache: &BuildCache, verb: &str, removed: Removed) {
    for (name, why) in &removed.entries {
        say!("removed {name}: {why}");
    }
    say!(
        "cache {verb}: removed {} entries, freed {} in {}",
        removed.entries.len(),
        size(removed.bytes),
        cache.dir().display()
    );
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{:.1} KiB", b as f64 / 1024.0),
    }
}

fn ago(t: Option<SystemTime>) -> String {
    let Some(secs) = t
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs())
    else {
        return "-".into();
    };
    match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
