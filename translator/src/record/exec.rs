//! Running a recorded block ([`Program`]) against a CPU state.
//!
//! The executor honours the same contract as a JIT block (see [`crate::jit`]): it charges
//! the block's instructions at entry, leaves with an [`ExitReason`], reaches guest memory
//! through the [`MemoryModel`]'s inline fast path (bounds-checked flat RAM, or the soft
//! TLB) and otherwise through the runtime's helpers, and after a helper that stopped
//! (`cpu.status` set) continues at the op's fault target, which writes back the state of
//! the faulting instruction's start.
//!
//! Invariants:
//! - A guest address becomes a host address only as generated code's would: after the flat
//!   model's bounds check (and, for stores, the code bitmap), or by adding the addend of a
//!   soft-TLB entry whose tag matched both ends of the access.
//! - Slots and jump targets come from the recorder, which allocates every slot it names and
//!   patches every target, and `finish` checks each (and each `Ld64`/`St64` state offset and
//!   state run) against the program's sizes: the executor indexes register files, runs and
//!   the state at those offsets without bounds checks only in a program that passed (a
//!   broken or unchecked program returns [`ExitReason::Unsupported`] before running).

use super::{Op, Program, Slot, NO_LABEL};
use crate::helpers::Helper;
use crate::hostexec::StubCall;
use crate::interp::InterpEnv;
use crate::ir::{eval_binop, eval_cmp, eval_convert, eval_unop, Ty};
use crate::jit::MemoryModel;
use crate::state::{CpuState, ExitReason, HostFrame, TlbEntry, TLB_ENTRIES};
use crate::vector;

/// How a run of a recorded block ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ran {
    /// The exit reason (as generated code returns it).
    pub exit: u64,
    /// Times the block jumped back to its own start and went on running.
    pub loops: u32,
}

/// Run `p` on `cpu`. A block that jumps to its own start runs again without returning, as
/// a JIT block does, at most `max_loops` times: then it leaves with [`ExitReason::Jump`]
/// (so a caller counting runs sees a hot loop).
pub fn run(p: &mut Program, cpu: &mut CpuState, env: &mut dyn InterpEnv, max_loops: u32) -> Ran {
    let mut loops = 0;
    let exit = run_loops(p, cpu, env, max_loops, &mut loops);
    Ran { exit, loops }
}

fn run_loops(
    p: &mut Program,
    cpu: &mut CpuState,
    env: &mut dyn InterpEnv,
    max_loops: u32,
    loops: &mut u32,
) -> u64 {
    cpu.status = 0;
    // Not checked: broken, or not proven in range (which needs at least one op).
    if !p.checked {
        cpu.rip = p.pc;
        return ExitReason::Unsupported as u64;
    }
    let mut m = Machine {
        cpu,
        env,
        mem: &p.memory,
    };
    // The program's own register files: constants stay put, every other slot is written
    // before it is read, so nothing is reset between runs.
    // SAFETY: `p.checked`: `finish` verified every slot its ops name against these files.
    let (mut r, mut v) = unsafe { (Slots::new(&mut p.regs[..]), Slots::new(&mut p.vregs[..])) };
    let ops = &p.ops[..];
    // The shuffle masks and stubs by reference, their slices read out of line (see
    // `stub_addr`).
    let (pc0, stubs, masks, runs) = (p.pc, &p.stubs, &p.masks, &p.runs[..]);
    let mut pc = 0usize;
    // The entry's budget check, ahead of the loop: one dispatch less per run.
    if let Some(&Op::Charge { n }) = ops.first() {
        if let Err(e) = charge(m.cpu, n, pc0) {
            return e;
        }
        pc = 1;
    }
    loop {
        debug_assert!(pc < ops.len());
        // SAFETY: `p.checked`: `finish` verified every target is an op index and the last
        // op never falls through, so `pc` (0, 1 after a `Charge`, a target, or the op after
        // one that falls through) is always below `ops.len()`.
        let op = unsafe { ops.get_unchecked(pc) };
        pc += 1;
        // By reference: copying the op out first loaded all 20 bytes of every op.
        match *op {
            Op::Charge { n } => {
                if let Err(e) = charge(m.cpu, n, pc0) {
                    return e;
                }
            }
            Op::Bin { op, ty, d, a, b } => {
                r[d] = eval_binop(op, ty, r[a], r[b]);
            }
            Op::Un { op, ty, d, a } => r[d] = eval_unop(op, ty, r[a]),
            Op::Cmp { cc, ty, d, a, b } => {
                r[d] = eval_cmp(cc, ty, r[a], r[b]);
            }
            Op::Select { ty, d, c, t, f } => {
                let x = if r[c] != 0 { r[t] } else { r[f] };
                r[d] = x & ty.mask();
            }
            Op::Conv { op, from, to, d, a } => {
                r[d] = eval_convert(op, from, to, r[a]);
            }
            Op::Mov { d, a } => r[d] = r[a],
            Op::LoadState { ty, d, off } => r[d] = load_state(m.cpu, ty, off),
            Op::StoreState { ty, off, a } => store_state(m.cpu, ty, off, r[a]),
            Op::LoadMem { ty, d, addr, fault } => match m.load(ty, r[addr]) {
                Some(x) => r[d] = x,
                None => match on_fault(m.cpu, fault) {
                    Ok(to) => pc = to,
                    Err(e) => return e,
                },
            },
            Op::StoreMem {
                ty,
                addr,
                v: x,
                fault,
            } => {
                if !m.store(ty, r[addr], r[x]) {
                    match on_fault(m.cpu, fault) {
                        Ok(to) => pc = to,
                        Err(e) => return e,
                    }
                }
            }
            Op::Helper { h, d, args, fault } => {
                let a = args.map(|x| r[x]);
                r[d] = m.env.helper(m.cpu, h, a);
                if h.can_stop() && m.cpu.status != 0 {
                    match on_fault(m.cpu, fault) {
                        Ok(to) => pc = to,
                        Err(e) => return e,
                    }
                }
            }
            Op::Jump { to } => pc = to as usize,
            Op::Branch { c, then, els } => {
                pc = if r[c] != 0 { then } else { els } as usize;
            }
            Op::Test { t, d, a, b } => r[d] = u64::from(t.eval(r[a], r[b])),
            Op::BrTest { t, a, b, then, els } => {
                pc = if t.eval(r[a], r[b]) { then } else { els } as usize;
            }
            Op::ExitJump { target } => {
                if !exit_jump(m.cpu, r[target], pc0, loops, max_loops) {
                    return ExitReason::Jump as u64;
                }
                // A loop: straight back to the budget check, as a JIT block does. Slots
                // need no reset: constants are never written, and every other slot is
                // written before it is read.
                pc = 0;
            }
            Op::StRunExit { at, n, target } => {
                // SAFETY: as for `StRun`.
                let run = unsafe { runs.get_unchecked(at as usize..(at + n) as usize) };
                for &(off, a) in run {
                    // SAFETY: as for `StRun`.
                    unsafe { st64(m.cpu, off, r[a]) };
                }
                if !exit_jump(m.cpu, r[target], pc0, loops, max_loops) {
                    return ExitReason::Jump as u64;
                }
                pc = 0; // A loop, as for `ExitJump`.
            }
            Op::ExitReturn { reason } => return reason as u64,
            Op::ExitStatus => return m.cpu.status,
            Op::Uncount { n } => m.cpu.icount = m.cpu.icount.wrapping_sub(u64::from(n)),
            Op::VMov { d, a } => v[d] = v[a],
            Op::VLoadState { d, off } => {
                let lo = load_state(m.cpu, Ty::I64, off);
                let hi = load_state(m.cpu, Ty::I64, off + 8);
                v[d] = u128::from(lo) | u128::from(hi) << 64;
            }
            Op::VStoreState { off, a } => {
                let x = v[a];
                store_state(m.cpu, Ty::I64, off, x as u64);
                store_state(m.cpu, Ty::I64, off + 8, (x >> 64) as u64);
            }
            Op::VLoadMem { d, addr, fault } => match m.load16(r[addr]) {
                Some(x) => v[d] = x,
                None => match on_fault(m.cpu, fault) {
                    Ok(to) => pc = to,
                    Err(e) => return e,
                },
            },
            Op::VStoreMem { addr, v: x, fault } => {
                if !m.store16(r[addr], v[x]) {
                    match on_fault(m.cpu, fault) {
                        Ok(to) => pc = to,
                        Err(e) => return e,
                    }
                }
            }
            Op::VBin { op, lanes, d, a, b } => {
                v[d] = vector::eval_bin(op, lanes, v[a], v[b]);
            }
            Op::VUn { op, lanes, d, a } => v[d] = vector::eval_un(op, lanes, v[a]),
            Op::VShift {
                op,
                lanes,
                d,
                a,
                count,
            } => {
                v[d] = vector::eval_shift(op, lanes, v[a], r[count]);
            }
            Op::VShuffle { d, a, b, mask } => {
                v[d] = shuffle(masks, mask, v[a], v[b]);
            }
            Op::VExtract { lanes, idx, d, a } => {
                let l = lanes.int();
                r[d] = vector::lane(v[a], l.bits(), u32::from(idx) % l.count());
            }
            Op::VInsert {
                lanes,
                idx,
                d,
                a,
                x,
            } => {
                let l = lanes.int();
                let i = u32::from(idx) % l.count();
                v[d] = vector::with_lane(v[a], l.bits(), i, r[x]);
            }
            Op::VSplat { lanes, d, x } => {
                let l = lanes.int();
                let val = r[x];
                v[d] = (0..l.count()).fold(0, |acc, i| vector::with_lane(acc, l.bits(), i, val));
            }
            Op::VMovmsk { lanes, d, a } => r[d] = vector::eval_movmsk(v[a], lanes),
            Op::VSelect { d, c, t, f } => {
                v[d] = if r[c] != 0 { v[t] } else { v[f] };
            }
            Op::VBlendv {
                lanes,
                d,
                a,
                b,
                m: mk,
            } => {
                v[d] = vector::eval_blendv(lanes, v[a], v[b], v[mk]);
            }
            Op::VCvt { op, d, a } => v[d] = vector::eval_cvt(op, v[a]),
            Op::VCvtFromInt {
                lanes,
                xty,
                d,
                a,
                x,
            } => {
                v[d] = vector::eval_cvt_from_int(lanes, v[a], r[x], xty.bits());
            }
            Op::VCvttToInt { lanes, ty, d, a } => {
                r[d] = vector::eval_cvtt_to_int(lanes, v[a], ty.bits());
            }
            Op::VFcmpFlags {
                lanes,
                ordered,
                d,
                a,
                b,
            } => {
                r[d] = vector::eval_fcmp_flags(lanes, v[a], v[b], ordered);
            }
            Op::Add64 { d, a, b } => r[d] = r[a].wrapping_add(r[b]),
            Op::Sub64 { d, a, b } => r[d] = r[a].wrapping_sub(r[b]),
            Op::And64 { d, a, b } => r[d] = r[a] & r[b],
            Op::Or64 { d, a, b } => r[d] = r[a] | r[b],
            Op::Xor64 { d, a, b } => r[d] = r[a] ^ r[b],
            Op::Shl64 { d, a, b } => r[d] = r[a] << (r[b] & 63),
            Op::UShr64 { d, a, b } => r[d] = r[a] >> (r[b] & 63),
            Op::Add32 { d, a, b } => r[d] = u64::from((r[a] as u32).wrapping_add(r[b] as u32)),
            Op::Sub32 { d, a, b } => r[d] = u64::from((r[a] as u32).wrapping_sub(r[b] as u32)),
            Op::And32 { d, a, b } => r[d] = u64::from(r[a] as u32 & r[b] as u32),
            Op::Or32 { d, a, b } => r[d] = u64::from(r[a] as u32 | r[b] as u32),
            Op::Xor32 { d, a, b } => r[d] = u64::from(r[a] as u32 ^ r[b] as u32),
            Op::Shl32 { d, a, b } => r[d] = u64::from((r[a] as u32) << (r[b] & 31)),
            Op::UShr32 { d, a, b } => r[d] = r[a] >> (r[b] & 31),
            Op::Mask { ty, d, a } => r[d] = r[a] & MASKS[ty as usize],
            // SAFETY (these four, and `StRunExit`): `p.checked`: `finish` verified every offset they name
            // (also in `runs`) lies 8 bytes inside the state, and every run inside `runs`.
            Op::Ld64 { d, off } => r[d] = unsafe { ld64(m.cpu, off) },
            Op::St64 { off, a } => unsafe { st64(m.cpu, off, r[a]) },
            Op::LdRun { at, n } => {
                let run = unsafe { runs.get_unchecked(at as usize..(at + n) as usize) };
                for &(off, d) in run {
                    r[d] = unsafe { ld64(m.cpu, off) };
                }
            }
            Op::StRun { at, n } => {
                let run = unsafe { runs.get_unchecked(at as usize..(at + n) as usize) };
                for &(off, a) in run {
                    unsafe { st64(m.cpu, off, r[a]) };
                }
            }
            Op::Stub { stub, how, fault } => {
                if !m.stub(stub_addr(stubs, stub), how) {
                    match on_fault(m.cpu, fault) {
                        Ok(to) => pc = to,
                        Err(e) => return e,
                    }
                }
            }
        }
    }
}

/// `VShuffle` with mask `mask` of `masks`. Out of line, as [`stub_addr`].
#[inline(never)]
#[allow(clippy::ptr_arg)] // see `stub_addr`
fn shuffle(masks: &Vec<[u8; 16]>, mask: u32, a: u128, b: u128) -> u128 {
    let mk = masks.get(mask as usize).copied().unwrap_or([0; 16]);
    vector::eval_shuffle(a, b, mk)
}

/// The address of stub `stub` of `stubs`. Out of line and given the vector, not a slice:
/// with the slices of the masks and stubs in the executor's loop, its preamble (run once
/// per block run) loaded and spilled them, and `sort` ran 2.5% more host instructions.
#[inline(never)]
#[allow(clippy::ptr_arg)]
fn stub_addr(stubs: &Vec<usize>, stub: u32) -> usize {
    stubs.get(stub as usize).copied().unwrap_or(0)
}

/// [`Ty::mask`] by `ty as usize`: one load instead of a shift and two ALU ops.
const MASKS: [u64; 4] = [
    Ty::I8.mask(),
    Ty::I16.mask(),
    Ty::I32.mask(),
    Ty::I64.mask(),
];

/// The budget check of a block's entry: charge `n` instructions, or leave at the block's
/// start (`pc0`) with [`ExitReason::Budget`] if they would pass the limit.
#[inline(always)]
fn charge(cpu: &mut CpuState, n: u32, pc0: u64) -> Result<(), u64> {
    let next = cpu.icount.wrapping_add(u64::from(n));
    if next > cpu.icount_limit {
        cpu.rip = pc0;
        return Err(ExitReason::Budget as u64);
    }
    cpu.icount = next;
    Ok(())
}

/// Leave for guest address `t`; true if instead the block runs again (it jumps to its own
/// start `pc0`, and has looped fewer than `max_loops` times).
#[inline(always)]
fn exit_jump(cpu: &mut CpuState, t: u64, pc0: u64, loops: &mut u32, max_loops: u32) -> bool {
    cpu.rip = t;
    cpu.link_slot = 0;
    if t == pc0 && *loops < max_loops {
        *loops += 1;
        return true;
    }
    false
}

/// A register file indexed by the slots of a checked program, without bounds checks (they
/// were a sixth of the executor's instructions).
struct Slots<'a, T>(&'a mut [T]);

impl<'a, T> Slots<'a, T> {
    /// # Safety
    /// Every slot the running program's ops name must be below `file.len()`: true of a
    /// program `finish` checked ([`super::finish::in_range`]) and the file it sized.
    unsafe fn new(file: &'a mut [T]) -> Self {
        Slots(file)
    }
}

impl<T> std::ops::Index<Slot> for Slots<'_, T> {
    type Output = T;
    #[inline(always)]
    fn index(&self, s: Slot) -> &T {
        debug_assert!((s as usize) < self.0.len());
        // SAFETY: only a checked program's slots reach here (see `Slots::new`).
        unsafe { self.0.get_unchecked(s as usize) }
    }
}

impl<T> std::ops::IndexMut<Slot> for Slots<'_, T> {
    #[inline(always)]
    fn index_mut(&mut self, s: Slot) -> &mut T {
        debug_assert!((s as usize) < self.0.len());
        // SAFETY: as in `index`.
        unsafe { self.0.get_unchecked_mut(s as usize) }
    }
}

/// Where to continue after an op stopped: its fault target, or (none) leave with the
/// status as it is.
fn on_fault(cpu: &CpuState, fault: u32) -> Result<usize, u64> {
    if fault == NO_LABEL {
        Err(cpu.status)
    } else {
        Ok(fault as usize)
    }
}

fn load_state(cpu: &CpuState, ty: Ty, off: u32) -> u64 {
    let off = off as usize;
    if off + ty.bytes() as usize > std::mem::size_of::<CpuState>() {
        return 0;
    }
    // SAFETY: [off, off + size) lies inside the `CpuState` borrowed here; every field is
    // plain data, so any bytes are valid to read.
    unsafe { read_le(ty, (cpu as *const CpuState).cast::<u8>().add(off)) }
}

fn store_state(cpu: &mut CpuState, ty: Ty, off: u32, x: u64) {
    let off = off as usize;
    if off + ty.bytes() as usize > std::mem::size_of::<CpuState>() {
        return;
    }
    // SAFETY: as in `load_state`, the destination range is inside our `CpuState`, whose
    // fields accept any bit pattern.
    unsafe { write_le(ty, (cpu as *mut CpuState).cast::<u8>().add(off), x) }
}

/// The 8 bytes at `off` of `cpu`.
///
/// # Safety
/// `off + 8 <= size_of::<CpuState>()`.
#[inline(always)]
unsafe fn ld64(cpu: &CpuState, off: u32) -> u64 {
    debug_assert!(off as usize + 8 <= std::mem::size_of::<CpuState>());
    // SAFETY: the caller vouches the bytes are inside `cpu`, whose fields are plain data.
    unsafe {
        read_le(
            Ty::I64,
            (cpu as *const CpuState).cast::<u8>().add(off as usize),
        )
    }
}

/// Store `x` in the 8 bytes at `off` of `cpu`.
///
/// # Safety
/// As for [`ld64`].
#[inline(always)]
unsafe fn st64(cpu: &mut CpuState, off: u32, x: u64) {
    debug_assert!(off as usize + 8 <= std::mem::size_of::<CpuState>());
    // SAFETY: as in `ld64`; any bit pattern is a valid value of every field.
    unsafe {
        write_le(
            Ty::I64,
            (cpu as *mut CpuState).cast::<u8>().add(off as usize),
            x,
        )
    }
}

/// Read a `ty`-sized little-endian integer at `p` with one fixed-size access (a
/// variable-length copy became a `memcpy` call per guest register access).
///
/// # Safety
/// `ty.bytes()` bytes at `p` must be readable.
unsafe fn read_le(ty: Ty, p: *const u8) -> u64 {
    // SAFETY: the caller vouches for the bytes; unaligned reads need no alignment.
    unsafe {
        match ty.bytes() {
            1 => u64::from(p.read()),
            2 => u64::from(u16::from_le(p.cast::<u16>().read_unaligned())),
            4 => u64::from(u32::from_le(p.cast::<u32>().read_unaligned())),
            _ => u64::from_le(p.cast::<u64>().read_unaligned()),
        }
    }
}

/// Write the low `ty.bytes()` bytes of `x` at `p`, little-endian.
///
/// # Safety
/// `ty.bytes()` bytes at `p` must be writable.
unsafe fn write_le(ty: Ty, p: *mut u8, x: u64) {
    // SAFETY: the caller vouches for the bytes; unaligned writes need no alignment.
    unsafe {
        match ty.bytes() {
            1 => p.write(x as u8),
            2 => p.cast::<u16>().write_unaligned((x as u16).to_le()),
            4 => p.cast::<u32>().write_unaligned((x as u32).to_le()),
            _ => p.cast::<u64>().write_unaligned(x.to_le()),
        }
    }
}

/// The executor's view of the machine: the CPU state, the runtime, the memory model.
struct Machine<'a> {
    cpu: &'a mut CpuState,
    env: &'a mut dyn InterpEnv,
    /// By reference, not a copy: a copy's fields were loaded and spilled on every run of
    /// every block, most of which make one or two memory accesses, if any.
    mem: &'a Option<MemoryModel>,
}

impl Machine<'_> {
    /// The host address of `bytes` at guest `addr` for a load (`write` false) or a store,
    /// if the inline fast path covers it.
    fn host(&self, addr: u64, bytes: u64, write: bool) -> Option<*mut u8> {
        match (*self.mem)? {
            MemoryModel::Flat {
                ram_base,
                ram_size,
                code_bitmap,
                code_bitmap_len,
            } => {
                let limit = if write {
                    ram_size.min(code_bitmap_len.saturating_mul(4096))
                } else {
                    ram_size
                };
                if addr > limit.checked_sub(bytes)? {
                    return None;
                }
                if write {
                    // One guard byte covers its page and the next (`MemoryModel::Flat`):
                    // enough for any store of up to a page; longer ones take the slow path.
                    if bytes > 4096 {
                        return None;
                    }
                    // SAFETY: `addr >> 12 < code_bitmap_len` (the bounds check above covered
                    // `addr + bytes <= 4096 * code_bitmap_len`), and the runtime keeps the
                    // bitmap mapped at `code_bitmap` while recorded code may run.
                    let marked = unsafe { *(code_bitmap as *const u8).add((addr >> 12) as usize) };
                    if marked != 0 {
                        return None;
                    }
                }
                Some((ram_base as u64 + addr) as *mut u8)
            }
            MemoryModel::Tlb { set } => {
                let e: &TlbEntry = self
                    .cpu
                    .tlb
                    .sets
                    .get(set)?
                    .get(((addr >> 12) as usize) % TLB_ENTRIES)?;
                let tag = if write { e.write_tag } else { e.read_tag };
                if addr.wrapping_add(bytes - 1) & !0xFFF != tag {
                    return None;
                }
                Some(addr.wrapping_add(e.addend) as *mut u8)
            }
        }
    }

    fn load(&mut self, ty: Ty, addr: u64) -> Option<u64> {
        let n = u64::from(ty.bytes());
        if let Some(p) = self.host(addr, n, false) {
            // SAFETY: `host` proved `n` bytes at `p` are guest RAM the runtime maps for the
            // machine's life (a bounds-checked flat access, or a TLB entry it filled).
            return Some(unsafe { read_le(ty, p) });
        }
        let x = self.env.helper(self.cpu, Helper::MemRead, [addr, n, 0]);
        (self.cpu.status == 0).then_some(x & ty.mask())
    }

    fn store(&mut self, ty: Ty, addr: u64, x: u64) -> bool {
        let n = u64::from(ty.bytes());
        if let Some(p) = self.host(addr, n, true) {
            // SAFETY: as in `load`, for a store (a write tag, or a page without code).
            unsafe { write_le(ty, p, x) };
            return true;
        }
        self.env.helper(self.cpu, Helper::MemWrite, [addr, n, x]);
        self.cpu.status == 0
    }

    fn load16(&mut self, addr: u64) -> Option<u128> {
        if let Some(p) = self.host(addr, 16, false) {
            let mut b = [0u8; 16];
            // SAFETY: as in `load`.
            unsafe { std::ptr::copy_nonoverlapping(p, b.as_mut_ptr(), 16) };
            return Some(u128::from_le_bytes(b));
        }
        let saved = self.cpu.helper_out[0];
        let lo = self.env.helper(self.cpu, Helper::MemRead, [addr, 16, 0]);
        let hi = std::mem::replace(&mut self.cpu.helper_out[0], saved);
        (self.cpu.status == 0).then_some(u128::from(lo) | u128::from(hi) << 64)
    }

    fn store16(&mut self, addr: u64, x: u128) -> bool {
        if let Some(p) = self.host(addr, 16, true) {
            // SAFETY: as in `store`.
            unsafe { std::ptr::copy_nonoverlapping(x.to_le_bytes().as_ptr(), p, 16) };
            return true;
        }
        let saved = std::mem::replace(&mut self.cpu.helper_out[0], (x >> 64) as u64);
        self.env
            .helper(self.cpu, Helper::MemWrite, [addr, 16, x as u64]);
        self.cpu.helper_out[0] = saved;
        self.cpu.status == 0
    }

    /// Run the stub at `addr`; `false` if it stopped the instruction.
    fn stub(&mut self, addr: usize, how: StubCall) -> bool {
        match how {
            StubCall::Direct => {
                call_stub(addr, &mut self.cpu.hx);
                true
            }
            StubCall::Checked => {
                self.env
                    .helper(self.cpu, Helper::SimdChecked, [addr as u64, 0, 0]);
                self.cpu.status == 0
            }
            StubCall::Fpu(info) => {
                // As generated code: straight to the stub while the x87 state is live and
                // nothing is pending; the runtime otherwise.
                if self.cpu.fpu_live == 1 {
                    call_stub(addr, &mut self.cpu.hx);
                    if !info.waiting || self.cpu.hx.status == 0 {
                        return true;
                    }
                }
                self.env
                    .helper(self.cpu, Helper::FpuExec, [addr as u64, info.bits(), 0]);
                self.cpu.status == 0
            }
        }
    }
}

/// Call the host stub at `addr` on `frame`.
fn call_stub(addr: usize, frame: &mut HostFrame) {
    if addr == 0 {
        return;
    }
    // SAFETY: `addr` came from `RecordEnv::host_stub`, which hands out only stubs built by
    // `hostexec` in executable memory kept alive while recorded code may run; a stub is a
    // System V function taking the frame that changes nothing but the frame, RFLAGS,
    // MXCSR's flags and the x87/MMX state (see `hostexec`).
    unsafe {
        let f: extern "C" fn(*mut HostFrame) = std::mem::transmute(addr);
        f(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_table_follows_the_type_order() {
        for ty in [Ty::I8, Ty::I16, Ty::I32, Ty::I64] {
            assert_eq!(MASKS[ty as usize], ty.mask(), "{ty:?}");
        }
    }
}
