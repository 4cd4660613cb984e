//! The virtual CPU model that CPUID reports.
//!
//! The vendor string is `"PopekVirtCPU"` (12 bytes, like `"GenuineIntel"`): popek does not
//! pretend to be a real vendor's part, so guests take their generic paths. Feature bits are
//! honest: only what the translator implements is reported. The foundation executes integer
//! code only, so x87/MMX/SSE* are reported absent even though x86-64 hardware always has SSE2;
//! guests must be built for that (`-mgeneral-regs-only`, no floating point).
//!
//! | leaf | contents |
//! | --- | --- |
//! | 0 | max basic leaf 1, vendor |
//! | 1 | family 6 model 1 stepping 1; CLFLUSH line 64, 1 logical CPU; TSC, CMOV; POPCNT, hypervisor |
//! | 0x8000_0000 | max extended leaf 0x8000_0004 |
//! | 0x8000_0001 | LM (long mode); LZCNT (ABM) |
//! | 0x8000_0002..4 | brand string `"popek virtual CPU"` |
//! | anything else | all zeros |

/// The vendor string, as EBX, EDX, ECX spell it.
pub const VENDOR: &[u8; 12] = b"PopekVirtCPU";

/// The brand string (NUL-padded to 48 bytes).
pub const BRAND: &str = "popek virtual CPU";

/// Highest basic leaf.
pub const MAX_BASIC_LEAF: u32 = 1;
/// Highest extended leaf.
pub const MAX_EXT_LEAF: u32 = 0x8000_0004;

/// CPUID.1:EAX — stepping 1, model 1, family 6.
pub const SIGNATURE: u32 = (6 << 8) | (1 << 4) | 1;

/// Feature bits of CPUID.1:EDX and ECX, and CPUID.8000_0001:EDX and ECX.
pub mod features {
    /// EDX.4: RDTSC.
    pub const TSC: u32 = 1 << 4;
    /// EDX.15: CMOVcc.
    pub const CMOV: u32 = 1 << 15;
    /// EDX.0: x87 FPU (not implemented).
    pub const FPU: u32 = 1 << 0;
    /// EDX.26: SSE2 (not implemented).
    pub const SSE2: u32 = 1 << 26;
    /// ECX.23: POPCNT.
    pub const POPCNT: u32 = 1 << 23;
    /// ECX.31: running under a hypervisor.
    pub const HYPERVISOR: u32 = 1 << 31;
    /// 8000_0001 EDX.29: long mode.
    pub const LM: u32 = 1 << 29;
    /// 8000_0001 EDX.20: NX (no paging yet).
    pub const NX: u32 = 1 << 20;
    /// 8000_0001 ECX.5: LZCNT (ABM).
    pub const ABM: u32 = 1 << 5;
}

/// EAX, EBX, ECX, EDX for `leaf`/`subleaf`.
pub fn cpuid(leaf: u32, _subleaf: u32) -> [u32; 4] {
    let word = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
    match leaf {
        0 => [
            MAX_BASIC_LEAF,
            word(&VENDOR[0..4]),
            word(&VENDOR[8..12]),
            word(&VENDOR[4..8]),
        ],
        1 => [
            SIGNATURE,
            // EBX: CLFLUSH line size 8 * 8 = 64 bytes, 1 logical processor, APIC id 0.
            (1 << 16) | (8 << 8),
            features::POPCNT | features::HYPERVISOR,
            features::TSC | features::CMOV,
        ],
        0x8000_0000 => [MAX_EXT_LEAF, 0, 0, 0],
        0x8000_0001 => [0, 0, features::ABM, features::LM],
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
        _ => [0; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_is_spelled_ebx_edx_ecx() {
        let [max, b, c, d] = cpuid(0, 0);
        assert_eq!(max, MAX_BASIC_LEAF);
        let mut s = Vec::new();
        for r in [b, d, c] {
            s.extend_from_slice(&r.to_le_bytes());
        }
        assert_eq!(&s, VENDOR);
    }

    #[test]
    fn leaves_are_consistent() {
        // Every leaf up to the advertised maxima answers; beyond them, zeros.
        for leaf in 0..=MAX_BASIC_LEAF {
            assert_ne!(cpuid(leaf, 0), [0; 4], "leaf {leaf}");
        }
        // (The brand string's last leaf may be all NUL padding.)
        for leaf in 0x8000_0000..MAX_EXT_LEAF {
            assert_ne!(cpuid(leaf, 0), [0; 4], "leaf {leaf:#x}");
        }
        assert_eq!(cpuid(MAX_BASIC_LEAF + 1, 0), [0; 4]);
        assert_eq!(cpuid(MAX_EXT_LEAF + 1, 0), [0; 4]);
        // Family 6, model 1, stepping 1.
        let eax = cpuid(1, 0)[0];
        assert_eq!(((eax >> 8) & 0xF, (eax >> 4) & 0xF, eax & 0xF), (6, 1, 1));
    }

    #[test]
    fn features_are_honest() {
        let [_, _, ecx, edx] = cpuid(1, 0);
        assert_eq!(edx & (features::FPU | features::SSE2), 0, "no x87/SSE yet");
        assert_ne!(edx & features::TSC, 0);
        assert_ne!(ecx & features::HYPERVISOR, 0);
        let [_, _, _, edx] = cpuid(0x8000_0001, 0);
        assert_ne!(edx & features::LM, 0);
        assert_eq!(edx & features::NX, 0);
    }

    #[test]
    fn brand_string() {
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
