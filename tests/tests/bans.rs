//! Bans hold against a fresh key: a real `lode-node` on 127.0.0.1 bans a
//! peer that connected from 127.0.0.2, after which a peer with a new key
//! from that address is refused (also after the node restarts) while other
//! addresses still get in; `unbanpeer` lets the address back in.
//!
//! The peers are minimal libp2p clients in this process with a transport
//! whose dials leave from a chosen loopback address (libp2p's TCP
//! transport cannot choose one); they speak the sync protocol by echoing
//! each status request as the reply, so the node keeps them as peers at its
//! own tip.

use futures::StreamExt;
use libp2p::core::upgrade::Version;
use libp2p::core::Transport;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, yamux, Multiaddr, PeerId};
use lode_core::ChainSpec;
use lode_tests::raw_client::{protocol_prefix, sync_protocol, BoundTcp, SyncCodec};
use lode_tests::{wait_for, NodeOptions, TestNode};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Connected,
    Gone,
}

/// A peer with a fresh key dialing the node from `local`.
struct Client {
    id: PeerId,
    events: mpsc::Receiver<Ev>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    fn dial(rt: &tokio::runtime::Runtime, local: &str, target: &str) -> Client {
        let _entered = rt.enter();
        let spec = ChainSpec::regtest();
        let sync = sync_protocol(&protocol_prefix(&spec)).expect("protocol name");
        let local: IpAddr = local.parse().expect("local address");
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_other_transport(|key| {
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    BoundTcp(local)
                        .upgrade(Version::V1)
                        .authenticate(noise::Config::new(key)?)
                        .multiplex(yamux::Config::default()),
                )
            })
            .expect("transport")
            .with_behaviour(|_| {
                // Framed bodies of at most 1 MiB: the status request and
                // reply share their encoding, so a request can be echoed.
                request_response::Behaviour::with_codec(
                    SyncCodec::Framed { limit: 1 << 20 },
                    [(sync, ProtocolSupport::Full)],
                    request_response::Config::default(),
                )
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        let id = *swarm.local_peer_id();
        let (tx, events) = mpsc::channel();
        swarm.dial(target.parse::<Multiaddr>().expect("target multiaddr")).expect("dial");
        let task = rt.spawn(async move {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { .. } => {
                        let _ = tx.send(Ev::Connected);
                    }
                    SwarmEvent::ConnectionClosed { num_established: 0, .. }
                    | SwarmEvent::OutgoingConnectionError { .. } => {
                        let _ = tx.send(Ev::Gone);
                    }
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Request { request, channel, .. },
                        ..
                    }) => {
                        // Its own status back: a peer at the node's tip.
                        let _ = swarm.behaviour_mut().send_response(channel, request);
                    }
                    _ => {}
                }
            }
        });
        Client { id, events, task }
    }

    fn next(&self) -> Ev {
        self.events.recv_timeout(DEADLINE).expect("a connection outcome in time")
    }
}

fn peer<'a>(peers: &'a Value, id: &PeerId) -> Option<&'a Value> {
    peers.as_array()?.iter().find(|p| p["peer_id"] == json!(id.to_string()))
}

/// Connects from `local` and waits until the node lists the client there.
fn connect(rt: &tokio::runtime::Runtime, node: &TestNode, local: &str) -> Client {
    let c = Client::dial(rt, local, &node.p2p_addr());
    assert_eq!(c.next(), Ev::Connected, "a fresh key from {local} is let in");
    let info =
        wait_for("the node lists the client", DEADLINE, || peer(&node.rpc("getpeerinfo", json!([])), &c.id).cloned());
    let address = info["address"].as_str().unwrap_or_default();
    assert!(address.starts_with(&format!("/ip4/{local}/tcp/")), "the client leaves from {local}: {info}");
    assert_eq!(info["address_group"], json!(format!("local {local}")));
    c
}

/// Expects the node to refuse a fresh key from `local` before the
/// handshake completes, and never to list it.
fn refused(rt: &tokio::runtime::Runtime, node: &TestNode, local: &str, why: &str) {
    let c = Client::dial(rt, local, &node.p2p_addr());
    assert_eq!(c.next(), Ev::Gone, "{why}: a fresh key from {local} is let in");
    assert!(peer(&node.rpc("getpeerinfo", json!([])), &c.id).is_none(), "{why}: the node lists it");
}

#[test]
fn a_peer_reconnecting_with_a_fresh_key_from_a_banned_address_is_refused() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut a = TestNode::start(NodeOptions::default());

    let x = connect(&rt, &a, "127.0.0.2");
    a.rpc("banpeer", json!([x.id.to_string(), 3600]));
    let banned = a.rpc("listbanned", json!([]));
    assert_eq!(banned.as_array().map(Vec::len), Some(1), "{banned}");
    assert_eq!(banned[0]["peer_id"], json!(x.id.to_string()));
    assert_eq!(banned[0]["addresses"], json!(["127.0.0.2"]), "the ban covers the address it used");
    assert_eq!(x.next(), Ev::Gone, "the banned peer is disconnected");

    refused(&rt, &a, "127.0.0.2", "after the ban");
    let _other = connect(&rt, &a, "127.0.0.3");

    // The address ban is kept across a restart.
    a.stop();
    a.start_again();
    let banned = a.rpc("listbanned", json!([]));
    assert_eq!(banned[0]["addresses"], json!(["127.0.0.2"]), "{banned}");
    refused(&rt, &a, "127.0.0.2", "after a restart");

    a.rpc("unbanpeer", json!([x.id.to_string()]));
    assert_eq!(a.rpc("listbanned", json!([])), json!([]));
    let _back = connect(&rt, &a, "127.0.0.2");
    a.stop();
}
