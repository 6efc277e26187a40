//! Snapshot tests of the emitter (RHDL style): each construct of the RTL layer, built through the
//! builder, printed, and compared with the expected Verilog written here. A change to the
//! emitter shows up as a reviewed diff of these texts.

use coforge_generator::rtl::{emit, set, set_word, Expr, ModuleBuilder, ModuleDef};

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

/// A line buffer: one write port and two registered read ports (one always enabled).
pub fn two_port_ram() -> ModuleDef {
    let mut b = ModuleBuilder::new("ram_1w2r");
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
    b.finish()
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

/// A module with a clock, a 2-bit address `a` and a 4-bit word `d`, for the refusals below.
fn fixture() -> (ModuleBuilder, Expr, Expr, Expr) {
    let mut b = ModuleBuilder::new("m");
    let clk = b.input("clk", 1, "");
    let a = b.input("a", 2, "");
    let d = b.input("d", 4, "");
    (b, clk, a, d)
}

#[test]
#[should_panic(expected = "has 2 write and 0 read ports")]
fn a_memory_has_one_write_port() {
    let (mut b, clk, a, d) = fixture();
    let mem = b.memory("mem", 4, 4);
    b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
    b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
    b.finish();
}

#[test]
#[should_panic(expected = "has 1 write and 3 read ports")]
fn a_memory_has_at_most_two_read_ports() {
    let (mut b, clk, a, d) = fixture();
    let mem = b.memory("mem", 4, 4);
    b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
    for i in 0..3 {
        let q = b.reg(&format!("q{i}"), 4);
        b.memory_read(&clk, &mem, &q, &Expr::bit(true), &a);
    }
    b.finish();
}

/// Ports written by hand (`set_word`, `Expr::MemRead`) are held to the same template.
#[test]
fn hand_written_ports_are_the_same_template() {
    let (mut b, clk, a, d) = fixture();
    let q = b.output_reg("q", 4, "");
    let mem = b.memory("mem", 4, 4);
    b.clocked(&clk, vec![set_word(&mem, a.clone(), d)]);
    let read = Expr::MemRead {
        mem: mem.name.clone(),
        index: Box::new(a),
        width: 4,
    };
    b.clocked(&clk, vec![set(&q, read)]);
    let by_hand = text(&b.finish());
    let (mut b, clk, a, d) = fixture();
    let q = b.output_reg("q", 4, "");
    let mem = b.memory("mem", 4, 4);
    b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
    b.memory_read(&clk, &mem, &q, &Expr::bit(true), &a);
    assert_eq!(by_hand, text(&b.finish()));
}

#[test]
#[should_panic(expected = "asynchronous read")]
fn an_asynchronous_read_is_refused() {
    let (mut b, clk, a, d) = fixture();
    let q = b.output("q", 4, "");
    let mem = b.memory("mem", 4, 4);
    b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
    let read = Expr::MemRead {
        mem: mem.name.clone(),
        index: Box::new(a),
        width: 4,
    };
    b.drive("q", read);
    let _ = q;
    b.finish();
}

#[test]
#[should_panic(expected = "takes a 3-bit address")]
fn memory_addresses_are_width_checked() {
    let (mut b, clk, a, d) = fixture();
    let mem = b.memory("mem", 4, 5);
    b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
}

#[test]
#[should_panic(expected = "not a register")]
fn a_read_port_loads_a_register() {
    let (mut b, clk, a, _) = fixture();
    let q = b.output("q", 4, "");
    let mem = b.memory("mem", 4, 4);
    b.memory_read(&clk, &mem, &q, &Expr::bit(true), &a);
}

#[test]
#[should_panic(expected = "needs one write port and one or two read ports")]
fn a_memory_without_a_read_port_is_refused() {
    let (mut b, clk, a, d) = fixture();
    let mem = b.memory("mem", 4, 4);
    b.memory_write(&clk, &mem, &Expr::bit(true), &a, &d);
    b.finish();
}
