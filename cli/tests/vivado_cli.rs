//! `coforge vivado`: the scripts are byte-identical on regeneration, `build.tcl` reads exactly the
//! files of each top's filelist (all present in the folder), the default part follows the engine,
//! and bad parts, clocks and configs are refused with nothing written. Vivado itself is not run.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{coforge, is_empty_or_missing, stderr, Case, SMALL};

fn repo_config(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs")
        .join(name)
        .display()
        .to_string()
}

fn vivado(config: &str, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["vivado", "--config", config, "--out", out];
    args.extend_from_slice(extra);
    coforge(&args, &[])
}

/// Every file of a folder, by name, with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// The input files of a script: `[file join $here NAME]` read by `read_verilog` or `read_xdc`, or
/// listed alone on a line (the sources `package_top` gets), with the command. Outputs (under
/// `build/` and `ip/`) are written by Vivado and are not looked for.
fn read_paths(tcl: &str) -> Vec<(String, String)> {
    tcl.lines()
        .filter_map(|l| {
            let l = l.trim();
            let cmd = l.split_whitespace().next()?;
            if !matches!(cmd, "read_verilog" | "read_xdc" | "[file") {
                return None;
            }
            let (_, rest) = l.split_once("[file join $here ")?;
            let name = rest.split(']').next()?;
            Some((cmd.to_string(), name.to_string()))
        })
        .collect()
}

#[test]
fn regeneration_is_byte_identical_and_build_tcl_reads_each_filelist() {
    let c = Case::new(SMALL);
    let config = c.arg("c.toml");
    let (a, b) = (c.arg("a"), c.arg("b"));
    let o = vivado(&config, &a, &["--clock-mhz", "300"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = vivado(&config, &b, &["--clock-mhz", "300"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (first, second) = (contents(&c.path("a")), contents(&c.path("b")));
    assert_eq!(first, second, "two generations differ");
    for f in [
        "build.tcl",
        "package_ip.tcl",
        "stce_top.xdc",
        "README.md",
        "stce_top.f",
    ] {
        assert!(first.contains_key(f), "{f} missing: {:?}", first.keys());
    }

    let dir = c.path("a");
    let build = read(&dir, "build.tcl");
    let reads = read_paths(&build);
    for (cmd, name) in &reads {
        assert!(dir.join(name).is_file(), "{cmd} {name}: not in the folder");
    }
    let verilog: Vec<&str> = reads
        .iter()
        .filter(|(cmd, _)| cmd == "read_verilog")
        .map(|(_, n)| n.as_str())
        .collect();
    // Each top reads exactly its filelist: the engine, then its AXI wrapper.
    let filelists = read(&dir, "stce_top.f") + &read(&dir, "stce_top_axi.f");
    assert_eq!(verilog, filelists.lines().collect::<Vec<_>>());
    assert!(reads.contains(&("read_xdc".to_string(), "stce_top.xdc".to_string())));
    for step in [
        "synth_design -top $top -part $part",
        "opt_design",
        "place_design",
        "route_design",
        "report_utilization -file",
        "report_timing_summary -file",
        "report_power -file",
        "write_checkpoint",
        "set part xcvu9p-fsgd2104-2L-e",
        "implement stce_top",
    ] {
        assert!(build.contains(step), "build.tcl lacks `{step}`");
    }
    // 300 MHz: 3.333 ns on the clock port.
    assert!(
        read(&dir, "stce_top.xdc").contains("create_clock -period 3.333 -name clk [get_ports clk]")
    );
    assert!(read(&dir, "stce_top_axi.xdc")
        .contains("create_clock -period 3.333 -name aclk [get_ports aclk]"));
    let package = read(&dir, "package_ip.tcl");
    let sources: Vec<String> = read_paths(&package).into_iter().map(|(_, n)| n).collect();
    assert_eq!(sources, filelists.lines().collect::<Vec<_>>());
    for step in [
        "ipx::package_project",
        "ipx::infer_bus_interfaces $vlnv $core",
        "xilinx.com:interface:axis_rtl:1.0",
        "ipx::associate_bus_interfaces -busif",
        "set_property version 1.0 $core",
        "package_top stce_top",
    ] {
        assert!(package.contains(step), "package_ip.tcl lacks `{step}`");
    }
    let readme = read(&dir, "README.md");
    assert!(readme.contains("vivado -mode batch -source build.tcl"));
    assert!(readme.contains("did not run"));
}

#[test]
fn the_default_part_follows_the_engine_and_part_overrides_it() {
    let c = Case::new(SMALL);
    let out = c.arg("deform");
    let o = vivado(
        &repo_config("deform-plain.toml"),
        &out,
        &["--clock-mhz", "250"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let build = read(&c.path("deform"), "build.tcl");
    assert!(build.contains("set part xczu3eg-sbva484-1-e"), "{build}");
    assert!(build.contains("Ultra96"));
    // The deformable engine's AXI wrapper is built and packaged like every other top.
    let package = read(&c.path("deform"), "package_ip.tcl");
    assert!(build.contains("deform_top_axi"), "{build}");
    assert!(package.contains("deform_top_axi"), "{package}");
    let out = c.arg("given");
    let o = vivado(
        &c.arg("c.toml"),
        &out,
        &["--clock-mhz", "100", "--part", "xc7z020clg400-1"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let build = read(&c.path("given"), "build.tcl");
    assert!(build.contains("set part xc7z020clg400-1\n") && build.contains("given with --part"));
    assert!(read(&c.path("given"), "stce_top.xdc").contains("-period 10.000"));
}

#[test]
fn bad_parts_clocks_and_configs_are_refused_with_nothing_written() {
    let c = Case::new(SMALL);
    std::fs::write(
        c.path("bad.toml"),
        "[stce]\nrows = 0\ncols = 2\nn = 2\nm = 4\n",
    )
    .unwrap();
    let (config, bad, out) = (c.arg("c.toml"), c.arg("bad.toml"), c.arg("out"));
    let cases: [(&str, &[&str], i32, &str); 7] = [
        (&config, &["--clock-mhz", "0"], 2, "positive, finite"),
        (&config, &["--clock-mhz", "-250"], 2, "positive, finite"),
        (&config, &["--clock-mhz", "nan"], 2, "positive, finite"),
        (&config, &["--clock-mhz", "inf"], 2, "positive, finite"),
        (&config, &["--clock-mhz", "250e6"], 2, "in MHz"),
        (
            &config,
            &["--clock-mhz", "250", "--part", "xcvu9p;exit"],
            2,
            "not a Xilinx part name",
        ),
        (&bad, &["--clock-mhz", "250"], 1, "stce.rows"),
    ];
    for (config, extra, code, needle) in cases {
        let o = vivado(config, &out, extra);
        assert_eq!(o.status.code(), Some(code), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{extra:?}: {}", stderr(&o));
        assert!(is_empty_or_missing(&c.path("out")), "{extra:?} wrote files");
    }
}

#[test]
fn package_ip_packages_every_wrapper_of_a_training_config_byte_identically() {
    let c = Case::new(
        "[stce]\nrows = 2\ncols = 2\ndtype = \"fp16\"\nn = 2\nm = 4\n\
         [train]\nsore_lanes = 2\nwuve_lanes = 2\n",
    );
    let config = c.arg("c.toml");
    let (a, b) = (c.arg("a"), c.arg("b"));
    for out in [&a, &b] {
        let o = vivado(&config, out, &["--clock-mhz", "250"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(
        contents(&c.path("a")),
        contents(&c.path("b")),
        "two generations differ"
    );
    let dir = c.path("a");
    let package = read(&dir, "package_ip.tcl");
    let sources: Vec<String> = read_paths(&package).into_iter().map(|(_, n)| n).collect();
    let mut filelists = String::new();
    for top in ["stce_top", "sore_top", "wuve_top"] {
        filelists += &read(&dir, &format!("{top}.f"));
    }
    for top in ["stce_top_axi", "sore_top_axi", "wuve_top_axi"] {
        assert!(
            package.contains(&format!("package_top {top}")),
            "package_ip.tcl does not package {top}"
        );
        filelists += &read(&dir, &format!("{top}.f"));
        // Interface inference needs Xilinx's names on the wrapper's ports.
        let verilog = read(&dir, &format!("{top}.v"));
        for port in [
            "s_axis_in_tdata",
            "m_axis_out_tready",
            "s_axi_ctrl_awaddr",
            "aresetn",
        ] {
            assert!(verilog.contains(port), "{top} has no port {port}");
        }
    }
    assert_eq!(sources, filelists.lines().collect::<Vec<_>>());
    for (_, name) in read_paths(&package) {
        assert!(dir.join(&name).is_file(), "{name}: not in the folder");
    }
    // The lane wrappers' streams can end with a partial beat: they carry TKEEP.
    assert!(read(&dir, "sore_top_axi.v").contains("s_axis_in_tkeep"));
    assert!(read(&dir, "wuve_top_axi.v").contains("m_axis_out_tkeep"));
}

#[test]
fn the_system_tops_axi_wrapper_is_listed_and_packaged_with_its_aximm_master() {
    let c = Case::new(SMALL);
    let out = c.arg("sat");
    let o = vivado(
        &repo_config("sat-4x4-2of8.toml"),
        &out,
        &["--clock-mhz", "200"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = c.path("sat");
    let build = read(&dir, "build.tcl");
    assert!(build.contains("set part xcvu9p-fsgd2104-2L-e"), "{build}");
    assert!(build.contains("implement sat_top_axi"), "{build}");
    // The wrapper's filelist: the system top's files, then the wrapper's own.
    let filelist = read(&dir, "sat_top_axi.f");
    let files: Vec<&str> = filelist.lines().collect();
    assert_eq!(files.last(), Some(&"sat_top_axi.v"));
    for f in read(&dir, "sat_top.f").lines() {
        assert!(files.contains(&f), "sat_top_axi.f lacks {f}");
    }
    for (_, name) in read_paths(&build) {
        assert!(dir.join(&name).is_file(), "{name}: not in the folder");
    }
    let package = read(&dir, "package_ip.tcl");
    assert!(package.contains("package_top sat_top_axi"));
    assert!(package.contains("xilinx.com:interface:aximm_rtl:1.0"));
    // Interface inference needs Xilinx's names: an AXI4 master and an AXI4-Lite slave.
    let verilog = read(&dir, "sat_top_axi.v");
    for port in [
        "m_axi_mem_araddr",
        "m_axi_mem_arlen",
        "m_axi_mem_rlast",
        "m_axi_mem_awburst",
        "m_axi_mem_wstrb",
        "m_axi_mem_wlast",
        "m_axi_mem_bresp",
        "s_axi_ctrl_awaddr",
        "s_axi_ctrl_rdata",
        "aclk",
        "aresetn",
    ] {
        assert!(verilog.contains(port), "sat_top_axi has no port {port}");
    }
    assert!(read(&dir, "sat_top_axi.xdc").contains("[get_ports aclk]"));
}
