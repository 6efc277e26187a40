//! Mode A of the deformable-convolution engine (plain and CoDeNet): the line buffer, the
//! 9-tap depthwise unit, the optional 1x1 front and the quantizers. The protocol is in the
//! parent module; the names below follow it.

use super::{param_target, ports, HEIGHT_BITS};
use crate::config::{DeformConfig, DeformMode};
use crate::rtl::{
    index_bits, set, when, when_else, Design, DesignError, Expr, ExprNode, ModuleBuilder,
    ModuleDef, Stmt,
};

/// Bits of the quantizer's input sum (`sparse_kernels::deform::codenet::ACC_BITS`).
const ACC_BITS: u32 = 24;
/// Bits of the column counters and of the layer width port (widths are at most 4096).
const COL_BITS: u32 = 13;
/// Coordinate arithmetic: a row or column plus a dilation never overflows this.
const COORD_BITS: u32 = HEIGHT_BITS + 1;
/// Bits of the rows-ahead counters (at most dmax + 3 <= 67).
const LEAD_BITS: u32 = 8;

/// The modules the engine instantiates, leaves of the top.
fn leaves(cfg: &DeformConfig) -> (ModuleDef, Rams) {
    let groups = cfg.max_groups().max(2);
    let rams = Rams {
        line: ram(8 * cfg.lanes, cfg.line_buffer_rows() * cfg.max_width),
        tap: ram(4 * cfg.lanes, groups),
        quant: ram(16 * cfg.lanes, groups),
        pw: cfg
            .has_pointwise()
            .then(|| ram(4 * cfg.lanes, (cfg.max_groups() * cfg.max_groups()).max(2))),
    };
    (quantizer(), rams)
}

pub(super) fn module_names(cfg: &DeformConfig) -> Vec<String> {
    let (quant, rams) = leaves(cfg);
    rams.with(&quant).map(|m| m.name().to_string()).collect()
}

pub(super) fn generate(cfg: &DeformConfig) -> Result<Design, DesignError> {
    let (quant, rams) = leaves(cfg);
    let mut design = Design::new();
    for leaf in rams.with(&quant) {
        design.add(leaf.clone())?;
    }
    design.add(top(cfg, &quant, &rams))?;
    Ok(design)
}

/// A simple dual-port RAM: one write port, one registered read port that holds its word while
/// `rd_en` is low, no reset. This is the template Vivado and Yosys infer as block RAM (or LUT
/// RAM when small); reading the word being written gives the old word.
pub(super) fn ram(width: u32, depth: u32) -> ModuleDef {
    let ab = index_bits(depth);
    ModuleBuilder::build(format!("deform_ram_w{width}_d{depth}"), |b| {
        b.doc(format!(
        "Simple dual-port RAM, {depth} words of {width} bits: one write port, one registered read port."
    ));
        let clk = b.input(ports::CLOCK, 1, "");
        let wr_en = b.input("wr_en", 1, "write `wr_data` at `wr_addr` at the clock edge");
        let wr_addr = b.input("wr_addr", ab, "");
        let wr_data = b.input("wr_data", width, "");
        let rd_en = b.input(
            "rd_en",
            1,
            "load `rd_data` from `rd_addr`; hold it when low",
        );
        let rd_addr = b.input("rd_addr", ab, "");
        let rd_data = b.output_reg(
            "rd_data",
            width,
            "the word at `rd_addr` of the last enabled cycle",
        );
        let words = b.memory("words", width, depth);
        b.memory_write(&clk, &words, &wr_en, &wr_addr, &wr_data);
        b.memory_read(&clk, &words, &rd_data, &rd_en, &rd_addr);
    })
}

/// The CoDeNet quantizer of one lane, combinational (`codenet::quantize`):
/// `p = acc*scale + 2^15; q = (p >> 16) + bias; relu: q = max(q, 0); q -= 128; clamp to int8`.
fn quantizer() -> ModuleDef {
    ModuleBuilder::build("deform_quantizer", |b| {
        b.doc("CoDeNet quantizer of one lane: p = acc*scale + 2^15; q = (p >>> 16) + bias;");
        b.doc("if relu, q = max(q, 0); q = q - 128; clamp q to [-128, 127].");
        let acc = b.input("acc", ACC_BITS, "exact sum, two's complement");
        let scale = b.input("scale", 16, "int16");
        let bias = b.input("bias", 16, "int16");
        let relu = b.input("relu", 1, "");
        let q = b.output("q", 8, "int8");
        // |acc| < 2^23 and |scale| <= 2^15, so the product and the rounding term fit 40 bits.
        let product = b.name("product", acc.sext(40).mul(&scale.sext(40)));
        let rounded = b.name("rounded", product.add(&Expr::lit(1 << 15, 40)));
        // Taking bits [39:16] is the arithmetic shift right by 16 (floor).
        let shifted = rounded.slice(16, 24);
        // The fraction the shift drops; the name tells Verilator's lint that dropping it is meant.
        b.name("unused_fraction", rounded.slice(0, 16));
        let biased = b.name("biased", shifted.sext(25).add(&bias.sext(25)));
        let negative = biased.msb();
        let rectified = b.name(
            "rectified",
            Expr::mux(&relu.and(&negative), &Expr::zero(25), &biased),
        );
        let offset = b.name("offset", rectified.sub(&Expr::lit(128, 25)));
        // In range exactly when bits [24:7] are all equal (all ones or all zeros).
        let high = offset.slice(7, 18);
        let in_range = b.name("in_range", high.all().or(&high.any().not()));
        let saturated = Expr::mux(&offset.msb(), &Expr::lit(0x80, 8), &Expr::lit(0x7f, 8));
        b.drive(&q, Expr::mux(&in_range, &offset.slice(0, 8), &saturated));
        let _ = q;
    })
}

struct Rams {
    line: ModuleDef,
    tap: ModuleDef,
    quant: ModuleDef,
    pw: Option<ModuleDef>,
}

impl Rams {
    /// The engine's leaf modules, `quantizer` first, then the RAMs: what the top instantiates.
    fn with<'a>(&'a self, quantizer: &'a ModuleDef) -> impl Iterator<Item = &'a ModuleDef> {
        [
            Some(quantizer),
            Some(&self.line),
            Some(&self.tap),
            Some(&self.quant),
            self.pw.as_ref(),
        ]
        .into_iter()
        .flatten()
    }
}

/// One quantizer instance per lane (`<prefix>_quantizer<l>`, output `<prefix>_q<l>`): lane l takes
/// `[24l +: 24]` of the sums and `[16l +: 16]` of the scales and biases. Returns the quantized
/// pixel, lane l at `[8l +: 8]`.
fn quantizer_lanes<'id>(
    b: &mut ModuleBuilder<'id>,
    quant: &ModuleDef,
    prefix: &str,
    lanes: u32,
    [acc, scale, bias]: [&Expr<'id>; 3],
    relu: &Expr<'id>,
) -> Expr<'id> {
    let mut qs = Vec::new();
    for l in 0..lanes {
        let q = b.wire(&format!("{prefix}_q{l}"), 8);
        b.instance(
            quant,
            &format!("{prefix}_quantizer{l}"),
            vec![
                ("acc", acc.slice(ACC_BITS * l, ACC_BITS)),
                ("scale", scale.slice(16 * l, 16)),
                ("bias", bias.slice(16 * l, 16)),
                ("relu", relu.clone()),
                ("q", q.clone()),
            ],
        );
        qs.push(q);
    }
    qs.reverse();
    Expr::concat(qs)
}

/// `a >= b`, unsigned.
fn ge<'id>(a: &Expr<'id>, b: &Expr<'id>) -> Expr<'id> {
    a.lt(b).not()
}

fn lit<'id>(value: u64, width: u32) -> Expr<'id> {
    Expr::lit(value, width)
}

/// Connects one RAM instance.
#[allow(clippy::too_many_arguments)]
fn ram_instance<'id>(
    b: &mut ModuleBuilder<'id>,
    def: &ModuleDef,
    name: &str,
    clk: &Expr<'id>,
    wr: (&Expr<'id>, &Expr<'id>, &Expr<'id>),
    rd_en: &Expr<'id>,
    rd_addr: Expr<'id>,
    rd_data: &Expr<'id>,
) {
    b.instance(
        def,
        name,
        vec![
            (ports::CLOCK, clk.clone()),
            ("wr_en", wr.0.clone()),
            ("wr_addr", wr.1.clone()),
            ("wr_data", wr.2.clone()),
            ("rd_en", rd_en.clone()),
            ("rd_addr", rd_addr),
            ("rd_data", rd_data.clone()),
        ],
    );
}

fn addr_bits(def: &ModuleDef) -> u32 {
    def.ports()
        .iter()
        .find(|p| p.name == "wr_addr")
        .expect("RAMs have a write address")
        .width
}

/// `value` resized to `width` bits (zero-extended, or its low bits).
fn fit<'id>(b: &mut ModuleBuilder<'id>, name: &str, value: &Expr<'id>, width: u32) -> Expr<'id> {
    match value.width() {
        w if w == width => value.clone(),
        w if w < width => value.zext(width),
        _ if matches!(value.node(), ExprNode::Ref { .. } | ExprNode::Const { .. }) => {
            value.slice(0, width)
        }
        _ => {
            let named = b.name(name, value.clone());
            named.slice(0, width)
        }
    }
}

fn top(cfg: &DeformConfig, quant: &ModuleDef, rams: &Rams) -> ModuleDef {
    ModuleBuilder::build(cfg.top.clone(), |b| top_body(b, cfg, quant, rams))
}

/// The contents of [`top`]'s module, described with its builder.
fn top_body<'id>(b: &mut ModuleBuilder<'id>, cfg: &DeformConfig, quant: &ModuleDef, rams: &Rams) {
    let lanes = cfg.lanes;
    let dmax = cfg.dmax();
    let rows = cfg.line_buffer_rows();
    let stride = cfg.stride;
    let pointwise = cfg.has_pointwise();
    let codenet = cfg.mode == DeformMode::Codenet;
    let max_groups = cfg.max_groups();
    // Counts of groups (1..=max_groups) and group indices (0..max_groups).
    let group_bits = index_bits(max_groups + 1);
    let gi = index_bits(max_groups);
    let slot_bits = index_bits(rows);
    let beat = 8 * lanes;
    let prm_bits = 16 * lanes;
    let target_bits = if pointwise {
        index_bits(param_target::PW_LANE0 + lanes)
    } else {
        index_bits(param_target::DW_BIAS + 1)
    };
    let pw_addr_bits = rams.pw.as_ref().map_or(0, addr_bits);
    let prm_addr_bits = addr_bits(&rams.quant).max(pw_addr_bits);

    b.doc(format!(
        "Deformable-convolution engine, mode A ({}): {lanes} lanes, images up to {} pixels wide,",
        if codenet {
            "CoDeNet, per-pixel dilation"
        } else {
            "plain, dilation 1"
        },
        cfg.max_width
    ));
    b.doc(format!(
        "dilation up to {dmax} ({rows}-row line buffer), stride {stride}, up to {max_groups} channel groups{}.",
        if pointwise { ", 1x1 front" } else { "" }
    ));
    b.doc("Protocol: see the generator's `engines::deform` documentation (coforge).");

    let clk = b.input(ports::CLOCK, 1, "");
    let rst = b.input(ports::RESET, 1, "synchronous, active high");
    let prm_valid = b.input(ports::PRM_VALID, 1, "a parameter word is offered");
    let prm_ready = b.output(ports::PRM_READY, 1, "parameters are taken while idle");
    let prm_target = b.input(ports::PRM_TARGET, target_bits, "which memory");
    let prm_addr = b.input(ports::PRM_ADDR, prm_addr_bits, "word in that memory");
    let prm_data = b.input(ports::PRM_DATA, prm_bits, "word, in the low bits");
    let start = b.input(ports::START, 1, "begin a layer (sampled while idle)");
    let layer_height = b.input(ports::HEIGHT, HEIGHT_BITS, "H");
    let layer_width = b.input(ports::WIDTH, COL_BITS, "W");
    let layer_groups = b.input(ports::GROUPS, group_bits, "passes G");
    let layer_in_groups =
        pointwise.then(|| b.input(ports::IN_GROUPS, group_bits, "beats per pixel Gin"));
    let layer_relu = b.input(ports::RELU, 1, "relu in the depthwise quantizer");
    let layer_relu_pw = pointwise.then(|| b.input(ports::RELU_PW, 1, "relu in the 1x1 quantizer"));
    let in_valid = b.input(ports::IN_VALID, 1, "");
    let in_ready = b.output(ports::IN_READY, 1, "");
    let in_data = b.input(
        ports::IN_DATA,
        beat,
        "lanes of one pixel, lane i at [8i +: 8]",
    );
    let dil = codenet.then(|| {
        (
            b.input(ports::DIL_VALID, 1, ""),
            b.output(ports::DIL_READY, 1, ""),
            b.input(
                ports::DIL_DATA,
                8,
                "uint8 dilation of the next output pixel",
            ),
        )
    });
    let out_valid = b.output_reg(ports::OUT_VALID, 1, "");
    let out_ready = b.input(ports::OUT_READY, 1, "");
    let out_data = b.output_reg(ports::OUT_DATA, beat, "int8 results, lane i at [8i +: 8]");
    let busy = b.output_reg(ports::BUSY, 1, "a layer is running");
    let done = b.output_reg(ports::DONE, 1, "the last result was taken");
    let error = b.output_reg(ports::ERROR, 1, "sticky: see the protocol");

    // ---- Layer registers, sampled at start.
    let height = b.reg("height", HEIGHT_BITS);
    let width = b.reg("width", COL_BITS);
    let groups = b.reg("groups", group_bits);
    let in_groups = pointwise.then(|| b.reg("in_groups", group_bits));
    let relu = b.reg("relu", 1);
    let relu_pw = pointwise.then(|| b.reg("relu_pw", 1));

    // ---- Reader (issue stage) state.
    let rd_group = b.reg("rd_group", gi);
    b.describe("pass of the next output");
    let rd_row = b.reg("rd_row", HEIGHT_BITS);
    b.describe("centre row s*oy of the next output");
    let rd_col = b.reg("rd_col", COL_BITS);
    b.describe("centre column s*ox of the next output");
    let rd_slot = b.reg("rd_slot", slot_bits);
    b.describe("line-buffer row slot of rd_row");
    let rd_finished = b.reg("rd_finished", 1);
    b.describe("every output of the layer is issued");
    let lead = b.reg("lead", LEAD_BITS);
    b.describe("rows written in full, counted from rd_row's row (global across passes)");
    // ---- Writer (line-buffer write side) state.
    let wr_col = b.reg("wr_col", COL_BITS);
    b.describe("pixels written in the row being written");
    let wr_slot = b.reg("wr_slot", slot_bits);
    // ---- Loader (input acceptance) state.
    let ld_group = b.reg("ld_group", gi);
    let ld_row = b.reg("ld_row", HEIGHT_BITS);
    let ld_col = b.reg("ld_col", COL_BITS);
    let ld_finished = b.reg("ld_finished", 1);
    b.describe("every pixel beat of the layer is taken");
    let ld_sub = pointwise.then(|| b.reg("ld_in_group", gi));
    let ld_lead = pointwise.then(|| b.reg("ld_lead", LEAD_BITS));
    // ---- Tap pipeline valid bits and the row step of the output in stage 1.
    let v1 = b.reg("s1_valid", 1);
    let step1 = b.reg("s1_row_step", 2);
    b.describe("how far rd_row moved when the stage-1 output was issued");
    let v2 = b.reg("s2_valid", 1);
    let v3 = b.reg("s3_valid", 1);

    let zero_h = Expr::zero(HEIGHT_BITS);
    let one = |w| lit(1, w);
    let advance = b.name("advance", out_valid.not().or(&out_ready));

    // ---- Parameter load.
    let idle = busy.not();
    b.drive(&prm_ready, idle.clone());
    let prm_take = b.name("prm_take", prm_valid.and(&idle));
    let target_is = |b: &mut ModuleBuilder<'id>, name: &str, t: u32| {
        b.name(
            name,
            prm_take.and(&prm_target.eq(&lit(u64::from(t), target_bits))),
        )
    };

    // ---- Start.
    let start_now = b.name("start_now", start.and(&idle));
    let width_ok = layer_width
        .ne(&Expr::zero(COL_BITS))
        .and(&ge(&lit(u64::from(cfg.max_width), COL_BITS), &layer_width));
    // The upper bound is left out when the port cannot exceed it (a constant comparison).
    let groups_ok = |g: &Expr<'id>| {
        let nonzero = g.ne(&Expr::zero(group_bits));
        if u64::from(max_groups) == (1u64 << group_bits) - 1 {
            nonzero
        } else {
            nonzero.and(&ge(&lit(u64::from(max_groups), group_bits), g))
        }
    };
    let mut shape_ok = width_ok
        .and(&layer_height.ne(&zero_h))
        .and(&groups_ok(&layer_groups));
    if let Some(gin) = &layer_in_groups {
        shape_ok = shape_ok.and(&groups_ok(gin));
    }
    let shape_ok = b.name("shape_ok", shape_ok);

    // ---- Loader: which beat comes next, and may it be taken?
    let last_col = |b: &mut ModuleBuilder<'id>, name: &str, col: &Expr<'id>| {
        b.name(name, col.add(&one(COL_BITS)).eq(&width))
    };
    let ld_last_col = last_col(b, "ld_last_col", &ld_col);
    let ld_last_sub = match (&ld_sub, &in_groups) {
        (Some(sub), Some(gin)) => b.name(
            "ld_last_in_group",
            sub.zext(group_bits).add(&one(group_bits)).eq(gin),
        ),
        _ => Expr::bit(true),
    };
    let ld_lead_now = ld_lead.clone().unwrap_or_else(|| lead.clone());
    // A row replaces the row R rows above it, last read by outputs centred dmax rows below
    // that; the output in stage 1 has not read yet, so its row counts as still needed.
    let pending_step = b.name(
        "pending_row_step",
        Expr::mux(&v1, &step1, &Expr::zero(2)).zext(LEAD_BITS),
    );
    let may_load = b.name(
        "may_load",
        ld_lead_now
            .add(&pending_step)
            .lt(&lit(u64::from(rows - dmax), LEAD_BITS)),
    );
    let in_ready_now = b.name("in_ready_now", busy.and(&ld_finished.not()).and(&may_load));
    b.drive(&in_ready, in_ready_now.clone());
    let take = b.name("take", in_valid.and(&in_ready_now));

    // ---- The 1x1 front (optional): accumulate Gin beats, quantize, then write.
    let (wr_en, wr_data) = match (&rams.pw, &ld_sub, &in_groups, &relu_pw) {
        (Some(pw_ram), Some(sub), Some(_), Some(relu_pw)) => {
            let pw_ab = addr_bits(pw_ram);
            let x1 = b.reg("pw_x", beat);
            let pv1 = b.reg("pw_s1_valid", 1);
            let first1 = b.reg("pw_s1_first", 1);
            let last1 = b.reg("pw_s1_last", 1);
            let group1 = b.reg("pw_s1_group", gi);
            let acc = b.reg("pw_acc", lanes * ACC_BITS);
            b.describe("running 1x1 sums of the pixel, lane o at [24o +: 24]");
            let pv2 = b.reg("pw_s2_valid", 1);
            let acc2 = b.reg("pw_s2_sum", lanes * ACC_BITS);
            let wv3 = b.reg("pw_s3_valid", 1);
            let wbeat3 = b.reg("pw_s3_pixel", beat);
            // Weight word of (gout, gin): gout * max_groups + gin.
            let out_group = fit(b, "ld_group_wide", &ld_group, pw_ab);
            let in_group = fit(b, "ld_in_group_wide", sub, pw_ab);
            let pw_addr = b.name(
                "pw_addr",
                out_group
                    .mul(&lit(u64::from(max_groups), pw_ab))
                    .add(&in_group),
            );
            let prm_pw_addr = fit(b, "prm_addr_pw", &prm_addr, pw_ab);
            let prm_w = prm_data.slice(0, 4 * lanes);
            let mut sums = Vec::new();
            for o in 0..lanes {
                let we = target_is(b, &format!("prm_pw_lane{o}"), param_target::PW_LANE0 + o);
                let w = b.wire(&format!("pw_w{o}"), 4 * lanes);
                ram_instance(
                    b,
                    pw_ram,
                    &format!("pw_weights{o}"),
                    &clk,
                    (&we, &prm_pw_addr, &prm_w),
                    &Expr::bit(true),
                    pw_addr.clone(),
                    &w,
                );
                let products: Vec<Expr> = (0..lanes)
                    .map(|i| {
                        let xi = x1.slice(8 * i, 8).sext(ACC_BITS);
                        let wi = w.slice(4 * i, 4).sext(ACC_BITS);
                        xi.mul(&wi)
                    })
                    .collect();
                let sum = products
                    .into_iter()
                    .reduce(|a, p| a.add(&p))
                    .expect("at least one lane");
                let base = Expr::mux(
                    &first1,
                    &Expr::zero(ACC_BITS),
                    &acc.slice(ACC_BITS * o, ACC_BITS),
                );
                sums.push(b.name(&format!("pw_sum{o}"), base.add(&sum)));
            }
            sums.reverse();
            let acc_next = b.name("pw_acc_next", Expr::concat(sums));
            let scale2 = b.wire("pw_scale", prm_bits);
            let bias2 = b.wire("pw_bias", prm_bits);
            let qab = addr_bits(&rams.quant);
            let prm_q_addr = fit(b, "prm_addr_pw_quant", &prm_addr, qab);
            for (reg, t, name) in [
                (&scale2, param_target::PW_SCALE, "pw_scales"),
                (&bias2, param_target::PW_BIAS, "pw_biases"),
            ] {
                let we = target_is(b, &format!("prm_{name}"), t);
                let addr = fit(b, &format!("{name}_addr"), &group1, qab);
                ram_instance(
                    b,
                    &rams.quant,
                    name,
                    &clk,
                    (&we, &prm_q_addr, &prm_data),
                    &pv1,
                    addr,
                    reg,
                );
            }
            let pixel = quantizer_lanes(b, quant, "pw", lanes, [&acc2, &scale2, &bias2], relu_pw);
            let pixel = b.name("pw_pixel", pixel);
            b.comment(
                "1x1 front: beat and weights (stage 1), sums (stage 2), quantized pixel (stage 3).",
            );
            b.clocked(
                &clk,
                vec![when_else(
                    rst.clone(),
                    vec![
                        set(&pv1, Expr::bit(false)),
                        set(&pv2, Expr::bit(false)),
                        set(&wv3, Expr::bit(false)),
                    ],
                    vec![
                        set(&pv1, take.clone()),
                        set(&pv2, pv1.and(&last1)),
                        set(&wv3, pv2.clone()),
                    ],
                )],
            );
            b.clocked(
                &clk,
                vec![
                    set(&x1, in_data.clone()),
                    set(&first1, sub.eq(&Expr::zero(gi))),
                    set(&last1, ld_last_sub.clone()),
                    set(&group1, ld_group.clone()),
                    when(
                        pv1.clone(),
                        vec![
                            set(&acc, acc_next.clone()),
                            when(last1.clone(), vec![set(&acc2, acc_next)]),
                        ],
                    ),
                    set(&wbeat3, pixel),
                ],
            );
            (wv3, wbeat3)
        }
        _ => (take.clone(), in_data.clone()),
    };

    // ---- Writer: one pixel per wr_en into slot wr_slot, column wr_col.
    let line_ab = addr_bits(&rams.line);
    let row_base = |b: &mut ModuleBuilder<'id>, name: &str, slot: &Expr<'id>| {
        b.name(
            name,
            slot.zext(line_ab.max(slot_bits))
                .mul(&lit(u64::from(cfg.max_width), line_ab.max(slot_bits))),
        )
    };
    let wr_base = row_base(b, "wr_row_base", &wr_slot);
    let wr_base = fit(b, "wr_base_fit", &wr_base, line_ab);
    let wr_col_fit = fit(b, "wr_col_fit", &wr_col, line_ab);
    let wr_addr = b.name("wr_addr", wr_base.add(&wr_col_fit));
    let wr_last_col = last_col(b, "wr_last_col", &wr_col);
    let wr_row_done = b.name("wr_row_done", wr_en.and(&wr_last_col));

    // ---- Reader: may the next output be issued?
    let dil_ok;
    let d_eff;
    let d_bad;
    match &dil {
        Some((dil_valid, _, dil_data)) => {
            let d = dil_data.clone();
            d_bad = b.name(
                "dilation_bad",
                d.eq(&Expr::zero(8)).or(&lit(u64::from(dmax), 8).lt(&d)),
            );
            let clamped = Expr::mux(
                &d.eq(&Expr::zero(8)),
                &lit(1, 8),
                &Expr::mux(
                    &lit(u64::from(dmax), 8).lt(&d),
                    &lit(u64::from(dmax), 8),
                    &d,
                ),
            );
            d_eff = b.name("dilation", clamped);
            dil_ok = dil_valid.clone();
        }
        None => {
            d_bad = Expr::bit(false);
            d_eff = lit(1, 8);
            dil_ok = Expr::bit(true);
        }
    }
    let row_w = rd_row.zext(COORD_BITS);
    let col_w = rd_col.zext(COORD_BITS);
    let height_w = height.zext(COORD_BITS);
    let width_w = width.zext(COORD_BITS);
    let dmax_w = lit(u64::from(dmax), COORD_BITS);
    // Rows the output may read: up to dmax below its centre, or to the image's last row.
    let near_bottom = b.name(
        "near_bottom",
        ge(&row_w.add(&dmax_w).add(&one(COORD_BITS)), &height_w),
    );
    let rows_below = b.name("rows_below", height_w.sub(&one(COORD_BITS)).sub(&row_w));
    let lead_w = lead.zext(COORD_BITS);
    let bottom_written = rows_below.lt(&lead_w);
    let window_written = dmax_w.lt(&lead_w).or(&lead_w.eq(&dmax_w).and(&ge(
        &wr_col.zext(COORD_BITS),
        &col_w.add(&dmax_w).add(&one(COORD_BITS)),
    )));
    let rows_ready = b.name(
        "rows_ready",
        Expr::mux(&near_bottom, &bottom_written, &window_written),
    );
    let can_issue = b.name(
        "can_issue",
        busy.and(&rd_finished.not()).and(&dil_ok).and(&rows_ready),
    );
    let issue = b.name("issue", can_issue.and(&advance));
    if let Some((_, dil_ready, _)) = &dil {
        b.drive(dil_ready, issue.clone());
    }

    // Next reader position.
    let s_w = lit(u64::from(stride), COORD_BITS);
    let row_end = b.name("rd_row_end", ge(&col_w.add(&s_w), &width_w));
    let last_row = b.name("rd_last_row", ge(&row_w.add(&s_w), &height_w));
    let last_group = b.name(
        "rd_last_group",
        rd_group.zext(group_bits).add(&one(group_bits)).eq(&groups),
    );
    // Rows the centre moves at the end of an output row: s, or to the next pass's first row.
    // At most 2 (H - s*oy of the last row is 1 or 2), so two bits hold it exactly.
    let to_next_pass = height.slice(0, 2).sub(&rd_row.slice(0, 2));
    let row_step_full = Expr::mux(&last_row, &to_next_pass, &lit(u64::from(stride), 2));
    let row_step2 = b.name(
        "rd_row_step",
        Expr::mux(&row_end, &row_step_full, &Expr::zero(2)),
    );
    // Slot arithmetic modulo R on slot_bits-wide values: the wrap decision is taken on the
    // exact sum, the result (below R) is computed modulo 2^slot_bits.
    let wrap_add = lit(
        ((1u64 << slot_bits) - u64::from(rows)) % (1 << slot_bits),
        slot_bits,
    );
    let rows_mod = lit(u64::from(rows) % (1 << slot_bits), slot_bits);
    let slot_add = |slot: &Expr<'id>, k: &Expr<'id>| {
        let wide = slot_bits + 1;
        let sum = slot.zext(wide).add(&k.zext(wide));
        let k_n = k.zext(slot_bits);
        let plain_sum = slot.add(&k_n);
        Expr::mux(
            &ge(&sum, &lit(u64::from(rows), wide)),
            &plain_sum.add(&wrap_add),
            &plain_sum,
        )
    };
    let slot_sub = |slot: &Expr<'id>, k: &Expr<'id>| {
        let k_n = k.zext(slot_bits);
        let diff = slot.sub(&k_n);
        Expr::mux(&slot.lt(&k_n), &diff.add(&rows_mod), &diff)
    };
    let next_slot = slot_add(&rd_slot, &row_step2);

    // ---- Tap addresses (stage 0 -> stage 1 registers).
    let d_slot = fit(b, "dilation_slot", &d_eff, slot_bits);
    let d_w = d_eff.zext(COORD_BITS);
    let slots = [
        slot_sub(&rd_slot, &d_slot),
        rd_slot.clone(),
        slot_add(&rd_slot, &d_slot),
    ];
    let row_ok = [
        ge(&row_w, &d_w),
        Expr::bit(true),
        row_w.add(&d_w).lt(&height_w),
    ];
    let col_ok = [
        ge(&col_w, &d_w),
        Expr::bit(true),
        col_w.add(&d_w).lt(&width_w),
    ];
    // Columns of the taps, modulo 2^col_index_bits: exact whenever the tap is inside.
    let col_index_bits = index_bits(cfg.max_width);
    let col_n = rd_col.slice(0, col_index_bits);
    let d_col = fit(b, "dilation_col", &d_eff, col_index_bits);
    let cols = [col_n.sub(&d_col), col_n.clone(), col_n.add(&d_col)];
    let group1 = b.reg("s1_group", gi);
    let mut s1_regs = Vec::new();
    let mut addr1 = Vec::new();
    let mut inside1 = Vec::new();
    for i in 0..3 {
        let slot_r = b.reg(&format!("s1_row{i}_slot"), slot_bits);
        let row_ok_r = b.reg(&format!("s1_row{i}_inside"), 1);
        s1_regs.push(set(&slot_r, slots[i].clone()));
        s1_regs.push(set(&row_ok_r, row_ok[i].clone()));
        addr1.push(slot_r);
        inside1.push(row_ok_r);
    }
    let mut col1 = Vec::new();
    let mut col_inside1 = Vec::new();
    for j in 0..3 {
        let col_r = b.reg(&format!("s1_col{j}"), col_index_bits);
        let ok_r = b.reg(&format!("s1_col{j}_inside"), 1);
        // An outside column is replaced by 0 so that every address stays in range.
        s1_regs.push(set(
            &col_r,
            Expr::mux(&col_ok[j], &cols[j], &Expr::zero(col_index_bits)),
        ));
        s1_regs.push(set(&ok_r, col_ok[j].clone()));
        col1.push(col_r);
        col_inside1.push(ok_r);
    }
    s1_regs.push(set(&group1, rd_group.clone()));

    // ---- Stage 1: line-buffer and weight reads.
    let mut taps2 = Vec::new();
    let mut inside2 = Vec::new();
    let mut weights2 = Vec::new();
    let mut s2_regs = Vec::new();
    let tap_ab = addr_bits(&rams.tap);
    let prm_tap_addr = fit(b, "prm_addr_tap", &prm_addr, tap_ab);
    let group1_addr = fit(b, "s1_group_addr", &group1, tap_ab);
    let prm_w = prm_data.slice(0, 4 * lanes);
    let lb_wr_addr = wr_addr.clone();
    let col1_fit: Vec<Expr> = (0..3)
        .map(|j| fit(b, &format!("s1_col{j}_fit"), &col1[j], line_ab))
        .collect();
    for i in 0..3 {
        let base = row_base(b, &format!("s1_row{i}_base"), &addr1[i]);
        let base = fit(b, &format!("s1_row{i}_base_fit"), &base, line_ab);
        for j in 0..3 {
            let t = 3 * i + j;
            let addr = b.name(&format!("tap{t}_addr"), base.add(&col1_fit[j]));
            let data = b.wire(&format!("tap{t}_pixel"), beat);
            ram_instance(
                b,
                &rams.line,
                &format!("line_buffer{t}"),
                &clk,
                (&wr_en, &lb_wr_addr, &wr_data),
                &advance,
                addr,
                &data,
            );
            let inside = b.reg(&format!("s2_tap{t}_inside"), 1);
            s2_regs.push(set(&inside, inside1[i].and(&col_inside1[j])));
            taps2.push(data);
            inside2.push(inside);
            let w = b.wire(&format!("tap{t}_weights"), 4 * lanes);
            let we = target_is(b, &format!("prm_tap{t}"), param_target::DW_TAP0 + t as u32);
            ram_instance(
                b,
                &rams.tap,
                &format!("tap{t}_weight_mem"),
                &clk,
                (&we, &prm_tap_addr, &prm_w),
                &advance,
                group1_addr.clone(),
                &w,
            );
            weights2.push(w);
        }
    }
    let group2 = b.reg("s2_group", gi);
    s2_regs.push(set(&group2, group1.clone()));

    // ---- Stage 2: masks, 9 x lanes products, sums; scale and bias reads.
    let qab = addr_bits(&rams.quant);
    let prm_q_addr = fit(b, "prm_addr_quant", &prm_addr, qab);
    let group2_addr = fit(b, "s2_group_addr", &group2, qab);
    let scale3 = b.wire("s3_scale", prm_bits);
    let bias3 = b.wire("s3_bias", prm_bits);
    for (reg, t, name) in [
        (&scale3, param_target::DW_SCALE, "dw_scales"),
        (&bias3, param_target::DW_BIAS, "dw_biases"),
    ] {
        let we = target_is(b, &format!("prm_{name}"), t);
        ram_instance(
            b,
            &rams.quant,
            name,
            &clk,
            (&we, &prm_q_addr, &prm_data),
            &advance,
            group2_addr.clone(),
            reg,
        );
    }
    let outside = lit(0x80, 8).repeat(lanes);
    let masked: Vec<Expr> = (0..9)
        .map(|t| {
            b.name(
                &format!("tap{t}_value"),
                Expr::mux(&inside2[t], &taps2[t], &outside),
            )
        })
        .collect();
    let mut sums = Vec::new();
    for l in 0..lanes {
        // |product| <= 1024 and 9 of them sum below 2^14: 16 bits are exact.
        let terms: Vec<Expr> = (0..9)
            .map(|t| {
                masked[t]
                    .slice(8 * l, 8)
                    .sext(16)
                    .mul(&weights2[t].slice(4 * l, 4).sext(16))
            })
            .collect();
        let sum = terms.into_iter().reduce(|a, p| a.add(&p)).expect("9 taps");
        sums.push(b.name(&format!("dw_sum{l}"), sum).sext(ACC_BITS));
    }
    sums.reverse();
    let acc3 = b.reg("s3_sum", lanes * ACC_BITS);
    b.describe("depthwise sums, lane l at [24l +: 24]");
    let sums = Expr::concat(sums);

    // ---- Stage 3: quantizer, then the output register.
    let result = quantizer_lanes(b, quant, "dw", lanes, [&acc3, &scale3, &bias3], &relu);
    let result = b.name("result", result);

    // ---- Done: the reader has issued everything and the pipeline is empty.
    let drained = b.name(
        "drained",
        rd_finished
            .and(&v1.not())
            .and(&v2.not())
            .and(&v3.not())
            .and(&out_valid.not().or(&out_ready)),
    );

    // ---- Control process.
    let mut start_regs = vec![
        set(&height, layer_height.clone()),
        set(&width, layer_width.clone()),
        set(&groups, layer_groups.clone()),
        set(&relu, layer_relu.clone()),
        set(&busy, shape_ok.clone()),
        set(&done, shape_ok.not()),
        set(&error, shape_ok.not()),
        set(&rd_group, Expr::zero(gi)),
        set(&rd_row, zero_h.clone()),
        set(&rd_col, Expr::zero(COL_BITS)),
        set(&rd_slot, Expr::zero(slot_bits)),
        set(&rd_finished, Expr::bit(false)),
        set(&lead, Expr::zero(LEAD_BITS)),
        set(&wr_col, Expr::zero(COL_BITS)),
        set(&wr_slot, Expr::zero(slot_bits)),
        set(&ld_group, Expr::zero(gi)),
        set(&ld_row, zero_h.clone()),
        set(&ld_col, Expr::zero(COL_BITS)),
        set(&ld_finished, Expr::bit(false)),
    ];
    if let (Some(r), Some(p)) = (&in_groups, &layer_in_groups) {
        start_regs.push(set(r, p.clone()));
    }
    if let (Some(r), Some(p)) = (&relu_pw, &layer_relu_pw) {
        start_regs.push(set(r, p.clone()));
    }
    if let Some(sub) = &ld_sub {
        start_regs.push(set(sub, Expr::zero(gi)));
    }
    if let Some(l) = &ld_lead {
        start_regs.push(set(l, Expr::zero(LEAD_BITS)));
    }

    // Rows-ahead bookkeeping: +1 when a row completes, minus the reader's row step.
    let step_lead = row_step2.zext(LEAD_BITS);
    let lead_after = |counter: &Expr<'id>, row_done: &Expr<'id>| {
        Expr::mux(
            &issue,
            &counter.add(&row_done.zext(LEAD_BITS)).sub(&step_lead),
            &counter.add(&row_done.zext(LEAD_BITS)),
        )
    };
    let mut run = vec![
        set(&lead, lead_after(&lead, &wr_row_done)),
        when(
            wr_en.clone(),
            vec![when_else(
                wr_last_col.clone(),
                vec![
                    set(&wr_col, Expr::zero(COL_BITS)),
                    set(&wr_slot, slot_add(&wr_slot, &lit(1, 2))),
                ],
                vec![set(&wr_col, wr_col.add(&one(COL_BITS)))],
            )],
        ),
    ];
    if let Some(l) = &ld_lead {
        let row_taken = b.name("ld_row_taken", take.and(&ld_last_col).and(&ld_last_sub));
        run.push(set(l, lead_after(l, &row_taken)));
    }
    // Loader position: in-group, column, row, pass.
    let ld_last_row = b.name("ld_last_row", ld_row.add(&one(HEIGHT_BITS)).eq(&height));
    let ld_last_group = b.name(
        "ld_last_group",
        ld_group.zext(group_bits).add(&one(group_bits)).eq(&groups),
    );
    let mut advance_pixel = vec![when_else(
        ld_last_col.clone(),
        vec![
            set(&ld_col, Expr::zero(COL_BITS)),
            when_else(
                ld_last_row.clone(),
                vec![
                    set(&ld_row, zero_h.clone()),
                    set(&ld_group, ld_group.add(&one(gi))),
                    when(ld_last_group, vec![set(&ld_finished, Expr::bit(true))]),
                ],
                vec![set(&ld_row, ld_row.add(&one(HEIGHT_BITS)))],
            ),
        ],
        vec![set(&ld_col, ld_col.add(&one(COL_BITS)))],
    )];
    if let Some(sub) = &ld_sub {
        advance_pixel = vec![when_else(
            ld_last_sub.clone(),
            [vec![set(sub, Expr::zero(gi))], advance_pixel].concat(),
            vec![set(sub, sub.add(&one(gi)))],
        )];
    }
    run.push(when(take.clone(), advance_pixel));
    // Reader position.
    let next_row = Expr::mux(
        &last_row,
        &zero_h,
        &rd_row.add(&lit(u64::from(stride), HEIGHT_BITS)),
    );
    let reader_next: Vec<Stmt> = vec![
        when_else(
            row_end.clone(),
            vec![
                set(&rd_col, Expr::zero(COL_BITS)),
                set(&rd_row, next_row),
                set(&rd_slot, next_slot),
                when(
                    last_row.clone(),
                    vec![
                        set(&rd_group, rd_group.add(&one(gi))),
                        when(last_group, vec![set(&rd_finished, Expr::bit(true))]),
                    ],
                ),
            ],
            vec![set(&rd_col, rd_col.add(&lit(u64::from(stride), COL_BITS)))],
        ),
        when(d_bad.clone(), vec![set(&error, Expr::bit(true))]),
    ];
    run.push(when(issue.clone(), reader_next));
    run.push(when(
        busy.and(&drained),
        vec![set(&busy, Expr::bit(false)), set(&done, Expr::bit(true))],
    ));

    b.comment("Control: layer registers, loader, writer and reader positions, flags.");
    b.clocked(
        &clk,
        vec![when_else(
            rst.clone(),
            vec![
                set(&busy, Expr::bit(false)),
                set(&done, Expr::bit(false)),
                set(&error, Expr::bit(false)),
            ],
            vec![when_else(start_now.clone(), start_regs, run)],
        )],
    );

    b.comment("Tap pipeline: every stage moves when the output register can move (`advance`).");
    let valid_reset = vec![
        set(&v1, Expr::bit(false)),
        set(&step1, Expr::zero(2)),
        set(&v2, Expr::bit(false)),
        set(&v3, Expr::bit(false)),
        set(&out_valid, Expr::bit(false)),
    ];
    let valid_run = vec![when(
        advance.clone(),
        vec![
            set(&v1, issue.clone()),
            set(&step1, Expr::mux(&issue, &row_step2, &Expr::zero(2))),
            set(&v2, v1.clone()),
            set(&v3, v2.clone()),
            set(&out_valid, v3.clone()),
        ],
    )];
    b.clocked(&clk, vec![when_else(rst.clone(), valid_reset, valid_run)]);
    let data_regs = [
        s1_regs,
        s2_regs,
        vec![set(&acc3, sums), set(&out_data, result)],
    ]
    .concat();
    b.clocked(&clk, vec![when(advance.clone(), data_regs)]);
    let _ = (prm_ready, in_ready, out_ready);
}
