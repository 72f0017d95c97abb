//! The subscriber side of a message run: read whatever has arrived, record sequence numbers and
//! latency, and acknowledge QoS 1/2 deliveries in one write per read.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Buf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wardgate_protocol::{DecodeLimits, Packet, PubAck, QoS, decode, encode, peek_size};

use super::{Live, SubReport, Window, wait_window};
use crate::error::{Error, Result};
use crate::histogram::Histogram;
use crate::scenario::ReadMode;
use crate::seq::SeqSet;
use crate::wire::{Client, Stamp, now_ns, parse_publish};

/// Reads deliveries until stopped: records sequence numbers and latency, acknowledges QoS 1/2.
pub(super) async fn subscriber(
    mut c: Client,
    group: usize,
    read: ReadMode,
    live: Arc<Live>,
    mut window: watch::Receiver<Option<Window>>,
    stop: CancellationToken,
) -> Result<SubReport> {
    let mut report = SubReport {
        group,
        seqs: HashMap::new(),
        duplicates: 0,
        delivered_total: 0,
        delivered_in_window: 0,
        latency: Histogram::default(),
    };
    let w = tokio::select! {
        _ = stop.cancelled() => return Ok(report),
        w = wait_window(&mut window) => w?,
    };
    let limits = DecodeLimits::default();
    let version = c.version;
    let mut last: Option<(u32, SeqSet)> = None;
    loop {
        if c.rbuf.capacity() - c.rbuf.len() < 16 * 1024 {
            c.rbuf.reserve(64 * 1024);
        }
        let n = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = c.stream.read_buf(&mut c.rbuf) => r.map_err(|e| Error::io("subscriber read", e))?,
        };
        if n == 0 {
            return Err(Error::Protocol("the broker closed a subscriber".into()));
        }
        let now = now_ns();
        let in_window = w.contains(now);
        let mut count = 0u64;
        loop {
            let size = match peek_size(&c.rbuf, &limits) {
                Ok(Some(size)) if size <= c.rbuf.len() => size,
                Ok(_) => break,
                Err(e) => return Err(Error::Protocol(format!("subscriber decode: {e}"))),
            };
            if c.rbuf[0] >> 4 == 3 {
                let p = parse_publish(&c.rbuf[..size], version)
                    .ok_or_else(|| Error::Protocol("malformed PUBLISH".into()))?;
                if let Some(stamp) = Stamp::read(p.payload) {
                    count += 1;
                    if in_window {
                        report.latency.record(now.saturating_sub(stamp.sent_ns));
                    }
                    // Consecutive messages mostly come from the same publisher: keep its set at
                    // hand and file it in the map when another publisher shows up.
                    let set = match &mut last {
                        Some((p, set)) if *p == stamp.publisher => set,
                        slot => {
                            if let Some((p, set)) = slot.take() {
                                report.seqs.insert(p, set);
                            }
                            let set = report.seqs.remove(&stamp.publisher).unwrap_or_default();
                            &mut slot.insert((stamp.publisher, set)).1
                        }
                    };
                    if !set.insert(stamp.seq) {
                        report.duplicates += 1;
                    }
                }
                match (p.qos, p.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => {
                        encode(&Packet::PubAck(PubAck::new(id)), version, &mut c.wbuf)
                    }
                    (QoS::ExactlyOnce, Some(id)) => {
                        encode(&Packet::PubRec(PubAck::new(id)), version, &mut c.wbuf)
                    }
                    _ => {}
                }
                c.rbuf.advance(size);
            } else {
                match decode(&mut c.rbuf, Some(version), &limits) {
                    Ok(Some(Packet::PubRel(rel))) => encode(
                        &Packet::PubComp(PubAck::new(rel.packet_id)),
                        version,
                        &mut c.wbuf,
                    ),
                    Ok(Some(Packet::Disconnect(d))) => {
                        return Err(Error::Protocol(format!(
                            "the broker disconnected a subscriber: reason 0x{:02X}",
                            d.reason.0
                        )));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(Error::Protocol(format!("subscriber decode: {e}"))),
                }
            }
        }
        if !c.wbuf.is_empty() {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                r = c.stream.write_all(&c.wbuf) => r.map_err(|e| Error::io("subscriber ack", e))?,
            }
            c.wbuf.clear();
        }
        report.delivered_total += count;
        if in_window {
            report.delivered_in_window += count;
        }
        live.delivered.0.fetch_add(count, Ordering::Relaxed);
        if read == ReadMode::Coalesce {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
    }
    if let Some((p, set)) = last {
        report.seqs.insert(p, set);
    }
    c.disconnect().await;
    Ok(report)
}
