//! TLS ports of a running `wardgate serve` that change or are misused while clients stay
//! connected: a manual Secret replaced in the `--config` folder, an automatic certificate renewed
//! in the background, and bad input (plain MQTT, random bytes, a stalled handshake, a client
//! certificate from an unknown CA) that fails only its own connection with a log line saying why.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::tls::{
    Conversation, create_secret, file_serial, log_line, publish, serve, served_serial,
    tls_round_trip, wait_for_new_serial, write_listener,
};
use crate::support::wardgate;
use wardgate_testkit::pki::{self, TestCa};
use wardgate_testkit::process::{free_port, wait_for_port};
use wardgate_testkit::resources::{authentication, manual_tls_port, quickstart_tls_port};

/// Rotation without dropping anyone: a subscriber and a publisher keep exchanging QoS 1
/// messages over their TLS connections while `wardgate create secret tls` replaces the Secret;
/// new clients get the new certificate, and neither old client reconnects.
#[test]
fn a_replaced_secret_serves_new_clients_while_connected_ones_keep_talking() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let config = dir.join("config");
    let ca = TestCa::new("Test Root CA");
    ca.write(dir, "ca");
    ca.issue_server(&pki::LOCALHOST).write(dir, "first", &[]);
    ca.issue_server(&pki::LOCALHOST).write(dir, "second", &[]);
    let (first, second) = (
        file_serial(&dir.join("first.crt")),
        file_serial(&dir.join("second.crt")),
    );
    assert_ne!(first, second);
    create_secret("rotating", dir, "first", &config);
    let port = free_port().expect("port");
    write_listener(&config, &manual_tls_port(port, "rotating"));
    let mut broker = serve(&config, &dir.join("data"));
    wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    assert_eq!(served_serial(port), first);

    let cafile = dir.join("ca.crt");
    let mut talk = Conversation::start(port, &cafile, "localhost", "rotation/x", &[]);
    let before = talk.next_message(0, Duration::from_secs(20));
    create_secret("rotating", dir, "second", &config);
    let served = wait_for_new_serial(port, &first, Duration::from_secs(20));
    assert_eq!(
        served, second,
        "new handshakes get the replaced certificate"
    );
    log_line(&mut broker, "the reload", Duration::from_secs(10), |l| {
        l.contains("configuration reloaded")
    });
    // The connections made before the rotation still deliver, several messages later.
    let mut last = before;
    for _ in 0..5 {
        last = talk.next_message(last, Duration::from_secs(20));
    }
    tls_round_trip(port, &cafile, "127.0.0.1");
    talk.assert_never_reconnected();
}

/// Background renewal: an automatic certificate that lives 25 s and is renewed 15 s before its
/// end is re-issued about 10 s after it was made, without a restart; new clients get the new
/// serial (trusted through the same trust bundle) and connected ones stay connected.
#[test]
fn an_automatic_certificate_is_renewed_in_the_background_while_clients_stay() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    let port = free_port().expect("port");
    write_listener(
        &config,
        &quickstart_tls_port(
            port,
            "Mqtt",
            "        duration: 25s\n        renewBefore: 15s\n        secretName: short-lived\n",
        ),
    );
    let data = root.path().join("data");
    let mut broker = serve(&config, &data);
    log_line(
        &mut broker,
        "the first issuance",
        Duration::from_secs(30),
        |l| l.contains("issued server certificate") && l.contains("short-lived"),
    );
    let issued = Instant::now();
    wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    let first = served_serial(port);
    assert_eq!(
        first,
        file_serial(&data.join("pki/issued/short-lived/tls.crt")),
        "the stored certificate is served"
    );
    let bundle = data.join("trust-bundle/ca.crt");
    let mut talk = Conversation::start(port, &bundle, "localhost", "renewal/x", &[]);
    let before = talk.next_message(0, Duration::from_secs(20));

    log_line(&mut broker, "the renewal", Duration::from_secs(40), |l| {
        l.contains("issued server certificate") && l.contains("it is due for renewal")
    });
    let took = issued.elapsed();
    // Due 10 s after issuance. A renewal timer that waited at least 30 s (as it once did) would
    // have served this certificate past its end.
    assert!(
        took < Duration::from_secs(22),
        "renewed {took:?} after issuance; due after 10 s"
    );
    wait_for_new_serial(port, &first, Duration::from_secs(10));
    tls_round_trip(port, &bundle, "localhost");
    let mut last = before;
    for _ in 0..5 {
        last = talk.next_message(last, Duration::from_secs(20));
    }
    talk.assert_never_reconnected();
}

/// Reads until the server closes the connection (what it sent first is returned), for at most
/// `timeout`.
fn read_until_closed(stream: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the connection is still open after {timeout:?}"
        );
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("reading {:?}: {e}", stream.local_addr()),
        }
    }
}

/// Bad input on a TLS port with X.509 client authentication: plain MQTT CONNECT bytes, random
/// bytes, a handshake that stalls halfway, and a client certificate from an unknown CA each fail
/// their own connection, each with a log line that says why, while a good client (certificate
/// from the trusted CA) keeps exchanging messages and new good clients connect meanwhile.
#[test]
fn bad_input_fails_only_its_own_connection_and_the_log_says_why() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let config = dir.join("config");
    pki::write_ca_and_server(dir);
    create_secret("server-cert", dir, "server", &config);
    for (ca, device) in [("devices", "good-device"), ("rogue", "rogue-device")] {
        let (ca_crt, ca_key) = (format!("{ca}_ca.crt"), format!("{ca}_ca.key"));
        wardgate(
            &[
                "cert",
                "ca",
                "--cn",
                &format!("{ca} CA"),
                "--out-cert",
                &ca_crt,
                "--out-key",
                &ca_key,
            ],
            dir,
        );
        wardgate(
            &[
                "cert",
                "client",
                "--cn",
                device,
                "--ca-cert",
                &ca_crt,
                "--ca-key",
                &ca_key,
                "--out-cert",
                &format!("{device}.crt"),
                "--out-key",
                &format!("{device}.key"),
            ],
            dir,
        );
    }
    wardgate(
        &[
            "create",
            "configmap",
            "devices-ca",
            "--from-file=client_ca.pem=devices_ca.crt",
            "-o",
            "config",
        ],
        dir,
    );
    std::fs::write(
        config.join("authn.yaml"),
        authentication(
            "x509-auth",
            "  - method: X509\n    x509Settings:\n      trustedClientCaCert: devices-ca\n",
        ),
    )
    .expect("write authn");
    let port = free_port().expect("port");
    write_listener(
        &config,
        &format!(
            "{}    authenticationRef: x509-auth\n",
            manual_tls_port(port, "server-cert")
        ),
    );
    let mut broker = serve(&config, &dir.join("data"));
    wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    let cafile = dir.join("ca.crt");
    let good_cert = dir.join("good-device.crt");
    let good_key = dir.join("good-device.key");
    let good = [
        "--cert",
        good_cert.to_str().expect("utf-8"),
        "--key",
        good_key.to_str().expect("utf-8"),
    ];
    let mut talk = Conversation::start(port, &cafile, "localhost", "good/x", &good);
    let mut last = talk.next_message(0, Duration::from_secs(20));

    // A handshake that starts (a record header announcing 512 bytes of ClientHello, and 6 of
    // them) and stalls. It is held open while everything else happens.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stalled
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ])
        .expect("write");
    let stalled_at = Instant::now();

    // Meanwhile, with the stalled handshake open: the old client delivers and a new good client
    // connects and publishes.
    last = talk.next_message(last, Duration::from_secs(20));
    let mut fresh_args = good.to_vec();
    fresh_args.extend(["-q", "1", "-t", "good/fresh", "-m", "hello"]);
    let fresh = publish(port, &cafile, "localhost", &fresh_args);
    assert!(fresh.success(), "a good client connects meanwhile: {fresh}");
    assert!(
        stalled_at.elapsed() < Duration::from_secs(9),
        "the good clients worked while the handshake was stalled"
    );

    // Plain MQTT: a v3.1.1 CONNECT, as a client that forgot TLS sends it.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    plain
        .write_all(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04oops")
        .expect("write");
    let answer = read_until_closed(&mut plain, Duration::from_secs(15));
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "a TLS alert, then the connection closes: {answer:?}"
    );

    // Random bytes (a first byte that starts neither TLS nor MQTT nor HTTP).
    let mut random: Vec<u8> = (0..64u64)
        .map(|i| {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(i) as u8
        })
        .collect();
    random[0] = 0x9b;
    let mut noise = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    noise.write_all(&random).expect("write");
    read_until_closed(&mut noise, Duration::from_secs(15));

    // A client certificate from a CA the port does not trust: the handshake fails.
    let rogue = publish(
        port,
        &cafile,
        "localhost",
        &[
            "--cert",
            dir.join("rogue-device.crt").to_str().expect("utf-8"),
            "--key",
            dir.join("rogue-device.key").to_str().expect("utf-8"),
            "-t",
            "good/x",
            "-m",
            "rogue",
        ],
    );
    assert!(
        !rogue.success(),
        "the rogue certificate is refused: {rogue}"
    );

    let peer = |s: &TcpStream| format!("peer=127.0.0.1:{}", s.local_addr().expect("addr").port());
    let line = log_line(
        &mut broker,
        "the plain MQTT line",
        Duration::from_secs(20),
        |l| l.contains(&peer(&plain)),
    );
    assert!(
        line.contains("TLS handshake failed: the client sent a plain MQTT CONNECT to a TLS port"),
        "{line}"
    );
    let line = log_line(
        &mut broker,
        "the random bytes line",
        Duration::from_secs(20),
        |l| l.contains(&peer(&noise)),
    );
    assert!(
        line.contains("TLS handshake failed: the client does not speak TLS (it sent 9b "),
        "{line}"
    );
    let line = log_line(
        &mut broker,
        "the rogue certificate line",
        Duration::from_secs(20),
        |l| l.contains("client certificate rejected"),
    );
    assert!(
        line.contains("rogue-device") && line.contains("devices-ca"),
        "the line names the certificate and the trusted CAs: {line}"
    );
    log_line(
        &mut broker,
        "the failed handshake",
        Duration::from_secs(20),
        |l| l.contains("TLS handshake failed: the client certificate was rejected"),
    );

    // The stalled handshake is closed by the 10 s handshake timeout, and says so.
    read_until_closed(&mut stalled, Duration::from_secs(30));
    let line = log_line(
        &mut broker,
        "the timeout line",
        Duration::from_secs(20),
        |l| l.contains(&peer(&stalled)),
    );
    assert!(
        line.contains("TLS handshake timed out: the client started it and stalled"),
        "{line}"
    );
    assert!(
        stalled_at.elapsed() >= Duration::from_secs(9),
        "closed by the timeout, not earlier"
    );
    talk.next_message(last, Duration::from_secs(20));
    talk.assert_never_reconnected();
}
