//! Comparing the x87/MMX/SSE state of a guest run with the native run, and printing it.
//!
//! Compared: XMM0..15, MXCSR, FCW, FSW (TOP, condition codes, exception flags, ES, B), the
//! abridged tag word, the 80 bits of all eight x87 registers (the image's ST(i) slots with
//! TOP compared too, so every physical register), FIP, and FOP and FDP where the host
//! updated them.
//!
//! What this host stores (measured, see `testsuite/tests/diff_fp.rs`, `host_fpu_pointers`):
//! it reports CPUID.(7,0):EBX[6] (FDP_EXCPTN_ONLY) and EBX[13] (FCS/FDS deprecated).
//! - FIP is the address of the last x87 non-control instruction (FNOP, FXCH, FFREE,
//!   FINCSTP... included; not FLDCW/FNSTSW/FNCLEX/FWAIT, not MMX or SSE instructions);
//!   FNINIT clears it. Compared always.
//! - FOP and FDP keep their old values through x87 instructions that raise no *unmasked*
//!   exception; an instruction that raises one stores its opcode and (with a memory
//!   operand) its data address. popek models a CPU without those CPUID bits, which updates
//!   FOP and FDP after every x87 non-control instruction, so they are compared only when the
//!   host changed them (then the guest must agree).
//! - FCS and FDS are stored as zero (FNSTENV/FNSAVE images, the 32-bit FXSAVE layout). The
//!   guest stores its CS/DS selectors there; the runner starts every case with them zero,
//!   so images stored by the one instruction of a case agree.
//! - FXSAVE64/FNSTENV/FNSAVE images in memory hold exactly the register values above (FOP,
//!   FIP, FDP as loaded), so memory is compared byte for byte.
//! - FXRSTOR64 keeps FIP's bits 0..56 sign-extended from bit 56 (FDP: all 64 bits), and
//!   FCW reads back with bit 6 set and bits 7, 13..15 clear; the random input states hold
//!   such values only (loading others would change them before the instruction runs), the
//!   FXRSTOR images sometimes do not.

use std::fmt::Write as _;

use translator::state::FxArea;

/// Append to `diffs` a line per FP state difference between `native` and `guest` for a case
/// that started from `input`.
pub fn compare_fp(input: &FxArea, native: &FxArea, guest: &FxArea, diffs: &mut Vec<String>) {
    let mut word = |name: &str, n: u64, g: u64, width: usize| {
        if n != g {
            diffs.push(format!(
                "{name}: native {n:0width$x}, guest {g:0width$x} (differ: {:0width$x})",
                n ^ g
            ));
        }
    };
    word("mxcsr", native.mxcsr.into(), guest.mxcsr.into(), 8);
    word("fcw", native.fcw.into(), guest.fcw.into(), 4);
    word("fsw", native.fsw.into(), guest.fsw.into(), 4);
    word("ftw", native.ftw.into(), guest.ftw.into(), 2);
    word("fip", native.fip, guest.fip, 16);
    if native.fop & 0x7FF != input.fop & 0x7FF {
        word(
            "fop (host updated)",
            u64::from(native.fop & 0x7FF),
            u64::from(guest.fop & 0x7FF),
            3,
        );
    }
    if native.fdp != input.fdp {
        word("fdp (host updated)", native.fdp, guest.fdp, 16);
    }
    let top = (native.fsw >> 11) & 7;
    for i in 0..8 {
        let (n, g) = (&native.st[i][..10], &guest.st[i][..10]);
        if n != g {
            diffs.push(format!(
                "st{i} (r{}): native {}, guest {}",
                (usize::from(top) + i) & 7,
                f80_text(n),
                f80_text(g)
            ));
        }
    }
    for i in 0..16 {
        let (n, g) = (native.xmm[i], guest.xmm[i]);
        if n != g {
            diffs.push(format!("xmm{i}: native {n:032x}, guest {g:032x}"));
        }
    }
}

/// An 80-bit register as `sign+exponent mantissa` hex.
pub fn f80_text(b: &[u8]) -> String {
    let mant = u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
    let se = u16::from_le_bytes([b[8], b[9]]);
    format!("{se:04x}:{mant:016x}")
}

/// The whole FP state, indented by `indent`: control and status, the eight x87 registers
/// (ST(i) and its physical register), the sixteen XMM registers.
pub fn fp_state_text(indent: &str, fx: &FxArea) -> String {
    let mut s = String::new();
    let top = (fx.fsw >> 11) & 7;
    let _ = writeln!(
        s,
        "{indent}mxcsr {:08x} fcw {:04x} fsw {:04x} (top {top}) ftw {:02x} fop {:03x} fip {:016x} \
         fdp {:016x}",
        fx.mxcsr, fx.fcw, fx.fsw, fx.ftw, fx.fop, fx.fip, fx.fdp
    );
    for row in 0..2 {
        s.push_str(indent);
        for col in 0..4 {
            let i = row * 4 + col;
            let phys = (usize::from(top) + i) & 7;
            let tag = if fx.ftw & (1 << phys) != 0 { ' ' } else { 'e' };
            let _ = write!(s, "st{i}/r{phys}{tag}{} ", f80_text(&fx.st[i]));
        }
        s.push('\n');
    }
    for row in 0..8 {
        s.push_str(indent);
        for col in 0..2 {
            let i = row * 2 + col;
            let _ = write!(s, "xmm{i:<2}={:032x} ", fx.xmm[i]);
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_rules() {
        let input = FxArea {
            fop: 0x123,
            fdp: 0x5000,
            ..FxArea::default()
        };
        let mut native = input;
        native.fip = 0x20_0100;
        let mut guest = native;
        guest.fop = 0x1C1;
        guest.fdp = 0x10_1000;
        let mut d = Vec::new();
        compare_fp(&input, &native, &guest, &mut d);
        assert!(d.is_empty(), "{d:?}");
        native.fop = 0x1C1;
        native.fdp = 0x10_2000;
        compare_fp(&input, &native, &guest, &mut d);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with("fdp"));
        guest.xmm[3] = 1;
        guest.st[2][9] = 0x80;
        d.clear();
        compare_fp(&input, &native, &guest, &mut d);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(fp_state_text("", &guest).lines().count() == 11);
    }
}
