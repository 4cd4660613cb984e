//! Differential tests against the host CPU (see `testsuite::diff`).
//!
//! - `random_cases`: 100,000 cases with a fixed seed plus 100,000 with an exploring seed
//!   (`POPEK_DIFF_SEED` if set, else one derived from the date, so CI explores a new corner
//!   every day and a failure names the seed that reproduces it), each run natively and in
//!   both engines. Debug builds run a quarter of that (the CI command uses `--release`);
//!   `POPEK_DIFF_CASES` overrides the per-seed count.
//! - `random_fp_cases`: the same for the floating-point and vector families (x87, MMX,
//!   SSE..SSE4.2, the state instructions) and CMPXCHG8B/16B: 100,000 cases with a fixed seed
//!   plus 100,000 with an exploring seed per engine (`POPEK_DIFF_FP_CASES` overrides the
//!   per-seed count). No form is left out: the last known mismatches (MIN/MAX of a value
//!   with itself under the JIT, a misaligned packed operation's MXCSR flags in the step
//!   interpreter) have regression tests in `runtime/tests/fp.rs` and `translator::interp`.
//! - `smoke_*`: a small deterministic run per instruction family (the FP ones on interp, jit
//!   and trap).
//! - Harness self-checks: known results for hand-written cases, #DE, landing detection (the
//!   FP harness checks and known-answer cases are in `diff_fp.rs`).

use runtime::{Engine, RunOutcome};
use testsuite::diff::case::Case;
use testsuite::diff::forms::Family;
use testsuite::diff::layout::{CODE_BASE, HOT_BASE, STACK_TOP};
use testsuite::diff::native::NativeStop;
use testsuite::diff::report::Verdict;
use testsuite::diff::{run, run_single, Options, Summary};
use translator::state::rflags;
use translator::Exception;

const ENGINES: [Engine; 2] = [Engine::Interp, Engine::Jit];
const FP_ENGINES: [Engine; 3] = [Engine::Interp, Engine::Jit, Engine::Trap];

/// The floating-point and vector families, and x86-64-v2's other newcomers.
const FP_FILTER: &str = "fp,cmpxchg8b,cmpxchg16b";
/// Every other form (`random_cases`: the same cases per seed as before the FP forms).
const INT_FILTER: &str = "int,-cmpxchg8b,-cmpxchg16b";

fn cases_per_seed() -> u64 {
    cases_from_env("POPEK_DIFF_CASES")
}

fn cases_from_env(var: &str) -> u64 {
    if let Some(n) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    if cfg!(debug_assertions) {
        25_000
    } else {
        100_000
    }
}

/// `POPEK_DIFF_SEED`, or a seed that changes once a day.
fn exploring_seed() -> u64 {
    if let Some(s) = std::env::var("POPEK_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return s;
    }
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    20_000 + days
}

/// Run `opts` and panic with the reports and the failure tables if anything failed.
fn run_and_check(opts: &Options) -> Summary {
    let mut log = Vec::new();
    let summary = run(opts, &mut log).expect("difftest run");
    for e in &summary.engines {
        println!(
            "seed {} filter {:?}: {} ({:.0} cases/s in the VM)",
            opts.seed,
            opts.filter,
            e.line(),
            e.rate()
        );
    }
    if !summary.all_passed() {
        let mut msg = String::from_utf8_lossy(&log).into_owned();
        for e in &summary.engines {
            msg.push_str(&e.failure_table());
        }
        for e in &summary.engines {
            msg.push_str(&e.line());
            msg.push('\n');
        }
        panic!("differential mismatches (seed {}):\n{msg}", opts.seed);
    }
    summary
}

#[test]
fn random_cases() {
    let n = cases_per_seed();
    for seed in [1, exploring_seed()] {
        let s = run_and_check(&Options {
            engines: ENGINES.to_vec(),
            cases: n,
            seed,
            // The integer forms it always ran (the FP ones have `random_fp_cases`).
            filter: Some(INT_FILTER.into()),
            max_reports: 3,
            ..Options::default()
        });
        assert_eq!(s.cases, n);
    }
}

/// See the module header: 200,000 FP cases per engine (interp, jit).
#[test]
fn random_fp_cases() {
    let n = cases_from_env("POPEK_DIFF_FP_CASES");
    for seed in [7, exploring_seed()] {
        for engine in [Engine::Interp, Engine::Jit] {
            let s = run_and_check(&Options {
                engines: vec![engine],
                cases: n,
                seed,
                filter: Some(FP_FILTER.to_string()),
                max_reports: 3,
                ..Options::default()
            });
            assert_eq!(s.cases, n);
        }
    }
}

fn smoke(family: Family) {
    let engines = if family.is_fp() {
        FP_ENGINES.to_vec()
    } else {
        ENGINES.to_vec()
    };
    let filter = family.name().to_string();
    run_and_check(&Options {
        engines,
        cases: 2_000,
        seed: 0x5A0E,
        filter: Some(filter),
        max_reports: 3,
        ..Options::default()
    });
}

#[test]
fn smoke_alu() {
    smoke(Family::Alu);
}
#[test]
fn smoke_flags() {
    smoke(Family::Flags);
}
#[test]
fn smoke_muldiv() {
    smoke(Family::MulDiv);
}
#[test]
fn smoke_shift() {
    smoke(Family::Shift);
}
#[test]
fn smoke_bits() {
    smoke(Family::Bits);
}
#[test]
fn smoke_data() {
    smoke(Family::Data);
}
#[test]
fn smoke_nop() {
    smoke(Family::Nop);
}
#[test]
fn smoke_stack() {
    smoke(Family::Stack);
}
#[test]
fn smoke_branch() {
    smoke(Family::Branch);
}
#[test]
fn smoke_string() {
    smoke(Family::String);
}
#[test]
fn smoke_x87() {
    smoke(Family::X87);
}
#[test]
fn smoke_mmx() {
    smoke(Family::Mmx);
}
#[test]
fn smoke_sse() {
    smoke(Family::Sse);
}
#[test]
fn smoke_sseint() {
    smoke(Family::SseInt);
}
#[test]
fn smoke_ssefp() {
    smoke(Family::SseFp);
}
#[test]
fn smoke_sseconv() {
    smoke(Family::SseConv);
}
#[test]
fn smoke_ssestr() {
    smoke(Family::SseStr);
}
#[test]
fn smoke_fpstate() {
    smoke(Family::FpState);
}

/// Registers with RSP in the stack area and everything else recognizable.
fn base_regs() -> [u64; 16] {
    let mut r = [0u64; 16];
    for (i, v) in r.iter_mut().enumerate() {
        *v = 0x1111_1111_1111_1111 * i as u64;
    }
    r[4] = STACK_TOP - 0x40;
    r
}

fn single(case: &Case) -> testsuite::diff::SingleRun {
    let run = run_single(case, &ENGINES).expect("run");
    for (e, _, v) in &run.guests {
        assert!(matches!(v, Verdict::Pass), "{e:?}: {v:?}");
    }
    run
}

#[test]
fn harness_native_add_is_the_host_add() {
    // add rax, rbx with 0x7fffffffffffffff + 1: OF SF AF PF set, CF ZF clear.
    let mut regs = base_regs();
    regs[0] = 0x7FFF_FFFF_FFFF_FFFF;
    regs[3] = 1;
    let ip = CODE_BASE + 0x400;
    let case = Case::custom(&[0x48, 0x01, 0xD8], ip, regs, 0, vec![], &[]).unwrap();
    let run = single(&case);
    assert_eq!(run.native.stop, NativeStop::Landed(ip + 3));
    assert_eq!(run.native.regs.gpr[0], 0x8000_0000_0000_0000);
    let f = run.native.regs.rflags;
    assert_eq!(
        f & rflags::ARITH,
        rflags::OF | rflags::SF | rflags::AF | rflags::PF
    );
    assert_eq!(run.native.regs.gpr[1..], regs[1..]);
}

#[test]
fn harness_memory_operands_hit_the_same_address() {
    // mov qword [rip + x], rax ; x is the first qword of the hot page.
    let ip = CODE_BASE + 0x100;
    let next = ip + 7;
    let disp = (HOT_BASE as i64 - next as i64) as i32;
    let mut bytes = vec![0x48, 0x89, 0x05];
    bytes.extend_from_slice(&disp.to_le_bytes());
    let mut regs = base_regs();
    regs[0] = 0x0123_4567_89AB_CDEF;
    let case = Case::custom(&bytes, ip, regs, 0, vec![], &[]).unwrap();
    single(&case);
}

#[test]
fn harness_branch_targets_and_unexpected_landings() {
    // jmp rel32 to a declared target (a landing pad) and to an undeclared one (int3 filler):
    // both report the target as the next RIP.
    let ip = CODE_BASE + 0x200;
    let target = CODE_BASE + 0x1234;
    let rel = (target as i64 - (ip as i64 + 5)) as i32;
    let mut bytes = vec![0xE9];
    bytes.extend_from_slice(&rel.to_le_bytes());
    for declared in [true, false] {
        let targets: &[u64] = if declared { &[target] } else { &[] };
        let case = Case::custom(&bytes, ip, base_regs(), 0, vec![], targets).unwrap();
        let run = single(&case);
        assert_eq!(
            run.native.stop,
            NativeStop::Landed(target),
            "declared {declared}"
        );
    }
}

#[test]
fn divide_error_is_precise() {
    // div rcx with rcx = 0, and idiv ecx with INT_MIN / -1: #DE at the instruction, with every
    // register and flag unchanged, natively (SIGFPE) and in both engines.
    let ip = CODE_BASE + 0x300;
    let mut zero = base_regs();
    zero[1] = 0;
    let mut overflow = base_regs();
    overflow[0] = 0x8000_0000;
    overflow[2] = 0xFFFF_FFFF;
    overflow[1] = 0xFFFF_FFFF;
    let flags = rflags::CF | rflags::ZF | rflags::OF;
    for (bytes, regs) in [
        (&[0x48, 0xF7, 0xF1][..], zero),
        (&[0xF7, 0xF9][..], overflow),
    ] {
        let case = Case::custom(bytes, ip, regs, flags, vec![], &[]).unwrap();
        let run = single(&case);
        assert!(
            matches!(run.native.stop, NativeStop::Signal { signo: libc::SIGFPE, pc, .. } if pc == ip),
            "{:?}",
            run.native.stop
        );
        assert_eq!(run.native.regs.gpr, regs);
        for (e, g, _) in &run.guests {
            assert_eq!(
                g.outcome,
                RunOutcome::Exception {
                    exc: Exception::DivideError,
                    rip: ip
                },
                "{e:?}"
            );
            assert_eq!(g.gpr, regs, "{e:?}");
            assert_eq!(g.rflags & rflags::ARITH, flags, "{e:?}");
        }
    }
}

/// A hand-written case: what it is, its bytes, registers set on top of `base_regs`, flags.
type RuleCase<'a> = (&'a str, &'a [u8], &'a [(usize, u64)], u64);

/// One hand-written case per vendor-specific rule of the undefined flags (and REP's 32-bit
/// count registers), each chosen so that Intel and AMD differ: the engines, translating for
/// the host's vendor, must give exactly what the host gives. (The translator's unit tests
/// hold both vendors' expected values.)
#[test]
fn vendor_rules_hand_written_cases() {
    use rflags::{AF, CF, OF, PF, SF, ZF};
    let (rax, rcx, rdx, rbx, rsi, rdi) = (0, 1, 2, 3, 6, 7);
    let a32 = |v: u64| 0xdead_beef_0000_0000 | v;
    let cases: &[RuleCase<'_>] = &[
        ("shl al, cl", &[0xd2, 0xe0], &[(rax, 0x4d), (rcx, 9)], 0),
        (
            "shr ax, cl",
            &[0x66, 0xd3, 0xe8],
            &[(rax, 0x8000), (rcx, 14)],
            AF,
        ),
        (
            "sar rax, 2",
            &[0x48, 0xc1, 0xf8, 0x02],
            &[(rax, 8u64.wrapping_neg())],
            0,
        ),
        (
            "rol ebx, cl",
            &[0xd3, 0xc3],
            &[(rbx, 0x4000_0000), (rcx, 3)],
            0,
        ),
        ("rol ebx, 5", &[0xc1, 0xc3, 0x05], &[(rbx, 0x4000_0000)], OF),
        ("rol [rbx], 5", &[0xc1, 0x03, 0x05], &[(rbx, HOT_BASE)], OF),
        ("ror dx, 3", &[0x66, 0xc1, 0xca, 0x03], &[(rdx, 1)], OF),
        ("rcl al, cl", &[0xd2, 0xd0], &[(rax, 0x80), (rcx, 9)], 0),
        (
            "rcr ax, cl",
            &[0x66, 0xd3, 0xd8],
            &[(rax, 0x4000), (rcx, 17)],
            0,
        ),
        ("rcr rax, 2", &[0x48, 0xc1, 0xd8, 0x02], &[(rax, 1)], CF),
        (
            "shld eax, edx, 5",
            &[0x0f, 0xa4, 0xd0, 0x05],
            &[(rax, 0x4000_0000), (rdx, 0)],
            0,
        ),
        (
            "shrd eax, edx, 3",
            &[0x0f, 0xac, 0xd0, 0x03],
            &[(rax, 0x8000_0000), (rdx, 0)],
            0,
        ),
        (
            "shld ax, dx, cl",
            &[0x66, 0x0f, 0xa5, 0xd0],
            &[(rax, 0x1234), (rdx, 0xabcd), (rcx, 20)],
            0,
        ),
        (
            "shrd ax, dx, cl",
            &[0x66, 0x0f, 0xad, 0xd0],
            &[(rax, 0x1234), (rdx, 0xabcd), (rcx, 20)],
            0,
        ),
        (
            "mul bl",
            &[0xf6, 0xe3],
            &[(rax, 0x80), (rbx, 2)],
            ZF | SF | AF,
        ),
        (
            "imul eax, ebx",
            &[0x0f, 0xaf, 0xc3],
            &[(rax, 0xffff_ffff), (rbx, 1)],
            ZF | AF,
        ),
        (
            "imul cx, bx, 100",
            &[0x66, 0x6b, 0xcb, 0x64],
            &[(rbx, 0)],
            CF | OF,
        ),
        (
            "div bx",
            &[0x66, 0xf7, 0xf3],
            &[(rax, 100), (rdx, 0), (rbx, 7)],
            ZF | PF | SF,
        ),
        ("idiv cl", &[0xf6, 0xf9], &[(rax, 0xff9c), (rcx, 7)], 0),
        (
            "lzcnt eax, ecx",
            &[0xf3, 0x0f, 0xbd, 0xc1],
            &[(rcx, 0x10)],
            OF,
        ),
        (
            "tzcnt rax, rcx",
            &[0xf3, 0x48, 0x0f, 0xbc, 0xc1],
            &[(rcx, 0)],
            OF | ZF,
        ),
        (
            "rep movsb a32, ecx = 0",
            &[0x67, 0xf3, 0xa4],
            &[
                (rcx, a32(0)),
                (rsi, a32(HOT_BASE)),
                (rdi, a32(HOT_BASE + 0x100)),
            ],
            0,
        ),
        (
            "rep stosq a32, ecx = 0",
            &[0x67, 0xf3, 0x48, 0xab],
            &[
                (rcx, a32(0)),
                (rsi, a32(HOT_BASE)),
                (rdi, a32(HOT_BASE + 0x100)),
            ],
            0,
        ),
        (
            "rep lodsb a32, ecx = 0",
            &[0x67, 0xf3, 0xac],
            &[
                (rcx, a32(0)),
                (rsi, a32(HOT_BASE)),
                (rdi, a32(HOT_BASE + 0x100)),
            ],
            0,
        ),
        (
            "repe cmpsb a32, ecx = 0",
            &[0x67, 0xf3, 0xa6],
            &[
                (rcx, a32(0)),
                (rsi, a32(HOT_BASE)),
                (rdi, a32(HOT_BASE + 0x100)),
            ],
            ZF,
        ),
        (
            "repne scasb a32, ecx = 0",
            &[0x67, 0xf2, 0xae],
            &[
                (rcx, a32(0)),
                (rsi, a32(HOT_BASE)),
                (rdi, a32(HOT_BASE + 0x100)),
            ],
            0,
        ),
    ];
    let ip = CODE_BASE + 0x500;
    for &(what, bytes, set, flags) in cases {
        let mut regs = base_regs();
        for &(r, v) in set {
            regs[r] = v;
        }
        let mem = vec![(HOT_BASE, vec![0x5a; 8])];
        let case = Case::custom(bytes, ip, regs, flags, mem, &[])
            .unwrap_or_else(|| panic!("{what}: not one instruction"));
        let run = run_single(&case, &ENGINES).expect("run");
        for (e, _, v) in &run.guests {
            assert!(matches!(v, Verdict::Pass), "{what}: {e:?}: {v:?}");
        }
    }
}
