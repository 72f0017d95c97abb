//! The cluster crate's tests: the topic/subject mapping property-tested against MQTT's matching
//! rules, and the same mapping and a replicated stream on a real NATS cluster.

mod fabric;
mod members;
mod nats_live;
mod overload;
mod partition;
mod shared;
mod simultaneous;
mod subject_props;
mod sweep;
mod sys;
mod takeover;
mod wills;
