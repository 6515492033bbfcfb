//! Applying a plan to a project tree: the only code that writes generated files.
//!
//! `.msgen/base/<path>` keeps what msgen last generated for every file. That copy is
//! the base of a three-way merge: a file the user did not touch is replaced, a file
//! the user edited is merged with the new render, and a collision leaves conflict
//! markers and is reported. Every write goes to a temporary file that is then
//! renamed, so an interrupted run leaves each file old or new, never half written.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::plan::{Ownership, Plan};

pub const STATE_DIR: &str = ".msgen";
const BASE_DIR: &str = ".msgen/base";

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
    /// A file exists where msgen wants to write one it never generated.
    Foreign,
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
            .filter(|c| matches!(c.action, Action::Conflict { .. } | Action::Foreign))
            .map(|c| c.path.as_str())
            .collect()
    }
    /// True when applying would change nothing on disk, records included.
    pub fn is_clean(&self) -> bool {
        self.pending().next().is_none()
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
        let Some(hash) = manifest.get(&rel) else {
            continue;
        };
        let bytes = read_bytes(&root.join(BASE_DIR).join(&rel))?.unwrap_or_default();
        if &content_hash(&bytes) == hash {
            out.insert(rel);
        }
    }
    Ok(out)
}

/// Every path with a file under `.msgen/base/`.
fn base_records(root: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let base = root.join(BASE_DIR);
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                if let Ok(rel) = path.strip_prefix(&base) {
                    out.insert(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    Ok(out)
}

/// `.msgen/manifest`: what msgen recorded, one `<hash> <path>` line per file.
const MANIFEST: &str = ".msgen/manifest";

/// FNV-1a, 64 bits, in hex: enough to tell msgen's record from a stray file.
fn content_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn read_manifest(root: &Path) -> Result<Option<std::collections::BTreeMap<String, String>>> {
    let Some(bytes) = read_bytes(&root.join(MANIFEST))? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(Some(
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(h, p)| (p.to_string(), h.to_string()))
            .collect(),
    ))
}

/// Works out what applying `plan` to the tree at `root` does, without writing.
/// `plan` is a whole render: a file msgen generated last time that it does not
/// hold is stale.
pub fn diff(root: &Path, plan: &Plan) -> Result<Outcome> {
    diff_with(root, plan, true)
}

/// [`diff`] of a plan that adds files to the tree and says nothing of the rest
/// (`msgen add-migration`): no file is stale.
pub fn diff_additions(root: &Path, plan: &Plan) -> Result<Outcome> {
    diff_with(root, plan, false)
}

fn diff_with(root: &Path, plan: &Plan, whole: bool) -> Result<Outcome> {
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    // Conflicts are what msgen recorded leaving, not whatever looks like markers.
    let recorded_conflicts = read_conflicts(root)?;
    let mut conflicts_after = recorded_conflicts.clone().unwrap_or_default();
    // Nothing is written while diffing, so what is missing stays missing.
    let mut dirs = Dirs::default();
    for (rel, file) in &plan.files {
        let target = dirs.safe_path(root, rel)?;
        let base_path = dirs.safe_path(root, &format!("{BASE_DIR}/{rel}"))?;
        // Bytes: every comparison is exact, and a file that is not UTF-8 is merged
        // as bytes, never through a lossy string.
        let current = dirs.read_bytes(&target)?;
        let seen = current.clone();
        let base = dirs.read_bytes(&base_path)?;
        let planned_record = base.as_deref().map(content_hash);
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
                if cur == new_bytes {
                    (Action::Record, Some(Some(new_bytes.to_vec())))
                } else {
                    (Action::Foreign, None)
                }
            }
            (Ownership::Managed, Some(cur), Some(b)) => {
                let cur_text = String::from_utf8_lossy(&cur).into_owned();
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
                } else if cur == new_bytes {
                    let r = record(&b);
                    let a = if r.is_some() {
                        Action::Record
                    } else {
                        Action::Unchanged
                    };
                    (a, r)
                } else if cur == b {
                    (
                        Action::Update {
                            old: cur_text,
                            new: new.clone(),
                        },
                        Some(Some(new_bytes.to_vec())),
                    )
                } else if b == new_bytes {
                    // Only the user changed it: theirs to keep.
                    (Action::Unchanged, None)
                } else {
                    let merged = match (std::str::from_utf8(&b), std::str::from_utf8(&cur)) {
                        (Ok(b), Ok(c)) => diffy::merge(b, c, new)
                            .map(String::into_bytes)
                            .map_err(String::into_bytes),
                        _ => diffy::merge_bytes(&b, &cur, new_bytes),
                    };
                    let text = |m: &[u8]| String::from_utf8_lossy(m).into_owned();
                    let lossy = |m: &[u8]| std::str::from_utf8(m).is_err().then(|| m.to_vec());
                    match merged {
                        Ok(m) if m == cur => (Action::Record, Some(Some(new_bytes.to_vec()))),
                        Ok(m) => {
                            raw = lossy(&m);
                            (
                                Action::Merge {
                                    old: cur_text,
                                    merged: text(&m),
                                },
                                Some(Some(new_bytes.to_vec())),
                            )
                        }
                        Err(m) => {
                            raw = lossy(&m);
                            conflicts_after.insert(rel.clone(), content_hash(&cur));
                            (
                                Action::Conflict {
                                    old: cur_text,
                                    marked: text(&m),
                                },
                                Some(Some(new_bytes.to_vec())),
                            )
                        }
                    }
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
        recorded(root)?
    } else {
        BTreeSet::new()
    };
    for rel in stale {
        if plan.files.contains_key(&rel) {
            continue;
        }
        let target = safe_path(root, &rel)?;
        let base = read_bytes(&safe_path(root, &format!("{BASE_DIR}/{rel}"))?)?;
        let current = read_bytes(&target)?;
        // A migration may have run somewhere: never delete it, only forget it.
        let migration = rel.contains("/migrations/") && rel.ends_with(".sql");
        let seen = current.clone();
        let action = match current {
            None => Action::Record,
            Some(_) if migration => Action::KeepMigration,
            Some(cur) if Some(&cur) == base.as_ref() => Action::Delete {
                old: String::from_utf8_lossy(&cur).into_owned(),
            },
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
    })
}

/// `.msgen/conflicts`: a `<hash> <path>` line for each file msgen left with
/// conflict markers that the user has not resolved yet; the hash is of the user's
/// version the conflict was made from (empty when unknown).
const CONFLICTS: &str = ".msgen/conflicts";

type Conflicts = std::collections::BTreeMap<String, String>;

fn write_conflicts(root: &Path, dirs: &mut Dirs, conflicts: &Conflicts) -> Result<()> {
    let text: String = conflicts
        .iter()
        .map(|(p, h)| format!("{h} {p}\n"))
        .collect();
    let path = dirs.safe_path(root, CONFLICTS)?;
    dirs.write(root, &path, text.as_bytes())
}

/// Records files another writer (`split`) leaves with conflict markers, before it
/// writes them: `(path, the user's version they were made from)`.
pub fn record_conflicts(root: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let mut conflicts = read_conflicts(root)?.unwrap_or_default();
    for (p, ours) in files {
        conflicts.insert(p.clone(), content_hash(ours));
    }
    write_conflicts(root, &mut Dirs::default(), &conflicts)
}

fn read_conflicts(root: &Path) -> Result<Option<Conflicts>> {
    Ok(read_bytes(&root.join(CONFLICTS))?.map(|b| {
        String::from_utf8_lossy(&b)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(h, p)| (p.to_string(), h.to_string()))
            .collect()
    }))
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
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let old = old.unwrap_or_default();
    let text = new_text.strip_prefix('\u{feff}').unwrap_or(new_text);
    let crlf = old.windows(2).filter(|w| w == b"\r\n").count();
    let lf = old.iter().filter(|b| **b == b'\n').count();
    let mut out = Vec::with_capacity(text.len() + 3);
    if old.starts_with(BOM) {
        out.extend_from_slice(BOM);
    }
    if crlf > 0 && crlf * 2 >= lf {
        out.extend_from_slice(text.replace("\r\n", "\n").replace('\n', "\r\n").as_bytes());
    } else {
        out.extend_from_slice(text.as_bytes());
    }
    out
}

/// Writes `services.toml` (at `path`, in the project at `root`) through
/// [`write_atomic`]; a symbolic link stays a link, and the file it points to is
/// written, when that file is inside the project (never outside it).
pub fn write_config(root: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return write_atomic(root, path, bytes);
    }
    let target = fs::canonicalize(path)
        .with_context(|| format!("{} is a symbolic link to nothing", path.display()))?;
    let inside = fs::canonicalize(root).is_ok_and(|r| target.starts_with(r));
    if !inside {
        bail!(
            "{} is a symbolic link to {}, outside the project: msgen writes nothing outside it; make the edit there, or replace the link with the file",
            path.display(),
            target.display()
        );
    }
    write_atomic(root, &target, bytes)
}

/// Where msgen makes its temporary files: a directory of its own, on the project's
/// file system (a rename from there is atomic), so that nothing msgen writes or
/// sweeps away shares a name with a file of the user's.
pub const TMP_DIR: &str = ".msgen/tmp";

/// Writes `contents` to `path`, a file of the project at `root`, through a
/// temporary file and a rename.
pub fn write_atomic(root: &Path, path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_file(root, path, contents)
}

/// A temporary file in `.msgen/tmp/`, then a rename over `path`. Where `path` is on
/// another file system (a mount inside the project), the temporary file goes beside
/// it instead; either way it is created exclusively and never through a link.
fn write_file(root: &Path, path: &Path, contents: &[u8]) -> Result<()> {
    let write = |dir: &Path| -> std::io::Result<()> {
        let (tmp, mut f) = create_temp(dir)?;
        // No fsync: the rename is what makes a file whole or absent when msgen is
        // killed (as git does); syncing every file made large renders crawl.
        let result = f.write_all(contents).and_then(|()| {
            drop(f);
            // The file keeps its mode (an executable script, a read-only file).
            if let Ok(meta) = fs::symlink_metadata(path) {
                if meta.is_file() {
                    fs::set_permissions(&tmp, meta.permissions())?;
                }
            }
            fs::rename(&tmp, path)
        });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    };
    let tmp_dir = temp_dir(root)?;
    let result = match write(&tmp_dir) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => match path.parent() {
            Some(dir) => write(dir),
            None => Err(e),
        },
        other => other,
    };
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// `.msgen/tmp/` of the project at `root`, made if missing; refused when it (or
/// `.msgen`) is a symbolic link.
fn temp_dir(root: &Path) -> Result<PathBuf> {
    let mut dir = root.to_path_buf();
    for part in TMP_DIR.split('/') {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "refusing to write through {}: it is not a directory (a symbolic link could lead outside the project)",
                dir.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        }
    }
    Ok(dir)
}

/// A new file in `dir` with a name no file had: `O_CREAT | O_EXCL | O_NOFOLLOW`, so a
/// file or link already there (planted or not) is never opened, let alone written.
fn create_temp(dir: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!(".msgen-tmp-{}-{n}", std::process::id()));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.custom_flags(libc::O_NOFOLLOW);
        }
        match options.open(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Temporary files of a run that was killed before its rename: whatever is in
/// `.msgen/tmp/`, which only msgen writes (under the project's lock).
fn remove_stale_temp_files(root: &Path) -> Result<()> {
    // Checked first: listing a link planted at .msgen/tmp would sweep its target.
    let dir = temp_dir(root)?;
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry
            .file_type()
            .is_ok_and(|t| t.is_file() || t.is_symlink())
        {
            fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Carries out an outcome computed by [`diff`] on the same tree.
pub fn apply(root: &Path, outcome: &Outcome) -> Result<()> {
    apply_with_progress(root, outcome, &mut |_| {})
}

/// [`apply`], calling `progress` with each change before it is made.
pub fn apply_with_progress(
    root: &Path,
    outcome: &Outcome,
    progress: &mut dyn FnMut(&Change),
) -> Result<()> {
    remove_stale_temp_files(root)?;
    let mut dirs = Dirs::default();
    let mut changed_meanwhile = Vec::new();
    // Conflicts about to be written are recorded first: killed after a marked
    // file is written, the record must already say it is a conflict.
    let old_conflicts = read_conflicts(root)?;
    if let Some(after) = &outcome.conflicts_after {
        let mut union = old_conflicts.clone().unwrap_or_default();
        union.extend(after.iter().map(|(p, h)| (p.clone(), h.clone())));
        if old_conflicts.as_ref() != Some(&union) {
            write_conflicts(root, &mut dirs, &union)?;
        }
    }
    let old_manifest = read_manifest(root)?;
    let mut manifest = match &old_manifest {
        Some(m) => m.clone(),
        // Before the manifest: every record is msgen's.
        None => {
            let mut m = std::collections::BTreeMap::new();
            for rel in base_records(root)? {
                let bytes = read_bytes(&root.join(BASE_DIR).join(&rel))?.unwrap_or_default();
                m.insert(rel, content_hash(&bytes));
            }
            m
        }
    };
    for c in &outcome.changes {
        progress(c);
        let target = dirs.safe_path(root, &c.path)?;
        // An unresolved conflict left as it is: nothing to write.
        if c.raw.is_some() && c.raw == c.seen {
            continue;
        }
        if c.writes_or_deletes() && read_bytes(&target)? != c.seen {
            // Saved by someone else since msgen read it: theirs stays, and neither
            // it nor its record changes (the next run merges it).
            changed_meanwhile.push(c.path.clone());
            continue;
        }
        match &c.action {
            Action::Create { contents } => dirs.write(root, &target, contents.as_bytes())?,
            Action::Update { new, .. } => dirs.write(root, &target, new.as_bytes())?,
            Action::Merge { merged, .. } => {
                let bytes = c.raw.as_deref().unwrap_or(merged.as_bytes());
                dirs.write(root, &target, bytes)?
            }
            Action::Conflict { marked, .. } => {
                let bytes = c.raw.as_deref().unwrap_or(marked.as_bytes());
                dirs.write(root, &target, bytes)?
            }
            Action::Delete { .. } => {
                fs::remove_file(&target)
                    .with_context(|| format!("cannot remove {}", target.display()))?;
                remove_empty_parents(root, &target);
                dirs.forget();
            }
            Action::Foreign
            | Action::KeepEdited
            | Action::KeepMigration
            | Action::Record
            | Action::Unchanged => {}
        }
        // The record follows the tree: if we are killed in between, the next run
        // sees the new file against the old base, and the merge yields the new file.
        let base_path = dirs.safe_path(root, &format!("{BASE_DIR}/{}", c.path))?;
        match (&c.base, &c.planned_record) {
            (Some(Some(b)), _) => manifest.insert(c.path.clone(), content_hash(b)),
            (Some(None), _) => manifest.remove(&c.path),
            (None, Some(h)) => manifest.insert(c.path.clone(), h.clone()),
            (None, None) => None,
        };
        match &c.base {
            Some(Some(b)) => dirs.write(root, &base_path, b)?,
            Some(None) if base_path.exists() => {
                fs::remove_file(&base_path)
                    .with_context(|| format!("cannot remove {}", base_path.display()))?;
                remove_empty_parents(root, &base_path);
                dirs.forget();
            }
            Some(None) | None => {}
        }
    }
    if let Some(after) = &outcome.conflicts_after {
        // A file left alone (saved meanwhile) keeps the entry it had.
        let mut after = after.clone();
        for p in &changed_meanwhile {
            match old_conflicts.as_ref().and_then(|c| c.get(p)) {
                Some(h) => after.insert(p.clone(), h.clone()),
                None => after.remove(p),
            };
        }
        if read_conflicts(root)?.as_ref() != Some(&after) {
            write_conflicts(root, &mut dirs, &after)?;
        }
    }
    // After the records it vouches for: killed before this, the old manifest
    // vouches for less, never for more (records it does not know are not deleted).
    if old_manifest.as_ref() != Some(&manifest) {
        let text: String = manifest.iter().map(|(p, h)| format!("{h} {p}\n")).collect();
        let path = dirs.safe_path(root, MANIFEST)?;
        dirs.write(root, &path, text.as_bytes())?;
    }
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

    /// [`write_atomic`], creating the parent directory only when it is not known.
    fn write(&mut self, root: &Path, path: &Path, contents: &[u8]) -> Result<()> {
        let dir = path
            .parent()
            .with_context(|| format!("{} has no parent directory", path.display()))?;
        if !self.known.contains(dir) {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            self.known.insert(dir.to_path_buf());
            // No longer missing: paths below it are checked again, links included.
            self.missing.retain(|m| !dir.starts_with(m));
        }
        write_file(root, path, contents)
    }

    /// A removal may have taken directories away with it.
    fn forget(&mut self) {
        self.known.clear();
    }
}

/// Removes the directories of `file` that became empty, up to `root`.
pub fn remove_empty_parents(root: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
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
    // diffy labels both sides "original"/"modified"; name the file instead.
    diffy::create_patch(old, new)
        .to_string()
        .replacen("--- original", &format!("--- a/{path}"), 1)
        .replacen("+++ modified", &format!("+++ b/{path}"), 1)
}

pub fn verb(a: &Action) -> &'static str {
    match a {
        Action::Create { .. } => "create",
        Action::Update { .. } => "update",
        Action::Merge { .. } => "merge",
        Action::Conflict { .. } => "CONFLICT",
        Action::Foreign => "CONFLICT",
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
