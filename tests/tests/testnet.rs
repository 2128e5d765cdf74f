//! `lode-testnet` end to end: three devnet nodes in a temporary folder mine
//! and converge, the wallet commands it prints work as printed, Ctrl-C
//! (SIGINT to its whole process group, as a terminal sends it) stops every
//! node cleanly, and a second run on the same folder continues the chain
//! and stops cleanly on a SIGINT to `lode-testnet` alone.

use lode_core::ChainSpec;
use lode_tests::{bin, free_base_port, is_bind_failure, wait_for, Rpc};
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const NODES: usize = 3;

/// A running `lode-testnet` in its own process group, with its output in
/// files; the whole group is killed if the test ends before it exits.
struct Testnet {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    nodes: Vec<Rpc>,
    exited: Option<ExitStatus>,
}

impl Testnet {
    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    fn signal(&self, target: &str) {
        let ok = Command::new("kill").args(["-s", "INT", "--", target]).status().expect("run kill");
        assert!(ok.success(), "kill -s INT {target}");
    }

    /// Waits for the exit after a SIGINT; asserts it was clean.
    fn wait_clean_exit(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.exited() {
                break s;
            }
            assert!(Instant::now() < deadline, "lode-testnet did not exit within 60 s of {what}");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "lode-testnet exited with {status} after {what}:\n{}", self.stderr());
        assert!(self.stdout().contains("all nodes stopped"), "{}", self.stdout());
    }

    fn heights(&self) -> Option<Vec<(u64, String)>> {
        self.nodes
            .iter()
            .map(|n| {
                let info = n.call("getblockchaininfo", json!([])).ok()?;
                Some((info["height"].as_u64()?, info["best_hash"].as_str()?.to_string()))
            })
            .collect()
    }

    /// Waits until every node is above `height` and all share one tip;
    /// returns that height.
    fn wait_converged_above(&mut self, height: u64, what: &str) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            if let Some(status) = self.exited() {
                panic!("lode-testnet exited ({status}) while waiting for {what}:\n{}", self.stderr());
            }
            if let Some(h) = self.heights() {
                if h.iter().all(|(n, tip)| *n > height && *tip == h[0].1) {
                    return h[0].0;
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {:?}", self.heights());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", self.child.id())]).status();
            let _ = self.child.wait();
        }
    }
}

/// Starts `lode-testnet` on `dir` and waits for every node's RPC; starts
/// again on other ports if one was taken meanwhile.
fn start(dir: &Path, logs: &Path, run: &str) -> Testnet {
    for attempt in 1..=5 {
        let base = free_base_port(NODES);
        let (out, err) = (logs.join(format!("{run}-{attempt}.out")), logs.join(format!("{run}-{attempt}.err")));
        let child = Command::new(bin("lode-testnet"))
            .args(["--nodes", &NODES.to_string(), "--miners", "2", "--base-port", &base.to_string(), "--dir"])
            .arg(dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("spawn lode-testnet");
        let nodes = (0..NODES).map(|i| Rpc::new(&dir.join(format!("node{i}")), base + 10 * i as u16)).collect();
        let mut net = Testnet { child, out, err, nodes, exited: None };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = net.exited() {
                let err = net.stderr();
                assert!(is_bind_failure(&err), "lode-testnet exited at start ({status}):\n{err}");
                eprintln!("attempt {attempt}: a port was taken, trying others:\n{err}");
                break;
            }
            if net.heights().is_some() && net.stdout().contains("Ctrl-C stops every node") {
                return net;
            }
            assert!(Instant::now() < deadline, "lode-testnet did not start within 120 s:\n{}", net.stderr());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("lode-testnet could not find free ports in 5 attempts");
}

/// Runs a command line exactly as printed (through `sh -c`), killing it
/// after `timeout`; returns whether it succeeded and its output.
fn run_printed(line: &str, timeout: Duration) -> (bool, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sh");
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (false, format!("still running after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn lode_testnet_mines_converges_stops_cleanly_and_continues_the_chain() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("testnet dir");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");

    // First run: mines and converges; the printed wallet command works.
    let mut net = start(&dir, &logs, "first");
    let out = net.stdout();
    assert!(out.contains("Created the miners' wallet"), "{out}");
    let first = net.wait_converged_above(2, "three converged nodes above height 2");
    let balance = out.lines().map(str::trim).find(|l| l.ends_with(" balance")).expect("a balance command");
    let (ok, text) = run_printed(balance, Duration::from_secs(60));
    assert!(ok && text.contains("confirmed") && text.contains("immature"), "`{balance}`: {text}");
    let first_out = out;
    let wallet = std::fs::read(dir.join("wallet.json")).expect("the miners' wallet");

    // Ctrl-C in a terminal: SIGINT to the whole process group.
    net.signal(&format!("-{}", net.child.id()));
    net.wait_clean_exit("SIGINT to its process group");
    for i in 0..NODES {
        assert!(!dir.join(format!("node{i}/.cookie")).exists(), "node{i} did not remove its cookie: not a clean stop");
    }
    drop(net);

    // Second run on the same folder: the chain and the wallet carry on.
    let mut net = start(&dir, &logs, "second");
    let out = net.stdout();
    assert!(!out.contains("Created the miners' wallet"), "{out}");
    assert_eq!(std::fs::read(dir.join("wallet.json")).expect("wallet"), wallet, "the same wallet");
    let restarted = net.heights().expect("heights")[0].0;
    assert!(restarted >= first, "node0 restarted at height {restarted}, below the {first} it had reached");
    let later = net.wait_converged_above(restarted, "the chain to grow on the second run");
    assert!(later > first);

    // Once the miners have a mature reward, the printed send works as
    // printed, and the printed balance of the second wallet shows it.
    let addresses: Vec<&str> = first_out.lines().filter_map(|l| l.trim().strip_prefix("Receiving address: ")).collect();
    let [miners, friend] = addresses[..] else { panic!("two wallets created: {first_out}") };
    let maturity = u64::from(ChainSpec::devnet().coinbase_maturity);
    wait_for("a mature mining reward", Duration::from_secs(300), || {
        assert!(net.exited().is_none(), "lode-testnet exited:\n{}", net.stderr());
        let b = net.nodes[0].call("getbalance", json!([miners])).ok()?;
        (b["confirmed"].as_u64()? >= 200_000_000).then_some(())
    });
    assert!(net.nodes[0].call("getblockchaininfo", json!([])).expect("info")["height"].as_u64() >= Some(maturity));
    let send = out.lines().map(str::trim).find(|l| l.contains(" send --to ")).expect("a send command");
    assert!(send.contains(friend), "{send}");
    let (ok, text) = run_printed(send, Duration::from_secs(240));
    assert!(ok && text.contains("confirmed at height"), "`{send}`: {text}");
    let friend_balance = out.lines().map(str::trim).filter(|l| l.ends_with(" balance")).nth(1).expect("2nd balance");
    let (ok, text) = run_printed(friend_balance, Duration::from_secs(60));
    assert!(ok && text.contains("1.5"), "`{friend_balance}`: {text}");
    assert_eq!(net.nodes[0].call("getbalance", json!([friend])).expect("balance")["confirmed"], 150_000_000);

    // SIGINT to lode-testnet alone: it stops the nodes itself.
    net.signal(&net.child.id().to_string());
    net.wait_clean_exit("SIGINT to lode-testnet");
    for i in 0..NODES {
        assert!(!dir.join(format!("node{i}/.cookie")).exists(), "node{i} still has its cookie: not stopped cleanly");
    }
    eprintln!("lode-testnet: heights {first} then {restarted} -> {later}; {:.1}s", started.elapsed().as_secs_f64());
}
