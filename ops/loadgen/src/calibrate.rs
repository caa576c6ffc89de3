//! How fast the machine is, right now, at what a fan-out spends its time on: a loopback TCP
//! write of a few frames, read back.
//!
//! This shared machine's speed drifts: the same binaries measured `light-1k` at 15% and at 31%
//! of a core an hour apart, with under 1% steal time either way (a neighbour on the same
//! physical core does not show up as steal). A figure taken next to every run tells a slow
//! machine from a slow gateway.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_write_takes_a_plausible_time() {
        let micros = loopback_write_us().expect("loopback TCP");
        // Microseconds on any machine this runs on; a zero or an hour would be a broken probe.
        assert!(micros > 0.1 && micros < 10_000.0, "{micros} µs");
    }
}
