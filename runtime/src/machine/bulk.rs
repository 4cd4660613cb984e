//! The bulk part of a repeated string instruction ([`Helper::RepString`]): whole iterations
//! done at memory speed, only where the per-iteration loop would do exactly the same.
//!
//! Invariants:
//! - Never faults, never raises, never touches anything but RAM, and only through bounds-checked
//!   slices: a page that does not translate, is not RAM, or (for a store) holds translated
//!   code ends the bulk before the iteration that needs it. The loop then runs that
//!   iteration and raises its fault (or takes its slow path) with the state after the
//!   iterations done here.
//! - Pages are translated through the loop's own data path (soft TLB, else a walk that sets
//!   the A/D bits and fills the TLB), the source before the destination as the loop's load
//!   precedes its store, and only for iterations up to the first one left to the loop, which
//!   translates the same pages again: A/D bits end as the loop leaves them.
//! - An element that lies across two pages is one iteration on its own: both source pages,
//!   then both destination pages, then the element read whole before it is written.
//! - MOVS is exact, not memmove: a chunk is copied at once only when no byte it reads was
//!   written earlier in the same chunk (distance in physical addresses, so aliases count);
//!   when the destination runs ahead of the source by less than the chunk, chunks shrink to
//!   that distance (each reads only bytes already final: the x86 byte-replication), and a
//!   distance under one element ends the bulk.
//! - At most `min(RCX - 1, icount_limit - icount - 1)` iterations: the loop always has at
//!   least one left (for REPE/REPNE the one that ends and sets the flags), and would not
//!   have stopped for the budget before any iteration done here (the bound holds for the
//!   JIT's count, where the instruction is already charged, and the interpreter's, where it
//!   is not). CMPS/SCAS do only iterations whose condition continues.
//! - For CMPS/SCAS the iteration after the bulk's last reads pages that translate to RAM
//!   (checked without side effects), so the loop's first iteration, which sets the flags
//!   the bulk's iterations would have set, cannot fault.
//! - Nothing happens while a single-stepped instruction's accesses are being collected for
//!   the debug registers.

mod elements;

use translator::helpers::{RepString, StringOp};
use translator::CpuState;

use super::{Machine, Privilege, Target, PAGE_SIZE};
use crate::memory::{Access, GuestPhys};
use crate::mmu::PagingRegs;
use elements::{continuing, replicate};

/// Offset bits within a page.
const IN_PAGE: u64 = PAGE_SIZE - 1;

/// The page a role (source or destination) last translated: (linear page, physical page).
type PageCache = Option<(u64, u64)>;

impl Machine {
    /// [`Helper::RepString`](translator::Helper::RepString): performs up to `count - 1`
    /// iterations of the operation in `cpu.helper_out[2]` from linear `src` (MOVS, CMPS)
    /// and `dst` (64-bit address size) and returns how many it did. See the module
    /// invariants.
    pub fn rep_string(&mut self, cpu: &mut CpuState, src: u64, dst: u64, count: u64) -> u64 {
        let Some(op) = RepString::decode(cpu.helper_out[2]) else {
            return 0;
        };
        let room = cpu
            .icount_limit
            .saturating_sub(cpu.helper_out[1])
            .saturating_sub(1);
        let cap = count.saturating_sub(1).min(room);
        let regs = PagingRegs::of(cpu);
        if cap == 0 || regs.lin_mask() != u64::MAX || self.debug_accesses.collecting() {
            return 0;
        }
        let privilege = Privilege::of_cpl(cpu.cpl);
        let value = cpu.helper_out[0];
        let s = u64::from(op.size);
        // Sizes are powers of two: shifts, not divisions, on the per-chunk path.
        let shift = s.trailing_zeros();
        let uses_src = matches!(op.op, StringOp::Movs | StringOp::Cmps);
        let dst_access = match op.op {
            StringOp::Movs | StringOp::Stos => Access::Write,
            StringOp::Cmps | StringOp::Scas => Access::Read,
        };
        // Whole elements from `a` on in its page, in the direction of travel (0: across).
        let fit = |a: u64| {
            let o = a & IN_PAGE;
            if o + s > PAGE_SIZE {
                0
            } else if op.backward {
                (o >> shift) + 1
            } else {
                (PAGE_SIZE - o) >> shift
            }
        };
        let (mut src_page, mut dst_page): (PageCache, PageCache) = (None, None);
        let mut done = 0u64;
        // Whether a compare ended the bulk (it read the elements of the iteration after).
        let mut ended = false;
        while done < cap {
            let off = done.wrapping_mul(s);
            let (sa, da) = if op.backward {
                (src.wrapping_sub(off), dst.wrapping_sub(off))
            } else {
                (src.wrapping_add(off), dst.wrapping_add(off))
            };
            let mut k = (cap - done).min(fit(da));
            if uses_src {
                k = k.min(fit(sa));
            }
            if k == 0 {
                // An element across two pages: one iteration on its own.
                let (src_pages, dst_pages) = (&mut src_page, &mut dst_page);
                match self.bulk_straddling(
                    cpu, &regs, privilege, op, sa, da, value, src_pages, dst_pages,
                ) {
                    Some(true) => {
                        done += 1;
                        continue;
                    }
                    Some(false) => ended = true,
                    None => {}
                }
                break;
            }
            // Physical addresses of element `done`, the source translated first.
            let ps = if uses_src {
                match self.bulk_page(cpu, &regs, privilege, sa, Access::Read, &mut src_page) {
                    Some(p) => p | (sa & IN_PAGE),
                    None => break,
                }
            } else {
                0
            };
            let Some(pd) = self.bulk_page(cpu, &regs, privilege, da, dst_access, &mut dst_page)
            else {
                break;
            };
            let pd = pd | (da & IN_PAGE);
            let did = match op.op {
                StringOp::Movs => {
                    // How far the destination runs ahead of the source in the direction of
                    // travel (only within one physical page can they meet).
                    let ahead = if op.backward {
                        ps.wrapping_sub(pd)
                    } else {
                        pd.wrapping_sub(ps)
                    };
                    let same_page = ps & !IN_PAGE == pd & !IN_PAGE;
                    if same_page && ahead != 0 && ahead < PAGE_SIZE && ahead < k * s {
                        if ahead < s {
                            break;
                        }
                        // All k elements at once: the source's first `ahead` bytes
                        // repeated (elements only ever read bytes already final).
                        let span = k * s;
                        let (lo, hi) = if op.backward {
                            (pd + s - span, ps + s)
                        } else {
                            (ps, pd + span)
                        };
                        let Ok(buf) = self.ram.slice_mut(GuestPhys(lo), (hi - lo) as usize) else {
                            break;
                        };
                        if !replicate(buf, ahead as usize, span as usize, op.backward) {
                            break;
                        }
                        done += k;
                        continue;
                    }
                    self.bulk_copy(
                        low(ps, k, s, op.backward),
                        low(pd, k, s, op.backward),
                        k * s,
                    )
                    .then_some(k)
                }
                StringOp::Stos => self
                    .bulk_fill(low(pd, k, s, op.backward), k, s, value)
                    .then_some(k),
                StringOp::Cmps | StringOp::Scas => {
                    let while_equal = op.while_equal.unwrap_or(true);
                    self.bulk_compare(op, ps, pd, k, value, while_equal)
                }
            };
            let Some(did) = did else {
                break;
            };
            done += did;
            if did < k {
                ended = true;
                break;
            }
        }
        // CMPS/SCAS: the flags after the iterations done are those of the last one's compare,
        // which only the loop sets; so the loop's first iteration must not fault (it sets
        // them). Unless the compare above read that iteration's elements, check its pages
        // without side effects (the loop walks them), else leave it one more.
        if op.while_equal.is_some() && done > 0 && !ended {
            let off = done.wrapping_mul(s);
            let next = |a: u64| {
                if op.backward {
                    a.wrapping_sub(off)
                } else {
                    a.wrapping_add(off)
                }
            };
            let readable = (!uses_src || self.bulk_readable(&regs, privilege, next(src), s))
                && self.bulk_readable(&regs, privilege, next(dst), s);
            if !readable {
                done -= 1;
            }
        }
        done
    }

    /// One iteration whose source or destination element lies across two pages: the
    /// source's pages translated (in order), then the destination's, then the element read
    /// whole before it is written, as the loop does. `Some(true)` if done and it continues,
    /// `Some(false)` if a compare ends the instruction there (not done: the loop does it),
    /// `None` if a page is not plain (nothing done).
    #[allow(clippy::too_many_arguments)]
    fn bulk_straddling(
        &mut self,
        cpu: &mut CpuState,
        regs: &PagingRegs,
        privilege: Privilege,
        op: RepString,
        sa: u64,
        da: u64,
        value: u64,
        src_page: &mut PageCache,
        dst_page: &mut PageCache,
    ) -> Option<bool> {
        let s = u64::from(op.size);
        let dst_access = match op.op {
            StringOp::Movs | StringOp::Stos => Access::Write,
            StringOp::Cmps | StringOp::Scas => Access::Read,
        };
        let mut a = value.to_le_bytes();
        if matches!(op.op, StringOp::Movs | StringOp::Cmps) {
            let pieces = self.bulk_pieces(cpu, regs, privilege, sa, s, Access::Read, src_page)?;
            self.bulk_read(&pieces, &mut a[..s as usize])?;
        }
        let pieces = self.bulk_pieces(cpu, regs, privilege, da, s, dst_access, dst_page)?;
        match op.op {
            StringOp::Movs | StringOp::Stos => {
                let mut at = 0;
                for (pa, len) in pieces.into_iter().flatten() {
                    let dst = self.ram.slice_mut(GuestPhys(pa), len).ok()?;
                    dst.copy_from_slice(&a[at..at + len]);
                    at += len;
                }
                Some(true)
            }
            StringOp::Cmps | StringOp::Scas => {
                let mut b = [0u8; 8];
                self.bulk_read(&pieces, &mut b[..s as usize])?;
                let equal = a[..s as usize] == b[..s as usize];
                Some(equal == op.while_equal.unwrap_or(true))
            }
        }
    }

    /// The physical pieces (start, length) of the `s` bytes at linear `lin`, each page
    /// through [`Machine::bulk_page`] in order; `None` if one is not plain or it wraps.
    #[allow(clippy::too_many_arguments)]
    fn bulk_pieces(
        &mut self,
        cpu: &mut CpuState,
        regs: &PagingRegs,
        privilege: Privilege,
        lin: u64,
        s: u64,
        access: Access,
        cache: &mut PageCache,
    ) -> Option<[Option<(u64, usize)>; 2]> {
        lin.checked_add(s - 1)?;
        let first = (PAGE_SIZE - (lin & IN_PAGE)).min(s);
        let p0 = self.bulk_page(cpu, regs, privilege, lin, access, cache)?;
        let head = (p0 | (lin & IN_PAGE), first as usize);
        if first == s {
            return Some([Some(head), None]);
        }
        let p1 = self.bulk_page(cpu, regs, privilege, lin + first, access, cache)?;
        Some([Some(head), Some((p1, (s - first) as usize))])
    }

    /// Reads the bytes of `pieces` into `buf` (their total length); `None` if out of RAM.
    fn bulk_read(&self, pieces: &[Option<(u64, usize)>; 2], buf: &mut [u8]) -> Option<()> {
        let mut at = 0;
        for &(pa, len) in pieces.iter().flatten() {
            buf.get_mut(at..at + len)?
                .copy_from_slice(self.ram.slice(GuestPhys(pa), len).ok()?);
            at += len;
        }
        Some(())
    }

    /// Whether the `s` bytes at linear `lin` are in RAM pages that translate for a read, now
    /// (no side effects: no TLB fill, no A/D bits).
    fn bulk_readable(&self, regs: &PagingRegs, privilege: Privilege, lin: u64, s: u64) -> bool {
        let Some(last) = lin.checked_add(s - 1) else {
            return false;
        };
        [lin, last].into_iter().all(|a| {
            matches!(
                self.translate_peek(regs, a, Access::Read, privilege),
                Ok(Target::Ram(pa)) if self.ram.contains(GuestPhys(pa & !IN_PAGE), PAGE_SIZE)
            )
        })
    }

    /// The physical page of linear `lin` for `access` through the loop's data path, if it is
    /// RAM and, for a store, holds no translated code; `cache` remembers the last one.
    fn bulk_page(
        &mut self,
        cpu: &mut CpuState,
        regs: &PagingRegs,
        privilege: Privilege,
        lin: u64,
        access: Access,
        cache: &mut PageCache,
    ) -> Option<u64> {
        let vpage = lin & !IN_PAGE;
        if let Some((v, p)) = *cache {
            if v == vpage {
                return Some(p);
            }
        }
        let Ok(Target::Ram(pa)) =
            self.translate_with(regs, Some(&mut cpu.tlb), lin, access, privilege)
        else {
            return None;
        };
        let page = pa & !IN_PAGE;
        if !self.ram.contains(GuestPhys(page), PAGE_SIZE) {
            return None;
        }
        let code = self.code.as_ref().is_some_and(|c| c.page_has_code(page));
        if access == Access::Write && code {
            return None;
        }
        *cache = Some((vpage, page));
        Some(page)
    }

    /// Copies `len` bytes of RAM from physical `from` to `to` (memmove: the caller ensured
    /// that is the loop's result). False if out of RAM (the caller checked it is not).
    fn bulk_copy(&mut self, from: u64, to: u64, len: u64) -> bool {
        let size = self.ram.size();
        let Ok(ram) = self.ram.slice_mut(GuestPhys(0), size as usize) else {
            return false;
        };
        let (from, to, len) = (from as usize, to as usize, len as usize);
        if from.checked_add(len).is_none_or(|e| e > ram.len())
            || to.checked_add(len).is_none_or(|e| e > ram.len())
        {
            return false;
        }
        ram.copy_within(from..from + len, to);
        true
    }

    /// Writes `k` elements of `s` bytes of `value` at physical `at`.
    fn bulk_fill(&mut self, at: u64, k: u64, s: u64, value: u64) -> bool {
        let Ok(dst) = self.ram.slice_mut(GuestPhys(at), (k * s) as usize) else {
            return false;
        };
        // Fixed-size element stores (no call per element).
        match s {
            1 => dst.fill(value as u8),
            2 => {
                let v = (value as u16).to_le_bytes();
                dst.chunks_exact_mut(2).for_each(|e| e.copy_from_slice(&v));
            }
            4 => {
                let v = (value as u32).to_le_bytes();
                dst.chunks_exact_mut(4).for_each(|e| e.copy_from_slice(&v));
            }
            _ => {
                let v = value.to_le_bytes();
                dst.chunks_exact_mut(8).for_each(|e| e.copy_from_slice(&v));
            }
        }
        true
    }

    /// How many of the `k` elements from physical `ps` (CMPS) / `pd` on, in the direction of
    /// travel, compare so that the instruction continues (`while_equal`); `None` if out of RAM.
    fn bulk_compare(
        &self,
        op: RepString,
        ps: u64,
        pd: u64,
        k: u64,
        value: u64,
        while_equal: bool,
    ) -> Option<u64> {
        let s = u64::from(op.size);
        let dst = self
            .ram
            .slice(GuestPhys(low(pd, k, s, op.backward)), (k * s) as usize)
            .ok()?;
        let src: &[u8] = match op.op {
            StringOp::Cmps => self
                .ram
                .slice(GuestPhys(low(ps, k, s, op.backward)), (k * s) as usize)
                .ok()?,
            _ => &[],
        };
        if op.op == StringOp::Cmps && while_equal && src == dst {
            // REPE CMPS over equal bytes (the common case): one comparison.
            return Some(k);
        }
        let src = (op.op == StringOp::Cmps).then_some(src);
        let args = (dst, src, value, op.backward, while_equal);
        Some(match op.size {
            1 => continuing::<1>(args) as u64,
            2 => continuing::<2>(args) as u64,
            4 => continuing::<4>(args) as u64,
            _ => continuing::<8>(args) as u64,
        })
    }
}

/// The lowest address of `k` elements of `s` bytes whose first (in the direction of travel)
/// is at `a`.
fn low(a: u64, k: u64, s: u64, backward: bool) -> u64 {
    if backward {
        a - (k - 1) * s
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use translator::decode::decode_block;
    use translator::interp::{run_block, InterpEnv};
    use translator::state::cr::*;
    use translator::state::{reg, rflags};
    use translator::{CpuState, Exception, Helper, Mode};

    use crate::devices::SerialSink;
    use crate::helpers::run_helper;
    use crate::machine::Machine;
    use crate::memory::GuestPhys;
    use crate::mmu::pte::{P, RW};

    const RAM: u64 = 4 << 20;
    const CODE: u64 = 0x1_0000;
    /// Paged worlds: six pages from `DATA` (see `world`).
    const DATA: u64 = 0x40_0000;

    /// The loop alone: the runtime's helpers, but the bulk does nothing.
    struct LoopOnly<'a>(&'a mut Machine);
    impl InterpEnv for LoopOnly<'_> {
        fn helper(&mut self, cpu: &mut CpuState, h: Helper, args: [u64; 3]) -> u64 {
            if h == Helper::RepString {
                0
            } else {
                run_helper(self.0, cpu, h, args)
            }
        }
    }

    /// A machine and CPU: flat (CR0.PE clear), or 4-level paging at CR3 = 0x1000 mapping
    /// DATA + 0x0000 and + 0x1000 to RAM at 0x20_0000 (RW), + 0x2000 read-only, + 0x3000
    /// not present, + 0x4000 to 0x20_0000 again (an alias), + 0x5000 outside RAM (MMIO).
    /// RAM holds a byte pattern at 0x20_0000..0x20_3000 and 0x8000..0x1_0000.
    fn world(paged: bool) -> (Box<Machine>, Box<CpuState>) {
        let mut m = Box::new(Machine::new(RAM, SerialSink::Capture).unwrap());
        for (base, len) in [(0x20_0000u64, 0x3000u64), (0x8000, 0x8000)] {
            for i in 0..len {
                let v = (i * 7 + i / 13) as u8;
                m.ram
                    .write_le(GuestPhys(base + i), 1, u64::from(v))
                    .unwrap();
            }
        }
        let mut cpu = Box::new(CpuState {
            icount_limit: u64::MAX,
            ..CpuState::default()
        });
        if paged {
            // One table per level: 0x1000 (PML4), 0x2000, 0x3000, 0x4000 (PT).
            for (at, next) in [(0x1000, 0x2000), (0x2000, 0x3000), (0x3000, 0x4000)] {
                let idx = match at {
                    0x1000 => (DATA >> 39) & 0x1ff,
                    0x2000 => (DATA >> 30) & 0x1ff,
                    _ => (DATA >> 21) & 0x1ff,
                };
                m.ram
                    .write_le(GuestPhys(at + idx * 8), 8, next | P | RW)
                    .unwrap();
            }
            let pages = [
                Some(0x20_0000 | P | RW),
                Some(0x20_1000 | P | RW),
                Some(0x20_2000 | P),
                None,
                Some(0x20_0000 | P | RW),
                Some(0xE000_0000 | P | RW),
            ];
            for (i, pte) in pages.into_iter().enumerate() {
                let at = 0x4000 + ((DATA >> 12) & 0x1ff) * 8 + i as u64 * 8;
                m.ram.write_le(GuestPhys(at), 8, pte.unwrap_or(0)).unwrap();
            }
            cpu.cr0 = CR0_PE | CR0_PG | CR0_WP;
            cpu.cr3 = 0x1000;
            cpu.cr4 = CR4_PAE;
            cpu.efer = EFER_LME | EFER_LMA;
        }
        (m, cpu)
    }

    /// Runs the one instruction `code` at CODE from `regs` (RCX, RSI, RDI, RAX), DF =
    /// `df`, with and without the bulk, and checks that RAM (page tables and their A/D bits
    /// included), the registers, RIP, the exit, the exception and `icount` agree. Returns
    /// the bulk run's CPU and how many calls of the helper it made.
    fn same_as_loop(
        paged: bool,
        code: &[u8],
        regs: [u64; 4],
        df: bool,
        limit: u64,
    ) -> (Box<CpuState>, u64) {
        let block = decode_block(code, CODE, Mode::LONG64_CPL0, 1);
        let mut runs = Vec::new();
        for bulk in [true, false] {
            let (mut m, mut cpu) = world(paged);
            let [rcx, rsi, rdi, rax] = regs;
            cpu.gpr[reg::RCX] = rcx;
            cpu.gpr[reg::RSI] = rsi;
            cpu.gpr[reg::RDI] = rdi;
            cpu.gpr[reg::RAX] = rax;
            cpu.rip = CODE;
            cpu.icount = 1000;
            cpu.icount_limit = limit;
            if df {
                cpu.rflags |= rflags::DF;
            }
            let exit = if bulk {
                run_block(&mut cpu, &mut *m, &block.insns, Mode::LONG64_CPL0).exit
            } else {
                run_block(
                    &mut cpu,
                    &mut LoopOnly(&mut m),
                    &block.insns,
                    Mode::LONG64_CPL0,
                )
                .exit
            };
            let calls = m.counters.get(Helper::RepString);
            let ram = m.ram.slice(GuestPhys(0), RAM as usize).unwrap().to_vec();
            runs.push((exit, cpu, ram, calls));
        }
        let (loop_run, bulk_run) = (runs.pop().unwrap(), runs.pop().unwrap());
        let what = format!("{code:x?} {regs:x?} df={df} paged={paged} limit={limit}");
        assert_eq!(bulk_run.0, loop_run.0, "exit: {what}");
        assert_eq!(bulk_run.1.gpr, loop_run.1.gpr, "registers: {what}");
        assert_eq!(bulk_run.1.rip, loop_run.1.rip, "rip: {what}");
        assert_eq!(bulk_run.1.icount, loop_run.1.icount, "icount: {what}");
        assert_eq!(bulk_run.1.exception(), loop_run.1.exception(), "{what}");
        assert_eq!(bulk_run.1.full_rflags(), loop_run.1.full_rflags(), "{what}");
        if let Some(i) = (0..RAM as usize).find(|&i| bulk_run.2[i] != loop_run.2[i]) {
            panic!("RAM differs first at {i:#x}: {what}");
        }
        (bulk_run.1, bulk_run.3)
    }

    /// REP MOVS/STOS of every size (REX.W for 8), both directions.
    fn rep(op: u8, size: u64) -> Vec<u8> {
        let op = if size == 1 { op } else { op + 1 };
        match size {
            2 => vec![0xf3, 0x66, op],
            8 => vec![0xf3, 0x48, op],
            _ => vec![0xf3, op],
        }
    }

    #[test]
    fn copies_match_the_loop_whatever_the_overlap_and_pages() {
        let mut bulked = 0;
        for size in [1u64, 2, 4, 8] {
            for df in [false, true] {
                // Distances in bytes: close overlaps both ways, exact element multiples,
                // far apart; base addresses across a page boundary (0x9000) and unaligned.
                for dist in [
                    -17i64, -12, -10, -9, -8, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 8, 10, 12, 16,
                    33, 100, 3000,
                ] {
                    for (base, count) in [(0x8ff3u64, 700u64), (0x9400, 1000), (0xa000, 2)] {
                        let dst = base.wrapping_add_signed(dist);
                        let regs = [count, base, dst, 0x1122_3344_5566_7788];
                        let (_, calls) = same_as_loop(false, &rep(0xa4, size), regs, df, u64::MAX);
                        bulked += calls;
                    }
                }
            }
        }
        assert!(bulked > 0);
    }

    #[test]
    fn fills_match_the_loop() {
        for size in [1u64, 2, 4, 8] {
            for df in [false, true] {
                for (dst, count) in [(0x8ff9u64, 3000u64), (0xc000, 1), (0xc001, 0)] {
                    same_as_loop(
                        false,
                        &rep(0xaa, size),
                        [count, 0, dst, 0xa1b2_c3d4_e5f6_0718],
                        df,
                        u64::MAX,
                    );
                }
            }
        }
    }

    #[test]
    fn compares_match_the_loop_and_leave_the_ending_iteration() {
        // Mismatches planted in a copy of the pattern (0x8000.. copied to 0xc000..).
        let repe_cmpsb = [0xf3, 0xa6];
        let cases: [&[u8]; 6] = [
            &repe_cmpsb,
            &[0xf2, 0xa6],       // repne cmpsb
            &[0xf3, 0x48, 0xa7], // repe cmpsq
            &[0xf2, 0x66, 0xaf], // repne scasw
            &[0xf3, 0xae],       // repe scasb
            &[0xf2, 0x48, 0xaf], // repne scasq
        ];
        for code in cases {
            for df in [false, true] {
                for (rsi, rdi, count) in [
                    (0x8000u64, 0x8000u64, 5000u64),
                    (0x8100, 0x8101, 300),
                    (0x9ff8, 0xa000, 9),
                ] {
                    same_as_loop(false, code, [count, rsi, rdi, 0x0707], df, u64::MAX);
                }
            }
        }
        // Equal for 99 bytes: the bulk does 98 at most... all of them but the last one, which
        // the loop runs and which sets the flags.
        let (cpu, calls) =
            same_as_loop(false, &repe_cmpsb, [99, 0x8000, 0x8000, 0], false, u64::MAX);
        assert_eq!((cpu.gpr[reg::RCX], calls), (0, 1));
        assert_ne!(cpu.full_rflags() & rflags::ZF, 0);
    }

    #[test]
    fn a_fault_in_the_middle_leaves_the_loops_state() {
        // Stores run from RW pages into the read-only page and into the not-present one,
        // loads into the not-present page and MMIO, both directions; the alias page makes
        // a physical overlap that the linear addresses do not show.
        let near = |page: u64, off: i64| (DATA + page * 0x1000).wrapping_add_signed(off);
        let cases = [
            (rep(0xa4, 1), [5000, near(0, 16), near(1, 0x10)], false),
            (rep(0xa4, 8), [900, near(0, 0), near(1, 0x100)], false),
            (rep(0xa4, 4), [3000, near(2, 0), near(0, 0x10)], false),
            (rep(0xa4, 2), [3000, near(4, 8), near(1, -8)], false),
            (rep(0xa4, 1), [3000, near(4, 0), near(0, 1)], false),
            (rep(0xa4, 1), [3000, near(0, 0), near(4, 1)], false),
            (rep(0xaa, 8), [2000, 0, near(1, 0x800)], false),
            (rep(0xaa, 2), [9000, 0, near(5, 0x10)], true),
            (vec![0xf3, 0xa6], [9000, near(0, 0), near(4, 0)], false),
            (vec![0xf2, 0xae], [9000, 0, near(4, 0x20)], false),
            (rep(0xa4, 8), [2000, near(1, 0xff0), near(0, 0x100)], true),
        ];
        for (code, [rcx, rsi, rdi], df) in cases {
            let (cpu, calls) = same_as_loop(true, &code, [rcx, rsi, rdi, 0x5a], df, u64::MAX);
            assert_eq!(calls, 1, "{code:x?}");
            assert!(cpu.exception().is_some(), "{code:x?} {rcx} {rsi:x} {rdi:x}");
        }
        // Elements across pages, paged: unaligned copies and fills over page boundaries into
        // the read-only page, a compare whose elements run onto MMIO.
        let cases = [
            (rep(0xa4, 4), [2000, near(0, 0x7fd), near(1, -0x7fe)], false),
            (rep(0xa4, 8), [2000, near(1, 0x7fb), near(2, -0x5)], true),
            (rep(0xaa, 8), [2000, 0, near(0, 0xffb)], false),
            (
                vec![0xf3, 0x48, 0xa7],
                [2000, near(0, 3), near(4, 3)],
                false,
            ),
            (
                vec![0xf3, 0x66, 0xa7],
                [2000, near(0, 0xffd), near(4, 0xffd)],
                true,
            ),
        ];
        for (code, [rcx, rsi, rdi], df) in cases {
            same_as_loop(true, &code, [rcx, rsi, rdi, 0x5a], df, u64::MAX);
        }
        // The store into the read-only page: precise, after whole iterations.
        let (cpu, _) = same_as_loop(
            true,
            &rep(0xaa, 4),
            [2000, 0, near(1, 0xffe), 1],
            false,
            u64::MAX,
        );
        assert_eq!(
            cpu.exception(),
            Some(Exception::PageFault {
                addr: near(2, 0),
                code: 0b11
            })
        );
        assert_eq!(
            cpu.gpr[reg::RDI],
            near(1, 0xffe),
            "the element across the pages is not done"
        );
    }

    #[test]
    fn the_budget_stops_the_bulk_where_the_loop_stops() {
        for limit in [0, 1000, 1001, 1002, 1003, 1050, 5000] {
            for paged in [false, true] {
                let rdi = if paged { DATA + 8 } else { 0x9000 };
                let (cpu, _) =
                    same_as_loop(paged, &rep(0xa4, 1), [3000, rdi - 8, rdi, 0], false, limit);
                assert!(cpu.icount <= limit.max(1001), "limit {limit}");
            }
        }
    }

    #[test]
    fn code_pages_are_left_to_the_loop() {
        use crate::machine::code_tracking::fake::FakeTracking;
        let (mut m, mut cpu) = world(false);
        let code = vec![(0xa800, 0xa804)];
        m.set_code_tracking(Some(Box::new(FakeTracking {
            code,
            ..Default::default()
        })));
        let desc = translator::helpers::RepString {
            op: translator::helpers::StringOp::Movs,
            size: 1,
            while_equal: None,
            backward: false,
        };
        cpu.helper_out[2] = desc.encode();
        // Stores up to the code page, none into it; loads from it are fine.
        assert_eq!(m.rep_string(&mut cpu, 0x8000, 0x9f00, 0x1000), 0x100);
        assert_eq!(m.rep_string(&mut cpu, 0xa000, 0xc000, 0x10), 0xf);
        cpu.helper_out[2] = translator::helpers::RepString {
            backward: true,
            ..desc
        }
        .encode();
        assert_eq!(m.rep_string(&mut cpu, 0x8000, 0xb0ff, 0x1000), 0x100);
    }

    #[test]
    fn an_element_across_pages_is_done_on_its_own() {
        let (mut m, mut cpu) = world(false);
        let movsw = translator::helpers::RepString {
            op: translator::helpers::StringOp::Movs,
            size: 2,
            while_equal: None,
            backward: false,
        };
        cpu.helper_out[2] = movsw.encode();
        // The first source element is 0x8fff..0x9001: all nine before the last are done.
        assert_eq!(m.rep_string(&mut cpu, 0x8fff, 0xc000, 10), 9);
        let want: Vec<u8> = m.ram.slice(GuestPhys(0x8fff), 18).unwrap().to_vec();
        assert_eq!(m.ram.slice(GuestPhys(0xc000), 18).unwrap(), &want[..]);
        // Beyond RAM's end the second page is not RAM: nothing.
        assert_eq!(m.rep_string(&mut cpu, RAM - 1, 0xc000, 10), 0);
    }

    #[test]
    fn the_helper_refuses_what_it_cannot_prove() {
        let (mut m, mut cpu) = world(false);
        // Garbage descriptors, RCX 0 and 1, no budget.
        cpu.helper_out[2] = 0xffff;
        assert_eq!(m.rep_string(&mut cpu, 0x8000, 0x9000, 100), 0);
        cpu.helper_out[2] = 0x100;
        assert_eq!(m.rep_string(&mut cpu, 0x8000, 0x9000, 0), 0);
        assert_eq!(m.rep_string(&mut cpu, 0x8000, 0x9000, 1), 0);
        cpu.helper_out[1] = u64::MAX - 1;
        assert_eq!(m.rep_string(&mut cpu, 0x8000, 0x9000, 100), 0);
        cpu.helper_out[1] = 0;
        // Addresses beyond RAM, near 2^64 (wrapping), and an element over the top.
        assert_eq!(m.rep_string(&mut cpu, RAM - 0x10, 0x9000, 100), 0x10);
        assert_eq!(m.rep_string(&mut cpu, 0x8000, u64::MAX - 3, 100), 0);
        cpu.helper_out[2] = 0x801 | 1 << 16; // std; rep stosq from 4: one, then the loop wraps
        assert_eq!(m.rep_string(&mut cpu, 0, 4, 100), 1);
        // A 32-bit address size never calls it: the loop wraps.
        let code = [0x67, 0xf3, 0xa4];
        let (_, calls) = same_as_loop(
            false,
            &code,
            [0x1_0000_0100, 0xffff_fff0, 0x9000, 0],
            false,
            u64::MAX,
        );
        assert_eq!(calls, 0);
        // With debug accesses collected, nothing.
        cpu.helper_out[2] = 0x100;
        m.debug_accesses.start();
        assert_eq!(m.rep_string(&mut cpu, 0x8000, 0x9000, 100), 0);
    }
}
