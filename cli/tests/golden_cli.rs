//! Runs the built `coforge` binary on tensors in a temporary directory: happy paths are checked
//! against the library, and every bad input must exit non-zero, name the problem, and write nothing.

// The CLI is a binary crate, so the test shares its .npy module by path (the format itself is
// pinned byte for byte by that module's unit tests).
#[allow(dead_code)]
#[path = "../src/budget.rs"]
mod budget;
#[allow(dead_code)]
#[path = "../src/tensor_io.rs"]
mod tensor_io;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use half::f16;
use ndarray::{array, Array1, Array2, Array3, Array4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_kernels::bdwp::{train_step, BdwpConfig, MaskBSource};
use sparse_kernels::deform::{
    self, dcnv2_fixed, CodenetBlock, Depthwise, FixedFormat, Geometry, Pointwise, Quantizer,
};
use sparse_kernels::gemm::{gemm, Fp16Arith, IntArith};
use sparse_kernels::nm::{self, NmPattern};
use tensor_io::{read_npy, read_npy_nd, Dtype, Tensor};

fn coforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coforge"))
        .args(args)
        .output()
        .expect("run coforge")
}

struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    fn put<D: ndarray::Dimension>(&self, name: &str, t: Tensor<D>) -> String {
        let p = self.path(name);
        std::fs::write(&p, t.to_npy_bytes()).unwrap();
        p.display().to_string()
    }
    fn out(&self) -> String {
        self.path("out").display().to_string()
    }
    fn get(&self, name: &str) -> Tensor {
        read_npy(&self.path("out").join(name)).unwrap()
    }
    fn get_nd(&self, name: &str) -> Tensor<ndarray::IxDyn> {
        read_npy_nd(&self.path("out").join(name)).unwrap()
    }
}

fn ok(args: &[&str]) -> Output {
    let o = coforge(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Asserts failure, that stderr contains every `needles`, and that `out` holds no file.
fn fails(args: &[&str], out: &Path, needles: &[&str]) {
    let o = coforge(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} succeeded");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}:\n{err}");
    }
    let files = std::fs::read_dir(out).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files, 0, "{args:?} wrote into {}", out.display());
}

fn rand_f32(rng: &mut ChaCha8Rng, shape: (usize, usize)) -> Array2<f32> {
    Array2::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

#[test]
fn prune_matches_the_library_for_each_dtype() {
    let d = Dir::new();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let w32 = rand_f32(&mut rng, (8, 12));
    let w8 = Array2::from_shape_simple_fn((8, 12), || rng.random::<i8>());
    let w16 = w32.mapv(f16::from_f32);
    let p = NmPattern::new(2, 4).unwrap();
    for axis in [0usize, 1] {
        let ax = axis.to_string();
        macro_rules! case {
            ($w:expr, $variant:ident) => {{
                let f = d.put("w.npy", Tensor::$variant($w.clone()));
                ok(&[
                    "golden",
                    "prune",
                    "--weights",
                    &f,
                    "--n",
                    "2",
                    "--m",
                    "4",
                    "--axis",
                    &ax,
                    "--out",
                    &d.out(),
                ]);
                let c = nm::compress($w.view(), p, Axis(axis)).unwrap();
                assert_eq!(
                    d.get("mask.npy"),
                    Tensor::U8(nm::mask($w.view(), p, Axis(axis)).unwrap())
                );
                assert_eq!(
                    d.get("values.npy").to_npy_bytes(),
                    Tensor::$variant(c.values).to_npy_bytes()
                );
                assert_eq!(d.get("indices.npy"), Tensor::U8(c.indices));
            }};
        }
        case!(w32, F32);
        case!(w16, F16);
        case!(w8, I8);
    }
    // 1:4 along axis 1 of 8x12 gives 8x3 values.
    ok(&[
        "golden",
        "prune",
        "--weights",
        &d.put("w.npy", Tensor::F32(w32)),
        "--n",
        "1",
        "--m",
        "4",
        "--axis",
        "1",
        "--out",
        &d.out(),
    ]);
    assert_eq!(d.get("values.npy").dim(), (8, 3));
}

#[test]
fn prune_rejects_bad_inputs() {
    let d = Dir::new();
    let out = d.path("out");
    let w = d.put("w.npy", Tensor::F32(Array2::zeros((4, 8))));
    let prune = |n: &str, m: &str, axis: &str, file: &str, needles: &[&str]| {
        fails(
            &[
                "golden",
                "prune",
                "--weights",
                file,
                "--n",
                n,
                "--m",
                m,
                "--axis",
                axis,
                "--out",
                &d.out(),
            ],
            &out,
            needles,
        )
    };
    prune("4", "4", "1", &w, &["N:M pruning needs N < M"]);
    prune("5", "4", "1", &w, &["N:M pruning needs N < M"]);
    prune("0", "4", "1", &w, &["--n must be at least 1"]);
    prune("2", "32", "1", &w, &["at most 16"]);
    prune("2", "4", "2", &w, &["--axis 2", "use 0"]);
    prune(
        "1",
        "3",
        "1",
        &w,
        &["axis 1", "length 8", "not a multiple of M = 3"],
    );
    prune(
        "1",
        "8",
        "0",
        &w,
        &["axis 0", "length 4", "not a multiple of M = 8"],
    );
    let mut nan = Array2::<f16>::default((4, 8));
    nan[[2, 5]] = f16::NAN;
    let f = d.put("nan.npy", Tensor::F16(nan));
    prune("2", "4", "1", &f, &["nan.npy", "NaN at index [2, 5]"]);
    let f = d.put("i32.npy", Tensor::I32(Array2::zeros((4, 8))));
    prune(
        "2",
        "4",
        "1",
        &f,
        &["i32.npy", "int8, float16 or float32", "not int32"],
    );
    let junk = d.path("junk.npy");
    std::fs::write(&junk, b"this is not numpy").unwrap();
    prune(
        "2",
        "4",
        "1",
        &junk.display().to_string(),
        &["junk.npy", "not a .npy file"],
    );
    let bytes = std::fs::read(&w).unwrap();
    let short = d.path("short.npy");
    std::fs::write(&short, &bytes[..bytes.len() - 3]).unwrap();
    prune(
        "2",
        "4",
        "1",
        &short.display().to_string(),
        &["short.npy", "truncated data"],
    );
    prune(
        "2",
        "4",
        "1",
        &d.path("missing.npy").display().to_string(),
        &["cannot read", "missing.npy"],
    );
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n";
    let mut one_d = b"\x93NUMPY\x01\x00".to_vec();
    one_d.extend_from_slice(&(header.len() as u16).to_le_bytes());
    one_d.extend_from_slice(header.as_bytes());
    one_d.extend_from_slice(&[0u8; 12]);
    let f1 = d.path("oned.npy");
    std::fs::write(&f1, one_d).unwrap();
    prune(
        "2",
        "4",
        "1",
        &f1.display().to_string(),
        &["oned.npy", "2-D", "[3]"],
    );
}

#[test]
fn gemm_matches_the_library() {
    let d = Dir::new();
    let a = array![[-128i8, 127, 3], [1, 2, -128]];
    let b = array![[-128i8, 5], [127, -6], [-128, 7]];
    let (fa, fb) = (
        d.put("a.npy", Tensor::I8(a.clone())),
        d.put("b.npy", Tensor::I8(b.clone())),
    );
    ok(&["golden", "gemm", "--a", &fa, "--b", &fb, "--out", &d.out()]);
    assert_eq!(
        d.get("c.npy"),
        Tensor::I32(gemm(&IntArith::default(), a.view(), b.view()).unwrap())
    );
    // Saturate differs from wrap on a long all-max reduction.
    let k = 131_073;
    let fa = d.put("a.npy", Tensor::I8(Array2::from_elem((1, k), -128)));
    let fb = d.put("b.npy", Tensor::I8(Array2::from_elem((k, 1), -128)));
    ok(&[
        "golden",
        "gemm",
        "--a",
        &fa,
        "--b",
        &fb,
        "--overflow",
        "saturate",
        "--out",
        &d.out(),
    ]);
    assert_eq!(d.get("c.npy"), Tensor::I32(array![[i32::MAX]]));
    ok(&[
        "golden",
        "gemm",
        "--a",
        &fa,
        "--b",
        &fb,
        "--overflow",
        "wrap",
        "--out",
        &d.out(),
    ]);
    assert_eq!(d.get("c.npy"), Tensor::I32(array![[i32::MIN + 16384]]));

    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let a = rand_f32(&mut rng, (3, 16)).mapv(f16::from_f32);
    let b = rand_f32(&mut rng, (16, 5)).mapv(f16::from_f32);
    let (fa, fb) = (
        d.put("a.npy", Tensor::F16(a.clone())),
        d.put("b.npy", Tensor::F16(b.clone())),
    );
    ok(&["golden", "gemm", "--a", &fa, "--b", &fb, "--out", &d.out()]);
    let want = Tensor::F32(gemm(&Fp16Arith, a.view(), b.view()).unwrap());
    assert_eq!(d.get("c.npy").to_npy_bytes(), want.to_npy_bytes());
}

#[test]
fn gemm_rejects_bad_inputs() {
    let d = Dir::new();
    let out = d.path("out");
    let a8 = d.put("a8.npy", Tensor::I8(Array2::zeros((2, 3))));
    let b8 = d.put("b8.npy", Tensor::I8(Array2::zeros((4, 2))));
    let a16 = d.put("a16.npy", Tensor::F16(Array2::default((2, 4))));
    let b16 = d.put("b16.npy", Tensor::F16(Array2::default((4, 2))));
    fails(
        &["golden", "gemm", "--a", &a8, "--b", &b8, "--out", &d.out()],
        &out,
        &["inner dimensions differ", "2x3", "4x2"],
    );
    fails(
        &["golden", "gemm", "--a", &a16, "--b", &b8, "--out", &d.out()],
        &out,
        &["unsupported dtype pair", "float16", "int8"],
    );
    fails(
        &[
            "golden",
            "gemm",
            "--a",
            &a16,
            "--b",
            &b16,
            "--overflow",
            "saturate",
            "--out",
            &d.out(),
        ],
        &out,
        &["--overflow applies to int8"],
    );
    fails(
        &[
            "golden",
            "gemm",
            "--a",
            &a16,
            "--b",
            &b16,
            "--overflow",
            "clamp",
            "--out",
            &d.out(),
        ],
        &out,
        &["clamp"],
    );
}

fn train_inputs(d: &Dir, seed: u64) -> (Array2<f16>, Array2<f32>, Array2<f16>, [String; 3]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = rand_f32(&mut rng, (4, 16)).mapv(f16::from_f32);
    let w = rand_f32(&mut rng, (8, 16));
    let dy = rand_f32(&mut rng, (4, 8)).mapv(f16::from_f32);
    let files = [
        d.put("x.npy", Tensor::F16(x.clone())),
        d.put("w.npy", Tensor::F32(w.clone())),
        d.put("dy.npy", Tensor::F16(dy.clone())),
    ];
    (x, w, dy, files)
}

#[test]
fn train_step_matches_the_library() {
    let d = Dir::new();
    let (x, w, dy, [fx, fw, fdy]) = train_inputs(&d, 5);
    for (src, source) in [
        ("forward-masked", MaskBSource::ForwardMasked),
        ("dense", MaskBSource::Dense),
    ] {
        ok(&[
            "golden",
            "train-step",
            "--x",
            &fx,
            "--w",
            &fw,
            "--dy",
            &fdy,
            "--n",
            "2",
            "--m",
            "8",
            "--lr",
            "0.125",
            "--lambda",
            "0.001",
            "--mask-b-source",
            src,
            "--out",
            &d.out(),
        ]);
        let cfg = BdwpConfig {
            pattern: NmPattern::new(2, 8).unwrap(),
            lr: 0.125,
            lambda: 0.001,
            mask_b_source: source,
        };
        let s = train_step(x.view(), w.view(), dy.view(), &cfg).unwrap();
        let expect = [
            ("y.npy", Tensor::F32(s.y)),
            ("dx.npy", Tensor::F32(s.dx)),
            ("dw.npy", Tensor::F32(s.dw)),
            ("w32.npy", Tensor::F32(s.w32)),
            ("w16.npy", Tensor::F16(s.next.w16)),
            ("mask_f.npy", Tensor::U8(s.next.mask_f)),
            ("mask_b.npy", Tensor::U8(s.next.mask_b)),
            ("w16_used.npy", Tensor::F16(s.used.w16)),
            ("mask_f_used.npy", Tensor::U8(s.used.mask_f)),
            ("mask_b_used.npy", Tensor::U8(s.used.mask_b)),
        ];
        for (name, t) in expect {
            assert_eq!(
                d.get(name).to_npy_bytes(),
                t.to_npy_bytes(),
                "{name} with {src}"
            );
        }
    }
    // The default lambda and source are accepted when omitted.
    ok(&[
        "golden",
        "train-step",
        "--x",
        &fx,
        "--w",
        &fw,
        "--dy",
        &fdy,
        "--n",
        "1",
        "--m",
        "4",
        "--lr",
        "0.5",
        "--out",
        &d.out(),
    ]);
}

#[test]
fn train_step_rejects_bad_inputs() {
    let d = Dir::new();
    let out = d.path("out");
    let (_, w, _, [fx, fw, fdy]) = train_inputs(&d, 6);
    let step = |x: &str, w: &str, dy: &str, n: &str, m: &str, lr: &str, needles: &[&str]| {
        fails(
            &[
                "golden",
                "train-step",
                "--x",
                x,
                "--w",
                w,
                "--dy",
                dy,
                "--n",
                n,
                "--m",
                m,
                "--lr",
                lr,
                "--out",
                &d.out(),
            ],
            &out,
            needles,
        )
    };
    let x32 = d.put("x32.npy", Tensor::F32(Array2::zeros((4, 16))));
    step(
        &x32,
        &fw,
        &fdy,
        "2",
        "4",
        "0.1",
        &["x32.npy", "must be float16, not float32"],
    );
    step(
        &fx,
        &fx,
        &fdy,
        "2",
        "4",
        "0.1",
        &["x.npy", "must be float32, not float16"],
    );
    step(
        &fx,
        &fw,
        &fx,
        "2",
        "4",
        "0.1",
        &[
            "shape mismatch",
            "dy is 4x16",
            "expected w32 8x16 and dy 4x8",
        ],
    );
    step(
        &fx,
        &fw,
        &fdy,
        "1",
        "3",
        "0.1",
        &["w32", "not a multiple of M = 3"],
    );
    step(
        &fx,
        &fw,
        &fdy,
        "5",
        "4",
        "0.1",
        &["invalid N:M pattern 5:4"],
    );
    step(&fx, &fw, &fdy, "2", "4", "NaN", &["lr", "finite"]);
    let mut dy_nan = Array2::<f16>::default((4, 8));
    dy_nan[[3, 7]] = f16::NAN;
    let fdn = d.put("dyn.npy", Tensor::F16(dy_nan));
    step(
        &fx,
        &fw,
        &fdn,
        "2",
        "4",
        "0.1",
        &["dy contains NaN at index [3, 7]"],
    );
    let mut w_nan = w.clone();
    w_nan[[0, 1]] = f32::NAN;
    let fwn = d.put("wn.npy", Tensor::F32(w_nan));
    step(
        &fx,
        &fwn,
        &fdy,
        "2",
        "4",
        "0.1",
        &["w32 contains NaN at index [0, 1]"],
    );
}

#[test]
fn random_is_seeded_and_typed() {
    let d = Dir::new();
    let f = d.path("r.npy").display().to_string();
    let g = d.path("g.npy").display().to_string();
    for (dtype, want) in [
        ("float16", Dtype::Float16),
        ("float32", Dtype::Float32),
        ("int8", Dtype::Int8),
    ] {
        ok(&[
            "golden", "random", "--shape", "3x5", "--dtype", dtype, "--seed", "7", "--out", &f,
        ]);
        ok(&[
            "golden", "random", "--shape", "3x5", "--dtype", dtype, "--seed", "7", "--out", &g,
        ]);
        let (a, b) = (
            read_npy(Path::new(&f)).unwrap(),
            read_npy(Path::new(&g)).unwrap(),
        );
        assert_eq!(a.to_npy_bytes(), b.to_npy_bytes());
        assert_eq!(a.dim(), (3, 5));
        assert_eq!(a.dtype(), want);
        ok(&[
            "golden", "random", "--shape", "3x5", "--dtype", dtype, "--seed", "8", "--out", &g,
        ]);
        assert_ne!(
            read_npy(Path::new(&g)).unwrap().to_npy_bytes(),
            a.to_npy_bytes()
        );
    }
    ok(&[
        "golden", "random", "--shape", "64x64", "--dtype", "float32", "--seed", "1", "--scale",
        "0.25", "--out", &f,
    ]);
    let Tensor::F32(a) = read_npy(Path::new(&f)).unwrap() else {
        panic!("dtype")
    };
    assert!(a.iter().all(|v| (-0.25..0.25).contains(v)));
    ok(&[
        "golden", "random", "--shape", "64x64", "--dtype", "int8", "--seed", "1", "--scale", "3",
        "--out", &f,
    ]);
    let Tensor::I8(a) = read_npy(Path::new(&f)).unwrap() else {
        panic!("dtype")
    };
    assert!(
        a.iter().all(|v| (-3..=3).contains(v))
            && a.iter().any(|&v| v == -3)
            && a.iter().any(|&v| v == 3)
    );
    let empty = d.path("none");
    std::fs::create_dir(&empty).unwrap();
    let h = empty.join("h.npy").display().to_string();
    fails(
        &[
            "golden", "random", "--shape", "3", "--dtype", "int8", "--seed", "1", "--out", &h,
        ],
        &empty,
        &["ROWSxCOLS"],
    );
    fails(
        &[
            "golden", "random", "--shape", "3x3", "--dtype", "int8", "--seed", "1", "--scale",
            "0.5", "--out", &h,
        ],
        &empty,
        &["integer in 1..=127"],
    );
    fails(
        &[
            "golden", "random", "--shape", "3x3", "--dtype", "float16", "--seed", "1", "--scale",
            "-1", "--out", &h,
        ],
        &empty,
        &["positive"],
    );
}

/// Inputs of a CoDeNet layer with a 1x1 front: `x` [H, W, Cin] (or with a batch axis), the depthwise
/// weights, dilations, scales and biases, and the 1x1 weights, scales and biases.
struct CodenetFiles {
    args: Vec<String>,
    block: CodenetBlock,
}

fn codenet_files(
    d: &Dir,
    seed: u64,
    batch: Option<usize>,
    stride: usize,
) -> (Array4<i8>, CodenetFiles) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (h, w, cin, c) = (5, 4, 3, 6);
    let x = Array4::from_shape_simple_fn((batch.unwrap_or(1), h, w, cin), || rng.random::<i8>());
    let int4 = |rng: &mut ChaCha8Rng| rng.random_range(-8i8..=7);
    let pw_w = Array2::from_shape_simple_fn((c, cin), || int4(&mut rng));
    let dw_w = Array3::from_shape_simple_fn((c, 3, 3), || int4(&mut rng));
    let (ho, wo) = (h.div_ceil(stride), w.div_ceil(stride));
    let dil = Array2::from_shape_simple_fn((ho, wo), || rng.random_range(1..=6u8));
    let q = |rng: &mut ChaCha8Rng| Quantizer {
        scale: Array1::from_shape_simple_fn(c, || rng.random_range(2000..20000i16)),
        bias: Array1::from_shape_simple_fn(c, || rng.random_range(0..200i16)),
        relu: true,
    };
    let (pq, dq) = (q(&mut rng), q(&mut rng));
    let xfile = match batch {
        Some(_) => d.put("x.npy", Tensor::I8(x.clone())),
        None => d.put("x.npy", Tensor::I8(x.index_axis(Axis(0), 0).to_owned())),
    };
    let args = [
        ("--x", xfile),
        ("--w", d.put("w.npy", Tensor::I8(dw_w.clone()))),
        ("--dilation", d.put("d.npy", Tensor::U8(dil.clone()))),
        ("--scale", d.put("s.npy", Tensor::I16(dq.scale.clone()))),
        ("--bias", d.put("b.npy", Tensor::I16(dq.bias.clone()))),
        ("--pw-w", d.put("pw.npy", Tensor::I8(pw_w.clone()))),
        ("--pw-scale", d.put("ps.npy", Tensor::I16(pq.scale.clone()))),
        ("--pw-bias", d.put("pb.npy", Tensor::I16(pq.bias.clone()))),
        ("--stride", stride.to_string()),
    ];
    let mut v = deform_args(d, "codenet", &args);
    v.push("--relu".into());
    let block = CodenetBlock {
        pointwise: Some(Pointwise { w: pw_w, quant: pq }),
        depthwise: Some(Depthwise {
            w: dw_w,
            dilation: dil,
            stride,
            quant: dq,
        }),
    };
    (x, CodenetFiles { args: v, block })
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `args` with `flag` set to `value`, or removed when `value` is None. A flag followed by another
/// flag is a boolean one and has no value to drop.
fn with(args: &[String], flag: &str, value: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i] == flag {
            let has_value = args.get(i + 1).is_some_and(|v| !v.starts_with("--"));
            i += if has_value { 2 } else { 1 };
        } else {
            out.push(args[i].clone());
            i += 1;
        }
    }
    if let Some(v) = value {
        out.extend([flag.to_string(), v.to_string()]);
    }
    out
}

/// `coforge golden deform --mode MODE FLAG VALUE... --out DIR`.
fn deform_args(d: &Dir, mode: &str, flags: &[(&str, String)]) -> Vec<String> {
    let mut v: Vec<String> = ["golden", "deform", "--mode", mode]
        .map(String::from)
        .to_vec();
    for (k, val) in flags {
        v.extend([k.to_string(), val.clone()]);
    }
    v.extend(["--out".to_string(), d.out()]);
    v
}

/// `args` with `flag` pointing at a new file holding `t`.
fn with_file<D: ndarray::Dimension>(
    d: &Dir,
    args: &[String],
    flag: &str,
    t: Tensor<D>,
) -> Vec<String> {
    let name = format!("{}-replaced.npy", flag.trim_start_matches('-'));
    with(args, flag, Some(&d.put(&name, t)))
}

#[test]
fn deform_codenet_matches_the_library() {
    for (batch, stride) in [(None, 1), (Some(2), 2)] {
        let d = Dir::new();
        let (x, f) = codenet_files(&d, 11, batch, stride);
        ok(&strs(&f.args));
        let r = deform::codenet_block(x.view(), &f.block).unwrap();
        let (y, acc) = (d.get_nd("y.npy"), d.get_nd("acc.npy"));
        match batch {
            Some(_) => {
                assert_eq!(y, Tensor::I8(r.y.clone().into_dyn()));
                assert_eq!(acc, Tensor::I32(r.acc.clone().into_dyn()));
            }
            None => {
                assert_eq!(
                    y,
                    Tensor::I8(r.y.index_axis(Axis(0), 0).to_owned().into_dyn())
                );
                assert_eq!(
                    acc,
                    Tensor::I32(r.acc.index_axis(Axis(0), 0).to_owned().into_dyn())
                );
            }
        }
        assert!(
            r.y.iter().any(|&v| v != -128 && v != 127),
            "outputs are not all clamped"
        );
        // Without the 1x1 front the depthwise stage reads x directly (x has Cin = 3 channels, so
        // use a 3-channel depthwise layer).
        let dw3 = Depthwise {
            w: Array3::from_shape_fn((3, 3, 3), |(c, i, j)| ((c + i * 3 + j) % 16) as i8 - 8),
            ..f.block.depthwise.clone().unwrap()
        };
        let q3 = Quantizer {
            scale: dw3.quant.scale.slice(ndarray::s![..3]).to_owned(),
            bias: dw3.quant.bias.slice(ndarray::s![..3]).to_owned(),
            relu: false,
        };
        let mut args = with(&f.args, "--pw-w", None);
        args = with(&args, "--pw-scale", None);
        args = with(&args, "--pw-bias", None);
        args = with(&args, "--relu", None);
        args = with_file(&d, &args, "--w", Tensor::I8(dw3.w.clone()));
        args = with_file(&d, &args, "--scale", Tensor::I16(q3.scale.clone()));
        args = with_file(&d, &args, "--bias", Tensor::I16(q3.bias.clone()));
        ok(&strs(&args));
        let plain = CodenetBlock {
            pointwise: None,
            depthwise: Some(Depthwise { quant: q3, ..dw3 }),
        };
        let r = deform::codenet_block(x.view(), &plain).unwrap();
        let got = d.get_nd("acc.npy");
        let want = if batch.is_some() {
            r.acc.into_dyn()
        } else {
            r.acc.index_axis(Axis(0), 0).to_owned().into_dyn()
        };
        assert_eq!(got, Tensor::I32(want));
    }
}

#[test]
fn deform_codenet_rejects_bad_inputs() {
    let d = Dir::new();
    let (_, f) = codenet_files(&d, 12, None, 1);
    let out = d.path("out");
    let bad = |args: Vec<String>, needles: &[&str]| fails(&strs(&args), &out, needles);
    // A 4-bit weight out of range, named with its index.
    let mut w = Array3::<i8>::zeros((6, 3, 3));
    w[[4, 2, 0]] = 8;
    bad(
        with_file(&d, &f.args, "--w", Tensor::I8(w)),
        &["w-replaced.npy", "int4", "[4, 2, 0]", "8"],
    );
    let mut pw = Array2::<i8>::zeros((6, 3));
    pw[[1, 1]] = -9;
    bad(
        with_file(&d, &f.args, "--pw-w", Tensor::I8(pw)),
        &["int4", "-9"],
    );
    // A dilation of 0 names the pixel; a map of the wrong shape names both shapes.
    let mut dil = Array2::<u8>::ones((5, 4));
    dil[[3, 2]] = 0;
    bad(
        with_file(&d, &f.args, "--dilation", Tensor::U8(dil)),
        &["dilation", "[3, 2]"],
    );
    bad(
        with_file(&d, &f.args, "--dilation", Tensor::U8(Array2::ones((4, 4)))),
        &["[5, 4]"],
    );
    // Shapes and dtypes that disagree.
    bad(
        with_file(&d, &f.args, "--scale", Tensor::I16(Array1::ones(5))),
        &["scale"],
    );
    bad(
        with_file(&d, &f.args, "--scale", Tensor::I32(Array1::ones(6))),
        &["int16", "int32"],
    );
    bad(
        with_file(&d, &f.args, "--x", Tensor::I8(Array2::zeros((5, 4)))),
        &["[H, W, C]"],
    );
    bad(
        with_file(&d, &f.args, "--w", Tensor::I8(Array4::zeros((6, 3, 3, 1)))),
        &["[C, 3, 3]"],
    );
    bad(
        with_file(&d, &f.args, "--pw-w", Tensor::I8(Array2::zeros((6, 4)))),
        &["1x1"],
    );
    // Flags: stride, a partial 1x1 front, a missing map, a flag of the other mode.
    bad(
        with(&f.args, "--stride", Some("3")),
        &["--stride 3", "1 or 2"],
    );
    bad(
        with(&f.args, "--pw-bias", None),
        &["--pw-w, --pw-scale and --pw-bias"],
    );
    bad(with(&f.args, "--dilation", None), &["--dilation"]);
    bad(
        with(&f.args, "--frac-bits", Some("4")),
        &["--frac-bits", "codenet"],
    );
    bad(
        with(
            &f.args,
            "--x",
            Some(&d.path("missing.npy").display().to_string()),
        ),
        &["missing.npy"],
    );
}

struct Dcnv2Files {
    args: Vec<String>,
    x: Array4<i8>,
    offset: Array4<i32>,
    mask: Array4<i32>,
    w: Array4<i8>,
    geom: Geometry,
}

fn dcnv2_files(d: &Dir, seed: u64) -> Dcnv2Files {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (b, cin, h, wd, cout, og) = (2, 4, 6, 5, 4, 2);
    let geom = Geometry {
        stride: [2, 1],
        padding: [1, 2],
        dilation: [1, 2],
        offset_groups: og,
        ..Geometry::default()
    };
    let (ho, wo) = ((h + 2 - 3) / 2 + 1, (wd + 4 - 5) + 1);
    let x = Array4::from_shape_simple_fn((b, cin, h, wd), || rng.random::<i8>());
    let w = Array4::from_shape_simple_fn((cout, cin / 2, 3, 3), || rng.random::<i8>());
    let offset =
        Array4::from_shape_simple_fn((b, 2 * og * 9, ho, wo), || rng.random_range(-64..64i32));
    let mask = Array4::from_shape_simple_fn((b, og * 9, ho, wo), || rng.random_range(0..=256i32));
    let args = [
        ("--x", d.put("x.npy", Tensor::I8(x.clone()))),
        ("--w", d.put("w.npy", Tensor::I8(w.clone()))),
        (
            "--offset",
            d.put("off.npy", Tensor::I16(offset.mapv(|v| v as i16))),
        ),
        ("--frac-bits", "4".into()),
        ("--mask", d.put("mask.npy", Tensor::I32(mask.clone()))),
        ("--mask-bits", "8".into()),
        ("--stride", "2,1".into()),
        ("--padding", "1,2".into()),
        ("--dilation", "1,2".into()),
        ("--offset-groups", "2".into()),
        ("--zero-point", "-3".into()),
    ];
    let v = deform_args(d, "dcnv2", &args);
    Dcnv2Files {
        args: v,
        x,
        offset,
        mask,
        w,
        geom,
    }
}

#[test]
fn deform_dcnv2_matches_the_library() {
    let d = Dir::new();
    let f = dcnv2_files(&d, 21);
    ok(&strs(&f.args));
    let fmt = FixedFormat::new(4, 8, -3).unwrap();
    let want = dcnv2_fixed(
        f.x.view(),
        f.offset.view(),
        Some(f.mask.view()),
        f.w.view(),
        &f.geom,
        &fmt,
    )
    .unwrap();
    assert_eq!(d.get_nd("y.npy"), Tensor::I32(want.clone().into_dyn()));
    assert!(want.iter().any(|&v| v != 0));
    // Without the mask, with int32 offsets and the defaults for the zero point.
    let mut args = with(&f.args, "--mask", None);
    args = with(&args, "--mask-bits", None);
    args = with(&args, "--zero-point", None);
    args = with_file(&d, &args, "--offset", Tensor::I32(f.offset.clone()));
    ok(&strs(&args));
    let fmt = FixedFormat::new(4, 0, 0).unwrap();
    let want = dcnv2_fixed(f.x.view(), f.offset.view(), None, f.w.view(), &f.geom, &fmt).unwrap();
    assert_eq!(d.get_nd("y.npy"), Tensor::I32(want.into_dyn()));
}

#[test]
fn deform_dcnv2_rejects_bad_inputs() {
    let d = Dir::new();
    let f = dcnv2_files(&d, 22);
    let out = d.path("out");
    let bad = |args: Vec<String>, needles: &[&str]| fails(&strs(&args), &out, needles);
    let (b, _, ho, wo) = f.mask.dim();
    // The offset channel count must be 2*G*kh*kw = 36.
    let off = Tensor::I32(Array4::zeros((b, 18, ho, wo)));
    bad(
        with_file(&d, &f.args, "--offset", off),
        &["2*G*kh*kw", "36"],
    );
    bad(
        with(&f.args, "--offset-groups", Some("1")),
        &["offset must be"],
    );
    bad(
        with(&f.args, "--offset-groups", Some("3")),
        &["offset_groups", "divide"],
    );
    bad(
        with_file(
            &d,
            &f.args,
            "--offset",
            Tensor::F32(Array4::zeros((b, 36, ho, wo))),
        ),
        &["int16 or int32"],
    );
    // f and g out of range.
    bad(
        with(&f.args, "--frac-bits", Some("13")),
        &["frac_bits", "0..=12"],
    );
    bad(with(&f.args, "--mask-bits", Some("17")), &["mask_bits"]);
    // A mask above 2^g, named with its index; a mask without its bits.
    let mut m = f.mask.clone();
    m[[1, 17, 0, 1]] = 257;
    bad(
        with_file(&d, &f.args, "--mask", Tensor::I32(m)),
        &["mask-replaced.npy", "[1, 17, 0, 1]", "257", "256"],
    );
    bad(with(&f.args, "--mask-bits", None), &["--mask-bits"]);
    // Shapes: weights whose groups do not divide, x of the wrong rank, a wrong geometry string.
    bad(
        with_file(&d, &f.args, "--w", Tensor::I8(Array4::zeros((4, 3, 3, 3)))),
        &["Cin"],
    );
    bad(
        with_file(&d, &f.args, "--x", Tensor::I8(Array3::zeros((4, 6, 5)))),
        &["[B, Cin, H, W]"],
    );
    bad(with(&f.args, "--stride", Some("0,1")), &["--stride"]);
    bad(with(&f.args, "--padding", Some("a,b")), &["--padding"]);
    bad(with(&f.args, "--dilation", Some("9,9")), &["kernel spans"]);
    // Flags of the other mode and missing ones.
    let mut relu = f.args.clone();
    relu.insert(4, "--relu".into());
    bad(relu, &["--relu does not apply to --mode dcnv2"]);
    bad(
        with(&f.args, "--scale", Some("s.npy")),
        &["--scale", "dcnv2"],
    );
    bad(with(&f.args, "--frac-bits", None), &["--frac-bits"]);
    bad(with(&f.args, "--offset", None), &["--offset"]);
}
