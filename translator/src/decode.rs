//! Block decoding: guest bytes → the instructions of one basic block.
//!
//! A block ends after a control transfer, after an instruction that must return to the
//! runtime (HLT, undefined opcodes, sensitive instructions whose entry ends the block, except
//! those that may go on in place: [`crate::sensitive::Resume::InBlock`], POPF aside), when
//! the next instruction would start on another page
//! (an instruction straddling the boundary is the block's last), or at a size cap.

use iced_x86::{
    Decoder, DecoderError, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory,
    Mnemonic, OpAccess, Register,
};

use crate::sensitive::{Hypercall, Resume};
use crate::Mode;

/// Guest page size.
pub const PAGE_SIZE: u64 = 4096;

/// Maximum instructions per block by default.
pub const MAX_BLOCK_INSNS: usize = 128;

/// Why decoding stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockEnd {
    /// The last instruction transfers control (branch, call, return, interrupt).
    Branch,
    /// The last instruction must go to the runtime (HLT, an undefined opcode).
    Runtime,
    /// The next instruction starts on another page.
    PageBoundary,
    /// The instruction cap was reached.
    SizeCap,
    /// The bytes ran out in the middle of an instruction (only possible at the first one
    /// when `insns` is empty: the fetch itself faults).
    NoBytes,
}

/// A decoded basic block.
#[derive(Clone, Debug)]
pub struct DecodedBlock {
    /// Guest virtual address of the first instruction.
    pub pc: u64,
    pub insns: Vec<Instruction>,
    pub end: BlockEnd,
}

impl DecodedBlock {
    /// Address after the last instruction.
    pub fn next_pc(&self) -> u64 {
        self.insns.last().map_or(self.pc, |i| i.next_ip())
    }
    /// Bytes covered by the block.
    pub fn byte_len(&self) -> u64 {
        self.next_pc().wrapping_sub(self.pc)
    }
    /// Bit mask of the GPRs any instruction of the block reads or writes, explicitly or
    /// implicitly (the registers the JIT keeps in variables).
    pub fn gpr_mask(&self) -> u16 {
        let mut f = InstructionInfoFactory::new();
        let mut mask = 0u16;
        for insn in &self.insns {
            for r in f.info(insn).used_registers() {
                let reg = r.register();
                if reg.is_gpr() && r.access() != OpAccess::None {
                    let i = (reg.full_register() as usize)
                        .wrapping_sub(iced_x86::Register::RAX as usize);
                    if i < 16 {
                        mask |= 1 << i;
                    }
                }
            }
        }
        mask
    }
}

/// Whether `insn` must be the last of its block.
pub fn ends_block(insn: &Instruction) -> bool {
    insn.flow_control() != FlowControl::Next
        || insn.is_invalid()
        || matches!(insn.mnemonic(), Mnemonic::Hlt)
        || crate::sensitive::lookup(insn).is_some_and(|e| {
            // POPF and STI in line (`semantics::eflags`) and MOV to CR8 as a lean hypercall
            // (`semantics::system`) rely on their block ending after them: lowering the
            // task priority may unmask a pending interrupt, taken at the next block entry.
            // Their hypercall forms then go on in place to the block's end.
            e.ends_block
                && (e.call.resume() != Resume::InBlock
                    || matches!(e.call, Hypercall::Popf | Hypercall::Sti)
                    || (e.call == Hypercall::MovToCr && insn.op0_register() == Register::CR8))
        })
}

/// Decode a block starting at `pc` from `bytes` (guest memory from `pc` on: at least up to
/// the end of `pc`'s page, plus up to 15 bytes of the next page when readable).
pub fn decode_block(bytes: &[u8], pc: u64, mode: Mode, max_insns: usize) -> DecodedBlock {
    let mut decoder = Decoder::with_ip(mode.bitness, bytes, pc, DecoderOptions::NONE);
    let page_end = (pc & !(PAGE_SIZE - 1)).wrapping_add(PAGE_SIZE);
    let mut insns = Vec::with_capacity(16);
    let mut insn = Instruction::default();
    let end = loop {
        if insns.len() >= max_insns.max(1) {
            break BlockEnd::SizeCap;
        }
        if !decoder.can_decode() {
            break if insns.is_empty() {
                BlockEnd::NoBytes
            } else {
                BlockEnd::PageBoundary
            };
        }
        decoder.decode_out(&mut insn);
        if insn.is_invalid() && decoder.last_error() == DecoderError::NoMoreBytes {
            // Truncated by the end of readable memory: the fetch of this instruction faults.
            break if insns.is_empty() {
                BlockEnd::NoBytes
            } else {
                BlockEnd::PageBoundary
            };
        }
        insns.push(insn);
        if ends_block(&insn) {
            break if insn.is_invalid() || insn.flow_control() == FlowControl::Next {
                BlockEnd::Runtime
            } else {
                BlockEnd::Branch
            };
        }
        let next = insn.next_ip();
        if next >= page_end || next < pc {
            break BlockEnd::PageBoundary;
        }
    };
    DecodedBlock { pc, insns, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_at_branch() {
        // inc eax ; jmp $ ; nop
        let b = decode_block(
            &[0xFF, 0xC0, 0xEB, 0xFE, 0x90],
            0x1000,
            Mode::LONG64_CPL0,
            64,
        );
        assert_eq!(b.insns.len(), 2);
        assert_eq!(b.end, BlockEnd::Branch);
        assert_eq!(b.gpr_mask(), 1);
    }

    #[test]
    fn ends_at_page_boundary() {
        let b = decode_block(&[0x90, 0x90, 0x90], 0x1FFE, Mode::LONG64_CPL0, 64);
        assert_eq!(b.insns.len(), 2);
        assert_eq!(b.end, BlockEnd::PageBoundary);
    }

    #[test]
    fn truncated_first_instruction_is_a_fetch_fault() {
        let b = decode_block(&[0x48], 0x1000, Mode::LONG64_CPL0, 64);
        assert!(b.insns.is_empty());
        assert_eq!(b.end, BlockEnd::NoBytes);
    }

    /// STI and POPF in line need their block to end after them (the next block entry is
    /// where a pending interrupt is looked at); CLI does not.
    #[test]
    fn sti_and_popf_end_their_block_cli_does_not() {
        // cli ; nop ; sti ; nop
        let b = decode_block(&[0xFA, 0x90, 0xFB, 0x90], 0x1000, Mode::LONG64_CPL0, 64);
        assert_eq!(b.insns.len(), 3);
        // popfq ; nop
        let b = decode_block(&[0x9D, 0x90], 0x1000, Mode::LONG64_CPL0, 64);
        assert_eq!(b.insns.len(), 1);
    }

    /// So does MOV to CR8 (lowering the task priority may unmask an interrupt); MOV from CR8
    /// does not.
    #[test]
    fn mov_to_cr8_ends_its_block_mov_from_cr8_does_not() {
        // mov rbx, cr8 ; mov cr8, rax ; nop
        let code = [0x44, 0x0F, 0x20, 0xC3, 0x44, 0x0F, 0x22, 0xC0, 0x90];
        let b = decode_block(&code, 0x1000, Mode::LONG64_CPL0, 64);
        assert_eq!(b.insns.len(), 2);
    }

    #[test]
    fn invalid_opcode_ends_block() {
        // nop ; ud0-ish invalid (0x0F 0x0B is ud2: valid) ; use 0x06 (push es: invalid in 64-bit)
        let b = decode_block(&[0x90, 0x06, 0x90], 0x1000, Mode::LONG64_CPL0, 64);
        assert_eq!(b.insns.len(), 2);
        assert!(b.insns[1].is_invalid());
        assert_eq!(b.end, BlockEnd::Runtime);
    }
}
