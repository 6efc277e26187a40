//! What `coforge gen` writes: one Verilog file per module definition (shared by every top that
//! uses it), a filelist per top, a manifest and the resolved config. Rendering is pure and
//! deterministic; writing is the caller's job.

use crate::config::{Config, ConfigError, DeformConfig, StceConfig};
use crate::engines::axi;
use crate::engines::deform;
use crate::engines::sat;
use crate::engines::sore::{self, SoreParams};
use crate::engines::stce;
use crate::engines::wuve::{self, WuveParams};
use crate::rtl::{emit, Design, DesignError, ModuleDef, Port};
use serde::Serialize;
use thiserror::Error;

pub use crate::rtl::emit::GENERATOR_VERSION;

/// One top-level module of a rendered config.
#[derive(Clone, Debug, Serialize)]
pub struct TopInfo {
    pub name: String,
    /// What the top is, e.g. "tensor engine (STCE)".
    pub role: &'static str,
    /// Its Verilog files, leaves first: the contents of its filelist.
    pub files: Vec<String>,
    #[serde(skip)]
    pub ports: Vec<Port>,
    pub filelist: String,
    /// For an AXI wrapper (`engines::axi`), the engine top it wraps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wraps: Option<String>,
}

/// A rendered config: file names (relative to the output folder) and their contents.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The primary top: the tensor engine, or the deformable-convolution engine of a config
    /// without one.
    pub top: String,
    pub tops: Vec<TopInfo>,
    /// Verilog files of all tops, leaves first.
    pub verilog: Vec<(String, String)>,
    /// `<top>.f` for every top.
    pub filelists: Vec<(String, String)>,
    pub manifest: (String, String),
    pub config: (String, String),
}

impl Rendered {
    /// Every file, in a fixed order.
    pub fn files(&self) -> impl Iterator<Item = &(String, String)> {
        self.verilog
            .iter()
            .chain(&self.filelists)
            .chain([&self.manifest, &self.config])
    }

    /// The primary top's filelist name.
    pub fn filelist(&self) -> &str {
        &self.filelists[0].0
    }
}

#[derive(Serialize)]
struct ManifestModule<'a> {
    name: &'a str,
    file: String,
    kind: &'static str,
    ports: &'a [Port],
}

#[derive(Serialize)]
struct Manifest<'a> {
    generator: &'static str,
    generator_version: &'static str,
    config_hash: String,
    top: &'a str,
    tops: &'a [TopInfo],
    parameters: &'a Config,
    modules: Vec<ManifestModule<'a>>,
}

/// What went wrong rendering a config.
#[derive(Debug, Error)]
pub enum RenderError {
    /// A config value the engines cannot use (it names the key and the fix).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Two different module definitions under one name: a generator bug once the names are
    /// checked, reported rather than panicking.
    #[error("generator error: {0}")]
    Design(#[from] DesignError),
}

/// The parameters of one engine of a config.
#[derive(Clone, Debug)]
pub enum EngineParams {
    Stce(StceConfig),
    Sore(SoreParams),
    Wuve(WuveParams),
    Deform(DeformConfig),
    /// The SAT system top: the whole config (its STCE, `[train]` and `[system]`).
    System(Box<Config>),
}

/// One engine a config describes, before it is generated.
#[derive(Clone, Debug)]
pub struct EnginePlan {
    /// The config key naming its top, e.g. `train.sore_top`.
    pub key: &'static str,
    pub top: String,
    /// What the top is, e.g. "tensor engine (STCE)".
    pub role: &'static str,
    pub params: EngineParams,
}

impl EnginePlan {
    /// The modules the engine defines besides its top.
    pub fn module_names(&self) -> Vec<String> {
        match &self.params {
            EngineParams::Stce(c) => stce::module_names(c),
            EngineParams::Sore(p) => sore::module_names(p),
            EngineParams::Wuve(p) => wuve::module_names(p),
            EngineParams::Deform(c) => deform::module_names(c),
            EngineParams::System(c) => sat::top::module_names(c),
        }
    }

    /// The AXI wrapper of this engine's top (`<top>_axi`, see `engines::axi`), for the engines
    /// that have one, given the engine's generated `design`. An STCE with the fp32 adder
    /// pipeline has none: the wrapper's stalls would move groups into other slots.
    pub fn axi_wrapper(&self, design: &Design) -> Option<ModuleDef> {
        let engine = design.get(&self.top)?;
        match &self.params {
            EngineParams::Stce(c) if c.fp_pipeline => None,
            EngineParams::Stce(c) => Some(axi::stce_wrapper(c, engine)),
            EngineParams::Sore(p) => {
                Some(axi::lane_wrapper(&axi::sore_engine(p, &self.top), engine))
            }
            EngineParams::Wuve(p) => {
                Some(axi::lane_wrapper(&axi::wuve_engine(p, &self.top), engine))
            }
            EngineParams::Deform(c) => {
                Some(axi::deform_wrapper(&axi::deform_engine(c, engine), engine))
            }
            EngineParams::System(c) => c
                .system
                .as_ref()
                .and_then(|sys| axi::sat::sat_wrapper(sys, engine)),
        }
    }

    pub fn generate(&self) -> Result<Design, DesignError> {
        match &self.params {
            EngineParams::Stce(c) => stce::generate(c),
            EngineParams::Sore(p) => sore::generate(p, &self.top),
            EngineParams::Wuve(p) => wuve::generate(p, &self.top),
            EngineParams::Deform(c) => deform::generate(c),
            EngineParams::System(c) => sat::top::generate(c),
        }
    }
}

/// The engines a config describes, the primary top first: the tensor engine, or the
/// deformable-convolution engine of a config without one.
pub fn plan(cfg: &Config) -> Vec<EnginePlan> {
    let mut out = Vec::new();
    if let Some(stce_cfg) = &cfg.stce {
        out.push(EnginePlan {
            key: "stce.top",
            top: stce_cfg.top.clone(),
            role: "tensor engine (STCE)",
            params: EngineParams::Stce(stce_cfg.clone()),
        });
    }
    if let (Some(train), Some(sore)) = (&cfg.train, sore_params(cfg)) {
        out.push(EnginePlan {
            key: "train.sore_top",
            top: train.sore_top.clone(),
            role: "online pruning unit (SORE)",
            params: EngineParams::Sore(sore),
        });
        out.push(EnginePlan {
            key: "train.wuve_top",
            top: train.wuve_top.clone(),
            role: "weight-update vector engine (WUVE)",
            params: EngineParams::Wuve(WuveParams::of(train)),
        });
    }
    if let (Some(system), Some(_), Some(_)) = (&cfg.system, &cfg.stce, &cfg.train) {
        out.push(EnginePlan {
            key: "system.top",
            top: system.top.clone(),
            role: "SAT system top (STCE, buffers, DMA, controller)",
            params: EngineParams::System(Box::new(cfg.clone())),
        });
    }
    if let Some(deform_cfg) = &cfg.deform {
        out.push(EnginePlan {
            key: "deform.top",
            top: deform_cfg.top.clone(),
            role: "deformable-convolution engine (deform)",
            params: EngineParams::Deform(deform_cfg.clone()),
        });
    }
    out
}

/// Checks, before anything is generated, that no top of `cfg` takes the name of a module that
/// one of its engines generates (`Config::from_toml` has already checked keywords, identifiers
/// and that the tops differ).
pub fn check_names(cfg: &Config) -> Result<(), ConfigError> {
    let engines = plan(cfg);
    for engine in &engines {
        for other in &engines {
            if other.module_names().contains(&engine.top) {
                return Err(ConfigError::Invalid {
                    key: engine.key,
                    value: format!("{:?}", engine.top),
                    fix: format!(
                        "`{}` is a module that the {} generates; choose another name, e.g. `{}_top`",
                        engine.top, other.role, engine.top
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Generates every engine of a config: (top name, role, design), the primary top first.
pub fn engines(cfg: &Config) -> Result<Vec<(String, &'static str, Design)>, RenderError> {
    check_names(cfg)?;
    plan(cfg)
        .into_iter()
        .map(|e| Ok((e.top.clone(), e.role, e.generate()?)))
        .collect()
}

/// The pruning unit of a training config (`SoreParams::of`).
pub fn sore_params(cfg: &Config) -> Option<SoreParams> {
    SoreParams::of(cfg)
}

/// Generates every engine that `cfg` describes and renders all of their files.
///
/// # Errors
/// A top named like a generated module ([`check_names`]), before anything is generated.
pub fn render(cfg: &Config) -> Result<Rendered, RenderError> {
    let hash = cfg.hash();
    let mut all = Design::new();
    let mut tops = Vec::new();
    check_names(cfg)?;
    let mut wrappers = Vec::new();
    for engine in plan(cfg) {
        let design = engine.generate()?;
        for m in design.modules() {
            // Modules shared by two engines are identical definitions, added once.
            all.add(m.clone())?;
        }
        let files: Vec<String> = design.modules().map(emit::file_name).collect();
        if let Some(wrapper) = engine.axi_wrapper(&design) {
            let mut wrapper_files = files.clone();
            wrapper_files.push(emit::file_name(&wrapper));
            wrappers.push(TopInfo {
                name: wrapper.name().to_string(),
                role: "AXI wrapper",
                files: wrapper_files,
                ports: wrapper.ports().to_vec(),
                filelist: format!("{}.f", wrapper.name()),
                wraps: Some(engine.top.clone()),
            });
            all.add(wrapper)?;
        }
        tops.push(TopInfo {
            files,
            ports: design
                .get(&engine.top)
                .expect("design has its top")
                .ports()
                .to_vec(),
            filelist: format!("{}.f", engine.top),
            wraps: None,
            name: engine.top,
            role: engine.role,
        });
    }
    // The wrappers come after every engine top, so the primary top stays first.
    tops.extend(wrappers);
    let verilog = emit::render_verilog(&all);
    let filelists = tops
        .iter()
        .map(|t| {
            let text: String = t.files.iter().map(|f| format!("{f}\n")).collect();
            (t.filelist.clone(), text)
        })
        .collect();
    let modules = all
        .modules()
        .map(|m| ManifestModule {
            name: m.name(),
            file: emit::file_name(m),
            kind: match m {
                ModuleDef::Generated(_) => "generated",
                ModuleDef::External(_) => "external",
            },
            ports: m.ports(),
        })
        .collect();
    let manifest = Manifest {
        generator: "coforge",
        generator_version: GENERATOR_VERSION,
        config_hash: hash,
        top: &tops[0].name,
        tops: &tops,
        parameters: cfg,
        modules,
    };
    let manifest_text =
        serde_json::to_string_pretty(&manifest).expect("manifest serializes") + "\n";
    Ok(Rendered {
        top: tops[0].name.clone(),
        tops,
        verilog,
        filelists,
        manifest: ("manifest.json".to_string(), manifest_text),
        config: ("config.json".to_string(), cfg.resolved_json()),
    })
}
