//! A small ACPI Machine Language encoder (ACPI 6.x, chapter 20): just the terms the DSDT of
//! [`super::acpi`] needs — names, integers, strings, packages, scopes, devices, EISA IDs and
//! resource templates with I/O and IRQ descriptors.
//!
//! Each function returns the encoded bytes of one term; terms nest by concatenation. Names
//! are given in ASL spelling (`"_S5_"`, `"\\_SB_"`, `"COM1"`); a segment shorter than
//! four characters is padded with `_` as ASL does.
//!
//! Invariants: every encoder is total (a name segment with characters AML does not allow,
//! or too long, is a programming error caught by the tests of the callers: the encoder maps
//! it to a valid name rather than panicking); package lengths use the shortest encoding.

/// `ZeroOp`.
pub const ZERO: u8 = 0x00;
/// `OneOp`.
pub const ONE: u8 = 0x01;
const BYTE_PREFIX: u8 = 0x0A;
const WORD_PREFIX: u8 = 0x0B;
const DWORD_PREFIX: u8 = 0x0C;
const STRING_PREFIX: u8 = 0x0D;
const QWORD_PREFIX: u8 = 0x0E;
const NAME_OP: u8 = 0x08;
const SCOPE_OP: u8 = 0x10;
const BUFFER_OP: u8 = 0x11;
const PACKAGE_OP: u8 = 0x12;
const EXT_OP_PREFIX: u8 = 0x5B;
const DEVICE_OP: u8 = 0x82;
const ROOT_CHAR: u8 = b'\\';
const DUAL_NAME_PREFIX: u8 = 0x2E;
const MULTI_NAME_PREFIX: u8 = 0x2F;

/// `PkgLength` for `content_len` bytes that follow it: the encoded length counts itself.
pub fn pkg_length(content_len: usize) -> Vec<u8> {
    if content_len < 0x3F {
        return vec![(content_len + 1) as u8];
    }
    for extra in 1..=3usize {
        let total = content_len + 1 + extra;
        if total < 1 << (4 + 8 * extra) {
            let mut v = vec![((extra as u8) << 6) | (total & 0xF) as u8];
            for i in 0..extra {
                v.push((total >> (4 + 8 * i)) as u8);
            }
            return v;
        }
    }
    // Longer than 2^28 bytes: not a table anyone builds; clamp to the largest length.
    vec![0xFF, 0xFF, 0xFF, 0xFF]
}

/// One 4-character name segment: upper-case letters, digits and `_` (the first not a digit);
/// shorter names are padded with `_`; any other character becomes `_`.
fn name_seg(seg: &str) -> [u8; 4] {
    let mut out = [b'_'; 4];
    for (i, c) in seg.bytes().take(4).enumerate() {
        let ok = c.is_ascii_uppercase() || c == b'_' || (i > 0 && c.is_ascii_digit());
        out[i] = if ok { c } else { b'_' };
    }
    out
}

/// A `NameString`: an optional root prefix `\`, then dot-separated segments.
pub fn name_string(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    let rest = match name.strip_prefix('\\') {
        Some(r) => {
            v.push(ROOT_CHAR);
            r
        }
        None => name,
    };
    let segs: Vec<[u8; 4]> = rest
        .split('.')
        .filter(|s| !s.is_empty())
        .map(name_seg)
        .collect();
    match segs.len() {
        0 => v.push(0x00), // NullName
        1 => {}
        2 => v.push(DUAL_NAME_PREFIX),
        n => {
            v.push(MULTI_NAME_PREFIX);
            v.push(n.min(255) as u8);
        }
    }
    for s in segs.iter().take(255) {
        v.extend_from_slice(s);
    }
    v
}

/// An integer constant in its shortest encoding (`ZeroOp`, `OneOp`, or a prefixed value).
pub fn integer(value: u64) -> Vec<u8> {
    match value {
        0 => vec![ZERO],
        1 => vec![ONE],
        v if v <= 0xFF => vec![BYTE_PREFIX, v as u8],
        v if v <= 0xFFFF => [&[WORD_PREFIX][..], &(v as u16).to_le_bytes()].concat(),
        v if v <= 0xFFFF_FFFF => [&[DWORD_PREFIX][..], &(v as u32).to_le_bytes()].concat(),
        v => [&[QWORD_PREFIX][..], &v.to_le_bytes()].concat(),
    }
}

/// A string constant (ASCII, NUL-terminated; a NUL inside ends it early).
pub fn string(s: &str) -> Vec<u8> {
    let mut v = vec![STRING_PREFIX];
    v.extend(s.bytes().take_while(|&b| b != 0 && b < 0x80));
    v.push(0);
    v
}

/// `EisaId("PNP0501")`: the compressed 32-bit EISA ID as a DWord constant. The three
/// letters take 5 bits each, the four hex digits 4 bits each, stored big-endian.
pub fn eisa_id(id: &str) -> Vec<u8> {
    let b = id.as_bytes();
    let letter = |i: usize| u32::from(b.get(i).copied().unwrap_or(b'@').wrapping_sub(0x40) & 0x1F);
    let hex = |i: usize| {
        b.get(i)
            .and_then(|&c| char::from(c).to_digit(16))
            .unwrap_or(0)
    };
    let value = letter(0) << 26
        | letter(1) << 21
        | letter(2) << 16
        | hex(3) << 12
        | hex(4) << 8
        | hex(5) << 4
        | hex(6);
    [&[DWORD_PREFIX][..], &value.to_be_bytes()].concat()
}

/// `Name(name, object)`.
pub fn name(name: &str, object: &[u8]) -> Vec<u8> {
    [&[NAME_OP][..], &name_string(name), object].concat()
}

/// `Package(n) { elements }`: each element an encoded data object.
pub fn package(elements: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![elements.len().min(255) as u8];
    for e in elements {
        body.extend_from_slice(e);
    }
    [&[PACKAGE_OP][..], &pkg_length(body.len()), &body].concat()
}

/// `Scope(name) { terms }`.
pub fn scope(name: &str, terms: &[Vec<u8>]) -> Vec<u8> {
    let body = [name_string(name), terms.concat()].concat();
    [&[SCOPE_OP][..], &pkg_length(body.len()), &body].concat()
}

/// `Device(name) { terms }`.
pub fn device(name: &str, terms: &[Vec<u8>]) -> Vec<u8> {
    let body = [name_string(name), terms.concat()].concat();
    [
        &[EXT_OP_PREFIX, DEVICE_OP][..],
        &pkg_length(body.len()),
        &body,
    ]
    .concat()
}

/// `Buffer() { bytes }`.
pub fn buffer(bytes: &[u8]) -> Vec<u8> {
    let body = [integer(bytes.len() as u64), bytes.to_vec()].concat();
    [&[BUFFER_OP][..], &pkg_length(body.len()), &body].concat()
}

/// Resource descriptors for a [`resource_template`].
pub mod resource {
    /// `IO(Decode16, min, max, alignment, length)`: the small I/O port descriptor.
    pub fn io(min: u16, max: u16, alignment: u8, length: u8) -> Vec<u8> {
        let [min_lo, min_hi] = min.to_le_bytes();
        let [max_lo, max_hi] = max.to_le_bytes();
        vec![
            0x47, 0x01, min_lo, min_hi, max_lo, max_hi, alignment, length,
        ]
    }

    /// `IRQNoFlags() {irq}`: the 2-byte IRQ descriptor (edge-triggered, active high).
    pub fn irq_no_flags(irq: u8) -> Vec<u8> {
        let mask = 1u16.checked_shl(u32::from(irq)).unwrap_or(0);
        let [lo, hi] = mask.to_le_bytes();
        vec![0x22, lo, hi]
    }
}

/// `ResourceTemplate() { descriptors }`: a buffer of the descriptors and an end tag (with a
/// zero checksum, which means "none").
pub fn resource_template(descriptors: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = descriptors.concat();
    bytes.extend_from_slice(&[0x79, 0x00]);
    buffer(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_lengths_count_themselves() {
        assert_eq!(pkg_length(0), [1]);
        assert_eq!(pkg_length(0x3E), [0x3F]);
        // 0x3F bytes of content: two length bytes, total 0x41.
        assert_eq!(pkg_length(0x3F), [0x41, 0x04]);
        assert_eq!(pkg_length(0xFFD), [0x4F, 0xFF]);
        // 0xFFE + 2 = 0x1000 needs three bytes: total 0x1001.
        assert_eq!(pkg_length(0xFFE), [0x81, 0x00, 0x01]);
        assert_eq!(pkg_length(0x10_0000), [0xC4, 0x00, 0x00, 0x01]);
    }

    #[test]
    fn names() {
        assert_eq!(name_string("_S5_"), b"_S5_");
        assert_eq!(name_string("RTC"), b"RTC_");
        assert_eq!(name_string("\\_SB_"), b"\\_SB_");
        assert_eq!(name_string("\\_SB.PCI0"), b"\\\x2E_SB_PCI0");
        assert_eq!(name_string("A.B.C"), b"\x2F\x03A___B___C___");
        assert_eq!(name_string("\\"), b"\\\0");
        assert_eq!(name_string("1ab"), b"____", "bad characters become _");
    }

    #[test]
    fn integers_use_the_shortest_form() {
        assert_eq!(integer(0), [0x00]);
        assert_eq!(integer(1), [0x01]);
        assert_eq!(integer(2), [0x0A, 2]);
        assert_eq!(integer(0x3F8), [0x0B, 0xF8, 0x03]);
        assert_eq!(integer(0xFEC0_0000), [0x0C, 0, 0, 0xC0, 0xFE]);
        assert_eq!(integer(1 << 32), [0x0E, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(string("ab"), [0x0D, b'a', b'b', 0]);
    }

    #[test]
    fn eisa_ids_as_iasl_compresses_them() {
        // iasl: EisaId ("PNP0501") == 0x0105D041, EisaId ("PNP0B00") == 0x000BD041.
        assert_eq!(eisa_id("PNP0501"), [0x0C, 0x41, 0xD0, 0x05, 0x01]);
        assert_eq!(eisa_id("PNP0B00"), [0x0C, 0x41, 0xD0, 0x0B, 0x00]);
        assert_eq!(eisa_id("PNP0A03"), [0x0C, 0x41, 0xD0, 0x0A, 0x03]);
        assert_eq!(eisa_id(""), [0x0C, 0, 0, 0, 0], "total on nonsense");
    }

    #[test]
    fn s5_package_as_iasl_emits_it() {
        // Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero })
        let s5 = name("_S5_", &package(&[vec![0], vec![0], vec![0], vec![0]]));
        assert_eq!(
            s5,
            [0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0, 0, 0, 0]
        );
    }

    #[test]
    fn device_with_resources_as_iasl_emits_it() {
        // Device (COM1) { Name (_HID, EisaId ("PNP0501")) Name (_CRS, ResourceTemplate ()
        // { IO (Decode16, 0x03F8, 0x03F8, 0x00, 0x08) IRQNoFlags () {4} }) }
        let crs = resource_template(&[resource::io(0x3F8, 0x3F8, 0, 8), resource::irq_no_flags(4)]);
        assert_eq!(
            crs,
            [
                0x11, 0x10, 0x0A, 0x0D, 0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x00, 0x08, 0x22, 0x10,
                0x00, 0x79, 0x00
            ]
        );
        let dev = device(
            "COM1",
            &[name("_HID", &eisa_id("PNP0501")), name("_CRS", &crs)],
        );
        assert_eq!(dev[..3], [0x5B, 0x82, (dev.len() - 2) as u8]);
        assert_eq!(&dev[3..7], b"COM1");
        assert_eq!(
            resource::irq_no_flags(200),
            [0x22, 0, 0],
            "total on nonsense"
        );
    }

    #[test]
    fn scopes_nest() {
        let s = scope("\\_SB_", &[device("RTC", &[])]);
        assert_eq!(
            s,
            [0x10, 0x0D, b'\\', b'_', b'S', b'B', b'_', 0x5B, 0x82, 0x05, b'R', b'T', b'C', b'_']
        );
    }
}
