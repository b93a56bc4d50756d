//! A TCP proxy between the controller and a node, to cut the Event Socket connections as a
//! network fault would: [`Proxy::cut`] drops every open connection (both ends see a reset or
//! EOF) and refuses new ones until [`Proxy::heal`]; [`Proxy::freeze`] passes nothing more while
//! keeping every connection open (and accepts new ones that get nothing), as a hung node does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    /// Bumped by every cut: a connection ends when the generation it started in is over.
    generation: watch::Sender<usize>,
    refusing: Arc<AtomicBool>,
    frozen: watch::Sender<bool>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (generation, _) = watch::channel(0usize);
        let refusing = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (frozen, _) = watch::channel(false);
        let (gen_tx, refuse, count) = (generation.clone(), refusing.clone(), accepted.clone());
        let frozen_tx = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if refuse.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let mut cut = gen_tx.subscribe();
                let mut hung = frozen_tx.subscribe();
                let born = *cut.borrow();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    let frozen = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
                        _ = cut.wait_for(|g| *g != born) => false,
                        _ = hung.wait_for(|f| *f) => true,
                    };
                    if frozen {
                        // Both ends stay open and hear nothing, until a cut.
                        let _ = cut.wait_for(|g| *g != born).await.map(drop);
                    }
                });
            }
        });
        Proxy {
            addr,
            generation,
            refusing,
            frozen,
            accepted,
            task,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Passes nothing more on any connection, open or new, keeping them open.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Accepts connections again.
    pub fn heal(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}
