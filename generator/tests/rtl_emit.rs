//! Snapshot tests of the emitter (RHDL style): each construct of the RTL layer, built through the
//! builder, printed, and compared with the expected Verilog written here. A change to the
//! emitter shows up as a reviewed diff of these texts.

use coforge_generator::rtl::{
    case, emit, set, set_word, when, when_else, Dir, Expr, ExternalModule, ModuleBuilder,
    ModuleDef, Port,
};

fn text(def: &ModuleDef) -> String {
    emit::module_file(def, "snapshot")
}

/// Asserts equal texts, printing both in full when they differ.
fn assert_snapshot(actual: &str, expected: &str) {
    assert!(
        actual == expected,
        "emitted Verilog differs from the snapshot.\n--- emitted ---\n{actual}--- expected ---\n{expected}"
    );
}

#[test]
fn ports_and_declarations_align_and_carry_their_comments() {
    let def = ModuleBuilder::build("decls", |b| {
        b.doc("What the module does, one line.");
        b.input("clk", 1, "");
        b.input("data_in", 16, "a documented input");
        b.output("flag", 1, "");
        b.output_reg("count", 8, "a register port");
        b.wire("scratch", 3);
        b.reg("state", 2);
        b.describe("a documented register");
    });
    assert_snapshot(
        &text(&def),
        r#"// snapshot
//
// What the module does, one line.
`default_nettype none

module decls (
    input  wire        clk,
    input  wire [15:0] data_in,                          // a documented input
    output wire        flag,
    output reg  [7:0]  count                             // a register port
);

    wire [2:0] scratch;
    reg  [1:0] state;                                    // a documented register

endmodule

`default_nettype wire
"#,
    );
}

#[test]
fn assignments_group_and_comments_stay_with_their_item() {
    let def = ModuleBuilder::build("assigns", |b| {
        let a = b.input("a", 4, "");
        let y = b.output("y", 4, "");
        let z = b.output("z", 1, "");
        b.comment("Two assignments, kept together.");
        let t = b.name("t", a.not());
        b.drive(&y, t.add(&a));
        b.comment("A second group.");
        b.drive(&z, a.any());
        let _ = (y, z);
    });
    assert_snapshot(
        &text(&def),
        r#"// snapshot
//
`default_nettype none

module assigns (
    input  wire [3:0] a,
    output wire [3:0] y,
    output wire       z
);

    wire [3:0] t;

    // Two assignments, kept together.
    assign t = ~a;
    assign y = t + a;

    // A second group.
    assign z = |a;

endmodule

`default_nettype wire
"#,
    );
}

#[test]
fn a_clocked_process_prints_nested_ifs_with_nonblocking_assignments() {
    let def = ModuleBuilder::build("counter", |b| {
        let clk = b.input("clk", 1, "");
        let rst = b.input("rst", 1, "");
        let en = b.input("en", 1, "");
        let count = b.output_reg("count", 4, "");
        b.clocked(
            &clk,
            vec![when_else(
                rst,
                vec![set(&count, Expr::zero(4))],
                vec![when(en, vec![set(&count, count.add(&Expr::lit(1, 4)))])],
            )],
        );
    });
    assert_snapshot(
        &text(&def),
        r#"// snapshot
//
`default_nettype none

module counter (
    input  wire       clk,
    input  wire       rst,
    input  wire       en,
    output reg  [3:0] count
);

    always @(posedge clk) begin
        if (rst) begin
            count <= 4'd0;
        end else begin
            if (en) begin
                count <= count + 4'd1;
            end
        end
    end

endmodule

`default_nettype wire
"#,
    );
}

#[test]
fn a_combinational_case_prints_blocking_assignments_and_a_default() {
    let def = ModuleBuilder::build("decoder", |b| {
        let sel = b.input("sel", 2, "");
        let a = b.input("a", 8, "");
        let y = b.output_reg("y", 8, "");
        b.combinational(vec![case(
            sel,
            vec![(0, vec![set(&y, a.clone())]), (2, vec![set(&y, a.not())])],
            vec![set(&y, Expr::zero(8))],
        )]);
    });
    assert_snapshot(
        &text(&def),
        r#"// snapshot
//
`default_nettype none

module decoder (
    input  wire [1:0] sel,
    input  wire [7:0] a,
    output reg  [7:0] y
);

    always @(*) begin
        case (sel)
            2'd0: begin
                y = a;
            end
            2'd2: begin
                y = ~a;
            end
            default: begin
                y = 8'd0;
            end
        endcase
    end

endmodule

`default_nettype wire
"#,
    );
}

/// A black box with one 4-bit input `a` and one 4-bit output `y`.
fn leaf() -> ModuleDef {
    let port = |name: &str, dir| Port {
        name: name.into(),
        dir,
        width: 4,
        is_reg: false,
        doc: None,
    };
    ModuleDef::External(ExternalModule {
        name: "leaf".into(),
        ports: vec![port("a", Dir::Input), port("y", Dir::Output)],
        source:
            "module leaf (input wire [3:0] a, output wire [3:0] y);\n    assign y = a;\nendmodule"
                .into(),
    })
}

#[test]
fn an_instance_prints_named_aligned_connections() {
    let def = ModuleBuilder::build("wrapper", |b| {
        let x = b.input("x", 4, "");
        let y = b.output("y", 4, "");
        b.instance(&leaf(), "u_leaf", vec![("y", y), ("a", x)]);
    });
    assert_snapshot(
        &text(&def),
        r#"// snapshot
//
`default_nettype none

module wrapper (
    input  wire [3:0] x,
    output wire [3:0] y
);

    leaf u_leaf (
        .a (x),
        .y (y)
    );

endmodule

`default_nettype wire
"#,
    );
}

#[test]
fn an_external_module_is_included_verbatim_under_the_header() {
    assert_snapshot(
        &text(&leaf()),
        "// snapshot\n// External leaf module `leaf`, included verbatim.\n\
         module leaf (input wire [3:0] a, output wire [3:0] y);\n    assign y = a;\nendmodule\n",
    );
}

#[test]
fn expressions_print_only_the_parentheses_they_need() {
    ModuleBuilder::build("exprs", |m| {
        let a = m.input("a", 8, "");
        let b = m.input("b", 8, "");
        let c = m.input("c", 8, "");
        let s = m.input("s", 1, "");
        let i = m.input("i", 3, "");
        for (e, text) in [
            (Expr::bit(true), "1'b1"),
            (Expr::lit(3, 4), "4'd3"),
            (Expr::lit(255, 8), "8'hff"),
            (a.slice(0, 4), "a[3:0]"),
            (a.bit_at(5), "a[5]"),
            (a.slice(2, 4).slice(1, 2), "a[4:3]"),
            (a.dyn_slice(i.clone(), 2), "a[i +: 2]"),
            (a.dyn_slice(i.clone(), 1), "a[i]"),
            (Expr::concat(vec![a.clone(), b.clone()]), "{a, b}"),
            (s.repeat(4), "{4{s}}"),
            (a.sext(12), "{{4{a[7]}}, a}"),
            (a.zext(12), "{4'd0, a}"),
            (a.sub(&b.sub(&c)), "a - (b - c)"),
            (a.sub(&b).sub(&c), "a - b - c"),
            (a.add(&b.mul(&c)), "a + b * c"),
            (a.add(&b).mul(&c), "(a + b) * c"),
            (a.and(&b).or(&c), "a & b | c"),
            (a.xor(&b).not(), "~(a ^ b)"),
            (a.eq(&b).land(&s), "a == b && s"),
            (a.lt(&b).lor(&a.ne(&c)), "a < b || a != c"),
            (a.shl(&i), "a << i"),
            (a.shr(&i), "a >> i"),
            (a.all(), "&a"),
            (Expr::mux(&s, &a, &b), "s ? a : b"),
            (
                Expr::mux(&a.eq(&b), &a, &Expr::mux(&s, &b, &c)),
                "(a == b) ? a : s ? b : c",
            ),
            (
                Expr::select(&i, &[a.clone(), b.clone()]),
                "(i == 3'd0) ? a : (i == 3'd1) ? b : 8'd0",
            ),
        ] {
            assert_eq!(e.to_string(), text);
        }
    });
}

#[test]
fn signed_shapes_decide_extension_comparison_and_shift() {
    ModuleBuilder::build("exprs", |m| {
        let a = m.input("a", 8, "");
        let b = m.input("b", 8, "");
        let i = m.input("i", 3, "");
        let (sa, sb) = (a.as_signed(), b.as_signed());
        assert!(sa.is_signed() && !a.is_signed());
        assert!(sa.add(&sb).is_signed() && sa.resize(12).is_signed());
        assert!(!sa.as_unsigned().is_signed() && !sa.lt(&sb).is_signed());
        for (e, text) in [
            // Extension follows the type: sign for signed, zero for unsigned.
            (sa.resize(12), "{{4{a[7]}}, a}"),
            (a.resize(12), "{4'd0, a}"),
            // Comparison: signed only when both sides are.
            (sa.lt(&sb), "$signed(a) < $signed(b)"),
            (sa.gt(&sb), "$signed(b) < $signed(a)"),
            (a.lt(&b), "a < b"),
            (sa.add(&sb).lt(&sb), "$signed({a + b}) < $signed(b)"),
            // Right shift: arithmetic for signed, self-determined so no context can undo it.
            (sa.shr(&i), "{$signed(a) >>> i}"),
            (sa.shr(&i).add(&sb), "{$signed(a) >>> i} + b"),
            (a.shr(&i), "a >> i"),
            // Arithmetic prints on equal widths: the low bits do not depend on signedness.
            (
                sa.resize(16).mul(&sb.resize(16)),
                "{{8{a[7]}}, a} * {{8{b[7]}}, b}",
            ),
            // A signed multiply prints with $signed (the same low bits), self-determined.
            (
                sa.resize(16).mul_signed(&sb.resize(16)),
                "{$signed({{8{a[7]}}, a}) * $signed({{8{b[7]}}, b})}",
            ),
            (
                sa.resize(16).mul_signed(&sb.resize(16)).add(&sa.resize(16)),
                "{$signed({{8{a[7]}}, a}) * $signed({{8{b[7]}}, b})} + {{8{a[7]}}, a}",
            ),
            // Sign extension by an arithmetic shift names its operand once; a signed multiply
            // keeps the shift signed (parentheses, not braces).
            (a.sext_by_shift(12), "{$signed({a, 4'd0}) >>> 4'h4}"),
            (a.sext_by_shift(8), "a"),
            (
                a.sext_by_shift(16).mul_signed(&b.sext_by_shift(16)),
                "{($signed({a, 8'd0}) >>> 4'h8) * ($signed({b, 8'd0}) >>> 4'h8)}",
            ),
            (Expr::signed_lit(-1, 8), "8'hff"),
            (
                Expr::signed_lit(-128, 8).lt(&sa),
                "$signed(8'h80) < $signed(a)",
            ),
        ] {
            assert_eq!(e.to_string(), text);
        }
    });
}

#[test]
#[should_panic(expected = "differ in signedness")]
fn mixing_signed_and_unsigned_operands_is_refused() {
    ModuleBuilder::build("exprs", |m| {
        let a = m.input("a", 8, "");
        let _ = a.as_signed().lt(&a);
    });
}

#[test]
#[should_panic(expected = "does not fit a signed 8-bit value")]
fn signed_constants_are_range_checked() {
    let _ = Expr::signed_lit(128, 8);
}

/// A line buffer: one write port and two registered read ports (one always enabled).
pub fn two_port_ram() -> ModuleDef {
    ModuleBuilder::build("ram_1w2r", |b| {
        let clk = b.input("clk", 1, "");
        let we = b.input("we", 1, "");
        let waddr = b.input("waddr", 10, "");
        let wdata = b.input("wdata", 8, "");
        let re = b.input("re", 1, "");
        let raddr = b.input("raddr", 10, "");
        let raddr_b = b.input("raddr_b", 10, "");
        let rdata = b.output_reg("rdata", 8, "");
        let rdata_b = b.output_reg("rdata_b", 8, "");
        let line = b.memory("line", 8, 1000);
        b.describe("no reset: block RAM");
        b.memory_write(&clk, &line, &we, &waddr, &wdata);
        b.memory_read(&clk, &line, &rdata, &re, &raddr);
        b.memory_read(&clk, &line, &rdata_b, &Expr::bit(true), &raddr_b);
    })
}

#[test]
fn memory_prints_the_block_ram_template() {
    assert_snapshot(
        &text(&two_port_ram()),
        r#"// snapshot
//
`default_nettype none

module ram_1w2r (
    input  wire       clk,
    input  wire       we,
    input  wire [9:0] waddr,
    input  wire [7:0] wdata,
    input  wire       re,
    input  wire [9:0] raddr,
    input  wire [9:0] raddr_b,
    output reg  [7:0] rdata,
    output reg  [7:0] rdata_b
);

    reg  [7:0] line [0:999];                             // no reset: block RAM

    always @(posedge clk) begin
        if (we) begin
            line[waddr] <= wdata;
        end
    end

    always @(posedge clk) begin
        if (re) begin
            rdata <= line[raddr];
        end
    end

    always @(posedge clk) begin
        rdata_b <= line[raddr_b];
    end

endmodule

`default_nettype wire
"#,
    );
}

/// Module `m` with a clock, a 2-bit address `a` and a 4-bit word `d`, the rest described by
/// `body`, for the refusals below.
fn module_m(
    body: impl for<'id> FnOnce(&mut ModuleBuilder<'id>, Expr<'id>, Expr<'id>, Expr<'id>),
) -> ModuleDef {
    ModuleBuilder::build("m", |b| {
        let clk = b.input("clk", 1, "");
        let a = b.input("a", 2, "");
        let d = b.input("d", 4, "");
        body(b, clk, a, d)
    })
}

#[test]
#[should_panic(expected = "`mem` has two drivers")]
fn a_memory_has_one_write_port() {
    module_m(|b, clk, a, d| {
        let mem = b.memory("mem", 4, 4);
        b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
        b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
    });
}

#[test]
#[should_panic(expected = "has 1 write and 3 read ports")]
fn a_memory_has_at_most_two_read_ports() {
    module_m(|b, clk, a, d| {
        let mem = b.memory("mem", 4, 4);
        b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
        for i in 0..3 {
            let q = b.reg(&format!("q{i}"), 4);
            b.memory_read(&clk, &mem, &q, &Expr::bit(true), &a);
        }
    });
}

/// Ports written by hand (`set_word`, `Memory::read`) are held to the same template.
#[test]
fn hand_written_ports_are_the_same_template() {
    let by_hand = module_m(|b, clk, a, d| {
        let q = b.output_reg("q", 4, "");
        let mem = b.memory("mem", 4, 4);
        b.clocked(&clk, vec![set_word(&mem, a.clone(), d)]);
        b.clocked(&clk, vec![set(&q, mem.read(&a))]);
    });
    let by_ports = module_m(|b, clk, a, d| {
        let q = b.output_reg("q", 4, "");
        let mem = b.memory("mem", 4, 4);
        b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
        b.memory_read(&clk, &mem, &q, &Expr::bit(true), &a);
    });
    assert_eq!(text(&by_hand), text(&by_ports));
}

#[test]
#[should_panic(expected = "asynchronous read")]
fn an_asynchronous_read_is_refused() {
    module_m(|b, clk, a, d| {
        let q = b.output("q", 4, "");
        let mem = b.memory("mem", 4, 4);
        b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
        b.drive(&q, mem.read(&a));
    });
}

#[test]
#[should_panic(expected = "takes a 3-bit address")]
fn memory_addresses_are_width_checked() {
    module_m(|b, clk, a, d| {
        let mem = b.memory("mem", 4, 5);
        b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
    });
}

#[test]
#[should_panic(expected = "not a register")]
fn a_read_port_loads_a_register() {
    module_m(|b, clk, a, _| {
        let q = b.output("q", 4, "");
        let mem = b.memory("mem", 4, 4);
        b.memory_read(&clk, &mem, &q, &Expr::bit(true), &a);
    });
}

#[test]
#[should_panic(expected = "needs one write port and one or two read ports")]
fn a_memory_without_a_read_port_is_refused() {
    module_m(|b, clk, a, d| {
        let mem = b.memory("mem", 4, 4);
        b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
    });
}
