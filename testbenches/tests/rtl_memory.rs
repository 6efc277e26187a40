//! The RTL layer's memory (`ModuleBuilder::memory`): the emitted template is lint-clean, infers
//! block RAM in `yosys synth_xilinx` when deep and LUT RAM when small, and behaves as documented
//! (write at the edge, registered read one cycle later, read-first) in Verilator and Icarus.

use coforge_driver::design::sim_ports;
use coforge_generator::rtl::{emit, Expr, ModuleBuilder, ModuleDef};
use coforge_sim::{DesignSpec, Stimulus};
use coforge_testbenches::{
    assert_lint_clean, cell_count, run_in_both_simulators, synth_xilinx_cells,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A memory of `depth` words of `width` bits with one write port and `reads` (1 or 2) read
/// ports; read port 0 has an enable, port 1 reads every cycle.
fn ram(name: &str, width: u32, depth: u32, reads: u32) -> ModuleDef {
    ModuleBuilder::build(name, |b| {
        let clk = b.input("clk", 1, "");
        let addr_bits = coforge_generator::rtl::index_bits(depth);
        let we = b.input("we", 1, "");
        let waddr = b.input("waddr", addr_bits, "");
        let wdata = b.input("wdata", width, "");
        let mem = b.memory("mem", width, depth);
        b.memory_write(&clk, &mem, &we, &waddr, &wdata);
        for port in 0..reads {
            let enable = if port == 0 {
                b.input("re0", 1, "")
            } else {
                Expr::bit(true)
            };
            let raddr = b.input(&format!("raddr{port}"), addr_bits, "");
            let rdata = b.output_reg(&format!("rdata{port}"), width, "");
            b.memory_read(&clk, &mem, &rdata, &enable, &raddr);
        }
    })
}

fn files(def: &ModuleDef) -> Vec<(String, String)> {
    vec![(format!("{}.v", def.name()), emit::module_file(def, "test"))]
}

#[test]
fn memories_are_lint_clean() {
    for (width, depth, reads) in [(8, 1024, 1), (16, 1000, 2), (1, 2, 1), (36, 37, 2)] {
        let def = ram("ram", width, depth, reads);
        assert_lint_clean(
            &files(&def),
            "ram",
            &format!("{width}x{depth}, {reads} reads"),
        );
    }
}

fn synth(def: &ModuleDef) -> Vec<(String, u32)> {
    synth_xilinx_cells(&files(def), def.name(), "memory")
}

#[test]
fn yosys_infers_block_ram_for_deep_memories_and_lut_ram_for_small_ones() {
    // 1024 x 16 = 16 Kib: one RAMB18E1 per read port, the read register inside it.
    for reads in [1, 2] {
        let cells = synth(&ram("ram", 16, 1024, reads));
        assert_eq!(cell_count(&cells, "RAMB18E1"), reads, "{cells:?}");
        assert_eq!(cell_count(&cells, "RAMB36E1"), 0, "{cells:?}");
        assert_eq!(
            cell_count(&cells, "FD"),
            0,
            "read register not absorbed: {cells:?}"
        );
        assert_eq!(cell_count(&cells, "LUT"), 0, "{cells:?}");
    }
    // 4096 x 18 = 72 Kib: block RAM, and no flip-flop or LUT RAM holds the words.
    let cells = synth(&ram("ram", 18, 4096, 1));
    assert!(
        cell_count(&cells, "RAMB36E1") + cell_count(&cells, "RAMB18E1") >= 2,
        "{cells:?}"
    );
    assert_eq!(
        cell_count(&cells, "RAM32M") + cell_count(&cells, "RAM64"),
        0,
        "{cells:?}"
    );
    // 32 x 16: distributed LUT RAM, never 512 flip-flops.
    let cells = synth(&ram("ram", 16, 32, 1));
    assert_eq!(cell_count(&cells, "RAMB"), 0, "{cells:?}");
    assert!(cell_count(&cells, "RAM32M") > 0, "{cells:?}");
    assert!(cell_count(&cells, "FD") <= 16, "{cells:?}");
}

#[test]
fn memory_writes_at_the_edge_and_reads_one_cycle_later_read_first() {
    let (width, depth) = (12u32, 40u32);
    let def = ram("ram_sim", width, depth, 2);
    let spec = DesignSpec {
        top: "ram_sim".into(),
        sources: files(&def),
        ports: sim_ports(def.ports(), "clk"),
        clock: "clk".into(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut stim = Stimulus::new(&spec);
    let mut model = vec![0u64; depth as usize];
    // Expected (rdata0, rdata1) at each capture; every word is written before any read.
    let mut expected = Vec::new();
    let (mut rdata0, mut rdata1) = (0u64, 0u64);
    let cycles = depth as usize + 400;
    for cycle in 0..cycles {
        let filling = cycle < depth as usize;
        let we = filling || rng.random_bool(0.5);
        let waddr = if filling {
            cycle as u64
        } else {
            rng.random_range(0..depth) as u64
        };
        let wdata = rng.random_range(0..1u64 << width);
        let re0 = !filling && rng.random_bool(0.7);
        // Read port 0 often reads the word being written: it must see the old word.
        let raddr0 = if rng.random_bool(0.3) {
            waddr
        } else {
            rng.random_range(0..depth) as u64
        };
        let raddr1 = if filling {
            0
        } else {
            rng.random_range(0..depth) as u64
        };
        for (port, value) in [
            ("we", we as u64),
            ("waddr", waddr),
            ("wdata", wdata),
            ("re0", re0 as u64),
            ("raddr0", raddr0),
            ("raddr1", raddr1),
        ] {
            stim.set(port, value);
        }
        let check = cycle > depth as usize + 1;
        stim.step(check);
        if check {
            expected.push((rdata0, rdata1));
        }
        // The edge: reads see the array before this cycle's write.
        if re0 {
            rdata0 = model[raddr0 as usize];
        }
        rdata1 = model[raddr1 as usize];
        if we {
            model[waddr as usize] = wdata;
        }
    }
    for (trace, sim) in &run_in_both_simulators(&spec, &stim) {
        for (c, &(d0, d1)) in expected.iter().enumerate() {
            assert_eq!(trace.get(c, "rdata0"), d0, "{sim}: rdata0 at capture {c}");
            assert_eq!(trace.get(c, "rdata1"), d1, "{sim}: rdata1 at capture {c}");
        }
    }
}
