//! Regions: a hot block and the blocks of the loop around it, compiled as one function.
//!
//! A block that turns hot is usually the head or the body of a loop whose other blocks are
//! hot too. [`form`] follows the direct edges (taken and fall-through) from the entry block
//! and keeps the blocks that lie on a cycle back to it; the JIT then translates them together
//! ([`crate::jit::Jit::translate_region`]), so an edge between two of them is a jump inside the
//! function, with guest registers in SSA values, instead of an exit, a link-slot tail call and
//! a prologue that reloads them.
//!
//! Invariants:
//! - `blocks[0]` is the entry; no two blocks start at the same address; every block came from
//!   the caller's `decode`, which decides what may join (the runtime: the entry's page, no
//!   block running onto the next page), so the region's bytes are exactly its blocks' bytes.
//! - A region is small ([`MAX_BLOCKS`], [`MAX_INSNS`]): compile time grows faster than linearly
//!   with function size, and a region is recompiled whole when any of its bytes change.

use iced_x86::FlowControl;

use crate::decode::DecodedBlock;

/// Most blocks in a region.
pub const MAX_BLOCKS: usize = 8;
/// Most guest instructions in a region.
pub const MAX_INSNS: usize = 160;

/// The guest addresses a block continues at through direct edges: the target of its last
/// instruction if that is a direct jump or conditional branch, and the next instruction if
/// control can fall through to it (a conditional branch, or a block cut short).
pub fn successors(block: &DecodedBlock) -> Vec<u64> {
    let Some(last) = block.insns.last() else {
        return Vec::new();
    };
    match last.flow_control() {
        FlowControl::ConditionalBranch => vec![last.near_branch_target(), last.next_ip()],
        FlowControl::UnconditionalBranch if last.near_branch_target() != 0 => {
            vec![last.near_branch_target()]
        }
        FlowControl::Next => vec![last.next_ip()],
        _ => Vec::new(),
    }
}

/// The region entered at `entry`: the blocks reachable from it through direct edges whose
/// `decode` succeeds (at most [`MAX_BLOCKS`] blocks and [`MAX_INSNS`] instructions, nearest
/// first), keeping only those from which the entry is reached again. Just `[entry]` when
/// no other block is on a loop through it.
pub fn form(
    entry: DecodedBlock,
    mut decode: impl FnMut(u64) -> Option<DecodedBlock>,
) -> Vec<DecodedBlock> {
    let mut blocks = vec![entry];
    let mut insns = blocks[0].insns.len();
    let mut edges: Vec<Vec<usize>> = Vec::new();
    let mut next = 0;
    // Breadth first, so the blocks nearest the entry are the ones kept when the limits bite.
    while next < blocks.len() {
        let mut out = Vec::new();
        for pc in successors(&blocks[next]) {
            if let Some(i) = blocks.iter().position(|b| b.pc == pc) {
                out.push(i);
                continue;
            }
            if blocks.len() >= MAX_BLOCKS {
                continue;
            }
            let Some(b) = decode(pc) else { continue };
            if b.pc != pc || b.insns.is_empty() || insns + b.insns.len() > MAX_INSNS {
                continue;
            }
            insns += b.insns.len();
            out.push(blocks.len());
            blocks.push(b);
        }
        edges.push(out);
        next += 1;
    }
    // Which blocks reach the entry (block 0) again: fixpoint over the edges.
    let mut loops = vec![false; blocks.len()];
    let mut changed = true;
    while changed {
        changed = false;
        for (i, out) in edges.iter().enumerate() {
            if !loops[i] && out.iter().any(|&j| j == 0 || loops[j]) {
                loops[i] = true;
                changed = true;
            }
        }
    }
    if loops.iter().skip(1).all(|&l| !l) {
        blocks.truncate(1);
        return blocks;
    }
    blocks
        .into_iter()
        .enumerate()
        .filter(|&(i, _)| i == 0 || loops[i])
        .map(|(_, b)| b)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_block;
    use crate::Mode;
    use iced_x86::code_asm::*;

    fn code(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
        let mut a = CodeAssembler::new(64).unwrap();
        f(&mut a).unwrap();
        a.assemble(0x1000).unwrap()
    }

    fn region_of(bytes: &[u8], entry: u64) -> Vec<u64> {
        let dec = |pc: u64| {
            let off = pc.checked_sub(0x1000)? as usize;
            (off < bytes.len()).then(|| decode_block(&bytes[off..], pc, Mode::LONG64_CPL0, 64))
        };
        let first = dec(entry).unwrap();
        form(first, dec).iter().map(|b| b.pc).collect()
    }

    /// `top: test rcx,1; jz even; add rax,rcx; jmp next; even: sub rbx,rcx; next: inc rcx;
    /// cmp rcx,rdx; jne top; hlt`
    fn if_in_loop() -> Vec<u8> {
        code(|a| {
            let (mut top, mut even, mut next) =
                (a.create_label(), a.create_label(), a.create_label());
            a.set_label(&mut top)?;
            a.test(rcx, 1)?;
            a.jz(even)?;
            a.add(rax, rcx)?;
            a.jmp(next)?;
            a.set_label(&mut even)?;
            a.sub(rbx, rcx)?;
            a.set_label(&mut next)?;
            a.inc(rcx)?;
            a.cmp(rcx, rdx)?;
            a.jne(top)?;
            a.hlt()
        })
    }

    #[test]
    fn a_loop_with_an_if_is_one_region_and_its_exit_is_not_in_it() {
        let bytes = if_in_loop();
        let pcs = region_of(&bytes, 0x1000);
        assert_eq!(pcs[0], 0x1000);
        // top, the add arm, the even arm (which runs on through next), next; not the hlt.
        assert_eq!(pcs.len(), 4, "{pcs:x?}");
        let hlt = 0x1000 + bytes.len() as u64 - 1;
        assert!(!pcs.contains(&hlt));
    }

    #[test]
    fn straight_line_code_is_no_region() {
        let bytes = code(|a| {
            let mut skip = a.create_label();
            a.test(rcx, 1)?;
            a.jz(skip)?;
            a.add(rax, rcx)?;
            a.set_label(&mut skip)?;
            a.hlt()
        });
        assert_eq!(region_of(&bytes, 0x1000), vec![0x1000]);
    }

    #[test]
    fn blocks_decode_refuses_stay_out() {
        let bytes = if_in_loop();
        let dec = |pc: u64| -> Option<DecodedBlock> {
            let off = pc.checked_sub(0x1000)? as usize;
            // Only the entry and the block right after it may join.
            (pc <= 0x1000 + 0x10 && off < bytes.len())
                .then(|| decode_block(&bytes[off..], pc, Mode::LONG64_CPL0, 64))
        };
        let first = dec(0x1000).unwrap();
        for b in form(first, dec).iter().skip(1) {
            assert!(b.pc <= 0x1010);
        }
    }

    #[test]
    fn limits_hold() {
        // A chain of many small blocks looping back to the entry.
        let bytes = code(|a| {
            let mut top = a.create_label();
            a.set_label(&mut top)?;
            for _ in 0..40 {
                let mut l = a.create_label();
                a.jmp(l)?;
                a.set_label(&mut l)?;
                a.inc(rax)?;
            }
            a.jmp(top)
        });
        let pcs = region_of(&bytes, 0x1000);
        assert!(pcs.len() <= MAX_BLOCKS);
    }
}
