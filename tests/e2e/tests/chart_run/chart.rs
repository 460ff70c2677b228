//! The chart, rendered: `helm template` of `helm/palaver` with a values file, parsed into
//! the objects the local run needs (Deployments, Services, Secrets, the migrations Job).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;

/// The release name the chart is rendered with (object names start with it).
pub const RELEASE: &str = "palaver";
pub const NAMESPACE: &str = "palaver";

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// `.tools/bin/helm` (`$PALAVER_TOOLS/bin/helm` when set, as for `make helm-check`),
/// which `make test` installs (`scripts/deps.sh helm`). Never skipped: without helm
/// this test fails and says how to get it.
pub fn helm() -> PathBuf {
    let tools = std::env::var_os("PALAVER_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools"));
    let helm = tools.join("bin/helm");
    assert!(
        helm.is_file(),
        "{} is missing: `make test` installs it (or `bash scripts/deps.sh helm` alone)",
        helm.display()
    );
    helm
}

/// Every object `helm template` rendered.
pub struct Rendered {
    pub objects: Vec<Value>,
}

/// Renders the chart with `values` (a file).
pub async fn render(values: &Path) -> Rendered {
    let root = repo_root();
    let output = tokio::process::Command::new(helm())
        .current_dir(&root)
        .args([
            "template",
            RELEASE,
            "helm/palaver",
            "--namespace",
            NAMESPACE,
            "-f",
        ])
        .arg(values)
        .output()
        .await
        .expect("helm runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "helm template failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut objects = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let object = Value::deserialize(document).expect("helm template renders YAML");
        if !object.is_null() {
            objects.push(object);
        }
    }
    Rendered { objects }
}

impl Rendered {
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    /// A key of a rendered Secret (`data` is base64, `stringData` plain).
    pub fn secret(&self, name: &str, key: &str) -> Option<String> {
        let secret = self
            .of_kind("Secret")
            .find(|s| s["metadata"]["name"] == name)?;
        if let Some(plain) = secret["stringData"][key].as_str() {
            return Some(plain.to_owned());
        }
        let encoded = secret["data"][key].as_str()?;
        let bytes = STANDARD.decode(encoded).expect("Secret data is base64");
        Some(String::from_utf8(bytes).expect("Secret data is UTF-8"))
    }

    /// The migrations Job's containers, in the order they run: init containers first.
    pub fn job_containers(&self) -> Vec<Container> {
        let jobs: Vec<&Value> = self.of_kind("Job").collect();
        assert_eq!(jobs.len(), 1, "migrations.enabled renders one Job");
        let spec = &jobs[0]["spec"]["template"]["spec"];
        containers(&spec["initContainers"])
            .into_iter()
            .chain(containers(&spec["containers"]))
            .collect()
    }

    pub fn deployments(&self) -> Vec<Deployment> {
        self.of_kind("Deployment")
            .map(|d| {
                let spec = &d["spec"]["template"]["spec"];
                assert!(
                    spec["initContainers"].is_null(),
                    "init containers of Deployments are not run here"
                );
                let containers = containers(&spec["containers"]);
                assert_eq!(containers.len(), 1, "one container per Palaver pod");
                Deployment {
                    name: name_of(d),
                    replicas: d["spec"]["replicas"]
                        .as_u64()
                        .expect("replicas set (autoscaling off in the values)")
                        as usize,
                    labels: string_map(&d["spec"]["template"]["metadata"]["labels"]),
                    container: containers.into_iter().next().unwrap(),
                }
            })
            .collect()
    }

    pub fn services(&self) -> Vec<Service> {
        self.of_kind("Service")
            .map(|s| Service {
                name: name_of(s),
                selector: string_map(&s["spec"]["selector"]),
                ports: s["spec"]["ports"]
                    .as_array()
                    .expect("Service ports")
                    .iter()
                    .map(|p| ServicePort {
                        port: p["port"].as_u64().expect("a port number") as u16,
                        target: p["targetPort"].clone(),
                    })
                    .collect(),
            })
            .collect()
    }
}

pub struct Deployment {
    pub name: String,
    pub replicas: usize,
    pub labels: BTreeMap<String, String>,
    pub container: Container,
}

pub struct Service {
    pub name: String,
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePort>,
}

pub struct ServicePort {
    pub port: u16,
    /// A number, or the name of a container port.
    pub target: Value,
}

#[derive(Clone)]
pub struct Container {
    pub name: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// EnvVar objects, as rendered.
    pub env: Vec<Value>,
    /// Named container ports.
    pub ports: BTreeMap<String, u16>,
    /// The readiness probe's `httpGet` (`path`, `port`).
    pub readiness: Option<Value>,
}

impl Container {
    /// A port given as a number or by name.
    pub fn port(&self, port: &Value) -> u16 {
        match port {
            Value::Number(n) => n.as_u64().expect("a port number") as u16,
            Value::String(name) => *self
                .ports
                .get(name)
                .unwrap_or_else(|| panic!("{} has no port named {name}", self.name)),
            other => panic!("unsupported port {other}"),
        }
    }
}

fn containers(list: &Value) -> Vec<Container> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    list.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            assert!(c["envFrom"].is_null(), "envFrom is not supported here");
            Container {
                name: c["name"].as_str().unwrap().to_owned(),
                command: strings(&c["command"]),
                args: strings(&c["args"]),
                env: c["env"].as_array().cloned().unwrap_or_default(),
                ports: c["ports"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|p| {
                        Some((
                            p["name"].as_str()?.to_owned(),
                            p["containerPort"].as_u64()? as u16,
                        ))
                    })
                    .collect(),
                readiness: c["readinessProbe"]
                    .get("httpGet")
                    .filter(|v| !v.is_null())
                    .cloned(),
            }
        })
        .collect()
}

fn name_of(object: &Value) -> String {
    object["metadata"]["name"].as_str().unwrap().to_owned()
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}
