//! The worker's stdout: protocol lines only (logs go to stderr), written by one thread that
//! batches whatever is queued before it flushes, so that pipelined replies cost a write per
//! batch rather than per reply.

use std::io::Write;
use std::sync::mpsc;
use std::thread::JoinHandle;

use harness::clients::protocol::Reply;

use super::Responder;

/// Lines queued for stdout, at most (a full queue makes librdkafka's callback thread wait).
const QUEUE_MAX: usize = 65_536;

/// The one writer of stdout.
pub struct Output {
    lines: mpsc::SyncSender<Vec<u8>>,
    writer: JoinHandle<()>,
}

impl Output {
    pub fn start() -> std::io::Result<Self> {
        let (lines, queued) = mpsc::sync_channel::<Vec<u8>>(QUEUE_MAX);
        let writer = std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || write_lines(&queued))?;
        Ok(Output { lines, writer })
    }

    /// Queues one JSON line.
    pub fn send<T: serde::Serialize>(&self, message: &T) {
        queue(&self.lines, message);
    }

    /// Where the reply to request `id` goes, from any thread.
    pub fn responder(&self, id: u64) -> Responder {
        let lines = self.lines.clone();
        Box::new(move |reply: Reply| queue(&lines, &Reply { id, ..reply }))
    }

    /// Writes out everything queued so far, then stops the writer.
    pub fn finish(self) {
        // An empty line is the writer's signal to flush and stop.
        let _ = self.lines.send(Vec::new());
        let _ = self.writer.join();
    }
}

fn queue<T: serde::Serialize>(lines: &mpsc::SyncSender<Vec<u8>>, message: &T) {
    match serde_json::to_vec(message) {
        Ok(mut line) => {
            line.push(b'\n');
            // The writer is gone only when the process is ending.
            let _ = lines.send(line);
        }
        Err(error) => tracing::error!("cannot encode a reply: {error}"),
    }
}

/// Writes lines, flushing when none is queued; exits the process if stdout breaks (the harness
/// is gone).
fn write_lines(queued: &mpsc::Receiver<Vec<u8>>) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let fail = |error: std::io::Error| -> ! {
        eprintln!("kchaos client: stdout broke ({error}): the harness is gone");
        std::process::exit(3);
    };
    while let Ok(line) = queued.recv() {
        let mut next = Some(line);
        while let Some(line) = next {
            if line.is_empty() {
                out.flush().unwrap_or_else(|error| fail(error));
                return;
            }
            out.write_all(&line).unwrap_or_else(|error| fail(error));
            next = queued.try_recv().ok();
        }
        out.flush().unwrap_or_else(|error| fail(error));
    }
}
