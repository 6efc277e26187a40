//! The AXI4 memory slave and protocol checker (`coforge_sim::axi4`) against a small hand-written
//! AXI4 master that copies one burst: the copy lands under random stalls on every channel, the
//! cycles grow with the stall rate, and the checker fails a master that ends a write burst early
//! or crosses a 4 KiB boundary.

mod common;

use coforge_sim::axi::ResetPin;
use coforge_sim::axi4::{Axi4Checker, Axi4Memory, Axi4Timing};
use coforge_sim::{Agent, DesignSpec, Pins, PortSpec, VerilatedModel, Verilator};
use common::opts;

const MASTER: &str = r#"`default_nettype none
// Copies len + 1 32-bit beats from src to dst: one read burst, then one write burst.
// bad_wlast: WLAST one beat early (a protocol violation, for the checker's negative test).
module axi_copy (
    input  wire        clk,
    input  wire        rst,
    input  wire        start,
    input  wire [31:0] src,
    input  wire [31:0] dst,
    input  wire [7:0]  len,
    input  wire        bad_wlast,
    output reg         done,
    output reg  [31:0] m_axi_mem_araddr,
    output reg  [7:0]  m_axi_mem_arlen,
    output wire [2:0]  m_axi_mem_arsize,
    output wire [1:0]  m_axi_mem_arburst,
    output reg         m_axi_mem_arvalid,
    input  wire        m_axi_mem_arready,
    input  wire [31:0] m_axi_mem_rdata,
    input  wire [1:0]  m_axi_mem_rresp,
    input  wire        m_axi_mem_rlast,
    input  wire        m_axi_mem_rvalid,
    output wire        m_axi_mem_rready,
    output reg  [31:0] m_axi_mem_awaddr,
    output reg  [7:0]  m_axi_mem_awlen,
    output wire [2:0]  m_axi_mem_awsize,
    output wire [1:0]  m_axi_mem_awburst,
    output reg         m_axi_mem_awvalid,
    input  wire        m_axi_mem_awready,
    output wire [31:0] m_axi_mem_wdata,
    output wire [3:0]  m_axi_mem_wstrb,
    output wire        m_axi_mem_wlast,
    output reg         m_axi_mem_wvalid,
    input  wire        m_axi_mem_wready,
    input  wire [1:0]  m_axi_mem_bresp,
    input  wire        m_axi_mem_bvalid,
    output wire        m_axi_mem_bready
);
    localparam IDLE = 3'd0, AR = 3'd1, R = 3'd2, AW = 3'd3, W = 3'd4, B = 3'd5, DONE = 3'd6;
    reg [2:0] state;
    reg [31:0] buffer [0:15];
    reg [3:0] count;
    assign m_axi_mem_arsize = 3'd2;
    assign m_axi_mem_arburst = 2'd1;
    assign m_axi_mem_awsize = 3'd2;
    assign m_axi_mem_awburst = 2'd1;
    assign m_axi_mem_rready = state == R;
    assign m_axi_mem_bready = state == B;
    assign m_axi_mem_wdata = buffer[count];
    assign m_axi_mem_wstrb = 4'hf;
    assign m_axi_mem_wlast = bad_wlast ? ({4'd0, count} == m_axi_mem_awlen - 8'd1)
                                       : ({4'd0, count} == m_axi_mem_awlen);
    always @(posedge clk) begin
        if (rst) begin
            state <= IDLE;
            done <= 1'b0;
            m_axi_mem_arvalid <= 1'b0;
            m_axi_mem_awvalid <= 1'b0;
            m_axi_mem_wvalid <= 1'b0;
            count <= 4'd0;
        end else begin
            case (state)
                IDLE: if (start) begin
                    m_axi_mem_araddr <= src;
                    m_axi_mem_arlen <= len;
                    m_axi_mem_awaddr <= dst;
                    m_axi_mem_awlen <= len;
                    m_axi_mem_arvalid <= 1'b1;
                    state <= AR;
                end
                AR: if (m_axi_mem_arready) begin
                    m_axi_mem_arvalid <= 1'b0;
                    count <= 4'd0;
                    state <= R;
                end
                R: if (m_axi_mem_rvalid) begin
                    buffer[count] <= m_axi_mem_rdata;
                    count <= count + 4'd1;
                    if (m_axi_mem_rlast) begin
                        m_axi_mem_awvalid <= 1'b1;
                        state <= AW;
                    end
                end
                AW: if (m_axi_mem_awready) begin
                    m_axi_mem_awvalid <= 1'b0;
                    m_axi_mem_wvalid <= 1'b1;
                    count <= 4'd0;
                    state <= W;
                end
                W: if (m_axi_mem_wready) begin
                    count <= count + 4'd1;
                    if (m_axi_mem_wlast) begin
                        m_axi_mem_wvalid <= 1'b0;
                        state <= B;
                    end
                end
                B: if (m_axi_mem_bvalid) begin
                    done <= 1'b1;
                    state <= DONE;
                end
                default: state <= DONE;
            endcase
        end
    end
    wire unused = &{1'b0, m_axi_mem_rresp, m_axi_mem_bresp};
endmodule
"#;

fn master() -> VerilatedModel {
    let i = PortSpec::input;
    let o = PortSpec::output;
    let p = |s: &str| format!("m_axi_mem_{s}");
    let spec = DesignSpec {
        top: "axi_copy".into(),
        sources: vec![("axi_copy.v".into(), MASTER.into())],
        ports: vec![
            i("rst", 1),
            i("start", 1),
            i("src", 32),
            i("dst", 32),
            i("len", 8),
            i("bad_wlast", 1),
            o("done", 1),
            o(&p("araddr"), 32),
            o(&p("arlen"), 8),
            o(&p("arsize"), 3),
            o(&p("arburst"), 2),
            o(&p("arvalid"), 1),
            i(&p("arready"), 1),
            i(&p("rdata"), 32),
            i(&p("rresp"), 2),
            i(&p("rlast"), 1),
            i(&p("rvalid"), 1),
            o(&p("rready"), 1),
            o(&p("awaddr"), 32),
            o(&p("awlen"), 8),
            o(&p("awsize"), 3),
            o(&p("awburst"), 2),
            o(&p("awvalid"), 1),
            i(&p("awready"), 1),
            o(&p("wdata"), 32),
            o(&p("wstrb"), 4),
            o(&p("wlast"), 1),
            o(&p("wvalid"), 1),
            i(&p("wready"), 1),
            i(&p("bresp"), 2),
            i(&p("bvalid"), 1),
            o(&p("bready"), 1),
        ],
        clock: "clk".into(),
    };
    Verilator::build(&spec, &opts())
        .unwrap()
        .instantiate()
        .unwrap()
}

/// Done once the master's `done` is high.
struct UntilDone {
    done: coforge_sim::OutputPort,
    seen: bool,
}

impl Agent for UntilDone {
    fn drive(&mut self, _cycle: u64, _pins: &mut Pins) {}
    fn observe(&mut self, _cycle: u64, pins: &Pins) {
        self.seen |= pins.get(self.done) & 1 == 1;
    }
    fn done(&self) -> bool {
        self.seen
    }
}

struct Copy {
    memory: Vec<u8>,
    cycles: u64,
    checker: Result<(), String>,
}

/// Copies `len + 1` beats from `src` to `dst` in a 16 KiB memory filled with a byte pattern.
fn copy(src: u64, dst: u64, len: u64, bad_wlast: bool, stall_rate: f64) -> Copy {
    let mut m = master();
    let pins = m.pins();
    let timing = Axi4Timing {
        latency: 3,
        stall_rate,
        seed: 7,
    };
    let mut memory = Axi4Memory::new(pins, "m_axi_mem", 16384, timing).unwrap();
    for (k, b) in memory.bytes_mut().iter_mut().enumerate() {
        *b = (k * 7 + k / 256) as u8;
    }
    let reset = ResetPin {
        port: pins.input("rst").unwrap(),
        active_low: false,
    };
    let mut checker = Axi4Checker::new(pins, "m_axi_mem")
        .unwrap()
        .with_reset(reset, 1);
    let mut until = UntilDone {
        done: pins.output("done").unwrap(),
        seen: false,
    };
    for (name, v) in [
        ("src", src),
        ("dst", dst),
        ("len", len),
        ("bad_wlast", bad_wlast as u64),
    ] {
        let port = m.input(name).unwrap();
        m.set(port, v);
    }
    let (rst, start) = (m.input("rst").unwrap(), m.input("start").unwrap());
    m.set(rst, 1);
    for _ in 0..2 {
        m.cycle_with(&mut [&mut memory, &mut checker]).unwrap();
    }
    m.set(rst, 0);
    m.set(start, 1);
    let first = m.cycle();
    m.cycle_with(&mut [&mut memory, &mut checker]).unwrap();
    m.set(start, 0);
    // A broken master may never finish: the run then ends at the limit.
    let _ = m.run_until_done(&mut [&mut memory, &mut checker, &mut until], 5000);
    memory.check().unwrap();
    Copy {
        memory: memory.bytes().to_vec(),
        cycles: m.cycle() - first,
        checker: checker.check().map_err(|e| e.to_string()),
    }
}

#[test]
fn a_burst_copy_lands_under_random_stalls_on_every_channel() {
    let mut cycles = Vec::new();
    for rate in [0.0, 0.3, 0.9] {
        let c = copy(0x100, 0x2ff0 - 0x30, 15, false, rate);
        assert_eq!(c.checker, Ok(()), "stall rate {rate}");
        let (src, dst) = (0x100usize, 0x2fc0usize);
        assert_eq!(
            &c.memory[dst..dst + 64],
            &c.memory[src..src + 64],
            "stall rate {rate}: the copy"
        );
        assert_ne!(c.memory[dst + 64], c.memory[src + 64], "one burst only");
        cycles.push(c.cycles);
    }
    println!("16-beat copy, cycles at 0/30/90% stalls: {cycles:?}");
    assert!(
        cycles[0] < cycles[1] && cycles[1] < cycles[2],
        "cycles at 0/30/90% stalls: {cycles:?}"
    );
}

#[test]
fn the_checker_fails_a_write_burst_that_ends_early() {
    let c = copy(0x100, 0x800, 7, true, 0.3);
    let msg = c.checker.expect_err("WLAST one beat early must fail");
    assert!(msg.contains("WLAST is 1 on beat 7"), "{msg}");
    assert!(msg.contains("AWLEN is 7"), "{msg}");
}

#[test]
fn the_checker_fails_a_burst_across_a_4_kib_boundary() {
    // 16 beats of 4 bytes from 0x0ff8 end at 0x1038: across 0x1000.
    let c = copy(0xff8, 0x2000, 15, false, 0.0);
    let msg = c.checker.expect_err("a 4 KiB crossing must fail");
    assert!(msg.contains("crosses a 4 KiB boundary"), "{msg}");
    assert!(msg.contains("0xff8"), "{msg}");
}
