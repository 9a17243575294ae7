//! Redaction at query (Section 2): projections and the log keep full state; what a query
//! returns has every field marked `#[sensitive]` (`x-sensitive` in the type's schema)
//! replaced, unless the caller's capability reveals that type's sensitive fields.

use serde_json::Value;

/// What a redacted field reads as.
pub const REDACTED: &str = "[redacted]";

/// Deeper schemas than this are not walked; a recursive type cannot loop.
const MAX_DEPTH: usize = 64;

/// Replaces every value of a sensitive field of `schema` in `payload`; returns the JSON
/// pointers of what it replaced.
pub fn redact(payload: &mut Value, schema: &Value) -> Vec<String> {
    let mut redacted = Vec::new();
    walk(
        payload,
        schema,
        schema,
        &mut String::new(),
        &mut redacted,
        0,
    );
    redacted
}

fn walk(
    value: &mut Value,
    node: &Value,
    root: &Value,
    pointer: &mut String,
    redacted: &mut Vec<String>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let node = resolve(node, root);
    if let (Some(properties), Value::Object(fields)) = (node.get("properties"), &mut *value) {
        for (name, property) in properties.as_object().into_iter().flatten() {
            let Some(field) = fields.get_mut(name) else {
                continue;
            };
            let length = pointer.len();
            pointer.push('/');
            pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
            if resolve(property, root).get("x-sensitive") == Some(&Value::Bool(true))
                || property.get("x-sensitive") == Some(&Value::Bool(true))
            {
                *field = Value::String(REDACTED.to_owned());
                redacted.push(pointer.clone());
            } else {
                walk(field, property, root, pointer, redacted, depth + 1);
            }
            pointer.truncate(length);
        }
    }
    if let (Some(items), Value::Array(elements)) = (node.get("items"), &mut *value) {
        for (index, element) in elements.iter_mut().enumerate() {
            let length = pointer.len();
            pointer.push_str(&format!("/{index}"));
            walk(element, items, root, pointer, redacted, depth + 1);
            pointer.truncate(length);
        }
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        for branch in node
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(value, branch, root, pointer, redacted, depth + 1);
        }
    }
}

/// Follows a local `$ref` (`#/$defs/Name`) to its definition.
fn resolve<'a>(node: &'a Value, root: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
            .unwrap_or(node),
        None => node,
    }
}
