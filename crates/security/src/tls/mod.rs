//! TLS for ports: [`TlsContext::resolve`] turns a port's `tls` settings (SPEC.md §6) into a rustls
//! `ServerConfig`, or says what the port waits for. Manual ports read their Secret
//! ([`manual`]); automatic ports get a certificate issued from the quickstart CA or a cert-manager
//! issuer of the configuration, kept in the data dir and reused while valid ([`automatic`]);
//! ports whose authentication has an X509 method ask for (and verify) client certificates
//! ([`client`]). On a Kubernetes cluster with cert-manager
//! ([`AutomaticIssuance::CertManager`]), automatic ports serve the Secret cert-manager writes
//! instead ([`cert_manager`]); the built-in issuer's certificates can be copied to and from
//! Secrets ([`TlsContext::issued_files`], [`TlsContext::restore_issued`], in [`issued`]).
//!
//! Renewal is re-resolution: [`TlsContext::next_renewal`] says when a certificate is due, the
//! server calls `resolve` again then and swaps the port's config for new handshakes; open
//! connections keep theirs.

mod automatic;
mod cert_manager;
mod client;
mod issued;
mod manual;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use wardgate_config::model::{Listener, ListenerPort, Model, Tls};

use crate::pki::store::{self, Layout, QuickstartCa};
use crate::pki::{CertificateInfo, PkiError};

pub use client::{ChainCertificate, ClientCertificate, client_identity};
pub use issued::IssuedFiles;

/// The namespace of the automatic SANs `<service>.<namespace>[.svc[.cluster.local]]`: AIO's.
pub const DEFAULT_NAMESPACE: &str = "azure-iot-operations";

/// The TLS state of one broker process: the data dir's PKI (quickstart CA, issued certificates)
/// and when each automatic certificate is due. Cheap to share as `Arc`; every method takes
/// `&self`.
///
/// `open` and `resolve` read and write files and may generate keys (RSA 8192 takes seconds):
/// call them from a blocking context (`tokio::task::spawn_blocking`).
#[derive(Debug)]
pub struct TlsContext {
    layout: Layout,
    provider: Arc<CryptoProvider>,
    host_names: Vec<String>,
    namespace: String,
    trust_settings: Option<TrustSettings>,
    issuance: AutomaticIssuance,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    quickstart: Arc<QuickstartCa>,
    /// When each automatic port's certificate is due, by (listener, port).
    renewals: BTreeMap<(String, u16), SystemTime>,
    /// What clients need to trust each port's certificate, by (listener, port): the CA of its
    /// issuer (the root when known), or the certificate itself when self-signed.
    anchors: BTreeMap<(String, u16), Vec<TrustAnchor>>,
    /// The certificates of the trust settings' ConfigMap, as of the last model seen.
    configured: Vec<TrustAnchor>,
    /// Why the trust settings' ConfigMap adds nothing, when it does not (logged once).
    configured_problem: Option<String>,
    /// The trust bundle as last written.
    bundle: Vec<TrustAnchor>,
}

/// A certificate of the trust bundle and why it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    /// The certificate.
    pub der: rustls_pki_types::CertificateDer<'static>,
    /// Why it is in the bundle: `quickstart CA (<path>)`, `CA of Issuer/x`, `ConfigMap/x key k`.
    pub source: String,
}

/// The trust settings of `az iot ops create --trust-settings configMapName=… configMapKey=…`:
/// the ConfigMap (and, if given, its key) whose CA certificates join the trust bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustSettings {
    /// The ConfigMap's name.
    pub config_map: String,
    /// The key; every key of the ConfigMap when `None`.
    pub key: Option<String>,
}

/// What a port's TLS resolved to.
#[derive(Debug, Clone)]
pub enum TlsOutcome {
    /// The port can serve.
    Ready(PortTls),
    /// The manual Secret (or an issuer's CA Secret) is not in the configuration yet.
    /// The message is the log line: `Server certificate <name> not found. Awaiting creation of
    /// secret.`
    AwaitingSecret {
        /// The Secret's name.
        secret: String,
        /// The log line.
        message: String,
    },
    /// The issuer of an automatic certificate is not in the configuration.
    AwaitingIssuer {
        /// `Issuer` or `ClusterIssuer`.
        kind: String,
        /// The issuer's name.
        name: String,
        /// The log line: `Issuer <kind>/<name> not found`.
        message: String,
    },
    /// The ConfigMap of trusted client CAs is not in the configuration yet.
    AwaitingConfigMap {
        /// The ConfigMap's name.
        name: String,
        /// The log line.
        message: String,
    },
    /// The certificate, key, issuer or CA bundle is unusable; the reason says why and how to
    /// fix it.
    Failed {
        /// What is wrong.
        reason: String,
    },
}

/// A port's TLS, ready to serve.
#[derive(Debug, Clone)]
pub struct PortTls {
    /// The server configuration (TLS 1.2 and 1.3, no ALPN; the same for MQTT and WebSocket
    /// ports).
    pub config: Arc<ServerConfig>,
    /// The served chain, leaf first.
    pub certificates: Vec<CertificateInfo>,
    /// The trusted client CAs, when the port asks for client certificates.
    pub client_cas: Vec<CertificateInfo>,
    /// Problems the port serves with anyway (expired certificate, no SAN, ...). Not logged
    /// here: the caller logs each once, with the port, and counts them.
    pub warnings: Vec<String>,
}

impl PortTls {
    /// Whether the handshake asks clients for a certificate.
    pub fn requests_client_certificates(&self) -> bool {
        !self.client_cas.is_empty()
    }
}

/// Where to put the automatic SANs' host part, and what else the trust bundle holds.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// Host names added to every automatic certificate (default: this machine's host name).
    pub host_names: Vec<String>,
    /// Namespace of the `<service>.<namespace>...` SANs (default `azure-iot-operations`).
    pub namespace: String,
    /// The ConfigMap of CA certificates added to the trust bundle (`--trust-settings`).
    pub trust_settings: Option<TrustSettings>,
    /// Who issues the certificates of automatic ports.
    pub issuance: AutomaticIssuance,
}

/// Who issues the certificates of `tls.mode: Automatic` ports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AutomaticIssuance {
    /// Wardgate's built-in issuer: the quickstart CA, or the configuration's `selfSigned` and
    /// `ca` issuers; certificates are kept in the data dir and renewed here.
    #[default]
    BuiltIn,
    /// cert-manager, on a Kubernetes cluster that runs it: a cert-manager `Certificate` (made by
    /// the in-cluster mode) writes the Secret `secretName`, which the port serves as it would a
    /// manual one, waiting for it with AIO's `Server certificate <name> not found. Awaiting
    /// creation of secret.`; cert-manager renews it by rewriting the Secret.
    CertManager,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            host_names: local_host_name().into_iter().collect(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            trust_settings: None,
            issuance: AutomaticIssuance::BuiltIn,
        }
    }
}

/// This machine's host name, lower case, from the kernel.
fn local_host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
}

impl TlsContext {
    /// Opens (creating on first start) the data dir's PKI state: the quickstart CA (subject
    /// `O=Wardgate, CN=Wardgate Quickstart Root CA - Not for Production`, one year, replaced two
    /// thirds into its life) and its key under `<data_dir>/pki/quickstart-ca/`. The trust
    /// bundle `<data_dir>/trust-bundle/ca.crt` is written as ports resolve (see
    /// [`TlsContext::refresh_trust_bundle`]).
    pub fn open(data_dir: &Path) -> Result<TlsContext, PkiError> {
        Self::open_with(data_dir, TlsOptions::default())
    }

    /// [`TlsContext::open`] with explicit automatic-SAN settings.
    pub fn open_with(data_dir: &Path, options: TlsOptions) -> Result<TlsContext, PkiError> {
        let layout = Layout::new(data_dir);
        let provider = crate::pki::issue::provider();
        let quickstart = store::open_quickstart_ca(&layout, &provider, SystemTime::now())?;
        Ok(TlsContext {
            layout,
            provider,
            host_names: options.host_names,
            namespace: options.namespace,
            trust_settings: options.trust_settings,
            issuance: options.issuance,
            state: Mutex::new(State {
                quickstart: Arc::new(quickstart),
                renewals: BTreeMap::new(),
                anchors: BTreeMap::new(),
                configured: Vec::new(),
                configured_problem: None,
                bundle: Vec::new(),
            }),
        })
    }

    /// `<data_dir>/trust-bundle/ca.crt`: what clients pass as `--cafile`. It holds, without
    /// duplicates, the CA of every issuer that signs a certificate served here (the quickstart
    /// CA only while a port uses it; the root of a `ca.secretName` issuer's chain, or its
    /// Secret's `ca.crt`; a self-signed certificate itself; the root at the end of a manual
    /// chain), then the certificates of the trust settings' ConfigMap. No file while it would
    /// be empty.
    pub fn trust_bundle_path(&self) -> PathBuf {
        self.layout.trust_bundle.clone()
    }

    /// The trust bundle as last written, each certificate with why it is there.
    pub fn trust_bundle(&self) -> Vec<CertificateInfo> {
        self.state
            .lock()
            .bundle
            .iter()
            .filter_map(|a| {
                let mut info = CertificateInfo::from_der(&a.der, &a.source).ok()?;
                info.source.clone_from(&a.source);
                Some(info)
            })
            .collect()
    }

    /// Re-reads the trust settings' ConfigMap from `model`, forgets the ports gone from it, and
    /// rewrites the trust bundle if that changes it. `resolve` does this too; call it after
    /// applying a configuration (a ConfigMap may change with no port to resolve).
    pub fn refresh_trust_bundle(&self, model: &Model) {
        self.prune(model);
        self.publish(model);
    }

    /// Re-reads the trust settings' ConfigMap and rewrites the bundle if it changed.
    fn publish(&self, model: &Model) {
        let (configured, problem) = self.configured_anchors(model);
        let mut state = self.state.lock();
        if problem != state.configured_problem {
            if let Some(p) = &problem {
                tracing::warn!("{p}");
            }
            state.configured_problem = problem;
        }
        state.configured = configured;
        self.write_bundle(&mut state);
    }

    /// The certificates of the trust settings' ConfigMap, and why there are none if so.
    fn configured_anchors(&self, model: &Model) -> (Vec<TrustAnchor>, Option<String>) {
        let Some(t) = &self.trust_settings else {
            return (Vec::new(), None);
        };
        let Some(cm) = model.config_maps.get(&t.config_map) else {
            return (
                Vec::new(),
                Some(format!(
                    "trust settings: ConfigMap/{} not found; the trust bundle lacks its CA \
                     certificates until it is created",
                    t.config_map
                )),
            );
        };
        let mut anchors = Vec::new();
        let mut problems = Vec::new();
        for (key, value) in cm.values() {
            if t.key.as_deref().is_some_and(|k| k != key) {
                continue;
            }
            let what = format!("ConfigMap/{} key {key}", t.config_map);
            match crate::pki::chain::ca_bundle(value, &what) {
                Ok(certs) => anchors.extend(certs.into_iter().map(|der| TrustAnchor {
                    der,
                    source: what.clone(),
                })),
                Err(e) => problems.push(format!("trust settings: {e}")),
            }
        }
        if let Some(k) = &t.key
            && !cm.values().any(|(key, _)| key == k)
        {
            problems.push(format!(
                "trust settings: ConfigMap/{} has no key {k}",
                t.config_map
            ));
        }
        let problem = (!problems.is_empty()).then(|| problems.join("; "));
        (anchors, problem)
    }

    /// Writes the bundle: every port's anchors, then the configured ones, each once.
    fn write_bundle(&self, state: &mut State) {
        let mut bundle: Vec<TrustAnchor> = Vec::new();
        for a in state.anchors.values().flatten().chain(&state.configured) {
            if !bundle.iter().any(|b| b.der == a.der) {
                bundle.push(a.clone());
            }
        }
        if bundle == state.bundle && self.layout.trust_bundle.exists() != bundle.is_empty() {
            return;
        }
        let ders: Vec<_> = bundle.iter().map(|a| a.der.clone()).collect();
        match store::write_trust_bundle(&self.layout, &ders) {
            Ok(()) => {
                let subjects: Vec<String> = bundle
                    .iter()
                    .map(|a| {
                        CertificateInfo::from_der(&a.der, &a.source)
                            .map_or_else(|_| a.source.clone(), |i| i.subject.to_string())
                    })
                    .collect();
                tracing::info!(
                    path = %self.layout.trust_bundle.display(),
                    certificates = %subjects.join("; "),
                    "trust bundle written"
                );
                state.bundle = bundle;
            }
            Err(e) => tracing::warn!(error = %e, "cannot write the trust bundle"),
        }
    }

    /// The quickstart CA's certificate as it is now: the first certificate of the trust bundle.
    pub fn quickstart_ca(&self) -> CertificateInfo {
        self.state.lock().quickstart.signer.info().clone()
    }

    /// The crypto provider of every configuration made here (aws-lc-rs).
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// Resolves one port's TLS from the model (see the module documentation and SPEC.md §6).
    pub fn resolve(&self, model: &Model, listener: &Listener, port: &ListenerPort) -> TlsOutcome {
        let key = (listener.name.clone(), port.port);
        let outcome = self.resolve_port(model, listener, port, &key);
        self.publish(model);
        outcome
    }

    fn resolve_port(
        &self,
        model: &Model,
        listener: &Listener,
        port: &ListenerPort,
        key: &(String, u16),
    ) -> TlsOutcome {
        let key = key.clone();
        self.prune(model);
        let server = match &port.tls {
            None => {
                return TlsOutcome::Failed {
                    reason: format!(
                        "BrokerListener/{} port {} has no tls settings",
                        listener.name, port.port
                    ),
                };
            }
            Some(Tls::Manual(m)) => {
                self.state.lock().renewals.remove(&key);
                manual::resolve(model, m, &self.provider)
            }
            Some(Tls::Automatic(a)) if self.issuance == AutomaticIssuance::CertManager => {
                // cert-manager renews: nothing is due here.
                self.state.lock().renewals.remove(&key);
                cert_manager::resolve(model, a, &self.provider)
            }
            Some(Tls::Automatic(a)) => {
                let quickstart = match self.quickstart() {
                    Ok(q) => q,
                    Err(e) => {
                        return TlsOutcome::Failed {
                            reason: format!("the quickstart CA: {e}"),
                        };
                    }
                };
                let ctx = automatic::Ctx {
                    layout: &self.layout,
                    provider: &self.provider,
                    quickstart: &quickstart,
                    host_names: &self.host_names,
                    namespace: &self.namespace,
                };
                let r = automatic::resolve(&ctx, model, listener, a);
                // On failure a port that served keeps serving its certificate (an issuer or CA
                // Secret gone, a full disk): its renewal stays due, so that it is retried.
                if let Ok(ServerCert {
                    renew_at: Some(at), ..
                }) = &r
                {
                    self.state.lock().renewals.insert(key.clone(), *at);
                }
                r
            }
        };
        let server = match server {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        let client = match client::verifier(model, port, &self.provider) {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        let builder = match ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        {
            Ok(b) => b,
            Err(e) => {
                return TlsOutcome::Failed {
                    reason: format!("building the TLS configuration: {e}"),
                };
            }
        };
        let (builder, client_cas) = match client {
            Some(c) => (builder.with_client_cert_verifier(c.verifier), c.cas),
            None => (builder.with_no_client_auth(), Vec::new()),
        };
        let config = builder.with_cert_resolver(Arc::new(FixedCert(Arc::new(server.key))));
        // A port that fails keeps its anchors: it may go on serving its current certificate.
        self.state.lock().anchors.insert(key, server.anchors);
        TlsOutcome::Ready(PortTls {
            config: Arc::new(config),
            certificates: server.infos,
            client_cas,
            warnings: server.warnings,
        })
    }

    /// The earliest instant an automatic certificate resolved here is due for renewal (for one
    /// issued by the quickstart CA, at the latest when the CA is due for rotation): call
    /// `resolve` again for its port then. A renewal that failed stays due, in the past, until a
    /// `resolve` succeeds or the port is gone. `None` when no automatic certificate is in use.
    pub fn next_renewal(&self) -> Option<SystemTime> {
        self.state.lock().renewals.values().min().copied()
    }

    /// Drops the renewals of ports that are gone from the model or no longer automatic, so that
    /// a removed port's due date never comes back from `next_renewal`, and the trust anchors of
    /// ports gone or without TLS.
    fn prune(&self, model: &Model) {
        let mut state = self.state.lock();
        state.renewals.retain(|(l, p), _| {
            model.listener(l).is_some_and(|l| {
                l.ports
                    .iter()
                    .any(|q| q.port == *p && matches!(q.tls, Some(Tls::Automatic(_))))
            })
        });
        state.anchors.retain(|(l, p), _| {
            model
                .listener(l)
                .is_some_and(|l| l.ports.iter().any(|q| q.port == *p && q.tls.is_some()))
        });
    }

    /// Forgets a port's renewal and trust anchors (the port was removed).
    pub fn forget(&self, listener: &str, port: u16) {
        let mut state = self.state.lock();
        let key = (listener.to_owned(), port);
        state.renewals.remove(&key);
        if state.anchors.remove(&key).is_some() {
            self.write_bundle(&mut state);
        }
    }

    /// The quickstart CA, replaced first if it is due.
    fn quickstart(&self) -> Result<Arc<QuickstartCa>, PkiError> {
        let mut state = self.state.lock();
        if SystemTime::now() >= state.quickstart.rotate_at {
            let q = store::open_quickstart_ca(&self.layout, &self.provider, SystemTime::now())?;
            state.quickstart = Arc::new(q);
        }
        Ok(state.quickstart.clone())
    }
}

/// What [`TlsContext::resolve`] would report for a port's TLS material, without a data dir and
/// without issuing anything (`wardgate validate`): the manual Secret's chain and key with every
/// check of SPEC.md §6.1, an automatic port's issuer and its CA Secret, the trusted client CA
/// bundle. `Ok` holds the warnings the port would serve with; `Err` the waiting or failed
/// outcome, with the reason `serve` gives.
pub fn check_port(model: &Model, port: &ListenerPort) -> Result<Vec<String>, TlsOutcome> {
    let provider = crate::pki::issue::provider();
    let warnings = match &port.tls {
        None => return Ok(Vec::new()),
        Some(Tls::Manual(m)) => manual::resolve(model, m, &provider)?.warnings,
        Some(Tls::Automatic(a)) => {
            automatic::check(model, a, &provider)?;
            Vec::new()
        }
    };
    client::verifier(model, port, &provider)?;
    Ok(warnings)
}

/// A resolved server certificate, before the client side is added.
#[derive(Debug)]
pub(crate) struct ServerCert {
    pub(crate) key: CertifiedKey,
    pub(crate) infos: Vec<CertificateInfo>,
    pub(crate) warnings: Vec<String>,
    /// When an automatic certificate is due.
    pub(crate) renew_at: Option<SystemTime>,
    /// What clients must trust for it (the trust bundle's part for this port).
    pub(crate) anchors: Vec<TrustAnchor>,
}

/// One certificate for every handshake; a new one comes with a new `ServerConfig`.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A `CertifiedKey` from a checked chain.
pub(crate) fn certified_key(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    CertifiedKey::from_der(chain, key, provider).map_err(|e| format!("the key is not usable: {e}"))
}
