//! The load of one round: QoS 1 and QoS 2 publishers and persistent subscribers spread over the
//! nodes, each on its own task, all writing to one [`Journal`]. Bounded: the publishers stop when
//! told (each sends at most one message per `pace`), the subscribers once every acknowledged
//! message arrived or the drain deadline passed.

pub mod journal;
pub mod publisher;
pub mod session;
pub mod subscriber;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wardgate_protocol::QoS;

use crate::error::{Error, Result};
use journal::Journal;
use publisher::Publisher;
use subscriber::Subscriber;

/// How big a round's load is.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    /// Publishers per QoS level (1 and 2), spread over the nodes.
    pub publishers_per_qos: usize,
    /// Persistent subscribers, spread over the nodes; each receives every publisher.
    pub subscribers: usize,
    /// The time between two messages of one publisher.
    pub pace: Duration,
    /// Where the clients connect first.
    pub layout: Layout,
}

/// Where a round's clients connect first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Publishers and subscribers round-robin over the nodes.
    Spread,
    /// Every publisher on the fault's node, the subscribers on the others: a loss is then a
    /// publisher's acknowledged message, not a subscriber's session (the checker's self-test).
    PublishersOnFaultNode,
}

impl Layout {
    /// The first node of client `i` (a publisher when `publisher`).
    fn home(self, i: usize, publisher: bool, nodes: usize, fault_node: usize) -> usize {
        match self {
            Layout::Spread => i % nodes,
            Layout::PublishersOnFaultNode if publisher => fault_node,
            Layout::PublishersOnFaultNode => (fault_node + 1 + i % (nodes - 1).max(1)) % nodes,
        }
    }
}

/// A round's running load.
#[derive(Debug)]
pub struct Load {
    /// What the clients saw.
    pub journal: Arc<Journal>,
    /// The QoS of each publisher, by index.
    pub qos: Vec<QoS>,
    stop_publishing: CancellationToken,
    abort_publishing: CancellationToken,
    stop_receiving: CancellationToken,
    publishers: JoinSet<Result<()>>,
    subscribers: JoinSet<Result<()>>,
}

/// How long the subscribers may take to subscribe.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after the last subscription the publishers start: the subscribing nodes' interest
/// reaches every NATS server.
const INTEREST_SPREAD: Duration = Duration::from_millis(500);

impl Load {
    /// Starts the subscribers of round `round`, waits until each has its subscription, then
    /// starts the publishers; `fault_node` is the node the round's fault hits.
    pub async fn start(
        round: usize,
        shape: LoadShape,
        nodes: &[SocketAddr],
        fault_node: usize,
    ) -> Result<Load> {
        let nodes: Arc<[SocketAddr]> = nodes.into();
        let qos: Vec<QoS> = [QoS::AtLeastOnce, QoS::ExactlyOnce]
            .into_iter()
            .flat_map(|q| std::iter::repeat_n(q, shape.publishers_per_qos))
            .collect();
        let journal = Arc::new(Journal::new(qos.len(), shape.subscribers));
        let stop_receiving = CancellationToken::new();
        let mut subscribers = JoinSet::new();
        for i in 0..shape.subscribers {
            let s = Subscriber {
                index: i as u32,
                home: shape.layout.home(i, false, nodes.len(), fault_node),
                client_id: format!("faults-r{round}-s{i}"),
                filter: format!("faults/r{round}/#"),
            };
            subscribers.spawn(subscriber::run(
                s,
                nodes.clone(),
                journal.clone(),
                stop_receiving.clone(),
            ));
        }
        let deadline = tokio::time::Instant::now() + SUBSCRIBE_TIMEOUT;
        while !journal.all_subscribed() {
            if tokio::time::Instant::now() >= deadline {
                stop_receiving.cancel();
                return Err(Error::Load(format!(
                    "round {round}: the subscribers did not subscribe within {SUBSCRIBE_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(INTEREST_SPREAD).await;
        let stop_publishing = CancellationToken::new();
        let abort_publishing = CancellationToken::new();
        let mut publishers = JoinSet::new();
        for (i, &q) in qos.iter().enumerate() {
            let p = Publisher {
                index: i as u32,
                qos: q,
                home: shape.layout.home(i, true, nodes.len(), fault_node),
                client_id: format!("faults-r{round}-p{i}"),
                topic: format!("faults/r{round}/p{i}"),
                pace: shape.pace,
            };
            publishers.spawn(publisher::run(
                p,
                nodes.clone(),
                journal.clone(),
                stop_publishing.clone(),
                abort_publishing.clone(),
            ));
        }
        Ok(Load {
            journal,
            qos,
            stop_publishing,
            abort_publishing,
            stop_receiving,
            publishers,
            subscribers,
        })
    }

    /// Stops publishing: each publisher completes its message in flight (within `grace`) and
    /// disconnects. Then waits until every subscriber received every acknowledged message, or
    /// `drain` passed, and disconnects the subscribers.
    pub async fn finish(mut self, grace: Duration, drain: Duration) -> Result<()> {
        self.stop_publishing.cancel();
        let abort = self.abort_publishing.clone();
        let publishers = async {
            while let Some(done) = self.publishers.join_next().await {
                flatten(done)?;
            }
            Ok::<(), Error>(())
        };
        let outcome = tokio::select! {
            outcome = publishers => outcome,
            () = tokio::time::sleep(grace) => {
                abort.cancel();
                while let Some(done) = self.publishers.join_next().await {
                    flatten(done)?;
                }
                Ok(())
            }
        };
        outcome?;
        let deadline = tokio::time::Instant::now() + drain;
        while self.journal.missing() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.stop_receiving.cancel();
        while let Some(done) = self.subscribers.join_next().await {
            flatten(done)?;
        }
        Ok(())
    }

    /// Ends every client at once (the run was interrupted).
    pub fn abort(&mut self) {
        self.abort_publishing.cancel();
        self.stop_receiving.cancel();
        self.publishers.abort_all();
        self.subscribers.abort_all();
    }
}

fn flatten(done: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    match done {
        Ok(result) => result,
        Err(e) if e.is_cancelled() => Ok(()),
        Err(e) => Err(Error::Load(format!("a client's task failed: {e}"))),
    }
}
