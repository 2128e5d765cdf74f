//! Peer-to-peer networking on libp2p: discovery, gossip, headers-first sync, peer scoring.
