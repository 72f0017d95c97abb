//! The publisher side of a message run: batches of PUBLISH from a template, a window of
//! unacknowledged QoS 1/2 messages, end-to-end pacing at QoS 0, or a fixed rate.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wardgate_protocol::{DecodeLimits, Packet, PacketId, PubAck, QoS, decode, encode};

use super::schedule::Schedule;
use super::{Pacing, PubReport, Window, wait_window};
use crate::error::{Error, Result};
use crate::seq::SeqSet;
use crate::wire::{Client, PublishTemplate, Stamp, instant_at, now_ns};

pub(super) struct PubJob {
    pub(super) index: u32,
    pub(super) template: PublishTemplate,
    pub(super) qos: QoS,
    pub(super) inflight: u16,
    /// The fixed-rate timetable, or as fast as possible.
    pub(super) schedule: Option<Arc<Schedule>>,
    pub(super) drain: Duration,
    /// QoS 0 at full speed: the end-to-end window.
    pub(super) pacing: Option<Arc<Pacing>>,
}

/// Most messages one write carries when publishing as fast as possible.
const MAX_BATCH: u64 = 64;
const BATCH_BYTES: usize = 32 * 1024;

impl PubJob {
    /// How many messages may be written now: the schedule's backlog or a full batch.
    fn due(&self, start: u64, seq: u32) -> u64 {
        let batch = MAX_BATCH.min((BATCH_BYTES / self.template.len()).max(1) as u64);
        match &self.schedule {
            None => batch,
            Some(s) => s.due(start, self.index, seq, now_ns(), batch),
        }
    }

    /// Resolves when another message falls due (never without a schedule).
    async fn next_due(&self) {
        match &self.schedule {
            Some(s) => s.wait(self.index).await,
            None => std::future::pending().await,
        }
    }
}

/// Publishes until stopped; QoS 1/2 keep a window of unacknowledged messages and count only
/// acknowledged ones.
pub(super) async fn publisher(
    mut c: Client,
    job: PubJob,
    mut window: watch::Receiver<Option<Window>>,
    stop: CancellationToken,
) -> Result<PubReport> {
    let w = tokio::select! {
        _ = stop.cancelled() => return Err(Error::Protocol("stopped before the start".into())),
        w = wait_window(&mut window) => w?,
    };
    tokio::time::sleep_until(instant_at(w.start).into()).await;
    let report = if job.qos == QoS::AtMostOnce {
        publish_qos0(&mut c, &job, w, &stop).await?
    } else {
        publish_acked(&mut c, &job, w, &stop).await?
    };
    c.disconnect().await;
    Ok(report)
}

async fn publish_qos0(
    c: &mut Client,
    job: &PubJob,
    w: Window,
    stop: &CancellationToken,
) -> Result<PubReport> {
    let mut seq: u32 = 0;
    let mut in_window = 0;
    while !stop.is_cancelled() {
        let n = job.due(w.start, seq);
        if n == 0 {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = job.next_due() => continue,
            }
        }
        if let Some(p) = &job.pacing {
            p.wait_for_room(stop).await;
        }
        let sent_ns = now_ns();
        for i in 0..n as u32 {
            let stamp = Stamp {
                publisher: job.index,
                seq: seq + i,
                sent_ns,
            };
            job.template.write(&mut c.wbuf, None, stamp);
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = c.stream.write_all(&c.wbuf) => r.map_err(|e| Error::io("publish", e))?,
        }
        c.wbuf.clear();
        seq += n as u32;
        if let Some(p) = &job.pacing {
            p.live.published.0.fetch_add(n, Ordering::Relaxed);
        }
        if w.contains(now_ns()) {
            in_window += n;
        }
    }
    Ok(PubReport {
        index: job.index,
        done: SeqSet::prefix(seq),
        in_window,
        rejected: 0,
        unacknowledged: 0,
    })
}

/// One unacknowledged QoS 1/2 PUBLISH.
struct Pending {
    packet_id: PacketId,
    seq: u32,
    /// QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP.
    released: bool,
}

async fn publish_acked(
    c: &mut Client,
    job: &PubJob,
    w: Window,
    stop: &CancellationToken,
) -> Result<PubReport> {
    let limits = DecodeLimits::default();
    let version = c.version;
    let window = usize::from(job.inflight.min(c.server_receive_maximum).max(1));
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(window);
    let mut next_id = PacketId::new(1).expect("nonzero");
    let mut seq: u32 = 0;
    let mut report = PubReport {
        index: job.index,
        done: SeqSet::default(),
        in_window: 0,
        rejected: 0,
        unacknowledged: 0,
    };
    let mut stopping: Option<tokio::time::Instant> = None;
    loop {
        if stopping.is_some() && pending.is_empty() && c.wbuf.is_empty() {
            break;
        }
        let credit = (window - pending.len()) as u64;
        if stopping.is_none() && credit > 0 {
            let n = job.due(w.start, seq).min(credit);
            let sent_ns = now_ns();
            for _ in 0..n {
                let stamp = Stamp {
                    publisher: job.index,
                    seq,
                    sent_ns,
                };
                job.template.write(&mut c.wbuf, Some(next_id), stamp);
                pending.push_back(Pending {
                    packet_id: next_id,
                    seq,
                    released: false,
                });
                next_id = next_id.next();
                seq += 1;
            }
        }
        let waiting_for_rate = job.schedule.is_some()
            && stopping.is_none()
            && c.wbuf.is_empty()
            && pending.len() < window;
        if c.rbuf.capacity() - c.rbuf.len() < 4096 {
            c.rbuf.reserve(16 * 1024);
        }
        let (mut rd, mut wr) = c.stream.split();
        tokio::select! {
            biased;
            _ = stop.cancelled(), if stopping.is_none() => {
                stopping = Some(tokio::time::Instant::now() + job.drain);
                continue;
            }
            _ = tokio::time::sleep_until(stopping.unwrap_or_else(tokio::time::Instant::now)), if stopping.is_some() => break,
            r = wr.write_buf(&mut c.wbuf), if !c.wbuf.is_empty() => {
                if r.map_err(|e| Error::io("publish", e))? == 0 {
                    return Err(Error::Protocol("the broker closed a publisher".into()));
                }
                continue;
            }
            r = rd.read_buf(&mut c.rbuf) => {
                if r.map_err(|e| Error::io("publisher read", e))? == 0 {
                    return Err(Error::Protocol("the broker closed a publisher".into()));
                }
            }
            _ = job.next_due(), if waiting_for_rate => continue,
        }
        let in_window = w.contains(now_ns());
        loop {
            let packet = match decode(&mut c.rbuf, Some(version), &limits) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => return Err(Error::Protocol(format!("publisher decode: {e}"))),
            };
            let (id, reason, kind) = match &packet {
                Packet::PubAck(a) => (a.packet_id, a.reason, 1),
                Packet::PubRec(a) => (a.packet_id, a.reason, 2),
                Packet::PubComp(a) => (a.packet_id, a.reason, 3),
                Packet::Disconnect(d) => {
                    return Err(Error::Protocol(format!(
                        "the broker disconnected a publisher: reason 0x{:02X}",
                        d.reason.0
                    )));
                }
                _ => continue,
            };
            let Some(pos) = pending.iter().position(|p| p.packet_id == id) else {
                return Err(Error::Protocol(format!(
                    "acknowledgement for unknown packet id {}",
                    id.get()
                )));
            };
            match kind {
                // PUBACK, or PUBREC: the broker has taken the message.
                1 | 2 if !pending[pos].released => {
                    if reason.is_error() {
                        report.rejected += 1;
                        pending.remove(pos);
                        continue;
                    }
                    report.done.insert(pending[pos].seq);
                    if in_window {
                        report.in_window += 1;
                    }
                    if kind == 1 {
                        pending.remove(pos);
                    } else {
                        pending[pos].released = true;
                        encode(&Packet::PubRel(PubAck::new(id)), version, &mut c.wbuf);
                    }
                }
                3 if pending[pos].released => {
                    pending.remove(pos);
                }
                _ => {
                    return Err(Error::Protocol(format!(
                        "unexpected acknowledgement for packet id {}",
                        id.get()
                    )));
                }
            }
        }
    }
    report.unacknowledged = pending.iter().filter(|p| !p.released).count() as u64;
    Ok(report)
}
