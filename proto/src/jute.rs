//! Jute, ZooKeeper's serialization: big-endian integers, length-prefixed buffers and
//! strings, count-prefixed vectors, records as plain field sequences.
//!
//! Decoding never trusts a length: every length is checked against the bytes that are
//! actually left before anything is allocated, so a hostile 4-byte prefix cannot make
//! us reserve gigabytes.

use thiserror::Error;

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("truncated: needed {needed} more bytes for {what} at offset {offset}")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
    },
    #[error("invalid length {len} for {what} at offset {offset}")]
    BadLength {
        what: &'static str,
        offset: usize,
        len: i32,
    },
    #[error("string at offset {offset} is not valid UTF-8")]
    BadUtf8 { offset: usize },
    #[error("invalid boolean byte {byte} at offset {offset}")]
    BadBool { offset: usize, byte: u8 },
    #[error("unknown opcode {0}")]
    UnknownOpcode(i32),
    #[error("opcode {0} is not allowed inside {1}")]
    OpcodeNotAllowed(i32, &'static str),
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
    #[error("frame length {len} exceeds the limit of {max} bytes (jute.maxbuffer)")]
    FrameTooLarge { len: usize, max: usize },
    #[error("negative frame length {0}")]
    NegativeFrameLength(i32),
    #[error("invalid value {value} for {what}")]
    BadValue { what: &'static str, value: i64 },
    #[error("{what} at offset {offset} is not a LEB128 number of at most 32 bits")]
    BadVarint { what: &'static str, offset: usize },
}

/// A cursor over a byte slice that decodes jute primitives.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The whole input, from its start (for slicing out what was just read).
    pub fn whole(&self) -> &'a [u8] {
        self.buf
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The bytes not consumed yet (used for bodies that are not jute, like deleteContainer's raw path).
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    /// The next `n` bytes as they are (for formats of our own beside jute).
    pub fn read_bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        self.take(n, what)
    }

    /// An unsigned LEB128 number of at most 32 bits (five bytes), for formats of our own
    /// beside jute; a longer or larger one is an error.
    pub fn read_varint_u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let offset = self.pos;
        let mut value = 0u64;
        for i in 0..5 {
            let byte = self.take(1, what)?[0];
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return u32::try_from(value).map_err(|_| DecodeError::BadVarint { what, offset });
            }
        }
        Err(DecodeError::BadVarint { what, offset })
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4, "int")?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8, "long")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        let offset = self.pos;
        match self.take(1, "boolean")?[0] {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(DecodeError::BadBool { offset, byte }),
        }
    }

    /// Reads a length prefix; -1 (null) reads as 0, other negatives and lengths past the
    /// end of the input are errors.
    fn read_len(&mut self, what: &'static str, min_elem: usize) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(0);
        }
        if len < 0 || (len as usize).saturating_mul(min_elem) > self.remaining() {
            return Err(DecodeError::BadLength { what, offset, len });
        }
        Ok(len as usize)
    }

    pub fn read_buffer(&mut self) -> Result<Vec<u8>, DecodeError> {
        self.read_buffer_ref().map(<[u8]>::to_vec)
    }

    /// A buffer, borrowed from the input (null reads as empty).
    pub fn read_buffer_ref(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.read_len("buffer", 1)?;
        self.take(len, "buffer")
    }

    /// Reads a buffer that may be null: length -1 is `None`, distinct from an empty one.
    pub fn read_nullable_buffer(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        self.read_nullable_buffer_ref()
            .map(|b| b.map(<[u8]>::to_vec))
    }

    /// A buffer that may be null, borrowed from the input.
    pub fn read_nullable_buffer_ref(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        if self.buf.get(self.pos..self.pos + 4) == Some(&NULL_LEN[..]) {
            self.pos += 4;
            return Ok(None);
        }
        self.read_buffer_ref().map(Some)
    }

    pub fn read_ustring(&mut self) -> Result<String, DecodeError> {
        self.read_ustr().map(str::to_string)
    }

    /// A string, borrowed from the input.
    pub fn read_ustr(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.read_len("string", 1)?;
        let offset = self.pos;
        let bytes = self.take(len, "string")?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::BadUtf8 { offset })
    }

    pub fn read_vec<T: Jute>(&mut self) -> Result<Vec<T>, DecodeError> {
        let count = self.read_len("vector", T::MIN_ENCODED_LEN)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(T::read(self)?);
        }
        Ok(items)
    }
}

/// The length prefix of a null buffer, string or vector.
const NULL_LEN: [u8; 4] = (-1i32).to_be_bytes();

/// Appends jute primitives to a byte vector.
pub trait JuteWrite {
    fn put_i32(&mut self, v: i32);
    fn put_i64(&mut self, v: i64);
    fn put_bool(&mut self, v: bool);
    fn put_buffer(&mut self, v: &[u8]);
    /// A buffer that may be null: `None` is written as length -1.
    fn put_nullable_buffer(&mut self, v: Option<&[u8]>);
    fn put_ustring(&mut self, v: &str);
    fn put_vec<T: Jute>(&mut self, v: &[T]);
}

impl JuteWrite for Vec<u8> {
    fn put_i32(&mut self, v: i32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_bool(&mut self, v: bool) {
        self.push(u8::from(v));
    }
    fn put_buffer(&mut self, v: &[u8]) {
        self.put_i32(len_i32(v.len()));
        self.extend_from_slice(v);
    }
    fn put_nullable_buffer(&mut self, v: Option<&[u8]>) {
        match v {
            Some(bytes) => self.put_buffer(bytes),
            None => self.extend_from_slice(&NULL_LEN),
        }
    }
    fn put_ustring(&mut self, v: &str) {
        self.put_buffer(v.as_bytes());
    }
    fn put_vec<T: Jute>(&mut self, v: &[T]) {
        self.put_i32(len_i32(v.len()));
        for item in v {
            item.write(self);
        }
    }
}

/// Lengths above i32::MAX cannot be framed anyway (jute.maxbuffer is far below); saturate
/// so the peer sees an over-long length and rejects it instead of a wrapped small one.
fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// A value with a jute encoding.
pub trait Jute: Sized {
    /// The fewest bytes any encoding of this type takes; bounds vector counts on decode.
    const MIN_ENCODED_LEN: usize;
    fn write(&self, out: &mut Vec<u8>);
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    /// Decodes a whole byte string; trailing bytes are an error.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::read(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

impl Jute for i32 {
    const MIN_ENCODED_LEN: usize = 4;
    fn write(&self, out: &mut Vec<u8>) {
        out.put_i32(*self)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i32()
    }
}

impl Jute for i64 {
    const MIN_ENCODED_LEN: usize = 8;
    fn write(&self, out: &mut Vec<u8>) {
        out.put_i64(*self)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i64()
    }
}

impl Jute for bool {
    const MIN_ENCODED_LEN: usize = 1;
    fn write(&self, out: &mut Vec<u8>) {
        out.put_bool(*self)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_bool()
    }
}

impl Jute for String {
    const MIN_ENCODED_LEN: usize = 4;
    fn write(&self, out: &mut Vec<u8>) {
        out.put_ustring(self)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_ustring()
    }
}

impl<T: Jute> Jute for Vec<T> {
    const MIN_ENCODED_LEN: usize = 4;
    fn write(&self, out: &mut Vec<u8>) {
        out.put_vec(self)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_vec()
    }
}

/// A jute `buffer` field: opaque bytes. A distinct type so that `Vec<T>` can mean a jute vector.
#[derive(Clone, PartialEq, Eq, Default, Hash)]
pub struct Buffer(pub Vec<u8>);

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) if s.len() <= 64 => write!(f, "{s:?}"),
            _ => write!(f, "<{} bytes>", self.0.len()),
        }
    }
}

impl From<Vec<u8>> for Buffer {
    fn from(v: Vec<u8>) -> Self {
        Buffer(v)
    }
}

impl From<&[u8]> for Buffer {
    fn from(v: &[u8]) -> Self {
        Buffer(v.to_vec())
    }
}

impl std::ops::Deref for Buffer {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl Jute for Buffer {
    const MIN_ENCODED_LEN: usize = 4;
    fn write(&self, out: &mut Vec<u8>) {
        out.put_buffer(&self.0)
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_buffer().map(Buffer)
    }
}

/// Znode data: a jute `buffer` that may be null (length -1). ZooKeeper keeps a null
/// buffer distinct from an empty one end to end (a node created or set with null data
/// reads back as null), so the fields that carry znode data use this type instead of
/// [`Buffer`], which reads a null as empty.
///
/// It derefs to the bytes, which are empty for a null; [`Data::is_null`] tells the two
/// apart. The default is empty, not null.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Data(pub Option<Vec<u8>>);

impl Data {
    /// The null buffer.
    pub const NULL: Data = Data(None);

    pub fn is_null(&self) -> bool {
        self.0.is_none()
    }

    /// The bytes, or `None` for a null.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        self.0.as_deref()
    }

    /// The bytes, or `None` for a null.
    pub fn into_option(self) -> Option<Vec<u8>> {
        self.0
    }

    /// The bytes, empty for a null.
    pub fn into_vec(self) -> Vec<u8> {
        self.0.unwrap_or_default()
    }
}

impl Default for Data {
    fn default() -> Self {
        Data(Some(Vec::new()))
    }
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("null"),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) if s.len() <= 64 => write!(f, "{s:?}"),
                _ => write!(f, "<{} bytes>", bytes.len()),
            },
        }
    }
}

impl From<Vec<u8>> for Data {
    fn from(v: Vec<u8>) -> Self {
        Data(Some(v))
    }
}

impl From<&[u8]> for Data {
    fn from(v: &[u8]) -> Self {
        Data(Some(v.to_vec()))
    }
}

impl From<Option<Vec<u8>>> for Data {
    fn from(v: Option<Vec<u8>>) -> Self {
        Data(v)
    }
}

impl From<Option<&[u8]>> for Data {
    fn from(v: Option<&[u8]>) -> Self {
        Data(v.map(<[u8]>::to_vec))
    }
}

impl std::ops::Deref for Data {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl Jute for Data {
    const MIN_ENCODED_LEN: usize = 4;
    fn write(&self, out: &mut Vec<u8>) {
        out.put_nullable_buffer(self.as_bytes())
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_nullable_buffer().map(Data)
    }
}

/// Declares a jute record: a struct whose encoding is its fields in order.
macro_rules! jute_record {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $crate::jute::Jute for $name {
            const MIN_ENCODED_LEN: usize = 0 $(+ <$ty as $crate::jute::Jute>::MIN_ENCODED_LEN)*;
            #[allow(unused_variables)]
            fn write(&self, out: &mut Vec<u8>) {
                $($crate::jute::Jute::write(&self.$field, out);)*
            }
            #[allow(unused_variables)]
            fn read(r: &mut $crate::jute::Reader<'_>) -> Result<Self, $crate::jute::DecodeError> {
                Ok($name { $($field: $crate::jute::Jute::read(r)?,)* })
            }
        }

        #[cfg(test)]
        impl $crate::jute::sample::Sample for $name {
            #[allow(unused_variables)]
            fn sample(rng: &mut $crate::jute::sample::Rng) -> Self {
                $name { $($field: $crate::jute::sample::Sample::sample(rng),)* }
            }
        }
    };
}

/// Random values of every wire type, for round-trip property tests.
#[cfg(test)]
pub mod sample {
    use super::Buffer;

    /// A small deterministic generator (xorshift64*), seeded by proptest.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Rng {
            Rng(seed | 1)
        }
        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n.max(1)
        }
    }

    pub trait Sample {
        fn sample(rng: &mut Rng) -> Self;
    }

    impl Sample for i32 {
        fn sample(rng: &mut Rng) -> Self {
            rng.next_u64() as i32
        }
    }
    impl Sample for i64 {
        fn sample(rng: &mut Rng) -> Self {
            rng.next_u64() as i64
        }
    }
    impl Sample for bool {
        fn sample(rng: &mut Rng) -> Self {
            rng.next_u64() & 1 == 1
        }
    }
    impl Sample for String {
        fn sample(rng: &mut Rng) -> Self {
            const ALPHABET: &[char] = &['/', 'a', 'z', '0', '-', '\u{e9}', '\u{4e16}', '\u{1f600}'];
            let len = rng.below(12);
            (0..len)
                .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
                .collect()
        }
    }
    impl Sample for Buffer {
        fn sample(rng: &mut Rng) -> Self {
            let len = rng.below(40);
            Buffer((0..len).map(|_| rng.next_u64() as u8).collect())
        }
    }
    impl Sample for super::Data {
        fn sample(rng: &mut Rng) -> Self {
            if rng.below(4) == 0 {
                super::Data::NULL
            } else {
                super::Data(Some(Buffer::sample(rng).0))
            }
        }
    }
    impl<T: Sample> Sample for Vec<T> {
        fn sample(rng: &mut Rng) -> Self {
            let len = rng.below(4);
            (0..len).map(|_| T::sample(rng)).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_buffer_and_vector_read_as_empty() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.read_buffer().unwrap(), Vec::<u8>::new());
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.read_vec::<String>().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn data_keeps_null_distinct_from_empty() {
        assert_eq!(Data::NULL.to_bytes(), [0xff, 0xff, 0xff, 0xff]);
        assert_eq!(Data::default().to_bytes(), [0, 0, 0, 0]);
        assert_eq!(Data::from_bytes(&[0xff, 0xff, 0xff, 0xff]), Ok(Data::NULL));
        assert_eq!(Data::from_bytes(&[0, 0, 0, 0]), Ok(Data(Some(Vec::new()))));
        assert_eq!(Data::from_bytes(&[0, 0, 0, 1, 7]), Ok(Data::from(vec![7])));
        // Other negative lengths stay errors; a truncated prefix is not taken for null.
        assert!(Data::from_bytes(&[0xff, 0xff, 0xff, 0xfe]).is_err());
        assert!(Data::from_bytes(&[0xff, 0xff, 0xff]).is_err());
        assert!(Data::NULL.is_empty() && Data::NULL.is_null());
        assert!(!Data::default().is_null());
        assert_eq!(format!("{:?}", Data::NULL), "null");
    }

    #[test]
    fn varints_read_up_to_32_bits_and_refuse_the_rest() {
        let mut r = Reader::new(&[0x00, 0x7f, 0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(r.read_varint_u32("n").unwrap(), 0);
        assert_eq!(r.read_varint_u32("n").unwrap(), 127);
        assert_eq!(r.read_varint_u32("n").unwrap(), 128);
        assert_eq!(r.read_varint_u32("n").unwrap(), u32::MAX);
        assert!(r.is_empty());
        // 2^32 does not fit; six bytes are too many; a cut one is truncated.
        for bad in [&[0x80, 0x80, 0x80, 0x80, 0x10][..], &[0x80; 6], &[0x80]] {
            let err = Reader::new(bad).read_varint_u32("n").unwrap_err();
            assert!(
                matches!(
                    err,
                    DecodeError::BadVarint { .. } | DecodeError::Truncated { .. }
                ),
                "{bad:?}: {err}"
            );
        }
        assert!(matches!(
            Reader::new(&[0x80]).read_varint_u32("n"),
            Err(DecodeError::Truncated { .. })
        ));
        assert_eq!(Reader::new(&[1, 2, 3]).read_bytes(2, "b").unwrap(), &[1, 2]);
        assert!(Reader::new(&[1]).read_bytes(2, "b").is_err());
    }

    #[test]
    fn lengths_past_the_input_are_refused_without_allocating() {
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff, 1, 2]);
        assert!(matches!(
            r.read_buffer(),
            Err(DecodeError::BadLength { what: "buffer", .. })
        ));
        let mut r = Reader::new(&[0x10, 0, 0, 0]);
        assert!(matches!(
            r.read_vec::<i64>(),
            Err(DecodeError::BadLength { what: "vector", .. })
        ));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xfe]);
        assert!(matches!(
            r.read_ustring(),
            Err(DecodeError::BadLength { len: -2, .. })
        ));
    }

    #[test]
    fn bad_bool_and_bad_utf8_are_errors() {
        assert!(matches!(
            Reader::new(&[2]).read_bool(),
            Err(DecodeError::BadBool { byte: 2, .. })
        ));
        assert!(matches!(
            Reader::new(&[0, 0, 0, 1, 0xff]).read_ustring(),
            Err(DecodeError::BadUtf8 { offset: 4 })
        ));
    }

    #[test]
    fn primitives_are_big_endian() {
        let mut out = Vec::new();
        out.put_i32(0x01020304);
        out.put_i64(-2);
        out.put_ustring("ab");
        assert_eq!(
            out,
            [
                1, 2, 3, 4, 255, 255, 255, 255, 255, 255, 255, 254, 0, 0, 0, 2, b'a', b'b'
            ]
        );
    }
}
