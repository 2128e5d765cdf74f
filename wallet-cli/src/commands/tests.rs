//! Whole commands against the fake node: what `--json` prints, what is
//! refused, and what the wallet file looks like afterwards.

use super::*;
use crate::fake::FakeNode;
use clap::Parser;
use lode_core::Hash256;
use std::path::Path;

const PASS: &str = "correct horse battery staple";

struct Rig {
    node: FakeNode,
    dir: tempfile::TempDir,
    cookie: PathBuf,
    spec: ChainSpec,
}

impl Rig {
    fn new() -> Rig {
        let node = FakeNode::start("regtest");
        let dir = tempfile::tempdir().unwrap();
        let cookie = node.cookie_file(dir.path());
        Rig { node, dir, cookie, spec: ChainSpec::regtest() }
    }

    fn path(&self, wallet: &str) -> PathBuf {
        self.dir.path().join(wallet)
    }

    fn run_with(&self, wallet: &str, pass: &str, args: &[&str]) -> Result<Output, Error> {
        let path = self.path(wallet);
        let mut full = vec!["lode-wallet", "--chain", "regtest", "--json"];
        full.extend_from_slice(&["--wallet", path.to_str().unwrap()]);
        let url = self.node.url();
        full.extend_from_slice(&["--rpc", &url, "--cookie", self.cookie.to_str().unwrap()]);
        full.extend_from_slice(args);
        let cli = Cli::try_parse_from(&full).unwrap();
        let env = Env { passphrase: Some(pass.into()), data_home: None, stdin_tty: false };
        run(&cli, &env)
    }

    fn ok(&self, wallet: &str, args: &[&str]) -> Value {
        match self.run_with(wallet, PASS, args) {
            Ok(out) => out.json,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    fn err(&self, wallet: &str, args: &[&str]) -> String {
        match self.run_with(wallet, PASS, args) {
            Ok(out) => panic!("{args:?} should fail, printed {}", out.json),
            Err(e) => e.to_string(),
        }
    }

    fn balance(&self, wallet: &str) -> (u64, i64, u64) {
        let b = self.ok(wallet, &["balance"]);
        assert_eq!(b.as_object().unwrap().len(), 3, "{b}");
        (b["confirmed"].as_u64().unwrap(), b["unconfirmed"].as_i64().unwrap(), b["immature"].as_u64().unwrap())
    }

    fn address(&self, wallet: &str) -> String {
        self.ok(wallet, &["address"])["address"].as_str().unwrap().to_string()
    }

    /// A wallet holding one mature coinbase (the subsidy).
    fn funded(&self, wallet: &str) -> String {
        self.ok(wallet, &["new"]);
        let a = self.address(wallet);
        self.node.mine_to(1, &a);
        self.node.mine(self.spec.coinbase_maturity);
        a
    }
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn new_address_and_json_shapes() {
    let r = Rig::new();
    let created = r.ok("a.wallet", &["new"]);
    let words = created["mnemonic"].as_str().unwrap();
    assert_eq!(words.split(' ').count(), 24);
    assert_eq!(created["chain"], "regtest");
    let first = created["address"].as_str().unwrap().to_string();
    assert!(first.starts_with("lrt1"));
    assert_eq!(r.ok("a.wallet", &["address"]), json!({"address": first, "index": 0}));
    let second = r.ok("a.wallet", &["address", "--new"]);
    assert_eq!(second["index"], 1);
    assert_ne!(second["address"], json!(first));
    assert_eq!(r.ok("a.wallet", &["address"]), second, "the current address stays until --new");
    assert!(r.err("a.wallet", &["new"]).contains("already exists"));
    assert_eq!(r.ok("a.wallet", &["balance"]), json!({"confirmed": 0, "unconfirmed": 0, "immature": 0}));
    assert_eq!(r.ok("a.wallet", &["history"]), json!([]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(r.path("a.wallet")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // 12 words on request.
    let twelve = r.ok("b.wallet", &["new", "--word-count", "12"]);
    assert_eq!(twelve["mnemonic"].as_str().unwrap().split(' ').count(), 12);
}

#[test]
fn coinbase_matures_then_pays_with_exact_fee_and_change() {
    let r = Rig::new();
    r.ok("a.wallet", &["new"]);
    r.ok("b.wallet", &["new"]);
    let addr_a = r.address("a.wallet");
    let addr_b = r.address("b.wallet");
    let subsidy = r.spec.initial_subsidy.units();
    let maturity = r.spec.coinbase_maturity;
    r.node.mine_to(1, &addr_a);
    assert_eq!(r.balance("a.wallet"), (0, 0, subsidy));
    // One block short of maturity: still immature, and not spendable.
    r.node.mine(maturity - 2);
    assert_eq!(r.balance("a.wallet"), (0, 0, subsidy));
    let e = r.err("a.wallet", &["send", "--to", &addr_b, "--amount", "1"]);
    assert!(e.contains("insufficient balance") && e.contains("immature"), "{e}");
    r.node.mine(1);
    assert_eq!(r.balance("a.wallet"), (subsidy, 0, 0));

    let sent = r.ok("a.wallet", &["send", "--to", &addr_b, "--amount", "12.5", "--fee-rate", "3"]);
    let amount = 1_250_000_000u64;
    let (fee, change) = (sent["fee"].as_u64().unwrap(), sent["change"].as_u64().unwrap());
    assert_eq!(sent["amount"], amount);
    assert_eq!(fee, 3 * crate::select::tx_size(1, 2));
    assert_eq!(sent["size"], crate::select::tx_size(1, 2));
    assert_eq!(change, subsidy - amount - fee);
    let txid = Hash256::from_hex(sent["txid"].as_str().unwrap()).unwrap();
    let tx = r.node.state.lock().unwrap().tx(&txid).unwrap();
    assert_eq!(tx.encoded_size() as u64 * 3, fee, "fee = rate × encoded size");
    let vout = sent["change_vout"].as_u64().unwrap() as usize;
    assert_eq!(tx.outputs[vout].value.units(), change);
    assert_eq!(tx.outputs[1 - vout].value.units(), amount);

    assert_eq!(r.balance("b.wallet"), (0, amount as i64, 0));
    assert_eq!(r.balance("a.wallet"), (subsidy, -((amount + fee) as i64), 0));
    assert_eq!(r.ok("a.wallet", &["status", &txid.to_hex()])["status"], "mempool");
    r.node.mine(1);
    assert_eq!(r.balance("b.wallet"), (amount, 0, 0));
    assert_eq!(r.balance("a.wallet"), (subsidy - amount - fee, 0, 0));
    let st = r.ok("a.wallet", &["status", &txid.to_hex()]);
    assert_eq!((st["status"].as_str(), st["confirmations"].as_u64()), (Some("confirmed"), Some(1)));
    assert_eq!(st["height"], r.node.state.lock().unwrap().tx(&txid).map(|_| maturity + 1).unwrap());
    let unknown = r.ok("a.wallet", &["status", &"ab".repeat(32)]);
    assert_eq!(
        unknown,
        json!({"txid": "ab".repeat(32), "status": "unknown", "height": null, "confirmations": 0, "block_hash": null})
    );

    // History on both sides.
    let ha = r.ok("a.wallet", &["history"]);
    let rows = ha.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{ha}");
    assert_eq!((rows[0]["direction"].as_str(), rows[0]["coinbase"].as_bool()), (Some("received"), Some(true)));
    assert_eq!(rows[1]["direction"], "sent");
    assert_eq!(rows[1]["amount"], -(amount as i64));
    assert_eq!(rows[1]["fee"], fee);
    assert_eq!(rows[1]["net"], -((amount + fee) as i64));
    let hb = r.ok("b.wallet", &["history"]);
    assert_eq!(hb[0]["direction"], "received");
    assert_eq!(hb[0]["amount"], amount);
    assert_eq!(hb[0]["fee"], 0);
    assert_eq!(hb[0]["confirmations"], 1);
}

#[test]
fn bad_input_is_refused_before_signing_and_the_file_is_untouched() {
    let r = Rig::new();
    let addr_a = r.funded("a.wallet");
    let before = bytes(&r.path("a.wallet"));
    let wrong_net = lode_core::Address([3; 20]).encode("ldev").unwrap();
    let mut typo = addr_a.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'q' { 'p' } else { 'q' });
    for (args, why) in [
        (vec!["send", "--to", wrong_net.as_str(), "--amount", "1"], "network"),
        (vec!["send", "--to", typo.as_str(), "--amount", "1"], "checksum"),
        (vec!["send", "--to", addr_a.as_str(), "--amount", "1.000000001"], "decimal"),
        (vec!["send", "--to", addr_a.as_str(), "--amount", "0"], "zero"),
        (vec!["send", "--to", addr_a.as_str(), "--amount", "-1"], "negative"),
        (vec!["send", "--to", addr_a.as_str(), "--amount", "1000"], "balance"),
        (vec!["send", "--to", addr_a.as_str(), "--amount", "50"], "balance"), // the fee does not fit
        (vec!["send", "--to", addr_a.as_str(), "--amount", "1", "--fee-rate", "0"], "fee rate"),
    ] {
        let e = r.err("a.wallet", &args);
        assert!(e.contains(why), "{args:?}: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
        assert_eq!(bytes(&r.path("a.wallet")), before, "{args:?} changed the wallet file");
    }
    assert!(r.node.state.lock().unwrap().mempool().is_empty(), "nothing was submitted");
    let e = r.run_with("a.wallet", "wrong", &["balance"]).unwrap_err().to_string();
    assert!(e.contains("wrong passphrase"), "{e}");
    assert_eq!(bytes(&r.path("a.wallet")), before);
    // A node below the requested fee rate's floor.
    r.node.state.lock().unwrap().set_min_fee_rate(5);
    let e = r.err("a.wallet", &["send", "--to", &addr_a, "--amount", "1", "--fee-rate", "2"]);
    assert!(e.contains("minimum relay"), "{e}");
    assert_eq!(bytes(&r.path("a.wallet")), before);
}

#[test]
fn two_sends_in_a_row_do_not_double_spend() {
    let r = Rig::new();
    r.funded("a.wallet");
    r.ok("b.wallet", &["new"]);
    let b = r.address("b.wallet");
    let s1 = r.ok("a.wallet", &["send", "--to", &b, "--amount", "1"]);
    // The only coin is taken: the second send spends the first one's change.
    let s2 = r.ok("a.wallet", &["send", "--to", &b, "--amount", "2"]);
    let s3 = r.ok("a.wallet", &["send", "--to", &b, "--amount", "3"]);
    assert_eq!(r.node.state.lock().unwrap().mempool().len(), 3, "all accepted: no conflict");
    let t2 = r.node.state.lock().unwrap().tx(&Hash256::from_hex(s2["txid"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(t2.inputs[0].prevout.txid.to_hex(), s1["txid"].as_str().unwrap());
    r.node.mine(1);
    assert_eq!(r.balance("b.wallet").0, 600_000_000);
    let fees: u64 = [&s1, &s2, &s3].iter().map(|s| s["fee"].as_u64().unwrap()).sum();
    assert_eq!(r.balance("a.wallet").0, r.spec.initial_subsidy.units() - 600_000_000 - fees);
}

#[test]
fn offline_signing_reserves_its_coins_until_broadcast() {
    let r = Rig::new();
    let a = r.funded("a.wallet");
    r.node.mine_to(1, &a);
    r.node.mine(r.spec.coinbase_maturity); // a second mature coin
    r.ok("b.wallet", &["new"]);
    let b = r.address("b.wallet");
    let off = r.ok("a.wallet", &["send", "--to", &b, "--amount", "10", "--offline"]);
    assert!(r.node.state.lock().unwrap().mempool().is_empty(), "offline does not submit");
    let hex = off["hex"].as_str().unwrap().to_string();
    let bytes = hex::decode(&hex).unwrap();
    let off_tx = lode_core::Transaction::decode_all(&bytes, 1 << 20).unwrap();
    assert_eq!(off_tx.txid().to_hex(), off["txid"].as_str().unwrap());
    // The next payment takes the other coin, not the one the offline one spends.
    let online = r.ok("a.wallet", &["send", "--to", &b, "--amount", "20"]);
    let on_tx = r.node.state.lock().unwrap().tx(&Hash256::from_hex(online["txid"].as_str().unwrap()).unwrap()).unwrap();
    assert_ne!(on_tx.inputs[0].prevout, off_tx.inputs[0].prevout);
    let bc = r.ok("a.wallet", &["broadcast", &hex]);
    assert_eq!(bc["txid"], off["txid"]);
    assert_eq!(bc["already_known"], false);
    assert_eq!(r.ok("a.wallet", &["broadcast", &hex])["already_known"], true, "broadcast is idempotent");
    assert_eq!(r.node.state.lock().unwrap().mempool().len(), 2, "no conflict between the two");
    r.node.mine(1);
    assert_eq!(r.balance("b.wallet").0, 3_000_000_000);
    assert!(r.err("a.wallet", &["broadcast", "zz"]).contains("not transaction hex"));
    assert!(r.err("a.wallet", &["broadcast", "00"]).contains("not a transaction"));
}

#[test]
fn pending_spends_are_released_when_the_node_drops_them() {
    let r = Rig::new();
    r.funded("a.wallet");
    r.ok("b.wallet", &["new"]);
    let b = r.address("b.wallet");
    let s1 = r.ok("a.wallet", &["send", "--to", &b, "--amount", "1"]);
    let id = Hash256::from_hex(s1["txid"].as_str().unwrap()).unwrap();
    r.node.state.lock().unwrap().evict(&id);
    // The coin is free again: a new payment spends it directly.
    let s2 = r.ok("a.wallet", &["send", "--to", &b, "--amount", "2"]);
    let t2 = r.node.state.lock().unwrap().tx(&Hash256::from_hex(s2["txid"].as_str().unwrap()).unwrap()).unwrap();
    assert_ne!(t2.inputs[0].prevout.txid, id);
}

#[test]
fn restore_finds_the_same_coins_including_change() {
    let r = Rig::new();
    let created = r.ok("a.wallet", &["new"]);
    let words = created["mnemonic"].as_str().unwrap().to_string();
    let a = r.address("a.wallet");
    r.node.mine_to(1, &a);
    r.node.mine(r.spec.coinbase_maturity);
    r.ok("b.wallet", &["new"]);
    let b = r.address("b.wallet");
    // Change lands on change addresses 0 and 1, and a coinbase on receiving
    // address 5: a fresh restore must find all three.
    r.ok("a.wallet", &["send", "--to", &b, "--amount", "1"]);
    r.ok("a.wallet", &["send", "--to", &b, "--amount", "1"]);
    for _ in 0..5 {
        r.ok("a.wallet", &["address", "--new"]);
    }
    let a5 = r.address("a.wallet");
    r.node.mine_to(1, &a5);
    r.node.mine(r.spec.coinbase_maturity);
    let before = r.balance("a.wallet");
    let restored = r.ok("r.wallet", &["restore", "--words", &words.to_uppercase()]);
    assert_eq!(restored["address"], json!(a));
    assert!(restored.get("mnemonic").is_none(), "restore does not echo the words");
    assert_eq!(r.balance("r.wallet"), before);
    // Discovery moved the counters: the next address is not a used one.
    assert_eq!(r.address("r.wallet"), a5);
    assert!(r.err("x.wallet", &["restore", "--words", "abandon abandon"]).contains("mnemonic"));
    assert!(!r.path("x.wallet").exists());
}

#[test]
fn wait_returns_once_mined_and_node_problems_are_one_line() {
    let r = Rig::new();
    r.funded("a.wallet");
    let b = r.address("a.wallet");
    let state = r.node.state.clone();
    let miner = std::thread::spawn(move || {
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            let mut s = state.lock().unwrap();
            if !s.mempool().is_empty() {
                s.mine(1, &lode_core::Address([1; 20]));
                return;
            }
        }
    });
    let sent = r.ok("a.wallet", &["send", "--to", &b, "--amount", "1", "--wait", "--timeout", "30"]);
    miner.join().unwrap();
    assert_eq!(sent["confirmations"], 1);
    assert_eq!(sent["height"], r.spec.coinbase_maturity + 2);
    let timed_out = r.err("a.wallet", &["send", "--to", &b, "--amount", "1", "--wait", "--timeout", "1"]);
    assert!(timed_out.starts_with("sent ") && timed_out.contains("no confirmation"), "{timed_out}");

    // Another chain.
    let url = r.node.url();
    let cookie = r.cookie.to_str().unwrap().to_string();
    let wallet_path = r.path("a.wallet");
    let wallet_path = wallet_path.to_str().unwrap();
    let cli = |chain: &str, rpc: &str, cookie: &str| {
        Cli::try_parse_from([
            "lode-wallet",
            "--chain",
            chain,
            "--wallet",
            wallet_path,
            "--rpc",
            rpc,
            "--cookie",
            cookie,
            "status",
            &"00".repeat(32),
        ])
        .unwrap()
    };
    let env = Env { passphrase: Some(PASS.into()), data_home: None, stdin_tty: false };
    let e = run(&cli("devnet", &url, &cookie), &env).unwrap_err().to_string();
    assert!(e.starts_with("chain mismatch"), "{e}");
    // A wrong cookie.
    let wrong = r.dir.path().join("wrong-cookie");
    std::fs::write(&wrong, "nope").unwrap();
    let e = run(&cli("regtest", &url, wrong.to_str().unwrap()), &env).unwrap_err().to_string();
    assert!(e.contains("refused the RPC cookie"), "{e}");
    // Nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = run(&cli("regtest", &format!("127.0.0.1:{port}"), &cookie), &env).unwrap_err().to_string();
    assert!(e.contains("cannot reach the node"), "{e}");
    // A wallet of another chain.
    let e = Cli::try_parse_from([
        "lode-wallet",
        "--chain",
        "devnet",
        "--wallet",
        r.path("a.wallet").to_str().unwrap(),
        "address",
    ])
    .map(|c| run(&c, &env))
    .unwrap()
    .unwrap_err()
    .to_string();
    assert!(e.contains("belongs to regtest"), "{e}");
}

#[test]
fn default_paths_follow_the_data_home() {
    let home = tempfile::tempdir().unwrap();
    let env = Env { passphrase: Some(PASS.into()), data_home: Some(home.path().to_path_buf()), stdin_tty: false };
    let cli = Cli::try_parse_from(["lode-wallet", "--chain", "regtest", "new"]).unwrap();
    let out = run(&cli, &env).unwrap();
    let expected = home.path().join("lode/regtest/wallet.json");
    assert_eq!(out.json["wallet"], json!(expected.display().to_string()));
    assert!(expected.exists());
    // The cookie is looked up in the node's default data directory.
    let cli = Cli::try_parse_from(["lode-wallet", "--chain", "regtest", "--rpc", "127.0.0.1:1", "balance"]).unwrap();
    let e = run(&cli, &env).unwrap_err().to_string();
    assert!(e.contains(&home.path().join("lode/regtest/.cookie").display().to_string()), "{e}");
    let cli = Cli::try_parse_from([
        "lode-wallet",
        "--chain",
        "regtest",
        "--data-dir",
        "/nowhere",
        "status",
        &"00".repeat(32),
    ])
    .unwrap();
    assert!(run(&cli, &env).unwrap_err().to_string().contains("/nowhere/.cookie"));
    // Interactive-free: an empty passphrase is refused for a new wallet.
    let env = Env { passphrase: Some(String::new()), ..env };
    let cli = Cli::try_parse_from([
        "lode-wallet",
        "--chain",
        "regtest",
        "--wallet",
        home.path().join("e").to_str().unwrap(),
        "new",
    ])
    .unwrap();
    assert!(run(&cli, &env).unwrap_err().to_string().contains("empty passphrase"));
}
