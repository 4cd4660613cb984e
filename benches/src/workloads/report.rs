//! Reports of the workload harness: the Markdown table (with geometric means and the DBT's
//! translation costs) and the JSON document.

use std::fmt::Write as _;
use std::time::Duration;

use runtime::Engine;
use translator::decode::MAX_BLOCK_INSNS;

use super::{geomean, EngineResult, GuestResult, Options};
use crate::json::{json_num, json_str};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The Markdown table of `results` (QEMU's columns, `-` where it did not run, and columns for
/// the engines of `opts`), followed by the geometric means and the translation costs.
pub fn markdown(results: &[GuestResult], opts: &Options) -> String {
    let mut s = String::new();
    let mut header = vec![
        "guest".to_owned(),
        "native ms".to_owned(),
        "qemu ms".to_owned(),
        "qemu/native".to_owned(),
    ];
    for e in &opts.engines {
        header.push(format!("{} ms", e.name()));
        header.push(format!("{}/native", e.name()));
        if *e == Engine::Dbt {
            header.push("dbt/qemu".to_owned());
        }
    }
    header.push("guest insns".to_owned());
    for e in &opts.engines {
        header.push(format!("{} MIPS", e.name()));
    }
    let dbt = opts.engines.contains(&Engine::Dbt);
    if dbt {
        header.push("blocks translated".to_owned());
        header.push("translation ms (share of dbt)".to_owned());
    }
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(header.len()));

    for r in results {
        let mut row = vec![r.name.to_owned()];
        if let Some(err) = &r.error {
            row.push(format!("**ERROR**: {err}"));
            row.resize(header.len(), String::new());
            let _ = writeln!(s, "| {} |", row.join(" | "));
            continue;
        }
        row.push(r.native.map_or("-".into(), |t| format!("{:.1}", ms(t))));
        row.push(match (r.qemu, &r.qemu_problem) {
            (Some(t), None) => format!("{:.1}", ms(t)),
            (Some(t), Some(_)) => format!("{:.1}†", ms(t)),
            (None, Some(_)) => "**FAILED**".into(),
            (None, None) => "-".into(),
        });
        row.push(ratio_cell(r.qemu_ratio()));
        for &e in &opts.engines {
            match r.engine(e) {
                Some(x) if x.ok => {
                    row.push(match x.estimate {
                        Some(t) => format!("~{:.0}", ms(t)),
                        None => format!("{:.1}", ms(x.run)),
                    });
                    row.push(ratio_cell(r.ratio(e)));
                }
                Some(_) => {
                    row.push("**MISMATCH**".into());
                    row.push("-".into());
                }
                None => row.extend(["-".to_owned(), "-".to_owned()]),
            }
            if e == Engine::Dbt {
                row.push(ratio_cell(r.ratio_to_qemu(e)));
            }
        }
        row.push(insn_count(r, opts.scale));
        for &e in &opts.engines {
            row.push(match r.engine(e) {
                Some(x) if x.ok => format!("{:.0}", x.mips()),
                _ => "-".into(),
            });
        }
        if dbt {
            match r.engine(Engine::Dbt) {
                Some(x) if x.ok => {
                    let t = x.counters.translation_ns() as f64 / 1e6;
                    let share = 100.0 * t / ms(x.run).max(1e-9);
                    row.push(x.counters.blocks_translated.to_string());
                    row.push(format!("{t:.1} ({share:.0}%)"));
                }
                _ => row.extend(["-".to_owned(), "-".to_owned()]),
            }
        }
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }

    if results
        .iter()
        .any(|r| r.qemu.is_some() && r.qemu_problem.is_some())
    {
        let _ = writeln!(
            s,
            "\n† qemu-x86_64 ran to completion but printed something else than the native run \
             (see Problems): QEMU's own deviation; the time still counts."
        );
    }
    if opts.qemu.is_none() {
        let _ = writeln!(
            s,
            "\nqemu-x86_64 was not found (or --no-qemu): its columns are empty."
        );
    }
    for &e in &opts.engines {
        let scale = opts.scale_of(e);
        if scale != opts.scale {
            let _ = writeln!(
                s,
                "\n~ {} ran at scale {scale}; its time is extrapolated to scale {} by the ratio \
                 of instruction counts (its MIPS are measured).",
                e.name(),
                opts.scale
            );
        }
    }
    s.push('\n');
    let mut means: Vec<(String, Vec<f64>)> = Vec::new();
    if opts.qemu.is_some() {
        means.push((
            "qemu/native".into(),
            results.iter().filter_map(GuestResult::qemu_ratio).collect(),
        ));
    }
    for &e in &opts.engines {
        let ratios = results.iter().filter_map(|r| r.ratio(e)).collect();
        means.push((format!("{}/native", e.name()), ratios));
        if e == Engine::Dbt && opts.qemu.is_some() {
            let ratios = results.iter().filter_map(|r| r.ratio_to_qemu(e)).collect();
            means.push(("dbt/qemu".into(), ratios));
        }
    }
    for (what, ratios) in means {
        match geomean(&ratios) {
            Some(g) => {
                let _ = writeln!(
                    s,
                    "Geometric mean of {what}: {g:.2}x over {} guests",
                    ratios.len()
                );
            }
            None => {
                let _ = writeln!(s, "Geometric mean of {what}: - (no passing guest)");
            }
        }
    }
    if dbt {
        s.push('\n');
        s.push_str(&translation_summary(results));
    }
    s.push_str(&problems(results));
    s
}

/// A ratio cell: `1.23x`, or `-`.
fn ratio_cell(q: Option<f64>) -> String {
    q.map_or("-".into(), |q| format!("{q:.2}x"))
}

/// The guest-instruction count of the engines of `r` that passed at `scale`. The DBT charges a block's
/// instructions at its entry, so a run that stops inside a block (the exit port write) may
/// count up to the rest of that block more than the interpreter: counts that close agree, and
/// the smallest (exact) one is shown. Counts further apart are all shown, flagged.
fn insn_count(r: &GuestResult, scale: u32) -> String {
    let counts: Vec<u64> = r
        .engines
        .iter()
        .filter(|e| e.ok && e.scale == scale)
        .map(|e| e.counters.guest_insns)
        .collect();
    let (Some(&min), Some(&max)) = (counts.iter().min(), counts.iter().max()) else {
        return "-".into();
    };
    if max - min <= MAX_BLOCK_INSNS as u64 {
        return min.to_string();
    }
    let all: Vec<String> = counts.iter().map(u64::to_string).collect();
    format!("**differ**: {}", all.join(" / "))
}

/// A list of everything that failed, one line each (empty if nothing did).
pub fn problems(results: &[GuestResult]) -> String {
    let mut s = String::new();
    for r in results {
        if let Some(e) = &r.error {
            let _ = writeln!(s, "- **ERROR** {}: {e}", r.name);
        }
        if let Some(e) = &r.qemu_problem {
            let _ = writeln!(s, "- **QEMU** {} on qemu-x86_64 (not popek): {e}", r.name);
        }
        for e in r.engines.iter().filter(|e| !e.ok) {
            let _ = writeln!(
                s,
                "- **MISMATCH** {} on {}: {}",
                r.name,
                e.engine.name(),
                e.problem.as_deref().unwrap_or("?")
            );
        }
    }
    if s.is_empty() {
        s
    } else {
        format!("\nProblems:\n\n{s}")
    }
}

/// Translation costs of the DBT: overall µs per translated guest instruction, and per guest.
fn translation_summary(results: &[GuestResult]) -> String {
    let dbt: Vec<(&str, &EngineResult)> = results
        .iter()
        .filter_map(|r| Some((r.name, r.engine(Engine::Dbt).filter(|e| e.ok)?)))
        .collect();
    let mut s = String::new();
    let (ns, insns, blocks): (u64, u64, u64) = dbt.iter().fold((0, 0, 0), |acc, (_, e)| {
        let d = &e.counters;
        (
            acc.0 + e.counters.translation_ns(),
            acc.1 + d.guest_insns_translated,
            acc.2 + d.blocks_translated,
        )
    });
    if insns == 0 {
        let _ = writeln!(s, "Translation cost: - (no passing dbt run)");
        return s;
    }
    let _ = writeln!(
        s,
        "Translation cost: {:.2} µs per guest instruction translated, {:.1} µs per block \
         ({insns} instructions in {blocks} blocks, {:.1} ms)",
        ns as f64 / 1e3 / insns as f64,
        ns as f64 / 1e3 / blocks.max(1) as f64,
        ns as f64 / 1e6
    );
    s.push('\n');
    let _ = writeln!(
        s,
        "| guest | blocks | insns translated | insns/block | µs/insn | IR build % | host code bytes/insn | dispatches | setup ms |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for (name, e) in dbt {
        let d = &e.counters;
        let n = d.guest_insns_translated.max(1) as f64;
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {:.1} | {:.2} | {:.0}% | {:.1} | {} | {:.1} |",
            d.blocks_translated,
            d.guest_insns_translated,
            d.guest_insns_translated as f64 / d.blocks_translated.max(1) as f64,
            e.counters.translation_ns() as f64 / 1e3 / n,
            100.0 * d.translate_ns as f64 / e.counters.translation_ns().max(1) as f64,
            d.code_bytes as f64 / n,
            d.dispatches,
            ms(e.setup)
        );
    }
    s
}

/// The results as a JSON document (`{"scale", "runs", "guests": [...], "geomean": {...}}`).
pub fn json(results: &[GuestResult], opts: &Options) -> String {
    let mut guests = Vec::new();
    for r in results {
        let mut engines = Vec::new();
        for e in &r.engines {
            let d = &e.counters;
            engines.push(format!(
                "{}: {{\"ok\": {}, \"problem\": {}, \"outcome\": {}, \"runs\": {}, \
                 \"scale\": {}, \"run_ms\": {}, \"estimated_run_ms\": {}, \"setup_ms\": {}, \"ratio\": {}, \"guest_insns\": {}, \
                 \"mips\": {}, \"blocks_translated\": {}, \"guest_insns_translated\": {}, \
                 \"ir_insts\": {}, \"translate_ms\": {}, \"compile_ms\": {}, \
                 \"code_bytes\": {}, \"dispatches\": {}}}",
                json_str(e.engine.name()),
                e.ok,
                e.problem.as_deref().map_or("null".into(), json_str),
                json_str(&e.outcome),
                e.runs,
                e.scale,
                json_num(Some(ms(e.run))),
                json_num(e.estimate.map(ms)),
                json_num(Some(ms(e.setup))),
                json_num(r.ratio(e.engine)),
                e.counters.guest_insns,
                json_num(Some(e.mips())),
                d.blocks_translated,
                d.guest_insns_translated,
                d.ir_insts,
                json_num(Some(d.translate_ns as f64 / 1e6)),
                json_num(Some(d.compile_ns as f64 / 1e6)),
                d.code_bytes,
                d.dispatches,
            ));
        }
        guests.push(format!(
            "    {{\"name\": {}, \"ok\": {}, \"error\": {}, \"native_ms\": {}, \"qemu_ms\": {}, \
             \"qemu_problem\": {}, \"qemu_ratio\": {}, \"dbt_qemu_ratio\": {}, \"engines\": {{{}}}}}",
            json_str(r.name),
            r.ok(),
            r.error.as_deref().map_or("null".into(), json_str),
            json_num(r.native.map(ms)),
            json_num(r.qemu.map(ms)),
            r.qemu_problem.as_deref().map_or("null".into(), json_str),
            json_num(r.qemu_ratio()),
            json_num(r.ratio_to_qemu(Engine::Dbt)),
            engines.join(", ")
        ));
    }
    let mut geo: Vec<String> = opts
        .engines
        .iter()
        .map(|&e| {
            let ratios: Vec<f64> = results.iter().filter_map(|r| r.ratio(e)).collect();
            format!("{}: {}", json_str(e.name()), json_num(geomean(&ratios)))
        })
        .collect();
    let qemu: Vec<f64> = results.iter().filter_map(GuestResult::qemu_ratio).collect();
    geo.push(format!("\"qemu\": {}", json_num(geomean(&qemu))));
    let dbt_qemu: Vec<f64> = results
        .iter()
        .filter_map(|r| r.ratio_to_qemu(Engine::Dbt))
        .collect();
    geo.push(format!("\"dbt/qemu\": {}", json_num(geomean(&dbt_qemu))));
    let qemu_path = opts
        .qemu
        .as_ref()
        .map_or("null".into(), |p| json_str(&p.display().to_string()));
    format!(
        "{{\n  \"scale\": {},\n  \"runs\": {},\n  \"interp_runs\": {},\n  \"interp_scale\": {},\n  \"qemu\": {},\n  \"guests\": [\n{}\n  ],\n  \"geomean\": {{{}}}\n}}\n",
        opts.scale,
        opts.runs,
        opts.interp_runs,
        opts.interp_scale,
        qemu_path,
        guests.join(",\n"),
        geo.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(qemu: Option<&str>) -> Options {
        Options {
            scale: 1,
            runs: 1,
            interp_runs: 1,
            interp_scale: 1,
            engines: vec![Engine::Dbt],
            mem_bytes: 64 << 20,
            max_insns: None,
            timeout: Duration::from_secs(1),
            exe: "workloads".into(),
            tmp_dir: "/tmp".into(),
            qemu: qemu.map(Into::into),
        }
    }

    fn result(qemu: Option<Duration>, qemu_problem: Option<&str>) -> GuestResult {
        GuestResult {
            name: "g",
            native: Some(Duration::from_millis(100)),
            qemu,
            qemu_problem: qemu_problem.map(Into::into),
            engines: vec![EngineResult {
                engine: Engine::Dbt,
                scale: 1,
                run: Duration::from_millis(200),
                estimate: None,
                setup: Duration::ZERO,
                runs: 1,
                outcome: String::new(),
                ok: true,
                problem: None,
                counters: Default::default(),
            }],
            error: None,
        }
    }

    fn row(table: &str) -> &str {
        table.lines().find(|l| l.starts_with("| g |")).unwrap()
    }

    #[test]
    fn qemu_columns_are_dashes_without_qemu() {
        let table = markdown(&[result(None, None)], &options(None));
        assert!(table.starts_with(
            "| guest | native ms | qemu ms | qemu/native | dbt ms | dbt/native | dbt/qemu |"
        ));
        assert!(row(&table).starts_with("| g | 100.0 | - | - | 200.0 | 2.00x | - |"));
        assert!(table.contains("qemu-x86_64 was not found"));
    }

    #[test]
    fn qemu_columns_and_ratios() {
        let opts = options(Some("/usr/bin/qemu-x86_64"));
        let table = markdown(&[result(Some(Duration::from_millis(400)), None)], &opts);
        assert!(row(&table).starts_with("| g | 100.0 | 400.0 | 4.00x | 200.0 | 2.00x | 0.50x |"));
        assert!(table.contains("Geometric mean of dbt/qemu: 0.50x over 1 guests"));
        let flagged = result(Some(Duration::from_millis(400)), Some("output differs"));
        let table = markdown(&[flagged], &opts);
        assert!(row(&table).starts_with("| g | 100.0 | 400.0† | 4.00x |"));
        let failed = markdown(&[result(None, Some("exit status 1"))], &opts);
        assert!(row(&failed).starts_with("| g | 100.0 | **FAILED** | - |"));
        let doc = json(&[result(Some(Duration::from_millis(400)), None)], &opts);
        assert!(doc.contains("\"qemu_ms\": 400.000000"), "{doc}");
        assert!(doc.contains("\"dbt/qemu\": 0.500000"), "{doc}");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
        assert_eq!(json_num(Some(f64::NAN)), "null");
    }
}
