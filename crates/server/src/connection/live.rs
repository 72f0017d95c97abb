//! An attached connection, and the task that serves it.
//!
//! Every idle connection costs what its task keeps, so the attached connection is a plain struct
//! ([`Live`]) whose loop is polled by hand, not an `async fn` with a `select!`: an `async fn`
//! keeps its arguments twice, pads its states to the largest one, and holds one stored future
//! per thing it waits for (each shutdown, wake-up and kick listener), about 2.7 KB per connection
//! in all. Here the wake-ups are bits in the connection's [`Control`] (a port that closes kicks
//! its connections through the registry; the registry watches keep-alive deadlines), the socket is
//! polled directly, and an idle plain-TCP connection keeps no read or write buffer.
//!
//! The loop does what the `select!` it replaced did, in the same order on each pass: the broker's
//! kicks (shutdown included) and the session's wake-ups, the timers, then the work (decode what
//! was read, release what became durable, take from the session's queue), then writing and
//! reading.

use std::future::Future;
use std::ops::ControlFlow::{self, Break, Continue};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};
use tracing::{Instrument, debug, info};
use wardgate_core::{Disconnect, LinkState};
use wardgate_protocol::{Auth, DecodeLimits, Packet, ProtocolVersion, ReasonCode, decode, encode};

use super::{Conn, End, ReadSizer, Stop, Transport, durable, linger};
use crate::registry::ConnectionId;
use crate::stats::CategoryStats;
use crate::wake::{Control, Event, SpaceWake, clock_ms};

/// How many passes one poll makes before it lets other tasks run: the socket's own budget
/// stops reads and writes, but not the session's wake-ups.
const PASSES_PER_POLL: usize = 32;

/// How long a connection asked to hand its session over waits, once it found nothing more to
/// read, before it ends: the runtime polls for I/O before timers fire, so bytes the client sent
/// before its new connection came are seen by then.
const HANDOVER_SETTLE: std::time::Duration = std::time::Duration::from_millis(5);

/// The smallest write buffer taken for a burst of output.
const WRITE_MIN: usize = 256;

/// A connection's task: attaching (its own allocation, freed once attached), then serving.
///
/// It keeps no tracing span: with logs at `info` a span costs a connection ~430 bytes (the
/// subscriber's slot, its extension map and the formatted fields), so the `conn` span is made
/// again for each of the connection's few log events ([`Conn::span`]), which print as before.
pub(crate) struct Task<S> {
    state: State<S>,
}

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[expect(
    clippy::large_enum_variant,
    reason = "serving is what the task is for; the other states are short and boxed"
)]
enum State<S> {
    Attaching(Boxed<Option<Live<S>>>),
    Serving(Live<S>),
    /// Re-authentication awaits the authenticator (a webhook call, perhaps): rare, boxed.
    Reauthenticating(Boxed<(Live<S>, Option<End>)>),
    /// The goodbye and the session's detachment.
    Ending(Boxed<()>),
    Done,
}

impl<S: Transport> Future for Task<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Attaching(attach) => match attach.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => this.state = State::Done,
                    Poll::Ready(Some(live)) => this.state = State::Serving(live),
                },
                State::Serving(live) => {
                    let stop = match live.poll_serve(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(stop) => stop,
                    };
                    this.state = match (std::mem::replace(&mut this.state, State::Done), stop) {
                        (State::Serving(live), Stop::End(end)) => Self::ending(live, end),
                        (State::Serving(live), Stop::Reauthenticate(auth)) => {
                            let span = live.conn.span();
                            State::Reauthenticating(Box::pin(
                                live.reauthenticate(auth).instrument(span),
                            ))
                        }
                        // Not reached: the state is the one just polled.
                        (other, _) => other,
                    };
                }
                State::Reauthenticating(reauth) => {
                    let (live, end) = match reauth.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(done) => done,
                    };
                    this.state = match end {
                        None => State::Serving(live),
                        Some(end) => Self::ending(live, end),
                    };
                }
                State::Ending(ending) => match ending.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => this.state = State::Done,
                },
                State::Done => return Poll::Ready(()),
            }
        }
    }
}

impl<S: Transport> Task<S> {
    pub(super) fn new(attach: Boxed<Option<Live<S>>>) -> Self {
        Self {
            state: State::Attaching(attach),
        }
    }

    fn ending(live: Live<S>, end: End) -> State<S> {
        let span = live.conn.span();
        State::Ending(Box::pin(live.finish(end).instrument(span)))
    }
}

/// What the connect phase hands over besides the socket and the connection's state.
pub(super) struct Settled {
    pub(super) rbuf: BytesMut,
    pub(super) wbuf: BytesMut,
    pub(super) gate: durable::Gate,
    pub(super) limits: DecodeLimits,
    pub(super) keep_alive: u16,
    pub(super) control: Arc<Control>,
    pub(super) id: ConnectionId,
}

/// An attached connection.
pub(crate) struct Live<S> {
    stream: S,
    conn: Conn,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Persistence: output held until the store made durable what it acknowledges.
    gate: durable::Gate,
    limits: DecodeLimits,
    sizer: ReadSizer,
    /// The largest output of the burst being written, and of the last one (the next burst's
    /// write buffer starts with that capacity).
    burst: usize,
    write_size: usize,
    control: Arc<Control>,
    id: ConnectionId,
    /// Keep-alive: 1.5 times the interval [MQTT-3.1.2-24], in milliseconds (0: none). Each read
    /// moves the deadline in the [`Control`]; the registry's watch signals when it passed.
    keep_alive_grace: u64,
    /// Backpressure: decoding paused after a PUBLISH found a live subscriber's queue congested,
    /// until that queue has room or `congestion_wait` passed.
    pause: Option<Pin<Box<Sleep>>>,
    /// The credential's expiry (SPEC.md §7.6), moved by re-authentication; only for
    /// credentials that expire.
    expiry: Option<Pin<Box<Sleep>>>,
    /// Bytes read and not decoded yet (decoding stops while a queue is congested).
    undecoded: bool,
    /// The write buffer was written out; the stream still has to flush.
    flush: bool,
    /// A new connection of the client ID waits to take the session over
    /// ([`LinkState::HandoverAsked`]): end once what the socket has was read and processed,
    /// checked again after the timer (armed when first nothing was left).
    handover: Option<Option<Pin<Box<Sleep>>>>,
}

impl<S: Transport> Live<S> {
    pub(super) fn new(stream: S, conn: Conn, settled: Settled) -> Self {
        let keep_alive_grace = u64::from(settled.keep_alive) * 1500;
        settled.control.keep_alive_for(keep_alive_grace);
        let expiry = credential_timer(&conn);
        // Packets the client sent with CONNECT, before its CONNACK [MQTT-3.1.4-5], are in the
        // read buffer already: the first pass decodes them instead of waiting for the socket
        // to become readable again (with keep alive 0 it might never be).
        let undecoded = !settled.rbuf.is_empty();
        Self {
            stream,
            conn,
            rbuf: settled.rbuf,
            wbuf: settled.wbuf,
            gate: settled.gate,
            limits: settled.limits,
            sizer: ReadSizer::default(),
            burst: 0,
            write_size: WRITE_MIN,
            control: settled.control,
            id: settled.id,
            keep_alive_grace,
            pause: None,
            expiry,
            undecoded,
            flush: false,
            handover: None,
        }
    }

    /// Runs passes of the loop until the connection must wait, end, or re-authenticate.
    fn poll_serve(&mut self, cx: &mut Context<'_>) -> Poll<Stop> {
        // Once per poll: an event after this wakes the task, and one that comes while this poll
        // still runs is either taken by a later pass or polls the task again.
        self.control.register(cx.waker());
        for _ in 0..PASSES_PER_POLL {
            match self.pass(cx) {
                Continue(true) => {}
                Continue(false) => {
                    self.release_idle_buffers();
                    return Poll::Pending;
                }
                Break(stop) => return Poll::Ready(stop),
            }
        }
        // Other connections' turn; this one goes on at its next poll.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One turn of the loop: `Continue(true)` when anything happened (another pass may find
    /// more), `Continue(false)` when the task waits for an event.
    fn pass(&mut self, cx: &mut Context<'_>) -> ControlFlow<Stop, bool> {
        let mut progress = false;
        let events = self.control.take();
        if events.contains(Event::Kick) {
            let reason = self.control.kick_reason();
            let why = if reason == ReasonCode::SERVER_SHUTTING_DOWN {
                "server shutting down"
            } else {
                "disconnected by the broker"
            };
            return Break(Stop::End(End::Server(reason, why)));
        }
        if events.contains(Event::Queue) {
            match self.conn.link_state() {
                LinkState::Gone(_) => return Break(Stop::End(End::TakenOver)),
                // Handing over, only what the client sends counts as progress: messages
                // queued for the session wait for the new connection.
                LinkState::HandoverAsked if self.handover.is_some() => {}
                LinkState::HandoverAsked => {
                    self.handover = Some(None);
                    progress = true;
                }
                LinkState::Attached => progress = true,
            }
        }
        // Room in the queue ends the pause that was waiting for it (not one begun below).
        let space = events.contains(Event::Space) && self.pause.is_some();
        if let Some(expiry) = &mut self.expiry
            && expiry.as_mut().poll(cx).is_ready()
        {
            return Break(Stop::End(End::Server(
                ReasonCode::NOT_AUTHORIZED,
                "credential expired",
            )));
        }
        if events.contains(Event::KeepAlive) {
            // Packets waiting in the read buffer (backpressure) count as heard from the client.
            if self.undecoded {
                self.heard();
            } else if self.control.keep_alive_passed(clock_ms()) {
                return Break(Stop::End(End::Server(
                    ReasonCode::KEEP_ALIVE_TIMEOUT,
                    "keep alive timeout",
                )));
            }
        }

        self.work()?;
        // Polled after the work, so that a pause it began has its timer registered.
        if let Some(pause) = &mut self.pause
            && (space || pause.as_mut().poll(cx).is_ready())
        {
            self.pause = None;
            progress = true;
        }
        if self.undecoded && self.pause.is_none() {
            // The queue had room again by now: go on decoding.
            progress = true;
        }

        match self.poll_write(cx) {
            Err(()) => return Break(Stop::End(End::Lost)),
            Ok(wrote) => progress |= wrote && self.handover.is_none(),
        }
        match self.poll_read(cx) {
            Err(()) => return Break(Stop::End(End::Lost)),
            Ok(read) => progress |= read,
        }
        if progress {
            return Continue(true);
        }
        if let Some(settle) = &mut self.handover
            && self.pause.is_none()
            && !self.undecoded
        {
            // Nothing more to do here; but the runtime may not have told this socket yet of
            // bytes its client sent before the new connection came. Once a timer has passed
            // (the runtime polls for I/O before it fires timers), and still nothing came,
            // everything the client sent is processed: the new connection takes over.
            let settle =
                settle.get_or_insert_with(|| Box::pin(tokio::time::sleep(HANDOVER_SETTLE)));
            if settle.as_mut().poll(cx).is_ready() {
                return Break(Stop::End(End::TakenOver));
            }
        }
        Continue(false)
    }

    /// Decodes and handles what was read, releases durable output, and takes from the session's
    /// queue while the write buffer has room.
    fn work(&mut self) -> ControlFlow<Stop> {
        if self.wbuf.capacity() == 0 {
            self.wbuf.reserve(self.write_size);
        }
        if self.undecoded && self.pause.is_none() {
            self.undecoded = false;
            let from = self.wbuf.len();
            let flow = self.decode();
            // Persistence: PUBACK/PUBREC/PUBCOMP/SUBACK wait for what they confirm.
            self.gate.hold(&mut self.wbuf, from);
            flow?;
        }
        // Persistence: release acknowledgements whose data is now durable; what this pass
        // writes is held (in order) while the session's last store write is not.
        if self.gate.release(&mut self.wbuf, &self.control).is_break() {
            // A cluster node cut off from JetStream: what it could not make durable is not
            // acknowledged; the client sends it again, to another node (docs/cluster.md).
            return Break(Stop::End(End::Server(
                ReasonCode::SERVER_BUSY,
                "the cluster cannot make messages durable",
            )));
        }
        let soft_limit = self.conn.settings().write_soft_limit;
        let from = self.wbuf.len();
        if self.handover.is_none()
            && self.wbuf.len() + self.gate.held_bytes() < soft_limit
            && !self.conn.pump(&mut self.wbuf)
        {
            return Break(Stop::End(End::TakenOver));
        }
        self.gate.hold(&mut self.wbuf, from);
        if let Some(session) = self.conn.take_congested()
            && session.wait_for_space(Arc::new(SpaceWake(self.control.clone())))
        {
            let at = Instant::now() + self.conn.settings().congestion_wait;
            self.pause = Some(Box::pin(tokio::time::sleep_until(at)));
        }
        Continue(())
    }

    /// Decodes and handles packets until the buffer is empty, a queue is congested, or the
    /// connection ends or re-authenticates. Consecutive PUBLISH packets to one topic are routed
    /// together (at most `RUN_MAX`), when the buffer is empty or before anything else. A
    /// publisher adds at most one run to a congested queue per pause, whatever it had
    /// pipelined, and a slow but live subscriber slows its publishers instead of overflowing
    /// (stalled ones do not: `STALLED_AFTER`).
    fn decode(&mut self) -> ControlFlow<Stop> {
        loop {
            match decode(&mut self.rbuf, Some(self.conn.version()), &self.limits) {
                Ok(Some(packet)) => {
                    let flow = self.conn.handle(packet, &mut self.wbuf);
                    if let Break(Stop::Reauthenticate(_)) = flow {
                        // The rest of the buffer is decoded once re-authenticated.
                        self.undecoded = true;
                    }
                    flow?;
                    if self.conn.is_congested() {
                        // Nothing decoded stays unrouted while paused (a QoS 2 packet id is
                        // recorded already: a retransmission would not be routed again).
                        if let Some(end) = self.conn.flush_run(&mut self.wbuf) {
                            return Break(Stop::End(end));
                        }
                        self.undecoded = true;
                        return Continue(());
                    }
                }
                Ok(None) => {
                    // The PUBLISH packets of this read are routed together.
                    return match self.conn.flush_run(&mut self.wbuf) {
                        Some(end) => Break(Stop::End(end)),
                        None => Continue(()),
                    };
                }
                Err(e) => {
                    // What came before the malformed packet is routed and acknowledged.
                    if let Some(end) = self.conn.flush_run(&mut self.wbuf) {
                        return Break(Stop::End(end));
                    }
                    let _span = self.conn.span().entered();
                    debug!(error = %e, "malformed packet");
                    return Break(Stop::End(End::Server(e.reason_code(), "malformed packet")));
                }
            }
        }
    }

    /// Writes the write buffer out, then flushes. `Ok(true)` when bytes went out.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, ()> {
        let mut wrote = false;
        if !self.wbuf.is_empty() {
            self.burst = self.burst.max(self.wbuf.len());
            match tokio_util::io::poll_write_buf(Pin::new(&mut self.stream), cx, &mut self.wbuf) {
                Poll::Pending => return Ok(false),
                Poll::Ready(Ok(0) | Err(_)) => return Err(()),
                Poll::Ready(Ok(n)) => {
                    let stats = self.conn.broker().stats();
                    stats.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
                    CategoryStats::add(&self.conn.category().bytes_sent, n as u64);
                    wrote = true;
                    self.flush = self.wbuf.is_empty();
                }
            }
        }
        if self.flush {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Pending => {}
                Poll::Ready(Err(_)) => return Err(()),
                Poll::Ready(Ok(())) => {
                    self.flush = false;
                    // The next burst starts with what this one needed; the buffer goes when
                    // the connection idles.
                    let soft = self.conn.settings().write_soft_limit;
                    self.write_size = std::mem::take(&mut self.burst).clamp(WRITE_MIN, soft);
                }
            }
        }
        Ok(wrote)
    }

    /// Reads what the socket has, unless decoding is paused or the output is over its hard
    /// limit. `Ok(true)` when bytes came in.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Result<bool, ()> {
        let reading = !self.undecoded
            && self.pause.is_none()
            && self.wbuf.len() + self.gate.held_bytes() < self.conn.settings().write_hard_limit;
        if !reading {
            return Ok(false);
        }
        if self.rbuf.capacity() == 0 {
            // Idle, without a buffer: take one only once there is something to read.
            match self.stream.poll_read_ready(cx) {
                Poll::Pending => return Ok(false),
                Poll::Ready(Err(_)) => return Err(()),
                Poll::Ready(Ok(())) => {}
            }
        }
        self.sizer.prepare(&mut self.rbuf);
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.rbuf) {
            Poll::Pending => Ok(false),
            Poll::Ready(Ok(0) | Err(_)) => Err(()),
            Poll::Ready(Ok(n)) => {
                let stats = self.conn.broker().stats();
                stats.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                CategoryStats::add(&self.conn.category().bytes_received, n as u64);
                self.heard();
                self.sizer.observe(n);
                self.undecoded = true;
                Ok(true)
            }
        }
    }

    /// Moves the keep-alive deadline: the client was heard from now.
    fn heard(&self) {
        self.control.keep_alive_for(self.keep_alive_grace);
    }

    /// Gives the buffers back while the connection waits with nothing in them: most
    /// connections idle most of the time. The read buffer only where the socket tells
    /// readiness without one (plain TCP).
    fn release_idle_buffers(&mut self) {
        if self.wbuf.is_empty() && !self.flush && self.gate.held_bytes() == 0 {
            self.wbuf = BytesMut::new();
        }
        if S::READY_WITHOUT_BUFFER && self.rbuf.is_empty() && !self.undecoded {
            self.rbuf = BytesMut::new();
        }
    }

    /// Re-authentication (AUTH from the client), then back to serving.
    async fn reauthenticate(mut self, auth: Auth) -> (Self, Option<End>) {
        if self.wbuf.capacity() == 0 {
            self.wbuf.reserve(WRITE_MIN);
        }
        let from = self.wbuf.len();
        let end = self.conn.reauthenticate(auth, &mut self.wbuf).await;
        self.gate.hold(&mut self.wbuf, from);
        self.expiry = credential_timer(&self.conn);
        (self, end)
    }

    /// Says goodbye as `end` asks and detaches the session; after a goodbye, lingers so that
    /// the client can read it ([`linger`]).
    async fn finish(mut self, end: End) {
        let version = self.conn.version();
        let said_goodbye = matches!(end, End::Server(..) | End::TakenOver);
        let how = match end {
            End::Client(how) => {
                info!(?how, "client disconnected");
                how
            }
            End::Lost => {
                info!("connection lost");
                Disconnect::Lost
            }
            End::Server(reason, why) => {
                info!(reason = reason.0, why, "server closed the connection");
                say_goodbye(&mut self.stream, &mut self.wbuf, version, reason).await;
                Disconnect::Lost
            }
            End::TakenOver => {
                info!("session taken over by another connection");
                let reason = ReasonCode::SESSION_TAKEN_OVER;
                say_goodbye(&mut self.stream, &mut self.wbuf, version, reason).await;
                Disconnect::Lost
            }
        };
        self.conn.detach(self.id, how);
        if said_goodbye {
            linger(&mut self.stream).await;
        }
    }
}

fn credential_timer(conn: &Conn) -> Option<Pin<Box<Sleep>>> {
    conn.credential_deadline()
        .map(|at| Box::pin(tokio::time::sleep_until(at)))
}

/// Sends what is left in `wbuf` and, to a v5 client, DISCONNECT `reason`; then closes the
/// write side, within a second.
async fn say_goodbye<W: AsyncWrite + Unpin>(
    wr: &mut W,
    wbuf: &mut BytesMut,
    version: ProtocolVersion,
    reason: ReasonCode,
) {
    if version.is_v5() {
        let d = wardgate_protocol::Disconnect {
            reason,
            properties: Default::default(),
        };
        encode(&Packet::Disconnect(d), version, wbuf);
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = wr.write_all(wbuf).await;
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    })
    .await;
}
