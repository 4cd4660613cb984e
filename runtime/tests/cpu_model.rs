//! `docs/cpu-model.md` shows the CPUID leaves and the MSR list popek presents, generated
//! from the model itself: this test fails when the document and the code disagree, and
//! `BLESS=1` rewrites the generated part (between the two markers).

use std::fmt::Write;
use std::path::PathBuf;

use runtime::cpuid::{self, Vendor};
use runtime::system::msr::{self, Msr, MSRS};
use runtime::system::mtrr;

const BEGIN: &str = "<!-- BEGIN GENERATED (runtime/tests/cpu_model.rs; BLESS=1 rewrites) -->";
const END: &str = "<!-- END GENERATED -->";

/// The leaves worth showing: every non-zero one, and the zero ones software looks at.
const LEAVES: &[(u32, u32)] = &[
    (0, 0),
    (1, 0),
    (7, 0),
    (0xA, 0),
    (0xB, 0),
    (0xD, 0),
    (0x15, 0),
    (0x16, 0),
    (0x4000_0000, 0),
    (0x4000_0001, 0),
    (0x4000_0010, 0),
    (0x8000_0000, 0),
    (0x8000_0001, 0),
    (0x8000_0002, 0),
    (0x8000_0003, 0),
    (0x8000_0004, 0),
    (0x8000_0007, 0),
    (0x8000_0008, 0),
];

fn ascii(regs: &[u32]) -> String {
    regs.iter()
        .flat_map(|r| r.to_le_bytes())
        .map(|b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

fn dump() -> String {
    let mut s = String::new();
    for v in Vendor::ALL {
        let id = String::from_utf8_lossy(cpuid::vendor_id(v)).into_owned();
        writeln!(s, "\n### CPUID as {id}\n").unwrap();
        writeln!(s, "| leaf.subleaf | EAX | EBX | ECX | EDX | as text |").unwrap();
        writeln!(s, "| --- | --- | --- | --- | --- | --- |").unwrap();
        for &(leaf, sub) in LEAVES {
            let r = cpuid::cpuid_as(v, leaf, sub);
            let text = match leaf {
                0 | 0x8000_0000 => ascii(&[r[1], r[3], r[2]]),
                0x4000_0000 => ascii(&r[1..]),
                0x8000_0002..=0x8000_0004 => ascii(&r),
                _ => String::new(),
            };
            writeln!(
                s,
                "| {leaf:#010x}.{sub} | {:08x} | {:08x} | {:08x} | {:08x} | `{}` |",
                r[0],
                r[1],
                r[2],
                r[3],
                text.trim_end_matches('.')
            )
            .unwrap();
        }
        let (family, model) = cpuid::family_model(cpuid::signature(v));
        writeln!(
            s,
            "\nFamily {family:#x}, model {model:#x}, stepping {}; every leaf not listed up to \
             the maxima reads as zeros.",
            cpuid::signature(v) & 0xF
        )
        .unwrap();
    }
    writeln!(s, "\n### MSRs\n").unwrap();
    writeln!(s, "| index | MSR | vendor |").unwrap();
    writeln!(s, "| --- | --- | --- |").unwrap();
    let mut rows: Vec<(u32, String, &str, &str)> = MSRS
        .iter()
        .map(|&(i, _, name)| {
            let has = |v| msr::Msr::from_index_as(v, i).is_some();
            let vendor = match (has(Vendor::Intel), has(Vendor::Amd)) {
                (true, true) => "both",
                (true, false) => "Intel",
                (false, true) => "AMD",
                (false, false) => "neither",
            };
            (i, format!("{i:#x}"), name, vendor)
        })
        .collect();
    rows.push((
        mtrr::CAP,
        format!("{:#x}", mtrr::CAP),
        "IA32_MTRRCAP",
        "both",
    ));
    rows.push((
        mtrr::DEF_TYPE,
        format!("{:#x}", mtrr::DEF_TYPE),
        "IA32_MTRR_DEF_TYPE",
        "both",
    ));
    let last_var = mtrr::PHYS_BASE0 + 2 * mtrr::VAR_COUNT as u32 - 1;
    rows.push((
        mtrr::PHYS_BASE0,
        format!("{:#x}..={last_var:#x}", mtrr::PHYS_BASE0),
        "IA32_MTRR_PHYSBASE0..7 / PHYSMASK0..7",
        "both",
    ));
    let fixed: Vec<String> = mtrr::FIXED.iter().map(|i| format!("{i:#x}")).collect();
    rows.push((
        mtrr::FIXED[0],
        fixed.join(", "),
        "IA32_MTRR_FIX64K/16K/4K_*",
        "both",
    ));
    rows.sort_by_key(|r| r.0);
    for (_, index, name, vendor) in rows {
        writeln!(s, "| {index} | {name} | {vendor} |").unwrap();
    }
    for (v, ranges, what) in [
        (Vendor::Intel, &msr::INTEL_PERF_MSRS[..], "IA32_PMC0-3, PERFEVTSEL0-3, FIXED_CTR0-2, FIXED_CTR_CTRL, PERF_GLOBAL_*: read 0, writes ignored"),
        (Vendor::Amd, &msr::AMD_PERF_MSRS[..], "PerfEvtSel/PerfCtr 0-3 and the core extension's 0-5: read 0, writes ignored"),
    ] {
        let list: Vec<String> = ranges
            .iter()
            .map(|r| format!("{:#x}..={:#x}", r.start(), r.end()))
            .collect();
        for r in ranges {
            for i in r.clone() {
                assert_eq!(Msr::from_index_as(v, i), Some(Msr::PerfCounter));
            }
        }
        writeln!(s, "| {} | {what} | {v:?} |", list.join(", ")).unwrap();
    }
    writeln!(s, "\nEvery other index raises #GP(0) on RDMSR and WRMSR.").unwrap();
    s
}

#[test]
fn the_document_shows_the_model() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/cpu-model.md");
    let doc = std::fs::read_to_string(&path).expect("docs/cpu-model.md");
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("{}: the generated-part markers are missing", path.display());
    };
    let want = format!("{BEGIN}\n\n{}\n\n{END}", dump().trim());
    let have = &doc[b..e + END.len()];
    if have == want {
        return;
    }
    if std::env::var_os("BLESS").is_some() {
        let new = format!("{}{want}{}", &doc[..b], &doc[e + END.len()..]);
        std::fs::write(&path, new).unwrap();
        return;
    }
    panic!(
        "{} is out of date with the CPU model: run with BLESS=1 and review the diff",
        path.display()
    );
}
