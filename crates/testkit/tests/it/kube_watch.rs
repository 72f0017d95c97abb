//! Watches on the fake API server with the real kube-rs client: the event types, bookmarks, 410
//! Gone for a compacted resourceVersion, and the runtime `watcher` resuming after a watch broken
//! mid-stream and relisting after a 410.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use wardgate_testkit::kube::FakeKube;

use crate::kube_client::client;

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .expect("ConfigMap")
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_watch_sends_added_modified_deleted_and_bookmarks_from_its_resource_version() {
    let fake = FakeKube::with_bookmark_interval(Duration::from_millis(200)).await;
    let api: Api<ConfigMap> = Api::namespaced(client(&fake).await, "default");
    api.create(&PostParams::default(), &config_map("before"))
        .await
        .unwrap();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();

    api.create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "w"}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap();
        match event {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.data.unwrap()["k"])),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(b) if seen.len() == 3 => {
                seen.push("BOOKMARK".into());
                assert!(
                    b.metadata.resource_version.parse::<u64>().unwrap()
                        > rv.parse::<u64>().unwrap()
                );
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("unexpected error event {e:?}"),
        }
    }
    assert_eq!(
        seen,
        ["ADDED a", "MODIFIED w", "DELETED a", "BOOKMARK"],
        "`before` is older than the watch"
    );
}

#[tokio::test]
async fn a_watch_from_a_compacted_resource_version_gets_410_gone() {
    let fake = FakeKube::start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&fake).await, "default");
    let old = api
        .create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.create(&PostParams::default(), &config_map("b"))
        .await
        .unwrap();
    fake.compact();
    let mut events = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event in time")
        .unwrap()
        .unwrap();
    match first {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

/// The next object name the watcher applies, skipping the bookkeeping events.
async fn next_applied<S>(stream: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin,
{
    loop {
        let event = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("an event in time")
            .expect("stream open");
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                return o.metadata.name.unwrap();
            }
            Ok(_) | Err(_) => continue,
        }
    }
}

/// The runtime watcher's stream is lazy: while the test does not poll it, nothing is read, so
/// the test decides what the server has done before the watcher next looks.
#[tokio::test]
async fn the_runtime_watcher_resumes_after_a_broken_watch_and_relists_after_410() {
    let fake = FakeKube::with_bookmark_interval(Duration::from_secs(300)).await;
    let c = client(&fake).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let mut stream = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    api.create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap();
    assert_eq!(next_applied(&mut stream).await, "a");
    let lists = |fake: &FakeKube| {
        let requests = fake.requests();
        requests
            .iter()
            .filter(|r| r.starts_with("GET") && r.contains("/configmaps") && !r.contains("watch="))
            .count()
    };
    let lists_before = lists(&fake);

    fake.break_watches();
    api.create(&PostParams::default(), &config_map("b"))
        .await
        .unwrap();
    assert_eq!(
        next_applied(&mut stream).await,
        "b",
        "a broken watch resumes and misses nothing"
    );
    assert_eq!(lists(&fake), lists_before, "resuming needs no relist");

    // Another type's change moves the server past the watcher's resourceVersion, the history is
    // compacted, the watch breaks: resuming gets 410 Gone.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(c, "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap(),
        )
        .await
        .unwrap();
    fake.compact();
    fake.break_watches();
    api.create(&PostParams::default(), &config_map("c"))
        .await
        .unwrap();
    let mut names = Vec::new();
    while !names.contains(&"c".to_string()) {
        names.push(next_applied(&mut stream).await);
    }
    assert!(
        names.contains(&"a".to_string()),
        "a relist applies every object again: {names:?}"
    );
    assert_eq!(
        lists(&fake),
        lists_before + 1,
        "a 410 makes the watcher relist: {:?}",
        fake.requests()
    );
}

#[tokio::test]
async fn the_runtime_watcher_with_streaming_lists_gets_its_initial_events_and_their_end() {
    let fake = FakeKube::start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&fake).await, "default");
    api.create(&PostParams::default(), &config_map("before"))
        .await
        .unwrap();
    let config = watcher::Config::default().streaming_lists();
    let mut stream = watcher(api.clone(), config).boxed();
    let mut initial = Vec::new();
    loop {
        let event = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap();
        match event {
            watcher::Event::InitApply(o) => initial.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, ["before"]);
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.contains("watch=") || !r.starts_with("GET")),
        "a streaming list is a watch, not a list: {:?}",
        fake.requests()
    );
    api.create(&PostParams::default(), &config_map("after"))
        .await
        .unwrap();
    assert_eq!(next_applied(&mut stream).await, "after");
}
