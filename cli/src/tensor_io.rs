//! Reading and writing tensors as NumPy `.npy` files (format versions 1.0, 2.0 and 3.0).
//!
//! One small parser/writer for all dtypes rather than `ndarray-npy`, because that crate has no
//! float16 support and two code paths would be harder to keep consistent. Supported dtypes:
//! int8 (`|i1`), uint8 (`|u1`), int16 (`<i2`), float16 (`<f2`), float32 (`<f4`), int32 (`<i4`),
//! little-endian, C or Fortran order (Fortran data is transposed into C order on read). Files are
//! always written as version 1.0, C order. [`read_npy`] reads 2-D tensors (the GEMM verbs);
//! [`read_npy_nd`] reads any rank (the convolution verbs).

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use half::f16;
use ndarray::{Array, ArrayView, Dimension, Ix2, IxDyn, ShapeBuilder};

/// Element types the golden verbs understand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    Int8,
    Uint8,
    Int16,
    Float16,
    Float32,
    Int32,
}

impl Dtype {
    /// The `descr` written to headers.
    pub fn descr(self) -> &'static str {
        match self {
            Dtype::Int8 => "|i1",
            Dtype::Uint8 => "|u1",
            Dtype::Int16 => "<i2",
            Dtype::Float16 => "<f2",
            Dtype::Float32 => "<f4",
            Dtype::Int32 => "<i4",
        }
    }

    /// NumPy's name, used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Int8 => "int8",
            Dtype::Uint8 => "uint8",
            Dtype::Int16 => "int16",
            Dtype::Float16 => "float16",
            Dtype::Float32 => "float32",
            Dtype::Int32 => "int32",
        }
    }

    fn size(self) -> usize {
        match self {
            Dtype::Int8 | Dtype::Uint8 => 1,
            Dtype::Int16 | Dtype::Float16 => 2,
            Dtype::Float32 | Dtype::Int32 => 4,
        }
    }

    /// Accepts the little-endian spellings NumPy writes (`|` or `<`; one-byte types have no order).
    fn from_descr(d: &str) -> Option<Self> {
        Some(match d {
            "|i1" | "<i1" | "i1" => Dtype::Int8,
            "|u1" | "<u1" | "u1" => Dtype::Uint8,
            "<i2" => Dtype::Int16,
            "<f2" => Dtype::Float16,
            "<f4" => Dtype::Float32,
            "<i4" => Dtype::Int32,
            _ => return None,
        })
    }
}

const SUPPORTED: &str =
    "int8 (|i1), uint8 (|u1), int16 (<i2), float16 (<f2), float32 (<f4), int32 (<i4), little-endian";

/// A tensor of one of the supported dtypes; 2-D unless another dimension type is named.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor<D: Dimension = Ix2> {
    I8(Array<i8, D>),
    U8(Array<u8, D>),
    I16(Array<i16, D>),
    F16(Array<f16, D>),
    F32(Array<f32, D>),
    I32(Array<i32, D>),
}

/// Applies `$f` to the array inside any variant.
macro_rules! each_variant {
    ($t:expr, $a:ident => $f:expr) => {
        match $t {
            Tensor::I8($a) => $f,
            Tensor::U8($a) => $f,
            Tensor::I16($a) => $f,
            Tensor::F16($a) => $f,
            Tensor::F32($a) => $f,
            Tensor::I32($a) => $f,
        }
    };
}

impl<D: Dimension> Tensor<D> {
    pub fn dtype(&self) -> Dtype {
        match self {
            Tensor::I8(_) => Dtype::Int8,
            Tensor::U8(_) => Dtype::Uint8,
            Tensor::I16(_) => Dtype::Int16,
            Tensor::F16(_) => Dtype::Float16,
            Tensor::F32(_) => Dtype::Float32,
            Tensor::I32(_) => Dtype::Int32,
        }
    }

    pub fn shape(&self) -> &[usize] {
        each_variant!(self, a => a.shape())
    }

    /// The `.npy` file contents.
    pub fn to_npy_bytes(&self) -> Vec<u8> {
        each_variant!(self, a => encode(a.view()))
    }
}

impl Tensor<Ix2> {
    pub fn dim(&self) -> (usize, usize) {
        each_variant!(self, a => a.dim())
    }
}

/// An element type with a fixed little-endian encoding.
pub trait NpyElement: Copy {
    const DTYPE: Dtype;
    fn write_le(self, out: &mut Vec<u8>);
    /// `b` has exactly `DTYPE.size()` bytes.
    fn read_le(b: &[u8]) -> Self;
    /// Wraps an array of this element type in its [`Tensor`] variant.
    fn wrap<D: Dimension>(a: Array<Self, D>) -> Tensor<D>;
    /// The array inside `t` when `t` holds this element type, else `t` back.
    fn unwrap<D: Dimension>(t: Tensor<D>) -> Result<Array<Self, D>, Tensor<D>>;
}

macro_rules! npy_element {
    ($t:ty, $v:ident, $d:expr, $n:expr) => {
        impl NpyElement for $t {
            const DTYPE: Dtype = $d;
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(b: &[u8]) -> Self {
                let mut a = [0u8; $n];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
            fn wrap<D: Dimension>(a: Array<Self, D>) -> Tensor<D> {
                Tensor::$v(a)
            }
            fn unwrap<D: Dimension>(t: Tensor<D>) -> Result<Array<Self, D>, Tensor<D>> {
                match t {
                    Tensor::$v(a) => Ok(a),
                    other => Err(other),
                }
            }
        }
    };
}
npy_element!(i8, I8, Dtype::Int8, 1);
npy_element!(u8, U8, Dtype::Uint8, 1);
npy_element!(i16, I16, Dtype::Int16, 2);
npy_element!(f16, F16, Dtype::Float16, 2);
npy_element!(f32, F32, Dtype::Float32, 4);
npy_element!(i32, I32, Dtype::Int32, 4);

/// Encodes an array of any rank as a version 1.0 `.npy` file in C order.
pub fn encode<T: NpyElement, D: Dimension>(a: ArrayView<T, D>) -> Vec<u8> {
    let shape = match a.shape() {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        T::DTYPE.descr()
    );
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64 and
    // terminated by a newline, as the format specifies.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + a.len() * T::DTYPE.size());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    // The header of any array a verb writes is far below 64 KiB, so version 1.0's u16 length fits.
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in a.iter() {
        v.write_le(&mut out);
    }
    out
}

/// The largest header accepted. A header is about 70 bytes; NumPy pads it to a multiple of 64,
/// so 64 KiB is generous, and a bound keeps a hostile header from allocating gigabytes.
pub const MAX_HEADER: usize = 64 << 10;

/// Reads a 2-D `.npy` file; every error names the file. See [`read_npy_nd`] for the bounds.
pub fn read_npy(path: &Path) -> anyhow::Result<Tensor> {
    to_2d(read_npy_nd(path)?)
        .with_context(|| format!("{} is not a usable .npy tensor", path.display()))
}

/// Reads a `.npy` file of any rank; every error names the file. The read is bounded: the header
/// is read first, the size of the data is computed from its shape (checked arithmetic) and
/// checked against the memory budget ([`crate::budget`]), and then exactly that many bytes are
/// read, so an endless input such as `/dev/zero` or a FIFO is refused instead of read forever.
pub fn read_npy_nd(path: &Path) -> anyhow::Result<Tensor<IxDyn>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        bail!("{} is a folder, not a .npy file", path.display());
    }
    read_from(std::io::BufReader::new(file), &path.display().to_string())
        .with_context(|| format!("{} is not a usable .npy tensor", path.display()))
}

/// Parses the bytes of a `.npy` file holding a 2-D tensor.
#[allow(dead_code)] // for tests and fuzzing of the reader
pub fn parse_npy(bytes: &[u8]) -> anyhow::Result<Tensor> {
    to_2d(parse_npy_nd(bytes)?)
}

/// Parses the bytes of a `.npy` file of any rank.
#[allow(dead_code)] // for tests and fuzzing of the reader
pub fn parse_npy_nd(bytes: &[u8]) -> anyhow::Result<Tensor<IxDyn>> {
    read_from(bytes, "the .npy data")
}

fn to_2d(t: Tensor<IxDyn>) -> anyhow::Result<Tensor> {
    if t.shape().len() != 2 {
        bail!(
            "expected a 2-D array but the shape is {:?}; reshape it to 2-D",
            t.shape()
        );
    }
    Ok(
        each_variant!(t, a => NpyElement::wrap(a.into_dimensionality::<Ix2>().expect("rank checked"))),
    )
}

/// Reads up to `n` bytes (fewer only at the end of the input).
fn read_up_to(r: &mut impl Read, n: usize) -> anyhow::Result<Vec<u8>> {
    let mut v = Vec::with_capacity(n.min(1 << 20));
    r.take(n as u64)
        .read_to_end(&mut v)
        .context("read failed")?;
    Ok(v)
}

fn read_from(mut r: impl Read, name: &str) -> anyhow::Result<Tensor<IxDyn>> {
    let magic = read_up_to(&mut r, 10)?;
    if magic.len() < 10 || &magic[..6] != b"\x93NUMPY" {
        bail!("not a .npy file (it does not start with the \\x93NUMPY magic)");
    }
    let (major, minor) = (magic[6], magic[7]);
    let len = match major {
        1 => usize::from(u16::from_le_bytes([magic[8], magic[9]])),
        2 | 3 => {
            let more = read_up_to(&mut r, 2)?;
            if more.len() < 2 {
                bail!("truncated header");
            }
            u32::from_le_bytes([magic[8], magic[9], more[0], more[1]]) as usize
        }
        _ => bail!("unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)"),
    };
    if len > MAX_HEADER {
        bail!("the header announces {len} bytes, more than the {MAX_HEADER} a tensor needs");
    }
    let header = read_up_to(&mut r, len)?;
    if header.len() < len {
        bail!(
            "truncated header: it announces {len} bytes but the file has {}",
            header.len()
        );
    }
    let header = std::str::from_utf8(&header).context("header is not text")?;
    let h = parse_header(header)?;
    let dtype = Dtype::from_descr(&h.descr)
        .with_context(|| format!("unsupported dtype '{}'; supported: {SUPPORTED}", h.descr))?;
    let want = h
        .shape
        .iter()
        .try_fold(dtype.size(), |n, &d| n.checked_mul(d))
        .with_context(|| format!("shape {:?} too large to address", h.shape))?;
    // An array also needs its non-zero dimensions to multiply to an addressable count, even when
    // another dimension is zero and there is no data at all.
    let addressable = h
        .shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |n, &d| n.checked_mul(d));
    if addressable.is_none_or(|n| n > isize::MAX as usize) {
        bail!(
            "shape {:?} has too many elements to address, although it has none",
            h.shape
        );
    }
    // The bytes, and the decoded array beside them while decoding.
    crate::budget::check_file(
        &format!("reading {name} ({:?} {})", h.shape, dtype.name()),
        2 * want as u128,
    )?;
    let data = read_up_to(&mut r, want.saturating_add(1))?;
    if data.len() != want {
        bail!(
            "{} data: shape {:?} of {} needs {want} bytes but the file has {}",
            if data.len() < want {
                "truncated"
            } else {
                "extra bytes after the"
            },
            h.shape,
            dtype.name(),
            if data.len() < want {
                data.len().to_string()
            } else {
                "more".to_string()
            }
        );
    }
    let (shape, f) = (&h.shape[..], h.fortran);
    Ok(match dtype {
        Dtype::Int8 => Tensor::I8(decode(&data, shape, f)),
        Dtype::Uint8 => Tensor::U8(decode(&data, shape, f)),
        Dtype::Int16 => Tensor::I16(decode(&data, shape, f)),
        Dtype::Float16 => Tensor::F16(decode(&data, shape, f)),
        Dtype::Float32 => Tensor::F32(decode(&data, shape, f)),
        Dtype::Int32 => Tensor::I32(decode(&data, shape, f)),
    })
}

fn decode<T: NpyElement>(data: &[u8], shape: &[usize], fortran: bool) -> Array<T, IxDyn> {
    let v: Vec<T> = data.chunks_exact(T::DTYPE.size()).map(T::read_le).collect();
    // The length was checked against the shape by the caller.
    let a = Array::from_shape_vec(IxDyn(shape).set_f(fortran), v)
        .expect("length checked against the shape");
    a.as_standard_layout().into_owned()
}

struct Header {
    descr: String,
    fortran: bool,
    shape: Vec<usize>,
}

/// Parses the Python dict literal of the header: `{'descr': '<f4', 'fortran_order': False,
/// 'shape': (3, 4), }` (any key order, either quote style, optional trailing commas).
fn parse_header(h: &str) -> anyhow::Result<Header> {
    let mut p = Lexer {
        s: h.trim().as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        match key.as_str() {
            "descr" => descr = Some(p.string()?),
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => bail!("unexpected header key '{other}'"),
        }
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    Ok(Header {
        descr: descr.context("header has no 'descr'")?,
        fortran: fortran.context("header has no 'fortran_order'")?,
        shape: shape.context("header has no 'shape'")?,
    })
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> anyhow::Result<()> {
        if !self.eat(c) {
            bail!(
                "malformed header: expected '{}' at byte {}",
                c as char,
                self.i
            );
        }
        Ok(())
    }
    fn string(&mut self) -> anyhow::Result<String> {
        self.skip_ws();
        let q = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => bail!(
                "malformed header: expected a quoted string at byte {}",
                self.i
            ),
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == q)
            .context("malformed header: unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }
    fn boolean(&mut self) -> anyhow::Result<bool> {
        self.skip_ws();
        for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(v);
            }
        }
        bail!(
            "malformed header: expected True or False at byte {}",
            self.i
        )
    }
    fn tuple(&mut self) -> anyhow::Result<Vec<usize>> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(dims);
            }
            self.skip_ws();
            let start = self.i;
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            dims.push(
                digits
                    .parse()
                    .with_context(|| format!("malformed header: bad dimension at byte {start}"))?,
            );
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend_from_slice(&(header.len() as u16).to_le_bytes());
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn round_trip_every_dtype() {
        let cases = [
            Tensor::I8(array![[-128i8, 127, 0], [1, -1, 5]]),
            Tensor::U8(array![[0u8, 255]]),
            Tensor::F16(array![
                [f16::from_bits(0x8000), f16::INFINITY],
                [f16::from_bits(1), f16::MAX]
            ]),
            Tensor::F32(array![[-0.0f32], [f32::MIN_POSITIVE]]),
            Tensor::I32(array![[i32::MIN, i32::MAX]]),
        ];
        for t in cases {
            let b = t.to_npy_bytes();
            assert_eq!((10 + u16::from_le_bytes([b[8], b[9]]) as usize) % 64, 0);
            let back = parse_npy(&b).unwrap();
            // Compare bits: -0.0 == 0.0 would hide a sign bug.
            assert_eq!(back.to_npy_bytes(), b);
            assert_eq!(back.dim(), t.dim());
        }
    }

    #[test]
    fn round_trip_any_rank_and_int16() {
        let cases: [Tensor<IxDyn>; 4] = [
            Tensor::I16(
                ndarray::ArrayD::from_shape_vec(
                    vec![2, 1, 3],
                    vec![i16::MIN, -1, 0, 1, 2, i16::MAX],
                )
                .unwrap(),
            ),
            Tensor::I8(ndarray::ArrayD::from_shape_vec(vec![3], vec![-128, 0, 127]).unwrap()),
            Tensor::I32(
                ndarray::ArrayD::from_shape_vec(vec![1, 2, 1, 2], vec![i32::MIN, 0, 7, i32::MAX])
                    .unwrap(),
            ),
            Tensor::U8(ndarray::ArrayD::from_shape_vec(vec![], vec![9]).unwrap()),
        ];
        for t in cases {
            let b = t.to_npy_bytes();
            assert_eq!(parse_npy_nd(&b).unwrap(), t);
        }
        // NumPy's spelling of 1-D and 0-D shapes.
        let one = encode(ndarray::arr1(&[1i16, 2, 3]).view());
        assert!(String::from_utf8_lossy(&one)
            .contains("'descr': '<i2', 'fortran_order': False, 'shape': (3,), }"));
        let zero = encode(ndarray::arr0(5u8).view());
        assert!(String::from_utf8_lossy(&zero).contains("'shape': (), }"));
        // Fortran order in 3-D: element (i, j, k) is at i + 2j + 4k.
        let data: Vec<u8> = (0..8).collect();
        let f = with_header(
            "{'descr': '|u1', 'fortran_order': True, 'shape': (2, 2, 2), }",
            &data,
        );
        let Tensor::U8(a) = parse_npy_nd(&f).unwrap() else {
            panic!("uint8")
        };
        assert_eq!(a[[1, 0, 1]], 5);
        assert_eq!(a[[0, 1, 1]], 6);
        // The 2-D reader names the rank.
        assert!(format!("{:#}", parse_npy(&one).unwrap_err())
            .contains("expected a 2-D array but the shape is [3]"));
        // unwrap: the right type gives the array, another gives the tensor back.
        let t = Tensor::I16(ndarray::arr2(&[[1i16]]));
        assert!(<i32 as NpyElement>::unwrap(t.clone()).is_err());
        assert_eq!(<i16 as NpyElement>::unwrap(t).unwrap()[[0, 0]], 1);
    }

    #[test]
    fn exact_bytes_of_a_small_file() {
        let b = encode(array![[1i8, -2]].view());
        let header = "{'descr': '|i1', 'fortran_order': False, 'shape': (1, 2), }";
        assert_eq!(&b[10..10 + header.len()], header.as_bytes());
        assert_eq!(b[127], b'\n'); // 10 + 59 + newline = 70 bytes, padded to 128
        assert_eq!(&b[128..], &[1u8, 0xfe]);
    }

    #[test]
    fn fortran_order_is_transposed_into_c_order() {
        let data: Vec<u8> = [1i32, 2, 3, 4, 5, 6]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let f = with_header(
            "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }\n",
            &data,
        );
        assert_eq!(
            parse_npy(&f).unwrap(),
            Tensor::I32(array![[1, 3, 5], [2, 4, 6]])
        );
        let c = with_header(
            "{\"shape\": (2,3), \"descr\": \"<i4\", \"fortran_order\": False}",
            &data,
        );
        assert_eq!(
            parse_npy(&c).unwrap(),
            Tensor::I32(array![[1, 2, 3], [4, 5, 6]])
        );
    }

    #[test]
    fn version_2_header() {
        let header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1), }\n";
        let mut v = b"\x93NUMPY\x02\x00".to_vec();
        v.extend_from_slice(&(header.len() as u32).to_le_bytes());
        v.extend_from_slice(header.as_bytes());
        v.push(7);
        assert_eq!(parse_npy(&v).unwrap(), Tensor::U8(array![[7]]));
    }

    fn err(b: &[u8]) -> String {
        format!("{:#}", parse_npy(b).unwrap_err())
    }

    #[test]
    fn endless_and_huge_inputs_are_refused_without_reading_them() {
        // /dev/zero: refused at the magic, after 10 bytes.
        assert!(
            format!("{:#}", read_from(std::io::repeat(0), "zeros").unwrap_err())
                .contains("not a .npy file")
        );
        // A valid header followed by endless data: exactly one byte more than the shape is read.
        let head = with_header(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }",
            &[],
        );
        let e = read_from(
            std::io::Read::chain(&head[..], std::io::repeat(1)),
            "stream",
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("extra bytes"));
        // Shapes beyond the memory limit or beyond addressing are refused before any read.
        for shape in ["(4000000000, 4000000000)", "(99999999999999999999, 2)"] {
            let h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
            let e = format!("{:#}", parse_npy(&with_header(&h, &[])).unwrap_err());
            assert!(
                e.contains("memory limit")
                    || e.contains("too large")
                    || e.contains("bad dimension"),
                "{e}"
            );
        }
        // A header that announces gigabytes.
        let mut big = b"\x93NUMPY\x02\x00".to_vec();
        big.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(format!("{:#}", parse_npy(&big).unwrap_err()).contains("header announces"));
    }

    #[test]
    fn clear_errors() {
        assert!(err(b"hello world, not npy").contains("not a .npy file"));
        let ok = encode(array![[1.0f32, 2.0]].view());
        assert!(err(&ok[..ok.len() - 1]).contains("truncated data"));
        assert!(err(&ok[..20]).contains("truncated header"));
        let mut extra = ok.clone();
        extra.push(0);
        assert!(err(&extra).contains("extra bytes"));
        let be = with_header(
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1, 1), }",
            &[0; 4],
        );
        let e = err(&be);
        assert!(
            e.contains("unsupported dtype '>f4'") && e.contains("float16 (<f2)"),
            "{e}"
        );
        let f8 = with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }",
            &[0; 8],
        );
        assert!(err(&f8).contains("unsupported dtype '<f8'"));
        let one_d = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            &[0; 12],
        );
        assert!(err(&one_d).contains("expected a 2-D array but the shape is [3]"));
        let zero_d = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
            &[0; 4],
        );
        assert!(err(&zero_d).contains("2-D"));
        let bad = with_header(
            "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1, 1), }",
            &[0; 4],
        );
        assert!(err(&bad).contains("True or False"));
        let v9 = b"\x93NUMPY\x09\x00\x00\x00".to_vec();
        assert!(err(&v9).contains("version 9.0"));
    }
}

// A path that holds both in the binary and where a test includes this file by its path.
#[cfg(test)]
#[path = "tensor_io/proptests.rs"]
mod proptests;
