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
//! - An element that lies across two pages ends the bulk (the loop takes it and the rest).
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
//! - Nothing happens while a single-stepped instruction's accesses are being collected for
//!   the debug registers.

use translator::helpers::{RepString, StringOp};
use translator::CpuState;

use super::{Machine, Privilege, Target, PAGE_SIZE};
use crate::memory::{Access, GuestPhys};
use crate::mmu::PagingRegs;

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
                o / s + 1
            } else {
                (PAGE_SIZE - o) / s
            }
        };
        let (mut src_page, mut dst_page): (PageCache, PageCache) = (None, None);
        let mut done = 0u64;
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
                        k = ahead / s;
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
                break;
            }
        }
        done
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
        if s == 1 {
            dst.fill(value as u8);
        } else {
            let v = &value.to_le_bytes()[..s as usize];
            for e in dst.chunks_exact_mut(s as usize) {
                e.copy_from_slice(v);
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
        let src = match op.op {
            StringOp::Cmps => self
                .ram
                .slice(GuestPhys(low(ps, k, s, op.backward)), (k * s) as usize)
                .ok()?,
            _ => &value.to_le_bytes()[..],
        };
        let s = s as usize;
        for i in 0..k as usize {
            // Element i in the direction of travel, as an offset into the chunk.
            let at = if op.backward {
                (k as usize - 1 - i) * s
            } else {
                i * s
            };
            let b = &dst[at..at + s];
            let a = match op.op {
                StringOp::Cmps => &src[at..at + s],
                _ => &src[..s],
            };
            if (a == b) != while_equal {
                return Some(i as u64);
            }
        }
        Some(k)
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
