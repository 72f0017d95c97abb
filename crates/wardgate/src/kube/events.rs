//! Kubernetes Events for the resources whose status [`super::status`] writes (issue 19 item 5):
//! the lines the logs print (`Server certificate <name> not found. Awaiting creation of
//! secret.`), regarding the resource, so that `kubectl describe brokerlistener X` shows them.
//!
//! An Event is recorded when a state changes, never for an unchanged one; kube-runtime's
//! `Recorder` (events.k8s.io/v1) counts a repeated Event in its series instead of adding one.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

/// The most an Event's note may hold (the API refuses longer ones).
const MAX_NOTE_BYTES: usize = 1024;

/// Something worth an Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Happening {
    /// A warning (a port not serving, a refused configuration) or normal.
    pub(crate) warning: bool,
    /// `Listening`, `AwaitingSecret`, ..., `InvalidConfiguration`, `Available`.
    pub(crate) reason: &'static str,
    /// The log's line.
    pub(crate) note: String,
    /// What it concerns: `ServePort<N>` for a port's state, `Configure` otherwise. The
    /// `Recorder` counts an Event with the same reason and action as a repetition, so two ports
    /// waiting for different Secrets must differ here to keep both lines.
    pub(crate) action: String,
}

impl Happening {
    /// A warning about the resource: a refused configuration, a problem it causes.
    pub(crate) fn warning(reason: &'static str, note: &str) -> Happening {
        Happening {
            warning: true,
            reason,
            note: note.to_owned(),
            action: "Configure".to_owned(),
        }
    }

    /// A normal Event about the resource: available again.
    pub(crate) fn normal(reason: &'static str, note: String) -> Happening {
        Happening {
            warning: false,
            reason,
            note,
            action: "Configure".to_owned(),
        }
    }

    /// Port `port` entered `state`; `problem` is the line the log prints when it does not listen.
    pub(crate) fn port(port: u16, state: &'static str, problem: Option<&str>) -> Happening {
        Happening {
            warning: problem.is_some(),
            reason: state,
            note: problem.map_or_else(|| format!("Port {port} is listening."), str::to_owned),
            action: format!("ServePort{port}"),
        }
    }
}

/// Records Events as the `wardgate` controller.
pub(crate) struct EventLog {
    recorder: Recorder,
}

impl EventLog {
    /// Records with `client`.
    pub(crate) fn new(client: kube::Client) -> EventLog {
        let reporter = Reporter {
            controller: "wardgate".into(),
            instance: None,
        };
        EventLog {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Records `happening` regarding `object`; a failure is logged, not retried (the status
    /// holds the same line).
    pub(crate) async fn record(&self, object: &ObjectReference, happening: &Happening) {
        let event = Event {
            type_: match happening.warning {
                true => EventType::Warning,
                false => EventType::Normal,
            },
            reason: happening.reason.to_owned(),
            note: Some(truncate(&happening.note, MAX_NOTE_BYTES).to_owned()),
            action: happening.action.clone(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, object).await {
            warn!(object = ?object.name, reason = happening.reason, error = %e, "cannot record an Event");
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
