//! The architecture as a diagram: gateway → services → databases, plus the
//! synchronous calls between services. Used by `msgen graph` and by the generated
//! README and docs, so the picture can never disagree with `services.toml`.

use crate::model::{DatabaseKind, Project};

/// Mermaid flowchart source (no fences).
pub fn mermaid(p: &Project) -> String {
    let mut out = String::from("flowchart LR\n");
    out.push_str("    client([Frontend]) --> gateway[API Gateway :");
    out.push_str(&p.gateway.port.get().to_string());
    out.push_str("]\n");
    for s in &p.services {
        let id = s.name.snake();
        out.push_str(&format!(
            "    gateway --> {id}[{} service :{}]\n",
            s.name.pascal(),
            s.port.get()
        ));
        match s.database {
            DatabaseKind::Postgres => out.push_str(&format!(
                "    {id} --> {id}_db[({} DB · PostgreSQL)]\n",
                s.name.pascal()
            )),
            DatabaseKind::Sqlite => out.push_str(&format!(
                "    {id} --> {id}_db[({} DB · SQLite)]\n",
                s.name.pascal()
            )),
            DatabaseKind::None => {}
        }
    }
    for s in &p.services {
        for d in &s.depends_on {
            out.push_str(&format!(
                "    {} -. REST .-> {}\n",
                s.name.snake(),
                d.snake()
            ));
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
    for s in &p.services {
        let id = s.name.snake();
        out.push_str(&format!(
            "    {id} [label=\"{} service :{}\", shape=box];\n    gateway -> {id};\n",
            s.name.pascal(),
            s.port.get()
        ));
        if s.database != DatabaseKind::None {
            out.push_str(&format!(
                "    {id}_db [label=\"{} DB ({})\", shape=cylinder];\n    {id} -> {id}_db;\n",
                s.name.pascal(),
                s.database.as_str()
            ));
        }
    }
    for s in &p.services {
        for d in &s.depends_on {
            out.push_str(&format!(
                "    {} -> {} [style=dashed, label=\"REST\"];\n",
                s.name.snake(),
                d.snake()
            ));
        }
    }
    out.push_str("}\n");
    out
}
