//! The ACPI tables of popek's PC, built as one blob for the BIOS area: what a kernel finds
//! when it scans 0xE0000–0xFFFFF for `"RSD PTR "` (or reads `boot_params.acpi_rsdp_addr`).
//!
//! | offset | table | notes |
//! |--------|-------|-------|
//! | 0x000 | RSDP (revision 2, 36 bytes) | 16-byte aligned; points at the RSDT and the XSDT |
//! | 0x040 | FACS (64 bytes) | 64-byte aligned, no checksum |
//! | 0x080 | DSDT (revision 2) | `\_S5_` (SLP_TYP [`S5_SLP_TYP`]), COM1 (PNP0501), RTC (PNP0B00) |
//! | …     | FACP (revision 6.0, 276 bytes) | PM1a event/control and PM timer blocks at 0x600/0x604/0x608 (24-bit timer), SCI IRQ 9, no SMI command port (ACPI mode from reset), reset register: I/O 0xCF9 value 0x06 |
//! | …     | APIC (MADT) | LAPIC ID 0 at 0xFEE00000, I/O APIC ID 0 at 0xFEC00000 GSI base 0, overrides IRQ0 → GSI2 and IRQ9 → GSI9 (level, active high), LAPIC NMI on LINT1, PCAT_COMPAT |
//! | …     | RSDT, XSDT | FACP and APIC |
//!
//! Every table after the FACS starts 16-byte aligned. The FADT flags are QEMU's (WBINVD,
//! PROC_C1, SLP_BUTTON, RTC_S4, USE_PLATFORM_CLOCK) plus RESET_REG_SUP; IAPC_BOOT_ARCH says
//! legacy devices and an 8042 are present and VGA is not (popek has no VGA).
//!
//! Invariants: every table's bytes sum to 0 mod 256 (the RSDP's first 20 bytes too);
//! lengths in headers equal the bytes emitted; [`build`] is a pure function of its config.

use super::aml;
use crate::devices::acpi_pm::{PM1A_CNT, PM1A_EVT, PM_TMR, S5_SLP_TYP, SCI_IRQ};
use crate::devices::pci::{RESET_CONTROL_PORT, RESET_VALUE};
use crate::devices::{ioapic, lapic};

/// Where the tables go by default: the start of the BIOS area the kernel scans.
pub const DEFAULT_BASE: u64 = 0xE_0000;
/// The end of the area the kernel scans for the RSDP.
pub const BIOS_AREA_END: u64 = 0x10_0000;
/// OEM ID in every header.
pub const OEM_ID: &[u8; 6] = b"POPEK ";
/// OEM table ID in every header.
pub const OEM_TABLE_ID: &[u8; 8] = b"POPEKPC ";
/// Creator ID in every header.
const CREATOR_ID: &[u8; 4] = b"PPEK";
/// Size of a standard table header.
pub const HEADER_LEN: usize = 36;
/// Size of the revision 6.0 FADT.
pub const FADT_LEN: usize = 276;
/// Size of the revision 2 RSDP.
pub const RSDP_LEN: usize = 36;

/// FADT flags (ACPI 6.x table 5.10).
pub mod fadt_flags {
    /// WBINVD works.
    pub const WBINVD: u32 = 1 << 0;
    /// C1 is supported on all processors.
    pub const PROC_C1: u32 = 1 << 2;
    /// The sleep button is a control method device or absent.
    pub const SLP_BUTTON: u32 = 1 << 5;
    /// The RTC can wake from S4.
    pub const RTC_S4: u32 = 1 << 7;
    /// The PM timer is 32 bits wide (clear: 24 bits).
    pub const TMR_VAL_EXT: u32 = 1 << 8;
    /// The reset register is supported.
    pub const RESET_REG_SUP: u32 = 1 << 10;
    /// Use a platform clock for monotonic counters.
    pub const USE_PLATFORM_CLOCK: u32 = 1 << 15;
    /// Hardware-reduced ACPI.
    pub const HW_REDUCED_ACPI: u32 = 1 << 20;
}

/// IA-PC boot architecture flags: legacy devices present, 8042 present, VGA not present.
pub const IAPC_BOOT_ARCH: u16 = 0b111;

/// What the tables describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcpiConfig {
    /// Guest-physical address of the blob (16-byte aligned; the RSDP is its first byte).
    pub base: u64,
}

impl Default for AcpiConfig {
    fn default() -> Self {
        AcpiConfig { base: DEFAULT_BASE }
    }
}

/// The built tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiTables {
    /// Guest-physical address of `bytes`.
    pub base: u64,
    /// Every table, laid out as the module documentation shows.
    pub bytes: Vec<u8>,
    /// Guest-physical address of the RSDP (`base`).
    pub rsdp: u64,
    /// Each table's signature and guest-physical address, in layout order.
    pub tables: Vec<([u8; 4], u64)>,
}

/// The byte that makes `bytes` sum to 0 mod 256.
pub fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)))
}

/// A system description table: the standard header (revision `revision`, OEM IDs, creator)
/// followed by `body`, with length and checksum filled in.
pub fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let len = (HEADER_LEN + body.len()) as u32;
    let mut t = Vec::with_capacity(len as usize);
    t.extend_from_slice(signature);
    t.extend_from_slice(&len.to_le_bytes());
    t.push(revision);
    t.push(0); // checksum, below
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(CREATOR_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

/// A Generic Address Structure for I/O port `port`, `bits` wide, accessed `access`
/// (1 byte, 2 word, 3 dword).
fn gas_io(port: u16, bits: u8, access: u8) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = 1; // system I/O space
    g[1] = bits;
    g[3] = access;
    g[4..6].copy_from_slice(&port.to_le_bytes());
    g
}

/// The DSDT's AML: `\_S5_` and the ISA devices popek has.
fn dsdt_aml() -> Vec<u8> {
    use aml::{device, eisa_id, integer, name, package, resource, resource_template, scope};
    let s5 = u64::from(S5_SLP_TYP);
    let com1 = device(
        "COM1",
        &[
            name("_HID", &eisa_id("PNP0501")),
            name("_UID", &integer(1)),
            name(
                "_CRS",
                &resource_template(&[resource::io(0x3F8, 0x3F8, 0, 8), resource::irq_no_flags(4)]),
            ),
        ],
    );
    let rtc = device(
        "RTC",
        &[
            name("_HID", &eisa_id("PNP0B00")),
            name(
                "_CRS",
                &resource_template(&[resource::io(0x70, 0x70, 1, 2), resource::irq_no_flags(8)]),
            ),
        ],
    );
    [
        name(
            "\\_S5_",
            &package(&[integer(s5), integer(s5), integer(0), integer(0)]),
        ),
        scope("\\_SB_", &[com1, rtc]),
    ]
    .concat()
}

/// The FADT body (after the header), revision 6.0.
fn fadt_body(facs: u64, dsdt: u64) -> Vec<u8> {
    let mut b = vec![0u8; FADT_LEN - HEADER_LEN];
    let mut put = |off: usize, bytes: &[u8]| {
        let at = off - HEADER_LEN;
        b[at..at + bytes.len()].copy_from_slice(bytes);
    };
    // The tables live below 1 MiB: the 32-bit fields hold the addresses.
    put(36, &(facs as u32).to_le_bytes()); // FIRMWARE_CTRL
    put(40, &(dsdt as u32).to_le_bytes()); // DSDT
    put(44, &[1]); // ACPI 1.0 INT_MODEL: multiple APIC (as QEMU)
    put(46, &u16::from(SCI_IRQ).to_le_bytes()); // SCI_INT; SMI_CMD (48) stays 0
    put(56, &u32::from(PM1A_EVT.0).to_le_bytes());
    put(64, &u32::from(PM1A_CNT.0).to_le_bytes());
    put(76, &u32::from(PM_TMR.0).to_le_bytes());
    put(88, &[PM1A_EVT.1, PM1A_CNT.1, 0, PM_TMR.1]); // PM1_EVT/CNT, PM2_CNT, PM_TMR lengths
    put(96, &0x0FFFu16.to_le_bytes()); // P_LVL2_LAT: C2 not supported
    put(98, &0x0FFFu16.to_le_bytes()); // P_LVL3_LAT: C3 not supported
    put(108, &[0x32]); // CENTURY: the RTC's CMOS register
    put(109, &IAPC_BOOT_ARCH.to_le_bytes());
    let flags = fadt_flags::WBINVD
        | fadt_flags::PROC_C1
        | fadt_flags::SLP_BUTTON
        | fadt_flags::RTC_S4
        | fadt_flags::USE_PLATFORM_CLOCK
        | fadt_flags::RESET_REG_SUP;
    put(112, &flags.to_le_bytes());
    put(116, &gas_io(RESET_CONTROL_PORT, 8, 1)); // RESET_REG
    put(128, &[RESET_VALUE]);
    put(131, &[0]); // FADT minor version: 6.0
    put(140, &dsdt.to_le_bytes()); // X_DSDT
    put(148, &gas_io(PM1A_EVT.0, PM1A_EVT.1 * 8, 2));
    put(172, &gas_io(PM1A_CNT.0, PM1A_CNT.1 * 8, 2));
    put(208, &gas_io(PM_TMR.0, PM_TMR.1 * 8, 3));
    b
}

/// The MADT body: local APIC address and flags, then the interrupt controller structures.
fn madt_body() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(lapic::DEFAULT_BASE as u32).to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // PCAT_COMPAT: a dual 8259 is present
                                              // Processor local APIC: UID 0, APIC ID 0, enabled.
    b.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
    // I/O APIC: ID 0, address, GSI base 0.
    b.extend_from_slice(&[1, 12, 0, 0]);
    b.extend_from_slice(&(ioapic::DEFAULT_BASE as u32).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    // Interrupt source overrides (bus 0 = ISA): IRQ0 → GSI2 conforming; the SCI level/high.
    for (irq, gsi, flags) in [(0u8, 2u32, 0u16), (SCI_IRQ, u32::from(SCI_IRQ), 0x000D)] {
        b.extend_from_slice(&[2, 10, 0, irq]);
        b.extend_from_slice(&gsi.to_le_bytes());
        b.extend_from_slice(&flags.to_le_bytes());
    }
    // Local APIC NMI: every processor (UID 0xFF), conforming, LINT1.
    b.extend_from_slice(&[4, 6, 0xFF, 0, 0, 1]);
    b
}

/// Appends `bytes` to `blob` at the next multiple of `align`; returns its address.
fn place(blob: &mut Vec<u8>, base: u64, align: usize, bytes: &[u8]) -> u64 {
    blob.resize(blob.len().next_multiple_of(align), 0);
    let addr = base + blob.len() as u64;
    blob.extend_from_slice(bytes);
    addr
}

/// The RSDP (revision 2) pointing at `rsdt` and `xsdt`.
fn rsdp(rsdt: u64, xsdt: u64) -> [u8; RSDP_LEN] {
    let mut r = [0u8; RSDP_LEN];
    r[..8].copy_from_slice(b"RSD PTR ");
    r[9..15].copy_from_slice(OEM_ID);
    r[15] = 2;
    r[16..20].copy_from_slice(&(rsdt as u32).to_le_bytes());
    r[20..24].copy_from_slice(&(RSDP_LEN as u32).to_le_bytes());
    r[24..32].copy_from_slice(&xsdt.to_le_bytes());
    r[8] = checksum(&r[..20]);
    r[32] = checksum(&r);
    r
}

/// Builds the tables for `cfg` (see the module documentation for the layout).
pub fn build(cfg: &AcpiConfig) -> AcpiTables {
    let base = cfg.base;
    let mut blob = vec![0u8; RSDP_LEN];
    let mut tables = Vec::new();
    let mut facs = [0u8; 64];
    facs[..4].copy_from_slice(b"FACS");
    facs[4..8].copy_from_slice(&64u32.to_le_bytes());
    facs[32] = 2; // version
    let facs_addr = place(&mut blob, base, 64, &facs);
    tables.push((*b"FACS", facs_addr));
    let dsdt_addr = place(&mut blob, base, 16, &table(b"DSDT", 2, &dsdt_aml()));
    tables.push((*b"DSDT", dsdt_addr));
    let fadt_addr = place(
        &mut blob,
        base,
        16,
        &table(b"FACP", 6, &fadt_body(facs_addr, dsdt_addr)),
    );
    tables.push((*b"FACP", fadt_addr));
    let madt_addr = place(&mut blob, base, 16, &table(b"APIC", 1, &madt_body()));
    tables.push((*b"APIC", madt_addr));
    let entries = [fadt_addr, madt_addr];
    let rsdt_body: Vec<u8> = entries
        .iter()
        .flat_map(|&a| (a as u32).to_le_bytes())
        .collect();
    let rsdt_addr = place(&mut blob, base, 16, &table(b"RSDT", 1, &rsdt_body));
    tables.push((*b"RSDT", rsdt_addr));
    let xsdt_body: Vec<u8> = entries.iter().flat_map(|&a| a.to_le_bytes()).collect();
    let xsdt_addr = place(&mut blob, base, 16, &table(b"XSDT", 1, &xsdt_body));
    tables.push((*b"XSDT", xsdt_addr));
    blob[..RSDP_LEN].copy_from_slice(&rsdp(rsdt_addr, xsdt_addr));
    AcpiTables {
        base,
        bytes: blob,
        rsdp: base,
        tables,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> AcpiTables {
        build(&AcpiConfig::default())
    }

    /// The bytes of the table at `addr` (its header's length).
    fn at(t: &AcpiTables, addr: u64) -> &[u8] {
        let off = (addr - t.base) as usize;
        let len = u32::from_le_bytes(t.bytes[off + 4..off + 8].try_into().unwrap()) as usize;
        &t.bytes[off..off + len]
    }

    fn find(t: &AcpiTables, sig: &[u8; 4]) -> u64 {
        t.tables.iter().find(|(s, _)| s == sig).unwrap().1
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
    }

    #[test]
    fn rsdp_is_found_by_a_bios_area_scan_and_checksums() {
        let t = t();
        assert_eq!(t.rsdp % 16, 0);
        assert!((DEFAULT_BASE..BIOS_AREA_END).contains(&t.rsdp));
        assert!(t.base + t.bytes.len() as u64 <= BIOS_AREA_END);
        let r = &t.bytes[..RSDP_LEN];
        assert_eq!(&r[..8], b"RSD PTR ");
        assert_eq!(sum(&r[..20]), 0, "ACPI 1.0 checksum");
        assert_eq!(sum(r), 0, "extended checksum");
        assert_eq!(r[15], 2);
        assert_eq!(u64::from(u32_at(r, 16)), find(&t, b"RSDT"));
        assert_eq!(
            u64::from_le_bytes(r[24..32].try_into().unwrap()),
            find(&t, b"XSDT")
        );
    }

    #[test]
    fn every_table_checksums_and_is_aligned() {
        let t = t();
        for (sig, addr) in &t.tables {
            if sig == b"FACS" {
                assert_eq!(addr % 64, 0);
                continue;
            }
            assert_eq!(addr % 16, 0, "{}", String::from_utf8_lossy(sig));
            let b = at(&t, *addr);
            assert_eq!(&b[..4], sig);
            assert_eq!(sum(b), 0, "{}", String::from_utf8_lossy(sig));
            assert_eq!(&b[10..16], OEM_ID);
        }
    }

    #[test]
    fn rsdt_and_xsdt_list_fadt_and_madt() {
        let t = t();
        let want = [find(&t, b"FACP"), find(&t, b"APIC")];
        let rsdt = at(&t, find(&t, b"RSDT"));
        assert_eq!(rsdt.len(), HEADER_LEN + 8);
        assert_eq!([u32_at(rsdt, 36), u32_at(rsdt, 40)].map(u64::from), want);
        let xsdt = at(&t, find(&t, b"XSDT"));
        let x = |o: usize| u64::from_le_bytes(xsdt[o..o + 8].try_into().unwrap());
        assert_eq!([x(36), x(44)], want);
    }

    #[test]
    fn fadt_fields_at_their_spec_offsets() {
        let t = t();
        let f = at(&t, find(&t, b"FACP"));
        assert_eq!(f.len(), FADT_LEN);
        assert_eq!((f[8], f[131]), (6, 0), "revision 6.0");
        assert_eq!(u64::from(u32_at(f, 36)), find(&t, b"FACS"));
        assert_eq!(u64::from(u32_at(f, 40)), find(&t, b"DSDT"));
        assert_eq!(
            u64::from_le_bytes(f[140..148].try_into().unwrap()),
            find(&t, b"DSDT")
        );
        assert_eq!(u16::from_le_bytes([f[46], f[47]]), 9, "SCI IRQ 9");
        assert_eq!(u32_at(f, 48), 0, "no SMI command port");
        assert_eq!(
            [u32_at(f, 56), u32_at(f, 64), u32_at(f, 76)],
            [0x600, 0x604, 0x608]
        );
        assert_eq!(f[88..92], [4, 2, 0, 4]);
        let flags = u32_at(f, 112);
        assert_ne!(flags & fadt_flags::RESET_REG_SUP, 0);
        assert_eq!(flags & fadt_flags::HW_REDUCED_ACPI, 0);
        assert_eq!(flags & fadt_flags::TMR_VAL_EXT, 0, "24-bit PM timer");
        assert_eq!(
            f[116..120],
            [1, 8, 0, 1],
            "reset register: I/O, 8 bits, byte access"
        );
        assert_eq!(u64::from_le_bytes(f[120..128].try_into().unwrap()), 0xCF9);
        assert_eq!(f[128], 0x06);
        assert_eq!(f[148..152], [1, 32, 0, 2], "X_PM1a_EVT_BLK");
        assert_eq!(u64::from_le_bytes(f[152..160].try_into().unwrap()), 0x600);
        assert_eq!(u64::from_le_bytes(f[176..184].try_into().unwrap()), 0x604);
        assert_eq!(f[208..212], [1, 32, 0, 3], "X_PM_TMR_BLK");
        assert_eq!(u64::from_le_bytes(f[212..220].try_into().unwrap()), 0x608);
        assert_eq!(u16::from_le_bytes([f[109], f[110]]) & 2, 2, "8042 present");
    }

    #[test]
    fn facs_is_what_acpica_expects() {
        let t = t();
        let off = (find(&t, b"FACS") - t.base) as usize;
        let f = &t.bytes[off..off + 64];
        assert_eq!(&f[..4], b"FACS");
        assert_eq!(u32_at(f, 4), 64);
    }

    #[test]
    fn madt_describes_one_cpu_the_ioapic_and_qemus_overrides() {
        let t = t();
        let m = at(&t, find(&t, b"APIC"));
        assert_eq!(u32_at(m, 36), 0xFEE0_0000);
        assert_eq!(u32_at(m, 40), 1, "PCAT_COMPAT");
        let mut entries = Vec::new();
        let mut off = 44;
        while off < m.len() {
            let (kind, len) = (m[off], usize::from(m[off + 1]));
            assert!(len >= 2 && off + len <= m.len());
            entries.push((kind, m[off..off + len].to_vec()));
            off += len;
        }
        assert_eq!(off, m.len());
        let kinds: Vec<u8> = entries.iter().map(|e| e.0).collect();
        assert_eq!(kinds, [0, 1, 2, 2, 4]);
        assert_eq!(entries[0].1, [0, 8, 0, 0, 1, 0, 0, 0]);
        assert_eq!(u32_at(&entries[1].1, 4), 0xFEC0_0000);
        assert_eq!(u32_at(&entries[1].1, 8), 0, "GSI base");
        assert_eq!(
            entries[2].1,
            [2, 10, 0, 0, 2, 0, 0, 0, 0, 0],
            "IRQ0 -> GSI2"
        );
        assert_eq!(
            entries[3].1,
            [2, 10, 0, 9, 9, 0, 0, 0, 0x0D, 0],
            "IRQ9 level/high"
        );
        assert_eq!(entries[4].1, [4, 6, 0xFF, 0, 0, 1], "NMI on LINT1");
    }

    #[test]
    fn dsdt_defines_s5_with_the_pm_devices_sleep_type() {
        let t = t();
        let d = at(&t, find(&t, b"DSDT"));
        assert_eq!(d[8], 2, "revision 2: 64-bit integers");
        let aml = &d[HEADER_LEN..];
        let s5 = [0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04];
        assert_eq!(aml[..s5.len()], s5);
        assert_eq!(
            aml[s5.len()..s5.len() + 2],
            [S5_SLP_TYP as u8, S5_SLP_TYP as u8]
        );
        let has = |needle: &[u8]| aml.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"COM1") && has(b"RTC_") && has(b"\\_SB_"));
    }

    #[test]
    fn tables_move_with_the_base() {
        let t = build(&AcpiConfig { base: 0xF_0000 });
        assert_eq!(t.rsdp, 0xF_0000);
        assert!(t.tables.iter().all(|(_, a)| *a > 0xF_0000 && *a < 0xF_1000));
        assert_eq!(sum(&t.bytes[..RSDP_LEN]), 0);
    }
}
