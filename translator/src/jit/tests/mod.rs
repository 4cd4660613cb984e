//! JIT tests: compiled code runs for real. The harness maps executable memory, provides a
//! flat guest machine whose `extern "C"` helpers are the same functions the interpreter's
//! environment calls, and a small dispatcher (translate, link, run).

mod blocks;
mod faults;
mod jump_cache;
mod legacy;
mod ops;
mod perf;
mod probe;
mod profile;
mod regions;
mod scalar_loads;
mod stack_runs;
mod tlb;

use std::collections::HashMap;

use iced_x86::code_asm::CodeAssembler;
use memmap2::{Mmap, MmapMut};

use super::emitter::ClifEmitter;
use super::{Jit, JitConfig, JitEnv, JitError, JumpCacheLayout, MemoryModel};
use crate::decode::{decode_block, DecodedBlock};
use crate::helpers::Helper;
use crate::interp::{step, InterpEnv};
use crate::state::{rflags, CpuState, ExitReason};
use crate::{Exception, Mode};

/// Guest RAM of the test machine.
pub const RAM_SIZE: usize = 1 << 20;
/// Link slots the test machine can hand out.
const SLOTS: usize = 256;

/// Copies of generated code in executable memory (one mapping per blob).
#[derive(Default)]
pub struct Code {
    maps: Vec<Mmap>,
}

impl Code {
    /// Copy `bytes` into fresh executable memory; returns its address.
    pub fn install(&mut self, bytes: &[u8]) -> usize {
        let mut m = MmapMut::map_anon(bytes.len().max(1)).expect("map code");
        m[..bytes.len()].copy_from_slice(bytes);
        let m = m.make_exec().expect("make code executable");
        let addr = m.as_ptr() as usize;
        self.maps.push(m);
        addr
    }
}

/// A jump cache as the runtime's, with a layout of the test's choosing: `u64` words, an
/// entry every `stride` words, guest PC, mode key (in the low half of its word, so a `u32` load
/// reads it) and host address at the given word offsets.
pub struct FakeJumpCache {
    words: Box<[u64]>,
    layout: JumpCacheLayout,
}

impl FakeJumpCache {
    /// Hash constants of the runtime's cache.
    pub const HASH_MUL: u64 = 0x9E37_79B9_7F4A_7C15;
    pub const HASH_SHIFT: u32 = 32;
    pub const MODE_ROTATE: u32 = 40;

    /// `entries` entries (a power of two) of `stride` words; `[pc, mode, host]` word offsets.
    pub fn new(entries: usize, stride: usize, fields: [usize; 3]) -> FakeJumpCache {
        assert!(entries.is_power_of_two() && fields.iter().all(|&f| f < stride));
        let words = vec![0u64; entries * stride].into_boxed_slice();
        let layout = JumpCacheLayout {
            entries: words.as_ptr() as usize,
            mask: entries as u64 - 1,
            entry_size: (stride * 8) as u32,
            off_pc: (fields[0] * 8) as u32,
            off_mode: (fields[1] * 8) as u32,
            off_host: (fields[2] * 8) as u32,
            hash_mul: Self::HASH_MUL,
            hash_shift: Self::HASH_SHIFT,
            mode_rotate: Self::MODE_ROTATE,
        };
        assert!(layout.is_valid());
        FakeJumpCache { words, layout }
    }

    /// The same cache hashed with other constants.
    pub fn with_hash(mut self, mul: u64, shift: u32, mode_rotate: u32) -> FakeJumpCache {
        self.layout.hash_mul = mul;
        self.layout.hash_shift = shift;
        self.layout.mode_rotate = mode_rotate;
        self.clear();
        self
    }

    pub fn layout(&self) -> JumpCacheLayout {
        self.layout
    }

    /// The words of the entry of `pc` in `mode`.
    fn entry(&mut self, pc: u64, mode: u32) -> &mut [u64] {
        let stride = self.layout.entry_size as usize / 8;
        let i = self.layout.index(pc, mode) as usize;
        &mut self.words[i * stride..(i + 1) * stride]
    }

    /// Write the entry of `pc` in `mode` with raw values (`host` 0 = empty).
    pub fn set_raw(&mut self, slot: (u64, u32), pc: u64, mode: u32, host: usize) {
        let l = self.layout;
        let e = self.entry(slot.0, slot.1);
        e[l.off_pc as usize / 8] = pc;
        e[l.off_mode as usize / 8] = u64::from(mode);
        e[l.off_host as usize / 8] = host as u64;
    }

    /// Cache `host` for `pc` in `mode`.
    pub fn set(&mut self, pc: u64, mode: u32, host: usize) {
        self.set_raw((pc, mode), pc, mode, host);
    }

    /// Empty every entry.
    pub fn clear(&mut self) {
        self.words.fill(0);
    }
}

/// The guest machine: flat RAM at guest-physical 0, its code pages and the store guard
/// generated code tests (as the runtime's code cache keeps them), translated blocks and link
/// slots, an optional jump cache, and a log of helper calls.
pub struct Machine {
    pub ram: Vec<u8>,
    /// 1 for each page that holds code: what the harness's helpers call a code store.
    code: Vec<u8>,
    /// The store guard: page `p` is 1 if page `p` or `p + 1` holds code
    /// ([`crate::jit::MemoryModel::Flat`]).
    bitmap: Vec<u8>,
    /// Guest pc → host code of installed blocks.
    pub blocks: HashMap<u64, usize>,
    /// The unlinked exit stub.
    pub stub: usize,
    pub slots: Box<[u64]>,
    next_slot: usize,
    /// Hand out link slots for direct exits.
    pub linking: bool,
    pub calls: Vec<(Helper, [u64; 3])>,
    /// Record helper calls in `calls`.
    pub log: bool,
    pub smc_writes: usize,
    /// The jump cache generated code probes on indirect exits; `Lookup` fills it on a hit
    /// in `blocks` (as the runtime does), for `mode`.
    pub jump: Option<FakeJumpCache>,
    /// The mode key `Lookup` fills the jump cache for.
    pub mode_key: u32,
    /// Hypercalls that may let the block go on in place name the exit stub instead (as the
    /// runtime does when the dispatcher has something to do).
    pub leave_after_hypercalls: bool,
    /// Host stubs by code (SSE ones run; x87/MMX ones raise #UD in both engines, since the
    /// harness keeps no guest x87 state in the host FPU).
    pub stubs: HashMap<Vec<u8>, usize>,
    stub_code: Code,
    /// The hotness counter blocks count in, if any ([`JitEnv::hot_counter`]).
    pub hot_counter: Option<Box<u64>>,
    /// What [`JitEnv::preserving_trampoline`] answers: only for code that is printed, never
    /// run (the harness has no such trampoline).
    pub dump_trampoline: Option<usize>,
}

impl Machine {
    /// Forgets every code page.
    pub fn clear_code_pages(&mut self) {
        self.code.fill(0);
        self.bitmap.fill(0);
    }

    /// Marks `page` as holding code or not, and the guard bytes that depend on it.
    pub fn set_code_page(&mut self, page: usize, on: bool) {
        self.code[page] = u8::from(on);
        for p in [Some(page), page.checked_sub(1)].into_iter().flatten() {
            let next = self.code.get(p + 1).copied().unwrap_or(0);
            self.bitmap[p] = self.code[p] | next;
        }
    }

    pub fn new(stub: usize) -> Box<Machine> {
        Box::new(Machine {
            ram: vec![0; RAM_SIZE],
            code: vec![0; RAM_SIZE >> 12],
            bitmap: vec![0; RAM_SIZE >> 12],
            blocks: HashMap::new(),
            stub,
            slots: vec![stub as u64; SLOTS].into_boxed_slice(),
            next_slot: 0,
            linking: false,
            calls: Vec::new(),
            log: true,
            smc_writes: 0,
            jump: None,
            mode_key: Mode::LONG64_CPL0.key(),
            leave_after_hypercalls: false,
            stubs: HashMap::new(),
            stub_code: Code::default(),
            hot_counter: None,
            dump_trampoline: None,
        })
    }

    fn in_ram(&self, addr: u64, size: u64) -> Option<usize> {
        let end = addr.checked_add(size)?;
        ((size <= 8 || size == 16) && end <= self.ram.len() as u64).then_some(addr as usize)
    }

    /// What every helper does, for generated code and the interpreter alike.
    pub fn helper(&mut self, cpu: &mut CpuState, h: Helper, a: [u64; 3]) -> u64 {
        if self.log {
            self.calls.push((h, a));
        }
        match h {
            Helper::MemRead => match self.in_ram(a[0], a[1]) {
                Some(p) if a[1] == 16 => {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&self.ram[p..p + 16]);
                    let v = u128::from_le_bytes(b);
                    cpu.helper_out[0] = (v >> 64) as u64;
                    v as u64
                }
                Some(p) => {
                    let mut b = [0u8; 8];
                    b[..a[1] as usize].copy_from_slice(&self.ram[p..p + a[1] as usize]);
                    u64::from_le_bytes(b)
                }
                None => {
                    cpu.raise(Exception::PageFault {
                        addr: a[0],
                        code: 0,
                    });
                    0
                }
            },
            Helper::MemWrite => match self.in_ram(a[0], a[1]) {
                Some(p) => {
                    let n = a[1] as usize;
                    let pages = [a[0] >> 12, (a[0] + a[1] - 1) >> 12];
                    if pages.iter().any(|&pg| self.code[pg as usize] != 0) {
                        self.smc_writes += 1;
                    }
                    let v = u128::from(a[2]) | u128::from(cpu.helper_out[0]) << 64;
                    self.ram[p..p + n].copy_from_slice(&v.to_le_bytes()[..n]);
                    0
                }
                None => {
                    cpu.raise(Exception::PageFault {
                        addr: a[0],
                        code: 2,
                    });
                    0
                }
            },
            Helper::FlagsMaterialize => {
                cpu.settle_flags();
                cpu.rflags & rflags::ARITH
            }
            Helper::DivU | Helper::DivS => {
                let size = cpu.helper_out[3] as u32;
                match crate::semantics::muldiv::divide(h == Helper::DivS, size, a[0], a[1], a[2]) {
                    Ok((q, r)) => {
                        cpu.helper_out[0] = r;
                        q
                    }
                    Err(e) => {
                        cpu.raise(e);
                        0
                    }
                }
            }
            Helper::Lookup => match self.blocks.get(&a[0]).copied() {
                Some(host) => {
                    if let Some(j) = &mut self.jump {
                        j.set(a[0], self.mode_key, host);
                    }
                    host as u64
                }
                None => self.stub as u64,
            },
            Helper::FaultIf => {
                if a[0] != 0 {
                    cpu.raise(Exception::from_parts(a[1] as u8, a[2] as u32, 0).expect("a vector"));
                }
                0
            }
            // The floating-point helpers belong to the runtime (its tests cover them); here
            // SSE stubs run, x87/MMX and the state instructions raise #UD in both engines.
            Helper::SimdChecked => {
                self.call_stub_at(cpu, a[0]);
                0
            }
            Helper::FpuExec | Helper::Mxcsr | Helper::FxSave | Helper::FxRstor => {
                cpu.raise(Exception::InvalidOpcode);
                0
            }
            Helper::RepString => 0,
            // Port I/O reads all ones (an unclaimed port) and writes nothing.
            Helper::LeanHypercall => u64::MAX,
            // As the runtime: #PF for bytes outside RAM, a stop for bytes on a code page.
            Helper::ProbeWrite => {
                let end = a[0]
                    .checked_add(a[1])
                    .filter(|&e| e <= self.ram.len() as u64);
                match end {
                    None => cpu.raise(Exception::PageFault {
                        addr: a[0],
                        code: 2,
                    }),
                    Some(end) => {
                        let pages = (a[0] >> 12)..=((end - 1) >> 12);
                        if pages.into_iter().any(|pg| self.code[pg as usize] != 0) {
                            cpu.status = ExitReason::CodeModified as u64;
                        }
                    }
                }
                0
            }
            // Every sensitive instruction completes as a no-op (same for both engines); as
            // the runtime, a handler that may have moved RIP names the code to go on at (the
            // exit stub: the dispatcher), the others let the block go on.
            Helper::Hypercall => {
                let args = crate::sensitive::HypercallArgs::decode(a[0]);
                let len = args.map_or(1, |x| x.len);
                cpu.rip = cpu.rip.wrapping_add(u64::from(len.max(1)));
                match args.map(|x| x.kind.resume()) {
                    Some(crate::sensitive::Resume::Lookup) => self.stub as u64,
                    Some(crate::sensitive::Resume::InBlock) if self.leave_after_hypercalls => {
                        self.stub as u64
                    }
                    _ => 0,
                }
            }
        }
    }
}

impl Machine {
    fn stub_addr(&mut self, code: &[u8]) -> usize {
        if let Some(&a) = self.stubs.get(code) {
            return a;
        }
        let a = self.stub_code.install(code);
        self.stubs.insert(code.to_vec(), a);
        a
    }

    /// Run the stub at `addr` (one of ours) on `cpu.hx`.
    fn call_stub_at(&self, cpu: &mut CpuState, addr: u64) {
        if !self.stubs.values().any(|&a| a as u64 == addr) {
            return cpu.raise(Exception::InvalidOpcode);
        }
        // SAFETY: `addr` is a stub this machine installed from `hostexec`, a System V
        // function taking the frame; it touches only the frame and caller-saved registers.
        unsafe {
            let f: extern "C" fn(*mut crate::state::HostFrame) = std::mem::transmute(addr as usize);
            f(&mut cpu.hx);
        }
    }
}

impl InterpEnv for Machine {
    fn helper(&mut self, cpu: &mut CpuState, h: Helper, args: [u64; 3]) -> u64 {
        Machine::helper(self, cpu, h, args)
    }
    fn run_stub(
        &mut self,
        cpu: &mut CpuState,
        stub: &crate::hostexec::HostStub,
        how: crate::hostexec::StubCall,
    ) {
        if matches!(how, crate::hostexec::StubCall::Fpu(_)) {
            return cpu.raise(Exception::InvalidOpcode);
        }
        let a = self.stub_addr(&stub.code);
        self.call_stub_at(cpu, a as u64);
    }
}

impl JitEnv for Machine {
    fn preserving_trampoline(&self) -> Option<usize> {
        self.dump_trampoline
    }
    fn helper_addr(&self, h: Helper) -> usize {
        SHIMS[Helper::ALL.iter().position(|&x| x == h).unwrap_or(0)] as usize
    }
    fn memory(&self) -> MemoryModel {
        MemoryModel::Flat {
            ram_base: self.ram.as_ptr() as usize,
            ram_size: self.ram.len() as u64,
            code_bitmap: self.bitmap.as_ptr() as usize,
            code_bitmap_len: self.bitmap.len() as u64,
        }
    }
    fn jump_cache(&self) -> Option<JumpCacheLayout> {
        self.jump.as_ref().map(FakeJumpCache::layout)
    }
    fn link_slot(&mut self, _target_pc: u64) -> Option<usize> {
        if !self.linking || self.next_slot == SLOTS {
            return None;
        }
        self.next_slot += 1;
        Some(&self.slots[self.next_slot - 1] as *const u64 as usize)
    }
    fn host_stub(&mut self, stub: &crate::hostexec::HostStub) -> Option<usize> {
        Some(self.stub_addr(&stub.code))
    }
    fn hot_counter(&mut self) -> Option<usize> {
        self.hot_counter
            .as_mut()
            .map(|c| &mut **c as *mut u64 as usize)
    }
}

type HelperFn = extern "C" fn(*mut CpuState, u64, u64, u64) -> u64;

extern "C" fn shim<const H: usize>(cpu: *mut CpuState, a: u64, b: u64, c: u64) -> u64 {
    // SAFETY: generated code passes the `CpuState` the harness entered it with, which is
    // live and not otherwise borrowed while the block runs; `runtime` holds the address of
    // the harness's boxed `Machine`, equally unborrowed during the run.
    let (cpu, m) = unsafe {
        let cpu = &mut *cpu;
        let m = &mut *(cpu.runtime as *mut Machine);
        (cpu, m)
    };
    m.helper(cpu, Helper::ALL[H], [a, b, c])
}

const SHIMS: [HelperFn; 16] = [
    shim::<0>, shim::<1>, shim::<2>, shim::<3>, shim::<4>, shim::<5>, shim::<6>, shim::<7>,
    shim::<8>, shim::<9>, shim::<10>, shim::<11>, shim::<12>, shim::<13>, shim::<14>, shim::<15>,
];

type Trampoline = extern "C" fn(*mut CpuState, usize) -> u64;

/// A JIT, executable memory, a machine and a CPU.
pub struct Harness {
    pub jit: Jit,
    pub code: Code,
    pub m: Box<Machine>,
    pub cpu: Box<CpuState>,
    trampoline: Trampoline,
    pub mode: Mode,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(JitConfig::default())
    }

    pub fn with_config(config: JitConfig) -> Harness {
        let mut jit = Jit::with_config(config).expect("host JIT");
        let mut code = Code::default();
        let t = code.install(&jit.entry_trampoline().expect("trampoline"));
        let stub = code.install(&jit.exit_stub().expect("exit stub"));
        // SAFETY: `t` is the entry trampoline just compiled for this host, a complete
        // function with exactly this C signature, in executable memory `code` keeps mapped.
        let trampoline = unsafe { std::mem::transmute::<usize, Trampoline>(t) };
        Harness {
            jit,
            code,
            m: Machine::new(stub),
            cpu: Box::default(),
            trampoline,
            mode: Mode::LONG64_CPL0,
        }
    }

    /// Write guest bytes to RAM.
    pub fn load(&mut self, addr: u64, bytes: &[u8]) {
        self.m.ram[addr as usize..addr as usize + bytes.len()].copy_from_slice(bytes);
    }

    /// Decode the block at `pc` from RAM.
    pub fn decode(&self, pc: u64, max_insns: usize) -> DecodedBlock {
        let end = (pc as usize + 4096 + 15).min(RAM_SIZE);
        decode_block(&self.m.ram[pc as usize..end], pc, self.mode, max_insns)
    }

    /// Translate and install `block`; registers it for lookups and marks its page.
    pub fn install(&mut self, block: &DecodedBlock) -> Result<usize, JitError> {
        let c = self.jit.translate(block, self.mode, &mut *self.m)?;
        let host = self.code.install(&c.code);
        self.m.blocks.insert(block.pc, host);
        let page = (block.pc >> 12) as usize;
        if page < self.m.code.len() {
            self.m.set_code_page(page, true);
        }
        Ok(host)
    }

    /// Build a function straight through the emitter (the block prologue included, `n`
    /// instructions charged) and install it.
    pub fn install_raw(
        &mut self,
        pc: u64,
        f: impl FnOnce(&mut ClifEmitter<'_>),
    ) -> Result<usize, JitError> {
        let mut links = HashMap::new();
        let shape = super::Shape {
            pc,
            preload: 0,
            reload: 0,
            trap_hypercalls: false,
            count_tlb_hits: false,
            carry: None,
            carry_flags: false,
            srclocs: false,
            mode_key: self.mode.key(),
        };
        self.jit
            .build_block(shape, &[], &mut *self.m, &mut links, |mut e| {
                f(&mut e);
                (e, false)
            })?;
        let code = self.jit.compile()?;
        Ok(self.code.install(&code))
    }

    /// Call the code at `host` through the trampoline.
    pub fn enter(&mut self, host: usize) -> u64 {
        self.cpu.status = 0xbad;
        self.cpu.runtime = &mut *self.m as *mut Machine as usize;
        (self.trampoline)(&mut *self.cpu, host)
    }

    /// Run from `cpu.rip`: translate as needed, link direct exits when linking is on, until
    /// an exit other than `Jump` or `max_entries` trampoline calls.
    pub fn run(&mut self, max_entries: usize) -> ExitReason {
        for _ in 0..max_entries {
            let host = match self.m.blocks.get(&self.cpu.rip) {
                Some(&h) => h,
                None => {
                    let b = self.decode(self.cpu.rip, 64);
                    self.install(&b).expect("translate")
                }
            };
            let r = ExitReason::from_u64(self.enter(host)).expect("valid exit reason");
            if r != ExitReason::Jump {
                return r;
            }
            if self.cpu.link_slot != 0 {
                let target = match self.m.blocks.get(&self.cpu.rip) {
                    Some(&h) => h,
                    None => {
                        let b = self.decode(self.cpu.rip, 64);
                        self.install(&b).expect("translate")
                    }
                };
                // SAFETY: `link_slot` is the address of a cell of `self.m.slots` that
                // `link_slot()` handed out; nothing else references it now.
                unsafe { *(self.cpu.link_slot as *mut u64) = target as u64 };
            }
        }
        ExitReason::Jump
    }
}

/// Run `block` through the interpreter, instruction by instruction, as a block would.
/// Returns how it left and how many instructions completed (a faulting, stopping or
/// unsupported instruction leaves RIP on itself and does not count).
pub fn interp_block(
    m: &mut Machine,
    cpu: &mut CpuState,
    block: &DecodedBlock,
    mode: Mode,
) -> (ExitReason, u64) {
    let mut completed = 0;
    for insn in &block.insns {
        if cpu.rip != insn.ip() {
            break;
        }
        let r = step(cpu, m, insn, mode);
        if r == ExitReason::Jump || cpu.rip != insn.ip() {
            completed += 1;
        }
        if r != ExitReason::Jump {
            return (r, completed);
        }
    }
    (ExitReason::Jump, completed)
}

/// Assemble with iced (64-bit).
pub fn asm(f: impl FnOnce(&mut CodeAssembler) -> Result<(), iced_x86::IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    f(&mut a).expect("assemble");
    a.assemble(0).expect("encode")
}

/// Architectural state the two engines must agree on.
#[derive(Debug, PartialEq, Eq)]
pub struct Observed {
    pub exit: ExitReason,
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub exc: (u64, u64, u64),
    pub helper_out0: u64,
    pub icount: u64,
}

impl Observed {
    pub fn of(exit: ExitReason, cpu: &CpuState) -> Observed {
        Observed {
            exit,
            gpr: cpu.gpr,
            rip: cpu.rip,
            rflags: cpu.full_rflags(),
            exc: if exit == ExitReason::Exception {
                (cpu.exc_vector, cpu.exc_code, cpu.exc_addr)
            } else {
                (0, 0, 0)
            },
            helper_out0: cpu.helper_out[0],
            icount: cpu.icount,
        }
    }
}

/// Run `code` at `pc` as one block through the JIT and through the interpreter from the
/// same CPU state and RAM; returns both observations and whether RAM agrees.
pub fn differential(
    code: &[u8],
    pc: u64,
    cpu: &CpuState,
    ram_init: impl Fn(&mut [u8]),
) -> (Observed, Observed, bool) {
    differential_with(JitConfig::default(), code, pc, cpu, ram_init)
}

/// As [`differential`], with a JIT configured by `config`.
pub fn differential_with(
    config: JitConfig,
    code: &[u8],
    pc: u64,
    cpu: &CpuState,
    ram_init: impl Fn(&mut [u8]),
) -> (Observed, Observed, bool) {
    differential_in(config, Mode::LONG64_CPL0, code, pc, cpu, ram_init)
}

/// As [`differential_with`], with the code decoded and run in `mode`.
pub fn differential_in(
    config: JitConfig,
    mode: Mode,
    code: &[u8],
    pc: u64,
    cpu: &CpuState,
    ram_init: impl Fn(&mut [u8]),
) -> (Observed, Observed, bool) {
    let mut h = Harness::with_config(config);
    h.mode = mode;
    ram_init(&mut h.m.ram);
    h.load(pc, code);
    let block = h.decode(pc, 64);
    *h.cpu = cpu.clone();
    h.cpu.rip = pc;
    let c = h
        .jit
        .translate(&block, h.mode, &mut *h.m)
        .expect("translate");
    let host = h.code.install(&c.code);
    let mut jit_exit = ExitReason::from_u64(h.enter(host)).expect("exit reason");
    let mut prefix = block.clone();
    prefix.insns.truncate(c.guest_insns as usize);
    if jit_exit == ExitReason::CodeModified {
        jit_exit = step_on(&mut h, &prefix, mode);
    }
    let jit = Observed::of(jit_exit, &h.cpu);

    let mut m = Machine::new(0);
    ram_init(&mut m.ram);
    m.ram[pc as usize..pc as usize + code.len()].copy_from_slice(code);
    let mut icpu = cpu.clone();
    icpu.rip = pc;
    // The interpreter runs exactly the instructions the JIT translated, charged and looped
    // as the block does: `icount + n <= icount_limit` before every pass, again while the
    // block jumps back to its own start; a pass that leaves early takes back the
    // instructions it did not execute.
    let n = u64::from(c.guest_insns);
    let exit = loop {
        if icpu
            .icount
            .checked_add(n)
            .is_none_or(|e| e > icpu.icount_limit)
        {
            icpu.rip = pc;
            break ExitReason::Budget;
        }
        icpu.icount += n;
        let (exit, completed) = interp_block(&mut m, &mut icpu, &prefix, mode);
        if exit != ExitReason::Jump {
            icpu.icount -= n - completed;
        }
        if exit != ExitReason::Jump || icpu.rip != pc {
            break exit;
        }
    };
    let interp = Observed::of(exit, &icpu);
    (jit, interp, m.ram == h.m.ram)
}

/// What the dispatcher does after a block left with [`ExitReason::CodeModified`] (the
/// instruction at `rip` not executed): single-step it, and here the rest of the block's
/// instructions after it, each charged as it completes. Returns the exit of the first step
/// that does not simply go on, or `Jump` once the steps leave the block's straight line.
pub fn step_on(h: &mut Harness, block: &DecodedBlock, mode: Mode) -> ExitReason {
    let Some(at) = block.insns.iter().position(|i| i.ip() == h.cpu.rip) else {
        return ExitReason::CodeModified;
    };
    for insn in &block.insns[at..] {
        if h.cpu.rip != insn.ip() {
            break;
        }
        let r = step(&mut h.cpu, &mut *h.m, insn, mode);
        if r == ExitReason::Jump || h.cpu.rip != insn.ip() {
            h.cpu.icount += 1;
        }
        if r != ExitReason::Jump {
            return r;
        }
    }
    ExitReason::Jump
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Values at every width's edges.
pub const EDGES: [u64; 31] = [
    0,
    1,
    2,
    3,
    7,
    8,
    15,
    16,
    31,
    32,
    33,
    63,
    64,
    65,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
    u64::MAX - 1,
    0x0123_4567_89ab_cdef,
    0xfedc_ba98_7654_3210,
];
