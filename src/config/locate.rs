//! Where a TOML parse error is: a best-effort dotted key and line for the error message.

/// Best-effort dotted key for a TOML error, from the line its span starts on.
pub(super) fn toml_error_key(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return "(document)".into();
    };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let table = before
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            l.starts_with('[')
                .then(|| l.trim_matches(|c| c == '[' || c == ']').to_string())
        })
        .unwrap_or_default();
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    let field = line.split('=').next().unwrap_or("").trim();
    let key = match (table.is_empty(), field.is_empty() || field.starts_with('[')) {
        (true, _) => field.to_string(),
        (false, true) => table,
        (false, false) => format!("{table}.{field}"),
    };
    format!("{key} (line {line_no})")
}
