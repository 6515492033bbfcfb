//! Spreading connections evenly over the gateway's threads.
//!
//! One task accepts every connection and hands it to the threads in turn, as
//! actix-server does. Left to race for a shared socket, the thread that happens to be
//! awake takes a burst of new connections, and without work stealing it then serves
//! them alone while another thread idles.
//!
//! Shutdown runs in that order too: the acceptor stops, and each thread, once it has
//! taken every connection handed to it, stops taking more and finishes its requests.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

type Handed = (std::net::TcpStream, SocketAddr);

/// A thread's share of the connections: a [`common::server::Listener`] fed by
/// [`accept`].
pub struct Share {
    connections: mpsc::UnboundedReceiver<Handed>,
    local: SocketAddr,
    /// Told when the acceptor has stopped and every connection handed over is taken.
    drained: Option<oneshot::Sender<()>>,
}

/// Completes when its [`Share`] has taken its last connection: the signal for the
/// thread serving it to shut down gracefully.
pub struct Drained(oneshot::Receiver<()>);

impl Drained {
    pub async fn wait(self) {
        // An error means the share is gone: nothing more to take either.
        let _ = self.0.await;
    }
}

/// One sender per thread, for [`accept`], and each thread's [`Share`] with its
/// [`Drained`] signal.
pub fn shares(
    n: usize,
    local: SocketAddr,
) -> (Vec<mpsc::UnboundedSender<Handed>>, Vec<(Share, Drained)>) {
    (0..n)
        .map(|_| {
            let (tx, rx) = mpsc::unbounded_channel();
            let (drained, on_drained) = oneshot::channel();
            let share = Share {
                connections: rx,
                local,
                drained: Some(drained),
            };
            (tx, (share, Drained(on_drained)))
        })
        .unzip()
}

impl common::server::Listener for Share {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some((stream, peer)) = self.connections.recv().await else {
                // The acceptor has stopped and this was the last connection.
                if let Some(drained) = self.drained.take() {
                    let _ = drained.send(());
                }
                return std::future::pending().await;
            };
            // Registers the connection with this thread's runtime.
            match TcpStream::from_std(stream) {
                Ok(stream) => return (stream, peer),
                Err(err) => tracing::warn!(error = %err, "cannot take over a connection"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Accepts connections and deals them out in turn, until `stop` completes.
pub async fn accept<F>(listener: TcpListener, threads: Vec<mpsc::UnboundedSender<Handed>>, stop: F)
where
    F: std::future::Future<Output = ()>,
{
    tokio::pin!(stop);
    let mut next = 0;
    loop {
        let accepted = tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                if !is_connection_error(&err) {
                    // Out of file descriptors, say: pause rather than spin.
                    tracing::error!(error = %err, "cannot accept connections");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
        };
        // Leaves this runtime; the receiving thread registers it with its own.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        if threads[next].send((stream, peer)).is_err() {
            tracing::error!("a gateway thread has stopped taking connections");
        }
        next = (next + 1) % threads.len();
    }
}

/// Errors of one connection, not of the listening socket (as in axum's serve).
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use common::server::Listener as _;

    use super::*;

    #[tokio::test]
    async fn connections_are_dealt_out_in_turn() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (senders, shares) = shares(3, address);
        let mut shares: Vec<Share> = shares.into_iter().map(|(share, _)| share).collect();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let acceptor = tokio::spawn(accept(listener, senders, async {
            let _ = stopped.await;
        }));
        let mut clients = Vec::new();
        for _ in 0..6 {
            clients.push(TcpStream::connect(address).await.unwrap());
        }
        for share in &mut shares {
            for _ in 0..2 {
                let (stream, peer) = tokio::time::timeout(Duration::from_secs(5), share.accept())
                    .await
                    .expect("each thread gets its turn");
                assert_eq!(stream.peer_addr().unwrap(), peer);
            }
            assert!(share.connections.try_recv().is_err(), "more than its turn");
        }
        stop.send(()).unwrap();
        acceptor.await.unwrap();
    }

    #[tokio::test]
    async fn a_thread_is_told_to_stop_once_it_took_its_last_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (senders, mut shares) = shares(1, address);
        let (mut share, drained) = shares.remove(0);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let acceptor = tokio::spawn(accept(listener, senders, async {
            let _ = stopped.await;
        }));
        let _client = TcpStream::connect(address).await.unwrap();
        // Handed over before the acceptor stops...
        while share.connections.is_empty() {
            tokio::task::yield_now().await;
        }
        stop.send(()).unwrap();
        acceptor.await.unwrap();
        let drained = tokio::spawn(drained.wait());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !drained.is_finished(),
            "told to stop with a connection not yet taken"
        );
        // ...it is still taken, and only then is the thread told to stop.
        let (_taken, _) = share.accept().await;
        let taking = tokio::spawn(async move { share.accept().await });
        tokio::time::timeout(Duration::from_secs(5), drained)
            .await
            .expect("told to stop once drained")
            .unwrap();
        taking.abort();
    }
}
