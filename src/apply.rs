//! Applying a plan to a project tree: the only code that writes generated files.
//!
//! `.msgen/base/<path>` keeps what msgen last generated for every file. That copy is
//! the base of a three-way merge: a file the user did not touch is replaced, a file
//! the user edited is merged with the new render, and a collision leaves conflict
//! markers and is reported. Every write goes to a temporary file that is then
//! renamed, so an interrupted run leaves each file old or new, never half written.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::plan::{Ownership, Plan};
use crate::txn::{content_hash, Expect, Txn};

pub const STATE_DIR: &str = ".msgen";
const BASE_DIR: &str = ".msgen/base";

/// Why msgen has no base record to merge a file against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// msgen never wrote it (or its records predate it).
    Never,
    /// `.msgen/manifest` lists it, but `.msgen/base/<path>` is gone.
    Missing,
    /// `.msgen/base/<path>` is not what the manifest says msgen wrote.
    Damaged,
}

impl Record {
    /// Why the file is left alone, and how to let msgen take it over keeping the edits.
    pub fn explain(self, path: &str) -> String {
        let why = match self {
            Record::Never => format!("exists, but msgen has no record of writing it (no .msgen/base/{path})"),
            Record::Missing => format!("msgen's record of it, .msgen/base/{path}, is missing (.msgen/manifest lists it), so msgen cannot tell your edits from its render"),
            Record::Damaged => format!("msgen's record of it, .msgen/base/{path}, is damaged (not what .msgen/manifest says msgen wrote), so msgen cannot tell your edits from its render"),
        };
        format!(
            "{why}; left as is. To let msgen write it and keep your version: `mv {path} {path}.mine`, run msgen again (it writes the render and its record), then carry your changes over from {path}.mine (`diff -u {path} {path}.mine`)"
        )
    }
}

/// What happens to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        contents: String,
    },
    Update {
        old: String,
        new: String,
    },
    /// The user's edits and the new render, merged cleanly.
    Merge {
        old: String,
        merged: String,
    },
    /// Both changed the same lines: written with conflict markers.
    Conflict {
        old: String,
        marked: String,
    },
    /// A file exists where msgen wants to write, and msgen has no trustworthy
    /// record of what it generated there: left as is.
    Foreign {
        record: Record,
    },
    Delete {
        old: String,
    },
    /// Stale but edited by the user: kept, and no longer tracked.
    KeepEdited,
    /// A stale migration: kept (it may have run against a database), no longer tracked.
    KeepMigration,
    /// Only the record in `.msgen/` changes.
    Record,
    Unchanged,
}

impl Change {
    /// The bytes applying it writes to the tree, if it writes.
    fn bytes(&self) -> Option<&[u8]> {
        let text = match &self.action {
            Action::Create { contents } => contents,
            Action::Update { new, .. } => new,
            Action::Merge { merged, .. } => merged,
            Action::Conflict { marked, .. } => marked,
            _ => return None,
        };
        Some(self.raw.as_deref().unwrap_or(text.as_bytes()))
    }

    /// Whether applying it writes or removes a file of the tree.
    pub fn writes_or_deletes(&self) -> bool {
        matches!(
            self.action,
            Action::Create { .. }
                | Action::Update { .. }
                | Action::Merge { .. }
                | Action::Conflict { .. }
                | Action::Delete { .. }
        )
    }
}

#[derive(Debug, Clone)]
pub struct Change {
    pub path: String,
    pub action: Action,
    /// New base record, if it changes (None = remove the record).
    base: Option<Option<Vec<u8>>>,
    /// The bytes to write when the action's text is only a lossy picture of them
    /// (a file with bytes that are not UTF-8, merged as bytes).
    raw: Option<Vec<u8>>,
    /// The file as the diff read it (None: absent). Checked again just before it is
    /// written or removed: a save made meanwhile is never overwritten.
    seen: Option<Vec<u8>>,
    /// For a file of the plan: the hash of its base record as the diff read it. A
    /// record of a file msgen generates is msgen's, even one written by `split`.
    planned_record: Option<String>,
    /// Applied after the others ([`crate::plan::PlannedFile::last`]).
    last: bool,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub changes: Vec<Change>,
    /// Things the user should know that are not changes: a conflict resolved by
    /// keeping their version, which dropped what the render had changed.
    pub notes: Vec<String>,
    /// The files msgen left with conflict markers after this outcome is applied,
    /// with the hash of the user's version each conflict was made from
    /// (`.msgen/conflicts`).
    conflicts_after: Option<Conflicts>,
    /// `services.toml` as the command edited it, written with the rest.
    config: Option<ConfigWrite>,
    /// Files a command moves: destination → source ([`Staged::moved`]).
    moves: std::collections::BTreeMap<String, String>,
}

impl Outcome {
    pub fn pending(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.action != Action::Unchanged)
    }
    pub fn conflicts(&self) -> Vec<&str> {
        self.changes
            .iter()
            .filter(|c| matches!(c.action, Action::Conflict { .. } | Action::Foreign { .. }))
            .map(|c| c.path.as_str())
            .collect()
    }
    /// True when applying would change nothing on disk, records included.
    pub fn is_clean(&self) -> bool {
        self.pending().next().is_none() && self.config.is_none()
    }

    /// Writes `edit` to `services.toml` at `path` with the rest of the outcome, if
    /// it changes the file. Returns whether it does.
    pub fn set_config(&mut self, root: &Path, path: &Path, edit: &ConfigEdit) -> Result<bool> {
        let Some(bytes) = edit.changed_bytes() else {
            self.config = None;
            return Ok(false);
        };
        self.config = Some(ConfigWrite {
            target: config_target(root, path)?,
            seen: edit.seen.clone(),
            bytes,
        });
        Ok(true)
    }
}

/// Files a command writes or moves itself (`split`), staged before the render's
/// diff: the diff sees the tree as if they were already there, and the outcome
/// writes them with the render, in one transaction.
#[derive(Debug, Default, Clone)]
pub struct Staged {
    files: std::collections::BTreeMap<String, Stage>,
    /// Files staged with conflict markers, with the user's version each was made from.
    conflicts: Vec<(String, Vec<u8>)>,
    /// Moves: destination → source, both staged.
    moves: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Stage {
    /// None: removed.
    contents: Option<Vec<u8>>,
    /// msgen's base record of it (None: none, the file is the user's).
    base: Option<Vec<u8>>,
    /// The file as the command read it, when what it stages was made from that:
    /// a save made since is never overwritten or removed.
    read: Option<Option<Vec<u8>>>,
}

impl Staged {
    /// `path` will hold `contents`; `base` is what msgen generated for it, if anything.
    pub fn write(&mut self, path: impl Into<String>, contents: Vec<u8>, base: Option<Vec<u8>>) {
        self.files.insert(
            path.into(),
            Stage {
                contents: Some(contents),
                base,
                read: None,
            },
        );
    }

    /// `path`, which the command read as `read`, will hold `contents` (the user's).
    pub fn write_over(&mut self, path: impl Into<String>, contents: Vec<u8>, read: Vec<u8>) {
        self.files.insert(
            path.into(),
            Stage {
                contents: Some(contents),
                base: None,
                read: Some(Some(read)),
            },
        );
    }

    /// `path` (and its base record) will be gone.
    pub fn remove(&mut self, path: impl Into<String>) {
        self.files.insert(
            path.into(),
            Stage {
                contents: None,
                base: None,
                read: None,
            },
        );
    }

    /// [`Staged::remove`] of a file the command read as `read` (and moved).
    pub fn remove_as_read(&mut self, path: impl Into<String>, read: Vec<u8>) {
        self.files.insert(
            path.into(),
            Stage {
                contents: None,
                base: None,
                read: Some(Some(read)),
            },
        );
    }

    /// `path`, staged with conflict markers, was made from `ours`, the user's version.
    pub fn conflict(&mut self, path: impl Into<String>, ours: Vec<u8>) {
        self.conflicts.push((path.into(), ours));
    }

    /// `to`, staged, is `from` moved: `from` is removed only once `to` is written.
    pub fn moved(&mut self, from: impl Into<String>, to: impl Into<String>) {
        self.moves.insert(to.into(), from.into());
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }
}

/// Rejects paths that could leave `root`: absolute, `..`, or through a symbolic link.
pub fn safe_path(root: &Path, rel: &str) -> Result<PathBuf> {
    Dirs::default().safe_path(root, rel)
}

fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The files msgen generated last time, relative to the project root: the paths
/// with a base record that `.msgen/manifest` lists with the same hash. A record
/// the manifest does not vouch for (copied in, damaged) is ignored, so it can
/// never get a user's file deleted. A project from before the manifest trusts
/// every record once; the next apply writes the manifest.
pub fn recorded(root: &Path) -> Result<BTreeSet<String>> {
    let records = base_records(root)?;
    let Some(manifest) = read_manifest(root)? else {
        return Ok(records);
    };
    let mut out = BTreeSet::new();
    for rel in records {
        let Some(hashes) = manifest.get(&rel) else {
            continue;
        };
        let bytes = read_bytes(&root.join(BASE_DIR).join(&rel))?.unwrap_or_default();
        // The newest, or an earlier record the newest never replaced (a file left
        // alone because it changed while msgen was writing).
        if hashes.contains(&content_hash(&bytes)) {
            out.insert(rel);
        }
    }
    Ok(out)
}

/// A generated file that is not what msgen last wrote: edited by hand, or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandEdit {
    pub path: String,
    /// What msgen last wrote (its base record).
    pub record: Vec<u8>,
    /// The file now; `None` once removed.
    pub current: Option<Vec<u8>>,
}

/// The files msgen generated whose bytes differ from its record of them, in path
/// order.
pub fn hand_edits(root: &Path) -> Result<Vec<HandEdit>> {
    let mut out = Vec::new();
    for path in recorded(root)? {
        let record = read_bytes(&root.join(BASE_DIR).join(&path))?.unwrap_or_default();
        let current = read_bytes(&root.join(&path))?;
        if current.as_deref() != Some(record.as_slice()) {
            out.push(HandEdit {
                path,
                record,
                current,
            });
        }
    }
    Ok(out)
}

/// The files msgen left with conflict markers that still hold them, each with the
/// lines (1-based) where a conflicting hunk starts.
pub fn unresolved_conflicts(root: &Path) -> Result<Vec<(String, Vec<usize>)>> {
    let mut out = Vec::new();
    for path in read_conflicts(root)?.unwrap_or_default().into_keys() {
        let Some(bytes) = read_bytes(&root.join(&path))? else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        if has_conflict_markers(&text) {
            out.push((path, conflict_starts(&text)));
        }
    }
    Ok(out)
}

/// Every path with a file under `.msgen/base/`.
fn base_records(root: &Path) -> Result<BTreeSet<String>> {
    let base = root.join(BASE_DIR);
    let mut out = BTreeSet::new();
    for entry in walkdir::WalkDir::new(&base).min_depth(1) {
        let entry = match entry {
            Ok(e) => e,
            Err(e)
                if e.io_error().map(std::io::Error::kind) == Some(std::io::ErrorKind::NotFound) =>
            {
                continue
            }
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", base.display())),
        };
        if entry.file_type().is_file() {
            if let Ok(rel) = entry.path().strip_prefix(&base) {
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    Ok(out)
}

/// `.msgen/manifest`: what msgen recorded, one `<hash>[,<earlier>...] <path>` line
/// per file: the hash of its base record, then of the records before it, newest
/// first. A file that is one of its earlier renders is not a hand edit but a file
/// left behind (restored from an old commit, or its record moved on without it).
const MANIFEST: &str = ".msgen/manifest";
/// How many earlier renders of a file the manifest remembers.
const EARLIER: usize = 4;

type Manifest = std::collections::BTreeMap<String, Vec<String>>;

fn read_manifest(root: &Path) -> Result<Option<Manifest>> {
    let Some(bytes) = read_bytes(&root.join(MANIFEST))? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(Some(
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(h, p)| (p.to_string(), h.split(',').map(str::to_string).collect()))
            .collect(),
    ))
}

fn write_manifest(manifest: &Manifest) -> String {
    manifest
        .iter()
        .map(|(p, h)| format!("{} {p}\n", h.join(",")))
        .collect()
}

/// Records `hash` as the current base of `path`, keeping the earlier ones.
fn manifest_set(manifest: &mut Manifest, path: &str, hash: String) {
    let entry = manifest.entry(path.to_string()).or_default();
    if entry.first() == Some(&hash) {
        return;
    }
    entry.retain(|h| *h != hash);
    entry.insert(0, hash);
    entry.truncate(EARLIER + 1);
}

/// Works out what applying `plan` to the tree at `root` does, without writing.
/// `plan` is a whole render: a file msgen generated last time that it does not
/// hold is stale.
pub fn diff(root: &Path, plan: &Plan) -> Result<Outcome> {
    diff_with(root, plan, true, &Staged::default())
}

/// [`diff`] of the tree as it will be once `staged` is written: the outcome writes
/// those files too, and the render's changes to them are merged in.
pub fn diff_staged(root: &Path, plan: &Plan, staged: &Staged) -> Result<Outcome> {
    let mut dirs = Dirs::default();
    for p in staged.paths() {
        dirs.safe_path(root, p)?;
        dirs.safe_path(root, &format!("{BASE_DIR}/{p}"))?;
    }
    diff_with(root, plan, true, staged)
}

/// [`diff`] of a plan that adds files to the tree and says nothing of the rest
/// (`msgen add-migration`): no file is stale.
pub fn diff_additions(root: &Path, plan: &Plan) -> Result<Outcome> {
    diff_with(root, plan, false, &Staged::default())
}

/// The tree and its records as the diff sees them: the disk, with staged files over it.
struct View<'a> {
    root: &'a Path,
    staged: &'a Staged,
}

impl View<'_> {
    fn current(&self, dirs: &Dirs, rel: &str, target: &Path) -> Result<Option<Vec<u8>>> {
        match self.staged.files.get(rel) {
            Some(s) => Ok(s.contents.clone()),
            None => dirs.read_bytes(target),
        }
    }

    fn base(&self, dirs: &Dirs, rel: &str, path: &Path) -> Result<Option<Vec<u8>>> {
        match self.staged.files.get(rel) {
            Some(s) => Ok(s.base.clone()),
            None => dirs.read_bytes(path),
        }
    }

    /// [`recorded`], with the staged records.
    fn recorded(&self) -> Result<BTreeSet<String>> {
        let mut out = recorded(self.root)?;
        for (p, s) in &self.staged.files {
            if s.base.is_some() {
                out.insert(p.clone());
            } else {
                out.remove(p);
            }
        }
        Ok(out)
    }

    /// `.msgen/conflicts`, with the staged conflicts.
    fn conflicts(&self) -> Result<Option<Conflicts>> {
        let mut c = read_conflicts(self.root)?;
        if !self.staged.conflicts.is_empty() {
            let set = c.get_or_insert_with(Default::default);
            for (p, ours) in &self.staged.conflicts {
                set.insert(p.clone(), content_hash(ours));
            }
        }
        Ok(c)
    }
}

fn diff_with(root: &Path, plan: &Plan, whole: bool, staged: &Staged) -> Result<Outcome> {
    let view = View { root, staged };
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    // Conflicts are what msgen recorded leaving, not whatever looks like markers.
    let recorded_conflicts = view.conflicts()?;
    let mut conflicts_after = recorded_conflicts.clone().unwrap_or_default();
    let manifest = read_manifest(root)?.unwrap_or_default();
    // Nothing is written while diffing, so what is missing stays missing.
    let mut dirs = Dirs::default();
    for (rel, file) in &plan.files {
        let target = dirs.safe_path(root, rel)?;
        let base_path = dirs.safe_path(root, &format!("{BASE_DIR}/{rel}"))?;
        // Bytes: every comparison is exact, and a file that is not UTF-8 is merged
        // as bytes, never through a lossy string.
        let current = view.current(&dirs, rel, &target)?;
        let seen = if staged.files.contains_key(rel) {
            dirs.read_bytes(&target)?
        } else {
            current.clone()
        };
        let mut base = view.base(&dirs, rel, &base_path)?;
        // A record the manifest contradicts (or lists and is gone) is no base to
        // merge against: the file is left alone rather than merged wrongly.
        let mut lost = Record::Never;
        if !staged.files.contains_key(rel) {
            if let Some(hashes) = manifest.get(rel) {
                match &base {
                    None => lost = Record::Missing,
                    Some(b) if !hashes.contains(&content_hash(b)) => {
                        lost = Record::Damaged;
                        base = None;
                    }
                    Some(_) => {}
                }
            }
        }
        let planned_record = base.as_deref().map(content_hash);
        // A file that is one of msgen's earlier renders was left behind, not edited.
        let left_behind = |cur: &[u8]| {
            manifest
                .get(rel)
                .is_some_and(|h| h.iter().skip(1).any(|h| *h == content_hash(cur)))
        };
        let new = &file.contents;
        let new_bytes = new.as_bytes();
        let record = |b: &[u8]| (b != new_bytes).then(|| Some(new_bytes.to_vec()));
        let mut raw = None;
        let (action, base_update) = match (file.ownership, current, base) {
            (Ownership::Existing, _, _) => (Action::Unchanged, None),
            (_, None, None) => (
                Action::Create {
                    contents: new.clone(),
                },
                Some(Some(new_bytes.to_vec())),
            ),
            // A create-only file the user deleted stays deleted.
            (Ownership::CreateOnly, None, Some(_)) => (Action::Unchanged, None),
            // Written by hand (or by an older msgen): the user's now, recorded as is.
            (Ownership::CreateOnly, Some(cur), None) => (Action::Record, Some(Some(cur))),
            (Ownership::CreateOnly, Some(_), Some(_)) => (Action::Unchanged, None),
            (Ownership::Managed, None, Some(b)) => (
                Action::Create {
                    contents: new.clone(),
                },
                record(&b),
            ),
            (Ownership::Managed, Some(cur), None) => {
                if cur == new_bytes || cur == dressed_like(&cur, new_bytes) {
                    (Action::Record, Some(Some(new_bytes.to_vec())))
                } else {
                    (Action::Foreign { record: lost }, None)
                }
            }
            (Ownership::Managed, Some(cur), Some(b)) => {
                let cur_text = String::from_utf8_lossy(&cur).into_owned();
                // The render and the record as the file is dressed (CRLF, BOM);
                // the record itself stays the plain render.
                let new_d = dressed_like(&cur, new_bytes);
                let new_text = String::from_utf8_lossy(&new_d).into_owned();
                let b_d = dressed_like(&cur, &b);
                let unresolved = match &recorded_conflicts {
                    Some(set) => set.contains_key(rel) && has_conflict_markers(&cur_text),
                    // A project from before the record: markers are the only sign.
                    None => has_conflict_markers(&cur_text),
                };
                if !unresolved {
                    if let Some(ours) = conflicts_after.remove(rel) {
                        if ours == content_hash(&cur) {
                            notes.push(format!(
                                "{rel}: you resolved the conflict by keeping your version, so what services.toml changed there is not in it (the render is .msgen/base/{rel})"
                            ));
                        }
                    }
                }
                if unresolved {
                    conflicts_after
                        .entry(rel.clone())
                        .or_insert_with(String::new);
                    // An earlier conflict the user has not resolved yet: left as is.
                    raw = Some(cur.clone());
                    (
                        Action::Conflict {
                            old: cur_text.clone(),
                            marked: cur_text,
                        },
                        None,
                    )
                } else if cur == new_d {
                    let r = record(&b);
                    let a = if r.is_some() {
                        Action::Record
                    } else {
                        Action::Unchanged
                    };
                    (a, r)
                } else if cur == b_d || left_behind(&cur) {
                    (
                        Action::Update {
                            old: cur_text,
                            new: new_text,
                        },
                        Some(Some(new_bytes.to_vec())),
                    )
                } else if b_d == new_d {
                    // Only the user changed it: theirs to keep.
                    (Action::Unchanged, None)
                } else {
                    let (action, r) =
                        merge(rel, &b_d, &cur, cur_text, &new_text, &mut conflicts_after);
                    raw = r;
                    (action, Some(Some(new_bytes.to_vec())))
                }
            }
        };
        changes.push(Change {
            path: rel.clone(),
            action,
            base: base_update,
            raw,
            seen,
            planned_record,
            last: file.last,
        });
    }

    // Files generated last time that the plan no longer has.
    let stale = if whole {
        view.recorded()?
    } else {
        BTreeSet::new()
    };
    for rel in stale {
        if plan.files.contains_key(&rel) {
            continue;
        }
        let target = safe_path(root, &rel)?;
        let base = view.base(&dirs, &rel, &safe_path(root, &format!("{BASE_DIR}/{rel}"))?)?;
        let current = view.current(&dirs, &rel, &target)?;
        // A migration may have run somewhere: never delete it, only forget it.
        let migration = rel.contains("/migrations/") && rel.ends_with(".sql");
        let seen = read_bytes(&target)?;
        let action = match current {
            None => Action::Record,
            Some(_) if migration => Action::KeepMigration,
            // Unedited, if perhaps turned to CRLF by the user's tools.
            Some(cur)
                if base
                    .as_ref()
                    .is_some_and(|b| *b == cur || dressed_like(&cur, b) == cur) =>
            {
                Action::Delete {
                    old: String::from_utf8_lossy(&cur).into_owned(),
                }
            }
            Some(_) => Action::KeepEdited,
        };
        changes.push(Change {
            path: rel,
            action,
            base: Some(None),
            raw: None,
            seen,
            planned_record: None,
            last: false,
        });
    }
    compose_staged(root, &mut changes, staged)?;
    changes.sort_by(|a, b| (a.last, &a.path).cmp(&(b.last, &b.path)));
    // Files no longer generated cannot stay msgen's conflicts (a plan that only
    // adds files says nothing of the others).
    if whole {
        conflicts_after.retain(|p, _| plan.files.contains_key(p));
    }
    Ok(Outcome {
        changes,
        notes,
        conflicts_after: Some(conflicts_after),
        config: None,
        moves: staged.moves.clone(),
    })
}

/// The three-way merge of a file both the user and the render changed: bytes when
/// any side is not UTF-8. Returns the action and, for bytes that are not UTF-8,
/// the exact bytes to write.
fn merge(
    rel: &str,
    base: &[u8],
    cur: &[u8],
    cur_text: String,
    new: &str,
    conflicts_after: &mut Conflicts,
) -> (Action, Option<Vec<u8>>) {
    let merged = match (std::str::from_utf8(base), std::str::from_utf8(cur)) {
        (Ok(b), Ok(c)) => diffy::merge(b, c, new)
            .map(String::into_bytes)
            .map_err(String::into_bytes),
        _ => diffy::merge_bytes(base, cur, new.as_bytes()),
    };
    let text = |m: &[u8]| String::from_utf8_lossy(m).into_owned();
    let lossy = |m: &[u8]| std::str::from_utf8(m).is_err().then(|| m.to_vec());
    match merged {
        Ok(m) if m == cur => (Action::Record, None),
        Ok(m) => (
            Action::Merge {
                old: cur_text,
                merged: text(&m),
            },
            lossy(&m),
        ),
        Err(m) => {
            conflicts_after.insert(rel.to_string(), content_hash(cur));
            (
                Action::Conflict {
                    old: cur_text,
                    marked: text(&m),
                },
                lossy(&m),
            )
        }
    }
}

/// Turns the changes of a diff over staged files into changes of the tree on disk:
/// a staged file the render leaves as it is gets written as staged, and every
/// action says what happens to the file on disk (a moved file is created, whatever
/// the render did to it).
fn compose_staged(root: &Path, changes: &mut Vec<Change>, staged: &Staged) -> Result<()> {
    if staged.files.is_empty() {
        return Ok(());
    }
    let mut done = BTreeSet::new();
    for c in changes.iter_mut() {
        let Some(s) = staged.files.get(&c.path) else {
            continue;
        };
        done.insert(c.path.clone());
        let after: Option<Vec<u8>> = match &c.action {
            Action::Delete { .. } => None,
            _ => c.bytes().map(<[u8]>::to_vec).or_else(|| s.contents.clone()),
        };
        // The record as the render leaves it, or else as staged.
        let base = c.base.clone().unwrap_or_else(|| s.base.clone());
        let kind = c.action.clone();
        let seen = s.read.clone().unwrap_or_else(|| c.seen.take());
        *c = on_disk(c.path.clone(), seen, after, base, &kind, c.last);
    }
    for (p, s) in &staged.files {
        if !done.contains(p) {
            let seen = match &s.read {
                Some(read) => read.clone(),
                None => read_bytes(&root.join(p))?,
            };
            changes.push(on_disk(
                p.clone(),
                seen,
                s.contents.clone(),
                s.base.clone(),
                &Action::Unchanged,
                false,
            ));
        }
    }
    Ok(())
}

/// The change that takes a file from `seen` (on disk) to `after`, with `base` as
/// its record; `kind` is what the render did, kept when it was a merge or conflict.
fn on_disk(
    path: String,
    seen: Option<Vec<u8>>,
    after: Option<Vec<u8>>,
    base: Option<Vec<u8>>,
    kind: &Action,
    last: bool,
) -> Change {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let lossy = |b: &[u8]| std::str::from_utf8(b).is_err().then(|| b.to_vec());
    let (action, raw) = match (&seen, &after) {
        (None, None) => (Action::Record, None),
        (Some(a), Some(b)) if a == b => (Action::Record, None),
        (Some(old), None) => (Action::Delete { old: text(old) }, None),
        (None, Some(new)) => (
            Action::Create {
                contents: text(new),
            },
            lossy(new),
        ),
        (Some(old), Some(new)) => {
            let (old, new_text) = (text(old), text(new));
            let action = match kind {
                Action::Conflict { .. } => Action::Conflict {
                    old,
                    marked: new_text,
                },
                Action::Merge { .. } => Action::Merge {
                    old,
                    merged: new_text,
                },
                _ => Action::Update { old, new: new_text },
            };
            (action, lossy(new))
        }
    };
    Change {
        path,
        action,
        base: Some(base),
        raw,
        seen,
        planned_record: None,
        last,
    }
}

/// `.msgen/conflicts`: a `<hash> <path>` line for each file msgen left with
/// conflict markers that the user has not resolved yet; the hash is of the user's
/// version the conflict was made from (empty when unknown).
const CONFLICTS: &str = ".msgen/conflicts";

type Conflicts = std::collections::BTreeMap<String, String>;

fn read_conflicts(root: &Path) -> Result<Option<Conflicts>> {
    Ok(read_bytes(&root.join(CONFLICTS))?.map(|b| {
        String::from_utf8_lossy(&b)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(h, p)| (p.to_string(), h.to_string()))
            .collect()
    }))
}

/// The lines (1-based) where the conflicting hunks of `text` start.
pub fn conflict_starts(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("<<<<<<<"))
        .map(|(i, _)| i + 1)
        .collect()
}

/// Whether `text` still holds the markers of a merge conflict.
fn has_conflict_markers(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("<<<<<<< "))
        && text.lines().any(|l| l.starts_with(">>>>>>> "))
}

/// `services.toml` as msgen writes it back after editing `new_text`: in the line
/// endings the file had (CRLF stays CRLF) and with its byte order mark, if it had
/// one, so that an edit changes only the lines it means to.
pub fn config_bytes(old: Option<&[u8]>, new_text: &str) -> Vec<u8> {
    dressed_like(old.unwrap_or_default(), new_text.as_bytes())
}

/// `bytes` in the clothes of `like`: its byte order mark (if it has one, else
/// none) and, when most of its lines end in CRLF, CRLF line endings. A generated
/// file the user's tools turned to CRLF (git's `autocrlf`, an editor) is then
/// compared and merged line by line, not as one whole-file conflict.
fn dressed_like(like: &[u8], bytes: &[u8]) -> Vec<u8> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let body = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let crlf = like.windows(2).filter(|w| w == b"\r\n").count();
    let lf = like.iter().filter(|b| **b == b'\n').count();
    let mut out = Vec::with_capacity(body.len() + body.len() / 16 + 3);
    if like.starts_with(BOM) {
        out.extend_from_slice(BOM);
    }
    if crlf > 0 && crlf * 2 >= lf {
        let mut prev = 0u8;
        for &b in body {
            if b == b'\n' && prev != b'\r' {
                out.push(b'\r');
            }
            out.push(b);
            prev = b;
        }
    } else {
        out.extend_from_slice(body);
    }
    out
}

/// Where `services.toml` at `path` (in the project at `root`) is written: a
/// symbolic link stays a link, and the file it points to is written when that file
/// is inside the project (never outside it).
fn config_target(root: &Path, path: &Path) -> Result<PathBuf> {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(path.to_path_buf());
    }
    let target = fs::canonicalize(path)
        .with_context(|| format!("{} is a symbolic link to nothing", path.display()))?;
    let canonical = fs::canonicalize(root)
        .with_context(|| format!("cannot open the project directory {}", root.display()))?;
    match target.strip_prefix(&canonical) {
        // Under the root as given (`.` stays `.`): the journal names it relative to it.
        Ok(rel) => Ok(root.join(rel)),
        Err(_) => bail!(
            "{} is a symbolic link to {}, outside the project: msgen writes nothing outside it; make the edit there, or replace the link with the file",
            path.display(),
            target.display()
        ),
    }
}

/// `services.toml` as a command edits it: the bytes it read (None: there was no
/// file) and the new text. Written in the same transaction as the files it
/// renders, and only if the file is still what the command read.
#[derive(Debug, Clone)]
pub struct ConfigEdit {
    pub seen: Option<Vec<u8>>,
    pub text: String,
}

impl ConfigEdit {
    /// Reads `services.toml` at `path` for an edit: its text, and the edit to fill in.
    pub fn read(path: &Path) -> Result<(String, ConfigEdit)> {
        let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
        Ok((
            text,
            ConfigEdit {
                seen: Some(bytes),
                text: String::new(),
            },
        ))
    }

    /// The bytes to write (the file's line endings and byte order mark kept), when
    /// they differ from what was read.
    pub fn changed_bytes(&self) -> Option<Vec<u8>> {
        let new = config_bytes(self.seen.as_deref(), &self.text);
        (Some(new.as_slice()) != self.seen.as_deref()).then_some(new)
    }
}

#[derive(Debug, Clone)]
struct ConfigWrite {
    /// Where the bytes go (the file a symbolic link points to).
    target: PathBuf,
    seen: Option<Vec<u8>>,
    bytes: Vec<u8>,
}

/// Carries out an outcome computed by [`diff`] on the same tree.
pub fn apply(root: &Path, outcome: &Outcome) -> Result<()> {
    apply_with_progress(root, outcome, &mut |_| {})
}

/// [`apply`], calling `progress` with each change before it is made.
///
/// One transaction ([`crate::txn`]): every file, its base record, the manifest,
/// the conflicts record and `services.toml` land together, or (killed before the
/// commit) none of them; a run killed after the commit is finished by the next.
pub fn apply_with_progress(
    root: &Path,
    outcome: &Outcome,
    progress: &mut dyn FnMut(&Change),
) -> Result<()> {
    let mut txn = Txn::begin(root)?;
    let mut dirs = Dirs::default();
    let mut changed_meanwhile = Vec::new();
    if let Some(config) = &outcome.config {
        // The file behind a link is what the command read.
        txn.group();
        txn.put_essential(
            &config.target,
            &config.bytes,
            Expect::seen(config.seen.as_deref()),
        )?;
    }
    let old_conflicts = read_conflicts(root)?;
    let old_manifest = read_manifest(root)?;
    let mut manifest = match &old_manifest {
        Some(m) => m.clone(),
        // Before the manifest: every record is msgen's.
        None => {
            let mut m = Manifest::new();
            for rel in base_records(root)? {
                let bytes = read_bytes(&root.join(BASE_DIR).join(&rel))?.unwrap_or_default();
                m.insert(rel, vec![content_hash(&bytes)]);
            }
            m
        }
    };
    // A move's source is removed in the group of its destination, after it: if
    // the destination cannot be written, the source stays.
    let by_path: std::collections::HashMap<&str, &Change> = outcome
        .changes
        .iter()
        .map(|c| (c.path.as_str(), c))
        .collect();
    let paired: BTreeSet<&str> = outcome
        .moves
        .iter()
        .filter(|(to, _)| by_path.contains_key(to.as_str()))
        .map(|(_, from)| from.as_str())
        .collect();
    for c in &outcome.changes {
        if paired.contains(c.path.as_str()) {
            continue;
        }
        txn.group();
        progress(c);
        if !stage(root, &mut dirs, &mut txn, &mut manifest, c)? {
            changed_meanwhile.push(c.path.clone());
            continue;
        }
        let source = outcome
            .moves
            .get(&c.path)
            .and_then(|f| by_path.get(f.as_str()));
        if let Some(from) = source {
            progress(from);
            if !stage(root, &mut dirs, &mut txn, &mut manifest, from)? {
                changed_meanwhile.push(from.path.clone());
            }
        }
    }
    txn.group();
    if let Some(after) = &outcome.conflicts_after {
        // A file left alone (saved meanwhile) keeps the entry it had.
        let mut after = after.clone();
        for p in &changed_meanwhile {
            match old_conflicts.as_ref().and_then(|c| c.get(p)) {
                Some(h) => after.insert(p.clone(), h.clone()),
                None => after.remove(p),
            };
        }
        if old_conflicts.as_ref() != Some(&after) {
            let text: String = after.iter().map(|(p, h)| format!("{h} {p}\n")).collect();
            let path = dirs.safe_path(root, CONFLICTS)?;
            txn.put(&path, text.as_bytes(), Expect::Any)?;
        }
    }
    if old_manifest.as_ref() != Some(&manifest) {
        let path = dirs.safe_path(root, MANIFEST)?;
        txn.put(&path, write_manifest(&manifest).as_bytes(), Expect::Any)?;
    }
    let skipped = txn.commit()?;
    changed_meanwhile.extend(skipped.iter().map(|p| {
        p.strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    }));
    if !changed_meanwhile.is_empty() {
        return Err(crate::CheckFailed(format!(
            "{} changed while msgen was writing; msgen left {} as {} now: run the command again to merge",
            changed_meanwhile.join(", "),
            if changed_meanwhile.len() == 1 { "it" } else { "them" },
            if changed_meanwhile.len() == 1 { "it is" } else { "they are" },
        ))
        .into());
    }
    Ok(())
}

/// Adds one change (the file, then its record) to the transaction's current group.
/// `false` when the file changed since the diff read it: then nothing is added.
fn stage(
    root: &Path,
    dirs: &mut Dirs,
    txn: &mut Txn,
    manifest: &mut Manifest,
    c: &Change,
) -> Result<bool> {
    let target = dirs.safe_path(root, &c.path)?;
    // An unresolved conflict left as it is: nothing to write.
    if c.raw.is_some() && c.raw == c.seen {
        return Ok(true);
    }
    let seen = Expect::seen(c.seen.as_deref());
    if c.writes_or_deletes() && read_bytes(&target)? != c.seen {
        // Saved by someone else since msgen read it: theirs stays, and neither it
        // nor its record changes (the next run merges it).
        return Ok(false);
    }
    match (&c.action, c.bytes()) {
        (_, Some(bytes)) => txn.put(&target, bytes, seen)?,
        (Action::Delete { .. }, _) => txn.remove(&target, seen),
        _ => {}
    }
    let base_path = dirs.safe_path(root, &format!("{BASE_DIR}/{}", c.path))?;
    match (&c.base, &c.planned_record) {
        (Some(Some(b)), _) => manifest_set(manifest, &c.path, content_hash(b)),
        (Some(None), _) => {
            manifest.remove(&c.path);
        }
        (None, Some(h)) => manifest_set(manifest, &c.path, h.clone()),
        (None, None) => {}
    };
    match &c.base {
        Some(Some(b)) => txn.put(&base_path, b, Expect::Any)?,
        Some(None) => txn.remove(&base_path, Expect::Any),
        None => {}
    }
    Ok(true)
}

/// Directories this run has checked (a directory, not a symbolic link) or created:
/// a large render writes thousands of files into a few hundred directories, and
/// checking each directory once instead of once per file is most of its speed.
#[derive(Default)]
struct Dirs {
    known: std::collections::HashSet<PathBuf>,
    /// Directories found missing (only while nothing is written: see `diff`).
    missing: std::collections::HashSet<PathBuf>,
}

impl Dirs {
    /// [`safe_path`], skipping the directories already known and not looking
    /// below one found missing.
    fn safe_path(&mut self, root: &Path, rel: &str) -> Result<PathBuf> {
        let relp = Path::new(rel);
        if rel.is_empty() || !relp.components().all(|c| matches!(c, Component::Normal(_))) {
            bail!("refusing to write {rel:?}: not a plain relative path inside the project");
        }
        let parts = relp.components().count();
        let mut cur = root.to_path_buf();
        for (i, c) in relp.components().enumerate() {
            cur.push(c);
            let is_dir = i + 1 < parts;
            if is_dir && self.known.contains(&cur) {
                continue;
            }
            if self.missing.contains(&cur) {
                // Nothing below a missing directory exists, links included.
                break;
            }
            match fs::symlink_metadata(&cur) {
                Ok(meta) => {
                    if meta.file_type().is_symlink() {
                        bail!(
                            "refusing to write {}: {} is a symbolic link, which could lead outside the project",
                            rel,
                            cur.display()
                        );
                    }
                    if is_dir && meta.is_dir() {
                        self.known.insert(cur.clone());
                    }
                }
                Err(e) if is_dir && e.kind() == std::io::ErrorKind::NotFound => {
                    self.missing.insert(cur.clone());
                    break;
                }
                Err(_) => {}
            }
        }
        Ok(root.join(relp))
    }

    /// [`read_bytes`], without a system call for a file in a missing directory.
    fn read_bytes(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        if path.ancestors().skip(1).any(|d| self.missing.contains(d)) {
            return Ok(None);
        }
        read_bytes(path)
    }
}

/// A unified diff of one change, for `--dry-run`.
pub fn render_diff(c: &Change) -> Option<String> {
    let (old, new) = match &c.action {
        Action::Create { contents } => ("", contents.as_str()),
        Action::Update { old, new } => (old.as_str(), new.as_str()),
        Action::Merge { old, merged } => (old.as_str(), merged.as_str()),
        Action::Conflict { old, marked } => (old.as_str(), marked.as_str()),
        Action::Delete { old } => (old.as_str(), ""),
        _ => return None,
    };
    Some(unified_diff(&c.path, old, new))
}

/// A unified diff of `path` from `old` to `new`, labelled `a/path` and `b/path`.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    diffy::DiffOptions::new()
        .set_original_filename(format!("a/{path}"))
        .set_modified_filename(format!("b/{path}"))
        .create_patch(old, new)
        .to_string()
}

pub fn verb(a: &Action) -> &'static str {
    match a {
        Action::Create { .. } => "create",
        Action::Update { .. } => "update",
        Action::Merge { .. } => "merge",
        Action::Conflict { .. } => "CONFLICT",
        Action::Foreign { .. } => "CONFLICT",
        Action::Delete { .. } => "remove",
        Action::KeepEdited => "keep (edited)",
        Action::KeepMigration => "keep (migration)",
        Action::Record => "record",
        Action::Unchanged => "unchanged",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_planned_last_is_applied_after_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = Plan::default();
        plan.add_last(".msgen/schema/a.toml", "record".into());
        plan.add(
            "services/a/migrations/0001_x.sql",
            "sql".into(),
            Ownership::CreateOnly,
        );
        plan.add("z.txt", "z".into(), Ownership::Managed);
        let outcome = diff(dir.path(), &plan).unwrap();
        let order: Vec<&str> = outcome.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            order,
            [
                "services/a/migrations/0001_x.sql",
                "z.txt",
                ".msgen/schema/a.toml"
            ]
        );
    }

    #[test]
    fn services_toml_saved_after_the_command_read_it_stops_the_whole_run() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let config = root.join("services.toml");
        fs::write(&config, "# as read\n").unwrap();
        let (_, mut edit) = ConfigEdit::read(&config).unwrap();
        edit.text = "# as edited\n".into();
        let mut plan = Plan::default();
        plan.add("a.txt", "a\n".into(), Ownership::Managed);
        let mut outcome = diff(root, &plan).unwrap();
        assert!(outcome.set_config(root, &config, &edit).unwrap());
        // An editor saves services.toml while msgen renders.
        fs::write(&config, "# saved meanwhile\n").unwrap();
        let err = apply(root, &outcome).unwrap_err().to_string();
        assert!(err.contains("services.toml changed"), "{err}");
        assert_eq!(fs::read_to_string(&config).unwrap(), "# saved meanwhile\n");
        assert!(!root.join("a.txt").exists());
        assert!(!root.join(".msgen/base/a.txt").exists());
    }

    #[test]
    fn a_file_saved_after_the_diff_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut plan = Plan::default();
        plan.add("a.txt", "one\n".into(), Ownership::Managed);
        plan.add("b.txt", "one\n".into(), Ownership::Managed);
        apply(root, &diff(root, &plan).unwrap()).unwrap();

        let mut plan = Plan::default();
        plan.add("a.txt", "two\n".into(), Ownership::Managed);
        plan.add("b.txt", "two\n".into(), Ownership::Managed);
        let outcome = diff(root, &plan).unwrap();
        // The user saves a.txt between msgen's read and its write.
        fs::write(root.join("a.txt"), "mine\n").unwrap();
        let err = apply(root, &outcome).unwrap_err();
        assert!(
            err.to_string()
                .contains("a.txt changed while msgen was writing"),
            "{err}"
        );
        assert_eq!(fs::read_to_string(root.join("a.txt")).unwrap(), "mine\n");
        assert_eq!(fs::read_to_string(root.join("b.txt")).unwrap(), "two\n");
        // Its record did not move either: the next run merges the save.
        assert_eq!(
            fs::read_to_string(root.join(".msgen/base/a.txt")).unwrap(),
            "one\n"
        );
        let again = diff(root, &plan).unwrap();
        let a = again.changes.iter().find(|c| c.path == "a.txt").unwrap();
        assert!(
            matches!(a.action, Action::Conflict { .. } | Action::Merge { .. }),
            "{:?}",
            a.action
        );
    }
}
