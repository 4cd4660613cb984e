//! Just enough ELF64 to find a function in a guest image: its symbol table (name, address,
//! size) and the file bytes behind a virtual address.
//!
//! The images are the testsuite's own guests, so this reader is small rather than defensive,
//! but every read is bounds-checked: a malformed image gives `None`, never a panic.

/// `sh_type` of a symbol table.
const SHT_SYMTAB: u32 = 2;
/// `p_type` of a loadable segment.
const PT_LOAD: u32 = 1;
/// Symbol type of a function (`STT_FUNC`).
const STT_FUNC: u8 = 2;

/// A function symbol of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// Its name (`compress`, `main`, `crc32_table.constprop.0`, ...).
    pub name: String,
    /// Virtual address of its first byte.
    pub addr: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// A parsed ELF64 image (borrowing the file bytes).
pub struct Image<'a> {
    bytes: &'a [u8],
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn usize_at(b: &[u8], off: usize) -> Option<usize> {
    usize::try_from(u64_at(b, off)?).ok()
}

/// A section header's type, file offset, size, link and entry size.
struct Section {
    kind: u32,
    offset: usize,
    size: usize,
    link: u32,
    entsize: usize,
}

impl<'a> Image<'a> {
    /// The image in `bytes`, if it starts like an ELF64 little-endian file.
    pub fn parse(bytes: &'a [u8]) -> Option<Image<'a>> {
        (bytes.get(0..6)? == b"\x7fELF\x02\x01").then_some(Image { bytes })
    }

    fn section(&self, i: usize) -> Option<Section> {
        let b = self.bytes;
        let shoff = usize_at(b, 0x28)?;
        let shentsize = usize::from(u16_at(b, 0x3A)?);
        let base = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some(Section {
            kind: u32_at(b, base + 4)?,
            offset: usize_at(b, base + 0x18)?,
            size: usize_at(b, base + 0x20)?,
            link: u32_at(b, base + 0x28)?,
            entsize: usize_at(b, base + 0x38)?,
        })
    }

    /// Every function symbol with a nonzero size.
    pub fn functions(&self) -> Vec<Function> {
        self.functions_opt().unwrap_or_default()
    }

    fn functions_opt(&self) -> Option<Vec<Function>> {
        let b = self.bytes;
        let shnum = usize::from(u16_at(b, 0x3C)?);
        let mut out = Vec::new();
        for i in 0..shnum {
            let sym = self.section(i)?;
            if sym.kind != SHT_SYMTAB || sym.entsize < 24 {
                continue;
            }
            let strtab = self.section(sym.link as usize)?;
            let strs = b.get(strtab.offset..strtab.offset.checked_add(strtab.size)?)?;
            for k in 0..sym.size / sym.entsize {
                let e = sym.offset + k * sym.entsize;
                let (name_off, info) = (u32_at(b, e)? as usize, *b.get(e + 4)?);
                let (addr, size) = (u64_at(b, e + 8)?, u64_at(b, e + 16)?);
                if info & 0xF != STT_FUNC || size == 0 {
                    continue;
                }
                let name = strs.get(name_off..)?;
                let len = name.iter().position(|&c| c == 0)?;
                out.push(Function {
                    name: String::from_utf8_lossy(&name[..len]).into_owned(),
                    addr,
                    size,
                });
            }
        }
        Some(out)
    }

    /// The function called `name`.
    pub fn function(&self, name: &str) -> Option<Function> {
        self.functions().into_iter().find(|f| f.name == name)
    }

    /// The file bytes of the loadable segment that holds `vaddr`, from `vaddr` to the end of
    /// the segment's file bytes.
    pub fn bytes_at(&self, vaddr: u64) -> Option<&'a [u8]> {
        let b = self.bytes;
        let phoff = usize_at(b, 0x20)?;
        let phentsize = usize::from(u16_at(b, 0x36)?);
        let phnum = usize::from(u16_at(b, 0x38)?);
        for i in 0..phnum {
            let p = phoff.checked_add(i.checked_mul(phentsize)?)?;
            if u32_at(b, p)? != PT_LOAD {
                continue;
            }
            let (offset, va, filesz) = (u64_at(b, p + 8)?, u64_at(b, p + 16)?, u64_at(b, p + 32)?);
            if (va..va.checked_add(filesz)?).contains(&vaddr) {
                let start = usize::try_from(offset + (vaddr - va)).ok()?;
                let end = usize::try_from(offset + filesz).ok()?;
                return b.get(start..end);
            }
        }
        None
    }
}
