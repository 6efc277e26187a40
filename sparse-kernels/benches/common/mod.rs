//! What the benches of this crate share.

use std::time::{Duration, Instant};

/// The median of 5 timed runs of `f`, after one untimed warm-up run.
pub fn median_of_5(mut f: impl FnMut()) -> Duration {
    f();
    let mut t: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    t.sort();
    t[2]
}
