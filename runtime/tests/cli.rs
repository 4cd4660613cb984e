//! Runs the built `popek` binary on every class of bad input: each must exit with status 2,
//! print exactly one `popek: error:` line on stderr, nothing on stdout, and never panic.

use std::path::PathBuf;
use std::process::{Command, Output};

fn popek(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_popek"))
        .args(args)
        .output()
        .expect("run popek")
}

/// Writes `bytes` to a fresh file named after `name` and returns its path.
fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("popek-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Asserts the one-line, status-2 error contract; returns the line.
#[track_caller]
fn assert_usage_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "exactly one line: {stderr:?}");
    assert!(stderr.starts_with("popek: error: "), "{stderr}");
    stderr
}

#[track_caller]
fn assert_bad_kernel(name: &str, bytes: &[u8], expect: &str) {
    let path = file(name, bytes);
    let out = popek(&["run", "--kernel", path.to_str().unwrap()]);
    let line = assert_usage_error(&out);
    assert!(
        line.contains(expect),
        "{name}: expected {expect:?} in {line:?}"
    );
}

/// The demo kernel with `patch` applied at `offset`.
fn patched(offset: usize, patch: &[u8]) -> Vec<u8> {
    let mut v = runtime::DEMO_KERNEL.to_vec();
    v[offset..offset + patch.len()].copy_from_slice(patch);
    v
}

/// Offset of field `field` of program header 0 (the demo's text segment).
fn ph0(field: usize) -> usize {
    let phoff = u64::from_le_bytes(runtime::DEMO_KERNEL[32..40].try_into().unwrap()) as usize;
    phoff + field
}

#[test]
fn missing_kernel_file() {
    let out = popek(&["run", "--kernel", "/nonexistent/popek/kernel.elf"]);
    let line = assert_usage_error(&out);
    assert!(line.contains("cannot read kernel"), "{line}");
}

#[test]
fn kernel_that_is_a_directory() {
    let out = popek(&["run", "--kernel", "/"]);
    assert_usage_error(&out);
}

#[test]
fn not_elf() {
    assert_bad_kernel("empty", b"", "not an ELF file");
    assert_bad_kernel("script", b"#!/bin/sh\necho hello\n", "not an ELF file");
}

#[test]
fn truncated_header() {
    assert_bad_kernel(
        "trunc-hdr",
        &runtime::DEMO_KERNEL[..40],
        "truncated ELF header",
    );
}

#[test]
fn truncated_program_headers() {
    assert_bad_kernel(
        "trunc-ph",
        &runtime::DEMO_KERNEL[..100],
        "truncated program headers",
    );
}

#[test]
fn wrong_class_machine_or_type() {
    assert_bad_kernel("elf32", &patched(4, &[1]), "not a 64-bit ELF");
    assert_bad_kernel("bigendian", &patched(5, &[2]), "not a little-endian ELF");
    assert_bad_kernel(
        "aarch64",
        &patched(18, &183u16.to_le_bytes()),
        "not an x86-64 ELF",
    );
    assert_bad_kernel(
        "dyn",
        &patched(16, &3u16.to_le_bytes()),
        "not an executable ELF",
    );
}

#[test]
fn segment_outside_file() {
    let img = patched(ph0(8), &0x7fff_0000u64.to_le_bytes());
    assert_bad_kernel("seg-file", &img, "outside the");
    let img = patched(ph0(8), &u64::MAX.to_le_bytes());
    assert_bad_kernel("seg-file-overflow", &img, "outside the");
}

#[test]
fn segment_outside_ram() {
    let img = patched(ph0(24), &(1u64 << 40).to_le_bytes());
    assert_bad_kernel("seg-ram", &img, "outside RAM");
    let img = patched(ph0(24), &(u64::MAX - 8).to_le_bytes());
    assert_bad_kernel("seg-ram-overflow", &img, "outside RAM");
    // Fits in 64 MiB but not in 2 MiB.
    let path = file("seg-small-ram", runtime::DEMO_KERNEL);
    let img = patched(ph0(24), &(3u64 << 20).to_le_bytes());
    std::fs::write(&path, img).unwrap();
    let out = popek(&["run", "--mem", "2M", "--kernel", path.to_str().unwrap()]);
    assert!(assert_usage_error(&out).contains("outside RAM"));
}

#[test]
fn overlapping_segments() {
    // Move the rodata segment (program header 1) onto the text segment.
    let img = patched(ph0(56 + 24), &0x10_0000u64.to_le_bytes());
    assert_bad_kernel("overlap", &img, "overlap");
}

#[test]
fn entry_outside_ram() {
    let img = patched(24, &(1u64 << 40).to_le_bytes());
    assert_bad_kernel("entry", &img, "entry point");
}

#[test]
fn bad_mem_sizes() {
    for bad in [
        "",
        "abc",
        "1M",
        "65G",
        "12Q",
        "2097153",
        "-64M",
        "99999999999999999999",
    ] {
        let out = popek(&["run", "--mem", bad]);
        let line = assert_usage_error(&out);
        assert!(line.contains("--mem"), "{bad}: {line}");
    }
}

#[test]
fn clap_usage_errors_exit_2() {
    for args in [
        &[][..],
        &["run", "--engine", "quantum"],
        &["run", "--bogus"],
        &["fly"],
    ] {
        let out = popek(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

#[test]
fn help_and_version_succeed() {
    let out = popek(&["run", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--kernel"));
    assert_eq!(popek(&["--version"]).status.code(), Some(0));
}

#[test]
fn instruction_limit_exits_12() {
    let out = popek(&["run", "--engine", "interp", "--max-insns", "1"]);
    assert_eq!(
        out.status.code(),
        Some(12),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("instruction limit"), "{stderr}");
}

#[test]
fn unhandled_exception_exits_8_with_a_register_dump() {
    // Plant an invalid opcode at the entry point.
    let mut img = runtime::DEMO_KERNEL.to_vec();
    let text_off = u64::from_le_bytes(img[ph0(8)..ph0(8) + 8].try_into().unwrap()) as usize;
    img[text_off] = 0x06; // `push es`: invalid in 64-bit mode → #UD
    let path = file("ud", &img);
    let out = popek(&["run", "--kernel", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    assert!(stderr.contains("#UD"), "{stderr}");
    assert!(stderr.contains("rip=0000000000100000"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn unsupported_instruction_raises_ud_and_is_counted_in_stats() {
    let mut img = runtime::DEMO_KERNEL.to_vec();
    let text_off = u64::from_le_bytes(img[ph0(8)..ph0(8) + 8].try_into().unwrap()) as usize;
    // vaddps ymm0, ymm1, ymm2: AVX is not offered. The demo loads no IDT, so the #UD is
    // an unhandled exception (status 8), as `push es` is above.
    img[text_off..text_off + 4].copy_from_slice(&[0xC5, 0xF4, 0x58, 0xC2]);
    let path = file("avx-ud", &img);
    for engine in ["interp", "dbt", "jit", "trap"] {
        let out = popek(&[
            "run",
            "--engine",
            engine,
            "--stats",
            "--kernel",
            path.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(8), "{engine}: {stderr}");
        assert!(stderr.contains("#UD"), "{stderr}");
        assert!(stderr.contains("rip=0000000000100000"), "{stderr}");
        assert!(
            stderr.contains("#UD (unimplemented)    vaddps 1"),
            "{engine}: {stderr}"
        );
    }
}

#[test]
fn stop_on_unsupported_exits_4_with_bytes_and_mnemonic() {
    let mut img = runtime::DEMO_KERNEL.to_vec();
    let text_off = u64::from_le_bytes(img[ph0(8)..ph0(8) + 8].try_into().unwrap()) as usize;
    // vaddps ymm0, ymm1, ymm2: AVX is not implemented.
    img[text_off..text_off + 4].copy_from_slice(&[0xC5, 0xF4, 0x58, 0xC2]);
    let path = file("avx", &img);
    for engine in ["interp", "dbt", "jit", "trap"] {
        let out = popek(&[
            "run",
            "--engine",
            engine,
            "--stop-on-unsupported",
            "--kernel",
            path.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{engine}: {stderr}");
        assert!(stderr.contains("0x100000"), "{stderr}");
        assert!(stderr.contains("c5 f4 58 c2"), "{stderr}");
        assert!(stderr.contains("vaddps"), "{stderr}");
    }
}

#[test]
fn demo_runs_with_only_guest_output_on_stdout() {
    for engine in ["dbt", "interp"] {
        let out = popek(&["run", "--engine", engine]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "debug-exit 0 → status 1 ({engine})"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("popek demo guest:"), "{stdout}");
        assert!(stdout.ends_with("goodbye\n"), "{stdout}");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let with_stats = popek(&["run", "--engine", engine, "--stats", "--mem", "16M"]);
        assert_eq!(with_stats.status.code(), Some(1));
        assert_eq!(
            with_stats.stdout, out.stdout,
            "--stats does not touch stdout"
        );
        let stderr = String::from_utf8_lossy(&with_stats.stderr);
        assert!(stderr.contains("guest instructions"), "{stderr}");
        assert!(stderr.contains("hypercalls"), "{stderr}");
    }
}

#[test]
fn halting_guest_exits_0() {
    let mut img = runtime::DEMO_KERNEL.to_vec();
    let text_off = u64::from_le_bytes(img[ph0(8)..ph0(8) + 8].try_into().unwrap()) as usize;
    img[text_off..text_off + 2].copy_from_slice(&[0xFA, 0xF4]); // cli ; hlt
    let path = file("hlt", &img);
    let out = popek(&["run", "--kernel", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn timeout_stops_a_spinning_guest_with_status_14() {
    let mut img = runtime::DEMO_KERNEL.to_vec();
    let text_off = u64::from_le_bytes(img[ph0(8)..ph0(8) + 8].try_into().unwrap()) as usize;
    img[text_off..text_off + 2].copy_from_slice(&[0xEB, 0xFE]); // jmp $
    let path = file("spin", &img);
    for engine in ["dbt", "interp", "trap"] {
        let t0 = std::time::Instant::now();
        let out = popek(&[
            "run",
            "--engine",
            engine,
            "--timeout",
            "0.3",
            "--kernel",
            path.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(14), "{engine}: {stderr}");
        assert!(stderr.contains("timeout"), "{stderr}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    }
}

#[test]
fn bad_timeouts() {
    for bad in ["", "0", "-1", "abc", "inf", "NaN"] {
        let out = popek(&["run", "--timeout", bad]);
        let line = assert_usage_error(&out);
        assert!(line.contains("--timeout"), "{bad}: {line}");
    }
}

#[test]
fn compile_after_sets_the_dbt_threshold_and_only_its() {
    let stats = |args: &[&str]| {
        let out = popek(&[&["run", "--stats"], args].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // 0 compiles before the first run, so nothing goes through the interpreter tier.
    let compiled = stats(&["--compile-after", "0"]);
    assert!(
        compiled.contains("tier       0 blocks recorded"),
        "{compiled}"
    );
    let tiered = stats(&["--compile-after", "1000000"]);
    assert!(!tiered.contains("tier       0 blocks recorded"), "{tiered}");
    assert!(tiered.contains("blocks translated      0 ("), "{tiered}");

    for engine in ["jit", "interp", "trap"] {
        let out = popek(&["run", "--engine", engine, "--compile-after", "5"]);
        let line = assert_usage_error(&out);
        assert!(line.contains("--compile-after"), "{engine}: {line}");
    }
}

#[test]
fn optimize_after_is_dbt_only_and_documented() {
    for engine in ["jit", "interp", "trap"] {
        let out = popek(&["run", "--engine", engine, "--optimize-after", "5"]);
        let line = assert_usage_error(&out);
        assert!(line.contains("--optimize-after"), "{engine}: {line}");
    }
    let help = popek(&["run", "--help"]);
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("--optimize-after <N>"),
        "{help:?}"
    );
    let out = popek(&["run", "--stats", "--optimize-after", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("quick                0 blocks"), "{stderr}");
}
