//! How fast the machine is, right now, at what a fan-out spends its time on: a loopback TCP
//! write of a few frames, read back; and the kernel's floor for a fan-out, one frame sent to
//! each of a thousand sockets from the gateway's core.
//!
//! This shared machine's speed drifts: the same binaries measured `light-1k` at 15% and at 31%
//! of a core an hour apart, with under 1% steal time either way (a neighbour on the same
//! physical core does not show up as steal). A figure taken next to every run tells a slow
//! machine from a slow gateway.

use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use socket2::SockRef;

/// About what the gateway writes to a busy connection at once: six frames.
const WRITE_BYTES: usize = 3 * 1024;
const WARM_UP: usize = 200;
const ROUNDS: usize = 3_000;

/// Microseconds for one write of [`WRITE_BYTES`] to a loopback TCP socket and its read on the
/// other end, both on this thread; `None` if loopback TCP is not available.
pub fn loopback_write_us() -> Option<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    let mut writer = TcpStream::connect(listener.local_addr().ok()?).ok()?;
    let (mut reader, _) = listener.accept().ok()?;
    writer.set_nodelay(true).ok()?;
    let message = [b'x'; WRITE_BYTES];
    let mut buffer = vec![0u8; 2 * WRITE_BYTES];
    let mut round = |writer: &mut TcpStream, reader: &mut TcpStream| -> Option<()> {
        writer.write_all(&message).ok()?;
        let mut received = 0;
        while received < WRITE_BYTES {
            match reader.read(&mut buffer).ok()? {
                0 => return None,
                read => received += read,
            }
        }
        Some(())
    };
    for _ in 0..WARM_UP {
        round(&mut writer, &mut reader)?;
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        round(&mut writer, &mut reader)?;
    }
    Some(started.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64)
}

/// Sockets in one fan-out sweep: `light-1k`'s connections.
const SWEEP_SOCKETS: usize = 1_000;
/// One event as the gateway frames it for SSE: a chunk header, a 300-byte record, CRLF.
const CHUNK_HEADER: &[u8] = b"12c\r\n";
const FRAME_BYTES: usize = 300;
const CHUNK_END: &[u8] = b"\r\n";
const SWEEP_WARM_UP: usize = 2;
const SWEEPS: usize = 20;
/// Between sweeps, as between `light-1k`'s events: the reader goes idle and each sweep finds
/// it asleep, as the gateway finds its clients.
const SWEEP_GAP: Duration = Duration::from_millis(10);

/// Microseconds per send when one thread sends one event's SSE chunk to each of 1,000 loopback
/// sockets in turn (`sendmsg` of header, record and CRLF, exactly as the gateway writes it)
/// while this thread reads them as they arrive, as clients keeping pace do: the kernel's part
/// of a fan-out, with nothing of the gateway's own. Median over the sweeps. A gateway serving
/// N connections cannot deliver an event to the last of them sooner than N times this.
///
/// `writer_cpus` pins the sending thread (with `taskset`) to the gateway's CPUs, so it pays
/// what the gateway pays there, while this thread stays where the clients run. `None` when
/// the probe cannot run as asked (no loopback, too few file descriptors, pinning failed).
pub fn sweep_send_us(writer_cpus: Option<&str>) -> Option<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    let address = listener.local_addr().ok()?;
    let mut readers = Vec::with_capacity(SWEEP_SOCKETS);
    let mut writers = Vec::with_capacity(SWEEP_SOCKETS);
    for _ in 0..SWEEP_SOCKETS {
        readers.push(TcpStream::connect(address).ok()?);
        let (writer, _) = listener.accept().ok()?;
        writer.set_nodelay(true).ok()?;
        writers.push(writer);
    }
    drop(listener);
    let cpus = writer_cpus.map(str::to_owned);
    let sender = std::thread::Builder::new()
        .name("sweep-probe".into())
        .spawn(move || -> Option<Vec<f64>> {
            if let Some(cpus) = &cpus {
                pin_this_thread(cpus)?;
            }
            let frame = [b'x'; FRAME_BYTES];
            let parts = [
                IoSlice::new(CHUNK_HEADER),
                IoSlice::new(&frame),
                IoSlice::new(CHUNK_END),
            ];
            let mut sweeps = Vec::with_capacity(SWEEPS);
            for sweep in 0..SWEEP_WARM_UP + SWEEPS {
                std::thread::sleep(SWEEP_GAP);
                let started = Instant::now();
                for writer in &writers {
                    let sent = SockRef::from(writer).send_vectored(&parts).ok()?;
                    // Blocking sockets with empty buffers take a whole small chunk at once.
                    if sent != CHUNK_HEADER.len() + FRAME_BYTES + CHUNK_END.len() {
                        return None;
                    }
                }
                if sweep >= SWEEP_WARM_UP {
                    sweeps.push(started.elapsed().as_secs_f64() * 1e6 / SWEEP_SOCKETS as f64);
                }
            }
            Some(sweeps)
        })
        .ok()?;
    let mut chunk = [0u8; CHUNK_HEADER.len() + FRAME_BYTES + CHUNK_END.len()];
    let mut read_all = || -> Option<()> {
        for _ in 0..SWEEP_WARM_UP + SWEEPS {
            for reader in &mut readers {
                reader.read_exact(&mut chunk).ok()?;
            }
        }
        Some(())
    };
    // A failed read means the sender stopped early; its answer says so.
    let _ = read_all();
    let mut sweeps = sender.join().ok()??;
    sweeps.sort_by(f64::total_cmp);
    sweeps.get(sweeps.len() / 2).copied()
}

/// Pins the calling thread to `cpus` with `taskset -p`, finding its thread id through
/// `/proc/thread-self` (the crate forbids the `unsafe` a direct `sched_setaffinity` needs).
fn pin_this_thread(cpus: &str) -> Option<()> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    let tid = link.file_name()?.to_str()?.to_owned();
    let pinned = Command::new("taskset")
        .args(["-p", "-c", cpus, &tid])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    pinned.success().then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_write_takes_a_plausible_time() {
        let micros = loopback_write_us().expect("loopback TCP");
        // Microseconds on any machine this runs on; a zero or an hour would be a broken probe.
        assert!(micros > 0.1 && micros < 10_000.0, "{micros} µs");
    }

    #[test]
    fn a_fan_out_send_takes_a_plausible_time() {
        // 2,000 sockets: more than the common default of 1,024 open files.
        rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-files limit");
        let micros = sweep_send_us(None).expect("loopback TCP and 2,000 file descriptors");
        assert!(micros > 0.1 && micros < 10_000.0, "{micros} µs");
    }

    fn allowed_cpus() -> Option<String> {
        let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
            .map(|list| list.trim().to_owned())
    }

    #[test]
    fn only_the_probe_thread_is_pinned_and_to_the_cpus_asked_for() {
        let before = allowed_cpus().expect("this thread's CPUs");
        let pinned = std::thread::spawn(|| pin_this_thread("0").and_then(|()| allowed_cpus()))
            .join()
            .expect("thread");
        assert_eq!(pinned.as_deref(), Some("0"));
        assert_eq!(
            allowed_cpus(),
            Some(before),
            "the caller's CPUs are unchanged"
        );
    }
}
