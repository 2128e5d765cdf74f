//! Whole commands against the fake node: what `--json` prints, what is
//! refused, and what the wallet file looks like afterwards.

use super::*;
use crate::fake::FakeNode;
use clap::Parser;
use lode_core::{Amount, Hash256};
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
        let env = Env { passphrase: Some(pass.into()), data_home: None, stdin_tty: false, bip39_passphrase: None };
        self.run_env(wallet, &env, args)
    }

    fn run_env(&self, wallet: &str, env: &Env, args: &[&str]) -> Result<Output, Error> {
        run(&self.cli(wallet, args), env)
    }

    /// Runs with `stdin` as standard input (not a terminal).
    fn run_input(&self, wallet: &str, args: &[&str], stdin: &str) -> Result<Output, Error> {
        let env = Env { passphrase: Some(PASS.into()), data_home: None, stdin_tty: false, bip39_passphrase: None };
        run_with_input(&self.cli(wallet, args), &env, &mut stdin.as_bytes())
    }

    fn cli(&self, wallet: &str, args: &[&str]) -> Cli {
        let path = self.path(wallet);
        let mut full = vec!["lode-wallet", "--chain", "regtest", "--json"];
        full.extend_from_slice(&["--wallet", path.to_str().unwrap()]);
        let url = self.node.url();
        full.extend_from_slice(&["--rpc", &url, "--cookie", self.cookie.to_str().unwrap()]);
        full.extend_from_slice(args);
        Cli::try_parse_from(&full).unwrap()
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

    /// `a.wallet` funded as by [`Rig::funded`], `b.wallet` new: returns
    /// b's address.
    fn payer_and_payee(&self) -> String {
        self.funded("a.wallet");
        self.ok("b.wallet", &["new"]);
        self.address("b.wallet")
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
    assert_eq!((rows[0]["direction"].as_str(), rows[0]["coinbase"].as_bool()), (Some("mined"), Some(true)));
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
    let b = r.payer_and_payee();
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
    let b = r.payer_and_payee();
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
    let env = Env { passphrase: Some(PASS.into()), data_home: None, stdin_tty: false, bip39_passphrase: None };
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
    let env = Env {
        passphrase: Some(PASS.into()),
        data_home: Some(home.path().to_path_buf()),
        stdin_tty: false,
        bip39_passphrase: None,
    };
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

/// The decoded transaction the fake node holds under `txid` (JSON text).
fn fake_tx(r: &Rig, txid: &Value) -> lode_core::Transaction {
    let id = Hash256::from_hex(txid.as_str().unwrap()).unwrap();
    r.node.state.lock().unwrap().tx(&id).unwrap()
}

fn decode_addr(text: &str) -> lode_core::Address {
    lode_core::Address::decode(text, "lrt").unwrap()
}

#[test]
fn send_pays_several_recipients_in_one_transaction() {
    let r = Rig::new();
    r.funded("a.wallet");
    r.ok("b.wallet", &["new"]);
    r.ok("c.wallet", &["new"]);
    let (b, c) = (r.address("b.wallet"), r.address("c.wallet"));
    let before = bytes(&r.path("a.wallet"));
    let e = r.err("a.wallet", &["send", "--to", &b, "--amount", "1", "--to", &c]);
    assert!(e.contains("2 --to but 1 --amount"), "{e}");
    let e = r.err("a.wallet", &["send", "--to", &b, "--amount", "1", "--to", &c, "--amount", "0"]);
    assert!(e.contains("zero"), "{e}");
    assert_eq!(bytes(&r.path("a.wallet")), before, "refusals leave the file as it was");
    let sent =
        r.ok("a.wallet", &["send", "--to", &b, "--amount", "1", "--to", &c, "--amount", "2.5", "--fee-rate", "2"]);
    assert_eq!(sent["amount"], 350_000_000u64);
    assert_eq!(sent["fee"], 2 * crate::select::tx_size(1, 3));
    assert_eq!(sent["payments"], json!([{"to": b, "amount": 100_000_000u64}, {"to": c, "amount": 250_000_000u64}]));
    let tx = fake_tx(&r, &sent["txid"]);
    assert_eq!(tx.outputs.len(), 3, "two payments and the change");
    let pay = |a: &str| tx.outputs.iter().filter(|o| o.address == decode_addr(a)).map(|o| o.value.units()).sum::<u64>();
    assert_eq!((pay(&b), pay(&c)), (100_000_000, 250_000_000));
    r.node.mine(1);
    assert_eq!(r.balance("b.wallet").0, 100_000_000);
    assert_eq!(r.balance("c.wallet").0, 250_000_000);
    let subsidy = r.spec.initial_subsidy.units();
    assert_eq!(r.balance("a.wallet").0, subsidy - 350_000_000 - sent["fee"].as_u64().unwrap());
}

#[test]
fn send_pays_the_node_estimate_for_its_target_unless_a_rate_is_given() {
    let r = Rig::new();
    r.funded("a.wallet");
    let b = r.address("a.wallet");
    // No data yet: the default rate, saying why.
    let s = r.ok("a.wallet", &["send", "--to", &b, "--amount", "1"]);
    assert_eq!(s["fee_rate"], send::DEFAULT_FEE_RATE);
    assert!(s["fee_source"].as_str().unwrap().contains("too little data"), "{s}");
    r.node.state.lock().unwrap().set_fee_estimate(Some(7));
    let s = r.ok("a.wallet", &["send", "--to", &b, "--amount", "1", "--conf-target", "2", "--yes"]);
    assert_eq!((s["fee_rate"].as_u64(), s["fee_source"].as_str()), (Some(7), Some("node estimate for 2 blocks")));
    assert_eq!(s["fee"], 7 * s["size"].as_u64().unwrap());
    let s = r.ok("a.wallet", &["send", "--to", &b, "--amount", "1", "--fee-rate", "3"]);
    assert_eq!(s["fee_rate"], 3);
    let before = bytes(&r.path("a.wallet"));
    assert!(r.err("a.wallet", &["send", "--to", &b, "--amount", "1", "--conf-target", "0"]).contains("conf-target"));
    assert_eq!(bytes(&r.path("a.wallet")), before);
}

#[test]
fn sweep_sends_everything_spendable_minus_the_fee() {
    let r = Rig::new();
    let a = r.funded("a.wallet");
    r.node.mine_to(1, &a);
    r.node.mine(r.spec.coinbase_maturity);
    r.ok("b.wallet", &["new"]);
    let b = r.address("b.wallet");
    let subsidy = r.spec.initial_subsidy.units();
    let s = r.ok("a.wallet", &["sweep", "--to", &b, "--fee-rate", "3"]);
    let fee = 3 * crate::select::tx_size(2, 1);
    assert_eq!(
        (s["amount"].as_u64(), s["fee"].as_u64(), s["inputs"].as_u64()),
        (Some(2 * subsidy - fee), Some(fee), Some(2))
    );
    let tx = fake_tx(&r, &s["txid"]);
    assert_eq!(tx.outputs.len(), 1, "no change");
    assert_eq!(tx.outputs[0].address, decode_addr(&b));
    r.node.mine(1);
    assert_eq!(r.balance("a.wallet"), (0, 0, 0));
    assert_eq!(r.balance("b.wallet").0, 2 * subsidy - fee);
    // Nothing left to sweep.
    assert!(r.err("a.wallet", &["sweep", "--to", &b]).contains("insufficient"));
    // A coin worth less than its fee and the dust limit is refused, file untouched.
    r.ok("c.wallet", &["new"]);
    let c = r.address("c.wallet");
    r.ok("b.wallet", &["send", "--to", &c, "--amount", "0.00000300", "--fee-rate", "1"]);
    r.node.mine(1);
    let before = bytes(&r.path("c.wallet"));
    let e = r.err("c.wallet", &["sweep", "--to", &b, "--fee-rate", "1"]);
    assert!(e.contains("amount too small after the fee"), "{e}");
    assert_eq!(bytes(&r.path("c.wallet")), before);
    assert!(r.err("c.wallet", &["sweep", "--to", "nonsense"]).contains("mistyped"));
}

#[test]
fn bumpfee_replaces_a_stuck_payment_and_history_says_replaced() {
    let r = Rig::new();
    let b = r.payer_and_payee();
    let stuck = r.ok("a.wallet", &["send", "--to", &b, "--amount", "1", "--fee-rate", "1"]);
    let old = fake_tx(&r, &stuck["txid"]);
    let old_id = stuck["txid"].as_str().unwrap().to_string();

    // Refused before signing, the file untouched.
    let before = bytes(&r.path("a.wallet"));
    for (args, why) in [
        (vec!["bumpfee", "xyz"], "not a transaction id"),
        (vec!["bumpfee", &"ab".repeat(32)], "unknown transaction"),
        (vec!["bumpfee", &old_id, "--fee-rate", "1"], "not higher"),
        (vec!["bumpfee", &old_id, "--fee-rate", "0"], "at least 1"),
    ] {
        let e = r.err("a.wallet", &args);
        assert!(e.contains(why), "{args:?}: {e}");
        assert_eq!(bytes(&r.path("a.wallet")), before, "{args:?} changed the wallet file");
    }
    let e = r.err("b.wallet", &["bumpfee", &old_id]);
    assert!(e.contains("not a payment of this wallet"), "{e}");
    assert_eq!(r.node.state.lock().unwrap().mempool().len(), 1);

    let bumped = r.ok("a.wallet", &["bumpfee", &old_id, "--fee-rate", "5", "--yes"]);
    assert_eq!(bumped["replaces"], json!(old_id));
    let new = fake_tx(&r, &bumped["txid"]);
    let size = new.encoded_size() as u64;
    assert_eq!((bumped["fee"].as_u64(), bumped["size"].as_u64()), (Some(5 * size), Some(size)));
    assert_eq!(new.inputs.iter().map(|i| i.prevout).collect::<Vec<_>>(), vec![old.inputs[0].prevout], "same input");
    let payment = |t: &lode_core::Transaction| t.outputs.iter().find(|o| o.address == decode_addr(&b)).map(|o| o.value);
    assert_eq!(payment(&new), payment(&old), "the payment is unchanged");
    let change =
        |t: &lode_core::Transaction| t.outputs.iter().find(|o| o.address != decode_addr(&b)).unwrap().value.units();
    assert_eq!(
        change(&old) - change(&new),
        5 * size - stuck["fee"].as_u64().unwrap(),
        "the change pays the difference"
    );
    assert_eq!(r.node.state.lock().unwrap().mempool(), vec![new.txid()], "the original is gone");

    let h = r.ok("a.wallet", &["history"]);
    let rows = h.as_array().unwrap();
    let dirs: Vec<&str> = rows.iter().map(|r| r["direction"].as_str().unwrap()).collect();
    assert_eq!(dirs, vec!["mined", "replaced", "sent"], "{h}");
    assert_eq!(
        (rows[1]["txid"].as_str(), rows[1]["replaced_by"].as_str()),
        (Some(old_id.as_str()), bumped["txid"].as_str())
    );
    assert_eq!(rows[1]["amount"], -100_000_000i64);
    r.node.mine(1);
    assert_eq!(r.balance("b.wallet").0, 100_000_000);
    let e = r.err("a.wallet", &["bumpfee", bumped["txid"].as_str().unwrap()]);
    assert!(e.contains("already confirmed"), "{e}");
    let h = r.ok("a.wallet", &["history"]);
    assert_eq!(h.as_array().unwrap().iter().filter(|r| r["direction"] == "replaced").count(), 1);
}

#[test]
fn bumpfee_adds_a_confirmed_coin_when_the_payment_had_no_change() {
    let r = Rig::new();
    let a = r.funded("a.wallet");
    r.node.mine_to(1, &a);
    r.node.mine(r.spec.coinbase_maturity);
    r.ok("b.wallet", &["new"]);
    let b = r.address("b.wallet");
    // Exactly one coin minus its one-output fee: no change output.
    let amount = r.spec.initial_subsidy.units() - crate::select::tx_size(1, 1);
    let text = Amount::from_units(amount).to_string();
    let sent = r.ok("a.wallet", &["send", "--to", &b, "--amount", &text, "--fee-rate", "1"]);
    assert_eq!(sent["change"], 0);
    let old = fake_tx(&r, &sent["txid"]);
    // Without --fee-rate: the estimate (none yet) raised to what a
    // replacement must pay.
    let bumped = r.ok("a.wallet", &["bumpfee", sent["txid"].as_str().unwrap()]);
    let new = fake_tx(&r, &bumped["txid"]);
    assert_eq!(new.inputs.len(), 2, "a second coin joined");
    assert!(new.inputs.iter().any(|i| i.prevout == old.inputs[0].prevout));
    assert_eq!(new.outputs.len(), 2, "payment and new change");
    r.node.mine(1);
    assert_eq!(r.balance("b.wallet").0, amount);
}

#[test]
fn bip39_passphrase_vectors_restore_and_later_commands_keep_it() {
    let r = Rig::new();
    let env = |bip39: Option<&str>| Env {
        passphrase: Some(PASS.into()),
        data_home: None,
        stdin_tty: false,
        bip39_passphrase: bip39.map(str::to_string),
    };
    for (i, (words, seed)) in crate::keys::TREZOR_VECTORS.iter().enumerate() {
        let name = format!("v{i}.wallet");
        let out = r.run_env(&name, &env(Some("TREZOR")), &["restore", "--words", words]).unwrap().json;
        let seed: [u8; 64] = hex::decode(seed).unwrap().try_into().unwrap();
        let keys = crate::keys::Keychain::from_seed(&seed, crate::keys::DEFAULT_ACCOUNT_PATH).unwrap();
        let expected = keys.address(Branch::Receive, 0).unwrap().encode("lrt").unwrap();
        assert_eq!(out["address"], json!(expected), "{words}");
        assert_eq!(out["bip39_passphrase"], true);
        // Later commands derive the same keys without the variable.
        assert_eq!(r.ok(&name, &["address"])["address"], json!(expected));
        // The same words without the passphrase are another wallet.
        let plain = r.ok(&format!("p{i}.wallet"), &["restore", "--words", words]);
        assert_ne!(plain["address"], json!(expected));
        assert_eq!(plain["bip39_passphrase"], false);
    }
    // Coins at a passphrase wallet are found by its restore, not by the plain one.
    let created = r.run_env("n.wallet", &env(Some("hunter2")), &["new", "--word-count", "12"]).unwrap().json;
    let words = created["mnemonic"].as_str().unwrap().to_string();
    r.node.mine_to(1, created["address"].as_str().unwrap());
    r.node.mine(r.spec.coinbase_maturity);
    let subsidy = r.spec.initial_subsidy.units();
    r.run_env("n2.wallet", &env(Some("hunter2")), &["restore", "--words", &words]).unwrap();
    assert_eq!(r.balance("n2.wallet").0, subsidy);
    r.ok("n3.wallet", &["restore", "--words", &words]);
    assert_eq!(r.balance("n3.wallet").0, 0);
}

// The wallet rebuilt a replacement's payments from the node's verbose
// description: a lying node named its own address there and the wallet
// signed a payment to it.
#[test]
fn bumpfee_pays_the_originals_recipients_whatever_the_node_describes() {
    let r = Rig::new();
    let b = r.payer_and_payee();
    let thief = lode_core::Address([0x66; 20]).encode(&r.spec.address_prefix).unwrap();
    let stuck = r.ok("a.wallet", &["send", "--to", &b, "--amount", "1", "--fee-rate", "1"]);
    let old = fake_tx(&r, &stuck["txid"]);
    let (b_text, thief_text) = (b.clone(), thief.clone());
    r.node.state.lock().unwrap().lie_about(
        "getrawtransaction",
        Box::new(move |v| {
            if !v.is_object() {
                return;
            }
            for o in v["outputs"].as_array_mut().into_iter().flatten() {
                if o["address"] == json!(b_text) {
                    o["address"] = json!(thief_text);
                }
            }
        }),
    );
    let bumped = r.ok("a.wallet", &["bumpfee", stuck["txid"].as_str().unwrap(), "--fee-rate", "5", "--yes"]);
    let new = fake_tx(&r, &bumped["txid"]);
    let paid_to = |t: &lode_core::Transaction, a: &str| {
        t.outputs.iter().filter(|o| o.address == decode_addr(a)).map(|o| o.value.units()).sum::<u64>()
    };
    assert_eq!(paid_to(&new, &thief), 0, "nothing to the node's address");
    assert_eq!(paid_to(&new, &b), paid_to(&old, &b), "the original recipient is paid as before");
}

// The replacement's floor came from the node's word for the original's
// fee: a node claiming 50 coins made the wallet pay more than that.
#[test]
fn bumpfee_works_out_the_originals_fee_itself() {
    let r = Rig::new();
    let b = r.payer_and_payee();
    let stuck = r.ok("a.wallet", &["send", "--to", &b, "--amount", "1", "--fee-rate", "1"]);
    r.node.state.lock().unwrap().lie_about("getmempoolentry", Box::new(|v| v["fee"] = json!(5_000_000_000u64)));
    let bumped = r.ok("a.wallet", &["bumpfee", stuck["txid"].as_str().unwrap(), "--fee-rate", "5", "--yes"]);
    let size = bumped["size"].as_u64().unwrap();
    assert_eq!(bumped["fee"].as_u64(), Some(5 * size), "{bumped}");
    assert_eq!(bumped["old_fee"], stuck["fee"], "{bumped}");
}

// Without an estimate the rate followed the node's minimum, uncapped: a
// node asking 30,000,000 per byte took most of a coin in fees.
#[test]
fn a_node_asking_an_absurd_minimum_fee_rate_is_refused_before_signing() {
    let r = Rig::new();
    let b = r.payer_and_payee();
    r.node.state.lock().unwrap().set_min_fee_rate(30_000_000);
    let before = bytes(&r.path("a.wallet"));
    for args in [vec!["send", "--to", &b, "--amount", "1", "--yes"], vec!["sweep", "--to", &b, "--yes"]] {
        let e = r.err("a.wallet", &args);
        assert!(e.contains("above the wallet's ceiling"), "{args:?}: {e}");
    }
    assert_eq!(bytes(&r.path("a.wallet")), before);
    assert!(r.node.state.lock().unwrap().mempool().is_empty(), "nothing was sent");
}

// A wallet restored from its words has no copy of its pending payment: the
// original comes from the node's raw hex, which must hash to the id asked
// (a node rewriting a recipient there is caught).
#[test]
fn bumpfee_of_a_restored_wallet_refuses_raw_bytes_that_are_not_the_original() {
    use lode_core::codec::{Decode, Encode};
    let r = Rig::new();
    let words = r.ok("a.wallet", &["new"])["mnemonic"].as_str().unwrap().to_string();
    let a = r.address("a.wallet");
    r.node.mine_to(1, &a);
    r.node.mine(r.spec.coinbase_maturity);
    r.ok("b.wallet", &["new"]);
    let b = r.address("b.wallet");
    let stuck = r.ok("a.wallet", &["send", "--to", &b, "--amount", "1", "--fee-rate", "1"]);
    r.ok("r.wallet", &["restore", "--words", &words]);
    r.node.state.lock().unwrap().lie_about(
        "getrawtransaction",
        Box::new(|v| {
            let Some(bytes) = v.as_str().and_then(|h| hex::decode(h).ok()) else { return };
            let Ok(mut tx) = lode_core::Transaction::decode_all(&bytes, 1 << 20) else { return };
            tx.outputs[0].address = lode_core::Address([0x66; 20]);
            *v = json!(hex::encode(tx.encode()));
        }),
    );
    let e = r.err("r.wallet", &["bumpfee", stuck["txid"].as_str().unwrap(), "--fee-rate", "5", "--yes"]);
    assert!(e.contains("answered another transaction"), "{e}");
    assert_eq!(r.node.state.lock().unwrap().mempool().len(), 1, "nothing was replaced");
}

// Amounts from a lying node were summed unchecked: coins worth u64::MAX (or
// many worth MAX_MONEY) overflowed the sums (a panic) or were trusted.
#[test]
fn a_node_reporting_more_money_than_exists_is_refused() {
    let r = Rig::new();
    let a0 = r.funded("a.wallet");
    let max = lode_core::MAX_MONEY.units();
    let lie = |method: &str, f: Box<dyn Fn(&mut Value) + Send>| r.node.state.lock().unwrap().lie_about(method, f);
    let before = bytes(&r.path("a.wallet"));
    let refused = |args: &[&str], why: &str| {
        let e = r.err("a.wallet", args);
        assert!(e.contains("MAX_MONEY") && e.contains(why), "{args:?}: {e}");
    };
    let pay = ["send", "--to", &a0, "--amount", "1", "--yes"];
    // One coin above MAX_MONEY.
    lie(
        "listunspent",
        Box::new(|v| {
            if let Some(c) = v.get_mut(0) {
                c["amount"] = json!(u64::MAX);
            }
        }),
    );
    refused(&pay, "is above");
    refused(&["sweep", "--to", &a0, "--yes"], "is above");
    // Many coins, each possible, together more than exists (past u64::MAX).
    lie(
        "listunspent",
        Box::new(move |v| {
            let Some(first) = v.get(0).cloned() else { return };
            *v = json!((0..9000)
                .map(|i| {
                    let mut c = first.clone();
                    c["vout"] = json!(i);
                    c["amount"] = json!(max);
                    c
                })
                .collect::<Vec<_>>());
        }),
    );
    refused(&pay, "add up to more than");
    refused(&["sweep", "--to", &a0, "--yes"], "add up to more than");
    assert_eq!(bytes(&r.path("a.wallet")), before, "nothing was written");
    assert!(r.node.state.lock().unwrap().mempool().is_empty(), "nothing was sent");

    // Balances: one address's figure, and the sum over two addresses.
    let a1 = r.ok("a.wallet", &["address", "--new"])["address"].as_str().unwrap().to_string();
    r.node.mine_to(1, &a1);
    lie("getbalance", Box::new(|v| v["confirmed"] = json!(u64::MAX)));
    refused(&["balance"], "is above");
    lie("getbalance", Box::new(move |v| v["confirmed"] = json!(max)));
    refused(&["balance"], "confirmed balances add up to more than");
    lie("getbalance", Box::new(move |v| v["unconfirmed"] = json!(-(max as i64))));
    refused(&["balance"], "unconfirmed balances add up to more than");
    lie("getbalance", Box::new(|v| v["unconfirmed"] = json!(i64::MIN)));
    refused(&["balance"], "is above");

    // History and bumpfee read verbose transactions.
    let stuck = r.ok("a.wallet", &["send", "--to", &a0, "--amount", "1", "--fee-rate", "1", "--yes"]);
    // Every amount of one list ("inputs" or "outputs") of the verbose answer
    // (an object; the raw hex is left alone) becomes u64::MAX.
    let inflate = |list: &'static str| {
        lie(
            "getrawtransaction",
            Box::new(move |v| {
                if v.is_object() {
                    for e in v[list].as_array_mut().into_iter().flatten() {
                        e["amount"] = json!(u64::MAX);
                    }
                }
            }),
        )
    };
    inflate("outputs");
    refused(&["history"], "is above");
    inflate("inputs");
    refused(&["bumpfee", stuck["txid"].as_str().unwrap(), "--fee-rate", "5", "--yes"], "is above");
    assert_eq!(r.node.state.lock().unwrap().mempool().len(), 1, "nothing was replaced");
}

// `--timeout 18446744073709551615` overflowed `Instant + Duration` (a panic
// after the payment was sent): such a timeout now waits without a deadline.
#[test]
fn a_wait_timeout_too_large_for_the_clock_waits_without_a_deadline() {
    let r = Rig::new();
    let a = r.funded("a.wallet");
    let state = r.node.state.clone();
    // Mines once the payment arrives, however late: the wallet under test
    // waits without a deadline, so a miner that gave up would hang it.
    let miner = std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        let mut s = state.lock().unwrap();
        if !s.mempool().is_empty() {
            s.mine(1, &lode_core::Address([1; 20]));
            return;
        }
    });
    let huge = u64::MAX.to_string();
    let sent = r.ok("a.wallet", &["send", "--to", &a, "--amount", "1", "--wait", "--timeout", &huge]);
    miner.join().unwrap();
    assert_eq!(sent["confirmations"], 1, "{sent}");
}

// The words were only read from the command line (ps, shell history) or,
// without --words, from standard input; `--words -` was taken as a word.
#[test]
fn restore_reads_the_words_from_standard_input() {
    let r = Rig::new();
    let created = r.ok("a.wallet", &["new"]);
    let words = created["mnemonic"].as_str().unwrap().to_string();
    let piped = format!("{words}\n");
    let out = r.run_input("r1.wallet", &["restore", "--words", "-"], &piped).unwrap();
    assert_eq!(out.json["address"], created["address"]);
    let out = r.run_input("r2.wallet", &["restore"], &piped).unwrap();
    assert_eq!(out.json["address"], created["address"]);
    let e = r.run_input("r3.wallet", &["restore", "--words", "-"], " \n").unwrap_err().to_string();
    assert!(e.contains("no mnemonic words given"), "{e}");
    assert!(!r.path("r3.wallet").exists());
    // The flag still takes the words themselves (with a warning on stderr).
    let out = r.run_input("r4.wallet", &["restore", "--words", &words], "").unwrap();
    assert_eq!(out.json["address"], created["address"]);
    assert!(WORDS_ON_COMMAND_LINE.contains("--words -"));
}

#[test]
fn a_chain_spec_path_naming_an_endless_device_is_refused_past_the_cap() {
    let err = crate::bounded::within_deadline(|| load_spec("/dev/zero").map(|_| ()).map_err(|e| e.to_string()));
    let err = err.expect_err("/dev/zero is no chain spec");
    assert!(err.contains("larger than 1048576 bytes"), "{err}");
}
