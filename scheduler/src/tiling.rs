//! Offline tiling of one GEMM pass: which operand stays in its buffer, how many tiles of it, and
//! whether the reduction is split, chosen to fit the buffers and to move the fewest DRAM beats.
//!
//! A pass computes `P x Q` outputs in `rows x cols` tiles (`pt x qt` tiles) over `groups` groups
//! of the reduction. The A operand of row tile `rt` is `groups` act lines (a *panel*), the B
//! operand of column tile `ct` is `groups` wgt lines. Three loop orders are considered:
//!
//! - **A-stationary, block `bk`**: `bk` A panels stay in `act` while every B panel streams past
//!   them. A is read once, B `ceil(pt / bk)` times. Needs `2 * bk * groups` act lines (the next
//!   block loads into the other half while this one computes) and `2 * groups` wgt lines (double
//!   buffered B panels).
//! - **B-stationary, block `bk`**: the mirror image. B is read once, A `ceil(qt / bk)` times.
//! - **Split**: a panel does not fit twice, so the reduction is cut into chunks of `chunk` groups
//!   (GEMMs with `first`/`last` keep the sum in the PEs). Nothing is reused: every tile reads its A
//!   and B chunks, double buffered.
//!
//! The search is exhaustive over the order and `bk` (1 to what fits). It minimizes the DMA time of
//! the operand loads, as `engines::sat::estimated_cycles` counts it: every LOAD pays a fixed
//! overhead (the memory latency and two cycles), then its beats at the port's rate. So it weighs
//! the DRAM beats moved against the number of loads (the stores of the results are the same for
//! every choice). Among equal times it takes A-stationary before B-stationary before Split, and
//! the smallest block that reaches that time (fewer lines held, earlier first GEMM).

use serde::{Deserialize, Serialize};

/// Largest group count of one GEMM instruction (a 16-bit field).
pub const MAX_GEMM_GROUPS: usize = u16::MAX as usize;

/// A loop order (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    AStationary,
    BStationary,
    Split,
}

/// The tiling chosen for one pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tiling {
    pub order: Order,
    /// Stationary panels held at once (1 for Split).
    pub block: usize,
    /// Groups per GEMM instruction (all of them unless Split).
    pub chunk: usize,
    /// DRAM beats read for the A and B operands, by how many LOADs.
    pub operand_beats: u64,
    pub operand_loads: u64,
}

/// The shape of one pass as the tiler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassShape {
    /// Row tiles (A panels).
    pub pt: usize,
    /// Column tiles (B panels).
    pub qt: usize,
    pub groups: usize,
    /// DRAM beats of one act line and of one wgt line.
    pub a_beats: u64,
    pub b_beats: u64,
}

/// What a LOAD costs the DMA engine: `fixed` cycles, then `cycles_per_beat` per beat.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadCost {
    pub fixed: u64,
    pub cycles_per_beat: f64,
}

impl Tiling {
    /// The DMA cycles of the operand loads.
    pub fn load_cycles(&self, cost: LoadCost) -> f64 {
        self.operand_loads as f64 * cost.fixed as f64
            + self.operand_beats as f64 * cost.cycles_per_beat
    }
}

/// Buffer lines a pass may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    pub act: usize,
    pub wgt: usize,
}

/// Restrictions a pass puts on its loop order (the WU pass: the weight chunk its updates use must
/// hold every column tile that is in flight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Column tiles that may be in flight at once, or `None` for no limit.
    pub max_columns_in_flight: Option<usize>,
}

/// The tiling with the least operand traffic that fits `room`, or why none does.
pub fn choose(s: &PassShape, room: Room, limits: Limits, cost: LoadCost) -> Result<Tiling, String> {
    let a_total = (s.pt * s.groups) as u64 * s.a_beats;
    let b_total = (s.qt * s.groups) as u64 * s.b_beats;
    let in_flight_ok = |columns: usize| limits.max_columns_in_flight.is_none_or(|m| columns <= m);
    let mut best: Option<Tiling> = None;
    let mut consider = |t: Tiling| {
        if best.is_none_or(|b| t.load_cycles(cost) < b.load_cycles(cost)) {
            best = Some(t);
        }
    };
    if s.groups <= MAX_GEMM_GROUPS && 2 * s.groups <= room.wgt && in_flight_ok(s.qt) {
        for bk in 1..=s.pt.min(room.act / (2 * s.groups)) {
            consider(Tiling {
                order: Order::AStationary,
                block: bk,
                chunk: s.groups,
                operand_beats: a_total + s.pt.div_ceil(bk) as u64 * b_total,
                operand_loads: (s.pt + s.pt.div_ceil(bk) * s.qt) as u64,
            });
        }
    }
    if s.groups <= MAX_GEMM_GROUPS && 2 * s.groups <= room.act {
        let most = s.qt.min(room.wgt / (2 * s.groups));
        for bk in (1..=most).filter(|&bk| in_flight_ok(bk)) {
            consider(Tiling {
                order: Order::BStationary,
                block: bk,
                chunk: s.groups,
                operand_beats: b_total + s.qt.div_ceil(bk) as u64 * a_total,
                operand_loads: (s.qt + s.qt.div_ceil(bk) * s.pt) as u64,
            });
        }
    }
    let most = (room.act / 2).min(room.wgt / 2).min(MAX_GEMM_GROUPS);
    if most >= 1 && in_flight_ok(1) {
        let chunks = s.groups.div_ceil(most);
        consider(Tiling {
            order: Order::Split,
            block: 1,
            chunk: s.groups.div_ceil(chunks),
            operand_beats: s.qt as u64 * a_total + s.pt as u64 * b_total,
            operand_loads: (2 * s.pt * s.qt * chunks) as u64,
        });
    }
    best.ok_or_else(|| {
        format!(
            "no tiling fits: the buffers give {} act and {} wgt lines to this pass, and a GEMM \
             needs at least 2 of each (double buffering); raise system.act_lines and \
             system.wgt_lines",
            room.act, room.wgt
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNLIMITED: Limits = Limits {
        max_columns_in_flight: None,
    };
    /// Beats only (no per-load overhead).
    const BEATS: LoadCost = LoadCost {
        fixed: 0,
        cycles_per_beat: 1.0,
    };

    #[test]
    fn picks_the_least_traffic_that_fits() {
        let s = PassShape {
            pt: 8,
            qt: 2,
            groups: 10,
            a_beats: 4,
            b_beats: 2,
        };
        // B (2 panels x 10 lines) fits twice in 40 wgt lines: read once, A once too.
        let t = choose(&s, Room { act: 20, wgt: 40 }, UNLIMITED, BEATS).unwrap();
        assert_eq!((t.order, t.block), (Order::BStationary, 2));
        assert_eq!(t.operand_beats, 8 * 10 * 4 + 2 * 10 * 2);
        // Only one B panel pair fits: A-stationary with all 8 A panels would need 160 act lines;
        // 80 act lines hold 4 A panels twice: B is read twice.
        let t = choose(&s, Room { act: 80, wgt: 20 }, UNLIMITED, BEATS).unwrap();
        assert_eq!((t.order, t.block), (Order::AStationary, 4));
        assert_eq!(t.operand_beats, 8 * 10 * 4 + 2 * (2 * 10 * 2));
        // Nothing fits whole: the reduction is split into chunks of at most 3 groups.
        let t = choose(&s, Room { act: 6, wgt: 7 }, UNLIMITED, BEATS).unwrap();
        assert_eq!((t.order, t.chunk), (Order::Split, 3));
        assert!(choose(&s, Room { act: 1, wgt: 7 }, UNLIMITED, BEATS)
            .unwrap_err()
            .contains("system.act_lines"));
    }

    #[test]
    fn the_load_overhead_favors_fewer_larger_loads() {
        // 16 A panels of 1 line, 1 B panel of 16 lines. By beats alone every order moves
        // 32 beats; with 30 cycles per load, keeping the single B panel and streaming A (17
        // loads) beats reloading B per A block.
        let s = PassShape {
            pt: 16,
            qt: 1,
            groups: 16,
            a_beats: 1,
            b_beats: 1,
        };
        let cost = LoadCost {
            fixed: 30,
            cycles_per_beat: 1.0,
        };
        let t = choose(&s, Room { act: 64, wgt: 64 }, UNLIMITED, cost).unwrap();
        assert_eq!(t.order, Order::BStationary);
        assert_eq!(t.operand_loads, 17);
    }

    #[test]
    fn column_limit_is_respected() {
        let s = PassShape {
            pt: 2,
            qt: 6,
            groups: 4,
            a_beats: 1,
            b_beats: 1,
        };
        let limits = Limits {
            max_columns_in_flight: Some(2),
        };
        let t = choose(&s, Room { act: 100, wgt: 100 }, limits, BEATS).unwrap();
        assert_eq!((t.order, t.block), (Order::BStationary, 2));
    }
}
