//! `requant_stage`: a coforge module, built with the RTL layer, that instantiates the rust-hdl
//! leaf `cf_requant_relu` as a black box through its declared ports. It is what an engine top
//! does with a leaf (the fp units of `generator/rtl/fp/` plug in the same way), small enough to
//! lint, synthesize and co-simulate on its own.

use coforge_generator::rtl::{Design, Dir, ModuleBuilder};

use crate::repair::LeafError;
use crate::requant;

/// The stage's top module.
pub const TOP: &str = "requant_stage";

/// The design: the leaf's modules, then `requant_stage`. Ports: `clk`, `rst` and the leaf's
/// other ports under the same names.
pub fn design() -> Result<Design, LeafError> {
    let mut design = Design::new();
    let leaf = requant::modules()?;
    for m in &leaf {
        design
            .add(m.clone())
            .expect("the leaf's module names are its own");
    }
    let black_box = leaf.last().expect("repair returns the top last");
    let stage = ModuleBuilder::build(TOP, |b| {
        b.doc(
            "The requantize-and-ReLU stage after the STCE: one int32 accumulator in, one int8 out",
        );
        b.doc("a cycle later (cf_requant_relu, a rust-hdl leaf, instantiated as a black box).");
        let clk = b.input("clk", 1, "");
        let rst = b.input("rst", 1, "synchronous reset, active high");
        let mut connections = Vec::new();
        for p in black_box.ports() {
            let doc = p.doc.clone().unwrap_or_default();
            let signal = match (p.name.as_str(), p.dir) {
                ("clock", _) => clk.clone(),
                ("reset", _) => rst.clone(),
                (_, Dir::Input) => b.input(&p.name, p.width, &doc),
                (_, Dir::Output) => b.output(&p.name, p.width, &doc),
            };
            connections.push((p.name.as_str(), signal));
        }
        b.instance(black_box, "requant", connections);
    });
    design.add(stage).expect("one stage");
    Ok(design)
}
