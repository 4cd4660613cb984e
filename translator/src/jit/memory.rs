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
//! The x87 store probe ([`Helper::ProbeWrite`], made before a store the x87 state change
//! must not be separated from) takes the same checks without the access: bytes the inline
//! store would write need no helper, anything else calls it (cold).
//!
//! Constant addresses are checked at translation time, leaving only the path they take.
//! Slow paths are cold blocks: the hot path is a compare, a branch and the access.
//!
//! Tlb model (paging), load of `n` bytes at linear `addr` through set `s`:
//! ```text
//!     e = cpu + off_tlb_set(s) + ((addr >> 12) % TLB_ENTRIES) * 32
//!     if [e + read_tag] == (addr + n - 1) & !0xFFF { v = load [addr + [e + addend]] }
//!     else { v = MemRead(addr, n); status check → fault label }                (cold)
//! ```
//! Stores compare `write_tag`. The entry's offset in the set is `rotr(addr, 7) & 0x1FE0`
//! (index and scale in one mask; a rotation rather than a shift because with BMI2 it is a
//! `rorx` that needs no copy of `addr`), so a hit is 9 host instructions: `rorx`, `and`, load
//! of the tag, `lea` + `and` for the last byte's page, `cmp`, `jne` to the cold slow path,
//! load of the addend, the access. (Cranelift does not fold loads into a branch's compare, so
//! the tag load stays separate.) The slow path returns to the join through a cold block of
//! its own, so no split edge lands between the check and the hit. Constant addresses take
//! the same runtime check (the mapping changes under the code), with the entry's offset and
//! the compared page folded.
//!
//! Invariants:
//! - Flat: a guest address becomes a host address only after the bounds check proved
//!   `addr + n <= ram_size` (and, for stores, `addr + n <= 4096 * code_bitmap_len`, so both
//!   bitmap bytes read are inside the bitmap).
//! - Tlb: a guest address becomes a host address only by adding the addend of an entry whose
//!   tag matched the page of the access's first and last byte; generated code never writes the
//!   TLB, so the tag loads are ordinary `CpuState` loads (calls are barriers). The host access
//!   itself carries no `notrap`/`aligned` assumption: Cranelift keeps it after the tag check.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, Endianness, InstBuilder, MemFlagsData, Type, Value};

use super::emitter::{clif, ClifEmitter};
use super::MemoryModel;
use crate::emit::{Emitter, ValueOps};
use crate::helpers::Helper;
use crate::ir::Ty;
use crate::state::{
    self, off_tlb_set, ExitReason, Tlb, OFF_TLB_ADDEND, OFF_TLB_INLINE_HITS, OFF_TLB_READ_TAG,
    OFF_TLB_WRITE_TAG, TLB_ENTRIES, TLB_ENTRY_BYTES,
};

/// Guest page size the code bitmap and the soft TLB are indexed by.
const PAGE_SHIFT: u32 = 12;

/// Sets in [`Tlb`] (supervisor, user).
const TLB_SETS: usize = 2;
const _: () = assert!(
    std::mem::size_of::<Tlb>() == TLB_SETS * TLB_ENTRIES * TLB_ENTRY_BYTES as usize
        && TLB_ENTRIES.is_power_of_two()
        && TLB_ENTRY_BYTES.is_power_of_two()
);

/// `(addr >> TLB_SHIFT) & TLB_MASK` (equally `rotr(addr, TLB_SHIFT) & TLB_MASK`) is the byte
/// offset of `addr`'s entry in a set, `((addr >> 12) % TLB_ENTRIES) * TLB_ENTRY_BYTES`.
const TLB_SHIFT: u32 = PAGE_SHIFT - TLB_ENTRY_BYTES.trailing_zeros();
const TLB_MASK: u64 = (TLB_ENTRIES as u64 - 1) << TLB_ENTRY_BYTES.trailing_zeros();

/// The page-frame bits of an address (what a tag holds).
const PAGE_MASK: u64 = !((1 << PAGE_SHIFT) - 1);

/// The largest probe checked inline: its first and last byte lie on the same or adjacent
/// pages, so the two bitmap bytes (or one TLB tag) cover every page it touches.
const PROBE_INLINE_MAX: u64 = 1 << PAGE_SHIFT;

impl ClifEmitter<'_> {
    /// Load `ty` from guest address `addr` (an `I64`).
    pub(super) fn guest_load(&mut self, ty: Ty, addr: Value) -> Value {
        self.guest_load_t(clif(ty), addr)
    }

    /// Load a value of Cranelift type `t` (an integer, or `I8X16` for 16 bytes) from guest
    /// address `addr` (an `I64`).
    pub(super) fn guest_load_t(&mut self, t: Type, addr: Value) -> Value {
        self.guest_load_lo(t, addr, None)
    }

    /// [`ClifEmitter::guest_load_t`], the value put in lane 0 of a zeroed vector of type
    /// `lo` if given: in the same block as the load (which it then folds into), on each
    /// path.
    pub(super) fn guest_load_lo(&mut self, t: Type, addr: Value, lo: Option<Type>) -> Value {
        match self.mem {
            MemoryModel::Flat {
                ram_base, ram_size, ..
            } => {
                let limit = ram_size.checked_sub(u64::from(t.bytes()));
                self.flat_load(t, addr, ram_base as u64, limit, lo)
            }
            MemoryModel::Tlb { set } if set < TLB_SETS => self.tlb_load(t, addr, set, lo),
            MemoryModel::Tlb { .. } => {
                let x = self.slow_load(t, addr);
                self.in_lane0(x, lo)
            }
        }
    }

    /// `x` in lane 0 of a zeroed vector of type `lo`, or `x` itself.
    fn in_lane0(&mut self, x: Value, lo: Option<Type>) -> Value {
        match lo {
            Some(vt) => self.b.ins().scalar_to_vector(vt, x),
            None => x,
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
                let bytes = u64::from(self.b.func.dfg.value_type(v).bytes());
                let limit = ram_size.min(covered).checked_sub(bytes);
                self.flat_store(addr, v, ram_base as u64, code_bitmap as u64, limit)
            }
            MemoryModel::Tlb { set } if set < TLB_SETS => self.tlb_store(addr, v, set),
            MemoryModel::Tlb { .. } => self.slow_store(addr, v),
        }
    }

    /// [`Helper::ProbeWrite`] `(addr, bytes)` with the store fast path's checks inline: a
    /// probe of bytes the inline store would write (flat: inside the bitmap's part of RAM
    /// and on no code page; Tlb: a write-tag hit, which the runtime grants only to dirty,
    /// writable pages without translated code) can neither fault nor stop, so it does
    /// nothing; anything else calls the helper (cold) and checks its status.
    pub(super) fn probe_write(&mut self, args: [Value; 3]) {
        let bytes = match self.const_of(args[1]) {
            Some(n @ 1..=PROBE_INLINE_MAX) => n,
            _ => return self.probe_helper(args),
        };
        let addr = self.coerce(args[0], Ty::I64);
        let konst = self.const_of(addr);
        let check = match self.mem {
            MemoryModel::Flat {
                ram_size,
                code_bitmap,
                code_bitmap_len,
                ..
            } => {
                let covered = code_bitmap_len.saturating_mul(1 << PAGE_SHIFT);
                match ram_size.min(covered).checked_sub(bytes) {
                    Some(limit) if konst.is_none_or(|a| a <= limit) => {
                        InlineProbe::Flat(limit, code_bitmap as u64)
                    }
                    _ => return self.probe_helper(args),
                }
            }
            MemoryModel::Tlb { set } if set < TLB_SETS => InlineProbe::Tlb(set),
            MemoryModel::Tlb { .. } => return self.probe_helper(args),
        };
        self.ensure_live();
        let cold = self.is_cold();
        let (fast, slow, join) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        match check {
            InlineProbe::Flat(limit, bitmap) => {
                if konst.is_none() {
                    let lim = self.iconst(Ty::I64, limit);
                    let inside = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, addr, lim);
                    let in_ram = self.b.create_block();
                    self.b.ins().brif(inside, in_ram, &[], slow, &[]);
                    self.switch_sealed(in_ram, cold);
                }
                let marked = self.code_marked(addr, bitmap);
                self.b.ins().brif(marked, slow, &[], fast, &[]);
                self.terminated();
            }
            InlineProbe::Tlb(set) => {
                self.tlb_probe(addr, bytes as u32, set, OFF_TLB_WRITE_TAG, fast, slow);
            }
        }
        self.switch_sealed(fast, cold);
        self.jump_with(join, &[]);
        self.switch_sealed(slow, true);
        self.call_raw(Helper::ProbeWrite, args);
        self.cold_status_then(join, &[]);
        self.switch_sealed(join, cold);
    }

    /// [`Helper::ProbeWrite`] through the helper, then the status check.
    fn probe_helper(&mut self, args: [Value; 3]) {
        self.call_raw(Helper::ProbeWrite, args);
        self.check_status();
    }

    fn flat_load(
        &mut self,
        ty: Type,
        addr: Value,
        base: u64,
        limit: Option<u64>,
        lo: Option<Type>,
    ) -> Value {
        let Some(limit) = limit else {
            let x = self.slow_load(ty, addr);
            return self.in_lane0(x, lo);
        };
        if let Some(a) = self.const_of(addr) {
            let x = if a <= limit {
                self.host_load(ty, base, addr)
            } else {
                self.slow_load(ty, addr)
            };
            return self.in_lane0(x, lo);
        }
        let lim = self.iconst(Ty::I64, limit);
        let inside = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, addr, lim);
        let (fast, slow) = (self.b.create_block(), self.b.create_block());
        let (join, v) = self.join_block_t(lo.unwrap_or(ty));
        self.b.ins().brif(inside, fast, &[], slow, &[]);
        let cold = self.is_cold();
        self.switch_sealed(fast, cold);
        let x = self.host_load(ty, base, addr);
        let x = self.in_lane0(x, lo);
        self.jump_with(join, &[x]);
        self.switch_sealed(slow, true);
        let y = self.read_helper(ty, addr);
        let y = self.in_lane0(y, lo);
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
        let marked = self.code_marked(addr, bitmap);
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

    /// [`crate::emit::Emitter::check_range`] in the flat model: one bounds check (and, for a
    /// write, the code bitmap's guard byte of the range's first page, read at the address
    /// clamped to the limit so it lies inside the bitmap whatever `lo` is) and one
    /// branch to a cold block that sets `status` to [`ExitReason::CodeModified`] and takes
    /// the fault label. `false` (nothing emitted) in the TLB model, outside an instruction,
    /// or for a range the inline checks do not cover.
    pub(super) fn check_flat_range(&mut self, lo: Value, bytes: u64, write: bool) -> bool {
        let MemoryModel::Flat {
            ram_size,
            code_bitmap,
            code_bitmap_len,
            ..
        } = self.mem
        else {
            return false;
        };
        let Some(fault) = self.fault.filter(|&l| self.labels.contains(l)) else {
            return false;
        };
        let covered = code_bitmap_len.saturating_mul(1 << PAGE_SHIFT);
        let top = if write {
            ram_size.min(covered)
        } else {
            ram_size
        };
        let Some(limit) = top.checked_sub(bytes) else {
            return false;
        };
        if bytes == 0 || bytes > PROBE_INLINE_MAX || !self.live {
            return false;
        }
        let lim = self.iconst(Ty::I64, limit);
        let outside = self.b.ins().icmp(IntCC::UnsignedGreaterThan, lo, lim);
        let bad = if write {
            let at = self.b.ins().umin(lo, lim);
            let marked = self.code_marked(at, code_bitmap as u64);
            let outside = self.b.ins().uextend(types::I32, outside);
            self.b.ins().bor(outside, marked)
        } else {
            outside
        };
        let cold = self.is_cold();
        let (leave, go) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(bad, leave, &[], go, &[]);
        self.switch_sealed(leave, true);
        self.store_cpu_const(state::OFF_STATUS, ExitReason::CodeModified as u64);
        self.fault_used = true;
        self.targeted.insert(fault);
        self.b.set_cold_block(fault);
        self.b.ins().jump(fault, &[]);
        self.switch_sealed(go, cold);
        true
    }

    /// A load of an address inside a range [`ClifEmitter::check_flat_range`] checked.
    pub(super) fn load_in_checked(&mut self, ty: Ty, addr: Value) -> Value {
        match self.mem {
            MemoryModel::Flat { ram_base, .. } => self.host_load(clif(ty), ram_base as u64, addr),
            MemoryModel::Tlb { .. } => self.guest_load(ty, addr),
        }
    }

    /// A store to an address inside a range [`ClifEmitter::check_flat_range`] checked for
    /// writing.
    pub(super) fn store_in_checked(&mut self, addr: Value, v: Value) {
        match self.mem {
            MemoryModel::Flat { ram_base, .. } => {
                let p = self.host_addr(ram_base as u64, addr);
                self.b.ins().store(self.regions.guest, v, p, 0);
            }
            MemoryModel::Tlb { .. } => self.guest_store(addr, v),
        }
    }

    /// Nonzero (an `I32`) if a store at `addr` may hit code: the guard byte of its page,
    /// which covers that page and the next ([`MemoryModel::Flat`]), so every caller keeps
    /// its stores to a page at most ([`PROBE_INLINE_MAX`]).
    fn code_marked(&mut self, addr: Value, bitmap: u64) -> Value {
        let p = match self.const_of(addr) {
            Some(c) => self.iconst(Ty::I64, bitmap.wrapping_add(c >> PAGE_SHIFT)),
            None => {
                let page = self.b.ins().ushr_imm_u(addr, i64::from(PAGE_SHIFT));
                let bm = self.iconst(Ty::I64, bitmap);
                self.b.ins().iadd(bm, page)
            }
        };
        self.b.ins().uload8(types::I32, self.regions.bitmap, p, 0)
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

    fn host_load(&mut self, ty: Type, base: u64, addr: Value) -> Value {
        let p = self.host_addr(base, addr);
        self.b.ins().load(ty, self.regions.guest, p, 0)
    }

    /// `MemRead` without the status check. A 16-byte read returns its high half in
    /// `helper_out[0]`.
    fn read_helper(&mut self, ty: Type, addr: Value) -> Value {
        let size = self.iconst(Ty::I64, u64::from(ty.bytes()));
        let zero = self.iconst(Ty::I64, 0);
        let r = self.call_raw(Helper::MemRead, [addr, size, zero]);
        if ty.is_vector() {
            let hi = self.load_state(Ty::I64, crate::state::OFF_HELPER_OUT);
            return self.v_from_halves(r, hi);
        }
        self.coerce(r, Ty::from_bytes(ty.bytes() as usize).unwrap_or(Ty::I64))
    }

    /// `MemWrite` without the status check. A 16-byte store passes its high half in
    /// `helper_out[0]`.
    fn write_helper(&mut self, addr: Value, v: Value) {
        let t = self.b.func.dfg.value_type(v);
        let size = self.iconst(Ty::I64, u64::from(t.bytes()));
        if t.is_vector() {
            let (lo, hi) = self.v_halves(v);
            self.store_state(crate::state::OFF_HELPER_OUT, hi);
            self.call_raw(Helper::MemWrite, [addr, size, lo]);
            return;
        }
        self.call_raw(Helper::MemWrite, [addr, size, v]);
    }

    fn slow_load(&mut self, ty: Type, addr: Value) -> Value {
        let r = self.read_helper(ty, addr);
        self.check_status();
        r
    }

    fn slow_store(&mut self, addr: Value, v: Value) {
        self.write_helper(addr, v);
        self.check_status();
    }

    // ------------------------------------------------------------------ soft TLB

    fn tlb_load(&mut self, ty: Type, addr: Value, set: usize, lo: Option<Type>) -> Value {
        self.ensure_live();
        let cold = self.is_cold();
        let (fast, slow) = (self.b.create_block(), self.b.create_block());
        let (join, v) = self.join_block_t(lo.unwrap_or(ty));
        let entry = self.tlb_probe(addr, ty.bytes(), set, OFF_TLB_READ_TAG, fast, slow);
        self.switch_sealed(fast, cold);
        self.count_tlb_hit();
        let p = self.tlb_host(entry, addr);
        let flags = self.tlb_guest_flags();
        let x = self.b.ins().load(ty, flags, p, 0);
        let x = self.in_lane0(x, lo);
        self.jump_with(join, &[x]);
        self.switch_sealed(slow, true);
        let y = self.read_helper(ty, addr);
        let y = self.in_lane0(y, lo);
        self.cold_status_then(join, &[y]);
        self.switch_sealed(join, cold);
        v
    }

    fn tlb_store(&mut self, addr: Value, v: Value, set: usize) {
        self.ensure_live();
        let cold = self.is_cold();
        let (fast, slow, join) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        let bytes = self.b.func.dfg.value_type(v).bytes();
        let entry = self.tlb_probe(addr, bytes, set, OFF_TLB_WRITE_TAG, fast, slow);
        self.switch_sealed(fast, cold);
        self.count_tlb_hit();
        let p = self.tlb_host(entry, addr);
        let flags = self.tlb_guest_flags();
        self.b.ins().store(flags, v, p, 0);
        self.jump_with(join, &[]);
        self.switch_sealed(slow, true);
        self.write_helper(addr, v);
        self.cold_status_then(join, &[]);
        self.switch_sealed(join, cold);
    }

    /// In a slow path: the status check, then a jump to `join` with `args` from a cold block
    /// of its own. Without that block the edge to `join` is critical and Cranelift splits it
    /// into a block laid out in the hot path, between the tag check and the hit.
    fn cold_status_then(&mut self, join: Block, args: &[Value]) {
        let back = self.b.create_block();
        self.check_status_then(back, &[]);
        self.switch_sealed(back, true);
        self.jump_with(join, args);
    }

    /// Compare the `tag` field (`read_tag` or `write_tag`) of `addr`'s entry in `set` with
    /// the page of the access's last byte; branch to `hit` or `miss` (terminates the
    /// position). Returns the entry, for [`Self::tlb_host`] in `hit`.
    fn tlb_probe(
        &mut self,
        addr: Value,
        bytes: u32,
        set: usize,
        tag: u32,
        hit: Block,
        miss: Block,
    ) -> TlbEntryAt {
        let last_byte = u64::from(bytes.max(1) - 1);
        let konst = self.const_of(addr);
        let entry = match konst {
            Some(a) => TlbEntryAt {
                base: self.cpu,
                disp: off_tlb_set(set) + ((a >> TLB_SHIFT) & TLB_MASK) as u32,
            },
            None => {
                // A rotation, not a shift: the mask drops the bits it brings to the top,
                // and with BMI2 it is one `rorx` that leaves `addr` in its register.
                let shifted = self.b.ins().rotr_imm_u(addr, i64::from(TLB_SHIFT));
                let off = self.b.ins().band_imm_u(shifted, TLB_MASK as i64);
                TlbEntryAt {
                    base: self.b.ins().iadd(self.cpu, off),
                    disp: off_tlb_set(set),
                }
            }
        };
        let last = match konst {
            Some(a) => self.iconst(Ty::I64, a.wrapping_add(last_byte) & PAGE_MASK),
            None if last_byte == 0 => self.b.ins().band_imm_s(addr, PAGE_MASK as i64),
            None => {
                let end = self.b.ins().iadd_imm_u(addr, last_byte as i64);
                self.b.ins().band_imm_s(end, PAGE_MASK as i64)
            }
        };
        let t = self.tlb_field(entry, tag);
        let is_hit = self.b.ins().icmp(IntCC::Equal, last, t);
        self.b.ins().brif(is_hit, hit, &[], miss, &[]);
        self.terminated();
        entry
    }

    /// With [`super::JitConfig::count_tlb_hits`]: `cpu.tlb_inline_hits += 1`.
    fn count_tlb_hit(&mut self) {
        if self.count_tlb_hits {
            let at = OFF_TLB_INLINE_HITS as i32;
            let n = self
                .b
                .ins()
                .load(types::I64, self.regions.cpu, self.cpu, at);
            let n = self.b.ins().iadd_imm_u(n, 1);
            self.b.ins().store(self.regions.cpu, n, self.cpu, at);
        }
    }

    /// `addr + addend` of `entry`.
    fn tlb_host(&mut self, entry: TlbEntryAt, addr: Value) -> Value {
        let addend = self.tlb_field(entry, OFF_TLB_ADDEND);
        self.b.ins().iadd(addend, addr)
    }

    /// The `u64` at offset `field` of `entry`.
    fn tlb_field(&mut self, entry: TlbEntryAt, field: u32) -> Value {
        let disp = (entry.disp + field) as i32;
        self.b
            .ins()
            .load(types::I64, self.regions.cpu, entry.base, disp)
    }

    /// Flags of a guest access through a TLB entry: guest memory, little-endian, and no
    /// `notrap`/`aligned` assumption (its safety rests on the runtime's entries).
    fn tlb_guest_flags(&self) -> MemFlagsData {
        MemFlagsData::new()
            .with_endianness(Endianness::Little)
            .with_alias_region(self.regions.guest.alias_region())
    }
}

/// How [`ClifEmitter::probe_write`] checks inline that the helper has nothing to do.
#[derive(Clone, Copy)]
enum InlineProbe {
    /// Flat: the probe starts at or below this address (so it ends inside RAM and the
    /// code bitmap's pages) and no byte of the bitmap at this host address marks its pages.
    Flat(u64, u64),
    /// Tlb: the write tag of the probe's entry in this set matches its last byte's page.
    Tlb(usize),
}

/// Where a soft-TLB entry is: `base + disp` (`base` is `cpu`, plus the entry's offset in the
/// set when the address is not constant).
#[derive(Clone, Copy)]
struct TlbEntryAt {
    base: Value,
    disp: u32,
}
