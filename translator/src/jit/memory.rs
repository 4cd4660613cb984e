//! Guest memory accesses, lowered per [`MemoryModel`].
//!
//! Flat model, load of `n` bytes at `addr`:
//! ```text
//!     if addr <=u ram_size - n { v = load [ram_base + addr] }      (inline, no trap possible)
//!     else                     { v = MemRead(addr, n); status check → fault label }  (cold)
//! ```
//! Store: the same bounds check against the part of RAM the code bitmap covers, then the
//! bitmap bytes of the first and last byte's pages; a marked page takes the `MemWrite` helper
//! so the runtime can invalidate translated code (self-modifying code).
//!
//! Constant addresses are checked at translation time, leaving only the path they take.
//! Slow paths are cold blocks: the hot path is a compare, a branch and the access.
//!
//! Invariant: a guest address becomes a host address only after the bounds check proved
//! `addr + n <= ram_size` (and, for stores, `addr + n <= 4096 * code_bitmap_len`, so both
//! bitmap bytes read are inside the bitmap).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::emitter::{clif, ClifEmitter};
use super::MemoryModel;
use crate::emit::ValueOps;
use crate::helpers::Helper;
use crate::ir::Ty;

/// Guest page size the code bitmap is indexed by.
const PAGE_SHIFT: u32 = 12;

impl ClifEmitter<'_> {
    /// Load `ty` from guest address `addr` (an `I64`).
    pub(super) fn guest_load(&mut self, ty: Ty, addr: Value) -> Value {
        match self.mem {
            MemoryModel::Flat {
                ram_base, ram_size, ..
            } => {
                let limit = ram_size.checked_sub(u64::from(ty.bytes()));
                self.flat_load(ty, addr, ram_base as u64, limit)
            }
        }
    }

    /// Store `v` (its type gives the size) to guest address `addr` (an `I64`).
    pub(super) fn guest_store(&mut self, addr: Value, v: Value) {
        match self.mem {
            MemoryModel::Flat {
                ram_base,
                ram_size,
                code_bitmap,
                code_bitmap_len,
            } => {
                let covered = code_bitmap_len.saturating_mul(1 << PAGE_SHIFT);
                let bytes = u64::from(self.ty(v).bytes());
                let limit = ram_size.min(covered).checked_sub(bytes);
                self.flat_store(addr, v, ram_base as u64, code_bitmap as u64, limit)
            }
        }
    }

    fn flat_load(&mut self, ty: Ty, addr: Value, base: u64, limit: Option<u64>) -> Value {
        let Some(limit) = limit else {
            return self.slow_load(ty, addr);
        };
        if let Some(a) = self.const_of(addr) {
            return if a <= limit {
                self.host_load(ty, base, addr)
            } else {
                self.slow_load(ty, addr)
            };
        }
        let lim = self.iconst(Ty::I64, limit);
        let inside = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, addr, lim);
        let (fast, slow) = (self.b.create_block(), self.b.create_block());
        let (join, v) = self.join_block(ty);
        self.b.ins().brif(inside, fast, &[], slow, &[]);
        let cold = self.is_cold();
        self.switch_sealed(fast, cold);
        let x = self.host_load(ty, base, addr);
        self.jump_with(join, &[x]);
        self.switch_sealed(slow, true);
        let y = self.read_helper(ty, addr);
        self.check_status_then(join, &[y]);
        self.switch_sealed(join, cold);
        v
    }

    fn flat_store(&mut self, addr: Value, v: Value, base: u64, bitmap: u64, limit: Option<u64>) {
        let Some(limit) = limit else {
            return self.slow_store(addr, v);
        };
        let konst = self.const_of(addr);
        if konst.is_some_and(|a| a > limit) {
            return self.slow_store(addr, v);
        }
        let cold = self.is_cold();
        let (fast, slow, join) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        if konst.is_none() {
            let lim = self.iconst(Ty::I64, limit);
            let inside = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, addr, lim);
            let check = self.b.create_block();
            self.b.ins().brif(inside, check, &[], slow, &[]);
            self.switch_sealed(check, cold);
        }
        let marked = self.code_marked(addr, u64::from(self.ty(v).bytes()), bitmap);
        self.b.ins().brif(marked, slow, &[], fast, &[]);
        self.switch_sealed(fast, cold);
        let p = self.host_addr(base, addr);
        self.b.ins().store(self.regions.guest, v, p, 0);
        self.jump_with(join, &[]);
        self.switch_sealed(slow, true);
        self.write_helper(addr, v);
        self.check_status_then(join, &[]);
        self.switch_sealed(join, cold);
    }

    /// Nonzero (an `I32`) if the page of `addr` or of `addr + bytes - 1` holds code.
    fn code_marked(&mut self, addr: Value, bytes: u64, bitmap: u64) -> Value {
        let byte_of = |e: &mut Self, a: Value| {
            let p = match e.const_of(a) {
                Some(c) => e.iconst(Ty::I64, bitmap.wrapping_add(c >> PAGE_SHIFT)),
                None => {
                    let page = e.b.ins().ushr_imm_u(a, i64::from(PAGE_SHIFT));
                    let bm = e.iconst(Ty::I64, bitmap);
                    e.b.ins().iadd(bm, page)
                }
            };
            e.b.ins().uload8(types::I32, e.regions.bitmap, p, 0)
        };
        let first = byte_of(self, addr);
        if bytes <= 1 {
            return first;
        }
        let last_addr = match self.const_of(addr) {
            Some(c) => {
                if c >> PAGE_SHIFT == c.wrapping_add(bytes - 1) >> PAGE_SHIFT {
                    return first;
                }
                self.iconst(Ty::I64, c.wrapping_add(bytes - 1))
            }
            None => self.b.ins().iadd_imm_u(addr, (bytes - 1) as i64),
        };
        let last = byte_of(self, last_addr);
        self.b.ins().bor(first, last)
    }

    /// `ram_base + addr` (folded when `addr` is constant).
    fn host_addr(&mut self, base: u64, addr: Value) -> Value {
        match self.const_of(addr) {
            Some(a) => self.iconst(Ty::I64, base.wrapping_add(a)),
            None => {
                let b = self.iconst(Ty::I64, base);
                self.b.ins().iadd(b, addr)
            }
        }
    }

    fn host_load(&mut self, ty: Ty, base: u64, addr: Value) -> Value {
        let p = self.host_addr(base, addr);
        self.b.ins().load(clif(ty), self.regions.guest, p, 0)
    }

    /// `MemRead` without the status check.
    fn read_helper(&mut self, ty: Ty, addr: Value) -> Value {
        let size = self.iconst(Ty::I64, u64::from(ty.bytes()));
        let zero = self.iconst(Ty::I64, 0);
        let r = self.call_raw(Helper::MemRead, [addr, size, zero]);
        self.coerce(r, ty)
    }

    /// `MemWrite` without the status check.
    fn write_helper(&mut self, addr: Value, v: Value) {
        let size = self.iconst(Ty::I64, u64::from(self.ty(v).bytes()));
        self.call_raw(Helper::MemWrite, [addr, size, v]);
    }

    fn slow_load(&mut self, ty: Ty, addr: Value) -> Value {
        let r = self.read_helper(ty, addr);
        self.check_status();
        r
    }

    fn slow_store(&mut self, addr: Value, v: Value) {
        self.write_helper(addr, v);
        self.check_status();
    }
}
