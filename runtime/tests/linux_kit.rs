//! Loads the real Debian 12 cloud kernel and busybox initramfs from `target/linux-kit/`
//! (built by `testsuite/linux/fetch`) and checks the zero page and the entry state the boot
//! protocol promises. Skipped, with a note, when the kit is absent.

use std::path::PathBuf;

use runtime::{BootSpec, Engine, Initrd, RunOutcome, SerialSink, Vm, VmConfig};

fn kit() -> Option<(Vec<u8>, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/linux-kit");
    let kernel = std::fs::read(dir.join("vmlinuz")).ok()?;
    let initrd = std::fs::read(dir.join("initramfs.cpio.gz")).ok()?;
    Some((kernel, initrd))
}

fn u32_at(vm: &Vm, addr: u64) -> u32 {
    let mut b = [0u8; 4];
    vm.read_phys(addr, &mut b).unwrap();
    u32::from_le_bytes(b)
}

fn vm(limit: u64) -> Vm {
    Vm::new(VmConfig {
        mem_bytes: 512 << 20,
        engine: Engine::Dbt,
        serial: SerialSink::Capture,
        instruction_limit: Some(limit),
        ..VmConfig::default()
    })
    .unwrap()
}

const CMDLINE: &str = "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1";

#[test]
fn debian_kernel_loads_with_the_boot_protocol_state() {
    let Some((kernel, initrd)) = kit() else {
        eprintln!("note: target/linux-kit is absent (run testsuite/linux/fetch); skipped");
        return;
    };
    let mut vm = vm(1);
    let initrds = [Initrd {
        entry: "initramfs.cpio.gz".into(),
        bytes: initrd.clone(),
    }];
    let entry = vm
        .boot(&BootSpec {
            kernel: &kernel,
            kernel_name: "vmlinuz",
            append: CMDLINE,
            initrds: &initrds,
        })
        .unwrap();
    // Debian's 6.1 kernel: protocol 2.15, relocatable, pref_address 16 MiB, 64-bit entry.
    let zp = 0x7000;
    assert_eq!(u32_at(&vm, zp + 0x202), u32::from_le_bytes(*b"HdrS"));
    assert!(u32_at(&vm, zp + 0x206) & 0xFFFF >= 0x20C);
    let load = u32_at(&vm, zp + 0x214);
    assert_eq!(load, 0x100_0000, "code32_start: pref_address");
    assert_eq!(entry, u64::from(load) + 0x200, "startup_64");
    let cpu = vm.cpu();
    assert_eq!((cpu.rip, cpu.gpr[6]), (entry, zp), "RIP and RSI");
    assert_eq!((cpu.seg[1].selector, cpu.seg[3].selector), (0x10, 0x18));
    assert_ne!(cpu.cr0 & (1 << 31), 0, "paging");
    assert_eq!(cpu.rflags & (1 << 9), 0, "interrupts off");
    // Zero page: loader fields, initrd, command line, e820, RSDP.
    assert_eq!(u32_at(&vm, zp + 0x210) & 0xFF, 0xFF, "type_of_loader");
    let (rd_addr, rd_size) = (u32_at(&vm, zp + 0x218), u32_at(&vm, zp + 0x21C));
    assert_eq!(rd_size as usize, initrd.len());
    assert_eq!(rd_addr % 4096, 0);
    assert!(u64::from(rd_addr) + u64::from(rd_size) <= 512 << 20);
    let init_size = u32_at(&vm, zp + 0x260);
    assert!(
        rd_addr >= load + init_size,
        "initrd above the kernel's init_size span"
    );
    let mut head = [0u8; 6];
    vm.read_phys(u64::from(rd_addr), &mut head).unwrap();
    assert_eq!(head[..2], [0x1F, 0x8B], "gzip");
    let cmdline = u32_at(&vm, zp + 0x228);
    let mut got = vec![0u8; CMDLINE.len() + 1];
    vm.read_phys(u64::from(cmdline), &mut got).unwrap();
    assert_eq!(&got[..CMDLINE.len()], CMDLINE.as_bytes());
    assert_eq!(got[CMDLINE.len()], 0);
    assert_eq!(u32_at(&vm, zp + 0x1E8) & 0xFF, 3, "e820 entries");
    assert_eq!(u32_at(&vm, zp + 0x70), 0xE_0000, "acpi_rsdp_addr");
    let mut sig = [0u8; 8];
    vm.read_phys(0xE_0000, &mut sig).unwrap();
    assert_eq!(&sig, b"RSD PTR ");
    // The decompressor's first bytes are where RIP points.
    let mut code = [0u8; 16];
    vm.read_phys(entry, &mut code).unwrap();
    assert_eq!(
        code[..],
        kernel[(usize::from(kernel[0x1F1]) + 1) * 512 + 0x200..][..16]
    );
}

/// Runs the real kernel for a bounded number of instructions and reports how far it got.
/// The CPU does not yet implement everything Linux uses, so only "no internal error" is
/// asserted; the note on stderr says where it stopped.
#[test]
fn debian_kernel_runs_until_the_first_unsupported_instruction() {
    let Some((kernel, initrd)) = kit() else {
        eprintln!("note: target/linux-kit is absent (run testsuite/linux/fetch); skipped");
        return;
    };
    let mut vm = vm(200_000_000);
    let initrds = [Initrd {
        entry: "initramfs.cpio.gz".into(),
        bytes: initrd,
    }];
    vm.boot(&BootSpec {
        kernel: &kernel,
        kernel_name: "vmlinuz",
        append: CMDLINE,
        initrds: &initrds,
    })
    .unwrap();
    let outcome = vm.run();
    eprintln!(
        "note: Debian kernel stopped after {} instructions: {outcome}\nserial: {}",
        vm.cpu().icount,
        String::from_utf8_lossy(vm.serial_output())
    );
    assert!(
        !matches!(outcome, RunOutcome::InternalError(_)),
        "{outcome}"
    );
}
