//! The front door: HTTP/1 by hand, in front of the router and the transports.
//!
//! - [`listener`] — the accept loop: every request head read and checked in one place; SSE
//!   streams served on their socket, everything else by hyper.
//! - [`head`] — reading a request head within bounds.
//! - [`socket`], [`respond`] — SSE served straight on the socket, written with one system call
//!   per chunk.
//!
//! Which path goes where is [`crate::paths`]; what a stream does once admitted is
//! [`crate::transport`].

pub(crate) mod head;
pub(crate) mod listener;
pub(crate) mod respond;
pub(crate) mod socket;
