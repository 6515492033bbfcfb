//! insta snapshots of the whole rendered tree of every example, so that a template
//! change shows up as a reviewable diff (`cargo insta review`).

mod common;

use common::{assert_ok, example, examples, msgen, tree};

#[test]
fn rendered_trees() {
    for name in examples() {
        let dir = tempfile::tempdir().unwrap();
        let config = example(&name);
        assert_ok(&msgen(
            dir.path(),
            &["new", &name, "--yes", "--config", config.to_str().unwrap()],
        ));
        let mut text = String::new();
        for (path, bytes) in tree(&dir.path().join(&name)) {
            // msgen's records, and the user's `.env` (a fresh secret each time,
            // never part of what msgen renders).
            if path.starts_with(".msgen/") || path == ".env" {
                continue;
            }
            text.push_str(&format!(
                "==> {path} <==\n{}\n",
                String::from_utf8_lossy(&bytes)
            ));
        }
        insta::assert_snapshot!(name.as_str(), text);
    }
}
