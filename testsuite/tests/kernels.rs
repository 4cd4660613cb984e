//! Every test kernel (`testsuite/kernels/`) prints its expected transcript and exits with
//! code 0 under the oracle, `qemu-system-x86_64 -accel tcg`, and under each popek engine.
//!
//! `BLESS=1` rewrites `kernels/expected/<name>.out` from QEMU's output (review the diff: a
//! kernel's checks print `ok` or expected values, and `FAIL` never belongs in a transcript).
//! Without QEMU the oracle tests print a skip notice, unless `CI` is set, where they fail.

use std::time::Duration;
use testsuite::kernels::{self, compare_transcripts, KernelRun};

/// Each kernel takes well under a second; the margin covers loaded CI machines.
const TIMEOUT: Duration = Duration::from_secs(20);

fn describe(name: &str, who: &str, run: &KernelRun) -> String {
    format!(
        "{name} under {who}: exit code {:?} (status {:?}{})\n--- serial ---\n{}--- stderr ---\n{}",
        run.exit_code,
        run.status,
        if run.timed_out { ", timed out" } else { "" },
        run.serial,
        run.stderr
    )
}

fn expected(name: &str) -> String {
    let path = kernels::expected_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (generate it with BLESS=1 cargo test --release -p testsuite --test kernels)",
            path.display()
        )
    })
}

fn check(name: &str, who: &str, run: KernelRun) {
    if let Err(diff) = compare_transcripts(&expected(name), &run.serial) {
        panic!("{diff}\n{}", describe(name, who, &run));
    }
    assert_eq!(run.exit_code, Some(0), "{}", describe(name, who, &run));
}

fn under_qemu(name: &str) {
    if !kernels::qemu_available() {
        if std::env::var_os("CI").is_some() {
            panic!("qemu-system-x86_64 is required in CI");
        }
        eprintln!("qemu-system-x86_64 not found: skipping {name} under QEMU");
        return;
    }
    let image = kernels::build_kernel(name).unwrap_or_else(|e| panic!("{e}"));
    let run = kernels::run_qemu_appending(&image, kernels::append_for(name), TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os("BLESS").is_some() {
        assert!(
            !run.serial.contains("FAIL") && run.exit_code == Some(0),
            "refusing to bless a failing run\n{}",
            describe(name, "QEMU", &run)
        );
        std::fs::write(kernels::expected_path(name), &run.serial).expect("write expected");
        return;
    }
    check(name, "QEMU", run);
}

fn under_popek(name: &str, engine: &str) {
    let image = kernels::build_kernel(name).unwrap_or_else(|e| panic!("{e}"));
    let run = kernels::run_popek_appending(&image, engine, kernels::append_for(name), TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    check(name, &format!("popek --engine {engine}"), run);
}

macro_rules! kernel_tests {
    (qemu: [$($name:ident),* $(,)?], manual: [$($manual:ident),* $(,)?]) => {
        mod qemu {
            $(#[test] fn $name() { super::under_qemu(stringify!($name)); })*
        }
        mod dbt {
            $(#[test]
              fn $name() { super::under_popek(stringify!($name), "dbt"); })*
            $(#[test]
              fn $manual() { super::under_popek(stringify!($manual), "dbt"); })*
        }
        mod jit {
            $(#[test]
              fn $name() { super::under_popek(stringify!($name), "jit"); })*
            $(#[test]
              fn $manual() { super::under_popek(stringify!($manual), "jit"); })*
        }
        mod interp {
            $(#[test]
              fn $name() { super::under_popek(stringify!($name), "interp"); })*
            $(#[test]
              fn $manual() { super::under_popek(stringify!($manual), "interp"); })*
        }
        mod trap {
            $(#[test]
              fn $name() { super::under_popek(stringify!($name), "trap"); })*
            $(#[test]
              fn $manual() { super::under_popek(stringify!($manual), "trap"); })*
        }

        /// The lists above cover every kernel in the table.
        #[test]
        fn every_kernel_has_a_test() {
            let mut listed = vec![$(stringify!($name),)* $(stringify!($manual),)*];
            let mut all = kernels::kernel_names().to_vec();
            listed.sort_unstable();
            all.sort_unstable();
            assert_eq!(listed, all);
        }
    };
}

// `qemu`: transcripts blessed from qemu-system-x86_64 -accel tcg. `manual`: kernels QEMU
// cannot run (see each kernel's header), with transcripts written from the manuals.
kernel_tests!(
    qemu: [
        longmode, exceptions, paging, paging32, usermode, pit, apic, smc, portio, sensitive, fpu,
        identity, msr, nmi, ud, realmode, cmdline, debug
    ],
    manual: [ferr]
);

/// No expected transcript may contain a failed check.
#[test]
fn expected_transcripts_have_no_failures() {
    for name in kernels::kernel_names() {
        let path = kernels::expected_path(name);
        if let Ok(text) = std::fs::read_to_string(&path) {
            assert!(!text.contains("FAIL"), "{}", path.display());
            assert!(!text.contains("unexpected"), "{}", path.display());
        }
    }
}
