//! Indirect exits: an inline probe of the runtime's jump cache, [`Helper::Lookup`] on a miss.
//!
//! With a [`JumpCacheLayout`] from [`super::JitEnv::jump_cache`], a dynamic `Exit::Jump(t)`
//! (RIP and `link_slot = 0` already stored) becomes
//! ```text
//!     i = (((t ^ salt) * hash_mul) >> hash_shift) & mask    salt = rotl(mode_key, mode_rotate)
//!     e = entries + i * entry_size
//!     if [e + off_pc] == t && [e + off_mode].u32 == mode_key && [e + off_host] != 0
//!         tail-call [e + off_host]                           (no helper, no dispatcher)
//!     else
//!         tail-call Lookup(t)                                (cold; fills the cache on a hit)
//! ```
//! `mode_key` is the block's own mode (a translation-time constant): a block leaves through
//! an indirect exit in the mode it was translated in.
//!
//! Invariant: the IR computes exactly [`JumpCacheLayout::index`]. With a power-of-two
//! `entry_size` the index and the scaling fold into one shift and one mask:
//! `(h >> (hash_shift - s)) & (mask << s)` with `s = log2(entry_size)`, which is
//! `((h >> hash_shift) & mask) << s` because the bits the smaller shift lets in are masked
//! away.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, InstBuilder, MemFlagsData, Value};

use super::emitter::ClifEmitter;
use super::JumpCacheLayout;
use crate::emit::ValueOps;
use crate::helpers::Helper;
use crate::ir::Ty;

impl ClifEmitter<'_> {
    /// Leave for the dynamic guest address `t` (an `I64`): probe the jump cache inline if the
    /// runtime gave one, else (and on a miss) tail-call what [`Helper::Lookup`] returns.
    /// Terminates the position.
    pub(super) fn indirect_jump(&mut self, t: Value) {
        if let Some(layout) = self.jump_cache.filter(JumpCacheLayout::is_valid) {
            let miss = self.b.create_block();
            self.probe(&layout, t, miss);
            self.switch_sealed(miss, true);
        }
        let z = self.iconst(Ty::I64, 0);
        let f = self.call_raw(Helper::Lookup, [t, z, z]);
        self.tail_call(f);
    }

    /// The probe itself: tail-calls the host code of the entry for `t` if it matches, else
    /// branches to `miss`. Terminates the position.
    fn probe(&mut self, l: &JumpCacheLayout, t: Value, miss: Block) {
        self.ensure_live();
        let salt = u64::from(self.mode_key).rotate_left(l.mode_rotate);
        let mixed = if salt == 0 {
            t
        } else {
            self.b.ins().bxor_imm_u(t, salt as i64)
        };
        let h = self.b.ins().imul_imm_u(mixed, l.hash_mul as i64);
        let size = l.entry_size;
        let s = size.trailing_zeros();
        let off = if size.is_power_of_two() && s <= l.hash_shift {
            let x = self.b.ins().ushr_imm_u(h, i64::from(l.hash_shift - s));
            self.b.ins().band_imm_u(x, (l.mask << s) as i64)
        } else {
            let x = self.b.ins().ushr_imm_u(h, i64::from(l.hash_shift));
            let i = self.b.ins().band_imm_u(x, l.mask as i64);
            self.b.ins().imul_imm_u(i, i64::from(size))
        };
        let entry = self.b.ins().iadd_imm_u(off, l.entries as i64);
        // Generated code only reads the entries; the runtime writes them in helpers, and
        // calls are barriers to every alias region.
        let flags = MemFlagsData::trusted();
        let pc = self.b.ins().load(types::I64, flags, entry, l.off_pc as i32);
        let same_pc = self.b.ins().icmp(IntCC::Equal, pc, t);
        self.continue_if(same_pc, miss);
        let mode = self
            .b
            .ins()
            .load(types::I32, flags, entry, l.off_mode as i32);
        let key = self.iconst(Ty::I32, u64::from(self.mode_key));
        let same_mode = self.b.ins().icmp(IntCC::Equal, mode, key);
        self.continue_if(same_mode, miss);
        let host = self
            .b
            .ins()
            .load(types::I64, flags, entry, l.off_host as i32);
        self.continue_if(host, miss);
        self.tail_call(host);
    }

    /// Go on in a fresh sealed block if `cond` is nonzero, else branch to `miss`.
    fn continue_if(&mut self, cond: Value, miss: Block) {
        let (next, cold) = (self.b.create_block(), self.is_cold());
        self.b.ins().brif(cond, next, &[], miss, &[]);
        self.switch_sealed(next, cold);
    }
}
