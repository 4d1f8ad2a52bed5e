//! NetCDF files (classic, 64-bit offset, CDF5, NetCDF4/HDF5) decoded into typed arrays, with CF
//! decoding as xarray does it unless `raw`, and written into a store, one dataset per file.

use std::collections::HashMap;
use std::path::Path;

use atlas_store::{Atlas, Attr, DType, FillValue, TimestampNs};
use ndarray::{ArrayD, IxDyn};
use netcdf_reader::{NcAttrValue, NcFile, NcType, NcVariable};

use crate::consistency::{Survey, UNDECODED_TIME};
use crate::time::TimeUnits;

/// Typed values of one array.
#[derive(Debug)]
pub(crate) enum Data {
    I8(ArrayD<i8>),
    U8(ArrayD<u8>),
    I16(ArrayD<i16>),
    U16(ArrayD<u16>),
    I32(ArrayD<i32>),
    U32(ArrayD<u32>),
    I64(ArrayD<i64>),
    U64(ArrayD<u64>),
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    Str(ArrayD<String>),
    Time(ArrayD<TimestampNs>),
}

impl Data {
    fn dtype(&self) -> DType {
        match self {
            Data::I8(_) => DType::Int8,
            Data::U8(_) => DType::UInt8,
            Data::I16(_) => DType::Int16,
            Data::U16(_) => DType::UInt16,
            Data::I32(_) => DType::Int32,
            Data::U32(_) => DType::UInt32,
            Data::I64(_) => DType::Int64,
            Data::U64(_) => DType::UInt64,
            Data::F32(_) => DType::Float32,
            Data::F64(_) => DType::Float64,
            Data::Str(_) => DType::String,
            Data::Time(_) => DType::TimestampNs,
        }
    }
}

/// One array read from a file, decoded, ready to write.
#[derive(Debug)]
pub(crate) struct DecodedArray {
    name: String,
    dims: Vec<String>,
    data: Data,
    fill: Option<FillValue>,
    attributes: Vec<(String, Attr)>,
}

/// One file read and decoded.
#[derive(Debug)]
pub(crate) struct DecodedFile {
    attributes: Vec<(String, Attr)>,
    arrays: Vec<DecodedArray>,
}

fn attr(value: &NcAttrValue) -> Option<Attr> {
    fn ints<T: Copy + TryInto<i64> + Into<f64>>(v: &[T]) -> Option<Attr> {
        let as_i: Option<Vec<i64>> = v.iter().map(|x| (*x).try_into().ok()).collect();
        match (as_i, v.len()) {
            (_, 0) => Some(Attr::Int64List(Vec::new())),
            (Some(i), 1) => Some(Attr::Int64(i[0])),
            (Some(i), _) => Some(Attr::Int64List(i)),
            (None, 1) => Some(Attr::Float64(v[0].into())),
            (None, _) => Some(Attr::Float64List(v.iter().map(|x| (*x).into()).collect())),
        }
    }
    fn floats(v: Vec<f64>) -> Attr {
        if v.len() == 1 {
            Attr::Float64(v[0])
        } else {
            Attr::Float64List(v)
        }
    }
    Some(match value {
        NcAttrValue::Chars(s) => Attr::String(s.clone()),
        NcAttrValue::Strings(v) if v.len() == 1 => Attr::String(v[0].clone()),
        NcAttrValue::Strings(v) => Attr::StringList(v.clone()),
        NcAttrValue::Bytes(v) => return ints(v),
        NcAttrValue::UBytes(v) => return ints(v),
        NcAttrValue::Shorts(v) => return ints(v),
        NcAttrValue::UShorts(v) => return ints(v),
        NcAttrValue::Ints(v) => return ints(v),
        NcAttrValue::UInts(v) => return ints(v),
        NcAttrValue::Int64s(v) => {
            if v.len() == 1 {
                Attr::Int64(v[0])
            } else {
                Attr::Int64List(v.clone())
            }
        }
        NcAttrValue::UInt64s(v) => {
            let as_i: Option<Vec<i64>> = v.iter().map(|x| i64::try_from(*x).ok()).collect();
            match as_i {
                Some(i) if i.len() == 1 => Attr::Int64(i[0]),
                Some(i) => Attr::Int64List(i),
                None => floats(v.iter().map(|x| *x as f64).collect()),
            }
        }
        NcAttrValue::Floats(v) => floats(v.iter().map(|x| f64::from(*x)).collect()),
        NcAttrValue::Doubles(v) => floats(v.clone()),
        _ => return None,
    })
}

fn attributes(list: &[netcdf_reader::NcAttribute]) -> Vec<(String, Attr)> {
    list.iter()
        .filter_map(|a| attr(&a.value).map(|v| (a.name.clone(), v)))
        .collect()
}

fn text_attr(v: &NcVariable, name: &str) -> Option<String> {
    v.attribute(name).and_then(|a| a.value.as_string())
}

/// Values of `_FillValue`, else `missing_value`, as f64 (the cells that are missing).
fn missing_values(v: &NcVariable) -> Vec<f64> {
    let mut out = Vec::new();
    for key in ["_FillValue", "missing_value"] {
        if let Some(vals) = v.attribute(key).and_then(|a| a.value.as_f64_vec()) {
            out.extend(vals);
        }
    }
    out
}

/// The width in bits of a signed integer variable that declares its data unsigned
/// (`_Unsigned = "true"`, how NetCDF-3 files, which have no unsigned types, store it; xarray
/// and netCDF-Java read it the same way).
fn unsigned_bits(v: &NcVariable) -> Option<i32> {
    let flag = text_attr(v, "_Unsigned")?;
    if !flag.trim().eq_ignore_ascii_case("true") {
        return None;
    }
    match v.dtype() {
        NcType::Byte => Some(8),
        NcType::Short => Some(16),
        NcType::Int => Some(32),
        NcType::Int64 => Some(64),
        _ => None,
    }
}

/// A signed value read back as the unsigned value of the same bits.
fn as_unsigned(x: f64, bits: i32) -> f64 {
    if x < 0.0 { x + 2f64.powi(bits) } else { x }
}

/// Reinterprets signed data (and its fill) as the unsigned type of the same width.
fn to_unsigned(data: Data, fill: Option<FillValue>) -> (Data, Option<FillValue>) {
    let fill = fill.map(|f| match (&data, f) {
        (Data::I8(_), FillValue::Int(v)) => FillValue::UInt(u64::from(v as i8 as u8)),
        (Data::I16(_), FillValue::Int(v)) => FillValue::UInt(u64::from(v as i16 as u16)),
        (Data::I32(_), FillValue::Int(v)) => FillValue::UInt(u64::from(v as i32 as u32)),
        (Data::I64(_), FillValue::Int(v)) => FillValue::UInt(v as u64),
        (_, other) => other,
    });
    let data = match data {
        Data::I8(a) => Data::U8(a.mapv(|x| x as u8)),
        Data::I16(a) => Data::U16(a.mapv(|x| x as u16)),
        Data::I32(a) => Data::U32(a.mapv(|x| x as u32)),
        Data::I64(a) => Data::U64(a.mapv(|x| x as u64)),
        other => other,
    };
    (data, fill)
}

fn is_missing(x: f64, missing: &[f64]) -> bool {
    missing
        .iter()
        .any(|m| if m.is_nan() { x.is_nan() } else { x == *m })
}

/// A numeric NetCDF type read natively: how it wraps into [`Data`] and becomes a fill value.
trait Native: netcdf_reader::NcReadable + Copy {
    /// `v` as this type when it is exactly representable (a `missing_value` of 1e30 on a
    /// `short` variable is not: saturated to 32767 it would turn real data into nulls).
    fn exact(v: f64) -> Option<Self>;
    fn to_f64(self) -> f64;
    fn fill(self) -> FillValue;
    fn data(a: ArrayD<Self>) -> Data;
}

/// Whether `v` is an integer in `[lo, hi)`.
fn integral_in(v: f64, lo: f64, hi: f64) -> bool {
    v.fract() == 0.0 && v >= lo && v < hi
}

macro_rules! native_impl {
    ($t:ty, $variant:ident, $fill:ident, $as:ty, $exact:expr) => {
        impl Native for $t {
            fn exact(v: f64) -> Option<Self> {
                let exact: fn(f64) -> bool = $exact;
                exact(v).then_some(v as $t)
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn fill(self) -> FillValue {
                FillValue::$fill(self as $as)
            }
            fn data(a: ArrayD<Self>) -> Data {
                Data::$variant(a)
            }
        }
    };
}

native_impl!(i8, I8, Int, i64, |v| integral_in(v, -128.0, 128.0));
native_impl!(u8, U8, UInt, u64, |v| integral_in(v, 0.0, 256.0));
native_impl!(i16, I16, Int, i64, |v| integral_in(v, -32768.0, 32768.0));
native_impl!(u16, U16, UInt, u64, |v| integral_in(v, 0.0, 65536.0));
native_impl!(i32, I32, Int, i64, |v| integral_in(
    v,
    -2147483648.0,
    2147483648.0
));
native_impl!(u32, U32, UInt, u64, |v| integral_in(v, 0.0, 4294967296.0));
native_impl!(i64, I64, Int, i64, |v| integral_in(
    v,
    -(2f64.powi(63)),
    2f64.powi(63)
));
native_impl!(u64, U64, UInt, u64, |v| integral_in(v, 0.0, 2f64.powi(64)));
// A float missing value compares after rounding to the variable's type (a `double`
// attribute on a `float` variable), unless rounding overflows.
native_impl!(f32, F32, Float, f64, |v| !v.is_finite()
    || (v as f32).is_finite());
native_impl!(f64, F64, Float, f64, |_| true);

/// Reads a numeric variable as stored; unless `raw`, the first missing value the type can hold
/// exactly becomes the fill value and every other listed missing value is rewritten to it.
fn native<T: Native>(
    f: &NcFile,
    path: &str,
    missing: &[f64],
    raw: bool,
) -> Result<(Data, Option<FillValue>), String> {
    let a: ArrayD<T> = f.read_variable::<T>(path).map_err(|e| e.to_string())?;
    Ok(with_fill(a, missing, raw))
}

/// The values of an enum variable of base type `T`: its integers, as stored.
fn enum_values<T: Native>(
    f: &NcFile,
    path: &str,
    shape: &[usize],
    missing: &[f64],
    raw: bool,
    from_ne: fn(&[u8]) -> T,
) -> Result<(Data, Option<FillValue>), String> {
    let bytes = f
        .read_variable_native_bytes(path)
        .map_err(|e| e.to_string())?;
    let values: Vec<T> = bytes
        .chunks_exact(std::mem::size_of::<T>())
        .map(from_ne)
        .collect();
    let a = ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| {
        format!("variable {path:?}: the enum values do not fill its shape {shape:?}: {e}")
    })?;
    Ok(with_fill(a, missing, raw))
}

/// Unless `raw`, makes the first missing value the type can hold exactly the fill value and
/// rewrites every other listed missing value to it.
fn with_fill<T: Native>(mut a: ArrayD<T>, missing: &[f64], raw: bool) -> (Data, Option<FillValue>) {
    // A missing value the type cannot hold matches no stored value, so it cannot be the fill.
    let fill = if raw {
        None
    } else {
        missing.iter().find_map(|m| T::exact(*m))
    };
    if let Some(fv) = fill
        && missing.len() > 1
    {
        a.mapv_inplace(|x| {
            if is_missing(x.to_f64(), missing) {
                fv
            } else {
                x
            }
        });
    }
    (T::data(a), fill.map(T::fill))
}

/// A NetCDF name as a store name: control characters (some writers pad names with NUL) dropped.
fn clean_name(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).collect();
    if clean.is_empty() {
        "unnamed".to_string()
    } else {
        clean
    }
}

/// Why a numeric variable that looks like time (CF `units` of the form `<unit> since <date>`,
/// `axis = "T"`, `standard_name = "time"`, or named `time`) is kept as numbers: its units or
/// calendar cannot be decoded. `None` for variables that do not look like time.
fn undecoded_time(v: &NcVariable) -> Option<String> {
    let units = text_attr(v, "units");
    let calendar = text_attr(v, "calendar");
    let looks_like_time = units
        .as_deref()
        .is_some_and(|u| u.to_ascii_lowercase().contains(" since "))
        || text_attr(v, "axis").is_some_and(|a| a.trim().eq_ignore_ascii_case("T"))
        || text_attr(v, "standard_name").is_some_and(|s| s.trim().eq_ignore_ascii_case("time"))
        || v.name.eq_ignore_ascii_case("time");
    if !looks_like_time {
        return None;
    }
    Some(match (units, calendar) {
        (None, _) => {
            "no units attribute (CF times need units like 'days since 1950-01-01')".to_string()
        }
        (Some(_), Some(c)) if crate::time::Calendar::parse(Some(&c)).is_none() => format!(
            "calendar {c:?} is not decoded (standard, gregorian, proleptic_gregorian, 360_day, \
             noleap, 365_day, all_leap and 366_day are)"
        ),
        (Some(u), _) => format!("units {u:?} are not \"<unit> since <date>\" with a known unit"),
    })
}

fn decode_variable(
    f: &NcFile,
    path: &str,
    v: &NcVariable,
    raw: bool,
) -> Result<(Vec<String>, Data, Option<FillValue>), String> {
    let dims: Vec<String> = v.dimensions().iter().map(|d| clean_name(&d.name)).collect();
    let shape: Vec<usize> = v.shape().iter().map(|&s| s as usize).collect();
    let missing = missing_values(v);
    let unsigned = if raw { None } else { unsigned_bits(v) };
    // Values read as f64 (for scaling or time decoding) are made unsigned before anything
    // compares or scales them, and so are the missing values they are compared with.
    let unsign = |x: f64| unsigned.map_or(x, |bits| as_unsigned(x, bits));
    let missing_unsigned: Vec<f64> = missing.iter().map(|m| unsign(*m)).collect();
    let scale = v.attribute("scale_factor").and_then(|a| a.value.as_f64());
    let offset = v.attribute("add_offset").and_then(|a| a.value.as_f64());
    let time = text_attr(v, "units")
        .and_then(|u| TimeUnits::parse(&u, text_attr(v, "calendar").as_deref()));
    let numeric = !matches!(
        v.dtype(),
        NcType::Char
            | NcType::String
            | NcType::Enum { .. }
            | NcType::Compound { .. }
            | NcType::Opaque { .. }
            | NcType::Array { .. }
            | NcType::VLen { .. }
    );
    if numeric
        && !raw
        && let Some(t) = time
    {
        let a = f.read_variable_as_f64(path).map_err(|e| e.to_string())?;
        let a = a.mapv(|x| {
            let x = unsign(x);
            let x = if is_missing(x, &missing_unsigned) {
                f64::NAN
            } else {
                x * scale.unwrap_or(1.0) + offset.unwrap_or(0.0)
            };
            TimestampNs(t.to_ns(x).unwrap_or(i64::MIN))
        });
        return Ok((dims, Data::Time(a), Some(FillValue::TimestampNs(i64::MIN))));
    }
    if numeric && !raw && (scale.is_some() || offset.is_some()) {
        let a = f.read_variable_as_f64(path).map_err(|e| e.to_string())?;
        let a = a.mapv(|x| {
            let x = unsign(x);
            if is_missing(x, &missing_unsigned) {
                f64::NAN
            } else {
                x * scale.unwrap_or(1.0) + offset.unwrap_or(0.0)
            }
        });
        // As xarray chooses: float32 when the data is float32, or small integers packed with
        // float32 factors; float64 otherwise.
        let f32_factors = ["scale_factor", "add_offset"].iter().all(|k| {
            v.attribute(k)
                .is_none_or(|a| matches!(a.value, NcAttrValue::Floats(_)))
        });
        let single = matches!(v.dtype(), NcType::Float)
            || (f32_factors
                && matches!(
                    v.dtype(),
                    NcType::Byte | NcType::UByte | NcType::Short | NcType::UShort
                ));
        if single {
            return Ok((
                dims,
                Data::F32(a.mapv(|x| x as f32)),
                Some(FillValue::Float(f64::NAN)),
            ));
        }
        return Ok((dims, Data::F64(a), Some(FillValue::Float(f64::NAN))));
    }
    let (data, fill) = match v.dtype() {
        NcType::Byte => native::<i8>(f, path, &missing, raw)?,
        NcType::UByte => native::<u8>(f, path, &missing, raw)?,
        NcType::Short => native::<i16>(f, path, &missing, raw)?,
        NcType::UShort => native::<u16>(f, path, &missing, raw)?,
        NcType::Int => native::<i32>(f, path, &missing, raw)?,
        NcType::UInt => native::<u32>(f, path, &missing, raw)?,
        NcType::Int64 => native::<i64>(f, path, &missing, raw)?,
        NcType::UInt64 => native::<u64>(f, path, &missing, raw)?,
        // As netCDF4-python and xarray read them: the integers, with the members kept as the
        // CF flag attributes (below).
        NcType::Enum { base, .. } => {
            macro_rules! ints {
                ($t:ty) => {
                    enum_values::<$t>(f, path, &shape, &missing, raw, |b| {
                        let mut a = [0u8; std::mem::size_of::<$t>()];
                        a.copy_from_slice(b);
                        <$t>::from_ne_bytes(a)
                    })?
                };
            }
            match base.as_ref() {
                NcType::Byte => ints!(i8),
                NcType::UByte => ints!(u8),
                NcType::Short => ints!(i16),
                NcType::UShort => ints!(u16),
                NcType::Int => ints!(i32),
                NcType::UInt => ints!(u32),
                NcType::Int64 => ints!(i64),
                NcType::UInt64 => ints!(u64),
                other => {
                    return Err(format!(
                        "variable {path:?} is an enum of {other:?}, which ATLAS cannot store"
                    ));
                }
            }
        }
        NcType::Float => native::<f32>(f, path, &missing, raw)?,
        NcType::Double => native::<f64>(f, path, &missing, raw)?,
        NcType::Char => {
            // As xarray does: the last dimension holds the characters of each string.
            let strings = f
                .read_variable_as_strings(path)
                .map_err(|e| e.to_string())?;
            let (dims, shape) = match shape.len() {
                0 => (Vec::new(), Vec::new()),
                n => (dims[..n - 1].to_vec(), shape[..n - 1].to_vec()),
            };
            let n: usize = shape.iter().product();
            let strings = if strings.len() == n {
                strings
            } else {
                let mut s = strings;
                s.resize(n, String::new());
                s
            };
            let a = ArrayD::from_shape_vec(IxDyn(&shape), strings).map_err(|e| e.to_string())?;
            return Ok((dims, Data::Str(a), None));
        }
        NcType::String => {
            let strings = f
                .read_variable_as_strings(path)
                .map_err(|e| e.to_string())?;
            let a = ArrayD::from_shape_vec(IxDyn(&shape), strings).map_err(|e| e.to_string())?;
            (Data::Str(a), None)
        }
        other => {
            return Err(format!(
                "variable {path:?} has type {other:?}, which ATLAS cannot store"
            ));
        }
    };
    // Matched against the missing values as stored (signed), then reinterpreted.
    let (data, fill) = match unsigned {
        Some(_) => to_unsigned(data, fill),
        None => (data, fill),
    };
    Ok((dims, data, fill))
}

/// Variables of a group and its subgroups, as (read path, array name).
fn variables(
    group: &netcdf_reader::NcGroup,
    prefix: &str,
    out: &mut Vec<(String, String, NcVariable)>,
) {
    for v in &group.variables {
        let path = if prefix.is_empty() {
            v.name.clone()
        } else {
            format!("{prefix}/{}", v.name)
        };
        out.push((path.clone(), path.replace('/', "."), v.clone()));
    }
    for g in &group.groups {
        let p = if prefix.is_empty() {
            g.name.clone()
        } else {
            format!("{prefix}/{}", g.name)
        };
        variables(g, &p, out);
    }
}

pub(crate) fn decode_file(path: &Path, raw: bool) -> Result<DecodedFile, String> {
    let f = NcFile::open(path).map_err(|e| format!("not a readable NetCDF file: {e}"))?;
    let root = f.root_group().map_err(|e| e.to_string())?;
    let mut vars = Vec::new();
    variables(root, "", &mut vars);
    let mut arrays = Vec::with_capacity(vars.len());
    for (read_path, name, v) in vars {
        let name = clean_name(&name);
        let name = if name.starts_with('_') {
            format!("v{name}")
        } else {
            name
        };
        let (dims, data, fill) = decode_variable(&f, &read_path, &v, raw)?;
        let mut attributes = attributes(v.attributes());
        if let NcType::Enum { members, .. } = v.dtype()
            && !attributes.iter().any(|(k, _)| k == "flag_values")
        {
            let values: Vec<i64> = members
                .iter()
                .filter_map(|m| m.value.as_i128().and_then(|x| i64::try_from(x).ok()))
                .collect();
            if values.len() == members.len() {
                let meanings: Vec<String> =
                    members.iter().map(|m| m.name.replace(' ', "_")).collect();
                attributes.push(("flag_values".into(), Attr::Int64List(values)));
                attributes.push(("flag_meanings".into(), Attr::String(meanings.join(" "))));
            }
        }
        if !raw
            && !matches!(data, Data::Time(_) | Data::Str(_))
            && let Some(reason) = undecoded_time(&v)
        {
            attributes.push((UNDECODED_TIME.to_string(), Attr::String(reason)));
        }
        arrays.push(DecodedArray {
            name,
            dims,
            data,
            fill,
            attributes,
        });
    }
    Ok(DecodedFile {
        attributes: attributes(&root.attributes),
        arrays,
    })
}

pub(crate) async fn write_file(
    atlas: &mut Atlas,
    name: &str,
    file: DecodedFile,
    chunks: &HashMap<String, usize>,
) -> Result<(), atlas_store::Error> {
    let ds = atlas.create_dataset(name).await?;
    for (k, v) in file.attributes {
        ds.set_attribute(&k, v)?;
    }
    for a in file.arrays {
        macro_rules! put {
            ($t:ty, $arr:expr) => {{
                let shape = $arr.shape().to_vec();
                let chunk = atlas_store::chunk_shape(&a.dims, &shape, chunks);
                ds.define_array::<$t>(
                    &a.name,
                    a.dims.clone(),
                    shape.clone(),
                    chunk,
                    a.fill.clone(),
                )
                .await?;
                ds.write_array(&a.name, vec![0; shape.len()], $arr.view())
                    .await?;
            }};
        }
        match &a.data {
            Data::I8(x) => put!(i8, x),
            Data::U8(x) => put!(u8, x),
            Data::I16(x) => put!(i16, x),
            Data::U16(x) => put!(u16, x),
            Data::I32(x) => put!(i32, x),
            Data::U32(x) => put!(u32, x),
            Data::I64(x) => put!(i64, x),
            Data::U64(x) => put!(u64, x),
            Data::F32(x) => put!(f32, x),
            Data::F64(x) => put!(f64, x),
            Data::Str(x) => put!(String, x),
            Data::Time(x) => put!(TimestampNs, x),
        }
        for (k, v) in a.attributes {
            ds.set_array_attribute(&a.name, &k, v)?;
        }
    }
    Ok(())
}

/// Under `--strict` (`survey` given), why `file` may not be written to the store; else counts
/// its arrays in the survey.
fn array_attributes(a: &DecodedArray) -> Vec<(&str, &Attr)> {
    a.attributes.iter().map(|(k, v)| (k.as_str(), v)).collect()
}

pub(crate) fn strict_check(
    survey: Option<&mut Survey>,
    name: &str,
    file: &DecodedFile,
) -> Result<(), String> {
    let Some(survey) = survey else {
        return Ok(());
    };
    for a in &file.arrays {
        if let Some(reason) = survey.disagreement(&a.name, &a.data.dtype(), &array_attributes(a)) {
            return Err(reason);
        }
    }
    for a in &file.arrays {
        survey.add(name, &a.name, &a.data.dtype(), &array_attributes(a));
    }
    Ok(())
}
