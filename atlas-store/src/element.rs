//! Element types the store adds to array-format's.

use array_format::{ArrayElement, DType, FillValue};

/// A boolean array element (`DType::Bool`, one byte per value).
///
/// array-format defines the dtype but implements its element trait for no Rust type, and the
/// orphan rule keeps us from implementing it for `bool`; this newtype fills the gap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bool(pub bool);

impl From<bool> for Bool {
    fn from(b: bool) -> Self {
        Bool(b)
    }
}

impl From<Bool> for bool {
    fn from(b: Bool) -> Self {
        b.0
    }
}

impl ArrayElement for Bool {
    const DTYPE: DType = DType::Bool;

    fn encode_chunk(values: &[Self]) -> Vec<u8> {
        values.iter().map(|b| u8::from(b.0)).collect()
    }

    fn decode_chunk(bytes: &[u8]) -> Vec<Self> {
        bytes.iter().map(|&b| Bool(b != 0)).collect()
    }

    fn fill_element(fill: Option<&FillValue>) -> Self {
        match fill {
            Some(FillValue::Bool(b)) => Bool(*b),
            _ => Bool(false),
        }
    }
}
