//! QEMU's spelling of a `popek run` command line (part of the `popek` binary, not the
//! library): `popek -kernel F -initrd F -append "..." -m 512M -nographic -serial stdio
//! -no-reboot -accel tcg` runs what `qemu-system-x86_64` with the same arguments would.
//!
//! Accepted, with the meaning QEMU gives them: `-kernel`, `-initrd`, `-append`, `-m`
//! (`512`, `512M`, `1G`, `size=512M`: a number without a suffix is MiB), `-smp 1`
//! (`cpus=1`), `-accel tcg`, `-machine`/`-M` `pc` (or `accel=tcg`), `-serial stdio`,
//! `-display none`, `-monitor none`, `-nographic`, `-no-reboot` (popek never reboots: a
//! reset ends the run), `-device isa-debug-exit[,iobase=0xf4,iosize=0x04]` (always
//! present). Anything else, or a value popek cannot honour (more than one CPU, another
//! accelerator, a `-cpu` model), is one clear error naming the option.
//!
//! Invariant: parsing never panics on any argument list.

/// What a QEMU command line asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QemuArgs {
    /// `-kernel`.
    pub kernel: Option<String>,
    /// `-initrd`.
    pub initrd: Option<String>,
    /// `-append`.
    pub append: Option<String>,
    /// `-m`, in popek's `--mem` spelling (bytes or with a K/M/G suffix).
    pub mem: Option<String>,
}

/// Whether `args` (without the program name) are QEMU-style: the first one is a
/// single-dash option other than popek's own `-h` and `-V`.
pub fn is_qemu_style(args: &[String]) -> bool {
    args.first().is_some_and(|a| {
        a.starts_with('-') && !a.starts_with("--") && a.len() >= 2 && a != "-h" && a != "-V"
    })
}

/// Converts QEMU's `-m` value to popek's `--mem` spelling.
fn mem_value(v: &str) -> Result<String, String> {
    let v = v.strip_prefix("size=").unwrap_or(v);
    let size = v.split(',').next().unwrap_or(v);
    if size.is_empty() {
        return Err("-m needs a size, e.g. -m 512M".into());
    }
    if size.bytes().all(|b| b.is_ascii_digit()) {
        Ok(format!("{size}M"))
    } else {
        Ok(size.to_string())
    }
}

/// Parses QEMU-style `args` (without the program name).
pub fn parse(args: &[String]) -> Result<QemuArgs, String> {
    let mut out = QemuArgs::default();
    let mut it = args.iter();
    while let Some(opt) = it.next() {
        // QEMU accepts `--opt` for `-opt` too.
        let name = opt.strip_prefix("--").or_else(|| opt.strip_prefix('-'));
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return Err(format!(
                "unexpected argument '{opt}' (QEMU-style options start with '-')"
            ));
        };
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("QEMU option '-{name}' needs a value"))
        };
        match name {
            "kernel" => out.kernel = Some(value()?),
            "initrd" => out.initrd = Some(value()?),
            "append" => out.append = Some(value()?),
            "m" => out.mem = Some(mem_value(&value()?)?),
            "nographic" | "no-reboot" => {}
            "smp" => {
                let v = value()?;
                let cpus = v.split(',').next().unwrap_or("");
                if cpus != "1" && cpus != "cpus=1" {
                    return Err(format!("-smp {v}: popek runs one CPU"));
                }
            }
            "accel" => {
                let v = value()?;
                if v.split(',').next() != Some("tcg") {
                    return Err(format!(
                        "-accel {v}: popek is a binary translator; use -accel tcg"
                    ));
                }
            }
            "machine" | "M" => {
                let v = value()?;
                let ok = v.split(',').all(|p| matches!(p, "pc" | "accel=tcg"));
                if !ok {
                    return Err(format!("-machine {v}: popek models one PC machine (pc)"));
                }
            }
            "serial" => {
                let v = value()?;
                if v != "stdio" {
                    return Err(format!("-serial {v}: popek's COM1 is always stdio"));
                }
            }
            "display" | "monitor" => {
                let v = value()?;
                if v != "none" {
                    return Err(format!(
                        "-{name} {v}: popek has no display or monitor; use none"
                    ));
                }
            }
            "device" => {
                let v = value()?;
                let mut parts = v.split(',');
                let known = parts.next() == Some("isa-debug-exit")
                    && parts.all(|p| matches!(p, "iobase=0xf4" | "iosize=0x04" | "iosize=4"));
                if !known {
                    return Err(format!(
                        "-device {v}: popek has only isa-debug-exit at iobase=0xf4"
                    ));
                }
            }
            "cpu" => {
                let v = value()?;
                return Err(format!(
                    "-cpu {v}: popek models one CPU type and cannot select another"
                ));
            }
            _ => return Err(format!("unknown QEMU option '{opt}'")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_direct_kernel_boot_line() {
        let a = parse(&args(&[
            "-kernel",
            "vmlinuz",
            "-initrd",
            "i.gz",
            "-append",
            "console=ttyS0 panic=-1",
            "-m",
            "512M",
            "-nographic",
            "-serial",
            "stdio",
            "-no-reboot",
            "-accel",
            "tcg",
            "-smp",
            "1",
        ]))
        .unwrap();
        assert_eq!(a.kernel.as_deref(), Some("vmlinuz"));
        assert_eq!(a.initrd.as_deref(), Some("i.gz"));
        assert_eq!(a.append.as_deref(), Some("console=ttyS0 panic=-1"));
        assert_eq!(a.mem.as_deref(), Some("512M"));
    }

    #[test]
    fn memory_sizes_default_to_mib() {
        assert_eq!(mem_value("512").unwrap(), "512M");
        assert_eq!(mem_value("1G").unwrap(), "1G");
        assert_eq!(mem_value("size=256M,slots=2").unwrap(), "256M");
        assert!(mem_value("").is_err());
    }

    #[test]
    fn unsupported_and_unknown_options_name_themselves() {
        for (bad, want) in [
            (&["-hda", "x.img"][..], "unknown QEMU option '-hda'"),
            (&["-kernel"], "'-kernel' needs a value"),
            (&["-smp", "4"], "one CPU"),
            (&["-accel", "kvm"], "-accel kvm"),
            (&["-cpu", "max"], "-cpu max"),
            (&["-serial", "mon:stdio"], "-serial mon:stdio"),
            (&["-device", "virtio-net"], "-device virtio-net"),
            (&["-kernel", "k", "stray"], "unexpected argument 'stray'"),
            (&["-"], "unexpected argument '-'"),
        ] {
            let e = parse(&args(bad)).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn qemu_style_is_told_apart_from_popeks_own() {
        assert!(is_qemu_style(&args(&["-kernel", "k"])));
        assert!(is_qemu_style(&args(&["-nographic"])));
        assert!(is_qemu_style(&args(&["-m", "512", "-kernel", "k"])));
        for own in [&["run"][..], &["--version"], &["-h"], &["-V"], &["-"], &[]] {
            assert!(!is_qemu_style(&args(own)), "{own:?}");
        }
    }
}
