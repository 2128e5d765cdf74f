//! The block explorer (`--explorer-port`) of a running regtest node: every
//! JSON API route with its error cases, every page with HTML escaping of
//! what a visitor types, the live event stream, and a real browser
//! (headless Chromium) rendering the home, block, transaction and address
//! pages, with screenshots under `$CARGO_TARGET_DIR/explorer-screenshots`.

use lode_core::{ChainSpec, COIN};
use lode_tests::{free_port, NodeOptions, TestKey, TestNode};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A node with its explorer on a free port.
fn start(extra: &[&str]) -> (TestNode, u16) {
    let port = free_port();
    let mut args = vec!["--explorer-port".to_string(), port.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    (TestNode::start(NodeOptions { args, ..Default::default() }), port)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client")
}

/// An answer: status, content type, body, and the URL after redirects.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
    url: String,
    headers: reqwest::header::HeaderMap,
}

fn get(port: u16, path: &str) -> Answer {
    let resp = client().get(format!("http://127.0.0.1:{port}{path}")).send().expect("explorer answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let url = resp.url().to_string();
    let body = resp.text().expect("body");
    Answer { status, content_type, body, url, headers }
}

/// A JSON route that must answer 200.
fn api(port: u16, path: &str) -> Value {
    let a = get(port, path);
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    assert!(a.content_type.starts_with("application/json"), "{path}: {}", a.content_type);
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", a.body))
}

/// A JSON route that must fail with `status` and a JSON error body.
fn api_error(port: u16, path: &str, status: u16) -> String {
    let a = get(port, path);
    assert_eq!(a.status, status, "{path}: {}", a.body);
    let v: Value = serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", a.body));
    v["error"].as_str().unwrap_or_else(|| panic!("{path}: no error message: {}", a.body)).to_string()
}

/// A page that must answer 200 with HTML.
fn page(port: u16, path: &str) -> Answer {
    let a = get(port, path);
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    assert!(a.content_type.starts_with("text/html"), "{path}: {}", a.content_type);
    a
}

/// What the tests look at: a chain of 15 blocks paying Alice, a payment
/// of 10 coins to Bob in the mempool (`confirm`: then mined in block 16).
struct Scene {
    alice: TestKey,
    bob: TestKey,
    payment: String,
}

fn scene(node: &TestNode, confirm: bool) -> Scene {
    let alice = TestKey::new();
    let bob = TestKey::new();
    node.rpc("generatetoaddress", json!([15, alice.text]));
    let coins = alice.coins(node);
    let (payment, hex) = alice.pay(&coins[0], &bob.address, 10 * COIN, 10_000);
    assert_eq!(node.rpc("sendrawtransaction", json!([hex])), json!(payment));
    if confirm {
        node.rpc("generatetoaddress", json!([1, alice.text]));
    }
    Scene { alice, bob, payment }
}

#[test]
fn json_api_follows_esplora_with_errors_as_json() {
    let (node, port) = start(&[]);
    let s = scene(&node, false);
    let info = node.rpc("getblockchaininfo", json!([]));
    let tip = info["best_hash"].as_str().expect("tip").to_string();
    let subsidy = ChainSpec::regtest().initial_subsidy.units();

    // Tip, as plain text like Esplora.
    assert_eq!(get(port, "/api/blocks/tip/height").body, "15");
    assert_eq!(get(port, "/api/blocks/tip/hash").body, tip);
    // Block lists: 10 per page, newest first.
    let blocks = api(port, "/api/blocks");
    let heights: Vec<u64> = blocks.as_array().expect("array").iter().map(|b| b["height"].as_u64().unwrap()).collect();
    assert_eq!(heights, (6..=15).rev().collect::<Vec<_>>());
    assert_eq!(blocks[0]["id"], json!(tip));
    let low = api(port, "/api/blocks/3");
    assert_eq!(low.as_array().unwrap().iter().map(|b| b["height"].as_u64().unwrap()).collect::<Vec<_>>(), [3, 2, 1, 0]);
    api_error(port, "/api/blocks/three", 400);
    // One block.
    let b = api(port, &format!("/api/block/{tip}"));
    assert_eq!((b["height"].as_u64(), b["tx_count"].as_u64()), (Some(15), Some(1)));
    assert_eq!(b["previousblockhash"], node.rpc("getblockhash", json!([14])));
    assert!(b["size"].as_u64().unwrap() > 80 && b["timestamp"].as_u64().unwrap() > 0, "{b}");
    assert_eq!(api(port, &format!("/api/block/{tip}/status"))["in_best_chain"], json!(true));
    let txs = api(port, &format!("/api/block/{tip}/txs"));
    assert_eq!(txs[0]["vin"][0]["is_coinbase"], json!(true));
    assert_eq!(txs[0]["vout"][0]["scriptpubkey_address"], json!(s.alice.text));
    assert_eq!(txs[0]["vout"][0]["value"], json!(subsidy));
    assert_eq!(txs[0]["status"]["block_height"], json!(15));
    assert_eq!(api(port, &format!("/api/block/{tip}/txs/0")), txs);
    api_error(port, &format!("/api/block/{tip}/txs/3"), 400);
    assert!(api_error(port, "/api/block/xyz", 400).contains("64 hex"));
    api_error(port, &format!("/api/block/{}", "ff".repeat(32)), 404);
    api_error(port, &format!("/api/block/{}/txs", "ff".repeat(32)), 404);
    // Heights.
    assert_eq!(get(port, "/api/block-height/5").body, node.rpc("getblockhash", json!([5])).as_str().unwrap());
    api_error(port, "/api/block-height/999", 404);
    api_error(port, "/api/block-height/-1", 400);

    // The payment, unconfirmed.
    let tx = api(port, &format!("/api/tx/{}", s.payment));
    assert_eq!(tx["status"], json!({"confirmed": false}));
    assert_eq!(tx["fee"], json!(10_000));
    assert_eq!(tx["vin"][0]["prevout"]["scriptpubkey_address"], json!(s.alice.text));
    assert_eq!(tx["vin"][0]["prevout"]["value"], json!(subsidy));
    assert_eq!(tx["vout"][0], json!({"scriptpubkey_address": s.bob.text, "value": 10 * COIN}));
    assert_eq!(api(port, &format!("/api/tx/{}/status", s.payment)), json!({"confirmed": false}));
    assert!(api_error(port, "/api/tx/not-a-txid", 400).contains("transaction id"));
    api_error(port, &format!("/api/tx/{}", "00".repeat(32)), 404);
    api_error(port, &format!("/api/tx/{}/status", "00".repeat(32)), 404);
    // Mempool.
    let pool = api(port, "/api/mempool");
    assert_eq!((pool["count"].as_u64(), pool["total_fee"].as_u64()), (Some(1), Some(10_000)));
    assert!(pool["vsize"].as_u64().unwrap() > 0);
    assert_eq!(pool["fee_histogram"].as_array().map(Vec::len), Some(1), "{pool}");
    assert_eq!(api(port, "/api/mempool/recent")[0]["txid"], json!(s.payment));
    assert_eq!(api(port, "/api/mempool/txids"), json!([s.payment]));
    // Addresses, with the mempool's index.
    let bob = api(port, &format!("/api/address/{}", s.bob.text));
    assert_eq!(bob["chain_stats"]["tx_count"], json!(0));
    assert_eq!(bob["mempool_stats"]["funded_txo_sum"], json!(10 * COIN));
    let utxo = api(port, &format!("/api/address/{}/utxo", s.bob.text));
    assert_eq!(utxo[0]["value"], json!(10 * COIN));
    assert_eq!(utxo[0]["status"]["confirmed"], json!(false));
    let bob_txs = api(port, &format!("/api/address/{}/txs", s.bob.text));
    assert_eq!(bob_txs.as_array().map(Vec::len), Some(1));
    assert_eq!(bob_txs[0]["txid"], json!(s.payment));
    assert_eq!(api(port, &format!("/api/address/{}/txs/mempool", s.bob.text))[0]["txid"], json!(s.payment));
    api_error(port, "/api/address/not-an-address", 400);
    let devnet = lode_core::Address([7; 20]).encode("ldev").unwrap();
    assert!(api_error(port, &format!("/api/address/{devnet}/utxo"), 400).contains("address"));
    // Fee estimates: every Esplora target has a rate, and the source is named.
    let fees = get(port, "/api/fee-estimates");
    assert_eq!(fees.status, 200);
    assert!(fees.headers.get("x-fee-estimate-source").is_some());
    let fees: Value = serde_json::from_str(&fees.body).unwrap();
    for target in ["1", "2", "6", "25", "144", "1008"] {
        assert!(fees[target].as_f64().is_some_and(|r| r >= 1.0), "{target}: {fees}");
    }
    // Unknown routes and CORS for the testnet view.
    assert_eq!(api_error(port, "/api/nonsense", 404), "no such API route");
    assert_eq!(get(port, "/api/mempool").headers.get("access-control-allow-origin").unwrap(), "*");
    let status = api(port, "/api/node/status");
    assert_eq!((status["height"].as_u64(), status["chain"].as_str()), (Some(15), Some("regtest")));

    // Mined: confirmed everywhere.
    let mined = node.rpc("generatetoaddress", json!([1, s.alice.text]));
    let block16 = mined[0].as_str().unwrap();
    let st = api(port, &format!("/api/tx/{}/status", s.payment));
    assert_eq!((st["confirmed"].as_bool(), st["block_height"].as_u64()), (Some(true), Some(16)));
    assert_eq!(st["block_hash"], json!(block16));
    assert_eq!(api(port, &format!("/api/tx/{}", s.payment))["fee"], json!(10_000));
    assert_eq!(api(port, &format!("/api/block/{block16}"))["tx_count"], json!(2));
    let bob = api(port, &format!("/api/address/{}", s.bob.text));
    assert_eq!(bob["chain_stats"]["tx_count"], json!(1));
    assert_eq!(bob["chain_stats"]["funded_txo_sum"], json!(10 * COIN));
    assert_eq!(bob["chain_stats"]["spent_txo_sum"], json!(0));
    assert_eq!(bob["mempool_stats"]["tx_count"], json!(0));
    assert_eq!(bob["balance"], json!(10 * COIN));
    assert_eq!(api(port, &format!("/api/address/{}/utxo", s.bob.text))[0]["status"]["block_height"], json!(16));
    let alice = api(port, &format!("/api/address/{}", s.alice.text));
    assert_eq!(alice["chain_stats"]["tx_count"], json!(17), "16 coinbases and the payment: {alice}");
    assert_eq!(alice["chain_stats"]["spent_txo_sum"], json!(subsidy));
    let outspends = api(port, &format!("/api/tx/{}/outspends", s.payment));
    assert_eq!(outspends[0], json!({"spent": false}));
    let alice_chain = api(port, &format!("/api/address/{}/txs/chain", s.alice.text));
    assert_eq!(alice_chain.as_array().map(Vec::len), Some(17));
    assert_eq!(alice_chain[0]["status"]["block_height"], json!(16));
    let last = alice_chain[16]["txid"].as_str().unwrap();
    assert_eq!(api(port, &format!("/api/address/{}/txs/chain/{last}", s.alice.text)), json!([]));
    assert_eq!(api(port, "/api/mempool")["count"], json!(0));
}

#[test]
fn live_events_announce_blocks_and_transactions() {
    let (node, port) = start(&["--no-p2p"]);
    let alice = TestKey::new();
    node.rpc("generatetoaddress", json!([11, alice.text]));
    let mut stream = client().get(format!("http://127.0.0.1:{port}/api/events")).send().expect("event stream");
    assert_eq!(stream.status().as_u16(), 200);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let hashes = node.rpc("generatetoaddress", json!([1, alice.text]));
    let (txid, hex) = alice.pay(&alice.coins(&node)[0], &alice.address, COIN, 10_000);
    node.rpc("sendrawtransaction", json!([hex]));
    let want = [format!("\"hash\":\"{}\"", hashes[0].as_str().unwrap()), format!("\"txid\":\"{txid}\"")];
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while !want.iter().all(|w| seen.contains(w)) {
        assert!(Instant::now() < deadline, "events so far: {seen}");
        let n = stream.read(&mut buf).expect("read events");
        assert!(n > 0, "stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("event: block") && seen.contains("\"height\":12"), "{seen}");
    assert!(seen.contains("event: tx"), "{seen}");
}

#[test]
fn pages_render_chain_data_and_escape_what_visitors_type() {
    let (node, port) = start(&[]);
    let s = scene(&node, true);
    let tip = node.rpc("getblockchaininfo", json!([]))["best_hash"].as_str().unwrap().to_string();

    let home = page(port, "/");
    for want in ["Latest blocks", "Latest transactions", "<svg", "Difficulty", "Hash rate", &tip, &s.payment] {
        assert!(home.body.contains(want), "home lacks {want}");
    }
    let csp = home.headers.get("content-security-policy").expect("CSP").to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    // The only script is the embedded one.
    assert_eq!(home.body.matches("<script").count(), 1);
    assert!(home.body.contains("<script src=\"/static/live.js\""));
    let block = page(port, &format!("/block/{tip}"));
    for want in [tip.as_str(), "Block 16", s.payment.as_str(), s.bob.text.as_str(), "Transactions 1–2 of 2"] {
        assert!(block.body.contains(want), "block page lacks {want}");
    }
    // Heights redirect to the block's page.
    let by_height = page(port, "/block-height/16");
    assert!(by_height.url.ends_with(&format!("/block/{tip}")), "{}", by_height.url);
    let tx = page(port, &format!("/tx/{}", s.payment));
    for want in [s.payment.as_str(), s.alice.text.as_str(), s.bob.text.as_str(), ">10<", "Unspent", "1 confirmation<"] {
        assert!(tx.body.contains(want), "tx page lacks {want}");
    }
    let coinbase_spent = node.rpc("getrawtransaction", json!([s.payment, true]))["inputs"][0]["txid"].clone();
    let spent = page(port, &format!("/tx/{}", coinbase_spent.as_str().unwrap()));
    assert!(spent.body.contains("Coinbase transaction") && spent.body.contains(">Spent<"));
    let addr = page(port, &format!("/address/{}", s.bob.text));
    for want in [s.bob.text.as_str(), ">10<", s.payment.as_str(), "+10", "Unspent outputs (1)"] {
        assert!(addr.body.contains(want), "address page lacks {want}");
    }
    let blocks = page(port, "/blocks?start=12");
    assert!(blocks.body.contains(">12<") && blocks.body.contains(">3<") && !blocks.body.contains(">2<"));
    assert!(blocks.body.contains("/blocks?start=2") && blocks.body.contains("/blocks?start=16"), "pager");
    assert!(page(port, "/peers").body.contains("Peers"));
    let tips = page(port, "/tips");
    assert!(tips.body.contains("active") && tips.body.contains(&tip));
    for (asset, kind) in [("/static/style.css", "text/css"), ("/static/live.js", "text/javascript")] {
        let a = get(port, asset);
        assert_eq!(a.status, 200);
        assert!(a.content_type.starts_with(kind), "{asset}: {}", a.content_type);
    }

    // Search: height, hash, txid, address.
    assert!(page(port, "/search?q=16").url.ends_with(&format!("/block/{tip}")));
    assert!(page(port, &format!("/search?q={tip}")).url.ends_with(&format!("/block/{tip}")));
    assert!(page(port, &format!("/search?q={}", s.payment)).url.ends_with(&format!("/tx/{}", s.payment)));
    assert!(page(port, &format!("/search?q=+{}+", s.bob.text)).url.ends_with(&format!("/address/{}", s.bob.text)));
    // What a visitor types comes back escaped, never as markup.
    let evil = "<script>alert(1)</script>";
    let encoded = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    for path in [format!("/search?q={encoded}"), format!("/address/{encoded}")] {
        let a = get(port, &path);
        assert_eq!(a.status, 400, "{path}");
        assert!(a.content_type.starts_with("text/html"));
        assert!(!a.body.contains(evil), "{path} echoes markup: {}", a.body);
        assert!(a.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{path}: {}", a.body);
    }
    let quote = get(port, "/search?q=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E");
    assert!(!quote.body.contains("<img") && quote.body.contains("&quot;&gt;&lt;img"), "{}", quote.body);
    // Errors as pages: malformed 400, unknown 404.
    for (path, status) in [
        ("/block/zz".to_string(), 400),
        (format!("/block/{}", "ff".repeat(32)), 404),
        (format!("/tx/{}", "ab".repeat(32)), 404),
        ("/tx/123".to_string(), 400),
        ("/block-height/99999".to_string(), 404),
        (format!("/search?q={}", "ab".repeat(32)), 404),
        ("/search?q=".to_string(), 400),
        ("/no/such/page".to_string(), 404),
        ("/blocks?start=x".to_string(), 400),
        // A page past the end is an empty page, not an overflow (which
        // aborted the node: release builds check overflow).
        (format!("/block/{tip}?start={}", usize::MAX), 200),
        (format!("/address/{}?start={}", s.bob.text, usize::MAX), 200),
    ] {
        let a = get(port, &path);
        assert_eq!(a.status, status, "{path}: {}", a.body);
        assert!(a.content_type.starts_with("text/html"), "{path}");
    }
    assert_eq!(get(port, "/api/blocks/tip/height").status, 200, "the node still answers");
}

/// Chromium's binary, if installed.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// `$CARGO_TARGET_DIR/explorer-screenshots` (or beside the test binary's
/// profile folder when the variable is unset).
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("test binary");
        // target/<profile>/deps/explorer-…
        exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir)
    });
    target.join("explorer-screenshots")
}

/// Runs headless Chromium on `url` with `args`; stdout on success.
fn run_chromium(bin: &Path, profile: &Path, url: &str, args: &[String]) -> String {
    let out_file = profile.join("stdout.txt");
    let mut child = Command::new(bin)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"])
        .args(["--no-first-run", "--disable-extensions"])
        .arg(format!("--user-data-dir={}", profile.join("profile").display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).expect("stdout file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("run chromium");
    // A browser that hangs must not hang the suite.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium failed on {url}: {status}");
    std::fs::read_to_string(&out_file).unwrap_or_default()
}

#[test]
fn a_real_browser_renders_the_pages() {
    let Some(bin) = chromium() else {
        println!("SKIPPED a_real_browser_renders_the_pages: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let (node, port) = start(&[]);
    let s = scene(&node, true);
    // A second payment left unconfirmed, so the home page shows the mempool.
    let (pending, hex) = s.alice.pay(&s.alice.coins(&node)[0], &s.bob.address, 2 * COIN, 20_000);
    node.rpc("sendrawtransaction", json!([hex]));
    let tip = node.rpc("getblockchaininfo", json!([]))["best_hash"].as_str().unwrap().to_string();
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    let profile = tempfile::tempdir().expect("browser profile");
    let base = format!("http://127.0.0.1:{port}");
    let pages: [(&str, String, Vec<String>); 4] = [
        ("home", format!("{base}/"), vec![tip.clone(), ">16<".into(), pending.clone(), "<svg".into()]),
        ("block", format!("{base}/block/{tip}"), vec![tip.clone(), "Block 16".into(), s.payment.clone()]),
        ("transaction", format!("{base}/tx/{}", s.payment), vec![s.payment.clone(), ">10<".into(), s.bob.text.clone()]),
        ("address", format!("{base}/address/{}", s.bob.text), vec![s.bob.text.clone(), ">10<".into(), "+2".into()]),
    ];
    for (name, url, wants) in &pages {
        let dom = run_chromium(&bin, profile.path(), url, &["--dump-dom".into()]);
        for want in wants {
            assert!(dom.contains(want.as_str()), "{name} page's DOM lacks {want}");
        }
        let shot = dir.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&shot);
        run_chromium(
            &bin,
            profile.path(),
            url,
            &[format!("--screenshot={}", shot.display()), "--window-size=1280,900".into()],
        );
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{name}: screenshot {} has {size} bytes", shot.display());
        println!("screenshot: {}", shot.display());
    }
}
