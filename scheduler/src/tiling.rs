//! Offline tiling of one GEMM pass: which operand stays in its buffer, how many tiles of it, how
//! many panels of the other operand each LOAD brings, and whether the reduction is split, chosen to
//! fit the buffers and to cost the DMA the least time.
//!
//! A pass computes `P x Q` outputs in `rows x cols` tiles (`pt x qt` tiles) over `groups` groups
//! of the reduction. The A operand of row tile `rt` is `groups` act lines (a *panel*), the B
//! operand of column tile `ct` is `groups` wgt lines; the panels of one operand are consecutive
//! in DRAM, so several of them move with one LOAD. Three loop orders are considered:
//!
//! - **A-stationary, block `bk`, flow `fb`**: `bk` A panels (one LOAD) stay in `act` while every
//!   B panel streams past them, `fb` panels per LOAD. A is read once, B `ceil(pt / bk)` times.
//!   Needs `2 * bk * groups` act lines (the next block loads into the other half while this one
//!   computes; `bk * groups` when one block holds every panel) and `2 * fb * groups` wgt lines
//!   (the next B panels load while these are used; `fb * groups` when one LOAD is all there is).
//! - **B-stationary, block `bk`, flow `fb`**: the mirror image. B is read once, A `ceil(qt / bk)`
//!   times.
//!   When no block fits twice, one block at a time in one half is tried (`single`: the next
//!   block's LOAD waits for this block's last GEMM); when no streamed panel fits twice, each tile
//!   streams its panel in chunks of `chunk` groups of the reduction (GEMMs with `first`/`last`
//!   keep the sum in the PEs), double buffered, while the stationary block is reused.
//! - **Split**: a panel does not fit twice, so the reduction is cut into chunks of `chunk` groups
//!   (GEMMs with `first`/`last` keep the sum in the PEs). Nothing is reused: every tile reads its A
//!   and B chunks, double buffered.
//!
//! Within a block and a flow batch the tiles run in the result's DRAM order (row tile, then column
//! tile), so that the out lines of consecutive tiles that are consecutive in DRAM are written back
//! with one STORE of up to `store_run` tiles (half the out slots: the other half takes the next
//! tiles while the STORE runs).
//!
//! The search is exhaustive over the order, `bk` and `fb`. It minimizes the DMA time of the pass
//! as `engines::sat::estimated_cycles` counts it: every LOAD and every STORE pays a fixed
//! overhead (a LOAD the memory latency), then its beats at the port's rate. So it weighs the DRAM
//! beats moved against the number of transfers, plus the first block's and flow batch's LOADs,
//! which nothing hides (the pass waits for them). Among equal times it takes A-stationary before
//! B-stationary before Split, and the smallest block and flow batch that reach that time.

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
    /// Streamed panels per LOAD (1 for Split).
    #[serde(default = "one")]
    pub flow: usize,
    /// Groups per GEMM instruction (all of them unless Split).
    pub chunk: usize,
    /// Most tiles one STORE of results covers.
    #[serde(default = "one")]
    pub store_run: usize,
    /// The stationary blocks share one buffer half (a block does not fit twice): the next
    /// block's LOAD waits for the last GEMM of this one.
    #[serde(default)]
    pub single: bool,
    /// DRAM beats read for the A and B operands, by how many LOADs.
    pub operand_beats: u64,
    pub operand_loads: u64,
    /// STOREs of result tiles.
    #[serde(default)]
    pub stores: u64,
    /// The DMA cycles of the first LOADs, which the pass waits for.
    #[serde(default)]
    pub fill_cycles: u64,
}

fn one() -> usize {
    1
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

/// What a transfer costs the DMA engine: a LOAD `load_fixed` cycles, a STORE `store_fixed`,
/// then `cycles_per_beat` per beat.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadCost {
    pub fixed: u64,
    pub store_fixed: u64,
    pub cycles_per_beat: f64,
}

impl Tiling {
    /// The DMA cycles of the operand loads, the fixed costs of the result stores and the first
    /// loads the pass waits for.
    pub fn load_cycles(&self, cost: LoadCost) -> f64 {
        self.operand_loads as f64 * cost.fixed as f64
            + self.operand_beats as f64 * cost.cycles_per_beat
            + self.stores as f64 * cost.store_fixed as f64
            + self.fill_cycles as f64
    }
}

/// Buffer lines a pass may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    pub act: usize,
    pub wgt: usize,
    /// Result tiles the out lines hold at once.
    pub out_tiles: usize,
}

/// Restrictions a pass puts on its loop order (the WU pass: the weight chunk its updates use must
/// hold every column tile that is in flight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Column tiles that may be in flight at once, or `None` for no limit.
    pub max_columns_in_flight: Option<usize>,
}

/// Most tiles one STORE covers with `out_tiles` result slots: half of them, so that the STCE
/// fills the other half while the STORE runs.
pub fn store_run(out_tiles: usize) -> usize {
    (out_tiles / 2).max(1)
}

/// STOREs of `segments` runs of `len` DRAM-consecutive tiles each, at most `run` per STORE.
fn runs(segments: usize, len: usize, run: usize) -> u64 {
    (segments * len.div_ceil(run)) as u64
}

/// STOREs of the tiles when the tiles of one row tile are visited in runs of `across` column
/// tiles (the last run `qt % across`): one DRAM-contiguous segment per run, or the whole pass
/// when a run spans every column tile.
fn stores(pt: usize, qt: usize, across: usize, run: usize) -> u64 {
    if across >= qt {
        return runs(1, pt * qt, run);
    }
    let (whole, rest) = (qt / across, qt % across);
    runs(pt * whole, across, run) + if rest > 0 { runs(pt, rest, run) } else { 0 }
}

/// Split visits the tiles row tile by row tile (the results in DRAM order) unless the column
/// limit forbids more than one column tile in flight.
pub fn split_rows_outer(qt: usize, limits: Limits) -> bool {
    limits.max_columns_in_flight.is_none_or(|m| qt <= m)
}

/// The tiling with the least DMA time that fits `room`, or why none does.
pub fn choose(s: &PassShape, room: Room, limits: Limits, cost: LoadCost) -> Result<Tiling, String> {
    let a_total = (s.pt * s.groups) as u64 * s.a_beats;
    let b_total = (s.qt * s.groups) as u64 * s.b_beats;
    let in_flight_ok = |columns: usize| limits.max_columns_in_flight.is_none_or(|m| columns <= m);
    let run = store_run(room.out_tiles);
    let load = |lines: usize, beats: u64| {
        cost.fixed + ((lines as u64 * beats) as f64 * cost.cycles_per_beat).ceil() as u64
    };
    let mut best: Option<(f64, Tiling)> = None;
    let mut consider = |t: Tiling| {
        let c = t.load_cycles(cost);
        if best.is_none_or(|(b, _)| c < b) {
            best = Some((c, t));
        }
    };
    // The stationary operand: `n_stay` panels of `stay_beats` per line in `stay_room` lines; the
    // streamed one likewise.
    let stationary = |a_stays: bool, consider: &mut dyn FnMut(Tiling)| {
        let (n_stay, stay_beats, stay_room, n_flow, flow_beats, flow_room, flow_total) = if a_stays
        {
            (
                s.pt, s.a_beats, room.act, s.qt, s.b_beats, room.wgt, b_total,
            )
        } else {
            (
                s.qt, s.b_beats, room.wgt, s.pt, s.a_beats, room.act, a_total,
            )
        };
        let stay_total = if a_stays { a_total } else { b_total };
        if s.groups > MAX_GEMM_GROUPS || s.groups > stay_room {
            return;
        }
        // Block sizes that fit double buffered, every panel at once when that fits, and, when
        // no double-buffered block fits, one block at a time in one buffer (the next block's
        // LOAD then waits for this block's last GEMM: its time is added to the cost).
        let fits = |n: usize, room: usize| (1..=n).take_while(move |&k| 2 * k * s.groups <= room);
        let whole = |n: usize, room: usize| (n * s.groups <= room).then_some(n);
        let mut blocks_tried: Vec<(usize, bool)> =
            fits(n_stay, stay_room).map(|k| (k, false)).collect();
        if blocks_tried.is_empty() {
            blocks_tried.push((1, true));
        }
        if let Some(n) = whole(n_stay, stay_room) {
            if !blocks_tried.contains(&(n, false)) {
                blocks_tried.push((n, false));
            }
        }
        for (bk, single) in blocks_tried {
            let blocks = n_stay.div_ceil(bk);
            let columns = if a_stays { s.qt } else { bk };
            if !in_flight_ok(columns) {
                continue;
            }
            let exposed = if single {
                (blocks as u64 - 1) * load(bk * s.groups, stay_beats)
            } else {
                0
            };
            let mut flows: Vec<usize> = fits(n_flow, flow_room).collect();
            if blocks == 1 {
                flows.extend(whole(n_flow, flow_room).filter(|n| !flows.contains(n)));
            }
            // No flow panel fits twice: each tile streams its flow panel in reduction chunks.
            let split = flows.is_empty();
            let (chunk, chunks) = if split {
                let most = (flow_room / 2).min(MAX_GEMM_GROUPS);
                if most == 0 {
                    continue;
                }
                let chunks = s.groups.div_ceil(most);
                (s.groups.div_ceil(chunks), chunks)
            } else {
                (s.groups, 1)
            };
            if split {
                flows.push(1);
            }
            for fb in flows {
                let batches = n_flow.div_ceil(fb);
                let stores = if a_stays {
                    stores(s.pt, s.qt, fb, run)
                } else {
                    stores(s.pt, s.qt, bk, run)
                };
                let fill = load(bk * s.groups, stay_beats) + load(fb * chunk, flow_beats);
                consider(Tiling {
                    order: if a_stays {
                        Order::AStationary
                    } else {
                        Order::BStationary
                    },
                    block: bk,
                    flow: fb,
                    chunk,
                    store_run: run,
                    single,
                    operand_beats: stay_total + blocks as u64 * flow_total,
                    operand_loads: (blocks + blocks * batches * chunks) as u64,
                    stores,
                    fill_cycles: fill + exposed,
                });
            }
        }
    };
    stationary(true, &mut consider);
    stationary(false, &mut consider);
    let most = (room.act / 2).min(room.wgt / 2).min(MAX_GEMM_GROUPS);
    if most >= 1 && in_flight_ok(1) {
        let chunks = s.groups.div_ceil(most);
        let chunk = s.groups.div_ceil(chunks);
        let rows_outer = split_rows_outer(s.qt, limits);
        consider(Tiling {
            order: Order::Split,
            block: 1,
            flow: 1,
            chunk,
            store_run: run,
            single: false,
            operand_beats: s.qt as u64 * a_total + s.pt as u64 * b_total,
            operand_loads: (2 * s.pt * s.qt * chunks) as u64,
            stores: if rows_outer {
                stores(s.pt, s.qt, s.qt, run)
            } else if s.qt == 1 {
                stores(s.pt, 1, 1, run)
            } else {
                (s.pt * s.qt) as u64
            },
            fill_cycles: load(chunk, s.a_beats) + load(chunk, s.b_beats),
        });
    }
    best.map(|(_, t)| t).ok_or_else(|| {
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
    /// Beats only (no per-transfer overhead).
    const BEATS: LoadCost = LoadCost {
        fixed: 0,
        store_fixed: 0,
        cycles_per_beat: 1.0,
    };

    fn room(act: usize, wgt: usize) -> Room {
        Room {
            act,
            wgt,
            out_tiles: 2,
        }
    }

    #[test]
    fn picks_the_least_traffic_that_fits() {
        let s = PassShape {
            pt: 8,
            qt: 2,
            groups: 10,
            a_beats: 4,
            b_beats: 2,
        };
        // B (2 panels x 10 lines) fits in 40 wgt lines: read once, A once too.
        let t = choose(&s, room(20, 40), UNLIMITED, BEATS).unwrap();
        assert_eq!((t.order, t.block), (Order::BStationary, 2));
        assert_eq!(t.operand_beats, 8 * 10 * 4 + 2 * 10 * 2);
        // 20 wgt lines hold both B panels once but not twice: one block of every B panel needs
        // no second half, so B is still read once while A streams past (one panel per LOAD:
        // LOADs cost nothing beyond their beats here, and the first one is then the shortest).
        let t = choose(&s, room(80, 20), UNLIMITED, BEATS).unwrap();
        assert_eq!((t.order, t.block, t.flow), (Order::BStationary, 2, 1));
        assert_eq!(t.operand_beats, 8 * 10 * 4 + 2 * 10 * 2);
        // The mirror image keeps A.
        let m = PassShape {
            pt: 2,
            qt: 8,
            a_beats: 2,
            b_beats: 4,
            ..s
        };
        let t = choose(&m, room(20, 80), UNLIMITED, BEATS).unwrap();
        assert_eq!((t.order, t.block, t.flow), (Order::AStationary, 2, 1));
        // Nothing fits whole: the reduction is split into chunks of at most 3 groups.
        let t = choose(&s, room(6, 7), UNLIMITED, BEATS).unwrap();
        assert_eq!((t.order, t.chunk), (Order::Split, 3));
        assert!(choose(&s, room(1, 7), UNLIMITED, BEATS)
            .unwrap_err()
            .contains("system.act_lines"));
    }

    #[test]
    fn the_transfer_overhead_brings_many_panels_per_load() {
        // 256 A panels of 4 lines against 1 B panel (the fc layer's WU): by beats alone one
        // panel per LOAD is as good as any; with 34 cycles per LOAD, each LOAD brings many.
        let s = PassShape {
            pt: 256,
            qt: 1,
            groups: 4,
            a_beats: 1,
            b_beats: 1,
        };
        let cost = LoadCost {
            fixed: 34,
            store_fixed: 2,
            cycles_per_beat: 1.0,
        };
        let t = choose(&s, room(1024, 64), UNLIMITED, cost).unwrap();
        assert_eq!(t.order, Order::BStationary);
        assert!(t.flow >= 16, "{t:?}");
        assert!(t.operand_loads <= 1 + 16, "{t:?}");
        assert_eq!(t.operand_beats, 256 * 4 + 4);
        // It still double buffers: the act lines hold two batches.
        assert!(2 * t.flow * 4 <= 1024);
    }

    #[test]
    fn results_consecutive_in_dram_share_a_store() {
        // 64 row tiles by 4 column tiles, all B panels stay: each row's 4 tiles and the next
        // row's follow each other in DRAM, so STOREs cover half the 32 out slots each.
        let s = PassShape {
            pt: 64,
            qt: 4,
            groups: 8,
            a_beats: 1,
            b_beats: 1,
        };
        let cost = LoadCost {
            fixed: 34,
            store_fixed: 2,
            cycles_per_beat: 1.0,
        };
        let r = Room {
            act: 1024,
            wgt: 1024,
            out_tiles: 32,
        };
        let t = choose(&s, r, UNLIMITED, cost).unwrap();
        assert_eq!(t.store_run, 16);
        assert_eq!(t.stores, 64 * 4 / 16, "{t:?}");
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
        let t = choose(&s, room(100, 100), limits, BEATS).unwrap();
        assert_eq!((t.order, t.block), (Order::BStationary, 2));
    }
}
