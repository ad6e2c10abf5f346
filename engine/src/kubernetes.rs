//! Executors as Kubernetes pods that the driver creates itself (`kiln.cluster.kubernetes`,
//! Spark's model on Kubernetes): when the session starts, the driver creates one pod per
//! executor through the Kubernetes API, each running `kiln executor --driver URL` from the
//! Kiln image, labelled with the session and owned by the driver's pod (so that Kubernetes
//! deletes them with it); when the session ends, it deletes them. The pods restart their
//! container on failure, and a restarted executor rejoins the driver under its name.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, Container, EnvFromSource, EnvVar, EnvVarSource, ExecAction, Pod, PodSpec,
    Probe, ResourceRequirements, SecretEnvSource, SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams};

use crate::error::{EngineError, Result};

/// The label every executor pod of a session carries, with the session's id.
pub const SESSION_LABEL: &str = "kiln.dev/session";

/// Where the Kubernetes service account's namespace is mounted in a pod.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// How the driver creates its executor pods ([`crate::SessionBuilder::kubernetes`], or the
/// `kiln.kubernetes.*` settings with `kiln.cluster.kubernetes = true`).
#[derive(Clone, Default)]
pub struct KubernetesOptions {
    /// The API client; default: the in-cluster configuration (the pod's service account),
    /// else `~/.kube/config`.
    pub client: Option<kube::Client>,
    /// The namespace of the pods; default: the service account's namespace, else `default`.
    pub namespace: Option<String>,
    /// The executors' image (default `kiln:latest`), with `/bin/kiln` as its entry point as
    /// `deploy/image/build.sh` builds it.
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never` (default: Kubernetes' own default).
    pub image_pull_policy: Option<String>,
    /// The driver's pod, which owns the executor pods; default: `$HOSTNAME` when a pod of
    /// that name exists (a driver outside Kubernetes owns none).
    pub driver_pod: Option<String>,
    /// The URL executors dial; default `http://$KILN_POD_IP:PORT` (the pod's IP from the
    /// downward API), else `http://HOSTNAME:PORT`.
    pub driver_url: Option<String>,
    /// CPU each executor requests and is limited to (`"1"`, `"500m"`).
    pub executor_cpu: Option<String>,
    /// Memory each executor requests and is limited to (`"1Gi"`).
    pub executor_memory: Option<String>,
    /// A Secret whose key `KILN_AUTH_TOKEN` the executors take the shared secret from;
    /// without it the token is written into the pod spec.
    pub token_secret: Option<String>,
    /// ConfigMaps whose keys become the executors' environment (store settings).
    pub env_config_maps: Vec<String>,
    /// Secrets whose keys become the executors' environment (store credentials).
    pub env_secrets: Vec<String>,
    /// The executors' service account.
    pub service_account: Option<String>,
}

impl std::fmt::Debug for KubernetesOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesOptions")
            .field("client", &self.client.as_ref().map(|_| "kube::Client"))
            .field("namespace", &self.namespace)
            .field("image", &self.image)
            .field("driver_pod", &self.driver_pod)
            .field("driver_url", &self.driver_url)
            .field("executor_cpu", &self.executor_cpu)
            .field("executor_memory", &self.executor_memory)
            .field("token_secret", &self.token_secret)
            .field("env_config_maps", &self.env_config_maps)
            .field("env_secrets", &self.env_secrets)
            .field("service_account", &self.service_account)
            .finish()
    }
}

/// What one executor pod is made from.
#[derive(Debug, Clone)]
pub(crate) struct PodTemplate {
    pub(crate) session: String,
    pub(crate) namespace: String,
    pub(crate) image: String,
    pub(crate) image_pull_policy: Option<String>,
    pub(crate) driver_url: String,
    pub(crate) owner: Option<OwnerReference>,
    pub(crate) slots: usize,
    pub(crate) memory_bytes: Option<usize>,
    pub(crate) cpu: Option<String>,
    pub(crate) memory: Option<String>,
    /// The token: a Secret's name (`Ok`) or the value itself (`Err`).
    pub(crate) token: std::result::Result<String, String>,
    pub(crate) env_config_maps: Vec<String>,
    pub(crate) env_secrets: Vec<String>,
    pub(crate) service_account: Option<String>,
}

impl PodTemplate {
    /// The name of executor `index`'s pod.
    pub(crate) fn pod_name(&self, index: usize) -> String {
        format!("{}-exec-{index}", self.session)
    }

    /// The pod of executor `index`.
    pub(crate) fn pod(&self, index: usize) -> Pod {
        let name = self.pod_name(index);
        let labels: BTreeMap<String, String> = [
            ("app.kubernetes.io/name", "kiln"),
            ("app.kubernetes.io/component", "executor"),
            ("app.kubernetes.io/managed-by", "kiln"),
            (SESSION_LABEL, self.session.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut args = vec![
            "executor".to_string(),
            "--driver".to_string(),
            self.driver_url.clone(),
            "--slots".to_string(),
            self.slots.to_string(),
            "--id".to_string(),
            name.clone(),
        ];
        if let Some(bytes) = self.memory_bytes {
            args.extend(["--memory".to_string(), bytes.to_string()]);
        }
        let token = match &self.token {
            Ok(secret) => EnvVar {
                name: crate::config::AUTH_TOKEN_ENV.to_string(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.clone(),
                        key: crate::config::AUTH_TOKEN_ENV.to_string(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
            Err(value) => EnvVar {
                name: crate::config::AUTH_TOKEN_ENV.to_string(),
                value: Some(value.clone()),
                ..EnvVar::default()
            },
        };
        let env_from: Vec<EnvFromSource> = self
            .env_config_maps
            .iter()
            .map(|n| EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: n.clone(),
                    optional: None,
                }),
                ..EnvFromSource::default()
            })
            .chain(self.env_secrets.iter().map(|n| EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: n.clone(),
                    optional: None,
                }),
                ..EnvFromSource::default()
            }))
            .collect();
        let quantities = |cpu: &Option<String>, memory: &Option<String>| {
            let q: BTreeMap<String, Quantity> = [("cpu", cpu), ("memory", memory)]
                .into_iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), Quantity(v.clone()))))
                .collect();
            (!q.is_empty()).then_some(q)
        };
        let resources = quantities(&self.cpu, &self.memory).map(|q| ResourceRequirements {
            requests: Some(q.clone()),
            limits: Some(q),
            ..ResourceRequirements::default()
        });
        Pod {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                owner_references: self.owner.clone().map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some("OnFailure".to_string()),
                service_account_name: self.service_account.clone(),
                containers: vec![Container {
                    name: "executor".to_string(),
                    image: Some(self.image.clone()),
                    image_pull_policy: self.image_pull_policy.clone(),
                    args: Some(args),
                    env: Some(vec![token]),
                    env_from: (!env_from.is_empty()).then_some(env_from),
                    resources,
                    liveness_probe: Some(Probe {
                        exec: Some(ExecAction {
                            command: Some(vec![
                                "/bin/kiln".to_string(),
                                "health".to_string(),
                                "--driver".to_string(),
                                self.driver_url.clone(),
                            ]),
                        }),
                        period_seconds: Some(10),
                        failure_threshold: Some(3),
                        ..Probe::default()
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: None,
        }
    }
}

/// The executor pods a session created; [`delete`](Self::delete) removes them.
pub(crate) struct ExecutorPods {
    api: Api<Pod>,
    namespace: String,
    names: Vec<String>,
}

impl std::fmt::Debug for ExecutorPods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorPods")
            .field("namespace", &self.namespace)
            .field("names", &self.names)
            .finish()
    }
}

/// What the API said, for a person: its message, reason and code.
fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() {
                String::new()
            } else {
                format!(", {}", status.reason)
            };
            format!("{} (HTTP {}{reason})", status.message, status.code)
        }
        other => other.to_string(),
    }
}

fn refused(what: String, e: &kube::Error) -> EngineError {
    EngineError::InvalidParameter {
        name: "kiln.cluster.kubernetes",
        reason: format!("the Kubernetes API refused to {what}: {}", api_error(e)),
    }
}

impl ExecutorPods {
    /// The client, namespace and owner `options` name (asking the API for the driver's pod).
    pub(crate) async fn resolve(
        options: &KubernetesOptions,
    ) -> Result<(kube::Client, String, Option<OwnerReference>)> {
        let client =
            match &options.client {
                Some(c) => c.clone(),
                None => kube::Client::try_default().await.map_err(|e| {
                    EngineError::InvalidParameter {
                        name: "kiln.cluster.kubernetes",
                        reason: format!(
                        "no Kubernetes API to create executor pods with (in a pod: its service \
                         account; elsewhere: ~/.kube/config): {e}"
                    ),
                    }
                })?,
            };
        let namespace = options
            .namespace
            .clone()
            .or_else(|| {
                std::fs::read_to_string(NAMESPACE_FILE)
                    .ok()
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(|| "default".to_string());
        let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let (driver, named) = match &options.driver_pod {
            Some(name) => (Some(name.clone()), true),
            None => (std::env::var("HOSTNAME").ok(), false),
        };
        let owner = match driver {
            None => None,
            Some(name) => match api.get_opt(&name).await {
                Ok(Some(pod)) => pod.metadata.uid.map(|uid| OwnerReference {
                    api_version: "v1".to_string(),
                    kind: "Pod".to_string(),
                    name: name.clone(),
                    uid,
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }),
                Ok(None) if !named => None,
                Ok(None) => {
                    return Err(EngineError::InvalidParameter {
                        name: "kiln.kubernetes.driver_pod",
                        reason: format!("no pod '{name}' in namespace '{namespace}'"),
                    })
                }
                Err(e) => {
                    return Err(refused(
                        format!("read the driver's pod '{name}' in namespace '{namespace}'"),
                        &e,
                    ))
                }
            },
        };
        Ok((client, namespace, owner))
    }

    /// Creates `count` executor pods from `template`. If the API refuses one, the pods
    /// already created are deleted and the error names the pod, the namespace and the API's
    /// reason.
    pub(crate) async fn create(
        client: kube::Client,
        template: &PodTemplate,
        count: usize,
    ) -> Result<Self> {
        let api: Api<Pod> = Api::namespaced(client, &template.namespace);
        let mut pods = Self {
            api,
            namespace: template.namespace.clone(),
            names: Vec::new(),
        };
        for index in 0..count {
            let pod = template.pod(index);
            let name = template.pod_name(index);
            match pods.api.create(&PostParams::default(), &pod).await {
                Ok(_) => pods.names.push(name),
                Err(e) => {
                    pods.delete().await;
                    return Err(refused(
                        format!(
                            "create executor pod '{name}' in namespace '{}'",
                            template.namespace
                        ),
                        &e,
                    ));
                }
            }
        }
        Ok(pods)
    }

    /// The pods' names.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// Deletes the pods (those already gone are fine); says which could not be deleted.
    pub(crate) async fn delete(&mut self) {
        for name in std::mem::take(&mut self.names) {
            match self.api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => tracing::warn!(
                    pod = %name,
                    namespace = %self.namespace,
                    error = %api_error(&e),
                    "could not delete an executor pod"
                ),
            }
        }
    }
}

impl Drop for ExecutorPods {
    fn drop(&mut self) {
        if self.names.is_empty() {
            return;
        }
        let mut pods = Self {
            api: self.api.clone(),
            namespace: self.namespace.clone(),
            names: std::mem::take(&mut self.names),
        };
        // The ownerReference on the driver's pod is the second line.
        crate::cleanup::finish_during_drop(
            async move { pods.delete().await },
            Duration::from_secs(10),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{json, Value};

    fn template(owner: Option<OwnerReference>) -> PodTemplate {
        PodTemplate {
            session: "kiln-0123456789ab".into(),
            namespace: "ml".into(),
            image: "kiln:test".into(),
            image_pull_policy: Some("Never".into()),
            driver_url: "http://10.1.2.3:7077".into(),
            owner,
            slots: 2,
            memory_bytes: Some(1 << 30),
            cpu: Some("1".into()),
            memory: Some("1Gi".into()),
            token: Ok("kiln-credentials".into()),
            env_config_maps: vec!["kiln-environment".into()],
            env_secrets: vec!["kiln-credentials".into()],
            service_account: Some("kiln-executor".into()),
        }
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: "driver-0".into(),
            uid: "6f1c-driver-uid".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// The exact pod executor 1 of the session is created as.
    fn expected_pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "kiln-0123456789ab-exec-1",
                "namespace": "ml",
                "labels": {
                    "app.kubernetes.io/component": "executor",
                    "app.kubernetes.io/managed-by": "kiln",
                    "app.kubernetes.io/name": "kiln",
                    "kiln.dev/session": "kiln-0123456789ab"
                },
                "ownerReferences": [{
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": "driver-0",
                    "uid": "6f1c-driver-uid",
                    "controller": true,
                    "blockOwnerDeletion": true
                }]
            },
            "spec": {
                "restartPolicy": "OnFailure",
                "serviceAccountName": "kiln-executor",
                "containers": [{
                    "name": "executor",
                    "image": "kiln:test",
                    "imagePullPolicy": "Never",
                    "args": ["executor", "--driver", "http://10.1.2.3:7077", "--slots", "2",
                             "--id", "kiln-0123456789ab-exec-1", "--memory", "1073741824"],
                    "env": [{
                        "name": "KILN_AUTH_TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "kiln-credentials", "key": "KILN_AUTH_TOKEN"}}
                    }],
                    "envFrom": [
                        {"configMapRef": {"name": "kiln-environment"}},
                        {"secretRef": {"name": "kiln-credentials"}}
                    ],
                    "resources": {
                        "requests": {"cpu": "1", "memory": "1Gi"},
                        "limits": {"cpu": "1", "memory": "1Gi"}
                    },
                    "livenessProbe": {
                        "exec": {"command": ["/bin/kiln", "health", "--driver", "http://10.1.2.3:7077"]},
                        "periodSeconds": 10,
                        "failureThreshold": 3
                    }
                }]
            }
        })
    }

    #[test]
    fn an_executor_pod_is_exactly_this() {
        let pod = serde_json::to_value(template(Some(owner())).pod(1)).unwrap();
        assert_eq!(pod, expected_pod());
        // Without a Secret the token is the value itself; without a driver pod, no owner.
        let mut t = template(None);
        t.token = Err("s3cret".into());
        let pod = serde_json::to_value(t.pod(0)).unwrap();
        assert_eq!(
            pod["spec"]["containers"][0]["env"],
            json!([{"name": "KILN_AUTH_TOKEN", "value": "s3cret"}])
        );
        assert!(pod["metadata"].get("ownerReferences").is_none());
    }

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn mock() -> (kube::Client, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (kube::Client::new(service, "ml"), handle)
    }

    fn respond(send: tower_test::mock::SendResponse<Response<Body>>, code: u16, body: Value) {
        send.send_response(
            Response::builder()
                .status(StatusCode::from_u16(code).unwrap())
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
    }

    fn status(code: u16, reason: &str, message: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": message, "reason": reason, "code": code})
    }

    /// The next request: method, path and JSON body.
    async fn next(
        handle: &mut Handle,
    ) -> (
        Method,
        String,
        Value,
        tower_test::mock::SendResponse<Response<Body>>,
    ) {
        let (request, send) = handle.next_request().await.expect("a request");
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (method, path, body, send)
    }

    #[tokio::test]
    async fn the_driver_creates_its_pods_owned_by_its_own_and_deletes_them() {
        let (client, mut handle) = mock();
        let api = tokio::spawn(async move {
            // The driver's pod, for its uid.
            let (method, path, _, send) = next(&mut handle).await;
            assert_eq!(
                (method, path.as_str()),
                (Method::GET, "/api/v1/namespaces/ml/pods/driver-0")
            );
            respond(
                send,
                200,
                json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "driver-0", "namespace": "ml", "uid": "6f1c-driver-uid"}}),
            );
            let mut created = Vec::new();
            for _ in 0..2 {
                let (method, path, body, send) = next(&mut handle).await;
                assert_eq!(
                    (method, path.as_str()),
                    (Method::POST, "/api/v1/namespaces/ml/pods")
                );
                created.push(body.clone());
                respond(send, 201, body);
            }
            let mut deleted = Vec::new();
            for _ in 0..2 {
                let (method, path, _, send) = next(&mut handle).await;
                assert_eq!(method, Method::DELETE);
                deleted.push(path);
                respond(
                    send,
                    200,
                    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
                );
            }
            (created, deleted)
        });
        let options = KubernetesOptions {
            client: Some(client),
            namespace: Some("ml".into()),
            driver_pod: Some("driver-0".into()),
            ..KubernetesOptions::default()
        };
        let Ok((client, namespace, driver)) = ExecutorPods::resolve(&options).await else {
            panic!("resolving failed");
        };
        assert_eq!(namespace, "ml");
        assert_eq!(driver, Some(owner()));
        let mut pods = ExecutorPods::create(client, &template(driver), 2)
            .await
            .unwrap();
        assert_eq!(
            pods.names(),
            ["kiln-0123456789ab-exec-0", "kiln-0123456789ab-exec-1"]
        );
        pods.delete().await;
        let (created, deleted) = api.await.unwrap();
        assert_eq!(created[1], expected_pod());
        assert_eq!(created[0]["metadata"]["name"], "kiln-0123456789ab-exec-0");
        assert_eq!(
            deleted,
            [
                "/api/v1/namespaces/ml/pods/kiln-0123456789ab-exec-0",
                "/api/v1/namespaces/ml/pods/kiln-0123456789ab-exec-1"
            ]
        );
    }

    #[tokio::test]
    async fn a_refused_pod_is_a_clear_error_and_the_pods_made_so_far_are_deleted() {
        let (client, mut handle) = mock();
        let api = tokio::spawn(async move {
            let (_, _, body, send) = next(&mut handle).await;
            respond(send, 201, body);
            let (method, _, _, send) = next(&mut handle).await;
            assert_eq!(method, Method::POST);
            respond(
                send,
                403,
                status(
                    403,
                    "Forbidden",
                    "pods is forbidden: User \"system:serviceaccount:ml:kiln\" cannot create resource \"pods\" in API group \"\" in the namespace \"ml\"",
                ),
            );
            let (method, path, _, send) = next(&mut handle).await;
            respond(
                send,
                200,
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
            );
            (method, path)
        });
        let err = ExecutorPods::create(client, &template(None), 3)
            .await
            .unwrap_err()
            .to_string();
        for part in [
            "kiln.cluster.kubernetes",
            "refused to create executor pod 'kiln-0123456789ab-exec-1' in namespace 'ml'",
            "cannot create resource \"pods\"",
            "HTTP 403, Forbidden",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        let (method, path) = api.await.unwrap();
        assert_eq!(method, Method::DELETE);
        assert_eq!(path, "/api/v1/namespaces/ml/pods/kiln-0123456789ab-exec-0");
    }

    #[tokio::test]
    async fn a_named_driver_pod_that_does_not_exist_is_an_error_naming_it() {
        let (client, mut handle) = mock();
        tokio::spawn(async move {
            let (_, _, _, send) = next(&mut handle).await;
            respond(
                send,
                404,
                status(404, "NotFound", "pods \"driver-9\" not found"),
            );
        });
        let options = KubernetesOptions {
            client: Some(client),
            namespace: Some("ml".into()),
            driver_pod: Some("driver-9".into()),
            ..KubernetesOptions::default()
        };
        let Err(err) = ExecutorPods::resolve(&options).await else {
            panic!("a missing driver pod must be an error");
        };
        let err = err.to_string();
        assert!(err.contains("kiln.kubernetes.driver_pod"), "{err}");
        assert!(err.contains("no pod 'driver-9' in namespace 'ml'"), "{err}");
    }
}
