//! RFC 8785 straight from a typed value: a `serde::Serializer` that writes canonical bytes
//! into a [`Sink`] with no `serde_json::Value` in between. An event id is computed from
//! every typed payload the runtime builds, and `serde_json::to_value` (a map node and a
//! string for every field) cost more than the hash itself.
//!
//! It writes exactly what [`super::write_canonical`] writes for `serde_json::to_value` of
//! the same value (the tests below hold it to that on random values), or refuses with
//! [`Refused`] whatever it cannot mirror byte for byte (a map key that is not a string, a
//! key with a character to escape, a number outside 64 bits, two entries of one key,
//! serde_json's private raw values, an error of the type's own `Serialize`). The caller
//! then takes the `Value` road, which gives the answer or the error `serde_json` gives.

use serde::Serialize;
use serde::ser::{self, Impossible};

use super::{Sink, escapes_any, utf16_order, write_string};

/// Why the serializer stopped; the sink holds a partial write and must be thrown away.
#[derive(Debug)]
pub struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl ser::Error for Refused {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        Refused(message.to_string())
    }
}

fn refuse<T>(what: &str) -> Result<T, Refused> {
    Err(Refused(format!("{what} is left to serde_json")))
}

/// Writes the canonical form of `value` into `out`.
pub fn write_canonical_typed<T: Serialize + ?Sized>(
    value: &T,
    out: &mut impl Sink,
) -> Result<(), Refused> {
    value.serialize(Canonical { out })
}

struct Canonical<'a, S: Sink> {
    out: &'a mut S,
}

impl<S: Sink> Canonical<'_, S> {
    /// A JSON number is a double: every integer is written as the double it reads as.
    fn number(self, double: f64) -> Result<(), Refused> {
        if double.is_finite() {
            self.out
                .put(ryu_js::Buffer::new().format_finite(double).as_bytes());
        } else {
            // `serde_json::to_value` makes NaN and the infinities `null`.
            self.out.put(b"null");
        }
        Ok(())
    }

    /// `{"variant":` … then the caller writes the value and the closing brace.
    fn open_variant(&mut self, variant: &str) {
        self.out.put(b"{");
        write_string(variant, self.out);
        self.out.put(b":");
    }
}

/// Numbers of each type named, written as the double JSON reads them (`as`: a 64-bit
/// integer past 2^53 becomes the nearest double, as serde_json's does).
macro_rules! numbers {
    ($($method:ident($number:ty)),+) => {$(
        fn $method(self, value: $number) -> Result<(), Refused> {
            self.number(value as f64)
        }
    )+};
}

impl<'a, S: Sink> ser::Serializer for Canonical<'a, S> {
    type Ok = ();
    type Error = Refused;
    type SerializeSeq = Array<'a, S>;
    type SerializeTuple = Array<'a, S>;
    type SerializeTupleStruct = Array<'a, S>;
    type SerializeTupleVariant = Array<'a, S>;
    type SerializeMap = Object<'a, S>;
    type SerializeStruct = Object<'a, S>;
    type SerializeStructVariant = Object<'a, S>;

    fn serialize_bool(self, value: bool) -> Result<(), Refused> {
        self.out.put(if value { b"true" } else { b"false" });
        Ok(())
    }
    numbers! {
        serialize_i8(i8), serialize_i16(i16), serialize_i32(i32), serialize_i64(i64),
        serialize_u8(u8), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64),
        serialize_f32(f32), serialize_f64(f64)
    }
    fn serialize_i128(self, value: i128) -> Result<(), Refused> {
        match i64::try_from(value) {
            Ok(value) => self.number(value as f64),
            Err(_) => refuse("a number outside 64 bits"),
        }
    }
    fn serialize_u128(self, value: u128) -> Result<(), Refused> {
        match u64::try_from(value) {
            Ok(value) => self.number(value as f64),
            Err(_) => refuse("a number outside 64 bits"),
        }
    }
    fn serialize_char(self, value: char) -> Result<(), Refused> {
        write_string(value.encode_utf8(&mut [0; 4]), self.out);
        Ok(())
    }
    fn serialize_str(self, value: &str) -> Result<(), Refused> {
        write_string(value, self.out);
        Ok(())
    }
    fn serialize_bytes(self, value: &[u8]) -> Result<(), Refused> {
        // serde_json writes bytes as an array of numbers.
        value.serialize(self)
    }
    fn serialize_none(self) -> Result<(), Refused> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Refused> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Refused> {
        self.out.put(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Refused> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Refused> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        if name.starts_with("$serde_json::private") {
            return refuse("a serde_json raw value");
        }
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        self.open_variant(variant);
        value.serialize(Canonical {
            out: &mut *self.out,
        })?;
        self.out.put(b"}");
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Array<'a, S>, Refused> {
        self.out.put(b"[");
        Ok(Array {
            out: self.out,
            first: true,
            variant: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Array<'a, S>, Refused> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Array<'a, S>, Refused> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Array<'a, S>, Refused> {
        self.open_variant(variant);
        self.out.put(b"[");
        Ok(Array {
            out: self.out,
            first: true,
            variant: true,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Object<'a, S>, Refused> {
        Ok(Object::new(self.out, false))
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Object<'a, S>, Refused> {
        Ok(Object::new(self.out, false))
    }
    fn serialize_struct_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Object<'a, S>, Refused> {
        self.open_variant(variant);
        Ok(Object::new(self.out, true))
    }
}

/// An array, written as it goes: its order is its own.
pub struct Array<'a, S: Sink> {
    out: &'a mut S,
    first: bool,
    /// Inside `{"variant":` …, closed with the array.
    variant: bool,
}

impl<S: Sink> Array<'_, S> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        if !std::mem::take(&mut self.first) {
            self.out.put(b",");
        }
        value.serialize(Canonical {
            out: &mut *self.out,
        })
    }

    fn close(self) -> Result<(), Refused> {
        self.out.put(if self.variant { b"]}" } else { b"]" });
        Ok(())
    }
}

/// The four array-like traits of [`Array`], each element written as it comes.
macro_rules! array_traits {
    ($($trait:ident :: $method:ident),+) => {$(
        impl<S: Sink> ser::$trait for Array<'_, S> {
            type Ok = ();
            type Error = Refused;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
                self.element(value)
            }
            fn end(self) -> Result<(), Refused> {
                self.close()
            }
        }
    )+};
}

array_traits!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// An object: its entries are written into one buffer as they come (each key's raw bytes,
/// then its value's canonical bytes) and emitted sorted when it ends.
pub struct Object<'a, S: Sink> {
    out: &'a mut S,
    scratch: Scratch,
    /// Inside `{"variant":` …, closed with the object.
    variant: bool,
}

/// An object's buffer and its entries. Each entry is written as it will be copied out,
/// `,"key":value`, so an object costs one write into its sink per entry (the first skips
/// its comma), where writing the key, its quotes, the colon and the value one by one cost
/// more than hashing them. Per entry: where it starts, where its key ends, where it ends.
#[derive(Default)]
struct Scratch {
    buffer: Vec<u8>,
    entries: Vec<(usize, usize, usize)>,
}

/// Objects nest only as deep as a value does, so a few spare scratches per thread serve
/// every object: an event's id costs no allocation for its objects once the thread has
/// hashed one, where a fresh buffer per object cost as much as the hash's own writing.
const SPARE_SCRATCHES: usize = 16;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Scratch>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Scratch {
    fn take() -> Self {
        SPARE
            .with(|spare| spare.borrow_mut().pop())
            .unwrap_or_default()
    }

    fn give_back(mut self) {
        self.buffer.clear();
        self.entries.clear();
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < SPARE_SCRATCHES {
                spare.push(self);
            }
        });
    }
}

impl<'a, S: Sink> Object<'a, S> {
    fn new(out: &'a mut S, variant: bool) -> Self {
        Object {
            out,
            scratch: Scratch::take(),
            variant,
        }
    }

    /// A key with a character to escape (a control, `"` or `\`, in no field name) goes
    /// the `Value` road: the key's text in the buffer is then its bytes as they sort.
    fn key(&mut self, key: &str) -> Result<(), Refused> {
        if escapes_any(key.as_bytes()) {
            return refuse("a key with a character to escape");
        }
        let Scratch { buffer, entries } = &mut self.scratch;
        let start = buffer.len();
        buffer.extend_from_slice(b",\"");
        buffer.extend_from_slice(key.as_bytes());
        let key_end = buffer.len();
        buffer.extend_from_slice(b"\":");
        entries.push((start, key_end, usize::MAX));
        Ok(())
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        let Scratch { buffer, entries } = &mut self.scratch;
        value.serialize(Canonical { out: buffer })?;
        let end = buffer.len();
        let last = entries.last_mut().expect("a key comes before its value");
        last.2 = end;
        Ok(())
    }

    fn close(self) -> Result<(), Refused> {
        let Object {
            out,
            mut scratch,
            variant,
        } = self;
        let written = Self::write_sorted(out, &mut scratch, variant);
        scratch.give_back();
        written
    }

    fn write_sorted(out: &mut S, scratch: &mut Scratch, variant: bool) -> Result<(), Refused> {
        let Scratch { buffer, entries } = scratch;
        // Keys were `&str`s with nothing to escape: their bytes after `,"` are the key's.
        let key = |&(start, key_end, _): &(usize, usize, usize)| &buffer[start + 2..key_end];
        entries.sort_by(|a, b| utf16_order(key(a), key(b)));
        if entries
            .windows(2)
            .any(|pair| key(&pair[0]) == key(&pair[1]))
        {
            // `to_value` keeps the last of two equal keys; which one that was is lost here.
            return refuse("an object with a key twice");
        }
        out.put(b"{");
        for (n, &(start, _, end)) in entries.iter().enumerate() {
            let without_comma = usize::from(n == 0);
            out.put(&buffer[start + without_comma..end]);
        }
        out.put(if variant { b"}}" } else { b"}" });
        Ok(())
    }
}

impl<S: Sink> ser::SerializeMap for Object<'_, S> {
    type Ok = ();
    type Error = Refused;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Refused> {
        let key = key.serialize(MapKey)?;
        self.key(&key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        self.value(value)
    }
    fn end(self) -> Result<(), Refused> {
        self.close()
    }
}

/// The two struct-like traits of [`Object`]: a field is a key and its value.
macro_rules! struct_traits {
    ($($trait:ident),+) => {$(
        impl<S: Sink> ser::$trait for Object<'_, S> {
            type Ok = ();
            type Error = Refused;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Refused> {
                self.key(key)?;
                self.value(value)
            }
            fn end(self) -> Result<(), Refused> {
                self.close()
            }
        }
    )+};
}

struct_traits!(SerializeStruct, SerializeStructVariant);

const NOT_A_STRING_KEY: &str = "a map key that is not a string";

/// Refuses a map key of each kind named, with its one argument.
macro_rules! refuse_keys {
    ($($method:ident($arg:ty)),+) => {$(
        fn $method(self, _: $arg) -> Result<String, Refused> {
            refuse(NOT_A_STRING_KEY)
        }
    )+};
}

/// A map key: strings as they are; anything else goes the `Value` road, where serde_json
/// decides how (or whether) it becomes a string.
struct MapKey;

impl ser::Serializer for MapKey {
    type Ok = String;
    type Error = Refused;
    type SerializeSeq = Impossible<String, Refused>;
    type SerializeTuple = Impossible<String, Refused>;
    type SerializeTupleStruct = Impossible<String, Refused>;
    type SerializeTupleVariant = Impossible<String, Refused>;
    type SerializeMap = Impossible<String, Refused>;
    type SerializeStruct = Impossible<String, Refused>;
    type SerializeStructVariant = Impossible<String, Refused>;

    fn serialize_str(self, value: &str) -> Result<String, Refused> {
        Ok(value.to_owned())
    }
    fn serialize_char(self, value: char) -> Result<String, Refused> {
        Ok(value.to_string())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, Refused> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, Refused> {
        value.serialize(self)
    }
    refuse_keys! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str)
    }
    fn serialize_none(self) -> Result<String, Refused> {
        refuse(NOT_A_STRING_KEY)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, Refused> {
        refuse(NOT_A_STRING_KEY)
    }
    fn serialize_unit(self) -> Result<String, Refused> {
        refuse(NOT_A_STRING_KEY)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Refused> {
        refuse(NOT_A_STRING_KEY)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Refused> {
        refuse(NOT_A_STRING_KEY)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Refused> {
        refuse(NOT_A_STRING_KEY)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Refused> {
        refuse(NOT_A_STRING_KEY)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Refused> {
        refuse(NOT_A_STRING_KEY)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Refused> {
        refuse(NOT_A_STRING_KEY)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Refused> {
        refuse(NOT_A_STRING_KEY)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Refused> {
        refuse(NOT_A_STRING_KEY)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;
    use serde::Serialize;

    use super::*;
    use crate::canonical::write_canonical;

    fn by_value<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        write_canonical(&serde_json::to_value(value).unwrap(), &mut out);
        out
    }

    fn has_key_to_escape(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Object(map) => map
                .iter()
                .any(|(key, value)| escapes_any(key.as_bytes()) || has_key_to_escape(value)),
            serde_json::Value::Array(items) => items.iter().any(has_key_to_escape),
            _ => false,
        }
    }

    fn typed<T: Serialize>(value: &T) -> Result<Vec<u8>, Refused> {
        let mut out = Vec::new();
        write_canonical_typed(value, &mut out).map(|()| out)
    }

    #[derive(Serialize, Clone, Debug)]
    #[serde(rename_all = "snake_case")]
    enum Shape {
        Unit,
        Newtype(String),
        Tuple(u8, Option<f64>),
        Struct { zeta: i64, alpha: Vec<char> },
    }

    #[derive(Serialize, Clone, Debug)]
    #[serde(tag = "kind")]
    enum Tagged {
        Opened { id: String, at: u32 },
        Closed,
    }

    #[derive(Serialize, Clone, Debug)]
    struct Record {
        title: String,
        count: u64,
        signed: i64,
        ratio: f64,
        small: f32,
        flag: bool,
        note: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        shape: Shape,
        tagged: Tagged,
        labels: BTreeMap<String, Vec<u16>>,
        tuple: (i8, String),
        bytes: serde_bytes_like::Bytes,
        #[serde(flatten)]
        extra: HashMap<String, bool>,
    }

    /// `Vec<u8>` as serde's bytes, the way `serde_bytes` writes it.
    mod serde_bytes_like {
        #[derive(Clone, Debug)]
        pub struct Bytes(pub Vec<u8>);
        impl serde::Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Unit),
            any::<String>().prop_map(Shape::Newtype),
            (any::<u8>(), any::<Option<f64>>()).prop_map(|(a, b)| Shape::Tuple(a, b)),
            (any::<i64>(), prop::collection::vec(any::<char>(), 0..4))
                .prop_map(|(zeta, alpha)| Shape::Struct { zeta, alpha }),
        ]
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            (
                any::<String>(),
                any::<u64>(),
                any::<i64>(),
                any::<f64>(),
                any::<f32>(),
                any::<bool>(),
                any::<Option<String>>(),
                any::<Option<u8>>(),
            ),
            (
                shape(),
                prop_oneof![
                    (any::<String>(), any::<u32>()).prop_map(|(id, at)| Tagged::Opened { id, at }),
                    Just(Tagged::Closed)
                ],
                prop::collection::btree_map(
                    "[a-z\u{e000}-\u{e0ff}\u{10000}-\u{10100}]{0,3}",
                    prop::collection::vec(any::<u16>(), 0..3),
                    0..4,
                ),
                (any::<i8>(), any::<String>()),
                prop::collection::vec(any::<u8>(), 0..4),
                prop::collection::hash_map("x[a-z]{0,3}", any::<bool>(), 0..3),
            ),
        )
            .prop_map(
                |(
                    (title, count, signed, ratio, small, flag, note, skipped),
                    (shape, tagged, labels, tuple, bytes, extra),
                )| Record {
                    title,
                    count,
                    signed,
                    ratio,
                    small,
                    flag,
                    note,
                    skipped,
                    shape,
                    tagged,
                    labels,
                    tuple,
                    bytes: serde_bytes_like::Bytes(bytes),
                    extra,
                },
            )
    }

    proptest! {
        /// Byte for byte what the `Value` road writes, on every shape serde has.
        #[test]
        fn typed_bytes_are_the_value_roads_bytes(record in record()) {
            prop_assert_eq!(typed(&record).unwrap(), by_value(&record));
        }

        /// Any JSON document, serialised through its own `Serialize`, comes out as it does
        /// through `write_canonical`, or is refused for a key JSON escapes; either way the
        /// canonical bytes are the `Value` road's.
        #[test]
        fn a_value_serialised_typed_is_its_canonical_form(value in crate::canonical::tests::arbitrary_json()) {
            match typed(&value) {
                Ok(bytes) => prop_assert_eq!(bytes, by_value(&value)),
                Err(refused) => prop_assert!(has_key_to_escape(&value), "{refused}"),
            }
            prop_assert_eq!(crate::canonical::to_canonical_vec(&value).unwrap(), by_value(&value));
        }
    }

    /// What it cannot mirror it refuses, so the caller takes the `Value` road.
    #[test]
    fn what_serde_json_alone_decides_is_refused() {
        let integer_keys: BTreeMap<u8, bool> = [(1, true)].into();
        assert!(typed(&integer_keys).is_err());
        assert!(typed(&u128::MAX).is_err());
        #[derive(Serialize)]
        struct Twice {
            a: u8,
            #[serde(flatten)]
            more: BTreeMap<String, u8>,
        }
        let twice = Twice {
            a: 1,
            more: [("a".to_owned(), 2)].into(),
        };
        assert!(typed(&twice).is_err());
        assert_eq!(typed(&(u64::MAX as u128)).unwrap(), by_value(&u64::MAX));
        for key in ["say \"hi\"", "back\\slash", "line\nbreak", "\u{1}"] {
            let escaped_key: BTreeMap<&str, u8> = [(key, 1)].into();
            assert!(typed(&escaped_key).is_err(), "{key:?}");
            let written = crate::canonical::to_canonical_vec(&escaped_key).unwrap();
            assert_eq!(written, by_value(&escaped_key), "{key:?}");
        }
    }
}
