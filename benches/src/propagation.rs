//! Block propagation over a mesh of real `lode-node` processes (issue 17):
//! the block's transactions are gossiped into every mempool first, then
//! one node publishes the block; timed until every node's tip is that
//! block, once with compact relay and once with `--no-compact-blocks`,
//! each round beside one cold in-process connect of the same block.

use crate::figures::{median, Report, Rounds};
use crate::import::{import_into, open_chain};
use crate::network::copy_dir;
use lode_core::codec::Encode;
use lode_core::{Block, ChainSpec};
use lode_node::chain::{BlockSource, ChainConfig, DEFAULT_SIG_CACHE_ENTRIES};
use lode_node::mempool::MempoolPolicy;
use lode_node::node::Node;
use lode_node::testkit::ChainBuilder;
use lode_tests::{free_port, wait_for, NodeOptions, TestNode};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// The seed the mesh's links are drawn with.
const MESH_SEED: u64 = 17;
/// The node that publishes every block.
const PUBLISHER: usize = 0;
/// Transactions per `sendrawtransactions` call, each call's gossip
/// awaited in every mempool before the next: the node's chain-event
/// channel holds 1,024 events, and a larger batch admitted at once makes
/// the p2p service lag and drop announcements (never re-sent).
const TX_CHUNK: usize = 500;
/// How often the nodes' tips are polled while a block travels: the
/// figure's resolution, kept coarse enough not to load the nodes.
const POLL: Duration = Duration::from_millis(5);

/// Sizes of one run.
struct Size {
    nodes: usize,
    /// Peers each node dials.
    dials: usize,
    /// Transactions per block.
    txs: usize,
    /// Blocks published (rounds).
    blocks: usize,
}

fn size(quick: bool) -> Size {
    if quick {
        // Four nodes dialling three each would be a full graph.
        Size { nodes: 4, dials: 1, txs: 200, blocks: 3 }
    } else {
        Size { nodes: 8, dials: 3, txs: 2000, blocks: 5 }
    }
}

/// Undirected adjacency lists (sorted) of `n` nodes from directed links.
fn adjacency(n: usize, links: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let mut adj = vec![BTreeSet::new(); n];
    for &(a, b) in links {
        adj[a].insert(b);
        adj[b].insert(a);
    }
    adj.into_iter().map(|s| s.into_iter().collect()).collect()
}

/// Hops from `from` to every node (`None`: unreachable).
fn hops(graph: &[Vec<usize>], from: usize) -> Vec<Option<usize>> {
    let mut hops = vec![None; graph.len()];
    hops[from] = Some(0);
    let mut queue = VecDeque::from([from]);
    while let Some(i) = queue.pop_front() {
        let h = hops[i].unwrap_or(0);
        for &j in &graph[i] {
            if hops[j].is_none() {
                hops[j] = Some(h + 1);
                queue.push_back(j);
            }
        }
    }
    hops
}

/// Most hops from `from` to any node; `None` when the graph is split.
fn eccentricity(graph: &[Vec<usize>], from: usize) -> Option<usize> {
    hops(graph, from).into_iter().try_fold(0, |m, h| h.map(|h| m.max(h)))
}

/// The largest eccentricity; `None` when the graph is split.
fn diameter(graph: &[Vec<usize>]) -> Option<usize> {
    (0..graph.len()).try_fold(0, |m, i| eccentricity(graph, i).map(|e| m.max(e)))
}

/// Links (dialler, dialled) where each of `n` nodes dials `k` others
/// drawn with `seed`, drawn again until the graph is connected and the
/// publisher is not everyone's neighbour (at least two hops to someone).
fn draw_mesh(n: usize, k: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..10_000 {
        let links: Vec<(usize, usize)> = (0..n)
            .flat_map(|i| {
                let others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
                sample(&mut rng, others.len(), k.min(others.len()))
                    .into_iter()
                    .map(move |x| (i, others[x]))
                    .collect::<Vec<_>>()
            })
            .collect();
        if eccentricity(&adjacency(n, &links), PUBLISHER).is_some_and(|e| e >= 2) {
            return links;
        }
    }
    panic!("no connected mesh of {n} nodes dialling {k} each with the publisher two hops from someone");
}

/// Each node's connections by node index, from `getpeerinfo`.
fn measured_graph(nodes: &[TestNode], ids: &HashMap<String, usize>) -> Vec<Vec<usize>> {
    nodes
        .iter()
        .map(|n| {
            let peers = n.rpc("getpeerinfo", json!([]));
            let set: BTreeSet<usize> = peers
                .as_array()
                .map(|a| a.iter().filter_map(|p| p["peer_id"].as_str().and_then(|id| ids.get(id).copied())).collect())
                .unwrap_or_default();
            set.into_iter().collect()
        })
        .collect()
}

/// The graph as both ends see it (a link one end has not registered yet
/// is missing).
fn symmetric(graph: &[Vec<usize>]) -> Vec<Vec<usize>> {
    graph.iter().enumerate().map(|(i, v)| v.iter().copied().filter(|&j| graph[j].contains(&i)).collect()).collect()
}

/// Block relay counters from a node's `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    compact_bytes: u64,
    full_bytes: u64,
    compact_blocks: u64,
    reconstructed: u64,
    txs_fetched: u64,
    fallbacks: u64,
    /// `lode_block_validation_seconds_sum` in µs: the node's time in
    /// `process_blocks` (connect, and the mempool following the tip).
    processing_us: u64,
}

impl Counters {
    fn since(&self, before: &Counters) -> Counters {
        Counters {
            compact_bytes: self.compact_bytes.saturating_sub(before.compact_bytes),
            full_bytes: self.full_bytes.saturating_sub(before.full_bytes),
            compact_blocks: self.compact_blocks.saturating_sub(before.compact_blocks),
            reconstructed: self.reconstructed.saturating_sub(before.reconstructed),
            txs_fetched: self.txs_fetched.saturating_sub(before.txs_fetched),
            fallbacks: self.fallbacks.saturating_sub(before.fallbacks),
            processing_us: self.processing_us.saturating_sub(before.processing_us),
        }
    }

    fn bytes(&self) -> u64 {
        self.compact_bytes + self.full_bytes
    }
}

fn scrape(node: &TestNode) -> Counters {
    let port = node.metrics_port.expect("nodes run with metrics");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("request metrics");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read metrics");
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    Counters {
        compact_bytes: get("lode_compact_bytes_received_total") as u64,
        full_bytes: get("lode_full_block_bytes_received_total") as u64,
        compact_blocks: get("lode_compact_blocks_received_total") as u64,
        reconstructed: get("lode_compact_reconstructed_total") as u64,
        txs_fetched: get("lode_compact_txs_fetched_total") as u64,
        fallbacks: get("lode_compact_fallbacks_total") as u64,
        processing_us: (get("lode_block_validation_seconds_sum") * 1e6).round() as u64,
    }
}

/// One network of nodes in the mesh, compact relay on or off.
struct Net {
    nodes: Vec<TestNode>,
    ids: HashMap<String, usize>,
}

impl Net {
    fn start(tmp: &Path, seed: &Path, label: &str, links: &[(usize, usize)], n: usize, compact: bool) -> Net {
        let mut args = vec!["--no-discovery".to_string()];
        if !compact {
            args.push("--no-compact-blocks".into());
        }
        let nodes: Vec<TestNode> = (0..n)
            .map(|i| {
                let d = tmp.join(format!("{label}{i}"));
                copy_dir(seed, &d);
                let opts = NodeOptions { args: args.clone(), metrics: true, ..Default::default() };
                TestNode::start_in(&d, opts, free_port(), free_port())
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(TestNode::p2p_addr).collect();
        for &(a, b) in links {
            nodes[a].rpc("addpeer", json!([addrs[b]]));
        }
        let ids: HashMap<String, usize> = nodes.iter().enumerate().map(|(i, n)| (n.peer_id(), i)).collect();
        let want = adjacency(n, links);
        wait_for(&format!("{label} mesh connected as dialled"), Duration::from_secs(60), || {
            (symmetric(&measured_graph(&nodes, &ids)) == want).then_some(())
        });
        Net { nodes, ids }
    }

    /// Gossips `block`'s transactions from `injector` into every mempool,
    /// then submits the block to the publisher: milliseconds until each
    /// node's tip is the block, the relay counters' changes and the
    /// graph measured just before.
    fn round(&self, block: &Block, injector: usize) -> (Vec<f64>, Vec<Counters>, Vec<Vec<usize>>) {
        let hexes: Vec<String> = block.transactions[1..].iter().map(|t| hex::encode(t.encode())).collect();
        let mempools = || -> Vec<u64> {
            self.nodes.iter().map(|n| n.rpc("getmempoolinfo", json!([]))["size"].as_u64().unwrap_or(0)).collect()
        };
        let filled = Instant::now();
        let mut sent = 0u64;
        for chunk in hexes.chunks(TX_CHUNK) {
            let results = self.nodes[injector].rpc("sendrawtransactions", json!([chunk]));
            let refused: Vec<&Value> =
                results.as_array().expect("an array").iter().filter(|r| r.get("txid").is_none()).collect();
            assert!(refused.is_empty(), "{} transactions refused, first: {}", refused.len(), refused[0]);
            sent += chunk.len() as u64;
            while mempools().iter().any(|&s| s != sent) {
                assert!(
                    filled.elapsed() < Duration::from_secs(120),
                    "mempools {:?} never all reached {sent} transactions",
                    mempools()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let graph = measured_graph(&self.nodes, &self.ids);
        // The relay gauges lag by up to a second: the last round's block
        // must be counted before this one starts.
        std::thread::sleep(Duration::from_millis(1100));
        let before: Vec<Counters> = self.nodes.iter().map(scrape).collect();
        let hash = block.hash().to_hex();
        let hex = hex::encode(block.encode());
        let start = Instant::now();
        let answer = self.nodes[PUBLISHER].rpc("submitblock", json!([hex]));
        assert!(answer.is_null(), "submitblock answered {answer}");
        let mut arrivals = vec![None; self.nodes.len()];
        while arrivals.iter().any(Option::is_none) {
            for (i, a) in arrivals.iter_mut().enumerate() {
                if a.is_none() && self.nodes[i].tip() == hash {
                    *a = Some(start.elapsed().as_secs_f64() * 1000.0);
                }
            }
            assert!(start.elapsed() < Duration::from_secs(300), "block never reached every node: {arrivals:?}");
            std::thread::sleep(POLL);
        }
        std::thread::sleep(Duration::from_millis(1100));
        let after: Vec<Counters> = self.nodes.iter().map(scrape).collect();
        let delta = after.iter().zip(&before).map(|(a, b)| a.since(b)).collect();
        (arrivals.into_iter().map(|a| a.unwrap_or(f64::NAN)).collect(), delta, graph)
    }
}

/// Connecting `block` on the chain in `dir` in process, with a fresh
/// signature cache of the node's size (ms; the flush after it untimed,
/// as a node's tip moves before its writes reach the disk).
fn cold_connect_ms(dir: &Path, block: &Block) -> f64 {
    let mut chain = open_chain(dir, DEFAULT_SIG_CACHE_ENTRIES);
    let start = Instant::now();
    let (results, _) = chain.accept_blocks(vec![block.clone()]);
    let t = start.elapsed().as_secs_f64() * 1000.0;
    for r in results {
        r.expect("the reference connects the block");
    }
    assert_eq!(chain.state().tip, block.hash(), "the reference connected the block");
    chain.flush().expect("flush");
    t
}

/// In-process times (ms) of `block` with all its transactions admitted
/// to a mempool first (signatures cached, as on every node of the mesh):
/// the chain's connect alone, and the node's whole `process_block`
/// (connect, then the mempool following the tip), each on its own copy
/// of the chain at the block's parent in `base`. Not a figure: where a
/// node's time goes.
fn warm_in_process_ms(base: &Path, scratch: &Path, block: &Block) -> (f64, f64) {
    let open = |name: &str| {
        let dir = scratch.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(base, &dir);
        let node = Node::open(&dir, ChainSpec::regtest(), ChainConfig::default(), MempoolPolicy::default())
            .expect("open the node's chain");
        for r in node.submit_transactions(block.transactions[1..].to_vec()) {
            r.expect("the block's transactions enter the mempool");
        }
        (node, dir)
    };
    let (node, dir) = open("warm_connect");
    let connect = {
        let mut chain = node.chain();
        let start = Instant::now();
        let (results, _) = chain.accept_blocks(vec![block.clone()]);
        let t = start.elapsed().as_secs_f64() * 1000.0;
        for r in results {
            r.expect("connects");
        }
        t
    };
    drop(node);
    let _ = std::fs::remove_dir_all(dir);
    let (node, dir) = open("warm_process");
    let start = Instant::now();
    node.process_block(block.clone(), BlockSource::Requested).expect("connects");
    let process = start.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(node.mempool().len(), 0, "the block emptied the mempool");
    drop(node);
    let _ = std::fs::remove_dir_all(dir);
    (connect, process)
}

/// Not a figure: with `LODE_WARM_LOOP=N` the section only opens N nodes
/// on copies of the chain at `block`'s parent, admits its transactions
/// to each, then times one `process_block` of it on each in a row and
/// prints the mean: the work every node of the mesh does, alone, for a
/// profiler. With `LODE_PERF_CTL=FIFO` it writes `enable` and `disable`
/// to a `perf record --control=fifo:FIFO -D -1` around those calls only.
fn profile_warm_process_block(base: &Path, scratch: &Path, block: &Block, n: usize) {
    let nodes: Vec<_> = (0..n)
        .map(|i| {
            let dir = scratch.join(format!("warm{i}"));
            copy_dir(base, &dir);
            let node = Node::open(&dir, ChainSpec::regtest(), ChainConfig::default(), MempoolPolicy::default())
                .expect("open the node's chain");
            for r in node.submit_transactions(block.transactions[1..].to_vec()) {
                r.expect("the block's transactions enter the mempool");
            }
            node
        })
        .collect();
    let perf = |command: &str| {
        if let Ok(fifo) = std::env::var("LODE_PERF_CTL") {
            std::fs::write(fifo, command).expect("write to perf's control fifo");
        }
    };
    perf("enable\n");
    let start = Instant::now();
    for node in &nodes {
        node.process_block(block.clone(), BlockSource::Requested).expect("connects");
    }
    let took = start.elapsed();
    perf("disable\n");
    eprintln!("warm process_block: {n} calls, mean {:.2} ms", took.as_secs_f64() * 1000.0 / n.max(1) as f64);
}

/// Per-round facts of one network, for the figure's detail.
#[derive(Default)]
struct Log {
    last: Vec<f64>,
    median: Vec<f64>,
    arrivals: Vec<Vec<f64>>,
    bytes_mean: Vec<f64>,
    bytes_worst: Vec<u64>,
    txs_fetched: Vec<u64>,
    fallbacks: Vec<u64>,
    reconstructed: Vec<u64>,
    compact_blocks: Vec<u64>,
    processing_ms: Vec<Vec<f64>>,
    graph_changes: Vec<Vec<Vec<usize>>>,
}

impl Log {
    fn add(&mut self, arrivals: Vec<f64>, delta: &[Counters], graph: Vec<Vec<usize>>, dialled: &[Vec<usize>]) {
        let receivers: Vec<&Counters> =
            delta.iter().enumerate().filter(|(i, _)| *i != PUBLISHER).map(|(_, c)| c).collect();
        self.last.push(arrivals.iter().copied().fold(0.0, f64::max));
        self.median.push(median(&arrivals));
        self.arrivals.push(arrivals);
        let bytes: Vec<u64> = receivers.iter().map(|c| c.bytes()).collect();
        self.bytes_mean.push(bytes.iter().sum::<u64>() as f64 / bytes.len().max(1) as f64);
        self.bytes_worst.push(bytes.iter().copied().max().unwrap_or(0));
        self.txs_fetched.push(receivers.iter().map(|c| c.txs_fetched).sum());
        self.fallbacks.push(receivers.iter().map(|c| c.fallbacks).sum());
        self.reconstructed.push(receivers.iter().map(|c| c.reconstructed).sum());
        self.compact_blocks.push(receivers.iter().map(|c| c.compact_blocks).sum());
        self.processing_ms.push(delta.iter().map(|c| c.processing_us as f64 / 1000.0).collect());
        if symmetric(&graph) != dialled {
            self.graph_changes.push(graph);
        }
    }

    fn detail(&self) -> Value {
        let worst = self.last.iter().copied().fold(0.0, f64::max);
        json!({
            "last_arrival_ms": {"median": median(&self.last), "worst": worst, "per_block": self.last},
            "median_arrival_ms_per_block": self.median,
            "arrival_ms_per_node_per_block": self.arrivals,
            "bytes_received_mean_per_block": self.bytes_mean,
            "bytes_received_worst_per_block": self.bytes_worst,
            "txs_fetched_per_block": self.txs_fetched,
            "fallbacks_per_block": self.fallbacks,
            "reconstructed_per_block": self.reconstructed,
            "compact_blocks_received_per_block": self.compact_blocks,
            "node_processing_ms_per_node_per_block": self.processing_ms,
            "graphs_differing_from_the_dialled_mesh": self.graph_changes,
        })
    }
}

/// Blocks whose transactions every mempool already has, published by one
/// node of a mesh, with and without compact relay.
pub fn propagation(report: &mut Report) {
    eprintln!("propagation");
    let sz = size(report.quick);
    let spec = ChainSpec::regtest();
    let mut builder = ChainBuilder::new(spec.clone());
    // Enough coins for the big blocks: they double every block once mature.
    let blocks = builder.blocks(spec.coinbase_maturity as usize + 14, 400);
    let bigs: Vec<Block> = (0..sz.blocks).map(|_| builder.next_block(sz.txs)).collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let seed = tmp.path().join("seed");
    import_into(&seed.join("chain"), &blocks);
    // The reference connects each block on a copy of the chain that has
    // had the earlier rounds' blocks, each time with a new chain and cache.
    let check = tmp.path().join("check");
    copy_dir(&seed, &check);

    if let Some(n) = std::env::var("LODE_WARM_LOOP").ok().and_then(|n| n.parse().ok()) {
        return profile_warm_process_block(&check.join("chain"), tmp.path(), &bigs[0], n);
    }
    let links = draw_mesh(sz.nodes, sz.dials, MESH_SEED);
    let dialled = adjacency(sz.nodes, &links);
    let from_publisher = hops(&dialled, PUBLISHER);
    // Transactions enter at the node farthest from the publisher.
    let injector = (0..sz.nodes).max_by_key(|&i| (from_publisher[i], i)).unwrap_or(PUBLISHER);
    let compact = Net::start(tmp.path(), &seed, "c", &links, sz.nodes, true);
    let full = Net::start(tmp.path(), &seed, "f", &links, sz.nodes, false);

    let (mut compact_rounds, mut full_rounds, mut bytes_rounds) =
        (Rounds::default(), Rounds::default(), Rounds::default());
    let (mut compact_log, mut full_log) = (Log::default(), Log::default());
    let mut sizes = Vec::new();
    let mut warm = Vec::new();
    for big in &bigs {
        warm.push(warm_in_process_ms(&check.join("chain"), tmp.path(), big));
        let reference = cold_connect_ms(&check.join("chain"), big);
        let block_size = big.encode().len();
        sizes.push(block_size);
        let (arrivals, delta, graph) = compact.round(big, injector);
        compact_log.add(arrivals, &delta, graph, &dialled);
        compact_rounds.push(reference, compact_log.last.last().copied().unwrap_or(0.0));
        bytes_rounds.push(block_size as f64, compact_log.bytes_mean.last().copied().unwrap_or(0.0));
        let (arrivals, delta, graph) = full.round(big, injector);
        full_log.add(arrivals, &delta, graph, &dialled);
        full_rounds.push(reference, full_log.last.last().copied().unwrap_or(0.0));
    }
    drop(compact);
    drop(full);

    let txs = bigs[0].transactions.len() - 1;
    let n = sz.nodes;
    let mesh = json!({
        "nodes": n,
        "dials_per_node": sz.dials,
        "seed": MESH_SEED,
        "links_dialled": links,
        "graph": dialled,
        "publisher": PUBLISHER,
        "injector": injector,
        "hops_from_publisher": from_publisher,
        "publisher_eccentricity": eccentricity(&dialled, PUBLISHER),
        "diameter": diameter(&dialled),
        "transactions": txs,
        "block_bytes": sizes,
        "poll_ms": POLL.as_secs_f64() * 1000.0,
        "cold_connect_ms_per_block": compact_rounds.refs,
        "warm_in_process_connect_ms_per_block": warm.iter().map(|w| w.0).collect::<Vec<_>>(),
        "warm_in_process_process_block_ms_per_block": warm.iter().map(|w| w.1).collect::<Vec<_>>(),
    });
    let reference = "one cold in-process connect of the same block (ms)";
    let what = format!("{txs}-tx block, mempools pre-filled, {n}-node mesh: until every node's tip is it");
    report.add_rounds("propagation.compact", &format!("{what}, compact relay"), "ms", reference, &compact_rounds);
    report.detail("propagation.compact", json!({"mesh": mesh, "rounds": compact_log.detail()}));
    report.add_rounds(
        "propagation.bytes",
        &format!("bytes a receiving node got for the {txs}-tx block (mean of {} receivers), compact relay", n - 1),
        "bytes",
        "the full block's encoded size (bytes)",
        &bytes_rounds,
    );
    report.detail(
        "propagation.bytes",
        json!({
            "worst_receiver_per_block": compact_log.bytes_worst,
            "full_relay_mean_per_block": full_log.bytes_mean,
            "counted": "lode_compact_bytes_received_total + lode_full_block_bytes_received_total deltas (payloads as first delivered)",
        }),
    );
    report.add_rounds(
        "propagation.full",
        &format!("{what}, full blocks only (--no-compact-blocks)"),
        "ms",
        reference,
        &full_rounds,
    );
    report.detail("propagation.full", json!({"mesh": mesh, "rounds": full_log.detail()}));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_and_diameter_of_a_path() {
        let g = adjacency(4, &[(0, 1), (2, 1), (3, 2)]);
        assert_eq!(hops(&g, 0), vec![Some(0), Some(1), Some(2), Some(3)]);
        assert_eq!(eccentricity(&g, 1), Some(2));
        assert_eq!(diameter(&g), Some(3));
        assert_eq!(diameter(&adjacency(3, &[(0, 1)])), None, "a split graph has no diameter");
    }

    #[test]
    fn the_drawn_mesh_is_connected_and_the_publisher_not_everyones_neighbour() {
        for (n, k) in [(8, 3), (4, 1)] {
            let links = draw_mesh(n, k, MESH_SEED);
            assert_eq!(links, draw_mesh(n, k, MESH_SEED), "the seed fixes the mesh");
            assert_eq!(links.len(), n * k);
            assert!(links.iter().all(|(a, b)| a != b));
            let g = adjacency(n, &links);
            assert!(g[PUBLISHER].len() < n - 1);
            assert!(diameter(&g).is_some());
        }
    }
}
