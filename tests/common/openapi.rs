//! The OpenAPI document as tests read it: operations by method and concrete path, `$ref`s
//! resolved, and a small JSON Schema check (the subset the document uses) that also refuses
//! fields a schema does not name.

use regex::Regex;
use serde_json::{Map, Value};

pub const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

pub struct Doc {
    pub root: Value,
}

impl Doc {
    /// The document the code generates now.
    pub fn generated() -> Doc {
        let text = switchyard::api::openapi::to_json().unwrap();
        Doc {
            root: serde_json::from_str(&text).unwrap(),
        }
    }

    pub fn paths(&self) -> &Map<String, Value> {
        self.root["paths"].as_object().unwrap()
    }

    /// Every operation: (method in upper case, path template, operation).
    pub fn operations(&self) -> Vec<(String, String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in self.paths() {
            for method in METHODS {
                if let Some(op) = item.get(*method) {
                    out.push((method.to_uppercase(), path.clone(), op));
                }
            }
        }
        out
    }

    /// The template a concrete path falls under (`{x}` matches one segment).
    pub fn template_of(&self, path: &str) -> Option<String> {
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        self.paths()
            .keys()
            .find(|template| {
                let t: Vec<&str> = template.split('/').collect();
                t.len() == segments.len()
                    && t.iter()
                        .zip(&segments)
                        .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}')))
            })
            .cloned()
    }

    pub fn operation(&self, method: &str, template: &str) -> Option<&Value> {
        self.paths()
            .get(template)
            .and_then(|item| item.get(method.to_lowercase()))
    }

    /// Follows a `$ref` (within this document) until a value that is not one.
    pub fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            value = self.pointer(reference);
        }
        value
    }

    pub fn pointer(&self, reference: &str) -> &Value {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {reference}"));
        self.root
            .pointer(pointer)
            .unwrap_or_else(|| panic!("$ref {reference} points at nothing"))
    }

    /// The response an operation documents for `status`, resolved.
    pub fn response<'a>(&'a self, op: &'a Value, status: u16) -> Option<&'a Value> {
        op["responses"]
            .get(status.to_string())
            .map(|r| self.resolve(r))
    }

    /// Why `value` does not match `schema`, if it does not.
    pub fn check(&self, value: &Value, schema: &Value) -> Result<(), String> {
        self.check_at("$", value, schema, true)
    }

    fn check_at(
        &self,
        at: &str,
        value: &Value,
        schema: &Value,
        strict: bool,
    ) -> Result<(), String> {
        let schema = self.resolve(schema);
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.check_at(at, value, part, false)?;
            }
            if strict {
                self.no_unknown_fields(at, value, &self.known_fields(schema))?;
            }
        }
        if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
            let matching = one
                .iter()
                .filter(|s| self.check_at(at, value, s, strict).is_ok())
                .count();
            if matching != 1 {
                return Err(format!("{at}: {value} matches {matching} of oneOf {one:?}"));
            }
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => return Err(format!("{at}: bad type {types}")),
            };
            if !types.iter().any(|t| has_type(value, t)) {
                return Err(format!("{at}: {value} is not of type {types:?}"));
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array)
            && !values.contains(value)
        {
            return Err(format!("{at}: {value} is not one of {values:?}"));
        }
        match value {
            Value::Object(fields) => self.check_object(at, fields, schema, strict)?,
            Value::Array(items) => self.check_array(at, items, schema)?,
            Value::String(s) => check_string(at, s, schema)?,
            Value::Number(n) => check_number(at, n.as_f64().unwrap_or(f64::NAN), schema)?,
            _ => {}
        }
        Ok(())
    }

    fn check_object(
        &self,
        at: &str,
        fields: &Map<String, Value>,
        schema: &Value,
        strict: bool,
    ) -> Result<(), String> {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !fields.contains_key(name) {
                return Err(format!("{at}: required `{name}` is missing"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, field) in fields {
            let here = format!("{at}.{name}");
            match (
                properties.and_then(|p| p.get(name)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => self.check_at(&here, field, s, true)?,
                (None, Some(Value::Bool(false))) => {
                    return Err(format!("{here}: not allowed (additionalProperties: false)"));
                }
                (None, Some(extra @ Value::Object(_))) => {
                    self.check_at(&here, field, extra, true)?
                }
                (None, _) if strict && properties.is_some() => {
                    return Err(format!("{here}: answered but not documented"));
                }
                (None, _) => {}
            }
        }
        Ok(())
    }

    fn check_array(&self, at: &str, items: &[Value], schema: &Value) -> Result<(), String> {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            return Err(format!("{at}: fewer than {min} items"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && (items.len() as u64) > max
        {
            return Err(format!("{at}: more than {max} items"));
        }
        if let Some(item) = schema.get("items") {
            for (i, v) in items.iter().enumerate() {
                self.check_at(&format!("{at}[{i}]"), v, item, true)?;
            }
        }
        Ok(())
    }

    /// The properties an `allOf` names, across its parts.
    fn known_fields(&self, schema: &Value) -> Vec<String> {
        let schema = self.resolve(schema);
        let mut names: Vec<String> = schema["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            names.extend(self.known_fields(part));
        }
        names
    }

    fn no_unknown_fields(&self, at: &str, value: &Value, known: &[String]) -> Result<(), String> {
        for name in value.as_object().into_iter().flat_map(Map::keys) {
            if !known.contains(name) {
                return Err(format!("{at}.{name}: answered but not documented"));
            }
        }
        Ok(())
    }
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

fn check_string(at: &str, s: &str, schema: &Value) -> Result<(), String> {
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && !Regex::new(pattern).unwrap().is_match(s)
    {
        return Err(format!("{at}: {s:?} does not match {pattern}"));
    }
    if schema.get("format").and_then(Value::as_str) == Some("uuid")
        && uuid::Uuid::try_parse(s).is_err()
    {
        return Err(format!("{at}: {s:?} is not a uuid"));
    }
    let len = s.chars().count() as u64;
    if schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .is_some_and(|m| len > m)
        || schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
    {
        return Err(format!("{at}: {s:?} has a length out of bounds"));
    }
    Ok(())
}

fn check_number(at: &str, n: f64, schema: &Value) -> Result<(), String> {
    if schema
        .get("minimum")
        .and_then(Value::as_f64)
        .is_some_and(|m| n < m)
        || schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
    {
        return Err(format!("{at}: {n} is out of bounds"));
    }
    Ok(())
}
