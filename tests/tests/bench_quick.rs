//! Runs `lode-bench --quick` once so the benchmark cannot rot: it must
//! finish, and every figure must come with a positive reference.

use lode_tests::bin;

#[test]
fn lode_bench_quick_runs_and_reports_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = std::process::Command::new(bin("lode-bench")).arg("--quick").arg("--json").arg(&json).output().unwrap();
    assert!(out.status.success(), "lode-bench --quick failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let figures = report["figures"].as_array().unwrap();
    let names: Vec<&str> = figures.iter().map(|f| f["name"].as_str().unwrap()).collect();
    for expected in
        ["mining", "verifications", "block validation", "import", "reorg", "reopen", "mempool", "sync", "to 4 nodes"]
    {
        assert!(names.iter().any(|n| n.contains(expected)), "no {expected} figure in {names:?}");
    }
    for f in figures {
        assert!(f["value"].as_f64().unwrap() > 0.0, "{f}");
    }
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
