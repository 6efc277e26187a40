//! The driver check of a finished module (`ModuleBuilder::try_finish`): one driver per signal
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

fn fixture() -> (ModuleBuilder, Expr, Expr) {
    let mut b = ModuleBuilder::new("m");
    let clk = b.input("clk", 1, "");
    let x = b.input("x", 4, "");
    (b, clk, x)
}

fn conflict(b: ModuleBuilder) -> (String, String, String) {
    match b.try_finish() {
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

fn wrong_kind(b: ModuleBuilder) -> (String, &'static str, String) {
    match b.try_finish() {
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
    let (mut b, _, x) = fixture();
    b.wire("w", 4);
    b.drive("w", x.clone());
    b.drive("w", x.not());
    let (signal, first, second) = conflict(b);
    assert_eq!(signal, "w");
    assert_eq!(first, "`assign w = x`");
    assert_eq!(second, "`assign w = ~x`");
}

#[test]
fn two_processes_setting_one_register_conflict() {
    let (mut b, clk, x) = fixture();
    let r = b.reg("r", 4);
    b.clocked(&clk, vec![set(&r, x.clone())]);
    b.clocked(&clk, vec![set(&r, x.not())]);
    let (signal, first, second) = conflict(b);
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
    let (mut b, clk, x) = fixture();
    let r = b.output_reg("r", 4, "");
    b.clocked(
        &clk,
        vec![when_else(
            x.bit_at(0),
            vec![set(&r, Expr::zero(4))],
            vec![set(&r, x.clone()), set(&r, x.not())],
        )],
    );
    assert!(b.try_finish().is_ok());
}

#[test]
fn an_instance_output_is_a_driver() {
    let (mut b, _, x) = fixture();
    let w = b.wire("w", 4);
    b.instance(&leaf(), "u0", vec![("a", x.clone()), ("y", w.clone())]);
    b.drive("w", x.clone());
    let (signal, first, second) = conflict(b);
    assert_eq!(signal, "w");
    assert_eq!(first, "output `y` of instance `u0` (leaf)");
    assert_eq!(second, "`assign w = x`");
}

#[test]
fn instance_outputs_may_drive_disjoint_slices_but_not_overlapping_ones() {
    let (mut b, _, x) = fixture();
    let w = b.wire("w", 8);
    b.instance(&leaf(), "lo", vec![("a", x.clone()), ("y", w.slice(0, 4))]);
    b.instance(&leaf(), "hi", vec![("a", x.clone()), ("y", w.slice(4, 4))]);
    b.name("unused_w", w.clone());
    assert!(b.try_finish().is_ok());

    let (mut b, _, x) = fixture();
    let w = b.wire("w", 8);
    b.instance(&leaf(), "lo", vec![("a", x.clone()), ("y", w.slice(0, 4))]);
    b.instance(&leaf(), "mid", vec![("a", x.clone()), ("y", w.slice(2, 4))]);
    let (signal, first, second) = conflict(b);
    assert_eq!(signal, "w");
    assert!(
        first.contains("`lo`") && second.contains("`mid`"),
        "{first} / {second}"
    );
}

#[test]
fn set_is_only_for_registers() {
    let (mut b, clk, x) = fixture();
    let w = b.wire("w", 4);
    b.clocked(&clk, vec![set(&w, x)]);
    let (signal, kind, driver) = wrong_kind(b);
    assert_eq!((signal.as_str(), kind), ("w", "a wire"));
    assert!(driver.contains("w <= x"), "{driver}");
}

#[test]
fn drive_is_only_for_wires_and_outputs() {
    let (mut b, _, x) = fixture();
    b.reg("r", 4);
    b.drive("r", x.clone());
    let (signal, kind, driver) = wrong_kind(b);
    assert_eq!((signal.as_str(), kind), ("r", "a register"));
    assert_eq!(driver, "`assign r = x`");

    let (mut b, _, x) = fixture();
    let r = b.output_reg("r", 4, "");
    b.instance(&leaf(), "u0", vec![("a", x), ("y", r)]);
    let (signal, kind, _) = wrong_kind(b);
    assert_eq!((signal.as_str(), kind), ("r", "a register"));
}

#[test]
fn inputs_take_no_driver() {
    let (mut b, _, x) = fixture();
    b.drive("x", x.not());
    let (signal, kind, _) = wrong_kind(b);
    assert_eq!((signal.as_str(), kind), ("x", "an input port"));
}

#[test]
fn an_instance_output_needs_a_signal() {
    let (mut b, _, x) = fixture();
    b.instance(&leaf(), "u0", vec![("a", x.clone()), ("y", x.not())]);
    let (_, kind, driver) = wrong_kind(b);
    assert_eq!(kind, "an expression");
    assert_eq!(driver, "output `y` of instance `u0` (leaf)");
}

#[test]
fn the_message_names_module_signal_and_both_drivers() {
    let (mut b, _, x) = fixture();
    b.wire("w", 4);
    b.drive("w", x.clone());
    b.drive("w", x);
    let text = b.try_finish().unwrap_err().to_string();
    assert_eq!(
        text,
        "module `m`: `w` has two drivers: `assign w = x`; and `assign w = x`. Drive each signal \
         from one place (one assign, one process or one instance output)"
    );
}

#[test]
fn a_signal_of_another_module_is_refused() {
    let mut other = ModuleBuilder::new("other");
    let foreign = other.input("foreign", 4, "");
    let (mut b, _, x) = fixture();
    let y = b.output("y", 4, "");
    b.drive("y", x.add(&foreign));
    let _ = y;
    match b.try_finish() {
        Err(RtlError::Undeclared {
            module,
            signal,
            width,
            used_in,
        }) => {
            assert_eq!(
                (module.as_str(), signal.as_str(), width),
                ("m", "foreign", 4)
            );
            assert_eq!(used_in, "`assign y`");
        }
        other => panic!("expected an undeclared reference, got {other:?}"),
    }
    // Same name, other width: also someone else's signal.
    let (mut b, _, _) = fixture();
    b.output("y", 4, "");
    b.drive("y", Expr::sig("x", 3).zext(4));
    assert!(matches!(b.try_finish(), Err(RtlError::Undeclared { .. })));
}

#[test]
fn a_clock_of_another_module_is_refused() {
    let mut other = ModuleBuilder::new("other");
    let foreign_clk = other.input("other_clk", 1, "");
    let (mut b, _, x) = fixture();
    let r = b.output_reg("r", 4, "");
    b.clocked(&foreign_clk, vec![set(&r, x)]);
    match b.try_finish() {
        Err(RtlError::Undeclared {
            signal, used_in, ..
        }) => {
            assert_eq!(signal, "other_clk");
            assert!(used_in.contains("clock"), "{used_in}");
        }
        other => panic!("expected an undeclared clock, got {other:?}"),
    }
}
