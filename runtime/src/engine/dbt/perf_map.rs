//! A map of the generated code for profilers: Linux perf's JIT map convention, one
//! `START SIZE NAME` line (hexadecimal, no `0x`) per piece of code in `/tmp/perf-<pid>.map`,
//! which `perf report` reads to name samples in anonymous executable memory. The same file
//! lets a reader of `valgrind --tool=callgrind` output (which shows such code as `???:ADDR`)
//! tell which guest block host time went to (`benches/callgrind-blocks` does that).
//!
//! Invariants:
//! - Every line is written whole before the code it names can run, and the file is opened
//!   for appending: an engine made again in the same process (a reset) adds to the map, and
//!   a profiler reading after a crash still sees every block that ran.
//! - A write error never stops the guest: it is reported once and the map stops growing.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use super::super::tier::Tier;

/// The open map.
pub struct PerfMap {
    out: Option<File>,
}

/// The map's path for this process, as perf expects it.
pub fn path() -> PathBuf {
    PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()))
}

impl PerfMap {
    /// Opens (creates or appends to) this process's map.
    pub fn open() -> std::io::Result<PerfMap> {
        let out = OpenOptions::new().create(true).append(true).open(path())?;
        Ok(PerfMap { out: Some(out) })
    }

    /// Names the engine's own code (entry trampoline, exit stub).
    pub fn note_stub(&mut self, host: usize, len: usize, what: &str) {
        self.write(&format!("{host:x} {len:x} popek::{what}\n"));
    }

    /// Names a compiled block: its tier, guest-virtual PC and guest instruction count
    /// (a region's head PC and all its instructions).
    pub fn note_block(&mut self, host: usize, len: usize, tier: Tier, virt_pc: u64, insns: u32) {
        let tier = match tier {
            Tier::Quick => "quick",
            Tier::Optimized => "opt",
        };
        self.write(&format!(
            "{host:x} {len:x} guest_{virt_pc:x}_{tier}_{insns}insns\n"
        ));
    }

    fn write(&mut self, line: &str) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        // One write per line: append mode keeps each whole even if two engines share it.
        if let Err(e) = out.write_all(line.as_bytes()) {
            eprintln!(
                "popek: warning: stopped writing the perf map '{}': {e}",
                path().display()
            );
            self.out = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_perfs_jit_map_format() {
        let mut map = PerfMap::open().expect("open /tmp map");
        map.note_block(0x7f00_1000, 0x40, Tier::Quick, 0x10_0780, 19);
        map.note_stub(0x7f00_2000, 0x10, "exit_stub");
        drop(map);
        let text = std::fs::read_to_string(path()).expect("read back");
        assert!(
            text.contains("7f001000 40 guest_100780_quick_19insns\n"),
            "{text}"
        );
        assert!(text.contains("7f002000 10 popek::exit_stub\n"), "{text}");
        for line in text.lines() {
            let mut f = line.splitn(3, ' ');
            let (a, l) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
            assert!(usize::from_str_radix(a, 16).is_ok(), "{line}");
            assert!(usize::from_str_radix(l, 16).is_ok(), "{line}");
            assert!(f.next().is_some_and(|n| !n.contains(' ')), "{line}");
        }
        let _ = std::fs::remove_file(path());
    }
}
