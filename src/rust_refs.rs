//! Reading Rust with syn, safely: a parse that refuses what would overflow the
//! stack, and the paths of a `use` tree. Which module a path leads into is
//! `adopt::module_uses`'s question, answered by one resolver for both splits.

/// A path in a source file that leads into another top-level module of the crate
/// (`crate::user::repo`, `super::super::user::Profile`, one in a macro's
/// arguments), as `adopt::module_uses` finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRef {
    pub line: usize,
    /// The path as written, e.g. `crate::user::repo::user::get` (a `use` tree's
    /// `self` and `*` left out).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unparsable_files_are_an_error() {
        assert!(parse_rust("fn (").is_err());
    }
}
