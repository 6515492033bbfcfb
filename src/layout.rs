//! Rust source laid out as rustfmt lays it out, for the generated lines whose
//! width depends on names from `services.toml`: a rendered project passes
//! `cargo fmt --check` as it is, without msgen running rustfmt.

/// `open`, the items, then `close`, at `indent`, as rustfmt lays out a call, an
/// array or a signature: on one line while it fits in 100 columns (and the items
/// in `items_width`, rustfmt's 60 for calls and arrays), else one item per line.
pub fn one_line_or_one_per_line(
    indent: usize,
    open: &str,
    items: &[String],
    close: &str,
    items_width: Option<usize>,
) -> String {
    let pad = " ".repeat(indent);
    let inline = items.join(", ");
    let line = format!("{pad}{open}{inline}{close}");
    if line.len() <= 100 && items_width.is_none_or(|w| inline.len() <= w) {
        return line;
    }
    let items: String = items.iter().map(|i| format!("{pad}    {i},\n")).collect();
    format!("{pad}{open}\n{items}{pad}{close}")
}

/// `callee(args)` and `tail`, as rustfmt lays calls out.
pub fn call(indent: usize, callee: &str, args: &[String], tail: &str) -> String {
    one_line_or_one_per_line(
        indent,
        &format!("{callee}("),
        args,
        &format!("){tail}"),
        Some(60),
    )
}

/// `head(params) -> ret {` at `indent`, as rustfmt lays out a function's
/// signature (no 60-column rule for parameters).
pub fn fn_head(indent: usize, head: &str, params: &[&str], ret: &str) -> String {
    let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
    one_line_or_one_per_line(
        indent,
        &format!("{head}("),
        &params,
        &format!(") -> {ret} {{"),
        None,
    )
}

/// `pattern => value,` at `indent` spaces, or the value in a block of its own
/// when the line would pass rustfmt's 100 columns.
pub fn match_arm(indent: usize, pattern: &str, value: &str) -> String {
    let pad = " ".repeat(indent);
    let one_line = format!("{pad}{pattern} => {value},");
    if one_line.chars().count() <= 100 {
        one_line
    } else {
        format!("{pad}{pattern} => {{\n{pad}    {value}\n{pad}}}")
    }
}

/// `const NAME: &str = r#"..."#;`, broken after `=` when longer than rustfmt's 100
/// columns, exactly as `cargo fmt` lays it out.
pub fn rust_str_const(indent: &str, name: &str, value: &str) -> String {
    let one_line = format!("{indent}const {name}: &str = r#\"{value}\"#;");
    let broken_tail = format!("{indent}    r#\"{value}\"#;");
    if one_line.chars().count() <= 100 || broken_tail.chars().count() > 100 {
        // rustfmt keeps a line it cannot bring under the limit either way.
        one_line
    } else {
        format!("{indent}const {name}: &str =\n{broken_tail}")
    }
}

/// `head value;`, or, past 100 columns, the value on a line of its own after
/// `head` (as rustfmt breaks an assignment after its `=`).
pub fn broken_after_eq(head: &str, value: &str, indent: &str) -> String {
    let line = format!("{head} {value};");
    if line.len() <= 100 {
        line
    } else {
        format!("{head}\n{indent}    {value};")
    }
}

/// Named SQL statements as `const` items, each on one line or broken after its
/// `=` (the raw string kept whole).
pub fn str_consts(statements: &[(&str, String)]) -> String {
    statements
        .iter()
        .map(|(name, sql)| rust_str_const("", name, sql))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Named SQL statements as `const` items whose raw strings span lines (one clause
/// and one column a line), as rustfmt leaves them.
pub fn block_str_consts(statements: &[(&str, &str)]) -> String {
    statements
        .iter()
        .map(|(name, sql)| format!("const {name}: &str = r#\"\n{sql}\n\"#;"))
        .collect::<Vec<_>>()
        .join("\n")
}
