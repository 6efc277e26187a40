//! `coforge verify --axi` on a deformable engine (mode A or DCNv2): the same layer runs again
//! through the engine's AXI wrapper (`<top>_axi`, `engines::axi::deform`) under random stalls,
//! and must give the bare engine's bits. The report section is the lane engines' shape
//! (`LaneAxiReport`): one job, bare and wrapped cycles side by side.

use crate::engine::LoadedEngine;
use crate::report::LaneAxiReport;
use anyhow::bail;
use coforge_driver::axi::Stalls;
use coforge_driver::axi_deform::WrapperStats;
use coforge_generator::engines::axi as axi_rtl;
use coforge_sim::VerilatedModel;

/// The stalls of `--axi [--stall-rate R]`, seeded by `--seed`.
pub fn stalls(rate: Option<f64>, seed: u64) -> Stalls {
    Stalls {
        rate: rate.unwrap_or(0.0),
        seed,
    }
}

/// The Verilator model of the wrapper of `top`.
pub fn wrapper_model(engine: &LoadedEngine, top: &str) -> anyhow::Result<VerilatedModel> {
    crate::verify_lanes::model(engine, &axi_rtl::wrapper_name(top), axi_rtl::ports::CLOCK)
}

/// The report of one job through the wrapper of `top`: `differ` elements differ from the bare
/// engine's, which took `bare_cycles`.
pub fn report(
    top: &str,
    job: String,
    stalls: Stalls,
    (differ, bare_cycles): (usize, u64),
    s: &WrapperStats,
) -> LaneAxiReport {
    LaneAxiReport {
        top: axi_rtl::wrapper_name(top),
        job,
        stall_rate: stalls.rate,
        stall_seed: stalls.seed,
        same_bits_as_bare: differ == 0,
        differ_from_bare: differ,
        cycles: s.cycles,
        estimated_cycles: s.estimated_cycles,
        bare_cycles,
        input_stall_cycles: s.input_stall_cycles,
        wrapper_busy_cycles: u64::from(s.counters.cycles_busy),
        output_stall_cycles: u64::from(s.counters.out_stalls),
    }
}

/// Prints the wrapper's line of the summary (after the report is written), and fails when its
/// bits differ from the bare engine's.
pub fn print_and_check(a: &LaneAxiReport) -> anyhow::Result<()> {
    say!("{}", a.summary_line());
    if !a.same_bits_as_bare {
        bail!(
            "the AXI wrapper {} gave different bits from the bare engine ({} elements differ); \
             report.json has the details",
            a.top,
            a.differ_from_bare
        );
    }
    Ok(())
}
