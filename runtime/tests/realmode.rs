//! Real mode on every engine: code is fetched at CS × 16 + IP, so a far CALL through
//! memory reaches segment × 16 + offset (it once fetched at the offset alone and ran into
//! zeroed memory), and the same IP in two code segments is two pieces of code.

use runtime::{Engine, RunOutcome, SerialSink, Vm, VmConfig};
use translator::state::{reg, rflags, seg, Segment};

fn real_seg(selector: u16) -> Segment {
    Segment {
        selector,
        attr: 0x93,
        limit: 0xFFFF,
        base: u64::from(selector) << 4,
    }
}

/// A VM in real mode with CS = DS = `cs`, SS = 0, SP = 0x6000, IP = `ip`.
fn real_mode_vm(engine: Engine, cs: u16, ip: u64) -> Vm {
    let mut v = Vm::new(VmConfig {
        mem_bytes: 16 << 20,
        engine,
        serial: SerialSink::Capture,
        instruction_limit: Some(100_000),
        ..VmConfig::default()
    })
    .unwrap();
    let cpu = v.cpu_mut();
    cpu.cr0 = 0;
    cpu.cr4 = 0;
    cpu.efer = 0;
    cpu.rflags = rflags::FIXED;
    cpu.seg[seg::CS] = Segment {
        attr: 0x9B,
        ..real_seg(cs)
    };
    cpu.seg[seg::DS] = real_seg(cs);
    cpu.seg[seg::ES] = real_seg(cs);
    cpu.seg[seg::SS] = real_seg(0);
    cpu.gpr[reg::RSP] = 0x6000;
    cpu.rip = ip;
    v
}

#[test]
fn far_calls_through_memory_reach_segment_times_16_plus_offset() {
    // At 0700:0000 (linear 0x7000):
    //   mov bx, 0x40 ; call far [bx] ; call far dword [0x44] (0x66) ; hlt
    let main = [
        0xBB, 0x40, 0x00, 0xFF, 0x1F, 0x66, 0xFF, 0x1E, 0x44, 0x00, 0xF4,
    ];
    // Reached as 06F0:0120 (linear 0x7020): mov ax, cs ; retf
    let call16 = [0x8C, 0xC8, 0xCB];
    // Reached as 06E0:00000230 (linear 0x7030): mov cx, cs ; retfd
    let call32 = [0x8C, 0xC9, 0x66, 0xCB];
    // m16:16 at 0x40, m16:32 at 0x44.
    let ptrs = [0x20, 0x01, 0xF0, 0x06, 0x30, 0x02, 0x00, 0x00, 0xE0, 0x06];
    for engine in Engine::ALL {
        let mut v = real_mode_vm(engine, 0x0700, 0);
        v.write_phys(0x7000, &main).unwrap();
        v.write_phys(0x7020, &call16).unwrap();
        v.write_phys(0x7030, &call32).unwrap();
        v.write_phys(0x7040, &ptrs).unwrap();
        // What the same offsets hold at linear 0x120 and 0x230 must never run.
        v.write_phys(0x120, &[0x0F, 0x0B]).unwrap();
        v.write_phys(0x230, &[0x0F, 0x0B]).unwrap();
        assert_eq!(v.run(), RunOutcome::Halted, "{engine:?}");
        let cpu = v.cpu();
        assert_eq!(cpu.rip, 11, "{engine:?}: after the HLT");
        assert_eq!(
            cpu.gpr[reg::RAX] & 0xFFFF,
            0x06F0,
            "{engine:?}: m16:16 target CS"
        );
        assert_eq!(
            cpu.gpr[reg::RCX] & 0xFFFF,
            0x06E0,
            "{engine:?}: m16:32 target CS"
        );
        assert_eq!(
            (cpu.seg[seg::CS].selector, cpu.seg[seg::CS].base),
            (0x0700, 0x7000),
            "{engine:?}: back in the caller's segment"
        );
        assert_eq!(cpu.gpr[reg::RSP], 0x6000, "{engine:?}");
        // The 32-bit call's frame, over the 16-bit one's: EIP, then CS in a doubleword
        // whose upper half the SDM leaves undefined.
        let mut pushed = [0u8; 6];
        v.read_phys(0x6000 - 8, &mut pushed).unwrap();
        assert_eq!(pushed, [10, 0, 0, 0, 0x00, 0x07], "{engine:?}: EIP, CS");
    }
}

#[test]
fn the_same_ip_in_two_code_segments_is_two_pieces_of_code() {
    // 0100:0000 (linear 0x1000): mov ax, 1 ; jmp far 0200:0000
    // 0200:0000 (linear 0x2000): add ax, 2 ; jmp far 0100:0008
    // 0100:0008 (linear 0x1008): hlt
    for engine in Engine::ALL {
        let mut v = real_mode_vm(engine, 0x0100, 0);
        v.write_phys(0x1000, &[0xB8, 0x01, 0x00, 0xEA, 0x00, 0x00, 0x00, 0x02])
            .unwrap();
        v.write_phys(0x1008, &[0xF4]).unwrap();
        v.write_phys(0x2000, &[0x05, 0x02, 0x00, 0xEA, 0x08, 0x00, 0x00, 0x01])
            .unwrap();
        assert_eq!(v.run(), RunOutcome::Halted, "{engine:?}");
        assert_eq!(v.cpu().gpr[reg::RAX] & 0xFFFF, 3, "{engine:?}");
        assert_eq!((v.cpu().seg[seg::CS].base, v.cpu().rip), (0x1000, 9));
    }
}
