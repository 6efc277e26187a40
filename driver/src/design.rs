//! The bridge from generated designs to a simulator.

use coforge_generator::artifacts::Rendered;
use coforge_generator::rtl::{Design, Dir, Port};
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
        sources: rendered
            .verilog
            .iter()
            .filter(|(file, _)| info.files.contains(file))
            .cloned()
            .collect(),
        ports: sim_ports(&info.ports, clock),
        clock: clock.to_string(),
    }
}

/// The spec of the primary top (the tensor engine) of a rendered config.
pub fn design_spec(rendered: &Rendered, clock: &str) -> DesignSpec {
    design_spec_of(rendered, &rendered.top, clock)
}

/// The spec of a unit generated outside a config (an engine built from its own parameters):
/// `sources` are its rendered files.
///
/// # Panics
/// If `top` is not in `design` (a programming error).
pub fn unit_spec(
    design: &Design,
    sources: Vec<(String, String)>,
    top: &str,
    clock: &str,
) -> DesignSpec {
    let ports = design
        .get(top)
        .unwrap_or_else(|| panic!("`{top}` is not in the design"))
        .ports();
    DesignSpec {
        top: top.to_string(),
        sources,
        ports: sim_ports(ports, clock),
        clock: clock.to_string(),
    }
}
