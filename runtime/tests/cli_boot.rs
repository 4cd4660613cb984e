//! The `popek` binary's kernel-boot flags: `--initrd` and `--append`, QEMU's spelling of the
//! command line, bzImage validation errors, and the exit statuses of power-off and reset.
//! Every bad input must give exactly one `popek: error:` line, status 2, and no panic.

use std::path::PathBuf;
use std::process::{Command, Output};

fn popek(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_popek"))
        .args(args)
        .output()
        .expect("run popek")
}

/// `popek run` bounded to 100,000 guest instructions (a load that wrongly succeeds ends with
/// status 12 instead of spinning).
fn popek_run(args: &[&str]) -> Output {
    let mut all = vec!["run", "--max-insns", "100000"];
    all.extend_from_slice(args);
    popek(&all)
}

/// Writes `bytes` to a fresh file named after `name` and returns its path as a string.
fn file(name: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("popek-cli-boot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p: PathBuf = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

/// Asserts the one-line, status-2 error contract and that the line holds `expect`.
#[track_caller]
fn assert_usage_error(out: &Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(out.stdout.is_empty());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "exactly one line: {stderr:?}");
    assert!(stderr.starts_with("popek: error: "), "{stderr}");
    assert!(stderr.contains(expect), "expected {expect:?} in {stderr:?}");
}

/// A synthetic bzImage: protocol 2.15, 64-bit, relocatable, pref_address 16 MiB, init_size
/// 4 MiB, 4 setup sectors and 4 KiB of protected-mode code (`jmp $`).
fn bzimage() -> Vec<u8> {
    let mut v = vec![0u8; 5 * 512 + 4096];
    let mut put = |off: usize, bytes: &[u8]| v[off..off + bytes.len()].copy_from_slice(bytes);
    put(0x1F1, &[4]);
    put(0x1FE, &0xAA55u16.to_le_bytes());
    put(0x200, &[0xEB, 0x6A]);
    put(0x202, b"HdrS");
    put(0x206, &0x020Fu16.to_le_bytes());
    put(0x211, &[1]); // LOADED_HIGH
    put(0x22C, &0x7FFF_FFFFu32.to_le_bytes());
    put(0x230, &0x20_0000u32.to_le_bytes());
    put(0x234, &[1]);
    put(0x236, &0x7Fu16.to_le_bytes());
    put(0x238, &2047u32.to_le_bytes());
    put(0x258, &0x100_0000u64.to_le_bytes());
    put(0x260, &0x40_0000u32.to_le_bytes());
    // startup_64 at +0x200: jmp $.
    put(5 * 512 + 0x200, &[0xEB, 0xFE]);
    v
}

fn patched(mut v: Vec<u8>, off: usize, bytes: &[u8]) -> Vec<u8> {
    v[off..off + bytes.len()].copy_from_slice(bytes);
    v
}

#[test]
fn bad_bzimages_are_one_line_errors() {
    let good = bzimage();
    for (name, img, expect) in [
        ("bz-trunc", good[..0x900].to_vec(), "truncated bzImage"),
        (
            "bz-flag",
            patched(good.clone(), 0x1FE, &[0, 0]),
            "boot_flag",
        ),
        (
            "bz-old",
            patched(good.clone(), 0x206, &[0x04, 0x02]),
            "2.04 is too old",
        ),
        ("bz-zimage", patched(good.clone(), 0x211, &[0]), "zImage"),
        (
            "bz-magic",
            patched(good.clone(), 0x202, b"HdrZ"),
            "not an ELF file",
        ),
    ] {
        let k = file(name, &img);
        assert_usage_error(&popek_run(&["--kernel", &k]), expect);
    }
}

#[test]
fn ram_too_small_for_init_size_and_initrd_that_does_not_fit() {
    let k = file("bz-ram", &bzimage());
    // 16 MiB + init_size 4 MiB does not fit in 16 MiB of RAM, in either spelling.
    let out = popek_run(&["--mem", "16M", "--kernel", &k]);
    assert_usage_error(&out, "RAM too small");
    assert_usage_error(&popek(&["-kernel", &k, "-m", "16"]), "RAM too small");
    assert_usage_error(&popek(&["-m", "16", "-kernel", &k]), "RAM too small");
    // Neither above the kernel's [16 MiB, 20 MiB) nor between 1 MiB and it.
    let initrd = file("big-initrd", &vec![0u8; 16 << 20]);
    let out = popek_run(&["--mem", "24M", "--kernel", &k, "--initrd", &initrd]);
    assert_usage_error(&out, "initrd");
    let out = popek_run(&["--kernel", &k, "--initrd", "/nonexistent/initrd.gz"]);
    assert_usage_error(&out, "cannot read initrd");
    let out = popek(&[
        "run",
        "--kernel",
        &k,
        "--initrd",
        &format!("{initrd},{initrd}"),
    ]);
    assert_usage_error(&out, "one initrd");
    let long = "x".repeat(2048);
    assert_usage_error(
        &popek_run(&["--kernel", &k, "--append", &long]),
        "command line too long",
    );
}

#[test]
fn a_bzimage_boots_to_its_64bit_entry() {
    let k = file("bz-spin", &bzimage());
    let initrd = file("small-initrd", b"070701");
    let out = popek(&[
        "run",
        "--kernel",
        &k,
        "--initrd",
        &initrd,
        "--append",
        "console=ttyS0",
        "--max-insns",
        "1000",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(12), "{stderr}");
    assert!(stderr.contains("rip 0x1000200"), "{stderr}");
}

#[test]
fn qemu_spelling_runs_and_rejects_what_popek_cannot_do() {
    let demo = file("demo.elf", runtime::DEMO_KERNEL);
    let out = popek(&[
        "-kernel",
        &demo,
        "-m",
        "128",
        "-nographic",
        "-serial",
        "stdio",
        "-no-reboot",
        "-accel",
        "tcg",
        "-smp",
        "1",
        "-display",
        "none",
        "-monitor",
        "none",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("popek demo guest:"));
    for (args, expect) in [
        (
            &["-kernel", &demo, "-hda", "disk.img"][..],
            "unknown QEMU option '-hda'",
        ),
        (&["-kernel", &demo, "-cpu", "max"], "-cpu max"),
        (&["-kernel", &demo, "-smp", "2"], "one CPU"),
        (&["-kernel", &demo, "-accel", "kvm"], "-accel kvm"),
        (&["-kernel", &demo, "-m"], "needs a value"),
        (&["-kernel", &demo, "-m", "1"], "--mem"),
        (&["-kernel", &demo, "-append", "quiet"], "no command line"),
    ] {
        assert_usage_error(&popek(args), expect);
    }
}

/// Offset of the demo's entry code in the file (program header 0's p_offset).
fn demo_text() -> usize {
    let k = runtime::DEMO_KERNEL;
    let phoff = u64::from_le_bytes(k[32..40].try_into().unwrap()) as usize;
    u64::from_le_bytes(k[phoff + 8..phoff + 16].try_into().unwrap()) as usize
}

#[test]
fn power_off_exits_0_and_reset_exits_6() {
    // mov dx, 0x604 ; mov ax, SLP_EN | SLP_TYP(S5 = 0) ; out dx, ax
    let off = [0x66, 0xBA, 0x04, 0x06, 0x66, 0xB8, 0x00, 0x20, 0x66, 0xEF];
    // mov dx, 0xCF9 ; mov al, 6 ; out dx, al
    let cf9 = [0x66, 0xBA, 0xF9, 0x0C, 0xB0, 0x06, 0xEE];
    // mov al, 0xFE ; out 0x64, al
    let kbd = [0xB0, 0xFE, 0xE6, 0x64];
    for (name, code, status) in [("off", &off[..], 0), ("cf9", &cf9, 6), ("kbd", &kbd, 6)] {
        let img = patched(runtime::DEMO_KERNEL.to_vec(), demo_text(), code);
        let k = file(name, &img);
        for engine in ["dbt", "interp"] {
            let out = popek(&["run", "--engine", engine, "--kernel", &k]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(status), "{name} {engine}: {stderr}");
            assert!(out.stdout.is_empty());
            assert_eq!(stderr.contains("reset"), status == 6, "{stderr}");
        }
    }
}

/// A Multiboot a.out-kludge kernel at 1 MiB whose code exits through isa-debug-exit with
/// `mods_count` (so the status is `(count << 1) | 1`).
fn multiboot_mods_count() -> Vec<u8> {
    let magic = 0x1BAD_B002u32;
    let flags = (1u32 << 16) | 2;
    let base = 0x10_0000u32;
    let fields = [
        magic,
        flags,
        0u32.wrapping_sub(magic).wrapping_sub(flags),
        base,
        base,
        0,
        0,
        base + 32,
    ];
    let mut v: Vec<u8> = fields.iter().flat_map(|f| f.to_le_bytes()).collect();
    v.resize(32, 0);
    // mov eax, [ebx + 20] ; out 0xF4, eax ; hlt
    v.extend_from_slice(&[0x8B, 0x43, 0x14, 0xE7, 0xF4, 0xF4]);
    v
}

#[test]
fn multiboot_initrds_become_modules() {
    let k = file("mb-mods", &multiboot_mods_count());
    let m = file("module", b"data");
    let out = popek(&[
        "run",
        "--kernel",
        &k,
        "--initrd",
        &format!("{m} arg,{m}"),
        "--append",
        "x",
    ]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "2 modules: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = popek(&["-kernel", &k]);
    assert_eq!(out.status.code(), Some(1), "no modules");
}
