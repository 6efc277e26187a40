//! The arithmetic a PE performs, kept apart from the array so that it can be swapped (int8
//! today, fp16/fp32 for training) without touching the systolic structure.

use super::fp;
use crate::config::Overflow;
use crate::rtl::{set, when_else, Expr, ModuleBuilder, ModuleDef};

/// One PE's multiply-accumulate step: `acc + a_0*w_0 + a_1*w_1 + ...`, with the additions done
/// one at a time in the order given (increasing reduction index), which is the accumulation
/// order of the bit-exact contract.
pub trait PeArith {
    /// Short tag for module names, e.g. `int8` or `int8w4sat`.
    fn tag(&self) -> String;
    fn act_bits(&self) -> u32;
    fn wgt_bits(&self) -> u32;
    fn acc_bits(&self) -> u32;
    /// Emits the chain into `b` (naming intermediate wires `<prefix>...`) and returns the new
    /// accumulator value.
    fn accumulate<'id>(
        &self,
        b: &mut ModuleBuilder<'id>,
        prefix: &str,
        acc: Expr<'id>,
        pairs: &[(Expr<'id>, Expr<'id>)],
    ) -> Expr<'id>;
    /// Leaf modules that `accumulate` instantiates, to be added to the design.
    fn leaf_modules(&self) -> Vec<ModuleDef> {
        Vec::new()
    }
}

/// int8 activations x int8/int4 weights, int32 accumulator with a wrap or saturate policy.
///
/// The product is exact in 16 bits (|-128 * -128| = 16384 < 2^15). Saturation is applied after
/// every single addition, mirroring `sparse_kernels::int::add`.
pub struct IntMac {
    pub wgt_bits: u32,
    pub overflow: Overflow,
}

const ACT_BITS: u32 = 8;
const ACC_BITS: u32 = 32;

impl PeArith for IntMac {
    fn tag(&self) -> String {
        let weights = if self.wgt_bits == 8 {
            String::new()
        } else {
            format!("w{}", self.wgt_bits)
        };
        let policy = match self.overflow {
            Overflow::Wrap => "",
            Overflow::Saturate => "sat",
        };
        format!("int8{weights}{policy}")
    }
    fn act_bits(&self) -> u32 {
        ACT_BITS
    }
    fn wgt_bits(&self) -> u32 {
        self.wgt_bits
    }
    fn acc_bits(&self) -> u32 {
        ACC_BITS
    }

    fn accumulate<'id>(
        &self,
        b: &mut ModuleBuilder<'id>,
        prefix: &str,
        acc: Expr<'id>,
        pairs: &[(Expr<'id>, Expr<'id>)],
    ) -> Expr<'id> {
        // Activations, weights and sums are two's complement: every widening below is a sign
        // extension because the operands are signed, not because it is written so.
        let mut sum = acc.as_signed();
        for (i, (a, w)) in pairs.iter().enumerate() {
            // The product is exact in 16 bits; it is formed at the sum's width so that it
            // enters the sum without another extension, and as a signed multiply so that
            // synthesis drops the operands' sign bits again. Verilator then compiles each
            // PE's whole sum into one expression, with no 16-bit product kept between
            // statements, which co-simulates faster (the STCE bench's `--speed`). The
            // operands are widened by a shift (`sext_by_shift`), which names each once: a
            // sparse PE's selected activation then folds into that expression too, instead
            // of being kept in a variable of its own (1.12x the 2:8 16 x 16 engine's speed).
            let product = b.name(
                &format!("{prefix}product_{i}"),
                a.sext_by_shift(ACC_BITS)
                    .mul_signed(&w.sext_by_shift(ACC_BITS)),
            );
            sum = self.add(b, prefix, i, sum, &product);
        }
        sum.as_unsigned()
    }
}

impl IntMac {
    /// `sum + product` (a signed product of any width up to 32 bits) under the overflow policy,
    /// named `<prefix>sum_<i>`: addition i of the accumulation chain.
    fn add<'id>(
        &self,
        b: &mut ModuleBuilder<'id>,
        prefix: &str,
        i: usize,
        sum: Expr<'id>,
        product: &Expr<'id>,
    ) -> Expr<'id> {
        let name = format!("{prefix}sum_{i}");
        let name = name.as_str();
        let addend = product.resize(ACC_BITS);
        match self.overflow {
            Overflow::Wrap => b.name(name, sum.add(&addend)),
            Overflow::Saturate => {
                // A 33-bit sum overflows int32 exactly when its top two bits differ.
                let wide = b.name(
                    &format!("{prefix}wide_sum_{i}"),
                    sum.resize(ACC_BITS + 1).add(&addend.resize(ACC_BITS + 1)),
                );
                let overflowed = wide.bit_at(ACC_BITS).xor(&wide.bit_at(ACC_BITS - 1));
                let limit = Expr::mux(
                    &wide.bit_at(ACC_BITS),
                    &Expr::signed_lit(i32::MIN.into(), ACC_BITS),
                    &Expr::signed_lit(i32::MAX.into(), ACC_BITS),
                );
                b.name(
                    name,
                    Expr::mux(&overflowed, &limit, &wide.slice(0, ACC_BITS).as_signed()),
                )
            }
        }
    }

    /// `acc + products[0] + products[1] + ...`, one addition at a time in the order given, of
    /// signed products computed elsewhere (by [`packed_products`]); the same chain, names and
    /// overflow policy as [`PeArith::accumulate`].
    pub fn accumulate_products<'id>(
        &self,
        b: &mut ModuleBuilder<'id>,
        prefix: &str,
        acc: Expr<'id>,
        products: &[Expr<'id>],
    ) -> Expr<'id> {
        let mut sum = acc.as_signed();
        for (i, product) in products.iter().enumerate() {
            sum = self.add(b, prefix, i, sum, product);
        }
        sum.as_unsigned()
    }
}

/// Bits of the lower product's field in a packed multiply (`sparse_kernels::int::PACK_SHIFT`).
pub const PACKED_LOWER_BITS: u32 = 18;
/// Bits of the upper product read from a packed multiply.
const PACKED_UPPER_BITS: u32 = 16;
/// The pre-adder's width: `(a_upper << 18) + a_lower` of int8 values, as DSP48E2's 27-bit A/D.
const PACKED_OPERAND_BITS: u32 = 27;
/// The product bits read: the upper field ends at bit 33.
const PACKED_PRODUCT_BITS: u32 = PACKED_LOWER_BITS + PACKED_UPPER_BITS;

/// Two int8 products that share the weight `w`, from one multiply that a DSP48E2 holds (Xilinx
/// WP486): `P = ((a_upper << 18) + a_lower) * w`, then
///
/// ```text
/// upper = P[33:18] + P[17]     (16 bits: a_upper * w)
/// lower = P[17:0]              (18 bits, signed: a_lower * w)
/// ```
///
/// The `+ P[17]` is WP486's sign correction: a negative lower product borrows one from the upper
/// field, and P[17] is set exactly when it is negative. The rule, its proof and an exhaustive
/// test over every int8 triple are `sparse_kernels::int::packed_mul_pair`, which this emits step
/// for step. Returns the signed `(upper, lower)` products; the multiply is written as a signed
/// one so that synthesis maps the 27 x 8 product into one DSP (the operands are sign-extended to
/// the 34 bits read, so the bits are exact whatever the signedness).
pub fn packed_products<'id>(
    b: &mut ModuleBuilder<'id>,
    prefix: &str,
    a_upper: &Expr<'id>,
    a_lower: &Expr<'id>,
    w: &Expr<'id>,
) -> (Expr<'id>, Expr<'id>) {
    let shifted = Expr::concat(vec![a_upper.clone(), Expr::zero(PACKED_LOWER_BITS)]).as_signed();
    let operand = b.name(
        &format!("{prefix}packed_operand"),
        shifted
            .resize(PACKED_OPERAND_BITS)
            .add(&a_lower.as_signed().resize(PACKED_OPERAND_BITS)),
    );
    let p = b.name(
        &format!("{prefix}packed_product"),
        operand
            .resize(PACKED_PRODUCT_BITS)
            .mul_signed(&w.as_signed().resize(PACKED_PRODUCT_BITS)),
    );
    let lower = b.name(
        &format!("{prefix}product_lower"),
        p.slice(0, PACKED_LOWER_BITS),
    );
    let correction = p.bit_at(PACKED_LOWER_BITS - 1).zext(PACKED_UPPER_BITS);
    let upper = b.name(
        &format!("{prefix}product_upper"),
        p.slice(PACKED_LOWER_BITS, PACKED_UPPER_BITS)
            .add(&correction),
    );
    (upper.as_signed(), lower.as_signed())
}

/// fp16 activations x fp16 weights, fp32 accumulator (numerics.md, floating-point path).
///
/// Each product is exact in fp32 (`cf_fp16_mul_exact`); each addition is one IEEE binary32
/// round-to-nearest-even add (`cf_fp32_add`), chained in increasing index, so the PE computes
/// `((acc + p0) + p1) + ...` exactly like `sparse_kernels::fp::mac` applied in order.
/// [`PeArith::accumulate`] builds that chain combinationally, within one cycle;
/// [`FpMac::pipelined`] registers the products and every add, for timing.
pub struct FpMac {
    /// The PE is [`FpMac::pipelined`]: it instantiates the adder's stages, not `cf_fp32_add`.
    pub pipelined: bool,
}

/// The fp32 bits of -0: the additive identity of IEEE round-to-nearest addition. For every x,
/// x + (-0) = x exactly: for x nonzero, finite or infinite, the exact sum is x, which needs no
/// rounding; for x = +0 the exact sum is zero and RNE gives +0 unless both operands are -0; for
/// x = -0 it gives -0; a NaN x stays NaN (canonical, as every NaN the units produce). (+0 is no
/// identity: -0 + +0 = +0.) `sparse_kernels::fp` checks the rule on its adder.
pub const FP32_NEG_ZERO: u64 = 0x8000_0000;

/// What [`FpMac::pipelined`] gives the PE: the last adder's sum and the flag that it completes
/// a tile's sum this cycle.
pub struct PipelineEnd<'id> {
    /// High in the cycle the last adder adds the last group of a tile.
    pub completes: Expr<'id>,
    /// The last adder's output: the finished sum when `completes` is high.
    pub sum: Expr<'id>,
}

impl PeArith for FpMac {
    fn tag(&self) -> String {
        "fp16".to_string()
    }
    fn act_bits(&self) -> u32 {
        16
    }
    fn wgt_bits(&self) -> u32 {
        16
    }
    fn acc_bits(&self) -> u32 {
        32
    }

    fn accumulate<'id>(
        &self,
        b: &mut ModuleBuilder<'id>,
        prefix: &str,
        acc: Expr<'id>,
        pairs: &[(Expr<'id>, Expr<'id>)],
    ) -> Expr<'id> {
        let (mul, add) = (fp::fp16_mul_exact(), fp::fp32_add());
        let mut sum = acc;
        for (i, (a, w)) in pairs.iter().enumerate() {
            let product = b.wire(&format!("{prefix}product_{i}"), 32);
            b.instance(
                &mul,
                &format!("{prefix}multiplier_{i}"),
                vec![("a", a.clone()), ("b", w.clone()), ("p", product.clone())],
            );
            let next = b.wire(&format!("{prefix}sum_{i}"), 32);
            b.instance(
                &add,
                &format!("{prefix}adder_{i}"),
                vec![("a", sum), ("b", product), ("s", next.clone())],
            );
            sum = next;
        }
        sum
    }

    fn leaf_modules(&self) -> Vec<ModuleDef> {
        let mut leaves = vec![fp::fp16_mul_exact()];
        if self.pipelined {
            leaves.extend(fp::fp32_add_stages());
        } else {
            leaves.extend(fp::fp32_add_leaves());
        }
        leaves
    }
}

impl FpMac {
    /// The pipelined MAC of `engines::stce` ("fp32 adder pipeline"). The N products of the group
    /// taken this cycle are registered (stage 0, `product_<i>_d0`). Adder i is `cf_fp32_add`'s
    /// three stages ([`FP32_ADD_STAGES`], `fp::fp32_add_stages`) with a register after each,
    /// the last one `partial_sum_<i>`, so no register-to-register path holds more than one
    /// multiplier or one adder stage. Adder 0 adds to `partial_sum_<N-1>`, the sum the same slot
    /// left 3N cycles earlier (or to +0 on a tile's first group): the 3N registers of the loop
    /// hold 3N independent sums, one per slot, and each still adds its products one at a time
    /// in increasing index, with whole RNE adds, as [`PeArith::accumulate`] does. Product i
    /// waits in registers until adder i's first stage.
    ///
    /// A bubble (`valid` low) must leave its slot's sum as it is: its products enter as -0
    /// ([`FP32_NEG_ZERO`], which adds exactly nothing) and its flags are ignored.
    #[allow(clippy::too_many_arguments)]
    pub fn pipelined<'id>(
        &self,
        b: &mut ModuleBuilder<'id>,
        clk: &Expr<'id>,
        rst: &Expr<'id>,
        valid: &Expr<'id>,
        first: &Expr<'id>,
        last: &Expr<'id>,
        pairs: &[(Expr<'id>, Expr<'id>)],
    ) -> PipelineEnd<'id> {
        let mul = fp::fp16_mul_exact();
        let stages = fp::fp32_add_stages();
        let depth = stages.len();
        let n = pairs.len();
        let neg_zero = Expr::lit(FP32_NEG_ZERO, 32);
        // Registers without reset (data: the flags qualify it), and with.
        let mut data = Vec::new();
        let mut control = Vec::new();
        let delay =
            |b: &mut ModuleBuilder<'id>, list: &mut Vec<_>, name: String, value: Expr<'id>| {
                let reg = b.reg(&name, value.width());
                list.push((reg.clone(), value));
                reg
            };
        // Stage 0: the products (a bubble's are -0), each delayed to its adder's first stage.
        let mut products = Vec::with_capacity(n);
        for (i, (a, w)) in pairs.iter().enumerate() {
            let product = b.wire(&format!("product_{i}"), 32);
            b.instance(
                &mul,
                &format!("multiplier_{i}"),
                vec![("a", a.clone()), ("b", w.clone()), ("p", product.clone())],
            );
            let mut stage = Expr::mux(valid, &product, &neg_zero);
            for d in 0..=i * depth {
                stage = delay(b, &mut data, format!("product_{i}_d{d}"), stage);
            }
            products.push(stage);
        }
        let starts = delay(b, &mut control, "starts_d0".into(), valid.and(first));
        let mut completes = valid.and(last);
        for d in 0..n * depth {
            completes = delay(b, &mut control, format!("completes_d{d}"), completes);
        }
        // The loop: adder i's stages, a register after each; the last is partial_sum_<i>.
        let partial: Vec<Expr> = (0..n)
            .map(|i| b.reg(&format!("partial_sum_{i}"), 32))
            .collect();
        let loop_base = b.name(
            "loop_base",
            Expr::mux(&starts, &Expr::zero(32), &partial[n - 1]),
        );
        let mut sum = loop_base.clone();
        for (i, product) in products.iter().enumerate() {
            let addend = if i == 0 {
                loop_base.clone()
            } else {
                partial[i - 1].clone()
            };
            let outputs = fp::instantiate_stages(
                b,
                &format!("adder_{i}_"),
                &stages,
                vec![("a".into(), addend), ("b".into(), product.clone())],
                |b, _, name, value| delay(b, &mut data, name, value),
            );
            let (_, s) = outputs
                .into_iter()
                .find(|(v, _)| v == "s")
                .expect("the last stage gives the sum");
            data.push((partial[i].clone(), s.clone()));
            sum = s;
        }
        b.comment("fp32 adder pipeline: flags, reset.");
        let (reset, run): (Vec<_>, Vec<_>) = control
            .into_iter()
            .map(|(reg, next)| (set(&reg, Expr::zero(reg.width())), set(&reg, next)))
            .unzip();
        b.clocked(clk, vec![when_else(rst.clone(), reset, run)]);
        b.comment("fp32 adder pipeline: products and sums between stages; the flags qualify them.");
        b.clocked(
            clk,
            data.into_iter()
                .map(|(reg, next)| set(&reg, next))
                .collect(),
        );
        PipelineEnd { completes, sum }
    }
}

/// Registers per fp32 add in [`FpMac::pipelined`]: one after each of `cf_fp32_add`'s stages.
pub const FP32_ADD_STAGES: u32 = 3;
