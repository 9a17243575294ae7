//! What the engine's tests share: validation by the independent `jsonschema` crate, read
//! with this crate's semantics (numeric formats as bounds, typed producers closed), and
//! the check that a witness really is one.

use serde_json::{Map, Value, json};

/// The schema a typed producer writes under: objects that declare properties and say
/// nothing of others get `additionalProperties: false`, their required names declared. Left alone (`None`) where `allOf`
/// composes objects, since closing each part would not mean the same.
pub fn closed(schema: &Value) -> Option<Value> {
    fn walk(node: &Value, in_all_of: bool) -> Option<Value> {
        let Value::Object(map) = node else {
            return Some(node.clone());
        };
        if map.contains_key("allOf") && map.values().any(|v| v.is_object()) {
            let declares =
                |v: &Value| v.get("properties").is_some() || v.get("patternProperties").is_some();
            if map
                .get("allOf")
                .and_then(Value::as_array)
                .is_some_and(|list| list.iter().any(declares))
                || declares(node)
            {
                return None;
            }
        }
        let mut out = Map::new();
        for (key, value) in map {
            let child = match (key.as_str(), value) {
                (
                    "properties" | "patternProperties" | "$defs" | "definitions"
                    | "dependentSchemas",
                    Value::Object(children),
                ) => {
                    let mut walked = Map::new();
                    for (name, child) in children {
                        walked.insert(name.clone(), walk(child, false)?);
                    }
                    Value::Object(walked)
                }
                ("anyOf" | "oneOf" | "prefixItems" | "items", Value::Array(children)) => {
                    Value::Array(
                        children
                            .iter()
                            .map(|c| walk(c, false))
                            .collect::<Option<Vec<_>>>()?,
                    )
                }
                ("allOf", Value::Array(children)) => Value::Array(
                    children
                        .iter()
                        .map(|c| walk(c, true))
                        .collect::<Option<Vec<_>>>()?,
                ),
                (
                    "items"
                    | "additionalProperties"
                    | "additionalItems"
                    | "contains"
                    | "then"
                    | "else"
                    | "if"
                    | "not"
                    | "propertyNames",
                    child,
                ) => walk(child, false)?,
                _ => value.clone(),
            };
            out.insert(key.clone(), child);
        }
        let declares = map.contains_key("properties") || map.contains_key("patternProperties");
        let explicit =
            map.contains_key("additionalProperties") || map.contains_key("unevaluatedProperties");
        if declares && !explicit && !in_all_of && !map.contains_key("$ref") {
            out.insert("additionalProperties".into(), Value::Bool(false));
            // What it requires it writes: a required name it does not list is declared,
            // of any value.
            let required = map.get("required").and_then(Value::as_array);
            for name in required.into_iter().flatten().filter_map(Value::as_str) {
                let properties = out
                    .entry("properties")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("`properties` is an object");
                properties.entry(name).or_insert(Value::Bool(true));
            }
        }
        Some(Value::Object(out))
    }
    walk(schema, false)
}

/// Numeric formats as the bounds they assert, so a validator that ignores them agrees.
pub fn numeric_formats_as_bounds(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), numeric_formats_as_bounds(v)))
                .collect();
            let range = match map.get("format").and_then(Value::as_str) {
                Some("int8") => Some((json!(i8::MIN), json!(i8::MAX))),
                Some("int16") => Some((json!(i16::MIN), json!(i16::MAX))),
                Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
                Some("int64" | "int") => Some((json!(i64::MIN), json!(i64::MAX))),
                Some("uint8") => Some((json!(0), json!(u8::MAX))),
                Some("uint16") => Some((json!(0), json!(u16::MAX))),
                Some("uint32") => Some((json!(0), json!(u32::MAX))),
                Some("uint64" | "uint") => Some((json!(0), json!(u64::MAX))),
                Some("float") => Some((json!(f32::MIN), json!(f32::MAX))),
                _ => None,
            };
            if let Some((low, high)) = range {
                let constraint = json!({"anyOf": [
                    {"not": {"type": "number"}},
                    {"minimum": low, "maximum": high, "not": {"not": {"multipleOf": if map.get("format").and_then(Value::as_str) == Some("float") { json!(f64::MIN_POSITIVE) } else { json!(1) }}}}
                ]});
                let all_of = out.entry("allOf").or_insert_with(|| json!([]));
                if let Some(list) = all_of.as_array_mut() {
                    list.push(constraint);
                }
            }
            Value::Object(out)
        }
        Value::Array(list) => Value::Array(list.iter().map(numeric_formats_as_bounds).collect()),
        other => other.clone(),
    }
}

/// The draft a schema without `$schema` is written in, judged by its spellings.
fn legacy_draft(schema: &Value) -> Option<jsonschema::Draft> {
    fn find(node: &Value, test: &dyn Fn(&Map<String, Value>) -> bool) -> bool {
        match node {
            Value::Object(map) => test(map) || map.values().any(|v| find(v, test)),
            Value::Array(list) => list.iter().any(|v| find(v, test)),
            _ => false,
        }
    }
    if schema.get("$schema").is_some() {
        return None;
    }
    if find(schema, &|m| {
        m.get("exclusiveMinimum").is_some_and(Value::is_boolean)
            || m.get("exclusiveMaximum").is_some_and(Value::is_boolean)
    }) {
        Some(jsonschema::Draft::Draft4)
    } else if find(schema, &|m| {
        m.get("items").is_some_and(Value::is_array)
            || m.contains_key("additionalItems")
            || m.contains_key("dependencies")
    }) {
        Some(jsonschema::Draft::Draft7)
    } else {
        None
    }
}

pub fn validates(schema: &Value, value: &Value) -> Result<bool, String> {
    let draft = legacy_draft(schema);
    let schema = numeric_formats_as_bounds(schema);
    let mut options = jsonschema::options();
    if let Some(draft) = draft {
        options = options.with_draft(draft);
    }
    let validator = options
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| format!("jsonschema cannot build {schema}: {e}"))?;
    Ok(validator.is_valid(value))
}

/// A witness is real when the producer accepts it (closed where closing is expressible)
/// and the reader refuses it.
pub fn check_witness(producer: &Value, reader: &Value, witness: &Value) -> Result<(), String> {
    if !validates(producer, witness)? {
        return Err(format!("the producer refuses the witness {witness}"));
    }
    if let Some(closed) = closed(producer)
        && !validates(&closed, witness)?
    {
        return Err(format!(
            "a typed producer would not write the witness {witness}"
        ));
    }
    if validates(reader, witness)? {
        return Err(format!("the reader accepts the witness {witness}"));
    }
    Ok(())
}
