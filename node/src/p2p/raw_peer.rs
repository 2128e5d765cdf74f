//! A bare libp2p peer for the tests: it speaks our sync protocol with raw
//! bytes, to send what an honest node never would (garbage, oversized
//! frames, floods).

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol};
use std::io;
use std::time::Duration;

#[derive(Clone, Default)]
pub struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        io.take(1 << 20).read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        io.take(1 << 24).read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&req).await?;
        io.flush().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&res).await
    }
}

/// Connects to `target` and sends `count` copies of `frame`, at most
/// `parallel` at a time; returns our peer id at once and runs in the
/// background until the connection drops.
pub async fn send(target: &str, protocol: StreamProtocol, frame: Vec<u8>, count: usize, parallel: usize) -> PeerId {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                RawCodec,
                [(protocol, ProtocolSupport::Full)],
                request_response::Config::default().with_max_concurrent_streams(parallel + 8),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build();
    let id = *swarm.local_peer_id();
    let addr: Multiaddr = target.parse().unwrap();
    let peer = addr
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::P2p(p) => Some(p),
            _ => None,
        })
        .unwrap();
    swarm.dial(addr).unwrap();
    tokio::spawn(async move {
        let (mut sent, mut in_flight) = (0, 0);
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(20), swarm.select_next_some()).await;
            match ev {
                Ok(SwarmEvent::ConnectionEstablished { .. }) => {}
                Ok(SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Request { channel, .. },
                    ..
                })) => {
                    // The node asks for our status: an empty reply.
                    let _ = swarm.behaviour_mut().send_response(channel, Vec::new());
                    continue;
                }
                Ok(SwarmEvent::Behaviour(request_response::Event::Message { .. }))
                | Ok(SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. })) => in_flight -= 1,
                Ok(SwarmEvent::ConnectionClosed { .. }) | Err(_) => return,
                Ok(_) => continue,
            }
            while sent < count && in_flight < parallel {
                swarm.behaviour_mut().send_request(&peer, frame.clone());
                sent += 1;
                in_flight += 1;
            }
        }
    });
    id
}
