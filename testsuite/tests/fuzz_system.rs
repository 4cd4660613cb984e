//! Hostile system-mode guests: random bytes run at CPL 0 in 64-bit mode with 4-level paging
//! on, under the DBT (every block, twice) and under the trap and interp engines (a share).
//!
//! The guest is a small hostile machine image, rebuilt for every run from a pristine copy:
//! - a GDT with the usual flat descriptors, a 64-bit TSS (RSP0, IST1) and eight descriptors of
//!   random bytes; an IDT whose gates lead to one stub per vector that writes the vector to
//!   the isa-debug-exit port, with every 29th gate random bytes;
//! - page tables identity-mapping the first 2 MiB with 4 KiB pages, an alias of it in the
//!   upper half, a 2 MiB alias, pages onto the I/O APIC and local APIC, and random entries:
//!   the scratch pages get random permission bits, reserved bits and frames (some beyond
//!   RAM), and some upper-level entries are random bytes;
//! - CR0.WP, CR4.SMEP and CR4.SMAP random per block; RAM outside the tables and stubs holds
//!   `int3`, so control that escapes ends in the #BP stub.
//!
//! Registers point into the scratch area, the page tables, the descriptor tables, the code,
//! the upper-half alias, the APIC pages, or anywhere. Half the blocks are uniform random
//! bytes; half draw a quarter of their bytes from opcodes that reach the sensitive-instruction
//! table (0F xx, INT, IRET, IN/OUT, CLI/STI, POPF, HLT, MOV Sreg, far transfers) so the
//! hypercall handlers see nonsense operands, not just #UD.
//!
//! Asserted: no host panic or crash; no run ends in `InternalError`; resident memory stays
//! bounded; the DBT is deterministic (two runs of a block from the same state agree on
//! outcome, registers, control registers, flags and RAM); and the run mix is not vacuous
//! (page faults, #GP, triple faults and at least 20 hypercall kinds occur). Agreement between
//! engines is counted and printed. Runs that observe host time or state earlier blocks left
//! in the devices (RDTSC/RDTSCP/RDPMC, RDMSR, port or MMIO reads, an interrupt) are not
//! compared. A watchdog stops a run after 250 ms of host time (a guest can halt with every
//! route that could wake it closed only in ways the platform does not model); such runs count
//! as `stopped` and are not compared either.
//!
//! Environment: `POPEK_FUZZ_BLOCKS` (count), `POPEK_FUZZ_FIRST` (first block, to replay one),
//! `POPEK_FUZZ_PROGRESS=N` (a progress line every N blocks), `POPEK_FUZZ_CODE=hex` (run the
//! blocks' states with this code instead, to cut a failure down).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runtime::{Engine, RunOutcome, StopHandle, Vm};
use testsuite::diff::rng::Rng;
use testsuite::fuzzing::{env_u64, hex, outside_observations, resident_mib, vm_with};
use translator::state::{cr, rflags, seg, DescTable, Segment};
use translator::CpuState;

const RAM: u64 = 2 << 20;
const LIMIT: u64 = 2_000;

const GDT: u64 = 0x1000;
const GDT_LIMIT: u64 = 0x7F;
const IDT: u64 = 0x2000;
const TSS: u64 = 0x3000;
const STUBS: u64 = 0x4000;
const PML4: u64 = 0x10000;
const PDPT: u64 = 0x11000;
const PD: u64 = 0x12000;
const PT: u64 = 0x13000;
const STACK_TOP: u64 = 0x38000;
const IST1_TOP: u64 = 0x3C000;
const SCRATCH: u64 = 0x40000;
const SCRATCH_PAGES: u64 = 16;
const CODE: u64 = 0x80000;
const CODE_LEN: u64 = 0x1000;
/// Where PML4[256] puts the upper-half alias of the low 2 MiB.
const HIGH: u64 = 0xFFFF_8000_0000_0000;
/// Virtual pages mapped onto the I/O APIC and the local APIC.
const IOAPIC_VIRT: u64 = 0x1FE000;
const LAPIC_VIRT: u64 = 0x1FF000;

const SEL_CODE64: u16 = 0x08;
const SEL_DATA: u16 = 0x10;
const SEL_TSS: u16 = 0x30;

const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;
const PCD: u64 = 1 << 4;
const PS: u64 = 1 << 7;
const G: u64 = 1 << 8;
const NX: u64 = 1 << 63;

fn put(ram: &mut [u8], at: u64, bytes: &[u8]) {
    ram[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
}

fn put64(ram: &mut [u8], at: u64, v: u64) {
    put(ram, at, &v.to_le_bytes());
}

/// The pristine RAM image (see the module documentation).
fn pristine(seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut ram = vec![0xCCu8; RAM as usize];
    // GDT: null, code64, data, user code32, user data, user code64, TSS (16 bytes), code32,
    // then random descriptors up to the limit.
    for (i, d) in [
        0,
        0x00AF_9B00_0000_FFFF,
        0x00CF_9300_0000_FFFF,
        0x00CF_FB00_0000_FFFF,
        0x00CF_F300_0000_FFFF,
        0x00AF_FB00_0000_FFFF,
    ]
    .into_iter()
    .enumerate()
    {
        put64(&mut ram, GDT + 8 * i as u64, d);
    }
    let tss_low = 0x67 | (TSS & 0xFF_FFFF) << 16 | 0x8B << 40 | (TSS >> 24 & 0xFF) << 56;
    put64(&mut ram, GDT + u64::from(SEL_TSS), tss_low);
    put64(&mut ram, GDT + u64::from(SEL_TSS) + 8, TSS >> 32);
    put64(&mut ram, GDT + 0x40, 0x00CF_9B00_0000_FFFF);
    r.fill(&mut ram[(GDT + 0x48) as usize..=(GDT + GDT_LIMIT) as usize]);
    // IDT: every vector to its stub; #NMI, #DF and #MC on IST1; some gates random.
    for v in 0..256u64 {
        let at = IDT + 16 * v;
        if v % 29 == 5 {
            r.fill(&mut ram[at as usize..at as usize + 16]);
            continue;
        }
        let target = STUBS + 16 * v;
        let ist = u64::from(matches!(v, 2 | 8 | 18));
        let low = (target & 0xFFFF)
            | u64::from(SEL_CODE64) << 16
            | ist << 32
            | 0x8E << 40
            | (target >> 16 & 0xFFFF) << 48;
        put64(&mut ram, at, low);
        put64(&mut ram, at + 8, target >> 32);
        // mov eax, v; out 0xF4, eax; jmp $
        let stub = [0xB8, v as u8, 0, 0, 0, 0xE7, 0xF4, 0xEB, 0xFE];
        put(&mut ram, target, &stub);
    }
    ram[TSS as usize..(TSS + 0x68) as usize].fill(0);
    put64(&mut ram, TSS + 4, STACK_TOP);
    put64(&mut ram, TSS + 0x24, IST1_TOP);
    // Paging structures.
    for p in [PML4, PDPT, PD, PT] {
        ram[p as usize..(p + 0x1000) as usize].fill(0);
    }
    put64(&mut ram, PML4, PDPT | P | RW);
    put64(&mut ram, PML4 + 8 * 256, PDPT | P | RW);
    for i in 1..8 {
        // Random upper-level entries: mostly non-present nonsense, some present ones pointing
        // at scratch (read as a table) or beyond RAM.
        let e = match r.below(3) {
            0 => r.next_u64(),
            1 => (SCRATCH + r.below(SCRATCH_PAGES) * 0x1000) | P | RW | (r.next_u64() & 0xE),
            _ => r.next_u64() & !0xFFF | P,
        };
        put64(&mut ram, PML4 + 8 * i, e);
    }
    put64(&mut ram, PDPT, PD | P | RW);
    put64(&mut ram, PDPT + 8, P | RW | PS); // a 1 GiB page at 1 GiB: physical 0, mostly beyond RAM
    put64(&mut ram, PDPT + 16, r.next_u64());
    put64(&mut ram, PD, PT | P | RW);
    put64(&mut ram, PD + 8, P | RW | PS); // 2 MiB at 2 MiB: an alias of RAM
    put64(&mut ram, PD + 16, r.next_u64() | PS);
    for page in 0..512u64 {
        let phys = page * 0x1000;
        let e = if page == 0 {
            0 // null pointers fault
        } else if (SCRATCH >> 12..(SCRATCH >> 12) + SCRATCH_PAGES).contains(&page) {
            let frame = match r.below(20) {
                0..=14 => phys,
                15..=18 => r.below(RAM >> 12) << 12,
                _ => r.below(1 << 40) << 12,
            };
            let mut e = frame | P | RW;
            for (bit, percent) in [(P, 10), (RW, 30), (US, 30), (NX, 30), (G, 20)] {
                if r.chance(percent) {
                    e ^= bit;
                }
            }
            if r.chance(5) {
                e |= 1 << (52 + r.below(11)); // a reserved bit (or NX-adjacent AVL)
            }
            e
        } else if page == IOAPIC_VIRT >> 12 {
            0xFEC0_0000 | P | RW | PCD
        } else if page == LAPIC_VIRT >> 12 {
            0xFEE0_0000 | P | RW | PCD
        } else {
            phys | P | RW | G
        };
        put64(&mut ram, PT + 8 * page, e);
    }
    r.fill(&mut ram[SCRATCH as usize..(SCRATCH + SCRATCH_PAGES * 0x1000) as usize]);
    ram
}

/// The CPU state every block starts from (before its random registers): 64-bit mode, CPL 0,
/// 4-level paging, the image's GDT, IDT and TSS loaded.
fn base_cpu(vm: &Vm) -> CpuState {
    let mut cpu = vm.cpu().clone();
    cpu.cr0 = cr::CR0_PE | cr::CR0_ET | cr::CR0_NE | cr::CR0_PG;
    cpu.cr3 = PML4;
    cpu.cr4 = cr::CR4_PAE | cr::CR4_PGE | cr::CR4_OSFXSR;
    cpu.efer = cr::EFER_SCE | cr::EFER_LME | cr::EFER_LMA | cr::EFER_NXE;
    cpu.cpl = 0;
    for (i, s) in cpu.seg.iter_mut().enumerate() {
        *s = if i == seg::CS {
            Segment::flat(SEL_CODE64, 0xA09B)
        } else {
            Segment::flat(SEL_DATA, 0xC093)
        };
    }
    cpu.gdtr = DescTable {
        base: GDT,
        limit: GDT_LIMIT,
    };
    cpu.idtr = DescTable {
        base: IDT,
        limit: 0xFFF,
    };
    cpu.tr = Segment {
        selector: SEL_TSS,
        attr: 0x8B,
        limit: 0x67,
        base: TSS,
    };
    cpu
}

/// Opcodes (with their second bytes where one byte says little) that reach the sensitive
/// table or change control in system ways.
const INTERESTING: &[&[u8]] = &[
    &[0x0F, 0x01],
    &[0x0F, 0x00],
    &[0x0F, 0x20],
    &[0x0F, 0x22],
    &[0x0F, 0x21],
    &[0x0F, 0x23],
    &[0x0F, 0x30],
    &[0x0F, 0x32],
    &[0x0F, 0x31],
    &[0x0F, 0x33],
    &[0x0F, 0x05],
    &[0x0F, 0x07],
    &[0x0F, 0x34],
    &[0x0F, 0x35],
    &[0x0F, 0x06],
    &[0x0F, 0x08],
    &[0x0F, 0x09],
    &[0x0F, 0xA2],
    &[0x0F, 0x0B],
    &[0x48, 0xCF],
    &[0xCF],
    &[0xCD],
    &[0xCC],
    &[0xCE],
    &[0xF1],
    &[0xE4],
    &[0xE5],
    &[0xE6],
    &[0xE7],
    &[0xEC],
    &[0xED],
    &[0xEE],
    &[0xEF],
    &[0x6C],
    &[0x6D],
    &[0x6E],
    &[0x6F],
    &[0xF3, 0x6E],
    &[0xFA],
    &[0xFB],
    &[0x9C],
    &[0x9D],
    &[0xF4],
    &[0x8E],
    &[0x8C],
    &[0xCA],
    &[0xCB],
    &[0x48, 0xCB],
    &[0xFF],
    &[0x0F, 0xB2],
    &[0x0F, 0xB4],
    &[0x0F, 0xB5],
];

struct Block {
    code: Vec<u8>,
    rip: u64,
    gpr: [u64; 16],
    rflags: u64,
    cr0_wp: bool,
    cr4: u64,
}

fn random_block(seed: u64, i: u64) -> Block {
    let mut r = Rng::for_case(seed, i);
    let len = 4 + r.below(40) as usize;
    let mut code = Vec::with_capacity(len + 2);
    let biased = r.chance(50);
    while code.len() < len {
        if biased && r.chance(25) {
            code.extend_from_slice(r.pick(INTERESTING));
        } else {
            code.push(r.next_u64() as u8);
        }
    }
    let off = r.below(CODE_LEN - code.len() as u64);
    let rip = if r.chance(20) { HIGH } else { 0 } + CODE + off;
    let mut gpr = [0u64; 16];
    for (n, g) in gpr.iter_mut().enumerate() {
        if n == 1 && r.chance(75) {
            *g = r.below(64); // RCX: short REP loops
            continue;
        }
        if n == 4 {
            // RSP: mostly a usable stack, sometimes anything.
            *g = match r.below(10) {
                0..=6 => STACK_TOP - 8 * r.below(512),
                7 => SCRATCH + r.below(SCRATCH_PAGES * 0x1000),
                _ => r.next_u64(),
            };
            continue;
        }
        *g = match r.below(16) {
            0..=4 => SCRATCH + r.below(SCRATCH_PAGES * 0x1000),
            5 => PML4 + r.below(0x4000),
            6 => GDT + r.below(0x4000), // GDT, IDT, TSS, stubs
            7 => rip + r.below(64),
            8 => HIGH + r.below(RAM),
            9 => IOAPIC_VIRT + r.below(0x2000),
            10 => r.below(RAM),
            11 => u64::from(r.pick(&[0x20u16, 0x21, 0x40, 0x43, 0x61, 0x70, 0x71, 0xA1, 0x3F8])),
            _ => {
                let w = r.pick(&[8, 16, 32, 64]);
                r.reg_value(w)
            }
        };
    }
    let mut rflags = rflags::FIXED | (r.next_u64() & (rflags::ARITH | rflags::DF));
    if r.chance(25) {
        rflags |= rflags::IF;
    }
    let mut cr4 = 0;
    if r.chance(30) {
        cr4 |= cr::CR4_SMEP;
    }
    if r.chance(30) {
        cr4 |= cr::CR4_SMAP;
    }
    Block {
        code,
        rip,
        gpr,
        rflags,
        cr0_wp: r.chance(50),
        cr4,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Observed {
    outcome: RunOutcome,
    gpr: [u64; 16],
    rip: u64,
    rflags: u64,
    cr: [u64; 4],
    /// A digest of RAM after the run.
    ram_digest: u64,
    /// The run read a time source, took an interrupt or was stopped by the watchdog: not
    /// reproducible.
    timed: bool,
}

/// Stops a run that has been going for longer than [`RUN_TIMEOUT`]: a guest can halt with an
/// interrupt route open that no interrupt will take (an in-service IRQ never acknowledged, a
/// half-initialized PIC), and a halted vCPU waits for wall-clock time.
struct Watchdog {
    current: Arc<Mutex<Option<(StopHandle, Instant)>>>,
}

const RUN_TIMEOUT: Duration = Duration::from_millis(250);

impl Watchdog {
    fn new() -> Watchdog {
        let current: Arc<Mutex<Option<(StopHandle, Instant)>>> = Default::default();
        let watched = Arc::downgrade(&current);
        std::thread::spawn(move || {
            while let Some(current) = watched.upgrade() {
                if let Some((stop, since)) = current.lock().expect("lock").as_ref() {
                    if since.elapsed() > RUN_TIMEOUT {
                        stop.stop();
                    }
                }
                drop(current);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Watchdog { current }
    }

    fn run(&self, vm: &mut Vm) -> RunOutcome {
        *self.current.lock().expect("lock") = Some((vm.stop_handle(), Instant::now()));
        let outcome = vm.run();
        *self.current.lock().expect("lock") = None;
        outcome
    }
}

struct Runner {
    vm: Vm,
    base: CpuState,
    pristine: Vec<u8>,
    /// Pages that differed from the pristine image after the last run.
    dirty: Vec<usize>,
}

impl Runner {
    fn new(engine: Engine, pristine: &[u8]) -> Runner {
        let vm = vm_with(engine, RAM, LIMIT, pristine);
        let base = base_cpu(&vm);
        Runner {
            vm,
            base,
            pristine: pristine.to_vec(),
            dirty: Vec::new(),
        }
    }

    /// Brings RAM back to the pristine image plus `b`'s code by rewriting only the pages the
    /// last run left different (so translations of unchanged pages survive and are exercised
    /// again).
    fn restore(&mut self, b: &Block) {
        // Both aliases of the code reach the same physical bytes.
        let off = (b.rip & !HIGH) as usize;
        let code_page = off & !0xFFF;
        let mut want_code = self.pristine[code_page..code_page + 4096].to_vec();
        want_code[off - code_page..off - code_page + b.code.len()].copy_from_slice(&b.code);
        let mut pages = std::mem::take(&mut self.dirty);
        if !pages.contains(&code_page) {
            pages.push(code_page);
        }
        for page in pages {
            let want = if page == code_page {
                &want_code[..]
            } else {
                &self.pristine[page..page + 4096]
            };
            let have = self
                .vm
                .machine()
                .ram
                .slice(runtime::memory::GuestPhys(page as u64), 4096)
                .expect("ram");
            if have != want {
                self.vm.write_phys(page as u64, want).expect("ram");
            }
        }
    }

    fn run(&mut self, b: &Block, watchdog: &Watchdog) -> Observed {
        self.restore(b);
        let base = self.base.clone();
        let cpu = self.vm.cpu_mut();
        *cpu = base;
        cpu.gpr = b.gpr;
        cpu.rip = b.rip;
        cpu.rflags = b.rflags;
        if b.cr0_wp {
            cpu.cr0 |= cr::CR0_WP;
        }
        cpu.cr4 |= b.cr4;
        cpu.icount = 0;
        cpu.icount_limit = LIMIT;
        let before = outside_observations(&self.vm);
        let outcome = watchdog.run(&mut self.vm);
        let timed = outside_observations(&self.vm) != before || outcome == RunOutcome::Stopped;
        let ram = self
            .vm
            .machine()
            .ram
            .slice(runtime::memory::GuestPhys(0), RAM as usize)
            .expect("ram");
        self.dirty = (0..RAM as usize)
            .step_by(4096)
            .filter(|&p| ram[p..p + 4096] != self.pristine[p..p + 4096])
            .collect();
        // What the run wrote: the changed pages, each with its address.
        let ram_digest = self.dirty.iter().fold(0, |h, &p| {
            digest(&ram[p..p + 4096]) ^ (h ^ p as u64).wrapping_mul(0x100_0000_01B3)
        });
        let cpu = self.vm.cpu();
        Observed {
            outcome,
            gpr: cpu.gpr,
            rip: cpu.rip,
            rflags: cpu.full_rflags(),
            cr: [cpu.cr0, cpu.cr2, cpu.cr3, cpu.cr4],
            ram_digest,
            timed,
        }
    }
}

/// FNV-1a over 8-byte words: cheap, and any difference between two runs shows.
fn digest(ram: &[u8]) -> u64 {
    ram.chunks_exact(8).fold(0xCBF2_9CE4_8422_2325, |h, w| {
        (h ^ u64::from_le_bytes(w.try_into().expect("8 bytes"))).wrapping_mul(0x100_0000_01B3)
    })
}

fn kind(o: &RunOutcome) -> String {
    match o {
        RunOutcome::DebugExit(v) => format!("exit-vector-{v}"),
        RunOutcome::Halted => "halted".into(),
        RunOutcome::Exception { .. } => "exception".into(),
        RunOutcome::TripleFault { .. } => "triple-fault".into(),
        RunOutcome::Unsupported { .. } => "unsupported".into(),
        RunOutcome::PowerOff => "power-off".into(),
        RunOutcome::Reset => "reset".into(),
        RunOutcome::InstructionLimit => "instruction-limit".into(),
        RunOutcome::Stopped => "stopped".into(),
        RunOutcome::InternalError(_) => "internal-error".into(),
    }
}

fn blocks() -> u64 {
    env_u64("POPEK_FUZZ_BLOCKS").unwrap_or(if cfg!(debug_assertions) {
        10_000
    } else {
        100_000
    })
}

#[test]
fn random_bytes_at_cpl0_with_paging_on() {
    let seed = 0x5E57_0003;
    let image = pristine(seed);
    let mut dbt = Runner::new(Engine::Jit, &image);
    // The other engines run every SHARE-th block: the trap engine pays a host signal per
    // sensitive instruction, the interpreter a recording per block.
    const SHARE: u64 = 8;
    let mut trap = Runner::new(Engine::Trap, &image);
    let mut interp = Runner::new(Engine::Interp, &image);
    let watchdog = Watchdog::new();

    let n = blocks();
    let first = env_u64("POPEK_FUZZ_FIRST").unwrap_or(0);
    let every = env_u64("POPEK_FUZZ_PROGRESS").unwrap_or(0);
    // Debugging aid: run a block's state with other code (hex), to cut a failure down.
    let code_override: Option<Vec<u8>> = std::env::var("POPEK_FUZZ_CODE").ok().map(|h| {
        (0..h.len() / 2)
            .map(|k| u8::from_str_radix(&h[2 * k..2 * k + 2], 16).expect("hex code"))
            .collect()
    });
    let mut failures = Vec::new();
    let mut kinds = BTreeMap::<(&str, String), u64>::new();
    let (mut compared, mut disagree, mut timed) = (0u64, 0u64, 0u64);
    let mut examples = Vec::new();
    for i in first..first + n {
        let mut b = random_block(seed, i);
        if let Some(code) = &code_override {
            b.code = code.clone();
        }
        let a = dbt.run(&b, &watchdog);
        let again = dbt.run(&b, &watchdog);
        let mut results = vec![("jit", a.clone())];
        if a.timed || again.timed {
            timed += 1;
        } else if a != again {
            failures.push(format!(
                "block {i} [{}] at {:#x}: dbt is not deterministic: {:x?} then {:x?}",
                hex(&b.code),
                b.rip,
                (kind(&a.outcome), a.rip, a.gpr, a.rflags, a.cr, a.ram_digest),
                (
                    kind(&again.outcome),
                    again.rip,
                    again.gpr,
                    again.rflags,
                    again.cr,
                    again.ram_digest
                ),
            ));
        }
        if i % SHARE == 0 {
            results.push(("trap", trap.run(&b, &watchdog)));
            results.push(("interp", interp.run(&b, &watchdog)));
        }
        for (name, o) in &results {
            *kinds.entry((*name, kind(&o.outcome))).or_default() += 1;
            if let RunOutcome::InternalError(msg) = &o.outcome {
                failures.push(format!(
                    "block {i} [{}] at {:#x}: {name}: internal error: {msg}",
                    hex(&b.code),
                    b.rip
                ));
            }
        }
        if results.len() > 1 && results.iter().all(|(_, o)| !o.timed) {
            compared += 1;
            // A triple-fault report dumps the instruction count, which the DBT counts per
            // block: compare the event chain only.
            let outcome = |o: &RunOutcome| match o {
                RunOutcome::TripleFault { report } => {
                    report.lines().next().unwrap_or_default().to_string()
                }
                other => other.to_string(),
            };
            let same = |x: &Observed, y: &Observed| {
                (
                    outcome(&x.outcome),
                    x.gpr,
                    x.rip,
                    x.rflags,
                    x.cr,
                    x.ram_digest,
                ) == (
                    outcome(&y.outcome),
                    y.gpr,
                    y.rip,
                    y.rflags,
                    y.cr,
                    y.ram_digest,
                )
            };
            if !results.iter().all(|(_, o)| same(o, &results[0].1)) {
                disagree += 1;
                if examples.len() < 5 {
                    let r0 = &results[0].1;
                    let who: Vec<String> = results
                        .iter()
                        .map(|(n, o)| {
                            let regs: Vec<String> = (0..16)
                                .filter(|&k| o.gpr[k] != r0.gpr[k])
                                .map(|k| format!("r{k}={:#x}", o.gpr[k]))
                                .collect();
                            format!(
                                "{n} {} rip {:#x} rflags {:#x} cr {:x?} ram {:#x} {}",
                                o.outcome,
                                o.rip,
                                o.rflags,
                                o.cr,
                                o.ram_digest,
                                regs.join(" ")
                            )
                        })
                        .collect();
                    examples.push(format!(
                        "block {i} [{}] at {:#x}: {}",
                        hex(&b.code),
                        b.rip,
                        who.join("; ")
                    ));
                }
            }
        }
        if failures.len() >= 20 {
            break;
        }
        if i % 1000 == 999 {
            let rss = resident_mib();
            assert!(rss < 4096, "{rss} MiB resident after block {i}: a leak");
        }
        if every > 0 && i % every == every - 1 {
            eprintln!(
                "[fuzz-system] {} blocks, {} MiB resident, dbt {:.1} s, trap {:.1} s, interp {:.1} s",
                i + 1 - first,
                resident_mib(),
                dbt.vm.stats().run_ns as f64 / 1e9,
                trap.vm.stats().run_ns as f64 / 1e9,
                interp.vm.stats().run_ns as f64 / 1e9,
            );
        }
    }
    println!("{n} blocks; outcomes by engine: {kinds:#?}");
    let st = dbt.vm.stats();
    let hypercalls: u64 = st.hypercalls.iter().map(|(_, c)| c).sum();
    let kinds_used = st.hypercalls.iter().filter(|(_, c)| *c > 0).count();
    println!(
        "dbt: {:.1} s running, {} blocks translated, {hypercalls} hypercalls of {kinds_used} \
         kinds, {} page faults, {} interrupts; trap: {} host traps",
        st.run_ns as f64 / 1e9,
        st.dbt.blocks_translated,
        st.exceptions_by_vector[14],
        st.interrupts,
        trap.vm.stats().host_traps,
    );
    println!(
        "engines compared on {compared} blocks, disagreed on {disagree}; {timed} blocks read a \
         time source or took an interrupt (not compared)"
    );
    for e in &examples {
        println!("  {e}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if first == 0 && n >= 10_000 {
        // The mix must reach what the test is for, or it proves nothing.
        let count = |k: &str| kinds.get(&("jit", k.to_string())).copied().unwrap_or(0);
        assert!(
            count("exit-vector-14") > n / 100,
            "too few page faults: {kinds:?}"
        );
        assert!(count("exit-vector-13") > n / 100, "too few #GP: {kinds:?}");
        assert!(count("triple-fault") > 0, "no triple fault: {kinds:?}");
        assert!(
            kinds_used >= 20,
            "only {kinds_used} hypercall kinds were reached"
        );
    }
}
