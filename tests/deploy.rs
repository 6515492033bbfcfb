//! The deployment files of every example, checked by the real tools: `docker-compose
//! config` for compose.yaml, `hadolint` for the Dockerfiles, `kubernetes-validate
//! --strict` for the Kubernetes manifests, and the kustomize base's resource list
//! against the files beside it. A missing tool fails the test (`.ci/run` installs
//! them); nothing is skipped.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{
    assert_ok, compose_config, copy_dir, example, examples, fixture_monolith, msgen, require_tool,
    tree,
};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Renders `examples/<name>.toml` into a temporary directory.
fn render(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = example(name);
    assert_ok(&msgen(
        dir.path(),
        &[
            "new",
            name,
            "--yes",
            "--config",
            config.to_str().unwrap(),
            "--quiet",
        ],
    ));
    let root = dir.path().join(name);
    (dir, root)
}

/// Every example rendered, and a project adopted from a hand-written monolith
/// (`split --from`, whose monolith has no deployment files of msgen's).
fn projects() -> Vec<(String, tempfile::TempDir, PathBuf)> {
    let mut out: Vec<_> = examples()
        .into_iter()
        .map(|name| {
            let (dir, root) = render(&name);
            (name, dir, root)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("adopted");
    copy_dir(&fixture_monolith("nested"), &root.join("legacy"));
    assert_ok(&msgen(
        &root,
        &["split", "blog", "--from", "legacy", "--quiet"],
    ));
    out.push(("adopted".into(), dir, root));
    out
}

/// Every rendered file's path, relative to the project root.
fn files(root: &Path) -> Vec<String> {
    tree(root)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !p.starts_with(".msgen/"))
        .collect()
}

/// `.env` from `.env.example`, with a JWT_SECRET when the project has one.
fn write_dot_env(root: &Path, jwt: Option<&str>) {
    let example = std::fs::read_to_string(root.join(".env.example")).unwrap();
    let env: String = example
        .lines()
        .map(|l| match (l.starts_with("JWT_SECRET="), jwt) {
            (true, Some(secret)) => format!("JWT_SECRET={secret}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(root.join(".env"), env).unwrap();
}

#[test]
fn compose_files_pass_docker_compose_config() {
    let tool = require_tool("docker-compose");
    for (name, _dir, root) in projects() {
        let has_auth = std::fs::read_to_string(root.join(".env.example"))
            .unwrap()
            .lines()
            .any(|l| l.starts_with("JWT_SECRET="));

        if has_auth {
            // .env.example as it is: compose refuses to run without the secret.
            write_dot_env(&root, None);
            let out = compose_config(&tool, &root);
            assert!(
                !out.status.success() && text(&out).contains("JWT_SECRET"),
                "{name}: compose.yaml was accepted without JWT_SECRET:\n{}",
                text(&out)
            );
        }

        write_dot_env(&root, Some("0123456789abcdef0123456789abcdef"));
        let out = compose_config(&tool, &root);
        assert!(
            out.status.success() && text(&out).trim().is_empty(),
            "{name}: docker-compose config -q rejected compose.yaml:\n{}",
            text(&out)
        );

        // Only the gateway publishes a port; databases and services stay inside.
        let compose = std::fs::read_to_string(root.join("compose.yaml")).unwrap();
        let ports: Vec<&str> = compose
            .lines()
            .filter(|l| l.trim_start().starts_with("ports:"))
            .collect();
        assert_eq!(ports.len(), 1, "{name}: one `ports:` (the gateway's)");
        // The gateway's block: from `  gateway:` to the next key at its indentation.
        let gateway: Vec<&str> = compose
            .lines()
            .skip_while(|l| *l != "  gateway:")
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with("   "))
            .collect();
        assert!(
            gateway.iter().any(|l| l.trim_start().starts_with("ports:")),
            "{name}: the published port is not the gateway's"
        );
    }
}

#[test]
fn dockerfiles_pass_hadolint() {
    let tool = require_tool("hadolint");
    for (name, _dir, root) in projects() {
        let dockerfiles: Vec<String> = files(&root)
            .into_iter()
            .filter(|p| p == "Dockerfile" || p.ends_with("/Dockerfile"))
            .collect();
        assert!(
            dockerfiles.contains(&"gateway/Dockerfile".to_string()) && dockerfiles.len() > 1,
            "{name}: Dockerfiles missing: {dockerfiles:?}"
        );
        let out = Command::new(&tool)
            .args(["--no-color", "--failure-threshold", "style"])
            .args(&dockerfiles)
            .current_dir(&root)
            .output()
            .expect("hadolint runs");
        assert!(
            out.status.success() && text(&out).trim().is_empty(),
            "{name}: hadolint found problems:\n{}",
            text(&out)
        );
    }
}

/// Every manifest under deploy/k8s but the kustomization, relative to deploy/k8s.
fn manifests(root: &Path) -> Vec<String> {
    files(root)
        .into_iter()
        .filter_map(|p| p.strip_prefix("deploy/k8s/").map(str::to_string))
        .filter(|p| p.ends_with(".yaml") && p != "kustomization.yaml")
        .collect()
}

#[test]
fn kubernetes_manifests_pass_strict_validation() {
    let tool = require_tool("kubernetes-validate");
    for (name, _dir, root) in projects() {
        let manifests = manifests(&root);
        assert!(
            manifests.contains(&"gateway.yaml".to_string()),
            "{name}: no deploy/k8s/gateway.yaml in {manifests:?}"
        );
        let out = Command::new(&tool)
            .args(["--strict", "--quiet"])
            .args(&manifests)
            .current_dir(root.join("deploy/k8s"))
            .output()
            .expect("kubernetes-validate runs");
        let report = text(&out);
        assert!(
            out.status.success() && !report.contains("ERROR") && !report.contains("WARN"),
            "{name}: kubernetes-validate --strict rejected the manifests:\n{report}"
        );
    }
}

/// `(kind, name, document)` of every object in a multi-document YAML stream.
fn objects(yaml: &str) -> Vec<(String, String, String)> {
    yaml.split("\n---\n")
        .filter_map(|doc| {
            let kind = doc.lines().find_map(|l| l.strip_prefix("kind: "))?;
            let mut in_metadata = false;
            let name = doc.lines().find_map(|l| {
                if l == "metadata:" {
                    in_metadata = true;
                } else if !l.starts_with(' ') {
                    in_metadata = false;
                }
                l.strip_prefix("  name: ").filter(|_| in_metadata)
            })?;
            Some((kind.to_string(), name.to_string(), doc.to_string()))
        })
        .collect()
}

#[test]
fn the_kustomize_base_renders_with_policies_budgets_and_autoscalers() {
    let kubectl = require_tool("kubectl");
    for (name, _dir, root) in projects() {
        let out = Command::new(&kubectl)
            .args(["kustomize", "deploy/k8s"])
            .current_dir(&root)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "{name}: kubectl kustomize:\n{}",
            text(&out)
        );
        let objects = objects(&String::from_utf8_lossy(&out.stdout));
        let has = |kind: &str, n: &str| objects.iter().any(|(k, o, _)| k == kind && o == n);
        let mut deployments = 0;
        for (kind, object, doc) in &objects {
            match kind.as_str() {
                "Deployment" => {
                    deployments += 1;
                    // Only the gateway and the callers reach a pod's HTTP port.
                    assert!(
                        has("NetworkPolicy", object) || object == "gateway",
                        "{name}: {object} has no NetworkPolicy"
                    );
                    // A SQLite service is one pod on its volume: never autoscaled.
                    let single = doc.contains("\n  replicas: 1\n");
                    for k in ["PodDisruptionBudget", "HorizontalPodAutoscaler"] {
                        assert_eq!(has(k, object), !single, "{name}: {k} of {object}");
                    }
                }
                "StatefulSet" => {
                    // A database (or NATS) is reached only by who uses it.
                    assert!(
                        has("NetworkPolicy", object),
                        "{name}: {object} has no NetworkPolicy"
                    );
                    assert!(!has("HorizontalPodAutoscaler", object), "{name}: {object}");
                }
                "NetworkPolicy" => {
                    assert!(
                        doc.contains("app.kubernetes.io/name: gateway")
                            || object.ends_with("-db")
                            || object == "nats",
                        "{name}: {object} does not let the gateway in:\n{doc}"
                    );
                }
                _ => {}
            }
        }
        assert!(deployments >= 2, "{name}: {deployments} Deployments");
    }
}

/// The `resources:` and `images:` names of a kustomization.yaml msgen wrote: list
/// items (`  - x` / `  - name: x`) under those keys.
fn kustomization_lists(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut resources, mut images) = (Vec::new(), Vec::new());
    let mut section = "";
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            section = line.trim_end_matches(':');
            continue;
        }
        let item = line.trim_start().strip_prefix("- ");
        match (section, item) {
            ("resources", Some(r)) => resources.push(r.trim().to_string()),
            ("images", Some(i)) => {
                if let Some(n) = i.strip_prefix("name:") {
                    images.push(n.trim().to_string());
                }
            }
            _ => {}
        }
    }
    (resources, images)
}

#[test]
fn kustomization_lists_every_manifest_and_image() {
    for (name, _dir, root) in projects() {
        let k8s = root.join("deploy/k8s");
        let text = std::fs::read_to_string(k8s.join("kustomization.yaml"))
            .unwrap_or_else(|e| panic!("{name}: deploy/k8s/kustomization.yaml: {e}"));
        let (resources, images) = kustomization_lists(&text);
        for r in &resources {
            assert!(
                k8s.join(r).is_file(),
                "{name}: kustomization.yaml lists {r}, which does not exist"
            );
        }
        let listed: BTreeSet<&String> = resources.iter().collect();
        assert_eq!(
            listed.len(),
            resources.len(),
            "{name}: a resource listed twice"
        );
        let on_disk = manifests(&root);
        for m in &on_disk {
            assert!(
                listed.contains(m),
                "{name}: deploy/k8s/{m} is not listed in kustomization.yaml"
            );
        }

        // Every image a manifest runs of this project's own has an `images:` entry.
        let project = msgen::model::Project::load(&root.join("services.toml")).unwrap();
        let prefix = format!("{}/", project.name.as_str());
        let mut used = BTreeSet::new();
        for m in &on_disk {
            for line in std::fs::read_to_string(k8s.join(m)).unwrap().lines() {
                if let Some(image) = line.trim().strip_prefix("image: ") {
                    if let Some(own) = image.strip_prefix(&prefix) {
                        let (repo, tag) = own.split_once(':').unwrap_or((own, ""));
                        assert_eq!(tag, "latest", "{name}: {m}: image {image}");
                        used.insert(format!("{prefix}{repo}"));
                    }
                }
            }
        }
        let named: BTreeSet<String> = images.into_iter().collect();
        assert_eq!(used, named, "{name}: images used vs kustomization images:");
    }
}
