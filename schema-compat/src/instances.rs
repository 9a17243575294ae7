//! Sample payloads of a schema, to run upcasters on: the schema's own `examples`, then
//! generated instances — one with only the required properties (nulls where allowed), one
//! with every property — once per union branch index, so every variant of a tagged enum is
//! seen. Generation is best effort (a `pattern` is not solved); callers keep only the
//! samples their validator accepts.
//!
//! Hand-written: the generators on crates.io target fuzzing with random data, and we want
//! a small deterministic set that covers each branch and each optional field.

use serde_json::{Map, Number, Value};

/// Deeper than this, recursive schemas stop expanding optional parts.
const MAX_DEPTH: usize = 8;
/// Union branch indexes tried per shape; schemars enums rarely have more variants.
const MAX_BRANCHES: usize = 16;

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Minimal,
    Full,
}

/// Examples first, then generated instances, without duplicates.
pub fn samples(schema: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = schema
        .get("examples")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let branches = widest_union(schema, schema, 0).clamp(1, MAX_BRANCHES);
    for branch in 0..branches {
        for shape in [Shape::Minimal, Shape::Full] {
            let generator = Generator {
                root: schema,
                shape,
                branch,
            };
            if let Some(instance) = generator.instance(schema, 0)
                && !out.contains(&instance)
            {
                out.push(instance);
            }
        }
    }
    out
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
            .unwrap_or(&Value::Null),
        None => schema,
    }
}

fn branches(schema: &Value) -> Option<&Vec<Value>> {
    schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
}

/// The largest number of branches (or enum values) of any union reachable from `schema`.
fn widest_union(root: &Value, schema: &Value, depth: usize) -> usize {
    if depth > MAX_DEPTH {
        return 0;
    }
    let schema = resolve(root, schema);
    let own = branches(schema)
        .or_else(|| schema.get("enum").and_then(Value::as_array))
        .map_or(0, Vec::len);
    let nested = children(schema)
        .map(|child| widest_union(root, child, depth + 1))
        .max()
        .unwrap_or(0);
    own.max(nested)
}

fn children(schema: &Value) -> impl Iterator<Item = &Value> {
    let object_values = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|map| map.values())
    };
    let array_values = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    };
    object_values("properties")
        .chain(array_values("oneOf"))
        .chain(array_values("anyOf"))
        .chain(array_values("allOf"))
        .chain(array_values("prefixItems"))
        .chain(schema.get("items").filter(|items| items.is_object()))
}

struct Generator<'a> {
    root: &'a Value,
    shape: Shape,
    branch: usize,
}

impl Generator<'_> {
    fn instance(&self, schema: &Value, depth: usize) -> Option<Value> {
        let schema = resolve(self.root, schema);
        if let Some(constant) = schema.get("const") {
            return Some(constant.clone());
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return values.get(self.branch % values.len().max(1)).cloned();
        }
        if let Some(options) = branches(schema) {
            let pick = options.get(self.branch % options.len().max(1))?;
            return self.instance(pick, depth + 1);
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            return self.all_of(all, depth);
        }
        match self.pick_type(schema)? {
            "null" => Some(Value::Null),
            "boolean" => Some(Value::Bool(self.shape == Shape::Full)),
            "integer" => Some(Value::Number(integer(schema))),
            "number" => Some(Value::Number(integer(schema))),
            "string" => Some(Value::String(string(schema))),
            "array" => self.array(schema, depth),
            "object" => self.object(schema, depth),
            _ => None,
        }
    }

    fn pick_type<'s>(&self, schema: &'s Value) -> Option<&'s str> {
        match schema.get("type") {
            Some(Value::String(single)) => Some(single),
            Some(Value::Array(types)) => {
                let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
                let wants_null = self.shape == Shape::Minimal;
                names
                    .iter()
                    .copied()
                    .find(|name| (*name == "null") == wants_null)
                    .or_else(|| names.first().copied())
            }
            _ if schema.get("properties").is_some() => Some("object"),
            _ => None,
        }
    }

    fn all_of(&self, parts: &[Value], depth: usize) -> Option<Value> {
        let mut merged = Map::new();
        for part in parts {
            match self.instance(part, depth + 1)? {
                Value::Object(fields) => merged.extend(fields),
                other if parts.len() == 1 => return Some(other),
                _ => return None,
            }
        }
        Some(Value::Object(merged))
    }

    fn array(&self, schema: &Value, depth: usize) -> Option<Value> {
        let mut items: Vec<Value> = Vec::new();
        if let Some(prefix) = schema.get("prefixItems").and_then(Value::as_array) {
            for item in prefix {
                items.push(self.instance(item, depth + 1)?);
            }
        }
        let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
        let wanted = match self.shape {
            Shape::Full if depth < MAX_DEPTH => min.max(items.len() + 1),
            _ => min.max(items.len()),
        };
        if let Some(item_schema) = schema.get("items").filter(|items| items.is_object()) {
            while items.len() < wanted {
                items.push(self.instance(item_schema, depth + 1)?);
            }
        }
        Some(Value::Array(items))
    }

    fn object(&self, schema: &Value, depth: usize) -> Option<Value> {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields = Map::new();
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, property) in properties.into_iter().flatten() {
            let wanted = required.contains(&name.as_str())
                || (self.shape == Shape::Full && depth < MAX_DEPTH);
            if wanted {
                fields.insert(name.clone(), self.instance(property, depth + 1)?);
            }
        }
        Some(Value::Object(fields))
    }
}

/// The smallest whole number the bounds allow (a multiple of `multipleOf` when integral).
fn integer(schema: &Value) -> Number {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let mut value = bound("minimum")
        .or_else(|| bound("exclusiveMinimum").map(|low| low.floor() + 1.0))
        .map_or(0.0, f64::ceil);
    if let Some(step) = bound("multipleOf").filter(|step| *step >= 1.0 && step.fract() == 0.0) {
        value = (value / step).ceil() * step;
    }
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        Number::from(value as i64)
    } else {
        Number::from_f64(value).unwrap_or_else(|| Number::from(0))
    }
}

fn string(schema: &Value) -> String {
    let format = schema.get("format").and_then(Value::as_str);
    let base = match format {
        Some("date-time") => "2026-01-01T00:00:00Z",
        Some("date") => "2026-01-01",
        Some("time") => "00:00:00Z",
        Some("email") => "someone@example.com",
        Some("uri") => "https://example.com/",
        Some("uuid") => "00000000-0000-4000-8000-000000000000",
        Some("ipv4") => "192.0.2.1",
        _ => "sample",
    };
    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .map_or(usize::MAX, |max| max as usize);
    let mut text: String = base.chars().take(max).collect();
    while text.chars().count() < min {
        text.push('x');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn optional_fields_appear_in_one_sample_and_not_the_other() {
        let schema = json!({
            "type": "object",
            "properties": {
                "id": {"type": "string", "minLength": 8},
                "note": {"type": ["string", "null"]},
                "count": {"type": "integer", "minimum": 3}
            },
            "required": ["id", "count"]
        });
        let samples = samples(&schema);
        assert!(samples.contains(&json!({"id": "samplexx", "count": 3})));
        assert!(samples.contains(&json!({"id": "samplexx", "note": "sample", "count": 3})));
    }

    #[test]
    fn every_branch_of_a_tagged_enum_is_sampled_after_the_examples() {
        let schema = json!({
            "examples": [{"kind": "a"}],
            "oneOf": [
                {"type": "object", "properties": {"kind": {"const": "a"}}, "required": ["kind"]},
                {"type": "object", "properties": {"kind": {"const": "b"}, "at": {"$ref": "#/$defs/At"}}, "required": ["kind", "at"]},
                {"type": "string", "enum": ["c", "d", "e"]}
            ],
            "$defs": {"At": {"type": "string", "format": "date-time"}}
        });
        let samples = samples(&schema);
        assert_eq!(samples[0], json!({"kind": "a"}));
        assert!(samples.contains(&json!({"kind": "b", "at": "2026-01-01T00:00:00Z"})));
        assert!(
            samples
                .iter()
                .any(|sample| sample.as_str().is_some_and(|s| "cde".contains(s)))
        );
    }

    #[test]
    fn recursive_schemas_terminate() {
        let schema = json!({
            "$ref": "#/$defs/Node",
            "$defs": {"Node": {"type": "object", "properties": {
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
            }}}
        });
        assert!(!samples(&schema).is_empty());
    }
}
