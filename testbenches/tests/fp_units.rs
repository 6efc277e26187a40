//! The hand-written floating-point units of `generator/rtl/fp/`, co-simulated with Verilator and
//! compared bit for bit against Rust's IEEE `f32` arithmetic and `half::f16::from_f32`.
//!
//! NaN policy (shared by RTL and reference): every NaN result is the canonical quiet NaN,
//! `0x7FC00000` in fp32 and `0x7E00` in fp16, so the reference is `canon(rust_op(a, b))`.
//!
//! Every vector set is deterministic: random vectors come from `ChaCha8Rng` seeded with 1616
//! (fp16 mul), 3201 (add), 3202 (fp32 mul) and 3216 (fp32 -> fp16). Each unit is combinational; a
//! test-only wrapper adds the clock port the simulator needs, and one vector is applied and
//! captured per cycle. Units are built from the `coforge_generator::engines::fp` module defs, so
//! the test covers the same module text the emitter writes out (after its header comment).

use coforge_generator::engines::fp;
use coforge_generator::rtl::{Dir, ModuleDef};
use coforge_sim::{
    BuildOptions, DesignSpec, PortSpec, Simulator, Stimulus, VerilatedModel, Verilator,
};
use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::fp as reference;
use std::fmt::Write as _;

/// Vectors per simulator run, to bound the memory of a stimulus.
const CHUNK: usize = 1 << 20;

/// A unit wrapped in a clocked test top and built with Verilator.
struct Dut {
    name: String,
    spec: DesignSpec,
    model: VerilatedModel,
    inputs: Vec<usize>,
    output: usize,
}

impl Dut {
    fn new(def: ModuleDef) -> Dut {
        Dut::with_leaves(def, Vec::new())
    }

    /// A unit that instantiates other external modules (`leaves`), such as `cf_fp32_add` its
    /// stages.
    fn with_leaves(def: ModuleDef, leaves: Vec<ModuleDef>) -> Dut {
        let ModuleDef::External(ext) = def else {
            panic!("the fp units are external modules")
        };
        let top = format!("tb_{}", ext.name);
        let mut decl = String::from("    input  wire        clk");
        let mut conns = Vec::new();
        for p in &ext.ports {
            let dir = match p.dir {
                Dir::Input => "input ",
                Dir::Output => "output",
            };
            let _ = write!(decl, ",\n    {dir} wire [{}:0] {}", p.width - 1, p.name);
            conns.push(format!(".{0}({0})", p.name));
        }
        let wrapper = format!(
            "`default_nettype none\n\
             module {top} (\n{decl}\n);\n\
             \x20   // The unit is combinational; the clock only paces the simulator.\n\
             \x20   wire unused_clk = clk;\n\
             \x20   {} dut ({});\n\
             endmodule\n\
             `default_nettype wire\n",
            ext.name,
            conns.join(", ")
        );
        let ports: Vec<PortSpec> = ext
            .ports
            .iter()
            .map(|p| match p.dir {
                Dir::Input => PortSpec::input(p.name.clone(), p.width),
                Dir::Output => PortSpec::output(p.name.clone(), p.width),
            })
            .collect();
        let spec = DesignSpec {
            top: top.clone(),
            sources: leaves
                .iter()
                .map(|leaf| match leaf {
                    ModuleDef::External(l) => (format!("{}.v", l.name), l.source.clone()),
                    ModuleDef::Generated(_) => panic!("the fp units' leaves are external"),
                })
                .chain([
                    (format!("{}.v", ext.name), ext.source.clone()),
                    (format!("{top}.v"), wrapper),
                ])
                .collect(),
            ports,
            clock: "clk".into(),
        };
        let model = Verilator::build(&spec, &BuildOptions::default())
            .unwrap_or_else(|e| panic!("building {top}: {e}"))
            .instantiate()
            .expect("instantiate");
        let stim = Stimulus::new(&spec);
        let inputs = ext
            .ports
            .iter()
            .filter(|p| p.dir == Dir::Input)
            .map(|p| stim.port_id(&p.name).expect("input port"))
            .collect();
        // Trace ids count the outputs only, in port order; each unit has exactly one.
        assert_eq!(ext.ports.iter().filter(|p| p.dir == Dir::Output).count(), 1);
        Dut {
            name: ext.name,
            spec,
            model,
            inputs,
            output: 0,
        }
    }

    /// Applies every vector (one input word per port) and returns the output of each.
    fn run<const N: usize>(&mut self, vectors: &[[u32; N]]) -> Vec<u32> {
        assert_eq!(N, self.inputs.len());
        let mut out = Vec::with_capacity(vectors.len());
        for chunk in vectors.chunks(CHUNK) {
            let mut stim = Stimulus::new(&self.spec);
            stim.reserve(chunk.len());
            for v in chunk {
                for (id, word) in self.inputs.iter().zip(v) {
                    stim.set_id(*id, std::slice::from_ref(word));
                }
                stim.step(true);
            }
            let trace = self.model.run(&stim).expect("simulation runs");
            assert_eq!(trace.len(), chunk.len());
            out.extend((0..chunk.len()).map(|i| trace.get_id(i, self.output)[0]));
        }
        out
    }

    /// Runs `vectors` and compares every output with `reference`; panics with the count and the
    /// first failing vectors (in hex) on any mismatch. Returns the number of vectors checked.
    fn check<const N: usize>(
        &mut self,
        what: &str,
        vectors: &[[u32; N]],
        reference: impl Fn(&[u32; N]) -> u32,
    ) -> usize {
        let got = self.run(vectors);
        let mut bad = 0usize;
        let mut report = String::new();
        for (v, g) in vectors.iter().zip(&got) {
            let want = reference(v);
            if *g != want {
                bad += 1;
                if bad <= 12 {
                    let ins: Vec<String> = v.iter().map(|x| format!("{x:#010x}")).collect();
                    let _ = writeln!(
                        report,
                        "  in [{}] -> rtl {g:#010x}, reference {want:#010x}",
                        ins.join(", ")
                    );
                }
            }
        }
        println!(
            "{} {what}: {} vectors, {bad} mismatches",
            self.name,
            vectors.len()
        );
        assert!(
            bad == 0,
            "{} {what}: {bad} of {} vectors mismatch; first ones:\n{report}",
            self.name,
            vectors.len()
        );
        vectors.len()
    }
}

// ---- Reference functions (canonical NaN on every result) ---------------------------------------

fn f(bits: u32) -> f32 {
    f32::from_bits(bits)
}

// The reference is `sparse_kernels::fp` itself: the RTL must match the contract's functions.
fn ref_fp16_mul(v: &[u32; 2]) -> u32 {
    reference::mul_exact(f16::from_bits(v[0] as u16), f16::from_bits(v[1] as u16)).to_bits()
}

fn ref_add(v: &[u32; 2]) -> u32 {
    reference::add(f(v[0]), f(v[1])).to_bits()
}

fn ref_mul(v: &[u32; 2]) -> u32 {
    reference::mul(f(v[0]), f(v[1])).to_bits()
}

fn ref_to_fp16(v: &[u32; 1]) -> u32 {
    reference::to_f16(f(v[0])).to_bits() as u32
}

// ---- Vector helpers ------------------------------------------------------------------------------

/// fp32 edge values: zeros, subnormal and normal boundaries, one and its neighbours, the largest
/// finite value, infinities and several NaN encodings; each with both signs.
fn f32_specials() -> Vec<u32> {
    let mags: [u32; 26] = [
        0x0000_0000, // 0
        0x0000_0001, // 2^-149, smallest subnormal
        0x0000_0002,
        0x0000_0003,
        0x0040_0000, // 2^-127
        0x007F_FFFF, // largest subnormal
        0x0080_0000, // 2^-126, smallest normal
        0x0080_0001,
        0x00FF_FFFF,
        0x0100_0000,
        0x3380_0000, // 2^-24
        0x3400_0000, // 2^-23
        0x3F00_0000, // 0.5
        0x3F7F_FFFF, // 1 - 2^-24
        0x3F80_0000, // 1
        0x3F80_0001, // 1 + 2^-23
        0x3FC0_0000, // 1.5
        0x4000_0000, // 2
        0x4B00_0000, // 2^23
        0x7E80_0000, // 2^126
        0x7F00_0000, // 2^127
        0x7F7F_FFFF, // largest finite
        0x7F80_0000, // inf
        0x7F80_0001, // signalling NaN
        0x7FC0_0000, // quiet NaN
        0x7FFF_FFFF, // NaN with all payload bits
    ];
    mags.iter().flat_map(|&m| [m, m | 0x8000_0000]).collect()
}

/// Every ordered pair of `vals`.
fn all_pairs(vals: &[u32]) -> Vec<[u32; 2]> {
    vals.iter()
        .flat_map(|&a| vals.iter().map(move |&b| [a, b]))
        .collect()
}

/// A random finite fp32 with its biased exponent field in `exps` (0 gives a subnormal or zero).
fn rand_f32_exp(rng: &mut ChaCha8Rng, exps: std::ops::RangeInclusive<i32>) -> u32 {
    let e = rng.random_range(exps).clamp(0, 254) as u32;
    let sign = rng.random::<u32>() & 0x8000_0000;
    sign | (e << 23) | (rng.random::<u32>() & 0x007F_FFFF)
}

/// Random 23-bit fractions are rarely close to a rounding boundary; half the time, force the low
/// bits to all zeros or all ones so ties and carries across the whole fraction are common.
fn shape_low_bits(rng: &mut ChaCha8Rng, x: u32) -> u32 {
    let n = rng.random_range(0..24);
    let mask = (1u32 << n) - 1;
    match rng.random_range(0..4) {
        0 => x & !mask,
        1 => x | mask,
        _ => x,
    }
}

/// The inverse of odd `u` modulo 2^24 (Newton iteration; each step doubles the correct bits).
fn inv_mod_2_24(u: u32) -> u32 {
    let mut inv = u; // correct to 3 bits for any odd u
    for _ in 0..4 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(u.wrapping_mul(inv)));
    }
    assert_eq!(u.wrapping_mul(inv) & 0x00FF_FFFF, 1);
    inv & 0x00FF_FFFF
}

/// Runs `vectors` in both operand orders (the units must be commutative bit for bit).
fn both_orders(vectors: Vec<[u32; 2]>) -> Vec<[u32; 2]> {
    let swapped: Vec<[u32; 2]> = vectors.iter().map(|&[a, b]| [b, a]).collect();
    let mut v = vectors;
    v.extend(swapped);
    v
}

// ---- fp16 x fp16 -> fp32, exact ---------------------------------------------------------------

#[test]
fn fp16_mul_exact() {
    let mut dut = Dut::new(fp::fp16_mul_exact());
    let mut rng = ChaCha8Rng::seed_from_u64(1616);

    // Every fp16 `a` against 64 `b`s: the edges with both signs plus random values.
    let edge_mags: [u16; 14] = [
        0x0000, // 0
        0x0001, // smallest subnormal 2^-24
        0x0002, 0x0155, 0x03FF, // largest subnormal
        0x0400, // smallest normal 2^-14
        0x0401, 0x3C00, // 1
        0x3C01, 0x3E00, // 1.5
        0x7BFF, // largest finite 65504
        0x7C00, // inf
        0x7C01, // signalling NaN
        0x7E00, // quiet NaN
    ];
    let mut bs: Vec<u16> = edge_mags.iter().flat_map(|&m| [m, m | 0x8000]).collect();
    while bs.len() < 64 {
        bs.push(rng.random());
    }
    let mut vectors: Vec<[u32; 2]> = Vec::with_capacity(65536 * bs.len() + (1 << 20));
    for &b in &bs {
        for a in 0..=u16::MAX {
            vectors.push([a as u32, b as u32]);
        }
    }
    let mut n = dut.check("every a x 64 b", &vectors, ref_fp16_mul);

    vectors.clear();
    for _ in 0..(1 << 20) {
        vectors.push([rng.random::<u16>() as u32, rng.random::<u16>() as u32]);
    }
    n += dut.check("random pairs", &vectors, ref_fp16_mul);
    println!("cf_fp16_mul_exact: {n} vectors in total, 0 mismatches");
}

// ---- fp32 add ------------------------------------------------------------------------------------

#[test]
fn fp32_add() {
    let mut dut = Dut::with_leaves(fp::fp32_add(), fp::fp32_add_stages().to_vec());
    let mut rng = ChaCha8Rng::seed_from_u64(3201);

    // Named edge cases, each also with swapped operands and with both signs flipped.
    let named: &[[u32; 2]] = &[
        [0x0000_0000, 0x8000_0000], // +0 + -0 = +0
        [0x8000_0000, 0x8000_0000], // -0 + -0 = -0
        [0x3F80_0000, 0xBF80_0000], // exact cancellation = +0
        [0x0000_0001, 0x8000_0001], // subnormal cancellation
        [0x0000_0001, 0x0000_0001], // 2^-149 + 2^-149
        [0x007F_FFFF, 0x0000_0001], // largest subnormal + ulp = smallest normal
        [0x007F_FFFF, 0x007F_FFFF], // subnormal + subnormal = normal
        [0x0080_0000, 0x8000_0001], // smallest normal - ulp = largest subnormal
        [0x0080_0001, 0x8080_0000], // normal - normal = subnormal
        [0x0100_0000, 0x80FF_FFFF], // 2^-125 - (2^-125 - 2^-149)
        [0x3F80_0000, 0x3380_0000], // 1 + 2^-24: tie, stays at 1 (even)
        [0x3F80_0001, 0x3380_0000], // (1 + 2^-23) + 2^-24: tie, rounds up to even
        [0x3F80_0000, 0x3380_0001], // just above the tie: rounds up
        [0x3F80_0000, 0xB380_0000], // 1 - 2^-24: exact (1 - 2^-24 is representable)
        [0x3F80_0000, 0xB300_0000], // 1 - 2^-25: tie below 1
        [0x3F80_0000, 0xB300_0001], // just above that tie
        [0x3F80_0000, 0x0000_0001], // 1 + 2^-149
        [0x3F80_0000, 0x8000_0001], // 1 - 2^-149 rounds back to 1
        [0x4B00_0000, 0x3F00_0000], // 2^23 + 0.5: tie to even
        [0x4B00_0001, 0x3F00_0000], // (2^23 + 1) + 0.5: tie up
        [0x7F7F_FFFF, 0x7F7F_FFFF], // max + max = inf
        [0x7F7F_FFFF, 0x7380_0000], // max + half ulp: tie to even = inf
        [0x7F7F_FFFF, 0x737F_FFFF], // max + just below half ulp = max
        [0x7F80_0000, 0xFF80_0000], // inf - inf = NaN
        [0x7F80_0000, 0x7F80_0000], // inf + inf
        [0x7F80_0000, 0xFF7F_FFFF], // inf - max
        [0x7FC0_0000, 0x3F80_0000], // NaN + 1
        [0xFF80_0001, 0x7F80_0000], // sNaN + inf
    ];
    let mut vectors: Vec<[u32; 2]> = Vec::new();
    for &[a, b] in named {
        for s in [0, 0x8000_0000] {
            vectors.push([a ^ s, b ^ s]);
            vectors.push([b ^ s, a ^ s]);
        }
    }
    vectors.extend(all_pairs(&f32_specials()));
    let mut n = dut.check("edge cases", &vectors, ref_add);

    // Exponent-difference sweep: b is a scaled by 2^-d with random (shaped) low bits.
    vectors.clear();
    for _ in 0..6000 {
        let a = rand_f32_exp(&mut rng, 0..=254);
        let a = shape_low_bits(&mut rng, a);
        let ea = ((a >> 23) & 0xFF) as i32;
        for d in 0..30 {
            let eb = (ea - d).max(0) as u32;
            let b = (rng.random::<u32>() & 0x8000_0000)
                | (eb << 23)
                | (rng.random::<u32>() & 0x007F_FFFF);
            vectors.push([a, shape_low_bits(&mut rng, b)]);
        }
    }
    n += dut.check(
        "exponent-difference sweep",
        &both_orders(vectors.clone()),
        ref_add,
    );

    // Random bit patterns (mostly far-apart exponents, plus NaN/inf encodings).
    vectors.clear();
    for _ in 0..(2 << 20) {
        vectors.push([rng.random(), rng.random()]);
    }
    n += dut.check("random bit patterns", &vectors, ref_add);

    // Close exponents (|ea - eb| <= 3), where cancellation and long normalization happen, and
    // subnormal neighbourhoods.
    vectors.clear();
    for i in 0..(1 << 20) {
        let a = if i % 4 == 0 {
            rand_f32_exp(&mut rng, 0..=3)
        } else {
            rand_f32_exp(&mut rng, 0..=254)
        };
        let ea = ((a >> 23) & 0xFF) as i32;
        let b = rand_f32_exp(&mut rng, ea - 3..=ea + 3);
        vectors.push([shape_low_bits(&mut rng, a), shape_low_bits(&mut rng, b)]);
    }
    n += dut.check("close exponents", &vectors, ref_add);
    println!("cf_fp32_add: {n} vectors in total, 0 mismatches");
}

// ---- fp32 mul ------------------------------------------------------------------------------------

#[test]
fn fp32_mul() {
    let mut dut = Dut::with_leaves(fp::fp32_mul(), fp::fp32_mul_stages().to_vec());
    let mut rng = ChaCha8Rng::seed_from_u64(3202);

    let named: &[[u32; 2]] = &[
        [0x0000_0001, 0x3F00_0000], // 2^-149 * 0.5: tie, to even = 0
        [0x0000_0001, 0x3FC0_0000], // 2^-149 * 1.5: tie, to even = 2^-148
        [0x0000_0001, 0x3F40_0000], // 2^-149 * 0.75 = 2^-149
        [0x0000_0001, 0x3F00_0001], // just above the tie: 2^-149
        [0x0000_0003, 0x3F00_0000], // 3 * 2^-150: tie, to even = 2^-148
        [0x007F_FFFF, 0x3F80_0001], // largest subnormal * (1 + 2^-23): rounds to 2^-126
        [0x00FF_FFFF, 0x3F00_0000], // (2^-125 - ulp) / 2: tie, rounds up to 2^-126
        [0x00FF_FFFE, 0x3F00_0000], // exact subnormal result
        [0x0080_0000, 0x3F7F_FFFF], // 2^-126 * (1 - 2^-24): rounds up to 2^-126
        [0x0080_0000, 0x3F00_0000], // 2^-126 * 0.5 = 2^-127 exact
        [0x1F80_0000, 0x1F80_0000], // 2^-64 * 2^-64 = 2^-128 subnormal
        [0x1A80_0000, 0x1A80_0000], // 2^-74 * 2^-74 = 2^-148
        [0x1A00_0000, 0x1A80_0000], // 2^-75 * 2^-74 = 2^-149
        [0x1A00_0000, 0x1A00_0000], // 2^-150: tie, to even = 0
        [0x1A00_0001, 0x1A00_0000], // just above 2^-150: 2^-149
        [0x0000_0001, 0x0000_0001], // underflow to 0
        [0x0000_0001, 0x4B00_0000], // 2^-149 * 2^23 = 2^-126
        [0x0040_0000, 0x4000_0000], // 2^-127 * 2 = 2^-126
        [0x7F7F_FFFF, 0x3F80_0001], // overflow by rounding
        [0x7F7F_FFFF, 0x4000_0000], // overflow
        [0x7F7F_FFFF, 0x3F7F_FFFF], // stays finite
        [0x5F80_0000, 0x5F80_0000], // 2^64 * 2^64 = inf
        [0x0000_0000, 0x7F80_0000], // 0 * inf = NaN
        [0x0000_0001, 0x7F80_0000], // tiny * inf = inf
        [0x7FC0_0000, 0x0000_0000], // NaN * 0
    ];
    let mut vectors: Vec<[u32; 2]> = Vec::new();
    for &[a, b] in named {
        for (sa, sb) in [
            (0, 0),
            (0x8000_0000, 0),
            (0, 0x8000_0000),
            (0x8000_0000, 0x8000_0000),
        ] {
            vectors.push([a ^ sa, b ^ sb]);
            vectors.push([b ^ sb, a ^ sa]);
        }
    }
    vectors.extend(all_pairs(&f32_specials()));
    let mut n = dut.check("edge cases", &vectors, ref_mul);

    // Products landing around the subnormal range (ea + eb - 127 in about [-30, 4]), with a
    // quarter of the operands subnormal themselves, and around the overflow threshold.
    vectors.clear();
    for i in 0..(1 << 19) {
        let (a, b) = if i % 4 == 0 {
            // A subnormal times 2^53 .. 2^127: results from 0 up to about 4.
            (
                rand_f32_exp(&mut rng, 0..=0),
                rand_f32_exp(&mut rng, 180..=254),
            )
        } else {
            let a = rand_f32_exp(&mut rng, 1..=254);
            let ea = ((a >> 23) & 0xFF) as i32;
            (a, rand_f32_exp(&mut rng, 127 - ea - 30..=127 - ea + 4))
        };
        vectors.push([shape_low_bits(&mut rng, a), shape_low_bits(&mut rng, b)]);
    }
    for _ in 0..(1 << 18) {
        let a = rand_f32_exp(&mut rng, 1..=254);
        let ea = ((a >> 23) & 0xFF) as i32;
        let b = rand_f32_exp(&mut rng, 127 - ea + 125..=127 - ea + 129);
        vectors.push([shape_low_bits(&mut rng, a), shape_low_bits(&mut rng, b)]);
    }
    n += dut.check(
        "underflow and overflow ranges",
        &both_orders(vectors.clone()),
        ref_mul,
    );

    // Constructed near-ties: random significands rarely put the only nonzero bit below the guard
    // at the very bottom of the 48-bit product, where a lost sticky bit would turn "just above a
    // tie" into a tie. Choose a_sig = u * 2^j (u odd) and b_sig = u^-1 * t mod 2^24 with t = +-1,
    // so the product is 2^j * (t + k * 2^24): bit j is the lowest set bit and the 23 bits above
    // it are all zeros (t = 1) or all ones (t = -1). The exponents put the rounding point at
    // 2^(j + 24) or nearby, in the normal and in the subnormal range (denormalizing shift
    // 1 - x = j + 1).
    vectors.clear();
    while vectors.len() < (1 << 17) {
        let j = rng.random_range(0..24u32);
        let u = (rng.random::<u32>() | 1) & ((1 << (24 - j)) - 1);
        let t: u32 = if rng.random() { 1 } else { 0x00FF_FFFF };
        let b_sig = inv_mod_2_24(u).wrapping_mul(t) & 0x00FF_FFFF;
        let a_sig = u << j;
        let (a_norm, b_norm) = (a_sig >> 23 == 1, b_sig >> 23 == 1);
        if !b_norm {
            continue;
        }
        // Effective exponents with ea + eb - 126 = x.
        let x = if rng.random() {
            -(j as i32) // denormalizing shift of j + 1: the rounding point is at bit j + 24
        } else {
            rng.random_range(-30..=130)
        };
        let ea = if a_norm {
            rng.random_range((x + 126 - 254).max(1)..=(x + 126 - 1).min(254))
        } else {
            1
        };
        let eb = x + 126 - ea;
        if !(1..=254).contains(&eb) {
            continue;
        }
        let a = (rng.random::<u32>() & 0x8000_0000)
            | ((if a_norm { ea } else { 0 } as u32) << 23)
            | (a_sig & 0x007F_FFFF);
        let b = (rng.random::<u32>() & 0x8000_0000) | ((eb as u32) << 23) | (b_sig & 0x007F_FFFF);
        vectors.push([a, b]);
    }
    n += dut.check(
        "constructed near-ties",
        &both_orders(vectors.clone()),
        ref_mul,
    );

    vectors.clear();
    for _ in 0..(2 << 20) {
        vectors.push([rng.random(), rng.random()]);
    }
    n += dut.check("random bit patterns", &vectors, ref_mul);
    println!("cf_fp32_mul: {n} vectors in total, 0 mismatches");
}

// ---- fp32 -> fp16 --------------------------------------------------------------------------------

#[test]
fn fp32_to_fp16() {
    let mut dut = Dut::with_leaves(fp::fp32_to_fp16(), fp::fp32_to_fp16_stages().to_vec());
    let mut rng = ChaCha8Rng::seed_from_u64(3216);

    // Every fp16 value's fp32 image (exact: must convert back to itself, NaN canonicalized).
    let mut vectors: Vec<[u32; 1]> = (0..=u16::MAX)
        .map(|h| [f32::from(f16::from_bits(h)).to_bits()])
        .collect();
    let mut n = dut.check("every fp16 value", &vectors, ref_to_fp16);

    // Every midpoint between adjacent finite fp16 magnitudes (subnormal ones included, and
    // 65520 between the largest finite value and the overflow), +-1 and +-2 fp32 ulps around it,
    // with both signs. Midpoints have 12 significant bits, so they are exact in fp32.
    vectors.clear();
    for h in 0..0x7C00u16 {
        let lo = f64::from(f16::from_bits(h));
        let hi = if h == 0x7BFF {
            65536.0
        } else {
            f64::from(f16::from_bits(h + 1))
        };
        let mid = ((lo + hi) / 2.0) as f32;
        assert_eq!(f64::from(mid), (lo + hi) / 2.0);
        let m = mid.to_bits();
        for x in [m, m + 1, m + 2, m - 1, m - 2] {
            vectors.push([x]);
            vectors.push([x | 0x8000_0000]);
        }
    }
    // The overflow threshold 65520 and its fp32 neighbours, explicitly.
    for x in [
        0x477F_F000u32,
        0x477F_EFFF,
        0x477F_F001,
        0x477F_E000,
        0x4780_0000,
    ] {
        vectors.push([x]);
        vectors.push([x | 0x8000_0000]);
    }
    n += dut.check("midpoints and neighbours", &vectors, ref_to_fp16);

    // fp32 subnormals, infinities, NaNs, and the fp32 edge values.
    vectors.clear();
    for x in [
        0x0000_0001u32,
        0x007F_FFFF,
        0x0040_0000,
        0x7F80_0000,
        0x7F80_0001,
        0x7FC0_0000,
        0x7FFF_FFFF,
    ] {
        vectors.push([x]);
        vectors.push([x | 0x8000_0000]);
    }
    for _ in 0..(1 << 16) {
        vectors.push([rand_f32_exp(&mut rng, 0..=0)]);
    }
    vectors.extend(f32_specials().into_iter().map(|x| [x]));
    n += dut.check("fp32 subnormals and specials", &vectors, ref_to_fp16);

    // Random values with exponents around fp16's range (2^-26 .. 2^17), shaped low bits, and
    // random bit patterns.
    vectors.clear();
    for _ in 0..(1 << 20) {
        let x = rand_f32_exp(&mut rng, 100..=144);
        vectors.push([shape_low_bits(&mut rng, x)]);
    }
    for _ in 0..(2 << 20) {
        vectors.push([rng.random()]);
    }
    n += dut.check("random values", &vectors, ref_to_fp16);
    println!("cf_fp32_to_fp16: {n} vectors in total, 0 mismatches");
}
