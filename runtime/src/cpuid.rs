//! The virtual CPU model that CPUID reports.
//!
//! The vendor is the host's (`GenuineIntel`, or `AuthenticAMD` for AMD and Hygon hosts; see
//! [`vendor`]): the flags the manuals leave undefined are computed by the host's rules
//! ([`translator::flags::Vendor`]), so a guest that keys on the vendor finds the flag
//! behaviour of that vendor, and software that only knows real vendors takes a path it
//! knows. The family/model/stepping is a real part with the same instruction-set level and
//! no AVX ([`signature`]); the brand string names popek. Feature bits are
//! honest: a bit is set only when the translator and the system handlers implement it, and the
//! handlers derive what they accept (CR4 bits, EFER bits, XCR0) from this model, so the two
//! cannot disagree. The instruction set is the x86-64-v2 level: x87, MMX, SSE through SSE4.2,
//! FXSAVE/FXRSTOR, POPCNT, CMPXCHG8B/16B, LAHF/SAHF in 64-bit mode, CLFLUSH; AVX, XSAVE and
//! the rest are absent until implemented. `docs/cpu-model.md` lists every bit and why.
//!
//! | leaf | contents |
//! | --- | --- |
//! | 0 | max basic leaf 0x16, vendor (the host's) |
//! | 1 | Intel: family 6 model 0x7A stepping 1 (Goldmont Plus); AMD: family 0x16 model 0x30 stepping 1 (Puma); CLFLUSH line 64 bytes, 1 logical CPU, APIC id 0; FPU DE PSE TSC MSR PAE CX8 APIC SEP MTRR PGE CMOV PAT CLFSH MMX FXSR SSE SSE2; SSE3 SSSE3 CX16 SSE4.1 SSE4.2 PCID POPCNT TSC-deadline hypervisor |
//! | 2..6 | zeros (no cache/TLB descriptors, no MONITOR, no power management) |
//! | 7.0 | max subleaf 0; SMEP INVPCID SMAP; UMIP; Intel: IA32_ARCH_CAPABILITIES (see [`crate::system::msr`]) |
//! | 8..0x14 | zeros (no topology 0xB, no XSAVE 0xD, no PMU 0xA) |
//! | 0x15 | TSC = 1 GHz crystal × 1/1 (the local APIC timer counts the crystal) |
//! | 0x16 | base, maximum and bus frequency 1000 MHz |
//! | 0x4000_0000 | max hypervisor leaf 0x4000_0010, `"KVMKVMKVM\0\0\0"` |
//! | 0x4000_0001 | KVM features: NOP_IO_DELAY, CLOCKSOURCE2 (kvmclock), CLOCKSOURCE_STABLE_BIT; no hints |
//! | 0x4000_0002..0x4000_000F | zeros |
//! | 0x4000_0010 | TSC 1,000,000 kHz, local APIC bus 1,000,000 kHz |
//! | 0x8000_0000 | max extended leaf 0x8000_0008 (AMD: and the vendor again, as AMD parts do) |
//! | 0x8000_0001 | SYSCALL NX RDTSCP LM; LAHF/SAHF in 64-bit mode, LZCNT (ABM); AMD: the leaf-1 EDX bits AMD mirrors |
//! | 0x8000_0002..4 | brand string `"popek virtual CPU @ 1.00GHz"` |
//! | 0x8000_0007 | invariant TSC |
//! | 0x8000_0008 | 40 physical, 48 linear address bits |
//! | anything else (0x1F included) | all zeros |
//!
//! The TSC runs at the constant [`crate::tsc::TSC_HZ`] (1 GHz), which leaves 0x15, 0x16
//! and 0x4000_0010 and kvmclock's scale all state, and which the brand string's "@ 1.00GHz"
//! repeats; Linux takes it from kvmclock
//! (`tsc_known_freq`, no PIT calibration) and, with TSC-deadline, skips the APIC timer's
//! calibration. The hypervisor leaves are KVM's, with only the features
//! [`crate::system::kvmclock`] implements.
//!
//! Two bits depend on the CPU state, as on hardware: CPUID.1:EDX.APIC reads 0 while the
//! local APIC is globally disabled in IA32_APIC_BASE, and CPUID.1:ECX.OSXSAVE mirrors
//! CR4.OSXSAVE (always 0 here: XSAVE is absent). [`cpuid_for`] applies them.

pub use translator::flags::Vendor;
use translator::CpuState;

use crate::system::kvmclock;
use crate::tsc::TSC_HZ;

/// The TSC (and crystal, and APIC timer) frequency in MHz (leaf 0x16).
const TSC_MHZ: u32 = (TSC_HZ / 1_000_000) as u32;
/// The same in kHz (leaf 0x4000_0010).
const TSC_KHZ: u32 = (TSC_HZ / 1_000) as u32;

/// The vendor the model reports: the host's, whose undefined-flag rules every engine
/// follows ([`Vendor::host`]).
pub fn vendor() -> Vendor {
    Vendor::host()
}

/// The vendor identification string of `v`, as EBX, EDX, ECX spell it (Hygon hosts get
/// AMD's rules and AMD's string).
pub const fn vendor_id(v: Vendor) -> &'static [u8; 12] {
    match v {
        Vendor::Intel => b"GenuineIntel",
        Vendor::Amd => b"AuthenticAMD",
    }
}

/// The brand string (NUL-padded to 48 bytes); the frequency is the TSC's ([`TSC_HZ`]).
pub const BRAND: &str = "popek virtual CPU @ 1.00GHz";

/// Highest basic leaf.
pub const MAX_BASIC_LEAF: u32 = 0x16;
/// Highest extended leaf.
pub const MAX_EXT_LEAF: u32 = 0x8000_0008;

/// CPUID.1:EAX for `v`: a real part of that vendor with popek's instruction-set level.
///
/// - Intel: family 6, model 0x7A, stepping 1 (0x706A1, Goldmont Plus): SSE4.2, POPCNT,
///   SMEP/SMAP, UMIP and RDTSCP, and no AVX or XSAVE-dependent extensions, like popek.
/// - AMD: family 0x16, model 0x30, stepping 1 (0x730F01, Puma). No AMD part has SSE4.2
///   without AVX; Puma is the nearest (SSE4.2, POPCNT, LZCNT, SMEP, no AVX2), presented
///   with AVX/XSAVE cleared as hypervisors that mask them do. Family 0x16 has no errata
///   Linux works around by family alone that would touch what popek models.
pub const fn signature(v: Vendor) -> u32 {
    match v {
        // Extended model 7, family 6, model 0xA, stepping 1.
        Vendor::Intel => (0x7 << 16) | (6 << 8) | (0xA << 4) | 1,
        // Extended family 7 + family 0xF = 0x16; extended model 3, model 0, stepping 1.
        Vendor::Amd => (0x7 << 20) | (0x3 << 16) | (0xF << 8) | 1,
    }
}

/// The display family and model of a CPUID.1:EAX signature (SDM Vol. 2A, CPUID, Figure 3-6).
pub const fn family_model(eax: u32) -> (u32, u32) {
    let base_family = (eax >> 8) & 0xF;
    let family = if base_family == 0xF {
        base_family + ((eax >> 20) & 0xFF)
    } else {
        base_family
    };
    let model = if base_family == 6 || base_family == 0xF {
        ((eax >> 12) & 0xF0) | ((eax >> 4) & 0xF)
    } else {
        (eax >> 4) & 0xF
    };
    (family, model)
}

/// Physical address width (MAXPHYADDR), reported in CPUID.8000_0008:EAX[7:0]. Physical
/// address bits at and above it are reserved in page-table entries, CR3 and IA32_APIC_BASE.
pub const PHYS_ADDR_BITS: u32 = 40;
/// Linear address width, reported in CPUID.8000_0008:EAX[15:8] (4-level paging).
pub const LINEAR_ADDR_BITS: u32 = 48;

/// General-purpose performance counters RDPMC may read (CPUID leaf 0xA is beyond the maximum
/// basic leaf: no architectural performance monitoring).
pub const PERF_COUNTERS: u32 = 0;

/// XCR0 bits the model supports (CPUID.(EAX=0DH,ECX=0):EAX would report them). XSAVE is
/// absent, so CR4.OSXSAVE cannot be set and XSETBV raises #UD; the value documents what
/// XSETBV would accept.
pub const XCR0_SUPPORTED: u64 = 1;

/// Feature bits of CPUID.1:EDX and ECX, 7.0:EBX and ECX, and 8000_0001:EDX and ECX.
pub mod features {
    /// 1:EDX.0: x87 FPU.
    pub const FPU: u32 = 1 << 0;
    /// 1:EDX.2: debugging extensions (CR4.DE: DR4/DR5 no longer alias DR6/DR7).
    pub const DE: u32 = 1 << 2;
    /// 1:EDX.3: 4 MiB pages (CR4.PSE).
    pub const PSE: u32 = 1 << 3;
    /// 1:EDX.4: RDTSC, CR4.TSD.
    pub const TSC: u32 = 1 << 4;
    /// 1:EDX.5: RDMSR/WRMSR.
    pub const MSR: u32 = 1 << 5;
    /// 1:EDX.6: PAE paging (CR4.PAE).
    pub const PAE: u32 = 1 << 6;
    /// 1:EDX.8: CMPXCHG8B.
    pub const CX8: u32 = 1 << 8;
    /// 1:EDX.9: on-chip local APIC (IA32_APIC_BASE).
    pub const APIC: u32 = 1 << 9;
    /// 1:EDX.11: SYSENTER/SYSEXIT.
    pub const SEP: u32 = 1 << 11;
    /// 1:EDX.12: memory-type range registers (IA32_MTRRCAP, the variable and fixed ranges).
    pub const MTRR: u32 = 1 << 12;
    /// 1:EDX.13: global pages (CR4.PGE).
    pub const PGE: u32 = 1 << 13;
    /// 1:EDX.15: CMOVcc.
    pub const CMOV: u32 = 1 << 15;
    /// 1:EDX.16: page attribute table (IA32_PAT).
    pub const PAT: u32 = 1 << 16;
    /// 1:EDX.19: CLFLUSH.
    pub const CLFSH: u32 = 1 << 19;
    /// 1:EDX.23: MMX.
    pub const MMX: u32 = 1 << 23;
    /// 1:EDX.24: FXSAVE/FXRSTOR, CR4.OSFXSR.
    pub const FXSR: u32 = 1 << 24;
    /// 1:EDX.25: SSE.
    pub const SSE: u32 = 1 << 25;
    /// 1:EDX.26: SSE2.
    pub const SSE2: u32 = 1 << 26;
    /// 1:ECX.0: SSE3.
    pub const SSE3: u32 = 1 << 0;
    /// 1:ECX.9: SSSE3.
    pub const SSSE3: u32 = 1 << 9;
    /// 1:ECX.13: CMPXCHG16B.
    pub const CX16: u32 = 1 << 13;
    /// 1:ECX.19: SSE4.1.
    pub const SSE4_1: u32 = 1 << 19;
    /// 1:ECX.20: SSE4.2.
    pub const SSE4_2: u32 = 1 << 20;
    /// 1:ECX.5: VMX (never: popek runs without hardware virtualization and offers none).
    pub const VMX: u32 = 1 << 5;
    /// 1:ECX.17: process-context identifiers (CR4.PCIDE).
    pub const PCID: u32 = 1 << 17;
    /// 1:ECX.21: x2APIC (not offered).
    pub const X2APIC: u32 = 1 << 21;
    /// 1:ECX.23: POPCNT.
    pub const POPCNT: u32 = 1 << 23;
    /// 1:ECX.24: the local APIC timer's TSC-deadline mode (IA32_TSC_DEADLINE).
    pub const TSC_DEADLINE: u32 = 1 << 24;
    /// 1:ECX.26: XSAVE (not implemented).
    pub const XSAVE: u32 = 1 << 26;
    /// 1:ECX.27: CR4.OSXSAVE is set (dynamic).
    pub const OSXSAVE: u32 = 1 << 27;
    /// 1:ECX.31: running under a hypervisor.
    pub const HYPERVISOR: u32 = 1 << 31;
    /// 7.0:EBX.7: supervisor-mode execution prevention (CR4.SMEP).
    pub const SMEP: u32 = 1 << 7;
    /// 7.0:EBX.10: INVPCID.
    pub const INVPCID: u32 = 1 << 10;
    /// 7.0:EBX.20: supervisor-mode access prevention (CR4.SMAP, CLAC/STAC).
    pub const SMAP: u32 = 1 << 20;
    /// 7.0:ECX.2: user-mode instruction prevention (CR4.UMIP).
    pub const UMIP: u32 = 1 << 2;
    /// 7.0:EDX.29: the IA32_ARCH_CAPABILITIES MSR exists (Intel).
    pub const ARCH_CAPABILITIES: u32 = 1 << 29;
    /// 8000_0001 ECX.0: LAHF/SAHF in 64-bit mode.
    pub const LAHF_LM: u32 = 1 << 0;
    /// 8000_0001 ECX.2: SVM (never).
    pub const SVM: u32 = 1 << 2;
    /// 8000_0001 ECX.5: LZCNT (ABM).
    pub const ABM: u32 = 1 << 5;
    /// 8000_0001 EDX.11: SYSCALL/SYSRET (EFER.SCE).
    pub const SYSCALL: u32 = 1 << 11;
    /// 8000_0001 EDX.20: execute-disable (EFER.NXE).
    pub const NX: u32 = 1 << 20;
    /// 8000_0001 EDX.26: 1 GiB pages (not offered).
    pub const PAGE1GB: u32 = 1 << 26;
    /// 8000_0001 EDX.27: RDTSCP and IA32_TSC_AUX.
    pub const RDTSCP: u32 = 1 << 27;
    /// 8000_0001 EDX.29: long mode (EFER.LME).
    pub const LM: u32 = 1 << 29;
    /// 8000_0007 EDX.8: the TSC runs at a constant rate in every state.
    pub const INVARIANT_TSC: u32 = 1 << 8;
}

use features as f;

/// CPUID.1:EDX.
const LEAF1_EDX: u32 = f::FPU
    | f::DE
    | f::PSE
    | f::TSC
    | f::MSR
    | f::PAE
    | f::CX8
    | f::APIC
    | f::SEP
    | f::MTRR
    | f::PGE
    | f::CMOV
    | f::PAT
    | f::CLFSH
    | f::MMX
    | f::FXSR
    | f::SSE
    | f::SSE2;
/// CPUID.1:ECX (OSXSAVE is dynamic).
const LEAF1_ECX: u32 = f::SSE3
    | f::SSSE3
    | f::CX16
    | f::SSE4_1
    | f::SSE4_2
    | f::PCID
    | f::POPCNT
    | f::TSC_DEADLINE
    | f::HYPERVISOR;
/// CPUID.(7,0):EBX.
const LEAF7_EBX: u32 = f::SMEP | f::INVPCID | f::SMAP;
/// CPUID.(7,0):ECX.
const LEAF7_ECX: u32 = f::UMIP;
/// CPUID.(7,0):EDX of the model presented as vendor `v`: IA32_ARCH_CAPABILITIES on Intel,
/// where Linux reads it to learn which speculation bugs the CPU does not have (an AMD part
/// has no such MSR; Linux treats AMD as free of the Intel-only bugs without it).
pub const fn leaf7_edx(v: Vendor) -> u32 {
    match v {
        Vendor::Intel => f::ARCH_CAPABILITIES,
        Vendor::Amd => 0,
    }
}
/// CPUID.8000_0001:ECX.
const EXT1_ECX: u32 = f::LAHF_LM | f::ABM;
/// CPUID.8000_0001:EDX.
const EXT1_EDX: u32 = f::SYSCALL | f::NX | f::RDTSCP | f::LM;
/// The CPUID.1:EDX bits AMD parts repeat in CPUID.8000_0001:EDX (FPU..APIC, MTRR..PSE36,
/// MMX, FXSR; AMD APM Vol. 3, CPUID Fn8000_0001_EDX).
const AMD_EXT1_ALIASES: u32 = 0x0183_F3FF;

/// Whether the model reports feature `bit` of CPUID.1:EDX.
pub const fn has_leaf1_edx(bit: u32) -> bool {
    LEAF1_EDX & bit != 0
}
/// Whether the model reports feature `bit` of CPUID.1:ECX.
pub const fn has_leaf1_ecx(bit: u32) -> bool {
    LEAF1_ECX & bit != 0
}
/// Whether the model reports feature `bit` of CPUID.(7,0):EBX.
pub const fn has_leaf7_ebx(bit: u32) -> bool {
    LEAF7_EBX & bit != 0
}
/// Whether the model reports feature `bit` of CPUID.(7,0):ECX.
pub const fn has_leaf7_ecx(bit: u32) -> bool {
    LEAF7_ECX & bit != 0
}
/// Whether the model reports feature `bit` of CPUID.8000_0001:EDX.
pub const fn has_ext1_edx(bit: u32) -> bool {
    EXT1_EDX & bit != 0
}

/// EAX, EBX, ECX, EDX for `leaf`/`subleaf`, independent of the CPU state (the
/// state-dependent bits read as after reset: APIC enabled, OSXSAVE clear).
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    cpuid_as(vendor(), leaf, subleaf)
}

/// [`cpuid`] of the model presented as vendor `v`.
pub fn cpuid_as(v: Vendor, leaf: u32, subleaf: u32) -> [u32; 4] {
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let id = vendor_id(v);
    match leaf {
        0 => [
            MAX_BASIC_LEAF,
            word(&id[0..4]),
            word(&id[8..12]),
            word(&id[4..8]),
        ],
        // EBX: CLFLUSH line size 8 quadwords (64 bytes), one logical processor, APIC id 0.
        1 => [signature(v), 8 << 8 | 1 << 16, LEAF1_ECX, LEAF1_EDX],
        7 if subleaf == 0 => [0, LEAF7_EBX, LEAF7_ECX, leaf7_edx(v)],
        // TSC = crystal × EBX / EAX; the crystal (ECX, Hz) also clocks the APIC timer.
        0x15 => [1, 1, TSC_HZ as u32, 0],
        0x16 => [TSC_MHZ, TSC_MHZ, TSC_MHZ, 0],
        kvmclock::CPUID_SIGNATURE => [
            kvmclock::CPUID_TIMING,
            word(&kvmclock::SIGNATURE[0..4]),
            word(&kvmclock::SIGNATURE[4..8]),
            word(&kvmclock::SIGNATURE[8..12]),
        ],
        kvmclock::CPUID_FEATURES => [kvmclock::FEATURES, 0, 0, 0],
        kvmclock::CPUID_TIMING => [TSC_KHZ, TSC_KHZ, 0, 0],
        0x8000_0000 => match v {
            Vendor::Intel => [MAX_EXT_LEAF, 0, 0, 0],
            Vendor::Amd => [
                MAX_EXT_LEAF,
                word(&id[0..4]),
                word(&id[8..12]),
                word(&id[4..8]),
            ],
        },
        0x8000_0001 => match v {
            // AMD repeats the signature too.
            Vendor::Intel => [0, 0, EXT1_ECX, EXT1_EDX],
            Vendor::Amd => [
                signature(v),
                0,
                EXT1_ECX,
                EXT1_EDX | (LEAF1_EDX & AMD_EXT1_ALIASES),
            ],
        },
        0x8000_0002..=0x8000_0004 => {
            let mut brand = [0u8; 48];
            brand[..BRAND.len()].copy_from_slice(BRAND.as_bytes());
            let i = (leaf - 0x8000_0002) as usize * 16;
            let b = &brand[i..i + 16];
            [
                word(&b[0..4]),
                word(&b[4..8]),
                word(&b[8..12]),
                word(&b[12..16]),
            ]
        }
        0x8000_0007 => [0, 0, 0, f::INVARIANT_TSC],
        0x8000_0008 => [PHYS_ADDR_BITS | LINEAR_ADDR_BITS << 8, 0, 0, 0],
        _ => [0; 4],
    }
}

/// IA32_APIC_BASE bit 11: the local APIC is globally enabled.
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;

/// CPUID as the guest in state `cpu` with IA32_APIC_BASE `apic_base` sees it: [`cpuid`]
/// with the state-dependent bits (CPUID.1:EDX.APIC, CPUID.1:ECX.OSXSAVE) applied.
pub fn cpuid_for(cpu: &CpuState, apic_base: u64, leaf: u32, subleaf: u32) -> [u32; 4] {
    let mut r = cpuid(leaf, subleaf);
    if leaf == 1 {
        if apic_base & APIC_GLOBAL_ENABLE == 0 {
            r[3] &= !f::APIC;
        }
        if has_leaf1_ecx(f::XSAVE) && cpu.cr4 & translator::state::cr::CR4_OSXSAVE != 0 {
            r[2] |= f::OSXSAVE;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 12 bytes of EBX, EDX, ECX (leaf 0's order).
    fn id_of(r: [u32; 4]) -> Vec<u8> {
        [r[1], r[3], r[2]]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    #[test]
    fn vendor_is_the_hosts_spelled_ebx_edx_ecx() {
        let [max, ..] = cpuid(0, 0);
        assert_eq!(max, MAX_BASIC_LEAF);
        assert_eq!(&id_of(cpuid(0, 0)), vendor_id(Vendor::host()));
        assert_eq!(&id_of(cpuid_as(Vendor::Intel, 0, 0)), b"GenuineIntel");
        assert_eq!(&id_of(cpuid_as(Vendor::Amd, 0, 0)), b"AuthenticAMD");
        // Whatever the model says, the translator reads back the vendor whose flag rules
        // it applies.
        for v in Vendor::ALL {
            assert_eq!(Vendor::from_cpuid_id(vendor_id(v)), v);
        }
        // AMD repeats the vendor in 0x8000_0000; Intel leaves it zero.
        assert_eq!(
            &id_of(cpuid_as(Vendor::Amd, 0x8000_0000, 0)),
            b"AuthenticAMD"
        );
        assert_eq!(cpuid_as(Vendor::Intel, 0x8000_0000, 0)[1..], [0, 0, 0]);
    }

    #[test]
    fn family_and_model_are_real_parts_without_avx() {
        // Goldmont Plus (06_7AH) and Puma (16h model 30h), as the SDM and the AMD
        // revision guide spell their signatures.
        assert_eq!(signature(Vendor::Intel), 0x0007_06A1);
        assert_eq!(signature(Vendor::Amd), 0x0073_0F01);
        assert_eq!(family_model(signature(Vendor::Intel)), (6, 0x7A));
        assert_eq!(family_model(signature(Vendor::Amd)), (0x16, 0x30));
        for v in Vendor::ALL {
            assert_eq!(cpuid_as(v, 1, 0)[0], signature(v));
            // Coherent with the features: SSE4.2 and POPCNT exist from family 6 (Intel)
            // and 0x10+ (AMD) on; AVX and XSAVE are not claimed.
            let [_, _, ecx, _] = cpuid_as(v, 1, 0);
            assert_ne!(ecx & f::SSE4_2, 0);
            assert_eq!(ecx & (1 << 28 | f::XSAVE), 0, "AVX, XSAVE");
        }
        assert_eq!(
            cpuid_as(Vendor::Amd, 0x8000_0001, 0)[0],
            signature(Vendor::Amd)
        );
    }

    #[test]
    fn amd_mirrors_only_claimed_leaf1_bits() {
        let leaf1 = cpuid_as(Vendor::Amd, 1, 0)[3];
        let ext = cpuid_as(Vendor::Amd, 0x8000_0001, 0)[3];
        assert_eq!(ext & !EXT1_EDX, leaf1 & AMD_EXT1_ALIASES);
        assert_eq!(cpuid_as(Vendor::Intel, 0x8000_0001, 0)[3], EXT1_EDX);
    }

    #[test]
    fn max_leaves_bound_the_model() {
        assert_eq!(cpuid(0, 0)[0], MAX_BASIC_LEAF);
        assert_eq!(cpuid(0x8000_0000, 0)[0], MAX_EXT_LEAF);
        // Every leaf with contents is within the advertised maxima.
        for leaf in (MAX_BASIC_LEAF + 1..0x100).chain(MAX_EXT_LEAF + 1..0x8000_0100) {
            assert_eq!(cpuid(leaf, 0), [0; 4], "leaf {leaf:#x}");
        }
        // No topology leaves (0xB, 0x1F), no XSAVE leaf (0xD), no PMU leaf (0xA).
        for leaf in [0xA, 0xB, 0xD, 0x1F] {
            assert_eq!(cpuid(leaf, 0), [0; 4]);
        }
        // The hypervisor range ends at its advertised maximum.
        let max_hv = cpuid(0x4000_0000, 0)[0];
        assert_eq!(max_hv, 0x4000_0010);
        for leaf in (0x4000_0002..0x4000_0010).chain(max_hv + 1..0x4001_0000) {
            assert_eq!(cpuid(leaf, 0), [0; 4], "leaf {leaf:#x}");
        }
        // Leaf 7 has only subleaf 0.
        assert_eq!(cpuid(7, 0)[0], 0);
        assert_eq!(cpuid(7, 1), [0; 4]);
        // Address sizes.
        let sizes = cpuid(0x8000_0008, 0)[0];
        assert_eq!((sizes & 0xFF, (sizes >> 8) & 0xFF), (40, 48));
    }

    /// Every feature bit the runtime and translator implement, per (leaf, register index).
    /// A claimed bit outside this list is a lie to the guest.
    const EMULATED: &[(u32, usize, u32, &str)] = &[
        (1, 3, f::DE, "CR4.DE"),
        (1, 3, f::PSE, "4 MiB pages"),
        (1, 3, f::TSC, "RDTSC, CR4.TSD"),
        (1, 3, f::MSR, "RDMSR/WRMSR"),
        (1, 3, f::PAE, "PAE"),
        (1, 3, f::APIC, "IA32_APIC_BASE, local APIC"),
        (1, 3, f::SEP, "SYSENTER/SYSEXIT"),
        (
            1,
            3,
            f::MTRR,
            "IA32_MTRRCAP, MTRR ranges (stored; memory types have no effect)",
        ),
        (1, 3, f::PGE, "CR4.PGE"),
        (1, 3, f::CMOV, "CMOVcc"),
        (1, 3, f::PAT, "IA32_PAT"),
        (1, 3, f::FPU, "x87 (host-executed)"),
        (1, 3, f::CX8, "CMPXCHG8B"),
        (1, 3, f::CLFSH, "CLFLUSH"),
        (1, 3, f::MMX, "MMX (host-executed)"),
        (1, 3, f::FXSR, "FXSAVE/FXRSTOR, CR4.OSFXSR"),
        (1, 3, f::SSE, "SSE"),
        (1, 3, f::SSE2, "SSE2"),
        (1, 2, f::SSE3, "SSE3"),
        (1, 2, f::SSSE3, "SSSE3"),
        (1, 2, f::CX16, "CMPXCHG16B"),
        (1, 2, f::SSE4_1, "SSE4.1"),
        (1, 2, f::SSE4_2, "SSE4.2"),
        (1, 2, f::PCID, "CR4.PCIDE"),
        (1, 2, f::POPCNT, "POPCNT"),
        (
            1,
            2,
            f::TSC_DEADLINE,
            "LAPIC TSC-deadline mode, IA32_TSC_DEADLINE",
        ),
        (1, 2, f::HYPERVISOR, "hypervisor present"),
        (7, 1, f::SMEP, "CR4.SMEP"),
        (7, 1, f::INVPCID, "INVPCID"),
        (7, 1, f::SMAP, "CR4.SMAP, CLAC/STAC"),
        (7, 2, f::UMIP, "CR4.UMIP"),
        (
            7,
            3,
            f::ARCH_CAPABILITIES,
            "IA32_ARCH_CAPABILITIES (read-only, Intel)",
        ),
        (0x8000_0001, 2, f::LAHF_LM, "LAHF/SAHF"),
        (0x8000_0001, 2, f::ABM, "LZCNT"),
        (0x8000_0001, 3, f::SYSCALL, "SYSCALL/SYSRET"),
        (0x8000_0001, 3, f::NX, "EFER.NXE"),
        (0x8000_0001, 3, f::RDTSCP, "RDTSCP, IA32_TSC_AUX"),
        (0x8000_0001, 3, f::LM, "long mode"),
        (
            0x8000_0007,
            3,
            f::INVARIANT_TSC,
            "constant-rate virtual TSC",
        ),
    ];

    #[test]
    fn every_claimed_feature_is_emulated() {
        for (leaf, regs) in [(1, [2usize, 3].as_slice()), (7, &[1, 2, 3])]
            .into_iter()
            .chain([(0x8000_0001, [2usize, 3].as_slice()), (0x8000_0007, &[3])])
        {
            // Intel's view: AMD's 8000_0001 aliases repeat leaf-1 bits (checked above).
            let r = cpuid_as(Vendor::Intel, leaf, 0);
            for &reg in regs {
                let claimed = r[reg];
                let known = EMULATED
                    .iter()
                    .filter(|e| e.0 == leaf && e.1 == reg)
                    .fold(0, |a, e| a | e.2);
                assert_eq!(
                    claimed & !known,
                    0,
                    "leaf {leaf:#x} reg {reg}: unemulated bits"
                );
                assert_eq!(
                    claimed, known,
                    "leaf {leaf:#x} reg {reg}: table out of date"
                );
            }
        }
    }

    #[test]
    fn absent_features_stay_absent() {
        let [_, _, ecx, _] = cpuid(1, 0);
        assert_eq!(ecx & (f::VMX | f::X2APIC | f::XSAVE | f::OSXSAVE), 0);
        let [_, _, ecx, edx] = cpuid(0x8000_0001, 0);
        assert_eq!(ecx & f::SVM, 0);
        assert_eq!(edx & f::PAGE1GB, 0);
        assert_eq!(XCR0_SUPPORTED, 1, "x87 state only");
        assert_eq!(PERF_COUNTERS, 0);
    }

    #[test]
    fn state_dependent_bits() {
        let mut cpu = CpuState::default();
        assert_eq!(cpuid_for(&cpu, 0xFEE0_0900, 1, 0), cpuid(1, 0));
        assert_eq!(cpuid_for(&cpu, 0xFEE0_0100, 1, 0)[3] & f::APIC, 0);
        cpu.cr4 = translator::state::cr::CR4_OSXSAVE;
        assert_eq!(
            cpuid_for(&cpu, 0xFEE0_0900, 1, 0)[2] & f::OSXSAVE,
            0,
            "no XSAVE"
        );
    }

    #[test]
    fn tsc_frequency_leaves_agree() {
        let [den, num, crystal, _] = cpuid(0x15, 0);
        assert_eq!(u64::from(crystal) * u64::from(num) / u64::from(den), TSC_HZ);
        assert_eq!(cpuid(0x16, 0)[0], 1000, "MHz");
        assert_eq!(cpuid(0x4000_0010, 0)[..2], [1_000_000, 1_000_000], "kHz");
    }

    #[test]
    fn kvm_signature_and_only_the_implemented_features() {
        let [max, b, c, d] = cpuid(0x4000_0000, 0);
        assert_eq!(max, 0x4000_0010);
        let mut sig = Vec::new();
        for r in [b, c, d] {
            sig.extend_from_slice(&r.to_le_bytes());
        }
        assert_eq!(&sig, b"KVMKVMKVM\0\0\0");
        let [features, _, _, hints] = cpuid(0x4000_0001, 0);
        // NOP_IO_DELAY (1), CLOCKSOURCE2 (3), CLOCKSOURCE_STABLE_BIT (24): nothing else, in
        // particular not the old clock MSRs (0), async PF (4), steal time (5), PV EOI (6)
        // or PV unhalt (7).
        assert_eq!(features, (1 << 1) | (1 << 3) | (1 << 24));
        assert_eq!(hints, 0);
        for msr in [0x4b56_4d00, 0x4b56_4d01] {
            assert!(
                crate::system::msr::Msr::from_index(msr).is_some(),
                "{msr:#x}"
            );
        }
        for absent in [0x11, 0x12, 0x4b56_4d02, 0x4b56_4d03, 0x4b56_4d04] {
            assert!(crate::system::msr::Msr::from_index(absent).is_none());
        }
    }

    #[test]
    fn brand_string() {
        assert_eq!(TSC_MHZ, 1000, "the brand string says 1.00GHz");
        let mut s = Vec::new();
        for leaf in 0x8000_0002..=0x8000_0004 {
            for r in cpuid(leaf, 0) {
                s.extend_from_slice(&r.to_le_bytes());
            }
        }
        assert_eq!(s.len(), 48);
        assert_eq!(&s[..BRAND.len()], BRAND.as_bytes());
        assert!(s[BRAND.len()..].iter().all(|&b| b == 0));
    }
}
