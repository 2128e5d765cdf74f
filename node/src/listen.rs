//! Serving HTTP safely: an accept loop that backs off when the process is
//! out of file descriptors (instead of spinning on `EMFILE`), and a stream
//! wrapper whose writes time out, so a client that never reads its
//! response cannot hold a task and its buffers forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// First pause after a failed accept; doubled on each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between accept attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Something that accepts connections (a TCP listener; a fake in tests).
pub trait Accept {
    /// The accepted connection.
    type Conn;
    /// Waits for the next connection.
    fn accept(&self) -> impl Future<Output = io::Result<Self::Conn>> + Send;
}

impl Accept for tokio::net::TcpListener {
    type Conn = (tokio::net::TcpStream, std::net::SocketAddr);
    fn accept(&self) -> impl Future<Output = io::Result<Self::Conn>> + Send {
        tokio::net::TcpListener::accept(self)
    }
}

/// Accepts connections, pausing with exponential backoff after errors:
/// `EMFILE` and its kin persist until some connection closes, and
/// retrying at once would spin a core.
pub struct Acceptor<L> {
    listener: L,
    backoff: Duration,
    what: &'static str,
}

impl<L: Accept> Acceptor<L> {
    /// Wraps `listener`; `what` names the server in log lines.
    pub fn new(listener: L, what: &'static str) -> Self {
        Acceptor { listener, backoff: FIRST_BACKOFF, what }
    }

    /// The next connection (cancel-safe: use it in `select!`).
    pub async fn next(&mut self) -> L::Conn {
        loop {
            match self.listener.accept().await {
                Ok(c) => {
                    self.backoff = FIRST_BACKOFF;
                    return c;
                }
                Err(e) => {
                    tracing::warn!(server = self.what, %e, pause_ms = self.backoff.as_millis() as u64, "accept failed; pausing");
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

impl<L: Accept> Acceptor<L> {
    /// The next connection once one of `slots` is free, with the slot (its
    /// task holds it until the connection ends: more clients wait in the
    /// kernel's backlog instead of each costing a file descriptor and a
    /// task); `None` once `shutdown` fires.
    pub async fn next_within(
        &mut self,
        slots: &Arc<Semaphore>,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Option<(L::Conn, OwnedSemaphorePermit)> {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.ok()?,
            _ = shutdown.changed() => return None,
        };
        tokio::select! {
            c = self.next() => Some((c, permit)),
            _ = shutdown.changed() => None,
        }
    }
}

/// A stream whose writes (and flushes) fail with `TimedOut` when they make
/// no progress for the given time.
pub struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteTimeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        WriteTimeout { inner, timeout, deadline: None }
    }

    /// Arms the deadline on the first `Pending`, fails once it passes, and
    /// disarms on progress.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(r) => {
                self.deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading the response")))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt;

    /// A listener that has run out of file descriptors.
    struct Exhausted(AtomicUsize);

    impl Accept for Exhausted {
        type Conn = ();
        fn accept(&self) -> impl Future<Output = io::Result<()>> + Send {
            self.0.fetch_add(1, Ordering::Relaxed);
            // Yields like a real accept, so a loop without pauses spins
            // visibly instead of starving the timer.
            async {
                tokio::task::yield_now().await;
                Err(io::Error::from_raw_os_error(24))
            }
        }
    }

    #[tokio::test]
    async fn failing_accepts_back_off_instead_of_spinning() {
        let mut acceptor = Acceptor::new(Exhausted(AtomicUsize::new(0)), "test");
        let _ = tokio::time::timeout(Duration::from_millis(300), acceptor.next()).await;
        let attempts = acceptor.listener.0.load(Ordering::Relaxed);
        // 10, 20, 40, 80, 160 ms pauses: about six attempts in 300 ms; a
        // loop without pauses makes millions.
        assert!((2..=10).contains(&attempts), "{attempts} accept attempts in 300 ms");
    }

    #[tokio::test]
    async fn a_reader_that_never_reads_times_the_write_out() {
        let (client, _server_never_reads) = tokio::io::duplex(1024);
        let mut stream = WriteTimeout::new(client, Duration::from_millis(100));
        let big = vec![7u8; 1 << 20];
        let result = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&big)).await;
        let err = result.expect("the write gave up by itself").expect_err("cannot succeed");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_served() {
        let (client, mut server) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut server, &mut got).await.map(|_| got.len())
        });
        let mut stream = WriteTimeout::new(client, Duration::from_millis(200));
        stream.write_all(&vec![1u8; 64 * 1024]).await.expect("progress keeps it alive");
        stream.shutdown().await.expect("shutdown");
        drop(stream);
        assert_eq!(reader.await.expect("join").expect("read"), 64 * 1024);
    }
}
