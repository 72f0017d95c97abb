//! Test support: certificates made with the crate's own `pki` (and with Debian's openssl where a
//! test is about OpenSSL's output), models with Secrets and ConfigMaps, and a real handshake:
//! a tokio-rustls echo server on 127.0.0.1 with the config under test, and a tokio-rustls client.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wardgate_config::KeyAlgorithm;
use wardgate_config::model::{
    Authentication, AuthnMethod, AutomaticTls, ConfigMap, IssuerKind, IssuerRef, Listener,
    ListenerPort, ManualTls, Model, PortProtocol, PrivateKey, RotationPolicy, Secret, ServiceType,
    Tls, X509Settings,
};
use wardgate_security::pki::issue::{CertRequest, Key, Profile, Signer, self_signed};
use wardgate_security::pki::pem;
use wardgate_security::tls::{
    AutomaticIssuance, ClientCertificate, PortTls, TlsContext, TlsOptions, TlsOutcome,
};

pub const DAY: Duration = Duration::from_secs(86400);

/// A CA made for a test.
pub struct Ca {
    pub cert: CertificateDer<'static>,
    pub signer: Signer,
}

impl Ca {
    pub fn root(cn: &str, alg: KeyAlgorithm) -> Ca {
        let key = Key::generate(alg).unwrap();
        let cert = self_signed(&CertRequest::new(cn, Profile::RootCa, 365 * DAY), &key).unwrap();
        let signer = Signer::new(vec![cert.clone()], cn, key, "key", &provider()).unwrap();
        Ca { cert, signer }
    }

    pub fn intermediate(&self, cn: &str, alg: KeyAlgorithm) -> Ca {
        let key = Key::generate(alg).unwrap();
        let req = CertRequest::new(cn, Profile::IntermediateCa { path_len: None }, 300 * DAY);
        let cert = self.signer.issue(&req, &key).unwrap();
        let signer = Signer::new(vec![cert.clone()], cn, key, "key", &provider()).unwrap();
        Ca { cert, signer }
    }

    pub fn server(&self, sans: &[&str], alg: KeyAlgorithm) -> (CertificateDer<'static>, Key) {
        let key = Key::generate(alg).unwrap();
        let req = CertRequest::new("mqtts-endpoint", Profile::Server, 30 * DAY).with_sans(sans);
        (self.signer.issue(&req, &key).unwrap(), key)
    }

    pub fn client(&self, cn: &str, alg: KeyAlgorithm) -> (CertificateDer<'static>, Key) {
        let key = Key::generate(alg).unwrap();
        let req = CertRequest::new(cn, Profile::Client, 30 * DAY);
        (self.signer.issue(&req, &key).unwrap(), key)
    }

    pub fn pem(&self) -> String {
        pem::certificate_pem(&self.cert)
    }
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub fn chain_pem(certs: &[&CertificateDer<'_>]) -> String {
    certs.iter().map(|c| pem::certificate_pem(c)).collect()
}

/// A TlsContext on a fresh data dir, with a fixed host name for the automatic SANs.
pub fn context(dir: &Path) -> TlsContext {
    context_issued_by(dir, AutomaticIssuance::BuiltIn)
}

/// [`context`] whose automatic certificates come from `issuance`.
pub fn context_issued_by(dir: &Path, issuance: AutomaticIssuance) -> TlsContext {
    TlsContext::open_with(
        dir,
        TlsOptions {
            host_names: vec!["edge-box".into()],
            namespace: "azure-iot-operations".into(),
            trust_settings: None,
            issuance,
        },
    )
    .unwrap()
}

pub fn tls_secret(name: &str, crt: &str, key: &str) -> Secret {
    let mut data = BTreeMap::new();
    data.insert("tls.crt".to_owned(), crt.as_bytes().to_vec());
    data.insert("tls.key".to_owned(), key.as_bytes().to_vec());
    Secret {
        name: name.into(),
        type_: Secret::TLS_TYPE.into(),
        data,
    }
}

pub fn config_map(name: &str, entries: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        name: name.into(),
        data: entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        binary_data: BTreeMap::new(),
    }
}

pub fn manual_port(secret: &str) -> ListenerPort {
    ListenerPort {
        port: 8883,
        node_port: None,
        protocol: PortProtocol::Mqtt,
        tls: Some(Tls::Manual(ManualTls {
            secret_ref: secret.into(),
        })),
        authentication_ref: None,
        authorization_ref: None,
    }
}

pub fn automatic(issuer_kind: IssuerKind, issuer: &str) -> AutomaticTls {
    AutomaticTls {
        issuer_ref: IssuerRef {
            name: issuer.into(),
            kind: issuer_kind,
            group: "cert-manager.io".into(),
        },
        duration: Duration::from_secs(720 * 3600),
        renew_before: Duration::from_secs(240 * 3600),
        secret_name: "aio-broker-frontend-server-8883".into(),
        private_key: PrivateKey {
            algorithm: KeyAlgorithm::Ec256,
            rotation_policy: RotationPolicy::Always,
        },
        san_dns: Vec::new(),
        san_ip: Vec::new(),
    }
}

pub fn automatic_port(a: AutomaticTls) -> ListenerPort {
    ListenerPort {
        tls: Some(Tls::Automatic(a)),
        ..manual_port("unused")
    }
}

pub fn listener(port: ListenerPort) -> Listener {
    Listener {
        name: "lb".into(),
        service_name: "loadbalancer-listener-service".into(),
        service_type: ServiceType::LoadBalancer,
        ports: vec![port],
    }
}

/// Adds an X509 BrokerAuthentication `x509` trusting ConfigMap `cm` and points the port at it.
pub fn with_x509(model: &mut Model, port: &mut ListenerPort, cm: &str) {
    model.authentications.insert(
        "x509".into(),
        Authentication {
            name: "x509".into(),
            methods: vec![AuthnMethod::X509(X509Settings {
                trusted_client_ca_cert: cm.into(),
                authorization_attributes: BTreeMap::new(),
                additional_validation: Default::default(),
                attributes_secret: None,
            })],
        },
    );
    port.authentication_ref = Some("x509".into());
}

pub fn ready(outcome: TlsOutcome) -> PortTls {
    match outcome {
        TlsOutcome::Ready(p) => p,
        other => panic!("expected Ready, got {other:?}"),
    }
}

pub fn failed(outcome: TlsOutcome) -> String {
    match outcome {
        TlsOutcome::Failed { reason } => reason,
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// How the test client connects.
pub struct Client {
    pub roots: Vec<CertificateDer<'static>>,
    pub server_name: String,
    pub identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    pub tls12_only: bool,
}

impl Client {
    pub fn trusting(roots: &[&CertificateDer<'static>], server_name: &str) -> Client {
        Client {
            roots: roots.iter().map(|c| (*c).clone()).collect(),
            server_name: server_name.into(),
            identity: None,
            tls12_only: false,
        }
    }

    pub fn with_identity(mut self, chain: Vec<CertificateDer<'static>>, key: &Key) -> Client {
        self.identity = Some((chain, key.der().clone_key()));
        self
    }

    pub fn tls12(mut self) -> Client {
        self.tls12_only = true;
        self
    }
}

/// What a completed handshake showed.
#[derive(Debug)]
pub struct Handshake {
    /// The chain the server sent.
    pub served: Vec<CertificateDer<'static>>,
    /// The client identity the server saw.
    pub peer: Option<ClientCertificate>,
    /// TLS version.
    pub version: rustls::ProtocolVersion,
}

/// One connection to an echo server with `config`: handshake, write "ping", read it back.
pub async fn handshake(config: Arc<ServerConfig>, client: Client) -> Result<Handshake, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(wardgate_security::tls::client_identity);
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(&buf).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(peer)
    });
    let mut roots = rustls::RootCertStore::empty();
    for r in client.roots {
        roots.add(r).unwrap();
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if client.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = match client.identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(client.server_name.clone()).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client_side = async {
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"ping");
        let conn = tls.get_ref().1;
        let served = conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.clone().into_owned())
            .collect();
        Ok::<_, String>((served, conn.protocol_version().unwrap()))
    };
    let client_result = tokio::time::timeout(Duration::from_secs(10), client_side)
        .await
        .map_err(|_| "client timed out".to_owned())?;
    let server_result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .map_err(|_| "server timed out".to_owned())?
        .unwrap();
    match (client_result, server_result) {
        (Ok((served, version)), Ok(peer)) => Ok(Handshake {
            served,
            peer,
            version,
        }),
        (c, s) => Err(format!("client: {:?}; server: {:?}", c.err(), s.err())),
    }
}

/// Runs a command, failing the test with its output if it cannot start.
pub fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (is it installed?): {e}"))
}

/// Debian's openssl, required by the tests about OpenSSL's output.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = run(Command::new("openssl").args(args).current_dir(dir));
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
