//! `kiln.cluster.kubernetes`: a driver that creates its executors as pods through the
//! Kubernetes API, against a mock API service (kube-rs's `tower-test` pattern) acting as the
//! API server and a kubelet: each pod it is asked to create runs as a `kiln executor` process
//! with the pod's arguments and environment, and each pod it is asked to delete is killed.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

use http::{Method, Request, Response, StatusCode};
use kiln::deps::kube;
use kiln::kubernetes::KubernetesOptions;
use kiln::Session;
use kube::client::Body;
use serde_json::{json, Value};

use crate::common::sorted_rows;
use crate::sql::kiln_bin;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn respond(send: tower_test::mock::SendResponse<Response<Body>>, code: u16, body: &Value) {
    send.send_response(
        Response::builder()
            .status(StatusCode::from_u16(code).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

/// What the mock saw: the pods created (as sent) and the paths deleted.
#[derive(Default)]
struct Seen {
    created: Vec<Value>,
    deleted: Vec<String>,
}

/// Serves the API until `pods` pods were created and deleted again. The driver pod is not
/// found (the driver runs outside the cluster here, as in Spark's client mode).
async fn api_server_and_kubelet(mut handle: Handle, pods: usize) -> Seen {
    let mut seen = Seen::default();
    let mut running: BTreeMap<String, Child> = BTreeMap::new();
    while seen.deleted.len() < pods {
        let Some((request, send)) = handle.next_request().await else {
            break;
        };
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        match method {
            Method::GET => respond(
                send,
                404,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": "not found"}),
            ),
            Method::POST => {
                assert_eq!(path, "/api/v1/namespaces/ml/pods");
                let pod: Value = serde_json::from_slice(&bytes).unwrap();
                let container = &pod["spec"]["containers"][0];
                let mut args: Vec<String> = container["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                // The cluster network: the driver's host name is this machine.
                let driver = args.iter().position(|a| a == "--driver").unwrap() + 1;
                let url = url::Url::parse(&args[driver]).unwrap();
                args[driver] = format!("http://127.0.0.1:{}", url.port().unwrap());
                let mut command = Command::new(kiln_bin());
                command
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                for var in container["env"].as_array().unwrap() {
                    command.env(
                        var["name"].as_str().unwrap(),
                        var["value"].as_str().unwrap(),
                    );
                }
                let name = pod["metadata"]["name"].as_str().unwrap().to_string();
                running.insert(name, command.spawn().unwrap());
                respond(send, 201, &pod);
                seen.created.push(pod);
            }
            Method::DELETE => {
                let name = path.rsplit('/').next().unwrap().to_string();
                if let Some(mut child) = running.remove(&name) {
                    child.kill().unwrap();
                    child.wait().unwrap();
                }
                respond(
                    send,
                    200,
                    &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
                );
                seen.deleted.push(path);
            }
            other => panic!("unexpected {other} {path}"),
        }
    }
    assert!(
        running.is_empty(),
        "pods never deleted: {:?}",
        running.keys()
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_on_kubernetes_creates_its_executor_pods_runs_on_them_and_deletes_them() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "ml");
    let api = tokio::spawn(api_server_and_kubelet(handle, 2));

    let options = KubernetesOptions {
        client: Some(client),
        namespace: Some("ml".into()),
        image: Some("kiln:test".into()),
        executor_cpu: Some("1".into()),
        executor_memory: Some("1Gi".into()),
        ..KubernetesOptions::default()
    };
    let kiln = Session::builder()
        .slots_per_executor(1)
        .listen("127.0.0.1:0".parse().unwrap(), 2)
        .kubernetes(options)
        .build()
        .await
        .unwrap();
    let executors = kiln.executors();
    assert_eq!(executors.len(), 2);
    let session = kiln.id().to_string();
    let query = "SELECT value % 10 AS k, count(*) AS n, sum(value) AS s \
                 FROM generate_series(1, 100000) GROUP BY 1";
    let on_pods = kiln.sql(query).await.unwrap().collect().await.unwrap();
    let embedded = Session::builder().build().await.unwrap();
    let expected = embedded.sql(query).await.unwrap().collect().await.unwrap();
    assert_eq!(sorted_rows(&on_pods), sorted_rows(&expected));
    drop(kiln);

    let seen = tokio::time::timeout(std::time::Duration::from_secs(30), api)
        .await
        .expect("the session deletes its pods when it ends")
        .unwrap();
    let names: Vec<String> = (0..2).map(|i| format!("{session}-exec-{i}")).collect();
    let mut registered: Vec<String> = executors.into_iter().map(|e| e.id).collect();
    registered.sort();
    assert_eq!(
        registered, names,
        "executors register under their pods' names"
    );
    for (pod, name) in seen.created.iter().zip(&names) {
        assert_eq!(pod["metadata"]["name"], json!(name));
        assert_eq!(
            pod["metadata"]["labels"]["kiln.dev/session"],
            json!(session)
        );
        assert_eq!(
            pod["metadata"]["labels"]["app.kubernetes.io/component"],
            "executor"
        );
        assert_eq!(pod["spec"]["containers"][0]["image"], "kiln:test");
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["limits"],
            json!({"cpu": "1", "memory": "1Gi"})
        );
        // No Secret named: the driver made a token and wrote it into the pod.
        assert_eq!(
            pod["spec"]["containers"][0]["env"][0]["name"],
            "KILN_AUTH_TOKEN"
        );
    }
    let deleted: Vec<String> = names
        .iter()
        .map(|n| format!("/api/v1/namespaces/ml/pods/{n}"))
        .collect();
    assert_eq!(seen.deleted, deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_the_api_refuses_fails_to_start_saying_why() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "ml");
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let code = if request.method() == Method::GET {
                404
            } else {
                403
            };
            respond(
                send,
                code,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": if code == 404 { "NotFound" } else { "Forbidden" }, "code": code,
                        "message": if code == 404 { "not found" } else {
                            "pods is forbidden: User \"system:serviceaccount:ml:default\" cannot create resource \"pods\" in API group \"\" in the namespace \"ml\"" }}),
            );
        }
    });
    let started = std::time::Instant::now();
    let err = Session::builder()
        .listen("127.0.0.1:0".parse().unwrap(), 2)
        .kubernetes(KubernetesOptions {
            client: Some(client),
            namespace: Some("ml".into()),
            ..KubernetesOptions::default()
        })
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(err.contains("refused to create executor pod"), "{err}");
    assert!(err.contains("in namespace 'ml'"), "{err}");
    assert!(err.contains("cannot create resource \"pods\""), "{err}");
}

#[test]
fn kubernetes_settings_are_checked_and_a_local_cluster_refuses_them() {
    let mut config = kiln::config::Config::default();
    config
        .set("kiln.cluster.kubernetes", "true", kiln::config::Source::Set)
        .unwrap();
    config
        .set("kiln.mode", "local_cluster", kiln::config::Source::Set)
        .unwrap();
    let err = config.builder().unwrap_err().to_string();
    assert!(err.contains("kiln.cluster.kubernetes"), "{err}");
    let err = config
        .set(
            "kiln.cluster.kubernetes",
            "maybe",
            kiln::config::Source::Set,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("kiln.cluster.kubernetes"), "{err}");
}
