//! A TCP connection from a loopback address of our own choosing, shared by the examples that play
//! many hosts on one machine (a master limits connections per address, so each worker or attacker
//! comes from its own `127.0.0.<last>`). std cannot bind a source address before connecting;
//! rustix, already a dependency of the daemon, can.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};

/// Connects to `to` from `127.0.0.<last>`.
pub fn connect_from(last: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::STREAM,
        None,
    )?;
    let from = SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), 0));
    rustix::net::bind(&socket, &from)?;
    rustix::net::connect(&socket, &to)?;
    Ok(TcpStream::from(socket))
}
