//! Icarus Verilog backend: an independent second simulator with the same
//! cycle semantics as the Verilator shim (see the crate docs).

use std::fmt::Write as _;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::frames::{Layout, Slot, Stimulus, Trace};
use crate::tools::{self, ToolVersion, IVERILOG, VVP};
use crate::{is_compiled_source, DesignSpec, SimError, Simulator};

/// A design compiled with `iverilog`, run with `vvp`. Every run starts a new
/// simulation from time 0 (unlike [`crate::VerilatedModel`]). X/Z output bits
/// read as 0 and are reported by [`Trace::unknown_words`].
#[derive(Debug)]
pub struct Icarus {
    layout: Arc<Layout>,
    workdir: PathBuf,
    vvp: PathBuf,
}

const DONE: &str = "coforge-done";

impl Icarus {
    /// Version of `iverilog` (`$COFORGE_IVERILOG` or `iverilog`).
    pub fn version() -> Result<ToolVersion, SimError> {
        IVERILOG.version(&IVERILOG.resolve(), "-V")
    }

    /// Writes the sources and a testbench into `workdir` (created if needed;
    /// one design per directory) and compiles them.
    pub fn new(spec: &DesignSpec, workdir: &Path) -> Result<Self, SimError> {
        let layout = Layout::new(spec)?;
        let iverilog = IVERILOG.resolve();
        let v = IVERILOG.version(&iverilog, "-V")?;
        if !v.at_least(10, 0) {
            return Err(SimError::ToolTooOld {
                tool: IVERILOG.describe(&iverilog),
                found: v.text,
                required: "10.0".into(),
                fix: "install a newer Icarus Verilog (`apt-get install iverilog`)".into(),
            });
        }
        let src = workdir.join("src");
        tools::create_dir(&src)?;
        let mut files = Vec::new();
        for (name, text) in &spec.sources {
            let p = src.join(name);
            tools::write_file(&p, text)?;
            if is_compiled_source(name) {
                files.push(p);
            }
        }
        let tb = workdir.join("coforge_tb.v");
        tools::write_file(&tb, testbench(spec, &layout))?;
        let log = workdir.join("build.log");
        let _ = std::fs::remove_file(&log);
        let vvp_file = workdir.join("sim.vvp");
        let sv = spec.sources.iter().any(|(n, _)| n.ends_with(".sv"));
        let mut cmd = Command::new(&iverilog);
        cmd.arg(if sv { "-g2012" } else { "-g2005" })
            .arg("-o")
            .arg(&vvp_file)
            .args(["-s", "coforge_tb"])
            .arg(format!("-I{}", src.display()))
            .args(&files)
            .arg(&tb);
        if !tools::run_logged(&IVERILOG, &mut cmd, &log)? {
            return Err(SimError::BuildFailed {
                tail: tools::tail(&log, 20),
                log,
            });
        }
        // iverilog only warns about width mismatches and unconnected ports;
        // for us those mean the spec does not describe the design.
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let bad: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("expects") || l.contains("dangling"))
            .collect();
        if !bad.is_empty() {
            return Err(SimError::PortMismatch {
                detail: format!("{} (see {}): {}", spec.top, log.display(), bad.join("; ")),
            });
        }
        Ok(Icarus {
            layout,
            workdir: workdir.to_path_buf(),
            vvp: vvp_binary(&iverilog),
        })
    }
}

/// `$COFORGE_VVP`, else `vvp` beside an explicitly given iverilog, else `vvp`.
fn vvp_binary(iverilog: &Path) -> PathBuf {
    if std::env::var_os(VVP.env).is_some_and(|v| !v.is_empty()) {
        return VVP.resolve();
    }
    match iverilog.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && dir.join("vvp").is_file() => dir.join("vvp"),
        _ => PathBuf::from("vvp"),
    }
}

fn testbench(spec: &DesignSpec, layout: &Layout) -> String {
    let mut decl = String::new();
    let mut init = String::new();
    let mut read = String::new();
    let mut conns = vec![format!(".{}(coforge_clk)", spec.clock)];
    for s in &layout.inputs {
        let _ = writeln!(decl, "    reg [{}:0] i_{};", s.width - 1, s.name);
        let _ = writeln!(init, "        i_{} = 0;", s.name);
        let _ = writeln!(
            read,
            "            r = $fscanf(fi, \"%h\", i_{n}); if (r != 1) begin $display(\"COFORGE_ERROR: bad input frame %0d (port {n})\", cyc); $finish; end",
            n = s.name
        );
        conns.push(format!(".{n}(i_{n})", n = s.name));
    }
    for s in &layout.outputs {
        let _ = writeln!(decl, "    wire [{}:0] o_{};", s.width - 1, s.name);
        conns.push(format!(".{n}(o_{n})", n = s.name));
    }
    let fmt = vec!["%h"; layout.outputs.len()].join(" ");
    let outs: String = layout
        .outputs
        .iter()
        .map(|s| format!(", o_{}", s.name))
        .collect();
    format!(
        r#"// Generated by coforge-sim for top module {top}. Do not edit.
// Cycle i: at time 10*i the clock falls and frame i is applied; outputs are
// sampled at 10*i+5 after settling, just before the rising edge.
module coforge_tb;
    reg coforge_clk;
    reg coforge_cap;
{decl}    reg [8*2048-1:0] in_path;
    reg [8*2048-1:0] out_path;
    reg [63:0] n;
    reg [63:0] cyc;
    integer fi, fo, r;

    {top} dut ({conns});

    initial begin
        coforge_clk = 1'b0;
        coforge_cap = 1'b0;
{init}        if (!$value$plusargs("in=%s", in_path) || !$value$plusargs("out=%s", out_path) || !$value$plusargs("n=%d", n)) begin
            $display("COFORGE_ERROR: missing +in= +out= +n= arguments");
            $finish;
        end
        fi = $fopen(in_path, "r");
        fo = $fopen(out_path, "w");
        if (fi == 0 || fo == 0) begin
            $display("COFORGE_ERROR: cannot open the frame files");
            $finish;
        end
        for (cyc = 0; cyc < n; cyc = cyc + 1) begin
            r = $fscanf(fi, "%h", coforge_cap); if (r != 1) begin $display("COFORGE_ERROR: bad input frame %0d", cyc); $finish; end
{read}            coforge_clk = 1'b0;
            #5;
            if (coforge_cap) $fdisplay(fo, "{fmt}"{outs});
            coforge_clk = 1'b1;
            #5;
        end
        $fdisplay(fo, "{DONE} %0d", n);
        $fclose(fo);
        $fclose(fi);
        $finish;
    end
endmodule
"#,
        top = spec.top,
        conns = conns.join(", "),
    )
}

/// Appends the hex digits of a port value (exactly ceil(width/4) digits).
fn push_hex(out: &mut Vec<u8>, words: &[u32], width: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for d in (0..width.div_ceil(4) as usize).rev() {
        let nibble = (words[d / 8] >> ((d % 8) * 4)) & 0xf;
        out.push(HEX[nibble as usize]);
    }
}

/// Parses one `%h` field into value and X/Z-mask words.
fn parse_hex(tok: &str, slot: &Slot, value: &mut [u32], unknown: &mut [u32]) -> Result<(), String> {
    for (d, c) in tok.bytes().rev().enumerate() {
        let (v, x) = match c {
            b'0'..=b'9' => ((c - b'0') as u32, 0),
            b'a'..=b'f' => ((c - b'a' + 10) as u32, 0),
            b'A'..=b'F' => ((c - b'A' + 10) as u32, 0),
            b'x' | b'X' | b'z' | b'Z' => (0, 0xf),
            _ => return Err(format!("bad hex digit {:?} in {tok:?}", c as char)),
        };
        let (w, sh) = (d / 8, (d % 8) * 4);
        if w >= slot.words {
            if v != 0 || x != 0 {
                return Err(format!("{tok:?} is wider than {} bits", slot.width));
            }
            continue;
        }
        value[w] |= v << sh;
        unknown[w] |= x << sh;
    }
    // Partial-nibble X marks whole nibbles; keep masks within the width.
    unknown[slot.words - 1] &= slot.top_mask;
    Ok(())
}

impl Simulator for Icarus {
    fn run(&mut self, stim: &Stimulus) -> Result<Trace, SimError> {
        let layout = &self.layout;
        if !layout.same_design(&stim.layout) {
            return Err(SimError::PortMismatch {
                detail: format!(
                    "stimulus is for `{}`, simulator is `{}`",
                    stim.layout.signature, layout.signature
                ),
            });
        }
        let in_path = self.workdir.join("frames_in.hex");
        let out_path = self.workdir.join("frames_out.hex");
        let log = self.workdir.join("run.log");
        {
            let f = std::fs::File::create(&in_path)
                .map_err(SimError::io(format!("creating {}", in_path.display())))?;
            let mut w = BufWriter::new(f);
            let mut line = Vec::new();
            for (c, &cap) in stim.capture.iter().enumerate() {
                line.clear();
                line.push(if cap != 0 { b'1' } else { b'0' });
                let frame = &stim.frames[c * layout.in_words..(c + 1) * layout.in_words];
                for s in &layout.inputs {
                    line.push(b' ');
                    push_hex(&mut line, &frame[s.offset..s.offset + s.words], s.width);
                }
                line.push(b'\n');
                w.write_all(&line)
                    .map_err(SimError::io(format!("writing {}", in_path.display())))?;
            }
            w.flush()
                .map_err(SimError::io(format!("writing {}", in_path.display())))?;
        }
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new(&self.vvp);
        cmd.current_dir(&self.workdir)
            .arg("-n")
            .arg("sim.vvp")
            .arg(format!("+in={}", in_path.display()))
            .arg(format!("+out={}", out_path.display()))
            .arg(format!("+n={}", stim.cycles()));
        let ok = tools::run_logged(&VVP, &mut cmd, &log)?;
        let fail = |why: String| SimError::Runtime {
            message: format!(
                "icarus: {why}; log {}:\n{}",
                log.display(),
                tools::tail(&log, 20)
            ),
        };
        if !ok {
            return Err(fail("vvp failed".into()));
        }
        let f =
            std::fs::File::open(&out_path).map_err(|e| fail(format!("no output frames ({e})")))?;
        let n_cap = stim.captures();
        let mut data = vec![0u32; n_cap * layout.out_words];
        let mut unknown = vec![0u32; n_cap * layout.out_words];
        let mut got = 0;
        let mut done = false;
        for line in std::io::BufReader::new(f).lines() {
            let line = line.map_err(SimError::io(format!("reading {}", out_path.display())))?;
            if line.starts_with(DONE) {
                done = true;
                break;
            }
            if got == n_cap {
                return Err(fail(format!(
                    "more output frames than the {n_cap} captures"
                )));
            }
            let base = got * layout.out_words;
            let mut toks = line.split_whitespace();
            for s in &layout.outputs {
                let tok = toks
                    .next()
                    .ok_or_else(|| fail(format!("short output frame {got}: {line:?}")))?;
                let r = base + s.offset..base + s.offset + s.words;
                parse_hex(tok, s, &mut data[r.clone()], &mut unknown[r])
                    .map_err(|e| fail(format!("output frame {got}, port {}: {e}", s.name)))?;
            }
            got += 1;
        }
        if !done || got != n_cap {
            return Err(fail(format!(
                "the simulation stopped early ({got} of {n_cap} captures; did the design call $finish or $stop?)"
            )));
        }
        Ok(Trace {
            layout: layout.clone(),
            len: n_cap,
            data,
            unknown: Some(unknown),
            cycles: stim.cycles(),
            first_cycle: 0,
        })
    }

    fn name(&self) -> &str {
        "icarus"
    }
}
