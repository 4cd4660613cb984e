//! The nanobench reports: one Markdown table (ops × columns, host cycles per op) and the JSON
//! document with host information, medians and every raw run.

use std::fmt::Write as _;

use benches::json::{json_num, json_str};

use super::measure::{median, Column, Run, OPS};

/// Everything measured in one column.
#[derive(Debug)]
pub struct ColumnResult {
    /// Which column.
    pub column: Column,
    /// Every run, in order.
    pub runs: Vec<Run>,
    /// Why the column has no numbers at all (e.g. the image could not be built), if so.
    pub failure: Option<String>,
}

impl ColumnResult {
    /// Median host cycles per op of `op` over the runs that measured it (a run that failed
    /// later still measured the ops it printed).
    pub fn median_cycles(&self, op: &str, host_tsc_ghz: f64) -> Option<f64> {
        let k = self.column.host_ticks_per_guest_tick(host_tsc_ghz);
        let mut xs: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.samples.iter().find(|s| s.op == op))
            .map(|s| s.cycles_per_op(k))
            .collect();
        median(&mut xs)
    }

    /// Why the column lacks numbers: its own failure, else that of its first failed run.
    pub fn failure(&self) -> Option<String> {
        if let Some(f) = &self.failure {
            return Some(f.clone());
        }
        if self.runs.is_empty() {
            return Some("no runs".to_owned());
        }
        self.runs.iter().find_map(|r| r.failure.clone())
    }
}

/// The host and the parameters of the measurement.
#[derive(Debug)]
pub struct Host {
    /// `/proc/cpuinfo` model name.
    pub cpu: String,
    /// Measured host TSC rate.
    pub tsc_ghz: f64,
    /// Runs per column.
    pub runs: usize,
}

/// `1234`, `56.7`, or `—`.
fn cycles(x: Option<f64>) -> String {
    match x {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
        None => "—".to_owned(),
    }
}

/// All op names: the known ones in order, then any others a kernel printed.
fn op_names(results: &[ColumnResult]) -> Vec<String> {
    let mut names: Vec<String> = OPS.iter().map(|&(op, _)| op.to_owned()).collect();
    for s in results
        .iter()
        .flat_map(|c| &c.runs)
        .flat_map(|r| &r.samples)
    {
        if !names.contains(&s.op) {
            names.push(s.op.clone());
        }
    }
    names
}

/// The Markdown table: rows = ops, columns = host cycles per op (median of runs), then
/// dbt/qemu-tcg when both are there; notes for columns without numbers follow it.
pub fn markdown(results: &[ColumnResult], host: &Host) -> String {
    let mut s = String::new();
    let dbt = results.iter().find(|c| c.column == Column::Popek("dbt"));
    let qemu = results.iter().find(|c| c.column == Column::Qemu);
    let mut header = vec!["op".to_owned()];
    header.extend(results.iter().map(|c| c.column.name().to_owned()));
    let ratio = dbt.is_some() && qemu.is_some();
    if ratio {
        header.push("dbt/qemu".to_owned());
    }
    let _ = writeln!(
        s,
        "Host cycles per operation (host TSC ticks, {:.3} GHz; median of {} runs) on {}:\n",
        host.tsc_ghz, host.runs, host.cpu
    );
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(header.len() - 1));
    for op in op_names(results) {
        let mut row = vec![op.clone()];
        row.extend(
            results
                .iter()
                .map(|c| cycles(c.median_cycles(&op, host.tsc_ghz))),
        );
        if let (true, Some(d), Some(q)) = (ratio, dbt, qemu) {
            let r = d
                .median_cycles(&op, host.tsc_ghz)
                .zip(q.median_cycles(&op, host.tsc_ghz))
                .filter(|&(_, q)| q > 0.0)
                .map(|(d, q)| d / q);
            row.push(r.map_or("—".to_owned(), |r| format!("{r:.2}")));
        }
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    for c in results {
        if let Some(why) = c.failure() {
            let failed = c.runs.iter().filter(|r| r.failure.is_some()).count();
            let _ = writeln!(
                s,
                "\n{}: {failed} of {} runs failed (ops measured before the failure count): {why}",
                c.column.name(),
                c.runs.len()
            );
        }
    }
    s
}

fn json_opt_str(x: Option<&str>) -> String {
    x.map_or("null".to_owned(), json_str)
}

/// The JSON document: `{"host", "ops", "columns": [{"name", "failure", "median_cycles_per_op",
/// "runs": [{"failure", "wall_s", "samples": [...]}]}]}`.
pub fn json(results: &[ColumnResult], host: &Host) -> String {
    let ops: Vec<String> = OPS
        .iter()
        .map(|&(op, what)| {
            format!(
                "{{\"name\": {}, \"what\": {}}}",
                json_str(op),
                json_str(what)
            )
        })
        .collect();
    let mut columns = Vec::new();
    for c in results {
        let k = c.column.host_ticks_per_guest_tick(host.tsc_ghz);
        let medians: Vec<String> = op_names(results)
            .iter()
            .map(|op| {
                format!(
                    "{}: {}",
                    json_str(op),
                    json_num(c.median_cycles(op, host.tsc_ghz))
                )
            })
            .collect();
        let runs: Vec<String> = c
            .runs
            .iter()
            .map(|r| {
                let samples: Vec<String> = r
                    .samples
                    .iter()
                    .map(|s| {
                        format!(
                            "{{\"op\": {}, \"iterations\": {}, \"net_ticks\": {}, \
                             \"empty_ticks\": {}, \"cycles_per_op\": {}}}",
                            json_str(&s.op),
                            s.iterations,
                            s.net_ticks,
                            s.empty_ticks,
                            json_num(Some(s.cycles_per_op(k)))
                        )
                    })
                    .collect();
                format!(
                    "        {{\"failure\": {}, \"wall_s\": {}, \"samples\": [\n          {}\n        ]}}",
                    json_opt_str(r.failure.as_deref()),
                    json_num(Some(r.wall.as_secs_f64())),
                    samples.join(",\n          ")
                )
            })
            .collect();
        columns.push(format!(
            "    {{\"name\": {}, \"host_ticks_per_guest_tick\": {}, \"failure\": {},\n      \
             \"median_cycles_per_op\": {{{}}},\n      \"runs\": [\n{}\n      ]}}",
            json_str(c.column.name()),
            json_num(Some(k)),
            json_opt_str(c.failure().as_deref()),
            medians.join(", "),
            runs.join(",\n")
        ));
    }
    format!(
        "{{\n  \"host\": {{\"cpu\": {}, \"tsc_ghz\": {}}},\n  \"runs\": {},\n  \
         \"unit\": \"host TSC ticks per operation\",\n  \"ops\": [{}],\n  \"columns\": [\n{}\n  ]\n}}\n",
        json_str(&host.cpu),
        json_num(Some(host.tsc_ghz)),
        host.runs,
        ops.join(", "),
        columns.join(",\n")
    )
}

#[cfg(test)]
mod tests {
    use super::super::measure::{Run, Sample};
    use super::*;
    use std::time::Duration;

    fn run(ops: &[(&str, u64)], failure: Option<&str>) -> Run {
        Run {
            samples: ops
                .iter()
                .map(|&(op, net)| Sample {
                    op: op.into(),
                    iterations: 10,
                    net_ticks: net,
                    empty_ticks: 1,
                })
                .collect(),
            failure: failure.map(str::to_owned),
            timed_out: false,
            wall: Duration::from_millis(5),
        }
    }

    #[test]
    fn medians_include_ops_measured_before_a_failure_and_dash_the_rest() {
        let host = Host {
            cpu: "cpu".into(),
            tsc_ghz: 2.0,
            runs: 3,
        };
        let results = vec![
            ColumnResult {
                column: Column::Popek("dbt"),
                runs: vec![
                    run(&[("in80", 100), ("cr3", 50)], None),
                    run(&[("in80", 300), ("cr3", 70)], None),
                    run(&[("in80", 999)], Some("guest exit code 3")),
                ],
                failure: None,
            },
            ColumnResult {
                column: Column::Popek("trap"),
                runs: vec![run(&[], Some("timed out after 5 s"))],
                failure: None,
            },
            ColumnResult {
                column: Column::Qemu,
                runs: vec![run(&[("in80", 150), ("cr3", 0)], None)],
                failure: None,
            },
        ];
        let md = markdown(&results, &host);
        // dbt in80: median of 100, 300, 999 ns / 10 = 30 ns = 60 cycles; qemu: 15 ticks.
        assert!(md.contains("| in80 | 60.0 | — | 15.0 | 4.00 |"), "{md}");
        // cr3: median of 5 and 7 ns = 6 ns = 12 cycles; qemu 0 gives no ratio.
        assert!(md.contains("| cr3 | 12.0 | — | 0.0 | — |"), "{md}");
        assert!(md.contains("| syscall | — | — | — | — |"), "{md}");
        assert!(md.contains("trap: 1 of 1 runs failed"), "{md}");
        assert!(md.contains("dbt: 1 of 3 runs failed"), "{md}");
        let js = json(&results, &host);
        assert!(js.contains("\"failure\": \"timed out after 5 s\""), "{js}");
        assert!(js.contains("\"in80\": 60.000"), "{js}");
        assert!(js.contains("\"syscall\": null"), "{js}");
    }
}
