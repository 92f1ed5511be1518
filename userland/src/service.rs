//! What the drivers share: passing typed bytes on to the shell without
//! making the interrupt thread wait for it.
//!
//! IPC is synchronous: a `send` waits until the receiver takes the message.
//! A driver's interrupt thread must not wait like that (the device's
//! buffer would overflow meanwhile), so it pushes what it read into a
//! [`Forwarder`], whose own thread sends it on, [`ferrite_ukit::stream::CHUNK`]
//! bytes a message. Bytes beyond [`FORWARD_BUFFER`] waiting are dropped, and
//! counted.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use ferrite_ukit::stream::{pack, CHUNK, OP_INPUT};
use spin::Mutex;

use crate::sys::{self, Handle};
use crate::Error;

/// Bytes a forwarder holds at most.
pub const FORWARD_BUFFER: usize = 4096;

/// Bytes on their way to a receiver, and the thread that sends them.
pub struct Forwarder {
    pending: Mutex<VecDeque<u8>>,
    /// Rung when bytes come.
    bell: Handle,
    /// Bytes dropped because the buffer was full.
    pub dropped: AtomicU64,
}

impl Forwarder {
    /// Starts the sending thread, which sends [`OP_INPUT`] messages on
    /// `endpoint` (a receiver that is gone, `PeerGone`, loses them).
    pub fn start(endpoint: Handle) -> Result<Arc<Forwarder>, Error> {
        let bell = sys::notification_create()?;
        let f = Arc::new(Forwarder { pending: Mutex::new(VecDeque::new()), bell, dropped: AtomicU64::new(0) });
        let sender = f.clone();
        // Lives as long as the process: never joined.
        let _sender = crate::thread::spawn(move || sender.run(endpoint))?;
        Ok(f)
    }

    /// Queues `bytes` for the receiver (what does not fit is dropped).
    pub fn push(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        {
            let mut pending = self.pending.lock();
            let room = FORWARD_BUFFER.saturating_sub(pending.len());
            pending.extend(&bytes[..bytes.len().min(room)]);
            if bytes.len() > room {
                self.dropped.fetch_add((bytes.len() - room) as u64, Ordering::Relaxed);
            }
        }
        let _ = sys::signal(self.bell, 1);
    }

    fn run(&self, endpoint: Handle) -> u64 {
        loop {
            if sys::notify_wait(self.bell).is_err() {
                return 1;
            }
            loop {
                let mut chunk = [0u8; CHUNK];
                let n = {
                    let mut pending = self.pending.lock();
                    let n = pending.len().min(CHUNK);
                    for (slot, b) in chunk.iter_mut().zip(pending.drain(..n)) {
                        *slot = b;
                    }
                    n
                };
                if n == 0 {
                    break;
                }
                // Gone receivers lose the bytes; a restarted one gets the
                // next ones (the endpoint outlives it).
                let _ = sys::send(endpoint, pack(OP_INPUT, &chunk[..n]).0);
            }
        }
    }
}
