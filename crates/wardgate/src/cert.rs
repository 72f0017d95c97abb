//! `wardgate cert` (SPEC.md §6.5): root and intermediate CAs, server and client leaves, and
//! `inspect` — what the seeds do with `step certificate create` and `openssl`, with the mistakes
//! those recipes make impossible (a CA without `CA:TRUE`, a server certificate without SANs, an
//! IP written as a DNS name) and the SAN check they leave to the first failed connection.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use wardgate_config::KeyAlgorithm;
use wardgate_security::pki::cert::format_time;
use wardgate_security::pki::issue::{
    CertRequest, Key, Profile, Signer, parse_not_after, self_signed,
};
use wardgate_security::pki::{CertificateDer, CertificateInfo, inspect, pem, store};

/// What to make or inspect.
#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// A self-signed root CA (basicConstraints CA:TRUE, keyCertSign; default 10 years).
    Ca(CaArgs),
    /// An intermediate CA signed by --ca-cert/--ca-key (default 5 years).
    Intermediate(IntermediateArgs),
    /// A TLS server certificate for the names and IPs clients dial (EKU serverAuth; default 1
    /// year).
    Server(ServerArgs),
    /// A TLS client certificate for X509 authentication; the CN is the MQTT username (EKU
    /// clientAuth; default 1 year).
    Client(ClientArgs),
    /// Print what a PEM file holds: subject, issuer, SANs, validity, key type, how the
    /// certificates chain; with --host, whether a client dialling that name or IP accepts it.
    Inspect {
        /// A PEM file of certificates (or a private key).
        file: PathBuf,
        /// A DNS name or IP address clients dial.
        #[arg(long, value_name = "NAME_OR_IP")]
        host: Option<String>,
    },
}

/// The files written and the key and lifetime of the new certificate.
#[derive(Debug, Args)]
pub(crate) struct Output {
    /// Where to write the certificate (PEM).
    #[arg(long, value_name = "FILE")]
    out_cert: PathBuf,
    /// Where to write the private key (PKCS#8 PEM, mode 0600).
    #[arg(long, value_name = "FILE")]
    out_key: PathBuf,
    /// Key type.
    #[arg(long, value_enum, default_value_t = KeyArg::Ec256)]
    key: KeyArg,
    /// End of validity: a duration from now (`72000h`, `8760h30m`, `90d`) or a date
    /// (`2030-01-31`, `2030-01-31T12:00:00Z`).
    #[arg(long, value_name = "DURATION|DATE")]
    not_after: Option<String>,
    /// Overwrite existing output files.
    #[arg(long)]
    force: bool,
}

/// The CA that signs.
#[derive(Debug, Args)]
pub(crate) struct Signing {
    /// The signing CA's certificate (PEM; the first certificate is the CA).
    #[arg(long, value_name = "FILE")]
    ca_cert: PathBuf,
    /// The signing CA's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE")]
    ca_key: PathBuf,
}

/// `wardgate cert ca`.
#[derive(Debug, Args)]
pub(crate) struct CaArgs {
    /// Subject CN.
    #[arg(long, default_value = "Wardgate Root CA")]
    cn: String,
    /// Subject O.
    #[arg(long = "org", value_name = "O")]
    organization: Option<String>,
    #[command(flatten)]
    out: Output,
}

/// `wardgate cert intermediate`.
#[derive(Debug, Args)]
pub(crate) struct IntermediateArgs {
    /// Subject CN.
    #[arg(long, default_value = "Wardgate Intermediate CA")]
    cn: String,
    /// Subject O.
    #[arg(long = "org", value_name = "O")]
    organization: Option<String>,
    /// basicConstraints pathlen: how many CAs may follow below this one (0 = it signs only
    /// leaves).
    #[arg(long)]
    path_len: Option<u8>,
    #[command(flatten)]
    signing: Signing,
    #[command(flatten)]
    out: Output,
}

/// `wardgate cert server`.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// A DNS name or IP address clients dial (repeatable; IPs become IP SANs).
    #[arg(long = "san", value_name = "HOST_OR_IP", required = true)]
    sans: Vec<String>,
    /// Subject CN (default: the first --san).
    #[arg(long)]
    cn: Option<String>,
    /// Write the signing CA's certificate after the leaf (unless it is a root), as a Secret's
    /// tls.crt needs it.
    #[arg(long)]
    bundle: bool,
    #[command(flatten)]
    signing: Signing,
    #[command(flatten)]
    out: Output,
}

/// `wardgate cert client`.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// Subject CN: the MQTT username under X509 authentication.
    #[arg(long)]
    cn: String,
    /// Subject O.
    #[arg(long = "org", value_name = "O")]
    organization: Option<String>,
    /// Write the signing CA's certificate after the leaf (unless it is a root), so the client
    /// sends it (mosquitto --cert, MQTTX, Node-RED).
    #[arg(long)]
    bundle: bool,
    #[command(flatten)]
    signing: Signing,
    #[command(flatten)]
    out: Output,
}

/// `--key` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum KeyArg {
    /// ECDSA P-256 (the default).
    Ec256,
    /// ECDSA P-384.
    Ec384,
    /// ECDSA P-521.
    Ec521,
    /// Ed25519 (not for browsers).
    Ed25519,
    /// RSA 2048.
    Rsa2048,
    /// RSA 4096.
    Rsa4096,
    /// RSA 8192 (slow to make).
    Rsa8192,
}

impl From<KeyArg> for KeyAlgorithm {
    fn from(k: KeyArg) -> Self {
        match k {
            KeyArg::Ec256 => KeyAlgorithm::Ec256,
            KeyArg::Ec384 => KeyAlgorithm::Ec384,
            KeyArg::Ec521 => KeyAlgorithm::Ec521,
            KeyArg::Ed25519 => KeyAlgorithm::Ed25519,
            KeyArg::Rsa2048 => KeyAlgorithm::Rsa2048,
            KeyArg::Rsa4096 => KeyAlgorithm::Rsa4096,
            KeyArg::Rsa8192 => KeyAlgorithm::Rsa8192,
        }
    }
}

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

pub(crate) fn run(cmd: CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::Ca(a) => {
            let mut req = request(&a.cn, Profile::RootCa, &a.out, 10 * YEAR)?;
            req.organization = a.organization;
            let key = new_key(&a.out)?;
            let cert = self_signed(&req, &key)?;
            write(&a.out, std::slice::from_ref(&cert), &key)?;
            report(&a.out, &cert)?;
            println!(
                "Clients trust it with --cafile {} (mosquitto), \"CA file\" (MQTTX), or in a \
                 trustedClientCaCert ConfigMap for client certificates.",
                a.out.out_cert.display()
            );
        }
        CertCommand::Intermediate(a) => {
            let signer = load_signer(&a.signing)?;
            let mut req = request(
                &a.cn,
                Profile::IntermediateCa {
                    path_len: a.path_len,
                },
                &a.out,
                5 * YEAR,
            )?;
            req.organization = a.organization;
            let key = new_key(&a.out)?;
            let cert = signer.issue(&req, &key)?;
            write(&a.out, std::slice::from_ref(&cert), &key)?;
            report(&a.out, &cert)?;
        }
        CertCommand::Server(a) => {
            let signer = load_signer(&a.signing)?;
            let cn = a.cn.clone().unwrap_or_else(|| a.sans[0].clone());
            let req = request(&cn, Profile::Server, &a.out, YEAR)?.with_sans(&a.sans);
            let key = new_key(&a.out)?;
            let leaf = signer.issue(&req, &key)?;
            let chain = chain(leaf.clone(), &signer, a.bundle);
            write(&a.out, &chain, &key)?;
            report(&a.out, &leaf)?;
            println!(
                "Make it a Secret: wardgate create secret tls NAME --cert {} --key {}",
                a.out.out_cert.display(),
                a.out.out_key.display()
            );
        }
        CertCommand::Client(a) => {
            let signer = load_signer(&a.signing)?;
            let mut req = request(&a.cn, Profile::Client, &a.out, YEAR)?;
            req.organization = a.organization;
            let key = new_key(&a.out)?;
            let leaf = signer.issue(&req, &key)?;
            let chain = chain(leaf.clone(), &signer, a.bundle);
            write(&a.out, &chain, &key)?;
            report(&a.out, &leaf)?;
        }
        CertCommand::Inspect { file, host } => {
            let bytes = std::fs::read(&file).with_context(|| format!("{}", file.display()))?;
            let report = inspect::inspect(&bytes, &file.display().to_string(), host.as_deref())?;
            print!("{report}");
            if let Some(h) = &report.host
                && !h.accepted
            {
                bail!("a client dialling {} would reject this certificate", h.host);
            }
        }
    }
    Ok(())
}

fn request(
    cn: &str,
    profile: Profile,
    out: &Output,
    default_life: Duration,
) -> anyhow::Result<CertRequest> {
    if cn.trim().is_empty() {
        bail!("--cn must not be empty");
    }
    let mut req = CertRequest::new(cn, profile, default_life);
    if let Some(s) = &out.not_after {
        req.not_after = parse_not_after(s, SystemTime::now())
            .map_err(|e| anyhow::anyhow!("--not-after: {e}"))?;
        if req.not_after <= SystemTime::now() {
            bail!("--not-after {s} is in the past");
        }
    }
    Ok(req)
}

fn new_key(out: &Output) -> anyhow::Result<Key> {
    for p in [&out.out_cert, &out.out_key] {
        if p.exists() && !out.force {
            bail!("{} exists (use --force to overwrite)", p.display());
        }
    }
    if out.out_cert == out.out_key {
        bail!("--out-cert and --out-key must be different files");
    }
    Ok(Key::generate(out.key.into())?)
}

fn load_signer(s: &Signing) -> anyhow::Result<Signer> {
    let cert = std::fs::read(&s.ca_cert).with_context(|| format!("{}", s.ca_cert.display()))?;
    let key = std::fs::read(&s.ca_key).with_context(|| format!("{}", s.ca_key.display()))?;
    let provider = wardgate_security::pki::issue::provider();
    Ok(Signer::from_pem(
        &cert,
        &s.ca_cert.display().to_string(),
        &key,
        &s.ca_key.display().to_string(),
        &provider,
    )?)
}

/// The leaf, then with `--bundle` the CA file's certificates that are not self-signed roots
/// (clients have the root; sending it is useless).
fn chain(
    leaf: CertificateDer<'static>,
    signer: &Signer,
    bundle: bool,
) -> Vec<CertificateDer<'static>> {
    let mut chain = vec![leaf];
    if bundle {
        for c in signer.chain() {
            let root = CertificateInfo::from_der(c, "CA").is_ok_and(|i| i.self_signed);
            if !root {
                chain.push(c.clone());
            }
        }
        if chain.len() == 1 {
            println!(
                "Note: --bundle adds nothing: the signing CA is a root, which clients must already \
                 trust."
            );
        }
    }
    chain
}

fn write(out: &Output, chain: &[CertificateDer<'static>], key: &Key) -> anyhow::Result<()> {
    store::write_private(&out.out_key, &key.pem())?;
    let text: String = chain.iter().map(pem::certificate_pem).collect();
    store::write_public(&out.out_cert, &text)?;
    Ok(())
}

fn report(out: &Output, leaf: &CertificateDer<'static>) -> anyhow::Result<()> {
    let info = CertificateInfo::from_der(leaf, "new certificate")?;
    let sans = if info.sans.is_empty() {
        String::new()
    } else {
        format!(
            ", SANs {}",
            info.sans
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    println!(
        "Wrote {} ({}, {}, issued by {}{sans}, valid until {}) and its key {}",
        out.out_cert.display(),
        info.subject,
        info.key_type,
        info.issuer,
        format_time(info.not_after),
        out.out_key.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::Path;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        cmd: CertCommand,
    }

    fn cert(args: &[&str]) -> anyhow::Result<()> {
        let mut argv = vec!["cert"];
        argv.extend_from_slice(args);
        let t = T::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
        run(t.cmd)
    }

    fn p(dir: &Path, name: &str) -> String {
        dir.join(name).display().to_string()
    }

    fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// The seeds' server and client chains, made with `wardgate cert` instead of step/openssl.
    fn make_pki(dir: &Path, key: &str) {
        let d = |n| p(dir, n);
        cert(&[
            "ca",
            "--cn",
            "AIO42 Root CA",
            "--key",
            key,
            "--out-cert",
            &d("root.crt"),
            "--out-key",
            &d("root.key"),
            "--not-after",
            "72000h",
        ])
        .unwrap();
        cert(&[
            "intermediate",
            "--cn",
            "AIO42 Intermediate CA 1",
            "--ca-cert",
            &d("root.crt"),
            "--ca-key",
            &d("root.key"),
            "--out-cert",
            &d("inter.crt"),
            "--out-key",
            &d("inter.key"),
        ])
        .unwrap();
        cert(&[
            "server",
            "--san",
            "192.168.2.196",
            "--san",
            "localhost",
            "--bundle",
            "--ca-cert",
            &d("inter.crt"),
            "--ca-key",
            &d("inter.key"),
            "--out-cert",
            &d("server.crt"),
            "--out-key",
            &d("server.key"),
            "--key",
            key,
        ])
        .unwrap();
        cert(&[
            "client",
            "--cn",
            "client42a",
            "--bundle",
            "--ca-cert",
            &d("inter.crt"),
            "--ca-key",
            &d("inter.key"),
            "--out-cert",
            &d("client.crt"),
            "--out-key",
            &d("client.key"),
        ])
        .unwrap();
    }

    #[test]
    fn the_seed_pki_made_with_wardgate_cert_passes_openssl_verify() {
        for key in ["ec256", "rsa2048", "ec384"] {
            let dir = tempfile::tempdir().unwrap();
            let dir = dir.path();
            make_pki(dir, key);
            let server = std::fs::read_to_string(dir.join("server.crt")).unwrap();
            assert_eq!(
                server.matches("BEGIN CERTIFICATE").count(),
                2,
                "--bundle adds the intermediate"
            );
            let leaf_only = server
                .split_inclusive("-----END CERTIFICATE-----\n")
                .next()
                .unwrap();
            std::fs::write(dir.join("leaf.crt"), leaf_only).unwrap();
            for check in [
                vec!["-verify_ip", "192.168.2.196", "-purpose", "sslserver"],
                vec!["-verify_hostname", "localhost", "-purpose", "sslserver"],
            ] {
                let mut args = vec!["verify", "-CAfile", "root.crt", "-untrusted", "inter.crt"];
                args.extend(check);
                args.push("leaf.crt");
                let (ok, out) = openssl(dir, &args);
                assert!(ok, "{key}: {out}");
            }
            let (ok, out) = openssl(
                dir,
                &[
                    "verify",
                    "-CAfile",
                    "root.crt",
                    "-untrusted",
                    "inter.crt",
                    "-verify_ip",
                    "10.13.100.11",
                    "leaf.crt",
                ],
            );
            assert!(!ok && out.contains("IP address mismatch"), "{out}");
            let client = std::fs::read_to_string(dir.join("client.crt")).unwrap();
            std::fs::write(
                dir.join("client-leaf.crt"),
                client
                    .split_inclusive("-----END CERTIFICATE-----\n")
                    .next()
                    .unwrap(),
            )
            .unwrap();
            let (ok, out) = openssl(
                dir,
                &[
                    "verify",
                    "-CAfile",
                    "root.crt",
                    "-untrusted",
                    "inter.crt",
                    "-purpose",
                    "sslclient",
                    "client-leaf.crt",
                ],
            );
            assert!(ok, "{out}");
            // The key file is private.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(dir.join("server.key"))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            // openssl reads the keys as they are.
            let (ok, out) = openssl(dir, &["pkey", "-in", "server.key", "-noout"]);
            assert!(ok, "{out}");
        }
    }

    #[test]
    fn the_made_server_certificate_loads_as_a_manual_secret() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_pki(d, "ec256");
        let provider = wardgate_security::pki::issue::provider();
        let checked = wardgate_security::pki::chain::server_chain(
            &std::fs::read(d.join("server.crt")).unwrap(),
            "tls.crt",
            &std::fs::read(d.join("server.key")).unwrap(),
            "tls.key",
            &provider,
        )
        .unwrap();
        assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
        assert_eq!(checked.infos[0].subject.to_string(), "CN = 192.168.2.196");
    }

    #[test]
    fn inspect_predicts_the_san_mistake() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_pki(d, "ec256");
        let file = p(d, "server.crt");
        cert(&["inspect", &file, "--host", "192.168.2.196"]).unwrap();
        let e = cert(&["inspect", &file, "--host", "10.13.100.11"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a client dialling 10.13.100.11 would reject this certificate"
        );
        let report = inspect::inspect(
            &std::fs::read(d.join("server.crt")).unwrap(),
            "server.crt",
            Some("10.13.100.11"),
        )
        .unwrap();
        let text = report.to_string();
        assert!(text.contains("Subject:     CN = 192.168.2.196"), "{text}");
        assert!(
            text.contains("SANs:        DNS:localhost, IP:192.168.2.196"),
            "{text}"
        );
        assert!(
            text.contains("Chain: certificate 2 issued certificate 1 (signature verified)"),
            "{text}"
        );
        assert!(text.contains("Host 10.13.100.11: no:"), "{text}");
        // A key file is recognised.
        cert(&["inspect", &p(d, "server.key")]).unwrap();
    }

    #[test]
    fn mistakes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_pki(d, "ec256");
        // Files are not overwritten without --force.
        let e = cert(&[
            "ca",
            "--out-cert",
            &p(d, "root.crt"),
            "--out-key",
            &p(d, "x.key"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("exists (use --force"), "{e}");
        // A leaf cannot sign.
        let e = cert(&[
            "server",
            "--san",
            "x",
            "--ca-cert",
            &p(d, "client.crt"),
            "--ca-key",
            &p(d, "client.key"),
            "--out-cert",
            &p(d, "a.crt"),
            "--out-key",
            &p(d, "a.key"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("is not a CA certificate"), "{e}");
        // A key of another CA.
        let e = cert(&[
            "server",
            "--san",
            "x",
            "--ca-cert",
            &p(d, "inter.crt"),
            "--ca-key",
            &p(d, "root.key"),
            "--out-cert",
            &p(d, "a.crt"),
            "--out-key",
            &p(d, "a.key"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("is not the private key of"), "{e}");
        // A server needs a SAN.
        assert!(
            cert(&[
                "server",
                "--ca-cert",
                &p(d, "inter.crt"),
                "--ca-key",
                &p(d, "inter.key"),
                "--out-cert",
                &p(d, "a.crt"),
                "--out-key",
                &p(d, "a.key")
            ])
            .is_err()
        );
    }
}
