//! Redaction at query (Section 2): projections and the log keep full state; what a query
//! returns has every field marked `#[sensitive]` (`x-sensitive` in the type's schema)
//! replaced, unless the caller's capability reveals that type's sensitive fields. The same
//! walk finds the fields the runtime encrypts per data subject (`#[subject]` fields name
//! whose data an object holds).

use serde_json::Value;

use crate::event;

/// A data subject was erased (Section 11): its key was destroyed, so every field sealed
/// under it reads as shredded from now on. The event is the tombstone of the subject; the
/// envelope records who did it and when.
#[event(public)]
#[derive(Clone, Debug, PartialEq)]
#[schemars(example = RedactionApplied {
    subject_id: "sub_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
    fields: vec!["pack.incidents.incident.IncidentAcknowledged#/by/display_name".to_owned()],
    reason: "right to erasure request 2026-117".to_owned(),
    capability_state_ref: "evt_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
})]
pub struct RedactionApplied {
    pub subject_id: String,
    /// `<event type>#<JSON pointer>` of every field of the log that held the subject's data.
    pub fields: Vec<String>,
    pub reason: String,
    /// The capability event the check of this step relied on; empty when the runtime took
    /// the step itself (nothing asked) and in receipts recorded before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capability_state_ref: String,
}

/// What a redacted field reads as.
pub const REDACTED: &str = "[redacted]";

/// Deeper schemas than this are not walked; a recursive type cannot loop.
const MAX_DEPTH: usize = 64;

/// A field marked sensitive, found in a payload.
pub struct SensitiveField<'a> {
    /// Its JSON pointer in the payload.
    pub pointer: &'a str,
    /// Whose data it is: the values of the enclosing object's `#[subject]` fields, as
    /// `name=value` lines in name order; `None` when the object names no subject.
    pub subject: Option<&'a str>,
    pub value: &'a mut Value,
}

/// Replaces every value of a sensitive field of `schema` in `payload`; returns the JSON
/// pointers of what it replaced.
pub fn redact(payload: &mut Value, schema: &Value) -> Vec<String> {
    let mut redacted = Vec::new();
    for_each_sensitive(payload, schema, &mut |field| {
        *field.value = Value::String(REDACTED.to_owned());
        redacted.push(field.pointer.to_owned());
    });
    redacted
}

/// Calls `visit` with every sensitive field of `payload` under `schema`.
pub fn for_each_sensitive(
    payload: &mut Value,
    schema: &Value,
    visit: &mut dyn FnMut(SensitiveField<'_>),
) {
    walk(payload, schema, schema, &mut String::new(), visit, 0);
}

fn marked(node: &Value, root: &Value, mark: &str) -> bool {
    let flag = |node: &Value| node.get(mark) == Some(&Value::Bool(true));
    flag(node) || flag(resolve(node, root))
}

fn walk(
    value: &mut Value,
    node: &Value,
    root: &Value,
    pointer: &mut String,
    visit: &mut dyn FnMut(SensitiveField<'_>),
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let node = resolve(node, root);
    if let (Some(properties), Value::Object(fields)) = (
        node.get("properties").and_then(Value::as_object),
        &mut *value,
    ) {
        let subject: Vec<String> = properties
            .iter()
            .filter(|(_, property)| marked(property, root, "x-subject"))
            .filter_map(|(name, _)| {
                let value = fields.get(name)?;
                Some(format!(
                    "{name}={}",
                    value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned)
                ))
            })
            .collect();
        let subject = (!subject.is_empty()).then(|| subject.join("\n"));
        for (name, property) in properties {
            let Some(field) = fields.get_mut(name) else {
                continue;
            };
            let length = pointer.len();
            pointer.push('/');
            pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
            if marked(property, root, "x-sensitive") {
                visit(SensitiveField {
                    pointer,
                    subject: subject.as_deref(),
                    value: field,
                });
            } else {
                walk(field, property, root, pointer, visit, depth + 1);
            }
            pointer.truncate(length);
        }
    }
    if let (Some(items), Value::Array(elements)) = (node.get("items"), &mut *value) {
        for (index, element) in elements.iter_mut().enumerate() {
            let length = pointer.len();
            pointer.push_str(&format!("/{index}"));
            walk(element, items, root, pointer, visit, depth + 1);
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
            walk(value, branch, root, pointer, visit, depth + 1);
        }
    }
}

/// Whether any node of a schema (its `$defs` included) is marked `x-sensitive`.
pub fn marks_sensitive(schema: &Value) -> bool {
    match schema {
        Value::Object(node) => {
            node.get("x-sensitive") == Some(&Value::Bool(true))
                || node.values().any(marks_sensitive)
        }
        Value::Array(items) => items.iter().any(marks_sensitive),
        _ => false,
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
