//! What `split --from` reads of the monolith's `Cargo.toml`, and the service's
//! manifest made from it.

use super::{Db, Refusal};

/// What `split --from` needs of the monolith's Cargo.toml.
pub(super) struct Manifest {
    pub(super) doc: toml_edit::DocumentMut,
    pub(super) package: String,
    /// The library's crate name (`[lib] name`, or the package's).
    pub(super) lib_name: String,
    /// The binary built from `src/main.rs` (a `[[bin]]` naming it, or the package).
    pub(super) bin_name: String,
    pub(super) database: Option<Db>,
}

impl Manifest {
    /// The major of a dependency's version requirement (`0.7`), if it has one.
    pub(super) fn major(&self, name: &str) -> Option<String> {
        crate::model::dependency_major(&self.doc, name)
    }

    pub(super) fn read(text: &str) -> Result<Self, Refusal> {
        let doc: toml_edit::DocumentMut = text
            .parse()
            .map_err(|e| Refusal(vec![format!("Cargo.toml: {e}")]))?;
        let package = doc
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| {
                Refusal(vec![
                    "Cargo.toml: no [package] name (a workspace root is not a monolith crate: pass its crate's directory)".into(),
                ])
            })?
            .to_string();
        let mut problems = Vec::new();
        for table in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = doc.get(table).and_then(|d| d.as_table_like()) else {
                continue;
            };
            for (name, dep) in deps.iter() {
                if dep.get("workspace").is_some() || dep.get("path").is_some() {
                    problems.push(format!(
                        "Cargo.toml: [{table}] {name} comes from its workspace or a path; the service's copy of the crate could not find it (give it a version)"
                    ));
                }
            }
        }
        let axum = doc
            .get("dependencies")
            .and_then(|d| d.get("axum"))
            .and_then(|a| {
                a.as_str()
                    .or_else(|| a.get("version").and_then(|v| v.as_str()))
            });
        match axum {
            Some(v)
                if v.trim_start_matches(['^', '=', '~']).starts_with("0.7")
                    || v.trim_start_matches(['^', '=', '~']).starts_with("0.8") => {}
            Some(v) => problems.push(format!(
                "Cargo.toml: axum {v:?}; split --from supports axum 0.7 and 0.8 (`axum::serve`)"
            )),
            None => problems.push(
                "Cargo.toml: no axum dependency; split --from adopts axum applications".into(),
            ),
        }
        let features: Vec<String> = doc
            .get("dependencies")
            .and_then(|d| d.get("sqlx"))
            .and_then(|s| s.get("features"))
            .and_then(|f| f.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let database = if features.iter().any(|f| f == "postgres") {
            Some(Db::Postgres)
        } else if features.iter().any(|f| f == "sqlite") {
            Some(Db::Sqlite)
        } else {
            None
        };
        if !problems.is_empty() {
            return Err(Refusal(problems));
        }
        let lib_name = doc
            .get("lib")
            .and_then(|l| l.get("name"))
            .and_then(|n| n.as_str())
            .map_or_else(|| package.replace('-', "_"), str::to_string);
        let bin_name = doc
            .get("bin")
            .and_then(|b| b.as_array_of_tables())
            .and_then(|bins| {
                bins.iter().find(|b| {
                    b.get("path")
                        .and_then(|p| p.as_str())
                        .unwrap_or("src/main.rs")
                        == "src/main.rs"
                })
            })
            .and_then(|b| b.get("name"))
            .and_then(|n| n.as_str())
            .map_or_else(|| package.clone(), str::to_string);
        Ok(Self {
            doc,
            package,
            lib_name,
            bin_name,
            database,
        })
    }

    /// The monolith's manifest as the new service's: same dependencies, its own
    /// name, nothing that only makes sense at a workspace root.
    pub(super) fn for_service(
        &self,
        service: &str,
        lib_name: Option<&str>,
    ) -> Result<String, Refusal> {
        let mut doc = self.doc.clone();
        for key in [
            "workspace",
            "profile",
            "bin",
            "test",
            "bench",
            "example",
            "patch",
            "replace",
        ] {
            doc.remove(key);
        }
        let package = doc["package"]
            .as_table_like_mut()
            .ok_or_else(|| Refusal(vec!["Cargo.toml: [package] is not a table".into()]))?;
        package.insert("name", toml_edit::value(format!("{service}-service")));
        for key in ["default-run", "build", "workspace", "autobins", "autotests"] {
            package.remove(key);
        }
        package.insert("publish", toml_edit::value(false));
        if let Some(lib) = lib_name {
            // main.rs names the library as the monolith did.
            let mut t = toml_edit::Table::new();
            t.insert("name", toml_edit::value(lib));
            t.insert("path", toml_edit::value("src/lib.rs"));
            doc.insert("lib", toml_edit::Item::Table(t));
            let mut bin = toml_edit::Table::new();
            bin.insert("name", toml_edit::value(format!("{service}-service")));
            bin.insert("path", toml_edit::value("src/main.rs"));
            let mut bins = toml_edit::ArrayOfTables::new();
            bins.push(bin);
            doc.insert("bin", toml_edit::Item::ArrayOfTables(bins));
        }
        let mut text = doc.to_string();
        text.insert_str(
            0,
            "# Moved out of the monolith by `msgen split --from`: the monolith's manifest,\n# renamed. This crate's code is yours; msgen only renders its deployment files.\n",
        );
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::MANIFEST;
    use super::*;

    fn refused(text: &str) -> Vec<String> {
        super::super::testing::refused(Manifest::read(text)).0
    }

    #[test]
    fn names_database_and_majors_are_read() {
        let m = Manifest::read(MANIFEST).unwrap();
        assert_eq!(
            (m.package.as_str(), m.lib_name.as_str(), m.bin_name.as_str()),
            ("shop", "shop", "shop")
        );
        assert_eq!(m.database, Some(Db::Postgres));
        assert_eq!(m.major("axum").as_deref(), Some("0.8"));
        let named = format!("{}\n[lib]\nname = \"shop_core\"\n\n[[bin]]\nname = \"shopd\"\npath = \"src/main.rs\"\n", MANIFEST.replace("name = \"shop\"", "name = \"my-shop\""));
        let m = Manifest::read(&named).unwrap();
        assert_eq!(
            (m.package.as_str(), m.lib_name.as_str(), m.bin_name.as_str()),
            ("my-shop", "shop_core", "shopd")
        );
        let lite = Manifest::read(&MANIFEST.replace("\"postgres\"", "\"sqlite\"")).unwrap();
        assert_eq!(lite.database, Some(Db::Sqlite));
    }

    #[test]
    fn what_a_service_copy_could_not_build_is_refused_all_at_once() {
        let bad = MANIFEST.replace("axum = \"0.8\"", "axum = \"0.6\"")
            + "shared = { path = \"../shared\" }\n\n[dev-dependencies]\nutil = { workspace = true }\n";
        let problems = refused(&bad);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("[dependencies] shared comes from its workspace or a path"));
        assert!(problems[1].contains("[dev-dependencies] util"));
        assert!(problems[2].contains("axum \"0.6\"; split --from supports axum 0.7 and 0.8"));
        assert!(refused("[workspace]\nmembers = []\n")[0].contains("no [package] name"));
        assert!(refused("[package\n")[0].starts_with("Cargo.toml: "));
    }

    #[test]
    fn the_services_manifest_is_the_monoliths_renamed() {
        let m = Manifest::read(MANIFEST).unwrap();
        let service = m.for_service("blog", None).unwrap();
        assert!(
            service.starts_with("# Moved out of the monolith by `msgen split --from`"),
            "{service}"
        );
        assert!(service.contains("name = \"blog-service\""), "{service}");
        assert!(service.contains("axum = \"0.8\""), "{service}");
    }
}
