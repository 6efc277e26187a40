//! The driver check of a finished module (`ModuleBuilder::try_build`): one driver per signal
//! bit, `set` only on registers, `drive` only on wires and outputs, instance outputs count as
//! drivers. Every error names the module, the signal and the drivers.

use coforge_generator::rtl::Expr;
use coforge_generator::rtl::{
    set, when_else, Dir, ExternalModule, ModuleBuilder, ModuleDef, Port, RtlError,
};

/// A black box with one 4-bit input `a` and one 4-bit output `y`.
fn leaf() -> ModuleDef {
    let port = |name: &str, dir| Port {
        name: name.into(),
        dir,
        width: 4,
        is_reg: false,
        doc: None,
    };
    ModuleDef::External(ExternalModule {
        name: "leaf".into(),
        ports: vec![port("a", Dir::Input), port("y", Dir::Output)],
        source: String::new(),
    })
}

/// Module `m` with a clock `clk` and a 4-bit input `x`, the rest described by `body`, checked.
fn module_m(
    body: impl for<'id> FnOnce(&mut ModuleBuilder<'id>, Expr<'id>, Expr<'id>),
) -> Result<ModuleDef, RtlError> {
    ModuleBuilder::try_build("m", |b| {
        let clk = b.input("clk", 1, "");
        let x = b.input("x", 4, "");
        body(b, clk, x)
    })
}

fn conflict(built: Result<ModuleDef, RtlError>) -> (String, String, String) {
    match built {
        Err(RtlError::DriverConflict {
            module,
            signal,
            first,
            second,
        }) => {
            assert_eq!(module, "m");
            (signal, first, second)
        }
        other => panic!("expected a driver conflict, got {other:?}"),
    }
}

fn wrong_kind(built: Result<ModuleDef, RtlError>) -> (String, &'static str, String) {
    match built {
        Err(RtlError::WrongKind {
            module,
            signal,
            kind,
            driver,
            ..
        }) => {
            assert_eq!(module, "m");
            (signal, kind, driver)
        }
        other => panic!("expected a wrong-kind error, got {other:?}"),
    }
}

#[test]
fn two_assigns_to_one_wire_conflict() {
    let (signal, first, second) = conflict(module_m(|b, _, x| {
        let w = b.wire("w", 4);
        b.drive(&w, x.clone());
        b.drive(&w, x.not());
    }));
    assert_eq!(signal, "w");
    assert_eq!(first, "`assign w = x`");
    assert_eq!(second, "`assign w = ~x`");
}

#[test]
fn two_processes_setting_one_register_conflict() {
    let (signal, first, second) = conflict(module_m(|b, clk, x| {
        let r = b.reg("r", 4);
        b.clocked(&clk, vec![set(&r, x.clone())]);
        b.clocked(&clk, vec![set(&r, x.not())]);
    }));
    assert_eq!(signal, "r");
    assert!(
        first.contains("block #0") && first.contains("r <= x"),
        "{first}"
    );
    assert!(
        second.contains("block #1") && second.contains("r <= ~x"),
        "{second}"
    );
}

#[test]
fn one_process_may_assign_a_register_on_several_paths() {
    let built = module_m(|b, clk, x| {
        let r = b.output_reg("r", 4, "");
        b.clocked(
            &clk,
            vec![when_else(
                x.bit_at(0),
                vec![set(&r, Expr::zero(4))],
                vec![set(&r, x.clone()), set(&r, x.not())],
            )],
        );
    });
    assert!(built.is_ok());
}

#[test]
fn an_instance_output_is_a_driver() {
    let (signal, first, second) = conflict(module_m(|b, _, x| {
        let w = b.wire("w", 4);
        b.instance(&leaf(), "u0", vec![("a", x.clone()), ("y", w.clone())]);
        b.drive(&w, x.clone());
    }));
    assert_eq!(signal, "w");
    assert_eq!(first, "output `y` of instance `u0` (leaf)");
    assert_eq!(second, "`assign w = x`");
}

#[test]
fn instance_outputs_may_drive_disjoint_slices_but_not_overlapping_ones() {
    let built = module_m(|b, _, x| {
        let w = b.wire("w", 8);
        b.instance(&leaf(), "lo", vec![("a", x.clone()), ("y", w.slice(0, 4))]);
        b.instance(&leaf(), "hi", vec![("a", x.clone()), ("y", w.slice(4, 4))]);
        b.name("unused_w", w.clone());
    });
    assert!(built.is_ok());

    let (signal, first, second) = conflict(module_m(|b, _, x| {
        let w = b.wire("w", 8);
        b.instance(&leaf(), "lo", vec![("a", x.clone()), ("y", w.slice(0, 4))]);
        b.instance(&leaf(), "mid", vec![("a", x.clone()), ("y", w.slice(2, 4))]);
    }));
    assert_eq!(signal, "w");
    assert!(
        first.contains("`lo`") && second.contains("`mid`"),
        "{first} / {second}"
    );
}

#[test]
fn set_is_only_for_registers() {
    let (signal, kind, driver) = wrong_kind(module_m(|b, clk, x| {
        let w = b.wire("w", 4);
        b.clocked(&clk, vec![set(&w, x)]);
    }));
    assert_eq!((signal.as_str(), kind), ("w", "a wire"));
    assert!(driver.contains("w <= x"), "{driver}");
}

#[test]
fn drive_is_only_for_wires_and_outputs() {
    let (signal, kind, driver) = wrong_kind(module_m(|b, _, x| {
        let r = b.reg("r", 4);
        b.drive(&r, x.clone());
    }));
    assert_eq!((signal.as_str(), kind), ("r", "a register"));
    assert_eq!(driver, "`assign r = x`");

    let (signal, kind, _) = wrong_kind(module_m(|b, _, x| {
        let r = b.output_reg("r", 4, "");
        b.instance(&leaf(), "u0", vec![("a", x), ("y", r)]);
    }));
    assert_eq!((signal.as_str(), kind), ("r", "a register"));
}

#[test]
fn inputs_take_no_driver() {
    let (signal, kind, _) = wrong_kind(module_m(|b, _, x| b.drive(&x, x.not())));
    assert_eq!((signal.as_str(), kind), ("x", "an input port"));
}

#[test]
fn an_instance_output_needs_a_signal() {
    let (_, kind, driver) = wrong_kind(module_m(|b, _, x| {
        b.instance(&leaf(), "u0", vec![("a", x.clone()), ("y", x.not())]);
    }));
    assert_eq!(kind, "an expression");
    assert_eq!(driver, "output `y` of instance `u0` (leaf)");
}

#[test]
fn the_message_names_module_signal_and_both_drivers() {
    let built = module_m(|b, _, x| {
        let w = b.wire("w", 4);
        b.drive(&w, x.clone());
        b.drive(&w, x);
    });
    assert_eq!(
        built.unwrap_err().to_string(),
        "module `m`: `w` has two drivers: `assign w = x`; and `assign w = x`. Drive each signal \
         from one place (one assign, one process or one instance output)"
    );
}

// A signal of another module, or one taken out of `build`'s closure, does not compile: see the
// `compile_fail` examples under "Typed signal handles" in the `rtl` documentation.

#[test]
fn a_reserved_register_is_declared_where_it_is_placed() {
    let def = module_m(|b, clk, x| {
        let (early, reserved) = b.reserve_reg("late", 4);
        let y = b.output("y", 4, "");
        b.drive(&y, early.not());
        b.wire("between", 1);
        let late = b.place(reserved);
        b.clocked(&clk, vec![set(&late, x)]);
    })
    .unwrap();
    let ModuleDef::Generated(m) = &def else {
        panic!("a generated module")
    };
    let names: Vec<&str> = m.signals.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["between", "late"]);
}

#[test]
fn a_reserved_register_never_placed_is_undeclared() {
    let built = module_m(|b, _, _| {
        let (early, _never_placed) = b.reserve_reg("late", 4);
        let y = b.output("y", 4, "");
        b.drive(&y, early);
    });
    match built {
        Err(RtlError::Undeclared {
            module,
            signal,
            width,
            used_in,
        }) => {
            assert_eq!((module.as_str(), signal.as_str(), width), ("m", "late", 4));
            assert_eq!(used_in, "`assign y`");
        }
        other => panic!("expected an undeclared reference, got {other:?}"),
    }
}
