//! The bridge from generated artifacts to a simulator.

use coforge_generator::artifacts::Rendered;
use coforge_generator::rtl::Dir;
use coforge_sim::{DesignSpec, PortDir, PortSpec};

/// The simulator's view of a rendered design: its Verilog files and every top port but the
/// clock, in declaration order.
pub fn design_spec(rendered: &Rendered, clock: &str) -> DesignSpec {
    DesignSpec {
        top: rendered.top.clone(),
        sources: rendered.verilog.clone(),
        ports: rendered
            .top_ports
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
            .collect(),
        clock: clock.to_string(),
    }
}
