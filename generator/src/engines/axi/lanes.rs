//! The AXI wrapper of a lane engine: P lanes that take one beat per cycle together (`in_valid`
//! shared), produce a result a fixed number of cycles after the beat that completes it
//! (`out_valid` shared), and cannot be stalled. The SORE ([`sore_engine`]) and the WUVE
//! ([`wuve_engine`]) are described as a [`LaneEngine`], and [`lane_wrapper`] builds either
//! wrapper from that description with the pieces every wrapper shares (the skid buffer, the
//! result FIFO with credits, the AXI4-Lite block).
//!
//! # Beats
//! - `s_axis_in`: one engine input cycle per beat. Lane l owns bytes `l*S .. l*S + S - 1` of
//!   `TDATA` (S = [`LaneLayout::slot_bytes`]): its fields from bit 0 of the slot up, in the
//!   order of [`LaneEngine::inputs`], zero-padded to whole bytes. `TKEEP` has a bit per byte;
//!   a lane is all kept or all null, and the wrapper reads the bit of the lane's first byte
//!   (the others are ignored). A null lane is fed its bytes anyway (the engine computes every
//!   lane) and its result comes out null. `TLAST` marks a job's last beat.
//! - `m_axis_out`: one result per beat, in lane slots laid out the same way
//!   ([`LaneEngine::outputs`]). A result's `TKEEP` and `TLAST` are those of the input beat that
//!   completed it.
//! - A result is completed by every `beats_per_result`-th beat after reset (the SORE: the last
//!   value of each group of M, the engine's own position counter; the WUVE: every beat). A
//!   `TLAST` on a beat that completes no result raises the sticky STATUS bit `error_last`: the
//!   job was not a whole number of groups, and the next job's groups are misaligned.
//!
//! # Back-pressure
//! As for the STCE: the result FIFO has [`LaneEngine::fifo_depth`] entries, a beat that
//! completes a result takes one credit and waits while none is left, and a result handed out
//! returns one. A slow sink stalls the input stream, never the engine.
//!
//! # Registers
//! The common map (`regs`): CONTROL, STATUS (bit 0 busy, 1 overflow, 2 order: the engine's
//! `out_valid` came in a cycle its latency does not say, 3 done: sticky, a beat with `TLAST`
//! left on `m_axis_out`, 4 (SORE) error_last), CYCLES, BEATS_IN (engine input cycles),
//! BEATS_OUT (results), OUT_STALLS, INFO; then the engine's run-time parameters from
//! `regs::PARAMS` on (the WUVE: LR at 0x1C, LAMBDA at 0x20, fp32 bit patterns, which the engine
//! needs held through a job: write them before its first beat).

use super::{
    axis_master_fifo, axis_slave, control_block, ports, reserve_param, reset_register,
    wrapper_name, Activity, ParamReg,
};
use crate::engines::sore::{self, SoreParams};
use crate::engines::wuve::{self, WuveParams};
use crate::rtl::{index_bits, set, when, when_else, Expr, ModuleBuilder, ModuleDef};

/// One field of a lane's slot: the engine port of lane l (`port(l)`) and its width.
#[derive(Clone, Copy, Debug)]
pub struct LaneField {
    pub port: fn(u32) -> String,
    pub width: u32,
}

/// Where the fields of every lane sit in a beat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaneLayout {
    pub lanes: u32,
    /// Bytes of one lane's slot.
    pub slot_bytes: u32,
    /// Each field's `(bit offset in the slot, width)`.
    pub fields: Vec<(u32, u32)>,
}

impl LaneLayout {
    pub fn of(lanes: u32, fields: &[LaneField]) -> LaneLayout {
        let mut lo = 0;
        let fields: Vec<(u32, u32)> = fields
            .iter()
            .map(|f| {
                let at = (lo, f.width);
                lo += f.width;
                at
            })
            .collect();
        LaneLayout {
            lanes,
            slot_bytes: lo.div_ceil(8),
            fields,
        }
    }

    /// Bits of the fields of one lane, before padding.
    pub fn used_bits(&self) -> u32 {
        self.fields.iter().map(|f| f.1).sum()
    }

    /// Width of `TDATA`.
    pub fn data_bits(&self) -> u32 {
        self.lanes * self.slot_bytes * 8
    }

    /// Width of `TKEEP`.
    pub fn keep_bits(&self) -> u32 {
        self.lanes * self.slot_bytes
    }

    /// Bit offset in `TDATA` of `field` of `lane`.
    pub fn lo(&self, lane: u32, field: usize) -> u32 {
        lane * self.slot_bytes * 8 + self.fields[field].0
    }
}

/// A lane engine as its wrapper sees it (see the module docs).
#[derive(Clone, Debug)]
pub struct LaneEngine {
    pub top: String,
    /// "SORE" or "WUVE", for the docs.
    pub kind: &'static str,
    pub lanes: u32,
    pub clock: &'static str,
    pub reset: &'static str,
    pub valid: &'static str,
    pub out_valid: &'static str,
    pub inputs: Vec<LaneField>,
    pub outputs: Vec<LaneField>,
    /// Input beats per result (every one of them completes a result when 1).
    pub beats_per_result: u32,
    /// Cycles from the input cycle of a result's completing beat to its `out_valid`.
    pub latency: u64,
    /// Engine ports driven by run-time parameter registers, in register order.
    pub params: Vec<(&'static str, ParamReg)>,
    /// The INFO register.
    pub info: u32,
}

/// Cycles a lane wrapper adds to its engine's `estimated_cycles` without stalls: one at the
/// input (the skid buffer's head register) and two at the output (FIFO write, bus register),
/// as for the STCE ([`super::STCE_EXTRA_CYCLES`]).
pub const LANE_EXTRA_CYCLES: u64 = 3;

impl LaneEngine {
    pub fn in_layout(&self) -> LaneLayout {
        LaneLayout::of(self.lanes, &self.inputs)
    }

    pub fn out_layout(&self) -> LaneLayout {
        LaneLayout::of(self.lanes, &self.outputs)
    }

    /// Results the FIFO holds: a result's credit comes back at most `latency + 3` cycles after
    /// its completing beat (engine, FIFO write, bus register, handshake) and results are at
    /// least `beats_per_result` cycles apart, so this many credits cost no throughput when the
    /// sink takes a beat every cycle. A power of two (pointer wrap).
    pub fn fifo_depth(&self) -> u32 {
        let turnaround = self.latency + 3;
        let results = turnaround.div_ceil(u64::from(self.beats_per_result)) + 1;
        (results as u32).next_power_of_two().max(2)
    }
}

/// The SORE of `p` with top `top`: one value per lane per beat, a selection (N values and their
/// N indices) per group of M beats. INFO: lanes | N << 8 | M << 16 | value bits << 24.
pub fn sore_engine(p: &SoreParams, top: &str) -> LaneEngine {
    LaneEngine {
        top: top.to_string(),
        kind: "SORE",
        lanes: p.lanes,
        clock: sore::ports::CLOCK,
        reset: sore::ports::RESET,
        valid: sore::ports::VALID,
        out_valid: sore::ports::OUT_VALID,
        inputs: vec![LaneField {
            port: sore::ports::value,
            width: p.value_bits,
        }],
        outputs: vec![
            LaneField {
                port: sore::ports::values,
                width: p.values_bits(),
            },
            LaneField {
                port: sore::ports::indices,
                width: p.indices_bits(),
            },
        ],
        beats_per_result: p.m,
        latency: sore::LATENCY,
        params: Vec::new(),
        info: p.lanes | p.n << 8 | p.m << 16 | p.value_bits << 24,
    }
}

/// The WUVE of `p` with top `top`: (w32, dw, keep) per lane per beat, (w32', w16') per lane per
/// result; `lr` and `lambda` are registers LR (0x1C) and LAMBDA (0x20). INFO: lanes.
pub fn wuve_engine(p: &WuveParams, top: &str) -> LaneEngine {
    let fp32 = |name| ParamReg {
        name,
        width: 32,
        reset: 0,
        pulse: false,
    };
    LaneEngine {
        top: top.to_string(),
        kind: "WUVE",
        lanes: p.lanes,
        clock: wuve::ports::CLOCK,
        reset: wuve::ports::RESET,
        valid: wuve::ports::VALID,
        out_valid: wuve::ports::OUT_VALID,
        inputs: vec![
            LaneField {
                port: wuve::ports::w32,
                width: 32,
            },
            LaneField {
                port: wuve::ports::dw,
                width: 32,
            },
            LaneField {
                port: wuve::ports::keep,
                width: 1,
            },
        ],
        outputs: vec![
            LaneField {
                port: wuve::ports::w32_next,
                width: 32,
            },
            LaneField {
                port: wuve::ports::w16_next,
                width: 16,
            },
        ],
        beats_per_result: 1,
        latency: wuve::latency(p),
        params: vec![
            (wuve::ports::LR, fp32("lr")),
            (wuve::ports::LAMBDA, fp32("lambda")),
        ],
        info: p.lanes,
    }
}

/// The AXI wrapper `<top>_axi` of the lane engine `e`, whose generated top is `engine`.
pub fn lane_wrapper(e: &LaneEngine, engine: &ModuleDef) -> ModuleDef {
    let lanes = e.lanes;
    ModuleBuilder::build(wrapper_name(&e.top), |b| {
        b.doc(format!(
            "AXI wrapper of the {} `{}`: AXI4-Stream in (one engine input cycle per beat, a slot \
         per lane), AXI4-Stream out (one result per beat), AXI4-Lite control and status.",
            e.kind, e.top
        ));
        b.doc("Beat layouts, back-pressure rule and register map: the generator's `engines::axi`.");
        let clk = b.input(ports::CLOCK, 1, "");
        let rst = reset_register(b, &clk);

        // Input stream: the payload is {tlast, lane keep bits, lane fields}, lane 0 lowest.
        let inl = e.in_layout();
        let used = inl.used_bits();
        let slot_bits = inl.slot_bytes * 8;
        let pop = b.wire("in_pop", 1);
        let (head_valid, head) = axis_slave(
            b,
            &clk,
            &rst,
            ports::IN,
            (inl.data_bits(), inl.keep_bits()),
            |b, tdata, tkeep, tlast| {
                let tkeep = tkeep.expect("a lane stream has TKEEP");
                let (mut data, mut keep, mut unused) = (Vec::new(), Vec::new(), Vec::new());
                for l in (0..lanes).rev() {
                    data.push(tdata.slice(l * slot_bits, used));
                    keep.push(tkeep.bit_at(l * inl.slot_bytes));
                    if used < slot_bits {
                        unused.push(tdata.slice(l * slot_bits + used, slot_bits - used));
                    }
                    if inl.slot_bytes > 1 {
                        unused.push(tkeep.slice(l * inl.slot_bytes + 1, inl.slot_bytes - 1));
                    }
                }
                if !unused.is_empty() {
                    b.name(&format!("{}_unused", ports::IN), Expr::concat(unused));
                }
                let mut beat = vec![tlast.clone()];
                beat.extend(keep);
                beat.extend(data);
                Expr::concat(beat)
            },
            &pop,
        );
        let head_keep = head.slice(lanes * used, lanes);
        let head_last = head.bit_at(lanes * used + lanes);

        // Which beat completes a result, and the credits it needs.
        let depth = e.fifo_depth();
        let cbits = index_bits(depth + 1);
        let credits = b.reg("credits", cbits);
        b.describe("FIFO entries neither holding a result nor reserved for one in flight");
        let bpr = e.beats_per_result;
        let position = (bpr > 1).then(|| {
            let pos = b.reg("position", index_bits(bpr));
            b.describe("the engine's position in its group: the beat it takes next");
            pos
        });
        let completing = position.as_ref().map(|pos| {
            b.name(
                "completing",
                pos.eq(&Expr::lit(u64::from(bpr - 1), pos.width())),
            )
        });
        let has_credit = credits.ne(&Expr::zero(cbits));
        let may_issue = match &completing {
            Some(c) => c.not().lor(&has_credit),
            None => has_credit,
        };
        let issue = b.name("issue", head_valid.land(&may_issue));
        b.drive(&pop, issue.clone());
        let issue_result = match &completing {
            Some(c) => b.name("issue_result", issue.land(c)),
            None => issue.clone(),
        };

        // The engine.
        let eng_out_valid = b.wire("eng_out_valid", 1);
        let mut conn: Vec<(String, Expr)> = vec![
            (e.clock.into(), clk.clone()),
            (e.reset.into(), rst.clone()),
            (e.valid.into(), issue.clone()),
            (e.out_valid.into(), eng_out_valid.clone()),
        ];
        let mut params = Vec::new();
        for (port, p) in &e.params {
            let (value, reg) = reserve_param(b, p);
            conn.push((port.to_string(), value));
            params.push(reg);
        }
        for l in 0..lanes {
            for (f, (lo, w)) in e.inputs.iter().zip(&inl.fields) {
                conn.push(((f.port)(l), head.slice(l * used + lo, *w)));
            }
        }
        let outl = e.out_layout();
        let out_slot_bits = outl.slot_bytes * 8;
        let mut slots = Vec::new();
        for l in (0..lanes).rev() {
            let mut slot = Vec::new();
            if outl.used_bits() < out_slot_bits {
                slot.push(Expr::zero(out_slot_bits - outl.used_bits()));
            }
            for f in e.outputs.iter().rev() {
                let name = (f.port)(l);
                let wire = b.wire(&format!("eng_{name}"), f.width);
                conn.push((name, wire.clone()));
                slot.push(wire);
            }
            slots.extend(slot);
        }
        let conn_ref: Vec<(&str, Expr)> =
            conn.iter().map(|(n, e)| (n.as_str(), e.clone())).collect();
        b.instance(engine, "engine", conn_ref);

        // The completing beat's {valid, tlast, lane keep bits}, delayed by the engine's latency.
        let tag_bits = lanes + 2;
        let mut tag = Expr::concat(vec![issue_result.clone(), head_last.clone(), head_keep]);
        for i in 0..e.latency {
            let r = b.reg(&format!("result_tag{i}"), tag_bits);
            b.describe(&format!(
                "{{valid, tlast, lane keep}} of the completing beat taken {} cycle(s) ago",
                i + 1
            ));
            b.clocked(
                &clk,
                vec![when_else(
                    rst.clone(),
                    vec![set(&r, Expr::zero(tag_bits))],
                    vec![set(&r, tag)],
                )],
            );
            tag = r;
        }
        let order_now = b.name("order_now", eng_out_valid.ne(&tag.bit_at(lanes + 1)));
        let out_keep = Expr::concat(
            (0..lanes)
                .rev()
                .map(|l| tag.bit_at(l).repeat(outl.slot_bytes))
                .collect(),
        );
        let out = axis_master_fifo(
            b,
            &clk,
            &rst,
            ports::OUT,
            depth,
            &eng_out_valid,
            (&Expr::concat(slots), Some(&out_keep), &tag.bit_at(lanes)),
        );

        let one = |w| Expr::lit(1, w);
        let mut update = vec![set(
            &credits,
            Expr::mux(&issue_result, &credits.sub(&one(cbits)), &credits)
                .add(&out.handshake.zext(cbits)),
        )];
        let mut reset = vec![set(&credits, Expr::lit(u64::from(depth), cbits))];
        if let (Some(pos), Some(c)) = (&position, &completing) {
            let w = pos.width();
            update.push(when(
                issue.clone(),
                vec![set(pos, Expr::mux(c, &Expr::zero(w), &pos.add(&one(w))))],
            ));
            reset.push(set(pos, Expr::zero(w)));
        }
        b.clocked(&clk, vec![when_else(rst.clone(), reset, update)]);

        // Control and status.
        let mut busy = head_valid
            .lor(&credits.ne(&Expr::lit(u64::from(depth), cbits)))
            .lor(&out.count.ne(&Expr::zero(out.count.width())));
        if let Some(pos) = &position {
            busy = busy.lor(&pos.ne(&Expr::zero(pos.width())));
        }
        let mut flags = vec![
            ("error_overflow", out.overflow),
            ("error_order", order_now),
            ("done", out.handshake.land(&out.last)),
        ];
        if let Some(c) = &completing {
            flags.push(("error_last", issue.land(&head_last).land(&c.not())));
        }
        control_block(
            b,
            &clk,
            &rst,
            Activity {
                busy,
                beat_in: issue,
                beat_out: out.handshake,
                out_stall: out.stall,
                flags,
                info: e.info,
            },
            params,
        );
    })
}
