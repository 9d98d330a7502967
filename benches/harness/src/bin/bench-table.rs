//! Builds the side-by-side table from the JSON records benches wrote (`ANNALS_BENCH_JSON`):
//! for every backend and workload, each system's rate and latencies with its ratio to the raw
//! baseline and to the best peer of that same run.
//!
//! `bench-table RESULTS.jsonl…`

use std::collections::BTreeMap;
use std::io::BufRead;

use annals_bench_harness::record::{Record, Role};

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: bench-table RESULTS.jsonl…");
        std::process::exit(2);
    }
    let mut records = Vec::new();
    for path in &paths {
        let file = std::fs::File::open(path).unwrap_or_else(|e| {
            eprintln!("bench-table: cannot open {path}: {e}");
            std::process::exit(1)
        });
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.unwrap_or_else(|e| {
                eprintln!("bench-table: cannot read {path}: {e}");
                std::process::exit(1)
            });
            if line.trim().is_empty() {
                continue;
            }
            let r: Record = serde_json::from_str(&line).unwrap_or_else(|e| {
                eprintln!("bench-table: {path}:{}: not a bench record: {e}", n + 1);
                std::process::exit(1)
            });
            records.push(r);
        }
    }
    print!("{}", table(&records));
}

/// The markdown of every (backend, workload) group, in the order groups first appear.
fn table(records: &[Record]) -> String {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut groups: BTreeMap<(String, String), Vec<&Record>> = BTreeMap::new();
    for r in records {
        let key = (r.backend.clone(), r.workload.clone());
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(r);
    }
    let mut out = String::new();
    let mut backend = String::new();
    for key in order {
        let rows = &groups[&key];
        if key.0 != backend {
            backend = key.0.clone();
            out.push_str(&format!("\n## {backend}\n"));
        }
        let unit = &rows[0].unit;
        let raw = rows.iter().find(|r| r.role() == Role::Raw).map(|r| r.rate);
        let best_peer = rows
            .iter()
            .filter(|r| r.role() == Role::Peer)
            .max_by(|a, b| a.rate.total_cmp(&b.rate));
        out.push_str(&format!("\n### {}\n\n", key.1));
        out.push_str(&format!(
            "| {:<36} | {unit:>10} | {:>10} | {:>10} | {:>7} | {:>11} |\n",
            "system", "p50", "p99", "÷ raw", "÷ best peer"
        ));
        out.push_str(&format!(
            "|{:-<38}|{:-<12}|{:-<12}|{:-<12}|{:-<9}|{:-<13}|\n",
            "", "", "", "", "", ""
        ));
        let mut sorted: Vec<&&Record> = rows.iter().collect();
        sorted.sort_by(|a, b| {
            let rank = |r: &Record| match r.role() {
                Role::Raw => 0,
                Role::Annals => 1,
                Role::Peer => 2,
            };
            rank(a).cmp(&rank(b)).then(b.rate.total_cmp(&a.rate))
        });
        for r in sorted {
            let ratio = |base: Option<f64>| base.map_or_else(|| "—".to_owned(), |b| format!("{:.2}×", r.rate / b));
            out.push_str(&format!(
                "| {:<36} | {:>10.0} | {:>7.0} µs | {:>7.0} µs | {:>7} | {:>11} |\n",
                r.system,
                r.rate,
                r.p50_us,
                r.p99_us,
                if r.role() == Role::Raw {
                    "—".to_owned()
                } else {
                    ratio(raw)
                },
                ratio(best_peer.map(|p| p.rate)),
            ));
        }
        if let Some(p) = best_peer {
            out.push_str(&format!("\nBest peer: {}.\n", p.system));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(system: &str, rate: f64) -> Record {
        Record {
            backend: "postgres".into(),
            workload: "commands 16×10".into(),
            system: system.into(),
            unit: "events/s".into(),
            rate,
            p50_us: 100.0,
            p99_us: 900.0,
            operations: 10,
        }
    }

    #[test]
    fn ratios_divide_by_raw_and_by_the_best_peer() {
        let t = table(&[
            rec("cqrs-es", 500.0),
            rec("raw SELECT + INSERT", 4000.0),
            rec("annals", 2000.0),
            rec("esrs", 1000.0),
        ]);
        let annals = t.lines().find(|l| l.starts_with("| annals")).unwrap();
        assert!(annals.contains("0.50×") && annals.contains("2.00×"), "{annals}");
        let cqrs = t.lines().find(|l| l.starts_with("| cqrs-es")).unwrap();
        assert!(cqrs.contains("0.12×") && cqrs.contains("0.50×"), "{cqrs}");
        assert!(t.contains("Best peer: esrs."));
        let pos = |s: &str| t.find(s).unwrap();
        assert!(pos("| raw") < pos("| annals") && pos("| annals") < pos("| esrs") && pos("| esrs") < pos("| cqrs-es"));
    }
}
