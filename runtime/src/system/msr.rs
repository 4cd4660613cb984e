//! The model-specific registers: RDMSR/WRMSR on the MSRs the virtual CPU model has.
//!
//! Invariants:
//! - [`MSRS`] is the one list of implemented MSRs; any other index raises #GP(0), on read and
//!   on write, as an absent MSR does on hardware.
//! - A write either fully succeeds or raises #GP(0) without changing anything (reserved bits,
//!   non-canonical addresses, invalid memory types, forbidden EFER transitions).
//! - The bits a write may set follow the CPUID model ([`crate::cpuid`]): EFER.SCE/LME/NXE
//!   exist because SYSCALL, long mode and NX are reported.
//! - The virtual TSC seen by the guest is `m.tsc.read() + msr.tsc_offset`; writing
//!   IA32_TSC moves the offset, never the host clock (and republishes kvmclock's time
//!   structure, which is computed for one offset).
//! - IA32_TSC_DEADLINE belongs to the local APIC (TSC-deadline timer mode); the KVM clock
//!   MSRs to [`super::kvmclock`]. They exist because CPUID reports TSC-deadline and the KVM
//!   signature with KVM_FEATURE_CLOCKSOURCE2. The MTRRs are [`super::mtrr`]'s (CPUID.MTRR).
//! - Which MSRs exist past [`MSRS`] depends on the vendor the model reports
//!   ([`cpuid::vendor`]): the vendor's performance-counter MSRs read as zero and ignore
//!   writes (CPUID advertises no PMU: leaf 0xA is zero), as the other vendor's raise #GP.
//!   SPEC_CTRL and PRED_CMD do not exist because CPUID.7.0:EDX does not advertise them.
//! - IA32_ARCH_CAPABILITIES exists on the Intel model (CPUID.7.0:EDX.29) and is read-only:
//!   it reports the virtual CPU free of the speculative-execution bugs whose mitigations a
//!   guest kernel would otherwise pay for ([`ARCH_CAPS`]).

use translator::state::{cr, seg};
use translator::{CpuState, Exception};

use super::kvmclock;
use super::mtrr::{self, Mtrr};
use crate::cpuid::{self, features, Vendor};
use crate::machine::Machine;

/// MSR indices.
pub mod index {
    /// IA32_TIME_STAMP_COUNTER.
    pub const TSC: u32 = 0x10;
    /// IA32_APIC_BASE.
    pub const APIC_BASE: u32 = 0x1B;
    /// IA32_ARCH_CAPABILITIES (Intel; read-only).
    pub const ARCH_CAPABILITIES: u32 = 0x10A;
    /// IA32_BIOS_SIGN_ID (Intel: microcode revision in bits 63:32) / MSR_PATCH_LEVEL (AMD:
    /// bits 31:0).
    pub const BIOS_SIGN_ID: u32 = 0x8B;
    /// IA32_SYSENTER_CS.
    pub const SYSENTER_CS: u32 = 0x174;
    /// IA32_SYSENTER_ESP.
    pub const SYSENTER_ESP: u32 = 0x175;
    /// IA32_SYSENTER_EIP.
    pub const SYSENTER_EIP: u32 = 0x176;
    /// IA32_MISC_ENABLE.
    pub const MISC_ENABLE: u32 = 0x1A0;
    /// IA32_PAT.
    pub const PAT: u32 = 0x277;
    /// IA32_TSC_DEADLINE: the local APIC timer's deadline in TSC-deadline mode.
    pub const TSC_DEADLINE: u32 = 0x6E0;
    /// MSR_KVM_WALL_CLOCK_NEW.
    pub const KVM_WALL_CLOCK_NEW: u32 = super::super::kvmclock::MSR_WALL_CLOCK_NEW;
    /// MSR_KVM_SYSTEM_TIME_NEW.
    pub const KVM_SYSTEM_TIME_NEW: u32 = super::super::kvmclock::MSR_SYSTEM_TIME_NEW;
    /// IA32_EFER.
    pub const EFER: u32 = 0xC000_0080;
    /// IA32_STAR: SYSCALL/SYSRET selectors.
    pub const STAR: u32 = 0xC000_0081;
    /// IA32_LSTAR: 64-bit SYSCALL target.
    pub const LSTAR: u32 = 0xC000_0082;
    /// IA32_CSTAR: compatibility-mode SYSCALL target.
    pub const CSTAR: u32 = 0xC000_0083;
    /// IA32_FMASK: RFLAGS bits SYSCALL clears.
    pub const SFMASK: u32 = 0xC000_0084;
    /// IA32_FS_BASE.
    pub const FS_BASE: u32 = 0xC000_0100;
    /// IA32_GS_BASE.
    pub const GS_BASE: u32 = 0xC000_0101;
    /// IA32_KERNEL_GS_BASE: exchanged with GS.base by SWAPGS.
    pub const KERNEL_GS_BASE: u32 = 0xC000_0102;
    /// IA32_TSC_AUX: read by RDTSCP.
    pub const TSC_AUX: u32 = 0xC000_0103;
}

/// An implemented MSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msr {
    /// IA32_TIME_STAMP_COUNTER.
    Tsc,
    /// IA32_APIC_BASE (owned by the local APIC).
    ApicBase,
    /// IA32_BIOS_SIGN_ID / AMD's patch level.
    BiosSignId,
    /// IA32_ARCH_CAPABILITIES (Intel model only; read-only).
    ArchCapabilities,
    /// A memory-type range register.
    Mtrr(Mtrr),
    /// A performance-monitoring MSR of the vendor, while no PMU is advertised: reads 0,
    /// ignores writes.
    PerfCounter,
    /// IA32_SYSENTER_CS.
    SysenterCs,
    /// IA32_SYSENTER_ESP.
    SysenterEsp,
    /// IA32_SYSENTER_EIP.
    SysenterEip,
    /// IA32_MISC_ENABLE.
    MiscEnable,
    /// IA32_PAT.
    Pat,
    /// IA32_EFER.
    Efer,
    /// IA32_STAR.
    Star,
    /// IA32_LSTAR.
    Lstar,
    /// IA32_CSTAR.
    Cstar,
    /// IA32_FMASK.
    Sfmask,
    /// IA32_FS_BASE (FS.base).
    FsBase,
    /// IA32_GS_BASE (GS.base).
    GsBase,
    /// IA32_KERNEL_GS_BASE.
    KernelGsBase,
    /// IA32_TSC_AUX.
    TscAux,
    /// IA32_TSC_DEADLINE (owned by the local APIC).
    TscDeadline,
    /// MSR_KVM_WALL_CLOCK_NEW.
    KvmWallClock,
    /// MSR_KVM_SYSTEM_TIME_NEW.
    KvmSystemTime,
}

/// The implemented MSRs: index, register, name.
pub static MSRS: &[(u32, Msr, &str)] = &[
    (index::TSC, Msr::Tsc, "IA32_TIME_STAMP_COUNTER"),
    (index::APIC_BASE, Msr::ApicBase, "IA32_APIC_BASE"),
    (index::BIOS_SIGN_ID, Msr::BiosSignId, "IA32_BIOS_SIGN_ID"),
    (
        index::ARCH_CAPABILITIES,
        Msr::ArchCapabilities,
        "IA32_ARCH_CAPABILITIES",
    ),
    (index::SYSENTER_CS, Msr::SysenterCs, "IA32_SYSENTER_CS"),
    (index::SYSENTER_ESP, Msr::SysenterEsp, "IA32_SYSENTER_ESP"),
    (index::SYSENTER_EIP, Msr::SysenterEip, "IA32_SYSENTER_EIP"),
    (index::MISC_ENABLE, Msr::MiscEnable, "IA32_MISC_ENABLE"),
    (index::PAT, Msr::Pat, "IA32_PAT"),
    (index::EFER, Msr::Efer, "IA32_EFER"),
    (index::STAR, Msr::Star, "IA32_STAR"),
    (index::LSTAR, Msr::Lstar, "IA32_LSTAR"),
    (index::CSTAR, Msr::Cstar, "IA32_CSTAR"),
    (index::SFMASK, Msr::Sfmask, "IA32_FMASK"),
    (index::FS_BASE, Msr::FsBase, "IA32_FS_BASE"),
    (index::GS_BASE, Msr::GsBase, "IA32_GS_BASE"),
    (
        index::KERNEL_GS_BASE,
        Msr::KernelGsBase,
        "IA32_KERNEL_GS_BASE",
    ),
    (index::TSC_AUX, Msr::TscAux, "IA32_TSC_AUX"),
    (index::TSC_DEADLINE, Msr::TscDeadline, "IA32_TSC_DEADLINE"),
    (
        index::KVM_WALL_CLOCK_NEW,
        Msr::KvmWallClock,
        "MSR_KVM_WALL_CLOCK_NEW",
    ),
    (
        index::KVM_SYSTEM_TIME_NEW,
        Msr::KvmSystemTime,
        "MSR_KVM_SYSTEM_TIME_NEW",
    ),
];

/// Intel's performance-monitoring MSRs: IA32_PMC0–3, IA32_PERFEVTSEL0–3,
/// IA32_FIXED_CTR0–2, IA32_FIXED_CTR_CTRL and IA32_PERF_GLOBAL_STATUS/CTRL/OVF_CTRL.
pub const INTEL_PERF_MSRS: [std::ops::RangeInclusive<u32>; 4] =
    [0xC1..=0xC4, 0x186..=0x189, 0x309..=0x30B, 0x38D..=0x390];
/// AMD's: PerfEvtSel0–3/PerfCtr0–3 (legacy) and the core extension's six pairs.
pub const AMD_PERF_MSRS: [std::ops::RangeInclusive<u32>; 2] =
    [0xC001_0000..=0xC001_0007, 0xC001_0200..=0xC001_020B];

/// IA32_BIOS_SIGN_ID as QEMU reports it for Intel: microcode revision 1.
pub const INTEL_MICROCODE: u64 = 1 << 32;
/// MSR_PATCH_LEVEL as QEMU reports it for AMD.
pub const AMD_PATCH_LEVEL: u64 = 0x0100_0065;

impl Msr {
    /// The MSR at `index`, if the model (as [`cpuid::vendor`]) has it.
    pub fn from_index(index: u32) -> Option<Msr> {
        Msr::from_index_as(cpuid::vendor(), index)
    }

    /// The MSR at `index`, if the model presented as vendor `v` has it.
    pub fn from_index_as(v: Vendor, index: u32) -> Option<Msr> {
        if let Some(e) = MSRS.iter().find(|e| e.0 == index) {
            // IA32_TSC_AUX exists with RDTSCP (CPUID.8000_0001:EDX.27), as on hardware.
            let rdtscp = cpuid::has_ext1_edx(features::RDTSCP);
            let arch_caps = cpuid::leaf7_edx(v) & features::ARCH_CAPABILITIES != 0;
            let exists = match e.1 {
                Msr::TscAux => rdtscp,
                Msr::ArchCapabilities => arch_caps,
                _ => true,
            };
            return exists.then_some(e.1);
        }
        if let Some(m) = Mtrr::from_index(index) {
            return Some(Msr::Mtrr(m));
        }
        let perf: &[std::ops::RangeInclusive<u32>] = match v {
            Vendor::Intel => &INTEL_PERF_MSRS,
            Vendor::Amd => &AMD_PERF_MSRS,
        };
        perf.iter()
            .any(|r| r.contains(&index))
            .then_some(Msr::PerfCounter)
    }
}

/// IA32_ARCH_CAPABILITIES: the "not affected" bits (Intel SDM vol. 4, table 2-2). The
/// guest's memory accesses are checked in software by the soft MMU, the TLB, the segment
/// checks, before any host access: no fault is deferred past a permission check
/// (RDCL_NO: kernel page-table isolation would protect nothing and flush the soft TLB at
/// every kernel entry), and there are no guest-visible fill, store or load-port buffers,
/// TSX, or branch predictors to sample or train. QEMU's TCG presents an AMD model, which
/// Linux treats the same way.
pub const ARCH_CAPS: u64 = (1 << 0) // RDCL_NO
    | (1 << 4) // SSB_NO
    | (1 << 5) // MDS_NO
    | (1 << 6) // IF_PSCHANGE_MC_NO
    | (1 << 8) // TAA_NO
    | (1 << 13) // SBDR_SSDP_NO
    | (1 << 14) // FBSDP_NO
    | (1 << 15) // PSDP_NO
    | (1 << 20) // BHI_NO
    | (1 << 24) // PBRSB_NO
    | (1 << 26) // GDS_NO
    | (1 << 27) // RFDS_NO
    | (1 << 62); // ITS_NO

/// IA32_APIC_BASE at reset: base 0xFEE0_0000, globally enabled (bit 11), bootstrap
/// processor (bit 8).
pub const APIC_BASE_RESET: u64 = 0xFEE0_0900;
/// IA32_APIC_BASE bit 8: this is the bootstrap processor (read-only).
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE bit 11: the local APIC is globally enabled.
pub const APIC_BASE_ENABLE: u64 = 1 << 11;
/// IA32_PAT at reset: WB, WT, UC-, UC in each half.
pub const PAT_RESET: u64 = 0x0007_0406_0007_0406;
/// IA32_MISC_ENABLE bit 0: fast strings (read/write).
pub const MISC_FAST_STRINGS: u64 = 1 << 0;
/// IA32_MISC_ENABLE bit 11: branch trace storage unavailable (read-only, set).
pub const MISC_BTS_UNAVAILABLE: u64 = 1 << 11;
/// IA32_MISC_ENABLE bit 12: PEBS unavailable (read-only, set).
pub const MISC_PEBS_UNAVAILABLE: u64 = 1 << 12;
/// IA32_MISC_ENABLE at reset.
pub const MISC_ENABLE_RESET: u64 = MISC_FAST_STRINGS | MISC_BTS_UNAVAILABLE | MISC_PEBS_UNAVAILABLE;

/// Give the MSRs their power-on values (PAT, MISC_ENABLE, `apic_base` mirroring the
/// local APIC's reset value, the MTRRs as firmware leaves them; everything else zero). Part of the reset state. The local
/// APIC ([`Machine::platform`]) owns IA32_APIC_BASE; `cpu.msr.apic_base` mirrors it.
pub fn reset(cpu: &mut CpuState) {
    cpu.msr = translator::state::Msrs {
        apic_base: APIC_BASE_RESET,
        pat: PAT_RESET,
        misc_enable: MISC_ENABLE_RESET,
        ..Default::default()
    };
    mtrr::reset(&mut cpu.msr);
    cpu.efer = 0;
}

/// Whether `v` is canonical for 48-bit linear addresses (bits 63:47 all equal).
pub const fn is_canonical(v: u64) -> bool {
    let shift = 64 - cpuid::LINEAR_ADDR_BITS;
    (((v << shift) as i64) >> shift) as u64 == v
}

/// The EFER bits WRMSR may set: those whose features the CPUID model reports (LMA is
/// accepted but read-only).
pub fn efer_writable() -> u64 {
    let mut bits = cr::EFER_LMA;
    if cpuid::has_ext1_edx(features::SYSCALL) {
        bits |= cr::EFER_SCE;
    }
    if cpuid::has_ext1_edx(features::LM) {
        bits |= cr::EFER_LME;
    }
    if cpuid::has_ext1_edx(features::NX) {
        bits |= cr::EFER_NXE;
    }
    bits
}

/// The guest's time-stamp counter: the virtual TSC plus the IA32_TSC offset.
pub fn read_tsc(m: &mut Machine, cpu: &CpuState) -> u64 {
    m.tsc.read().wrapping_add(cpu.msr.tsc_offset)
}

/// Whether every byte of a PAT value names a valid memory type (0 UC, 1 WC, 4 WT, 5 WP,
/// 6 WB, 7 UC-; bits 7:3 of each byte reserved).
fn pat_valid(v: u64) -> bool {
    v.to_le_bytes().iter().all(|&b| matches!(b, 0 | 1 | 4..=7))
}

/// RDMSR: the value of MSR `index`; #GP(0) for an MSR the model does not have.
pub fn rdmsr(m: &mut Machine, cpu: &CpuState, index: u32) -> Result<u64, Exception> {
    let gp = Exception::GeneralProtection(0);
    let msr = Msr::from_index(index).ok_or(gp)?;
    let r = &cpu.msr;
    Ok(match msr {
        Msr::Tsc => read_tsc(m, cpu),
        Msr::ApicBase => m.platform.apic_base(),
        Msr::BiosSignId => match cpuid::vendor() {
            Vendor::Intel => INTEL_MICROCODE,
            Vendor::Amd => AMD_PATCH_LEVEL,
        },
        Msr::ArchCapabilities => ARCH_CAPS,
        Msr::Mtrr(which) => mtrr::read(r, which),
        Msr::PerfCounter => 0,
        Msr::SysenterCs => r.sysenter_cs,
        Msr::SysenterEsp => r.sysenter_esp,
        Msr::SysenterEip => r.sysenter_eip,
        Msr::MiscEnable => r.misc_enable,
        Msr::Pat => r.pat,
        Msr::Efer => cpu.efer,
        Msr::Star => r.star,
        Msr::Lstar => r.lstar,
        Msr::Cstar => r.cstar,
        Msr::Sfmask => r.sfmask,
        Msr::FsBase => cpu.seg[seg::FS].base,
        Msr::GsBase => cpu.seg[seg::GS].base,
        Msr::KernelGsBase => r.kernel_gs_base,
        Msr::TscAux => r.tsc_aux,
        Msr::TscDeadline => m.platform.tsc_deadline(),
        Msr::KvmWallClock => m.kvmclock.wall_clock_msr(),
        Msr::KvmSystemTime => m.kvmclock.system_time_msr(),
    })
}

/// WRMSR: write `value` to MSR `index` under the rules of the module header; #GP(0) (and no
/// change) when the MSR is absent or the value invalid.
pub fn wrmsr(m: &mut Machine, cpu: &mut CpuState, index: u32, value: u64) -> Result<(), Exception> {
    const GP: Exception = Exception::GeneralProtection(0);
    let gp = Err(GP);
    let canonical = |v: u64| if is_canonical(v) { Ok(v) } else { Err(GP) };
    let Some(msr) = Msr::from_index(index) else {
        return gp;
    };
    match msr {
        Msr::Tsc => {
            cpu.msr.tsc_offset = value.wrapping_sub(m.tsc.read());
            kvmclock::publish(m, cpu);
        }
        Msr::ApicBase => {
            let phys_mask = (1u64 << cpuid::PHYS_ADDR_BITS) - 1;
            let writable = (phys_mask & !0xFFF) | APIC_BASE_ENABLE;
            if value & !(writable | APIC_BASE_BSP) != 0 {
                return gp;
            }
            let old = m.platform.apic_base();
            let new = (value & writable) | (old & APIC_BASE_BSP);
            m.platform.set_apic_base(new);
            cpu.msr.apic_base = m.platform.apic_base();
            if new != old {
                // The APIC page moved or vanished: no stale translation may reach it.
                m.flush_tlb(cpu, true);
            }
        }
        // Intel: software writes 0 before CPUID to learn the revision CPUID loads; the
        // revision never changes here, so the write has nothing to change. AMD's patch
        // level is read-only.
        Msr::BiosSignId => match cpuid::vendor() {
            Vendor::Intel => {}
            Vendor::Amd => return gp,
        },
        Msr::ArchCapabilities => return gp,
        Msr::Mtrr(which) => mtrr::write(&mut cpu.msr, which, value)?,
        Msr::PerfCounter => {}
        Msr::SysenterCs => cpu.msr.sysenter_cs = value,
        Msr::SysenterEsp => cpu.msr.sysenter_esp = canonical(value)?,
        Msr::SysenterEip => cpu.msr.sysenter_eip = canonical(value)?,
        Msr::MiscEnable => {
            let known = MISC_FAST_STRINGS | MISC_BTS_UNAVAILABLE | MISC_PEBS_UNAVAILABLE;
            if value & !known != 0 {
                return gp;
            }
            let read_only = MISC_BTS_UNAVAILABLE | MISC_PEBS_UNAVAILABLE;
            cpu.msr.misc_enable = (cpu.msr.misc_enable & read_only) | (value & !read_only);
        }
        Msr::Pat => {
            if !pat_valid(value) {
                return gp;
            }
            cpu.msr.pat = value;
        }
        Msr::Efer => write_efer(m, cpu, value)?,
        Msr::Star => cpu.msr.star = value,
        Msr::Lstar => cpu.msr.lstar = canonical(value)?,
        Msr::Cstar => cpu.msr.cstar = canonical(value)?,
        Msr::Sfmask => {
            if value >> 32 != 0 {
                return gp;
            }
            cpu.msr.sfmask = value;
        }
        Msr::FsBase => cpu.seg[seg::FS].base = canonical(value)?,
        Msr::GsBase => cpu.seg[seg::GS].base = canonical(value)?,
        Msr::KernelGsBase => cpu.msr.kernel_gs_base = canonical(value)?,
        Msr::TscAux => {
            if value >> 32 != 0 {
                return gp;
            }
            cpu.msr.tsc_aux = value;
        }
        Msr::TscDeadline => {
            // The deadline in the APIC's time base (virtual ns): a past deadline is due now.
            let now = m.tsc.read();
            let ahead = value.saturating_sub(now.wrapping_add(cpu.msr.tsc_offset));
            m.platform
                .set_tsc_deadline(value, now.saturating_add(ahead));
            // A due deadline interrupts at the next block boundary, not the slice's end.
            super::io::request_interrupt_check(cpu);
        }
        Msr::KvmWallClock => kvmclock::write_wall_clock(m, value),
        Msr::KvmSystemTime => kvmclock::write_system_time(m, cpu, value),
    }
    Ok(())
}

/// EFER: reserved bits → #GP; LMA is read-only (the written bit is ignored); LME cannot change
/// while paging is on; an NXE or LME change flushes the TLB (NX bits and the paging mode
/// change meaning).
fn write_efer(m: &mut Machine, cpu: &mut CpuState, value: u64) -> Result<(), Exception> {
    if value & !efer_writable() != 0 {
        return Err(Exception::GeneralProtection(0));
    }
    let old = cpu.efer;
    let new = (value & !cr::EFER_LMA) | (old & cr::EFER_LMA);
    if (new ^ old) & cr::EFER_LME != 0 && cpu.cr0 & cr::CR0_PG != 0 {
        return Err(Exception::GeneralProtection(0));
    }
    cpu.efer = new;
    if (new ^ old) & (cr::EFER_NXE | cr::EFER_LME) != 0 {
        m.flush_tlb(cpu, true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::SerialSink;

    fn setup() -> (Machine, CpuState) {
        let m = Machine::new(4 << 20, SerialSink::Capture).unwrap();
        let mut cpu = CpuState::default();
        reset(&mut cpu);
        (m, cpu)
    }

    const GP: Exception = Exception::GeneralProtection(0);

    #[test]
    fn table_has_unique_indices() {
        for (i, a) in MSRS.iter().enumerate() {
            assert!(MSRS[i + 1..].iter().all(|b| b.0 != a.0), "{}", a.2);
            assert_eq!(Msr::from_index(a.0), Some(a.1));
        }
    }

    #[test]
    fn round_trips() {
        let (mut m, mut cpu) = setup();
        let cases = [
            (index::STAR, 0x0023_0010_0000_0000),
            (index::LSTAR, 0xFFFF_8000_0000_1000),
            (index::CSTAR, 0x0000_7FFF_FFFF_F000),
            (index::SFMASK, 0x4_0700),
            (index::FS_BASE, 0x7000),
            (index::GS_BASE, 0xFFFF_FFFF_8000_0000),
            (index::KERNEL_GS_BASE, 0x1234_5000),
            (index::SYSENTER_CS, 0x10),
            (index::SYSENTER_ESP, 0x9000),
            (index::SYSENTER_EIP, 0xFFFF_8000_0010_0000),
            (index::TSC_AUX, 7),
            (index::PAT, 0x0007_0106_0007_0406),
            (index::APIC_BASE, 0xFEC0_0900),
            (index::MISC_ENABLE, MISC_ENABLE_RESET & !MISC_FAST_STRINGS),
        ];
        for (i, v) in cases {
            wrmsr(&mut m, &mut cpu, i, v).unwrap_or_else(|e| panic!("{i:#x}: {e}"));
            assert_eq!(rdmsr(&mut m, &cpu, i), Ok(v), "{i:#x}");
        }
        assert_eq!(cpu.seg[seg::FS].base, 0x7000);
        assert_eq!(cpu.seg[seg::GS].base, 0xFFFF_FFFF_8000_0000);
    }

    #[test]
    fn reset_values() {
        let (mut m, cpu) = setup();
        assert_eq!(rdmsr(&mut m, &cpu, index::APIC_BASE), Ok(0xFEE0_0900));
        assert_eq!(rdmsr(&mut m, &cpu, index::PAT), Ok(PAT_RESET));
        assert_eq!(rdmsr(&mut m, &cpu, index::EFER), Ok(0));
    }

    #[test]
    fn arch_capabilities_exists_as_cpuid_says_and_is_read_only() {
        let (mut m, mut cpu) = setup();
        let advertised = cpuid::cpuid(7, 0)[3] & features::ARCH_CAPABILITIES != 0;
        assert_eq!(advertised, cpuid::vendor() == Vendor::Intel);
        let read = rdmsr(&mut m, &cpu, index::ARCH_CAPABILITIES);
        if advertised {
            assert_eq!(read, Ok(ARCH_CAPS));
            // RDCL_NO (no kernel page-table isolation) and ITS_NO, which Linux wants from
            // a hypervisor before it leaves the return thunks out.
            assert_eq!(ARCH_CAPS & 1, 1);
            assert_ne!(ARCH_CAPS & (1 << 62), 0);
        } else {
            assert_eq!(read, Err(GP));
        }
        let before = cpu.clone();
        assert_eq!(
            wrmsr(&mut m, &mut cpu, index::ARCH_CAPABILITIES, 0),
            Err(GP)
        );
        assert_eq!(cpu.msr, before.msr);
        // Whatever the host, each vendor's model has it exactly when its CPUID says so.
        for v in [Vendor::Intel, Vendor::Amd] {
            let has = cpuid::cpuid_as(v, 7, 0)[3] & features::ARCH_CAPABILITIES != 0;
            let msr = Msr::from_index_as(v, index::ARCH_CAPABILITIES);
            assert_eq!(msr.is_some(), has, "{v:?}");
            assert_eq!(has, v == Vendor::Intel);
        }
    }

    #[test]
    fn unknown_and_invalid_writes_raise_gp_and_change_nothing() {
        let (mut m, mut cpu) = setup();
        // The other vendor's performance counter.
        let foreign_perf = match cpuid::vendor() {
            Vendor::Intel => 0xC001_0000,
            Vendor::Amd => 0xC1,
        };
        for i in [
            0,
            0x3A,
            0x48,  // SPEC_CTRL: CPUID.7.0:EDX.26 clear
            0x49,  // PRED_CMD: likewise
            0x210, // a ninth variable MTRR
            0xC000_0085,
            foreign_perf,
            u32::MAX,
        ] {
            assert_eq!(rdmsr(&mut m, &cpu, i), Err(GP), "{i:#x}");
            assert_eq!(wrmsr(&mut m, &mut cpu, i, 0), Err(GP), "{i:#x}");
        }
        let before = cpu.clone();
        let bad = [
            (index::LSTAR, 0x0000_8000_0000_0000),
            (index::CSTAR, 0x8000_0000_0000_0000),
            (index::FS_BASE, 0x0001_0000_0000_0000),
            (index::GS_BASE, 0xFFFF_0000_0000_0000),
            (index::KERNEL_GS_BASE, 0x0000_8000_0000_0000),
            (index::SYSENTER_EIP, 0x00F0_0000_0000_0000),
            (index::SFMASK, 1 << 32),
            (index::TSC_AUX, 1 << 32),
            (index::PAT, 0x0007_0406_0007_0402), // type 2 is reserved
            (index::PAT, 0x0007_0406_0007_0416), // bits 7:3 of a byte
            (index::APIC_BASE, 0xFEE0_0D00),     // x2APIC enable: not offered
            (index::APIC_BASE, 1 << 40),         // beyond MAXPHYADDR
            (index::MISC_ENABLE, 1 << 22),
            (index::EFER, 1 << 1),
            (index::EFER, 1 << 12),
        ];
        for (i, v) in bad {
            assert_eq!(wrmsr(&mut m, &mut cpu, i, v), Err(GP), "{i:#x} <- {v:#x}");
        }
        assert_eq!(cpu.msr, before.msr);
        assert_eq!(cpu.seg, before.seg);
        assert_eq!(cpu.efer, before.efer);
    }

    #[test]
    fn performance_counters_read_zero_and_ignore_writes_per_vendor() {
        assert_eq!(cpuid::cpuid(0xA, 0), [0; 4], "no PMU advertised");
        for (v, ranges, other) in [
            (Vendor::Intel, &INTEL_PERF_MSRS[..], &AMD_PERF_MSRS[..]),
            (Vendor::Amd, &AMD_PERF_MSRS[..], &INTEL_PERF_MSRS[..]),
        ] {
            for i in ranges.iter().cloned().flatten() {
                assert_eq!(Msr::from_index_as(v, i), Some(Msr::PerfCounter), "{i:#x}");
            }
            for i in other.iter().cloned().flatten() {
                assert_eq!(Msr::from_index_as(v, i), None, "{v:?} {i:#x}");
            }
        }
        let (mut m, mut cpu) = setup();
        let own = match cpuid::vendor() {
            Vendor::Intel => 0x186,
            Vendor::Amd => 0xC001_0000,
        };
        let before = cpu.clone();
        assert_eq!(wrmsr(&mut m, &mut cpu, own, 0x43_003C), Ok(()));
        assert_eq!(rdmsr(&mut m, &cpu, own), Ok(0));
        assert_eq!(cpu.msr, before.msr);
    }

    #[test]
    fn microcode_revision() {
        let (mut m, mut cpu) = setup();
        match cpuid::vendor() {
            Vendor::Intel => {
                // Linux's intel_get_microcode_revision(): write 0, CPUID, read.
                assert_eq!(wrmsr(&mut m, &mut cpu, index::BIOS_SIGN_ID, 0), Ok(()));
                assert_eq!(rdmsr(&mut m, &cpu, index::BIOS_SIGN_ID), Ok(1 << 32));
            }
            Vendor::Amd => {
                assert_eq!(
                    rdmsr(&mut m, &cpu, index::BIOS_SIGN_ID),
                    Ok(AMD_PATCH_LEVEL)
                );
                assert_eq!(wrmsr(&mut m, &mut cpu, index::BIOS_SIGN_ID, 0), Err(GP));
            }
        }
    }

    #[test]
    fn mtrrs_through_the_msr_interface() {
        let (mut m, mut cpu) = setup();
        assert_eq!(rdmsr(&mut m, &cpu, 0xFE), Ok(mtrr::CAP_VALUE));
        assert_eq!(rdmsr(&mut m, &cpu, 0x2FF), Ok(0xC06));
        assert_eq!(wrmsr(&mut m, &mut cpu, 0xFE, 0), Err(GP));
        wrmsr(&mut m, &mut cpu, 0x20E, 0xE000_0000).unwrap();
        wrmsr(&mut m, &mut cpu, 0x20F, 0xFF_E000_0800).unwrap();
        assert_eq!(rdmsr(&mut m, &cpu, 0x20E), Ok(0xE000_0000));
        assert_eq!(rdmsr(&mut m, &cpu, 0x20F), Ok(0xFF_E000_0800));
        assert_eq!(wrmsr(&mut m, &mut cpu, 0x26F, 0x0707), Err(GP));
    }

    #[test]
    fn efer_rules() {
        let (mut m, mut cpu) = setup();
        let all = cr::EFER_SCE | cr::EFER_LME | cr::EFER_NXE;
        wrmsr(&mut m, &mut cpu, index::EFER, all | cr::EFER_LMA).unwrap();
        assert_eq!(cpu.efer, all, "LMA is read-only");
        // With paging on, LME is frozen but NXE/SCE may change.
        cpu.cr0 = cr::CR0_PE | cr::CR0_PG;
        cpu.efer |= cr::EFER_LMA;
        assert_eq!(wrmsr(&mut m, &mut cpu, index::EFER, cr::EFER_SCE), Err(GP));
        m.run.mappings_changed = false;
        wrmsr(&mut m, &mut cpu, index::EFER, cr::EFER_LME | cr::EFER_LMA).unwrap();
        assert_eq!(cpu.efer, cr::EFER_LME | cr::EFER_LMA);
        assert!(m.run.mappings_changed, "an NXE change flushes the TLB");
    }

    #[test]
    fn apic_base_keeps_bsp_and_flushes_on_change() {
        let (mut m, mut cpu) = setup();
        wrmsr(&mut m, &mut cpu, index::APIC_BASE, 0xFEE0_0000).unwrap();
        assert_eq!(cpu.msr.apic_base, 0xFEE0_0100, "BSP is read-only");
        assert!(m.run.mappings_changed);
    }

    #[test]
    fn tsc_write_moves_the_offset() {
        let (mut m, mut cpu) = setup();
        wrmsr(&mut m, &mut cpu, index::TSC, 1 << 50).unwrap();
        let t = rdmsr(&mut m, &cpu, index::TSC).unwrap();
        assert!((1 << 50..(1 << 50) + 1_000_000_000).contains(&t), "{t:#x}");
        assert!(rdmsr(&mut m, &cpu, index::TSC).unwrap() > t);
        assert_eq!(read_tsc(&mut m, &cpu) >> 40, 1 << 10);
    }

    #[test]
    fn canonical_addresses() {
        assert!(is_canonical(0));
        assert!(is_canonical(0x0000_7FFF_FFFF_FFFF));
        assert!(is_canonical(0xFFFF_8000_0000_0000));
        assert!(!is_canonical(0x0000_8000_0000_0000));
        assert!(!is_canonical(0xFFFF_7FFF_FFFF_FFFF));
    }
}
