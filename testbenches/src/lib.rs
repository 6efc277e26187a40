//! Shared helpers of the co-simulation tests: build an engine from a config, draw seeded
//! operands, and run GEMMs on Verilator or Icarus.

use coforge_driver::design::design_spec;
use coforge_generator::artifacts::{render, Rendered};
use coforge_generator::config::{Config, StceConfig};
use coforge_generator::engines::stce::ports;
use coforge_sim::{Agent, BuildOptions, DesignSpec, InputPort, Pins, VerilatedModel, Verilator};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// An engine generated from a config, ready to simulate.
pub struct Engine {
    pub config: Config,
    pub rendered: Rendered,
    pub spec: DesignSpec,
}

impl Engine {
    pub fn from_toml(toml: &str) -> Engine {
        let config = Config::from_toml(toml, "test config").expect("test config is valid");
        let rendered = render(&config).expect("test config renders");
        let spec = design_spec(&rendered, ports::CLOCK);
        Engine {
            config,
            rendered,
            spec,
        }
    }

    /// A STCE config in one line: `stce(rows, cols, n, m, extra_toml)`.
    pub fn stce(rows: u32, cols: u32, n: u32, m: u32, extra: &str) -> Engine {
        Engine::from_toml(&format!(
            "[stce]\nrows = {rows}\ncols = {cols}\nn = {n}\nm = {m}\n{extra}\n"
        ))
    }

    pub fn cfg(&self) -> &StceConfig {
        self.config
            .stce
            .as_ref()
            .expect("an STCE test engine has a [stce] section")
    }

    /// Builds (or fetches from the cache) the Verilator model.
    pub fn verilator(&self) -> VerilatedModel {
        self.verilator_with(&BuildOptions::default())
    }

    pub fn verilator_with(&self, opts: &BuildOptions) -> VerilatedModel {
        Verilator::build(&self.spec, opts)
            .unwrap_or_else(|e| panic!("Verilator build failed: {e}"))
            .instantiate()
            .unwrap_or_else(|e| panic!("cannot load the model: {e}"))
    }
}

/// Seeded uniform int8 tensor (ChaCha8, so a seed reproduces it anywhere).
pub fn random_i8(rows: usize, cols: usize, seed: u64) -> Array2<i8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || rng.random::<i8>())
}

/// Seeded int8 tensor drawn from a few values, so that N:M groups are full of ties and of the
/// extremes (-128, 127, 0).
pub fn adversarial_i8(rows: usize, cols: usize, seed: u64) -> Array2<i8> {
    const VALUES: [i8; 7] = [-128, 127, 0, 1, -1, -127, 64];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || VALUES[rng.random_range(0..VALUES.len())])
}

/// Seeded fp16 tensor, uniform in [-1, 1).
pub fn random_f16(rows: usize, cols: usize, seed: u64) -> Array2<half::f16> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || {
        half::f16::from_f32(rng.random_range(-1.0f32..1.0))
    })
}

/// Seeded fp16 tensor drawn from the edges of the format: signed zeros, subnormals, the
/// smallest normal, values whose products and sums round at halfway points, and the largest
/// finite values (whose products overflow nothing in fp32 but whose sums cancel).
pub fn adversarial_f16(rows: usize, cols: usize, seed: u64) -> Array2<half::f16> {
    const BITS: [u16; 16] = [
        0x0000, 0x8000, // +0, -0
        0x0001, 0x83ff, // smallest subnormal, -largest subnormal
        0x0400, 0x8400, // +-smallest normal
        0x3c00, 0xbc00, // +-1
        0x3c01, 0x0c00, // 1 + 2^-10, 2^-12 (its square is half an fp32 ulp of 2^-24 * ...)
        0x7bff, 0xfbff, // +-65504
        0x4200, 0xc200, // +-3
        0x1400, 0x3800, // 2^-10, 0.5
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || {
        half::f16::from_bits(BITS[rng.random_range(0..BITS.len())])
    })
}

/// Asserts that `verilator --lint-only -Wall` accepts the design made of `files` with top `top`
/// and prints nothing (no warning of any kind).
pub fn assert_lint_clean(files: &[(String, String)], top: &str, what: &str) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let paths: Vec<std::path::PathBuf> = files
        .iter()
        .map(|(name, text)| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write Verilog");
            path
        })
        .collect();
    let verilator = std::env::var("COFORGE_VERILATOR").unwrap_or_else(|_| "verilator".into());
    let out = std::process::Command::new(verilator)
        .args(["--lint-only", "-Wall", "--top-module", top])
        .args(&paths)
        .output()
        .expect("verilator runs (scripts/setup.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.is_empty(),
        "{what}/{top}:\n{text}"
    );
}

/// Synthesizes the design made of `files` with `yosys synth_xilinx -family xc7 -flatten` for top
/// `top` and returns the cell counts of the final `stat`, by cell type (e.g. `("FDRE", 32)`).
pub fn synth_xilinx_cells(files: &[(String, String)], top: &str, what: &str) -> Vec<(String, u32)> {
    let dir = tempfile::tempdir().expect("temporary folder");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write Verilog");
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let script = format!(
        "read_verilog {}; synth_xilinx -family xc7 -flatten -top {top}; stat",
        names.join(" ")
    );
    let out = std::process::Command::new("yosys")
        .args(["-p", &script])
        .current_dir(dir.path())
        .output()
        .expect("yosys runs (scripts/setup.sh installs it)");
    let stat = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what}/{top}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // synth_xilinx prints statistics of its own; the last block is the final `stat`.
    let last = stat.rfind("Number of cells").unwrap_or(stat.len());
    let cells: Vec<(String, u32)> = stat[last..]
        .lines()
        .skip(1)
        .map_while(|l| {
            let mut it = l.split_whitespace();
            match (it.next(), it.next().and_then(|n| n.parse().ok()), it.next()) {
                (Some(cell), Some(n), None) => Some((cell.to_string(), n)),
                _ => None,
            }
        })
        .collect();
    assert!(
        !cells.is_empty(),
        "{what}/{top}: no cell counts in:\n{stat}"
    );
    cells
}

/// Cells whose type starts with `prefix` (`"FD"` counts every flip-flop type).
pub fn cell_count(cells: &[(String, u32)], prefix: &str) -> u32 {
    cells
        .iter()
        .filter(|(c, _)| c.starts_with(prefix))
        .map(|(_, n)| n)
        .sum()
}

/// Runs `stim` on `spec` in Verilator and in Icarus: the two traces, each with its simulator's
/// name, for checks that must hold in both.
pub fn run_in_both_simulators(
    spec: &coforge_sim::DesignSpec,
    stim: &coforge_sim::Stimulus,
) -> [(coforge_sim::Trace, &'static str); 2] {
    use coforge_sim::{Icarus, Simulator};
    let verilator = Verilator::build(spec, &BuildOptions::default())
        .unwrap_or_else(|e| panic!("Verilator build failed: {e}"))
        .instantiate()
        .unwrap_or_else(|e| panic!("cannot load the model: {e}"))
        .run(stim)
        .unwrap_or_else(|e| panic!("Verilator run failed: {e}"));
    let dir = tempfile::tempdir().expect("temporary folder");
    let icarus = Icarus::new(spec, &dir.path().join(&spec.top))
        .and_then(|mut sim| sim.run(stim))
        .unwrap_or_else(|e| panic!("Icarus run failed: {e}"));
    [(verilator, "verilator"), (icarus, "icarus")]
}

/// A master that breaks the AXI4-Stream rules on a wrapper's slave port `<prefix>_*`: TVALID
/// always high (and TLAST) and TDATA changing every cycle, whether or not the beat was taken,
/// for `cycles` cycles. The protocol checker must catch it once the wrapper stops taking beats.
pub struct BrokenSource {
    tdata: InputPort,
    tvalid: InputPort,
    tlast: InputPort,
    cycles: u64,
    limit: u64,
}

impl BrokenSource {
    pub fn new(pins: &Pins, prefix: &str, cycles: u64) -> BrokenSource {
        let port = |s: &str| {
            pins.input(&format!("{prefix}_{s}"))
                .unwrap_or_else(|e| panic!("{prefix}_{s}: {e}"))
        };
        BrokenSource {
            tdata: port("tdata"),
            tvalid: port("tvalid"),
            tlast: port("tlast"),
            cycles: 0,
            limit: cycles,
        }
    }
}

impl Agent for BrokenSource {
    fn drive(&mut self, cycle: u64, pins: &mut Pins) {
        pins.set(self.tvalid, 1);
        pins.set(self.tlast, 1);
        pins.set_words(self.tdata, &[cycle as u32]);
    }
    fn observe(&mut self, _cycle: u64, _pins: &Pins) {
        self.cycles += 1;
    }
    fn done(&self) -> bool {
        self.cycles >= self.limit
    }
}
