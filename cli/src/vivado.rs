//! `coforge vivado`: a folder to take to a machine with Vivado. Beside the generated Verilog and
//! filelists (what `coforge gen` writes), it holds:
//! - `build.tcl`: a non-project batch flow per top (out-of-context synthesis, opt, place, route,
//!   then utilization, timing-summary and power reports and a checkpoint under `build/<top>/`);
//! - `<top>.xdc`: `create_clock` at `--clock-mhz` on the top's clock port;
//! - `package_ip.tcl`: every top packaged as IP (`ipx::package_project`), with its bus interfaces
//!   inferred from Xilinx's port names and the clock and reset associated;
//! - `README.md`: how to run each script.
//!
//! Everything is text derived from the config, the part and the clock, so a regeneration is
//! byte-identical. coforge does not run Vivado; `coforge estimate` is the Yosys estimate.
//!
//! Default parts (when `--part` is not given): SAT was evaluated on a Xilinx VCU1525 card, whose
//! device is `xcvu9p-fsgd2104-2L-e`; CoDeNet on an Ultra96 board, `xczu3eg-sbva484-1-e`. A config
//! with a `[deform]` engine gets the Ultra96's part, any other the VCU1525's.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use coforge_generator::artifacts::{TopInfo, GENERATOR_VERSION};
use coforge_generator::config::Config;
use coforge_generator::rtl::Dir;

use crate::engine;
use crate::output::OutputDir;

/// The VCU1525's device: the board SAT (Fang et al., TCAD 2023) was evaluated on.
pub const VCU1525_PART: &str = "xcvu9p-fsgd2104-2L-e";
/// The Ultra96's device: the board CoDeNet (Huang et al., FPGA 2021) was evaluated on.
pub const ULTRA96_PART: &str = "xczu3eg-sbva484-1-e";

/// Fastest clock accepted: no Xilinx fabric closes timing above this.
const MAX_CLOCK_MHZ: f64 = 1000.0;

/// Clock port names, Xilinx's AXI and HLS conventions first (an AXI-wrapped top's clock), then
/// the bare engines' `clk`.
const CLOCK_PORTS: [&str; 3] = ["aclk", "ap_clk", "clk"];

#[derive(Args, Debug)]
pub struct VivadoArgs {
    /// Engine config (TOML)
    #[arg(long)]
    pub config: PathBuf,
    /// Xilinx part [default: xcvu9p-fsgd2104-2L-e (VCU1525, SAT's board); xczu3eg-sbva484-1-e
    /// (Ultra96, CoDeNet's board) for a config with a [deform] engine]
    #[arg(long, value_parser = parse_part)]
    pub part: Option<String>,
    /// Target clock in MHz, written as `create_clock` into each top's XDC
    #[arg(long, value_name = "F", value_parser = parse_clock, allow_negative_numbers = true)]
    pub clock_mhz: f64,
    /// Output folder: Verilog, filelists, build.tcl, package_ip.tcl, <top>.xdc, README.md
    #[arg(long)]
    pub out: PathBuf,
}

/// A Xilinx part name: `xc`, `xa` or `xq`, then letters and digits in dash-separated fields
/// (`xcvu9p-fsgd2104-2L-e`, `xc7z020clg400-1`). Anything else would also be unsafe in Tcl.
pub fn parse_part(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    let fields_ok = s
        .split('-')
        .all(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric()));
    let prefix_ok = ["xc", "xa", "xq"].iter().any(|p| lower.starts_with(p));
    if !fields_ok || !prefix_ok || s.len() < 6 || s.len() > 48 {
        return Err(format!(
            "`{s}` is not a Xilinx part name; give one like {VCU1525_PART} (VCU1525) or \
             {ULTRA96_PART} (Ultra96): xc/xa/xq, then letters and digits in fields joined by `-`"
        ));
    }
    Ok(s.to_string())
}

/// A clock frequency in MHz: a finite number above 0 and at most [`MAX_CLOCK_MHZ`].
pub fn parse_clock(s: &str) -> Result<f64, String> {
    let f: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of MHz (for example 250)"))?;
    if !f.is_finite() || f <= 0.0 {
        return Err(format!(
            "`{s}` MHz is not a clock; give a positive, finite frequency (for example 250)"
        ));
    }
    if f > MAX_CLOCK_MHZ {
        return Err(format!(
            "{s} MHz is above {MAX_CLOCK_MHZ} MHz, faster than any Xilinx fabric; give the \
             frequency in MHz (250, not 250e6)"
        ));
    }
    Ok(f)
}

/// The default part of a config, and the board it comes from.
pub fn default_part(cfg: &Config) -> (&'static str, &'static str) {
    if cfg.deform.is_some() {
        (ULTRA96_PART, "Ultra96, the board CoDeNet was evaluated on")
    } else {
        (VCU1525_PART, "VCU1525, the card SAT was evaluated on")
    }
}

/// The clock period in ns, as written into the XDC (three decimals: picoseconds).
fn period_ns(mhz: f64) -> String {
    format!("{:.3}", 1000.0 / mhz)
}

/// The top's clock port, by Xilinx's names first.
fn clock_port(top: &TopInfo) -> anyhow::Result<&str> {
    let inputs: Vec<&str> = top
        .ports
        .iter()
        .filter(|p| p.dir == Dir::Input && p.width == 1)
        .map(|p| p.name.as_str())
        .collect();
    match CLOCK_PORTS.iter().find(|c| inputs.contains(c)) {
        Some(c) => Ok(c),
        None => bail!(
            "top `{}` has no clock input named {}; coforge cannot write its create_clock",
            top.name,
            CLOCK_PORTS.join(", ")
        ),
    }
}

pub fn run(args: VivadoArgs) -> anyhow::Result<()> {
    let mut out = OutputDir::create(&args.out)?;
    let loaded = engine::load(&args.config)?;
    let r = &loaded.rendered;
    let (default, board) = default_part(&loaded.config);
    let part = match &args.part {
        Some(p) => Flow::Given(p.as_str()),
        None => Flow::Default(default, board),
    };
    let clocks: Vec<&str> = r
        .tops
        .iter()
        .map(clock_port)
        .collect::<anyhow::Result<_>>()?;
    let flow = Scripts {
        tops: &r.tops,
        clocks: &clocks,
        part,
        mhz: args.clock_mhz,
        config_hash: loaded.config.hash(),
    };
    for (name, text) in r.files() {
        out.add(name, text.clone().into_bytes());
    }
    for (top, clock) in r.tops.iter().zip(&clocks) {
        out.add(&xdc_name(top), flow.xdc(top, clock).into_bytes());
    }
    out.add("build.tcl", flow.build_tcl().into_bytes());
    out.add("package_ip.tcl", flow.package_tcl().into_bytes());
    out.add("README.md", flow.readme().into_bytes());
    out.commit()?;
    say!(
        "wrote Vivado scripts for {} on {} at {} MHz (period {} ns) into {}",
        r.tops
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        flow.part.name(),
        args.clock_mhz,
        period_ns(args.clock_mhz),
        args.out.display()
    );
    say!(
        "run there: vivado -mode batch -source build.tcl (coforge did not run Vivado; \
         `coforge estimate` gives Yosys estimates)"
    );
    Ok(())
}

fn xdc_name(top: &TopInfo) -> String {
    format!("{}.xdc", top.name)
}

/// Where the part came from, for the script headers.
#[derive(Clone, Copy)]
enum Flow<'a> {
    Given(&'a str),
    Default(&'static str, &'static str),
}

impl Flow<'_> {
    fn name(&self) -> &str {
        match self {
            Flow::Given(p) | Flow::Default(p, _) => p,
        }
    }
    fn origin(&self) -> String {
        match self {
            Flow::Given(_) => "given with --part".to_string(),
            Flow::Default(_, board) => format!("coforge's default: the {board}"),
        }
    }
}

struct Scripts<'a> {
    tops: &'a [TopInfo],
    clocks: &'a [&'a str],
    part: Flow<'a>,
    mhz: f64,
    config_hash: String,
}

impl Scripts<'_> {
    fn header(&self, what: &str, run: &str) -> String {
        format!(
            "# {what}\n\
             # Generated by coforge {GENERATOR_VERSION} from the config with hash {hash}.\n\
             # Part {part} ({origin}); clock {mhz} MHz.\n\
             # Run from any folder: {run}\n\
             # The Verilog is Verilog-2005; every path below is relative to this script's folder.\n\n\
             set part {part}\n\
             set here [file dirname [file normalize [info script]]]\n",
            hash = &self.config_hash[..16],
            part = self.part.name(),
            origin = self.part.origin(),
            mhz = self.mhz,
        )
    }

    /// `tops` as a Tcl list, and the check that `-tclargs` names only tops of this folder.
    fn top_selection(&self) -> String {
        let names: Vec<&str> = self.tops.iter().map(|t| t.name.as_str()).collect();
        format!(
            "\n# The tops to process: all of them, or those named after -tclargs.\n\
             set all_tops {{{all}}}\n\
             set tops $all_tops\n\
             if {{$argc > 0}} {{\n    \
                 set tops $argv\n    \
                 foreach t $tops {{\n        \
                     if {{[lsearch -exact $all_tops $t] < 0}} {{\n            \
                         error \"unknown top `$t`; this folder has: $all_tops\"\n        \
                     }}\n    \
                 }}\n\
             }}\n",
            all = names.join(" ")
        )
    }

    fn build_tcl(&self) -> String {
        let mut s = self.header(
            "Vivado non-project batch flow: synthesis, implementation and reports per top.",
            "vivado -mode batch -source build.tcl [-tclargs TOP...]",
        );
        s +=
            "# Results: build/<top>/{utilization,timing_summary,power}.rpt and <top>_routed.dcp.\n\
              # Synthesis is out of context: an engine is a block to embed, and its ports are\n\
              # not package pins (a 16 x 16 array has more of them than any package).\n";
        s += &self.top_selection();
        s += "\nproc implement {top} {\n    \
                  global part here\n    \
                  set out [file join $here build $top]\n    \
                  file mkdir $out\n    \
                  synth_design -top $top -part $part -mode out_of_context\n    \
                  opt_design\n    \
                  place_design\n    \
                  route_design\n    \
                  report_utilization -file [file join $out utilization.rpt]\n    \
                  report_timing_summary -file [file join $out timing_summary.rpt]\n    \
                  report_power -file [file join $out power.rpt]\n    \
                  write_checkpoint -force [file join $out ${top}_routed.dcp]\n    \
                  close_project\n\
              }\n";
        for top in self.tops {
            let _ = write!(
                s,
                "\n# {name}: {role}. The files of {filelist}, in its order.\n\
                 if {{[lsearch -exact $tops {name}] >= 0}} {{\n",
                name = top.name,
                role = top.role,
                filelist = top.filelist
            );
            for f in &top.files {
                let _ = writeln!(s, "    read_verilog [file join $here {f}]");
            }
            let _ = write!(
                s,
                "    read_xdc [file join $here {xdc}]\n    \
                     implement {name}\n\
                 }}\n",
                xdc = xdc_name(top),
                name = top.name
            );
        }
        s
    }

    fn xdc(&self, top: &TopInfo, clock: &str) -> String {
        format!(
            "# {name}: {role}. The clock for coforge's Vivado flow ({mhz} MHz).\n\
             create_clock -period {period} -name {clock} [get_ports {clock}]\n",
            name = top.name,
            role = top.role,
            mhz = self.mhz,
            period = period_ns(self.mhz),
        )
    }

    fn package_tcl(&self) -> String {
        let mut s = self.header(
            "Vivado IP packaging: every top as an IP core under ip/<top>/, for IP Integrator.",
            "vivado -mode batch -source package_ip.tcl [-tclargs TOP...]",
        );
        s += &self.top_selection();
        let freq_hz = (self.mhz * 1e6).round() as u64;
        let _ = write!(
            s,
            "\n# Interfaces are inferred from Xilinx's port names: AXI4-Stream (s_axis_<name>_tdata,\n\
             # ...), AXI4 and AXI4-Lite (m_axi_<name>_*, s_axi_<name>_*), clocks (aclk, ap_clk, clk)\n\
             # and resets (aresetn, ap_rst_n: active low; rst: active high). Every AXI interface is\n\
             # associated with the clock, and the clock with the reset.\n\
             set freq_hz {freq_hz}\n\
             proc package_top {{top sources}} {{\n    \
                 global part here freq_hz\n    \
                 create_project -force ip_$top [file join $here build ip_project $top] -part $part\n    \
                 add_files -norecurse $sources\n    \
                 set_property top $top [current_fileset]\n    \
                 update_compile_order -fileset sources_1\n    \
                 ipx::package_project -root_dir [file join $here ip $top] -vendor coforge \\\n        \
                     -library coforge -taxonomy /UserIP -import_files -set_current true\n    \
                 set core [ipx::current_core]\n    \
                 set_property vendor coforge $core\n    \
                 set_property library coforge $core\n    \
                 set_property name $top $core\n    \
                 set_property version 1.0 $core\n    \
                 set_property display_name \"coforge $top\" $core\n    \
                 set_property description \"coforge $top, generated from a coforge config\" $core\n    \
                 foreach vlnv {{xilinx.com:interface:axis_rtl:1.0 xilinx.com:interface:aximm_rtl:1.0 \\\n            \
                     xilinx.com:signal:clock_rtl:1.0 xilinx.com:signal:reset_rtl:1.0}} {{\n        \
                     ipx::infer_bus_interfaces $vlnv $core\n    \
                 }}\n    \
                 set clocks [ipx::get_bus_interfaces -of_objects $core \\\n        \
                     -filter {{BUS_TYPE_VLNV == xilinx.com:signal:clock:1.0}}]\n    \
                 set resets [ipx::get_bus_interfaces -of_objects $core \\\n        \
                     -filter {{BUS_TYPE_VLNV == xilinx.com:signal:reset:1.0}}]\n    \
                 foreach rst $resets {{\n        \
                     set name [get_property NAME $rst]\n        \
                     set polarity ACTIVE_HIGH\n        \
                     if {{[string match -nocase *n $name]}} {{ set polarity ACTIVE_LOW }}\n        \
                     set p [ipx::get_bus_parameters POLARITY -of_objects $rst]\n        \
                     if {{$p eq \"\"}} {{ set p [ipx::add_bus_parameter POLARITY $rst] }}\n        \
                     set_property value $polarity $p\n    \
                 }}\n    \
                 foreach clk $clocks {{\n        \
                     set clk_name [get_property NAME $clk]\n        \
                     set p [ipx::get_bus_parameters FREQ_HZ -of_objects $clk]\n        \
                     if {{$p eq \"\"}} {{ set p [ipx::add_bus_parameter FREQ_HZ $clk] }}\n        \
                     set_property value $freq_hz $p\n        \
                     foreach rst $resets {{\n            \
                         ipx::associate_bus_interfaces -clock $clk_name \\\n                \
                             -reset [get_property NAME $rst] $core\n        \
                     }}\n        \
                     foreach bus [ipx::get_bus_interfaces -of_objects $core \\\n                \
                         -filter {{BUS_TYPE_VLNV =~ xilinx.com:interface:axi*}}] {{\n            \
                         ipx::associate_bus_interfaces -busif [get_property NAME $bus] \\\n                \
                             -clock $clk_name $core\n        \
                     }}\n    \
                 }}\n    \
                 ipx::create_xgui_files $core\n    \
                 ipx::update_checksums $core\n    \
                 ipx::check_integrity $core\n    \
                 ipx::save_core $core\n    \
                 close_project\n\
             }}\n"
        );
        for top in self.tops {
            let _ = write!(
                s,
                "\n# {name}: {role}. The files of {filelist}, in its order.\n\
                 if {{[lsearch -exact $tops {name}] >= 0}} {{\n    package_top {name} [list",
                name = top.name,
                role = top.role,
                filelist = top.filelist
            );
            for f in &top.files {
                let _ = write!(s, " \\\n        [file join $here {f}]");
            }
            s += "]\n}\n";
        }
        s
    }

    fn readme(&self) -> String {
        let mut s = format!(
            "# Vivado flow for this coforge config\n\n\
             Generated by `coforge vivado` (coforge {GENERATOR_VERSION}, config hash `{hash}`) for the \
             part `{part}` ({origin}) at {mhz} MHz. coforge wrote these scripts but did not run \
             them: Vivado is not part of coforge's test machine. For Yosys resource estimates, run \
             `coforge estimate`.\n\n\
             The default parts: SAT (Fang et al., IEEE TCAD 2023) was evaluated on a Xilinx VCU1525 \
             card, `{VCU1525_PART}`, the default of tensor-engine and training configs; CoDeNet \
             (Huang et al., FPGA 2021) on an Ultra96 board, `{ULTRA96_PART}`, the default of configs \
             with a deformable-convolution engine. Regenerate with `--part` for another device.\n\n\
             ## Run\n\n\
             From any folder, with Vivado on `PATH`:\n\n\
             | command | what it does | results |\n\
             |---|---|---|\n\
             | `vivado -mode batch -source build.tcl` | out-of-context synthesis, `opt_design`, `place_design`, `route_design` of every top | `build/<top>/utilization.rpt`, `timing_summary.rpt`, `power.rpt`, `<top>_routed.dcp` |\n\
             | `vivado -mode batch -source package_ip.tcl` | packages every top as an IP core (vendor `coforge`, library `coforge`, version 1.0) with its interfaces inferred | `ip/<top>/component.xml` and sources, for IP Integrator's repository |\n\n\
             Add `-tclargs TOP...` to either command to process only those tops.\n\n\
             ## Files\n\n\
             | top | role | Verilog (filelist) | clock constraint |\n\
             |---|---|---|---|\n",
            hash = &self.config_hash[..16],
            part = self.part.name(),
            origin = self.part.origin(),
            mhz = self.mhz,
        );
        for (top, clock) in self.tops.iter().zip(self.clocks) {
            let _ = writeln!(
                s,
                "| `{name}` | {role} | `{filelist}` ({n} files) | `{xdc}`: `{clock}` at {mhz} MHz, period {period} ns |",
                name = top.name,
                role = top.role,
                filelist = top.filelist,
                n = top.files.len(),
                xdc = xdc_name(top),
                mhz = self.mhz,
                period = period_ns(self.mhz),
            );
        }
        s += "\nSynthesis is out of context (`synth_design -mode out_of_context`): an engine is a block \
              to embed in a design, and its ports are not package pins. The timing summary covers \
              register-to-register paths at the constrained clock.\n\n\
              The engines' ports are driven cycle by cycle (their protocols are in the `manifest.json` \
              port list and coforge's engine docs). Tops whose ports follow Xilinx's AXI names \
              (`s_axis_<name>_tdata`, `m_axi_<name>_*`, `aclk`, `aresetn`) are packaged with those \
              interfaces inferred; the bare engines are packaged with their clock and reset only.\n";
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_xilinx_names() {
        for p in [
            VCU1525_PART,
            ULTRA96_PART,
            "xc7z020clg400-1",
            "xa7a35tcpg236-2I",
        ] {
            assert_eq!(parse_part(p).as_deref(), Ok(p));
        }
        for p in [
            "",
            "xcvu9p--2",
            "xcvu9p-",
            "virtex",
            "xcvu9p fsgd",
            "xcvu9p;exit",
            "xc[exec rm]",
            "xc7$a",
        ] {
            let e = parse_part(p).unwrap_err();
            assert!(
                e.contains("not a Xilinx part") && e.contains(VCU1525_PART),
                "{e}"
            );
        }
    }

    #[test]
    fn clocks_are_positive_finite_megahertz() {
        assert_eq!(parse_clock("250"), Ok(250.0));
        assert_eq!(period_ns(250.0), "4.000");
        assert_eq!(period_ns(300.0), "3.333");
        for bad in ["0", "-5", "nan", "inf", "-inf", "abc", ""] {
            assert!(parse_clock(bad).is_err(), "{bad}");
        }
        assert!(parse_clock("250e6").unwrap_err().contains("in MHz"));
    }
}
