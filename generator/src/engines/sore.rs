//! The online pruning unit (SORE): P parallel lanes, each selecting the N largest-magnitude values
//! of every group of M streamed values, ties to the lower index (`design/numerics.md`, "N:M
//! selection (pruning) tie rule"). It mirrors `sparse_kernels::nm::select_group` step by step.
//!
//! # Lane behaviour
//! A lane receives one value per valid cycle. An internal position counter (0..M-1, reset by
//! `rst`, wrapping after M-1) says where the value sits in its group. The lane keeps N slots of
//! (value, index), always in increasing index order:
//! - While fewer than N slots are full (position < N), the value is appended in slot `position`.
//! - Afterwards the *worst* slot is the one with the smallest magnitude, and among equal smallest
//!   magnitudes the one with the highest index (the highest slot, since slots are in index
//!   order). Only if the new magnitude is strictly greater (`>`) is the worst slot removed: the
//!   later slots shift down by one and the new value enters the last slot. It has the highest
//!   index so far, so index order is kept. Strict `>` plus evicting the highest-indexed weakest
//!   slot is exactly "ties go to the lower index".
//! - N == M keeps every value (there is no replacement logic at all).
//!
//! Magnitudes ([`MagnitudeRule`]): fp16 compares bits[14:0] as unsigned (+0 and -0 are equal,
//! infinity is the largest; a NaN would rank above infinity, which is why the driver rejects NaN
//! like the reference does); int8 compares |x| with |-128| = 128.
//!
//! # Port protocol (all synchronous to `clk`; `rst` synchronous, active high)
//! - Cycle t: `in_valid` high and `lane<p>_value` driven for every lane (`in_valid` is shared: all
//!   lanes advance together; a lane without real work is fed anything, and its output ignored).
//! - The value at position M-1 of a group, driven in cycle t, completes the group. In cycle
//!   t + 1, `out_valid` is high for one cycle and `lane<p>_values` (N values, slot i at
//!   `[i*W +: W]`, in increasing index order) and `lane<p>_indices` (their positions within the
//!   group, slot i at `[i*IB +: IB]`, IB = ceil(log2 M), at least 1) show the selection, including
//!   the effect of that last value.
//! - **Latency:** 1 cycle from the last value of a group to `out_valid`. **Throughput:** one group
//!   of M values per lane every M cycles; groups stream back to back with no bubble (the first
//!   value of the next group may be driven in cycle t + 1, the very cycle the result is shown).
//! - The outputs come straight from the slot registers, so they are valid only in the
//!   `out_valid` cycle: the next group overwrites the slots from the following edge on.
//! - Idle cycles (`in_valid` low) hold all state, so a group may also arrive with gaps.
//! - No back-pressure: a selection is shown for exactly one cycle and must be taken then.
//! - Reset: [`RESET_CYCLES`] cycles of `rst` high before the first value. [`estimated_cycles`]
//!   is the cycle model of a job, and [`ports`] the port names; drivers use these.
//!
//! One port per lane, not one packed bus: Verilator 5.006 is slow on very wide packed ports.

use crate::rtl::{
    index_bits, set, when, when_else, Design, DesignError, Expr, ModuleBuilder, ModuleDef,
};

/// How a value's magnitude key is formed; the comparator is a plain unsigned `>` on the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MagnitudeRule {
    /// fp16: bits[14:0] as unsigned. +0 and -0 are equal; infinity is the largest value.
    Fp16Bits,
    /// int8 two's complement: |x|, with |-128| = 128 (an 8-bit unsigned key).
    Int8Abs,
}

impl MagnitudeRule {
    fn tag(self) -> &'static str {
        match self {
            MagnitudeRule::Fp16Bits => "fp16",
            MagnitudeRule::Int8Abs => "int8",
        }
    }
    /// The value width this rule applies to.
    pub fn value_bits(self) -> u32 {
        match self {
            MagnitudeRule::Fp16Bits => 16,
            MagnitudeRule::Int8Abs => 8,
        }
    }
    /// Width of the magnitude key.
    pub fn key_bits(self) -> u32 {
        match self {
            MagnitudeRule::Fp16Bits => 15,
            MagnitudeRule::Int8Abs => 8,
        }
    }
}

/// Parameters of one pruning unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SoreParams {
    /// P: parallel lanes.
    pub lanes: u32,
    pub n: u32,
    pub m: u32,
    /// 16 for fp16, 8 for int8; must equal `magnitude.value_bits()`.
    pub value_bits: u32,
    pub magnitude: MagnitudeRule,
}

/// The largest group size (indices are at most 4 bits, as in `sparse_kernels::nm::MAX_M`).
pub const MAX_M: u32 = 16;
/// The most lanes one unit may have.
pub const MAX_LANES: u32 = 256;

impl SoreParams {
    /// The pruning unit of a training config: the STCE's N:M on its number format, with the
    /// config's `sore_lanes`; `None` without `[train]` and `[stce]`.
    pub fn of(cfg: &crate::config::Config) -> Option<SoreParams> {
        let (train, stce_cfg) = (cfg.train.as_ref()?, cfg.stce.as_ref()?);
        let (lanes, n, m) = (train.sore_lanes, stce_cfg.n, stce_cfg.m);
        Some(match stce_cfg.dtype {
            crate::config::Dtype::Fp16 => SoreParams::fp16(lanes, n, m),
            crate::config::Dtype::Int8 => SoreParams::int8(lanes, n, m),
        })
    }

    /// fp16 unit with `lanes` lanes keeping `n` of every `m`.
    pub fn fp16(lanes: u32, n: u32, m: u32) -> SoreParams {
        SoreParams {
            lanes,
            n,
            m,
            value_bits: 16,
            magnitude: MagnitudeRule::Fp16Bits,
        }
    }

    /// int8 unit with `lanes` lanes keeping `n` of every `m`.
    pub fn int8(lanes: u32, n: u32, m: u32) -> SoreParams {
        SoreParams {
            lanes,
            n,
            m,
            value_bits: 8,
            magnitude: MagnitudeRule::Int8Abs,
        }
    }

    /// Checks `1 <= lanes <= 256`, `0 < n <= m <= 16` and that `value_bits` fits the rule.
    pub fn validate(&self) -> Result<(), String> {
        if self.lanes == 0 || self.lanes > MAX_LANES {
            return Err(format!("lanes = {} must be in 1..={MAX_LANES}", self.lanes));
        }
        if self.m == 0 || self.m > MAX_M || self.n == 0 || self.n > self.m {
            return Err(format!(
                "pattern {}:{} must satisfy 0 < N <= M <= {MAX_M}",
                self.n, self.m
            ));
        }
        if self.value_bits != self.magnitude.value_bits() {
            return Err(format!(
                "magnitude rule {:?} needs value_bits = {}, got {}",
                self.magnitude,
                self.magnitude.value_bits(),
                self.value_bits
            ));
        }
        Ok(())
    }

    /// IB: bits of one index, ceil(log2 M), at least 1.
    pub fn index_bits(&self) -> u32 {
        index_bits(self.m)
    }

    /// Width of a lane's `values` output: N * W.
    pub fn values_bits(&self) -> u32 {
        self.n * self.value_bits
    }

    /// Width of a lane's `indices` output: N * IB.
    pub fn indices_bits(&self) -> u32 {
        self.n * self.index_bits()
    }

    /// Name of the lane module; it encodes every parameter the lane depends on.
    pub fn lane_module(&self) -> String {
        format!("sore_lane_{}_n{}_m{}", self.magnitude.tag(), self.n, self.m)
    }
}

/// Cycles of `rst` high before the first value.
pub const RESET_CYCLES: u64 = 2;

/// Cycles from the last value of a group to its `out_valid`.
pub const LATENCY: u64 = 1;

/// The cycle model of pruning `groups` groups of M, dealt round-robin to the P lanes, from the
/// cycle the first value is taken to the cycle the last selection is shown, both counted, with
/// no input bubbles: `ceil(groups / P)` rounds of M cycles, then [`LATENCY`]. Zero groups take
/// zero cycles.
pub fn estimated_cycles(p: &SoreParams, groups: u64) -> u64 {
    if groups == 0 {
        return 0;
    }
    groups.div_ceil(u64::from(p.lanes)) * u64::from(p.m) + LATENCY
}

/// Port names of the top module, shared with the driver that feeds it.
pub mod ports {
    pub const CLOCK: &str = "clk";
    pub const RESET: &str = "rst";
    pub const VALID: &str = "in_valid";
    pub const OUT_VALID: &str = "out_valid";
    pub fn value(lane: u32) -> String {
        format!("lane{lane}_value")
    }
    pub fn values(lane: u32) -> String {
        format!("lane{lane}_values")
    }
    pub fn indices(lane: u32) -> String {
        format!("lane{lane}_indices")
    }
}

/// Builds the pruning unit: one lane module shared by all lanes, then the top named `top`.
///
/// # Errors
/// A `top` named like the lane module ([`module_names`]) clashes with it.
///
/// # Panics
/// If `p` fails [`SoreParams::validate`] (a caller bug: validate untrusted parameters first).
pub fn generate(p: &SoreParams, top: &str) -> Result<Design, DesignError> {
    if let Err(e) = p.validate() {
        panic!("invalid SORE parameters: {e}");
    }
    let mut design = Design::new();
    let lane = lane_module(p);
    design.add(lane.clone())?;
    design.add(top_module(p, top, &lane))?;
    Ok(design)
}

/// The modules the unit defines besides its top.
pub fn module_names(p: &SoreParams) -> Vec<String> {
    vec![p.lane_module()]
}

/// The magnitude key of `value` (named `<name>`).
fn magnitude<'id>(
    b: &mut ModuleBuilder<'id>,
    rule: MagnitudeRule,
    name: &str,
    value: &Expr<'id>,
) -> Expr<'id> {
    match rule {
        MagnitudeRule::Fp16Bits => b.name(name, value.slice(0, rule.key_bits())),
        MagnitudeRule::Int8Abs => {
            // Two's-complement negation in 8 bits maps -128 to 0x80 = 128 unsigned: exact.
            let negated = value.not().add(&Expr::lit(1, 8));
            b.name(name, Expr::mux(&value.msb(), &negated, value))
        }
    }
}

fn lane_module(p: &SoreParams) -> ModuleDef {
    let (n, m, w) = (p.n, p.m, p.value_bits);
    let ib = p.index_bits();
    ModuleBuilder::build(p.lane_module(), |b| {
        b.doc(format!(
        "SORE lane: keeps the {n} largest of every {m} streamed {} values (ties to the lower index).",
        p.magnitude.tag()
    ));
        b.doc(
            "One value per valid cycle; a group's selection is shown, with out_valid, in the cycle",
        );
        b.doc("after its last value (latency 1), while the next group already streams in.");
        b.doc("Protocol: see the generator's `engines::sore` documentation (coforge).");
        let clk = b.input(ports::CLOCK, 1, "");
        let rst = b.input(ports::RESET, 1, "synchronous, active high");
        let in_valid = b.input("in_valid", 1, "a value is present");
        let in_value = b.input("in_value", w, "the value at the current position");
        let out_valid = b.output_reg("out_valid", 1, "a group's selection is shown");
        let out_values = b.output("out_values", n * w, "slot i at [i*W +: W]");
        let out_indices = b.output("out_indices", n * ib, "slot i at [i*IB +: IB]");

        let pos = b.reg("pos", ib);
        b.describe("position of in_value within its group");
        let vals: Vec<Expr> = (0..n)
            .map(|i| b.reg(&format!("slot{i}_value"), w))
            .collect();
        let idxs: Vec<Expr> = (0..n)
            .map(|i| b.reg(&format!("slot{i}_index"), ib))
            .collect();

        let last = b.name("last_pos", pos.eq(&Expr::lit((m - 1) as u64, ib)));
        let pos_next = if m == 1 {
            Expr::zero(ib)
        } else {
            Expr::mux(&last, &Expr::zero(ib), &pos.add(&Expr::lit(1, ib)))
        };

        // shift[i]: slot i takes slot i+1 (the last slot takes the new value). Only when N < M.
        let shift: Option<Vec<Expr>> = (n < m).then(|| {
            b.comment(
            "Worst slot: smallest magnitude, the highest slot among equals (tree, left = lower).",
        );
            let new_mag = magnitude(b, p.magnitude, "new_mag", &in_value);
            let sb = index_bits(n);
            let mut level: Vec<(Expr, Expr)> = (0..n)
                .map(|i| {
                    let mag = magnitude(b, p.magnitude, &format!("slot{i}_mag"), &vals[i as usize]);
                    (mag, Expr::lit(i as u64, sb))
                })
                .collect();
            let mut depth = 0;
            while level.len() > 1 {
                let mut next = Vec::with_capacity(level.len().div_ceil(2));
                for (k, pair) in level.chunks(2).enumerate() {
                    match pair {
                        [(lm, ls), (rm, rs)] => {
                            // Keep the left (lower) slot only if it is strictly smaller.
                            let left = b.name(&format!("worst_d{depth}_{k}_left"), lm.lt(rm));
                            let mag = b
                                .name(&format!("worst_d{depth}_{k}_mag"), Expr::mux(&left, lm, rm));
                            let slot = b.name(
                                &format!("worst_d{depth}_{k}_slot"),
                                Expr::mux(&left, ls, rs),
                            );
                            next.push((mag, slot));
                        }
                        [single] => next.push(single.clone()),
                        _ => unreachable!(),
                    }
                }
                level = next;
                depth += 1;
            }
            let (worst_mag, worst_slot) = level.pop().expect("n >= 1");
            let full = b.name("full", Expr::lit((n - 1) as u64, ib).lt(&pos));
            let replace = b.name(
                "replace",
                in_valid.land(&full).land(&worst_mag.lt(&new_mag)),
            );
            (0..n)
                .map(|i| {
                    if i + 1 == n {
                        replace.clone()
                    } else {
                        // Slot i moves when the worst slot is at or below it: worst_slot < i + 1.
                        let below = worst_slot.lt(&Expr::lit((i + 1) as u64, sb));
                        b.name(&format!("shift{i}"), replace.land(&below))
                    }
                })
                .collect()
        });

        b.comment("Control: the position counter and the result flag.");
        b.clocked(
            &clk,
            vec![when_else(
                rst.clone(),
                vec![set(&pos, Expr::zero(ib)), set(&out_valid, Expr::bit(false))],
                vec![
                    set(&out_valid, in_valid.land(&last)),
                    when(in_valid.clone(), vec![set(&pos, pos_next)]),
                ],
            )],
        );

        b.comment(
            "Slots: append while filling, else drop the worst and shift the later ones down.",
        );
        let mut data = Vec::new();
        for i in 0..n {
            let iu = i as usize;
            let append = in_valid.land(&pos.eq(&Expr::lit(i as u64, ib)));
            let fill = vec![
                set(&vals[iu], in_value.clone()),
                set(&idxs[iu], pos.clone()),
            ];
            match &shift {
                None => data.push(when(append, fill)),
                Some(shift) => {
                    let (from_val, from_idx) = if i + 1 == n {
                        (in_value.clone(), pos.clone())
                    } else {
                        (vals[iu + 1].clone(), idxs[iu + 1].clone())
                    };
                    data.push(when_else(
                        append,
                        fill,
                        vec![when(
                            shift[iu].clone(),
                            vec![set(&vals[iu], from_val), set(&idxs[iu], from_idx)],
                        )],
                    ));
                }
            }
        }
        b.clocked(&clk, data);

        b.comment("Outputs straight from the slots: valid in the out_valid cycle.");
        b.drive(
            &out_values,
            Expr::concat(vals.iter().rev().cloned().collect()),
        );
        b.drive(
            &out_indices,
            Expr::concat(idxs.iter().rev().cloned().collect()),
        );
    })
}

fn top_module(p: &SoreParams, top: &str, lane: &ModuleDef) -> ModuleDef {
    ModuleBuilder::build(top, |b| {
        b.doc(format!(
        "SORE online pruning unit: {} lanes, each keeping {} of every {} {} values (ties to the lower index).",
        p.lanes,
        p.n,
        p.m,
        p.magnitude.tag()
    ));
        b.doc(format!(
        "Latency {LATENCY} cycle from a group's last value to out_valid; one group per lane every {} cycles.",
        p.m
    ));
        b.doc("Protocol: see the generator's `engines::sore` documentation (coforge).");
        let clk = b.input(ports::CLOCK, 1, "");
        let rst = b.input(ports::RESET, 1, "synchronous, active high");
        let valid = b.input(ports::VALID, 1, "every lane takes its value this cycle");
        let values_in: Vec<Expr> = (0..p.lanes)
            .map(|l| b.input(&ports::value(l), p.value_bits, ""))
            .collect();
        let out_valid = b.output(ports::OUT_VALID, 1, "every lane shows a selection");
        let values_out: Vec<Expr> = (0..p.lanes)
            .map(|l| b.output(&ports::values(l), p.values_bits(), "slot i at [i*W +: W]"))
            .collect();
        let indices_out: Vec<Expr> = (0..p.lanes)
            .map(|l| {
                b.output(
                    &ports::indices(l),
                    p.indices_bits(),
                    "slot i at [i*IB +: IB]",
                )
            })
            .collect();

        // All lanes advance in lockstep, so lane 0's flag speaks for all; the other lanes' flags are
        // left unconnected on purpose (`unused_*` tells readers and Verilator so).
        for l in 0..p.lanes {
            let lane_valid = if l == 0 {
                out_valid.clone()
            } else {
                b.wire(&format!("unused_out_valid_lane{l}"), 1)
            };
            b.instance(
                lane,
                &format!("lane{l}"),
                vec![
                    (ports::CLOCK, clk.clone()),
                    (ports::RESET, rst.clone()),
                    ("in_valid", valid.clone()),
                    ("in_value", values_in[l as usize].clone()),
                    ("out_valid", lane_valid),
                    ("out_values", values_out[l as usize].clone()),
                    ("out_indices", indices_out[l as usize].clone()),
                ],
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::emit;

    fn text(p: &SoreParams) -> Vec<String> {
        generate(p, "sore_top")
            .unwrap()
            .modules()
            .map(|m| emit::module_file(m, "test"))
            .collect()
    }

    /// The model by hand: 2:8 with 4 lanes is 8 cycles a round, plus 1 to the last selection.
    #[test]
    fn cycle_model() {
        let p = SoreParams::fp16(4, 2, 8);
        assert_eq!(estimated_cycles(&p, 0), 0);
        assert_eq!(estimated_cycles(&p, 1), 9);
        assert_eq!(estimated_cycles(&p, 4), 9);
        assert_eq!(estimated_cycles(&p, 5), 17);
    }

    #[test]
    fn one_lane_definition_and_deterministic() {
        let p = SoreParams::fp16(4, 2, 8);
        let d = generate(&p, "sore_top").unwrap();
        let names: Vec<&str> = d.modules().map(|m| m.name()).collect();
        assert_eq!(names, ["sore_lane_fp16_n2_m8", "sore_top"]);
        assert_eq!(module_names(&p), names[..1]);
        assert!(generate(&p, "sore_lane_fp16_n2_m8").is_err());
        assert_eq!(text(&p), text(&p));
    }

    #[test]
    fn every_pattern_builds() {
        for (n, m) in [
            (1, 1),
            (1, 2),
            (2, 4),
            (4, 8),
            (2, 8),
            (1, 4),
            (1, 8),
            (1, 16),
            (3, 5),
            (8, 16),
            (16, 16),
        ] {
            text(&SoreParams::fp16(3, n, m));
            text(&SoreParams::int8(1, n, m));
        }
    }

    #[test]
    fn invalid_parameters_are_named() {
        assert!(SoreParams::fp16(0, 2, 8).validate().is_err());
        assert!(SoreParams::fp16(1, 3, 2).validate().is_err());
        assert!(SoreParams::fp16(1, 1, 17).validate().is_err());
        let mut p = SoreParams::fp16(1, 2, 4);
        p.value_bits = 8;
        assert!(p.validate().is_err());
    }
}
