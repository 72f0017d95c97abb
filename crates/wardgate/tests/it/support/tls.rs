//! TLS ports of a running `wardgate serve`: certificates made with openssl and `wardgate cert`,
//! Secrets written by `wardgate create secret tls`, mosquitto over TLS, what `openssl s_client`
//! is served, and a publisher/subscriber pair that stays connected while certificates change.
//!
//! Certificates a test merely needs come from `wardgate_testkit::pki` (rcgen, in-process). The
//! openssl recipes here ([`make_ca`], [`make_server`], [`sign_by`], [`seed_002_chain`], …) are
//! kept only for the tests that exist to prove that openssl-made input, as the seeds and docs
//! tell users to make it, works or is refused with the right words: in `tls`,
//! `manual_secret_made_with_openssl_serves_mosquitto_over_tls`, the `seeds/004_…`
//! bring-your-own-CA tests (`bring_your_own_ca_issuers_and_a_self_signed_issuer_serve_mosquitto`,
//! `the_trust_bundle_is_the_ca_of_your_issuer_not_the_quickstart_ca`,
//! `trust_settings_add_the_config_map_and_replace_the_quickstart_issuer`), the seeds' SAN
//! mistake (`a_name_not_in_the_sans_is_rejected_and_cert_inspect_predicts_it`) and `seeds/002_…`'s
//! X.509 v1 intermediate (`the_seed_002_recipe_as_written_is_refused_with_the_fix`,
//! `validate_reports_exactly_what_serve_refuses_in_the_certificate_material`); in `authn::x509`,
//! `an_x509_port_takes_openssl_and_wardgate_chains_and_refuses_untrusted_or_missing_ones`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::openssl;
use wardgate_testkit::process::{Output, Running, mosquitto_pub, mosquitto_sub, run};
use wardgate_testkit::resources;

/// Writes [`resources::listener`] with `ports` as `config/listener.yaml`, creating the folder.
pub(crate) fn write_listener(config: &Path, ports: &str) {
    std::fs::create_dir_all(config).expect("mkdir config");
    std::fs::write(config.join("listener.yaml"), resources::listener(ports))
        .expect("write listener");
}

/// A root CA made by openssl (EC P-256, `CA:TRUE` as `req -x509` writes it): `ca.crt`, `ca.key`.
pub(crate) fn make_ca(dir: &Path) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Test Root CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
        dir,
    );
}

/// An EC P-256 key and a signing request for `subject` (`/CN=...`): `<name>.key`, `<name>.csr`.
pub(crate) fn key_and_request(dir: &Path, name: &str, subject: &str) {
    let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
        dir,
    );
}

/// [`key_and_request`] for CN=localhost, and the extensions file `<name>.ext` of a server
/// certificate with `san` (openssl syntax, `DNS:localhost,IP:127.0.0.1`).
fn request(dir: &Path, name: &str, san: &str) {
    key_and_request(dir, name, "/CN=localhost");
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\n"),
    )
    .expect("write ext");
}

/// Signs `<name>.csr` with `ca.crt` and the extensions in `<name>.ext`: `<name>.crt`, valid for
/// a day.
pub(crate) fn sign(dir: &Path, name: &str) {
    sign_by(dir, name, "ca", true);
}

/// Signs `<name>.csr` with `<ca>.crt`/`<ca>.key`, with the extensions in `<name>.ext` or (as
/// `seeds/002_…`'s recipe signs its intermediate CA) none: `<name>.crt`, valid for a day.
pub(crate) fn sign_by(dir: &Path, name: &str, ca: &str, extensions: bool) {
    let (csr, ca_crt, ca_key, ext, out) = (
        format!("{name}.csr"),
        format!("{ca}.crt"),
        format!("{ca}.key"),
        format!("{name}.ext"),
        format!("{name}.crt"),
    );
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        &out,
    ];
    if extensions {
        args.extend(["-extfile", &ext]);
    }
    openssl(&args, dir);
}

/// `seeds/002_…`'s openssl recipe as written: an intermediate CA signed by `ca.crt` with no
/// `-extfile` (an X.509 v1 certificate, `inter.crt`), and a leaf for 127.0.0.1 signed by it;
/// `<name>.crt` holds the leaf then the intermediate, `<name>.key` the leaf's key.
pub(crate) fn seed_002_chain(dir: &Path, name: &str) {
    key_and_request(dir, "inter", "/CN=AIO42 Intermediate CA 1");
    sign_by(dir, "inter", "ca", false);
    key_and_request(dir, name, "/CN=mqtts-endpoint");
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "subjectAltName=IP:127.0.0.1\n",
    )
    .expect("write ext");
    sign_by(dir, name, "inter", true);
    let crt = dir.join(format!("{name}.crt"));
    let chain = std::fs::read_to_string(&crt).expect("leaf")
        + &std::fs::read_to_string(dir.join("inter.crt")).expect("intermediate");
    std::fs::write(crt, chain).expect("write chain");
}

/// A server certificate `<name>.crt` (+ `<name>.key`) for `san`, signed by `ca.crt`.
pub(crate) fn make_server(dir: &Path, name: &str, san: &str) {
    request(dir, name, san);
    sign(dir, name);
}

/// A CA and a server certificate for localhost/127.0.0.1 signed by it, as the seeds' openssl
/// recipes make them: `ca.crt`, `server.crt`, `server.key`.
pub(crate) fn make_ca_and_server(dir: &Path) {
    make_ca(dir);
    make_server(dir, "server", "DNS:localhost,IP:127.0.0.1");
}

/// `wardgate create secret tls NAME` from `dir`'s `<cert>.crt`/`<cert>.key` into `config`
/// (replacing the Secret's file if it exists).
pub(crate) fn create_secret(name: &str, dir: &Path, cert: &str, config: &Path) {
    let created = run(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .args(["create", "secret", "tls", name, "--cert"])
            .arg(dir.join(format!("{cert}.crt")))
            .arg("--key")
            .arg(dir.join(format!("{cert}.key")))
            .arg("-o")
            .arg(config),
        Duration::from_secs(20),
    )
    .expect("create runs");
    assert!(created.success(), "{created}");
}

/// `wardgate serve` on `config` (logs merged into stdout, the admin API on a free port).
pub(crate) fn serve(config: &Path, data: &Path) -> Running {
    Running::spawn(
        Command::new("sh")
            .arg("-c")
            .arg(
                "exec \"$0\" serve --config \"$1\" --data-dir \"$2\" --admin-addr 127.0.0.1:0 2>&1",
            )
            .arg(env!("CARGO_BIN_EXE_wardgate"))
            .arg(config)
            .arg(data)
            .env("NO_COLOR", "1"),
    )
    .expect("start wardgate")
}

/// `mosquitto_pub` over TLS to `host:port`, trusting `cafile`, plus `extra` arguments.
pub(crate) fn publish(port: u16, cafile: &Path, host: &str, extra: &[&str]) -> Output {
    run(
        Command::new(mosquitto_pub().expect("mosquitto_pub"))
            .args(["-h", host, "-p", &port.to_string(), "--cafile"])
            .arg(cafile)
            .args(extra),
        Duration::from_secs(20),
    )
    .expect("mosquitto_pub runs")
}

/// mosquitto_sub over TLS on `port` receives what mosquitto_pub publishes over TLS.
pub(crate) fn tls_round_trip(port: u16, cafile: &Path, host: &str) {
    let mut sub = Running::spawn(
        Command::new("stdbuf")
            .arg("-oL")
            .arg(mosquitto_sub().expect("mosquitto_sub"))
            .args(["-h", host, "-p", &port.to_string(), "--cafile"])
            .arg(cafile)
            .args(["-t", "secure/#", "-C", "1", "-W", "20"]),
    )
    .expect("start mosquitto_sub");
    for _ in 0..50 {
        let publ = publish(port, cafile, host, &["-t", "secure/x", "-m", "over-tls"]);
        assert!(publ.success(), "mosquitto_pub over TLS failed: {publ}");
        if sub
            .wait_for_line("the message", Duration::from_millis(300), |l| {
                l == "over-tls"
            })
            .is_ok()
        {
            return;
        }
    }
    panic!("no message over TLS; subscriber saw {:?}", sub.seen());
}

/// The serial number of the certificate `openssl s_client` is served on `127.0.0.1:port`, as
/// `openssl x509 -serial` prints it (`serial=0A1B...`).
pub(crate) fn served_serial(port: u16) -> String {
    let out = run(
        Command::new("sh").arg("-c").arg(
            "openssl s_client -connect \"127.0.0.1:$0\" </dev/null 2>/dev/null | openssl x509 -noout -serial",
        )
        .arg(port.to_string()),
        Duration::from_secs(20),
    )
    .expect("openssl s_client runs");
    assert!(out.success(), "no certificate served on {port}: {out}");
    out.stdout.trim().to_owned()
}

/// The serial number of the (first) certificate in `file`, as [`served_serial`] prints it.
pub(crate) fn file_serial(file: &Path) -> String {
    let out = run(
        Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(file),
        Duration::from_secs(20),
    )
    .expect("openssl runs");
    assert!(out.success(), "{out}");
    out.stdout.trim().to_owned()
}

/// The first line of the broker's output (seen already, or awaited for at most `timeout`) that
/// satisfies `pred`.
pub(crate) fn log_line(
    broker: &mut Running,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    if let Some(line) = broker.seen().iter().find(|l| pred(l)) {
        return line.clone();
    }
    broker
        .wait_for_line(what, timeout, pred)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls [`served_serial`] until it is not `old`, for at most `timeout`; returns the new one.
pub(crate) fn wait_for_new_serial(port: u16, old: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let now = served_serial(port);
        if now != old {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "still serving {old} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A mosquitto subscriber and publisher, each on one TLS connection for the whole test: the
/// publisher sends `m1`, `m2`, ... at QoS 1 every 100 ms (`mosquitto_pub -l` reading a FIFO),
/// the subscriber (QoS 1) prints `<topic> m<N>`. Both run with `-d`, so a reconnection (which
/// mosquitto clients make silently) shows as a second CONNECT.
pub(crate) struct Conversation {
    topic: String,
    sub: Running,
    publ: Running,
    _feed: Running,
    _fifo_dir: tempfile::TempDir,
}

impl Conversation {
    /// Connects both to `host:port` trusting `cafile`, with `extra` arguments (a client
    /// certificate), and waits until a message went through.
    pub(crate) fn start(
        port: u16,
        cafile: &Path,
        host: &str,
        topic: &str,
        extra: &[&str],
    ) -> Conversation {
        let tls_args = |cmd: &mut Command, id: &str| {
            cmd.args(["-d", "-q", "1", "-h", host, "-p", &port.to_string()])
                .args(["-i", id, "-t", topic, "--cafile"])
                .arg(cafile)
                .args(extra);
        };
        let mut sub_cmd = Command::new("stdbuf");
        sub_cmd
            .arg("-oL")
            .arg(mosquitto_sub().expect("mosquitto_sub"));
        tls_args(&mut sub_cmd, "conversation-sub");
        sub_cmd.arg("-v");
        let mut sub = Running::spawn(&mut sub_cmd).expect("start mosquitto_sub");
        sub.wait_for_line("the SUBACK", Duration::from_secs(20), |l| {
            l.contains("received SUBACK")
        })
        .expect("the subscriber is subscribed");

        let fifo_dir = tempfile::tempdir().expect("tempdir");
        let fifo: PathBuf = fifo_dir.path().join("feed");
        let made =
            run(Command::new("mkfifo").arg(&fifo), Duration::from_secs(10)).expect("mkfifo runs");
        assert!(made.success(), "{made}");
        // The publisher reads lines from the FIFO (line-buffered output, so that its debug lines
        // survive the kill); `exec` makes it the process that is killed.
        let mut pub_cmd = Command::new("sh");
        pub_cmd
            .arg("-c")
            .arg("exec stdbuf -oL \"$@\" -l < \"$0\"")
            .arg(&fifo)
            .arg(mosquitto_pub().expect("mosquitto_pub"));
        tls_args(&mut pub_cmd, "conversation-pub");
        let publ = Running::spawn(&mut pub_cmd).expect("start mosquitto_pub -l");
        // At most two minutes of messages; killed earlier when the test ends.
        let feed = Running::spawn(Command::new("sh").arg("-c").arg(
            "i=0; while [ $i -lt 1200 ]; do i=$((i+1)); echo \"m$i\"; sleep 0.1; done > \"$0\"",
        ).arg(&fifo))
        .expect("start the feed");
        let mut conversation = Conversation {
            topic: topic.to_owned(),
            sub,
            publ,
            _feed: feed,
            _fifo_dir: fifo_dir,
        };
        conversation.next_message(0, Duration::from_secs(20));
        conversation
    }

    /// Waits for the subscriber to receive a message numbered after `after`; returns its number.
    pub(crate) fn next_message(&mut self, after: u64, timeout: Duration) -> u64 {
        let prefix = format!("{} m", self.topic);
        let line = self
            .sub
            .wait_for_line(&format!("a message after m{after}"), timeout, |l| {
                l.strip_prefix(&prefix)
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n > after)
            })
            .unwrap_or_else(|e| panic!("{e}"));
        line[prefix.len()..].parse().expect("a message number")
    }

    /// Stops both clients and asserts that each connected exactly once.
    pub(crate) fn assert_never_reconnected(mut self) {
        for (who, out) in [
            ("subscriber", self.sub.kill()),
            ("publisher", self.publ.kill()),
        ] {
            let connects = out
                .stdout
                .lines()
                .filter(|l| l.contains("sending CONNECT"))
                .count();
            assert_eq!(connects, 1, "the {who} reconnected:\n{out}");
        }
    }
}
