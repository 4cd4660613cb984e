//! Comparing a guest run with the native run of the same case, and the mismatch report.
//!
//! What must agree: where control went (the native landing address and the guest's halt
//! address, or a native fault and the guest exception it corresponds to: the vector from the
//! signal context's trap number, so #DE, #MF and #XM (all SIGFPE) are told apart, and #GP's
//! error code), all 16 GPRs, the arithmetic flags and DF (undefined flags included: the
//! requirement is to match the host), the x87/MMX/SSE state (see [`super::fpreport`]), and
//! every byte of the compared data + stack area.

use std::fmt::Write as _;

use iced_x86::{Formatter, IntelFormatter};
use runtime::{Engine, RunOutcome};
use translator::state::rflags;
use translator::Exception;

use super::case::{Case, COMPARED_FLAGS};
use super::fpreport::{compare_fp, fp_state_text};
use super::guest::GuestResult;
use super::layout::MEM_BASE;
use super::native::{signal_name, NativeResult, NativeStop};

/// The verdict on one case for one engine.
#[derive(Clone, Debug)]
pub enum Verdict {
    Pass,
    /// The engine reported the instruction unsupported.
    Unsupported(String),
    /// The engine disagreed with the host; the lines say how.
    Mismatch(Vec<String>),
}

const NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Exception vectors of the signal context's trap number.
mod vector {
    pub const DE: u64 = 0;
    pub const UD: u64 = 6;
    pub const NM: u64 = 7;
    pub const GP: u64 = 13;
    pub const MF: u64 = 16;
    pub const AC: u64 = 17;
    pub const XM: u64 = 19;
}

/// The guest outcome a native stop corresponds to.
fn expected_outcome(native: &NativeStop) -> Result<u64, (Exception, u64)> {
    match *native {
        NativeStop::Landed(a) => Ok(a),
        NativeStop::Signal {
            signo,
            pc,
            addr,
            trapno,
            err,
            ..
        } => Err((
            match (signo, trapno) {
                (libc::SIGFPE, vector::MF) => Exception::FloatingPoint,
                (libc::SIGFPE, vector::XM) => Exception::SimdFloatingPoint,
                (libc::SIGFPE, _) => Exception::DivideError,
                (libc::SIGILL, _) => Exception::InvalidOpcode,
                (_, vector::NM) => Exception::DeviceNotAvailable,
                (libc::SIGSEGV | libc::SIGBUS, vector::GP) => {
                    Exception::GeneralProtection(err as u16)
                }
                (libc::SIGBUS, vector::AC) => Exception::AlignmentCheck,
                _ => Exception::PageFault { addr, code: 0 },
            },
            pc,
        )),
    }
}

/// Whether a native signal is one a case may legitimately raise (not a harness or
/// case-generation bug such as a page fault outside the compared area).
fn expected_signal(signo: i32, trapno: u64) -> bool {
    match signo {
        libc::SIGFPE | libc::SIGILL => true,
        libc::SIGSEGV | libc::SIGBUS => trapno == vector::GP,
        _ => trapno == vector::UD || trapno == vector::DE,
    }
}

/// Compare a guest run with the native run of the same case.
pub fn compare(
    case: &Case,
    native: &NativeResult,
    native_mem: &[u8],
    guest: &GuestResult,
    guest_mem: &[u8],
) -> Verdict {
    let mut diffs = Vec::new();
    match (&guest.outcome, expected_outcome(&native.stop)) {
        (RunOutcome::Unsupported { what, .. }, _) => return Verdict::Unsupported(what.clone()),
        (RunOutcome::Halted, Ok(landed)) => {
            if guest.rip.wrapping_sub(1) != landed {
                diffs.push(format!(
                    "next rip: native {landed:#x}, guest {:#x}",
                    guest.rip.wrapping_sub(1)
                ));
            }
        }
        (RunOutcome::Exception { exc, rip }, Err((want, pc))) => {
            let same = match want {
                Exception::PageFault { .. } => {
                    std::mem::discriminant(exc) == std::mem::discriminant(&want)
                }
                _ => *exc == want,
            };
            if !same || *rip != pc {
                diffs.push(format!(
                    "outcome: native {} at {pc:#x}, guest {exc} at {rip:#x}",
                    native_stop_text(&native.stop)
                ));
            }
        }
        (g, _) => diffs.push(format!(
            "outcome: native {}, guest {}",
            native_stop_text(&native.stop),
            guest_outcome_text(g, guest.rip)
        )),
    }
    if let NativeStop::Signal { signo, trapno, .. } = native.stop {
        if !expected_signal(signo, trapno) {
            diffs.push(format!(
                "harness: the native run raised {} (a case-generation bug)",
                signal_name(signo)
            ));
        }
    }
    for (name, (n, g)) in NAMES.iter().zip(native.regs.gpr.iter().zip(&guest.gpr)) {
        if n != g {
            diffs.push(format!("{name}: native {n:#018x}, guest {g:#018x}"));
        }
    }
    let (nf, gf) = (
        native.regs.rflags & COMPARED_FLAGS,
        guest.rflags & COMPARED_FLAGS,
    );
    if nf != gf {
        diffs.push(format!(
            "flags: native {}, guest {} (differ: {})",
            flag_text(nf),
            flag_text(gf),
            flag_text(nf ^ gf)
        ));
    }
    compare_fp(&case.fx, &native.fx, &guest.fx, &mut diffs);
    for (off, len) in byte_ranges(native_mem, guest_mem) {
        let show = len.min(32);
        diffs.push(format!(
            "memory {:#x}..{:#x}: native {}, guest {}{}",
            MEM_BASE + off as u64,
            MEM_BASE + (off + len) as u64,
            hex(&native_mem[off..off + show]),
            hex(&guest_mem[off..off + show]),
            if len > show { " ..." } else { "" }
        ));
    }
    if diffs.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Mismatch(diffs)
    }
}

/// Maximal ranges of differing bytes (gaps under 8 bytes merged).
fn byte_ranges(a: &[u8], b: &[u8]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    if a == b {
        return out;
    }
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            match out.last_mut() {
                Some((o, l)) if *o + *l + 8 >= i => *l = i + 1 - *o,
                _ => out.push((i, 1)),
            }
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `CF PF ZF ...` for the set bits of `f` among the compared flags.
pub fn flag_text(f: u64) -> String {
    let names = [
        (rflags::CF, "CF"),
        (rflags::PF, "PF"),
        (rflags::AF, "AF"),
        (rflags::ZF, "ZF"),
        (rflags::SF, "SF"),
        (rflags::OF, "OF"),
        (rflags::DF, "DF"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        "-".into()
    } else {
        set.join(" ")
    }
}

fn native_stop_text(s: &NativeStop) -> String {
    match *s {
        NativeStop::Landed(a) => format!("continued at {a:#x}"),
        NativeStop::Signal {
            signo,
            code,
            pc,
            addr,
            trapno,
            err,
        } => format!(
            "{} (si_code {code}, trap {trapno}, error code {err:#x}) at {pc:#x}, fault \
             address {addr:#x}",
            signal_name(signo)
        ),
    }
}

fn guest_outcome_text(o: &RunOutcome, rip: u64) -> String {
    match o {
        RunOutcome::Halted => format!("continued at {:#x}", rip.wrapping_sub(1)),
        other => other.to_string(),
    }
}

/// The host CPU: vendor, family/model/stepping and brand string (the reference is this CPU,
/// and undefined flags differ between vendors).
pub fn host_cpu() -> String {
    use std::arch::x86_64::__cpuid;
    let l0 = __cpuid(0);
    let mut vendor = Vec::new();
    for r in [l0.ebx, l0.edx, l0.ecx] {
        vendor.extend_from_slice(&r.to_le_bytes());
    }
    let l1 = __cpuid(1);
    let base_family = (l1.eax >> 8) & 0xF;
    let family = if base_family == 0xF {
        base_family + ((l1.eax >> 20) & 0xFF)
    } else {
        base_family
    };
    let model = ((l1.eax >> 4) & 0xF) | (((l1.eax >> 16) & 0xF) << 4);
    let mut brand = Vec::new();
    if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
        for leaf in 0x8000_0002..=0x8000_0004u32 {
            let r = __cpuid(leaf);
            for v in [r.eax, r.ebx, r.ecx, r.edx] {
                brand.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    format!(
        "{} family {family:#x} model {model:#x} stepping {} ({})",
        String::from_utf8_lossy(&vendor),
        l1.eax & 0xF,
        String::from_utf8_lossy(&brand)
            .trim_matches(char::from(0))
            .trim()
    )
}

/// The instruction in Intel syntax.
pub fn disassemble(case: &Case) -> String {
    let mut f = IntelFormatter::new();
    f.options_mut().set_space_after_operand_separator(true);
    let mut s = String::new();
    f.format(&case.insn, &mut s);
    s
}

fn reg_lines(out: &mut String, indent: &str, gpr: &[u64; 16]) {
    for row in 0..4 {
        out.push_str(indent);
        for col in 0..4 {
            let i = row * 4 + col;
            let _ = write!(out, "{:>3}={:016x} ", NAMES[i], gpr[i]);
        }
        out.push('\n');
    }
}

/// What a report needs to know about the run.
#[derive(Clone, Copy, Debug)]
pub struct ReportContext<'a> {
    pub engine: Engine,
    pub seed: u64,
    pub filter: Option<&'a str>,
    pub variants: u64,
}

/// The command line that reruns exactly this case.
pub fn repro_command(ctx: &ReportContext, index: u64) -> String {
    let filter = ctx
        .filter
        .map_or(String::new(), |f| format!(" --filter {f}"));
    format!(
        "cargo run --release -p testsuite --bin difftest -- --engine {} --seed {}{filter} \
         --variants {} --case {index}",
        ctx.engine.name(),
        ctx.seed,
        ctx.variants
    )
}

/// The full report of one case: instruction, inputs, both outputs, the differences and the
/// command reproducing it.
pub fn case_report(
    ctx: &ReportContext,
    case: &Case,
    native: &NativeResult,
    guest: &GuestResult,
    diffs: &[String],
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "=== {}: engine {} case {} (seed {}) ===",
        if diffs.first().is_some_and(|d| d.ends_with("PASS")) {
            "PASS"
        } else {
            "MISMATCH"
        },
        ctx.engine.name(),
        case.index,
        ctx.seed
    );
    let _ = writeln!(s, "host: {}", host_cpu());
    let _ = writeln!(
        s,
        "instruction: {}    [{}]  form {:?}, at {:#x}",
        disassemble(case),
        hex(&case.bytes),
        case.form.code,
        case.ip
    );
    s.push_str("input:\n");
    reg_lines(&mut s, "  ", &case.regs);
    let _ = writeln!(s, "  flags: {}", flag_text(case.rflags));
    let fp = case.form.family.is_fp() || case.fx != native.fx || native.fx != guest.fx;
    if fp {
        s.push_str(&fp_state_text("  ", &case.fx));
    }
    for (addr, bytes) in &case.mem {
        let _ = writeln!(s, "  memory {addr:#x}: {}", hex(bytes));
    }
    let _ = writeln!(s, "native: {}", native_stop_text(&native.stop));
    reg_lines(&mut s, "  ", &native.regs.gpr);
    let _ = writeln!(
        s,
        "  flags: {}",
        flag_text(native.regs.rflags & COMPARED_FLAGS)
    );
    if fp {
        s.push_str(&fp_state_text("  ", &native.fx));
    }
    let _ = writeln!(
        s,
        "guest ({}): {}",
        ctx.engine.name(),
        guest_outcome_text(&guest.outcome, guest.rip)
    );
    reg_lines(&mut s, "  ", &guest.gpr);
    let _ = writeln!(s, "  flags: {}", flag_text(guest.rflags & COMPARED_FLAGS));
    if fp {
        s.push_str(&fp_state_text("  ", &guest.fx));
    }
    s.push_str("differences:\n");
    for d in diffs {
        let _ = writeln!(s, "  {d}");
    }
    let _ = writeln!(s, "reproduce: {}", repro_command(ctx, case.index));
    if !case.index.is_multiple_of(ctx.variants.max(1)) {
        let first = case.index - case.index % ctx.variants;
        let _ = writeln!(
            s,
            "  (with the group's translation cached first: --first {first} --cases {})",
            case.index - first + 1
        );
    }
    s
}
