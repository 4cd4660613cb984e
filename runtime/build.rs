//! Builds the embedded demo guest: `demo/demo.S` is assembled with GNU `as` and linked with
//! `ld` and `demo/demo.ld` into `$OUT_DIR/demo.elf`, which `src/lib.rs` embeds.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) {
    let shown = format!("{cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("building the demo guest: `{shown}` failed with {s}"),
        Err(e) => panic!("building the demo guest: cannot run `{shown}` ({e}); install binutils"),
    }
}

fn main() {
    let dir = Path::new("demo");
    let src = dir.join("demo.S");
    let script = dir.join("demo.ld");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", script.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let obj = out.join("demo.o");
    let elf = out.join("demo.elf");
    run(Command::new("as").arg("--64").arg("-o").arg(&obj).arg(&src));
    run(Command::new("ld")
        .args([
            "-static",
            "-nostdlib",
            "--build-id=none",
            "-z",
            "noexecstack",
            "-T",
        ])
        .arg(&script)
        .arg("-o")
        .arg(&elf)
        .arg(&obj));
}
