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

/// One newc archive member: name, mode, rdev (major, minor), data.
type Member = (String, u32, (u32, u32), Vec<u8>);

/// Parses a newc ("070701") archive up to its trailer.
fn newc_members(archive: &[u8]) -> Vec<Member> {
    let hex = |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    let mut out = Vec::new();
    let mut off = 0;
    loop {
        let h = &archive[off..off + 110];
        assert_eq!(&h[..6], b"070701", "newc magic at {off:#x}");
        let field = |i: usize| hex(&h[6 + 8 * i..14 + 8 * i]);
        let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
        let name_start = off + 110;
        let name =
            String::from_utf8(archive[name_start..name_start + namesize - 1].to_vec()).unwrap();
        let data_start = (name_start + namesize).next_multiple_of(4);
        if name == "TRAILER!!!" {
            return out;
        }
        let data = archive[data_start..data_start + size].to_vec();
        out.push((name, mode, (field(9), field(10)), data));
        off = (data_start + size).next_multiple_of(4);
    }
}

#[test]
fn kit_initramfs_is_a_newc_archive_with_busybox_and_init() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/linux-kit");
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(dir.join("initramfs.cpio.gz"))
        .output();
    let archive = match out {
        Ok(o) if o.status.success() => o.stdout,
        _ => {
            eprintln!("note: no target/linux-kit/initramfs.cpio.gz (or no gzip); skipped");
            return;
        }
    };
    let members = newc_members(&archive);
    let find = |n: &str| {
        members
            .iter()
            .find(|m| m.0 == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    let (_, mode, _, init) = find("init");
    assert_eq!(mode & 0o170_777, 0o100_755);
    let init = String::from_utf8_lossy(init);
    assert!(
        init.starts_with("#!/bin/sh") && init.contains("popek-init: ready"),
        "{init}"
    );
    assert!(init.contains("mount -t devtmpfs"), "{init}");
    assert_eq!(find("bin/busybox").1 & 0o170_000, 0o100_000);
    let (_, mode, _, target) = find("bin/sh");
    assert_eq!(
        (mode & 0o170_000, target.as_slice()),
        (0o120_000, &b"/bin/busybox"[..])
    );
    assert_eq!(find("sbin/poweroff").3, b"/bin/busybox");
    let (_, mode, rdev, _) = find("dev/console");
    assert_eq!(
        (mode & 0o170_000, *rdev),
        (0o020_000, (5, 1)),
        "a character device 5:1"
    );
    for d in ["dev", "proc", "sys", "tmp"] {
        assert_eq!(find(d).1 & 0o170_000, 0o040_000, "{d} is a directory");
    }
}

#[test]
fn fetch_script_is_valid_bash() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testsuite/linux/fetch");
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&script).unwrap().permissions().mode();
    assert_ne!(mode & 0o111, 0, "executable");
}
