//! The frame of a block function: its entry (the shadowed `CpuState` fields loaded), the
//! heads (the entry's and, in a region, each block's: hotness count, budget check), and the
//! end (what semantics left open repaired, instruction counts patched, blocks sealed).
//!
//! Invariants: those of [`super::emitter`]. A head is entered either with `CpuState` current
//! (every way into it wrote the state back), and then its budget and promotion exits store
//! nothing but `rip`; or, in a function that carries state across its internal edges
//! ([`crate::emit::Carried`]), with the carried registers and flags in variables, and then
//! those exits are labels the semantics bind at the end to write the carried state back
//! ([`crate::emit::Emitter::take_head_exits`]). A function that carries state and has no
//! hotness count checks the budget on each internal edge instead of at the heads
//! (`internal_edge`): its exits then sit where the edge's values are, so a head does not
//! keep carried flags alive for an exit that nothing before it needs.

use std::collections::HashMap;

use cranelift_codegen::entity::EntitySet;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::immediates::Imm64;
use cranelift_codegen::ir::{
    types, AliasRegionData, Block, Endianness, Function, Inst, InstBuilder, InstructionData,
    MemFlagsData, Opcode, Value, ValueDef,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};
use cranelift_frontend::{FunctionBuilder, Variable};

use super::emitter::{ClifEmitter, Regions};
use super::{block_signature, JitEnv, JitError, Shape};
use crate::emit::Carried;
use crate::state::{self, ExitReason};

/// Remove `notrap` loads whose result is unused. Cranelift keeps every load through
/// lowering; preloads superseded by reloads (see `ClifEmitter::reload`) would otherwise stay.
fn remove_dead_loads(func: &mut Function) {
    let mut used = EntitySet::<Value>::new();
    let mut loads = Vec::new();
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            for v in func.dfg.inst_values(inst) {
                used.insert(func.dfg.resolve_aliases(v));
            }
            if let InstructionData::Load {
                opcode: Opcode::Load,
                flags,
                ..
            } = func.dfg.insts[inst]
            {
                if func.dfg.mem_flags[flags].notrap() {
                    loads.push(inst);
                }
            }
        }
    }
    for inst in loads {
        if !used.contains(func.dfg.first_result(inst)) {
            func.layout.remove_inst(inst);
        }
    }
}

/// The exits of heads left for the semantics to write (see the module invariants): label,
/// head pc, reason.
pub(super) type HeadExits = Vec<(Block, u64, ExitReason)>;

/// At the current position (a head): charge the block's instructions to `icount` or, over
/// the budget, leave with [`ExitReason::Budget`] and `rip = pc` (nothing of the block ran)
/// — directly, or through a label recorded in `deferred`. Returns the `iconst` of the count,
/// to be patched once the block's length is known.
pub(super) fn budget_check(
    b: &mut FunctionBuilder<'_>,
    regions: &Regions,
    cpu: Value,
    icount_var: Variable,
    pc: u64,
    deferred: Option<&mut HeadExits>,
) -> Inst {
    let ic = b.use_var(icount_var);
    let lim = b
        .ins()
        .load(types::I64, regions.cpu, cpu, state::OFF_ICOUNT_LIMIT as i32);
    let n = b.ins().iconst(types::I64, 0);
    let icount = match b.func.dfg.value_def(n) {
        ValueDef::Result(inst, _) => inst,
        _ => unreachable!("iconst defines its result"),
    };
    let new = b.ins().iadd(ic, n);
    let over = b.ins().icmp(IntCC::UnsignedGreaterThan, new, lim);
    let how = Leave {
        leave_if_set: true,
        pc,
        reason: ExitReason::Budget,
    };
    leave_at_head(b, regions, cpu, over, how, deferred);
    b.ins()
        .store(regions.cpu, new, cpu, state::OFF_ICOUNT as i32);
    b.def_var(icount_var, new);
    icount
}

/// How a head leaves: on a nonzero condition (`leave_if_set`) or a zero one, with
/// `rip = pc`, returning `reason`.
#[derive(Clone, Copy)]
struct Leave {
    leave_if_set: bool,
    pc: u64,
    reason: ExitReason,
}

/// At a head: if `cond` says so, leave through a cold block that stores `rip = pc` and
/// returns the reason (nothing of the block ran) — or, with `deferred`, through a cold label
/// recorded there and left empty for the semantics; go on in a fresh sealed block either way.
fn leave_at_head(
    b: &mut FunctionBuilder<'_>,
    regions: &Regions,
    cpu: Value,
    cond: Value,
    how: Leave,
    deferred: Option<&mut HeadExits>,
) {
    let (leave, stay) = (b.create_block(), b.create_block());
    if how.leave_if_set {
        b.ins().brif(cond, leave, &[], stay, &[]);
    } else {
        b.ins().brif(cond, stay, &[], leave, &[]);
    }
    b.set_cold_block(leave);
    match deferred {
        Some(d) => d.push((leave, how.pc, how.reason)),
        None => {
            b.switch_to_block(leave);
            b.seal_block(leave);
            let rip = b.ins().iconst(types::I64, how.pc as i64);
            b.ins().store(regions.cpu, rip, cpu, state::OFF_RIP as i32);
            let r = b.ins().iconst(types::I64, how.reason as i64);
            b.ins().return_(&[r]);
        }
    }
    b.switch_to_block(stay);
    b.seal_block(stay);
}

impl<'a> ClifEmitter<'a> {
    /// Start the block function at `pc`: the entry loads the shadowed fields (the GPRs in
    /// `preload` and `icount`), the loop head checks the budget, then an empty body where
    /// semantics continue.
    pub(super) fn begin(
        mut b: FunctionBuilder<'a>,
        env: &'a mut dyn JitEnv,
        links: &'a mut HashMap<u64, Option<usize>>,
        shape: Shape,
        heads: &[(u64, u16)],
    ) -> Self {
        let Shape {
            pc,
            preload,
            reload,
            mode_key,
            trap_hypercalls,
            count_tlb_hits,
            carry,
            carry_flags,
            srclocs,
        } = shape;
        let mut region = |id: u32, name: &'static str| {
            b.func.dfg.alias_regions.insert(AliasRegionData {
                user_id: id,
                description: name.into(),
            })
        };
        let (r_cpu, r_guest, r_bitmap, r_slot, r_counter) = (
            region(1, "cpu"),
            region(2, "guest"),
            region(3, "code bitmap"),
            region(4, "link slot"),
            region(5, "hot counter"),
        );
        let regions = Regions {
            cpu: MemFlagsData::trusted().with_alias_region(Some(r_cpu)),
            guest: MemFlagsData::new()
                .with_notrap()
                .with_endianness(Endianness::Little)
                .with_alias_region(Some(r_guest)),
            bitmap: MemFlagsData::new()
                .with_notrap()
                .with_alias_region(Some(r_bitmap)),
            slot: MemFlagsData::trusted().with_alias_region(Some(r_slot)),
            counter: MemFlagsData::trusted().with_alias_region(Some(r_counter)),
        };
        let mut helper = cranelift_codegen::ir::Signature::new(CallConv::SystemV);
        for _ in 0..4 {
            helper
                .params
                .push(cranelift_codegen::ir::AbiParam::new(types::I64));
        }
        helper
            .returns
            .push(cranelift_codegen::ir::AbiParam::new(types::I64));
        let sig_helper = b.import_signature(helper);
        let sig_block = b.import_signature(block_signature());

        // entry: load the CpuState fields kept in shadow variables, then the loop head.
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let cpu = b.block_params(entry)[0];
        let mut shadows = Vec::new();
        let fields = (0..16)
            .filter(|i| preload & (1 << i) != 0)
            .map(state::off_gpr)
            .chain([state::OFF_ICOUNT]);
        for off in fields {
            let var = b.declare_var(types::I64);
            let v = b.ins().load(types::I64, regions.cpu, cpu, off as i32);
            b.def_var(var, v);
            shadows.push((off, var));
        }
        let icount_var = shadows[shadows.len() - 1].1;
        // Carried state: the GPRs' shadows stand for the guest registers themselves, and the
        // flag descriptor is loaded into variables of its own.
        let carried = carry.map(|gprs| {
            let gprs = gprs & preload;
            let mut gpr = [None; 16];
            for (i, g) in gpr.iter_mut().enumerate() {
                if gprs & (1 << i) != 0 {
                    *g = shadows
                        .iter()
                        .find(|s| s.0 == state::off_gpr(i))
                        .map(|s| s.1);
                }
            }
            let flags = carry_flags.then(|| {
                [
                    state::OFF_FLAGS_OP,
                    state::OFF_FLAGS_A,
                    state::OFF_FLAGS_B,
                    state::OFF_FLAGS_RES,
                    state::OFF_FLAGS_AUX,
                ]
                .map(|off| {
                    let var = b.declare_var(types::I64);
                    let v = b.ins().load(types::I64, regions.cpu, cpu, off as i32);
                    b.def_var(var, v);
                    var
                })
            });
            Carried { gprs, gpr, flags }
        });
        // Head exits are left to the semantics exactly when state is carried.
        let mut head_exits = carried.map(|_| HeadExits::new());
        let head = b.create_block();
        b.ins().jump(head, &[]);

        // head (sealed at the end: self-loops jump back here): the hotness count, then the
        // budget check.
        b.switch_to_block(head);
        let hot_counter = env.hot_counter();
        if let Some(counter) = hot_counter {
            let p = b.ins().iconst(types::I64, counter as i64);
            let c = b.ins().load(types::I64, regions.counter, p, 0);
            let c = b.ins().iadd_imm_s(c, -1);
            b.ins().store(regions.counter, c, p, 0);
            let how = Leave {
                leave_if_set: false,
                pc,
                reason: ExitReason::Promote,
            };
            let deferred = head_exits.as_mut();
            leave_at_head(&mut b, &regions, cpu, c, how, deferred);
        }
        // Without a hotness count, a function that carries state checks the budget on its
        // internal edges instead (see `internal_edge`): the head is then entered from the
        // entry only, with `CpuState` current, and its exit stores nothing but `rip`.
        let edge_budget = carried.is_some() && hot_counter.is_none();
        let deferred = if edge_budget {
            None
        } else {
            head_exits.as_mut()
        };
        let icount = budget_check(&mut b, &regions, cpu, icount_var, pc, deferred);
        let body = if edge_budget {
            let body = b.create_block();
            b.ins().jump(body, &[]);
            b.switch_to_block(body);
            body
        } else {
            head
        };
        let region_heads = heads
            .iter()
            .map(|&(pc, reload)| (pc, (b.create_block(), reload)))
            .collect();

        let mem = env.memory();
        let jump_cache = env.jump_cache();
        // The carried variables are the semantics' too: declared as `I64` for them.
        let mut var_tys = Vec::new();
        if let Some(c) = &carried {
            for var in c.gpr.iter().flatten().chain(c.flags.iter().flatten()) {
                let i = var.as_u32() as usize;
                if var_tys.len() <= i {
                    var_tys.resize(i + 1, None);
                }
                var_tys[i] = Some(crate::ir::Ty::I64);
            }
        }
        ClifEmitter {
            b,
            env,
            links,
            mem,
            cpu,
            sig_helper,
            sig_block,
            regions,
            live: true,
            dead: false,
            cold: false,
            labels: EntitySet::new(),
            bound: EntitySet::new(),
            targeted: EntitySet::new(),
            fault: None,
            fault_used: false,
            var_tys,
            insns: 0,
            pc,
            mode_key,
            jump_cache,
            head,
            body,
            edge_budget,
            region_heads,
            counts: vec![(icount, pc)],
            block_starts: vec![(pc, 0)],
            hot_counter,
            icount_var,
            shadows,
            shadow_vals: HashMap::new(),
            reload: reload & !carried.map_or(0, |c| c.gprs),
            trap_hypercalls,
            count_tlb_hits,
            carried,
            head_exits,
            srclocs,
            error: None,
        }
    }

    /// The block a direct exit to `pc`, a head of this function (its entry or a region
    /// block), jumps to. With `edge_budget` the edge first charges the target's
    /// instructions, or leaves with [`ExitReason::Budget`] and `rip = pc` through a head exit
    /// label: the state at the edge is the state at the head, carried variables included,
    /// so the exit writes back the same values a check at the head would. The head itself
    /// then needs none of the carried values for its exits: flags a head overwrites before
    /// it can leave are not live across the edge.
    pub(super) fn internal_edge(&mut self, pc: u64, head: Block) -> Block {
        if !self.edge_budget {
            return head;
        }
        self.charge(pc);
        if pc == self.pc {
            self.body
        } else {
            head
        }
    }

    /// At the current position: charge the instructions of the block at `pc` (the count is
    /// patched at the end) or leave through a head exit label with `rip = pc`.
    pub(super) fn charge(&mut self, pc: u64) {
        let deferred = self.head_exits.as_mut();
        let n = budget_check(
            &mut self.b,
            &self.regions,
            self.cpu,
            self.icount_var,
            pc,
            deferred,
        );
        self.counts.push((n, pc));
    }

    /// Finish the function: repair what semantics left open, seal, finalize. Returns the
    /// number of guest instructions translated.
    pub(super) fn end(mut self, frontend: TargetFrontendConfig) -> Result<u32, JitError> {
        if self.live {
            if !self.dead {
                self.fail("the block does not end with an exit");
            }
            self.ret_const(ExitReason::Unsupported as u64);
        }
        let dangling: Vec<Block> = self
            .targeted
            .iter()
            .filter(|&l| !self.bound.contains(l))
            .collect();
        for l in dangling {
            self.fail("a label was jumped to but never bound");
            self.b.switch_to_block(l);
            self.live = true;
            self.dead = true;
            self.ret_const(ExitReason::Unsupported as u64);
        }
        // Each count charges the instructions of the block it enters.
        let len_of = |pc: u64| {
            let i = self.block_starts.iter().position(|s| s.0 == pc)?;
            let start = self.block_starts[i].1;
            let end = self.block_starts.get(i + 1).map_or(self.insns, |s| s.1);
            Some(end.saturating_sub(start).max(1))
        };
        for &(inst, pc) in &self.counts {
            let n = len_of(pc).unwrap_or(1);
            self.b.func.dfg.insts[inst] = InstructionData::UnaryImm {
                opcode: Opcode::Iconst,
                imm: Imm64::new(i64::from(n)),
            };
        }
        let n = self.insns.max(1);
        // Seal the labels before the loop head: the head's variables then resolve through
        // already-sealed blocks, so unmodified registers get no (constant) phi there and
        // their entry loads stay dead.
        let labels: Vec<Block> = self.labels.iter().collect();
        for l in labels {
            self.b.seal_block(l);
        }
        let heads: Vec<Block> = self.region_heads.values().map(|h| h.0).collect();
        for h in heads {
            self.b.seal_block(h);
        }
        self.b.seal_block(self.head);
        self.b.seal_block(self.body);
        self.b.seal_all_blocks();
        remove_dead_loads(self.b.func);
        self.b.finalize(frontend);
        match self.error {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }
}
