//! Reading Rust with syn: where does code name another module of the crate?
//!
//! `msgen split` uses this to find every use of the extracted module by the rest of
//! the monolith (and of the rest by the module) that generated clients do not cover,
//! so it can report each one precisely instead of guessing.

use syn::visit::Visit;

/// One `crate::<module>::...` path in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRef {
    pub line: usize,
    /// The whole path as written, e.g. `crate::user::repo::user::get`.
    pub path: String,
    pub module: String,
}

/// Deepest nesting of brackets msgen reads: far beyond hand-written code, and
/// within what parsing, visiting and dropping a syntax tree can recurse through on
/// msgen's stack.
pub const MAX_NESTING: usize = 2000;

/// Parses a Rust file, refusing (with a message, not a stack overflow) one whose
/// brackets nest deeper than [`MAX_NESTING`]. The tokens are counted first, by
/// proc-macro2's lexer, which keeps its own stack.
pub fn parse_rust(source: &str) -> Result<syn::File, RustError> {
    let tokens: proc_macro2::TokenStream = source.parse().map_err(|e: proc_macro2::LexError| {
        let start = e.span().start();
        RustError {
            line: start.line,
            column: start.column + 1,
            message: e.to_string(),
        }
    })?;
    // Iterative: the check must not itself recurse as deep as the brackets.
    let mut stack = vec![(tokens, 0usize)];
    while let Some((stream, depth)) = stack.pop() {
        for t in stream {
            if let proc_macro2::TokenTree::Group(g) = t {
                if depth + 1 > MAX_NESTING {
                    let at = g.span().start();
                    return Err(RustError {
                        line: at.line,
                        column: at.column + 1,
                        message: format!(
                            "brackets nest more than {MAX_NESTING} levels deep here; msgen reads Rust nested up to {MAX_NESTING} levels"
                        ),
                    });
                }
                stack.push((g.stream(), depth + 1));
            }
        }
    }
    syn::parse_file(source).map_err(|e| {
        let start = e.span().start();
        RustError {
            line: start.line,
            column: start.column + 1,
            message: e.to_string(),
        }
    })
}

/// Why a Rust file could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for RustError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Paths in `source` that start with `crate::<m>` for some `m` in `modules`.
/// Returns an error message when the file does not parse.
pub fn find_module_refs(source: &str, modules: &[String]) -> Result<Vec<ModuleRef>, String> {
    let file = parse_rust(source).map_err(|e| e.to_string())?;
    let mut v = Finder {
        modules,
        found: Vec::new(),
    };
    v.visit_file(&file);
    v.found
        .sort_by(|a, b| (a.line, &a.path).cmp(&(b.line, &b.path)));
    v.found.dedup();
    Ok(v.found)
}

/// Every path a `use` tree brings in, and whether it is a glob: `use a::{b, c::*}`
/// gives `(["a", "b"], false)` and `(["a", "c"], true)`; renames keep the original.
pub fn use_paths(tree: &syn::UseTree) -> Vec<(Vec<String>, bool)> {
    fn walk(prefix: &mut Vec<String>, tree: &syn::UseTree, out: &mut Vec<(Vec<String>, bool)>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                walk(prefix, &p.tree, out);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                path.push(n.ident.to_string());
                out.push((path, false));
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                path.push(r.ident.to_string());
                out.push((path, false));
            }
            syn::UseTree::Glob(_) => out.push((prefix.clone(), true)),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    walk(prefix, t, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&mut Vec::new(), tree, &mut out);
    out
}

struct Finder<'a> {
    modules: &'a [String],
    found: Vec<ModuleRef>,
}

impl Finder<'_> {
    fn check(&mut self, segments: &[String], line: usize) {
        if segments.len() >= 2 && segments[0] == "crate" && self.modules.contains(&segments[1]) {
            self.found.push(ModuleRef {
                line,
                path: segments.join("::"),
                module: segments[1].clone(),
            });
        }
    }
}

impl<'ast> Visit<'ast> for Finder<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let line = path
            .segments
            .first()
            .map(|s| s.ident.span().start().line)
            .unwrap_or(0);
        self.check(&segments, line);
        syn::visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let line = item.use_token.span.start().line;
        for (path, _glob) in use_paths(&item.tree) {
            self.check(&path, line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_uses_and_paths_with_lines() {
        let src = "use crate::user::repo::user;\nuse crate::{state::AppState, blog::models};\n\nfn f() {\n    let _ = crate::user::repo::user::get;\n    let _ = crate::state::X;\n}\n";
        let modules = vec!["user".to_string(), "blog".to_string()];
        let refs = find_module_refs(src, &modules).unwrap();
        let got: Vec<(usize, &str)> = refs.iter().map(|r| (r.line, r.path.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (1, "crate::user::repo::user"),
                (2, "crate::blog::models"),
                (5, "crate::user::repo::user::get"),
            ]
        );
    }

    #[test]
    fn unparsable_files_are_an_error() {
        assert!(find_module_refs("fn (", &[]).is_err());
    }
}
