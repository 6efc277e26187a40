//! The AXI wrapper of a deformable-convolution engine (`engines::deform`: mode A, plain or
//! CoDeNet, and mode B, DCNv2). Unlike the STCE and the lane engines, these engines already
//! move every stream with a valid/ready handshake and can be stalled on their output, so the
//! wrapper needs no credit rule: each engine stream becomes an AXI4-Stream port behind the
//! shared skid buffer, the result stream leaves through the shared result FIFO, and the layer's
//! sizes become AXI4-Lite registers. Both modes are described as a [`DeformEngine`] and built
//! by one function, [`deform_wrapper`].
//!
//! # Streams
//! Every beat's `TDATA` is the engine's data port(s) for that stream, packed from bit 0 up in
//! the order below and zero-padded to whole bytes, so a beat carries exactly what the bare
//! engine takes in one handshake (the engine protocol in `engines::deform` and
//! `engines::deform::dcnv2` describes the bits). No beat is ever partial (a channel group's
//! missing channels are zero lanes, as on the bare engine), so no port has `TKEEP`.
//!
//! | mode | slave ports (`TDATA`) | `m_axis_out` |
//! |---|---|---|
//! | A | `s_axis_prm` (`prm_data`, `prm_addr`, `prm_target`), `s_axis_in` (`in_data`), `s_axis_dil` (CoDeNet: `dil_data`) | `out_data` |
//! | DCNv2 | `s_axis_in` (`in_data`), `s_axis_off` (`off_data`), `s_axis_wgt` (depthwise: `wgt_data`) | `out_data` |
//!
//! - The slave ports' `TLAST` is accepted and ignored: the engine counts its beats from the
//!   layer registers.
//! - `m_axis_out_tlast` marks the job's last result: the wrapper counts results in the engine's
//!   output order (items of a pixel, pixels of a row, rows, then passes or planes) against the
//!   layer registers, which therefore must not change during a job.
//! - The data streams (all but `s_axis_prm`) reach the engine only while a job runs (from
//!   START to its last result), so beats sent before START wait in the skid buffer.
//!   `s_axis_prm` reaches the mode-A engine whenever it is idle (its `prm_ready`): send the
//!   parameters, wait for the stream to drain, then write START.
//!
//! # Back-pressure
//! The engine's `out_ready` is a register, high while the result FIFO ([`FIFO_DEPTH`] words)
//! has room for a result besides the one that may arrive in the same cycle; a slow sink stalls
//! the engine, which stalls its inputs. Every `TVALID` and `TREADY` of the wrapper is a
//! register.
//!
//! # Registers
//! The common map (`regs`): CONTROL, STATUS (bit 0 busy: a job runs or a beat is inside, 1
//! overflow: impossible by the `out_ready` rule, 2 the engine's error flag: mode A a dilation
//! outside `1..=max_dilation` or a layer the engine cannot run, DCNv2 an offset beyond
//! `max_offset`; 3 done: sticky, the job's `TLAST` result left), CYCLES (busy cycles),
//! BEATS_IN (`s_axis_in` beats, pixels, handed to the engine), BEATS_OUT, OUT_STALLS, INFO
//! (`lanes | kernel << 8 | stride << 16 | kind << 24`, kind 0 plain, 1 CoDeNet, 2 DCNv2
//! depthwise, 3 DCNv2 im2col, plus 4 with the 1x1 front); then from `regs::PARAMS` on:
//!
//! | offset | mode A | DCNv2 |
//! |---|---|---|
//! | 0x1C | START (write 1: start the layer) | START (write 1: restart the engine for a job) |
//! | 0x20 | HEIGHT (H) | HEIGHT (H) |
//! | 0x24 | WIDTH (W) | WIDTH (W) |
//! | 0x28 | GROUPS (passes G) | OUT_HEIGHT (Hout) |
//! | 0x2C | RELU (bit 0) | OUT_WIDTH (Wout) |
//! | 0x30 | IN_GROUPS (Gin; with the 1x1 front) | PLANES (planes of the job) |
//! | 0x34 | RELU_PW (bit 0; with the 1x1 front) | |
//!
//! Mode A's START pulses the engine's `start`, which samples the layer registers. The DCNv2
//! engine takes its sizes from reset to the end of a job, so its START holds the engine in
//! reset for [`super::super::deform::RESET_CYCLES`] cycles with the registers as written, and
//! the job starts from there.

use super::{
    axis_master_fifo, axis_slave, control_block, ports, reserve_param, reset_register,
    wrapper_name, Activity, ParamReg,
};
use crate::config::{DeformConfig, DeformMode};
use crate::engines::deform::{self, dcnv2};
use crate::rtl::{index_bits, set, when, when_else, Dir, Expr, ModuleBuilder, ModuleDef};

/// AXI4-Stream port names of the deformable wrappers (besides `ports::IN` and `ports::OUT`).
pub mod deform_ports {
    /// Mode A's parameter words.
    pub const PRM: &str = "s_axis_prm";
    /// CoDeNet's dilations.
    pub const DIL: &str = "s_axis_dil";
    /// DCNv2's offsets (and mask).
    pub const OFF: &str = "s_axis_off";
    /// DCNv2's depthwise weights.
    pub const WGT: &str = "s_axis_wgt";
}

/// Register offsets of the deformable wrappers (bytes), from `regs::PARAMS` on.
pub mod deform_regs {
    pub const START: u64 = 0x1C;
    pub const HEIGHT: u64 = 0x20;
    pub const WIDTH: u64 = 0x24;
    /// Mode A: passes G.
    pub const GROUPS: u64 = 0x28;
    /// Mode A.
    pub const RELU: u64 = 0x2C;
    /// Mode A with the 1x1 front.
    pub const IN_GROUPS: u64 = 0x30;
    /// Mode A with the 1x1 front.
    pub const RELU_PW: u64 = 0x34;
    /// DCNv2.
    pub const OUT_HEIGHT: u64 = 0x28;
    /// DCNv2.
    pub const OUT_WIDTH: u64 = 0x2C;
    /// DCNv2: planes of the job.
    pub const PLANES: u64 = 0x30;
    /// STATUS bit 2: the engine's error flag.
    pub const STATUS_ERROR: u32 = 1 << 2;
    /// STATUS bit 3: the job's last result left.
    pub const STATUS_DONE: u32 = 1 << 3;
}

/// Words of the result FIFO: the engine's `out_ready` register needs one word of slack, and
/// two more let the bus register and the FIFO overlap a stalled sink's handshake.
pub const FIFO_DEPTH: u32 = 4;

/// Cycles the wrapper adds to its engine's run without stalls: one at the input (the skid
/// buffer's head register) and two at the output (FIFO write, bus register), as for the other
/// wrappers.
pub const DEFORM_EXTRA_CYCLES: u64 = 3;

/// One valid/ready stream of the engine and the AXI4-Stream port that carries it.
#[derive(Clone, Debug)]
pub struct DeformStream {
    /// The AXI4-Stream port's prefix (`s_axis_in`, ...).
    pub axis: &'static str,
    pub valid: &'static str,
    pub ready: &'static str,
    /// The engine's data ports, packed from bit 0 of `TDATA` up in this order.
    pub fields: Vec<&'static str>,
    /// The stream reaches the engine only while a job runs (all but mode A's parameters).
    pub job_only: bool,
}

/// How a job starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// START pulses this engine port (mode A's `start`).
    Port(&'static str),
    /// START resets the engine (DCNv2, whose sizes are held from reset).
    Restart,
}

/// One level of the job's result order: `position` runs `0, step, 2*step, ...` while it is
/// below the register `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub limit: &'static str,
    pub step: u32,
}

/// A deformable engine as its wrapper sees it (see the module docs).
#[derive(Clone, Debug)]
pub struct DeformEngine {
    pub top: String,
    /// "mode A (plain)", ..., for the docs.
    pub kind: String,
    pub clock: &'static str,
    pub reset: &'static str,
    pub inputs: Vec<DeformStream>,
    pub output: DeformStream,
    pub start: Start,
    /// The engine's `done` (mode A): it also ends a job the engine refused (no results).
    pub done: Option<&'static str>,
    /// The engine's sticky error flag.
    pub error: &'static str,
    /// Parameter registers in order, each with the engine port it drives (none: the wrapper's
    /// own). Widths of driven ports are the engine's.
    pub params: Vec<(Option<&'static str>, ParamReg)>,
    /// Results per output pixel.
    pub items_per_pixel: u32,
    /// Output columns, rows, and passes (planes), innermost first.
    pub order: [Extent; 3],
    pub info: u32,
}

impl DeformEngine {
    /// The parameter register `name`'s offset in bytes.
    pub fn param_offset(&self, name: &str) -> Option<u64> {
        self.params
            .iter()
            .position(|(_, p)| p.name == name)
            .map(|i| super::regs::PARAMS + 4 * i as u64)
    }
}

fn reg(name: &'static str, width: u32) -> ParamReg {
    ParamReg {
        name,
        width,
        reset: 0,
        pulse: false,
    }
}

/// The engine of a `[deform]` config with top `engine` (its ports give the widths).
pub fn deform_engine(cfg: &DeformConfig, engine: &ModuleDef) -> DeformEngine {
    let width_of = |port: &str| {
        engine
            .ports()
            .iter()
            .find(|p| p.name == port)
            .unwrap_or_else(|| panic!("the deformable engine has a `{port}` port"))
            .width
    };
    let start = ParamReg {
        name: "start",
        width: 1,
        reset: 0,
        pulse: true,
    };
    let driven = |port: &'static str, name: &'static str| (Some(port), reg(name, width_of(port)));
    let out = |valid, ready, data| DeformStream {
        axis: ports::OUT,
        valid,
        ready,
        fields: vec![data],
        job_only: true,
    };
    let stream = |axis, valid, ready, data| DeformStream {
        axis,
        valid,
        ready,
        fields: vec![data],
        job_only: true,
    };
    if cfg.mode == DeformMode::Dcnv2 {
        use dcnv2::ports as p;
        let d = dcnv2::Dcnv2Params::of(cfg);
        let mut inputs = vec![
            stream(ports::IN, p::PIXEL_VALID, p::PIXEL_READY, p::PIXEL_DATA),
            stream(
                deform_ports::OFF,
                p::OFFSET_VALID,
                p::OFFSET_READY,
                p::OFFSET_DATA,
            ),
        ];
        if d.depthwise {
            inputs.push(stream(
                deform_ports::WGT,
                p::WEIGHT_VALID,
                p::WEIGHT_READY,
                p::WEIGHT_DATA,
            ));
        }
        let kind = if d.depthwise { 2 } else { 3 };
        return DeformEngine {
            top: cfg.top.clone(),
            kind: format!(
                "DCNv2 engine ({})",
                if d.depthwise { "depthwise" } else { "im2col" }
            ),
            clock: p::CLOCK,
            reset: p::RESET,
            inputs,
            output: out(p::RESULT_VALID, p::RESULT_READY, p::RESULT_DATA),
            start: Start::Restart,
            done: None,
            error: p::ERROR,
            params: vec![
                (None, start),
                driven(p::HEIGHT, "height"),
                driven(p::WIDTH, "width"),
                driven(p::OUT_HEIGHT, "out_height"),
                driven(p::OUT_WIDTH, "out_width"),
                (None, reg("planes", 16)),
            ],
            items_per_pixel: if d.depthwise { 1 } else { d.groups() },
            order: [
                Extent {
                    limit: "out_width",
                    step: 1,
                },
                Extent {
                    limit: "out_height",
                    step: 1,
                },
                Extent {
                    limit: "planes",
                    step: 1,
                },
            ],
            info: d.lanes | d.kernel << 8 | d.stride << 16 | kind << 24,
        };
    }
    use deform::ports as p;
    let mut inputs = vec![
        DeformStream {
            axis: deform_ports::PRM,
            valid: p::PRM_VALID,
            ready: p::PRM_READY,
            fields: vec![p::PRM_DATA, p::PRM_ADDR, p::PRM_TARGET],
            job_only: false,
        },
        stream(ports::IN, p::IN_VALID, p::IN_READY, p::IN_DATA),
    ];
    if cfg.mode == DeformMode::Codenet {
        inputs.push(stream(
            deform_ports::DIL,
            p::DIL_VALID,
            p::DIL_READY,
            p::DIL_DATA,
        ));
    }
    let mut params = vec![
        (None, start),
        driven(p::HEIGHT, "height"),
        driven(p::WIDTH, "width"),
        driven(p::GROUPS, "groups"),
        driven(p::RELU, "relu"),
    ];
    if cfg.has_pointwise() {
        params.push(driven(p::IN_GROUPS, "in_groups"));
        params.push(driven(p::RELU_PW, "relu_pw"));
    }
    let kind = u32::from(cfg.mode == DeformMode::Codenet) | u32::from(cfg.has_pointwise()) << 2;
    DeformEngine {
        top: cfg.top.clone(),
        kind: format!(
            "mode-A engine ({}{})",
            if cfg.mode == DeformMode::Codenet {
                "CoDeNet"
            } else {
                "plain"
            },
            if cfg.has_pointwise() {
                ", 1x1 front"
            } else {
                ""
            }
        ),
        clock: p::CLOCK,
        reset: p::RESET,
        inputs,
        output: out(p::OUT_VALID, p::OUT_READY, p::OUT_DATA),
        start: Start::Port(p::START),
        done: Some(p::DONE),
        error: p::ERROR,
        params,
        items_per_pixel: 1,
        order: [
            Extent {
                limit: "width",
                step: cfg.stride,
            },
            Extent {
                limit: "height",
                step: cfg.stride,
            },
            Extent {
                limit: "groups",
                step: 1,
            },
        ],
        info: cfg.lanes | 3 << 8 | cfg.stride << 16 | kind << 24,
    }
}

/// `(engine port, bit offset in TDATA, width)` of every field of `s`'s beats, and the width of
/// `TDATA` (whole bytes).
pub fn stream_layout(s: &DeformStream, engine: &ModuleDef) -> (Vec<(&'static str, u32, u32)>, u32) {
    let mut lo = 0;
    let fields: Vec<(&'static str, u32, u32)> = s
        .fields
        .iter()
        .map(|&name| {
            let w = engine
                .ports()
                .iter()
                .find(|p| p.name == name)
                .unwrap_or_else(|| panic!("the engine has a `{name}` port"))
                .width;
            lo += w;
            (name, lo - w, w)
        })
        .collect();
    (fields, lo.div_ceil(8) * 8)
}

/// The AXI wrapper `<top>_axi` of the deformable engine `e`, whose generated top is `engine`.
pub fn deform_wrapper(e: &DeformEngine, engine: &ModuleDef) -> ModuleDef {
    ModuleBuilder::build(wrapper_name(&e.top), |b| deform_wrapper_body(b, e, engine))
}

fn deform_wrapper_body<'id>(b: &mut ModuleBuilder<'id>, e: &DeformEngine, engine: &ModuleDef) {
    b.doc(format!(
        "AXI wrapper of the deformable {} `{}`: an AXI4-Stream port per engine stream, \
         AXI4-Lite control, status and layer registers.",
        e.kind, e.top
    ));
    b.doc("Beat layouts, job order and register map: the generator's `engines::axi::deform`.");
    let clk = b.input(ports::CLOCK, 1, "");
    let rst = reset_register(b, &clk);
    let one = |w| Expr::lit(1, w);

    // The parameter registers, reserved here so that the engine and the job order read them.
    let mut lite = Vec::new();
    let mut param_values = Vec::new();
    for (_, p) in &e.params {
        let (value, reg) = reserve_param(b, p);
        lite.push(reg);
        param_values.push(value);
    }
    let param = |name: &str| -> Expr<'id> {
        let i = e
            .params
            .iter()
            .position(|(_, p)| p.name == name)
            .unwrap_or_else(|| panic!("a parameter register `{name}`"));
        param_values[i].clone()
    };
    let start = e
        .params
        .iter()
        .position(|(_, p)| p.pulse)
        .map(|i| param_values[i].clone())
        .expect("a START register");

    // Job state: `running` from START to the job's last result; the engine's reset.
    let running = b.reg("running", 1);
    b.describe("a job runs: from START to its last result leaving (or the engine's done)");
    let eng_rst = match e.start {
        Start::Port(_) => rst.clone(),
        Start::Restart => {
            let held = b.reg("restart_held", 1);
            b.describe("START was high in the previous cycle");
            let r = b.reg("engine_rst", 1);
            b.describe("the engine's reset: the wrapper's, and two cycles after START");
            b.clocked(
                &clk,
                vec![
                    set(&held, start.land(&rst.not())),
                    set(&r, rst.lor(&start).lor(&held)),
                ],
            );
            r
        }
    };
    let flowing = b.name("job_flowing", running.land(&eng_rst.not()));

    // Input streams: a skid buffer each, the head handed to the engine.
    let mut conn: Vec<(String, Expr<'id>)> = vec![
        (e.clock.into(), clk.clone()),
        (e.reset.into(), eng_rst.clone()),
    ];
    let mut pixel_take = None;
    let mut heads = Vec::new();
    for s in &e.inputs {
        let (fields, width) = stream_layout(s, engine);
        let used: u32 = fields.iter().map(|f| f.2).sum();
        let pop = b.wire(&format!("{}_pop", s.axis), 1);
        let (head_valid, head) = axis_slave(
            b,
            &clk,
            &rst,
            s.axis,
            (width, 0),
            |b, tdata, _, tlast| {
                let mut unused = vec![tlast.clone()];
                if used < width {
                    unused.push(tdata.slice(used, width - used));
                }
                b.name(&format!("{}_unused", s.axis), Expr::concat(unused));
                tdata.slice(0, used)
            },
            &pop,
        );
        let ready = b.wire(&format!("eng_{}", s.ready), 1);
        let offer = if s.job_only {
            head_valid.land(&flowing)
        } else {
            head_valid.clone()
        };
        let offer = b.name(&format!("eng_{}", s.valid), offer);
        let take = b.name(&format!("{}_take_engine", s.axis), offer.land(&ready));
        b.drive(&pop, take.clone());
        conn.push((s.valid.into(), offer));
        conn.push((s.ready.into(), ready));
        for (name, lo, w) in fields {
            conn.push((name.into(), head.slice(lo, w)));
        }
        if s.axis == ports::IN {
            pixel_take = Some(take);
        }
        heads.push(head_valid);
    }
    if let Start::Port(port) = e.start {
        conn.push((port.into(), start.clone()));
    }
    for ((port, _), value) in e.params.iter().zip(&param_values) {
        if let Some(port) = port {
            conn.push(((*port).into(), value.clone()));
        }
    }

    // The result stream: the engine's out_ready is a register (see the module docs).
    let (out_fields, out_width) = stream_layout(&e.output, engine);
    let out_used: u32 = out_fields.iter().map(|f| f.2).sum();
    let eng_out_valid = b.wire(&format!("eng_{}", e.output.valid), 1);
    let eng_out_ready = b.reg(&format!("eng_{}", e.output.ready), 1);
    b.describe("the result FIFO has room for a result besides one arriving now");
    let mut out_parts = Vec::new();
    for (name, _, w) in &out_fields {
        let wire = b.wire(&format!("eng_{name}"), *w);
        conn.push(((*name).into(), wire.clone()));
        out_parts.push(wire);
    }
    if out_used < out_width {
        out_parts.push(Expr::zero(out_width - out_used));
    }
    out_parts.reverse();
    let out_data = Expr::concat(out_parts);
    conn.push((e.output.valid.into(), eng_out_valid.clone()));
    conn.push((e.output.ready.into(), eng_out_ready.clone()));
    let result = b.name("result", eng_out_valid.land(&eng_out_ready));

    // The engine's flags; every other output it has is left unused.
    let eng_error = b.wire("eng_error", 1);
    conn.push((e.error.into(), eng_error.clone()));
    let eng_done = e.done.map(|port| {
        let w = b.wire("eng_done", 1);
        conn.push((port.into(), w.clone()));
        w
    });
    let mut unused = Vec::new();
    for port in engine.ports().iter().filter(|p| p.dir == Dir::Output) {
        if conn.iter().any(|(n, _)| *n == port.name) {
            continue;
        }
        let w = b.wire(&format!("eng_{}", port.name), port.width);
        conn.push((port.name.clone(), w.clone()));
        unused.push(w);
    }
    if !unused.is_empty() {
        b.name("engine_unused", Expr::concat(unused));
    }
    let conn_ref: Vec<(&str, Expr<'id>)> =
        conn.iter().map(|(n, x)| (n.as_str(), x.clone())).collect();
    b.instance(engine, "engine", conn_ref);

    // The job's result order: item, column, row, pass. TLAST on the last of all.
    let mut last_of_all = Vec::new();
    let mut counters = Vec::new();
    if e.items_per_pixel > 1 {
        let w = index_bits(e.items_per_pixel);
        let item = b.reg("result_item", w);
        b.describe("the next result's item within its output pixel");
        let last = item.eq(&Expr::lit(u64::from(e.items_per_pixel - 1), w));
        counters.push((item, one(w), last.clone()));
        last_of_all.push(last);
    }
    for (ext, what) in e.order.iter().zip(["column", "row", "pass"]) {
        let limit = param(ext.limit);
        let w = limit.width() + 1;
        let pos = b.reg(&format!("result_{what}"), w);
        b.describe(&format!(
            "the next result's {what}, in steps of {} (below `{}`)",
            ext.step, ext.limit
        ));
        let step = Expr::lit(u64::from(ext.step), w);
        let last = b.name(
            &format!("result_last_{what}"),
            pos.add(&step).lt(&limit.zext(w)).not(),
        );
        counters.push((pos, step, last.clone()));
        last_of_all.push(last);
    }
    let result_last = b.name(
        "result_last",
        last_of_all
            .iter()
            .skip(1)
            .fold(last_of_all[0].clone(), |a, x| a.land(x)),
    );
    // Odometer: a level advances when every inner level is at its last position.
    let mut advance = Vec::new();
    let mut carry = result.clone();
    for (pos, step, last) in &counters {
        let zero = Expr::zero(pos.width());
        advance.push(when(
            carry.clone(),
            vec![set(pos, Expr::mux(last, &zero, &pos.add(step)))],
        ));
        carry = carry.land(last);
    }
    let clear = counters
        .iter()
        .map(|(pos, _, _)| set(pos, Expr::zero(pos.width())))
        .collect();
    b.clocked(&clk, vec![when_else(rst.lor(&start), clear, advance)]);

    let out = axis_master_fifo(
        b,
        &clk,
        &rst,
        ports::OUT,
        FIFO_DEPTH,
        &result,
        (&out_data, None, &result_last),
    );
    let fbits = out.count.width();
    let job_end = out.handshake.land(&out.last);
    // Mode A's done also ends a layer the engine refused, which gives no result.
    let stop = match &eng_done {
        Some(done) => job_end.lor(&done.land(&start.not())),
        None => job_end.clone(),
    };
    b.clocked(
        &clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&running, Expr::bit(false)),
                set(&eng_out_ready, Expr::bit(false)),
            ],
            vec![
                when_else(
                    start.clone(),
                    vec![set(&running, Expr::bit(true))],
                    vec![when(stop, vec![set(&running, Expr::bit(false))])],
                ),
                set(
                    &eng_out_ready,
                    out.count.lt(&Expr::lit(u64::from(FIFO_DEPTH - 1), fbits)),
                ),
            ],
        )],
    );

    // Control and status: busy while a job runs or a beat is inside (TVALID is high exactly
    // when the bus word waits or leaves).
    let out_valid = out.stall.lor(&out.handshake);
    let busy = heads
        .iter()
        .fold(running.lor(&out_valid), |a, h| a.lor(h))
        .lor(&out.count.ne(&Expr::zero(fbits)));
    control_block(
        b,
        &clk,
        &rst,
        Activity {
            busy,
            beat_in: pixel_take.expect("an s_axis_in stream"),
            beat_out: out.handshake,
            out_stall: out.stall,
            flags: vec![
                ("error_overflow", out.overflow),
                ("error_engine", eng_error),
                ("done", job_end),
            ],
            info: e.info,
        },
        lite,
    );
}
