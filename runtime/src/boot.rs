//! Booting a kernel the way `qemu-system-x86_64 -kernel F -initrd F -append S` does: the
//! format is detected from the image, the matching loader runs, and the CPU is put in the
//! state that format's protocol defines.
//!
//! | format | detected by | `-append` | `-initrd` |
//! |--------|-------------|-----------|-----------|
//! | Linux bzImage | `"HdrS"` at 0x202 | the kernel command line | one initrd |
//! | Multiboot v1 | a valid header in the first 8 KiB | the command line is `"<kernel file name> <append>"`, as QEMU builds it | comma-separated modules, each `"file args"` (the string is the whole entry) |
//! | ELF64 | anything else | must be empty | must be absent |
//!
//! A Linux boot also installs the firmware a kernel expects ([`crate::firmware`]): the ACPI
//! tables in the BIOS area and the fw_cfg items QEMU gives (command line, kernel, initrd
//! and setup addresses and sizes).
//!
//! Invariants: nothing is written to guest memory unless the whole boot was validated (each
//! loader guarantees this for its part; the firmware blobs are validated with the Linux
//! loader's pieces); every range written is dropped from the translation caches.

use translator::state::DescTable;

use crate::firmware::{acpi, fw_cfg};
use crate::loader::linux::{self, Firmware};
use crate::loader::multiboot;
use crate::vm::{KernelError, Vm};

/// A kernel image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// A Linux bzImage (boot protocol magic `"HdrS"` at 0x202).
    Linux,
    /// A Multiboot v1 kernel.
    Multiboot,
    /// Anything else, which must be an ELF64 x86-64 executable.
    Elf64,
}

/// The format of `image` (see the module documentation).
pub fn detect(image: &[u8]) -> KernelFormat {
    if linux::is_bzimage(image) {
        KernelFormat::Linux
    } else if multiboot::is_multiboot(image) {
        KernelFormat::Multiboot
    } else {
        KernelFormat::Elf64
    }
}

/// A file given with `-initrd`: its entry (`"file args"`) and its contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Initrd {
    /// The entry as given: the file name, optionally followed by arguments (a Multiboot
    /// module's string).
    pub entry: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

/// What to boot.
#[derive(Clone, Copy, Debug)]
pub struct BootSpec<'a> {
    /// The kernel image.
    pub kernel: &'a [u8],
    /// The kernel's file name as given (the first word of a Multiboot command line).
    pub kernel_name: &'a str,
    /// The `-append` text.
    pub append: &'a str,
    /// The `-initrd` files.
    pub initrds: &'a [Initrd],
}

impl Vm {
    /// Boots `spec` (see the module documentation). Returns the entry point.
    pub fn boot(&mut self, spec: &BootSpec) -> Result<u64, KernelError> {
        match detect(spec.kernel) {
            KernelFormat::Linux => {
                let initrd = match spec.initrds {
                    [] => None,
                    [one] => Some(one.bytes.as_slice()),
                    more => return Err(KernelError::TooManyInitrds(more.len())),
                };
                self.boot_linux(spec.kernel, initrd, spec.append)
            }
            KernelFormat::Multiboot => {
                let cmdline = multiboot::qemu_cmdline(spec.kernel_name, spec.append);
                let modules: Vec<multiboot::Module> = spec
                    .initrds
                    .iter()
                    .map(|i| multiboot::Module {
                        cmdline: &i.entry,
                        bytes: &i.bytes,
                    })
                    .collect();
                self.boot_multiboot(spec.kernel, &cmdline, &modules)
            }
            KernelFormat::Elf64 => {
                if !spec.initrds.is_empty() || !spec.append.is_empty() {
                    return Err(KernelError::ElfTakesNoArguments);
                }
                Ok(self.load_elf(spec.kernel)?)
            }
        }
    }

    /// Loads a Multiboot kernel with `cmdline` and `modules` and sets its entry state.
    pub(crate) fn boot_multiboot(
        &mut self,
        image: &[u8],
        cmdline: &str,
        modules: &[multiboot::Module],
    ) -> Result<u64, KernelError> {
        let (cpu, machine) = self.parts_mut();
        let boot = multiboot::load(&mut machine.ram, image, cmdline, modules)?;
        for &(start, end) in &boot.ranges {
            machine.invalidate_code(start, end);
        }
        crate::system::mode::reset_protected_flat32(cpu);
        cpu.gpr[0] = u64::from(boot.eax);
        cpu.gpr[3] = u64::from(boot.ebx);
        cpu.rip = u64::from(boot.entry);
        machine.flush_tlb(cpu, true);
        Ok(u64::from(boot.entry))
    }

    /// Loads a bzImage with its initrd and command line, the ACPI tables and BIOS data area
    /// words, fills in fw_cfg, and sets the boot protocol's entry state.
    pub(crate) fn boot_linux(
        &mut self,
        image: &[u8],
        initrd: Option<&[u8]>,
        cmdline: &str,
    ) -> Result<u64, KernelError> {
        let tables = acpi::build(&acpi::AcpiConfig::default());
        let blobs = [(tables.base, tables.bytes.as_slice())];
        let firmware = Firmware {
            blobs: &blobs,
            rsdp: tables.rsdp,
        };
        let (cpu, machine) = self.parts_mut();
        let boot = linux::load(&mut machine.ram, image, initrd, cmdline, &firmware)?;
        for &(start, end) in &boot.ranges {
            machine.invalidate_code(start, end);
        }
        let fw = machine.fw_cfg_mut();
        fw.set_cmdline(boot.cmdline_addr as u32, cmdline);
        // Both below 4 GiB: the loader places them there.
        fw.set_u32(fw_cfg::key::KERNEL_ADDR, boot.kernel.0 as u32);
        let code_size = image.len().saturating_sub(boot.header.setup_size);
        fw.set_u32(fw_cfg::key::KERNEL_SIZE, code_size as u32);
        let (initrd_addr, initrd_size) = boot.initrd.unwrap_or((0, 0));
        fw.set_u32(fw_cfg::key::INITRD_ADDR, initrd_addr as u32);
        fw.set_u32(fw_cfg::key::INITRD_SIZE, initrd_size as u32);
        let setup = image.get(..boot.header.setup_size).unwrap_or_default();
        fw.set_u32(fw_cfg::key::SETUP_ADDR, boot.zero_page as u32);
        fw.set_u32(fw_cfg::key::SETUP_SIZE, setup.len() as u32);
        fw.set(fw_cfg::key::SETUP_DATA, setup.to_vec());

        let gdt = DescTable {
            base: boot.gdt_base,
            limit: u64::from(boot.gdt_limit),
        };
        crate::system::mode::reset_linux(cpu, gdt, boot.long_mode.then_some(boot.cr3));
        cpu.gpr = [0; 16];
        cpu.gpr[translator::state::reg::RSI] = boot.zero_page;
        cpu.gpr[translator::state::reg::RSP] = boot.stack;
        cpu.rip = boot.entry;
        machine.flush_tlb(cpu, true);
        Ok(boot.entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::SerialSink;
    use crate::engine::Engine;
    use crate::loader::linux::tests::fake_bzimage;
    use crate::vm::VmConfig;

    fn vm() -> Vm {
        Vm::new(VmConfig {
            mem_bytes: 64 << 20,
            engine: Engine::Interp,
            serial: SerialSink::Capture,
            instruction_limit: Some(1000),
            ..VmConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn formats_are_detected_by_their_magic() {
        assert_eq!(detect(&fake_bzimage(0x20F, 16)), KernelFormat::Linux);
        assert_eq!(detect(crate::DEMO_KERNEL), KernelFormat::Elf64);
        assert_eq!(detect(b""), KernelFormat::Elf64);
        let mut mb = vec![0u8; 64];
        mb[8..20].copy_from_slice(&[0x02, 0xB0, 0xAD, 0x1B, 0, 0, 0, 0, 0xFE, 0x4F, 0x52, 0xE4]);
        assert_eq!(detect(&mb), KernelFormat::Multiboot);
    }

    #[test]
    fn linux_boot_sets_the_64bit_entry_state_and_firmware() {
        let mut v = vm();
        let img = fake_bzimage(0x20F, 0x1000);
        let initrd = Initrd {
            entry: "initrd.img".into(),
            bytes: vec![7; 100],
        };
        let spec = BootSpec {
            kernel: &img,
            kernel_name: "vmlinuz",
            append: "console=ttyS0",
            initrds: std::slice::from_ref(&initrd),
        };
        assert_eq!(v.boot(&spec).unwrap(), 0x100_0200);
        let cpu = v.cpu();
        assert_eq!(cpu.rip, 0x100_0200);
        assert_eq!(cpu.gpr[6], 0x7000, "RSI: the zero page");
        assert_eq!((cpu.cr3, cpu.seg[1].selector), (0x3_0000, 0x10));
        assert_eq!(cpu.rflags & (1 << 9), 0, "interrupts off");
        let mut rsdp = [0u8; 8];
        v.read_phys(0xE_0000, &mut rsdp).unwrap();
        assert_eq!(&rsdp, b"RSD PTR ");
        let fw = v
            .machine()
            .bus
            .device::<fw_cfg::FwCfg>(v.machine().chipset.fw_cfg)
            .unwrap();
        assert_eq!(
            fw.item(fw_cfg::key::CMDLINE_DATA),
            Some(&b"console=ttyS0\0"[..])
        );
        assert_eq!(
            fw.item(fw_cfg::key::INITRD_SIZE),
            Some(&100u32.to_le_bytes()[..])
        );
        // Two initrds for Linux, or arguments for an ELF64 kernel: refused.
        let two = [initrd.clone(), initrd.clone()];
        let spec = BootSpec {
            initrds: &two,
            ..spec
        };
        assert!(matches!(
            vm().boot(&spec),
            Err(KernelError::TooManyInitrds(2))
        ));
        let spec = BootSpec {
            kernel: crate::DEMO_KERNEL,
            initrds: &[],
            ..spec
        };
        assert!(matches!(
            vm().boot(&spec),
            Err(KernelError::ElfTakesNoArguments)
        ));
    }
}
