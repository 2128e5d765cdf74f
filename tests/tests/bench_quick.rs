//! Runs `lode-bench --quick` once so the benchmark cannot rot: it must
//! finish, and every figure must come with a positive, named reference and a
//! finite ratio in a sane range.

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
        let value = f["value"].as_f64().expect("value");
        let reference = f["reference"].as_f64().expect("reference");
        let ratio = f["ratio"].as_f64().expect("ratio");
        assert!(value.is_finite() && value > 0.0, "value: {f}");
        assert!(reference.is_finite() && reference > 0.0, "every figure has a measured reference: {f}");
        assert!(!f["reference_name"].as_str().unwrap_or("").is_empty(), "the reference is named: {f}");
        // value / reference, and within what any machine gives: a ratio of
        // 0 or 10^4 means a unit mix-up or a reference that measured nothing.
        assert!((ratio - value / reference).abs() <= 1e-9 * ratio.abs().max(1.0), "ratio: {f}");
        assert!(ratio.is_finite() && (1e-3..1e3).contains(&ratio), "ratio out of any sane range: {f}");
    }
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
