//! End-to-end journeys with the MQTT clients users have: `mosquitto_pub`/`mosquitto_sub`,
//! Eclipse Paho (Python) and MQTT.js (Node), against the `wardgate` binary started from a
//! BrokerListener config with two MQTT ports and one WebSocket port.
//!
//! The clients are installed by `scripts/test`; a missing one fails the test and says so.
//! `WARDGATE_TEST_BROKER=mosquitto` runs the same journeys against Mosquitto, as a reference.

mod mosquitto;
mod mqttjs;
mod paho;

use std::fmt::Display;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use wardgate_testkit::process::{self, Broker, Output};

/// How long one Paho or MQTT.js journey may take, end to end (the scripts stop themselves at
/// [`SCRIPT_TIMEOUT_SECS`]; this is the backstop that kills them).
const JOURNEY_TIMEOUT: Duration = Duration::from_secs(45);
/// The scripts' own hard timeout, in seconds.
const SCRIPT_TIMEOUT_SECS: &str = "30";

/// Starts the broker under test (Wardgate unless `WARDGATE_TEST_BROKER=mosquitto`).
fn start_broker() -> Broker {
    Broker::start(Path::new(env!("CARGO_BIN_EXE_wardgate"))).or_fail()
}

/// Unwraps with the error's `Display`, which for these errors carries the process output.
trait OrFail<T> {
    fn or_fail(self) -> T;
}

impl<T, E: Display> OrFail<T> for Result<T, E> {
    #[track_caller]
    fn or_fail(self) -> T {
        match self {
            Ok(value) => value,
            Err(err) => panic!("{err}"),
        }
    }
}

/// The closing line of a journey script: `{"journey": .., "ok": .., "observed": .., ..}`.
#[derive(Debug)]
pub(crate) struct Journey {
    output: Output,
    result: Value,
}

impl Journey {
    /// Runs a journey script and parses its closing JSON line.
    fn run(cmd: &mut Command) -> Journey {
        cmd.env("JOURNEY_TIMEOUT", SCRIPT_TIMEOUT_SECS);
        let output = process::run(cmd, JOURNEY_TIMEOUT).or_fail();
        let result = output
            .lines()
            .rev()
            .find_map(|line| {
                serde_json::from_str::<Value>(line)
                    .ok()
                    .filter(|v| v.get("ok").is_some())
            })
            .unwrap_or_else(|| panic!("the journey printed no closing JSON line:\n{output}"));
        Journey { output, result }
    }

    /// Runs a journey that must pass: exit status 0 and `"ok": true`.
    pub(crate) fn pass(cmd: &mut Command) -> Journey {
        let journey = Journey::run(cmd);
        assert!(
            journey.output.success() && journey.result["ok"] == Value::Bool(true),
            "the journey failed:\n{}",
            journey.output
        );
        journey
    }

    /// `observed.<path>` (a `/`-separated JSON pointer below `observed`).
    pub(crate) fn observed(&self, pointer: &str) -> &Value {
        self.result
            .pointer(&format!("/observed/{pointer}"))
            .unwrap_or_else(|| panic!("no observed/{pointer} in {}", self.result))
    }
}
