//! The architecture as a diagram: gateway → services (and the monolith with its
//! modules) → databases, the synchronous calls between them and the events they
//! exchange over NATS. Used by `msgen graph` and by the generated README and docs,
//! so the picture can never disagree with `services.toml`.

use crate::model::{DatabaseKind, Project, Service};

fn db_label(kind: DatabaseKind) -> Option<&'static str> {
    match kind {
        DatabaseKind::Postgres => Some("PostgreSQL"),
        DatabaseKind::Sqlite => Some("SQLite"),
        DatabaseKind::None => None,
    }
}

fn service_label(s: &Service) -> String {
    let adopted = if s.adopted() { " (adopted)" } else { "" };
    format!("{} service :{}{adopted}", s.name.pascal(), s.port.get())
}

/// `(publisher, subject, consumer)` for every consumed subject.
fn event_flows(p: &Project) -> Vec<(String, String, String)> {
    let mut flows = Vec::new();
    for c in &p.services {
        for subject in &c.consumes {
            for s in p.services.iter().filter(|s| s.publishes.contains(subject)) {
                flows.push((s.name.snake(), subject.clone(), c.name.snake()));
            }
        }
    }
    flows
}

/// Mermaid flowchart source (no fences).
pub fn mermaid(p: &Project) -> String {
    let mut out = String::from("flowchart LR\n");
    out.push_str("    client([Frontend]) --> gateway[API Gateway :");
    out.push_str(&p.gateway.port.get().to_string());
    out.push_str("]\n");
    for s in p.standalone() {
        let id = s.name.snake();
        out.push_str(&format!("    gateway --> {id}[{}]\n", service_label(s)));
        if let Some(db) = db_label(s.database) {
            out.push_str(&format!(
                "    {id} --> {id}_db[({} DB · {db})]\n",
                s.name.pascal()
            ));
        }
    }
    if let Some(m) = &p.monolith {
        match &m.external {
            Some(e) => out.push_str(&format!(
                "    gateway -- every other path --> monolith[Monolith in {}/ :{}]\n",
                e.path,
                m.port.get()
            )),
            None => {
                out.push_str(&format!(
                    "    subgraph monolith[Monolith :{}]\n",
                    m.port.get()
                ));
                for s in p.modules() {
                    out.push_str(&format!(
                        "        {}[{} module]\n",
                        s.name.snake(),
                        s.name.pascal()
                    ));
                }
                out.push_str("    end\n    gateway --> monolith\n");
                if let Some(db) = db_label(p.default_database) {
                    out.push_str(&format!(
                        "    monolith --> monolith_db[(Monolith DB · {db}, shared)]\n"
                    ));
                }
            }
        }
    }
    for s in &p.services {
        for d in &s.depends_on {
            let in_process =
                s.in_monolith() && p.service(d.as_str()).is_some_and(|d| d.in_monolith());
            let how = if in_process { "in process" } else { "REST" };
            out.push_str(&format!(
                "    {} -. {how} .-> {}\n",
                s.name.snake(),
                d.snake()
            ));
        }
    }
    let flows = event_flows(p);
    if !flows.is_empty() {
        out.push_str("    nats{{NATS JetStream}}\n");
        let mut published: Vec<(String, String)> = Vec::new();
        for (from, subject, to) in &flows {
            if !published.contains(&(from.clone(), subject.clone())) {
                out.push_str(&format!("    {from} -- {subject} --> nats\n"));
                published.push((from.clone(), subject.clone()));
            }
            out.push_str(&format!("    nats -- {subject} --> {to}\n"));
        }
    }
    out
}

/// Graphviz dot source.
pub fn dot(p: &Project) -> String {
    let mut out = format!("digraph \"{}\" {{\n    rankdir=LR;\n", p.name.as_str());
    out.push_str("    client [label=\"Frontend\", shape=oval];\n");
    out.push_str(&format!(
        "    gateway [label=\"API Gateway :{}\", shape=box];\n    client -> gateway;\n",
        p.gateway.port.get()
    ));
    for s in p.standalone() {
        let id = s.name.snake();
        out.push_str(&format!(
            "    {id} [label=\"{}\", shape=box];\n    gateway -> {id};\n",
            service_label(s)
        ));
        if s.database != DatabaseKind::None {
            out.push_str(&format!(
                "    {id}_db [label=\"{} DB ({})\", shape=cylinder];\n    {id} -> {id}_db;\n",
                s.name.pascal(),
                s.database.as_str()
            ));
        }
    }
    if let Some(m) = &p.monolith {
        match &m.external {
            Some(e) => out.push_str(&format!(
                "    monolith [label=\"Monolith in {}/ :{}\", shape=box];\n    gateway -> monolith [label=\"every other path\"];\n",
                e.path,
                m.port.get()
            )),
            None => {
                out.push_str(&format!(
                    "    subgraph cluster_monolith {{\n        label=\"Monolith :{}\";\n",
                    m.port.get()
                ));
                for s in p.modules() {
                    out.push_str(&format!(
                        "        {} [label=\"{} module\", shape=box];\n",
                        s.name.snake(),
                        s.name.pascal()
                    ));
                }
                out.push_str("    }\n");
                for s in p.modules() {
                    out.push_str(&format!("    gateway -> {};\n", s.name.snake()));
                }
                if p.default_database != DatabaseKind::None {
                    out.push_str(&format!(
                        "    monolith_db [label=\"Monolith DB ({}, shared)\", shape=cylinder];\n",
                        p.default_database.as_str()
                    ));
                    for s in p.modules() {
                        out.push_str(&format!("    {} -> monolith_db;\n", s.name.snake()));
                    }
                }
            }
        }
    }
    for s in &p.services {
        for d in &s.depends_on {
            let in_process =
                s.in_monolith() && p.service(d.as_str()).is_some_and(|d| d.in_monolith());
            let how = if in_process { "in process" } else { "REST" };
            out.push_str(&format!(
                "    {} -> {} [style=dashed, label=\"{how}\"];\n",
                s.name.snake(),
                d.snake()
            ));
        }
    }
    let flows = event_flows(p);
    if !flows.is_empty() {
        out.push_str("    nats [label=\"NATS JetStream\", shape=hexagon];\n");
        for (from, subject, to) in &flows {
            out.push_str(&format!(
                "    {from} -> nats [label=\"{subject}\"];\n    nats -> {to} [label=\"{subject}\"];\n"
            ));
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn modules_share_the_monolith_and_events_go_through_nats() {
        let p = Project::parse(
            "[project]\nname = \"x\"\n\n[monolith]\n\n[[services]]\nname = \"user\"\nmonolith = true\n\n[[services]]\nname = \"blog\"\nmonolith = true\ndepends_on = [\"user\"]\n\n[[services]]\nname = \"mail\"\nconsumes = [\"user.joined\"]\n\n[[services]]\nname = \"feed\"\npublishes = [\"user.joined\"]\n",
            Path::new("services.toml"),
        )
        .unwrap();
        let m = mermaid(&p);
        assert!(
            m.contains("subgraph monolith[Monolith :3000]\n        user[User module]"),
            "{m}"
        );
        assert!(m.contains("gateway --> monolith\n"), "{m}");
        assert!(!m.contains("user_db"), "{m}");
        assert!(m.contains("blog -. in process .-> user"), "{m}");
        assert!(
            m.contains("feed -- user.joined --> nats\n    nats -- user.joined --> mail"),
            "{m}"
        );
        let d = dot(&p);
        assert!(d.contains("subgraph cluster_monolith"), "{d}");
        assert!(d.contains("nats -> mail [label=\"user.joined\"]"), "{d}");
    }
}
