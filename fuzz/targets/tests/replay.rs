//! Replays every committed corpus and regression input through its
//! target, as the fuzzer would: a crash found once stays fixed.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_target_replays_its_corpus_and_regressions() {
    for (name, run) in lode_fuzz::targets() {
        let corpus = inputs("corpus", name);
        assert!(!corpus.is_empty(), "target {name} has no committed corpus in fuzz/corpus/{name}");
        for path in corpus.iter().chain(&inputs("regressions", name)) {
            let data = std::fs::read(path).expect("a corpus file reads");
            // A panic names the file, so the failing input is at hand.
            eprintln!("{name}: {}", path.display());
            run(&data);
        }
    }
}

#[test]
fn the_wallet_constants_copied_for_its_decoder_match_the_wallet() {
    // lode-fuzz compiles wallet-cli's file.rs with two constants standing
    // in for the wallet's keys and view modules; they must stay equal.
    let keys = std::fs::read_to_string(fuzz_dir().join("../wallet-cli/src/keys.rs")).expect("wallet keys.rs");
    assert!(keys.contains("pub const DEFAULT_ACCOUNT_PATH: &str = \"m/86'/1'/0'\";"));
    let view = std::fs::read_to_string(fuzz_dir().join("../wallet-cli/src/view.rs")).expect("wallet view.rs");
    assert!(view.contains("pub const GAP_LIMIT: u32 = 20;"));
}
