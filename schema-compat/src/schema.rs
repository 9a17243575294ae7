//! Reading a schema document into the arena the engine works on: one [`Node`] per schema
//! position, `$ref`s resolved to nodes (base URIs from `$id`, `$anchor`s, JSON pointers,
//! bundled resources), legacy draft spellings read as their 2020-12 equivalents.
//!
//! Hand-written: the validator crates resolve references for validation only and do not
//! expose a schema model; the engine needs each keyword typed and each position addressable.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::format::Format;
use crate::pattern::PatternId;
use crate::{Patterns, SchemaError};

pub type NodeId = usize;

/// Which of the two compared documents a node comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Old,
    New,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Old => "old",
            Side::New => "new",
        }
    }
}

/// JSON types as a bit set; `INTEGER` is the integral part of `NUMBER`.
pub mod types {
    pub const NULL: u8 = 1;
    pub const BOOLEAN: u8 = 2;
    pub const INTEGER: u8 = 4;
    pub const NUMBER: u8 = 8;
    pub const STRING: u8 = 16;
    pub const ARRAY: u8 = 32;
    pub const OBJECT: u8 = 64;
    pub const ALL: u8 = 127;

    pub fn parse(name: &str) -> Option<u8> {
        Some(match name {
            "null" => NULL,
            "boolean" => BOOLEAN,
            "integer" => INTEGER,
            "number" => NUMBER,
            "string" => STRING,
            "array" => ARRAY,
            "object" => OBJECT,
            _ => return None,
        })
    }

    pub fn names(set: u8) -> Vec<&'static str> {
        [
            (NULL, "null"),
            (BOOLEAN, "boolean"),
            (INTEGER, "integer"),
            (NUMBER, "number"),
            (STRING, "string"),
            (ARRAY, "array"),
            (OBJECT, "object"),
        ]
        .into_iter()
        .filter(|(bit, _)| set & bit != 0)
        .map(|(_, name)| name)
        .collect()
    }
}

#[derive(Debug)]
pub struct Node {
    pub side: Side,
    pub pointer: String,
    pub body: Body,
}

#[derive(Debug)]
pub enum Body {
    True,
    False,
    Schema(Box<Keywords>),
    /// Made by the engine, never read from a document: exactly this value.
    Const(Value),
}

/// An inclusive or exclusive numeric bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub exclusive: bool,
}

/// Every assertion and applicator of one schema object, typed.
#[derive(Debug, Default)]
pub struct Keywords {
    pub types: Option<u8>,
    /// `const` and `enum` together: the value must be one of these.
    pub values: Option<Vec<Value>>,
    pub minimum: Option<Bound>,
    pub maximum: Option<Bound>,
    pub multiple_of: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<PatternId>,
    pub format: Option<Format>,
    pub prefix_items: Vec<NodeId>,
    pub items: Option<NodeId>,
    pub contains: Option<NodeId>,
    pub min_contains: Option<u64>,
    pub max_contains: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
    pub unevaluated_items: Option<NodeId>,
    pub properties: Vec<(String, NodeId)>,
    /// `properties` or `patternProperties` is present, even empty: the object declares
    /// which properties it has (typed producers write no others).
    pub declares_properties: bool,
    pub pattern_properties: Vec<(PatternId, NodeId)>,
    pub additional_properties: Option<NodeId>,
    pub required: Vec<String>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub property_names: Option<NodeId>,
    pub dependent_required: Vec<(String, Vec<String>)>,
    pub dependent_schemas: Vec<(String, NodeId)>,
    pub unevaluated_properties: Option<NodeId>,
    pub all_of: Vec<NodeId>,
    pub any_of: Vec<NodeId>,
    pub one_of: Vec<NodeId>,
    pub not: Option<NodeId>,
    pub reference: Option<NodeId>,
    pub if_then_else: Option<(NodeId, Option<NodeId>, Option<NodeId>)>,
}

impl Keywords {
    /// Nothing but a `$ref` (and annotations or definitions beside it).
    pub fn is_only_reference(&self) -> bool {
        let Keywords {
            types,
            values,
            minimum,
            maximum,
            multiple_of,
            min_length,
            max_length,
            pattern,
            format,
            prefix_items,
            items,
            contains,
            min_contains,
            max_contains,
            min_items,
            max_items,
            unique_items,
            unevaluated_items,
            properties,
            declares_properties,
            pattern_properties,
            additional_properties,
            required,
            min_properties,
            max_properties,
            property_names,
            dependent_required,
            dependent_schemas,
            unevaluated_properties,
            all_of,
            any_of,
            one_of,
            not,
            reference: _,
            if_then_else,
        } = self;
        types.is_none()
            && values.is_none()
            && minimum.is_none()
            && maximum.is_none()
            && multiple_of.is_none()
            && min_length.is_none()
            && max_length.is_none()
            && pattern.is_none()
            && format.is_none()
            && prefix_items.is_empty()
            && items.is_none()
            && contains.is_none()
            && min_contains.is_none()
            && max_contains.is_none()
            && min_items.is_none()
            && max_items.is_none()
            && !unique_items
            && unevaluated_items.is_none()
            && properties.is_empty()
            && !declares_properties
            && pattern_properties.is_empty()
            && additional_properties.is_none()
            && required.is_empty()
            && min_properties.is_none()
            && max_properties.is_none()
            && property_names.is_none()
            && dependent_required.is_empty()
            && dependent_schemas.is_empty()
            && unevaluated_properties.is_none()
            && all_of.is_empty()
            && any_of.is_empty()
            && one_of.is_empty()
            && not.is_none()
            && if_then_else.is_none()
    }
}

/// Annotations that never change what a schema accepts.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "examples",
    "default",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentEncoding",
    "contentMediaType",
    "contentSchema",
];

pub struct Arena {
    pub nodes: Vec<Node>,
    pub patterns: Patterns,
}

impl Arena {
    pub fn new() -> Self {
        Arena {
            nodes: Vec::new(),
            patterns: Patterns::default(),
        }
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    pub fn keywords(&self, id: NodeId) -> Option<&Keywords> {
        match &self.nodes[id].body {
            Body::Schema(keywords) => Some(keywords),
            _ => None,
        }
    }

    /// A node accepting exactly `value` (for distinct items and fresh property names).
    pub fn constant(&mut self, value: Value) -> NodeId {
        self.nodes.push(Node {
            side: Side::New,
            pointer: String::new(),
            body: Body::Const(value),
        });
        self.nodes.len() - 1
    }

    /// Reads a whole document; its root is the returned node.
    pub fn read(&mut self, side: Side, root: &Value) -> Result<NodeId, SchemaError> {
        let draft = Draft::of(root);
        let mut index = Index::default();
        let base = format!("ops-schema://{}/root.json", side.name());
        index.scan(root, "", &base, draft);
        let mut reader = Reader {
            arena: self,
            side,
            root,
            draft,
            index,
            parsed: BTreeMap::new(),
        };
        reader.node("", &base)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Draft {
    Draft4,
    Draft7,
    Draft2019,
    Draft2020,
}

impl Draft {
    fn of(root: &Value) -> Draft {
        let Some(uri) = root.get("$schema").and_then(Value::as_str) else {
            return Draft::Draft2020;
        };
        if uri.contains("draft-04") || uri.contains("draft-03") {
            Draft::Draft4
        } else if uri.contains("draft-06") || uri.contains("draft-07") {
            Draft::Draft7
        } else if uri.contains("2019-09") {
            Draft::Draft2019
        } else {
            Draft::Draft2020
        }
    }

    fn id_keyword(self) -> &'static str {
        if self == Draft::Draft4 { "id" } else { "$id" }
    }
}

/// Where each resource (`$id`) and anchor of a document is, and the base URI of each
/// object position.
#[derive(Default)]
struct Index {
    resources: BTreeMap<String, String>,
    anchors: BTreeMap<String, String>,
    /// The base URI of each resource root (the document's and each `$id`'s).
    bases: BTreeMap<String, String>,
}

impl Index {
    fn scan(&mut self, value: &Value, pointer: &str, base: &str, draft: Draft) {
        match value {
            Value::Object(map) => {
                let mut base = base.to_owned();
                if let Some(id) = map.get(draft.id_keyword()).and_then(Value::as_str) {
                    let absolute = resolve_uri(&base, id);
                    let (resource, fragment) = split_fragment(&absolute);
                    base = resource.to_owned();
                    // Draft 4-7 spell anchors as `$id: "#name"`.
                    if !fragment.is_empty() && !fragment.starts_with('/') {
                        self.anchors
                            .insert(format!("{base}#{fragment}"), pointer.to_owned());
                    } else {
                        self.resources.insert(base.clone(), pointer.to_owned());
                    }
                }
                if pointer.is_empty() {
                    self.resources.entry(base.clone()).or_default();
                }
                for key in ["$anchor", "$dynamicAnchor"] {
                    if let Some(anchor) = map.get(key).and_then(Value::as_str) {
                        self.anchors
                            .insert(format!("{base}#{anchor}"), pointer.to_owned());
                    }
                }
                if pointer.is_empty() || map.contains_key(draft.id_keyword()) {
                    self.bases.insert(pointer.to_owned(), base.clone());
                }
                for (key, child) in map {
                    if key == "enum" || key == "const" || ANNOTATIONS.contains(&key.as_str()) {
                        continue;
                    }
                    self.scan(child, &format!("{pointer}/{}", escape(key)), &base, draft);
                }
            }
            Value::Array(list) => {
                for (index, child) in list.iter().enumerate() {
                    self.scan(child, &format!("{pointer}/{index}"), base, draft);
                }
            }
            _ => {}
        }
    }
}

impl Index {
    /// The base URI at `pointer`: that of the nearest enclosing resource (`$id`).
    fn base_of(&self, pointer: &str) -> Option<String> {
        self.bases
            .iter()
            .filter(|(root, _)| {
                pointer.starts_with(root.as_str())
                    && (pointer.len() == root.len() || pointer.as_bytes()[root.len()] == b'/')
            })
            .max_by_key(|(root, _)| root.len())
            .map(|(_, base)| base.clone())
    }
}

pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn split_fragment(uri: &str) -> (&str, &str) {
    match uri.split_once('#') {
        Some((resource, fragment)) => (resource, fragment),
        None => (uri, ""),
    }
}

/// RFC 3986 reference resolution, enough for schema identifiers: absolute references, `#`
/// fragments, absolute paths and relative paths with `.` and `..` segments.
fn resolve_uri(base: &str, reference: &str) -> String {
    let has_scheme = reference
        .split_once(':')
        .is_some_and(|(scheme, _)| crate::format::is_scheme(scheme));
    if has_scheme {
        return reference.to_owned();
    }
    let (base_resource, _) = split_fragment(base);
    if let Some(fragment) = reference.strip_prefix('#') {
        return format!("{base_resource}#{fragment}");
    }
    let (scheme, rest) = base_resource
        .split_once("://")
        .unwrap_or(("", base_resource));
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let joined = if reference.starts_with("//") {
        return format!("{scheme}:{reference}");
    } else if reference.starts_with('/') {
        reference.to_owned()
    } else {
        let directory = &path[..path.rfind('/').map_or(0, |at| at + 1)];
        format!("{directory}{reference}")
    };
    let (joined_path, fragment) = match joined.split_once('#') {
        Some((path, fragment)) => (path.to_owned(), Some(fragment.to_owned())),
        None => (joined, None),
    };
    let mut segments: Vec<&str> = Vec::new();
    for segment in joined_path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = format!("{scheme}://{authority}/{}", segments.join("/"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(&fragment);
    }
    out
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

struct Reader<'a> {
    arena: &'a mut Arena,
    side: Side,
    root: &'a Value,
    draft: Draft,
    index: Index,
    parsed: BTreeMap<String, NodeId>,
}

impl<'a> Reader<'a> {
    fn error(&self, pointer: &str, message: impl Into<String>) -> SchemaError {
        SchemaError {
            which: self.side.name(),
            pointer: if pointer.is_empty() {
                "/".to_owned()
            } else {
                pointer.to_owned()
            },
            message: message.into(),
        }
    }

    fn at(&self, pointer: &str) -> Option<&'a Value> {
        self.root.pointer(pointer)
    }

    /// The node at `pointer`, read once.
    fn node(&mut self, pointer: &str, base: &str) -> Result<NodeId, SchemaError> {
        if let Some(&id) = self.parsed.get(pointer) {
            return Ok(id);
        }
        let value = self
            .at(pointer)
            .ok_or_else(|| self.error(pointer, "nothing is at this pointer"))?;
        let body = match value {
            Value::Bool(true) => Body::True,
            Value::Bool(false) => Body::False,
            Value::Object(_) => Body::True,
            _ => return Err(self.error(pointer, "a schema must be an object or a boolean")),
        };
        let id = self.arena.nodes.len();
        self.arena.nodes.push(Node {
            side: self.side,
            pointer: pointer.to_owned(),
            body,
        });
        self.parsed.insert(pointer.to_owned(), id);
        if let Value::Object(map) = value {
            let base = self
                .index
                .base_of(pointer)
                .unwrap_or_else(|| base.to_owned());
            let keywords = self.keywords(map, pointer, &base)?;
            self.arena.nodes[id].body = Body::Schema(Box::new(keywords));
        }
        Ok(id)
    }

    fn child(&mut self, pointer: &str, key: &str, base: &str) -> Result<NodeId, SchemaError> {
        self.node(&format!("{pointer}/{}", escape(key)), base)
    }

    fn list(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        key: &str,
        base: &str,
    ) -> Result<Vec<NodeId>, SchemaError> {
        let Some(value) = map.get(key) else {
            return Ok(Vec::new());
        };
        let here = format!("{pointer}/{key}");
        let list = value
            .as_array()
            .filter(|list| !list.is_empty())
            .ok_or_else(|| {
                self.error(
                    &here,
                    format!("`{key}` must be a non-empty array of schemas"),
                )
            })?;
        (0..list.len())
            .map(|index| self.node(&format!("{here}/{index}"), base))
            .collect()
    }

    fn schema_map(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        key: &str,
        base: &str,
    ) -> Result<Vec<(String, NodeId)>, SchemaError> {
        let Some(value) = map.get(key) else {
            return Ok(Vec::new());
        };
        let here = format!("{pointer}/{}", escape(key));
        let entries = value
            .as_object()
            .ok_or_else(|| self.error(&here, format!("`{key}` must be an object of schemas")))?;
        let names: Vec<String> = entries.keys().cloned().collect();
        names
            .into_iter()
            .map(|name| {
                let id = self.child(&here, &name, base)?;
                Ok((name, id))
            })
            .collect()
    }

    fn count(
        &self,
        map: &Map<String, Value>,
        pointer: &str,
        key: &str,
    ) -> Result<Option<u64>, SchemaError> {
        match map.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .or_else(|| {
                    value
                        .as_f64()
                        .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                        .map(|f| f as u64)
                })
                .map(Some)
                .ok_or_else(|| {
                    self.error(
                        &format!("{pointer}/{key}"),
                        format!("`{key}` must be a non-negative integer"),
                    )
                }),
        }
    }

    fn number(
        &self,
        map: &Map<String, Value>,
        pointer: &str,
        key: &str,
    ) -> Result<Option<f64>, SchemaError> {
        match map.get(key) {
            None => Ok(None),
            Some(Value::Bool(_)) if self.draft == Draft::Draft4 || key.starts_with("exclusive") => {
                Ok(None)
            }
            Some(value) => value.as_f64().map(Some).ok_or_else(|| {
                self.error(
                    &format!("{pointer}/{key}"),
                    format!("`{key}` must be a number"),
                )
            }),
        }
    }

    fn strings(&self, value: &Value, here: &str, key: &str) -> Result<Vec<String>, SchemaError> {
        value
            .as_array()
            .and_then(|list| {
                list.iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| self.error(here, format!("`{key}` must be an array of strings")))
    }

    fn reference(
        &mut self,
        reference: &str,
        pointer: &str,
        base: &str,
    ) -> Result<NodeId, SchemaError> {
        let here = format!("{pointer}/$ref");
        let absolute = resolve_uri(base, reference);
        let (resource, fragment) = split_fragment(&absolute);
        let target = if fragment.is_empty() || fragment.starts_with('/') {
            let Some(root) = self.index.resources.get(resource) else {
                return Err(self.error(&here, format!("`{reference}` names no schema in this document (remote references are not fetched)")));
            };
            let decoded = percent_decode(fragment);
            let tokens: Vec<String> = decoded.split('/').skip(1).map(unescape).collect();
            let mut target = root.clone();
            for token in tokens {
                target.push('/');
                target.push_str(&escape(&token));
            }
            target
        } else {
            match self.index.anchors.get(&absolute) {
                Some(target) => target.clone(),
                None => {
                    return Err(self.error(
                        &here,
                        format!("`{reference}` names no anchor in this document"),
                    ));
                }
            }
        };
        if self.at(&target).is_none() {
            return Err(self.error(&here, format!("`{reference}` points at nothing")));
        }
        let target_base = self
            .index
            .base_of(&target)
            .unwrap_or_else(|| resource.to_owned());
        self.node(&target, &target_base)
    }

    fn keywords(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        base: &str,
    ) -> Result<Keywords, SchemaError> {
        let mut k = Keywords::default();
        let reference = map.get("$ref").or_else(|| map.get("$dynamicRef"));
        if let Some(reference) = reference {
            let text = reference
                .as_str()
                .ok_or_else(|| self.error(&format!("{pointer}/$ref"), "`$ref` must be a string"))?;
            k.reference = Some(self.reference(text, pointer, base)?);
            // Before 2019-09 a `$ref` replaces every keyword beside it.
            if self.draft <= Draft::Draft7 {
                return Ok(k);
            }
        }
        if let Some(value) = map.get("type") {
            let here = format!("{pointer}/type");
            let names: Vec<&Value> = match value {
                Value::Array(list) => list.iter().collect(),
                other => vec![other],
            };
            let mut set = 0;
            for name in names {
                let bit = name
                    .as_str()
                    .and_then(types::parse)
                    .ok_or_else(|| self.error(&here, format!("`{name}` is not a JSON type (null, boolean, integer, number, string, array, object)")))?;
                set |= bit;
            }
            k.types = Some(set);
        }
        if let Some(value) = map.get("const") {
            k.values = Some(vec![value.clone()]);
        }
        if let Some(value) = map.get("enum") {
            let list = value
                .as_array()
                .ok_or_else(|| self.error(&format!("{pointer}/enum"), "`enum` must be an array"))?;
            k.values = Some(match k.values.take() {
                Some(constant) => constant
                    .into_iter()
                    .filter(|c| list.iter().any(|v| crate::eval::same(c, v)))
                    .collect(),
                None => list.clone(),
            });
        }
        let draft4_exclusive = |key: &str| map.get(key) == Some(&Value::Bool(true));
        if let Some(value) = self.number(map, pointer, "minimum")? {
            k.minimum = Some(Bound {
                value,
                exclusive: draft4_exclusive("exclusiveMinimum"),
            });
        }
        if let Some(value) = self.number(map, pointer, "exclusiveMinimum")? {
            let bound = Bound {
                value,
                exclusive: true,
            };
            k.minimum = Some(match k.minimum {
                Some(other) if other.value > value => other,
                _ => bound,
            });
        }
        if let Some(value) = self.number(map, pointer, "maximum")? {
            k.maximum = Some(Bound {
                value,
                exclusive: draft4_exclusive("exclusiveMaximum"),
            });
        }
        if let Some(value) = self.number(map, pointer, "exclusiveMaximum")? {
            let bound = Bound {
                value,
                exclusive: true,
            };
            k.maximum = Some(match k.maximum {
                Some(other) if other.value < value => other,
                _ => bound,
            });
        }
        if let Some(value) = self.number(map, pointer, "multipleOf")? {
            if value <= 0.0 {
                return Err(self.error(
                    &format!("{pointer}/multipleOf"),
                    "`multipleOf` must be greater than 0",
                ));
            }
            k.multiple_of = Some(value);
        }
        k.min_length = self.count(map, pointer, "minLength")?;
        k.max_length = self.count(map, pointer, "maxLength")?;
        if let Some(value) = map.get("pattern") {
            let source = value.as_str().ok_or_else(|| {
                self.error(&format!("{pointer}/pattern"), "`pattern` must be a string")
            })?;
            k.pattern = Some(self.arena.patterns.intern(source));
        }
        if let Some(value) = map.get("format") {
            let name = value.as_str().ok_or_else(|| {
                self.error(&format!("{pointer}/format"), "`format` must be a string")
            })?;
            k.format = Some(Format::parse(name));
        }
        // Arrays: 2020-12 `prefixItems`/`items`, or the older array form of `items` with
        // `additionalItems`.
        match map.get("items") {
            Some(Value::Array(list)) => {
                for index in 0..list.len() {
                    let id = self.node(&format!("{pointer}/items/{index}"), base)?;
                    k.prefix_items.push(id);
                }
                if map.contains_key("additionalItems") {
                    k.items = Some(self.child(pointer, "additionalItems", base)?);
                }
            }
            other => {
                k.prefix_items = self.list(map, pointer, "prefixItems", base)?;
                if other.is_some() {
                    k.items = Some(self.child(pointer, "items", base)?);
                }
            }
        }
        if map.contains_key("contains") {
            k.contains = Some(self.child(pointer, "contains", base)?);
        }
        k.min_contains = self.count(map, pointer, "minContains")?;
        k.max_contains = self.count(map, pointer, "maxContains")?;
        k.min_items = self.count(map, pointer, "minItems")?;
        k.max_items = self.count(map, pointer, "maxItems")?;
        match map.get("uniqueItems") {
            None => {}
            Some(Value::Bool(unique)) => k.unique_items = *unique,
            Some(_) => {
                return Err(self.error(
                    &format!("{pointer}/uniqueItems"),
                    "`uniqueItems` must be a boolean",
                ));
            }
        }
        if map.contains_key("unevaluatedItems") {
            k.unevaluated_items = Some(self.child(pointer, "unevaluatedItems", base)?);
        }
        k.properties = self.schema_map(map, pointer, "properties", base)?;
        k.declares_properties =
            map.contains_key("properties") || map.contains_key("patternProperties");
        for (source, id) in self.schema_map(map, pointer, "patternProperties", base)? {
            let pattern = self.arena.patterns.intern(&source);
            k.pattern_properties.push((pattern, id));
        }
        if map.contains_key("additionalProperties") {
            k.additional_properties = Some(self.child(pointer, "additionalProperties", base)?);
        }
        if let Some(value) = map.get("required") {
            k.required = self.strings(value, &format!("{pointer}/required"), "required")?;
        }
        k.min_properties = self.count(map, pointer, "minProperties")?;
        k.max_properties = self.count(map, pointer, "maxProperties")?;
        if map.contains_key("propertyNames") {
            k.property_names = Some(self.child(pointer, "propertyNames", base)?);
        }
        if let Some(value) = map.get("dependentRequired") {
            let here = format!("{pointer}/dependentRequired");
            let entries = value
                .as_object()
                .ok_or_else(|| self.error(&here, "`dependentRequired` must be an object"))?;
            for (name, list) in entries {
                let names = self.strings(
                    list,
                    &format!("{here}/{}", escape(name)),
                    "dependentRequired",
                )?;
                k.dependent_required.push((name.clone(), names));
            }
        }
        k.dependent_schemas = self.schema_map(map, pointer, "dependentSchemas", base)?;
        if let Some(Value::Object(entries)) = map.get("dependencies") {
            let here = format!("{pointer}/dependencies");
            for (name, value) in entries {
                if value.is_array() {
                    let names =
                        self.strings(value, &format!("{here}/{}", escape(name)), "dependencies")?;
                    k.dependent_required.push((name.clone(), names));
                } else {
                    let id = self.child(&here, name, base)?;
                    k.dependent_schemas.push((name.clone(), id));
                }
            }
        }
        if map.contains_key("unevaluatedProperties") {
            k.unevaluated_properties = Some(self.child(pointer, "unevaluatedProperties", base)?);
        }
        k.all_of = self.list(map, pointer, "allOf", base)?;
        k.any_of = self.list(map, pointer, "anyOf", base)?;
        k.one_of = self.list(map, pointer, "oneOf", base)?;
        if map.contains_key("not") {
            k.not = Some(self.child(pointer, "not", base)?);
        }
        if map.contains_key("if") {
            let condition = self.child(pointer, "if", base)?;
            let then = if map.contains_key("then") {
                Some(self.child(pointer, "then", base)?)
            } else {
                None
            };
            let otherwise = if map.contains_key("else") {
                Some(self.child(pointer, "else", base)?)
            } else {
                None
            };
            k.if_then_else = Some((condition, then, otherwise));
        }
        // Definitions are read so that a bad one is reported, though only references use them.
        for key in ["$defs", "definitions"] {
            if map.get(key).is_some_and(Value::is_object) {
                self.schema_map(map, pointer, key, base)?;
            }
        }
        Ok(k)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && index + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[index + 1..index + 3], 16)
        {
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::resolve_uri;

    #[test]
    fn references_resolve_against_their_base() {
        let base = "https://example.com/schemas/root.json";
        assert_eq!(
            resolve_uri(base, "item.json"),
            "https://example.com/schemas/item.json"
        );
        assert_eq!(
            resolve_uri(base, "../other.json#/a"),
            "https://example.com/other.json#/a"
        );
        assert_eq!(resolve_uri(base, "/x.json"), "https://example.com/x.json");
        assert_eq!(
            resolve_uri(base, "#/$defs/a"),
            "https://example.com/schemas/root.json#/$defs/a"
        );
        assert_eq!(resolve_uri(base, "urn:uuid:1"), "urn:uuid:1");
    }
}
