//! `cf_requant_relu`: the requantize-and-ReLU stage after the STCE, described with rust-hdl.
//!
//! One int32 accumulator in, one int8 out, one cycle later, bit-exact with
//! `sparse_kernels::int::requantize` for every input the ports can carry:
//!
//! ```text
//! p = acc * scale + (shift > 0 ? 2^(shift-1) : 0)    // round half up
//! q = (p >> shift) + bias                            // arithmetic shift: floor
//! if relu { q = max(q, 0) }
//! q = q - zero_point
//! out = clamp(q, -128, 127)
//! ```
//!
//! Ports: `clock`, `reset` (synchronous, active high: clears `out_valid`), `in_valid`, `acc`
//! (int32), `scale`, `bias`, `zero_point` (int16), `shift` (0..63), `relu`; `out_valid` and
//! `q` (int8) the cycle after `in_valid`.
//!
//! # Why 64 bits are enough
//! |acc * scale| <= 2^31 * 2^15 = 2^46 and the rounding term is at most 2^62, so |p| < 2^63;
//! after the shift |q| <= 2^46 + 2^15 and the zero point keeps it far inside 64 bits. Every
//! step below is therefore exact in 64-bit two's complement, as in the reference's i128.
//!
//! # How it is written
//! rust-hdl 0.46 multiplies only 16 x 16 bits and shifts only logically, so the product is
//! formed from magnitudes: |acc| = hi * 2^16 + lo, two 16 x 16 unsigned products, then the
//! sign; the arithmetic shift of a negative p is `!((!p) >> s)`. All values are `Bits` (two's
//! complement by hand): rust-hdl's `Signed` arithmetic and its simulator are not used (the
//! simulator overflows its stack on `signed_bit_cast` of -128, ecosystem.md).

use coforge_generator::rtl::{Dir, ModuleDef, Port};
use rust_hdl::prelude::*;

use crate::repair::{repair, LeafError};

/// The requantizer as a rust-hdl block. Its Verilog comes from [`crate::emit`], which renames
/// the top and repairs rust-hdl's output.
#[derive(LogicBlock, Default)]
pub struct RequantRelu {
    pub clock: Signal<In, Clock>,
    pub reset: Signal<In, Bit>,
    pub in_valid: Signal<In, Bit>,
    pub acc: Signal<In, Bits<32>>,
    pub scale: Signal<In, Bits<16>>,
    pub bias: Signal<In, Bits<16>>,
    pub zero_point: Signal<In, Bits<16>>,
    pub shift: Signal<In, Bits<6>>,
    pub relu: Signal<In, Bit>,
    pub out_valid: Signal<Out, Bit>,
    pub q: Signal<Out, Bits<8>>,
    acc_mag: Signal<Local, Bits<32>>,
    scale_mag: Signal<Local, Bits<16>>,
    prod_lo: Signal<Local, Bits<32>>,
    prod_hi: Signal<Local, Bits<32>>,
    prod_mag: Signal<Local, Bits<64>>,
    prod: Signal<Local, Bits<64>>,
    rounded: Signal<Local, Bits<64>>,
    shifted: Signal<Local, Bits<64>>,
    bias_wide: Signal<Local, Bits<64>>,
    zero_wide: Signal<Local, Bits<64>>,
    biased: Signal<Local, Bits<64>>,
    rectified: Signal<Local, Bits<64>>,
    centred: Signal<Local, Bits<64>>,
    clamped: Signal<Local, Bits<8>>,
    valid_reg: DFF<Bit>,
    q_reg: DFF<Bits<8>>,
}

impl Logic for RequantRelu {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, valid_reg, q_reg);
        // Magnitudes: |-2^31| = 2^31 fits 32 unsigned bits, |-2^15| fits 16.
        self.acc_mag.next = self.acc.val();
        if self.acc.val().get_bit(31) {
            self.acc_mag.next = !self.acc.val() + 1;
        }
        self.scale_mag.next = self.scale.val();
        if self.scale.val().get_bit(15) {
            self.scale_mag.next = !self.scale.val() + 1;
        }
        self.prod_lo.next = self.acc_mag.val().get_bits::<16>(0) * self.scale_mag.val();
        self.prod_hi.next = self.acc_mag.val().get_bits::<16>(16) * self.scale_mag.val();
        self.prod_mag.next =
            bit_cast::<64, 32>(self.prod_lo.val()) + (bit_cast::<64, 32>(self.prod_hi.val()) << 16);
        self.prod.next = self.prod_mag.val();
        if self.acc.val().get_bit(31) ^ self.scale.val().get_bit(15) {
            self.prod.next = !self.prod_mag.val() + 1;
        }
        // Round half up: add 2^(shift-1) when shift > 0.
        self.rounded.next = self.prod.val();
        if self.shift.val().any() {
            self.rounded.next = self.prod.val() + (bits::<64>(1) << (self.shift.val() - 1));
        }
        // Arithmetic shift right (floor), from the logical one.
        self.shifted.next = self.rounded.val() >> self.shift.val();
        if self.rounded.val().get_bit(63) {
            self.shifted.next = !((!self.rounded.val()) >> self.shift.val());
        }
        self.bias_wide.next = bit_cast::<64, 16>(self.bias.val());
        if self.bias.val().get_bit(15) {
            self.bias_wide.next = bit_cast::<64, 16>(self.bias.val()) | 0xFFFF_FFFF_FFFF_0000_u64;
        }
        self.zero_wide.next = bit_cast::<64, 16>(self.zero_point.val());
        if self.zero_point.val().get_bit(15) {
            self.zero_wide.next =
                bit_cast::<64, 16>(self.zero_point.val()) | 0xFFFF_FFFF_FFFF_0000_u64;
        }
        self.biased.next = self.shifted.val() + self.bias_wide.val();
        self.rectified.next = self.biased.val();
        if self.relu.val() & self.biased.val().get_bit(63) {
            self.rectified.next = 0.into();
        }
        self.centred.next = self.rectified.val() - self.zero_wide.val();
        // Saturate to [-128, 127].
        self.clamped.next = self.centred.val().get_bits::<8>(0);
        if self.centred.val().get_bit(63) {
            if self.centred.val() < 0xFFFF_FFFF_FFFF_FF80_u64 {
                self.clamped.next = 0x80.into();
            }
        } else if self.centred.val() > 127 {
            self.clamped.next = 0x7F.into();
        }
        self.q_reg.d.next = self.clamped.val();
        self.valid_reg.d.next = self.in_valid.val() & !self.reset.val();
        self.out_valid.next = self.valid_reg.q.val();
        self.q.next = self.q_reg.q.val();
    }
}

/// The leaf's name in a coforge design.
pub const NAME: &str = "cf_requant_relu";

/// The ports the leaf declares; [`crate::repair::repair`] checks rust-hdl's output against them.
pub fn ports() -> Vec<Port> {
    let p = |name: &str, dir, width, doc: &str| Port {
        name: name.into(),
        dir,
        width,
        is_reg: false,
        doc: Some(doc.into()),
    };
    vec![
        p("clock", Dir::Input, 1, ""),
        p(
            "reset",
            Dir::Input,
            1,
            "synchronous, active high: clears out_valid",
        ),
        p(
            "in_valid",
            Dir::Input,
            1,
            "acc and the parameters are valid",
        ),
        p("acc", Dir::Input, 32, "int32 accumulator"),
        p("scale", Dir::Input, 16, "int16 multiplier"),
        p("bias", Dir::Input, 16, "int16, added after the shift"),
        p(
            "zero_point",
            Dir::Input,
            16,
            "int16, subtracted after the ReLU",
        ),
        p(
            "shift",
            Dir::Input,
            6,
            "right shift 0..63, rounding half up when > 0",
        ),
        p("relu", Dir::Input, 1, "max(q, 0) before the zero point"),
        p(
            "out_valid",
            Dir::Output,
            1,
            "q holds the result of the input of the cycle before",
        ),
        p("q", Dir::Output, 8, "int8 result"),
    ]
}

/// rust-hdl's Verilog of the block, as its generator writes it (top module `top`), after
/// rust-hdl's own checks (which its `generate_verilog` would turn into a panic).
pub fn raw_verilog() -> Result<String, LeafError> {
    let mut uut = RequantRelu::default();
    uut.connect_all();
    check_all(&uut).map_err(|e| LeafError::Unrepairable {
        leaf: NAME.into(),
        module: "top".into(),
        what: format!("rust-hdl's check failed: {e:?}"),
    })?;
    Ok(generate_verilog_unchecked(&uut))
}

/// The leaf's modules, repaired, ready to add to a coforge design (sub-modules first).
pub fn modules() -> Result<Vec<ModuleDef>, LeafError> {
    repair(&raw_verilog()?, NAME, &ports())
}
