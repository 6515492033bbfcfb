//! Transactions: how msgen writes many files so that a killed run leaves the
//! project old or new, never in between.
//!
//! Every file a command writes is first written whole to a temporary file in
//! `.msgen/tmp/` (created exclusively, never through a link). Then one journal,
//! `.msgen/journal`, lists every rename and removal, each with a hash of the file it
//! expects to replace; the journal lands by a rename, and that rename is the commit.
//! Then the renames and removals are carried out and the journal removed.
//!
//! Killed before the commit, the tree is as it was: the temporary files are swept by
//! the next run. Killed after it, the next writing command finishes the journal
//! first ([`recover`]). Each target is checked against its hash before it is
//! replaced, so a file saved by someone else in between is never overwritten.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

/// Where msgen makes its temporary files: a directory of its own, on the project's
/// file system (a rename from there is atomic), so that nothing msgen writes or
/// sweeps away shares a name with a file of the user's.
pub const TMP_DIR: &str = ".msgen/tmp";
/// The journal of a transaction that committed and has not finished yet.
pub const JOURNAL: &str = ".msgen/journal";
/// Temporary files made outside `.msgen/tmp/` (beside a target on another file
/// system, a mount inside the project): listed before they are made, so that the
/// sweep removes exactly those.
const OUTSIDE: &str = ".msgen/tmp/outside";
const TMP_PREFIX: &str = ".msgen-tmp-";
/// Directories a commit made for its targets: listed before they are made, so that
/// the sweep removes them (when still empty) if the run is killed before its commit.
const MADE_DIRS: &str = ".msgen/tmp/dirs";

/// FNV-1a, 64 bits, in hex: enough to tell msgen's record from a stray file, or a
/// file from the version msgen read.
pub fn content_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What a target must hold for an operation to go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there (a record only msgen writes).
    Any,
    /// The file as msgen read it; `None`: absent.
    Seen(Option<String>),
}

impl Expect {
    pub fn seen(bytes: Option<&[u8]>) -> Self {
        Expect::Seen(bytes.map(content_hash))
    }

    fn holds(&self, path: &Path) -> Result<bool> {
        let Expect::Seen(want) = self else {
            return Ok(true);
        };
        let now = match fs::symlink_metadata(path) {
            Ok(m) if m.is_file() => {
                Some(content_hash(&fs::read(path).with_context(|| {
                    format!("cannot read {}", path.display())
                })?))
            }
            // A directory or a link where a file was read: not what msgen saw.
            Ok(_) => Some(String::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(&now == want)
    }

    fn encode(&self) -> String {
        match self {
            Expect::Any => "*".into(),
            Expect::Seen(None) => "-".into(),
            Expect::Seen(Some(h)) => h.clone(),
        }
    }

    fn decode(s: &str) -> Self {
        match s {
            "*" => Expect::Any,
            "-" => Expect::Seen(None),
            h => Expect::Seen(Some(h.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// Rename the temporary file `tmp` over `to`; `hash` is of its contents, so a
    /// rerun knows a put is done by the target holding them.
    Put {
        tmp: PathBuf,
        to: PathBuf,
        hash: String,
    },
    Remove {
        path: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    op: Op,
    expect: Expect,
    /// Steps of one group go together: when the first cannot (its target changed
    /// meanwhile), the others (its base record) are skipped too.
    group: usize,
    /// When it cannot be done, nothing after it is (`services.toml`, which every
    /// other file was rendered from).
    essential: bool,
}

/// A transaction under way: files written aside, nothing of the tree changed yet.
pub struct Txn {
    root: PathBuf,
    tmp_dir: PathBuf,
    steps: Vec<Step>,
    group: usize,
}

impl Txn {
    /// Starts a transaction on the project at `root`: finishes one a killed run
    /// committed, then sweeps what an uncommitted one left.
    pub fn begin(root: &Path) -> Result<Self> {
        recover(root)?;
        let tmp_dir = temp_dir(root)?;
        sweep(root, &tmp_dir)?;
        Ok(Txn {
            root: root.to_path_buf(),
            tmp_dir,
            steps: Vec::new(),
            group: 0,
        })
    }

    /// Starts a new group: the steps added until the next call go together.
    pub fn group(&mut self) {
        self.group += 1;
    }

    /// Writes `contents` aside, to replace `path` (a file of the project) at commit
    /// if it then still is as `expect` says. The file keeps its mode.
    pub fn put(&mut self, path: &Path, contents: &[u8], expect: Expect) -> Result<()> {
        let dir = path
            .parent()
            .with_context(|| format!("{} has no parent directory", path.display()))?;
        // The target's missing directories are made by the commit, not here: until
        // then a killed run must leave no empty directory behind (one that a rerun
        // would take for the user's).
        let dir = existing_ancestor(dir)?;
        let tmp_dir = if same_device(&self.tmp_dir, &dir) {
            self.tmp_dir.clone()
        } else {
            // A rename across file systems is not atomic: the temporary file goes
            // beside its target instead (in its nearest existing directory, on the
            // same file system), listed first so the sweep can find it.
            dir
        };
        let outside = tmp_dir != self.tmp_dir;
        let (tmp, mut f) = create_temp(&tmp_dir, &|tmp| {
            if outside {
                note_outside(&self.root, tmp)?;
            }
            Ok(())
        })
        .with_context(|| format!("cannot write {}", path.display()))?;
        let written = f.write_all(contents).and_then(|()| {
            drop(f);
            // The file keeps its mode (an executable script, a read-only file).
            match fs::symlink_metadata(path) {
                Ok(meta) if meta.is_file() => fs::set_permissions(&tmp, meta.permissions()),
                _ => Ok(()),
            }
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("cannot write {}", path.display()));
        }
        self.steps.push(Step {
            op: Op::Put {
                tmp,
                to: path.to_path_buf(),
                hash: content_hash(contents),
            },
            expect,
            group: self.group,
            essential: false,
        });
        Ok(())
    }

    /// Removes `path` at commit, if it then still is as `expect` says.
    pub fn remove(&mut self, path: &Path, expect: Expect) {
        self.steps.push(Step {
            op: Op::Remove {
                path: path.to_path_buf(),
            },
            expect,
            group: self.group,
            essential: false,
        });
    }

    /// [`Txn::put`] that the whole transaction depends on (`services.toml`, which
    /// every other file was rendered from): when `path` is not as `expect` says at
    /// the commit, nothing is done; when finishing a killed run, nothing after it.
    pub fn put_essential(&mut self, path: &Path, contents: &[u8], expect: Expect) -> Result<()> {
        self.put(path, contents, expect)?;
        if let Some(step) = self.steps.last_mut() {
            step.essential = true;
        }
        Ok(())
    }

    /// Commits and carries out the transaction. Returns the targets left alone
    /// because they changed since msgen read them.
    pub fn commit(self) -> Result<Vec<PathBuf>> {
        for step in self.steps.iter().filter(|s| s.essential) {
            let path = match &step.op {
                Op::Put { to, .. } => to,
                Op::Remove { path } => path,
            };
            if !step.expect.holds(path)? {
                for s in &self.steps {
                    if let Op::Put { tmp, .. } = &s.op {
                        let _ = fs::remove_file(tmp);
                    }
                }
                return Err(crate::CheckFailed(format!(
                    "{} changed while msgen was working; nothing was written: run the command again",
                    path.strip_prefix(&self.root).unwrap_or(path).display()
                ))
                .into());
            }
        }
        if self.steps.is_empty() {
            return Ok(Vec::new());
        }
        // Before the commit point, so that a directory that cannot be made (a file
        // in the way, no permission) stops the run with nothing written.
        if let Err(e) = self.make_directories() {
            self.abandon();
            return Err(e);
        }
        let journal = self.root.join(JOURNAL);
        let text = encode_journal(&self.root, &self.steps)?;
        let (tmp, mut f) = create_temp(&self.tmp_dir, &|_| Ok(()))
            .with_context(|| format!("cannot write {}", journal.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", journal.display()))?;
        drop(f);
        // The commit point.
        fs::rename(&tmp, &journal)
            .with_context(|| format!("cannot write {}", journal.display()))?;
        // The directories are the run's now: the sweep must not take them back.
        let _ = fs::remove_file(self.root.join(MADE_DIRS));
        let skipped = carry_out(&self.root, &self.steps, kill_after_step())?;
        fs::remove_file(&journal)
            .with_context(|| format!("cannot remove {}", journal.display()))?;
        Ok(skipped)
    }
}

impl Txn {
    /// Makes the missing directories of the puts' targets, outermost first, each
    /// listed in [`MADE_DIRS`] before it is made.
    fn make_directories(&self) -> Result<()> {
        let mut missing = std::collections::BTreeSet::new();
        for step in &self.steps {
            let Op::Put { to, .. } = &step.op else {
                continue;
            };
            let mut dir = to.parent();
            while let Some(d) = dir.filter(|d| fs::symlink_metadata(d).is_err()) {
                missing.insert(d.to_path_buf());
                dir = d.parent();
            }
            // Where the walk stopped: something put in the way since.
            if let Some(d) = dir.filter(|d| !d.is_dir()) {
                bail!(
                    "cannot create {}: {} is not a directory; nothing was written",
                    to.parent().unwrap_or(d).display(),
                    d.display()
                );
            }
        }
        // A parent sorts before its children.
        for dir in &missing {
            let rel = dir.strip_prefix(&self.root).unwrap_or(dir);
            crate::apply::safe_path(&self.root, &rel.to_string_lossy())?;
            note(&self.root, MADE_DIRS, rel)
                .and_then(|()| fs::create_dir(dir))
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists if dir.is_dir() => Ok(()),
                    _ => Err(e),
                })
                .with_context(|| format!("cannot create {}; nothing was written", dir.display()))?;
        }
        Ok(())
    }

    /// Takes back what an uncommitted transaction made: its temporary files and the
    /// directories it made.
    fn abandon(&self) {
        for step in &self.steps {
            if let Op::Put { tmp, .. } = &step.op {
                let _ = fs::remove_file(tmp);
            }
        }
        remove_made_directories(&self.root);
    }
}

/// Removes the directories [`MADE_DIRS`] lists that are still empty, innermost first.
fn remove_made_directories(root: &Path) {
    let Ok(list) = fs::read_to_string(root.join(MADE_DIRS)) else {
        return;
    };
    for line in list.lines().rev() {
        let Ok(rel) = unescape(line) else { continue };
        let inside = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if inside {
            // Only an empty directory (not a link) is removed.
            let _ = fs::remove_dir(root.join(rel));
        }
    }
    let _ = fs::remove_file(root.join(MADE_DIRS));
}

/// Whether a transaction committed and did not finish (a killed run).
pub fn pending(root: &Path) -> bool {
    fs::symlink_metadata(root.join(JOURNAL)).is_ok()
}

/// Finishes the transaction a killed run committed, if any. Returns the targets
/// it left alone because they changed since.
pub fn recover(root: &Path) -> Result<Vec<PathBuf>> {
    let journal = root.join(JOURNAL);
    let meta = match fs::symlink_metadata(&journal) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", journal.display())),
    };
    if !meta.is_file() {
        bail!(
            "refusing to read {}: it is not a file (a symbolic link could lead outside the project)",
            journal.display()
        );
    }
    let text = fs::read_to_string(&journal)
        .with_context(|| format!("cannot read {}", journal.display()))?;
    let steps = decode_journal(root, &text).with_context(|| {
        format!(
            "{} is damaged (msgen was interrupted while finishing a run); check the files it lists, then delete it",
            journal.display()
        )
    })?;
    let skipped = carry_out(root, &steps, None)?;
    fs::remove_file(&journal).with_context(|| format!("cannot remove {}", journal.display()))?;
    Ok(skipped)
}

/// The renames and removals of a committed transaction, in order. A step whose
/// temporary file is gone was done before (a rerun after a kill).
fn carry_out(root: &Path, steps: &[Step], kill_after: Option<usize>) -> Result<Vec<PathBuf>> {
    let mut skipped = Vec::new();
    let mut failed_group = None;
    for (i, step) in steps.iter().enumerate() {
        if kill_after == Some(i) {
            // As abrupt as SIGKILL: no destructor, no clean-up.
            std::process::abort();
        }
        if failed_group == Some(step.group) {
            continue;
        }
        let target = match &step.op {
            Op::Put { to, .. } => to,
            Op::Remove { path } => path,
        };
        // A step that cannot be done (changed meanwhile, a link planted, an error)
        // leaves its target and its group alone, never the whole run stuck.
        let done = carry_out_step(root, step).unwrap_or(false);
        if !done {
            skipped.push(target.clone());
            failed_group = Some(step.group);
            if step.essential {
                break;
            }
        }
    }
    Ok(skipped)
}

/// One step; `Ok(false)` when its target is not as the step expects. A put whose
/// temporary file is gone was done when the target holds its contents.
fn carry_out_step(root: &Path, step: &Step) -> Result<bool> {
    match &step.op {
        Op::Put { tmp, to, hash } => {
            let rel = to.strip_prefix(root).unwrap_or(to);
            // Checked again here: a directory may have become a link meanwhile.
            crate::apply::safe_path(root, &rel.to_string_lossy())?;
            if fs::symlink_metadata(tmp).is_err() {
                return Expect::Seen(Some(hash.clone())).holds(to);
            }
            if !step.expect.holds(to)? {
                // The temporary file stays until the journal is gone: a rerun must
                // not take its absence for "done".
                return Ok(false);
            }
            if let Some(dir) = to.parent() {
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            fs::rename(tmp, to).with_context(|| format!("cannot write {}", to.display()))?;
            Ok(true)
        }
        Op::Remove { path } => {
            let rel = path.strip_prefix(root).unwrap_or(path);
            crate::apply::safe_path(root, &rel.to_string_lossy())?;
            if fs::symlink_metadata(path).is_err() {
                return Ok(true);
            }
            if !step.expect.holds(path)? {
                return Ok(false);
            }
            fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
            remove_empty_parents(root, path);
            Ok(true)
        }
    }
}

/// Fault injection for msgen's own tests: `MSGEN_KILL_AFTER_STEP=N` stops msgen
/// abruptly after the commit and N of its steps, where a SIGKILL at a random moment
/// rarely lands.
fn kill_after_step() -> Option<usize> {
    std::env::var("MSGEN_KILL_AFTER_STEP").ok()?.parse().ok()
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

/// One line per step: `put <expect> <group> <tmp> <to>` or `rm <expect> <group>
/// <path>`, paths relative to the project and escaped (any byte a name can hold).
fn encode_journal(root: &Path, steps: &[Step]) -> Result<String> {
    let rel = |p: &Path| -> Result<String> {
        let r = p
            .strip_prefix(root)
            .with_context(|| format!("{} is outside the project", p.display()))?;
        Ok(escape(r))
    };
    let mut out = String::from("msgen-journal 2\n");
    for s in steps {
        let line = match &s.op {
            Op::Put { tmp, to, hash } => format!(
                "put {} {}{} {hash} {} {}\n",
                s.expect.encode(),
                s.group,
                if s.essential { "!" } else { "" },
                rel(tmp)?,
                rel(to)?
            ),
            Op::Remove { path } => format!(
                "rm {} {}{} {}\n",
                s.expect.encode(),
                s.group,
                if s.essential { "!" } else { "" },
                rel(path)?
            ),
        };
        out.push_str(&line);
    }
    Ok(out)
}

fn decode_journal(root: &Path, text: &str) -> Result<Vec<Step>> {
    let mut lines = text.lines();
    if lines.next() != Some("msgen-journal 2") {
        bail!("not a journal msgen knows");
    }
    let mut steps = Vec::new();
    for line in lines {
        let parts: Vec<&str> = line.split(' ').collect();
        let path = |s: &str| -> Result<PathBuf> {
            let p = unescape(s)?;
            if !p
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
            {
                bail!("{s}: not a path inside the project");
            }
            Ok(root.join(p))
        };
        let group = |s: &str| -> Result<(usize, bool)> {
            let (g, essential) = match s.strip_suffix('!') {
                Some(g) => (g, true),
                None => (s, false),
            };
            Ok((g.parse::<usize>().context("a bad group number")?, essential))
        };
        let step = match parts.as_slice() {
            ["put", e, g, hash, tmp, to] => {
                let (group, essential) = group(g)?;
                Step {
                    op: Op::Put {
                        tmp: path(tmp)?,
                        to: path(to)?,
                        hash: hash.to_string(),
                    },
                    expect: Expect::decode(e),
                    group,
                    essential,
                }
            }
            ["rm", e, g, p] => {
                let (group, essential) = group(g)?;
                Step {
                    op: Op::Remove { path: path(p)? },
                    expect: Expect::decode(e),
                    group,
                    essential,
                }
            }
            _ => bail!("a line msgen cannot read: {line:?}"),
        };
        steps.push(step);
    }
    Ok(steps)
}

/// A path as one word of ASCII: bytes other than letters, digits and `/._-` as `%XX`.
fn escape(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let mut out = String::new();
    for b in p.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-+@".contains(b) {
            out.push(char::from(*b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unescape(s: &str) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt as _;
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).context("a cut escape")?;
            out.push(u8::from_str_radix(hex, 16).context("a bad escape")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

/// `dir` or its nearest ancestor that exists, which must be a directory (or a link
/// to one): a file in the way is refused now, before anything is written.
fn existing_ancestor(dir: &Path) -> Result<PathBuf> {
    let mut at = dir;
    loop {
        match fs::metadata(at) {
            Ok(meta) if meta.is_dir() => return Ok(at.to_path_buf()),
            Ok(_) => bail!(
                "cannot create {}: {} is not a directory",
                dir.display(),
                at.display()
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                match at.parent() {
                    Some(up) if !up.as_os_str().is_empty() => at = up,
                    _ => return Ok(PathBuf::from(".")),
                }
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create {}", dir.display()));
            }
        }
    }
}

fn same_device(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => true,
    }
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
/// `before` runs with the name before the file is made (to list it for the sweep).
fn create_temp(
    dir: &Path,
    before: &dyn Fn(&Path) -> std::io::Result<()>,
) -> std::io::Result<(PathBuf, fs::File)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{TMP_PREFIX}{}-{n}", std::process::id()));
        let mut options = fs::OpenOptions::new();
        options
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW);
        before(&path)?;
        match options.open(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Lists a temporary file made outside `.msgen/tmp/` before it is made.
fn note_outside(root: &Path, tmp: &Path) -> std::io::Result<()> {
    note(root, OUTSIDE, tmp.strip_prefix(root).unwrap_or(tmp))
}

/// Adds `rel` to the list `list` (a file of `.msgen/tmp/`).
fn note(root: &Path, list: &str, rel: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(root.join(list))?;
    writeln!(f, "{}", escape(rel))
}

/// Temporary files of a run killed before its commit: whatever is in
/// `.msgen/tmp/`, which only msgen writes (under the project's lock), and those
/// `.msgen/tmp/outside` lists; and the directories it made, if still empty.
fn sweep(root: &Path, dir: &Path) -> Result<()> {
    remove_made_directories(root);
    if let Ok(list) = fs::read_to_string(root.join(OUTSIDE)) {
        for line in list.lines() {
            let Ok(rel) = unescape(line) else { continue };
            let ours = rel
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(TMP_PREFIX));
            let inside = rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            let path = root.join(&rel);
            if ours
                && inside
                && fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() || m.is_symlink())
            {
                fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
    }
    let Ok(entries) = fs::read_dir(dir) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_any_bytes_survive_the_journal() {
        use std::os::unix::ffi::OsStrExt as _;
        let root = Path::new("/p");
        let odd = std::ffi::OsStr::from_bytes(b"a b/\xe9\n%t\tx.rs");
        let steps = vec![
            Step {
                op: Op::Put {
                    tmp: root.join(".msgen/tmp/.msgen-tmp-1-0"),
                    to: root.join(odd),
                    hash: content_hash(b"x"),
                },
                expect: Expect::Seen(None),
                group: 1,
                essential: true,
            },
            Step {
                op: Op::Remove {
                    path: root.join("x"),
                },
                expect: Expect::Any,
                group: 2,
                essential: false,
            },
        ];
        let text = encode_journal(root, &steps).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert_eq!(decode_journal(root, &text).unwrap(), steps);
        assert!(decode_journal(root, "msgen-journal 2\nrm * 1 ../x\n").is_err());
    }

    #[test]
    fn a_killed_commit_is_finished_and_a_file_saved_meanwhile_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("a"), "old a").unwrap();
        fs::write(root.join("b"), "old b").unwrap();
        let mut txn = Txn::begin(root).unwrap();
        txn.group();
        txn.put(&root.join("a"), b"new a", Expect::seen(Some(b"old a")))
            .unwrap();
        txn.group();
        txn.put(&root.join("b"), b"new b", Expect::seen(Some(b"old b")))
            .unwrap();
        txn.put(&root.join("b.rec"), b"record", Expect::Any)
            .unwrap();
        // Killed right after the commit point: the journal is there, nothing renamed.
        let text = encode_journal(root, &txn.steps).unwrap();
        fs::write(root.join(JOURNAL), text).unwrap();
        // Meanwhile the user saves b.
        fs::write(root.join("b"), "mine").unwrap();
        let skipped = recover(root).unwrap();
        assert_eq!(skipped, vec![root.join("b")]);
        assert_eq!(fs::read_to_string(root.join("a")).unwrap(), "new a");
        assert_eq!(fs::read_to_string(root.join("b")).unwrap(), "mine");
        // b's record went with it: not written.
        assert!(!root.join("b.rec").exists());
        assert!(!pending(root));
        // The next transaction sweeps what the skipped steps left.
        Txn::begin(root).unwrap();
        assert_eq!(fs::read_dir(root.join(TMP_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn a_put_whose_temporary_file_is_gone_is_done_only_if_the_target_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("a"), "old").unwrap();
        let mut txn = Txn::begin(root).unwrap();
        txn.group();
        txn.put(&root.join("a"), b"new", Expect::seen(Some(b"old")))
            .unwrap();
        txn.put(&root.join("a.rec"), b"record", Expect::Any)
            .unwrap();
        let text = encode_journal(root, &txn.steps).unwrap();
        fs::write(root.join(JOURNAL), text).unwrap();
        // The temporary files are lost (swept by hand, say): a is not "done".
        for e in fs::read_dir(root.join(TMP_DIR)).unwrap() {
            fs::remove_file(e.unwrap().path()).unwrap();
        }
        let skipped = recover(root).unwrap();
        assert_eq!(skipped, vec![root.join("a")]);
        assert_eq!(fs::read_to_string(root.join("a")).unwrap(), "old");
        assert!(!root.join("a.rec").exists());
    }

    #[test]
    fn an_essential_step_skipped_stops_the_rest_of_a_killed_run() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("services.toml"), "old").unwrap();
        let mut txn = Txn::begin(root).unwrap();
        txn.group();
        txn.put_essential(
            &root.join("services.toml"),
            b"new",
            Expect::seen(Some(b"old")),
        )
        .unwrap();
        txn.group();
        txn.put(&root.join("rendered"), b"from new", Expect::seen(None))
            .unwrap();
        let text = encode_journal(root, &txn.steps).unwrap();
        fs::write(root.join(JOURNAL), text).unwrap();
        // After the kill, the user edits services.toml: nothing of the run lands.
        fs::write(root.join("services.toml"), "the user's").unwrap();
        let skipped = recover(root).unwrap();
        assert_eq!(skipped, vec![root.join("services.toml")]);
        assert!(!root.join("rendered").exists());
        assert_eq!(
            fs::read_to_string(root.join("services.toml")).unwrap(),
            "the user's"
        );
    }

    #[test]
    fn an_essential_file_changed_meanwhile_stops_everything() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("services.toml"), "old").unwrap();
        let mut txn = Txn::begin(root).unwrap();
        txn.put_essential(
            &root.join("services.toml"),
            b"new",
            Expect::seen(Some(b"old")),
        )
        .unwrap();
        txn.group();
        txn.put(&root.join("a"), b"a", Expect::seen(None)).unwrap();
        fs::write(root.join("services.toml"), "saved by an editor").unwrap();
        let err = txn.commit().unwrap_err().to_string();
        assert!(err.contains("services.toml changed"), "{err}");
        assert!(!root.join("a").exists());
        assert_eq!(
            fs::read_to_string(root.join("services.toml")).unwrap(),
            "saved by an editor"
        );
        assert_eq!(fs::read_dir(root.join(TMP_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn directories_are_made_at_commit_and_a_file_in_the_way_is_refused_before() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut txn = Txn::begin(root).unwrap();
        txn.put(
            &root.join("services/blog/src/lib.rs"),
            b"x",
            Expect::seen(None),
        )
        .unwrap();
        // Killed before the commit: no directory of the run is left behind.
        drop(txn);
        assert!(!root.join("services").exists());

        let mut txn = Txn::begin(root).unwrap();
        txn.put(
            &root.join("services/blog/src/lib.rs"),
            b"x",
            Expect::seen(None),
        )
        .unwrap();
        txn.commit().unwrap();
        assert_eq!(
            fs::read(root.join("services/blog/src/lib.rs")).unwrap(),
            b"x"
        );

        fs::write(root.join("file"), "").unwrap();
        let mut txn = Txn::begin(root).unwrap();
        let err = txn
            .put(&root.join("file/a/b.rs"), b"x", Expect::seen(None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a directory"), "{err}");

        // A file put in the way before the commit: nothing is written, not even
        // the essential file, and the directories made on the way are taken back.
        fs::write(root.join("services.toml"), "old").unwrap();
        let mut txn = Txn::begin(root).unwrap();
        txn.put_essential(
            &root.join("services.toml"),
            b"new",
            Expect::seen(Some(b"old")),
        )
        .unwrap();
        txn.group();
        txn.put(&root.join("new/dir/x.rs"), b"x", Expect::seen(None))
            .unwrap();
        txn.put(&root.join("new/other/y.rs"), b"y", Expect::seen(None))
            .unwrap();
        fs::create_dir(root.join("new")).unwrap();
        fs::write(root.join("new/other"), "in the way").unwrap();
        let err = format!("{:#}", txn.commit().unwrap_err());
        assert!(err.contains("nothing was written"), "{err}");
        assert_eq!(
            fs::read_to_string(root.join("services.toml")).unwrap(),
            "old"
        );
        assert!(!root.join("new/dir").exists());
        assert!(root.join("new/other").is_file());
        assert_eq!(fs::read_dir(root.join(TMP_DIR)).unwrap().count(), 0);

        // Killed after making the directories, before the commit point: the next
        // run sweeps them away.
        let mut txn = Txn::begin(root).unwrap();
        txn.put(&root.join("deep/er/z.rs"), b"z", Expect::seen(None))
            .unwrap();
        txn.make_directories().unwrap();
        assert!(root.join("deep/er").is_dir());
        drop(txn);
        Txn::begin(root).unwrap();
        assert!(!root.join("deep").exists());
    }

    #[test]
    fn the_sweep_removes_only_what_msgen_listed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let tmp = temp_dir(root).unwrap();
        fs::create_dir(root.join("mnt")).unwrap();
        fs::write(root.join("mnt/.msgen-tmp-9-9"), "stray").unwrap();
        fs::write(root.join("mnt/.msgen-tmp-user"), "the user's").unwrap();
        note_outside(root, &root.join("mnt/.msgen-tmp-9-9")).unwrap();
        fs::write(tmp.join("junk"), "").unwrap();
        Txn::begin(root).unwrap();
        assert!(!root.join("mnt/.msgen-tmp-9-9").exists());
        assert!(root.join("mnt/.msgen-tmp-user").exists());
        assert!(!tmp.join("junk").exists());
    }
}
