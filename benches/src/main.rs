//! `lode-bench`: whole-node figures, each measured in interleaved rounds
//! beside the reference that makes it meaningful on a noisy machine (a
//! ratio holds; an absolute time does not), or beside a goal where nothing
//! can be measured to compare with. `--quick` runs reduced sizes and two
//! rounds (the test suite runs it so it cannot rot); `--json FILE` writes
//! the results under stable ids (docs/performance.md lists them).

mod figures;
mod import;
mod mempool;
mod network;
mod nodeproc;
mod propagation;
mod sections;
mod signatures_batch;

use figures::Report;

const SECTIONS: &str = "mining, signatures, validation, import, reorg, memory, restart, mempool, sync, propagation";

fn main() {
    let mut quick = false;
    let mut json: Option<String> = None;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--json" => json = args.next(),
            "--only" => only.extend(args.next()),
            "-h" | "--help" => {
                println!("usage: lode-bench [--quick] [--json FILE] [--only SECTION]...\nsections: {SECTIONS}");
                return;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if let Some(bad) = only.iter().find(|o| !SECTIONS.split(", ").any(|s| s == o.as_str())) {
        eprintln!("unknown section {bad}; sections: {SECTIONS}");
        std::process::exit(2);
    }
    let mut report = Report::new(quick);
    let run = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if run("mining") {
        sections::mining(&mut report);
    }
    if run("signatures") {
        sections::signatures(&mut report);
    }
    if run("validation") {
        sections::validation(&mut report);
    }
    if run("import") {
        import::import(&mut report);
    }
    if run("reorg") {
        import::reorg(&mut report);
    }
    let data_dir = run("memory").then(|| nodeproc::memory(&mut report));
    if run("restart") {
        nodeproc::restart(&mut report, data_dir);
    }
    if run("mempool") {
        mempool::mempool(&mut report);
    }
    if run("sync") {
        network::sync(&mut report);
    }
    if run("propagation") {
        propagation::propagation(&mut report);
    }
    report.print();
    if let Some(path) = json {
        if let Err(e) = std::fs::write(&path, report.to_json()) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
}
