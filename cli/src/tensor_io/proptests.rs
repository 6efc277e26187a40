//! Property tests of the `.npy` reader over arbitrary bytes and generated headers: it never
//! panics, and it returns either an error or a correct parse (the tensor that the header and the
//! data describe, decoded here independently of the reader).

use super::*;
use ndarray::ArrayD;
use proptest::prelude::*;

/// A file: magic, version, header length (2 bytes for 1.0, 4 for 2.0 and 3.0), header, data.
fn file(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x93, b'N', b'U', b'M', b'P', b'Y', major, 0];
    if major == 1 {
        v.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        v.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

/// The fields of a generated header, and whether each one is valid.
#[derive(Clone, Debug)]
struct Fields {
    descr: (&'static str, Option<Dtype>),
    fortran: (&'static str, Option<bool>),
    /// Dimensions as written; `None` for one that does not parse as a `usize`.
    shape: Vec<(String, Option<usize>)>,
    /// Keys in the order written (a missing one, or an extra one, makes the header invalid).
    keys: Vec<&'static str>,
    quote: char,
    space: &'static str,
    trailing_comma: bool,
}

impl Fields {
    fn text(&self) -> String {
        let q = self.quote;
        let s = self.space;
        let dims: Vec<&str> = self.shape.iter().map(|(d, _)| d.as_str()).collect();
        let shape = match dims.len() {
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.join(&format!(",{s}"))),
        };
        let items: Vec<String> = self
            .keys
            .iter()
            .map(|&k| {
                let v = match k {
                    "descr" => format!("{q}{}{q}", self.descr.0),
                    "fortran_order" => self.fortran.0.to_string(),
                    "shape" => shape.clone(),
                    _ => "1".to_string(),
                };
                format!("{q}{k}{q}:{s}{v}")
            })
            .collect();
        let comma = if self.trailing_comma { "," } else { "" };
        format!("{{{}{comma}{s}}}", items.join(&format!(",{s}")))
    }

    /// What the header means when every field is valid: dtype, Fortran order, shape.
    fn meaning(&self) -> Option<(Dtype, bool, Vec<usize>)> {
        // A key given twice keeps its last value, as in a Python dict literal.
        let mut keys = self.keys.clone();
        keys.sort_unstable();
        keys.dedup();
        if keys != ["descr", "fortran_order", "shape"] {
            return None;
        }
        let shape: Vec<usize> = self.shape.iter().map(|(_, d)| *d).collect::<Option<_>>()?;
        // An array needs its non-zero dimensions to multiply to an addressable count, even when
        // another dimension is zero.
        shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= isize::MAX as usize)?;
        Some((self.descr.1?, self.fortran.1?, shape))
    }
}

fn fields() -> impl Strategy<Value = Fields> {
    let descr = proptest::sample::select(vec![
        ("|i1", Some(Dtype::Int8)),
        ("<i1", Some(Dtype::Int8)),
        ("|u1", Some(Dtype::Uint8)),
        ("<i2", Some(Dtype::Int16)),
        ("<f2", Some(Dtype::Float16)),
        ("<f4", Some(Dtype::Float32)),
        ("<i4", Some(Dtype::Int32)),
        (">f4", None),
        ("<f8", None),
        ("<c8", None),
        ("", None),
        ("O", None),
    ]);
    let fortran = prop_oneof![
        6 => proptest::sample::select(vec![("False", Some(false)), ("True", Some(true))]),
        1 => proptest::sample::select(vec![("false", None), ("0", None)]),
    ];
    let dim = prop_oneof![
        12 => (0usize..=4).prop_map(|d| (d.to_string(), Some(d))),
        3 => prop_oneof![Just(1usize << 31), Just(1 << 40), Just(usize::MAX)]
            .prop_map(|d| (d.to_string(), Some(d))),
        1 => prop_oneof![Just("99999999999999999999999"), Just("-1"), Just("2.0"), Just(""), Just("x")]
            .prop_map(|d| (d.to_string(), d.parse().ok())),
    ];
    let keys = prop_oneof![
        8 => Just(vec!["descr", "fortran_order", "shape"]).prop_shuffle(),
        1 => Just(vec!["descr", "shape"]),
        1 => Just(vec!["descr", "fortran_order", "shape", "extra"]).prop_shuffle(),
        1 => Just(vec!["descr", "fortran_order", "shape", "shape"]),
    ];
    (
        descr,
        fortran,
        prop_oneof![
            9 => proptest::collection::vec(dim, 0..=4),
            // An empty array whose other dimensions do not fit in memory, or not in a usize.
            1 => proptest::sample::select(vec![vec![0, usize::MAX], vec![2, 0, 1 << 32, 1 << 32], vec![0, 1 << 40, 3]])
                .prop_map(|dims| dims.into_iter().map(|d| (d.to_string(), Some(d))).collect()),
        ],
        keys,
        prop_oneof![Just('\''), Just('"')],
        prop_oneof![Just(" "), Just(""), Just("  \n")],
        any::<bool>(),
    )
        .prop_map(
            |(descr, fortran, shape, keys, quote, space, trailing_comma)| Fields {
                descr,
                fortran,
                shape,
                keys,
                quote,
                space,
                trailing_comma,
            },
        )
}

/// Decodes little-endian `data` of `dtype` into an array of `shape`, C or Fortran order: written
/// here from the format's definition, apart from the reader.
fn expected(dtype: Dtype, fortran: bool, shape: &[usize], data: &[u8]) -> Tensor<IxDyn> {
    fn arr<T: NpyElement>(fortran: bool, shape: &[usize], data: &[u8]) -> ArrayD<T> {
        let v: Vec<T> = data.chunks(T::DTYPE.size()).map(T::read_le).collect();
        if fortran {
            // Fortran order is C order of the reversed shape, with the axes reversed back.
            let rev: Vec<usize> = shape.iter().rev().copied().collect();
            let a = ArrayD::from_shape_vec(rev, v).unwrap().reversed_axes();
            a.as_standard_layout().into_owned()
        } else {
            ArrayD::from_shape_vec(shape.to_vec(), v).unwrap()
        }
    }
    match dtype {
        Dtype::Int8 => Tensor::I8(arr(fortran, shape, data)),
        Dtype::Uint8 => Tensor::U8(arr(fortran, shape, data)),
        Dtype::Int16 => Tensor::I16(arr(fortran, shape, data)),
        Dtype::Float16 => Tensor::F16(arr(fortran, shape, data)),
        Dtype::Float32 => Tensor::F32(arr(fortran, shape, data)),
        Dtype::Int32 => Tensor::I32(arr(fortran, shape, data)),
    }
}

/// Both readers on `bytes`: no panic (the test fails on one), and an accepted tensor is
/// self-consistent: writing it and reading it back gives the same bits.
fn read_both(bytes: &[u8]) -> Result<Option<Tensor<IxDyn>>, TestCaseError> {
    let nd = parse_npy_nd(bytes);
    let two = parse_npy(bytes);
    match &nd {
        Ok(t) => {
            let back = parse_npy_nd(&t.to_npy_bytes()).expect("a written tensor reads back");
            prop_assert_eq!(back.to_npy_bytes(), t.to_npy_bytes());
            prop_assert_eq!(two.is_ok(), t.shape().len() == 2);
        }
        Err(e) => {
            let msg = format!("{e:#}");
            prop_assert!(!msg.is_empty());
            prop_assert!(two.is_err());
        }
    }
    Ok(nd.ok())
}

/// A tensor of any supported dtype, rank 0 to 3, with any element bits.
fn tensor() -> impl Strategy<Value = Tensor<IxDyn>> {
    (
        0usize..6,
        proptest::collection::vec(0usize..4, 0..=3),
        proptest::collection::vec(any::<u8>(), 0..256),
    )
        .prop_map(|(kind, shape, bytes)| {
            let dtype = [
                Dtype::Int8,
                Dtype::Uint8,
                Dtype::Int16,
                Dtype::Float16,
                Dtype::Float32,
                Dtype::Int32,
            ][kind];
            let want = shape.iter().product::<usize>() * dtype.size();
            let data: Vec<u8> = (0..want)
                .map(|i| bytes.get(i).copied().unwrap_or(7))
                .collect();
            expected(dtype, false, &shape, &data)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        read_both(&bytes)?;
    }

    #[test]
    fn magic_then_arbitrary_bytes_never_panic(
        major in 0u8..=4,
        rest in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = vec![0x93, b'N', b'U', b'M', b'P', b'Y', major, 0];
        bytes.extend_from_slice(&rest);
        read_both(&bytes)?;
    }

    #[test]
    fn arbitrary_header_text_never_panics(
        major in 1u8..=3,
        header in ".{0,120}",
        data in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        read_both(&file(major, &header, &data))?;
    }

    /// Generated headers, valid or not, with the right amount of data or a few bytes off: a
    /// valid header with exactly its data is the tensor it describes; anything else is an error.
    #[test]
    fn generated_headers_give_the_tensor_or_an_error(
        f in fields(),
        major in 1u8..=3,
        off in prop_oneof![6 => Just(0i64), 1 => -3i64..=3],
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let meaning = f.meaning();
        let want = meaning.as_ref().and_then(|(dtype, _, shape)| {
            shape.iter().try_fold(dtype.size(), |n, &d| n.checked_mul(d))
        });
        let len = match want {
            Some(w) if w <= 256 => (w as i64 + off).max(0) as usize,
            _ => bytes.len() % 40,
        };
        let data: Vec<u8> = (0..len).map(|i| bytes.get(i).copied().unwrap_or(0x3c)).collect();
        let parsed = read_both(&file(major, &f.text(), &data))?;
        match (meaning, want) {
            (Some((dtype, fortran, shape)), Some(w)) if w == data.len() && w <= 256 => {
                let t = parsed.expect("a valid header with exactly its data parses");
                prop_assert_eq!(t.to_npy_bytes(), expected(dtype, fortran, &shape, &data).to_npy_bytes());
            }
            _ => prop_assert!(parsed.is_none(), "accepted: {}", f.text()),
        }
    }

    /// A valid file cut anywhere, or with one byte changed, never panics; the cut file is an
    /// error.
    #[test]
    fn damaged_files_never_panic(t in tensor(), cut in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let good = t.to_npy_bytes();
        let short = &good[..cut.index(good.len())];
        prop_assert!(read_both(short)?.is_none());
        let mut bent = good.clone();
        bent[at.index(good.len())] = byte;
        read_both(&bent)?;
    }

    #[test]
    fn any_tensor_round_trips(t in tensor()) {
        let back = read_both(&t.to_npy_bytes())?.expect("a written tensor reads back");
        prop_assert_eq!(back.to_npy_bytes(), t.to_npy_bytes());
        prop_assert_eq!(back.shape(), t.shape());
    }
}
