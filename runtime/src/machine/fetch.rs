//! Fetching guest code for the decoder: the bytes of a block's first page (and the start of
//! the next one), the physical pages a block's code comes from, and instruction bytes for
//! reports. Part of [`Machine`].
//!
//! Invariants: a fetch sets A bits only for pages an instruction really runs onto (the first
//! page when fetched, the next one through [`Machine::next_code_page_is`]); the peeks
//! ([`Machine::code_pages_peek`], [`Machine::insn_bytes`]) have no side effects.

use translator::decode::PAGE_SIZE;
use translator::{CpuState, Exception};

use super::{bytes_to_page_end, not_present, Machine, Privilege, Target, MAX_INSN_LEN};
use crate::memory::{Access, GuestPhys};
use crate::mmu::PagingRegs;
use crate::system::mode::code_linear;

/// Guest code bytes fetched for decoding: up to the end of the first page, plus up to
/// [`MAX_INSN_LEN`] bytes of the next page when it is mapped.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The bytes, starting at the fetch address.
    pub bytes: Vec<u8>,
    /// Guest-physical address of the first byte.
    pub phys: u64,
    /// How many of `bytes` lie in the first page.
    pub first_len: usize,
    /// Guest-physical address of the next page, if any of its bytes were fetched.
    pub next_phys: Option<u64>,
    /// Why the next page's bytes were not fetched, if fetching them faults (or they are not
    /// RAM): the fault of an instruction that runs into that page.
    pub next_fault: Option<Exception>,
}

impl Fetched {
    /// Guest-physical `[start, end)` ranges of the first `len` fetched bytes.
    pub fn phys_ranges(&self, len: u64) -> Vec<(u64, u64)> {
        let first = len.min(self.first_len as u64);
        let mut v = vec![(self.phys, self.phys + first)];
        if let (true, Some(next)) = (len > first, self.next_phys) {
            v.push((next, next + (len - first)));
        }
        v
    }
}

impl Machine {
    /// The guest-physical address the code at `rip` is fetched from (at CS.base + EIP
    /// outside 64-bit mode), for looking blocks up by physical PC (sets A bits like the
    /// fetch itself will).
    pub fn translate_code(&mut self, cpu: &CpuState, rip: u64) -> Result<GuestPhys, Exception> {
        self.translate_code_global(cpu, rip).map(|(pa, _)| pa)
    }

    /// [`Machine::translate_code`], and whether the translation is global (G set and
    /// CR4.PGE on): one that a MOV CR3 does not drop from a CPU's TLB.
    pub fn translate_code_global(
        &mut self,
        cpu: &CpuState,
        rip: u64,
    ) -> Result<(GuestPhys, bool), Exception> {
        let regs = PagingRegs::of(cpu);
        let lin = code_linear(cpu, rip) & regs.lin_mask();
        let privilege = Privilege::of_cpl(cpu.cpl);
        match self.translate_global(&regs, None, lin, Access::Fetch, privilege)? {
            (Target::Ram(pa) | Target::Mmio(pa), global) => Ok((GuestPhys(pa), global)),
        }
    }

    /// Fetches the code bytes at `vaddr` for decoding (see [`Fetched`]) with the rights of
    /// `cpu.cpl`, through paging when CR0.PG is set. Fails only when the first byte cannot be
    /// fetched; code outside RAM cannot be fetched (a not-present fetch #PF).
    ///
    /// The next page is only looked at, not walked: its A bits are set by
    /// [`Machine::next_code_page_is`] once the decoder has shown that an instruction really
    /// runs onto it (a decoder's lookahead is not a fetch).
    pub fn fetch_code(&mut self, cpu: &CpuState, rip: u64) -> Result<Fetched, Exception> {
        let regs = PagingRegs::of(cpu);
        let privilege = Privilege::of_cpl(cpu.cpl);
        let lin = code_linear(cpu, rip) & regs.lin_mask();
        let next = lin.wrapping_add(bytes_to_page_end(lin) as u64) & regs.lin_mask();
        let first = self.translate_with(&regs, None, lin, Access::Fetch, privilege)?;
        let second = self.translate_peek(&regs, next, Access::Fetch, privilege);
        self.assemble_fetch(lin, first, next, second)
    }

    /// Whether the page after the one holding the code at `rip` translates for a fetch, now, to the
    /// guest-physical page of `phys`, setting A bits as the fetch does. A cached block whose
    /// last instruction runs onto the next page was decoded from that page's old mapping: it
    /// may run only while this holds (blocks are keyed by the physical PC of their start).
    pub fn next_code_page_is(&mut self, cpu: &CpuState, rip: u64, phys: u64) -> bool {
        let regs = PagingRegs::of(cpu);
        let lin = code_linear(cpu, rip) & regs.lin_mask();
        let next = lin.wrapping_add(bytes_to_page_end(lin) as u64) & regs.lin_mask();
        let privilege = Privilege::of_cpl(cpu.cpl);
        matches!(
            self.translate_with(&regs, None, next, Access::Fetch, privilege),
            Ok(Target::Ram(pa)) if pa & !(PAGE_SIZE - 1) == phys & !(PAGE_SIZE - 1)
        )
    }

    /// The guest-physical pages that the page holding the code at `rip` and the page after it
    /// translate to for a fetch now (`None` where a page does not translate to RAM), without
    /// side effects (no A bit, no TLB fill): the pages any block holding an instruction at
    /// `rip` lies on (its instructions all start on one page; the last may run onto the next).
    pub fn code_pages_peek(&self, cpu: &CpuState, rip: u64) -> [Option<u64>; 2] {
        let regs = PagingRegs::of(cpu);
        let lin = code_linear(cpu, rip) & regs.lin_mask();
        let next = lin.wrapping_add(bytes_to_page_end(lin) as u64) & regs.lin_mask();
        let privilege = Privilege::of_cpl(cpu.cpl);
        let page = |a| match self.translate_peek(&regs, a, Access::Fetch, privilege) {
            Ok(Target::Ram(pa)) => Some(pa & !(PAGE_SIZE - 1)),
            _ => None,
        };
        [page(lin), page(next)]
    }

    /// Up to [`MAX_INSN_LEN`] instruction bytes at `vaddr` (fewer at the end of memory) in
    /// the flat model of [`Machine::read_virt`]; for reports.
    pub fn insn_bytes(&self, vaddr: u64) -> Vec<u8> {
        self.insn_bytes_with(&PagingRegs::default(), Privilege::Supervisor, vaddr)
    }

    /// Up to [`MAX_INSN_LEN`] instruction bytes at `rip` as `cpu` would fetch them (fewer
    /// at the end of memory), without setting any A bit; for reports.
    pub fn insn_bytes_for(&self, cpu: &CpuState, rip: u64) -> Vec<u8> {
        let lin = code_linear(cpu, rip);
        self.insn_bytes_with(&PagingRegs::of(cpu), Privilege::of_cpl(cpu.cpl), lin)
    }

    /// [`Machine::insn_bytes_for`] with explicit paging registers and privilege.
    fn insn_bytes_with(&self, regs: &PagingRegs, privilege: Privilege, vaddr: u64) -> Vec<u8> {
        let regs = *regs;
        let lin = vaddr & regs.lin_mask();
        let peek = |a| self.translate_peek(&regs, a, Access::Fetch, privilege);
        let ram = |a, len| match peek(a) {
            Ok(Target::Ram(pa)) => self.ram.slice(GuestPhys(pa), len).ok(),
            _ => None,
        };
        // Only the bytes wanted (the run loop asks before every RF-marked instruction), and
        // the next page only when the instruction may run onto it.
        let first_len = bytes_to_page_end(lin).min(MAX_INSN_LEN);
        let Some(first) = ram(lin, first_len) else {
            return Vec::new();
        };
        let mut bytes = first.to_vec();
        if first_len < MAX_INSN_LEN {
            let next = lin.wrapping_add(bytes_to_page_end(lin) as u64) & regs.lin_mask();
            if let Some(rest) = ram(next, MAX_INSN_LEN - first_len) {
                bytes.extend_from_slice(rest);
            }
        }
        bytes
    }

    /// The [`Fetched`] bytes at `lin` (translated to `first`) and, when `second` is RAM, of
    /// the next page at `next`.
    fn assemble_fetch(
        &self,
        lin: u64,
        first: Target,
        next: u64,
        second: Result<Target, Exception>,
    ) -> Result<Fetched, Exception> {
        let first_len = bytes_to_page_end(lin);
        let Target::Ram(pa) = first else {
            return Err(not_present(lin, Access::Fetch));
        };
        let mut bytes = self
            .ram
            .slice(GuestPhys(pa), first_len)
            .map_err(|_| not_present(lin, Access::Fetch))?
            .to_vec();
        let (next_phys, next_fault) = match second {
            Ok(Target::Ram(pb)) => match self.ram.slice(GuestPhys(pb), MAX_INSN_LEN) {
                Ok(s) => {
                    bytes.extend_from_slice(s);
                    (Some(pb), None)
                }
                Err(_) => (None, Some(not_present(next, Access::Fetch))),
            },
            Ok(Target::Mmio(_)) => (None, Some(not_present(next, Access::Fetch))),
            Err(e) => (None, Some(e)),
        };
        Ok(Fetched {
            bytes,
            phys: pa,
            first_len,
            next_phys,
            next_fault,
        })
    }
}
