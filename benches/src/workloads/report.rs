//! Reports of the workload harness: the Markdown table (with geometric means and the DBT's
//! translation costs) and the JSON document.

use std::fmt::Write as _;
use std::time::Duration;

use runtime::Engine;
use translator::decode::MAX_BLOCK_INSNS;

use super::{geomean, EngineResult, GuestResult, Options, Variant};
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
        header.push(format!("{}/qemu", e.name()));
    }
    header.push("guest insns".to_owned());
    for e in &opts.engines {
        header.push(format!("{} MIPS", e.name()));
    }
    // The translation columns are those of the first engine that compiles.
    let translating = opts
        .engines
        .iter()
        .copied()
        .find(|v| v.engine != Engine::Interp);
    if let Some(t) = translating {
        header.push(format!("{} blocks compiled / recorded", t.name()));
        header.push(format!("{} translation ms (share)", t.name()));
    }
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(header.len()));

    for r in results {
        let mut row = vec![if r.scale == opts.scale {
            r.name.to_owned()
        } else {
            format!("{} (scale {})", r.name, r.scale)
        }];
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
            row.push(ratio_cell(r.ratio_to_qemu(e)));
        }
        row.push(insn_count(r, r.scale));
        for &e in &opts.engines {
            row.push(match r.engine(e) {
                Some(x) if x.ok => format!("{:.0}", x.mips()),
                _ => "-".into(),
            });
        }
        if let Some(t) = translating {
            match r.engine(t) {
                Some(x) if x.ok => {
                    let c = &x.counters;
                    let t = (c.translation_ns() + c.record_ns) as f64 / 1e6;
                    let share = 100.0 * t / ms(x.run).max(1e-9);
                    row.push(format!("{} / {}", c.blocks_translated, c.blocks_recorded));
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
        let scale = opts.scale_of("", e.engine);
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
    if results.iter().any(|r| r.scale != opts.scale) {
        let _ = writeln!(
            s,
            "\nA guest marked (scale N) is a cold-code guest: natively, under QEMU and under \
             every engine it ran at scale N, whose work is code run a few times (at --scale it \
             would be hot)."
        );
    }
    if translating.is_some() {
        let _ = writeln!(
            s,
            "\nTranslation ms: IR building + Cranelift (on the background thread too) + \
             recording for the interpreter tier, over the engine's run time."
        );
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
        if opts.qemu.is_some() {
            let ratios = results.iter().filter_map(|r| r.ratio_to_qemu(e)).collect();
            means.push((format!("{}/qemu", e.name()), ratios));
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
    for &e in &opts.engines {
        let mips: Vec<f64> = results
            .iter()
            .filter_map(|r| r.engine(e).filter(|x| x.ok).map(EngineResult::mips))
            .collect();
        if let Some(g) = geomean(&mips) {
            let _ = writeln!(
                s,
                "Geometric mean of {} MIPS: {g:.0} over {} guests",
                e.name(),
                mips.len()
            );
        }
    }
    for &e in &opts.engines {
        s.push('\n');
        s.push_str(&translation_summary(results, e));
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

/// Translation costs of column `v`: Cranelift (IR building and compiling) and recording
/// for the interpreter tier, per guest instruction, overall and per guest.
fn translation_summary(results: &[GuestResult], v: Variant) -> String {
    let rows: Vec<(&str, &EngineResult)> = results
        .iter()
        .filter_map(|r| Some((r.name, r.engine(v).filter(|e| e.ok)?)))
        .collect();
    let mut s = String::new();
    let mut total = super::Counters::default();
    for (_, e) in &rows {
        let c = &e.counters;
        total.translate_ns += c.translate_ns;
        total.compile_ns += c.compile_ns;
        total.guest_insns_translated += c.guest_insns_translated;
        total.blocks_translated += c.blocks_translated;
        total.record_ns += c.record_ns;
        total.guest_insns_recorded += c.guest_insns_recorded;
        total.blocks_recorded += c.blocks_recorded;
    }
    if total.guest_insns_translated + total.guest_insns_recorded == 0 {
        return s;
    }
    let per_insn = |ns: u64, insns: u64| ns as f64 / 1e3 / insns.max(1) as f64;
    let _ = writeln!(
        s,
        "Translation, {}: Cranelift {:.2} µs per guest instruction compiled ({} instructions \
         in {} blocks, {:.1} ms, {:.0}% IR building); recording {:.3} µs per guest instruction \
         recorded ({} instructions in {} blocks, {:.1} ms)",
        v.name(),
        per_insn(total.translation_ns(), total.guest_insns_translated),
        total.guest_insns_translated,
        total.blocks_translated,
        total.translation_ns() as f64 / 1e6,
        100.0 * total.translate_ns as f64 / total.translation_ns().max(1) as f64,
        per_insn(total.record_ns, total.guest_insns_recorded),
        total.guest_insns_recorded,
        total.blocks_recorded,
        total.record_ns as f64 / 1e6,
    );
    s.push('\n');
    let _ = writeln!(
        s,
        "| {} | blocks compiled | insns compiled | insns/block | µs/insn compiled | IR build % | \
         blocks recorded | µs/insn recorded | background jobs | host code bytes/insn | \
         dispatches | setup ms |",
        v.name()
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, e) in rows {
        let d = &e.counters;
        let n = d.guest_insns_translated.max(1) as f64;
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {:.1} | {:.2} | {:.0}% | {} | {:.3} | {} | {:.1} | {} | {:.1} |",
            d.blocks_translated,
            d.guest_insns_translated,
            d.guest_insns_translated as f64 / d.blocks_translated.max(1) as f64,
            per_insn(d.translation_ns(), d.guest_insns_translated),
            100.0 * d.translate_ns as f64 / d.translation_ns().max(1) as f64,
            d.blocks_recorded,
            per_insn(d.record_ns, d.guest_insns_recorded),
            d.background_jobs,
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
                 \"code_bytes\": {}, \"dispatches\": {}, \"qemu_ratio\": {}, \
                 \"blocks_recorded\": {}, \"guest_insns_recorded\": {}, \"record_ms\": {}, \
                 \"background_jobs\": {}}}",
                json_str(&e.engine.name()),
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
                json_num(r.ratio_to_qemu(e.engine)),
                d.blocks_recorded,
                d.guest_insns_recorded,
                json_num(Some(d.record_ns as f64 / 1e6)),
                d.background_jobs,
            ));
        }
        guests.push(format!(
            "    {{\"name\": {}, \"scale\": {}, \"ok\": {}, \"error\": {}, \"native_ms\": {}, \
             \"qemu_ms\": {}, \"qemu_problem\": {}, \"qemu_ratio\": {}, \"engines\": {{{}}}}}",
            json_str(r.name),
            r.scale,
            r.ok(),
            r.error.as_deref().map_or("null".into(), json_str),
            json_num(r.native.map(ms)),
            json_num(r.qemu.map(ms)),
            r.qemu_problem.as_deref().map_or("null".into(), json_str),
            json_num(r.qemu_ratio()),
            engines.join(", ")
        ));
    }
    let mut geo: Vec<String> = opts
        .engines
        .iter()
        .map(|&e| {
            let ratios: Vec<f64> = results.iter().filter_map(|r| r.ratio(e)).collect();
            let to_qemu: Vec<f64> = results.iter().filter_map(|r| r.ratio_to_qemu(e)).collect();
            format!(
                "{}: {}, {}: {}",
                json_str(&e.name()),
                json_num(geomean(&ratios)),
                json_str(&format!("{}/qemu", e.name())),
                json_num(geomean(&to_qemu))
            )
        })
        .collect();
    let qemu: Vec<f64> = results.iter().filter_map(GuestResult::qemu_ratio).collect();
    geo.push(format!("\"qemu\": {}", json_num(geomean(&qemu))));
    let qemu_path = opts
        .qemu
        .as_ref()
        .map_or("null".into(), |p| json_str(&p.display().to_string()));
    format!(
        "{{\n  \"scale\": {},\n  \"cold_scale\": {},\n  \"runs\": {},\n  \"interp_runs\": {},\n  \"interp_scale\": {},\n  \"qemu\": {},\n  \"guests\": [\n{}\n  ],\n  \"geomean\": {{{}}}\n}}\n",
        opts.scale,
        opts.cold_scale,
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
            cold_scale: 1,
            engines: vec![Variant::of(Engine::Dbt)],
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
            scale: 1,
            native: Some(Duration::from_millis(100)),
            qemu,
            qemu_problem: qemu_problem.map(Into::into),
            engines: vec![EngineResult {
                engine: Variant::of(Engine::Dbt),
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
    fn a_threshold_sweep_has_a_column_per_value() {
        let at = |n| Variant {
            engine: Engine::Dbt,
            compile_after: Some(n),
        };
        let mut opts = options(Some("/usr/bin/qemu-x86_64"));
        opts.engines = vec![at(1), at(50)];
        let mut r = result(Some(Duration::from_millis(400)), None);
        r.engines[0].engine = at(1);
        let mut slow = r.engines[0].clone();
        slow.engine = at(50);
        slow.run = Duration::from_millis(800);
        r.engines.push(slow);
        let table = markdown(&[r], &opts);
        assert!(table.contains("| dbt@1 ms | dbt@1/native | dbt@1/qemu | dbt@50 ms |"));
        assert!(row(&table).contains("| 200.0 | 2.00x | 0.50x | 800.0 | 8.00x | 2.00x |"));
        assert!(table.contains("Geometric mean of dbt@50/qemu: 2.00x over 1 guests"));
    }

    #[test]
    fn cold_guests_run_at_the_cold_scale_everywhere() {
        let mut opts = options(None);
        (opts.scale, opts.interp_scale, opts.cold_scale) = (100, 2, 1);
        assert_eq!(opts.scale_for("sieve"), 100);
        assert_eq!(opts.scale_of("sieve", Engine::Interp), 2);
        assert_eq!(opts.scale_for("coldcode"), 1);
        assert_eq!(opts.scale_of("coldcode", Engine::Interp), 1);
        assert_eq!(opts.scale_of("coldcode", Engine::Dbt), 1);
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
        assert_eq!(json_num(Some(f64::NAN)), "null");
    }
}
