//! Expressions of the RTL description layer.
//!
//! Every expression knows its width, so that assignments are width-checked when a module is
//! built (a mismatch is a generator bug, caught before any Verilog exists) and the emitted
//! Verilog never relies on implicit extension or truncation.
//!
//! # Signed shapes
//! An expression also knows its signedness (Amaranth's `signed(n)`): `as_signed` reads bits as
//! two's complement, and the signedness then travels through `+`, `-`, `*`, bitwise operators,
//! muxes and shifts ([`Expr::is_signed`]). Mixing a signed and an unsigned operand is refused
//! (say which you mean with `as_signed` / `as_unsigned`). What depends on signedness is decided
//! by the type, not written by hand:
//! - [`Expr::resize`] sign-extends a signed value and zero-extends an unsigned one
//!   ([`Expr::sext_by_shift`] sign-extends any value, naming it once);
//! - [`Expr::lt`] / [`Expr::gt`] compare signed values as signed;
//! - [`Expr::shr`] of a signed value is arithmetic.
//!
//! The emitted Verilog stays explicit and free of Verilog's context-dependent signedness rules:
//! an extension prints as `{{k{x[msb]}}, x}`, arithmetic is printed on equal-width operands
//! (whose low bits are the same signed or unsigned), a signed comparison as
//! `$signed(a) < $signed(b)` and an arithmetic shift as `{$signed(a) >>> b}` (the braces make it
//! self-determined, so an enclosing expression cannot turn it unsigned).

use std::fmt;
use std::marker::PhantomData;

/// An expression of a finished module's tree (what [`Expr`] wraps): the emitter and the
/// checks read it, and so may analyses of a finished module. It cannot be turned back into an
/// [`Expr`], so building one by hand reaches no builder.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExprNode {
    /// A named signal (port, wire or register) of `width` bits.
    Ref {
        name: String,
        width: u32,
    },
    /// A constant of `width` bits (at most 64 bits of value; wider constants are zero-extended).
    Const {
        value: u64,
        width: u32,
    },
    /// `e[lo +: width]` with a constant `lo`.
    Slice {
        e: Box<ExprNode>,
        lo: u32,
        width: u32,
    },
    /// `e[index +: width]`: a part-select whose base is a run-time value.
    DynSlice {
        e: Box<ExprNode>,
        index: Box<ExprNode>,
        width: u32,
    },
    /// `mem[index]` of a memory (unpacked array) of words of `width` bits.
    MemRead {
        mem: String,
        index: Box<ExprNode>,
        width: u32,
    },
    Concat(Vec<ExprNode>),
    Repeat {
        count: u32,
        e: Box<ExprNode>,
    },
    Unary {
        op: UnaryOp,
        e: Box<ExprNode>,
    },
    Binary {
        op: BinaryOp,
        a: Box<ExprNode>,
        b: Box<ExprNode>,
    },
    Mux {
        sel: Box<ExprNode>,
        then: Box<ExprNode>,
        els: Box<ExprNode>,
    },
    /// The bits of the inner expression read as two's complement (see "Signed shapes"); it
    /// prints as the inner expression. Build it with [`ExprNode::as_signed`].
    Signed(Box<ExprNode>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Not,
    LogicNot,
    ReduceOr,
    ReduceAnd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    /// A multiply of two signed operands, printed with `$signed` (see [`ExprNode::mul_signed`]).
    MulSigned,
    And,
    Or,
    Xor,
    Eq,
    Ne,
    /// Unsigned less-than.
    Lt,
    LogicAnd,
    LogicOr,
    Shl,
    Shr,
}

impl BinaryOp {
    fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul | BinaryOp::MulSigned => "*",
            BinaryOp::And => "&",
            BinaryOp::Or => "|",
            BinaryOp::Xor => "^",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LogicAnd => "&&",
            BinaryOp::LogicOr => "||",
            BinaryOp::Shl => "<<",
            BinaryOp::Shr => ">>",
        }
    }
    fn is_predicate(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::LogicAnd | BinaryOp::LogicOr
        )
    }
    fn is_shift(self) -> bool {
        matches!(self, BinaryOp::Shl | BinaryOp::Shr)
    }
}

/// Bits needed to hold values `0..count` (at least 1, so that a select port always exists).
pub fn index_bits(count: u32) -> u32 {
    if count <= 2 {
        1
    } else {
        32 - (count - 1).leading_zeros()
    }
}

impl ExprNode {
    /// A reference to a named signal: only the builder makes these (see "Typed signal
    /// handles" in the `rtl` documentation).
    pub(super) fn sig(name: impl Into<String>, width: u32) -> ExprNode {
        ExprNode::Ref {
            name: name.into(),
            width,
        }
    }
    pub fn lit(value: u64, width: u32) -> ExprNode {
        assert!(width > 0, "zero-width constant");
        assert!(
            width >= 64 || value >> width == 0,
            "constant {value} does not fit {width} bits"
        );
        ExprNode::Const { value, width }
    }
    pub fn zero(width: u32) -> ExprNode {
        ExprNode::lit(0, width)
    }
    pub fn bit(value: bool) -> ExprNode {
        ExprNode::lit(value as u64, 1)
    }

    pub fn width(&self) -> u32 {
        match self {
            ExprNode::Ref { width, .. }
            | ExprNode::Const { width, .. }
            | ExprNode::Slice { width, .. }
            | ExprNode::DynSlice { width, .. }
            | ExprNode::MemRead { width, .. } => *width,
            ExprNode::Concat(parts) => parts.iter().map(ExprNode::width).sum(),
            ExprNode::Repeat { count, e } => count * e.width(),
            ExprNode::Unary { op, e } => match op {
                UnaryOp::Not => e.width(),
                _ => 1,
            },
            ExprNode::Binary { op, a, .. } => {
                if op.is_predicate() {
                    1
                } else {
                    a.width()
                }
            }
            ExprNode::Mux { then, .. } => then.width(),
            ExprNode::Signed(e) => e.width(),
        }
    }

    /// True when the value is two's complement (see "Signed shapes" in the module docs).
    /// Names, constants, slices and concatenations are unsigned, as in Verilog.
    pub fn is_signed(&self) -> bool {
        match self {
            ExprNode::Signed(_) => true,
            ExprNode::Unary {
                op: UnaryOp::Not,
                e,
            } => e.is_signed(),
            ExprNode::Binary { op, a, .. } if !op.is_predicate() => a.is_signed(),
            ExprNode::Mux { then, .. } => then.is_signed(),
            _ => false,
        }
    }

    /// The same bits, read as two's complement.
    pub fn as_signed(&self) -> ExprNode {
        if self.is_signed() {
            self.clone()
        } else {
            ExprNode::Signed(Box::new(self.clone()))
        }
    }

    /// The same bits, read as unsigned.
    pub fn as_unsigned(&self) -> ExprNode {
        match self {
            ExprNode::Signed(e) => e.as_ref().clone(),
            // A one-part concatenation is unsigned in Verilog and prints as `{x}`.
            e if e.is_signed() => ExprNode::Concat(vec![e.clone()]),
            e => e.clone(),
        }
    }

    /// A signed constant of `width` bits (two's complement).
    pub fn signed_lit(value: i64, width: u32) -> ExprNode {
        assert!((1..=64).contains(&width), "signed constant of {width} bits");
        let fits = width == 64 || (-(1i64 << (width - 1))..(1i64 << (width - 1))).contains(&value);
        assert!(
            fits,
            "constant {value} does not fit a signed {width}-bit value"
        );
        let bits = if width == 64 {
            value as u64
        } else {
            (value as u64) & ((1u64 << width) - 1)
        };
        ExprNode::lit(bits, width).as_signed()
    }

    /// Widens to `width` bits by the value's signedness: sign extension for a signed value,
    /// zero extension for an unsigned one. The result keeps the signedness.
    pub fn resize(&self, width: u32) -> ExprNode {
        if self.is_signed() {
            self.as_unsigned().sext(width).as_signed()
        } else {
            self.zext(width)
        }
    }

    /// `self[lo +: width]`. Verilog-2005 selects only from names, so a slice of a constant, a
    /// concatenation or a slice is resolved here; anything else must be named first
    /// (`ModuleBuilder::name`), and asking otherwise is a generator bug caught at build time.
    pub fn slice(&self, lo: u32, width: u32) -> ExprNode {
        assert!(
            width > 0 && lo + width <= self.width(),
            "slice [{lo} +: {width}] out of a {}-bit value",
            self.width()
        );
        if lo == 0 && width == self.width() {
            return self.clone();
        }
        match self {
            ExprNode::Ref { .. } => ExprNode::Slice {
                e: Box::new(self.clone()),
                lo,
                width,
            },
            ExprNode::Slice { e, lo: base, .. } => e.slice(base + lo, width),
            ExprNode::Const { value, .. } => {
                let mask = if width >= 64 {
                    u64::MAX
                } else {
                    (1u64 << width) - 1
                };
                ExprNode::lit(value.checked_shr(lo).unwrap_or(0) & mask, width)
            }
            ExprNode::Repeat { e, .. } if e.width() == 1 => e.repeat(width),
            ExprNode::Signed(e) => e.slice(lo, width),
            ExprNode::Concat(parts) => {
                // Parts are listed most significant first.
                let mut pieces = Vec::new();
                let mut part_lo = self.width();
                for part in parts {
                    part_lo -= part.width();
                    let part_hi = part_lo + part.width();
                    let (a, b) = (lo.max(part_lo), (lo + width).min(part_hi));
                    if a < b {
                        pieces.push(part.slice(a - part_lo, b - a));
                    }
                }
                ExprNode::concat(pieces)
            }
            other => panic!("slice of an unnamed expression {other}: name it first"),
        }
    }
    pub fn bit_at(&self, i: u32) -> ExprNode {
        self.slice(i, 1)
    }
    pub fn msb(&self) -> ExprNode {
        self.bit_at(self.width() - 1)
    }
    pub fn dyn_slice(&self, index: ExprNode, width: u32) -> ExprNode {
        ExprNode::DynSlice {
            e: Box::new(self.clone()),
            index: Box::new(index),
            width,
        }
    }
    /// Two's-complement sign extension to `width` bits.
    pub fn sext(&self, width: u32) -> ExprNode {
        let w = self.width();
        assert!(width >= w, "sign extension narrows {w} to {width} bits");
        if width == w {
            return self.clone();
        }
        ExprNode::Concat(vec![self.msb().repeat(width - w), self.clone()])
    }
    /// The same bits as [`ExprNode::sext`], written as `$signed({self, zeros}) >>> shift`: `self`
    /// appears once, where `sext` repeats its sign bit beside it. Synthesis reads a shift by a
    /// constant as wiring, so the hardware is the same; Verilator, which keeps a value used twice
    /// in a variable of its own, folds a value used once into the expression that reads it.
    /// The result is signed.
    pub fn sext_by_shift(&self, width: u32) -> ExprNode {
        let w = self.width();
        assert!(width >= w, "sign extension narrows {w} to {width} bits");
        if width == w {
            return self.as_signed();
        }
        let pad = width - w;
        ExprNode::concat(vec![self.as_unsigned(), ExprNode::zero(pad)])
            .as_signed()
            .shr(&ExprNode::lit(pad.into(), index_bits(width)))
    }
    pub fn zext(&self, width: u32) -> ExprNode {
        let w = self.width();
        assert!(width >= w, "zero extension narrows {w} to {width} bits");
        if width == w {
            return self.clone();
        }
        ExprNode::Concat(vec![ExprNode::zero(width - w), self.clone()])
    }
    pub fn concat(parts: Vec<ExprNode>) -> ExprNode {
        assert!(!parts.is_empty(), "empty concatenation");
        if parts.len() == 1 {
            return parts.into_iter().next().unwrap();
        }
        ExprNode::Concat(parts)
    }
    pub fn repeat(&self, count: u32) -> ExprNode {
        if count == 1 {
            return self.clone();
        }
        ExprNode::Repeat {
            count,
            e: Box::new(self.clone()),
        }
    }
    pub fn not(&self) -> ExprNode {
        ExprNode::Unary {
            op: UnaryOp::Not,
            e: Box::new(self.clone()),
        }
    }
    pub fn any(&self) -> ExprNode {
        ExprNode::Unary {
            op: UnaryOp::ReduceOr,
            e: Box::new(self.clone()),
        }
    }
    pub fn all(&self) -> ExprNode {
        ExprNode::Unary {
            op: UnaryOp::ReduceAnd,
            e: Box::new(self.clone()),
        }
    }
    fn binary(op: BinaryOp, a: &ExprNode, b: &ExprNode) -> ExprNode {
        if !op.is_shift() {
            assert_eq!(
                a.width(),
                b.width(),
                "operands of `{}` differ in width: {a} vs {b}",
                op.symbol()
            );
            // Equal-width equality and logic operators read bits, whatever their signedness.
            let bits_only = matches!(
                op,
                BinaryOp::LogicAnd | BinaryOp::LogicOr | BinaryOp::Eq | BinaryOp::Ne
            );
            assert!(
                bits_only || a.is_signed() == b.is_signed(),
                "operands of `{}` differ in signedness: {a} vs {b}; use as_signed or as_unsigned",
                op.symbol()
            );
        }
        ExprNode::Binary {
            op,
            a: Box::new(a.clone()),
            b: Box::new(b.clone()),
        }
    }
    pub fn add(&self, b: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::Add, self, b)
    }
    pub fn sub(&self, b: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::Sub, self, b)
    }
    /// Product truncated to the operand width: extend the operands first for a full product.
    pub fn mul(&self, b: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::Mul, self, b)
    }
    /// The same bits as [`ExprNode::mul`] of two signed operands (at equal width the low bits of a
    /// product do not depend on signedness), printed as `{$signed(a) * $signed(b)}` so that
    /// synthesis sees a signed multiplier and drops the sign-extension bits: Yosys then maps a
    /// sign-extended 27 x 8 product into one DSP48E2 rather than a 35 x 35 array of them.
    pub fn mul_signed(&self, b: &ExprNode) -> ExprNode {
        assert!(
            self.is_signed() && b.is_signed(),
            "mul_signed of an unsigned operand: {self} * {b}"
        );
        ExprNode::binary(BinaryOp::MulSigned, self, b)
    }
    pub fn and(&self, b: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::And, self, b)
    }
    pub fn or(&self, b: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::Or, self, b)
    }
    pub fn xor(&self, b: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::Xor, self, b)
    }
    pub fn eq(&self, b: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::Eq, self, b)
    }
    pub fn ne(&self, b: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::Ne, self, b)
    }
    /// `self < b`: signed when both operands are signed, else unsigned.
    pub fn lt(&self, b: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::Lt, self, b)
    }
    /// `self > b`, printed as `b < self`.
    pub fn gt(&self, b: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::Lt, b, self)
    }
    pub fn land(&self, b: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::LogicAnd, self, b)
    }
    pub fn lor(&self, b: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::LogicOr, self, b)
    }
    pub fn shl(&self, amount: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::Shl, self, amount)
    }
    /// `self >> amount`: logical for an unsigned value, arithmetic for a signed one.
    pub fn shr(&self, amount: &ExprNode) -> ExprNode {
        ExprNode::binary(BinaryOp::Shr, self, amount)
    }
    /// `sel ? then : els`.
    pub fn mux(sel: &ExprNode, then: &ExprNode, els: &ExprNode) -> ExprNode {
        assert_eq!(sel.width(), 1, "mux select must be one bit: {sel}");
        assert_eq!(
            then.width(),
            els.width(),
            "mux arms differ: {then} vs {els}"
        );
        assert_eq!(
            then.is_signed(),
            els.is_signed(),
            "mux arms differ in signedness: {then} vs {els}"
        );
        ExprNode::Mux {
            sel: Box::new(sel.clone()),
            then: Box::new(then.clone()),
            els: Box::new(els.clone()),
        }
    }
    /// `choices[index]` as a chain of comparisons; an out-of-range index selects zero.
    pub fn select(index: &ExprNode, choices: &[ExprNode]) -> ExprNode {
        let width = choices[0].width();
        choices
            .iter()
            .enumerate()
            .rev()
            .fold(ExprNode::zero(width), |rest, (i, choice)| {
                let hit = index.eq(&ExprNode::lit(i as u64, index.width()));
                ExprNode::mux(&hit, choice, &rest)
            })
    }

    /// Calls `f` on this expression and on every sub-expression, parents first.
    pub fn visit(&self, f: &mut impl FnMut(&ExprNode)) {
        f(self);
        match self {
            ExprNode::Ref { .. } | ExprNode::Const { .. } => {}
            ExprNode::Slice { e, .. }
            | ExprNode::Repeat { e, .. }
            | ExprNode::Unary { e, .. }
            | ExprNode::Signed(e) => e.visit(f),
            ExprNode::DynSlice { e, index, .. } => {
                e.visit(f);
                index.visit(f);
            }
            ExprNode::MemRead { index, .. } => index.visit(f),
            ExprNode::Concat(parts) => parts.iter().for_each(|p| p.visit(f)),
            ExprNode::Binary { a, b, .. } => {
                a.visit(f);
                b.visit(f);
            }
            ExprNode::Mux { sel, then, els } => {
                sel.visit(f);
                then.visit(f);
                els.visit(f);
            }
        }
    }

    /// Precedence level used by the emitter to print only the parentheses that are needed.
    fn precedence(&self) -> u8 {
        match self {
            ExprNode::Signed(e) => e.precedence(),
            // Printed in braces: `{$signed(a) >>> b}`, `{$signed(a) * $signed(b)}`.
            ExprNode::Binary {
                op: BinaryOp::Shr,
                a,
                ..
            } if a.is_signed() => 13,
            ExprNode::Binary {
                op: BinaryOp::MulSigned,
                ..
            } => 13,
            ExprNode::Mux { .. } => 1,
            ExprNode::Binary { op, .. } => match op {
                BinaryOp::LogicOr => 2,
                BinaryOp::LogicAnd => 3,
                BinaryOp::Or => 4,
                BinaryOp::Xor => 5,
                BinaryOp::And => 6,
                BinaryOp::Eq | BinaryOp::Ne => 7,
                BinaryOp::Lt => 8,
                BinaryOp::Shl | BinaryOp::Shr => 9,
                BinaryOp::Add | BinaryOp::Sub => 10,
                BinaryOp::Mul | BinaryOp::MulSigned => 11,
            },
            ExprNode::Unary { .. } => 12,
            _ => 13,
        }
    }

    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, min_precedence: u8) -> fmt::Result {
        if self.precedence() < min_precedence {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }

    /// A signed operand of a signed multiply: `$signed(x)`, or an arithmetic shift as it is,
    /// in parentheses (`($signed(x) >>> n)` is signed already; braces would make it unsigned).
    fn fmt_signed_operand(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExprNode::Binary {
                op: BinaryOp::Shr,
                a,
                b,
            } if a.is_signed() => ExprNode::fmt_arithmetic_shift(f, a, b, ("(", ")")),
            e => write!(f, "$signed({})", e.as_unsigned()),
        }
    }

    /// `$signed(a) >>> b` between the delimiters `open` and `close`.
    fn fmt_arithmetic_shift(
        f: &mut fmt::Formatter<'_>,
        a: &ExprNode,
        b: &ExprNode,
        (open, close): (&str, &str),
    ) -> fmt::Result {
        write!(f, "{open}$signed({}) >>> ", a.as_unsigned())?;
        b.fmt_operand(f, 10)?;
        write!(f, "{close}")
    }

    /// Part-selects and bit-selects apply only to names in Verilog-2005, so a slice of
    /// anything else must be given a name first (see `ModuleBuilder::name`).
    fn selectable(e: &ExprNode, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match e {
            ExprNode::Ref { name, .. } => write!(f, "{name}"),
            other => {
                panic!("part-select of an unnamed expression: {other:?}; bind it to a wire first")
            }
        }
    }
}

impl fmt::Display for ExprNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExprNode::Ref { name, .. } => write!(f, "{name}"),
            ExprNode::Const { value, width } => {
                if *width == 1 {
                    write!(f, "1'b{value}")
                } else if *width <= 8 && *value < 4 {
                    write!(f, "{width}'d{value}")
                } else {
                    write!(f, "{width}'h{value:x}")
                }
            }
            ExprNode::Slice { e, lo, width } => {
                ExprNode::selectable(e, f)?;
                if *width == 1 {
                    write!(f, "[{lo}]")
                } else {
                    write!(f, "[{}:{lo}]", lo + width - 1)
                }
            }
            ExprNode::DynSlice { e, index, width } => {
                ExprNode::selectable(e, f)?;
                if *width == 1 {
                    write!(f, "[{index}]")
                } else {
                    write!(f, "[{index} +: {width}]")
                }
            }
            ExprNode::MemRead { mem, index, .. } => write!(f, "{mem}[{index}]"),
            ExprNode::Concat(parts) => {
                write!(f, "{{")?;
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{p}")?;
                }
                write!(f, "}}")
            }
            ExprNode::Repeat { count, e } => write!(f, "{{{count}{{{e}}}}}"),
            ExprNode::Unary { op, e } => {
                let sym = match op {
                    UnaryOp::Not => "~",
                    UnaryOp::LogicNot => "!",
                    UnaryOp::ReduceOr => "|",
                    UnaryOp::ReduceAnd => "&",
                };
                write!(f, "{sym}")?;
                e.fmt_operand(f, 13)
            }
            ExprNode::Signed(e) => write!(f, "{e}"),
            ExprNode::Binary {
                op: BinaryOp::Shr,
                a,
                b,
            } if a.is_signed() => ExprNode::fmt_arithmetic_shift(f, a, b, ("{", "}")),
            ExprNode::Binary {
                op: BinaryOp::MulSigned,
                a,
                b,
            } => {
                write!(f, "{{")?;
                a.fmt_signed_operand(f)?;
                write!(f, " * ")?;
                b.fmt_signed_operand(f)?;
                write!(f, "}}")
            }
            ExprNode::Binary {
                op: BinaryOp::Lt,
                a,
                b,
            } if a.is_signed() && b.is_signed() => {
                write!(
                    f,
                    "$signed({}) < $signed({})",
                    a.as_unsigned(),
                    b.as_unsigned()
                )
            }
            ExprNode::Binary { op, a, b } => {
                let p = self.precedence();
                a.fmt_operand(f, p)?;
                write!(f, " {} ", op.symbol())?;
                // Right operands bind one level tighter: `a - (b - c)` keeps its parentheses.
                b.fmt_operand(f, p + 1)
            }
            ExprNode::Mux { sel, then, els } => {
                // Parenthesize any operator in the select: `(a ^ b) ? x : y` reads unambiguously.
                sel.fmt_operand(f, 12)?;
                write!(f, " ? ")?;
                then.fmt_operand(f, 2)?;
                write!(f, " : ")?;
                els.fmt_operand(f, 1)
            }
        }
    }
}

/// The brand of one module's builder: an invariant lifetime (`fn(&'id ()) -> &'id ()` is neither
/// covariant nor contravariant in `'id`), so `'id` can be neither shortened nor lengthened to
/// match another builder's. See "Typed signal handles" in the `rtl` documentation.
pub(super) type Brand<'id> = PhantomData<fn(&'id ()) -> &'id ()>;

/// An expression of the module whose builder has the brand `'id`: a signal handle returned by
/// the builder (a port, wire, register), a constant, or an operator applied to those. It
/// carries its width and signedness; every operator checks them (see "Signed shapes" above).
///
/// Only the builder makes a handle to a named signal, and `'id` ties it to that builder: a
/// handle of another module, or one taken out of [`ModuleBuilder::build`]'s closure, does not
/// compile.
///
/// [`ModuleBuilder::build`]: super::ModuleBuilder::build
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Expr<'id> {
    node: ExprNode,
    brand: Brand<'id>,
}

impl<'id> Expr<'id> {
    /// Brands a tree: only the builder and the operators below do this.
    pub(super) fn wrap(node: ExprNode) -> Expr<'id> {
        Expr {
            node,
            brand: PhantomData,
        }
    }
    /// The expression's tree, as the emitter will print it.
    pub fn node(&self) -> &ExprNode {
        &self.node
    }
    pub(super) fn into_node(self) -> ExprNode {
        self.node
    }

    pub fn lit(value: u64, width: u32) -> Expr<'id> {
        Expr::wrap(ExprNode::lit(value, width))
    }
    pub fn zero(width: u32) -> Expr<'id> {
        Expr::wrap(ExprNode::zero(width))
    }
    pub fn bit(value: bool) -> Expr<'id> {
        Expr::wrap(ExprNode::bit(value))
    }
    /// A signed constant of `width` bits (two's complement).
    pub fn signed_lit(value: i64, width: u32) -> Expr<'id> {
        Expr::wrap(ExprNode::signed_lit(value, width))
    }
    pub fn width(&self) -> u32 {
        self.node.width()
    }
    /// True when the value is two's complement (see "Signed shapes" in the module docs).
    /// Names, constants, slices and concatenations are unsigned, as in Verilog.
    pub fn is_signed(&self) -> bool {
        self.node.is_signed()
    }
    /// The same bits, read as two's complement.
    pub fn as_signed(&self) -> Expr<'id> {
        Expr::wrap(self.node.as_signed())
    }
    /// The same bits, read as unsigned.
    pub fn as_unsigned(&self) -> Expr<'id> {
        Expr::wrap(self.node.as_unsigned())
    }
    /// Widens to `width` bits by the value's signedness: sign extension for a signed value,
    /// zero extension for an unsigned one. The result keeps the signedness.
    pub fn resize(&self, width: u32) -> Expr<'id> {
        Expr::wrap(self.node.resize(width))
    }
    /// `self[lo +: width]`. Verilog-2005 selects only from names, so a slice of a constant, a
    /// concatenation or a slice is resolved here; anything else must be named first
    /// (`ModuleBuilder::name`), and asking otherwise is a generator bug caught at build time.
    pub fn slice(&self, lo: u32, width: u32) -> Expr<'id> {
        Expr::wrap(self.node.slice(lo, width))
    }
    pub fn bit_at(&self, i: u32) -> Expr<'id> {
        Expr::wrap(self.node.bit_at(i))
    }
    pub fn msb(&self) -> Expr<'id> {
        Expr::wrap(self.node.msb())
    }
    /// `self[index +: width]`: a part-select whose base is a run-time value.
    pub fn dyn_slice(&self, index: Expr<'id>, width: u32) -> Expr<'id> {
        Expr::wrap(self.node.dyn_slice(index.node, width))
    }
    /// Two's-complement sign extension to `width` bits.
    pub fn sext(&self, width: u32) -> Expr<'id> {
        Expr::wrap(self.node.sext(width))
    }
    /// See [`ExprNode::sext_by_shift`].
    pub fn sext_by_shift(&self, width: u32) -> Expr<'id> {
        Expr::wrap(self.node.sext_by_shift(width))
    }
    pub fn zext(&self, width: u32) -> Expr<'id> {
        Expr::wrap(self.node.zext(width))
    }
    /// `{parts[0], parts[1], ...}`, most significant first.
    pub fn concat(parts: Vec<Expr<'id>>) -> Expr<'id> {
        Expr::wrap(ExprNode::concat(
            parts.into_iter().map(Expr::into_node).collect(),
        ))
    }
    pub fn repeat(&self, count: u32) -> Expr<'id> {
        Expr::wrap(self.node.repeat(count))
    }
    pub fn not(&self) -> Expr<'id> {
        Expr::wrap(self.node.not())
    }
    pub fn any(&self) -> Expr<'id> {
        Expr::wrap(self.node.any())
    }
    pub fn all(&self) -> Expr<'id> {
        Expr::wrap(self.node.all())
    }
    pub fn add(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.add(&b.node))
    }
    pub fn sub(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.sub(&b.node))
    }
    /// Product truncated to the operand width: extend the operands first for a full product.
    pub fn mul(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.mul(&b.node))
    }
    /// The same bits as [`Expr::mul`] of two signed operands (at equal width the low bits of a
    /// product do not depend on signedness), printed as `{$signed(a) * $signed(b)}` so that
    /// synthesis sees a signed multiplier and drops the sign-extension bits: Yosys then maps a
    /// sign-extended 27 x 8 product into one DSP48E2 rather than a 35 x 35 array of them.
    pub fn mul_signed(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.mul_signed(&b.node))
    }
    pub fn and(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.and(&b.node))
    }
    pub fn or(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.or(&b.node))
    }
    pub fn xor(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.xor(&b.node))
    }
    pub fn eq(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.eq(&b.node))
    }
    pub fn ne(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.ne(&b.node))
    }
    /// `self < b`: signed when both operands are signed, else unsigned.
    pub fn lt(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.lt(&b.node))
    }
    /// `self > b`, printed as `b < self`.
    pub fn gt(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.gt(&b.node))
    }
    pub fn land(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.land(&b.node))
    }
    pub fn lor(&self, b: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.lor(&b.node))
    }
    pub fn shl(&self, amount: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.shl(&amount.node))
    }
    /// `self >> amount`: logical for an unsigned value, arithmetic for a signed one.
    pub fn shr(&self, amount: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(self.node.shr(&amount.node))
    }
    /// `sel ? then : els`.
    pub fn mux(sel: &Expr<'id>, then: &Expr<'id>, els: &Expr<'id>) -> Expr<'id> {
        Expr::wrap(ExprNode::mux(&sel.node, &then.node, &els.node))
    }
    /// `choices[index]` as a chain of comparisons; an out-of-range index selects zero.
    pub fn select(index: &Expr<'id>, choices: &[Expr<'id>]) -> Expr<'id> {
        let nodes: Vec<ExprNode> = choices.iter().map(|c| c.node.clone()).collect();
        Expr::wrap(ExprNode::select(&index.node, &nodes))
    }
}

impl fmt::Display for Expr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.node.fmt(f)
    }
}
