//! The configurations in `examples/` run as their comments say, with real mosquitto clients.

use std::process::Command;
use std::time::Duration;

use wardgate_testkit::process::{Running, mosquitto_pub, mosquitto_sub, repo_root, wait_for_port};

/// Subscribes on `sub_port`, publishes on `pub_port` until the subscriber prints the message.
fn crosses(sub_port: u16, pub_port: u16) {
    let topic = format!("testtopic/{pub_port}-to-{sub_port}");
    let mut sub = Running::spawn(
        Command::new(mosquitto_sub().expect("mosquitto_sub (run scripts/test to install it)"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &sub_port.to_string(),
                "-t",
                "testtopic/#",
                "-v",
                "-C",
                "1",
                "-W",
                "20",
            ]),
    )
    .expect("start mosquitto_sub");
    let message = format!("{topic} hello from {pub_port}");
    let mut seen = false;
    for _ in 0..50 {
        let publ = wardgate_testkit::process::run(
            Command::new(mosquitto_pub().expect("mosquitto_pub")).args([
                "-h",
                "127.0.0.1",
                "-p",
                &pub_port.to_string(),
                "-t",
                &topic,
                "-m",
                &format!("hello from {pub_port}"),
            ]),
            Duration::from_secs(10),
        )
        .expect("mosquitto_pub runs");
        assert!(publ.success(), "{publ}");
        if sub
            .wait_for_line("the message", Duration::from_millis(300), |l| l == message)
            .is_ok()
        {
            seen = true;
            break;
        }
    }
    assert!(
        seen,
        "mosquitto_sub on {sub_port} never received what was published on {pub_port}: {:?}",
        sub.seen()
    );
}

#[test]
fn multi_listener_messages_cross_between_nodeport_and_loadbalancer_ports() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut broker = Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .arg("serve")
            .arg("--config")
            .arg(repo_root().join("examples/multi-listener"))
            .arg("--data-dir")
            .arg(data.path())
            .args(["--bind", "127.0.0.1"]),
    )
    .expect("start wardgate");
    for port in [1883, 31883] {
        wait_for_port(port, Duration::from_secs(20)).expect("the example's ports open");
    }
    crosses(31883, 1883);
    crosses(1883, 31883);
    drop(broker.kill());
}

/// `examples/custom-auth-server/README.md` says to add users to `users.example.toml` with
/// `wardgate passwd`; `passwd --file` refused the file ("[client1]: unknown field
/// `expiry_seconds`"). It adds the user, and keeps the example server's extra fields.
#[test]
fn passwd_adds_users_to_the_custom_auth_server_example_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("users.toml");
    std::fs::copy(
        repo_root().join("examples/custom-auth-server/users.example.toml"),
        &file,
    )
    .expect("copy the example");
    let passwd = |user: &str, attr: &str| {
        let out = wardgate_testkit::process::run(
            Command::new("sh")
                .arg("-c")
                .arg("echo pw-4711 | \"$0\" passwd \"$1\" --iterations 1000 --attr \"$2\" --file \"$3\"")
                .arg(env!("CARGO_BIN_EXE_wardgate"))
                .arg(user)
                .arg(attr)
                .arg(&file),
            Duration::from_secs(20),
        )
        .expect("passwd runs");
        assert!(out.success(), "{out}");
        out
    };
    let out = passwd("client2", "floor=floor2");
    assert!(out.stderr.contains("added user \"client2\""), "{out}");
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(
        text.contains("[client2]") && text.contains("floor2"),
        "{text}"
    );
    assert!(text.contains("expiry_seconds = 3600"), "{text}");
    // Replacing client1 keeps its expiry_seconds; the note says the broker reads only
    // password and attributes.
    let out = passwd("client1", "floor=floor9");
    assert!(out.stderr.contains("replaced user \"client1\""), "{out}");
    assert!(out.stderr.contains("expiry_seconds"), "{out}");
    let text = std::fs::read_to_string(&file).expect("read");
    let client1 = text.split("[client2]").next().expect("client1 first");
    assert!(
        client1.contains("expiry_seconds = 3600") && client1.contains("floor9"),
        "{text}"
    );
}

/// docs/tls.md's example without a token runs as written (its port moved to a free one): the
/// folder's listener, `wardgate serve --config config/`, and the `mosquitto_pub --cafile
/// wardgate-data/trust-bundle/ca.crt` line. (The first example, 18883 with a token, is replayed
/// by `authn::local_tokens`.)
#[test]
fn the_tokenless_example_of_docs_tls_md_publishes_over_tls() {
    let quickstart = crate::support::tls_md_quickstart_section();
    let section = &quickstart[quickstart.find("```yaml\n").expect("the listener")..];
    let block = |fence: &str| {
        let start = section.find(fence).expect("a code block") + fence.len();
        section[start..]
            .split("```")
            .next()
            .expect("block end")
            .to_owned()
    };
    let (yaml, sh) = (block("```yaml\n"), block("```sh\n"));
    let lines: Vec<&str> = sh.lines().collect();
    assert_eq!(lines[0], "wardgate serve --config config/", "{sh}");
    assert!(lines[1].starts_with("mosquitto_pub "), "{sh}");
    assert!(yaml.contains("port: 8883"), "{yaml}");

    let dir = tempfile::tempdir().expect("tempdir");
    let port = wardgate_testkit::process::free_port().expect("port");
    std::fs::create_dir(dir.path().join("config")).expect("mkdir");
    std::fs::write(
        dir.path().join("config/listener.yaml"),
        yaml.replace("port: 8883", &format!("port: {port}")),
    )
    .expect("write");
    // As written, from the folder holding config/ (the data dir is ./wardgate-data).
    let _broker = Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .args(lines[0].split_whitespace().skip(1))
            .args(["--admin-addr", "127.0.0.1:0"])
            .current_dir(dir.path()),
    )
    .expect("start wardgate");
    wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    let args: Vec<String> = lines[1]
        .split_whitespace()
        .skip(1)
        .map(|a| {
            if a == "8883" {
                port.to_string()
            } else {
                a.to_owned()
            }
        })
        .collect();
    let out = wardgate_testkit::process::run(
        Command::new(mosquitto_pub().expect("mosquitto_pub"))
            .args(&args)
            .current_dir(dir.path()),
        Duration::from_secs(20),
    )
    .expect("mosquitto_pub runs");
    assert!(out.success(), "{} {args:?}: {out}", lines[1]);
}
