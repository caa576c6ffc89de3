//! Test support: private `redis-server` and `nats-server -js` processes, and a whole secured
//! deployment of them.
//!
//! Every test starts its own servers on free loopback ports with their data in a temp dir, so
//! tests are hermetic and run in parallel. A server can be stopped and started again on the
//! same port (JetStream keeps its store dir), which is how fault tests kill the backbone
//! mid-flow. Servers are killed when dropped, also when a test panics.
//!
//! # Layout
//! - [`process`] — spawning a server binary, waiting until it answers, killing it.
//! - [`redis`] — [`RedisServer`], plain or secured from `ops/redis/` (TLS, ACL users).
//! - [`nats`] — [`NatsServer`].
//! - [`nats_cluster`] — [`NatsCluster`], three nodes from `ops/nats/cluster.conf` (TLS, nkeys).
//! - [`nginx`] — [`Nginx`] from `ops/nginx/nginx.conf` (HTTPS, HTTP/2).
//! - [`shipped`] — the example secrets the repository ships, read from its files.
//! - [`secrets`] — the CA, certificates, nkeys, passwords and env files (`rakuda-certs`).
//! - [`tls`] — TLS (for a WebSocket too), HTTPS/HTTP/2 and probe clients that trust that CA.
//! - [`service`] — a bridge or gateway process ([`Service`]).
//! - [`fleet`] — a whole secured deployment of real processes ([`Fleet`]).
//! - [`in_process`] — a bridge or gateway running inside the test, with its metrics.
//! - [`wait`] — bounded waits and reading Prometheus samples.
//! - [`redis_client`] — publishing as the workers do, waiting for subscribers.
//! - [`sockets`] — the bytes waiting in this host's TCP connections, to wait on.

mod process;

pub mod fleet;
pub mod in_process;
pub mod nats;
pub mod nats_cluster;
pub mod nginx;
pub mod redis;
pub mod redis_client;
pub mod secrets;
pub mod service;
pub mod shipped;
pub mod sockets;
pub mod tls;
pub mod wait;

pub use fleet::{Fleet, FleetConfig, Service};
pub use in_process::InProcess;
pub use nats::NatsServer;
pub use nats_cluster::NatsCluster;
pub use nginx::Nginx;
pub use process::{free_port, Error};
pub use redis::RedisServer;
pub use secrets::{Role, Secrets, SecretsConfig};
