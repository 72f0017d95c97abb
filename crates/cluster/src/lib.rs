//! Several Wardgate nodes acting as one broker on NATS JetStream (issue 17). This crate owns the
//! pieces the fabric stands on: the reversible topic → subject mapping ([`subject`]).

pub mod subject;

pub use subject::{filter_subjects, subject_topic, topic_subject};
