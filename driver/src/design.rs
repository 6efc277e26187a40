//! The bridge from generated designs to a simulator.

use coforge_generator::artifacts::Rendered;
use coforge_generator::rtl::{emit, Design, Dir, Port};
use coforge_sim::{DesignSpec, PortDir, PortSpec};

/// A top's ports as the simulator sees them: all but the clock, in declaration order.
pub fn sim_ports(ports: &[Port], clock: &str) -> Vec<PortSpec> {
    ports
        .iter()
        .filter(|p| p.name != clock)
        .map(|p| PortSpec {
            name: p.name.clone(),
            dir: match p.dir {
                Dir::Input => PortDir::Input,
                Dir::Output => PortDir::Output,
            },
            width: p.width,
        })
        .collect()
}

/// The simulator's view of one top of a rendered config: the Verilog files that top needs and
/// every one of its ports but the clock, in declaration order.
///
/// # Panics
/// If `top` is not a top of `rendered` (a programming error: tops come from the config).
pub fn design_spec_of(rendered: &Rendered, top: &str, clock: &str) -> DesignSpec {
    let info = rendered
        .tops
        .iter()
        .find(|t| t.name == top)
        .unwrap_or_else(|| panic!("`{top}` is not a top of this design"));
    DesignSpec {
        top: top.to_string(),
        // In the top's own filelist order, which is the order `emit::render_verilog` gives the
        // top's design alone: the same sources, so the same build-cache entry, as `unit_spec`.
        sources: info
            .files
            .iter()
            .map(|file| {
                rendered
                    .verilog
                    .iter()
                    .find(|(f, _)| f == file)
                    .cloned()
                    .expect("a top's files are rendered")
            })
            .collect(),
        ports: sim_ports(&info.ports, clock),
        clock: clock.to_string(),
    }
}

/// The spec of the primary top (the tensor engine) of a rendered config.
pub fn design_spec(rendered: &Rendered, clock: &str) -> DesignSpec {
    design_spec_of(rendered, &rendered.top, clock)
}

/// The spec of a unit generated outside a config (an engine built from its own parameters). It
/// renders through the same route as a config (`emit::render_verilog`), so a unit and the same
/// engine of a config are one design to the simulator and its build cache.
///
/// # Panics
/// If `top` is not in `design` (a programming error).
pub fn unit_spec(design: &Design, top: &str, clock: &str) -> DesignSpec {
    let ports = design
        .get(top)
        .unwrap_or_else(|| panic!("`{top}` is not in the design"))
        .ports();
    DesignSpec {
        top: top.to_string(),
        sources: emit::render_verilog(design),
        ports: sim_ports(ports, clock),
        clock: clock.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coforge_generator::artifacts::{render, sore_params};
    use coforge_generator::config::Config;
    use coforge_generator::engines::{sore, wuve};

    /// A training engine reaches the simulator by one route: the SORE and WUVE of a config are
    /// the very designs the units' own specs describe (one build-cache entry each), whatever
    /// else the config holds.
    #[test]
    fn a_config_top_and_its_unit_are_one_design() {
        for stce in [
            "rows = 1\ncols = 1\nn = 2\nm = 8",
            "rows = 3\ncols = 2\nn = 2\nm = 8",
        ] {
            let cfg = Config::from_toml(
                &format!("[stce]\n{stce}\ndtype = \"fp16\"\n[train]\nsore_lanes = 3\n"),
                "test",
            )
            .unwrap();
            let train = cfg.train.clone().unwrap();
            let rendered = render(&cfg).unwrap();
            let sore_unit =
                crate::sore::design_spec(&sore_params(&cfg).unwrap(), &train.sore_top).unwrap();
            assert_eq!(
                design_spec_of(&rendered, &train.sore_top, sore::ports::CLOCK),
                sore_unit
            );
            let wuve_unit =
                crate::wuve::design_spec(&wuve::WuveParams::of(&train), &train.wuve_top).unwrap();
            assert_eq!(
                design_spec_of(&rendered, &train.wuve_top, wuve::ports::CLOCK),
                wuve_unit
            );
        }
    }
}
