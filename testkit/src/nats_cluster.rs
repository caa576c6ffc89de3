//! A 3-node `nats-server` cluster with JetStream, run from the committed
//! `ops/nats/cluster.conf` (with its `auth.conf` and `permissions.conf`) so the fleet test
//! exercises the files operators deploy: TLS for clients, mutual TLS between the nodes, and only
//! the nkey users of the given [`Secrets`].

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::nats::sends_info;
use crate::process::{log_path, path_arg, tail, Error, ServerProcess};
use crate::secrets::Secrets;

/// Nodes in the cluster: three is the smallest size that keeps a quorum with one node down.
pub const NODES: usize = 3;

/// How long the cluster may take to elect a JetStream meta leader after all nodes are up.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);

/// The committed cluster config every node runs (what differs per node comes from the
/// environment, as under systemd).
pub fn cluster_config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/nats/cluster.conf")
}

#[derive(Debug, Clone, Copy)]
struct NodePorts {
    client: u16,
    cluster: u16,
    http: u16,
}

struct Node {
    ports: NodePorts,
    process: Option<ServerProcess>,
}

/// Three `nats-server` processes routed to each other, each with its JetStream store in a temp
/// dir that survives [`NatsCluster::stop_node`] / [`NatsCluster::restart_node`].
pub struct NatsCluster {
    dir: TempDir,
    /// TLS files and public nkeys every node reads from its environment.
    server_env: Vec<(String, String)>,
    nodes: Vec<Node>,
}

impl NatsCluster {
    /// Starts all nodes and waits until JetStream is healthy on every one (a meta leader is
    /// elected), so a stream with replicas 3 can be created right away.
    pub fn start(secrets: &Secrets) -> Result<NatsCluster, Error> {
        NatsCluster::start_with_ports(secrets, &free_ports(NODES * 3)?)
    }

    /// Starts on fixed ports: client ports `base`, `base+1`, `base+2`; routes `base+2000..`;
    /// monitoring `base+4000..` (4222 gives 4222-4224, 6222-6224 and 8222-8224).
    pub fn start_on(secrets: &Secrets, base_port: u16) -> Result<NatsCluster, Error> {
        let mut ports = Vec::new();
        for offset in [0u16, 2000, 4000] {
            for node in 0..NODES as u16 {
                ports.push(base_port + offset + node);
            }
        }
        NatsCluster::start_with_ports(secrets, &ports)
    }

    fn start_with_ports(secrets: &Secrets, ports: &[u16]) -> Result<NatsCluster, Error> {
        let dir = tempfile::Builder::new()
            .prefix("rakuda-nats-cluster-")
            .tempdir()?;
        let mut cluster = NatsCluster {
            dir,
            server_env: secrets.nats_server_env(),
            nodes: (0..NODES)
                .map(|index| Node {
                    ports: NodePorts {
                        client: ports[index],
                        cluster: ports[NODES + index],
                        http: ports[2 * NODES + index],
                    },
                    process: None,
                })
                .collect(),
        };
        // Spawn all before waiting on any: a node only turns healthy once it sees the others.
        for index in 0..NODES {
            cluster.spawn_node(index)?;
        }
        cluster.wait_healthy()?;
        Ok(cluster)
    }

    /// Every node's client URL, comma-separated: the `NATS_URL` a bridge or gateway gets.
    pub fn urls(&self) -> String {
        (0..NODES)
            .map(|index| self.url(index))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `tls://127.0.0.1:<client port>` of one node.
    pub fn url(&self, index: usize) -> String {
        format!("tls://127.0.0.1:{}", self.nodes[index].ports.client)
    }

    /// Every node's log so far (nats-server logs each permission violation there).
    pub fn logs(&self) -> String {
        (0..NODES)
            .map(|index| std::fs::read_to_string(self.log_path(index)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn log_path(&self, index: usize) -> PathBuf {
        log_path(self.dir.path(), &format!("nats-node-{}", index + 1))
    }

    /// Kills one node as a crash would; its store stays on disk.
    pub fn stop_node(&mut self, index: usize) {
        if let Some(mut process) = self.nodes[index].process.take() {
            process.kill();
        }
    }

    /// Starts a stopped node again with its store, and waits until the cluster is healthy.
    pub fn restart_node(&mut self, index: usize) -> Result<(), Error> {
        self.stop_node(index);
        self.spawn_node(index)?;
        self.wait_healthy()
    }

    fn spawn_node(&mut self, index: usize) -> Result<(), Error> {
        let ports = self.nodes[index].ports;
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, node)| format!("nats-route://127.0.0.1:{}", node.ports.cluster))
            .collect();
        let store = self.dir.path().join(format!("node-{}", index + 1));
        let mut envs = vec![
            ("NATS_SERVER_NAME", format!("rakuda-nats-{}", index + 1)),
            ("NATS_HOST", "127.0.0.1".to_owned()),
            ("NATS_PORT", ports.client.to_string()),
            ("NATS_HTTP_PORT", ports.http.to_string()),
            ("NATS_CLUSTER_PORT", ports.cluster.to_string()),
            ("NATS_ROUTE_A", routes[0].clone()),
            ("NATS_ROUTE_B", routes[1].clone()),
            ("NATS_STORE_DIR", path_arg(&store)),
        ];
        envs.extend(
            self.server_env
                .iter()
                .map(|(name, value)| (name.as_str(), value.clone())),
        );
        let args = ["-c".to_owned(), path_arg(&cluster_config_path())];
        // A restarted node appends to its log (ServerProcess opens it so): what it said
        // before its crash stays readable.
        let process = ServerProcess::spawn(
            "nats-server",
            "nats-server",
            &args,
            &envs,
            &self.log_path(index),
            ports.client,
            sends_info,
        )?;
        self.nodes[index].process = Some(process);
        Ok(())
    }

    /// Waits until every running node's `/healthz` answers 200 (JetStream has a meta leader
    /// and the node is current).
    fn wait_healthy(&self) -> Result<(), Error> {
        let deadline = Instant::now() + HEALTHY_TIMEOUT;
        for (index, node) in self.nodes.iter().enumerate() {
            if node.process.is_none() {
                continue;
            }
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, node.ports.http));
            while http_status(addr, "/healthz") != Some(200) {
                if Instant::now() > deadline {
                    return Err(Error::NotReady {
                        binary: "nats-server",
                        port: node.ports.client,
                        log: format!(
                            "cluster node {} never reported healthy JetStream; its log:\n{}",
                            index + 1,
                            tail(&self.log_path(index))
                        ),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

/// `count` distinct free ports (all bound at once, so none repeats).
fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

/// The status code of a plain HTTP/1.0 GET, or `None` if the server does not answer.
pub(crate) fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

impl Drop for NatsCluster {
    /// A failed test keeps the nodes' logs and says where.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!("nats cluster: logs kept in {}", self.dir.path().display());
        }
    }
}
