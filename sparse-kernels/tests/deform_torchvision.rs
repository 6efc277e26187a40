//! The float64 DCNv2 reference against torchvision's `deform_conv2d`, on every case of
//! `shared/vectors/deform-torchvision/` (made by its `make_vectors.py`).
//!
//! The folder is found beside the repository (`<repo>/../shared`, where CI puts it, or in a folder
//! further up), or under `$COFORGE_SHARED_DIR` when that is set. A missing folder fails the test with a message: it is
//! never skipped.
//!
//! Tolerance: `|ours − torchvision| ≤ 1e-12 · (1 + Σ|terms|)` per output, where `Σ|terms|` is
//! `|bias| + Σ |w|·|sample·mask|`, the scale of the rounding error of a float64 sum (torchvision
//! sums in another order, through a BLAS GEMM). The observed agreement is printed; it is about 1e-15.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array4};
use ndarray_npy::read_npy;
use sparse_kernels::deform::{dcnv2_f64, Geometry};

fn vectors_dir() -> PathBuf {
    const SUB: &str = "vectors/deform-torchvision";
    let found = match std::env::var_os("COFORGE_SHARED_DIR") {
        Some(d) => Some(PathBuf::from(d).join(SUB)),
        // `<repo>/../shared`, looked for from the repository's parent upwards, so that a git
        // worktree nested one level deeper finds the same folder.
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .skip(2)
            .map(|a| a.join("shared").join(SUB))
            .find(|d| d.is_dir()),
    };
    match found {
        Some(dir) if dir.join("cases.json").is_file() => dir,
        _ => panic!(
            "the torchvision vectors are missing: expected shared/{SUB}/cases.json beside the \
             repository clone (or in a folder above it), or set COFORGE_SHARED_DIR to the shared \
             folder"
        ),
    }
}

fn pair(v: &serde_json::Value, key: &str) -> [usize; 2] {
    let a = v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not a list"));
    [
        a[0].as_u64().unwrap() as usize,
        a[1].as_u64().unwrap() as usize,
    ]
}

#[test]
fn float_reference_matches_torchvision_on_every_case() {
    let dir = vectors_dir();
    let text = std::fs::read_to_string(dir.join("cases.json")).unwrap();
    let index: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = index["cases"].as_array().unwrap();
    assert!(cases.len() >= 7, "expected the 7 published cases");
    let mut worst = 0f64;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let load4 = |k: &str| -> Array4<f64> {
            read_npy(dir.join(format!("{name}_{k}.npy")))
                .unwrap_or_else(|e| panic!("{name}_{k}.npy: {e}"))
        };
        let (x, offset, w, y) = (load4("x"), load4("offset"), load4("weight"), load4("y"));
        let bias: Array1<f64> = read_npy(dir.join(format!("{name}_bias.npy"))).unwrap();
        let mask = case["mask"].as_bool().unwrap().then(|| load4("mask"));
        let geom = Geometry {
            stride: pair(case, "stride"),
            padding: pair(case, "padding"),
            dilation: pair(case, "dilation"),
            offset_groups: case["offset_groups"].as_u64().unwrap() as usize,
            ..Geometry::default()
        };
        let groups = x.dim().1 / w.dim().1;
        assert_eq!(groups as u64, case["groups"].as_u64().unwrap(), "{name}");
        let ours = dcnv2_f64(
            x.view(),
            offset.view(),
            mask.as_ref().map(|m| m.view()),
            w.view(),
            Some(bias.view()),
            &geom,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ours.dim(), y.dim(), "{name}");
        // The scale of each output's terms, from the same reference with |x|, |w|, |bias| (mask
        // and bilinear weights are non-negative, so this is Σ|w|·|sample| up to x's sign mixing).
        let scale = dcnv2_f64(
            x.mapv(f64::abs).view(),
            offset.view(),
            mask.as_ref().map(|m| m.view()),
            w.mapv(f64::abs).view(),
            Some(bias.mapv(f64::abs).view()),
            &geom,
        )
        .unwrap();
        for ((idx, &a), (&b, &s)) in ours.indexed_iter().zip(y.iter().zip(scale.iter())) {
            let err = (a - b).abs();
            worst = worst.max(err / (1.0 + s));
            assert!(
                err <= 1e-12 * (1.0 + s),
                "{name} at {idx:?}: ours {a}, torchvision {b}, |diff| {err:e}, scale {s}"
            );
        }
        // Every case must exercise non-zero outputs (no vacuous comparison).
        assert!(y.iter().any(|v| v.abs() > 1e-3), "{name}");
    }
    println!("worst relative difference to torchvision: {worst:e}");
}
