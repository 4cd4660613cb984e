//! The memory-type range registers (CPUID.1:EDX.MTRR): IA32_MTRRCAP, IA32_MTRR_DEF_TYPE,
//! eight variable ranges and the eleven fixed-range registers (SDM Vol. 3A §12.11).
//!
//! Invariants:
//! - The registers store what the guest writes; a value with a reserved bit set or an
//!   invalid memory type raises #GP(0) and changes nothing. IA32_MTRRCAP is read-only
//!   (a write raises #GP(0), as on hardware).
//! - Memory types have no effect in popek (there is no cache to model): the registers
//!   exist so that software which reads them, as every OS on a CPU with CPUID.MTRR does,
//!   finds a consistent memory map.
//! - The values at reset are those PC firmware leaves for the OS (SeaBIOS, which QEMU
//!   runs before a kernel): MTRRs and fixed ranges enabled, default type WB, 0–0x9FFFF WB,
//!   the legacy VGA window 0xA0000–0xBFFFF UC, the option-ROM and BIOS area
//!   0xC0000–0xFFFFF WP, no variable range in use (SeaBIOS marks its PCI hole UC with
//!   range 0; popek's MMIO has no memory type to get wrong).

use translator::state::Msrs;
use translator::Exception;

use crate::cpuid;

/// IA32_MTRRCAP.
pub const CAP: u32 = 0xFE;
/// IA32_MTRR_DEF_TYPE.
pub const DEF_TYPE: u32 = 0x2FF;
/// IA32_MTRR_PHYSBASE0; PHYSMASKn is PHYSBASEn + 1, pairs up to 0x20F.
pub const PHYS_BASE0: u32 = 0x200;
/// The fixed-range registers in [`translator::state::Msrs::mtrr_fixed`] order:
/// FIX64K_00000, FIX16K_80000, FIX16K_A0000, FIX4K_C0000 … FIX4K_F8000.
pub const FIXED: [u32; FIXED_COUNT] = [
    0x250, 0x258, 0x259, 0x268, 0x269, 0x26A, 0x26B, 0x26C, 0x26D, 0x26E, 0x26F,
];

/// Variable ranges (IA32_MTRRCAP.VCNT).
pub const VAR_COUNT: usize = 8;
/// Fixed-range registers.
pub const FIXED_COUNT: usize = 11;

/// IA32_MTRRCAP: VCNT = 8, FIX (bit 8), WC (bit 10); no SMRR (bit 11).
pub const CAP_VALUE: u64 = VAR_COUNT as u64 | 1 << 8 | 1 << 10;
/// IA32_MTRR_DEF_TYPE: FE (bit 10), E (bit 11), type in bits 7:0.
const DEF_FE: u64 = 1 << 10;
const DEF_E: u64 = 1 << 11;
/// PHYSMASKn: V (bit 11).
const MASK_VALID: u64 = 1 << 11;
/// Memory type WB.
const WB: u64 = 6;
/// Eight bytes of WB.
const ALL_WB: u64 = 0x0606_0606_0606_0606;
/// Eight bytes of WP.
const ALL_WP: u64 = 0x0505_0505_0505_0505;

/// Which MTRR an MSR index names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mtrr {
    /// IA32_MTRRCAP.
    Cap,
    /// IA32_MTRR_DEF_TYPE.
    DefType,
    /// IA32_MTRR_PHYSBASEn / PHYSMASKn: index `2n` / `2n + 1` into `mtrr_var`.
    Var(u8),
    /// A fixed-range register: index into `mtrr_fixed`.
    Fixed(u8),
}

impl Mtrr {
    /// The MTRR at MSR `index`, if it is one.
    pub fn from_index(index: u32) -> Option<Mtrr> {
        match index {
            CAP => Some(Mtrr::Cap),
            DEF_TYPE => Some(Mtrr::DefType),
            i if (PHYS_BASE0..PHYS_BASE0 + 2 * VAR_COUNT as u32).contains(&i) => {
                Some(Mtrr::Var((i - PHYS_BASE0) as u8))
            }
            i => FIXED
                .iter()
                .position(|&f| f == i)
                .map(|n| Mtrr::Fixed(n as u8)),
        }
    }
}

/// The firmware's values (see the module header) in `msr`.
pub fn reset(msr: &mut Msrs) {
    msr.mtrr_def_type = DEF_E | DEF_FE | WB;
    msr.mtrr_var = [0; 2 * VAR_COUNT];
    // FIX64K_00000 and FIX16K_80000: RAM below 640 KiB; FIX16K_A0000: the VGA window,
    // uncached; the FIX4K registers: the ROMs at 0xC0000-0xFFFFF, write-protected.
    msr.mtrr_fixed = [ALL_WP; FIXED_COUNT];
    msr.mtrr_fixed[0] = ALL_WB;
    msr.mtrr_fixed[1] = ALL_WB;
    msr.mtrr_fixed[2] = 0;
}

/// RDMSR of `which`.
pub fn read(msr: &Msrs, which: Mtrr) -> u64 {
    match which {
        Mtrr::Cap => CAP_VALUE,
        Mtrr::DefType => msr.mtrr_def_type,
        Mtrr::Var(n) => msr.mtrr_var[usize::from(n)],
        Mtrr::Fixed(n) => msr.mtrr_fixed[usize::from(n)],
    }
}

/// Whether `t` is a memory type an MTRR may hold: UC 0, WC 1, WT 4, WP 5, WB 6 (not UC- 7,
/// which only PAT has).
const fn valid_type(t: u64) -> bool {
    matches!(t, 0 | 1 | 4..=6)
}

/// WRMSR of `value` to `which`: #GP(0) (nothing changed) for IA32_MTRRCAP, reserved bits
/// (above MAXPHYADDR included) or an invalid type.
pub fn write(msr: &mut Msrs, which: Mtrr, value: u64) -> Result<(), Exception> {
    let gp = Err(Exception::GeneralProtection(0));
    let phys_page = ((1u64 << cpuid::PHYS_ADDR_BITS) - 1) & !0xFFF;
    match which {
        Mtrr::Cap => return gp,
        Mtrr::DefType => {
            if value & !(DEF_E | DEF_FE | 0xFF) != 0 || !valid_type(value & 0xFF) {
                return gp;
            }
            msr.mtrr_def_type = value;
        }
        Mtrr::Var(n) if n % 2 == 0 => {
            if value & !(phys_page | 0xFF) != 0 || !valid_type(value & 0xFF) {
                return gp;
            }
            msr.mtrr_var[usize::from(n)] = value;
        }
        Mtrr::Var(n) => {
            if value & !(phys_page | MASK_VALID) != 0 {
                return gp;
            }
            msr.mtrr_var[usize::from(n)] = value;
        }
        Mtrr::Fixed(n) => {
            if !value
                .to_le_bytes()
                .iter()
                .all(|&b| valid_type(u64::from(b)))
            {
                return gp;
            }
            msr.mtrr_fixed[usize::from(n)] = value;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GP: Exception = Exception::GeneralProtection(0);

    #[test]
    fn indices() {
        assert_eq!(Mtrr::from_index(0xFE), Some(Mtrr::Cap));
        assert_eq!(Mtrr::from_index(0x2FF), Some(Mtrr::DefType));
        assert_eq!(Mtrr::from_index(0x200), Some(Mtrr::Var(0)));
        assert_eq!(Mtrr::from_index(0x20F), Some(Mtrr::Var(15)));
        assert_eq!(Mtrr::from_index(0x210), None, "VCNT = 8");
        assert_eq!(Mtrr::from_index(0x250), Some(Mtrr::Fixed(0)));
        assert_eq!(Mtrr::from_index(0x259), Some(Mtrr::Fixed(2)));
        assert_eq!(Mtrr::from_index(0x26F), Some(Mtrr::Fixed(10)));
        for absent in [0x251, 0x257, 0x25A, 0x267, 0x270, 0x2FE] {
            assert_eq!(Mtrr::from_index(absent), None, "{absent:#x}");
        }
    }

    #[test]
    fn firmware_values_and_round_trips() {
        let mut m = Msrs::default();
        reset(&mut m);
        assert_eq!(read(&m, Mtrr::Cap), 0x508);
        assert_eq!(read(&m, Mtrr::DefType), 0xC06);
        assert_eq!(read(&m, Mtrr::Fixed(0)), ALL_WB);
        assert_eq!(read(&m, Mtrr::Fixed(2)), 0);
        assert_eq!(read(&m, Mtrr::Fixed(10)), ALL_WP);
        for (which, v) in [
            (Mtrr::DefType, 0),
            (Mtrr::DefType, 0x800),
            (Mtrr::Var(0), 0xC000_0000),
            (Mtrr::Var(1), 0xFF_C000_0800),
            (Mtrr::Var(14), 0x1_0000_0006),
            (Mtrr::Fixed(3), 0x0001_0405_0600_0106),
        ] {
            write(&mut m, which, v).unwrap();
            assert_eq!(read(&m, which), v, "{which:?}");
        }
    }

    #[test]
    fn reserved_bits_and_bad_types_raise_gp() {
        let mut m = Msrs::default();
        reset(&mut m);
        let before = m;
        for (which, v) in [
            (Mtrr::Cap, CAP_VALUE),
            (Mtrr::DefType, 0xC02), // type 2 reserved
            (Mtrr::DefType, 0xC07), // UC- is PAT-only
            (Mtrr::DefType, 1 << 12),
            (Mtrr::Var(0), 0x100),   // bits 11:8
            (Mtrr::Var(0), 3),       // type 3
            (Mtrr::Var(0), 1 << 40), // beyond MAXPHYADDR
            (Mtrr::Var(1), 0xFFF_C000_0800 | 1 << 40),
            (Mtrr::Var(1), 0x400), // bits 10:0 other than V
            (Mtrr::Fixed(0), 0x0606_0606_0606_0602),
            (Mtrr::Fixed(10), 0x0706_0606_0606_0606),
        ] {
            assert_eq!(write(&mut m, which, v), Err(GP), "{which:?} <- {v:#x}");
        }
        assert_eq!(m, before);
    }
}
