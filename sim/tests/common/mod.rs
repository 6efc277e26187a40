//! Small hand-written designs shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use coforge_sim::{BuildOptions, DesignSpec, PortSpec};

/// Builds shared by tests go to one cache under the target directory, so
/// repeated `cargo test` runs hit the cache; tests that need a fresh build
/// use their own temporary cache.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("coforge-verilator-cache")
}

pub fn opts() -> BuildOptions {
    BuildOptions {
        cache_dir: Some(cache_dir()),
        ..Default::default()
    }
}

pub fn counter() -> DesignSpec {
    DesignSpec {
        top: "counter".into(),
        sources: vec![(
            "counter.v".into(),
            r#"`default_nettype none
module counter (
    input  wire       clk,
    input  wire       rst,
    input  wire       en,
    output reg  [7:0] count,
    output wire       wrap
);
    always @(posedge clk) begin
        if (rst) count <= 8'd0;
        else if (en) count <= count + 8'd1;
    end
    assign wrap = en && count == 8'hff;
endmodule
`default_nettype wire
"#
            .into(),
        )],
        ports: vec![
            PortSpec::input("rst", 1),
            PortSpec::input("en", 1),
            PortSpec::output("count", 8),
            PortSpec::output("wrap", 1),
        ],
        clock: "clk".into(),
    }
}

/// 100-bit and 33-bit ports: a combinational sum and a registered accumulator.
pub fn wide_adder() -> DesignSpec {
    DesignSpec {
        top: "wide_adder".into(),
        sources: vec![(
            "wide_adder.v".into(),
            r#"`default_nettype none
module wide_adder (
    input  wire          clk,
    input  wire          rst,
    input  wire [99:0]   a,
    input  wire [32:0]   b,
    output wire [99:0]   sum,
    output reg  [32:0]   acc,
    output wire [127:0]  echo
);
    assign sum = a + {67'd0, b};
    assign echo = {a[27:0], a};
    always @(posedge clk) begin
        if (rst) acc <= 33'd0;
        else acc <= acc + b;
    end
endmodule
`default_nettype wire
"#
            .into(),
        )],
        ports: vec![
            PortSpec::input("rst", 1),
            PortSpec::input("a", 100),
            PortSpec::input("b", 33),
            PortSpec::output("sum", 100),
            PortSpec::output("acc", 33),
            PortSpec::output("echo", 128),
        ],
        clock: "clk".into(),
    }
}

/// A 3-stage registered pipeline with a valid bit, in two files with an include.
pub fn pipeline() -> DesignSpec {
    DesignSpec {
        top: "pipe3".into(),
        sources: vec![
            ("pipe_defs.vh".into(), "`define PIPE_W 16\n".into()),
            (
                "stage.v".into(),
                r#"`default_nettype none
`include "pipe_defs.vh"
module stage (
    input  wire clk,
    input  wire rst,
    input  wire in_valid,
    input  wire [`PIPE_W-1:0] in_data,
    output reg  out_valid,
    output reg  [`PIPE_W-1:0] out_data
);
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            out_data  <= {`PIPE_W{1'b0}};
        end else begin
            out_valid <= in_valid;
            out_data  <= in_data * 16'd3 + 16'd1;
        end
    end
endmodule
`default_nettype wire
"#
                .into(),
            ),
            (
                "pipe3.v".into(),
                r#"`default_nettype none
`include "pipe_defs.vh"
module pipe3 (
    input  wire clk,
    input  wire rst,
    input  wire in_valid,
    input  wire [`PIPE_W-1:0] in_data,
    output wire out_valid,
    output wire [`PIPE_W-1:0] out_data
);
    wire v1, v2;
    wire [`PIPE_W-1:0] d1, d2;
    stage s1 (.clk(clk), .rst(rst), .in_valid(in_valid), .in_data(in_data), .out_valid(v1), .out_data(d1));
    stage s2 (.clk(clk), .rst(rst), .in_valid(v1), .in_data(d1), .out_valid(v2), .out_data(d2));
    stage s3 (.clk(clk), .rst(rst), .in_valid(v2), .in_data(d2), .out_valid(out_valid), .out_data(out_data));
endmodule
`default_nettype wire
"#
                .into(),
            ),
        ],
        ports: vec![
            PortSpec::input("rst", 1),
            PortSpec::input("in_valid", 1),
            PortSpec::input("in_data", 16),
            PortSpec::output("out_valid", 1),
            PortSpec::output("out_data", 16),
        ],
        clock: "clk".into(),
    }
}

/// A 4-entry FIFO with registered flags, plus a free-running cycle counter
/// (reset to 0) so the test can compare the design's own count of rising
/// edges with the cycle numbers the Rust side observes.
pub fn fifo() -> DesignSpec {
    DesignSpec {
        top: "fifo4".into(),
        sources: vec![(
            "fifo4.v".into(),
            r#"`default_nettype none
module fifo4 (
    input  wire        clk,
    input  wire        rst,
    input  wire        in_valid,
    output wire        in_ready,
    input  wire [15:0] in_data,
    output wire        out_valid,
    input  wire        out_ready,
    output wire [15:0] out_data,
    output reg  [31:0] edges
);
    reg [15:0] mem [0:3];
    reg [2:0] count;
    reg [1:0] rd, wr;
    wire push = in_valid && in_ready;
    wire pop = out_valid && out_ready;
    assign in_ready = count != 3'd4;
    assign out_valid = count != 3'd0;
    assign out_data = mem[rd];
    always @(posedge clk) begin
        if (rst) begin
            count <= 3'd0;
            rd <= 2'd0;
            wr <= 2'd0;
            edges <= 32'd0;
        end else begin
            edges <= edges + 32'd1;
            if (push) begin
                mem[wr] <= in_data;
                wr <= wr + 2'd1;
            end
            if (pop) rd <= rd + 2'd1;
            count <= count + {2'd0, push} - {2'd0, pop};
        end
    end
endmodule
`default_nettype wire
"#
            .into(),
        )],
        ports: vec![
            PortSpec::input("rst", 1),
            PortSpec::input("in_valid", 1),
            PortSpec::output("in_ready", 1),
            PortSpec::input("in_data", 16),
            PortSpec::output("out_valid", 1),
            PortSpec::input("out_ready", 1),
            PortSpec::output("out_data", 16),
            PortSpec::output("edges", 32),
        ],
        clock: "clk".into(),
    }
}

/// Deterministic pseudo-random numbers (xorshift64*), no dependency needed.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The counter with a unique comment: a new design, hence a new cache key, for this run.
pub fn fresh_counter() -> DesignSpec {
    let mut spec = counter();
    spec.sources[0]
        .1
        .push_str(&format!("// fresh {}\n", unique_tag()));
    spec
}

/// Build options with their own cache directory.
pub fn cache_in(dir: &std::path::Path) -> BuildOptions {
    BuildOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..Default::default()
    }
}

/// A unique suffix so a test can force a fresh build.
pub fn unique_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{nanos}", std::process::id())
}

/// The timestamps (`#t` lines) of a VCD file.
pub fn vcd_times(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix('#').and_then(|t| t.trim().parse().ok()))
        .collect()
}
