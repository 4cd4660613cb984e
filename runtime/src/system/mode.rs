//! The block mode ([`translator::Mode`]) derived from the CPU state, the reset states the
//! loaders start guests in, and the guest state report of a triple fault.
//!
//! Invariants:
//! - [`mode`] is a pure function of the architectural state: the engines recompute it after
//!   every handler that may change CR0, EFER, CS, SS or the CPL.
//! - Virtual-8086 mode does not exist here: RFLAGS.VM is ignored, so protected mode with
//!   CR0.PE is always 16/32-bit protected (or IA-32e) mode.

use std::fmt::Write as _;

use translator::state::{cr, mxcsr, seg, seg_attr, CpuState, DescTable, Segment};
use translator::{fp_mode, Mode};

use super::descriptors::in_64bit;

/// Attributes of the flat 32-bit code segment: execute/read, accessed, DPL 0, D = 1, G = 1.
pub const CODE32_ATTR: u16 = 0x9B | seg_attr::DB | seg_attr::G;
/// Attributes of the 64-bit code segment: execute/read, accessed, DPL 0, L = 1, G = 1.
pub const CODE64_ATTR: u16 = 0x9B | seg_attr::L | seg_attr::G;
/// Attributes of the flat data segment: read/write, accessed, DPL 0, B = 1, G = 1.
pub const DATA_ATTR: u16 = 0x93 | seg_attr::DB | seg_attr::G;
/// Code selector of the reset states.
pub const CODE_SELECTOR: u16 = 0x08;
/// Data selector of the reset states.
pub const DATA_SELECTOR: u16 = 0x10;

/// The execution mode of the next block.
///
/// Bitness: 16 in real mode, 64 in 64-bit mode (EFER.LMA and CS.L), else CS.D ? 32 : 16.
/// Stack: 64 in 64-bit mode, else SS.B ? 32 : 16. `seg_bases` is set outside 64-bit mode
/// when any of CS/DS/ES/SS has a nonzero base, `cs_based` when CS has.
pub fn mode(cpu: &CpuState) -> Mode {
    let cs = &cpu.seg[seg::CS];
    let bitness = if cpu.cr0 & cr::CR0_PE == 0 {
        16
    } else if in_64bit(cpu) {
        64
    } else if cs.attr & seg_attr::DB != 0 {
        32
    } else {
        16
    };
    let stack = if bitness == 64 {
        64
    } else if cpu.seg[seg::SS].attr & seg_attr::DB != 0 {
        32
    } else {
        16
    };
    let seg_bases = bitness != 64
        && [seg::CS, seg::DS, seg::ES, seg::SS]
            .iter()
            .any(|&i| cpu.seg[i].base != 0);
    Mode {
        bitness,
        cpl: (cpu.cpl & 3) as u8,
        stack,
        paging: cpu.cr0 & cr::CR0_PG != 0,
        seg_bases,
        cs_based: bitness != 64 && cpu.seg[seg::CS].base != 0,
        fp: fp_bits(cpu),
    }
}

/// The linear address code at `rip` is fetched from: RIP in 64-bit mode, else CS.base +
/// EIP (real mode: CS × 16 + IP), wrapping at 4 GiB.
pub fn code_linear(cpu: &CpuState, rip: u64) -> u64 {
    if in_64bit(cpu) {
        rip
    } else {
        cpu.seg[seg::CS].base.wrapping_add(rip) & 0xFFFF_FFFF
    }
}

/// The [`Mode::fp`] bits of the CPU state: CR0.EM/TS/MP, CR4.OSFXSR/OSXMMEXCPT, whether
/// MXCSR unmasks an exception, and whether the x87 control word masks them all with none
/// pending.
pub fn fp_bits(cpu: &CpuState) -> u8 {
    let bit = |cond: bool, b: u8| if cond { b } else { 0 };
    bit(cpu.cr0 & cr::CR0_EM != 0, fp_mode::EM)
        | bit(cpu.cr0 & cr::CR0_TS != 0, fp_mode::TS)
        | bit(cpu.cr0 & cr::CR0_MP != 0, fp_mode::MP)
        | bit(cpu.cr4 & cr::CR4_OSFXSR != 0, fp_mode::OSFXSR)
        | bit(cpu.cr4 & cr::CR4_OSXMMEXCPT != 0, fp_mode::OSXMMEXCPT)
        | bit(
            cpu.fx.mxcsr & mxcsr::MASKS != mxcsr::MASKS,
            fp_mode::SIMD_UNMASKED,
        )
        | bit(crate::fpu::x87_masked(cpu), fp_mode::X87_MASKED)
}

fn flat_segments(cpu: &mut CpuState, code_attr: u16) {
    flat_segments_at(cpu, CODE_SELECTOR, DATA_SELECTOR, code_attr);
}

fn flat_segments_at(cpu: &mut CpuState, code: u16, data: u16, code_attr: u16) {
    for (i, s) in cpu.seg.iter_mut().enumerate() {
        *s = if i == seg::CS {
            Segment::flat(code, code_attr)
        } else {
            Segment::flat(data, DATA_ATTR)
        };
    }
    // The power-on values of the system registers: usable but empty-ish tables at 0.
    cpu.ldtr = Segment {
        selector: 0,
        attr: 0x82,
        limit: 0xFFFF,
        base: 0,
    };
    cpu.tr = Segment {
        selector: 0,
        attr: 0x8B,
        limit: 0xFFFF,
        base: 0,
    };
    cpu.gdtr = DescTable {
        base: 0,
        limit: 0xFFFF,
    };
    // No IDT: the run loop reports an exception raised before the guest loads one
    // instead of vectoring through whatever lies at address 0 (see `RunOutcome::Exception`).
    cpu.idtr = DescTable { base: 0, limit: 0 };
    cpu.cpl = 0;
    cpu.rflags = translator::state::rflags::FIXED;
    cpu.flags_op = 0;
}

/// The Multiboot entry state: CR0 = PE | ET (no paging), CR4 = 0, EFER = 0, flat 32-bit code
/// (selector 0x08: execute/read, D = 1, G = 1) and flat data in DS/ES/FS/GS/SS (0x10), CPL 0,
/// EFLAGS = 0x2. GDTR/IDTR/LDTR/TR take their power-on values (base 0, limit 0xFFFF): the
/// guest must load its own tables before it relies on them, as Multiboot requires.
pub fn reset_protected_flat32(cpu: &mut CpuState) {
    flat_segments(cpu, CODE32_ATTR);
    cpu.cr0 = cr::CR0_PE | cr::CR0_ET;
    // As QEMU: no CR4 feature enabled (SSE included, until the kernel sets CR4.OSFXSR).
    cpu.cr4 = 0;
    cpu.efer = 0;
}

/// The foundation's ELF entry state: 64-bit code (selector 0x08, L = 1), flat data (0x10),
/// CPL 0, CR0 = PE | MP | ET | NE, CR4.OSFXSR and OSXMMEXCPT set (SSE on, as an operating
/// system leaves it for the programs it runs), EFER = LME | LMA, EFLAGS = 0x2.
///
/// Non-architectural: this is "IA-32e mode without paging", which hardware cannot enter
/// (LMA requires CR0.PG and CR4.PAE). popek runs it with guest-virtual = guest-physical
/// while CR0.PG is clear. A guest that later sets CR0.PG with CR3 and CR4.PAE gets ordinary
/// 4-level paging. CR3 and the other CR4 bits are left as they are.
pub fn reset_long_flat64(cpu: &mut CpuState) {
    flat_segments(cpu, CODE64_ATTR);
    cpu.cr0 = cr::CR0_PE | cr::CR0_MP | cr::CR0_ET | cr::CR0_NE;
    cpu.cr4 |= cr::CR4_OSFXSR | cr::CR4_OSXMMEXCPT;
    cpu.efer = cr::EFER_LME | cr::EFER_LMA;
}

/// The Linux boot protocol's entry state ([`crate::loader::linux`]): flat segments with
/// `__BOOT_CS` (0x10) and `__BOOT_DS` (0x18) as the boot GDT at `gdt` defines them, CPL 0,
/// RFLAGS = 0x2, no IDT. With `cr3` (the 64-bit entry): 64-bit code, CR0 = PE | ET | PG,
/// CR4 = PAE, EFER = LME | LMA, CR3 = `cr3`. Without: 32-bit code, CR0 = PE | ET, CR4 and
/// EFER clear.
pub fn reset_linux(cpu: &mut CpuState, gdt: DescTable, cr3: Option<u64>) {
    use crate::loader::linux::entry::{BOOT_CS, BOOT_DS};
    let code_attr = if cr3.is_some() {
        CODE64_ATTR
    } else {
        CODE32_ATTR
    };
    flat_segments_at(cpu, BOOT_CS, BOOT_DS, code_attr);
    cpu.gdtr = gdt;
    match cr3 {
        Some(cr3) => {
            cpu.cr0 = cr::CR0_PE | cr::CR0_ET | cr::CR0_PG;
            cpu.cr4 = cr::CR4_PAE;
            cpu.cr3 = cr3;
            cpu.efer = cr::EFER_LME | cr::EFER_LMA;
        }
        None => {
            cpu.cr0 = cr::CR0_PE | cr::CR0_ET;
            cpu.cr4 = 0;
            cpu.efer = 0;
        }
    }
}

fn seg_line(out: &mut String, name: &str, s: &Segment) {
    let _ = writeln!(
        out,
        "{name:<4} sel={:04x} base={:016x} limit={:08x} attr={:04x} (type={:x} s={} dpl={} p={} l={} db={} g={})",
        s.selector,
        s.base,
        s.limit,
        s.attr,
        s.attr & seg_attr::TYPE,
        (s.attr & seg_attr::S != 0) as u8,
        s.dpl(),
        (s.attr & seg_attr::P != 0) as u8,
        (s.attr & seg_attr::L != 0) as u8,
        (s.attr & seg_attr::DB != 0) as u8,
        (s.attr & seg_attr::G != 0) as u8,
    );
}

/// A multi-line report of the guest state (GPRs, RIP, RFLAGS, segment registers with their
/// hidden parts, control registers, EFER, descriptor-table registers, CPL) for the
/// triple-fault report.
pub fn state_dump(cpu: &CpuState) -> String {
    let mut out = register_dump(cpu);
    out.push('\n');
    let m = mode(cpu);
    let _ = writeln!(
        out,
        "cpl={} mode={}-bit{} stack={}-bit paging={}",
        cpu.cpl,
        m.bitness,
        if cpu.cr0 & cr::CR0_PE == 0 {
            " real"
        } else if cpu.efer & cr::EFER_LMA != 0 {
            " ia-32e"
        } else {
            " protected"
        },
        m.stack,
        m.paging
    );
    const NAMES: [&str; 6] = ["es", "cs", "ss", "ds", "fs", "gs"];
    for (name, s) in NAMES.iter().zip(&cpu.seg) {
        seg_line(&mut out, name, s);
    }
    seg_line(&mut out, "ldtr", &cpu.ldtr);
    seg_line(&mut out, "tr", &cpu.tr);
    let _ = writeln!(
        out,
        "gdtr base={:016x} limit={:04x}  idtr base={:016x} limit={:04x}",
        cpu.gdtr.base, cpu.gdtr.limit, cpu.idtr.base, cpu.idtr.limit
    );
    let _ = writeln!(
        out,
        "cr0={:016x} cr2={:016x} cr3={:016x} cr4={:016x}",
        cpu.cr0, cpu.cr2, cpu.cr3, cpu.cr4
    );
    let _ = write!(out, "cr8={:016x} efer={:016x}", cpu.cr8, cpu.efer);
    out
}

/// A register dump of `cpu`, one register group per line (for reports).
pub fn register_dump(cpu: &CpuState) -> String {
    const NAMES: [&str; 16] = [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
    let mut s = String::new();
    for (i, chunk) in NAMES.chunks(4).enumerate() {
        let line: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(j, n)| format!("{n:>3}={:016x}", cpu.gpr[i * 4 + j]))
            .collect();
        s.push_str(&line.join(" "));
        s.push('\n');
    }
    s.push_str(&format!(
        "rip={:016x} rflags={:016x} icount={}",
        cpu.rip,
        cpu.full_rflags(),
        cpu.icount
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_of_the_reset_states() {
        let mut cpu = CpuState::default();
        assert_eq!(mode(&cpu).bitness, 16);
        reset_protected_flat32(&mut cpu);
        let m = mode(&cpu);
        assert_eq!(
            (m.bitness, m.stack, m.cpl, m.paging, m.seg_bases),
            (32, 32, 0, false, false)
        );
        assert_eq!(cpu.full_rflags(), 2);
        reset_long_flat64(&mut cpu);
        // The FPU's initial control word masks every x87 exception.
        let masked = Mode {
            fp: Mode::LONG64_CPL0.fp | fp_mode::X87_MASKED,
            ..Mode::LONG64_CPL0
        };
        assert_eq!(mode(&cpu), masked);
        cpu.fx.fcw &= !1;
        assert_eq!(mode(&cpu), Mode::LONG64_CPL0, "invalid operation unmasked");
        cpu.fx.fcw |= 1;
        cpu.seg[seg::DS].base = 0x1000;
        assert!(!mode(&cpu).seg_bases, "bases are ignored in 64-bit mode");
        // Compatibility mode with a 16-bit stack and a based data segment.
        cpu.seg[seg::CS].attr = CODE32_ATTR;
        cpu.seg[seg::SS].attr = 0x93;
        cpu.cpl = 3;
        let m = mode(&cpu);
        assert_eq!((m.bitness, m.stack, m.cpl, m.seg_bases), (32, 16, 3, true));
    }

    #[test]
    fn code_is_fetched_at_cs_base_plus_eip_outside_64bit_mode() {
        let mut cpu = CpuState::default();
        reset_long_flat64(&mut cpu);
        cpu.seg[seg::CS].base = 0x7000;
        assert_eq!(
            code_linear(&cpu, 0x1_2345_6789),
            0x1_2345_6789,
            "64-bit: no base"
        );
        assert!(!mode(&cpu).cs_based);
        // Real mode: CS × 16 + IP.
        cpu.cr0 = 0;
        cpu.efer = 0;
        cpu.seg[seg::CS] = crate::system::far::real_mode_cs(0x06F0);
        assert_eq!(code_linear(&cpu, 0x120), 0x7020);
        let m = mode(&cpu);
        assert!(m.cs_based && m.seg_bases);
        assert_ne!(
            m.key(),
            Mode {
                cs_based: false,
                ..m
            }
            .key()
        );
        // Protected mode: the sum wraps at 4 GiB.
        reset_protected_flat32(&mut cpu);
        assert!(!mode(&cpu).cs_based);
        cpu.seg[seg::CS].base = 0xFFFF_F000;
        assert_eq!(code_linear(&cpu, 0x2000), 0x1000);
        assert!(mode(&cpu).cs_based);
    }

    #[test]
    fn linux_entry_states() {
        let mut cpu = CpuState::default();
        let gdt = DescTable {
            base: 0x500,
            limit: 31,
        };
        reset_linux(&mut cpu, gdt, Some(0x3_0000));
        let m = mode(&cpu);
        assert_eq!((m.bitness, m.cpl, m.paging), (64, 0, true));
        assert_eq!(
            (cpu.seg[seg::CS].selector, cpu.seg[seg::SS].selector),
            (0x10, 0x18)
        );
        assert_eq!((cpu.cr3, cpu.cr4, cpu.gdtr), (0x3_0000, cr::CR4_PAE, gdt));
        assert_ne!(cpu.cr0 & cr::CR0_PG, 0);
        assert_eq!(cpu.full_rflags(), 2);
        reset_linux(&mut cpu, gdt, None);
        let m = mode(&cpu);
        assert_eq!((m.bitness, m.paging, cpu.efer), (32, false, 0));
        assert_eq!(cpu.seg[seg::DS].selector, 0x18);
    }

    #[test]
    fn state_dump_names_the_system_state() {
        let mut cpu = CpuState::default();
        reset_long_flat64(&mut cpu);
        cpu.cr2 = 0xDEAD_0000;
        cpu.tr.selector = 0x28;
        let d = state_dump(&cpu);
        for want in [
            "rip=",
            "cs   sel=0008",
            "l=1",
            "tr   sel=0028",
            "cr2=00000000dead0000",
            "efer=0000000000000500",
            "cpl=0 mode=64-bit ia-32e",
            "gdtr base=",
        ] {
            assert!(d.contains(want), "{want} missing from\n{d}");
        }
    }
}
