//! Runs `lode-bench --quick` once so the benchmark cannot rot: it must
//! finish and report every figure under its stable id, each with a
//! positive reference (measured, or a goal said to be one), a finite ratio
//! in a sane range that lies within the spread of its runs.

use lode_tests::bin;
use serde_json::Value;

/// Every id docs/performance.md documents.
const IDS: &[&str] = &[
    "mining.hashes_per_thread",
    "signatures.k256_vs_libsecp",
    "signatures.verify_parsed_vs_libsecp",
    "signatures.batch_vs_libsecp",
    "signatures.batch_vs_k256",
    "validation.block_1000",
    "validation.block_1000_cached",
    "validation.block_5000",
    "validation.block_5000_cached",
    "import.tx_per_s",
    "reorg.vs_connect",
    "import.node_rss_growth",
    "import.node_rss_peak_mb",
    "restart.to_rpc_ms",
    "mempool.rpc_accept",
    "sync.peers_1",
    "sync.peers_3",
    "sync.mixed",
    "sync.mixed_disk",
    "propagation.compact",
    "propagation.bytes",
    "propagation.full",
];

/// Figures read against a goal rather than a measured reference.
const GOALS: &[&str] = &["import.node_rss_growth", "restart.to_rpc_ms"];

fn num(f: &Value, key: &str) -> f64 {
    f[key].as_f64().unwrap_or_else(|| panic!("{key} missing or not a number: {f}"))
}

#[test]
fn lode_bench_quick_reports_every_figure_with_a_sane_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = std::process::Command::new(bin("lode-bench")).arg("--quick").arg("--json").arg(&json).output().unwrap();
    assert!(out.status.success(), "lode-bench --quick failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["quick"], true);
    let figures = report["figures"].as_array().unwrap();
    let ids: Vec<&str> = figures.iter().map(|f| f["id"].as_str().expect("every figure has an id")).collect();
    for id in IDS {
        assert_eq!(ids.iter().filter(|i| *i == id).count(), 1, "{id} reported exactly once in {ids:?}");
    }
    for f in figures {
        let id = f["id"].as_str().unwrap_or_default();
        assert!(IDS.contains(&id), "{id} is not documented in the list of ids");
        let (value, reference, ratio) = (num(f, "value"), num(f, "reference"), num(f, "ratio"));
        let (lo, hi) = (num(f, "ratio_min"), num(f, "ratio_max"));
        assert!(value.is_finite() && value > 0.0, "value: {f}");
        assert!(reference.is_finite() && reference > 0.0, "every reference is positive: {f}");
        assert!(!f["reference_name"].as_str().unwrap_or("").is_empty(), "the reference is named: {f}");
        let kind = f["reference_kind"].as_str().unwrap_or_default();
        if GOALS.contains(&id) {
            assert_eq!(kind, "goal", "{id} is read against a goal: {f}");
            assert!(f["reference_name"].as_str().unwrap_or("").starts_with("goal"), "a goal says so: {f}");
        } else {
            assert_eq!(kind, "measured", "{id} has a reference measured in the same run: {f}");
        }
        // A ratio of 0 or 10^4 means a unit mix-up or a reference that
        // measured nothing, on any machine.
        assert!(ratio.is_finite() && (1e-3..1e3).contains(&ratio), "ratio out of any sane range: {f}");
        assert!(lo <= ratio && ratio <= hi, "the median ratio lies within its runs' spread: {f}");
        let runs = f["runs"].as_u64().expect("runs");
        let values = f["values"].as_array().expect("values");
        let refs = f["references"].as_array().expect("references");
        assert!(runs >= 1 && values.len() as u64 == runs && refs.len() as u64 == runs, "runs: {f}");
        // Interleaved figures run at least two rounds even in --quick.
        if kind == "measured" && id != "import.node_rss_peak_mb" {
            assert!(runs >= 2, "{id} measured in interleaved rounds: {f}");
        }
    }
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
