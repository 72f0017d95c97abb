//! Unit tests of the process helpers.

use super::*;

#[test]
fn free_ports_are_distinct_and_bindable() {
    let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
    let distinct: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len());
    for port in ports {
        assert!(PORT_RANGE.contains(&port));
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }
}

#[test]
fn wait_for_port_times_out_on_a_closed_port() {
    let port = free_port().unwrap();
    let started = Instant::now();
    let err = wait_for_port(port, Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn wait_for_port_sees_a_listener() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    wait_for_port(port, Duration::from_secs(2)).unwrap();
}

#[test]
fn run_captures_output_and_status() {
    let out = run(
        Command::new("sh").args(["-c", "echo one; echo two; echo err >&2; exit 3"]),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(out.stdout, "one\ntwo\n");
    assert_eq!(out.stderr, "err\n");
    assert_eq!(out.status.code(), Some(3));
    assert!(out.ok().is_err());
}

#[test]
fn run_kills_a_process_that_overstays() {
    let started = Instant::now();
    let err = run(
        Command::new("sh").args(["-c", "echo started; exec sleep 30"]),
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    match err {
        Error::Timeout { output, .. } => assert!(output.contains("started"), "{output}"),
        other => panic!("expected a timeout, got {other}"),
    }
}

#[test]
fn wait_for_line_returns_the_matching_line_and_keeps_the_rest() {
    let mut sub = Running::spawn(
        Command::new("sh").args(["-c", "echo a; echo ready 42; echo b; exec sleep 30"]),
    )
    .unwrap();
    let line = sub.wait_for_line("ready", Duration::from_secs(5), |l| l.starts_with("ready"));
    assert_eq!(line.unwrap(), "ready 42");
    let err = sub.wait_for_line("never", Duration::from_millis(200), |l| l == "never");
    assert!(matches!(err, Err(Error::Timeout { .. })));
    let out = sub.kill();
    assert_eq!(out.stdout, "a\nready 42\nb\n");
    assert!(!out.success());
}

#[test]
fn wait_for_line_reports_a_process_that_ended_first() {
    let mut sub = Running::spawn(Command::new("sh").args(["-c", "echo only; exit 4"])).unwrap();
    let err = sub
        .wait_for_line("never", Duration::from_secs(5), |l| l == "never")
        .unwrap_err();
    match err {
        Error::Ended { output, .. } => assert!(output.contains("only"), "{output}"),
        other => panic!("expected Ended, got {other}"),
    }
}

#[test]
fn missing_tools_say_to_run_scripts_test() {
    let err = find_program("no-such-tool-wardgate", &[]).unwrap_err();
    assert!(err.to_string().contains("run scripts/test"), "{err}");
}

#[test]
fn listener_yaml_names_every_port() {
    let yaml = listener_yaml(BrokerPorts {
        mqtt: 21001,
        mqtt2: 21002,
        ws: 21003,
    });
    assert!(yaml.contains("- port: 21001\n    protocol: Mqtt\n"));
    assert!(yaml.contains("- port: 21002\n    protocol: Mqtt\n"));
    assert!(yaml.contains("- port: 21003\n    protocol: WebSockets\n"));
    assert!(yaml.contains("serviceType: ClusterIp"));
}
