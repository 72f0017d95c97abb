//! A fake Kubernetes API server for tests, faithful at the HTTP level for what a controller
//! (kube-rs) and kubectl use: discovery, list, watch (resourceVersion, bookmarks, 410 Gone),
//! get, create, update, patch (JSON and merge; strategic merge and server-side apply
//! approximated as merge), the `status` subresource, delete with the garbage collector's cascade through owner
//! references, namespaces, server-side `Table`s for `kubectl get`, and TokenReview.
//!
//! It serves plain HTTP on 127.0.0.1 and a random port; [`FakeKube::kubeconfig`] points kubectl
//! and kube-rs at it. It does not check credentials, validate objects against CRD schemas, run
//! admission, or honour finalizers and `dryRun` (the latter is refused with 400).

mod events;
mod openapi;
pub mod patch;
mod protobuf;
pub mod resources;
mod routes;
pub mod selector;
pub mod status;
pub mod store;
mod table;
pub mod tokenreview;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, Uri};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

pub use patch::{Patch, PatchKind};
pub use store::{Part, Store};
pub use tokenreview::ServiceAccountToken;

/// State shared by the handlers.
pub struct App {
    store: Arc<Store>,
    tokens: Mutex<Vec<ServiceAccountToken>>,
    breaks: tokio::sync::watch::Sender<u64>,
    bookmark_interval: Duration,
    addr: String,
    requests: Mutex<Vec<String>>,
}

impl App {
    fn log_request(&self, method: &Method, uri: &Uri) {
        self.requests.lock().push(format!("{method} {uri}"));
    }

    fn watch_control(&self) -> watch::WatchControl {
        watch::WatchControl {
            bookmark_interval: self.bookmark_interval,
            breaks: self.breaks.subscribe(),
        }
    }
}

/// A running fake API server; stops when dropped.
pub struct FakeKube {
    addr: SocketAddr,
    app: Arc<App>,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl FakeKube {
    /// Starts a server with BOOKMARK events every second.
    pub async fn start() -> FakeKube {
        FakeKube::with_bookmark_interval(Duration::from_secs(1)).await
    }

    /// Starts a server sending BOOKMARK events (to watches that allow them) every `interval`.
    pub async fn with_bookmark_interval(interval: Duration) -> FakeKube {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback port 0");
        let addr = listener
            .local_addr()
            .expect("local address of a bound listener");
        let (breaks, _) = tokio::sync::watch::channel(0);
        let app = Arc::new(App {
            store: Arc::new(Store::new()),
            tokens: Mutex::new(Vec::new()),
            breaks,
            bookmark_interval: interval,
            addr: addr.to_string(),
            requests: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new()
            .fallback(routes::handle)
            .with_state(app.clone());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        let dir = tempfile::tempdir().expect("temporary directory for the kubeconfig");
        let fake = FakeKube {
            addr,
            app,
            dir,
            shutdown,
        };
        std::fs::write(fake.kubeconfig(), fake.kubeconfig_yaml()).expect("write the kubeconfig");
        fake
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The objects, for tests to seed and inspect directly.
    pub fn store(&self) -> &Store {
        &self.app.store
    }

    /// A kubeconfig file whose current context is this server (namespace `default`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: fake-admin\n  user:\n    token: fake-admin-token\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake-admin\n    namespace: default\n\
             current-context: fake\n",
            self.url()
        )
    }

    /// A `kubectl` command bound to this server, with its discovery cache in a private directory.
    pub fn kubectl(&self) -> std::process::Command {
        let mut command = std::process::Command::new("kubectl");
        let cache: &Path = self.dir.path();
        command
            .env("HOME", cache)
            .env("KUBECONFIG", self.kubeconfig())
            .arg(format!("--cache-dir={}", cache.join("cache").display()));
        command
    }

    /// Makes `token` valid for TokenReview.
    pub fn add_token(&self, token: ServiceAccountToken) {
        self.app.tokens.lock().push(token);
    }

    /// Ends every open watch mid-stream, as a restarted API server or a dropped connection does.
    pub fn break_watches(&self) {
        self.app.breaks.send_modify(|n| *n += 1);
    }

    /// Forgets the watch history, so that resuming a watch from any earlier resourceVersion gets
    /// 410 Gone (as after an etcd compaction).
    pub fn compact(&self) {
        self.app.store.compact();
    }

    /// `METHOD /path?query` of every request so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.app.requests.lock().clone()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
