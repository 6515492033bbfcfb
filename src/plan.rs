//! A plan: every file a render produces, decided before anything touches the disk.

use std::collections::BTreeMap;

/// Who owns a file after it was first written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Kept in step with `services.toml`; hand edits are merged three-way.
    Managed,
    /// Written once, then the user's: a migration must never change after it ran.
    CreateOnly,
    /// Already there and the user's (a migration msgen accounts for): tracked, never
    /// written. Its contents in the plan are empty.
    Existing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub contents: String,
    pub ownership: Ownership,
    /// Written after every other file: a record of what they hold (a schema
    /// record), so that a run killed in between leaves the files, never a record
    /// of files that were not written.
    pub last: bool,
}

/// Relative paths (always `/`-separated) → contents. A BTreeMap keeps output ordered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub files: BTreeMap<String, PlannedFile>,
    /// The schema changes the new migrations make, one line each (`dir: change`).
    pub schema_changes: Vec<String>,
    /// What the user should know about the migrations (unreadable, missing).
    pub schema_warnings: Vec<String>,
}

impl Plan {
    pub fn add(&mut self, path: impl Into<String>, contents: String, ownership: Ownership) {
        self.files.insert(
            path.into(),
            PlannedFile {
                contents,
                ownership,
                last: false,
            },
        );
    }

    /// A managed file applied after all the others (see [`PlannedFile::last`]).
    pub fn add_last(&mut self, path: impl Into<String>, contents: String) {
        self.files.insert(
            path.into(),
            PlannedFile {
                contents,
                ownership: Ownership::Managed,
                last: true,
            },
        );
    }
}
