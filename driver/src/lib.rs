//! coforge driver: compiles work onto the generated engines and runs it on a simulator.
//!
//! - `design`: from rendered Verilog to a simulator's `DesignSpec`.
//! - `stce`: a GEMM on the sparse tensor engine: tiling, the cycle-exact input stream, the
//!   read-out schedule, and the cycle model that predicts its length.
//! - `compare` and `mismatch_map`: bit-for-bit comparison naming the first difference, and a
//!   heat map of every difference (`mismatch.svg`).
//! - `sore`: N:M pruning of a tensor on the online pruning unit, and its cycle model.
//! - `wuve`: the SR-STE weight update (fp32 master weights and their fp16 copy) on the
//!   weight-update vector engine, and its cycle model.

pub mod axi;
pub mod axi_deform;
pub mod compare;
pub mod dcnv2;
pub mod deform;
pub mod design;
pub mod mismatch_map;
pub mod sat;
pub mod sore;
pub mod stce;
pub mod verify;
pub mod wuve;

use coforge_sim::{Stimulus, Trace};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

/// Random bubbles in an engine's input stream: before each input beat (after the first),
/// `in_valid` stays low for a cycle with probability `rate`, repeatedly, so gaps of any length
/// occur. Seeded, so a run repeats. Every engine documents that a bubble holds its state, so
/// gaps change when results appear, never what they are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gaps {
    pub rate: f64,
    pub seed: u64,
}

impl Gaps {
    /// No bubbles but those the engine's protocol needs.
    pub const NONE: Gaps = Gaps { rate: 0.0, seed: 0 };

    /// The bubble generator of one job; a rate outside `[0, 1)` is an input error.
    pub(crate) fn start(self) -> Result<Bubbles, DriverError> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(DriverError::Input(format!(
                "a bubble rate of {} is outside [0, 1); use 0 for no bubbles",
                self.rate
            )));
        }
        Ok(Bubbles {
            rate: self.rate,
            rng: ChaCha8Rng::seed_from_u64(self.seed),
        })
    }
}

/// Draws the bubbles of one job.
pub(crate) struct Bubbles {
    rate: f64,
    rng: ChaCha8Rng,
}

impl Bubbles {
    /// Idle cycles to insert before the next beat.
    pub(crate) fn before_beat(&mut self) -> u64 {
        let mut n = 0;
        while self.rate > 0.0 && self.rng.random_bool(self.rate) {
            n += 1;
        }
        n
    }
}

/// `n` cycles with unchanged inputs, each captured (a driver that observes `out_valid`
/// captures every cycle from the first input on).
pub(crate) fn idle_captured(stim: &mut Stimulus, n: u64) {
    for _ in 0..n {
        stim.step(true);
    }
}

/// The captures, in order, in which the engine raised `out_valid`: how a driver observes when
/// each result appears (the stimulus captures every cycle from the first input on).
pub(crate) fn shown(trace: &Trace, out_valid: &str) -> Result<Vec<usize>, DriverError> {
    let port = trace.port_id(out_valid).ok_or_else(|| {
        DriverError::Unsupported(format!("the design has no output `{out_valid}`"))
    })?;
    Ok((0..trace.len())
        .filter(|&c| trace.get_id(c, port)[0] != 0)
        .collect())
}

/// Checks that the engine showed exactly `expected` results in the `simulated` cycles.
pub(crate) fn expect_shown(
    shown: &[usize],
    expected: usize,
    what: &str,
    simulated: usize,
) -> Result<(), DriverError> {
    if shown.len() != expected {
        return Err(DriverError::Unsupported(format!(
            "the engine showed {} {what} where the job has {expected}, in the {simulated} cycles \
             simulated after the first input",
            shown.len()
        )));
    }
    Ok(())
}

#[derive(Debug, Error)]
pub enum DriverError {
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("the engine cannot run this: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Sim(#[from] coforge_sim::SimError),
}
