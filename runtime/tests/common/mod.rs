//! What several integration tests set up the same way: a 64-bit guest with a flat GDT at
//! physical 0, one IDT gate, its handler and code at 0x1000 (each test file includes this
//! module and uses what it needs).

use runtime::Vm;

/// Where [`with_handler`] puts the guest's code (its RIP) and its stack pointer.
pub const CODE: u64 = 0x1000;
pub const STACK: u64 = 0x7000;

/// A GDT for a flat 64-bit guest: null, 64-bit code at selector 0x08, data at 0x10.
pub fn flat64_gdt() -> Vec<u8> {
    [0u64, 0x0020_9A00_0000_0000, 0x0000_9200_0000_0000]
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect()
}

/// A 64-bit interrupt gate to `handler`: selector 0x08, present, DPL 0, type 0xE.
pub fn interrupt_gate(handler: u64) -> Vec<u8> {
    [
        (handler & 0xFFFF) | 0x08 << 16 | 0x8E00u64 << 32 | ((handler >> 16) & 0xFFFF) << 48,
        handler >> 32,
    ]
    .iter()
    .flat_map(|d| d.to_le_bytes())
    .collect()
}

/// Loads the flat GDT at 0 (where GDTR points at reset), an IDT at `idt` whose gate `vector`
/// leads to `handler` (its bytes at `handler_at`), and `code` at [`CODE`]; RIP = [`CODE`],
/// RSP = [`STACK`].
pub fn with_handler(
    v: &mut Vm,
    idt: u64,
    vector: u8,
    handler_at: u64,
    handler: &[u8],
    code: &[u8],
) {
    v.write_phys(0, &flat64_gdt()).unwrap();
    v.write_phys(idt + u64::from(vector) * 16, &interrupt_gate(handler_at))
        .unwrap();
    v.write_phys(handler_at, handler).unwrap();
    v.write_phys(CODE, code).unwrap();
    let cpu = v.cpu_mut();
    cpu.rip = CODE;
    cpu.gpr[4] = STACK;
    cpu.idtr.base = idt;
    cpu.idtr.limit = 0xFFF;
}
