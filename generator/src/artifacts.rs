//! What `coforge gen` writes: one Verilog file per module definition (shared by every top that
//! uses it), a filelist per top, a manifest and the resolved config. Rendering is pure and
//! deterministic; writing is the caller's job.

use crate::config::{Config, Dtype};
use crate::engines::deform;
use crate::engines::sore::{self, SoreParams};
use crate::engines::stce;
use crate::engines::wuve::{self, WuveParams};
use crate::rtl::{emit, Design, ModuleDef, Port};
use serde::Serialize;

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

/// The engines a config describes: (top name, role, design).
pub fn engines(cfg: &Config) -> Vec<(String, &'static str, Design)> {
    let mut out = Vec::new();
    if let Some(stce_cfg) = &cfg.stce {
        out.push((
            stce_cfg.top.clone(),
            "tensor engine (STCE)",
            stce::generate(stce_cfg),
        ));
    }
    if let Some(train) = &cfg.train {
        let sore = sore_params(cfg).expect("a [train] config has a pruning unit");
        out.push((
            train.sore_top.clone(),
            "online pruning unit (SORE)",
            sore::generate(&sore, &train.sore_top),
        ));
        let wuve = WuveParams {
            lanes: train.wuve_lanes,
        };
        out.push((
            train.wuve_top.clone(),
            "weight-update vector engine (WUVE)",
            wuve::generate(&wuve, &train.wuve_top),
        ));
    }
    if let Some(deform_cfg) = &cfg.deform {
        out.push((
            deform_cfg.top.clone(),
            "deformable-convolution engine (deform)",
            deform::generate(deform_cfg),
        ));
    }
    out
}

/// The pruning unit of a training config: the STCE's N:M on its number format.
pub fn sore_params(cfg: &Config) -> Option<SoreParams> {
    let (train, stce_cfg) = (cfg.train.as_ref()?, cfg.stce.as_ref()?);
    let (lanes, n, m) = (train.sore_lanes, stce_cfg.n, stce_cfg.m);
    Some(match stce_cfg.dtype {
        Dtype::Fp16 => SoreParams::fp16(lanes, n, m),
        Dtype::Int8 => SoreParams::int8(lanes, n, m),
    })
}

/// Generates every engine that `cfg` describes and renders all of their files.
pub fn render(cfg: &Config) -> Rendered {
    let hash = cfg.hash();
    let mut all = Design::new();
    let mut tops = Vec::new();
    for (name, role, design) in engines(cfg) {
        for m in design.modules() {
            all.add(m.clone())
                .expect("modules shared by two engines are identical definitions");
        }
        tops.push(TopInfo {
            files: design.modules().map(emit::file_name).collect(),
            ports: design
                .get(&name)
                .expect("design has its top")
                .ports()
                .to_vec(),
            filelist: format!("{name}.f"),
            name,
            role,
        });
    }
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
    Rendered {
        top: tops[0].name.clone(),
        tops,
        verilog,
        filelists,
        manifest: ("manifest.json".to_string(), manifest_text),
        config: ("config.json".to_string(), cfg.resolved_json()),
    }
}
