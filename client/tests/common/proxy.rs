//! A TCP proxy between a client and a server, so tests can break the connection the
//! way networks do:
//! * [`Proxy::cut`] closes every connection now (the client sees it at once);
//! * [`Mode::Refuse`] closes new connections as soon as they arrive;
//! * [`Mode::Blackhole`] keeps connections open but forwards nothing either way (the
//!   client notices only through its read timeout; the server expires the session);
//! * [`Mode::MuteReplies`] forwards requests but swallows the server's replies (a
//!   request is applied, its reply lost).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Refuse,
    Blackhole,
    MuteReplies,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    mode: Mode,
    /// Bumped by every cut; connections from an older generation close.
    generation: u64,
}

pub struct Proxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    accepted: watch::Receiver<u64>,
}

impl Proxy {
    /// A proxy to `target`, listening on a free port of 127.0.0.1.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (state, state_rx) = watch::channel(State {
            mode: Mode::Pass,
            generation: 0,
        });
        let (accepted_tx, accepted) = watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                accepted_tx.send_modify(|n| *n += 1);
                let st = *state_rx.borrow();
                if st.mode == Mode::Refuse {
                    drop(client);
                    continue;
                }
                tokio::spawn(relay(client, target, state_rx.clone(), st.generation));
            }
        });
        Proxy {
            addr,
            state,
            accepted,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection.
    pub fn cut(&self) {
        self.state.send_modify(|s| s.generation += 1);
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.send_modify(|s| s.mode = mode);
    }

    /// How many connections the proxy has accepted so far.
    pub fn connections(&self) -> u64 {
        *self.accepted.borrow()
    }
}

async fn relay(
    client: TcpStream,
    target: SocketAddr,
    state: watch::Receiver<State>,
    generation: u64,
) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let up = pump(client_r, server_w, state.clone(), generation, false);
    let down = pump(server_r, client_w, state, generation, true);
    // When either direction ends, drop both: the proxy closes the whole connection.
    tokio::select! {
        _ = up => {},
        _ = down => {},
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: watch::Receiver<State>,
    generation: u64,
    downstream: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = from.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let st = *state.borrow();
                if st.generation != generation {
                    return;
                }
                let forward = match st.mode {
                    Mode::Pass | Mode::Refuse => true,
                    Mode::Blackhole => false,
                    Mode::MuteReplies => !downstream,
                };
                if forward && to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            changed = state.changed() => {
                if changed.is_err() || state.borrow().generation != generation {
                    return;
                }
            }
        }
    }
}
