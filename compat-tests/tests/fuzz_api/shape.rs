//! The OpenAPI description read into what the fuzz run needs: each
//! operation's method, path, parameters and body shape, with every `$ref`
//! resolved.

use std::path::Path;

use openapiv3::AdditionalProperties;
use openapiv3::OpenAPI;
use openapiv3::Parameter;
use openapiv3::ParameterSchemaOrContent;
use openapiv3::ReferenceOr;
use openapiv3::Schema;
use openapiv3::SchemaKind;
use openapiv3::Type;
use openapiv3::VariantOrUnknownOrEmpty;
use serde_json::Value;

/// The shape of a JSON value, as much of a schema as generating values needs.
#[derive(Debug, Clone)]
pub struct Shape {
    /// What kind of value.
    pub kind: Kind,
    /// How often a valid object holds this member when it is optional
    /// (`x-fuzz-weight`, default 0.4).
    pub weight: f64,
}

impl Shape {
    /// How often a valid object holds this member when it is optional.
    pub fn weight(&self) -> f64 {
        self.weight
    }
}

/// The kinds of JSON value.
#[derive(Debug, Clone)]
pub enum Kind {
    /// An object with named members and, for maps, a shape for any key.
    Object {
        /// Named members: name, shape, whether required.
        props: Vec<(String, Shape, bool)>,
        /// Map values (`additionalProperties`), if the object is a map.
        map_of: Option<Box<Shape>>,
        /// Members of which a valid object holds exactly one (`x-one-of`).
        one_of: Vec<String>,
    },
    /// A list.
    Array {
        /// Items' shape.
        items: Box<Shape>,
        /// At most this many items.
        max: usize,
    },
    /// A string.
    Str {
        /// The only values allowed, if listed.
        choices: Vec<String>,
        /// The `format` (see the YAML's header for the known ones).
        format: String,
        /// A known good value.
        example: Option<String>,
    },
    /// An integer.
    Int {
        /// Smallest valid value.
        min: Option<i64>,
        /// Largest valid value.
        max: Option<i64>,
        /// The largest value ever sent, even in a mutation (`x-fuzz-max`).
        cap: Option<i64>,
        /// A known good value.
        example: Option<i64>,
    },
    /// A floating-point number within bounds.
    Num {
        /// Smallest valid value.
        min: Option<f64>,
        /// Largest valid value.
        max: Option<f64>,
    },
    /// A boolean; `fixed` is the only value ever sent (`x-fuzz-const`).
    Bool {
        /// The only value sent, if fixed.
        fixed: Option<bool>,
    },
}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The query string.
    Query,
    /// A path segment (`{id}`).
    Path,
    /// A request header.
    Header,
}

/// One parameter of an operation.
#[derive(Debug, Clone)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Where it goes.
    pub place: Place,
    /// Whether the route needs it.
    pub required: bool,
    /// Its value's shape (the JSON inside for `filters`).
    pub shape: Shape,
    /// Filter names the route accepts (`x-filter-names`).
    pub filter_names: Vec<String>,
    /// Never sent (`x-fuzz-skip`).
    pub skip: bool,
    /// How often a valid request holds it when it is optional
    /// (`x-fuzz-weight`, default 0.6).
    pub weight: f64,
}

/// One operation: a method on a path.
#[derive(Debug, Clone)]
pub struct Operation {
    /// `operationId`.
    pub id: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// The path template, e.g. `/services/{id}/update`.
    pub path: String,
    /// Path-level and operation-level parameters.
    pub params: Vec<Param>,
    /// The JSON body's shape, if the operation takes one.
    pub body: Option<Shape>,
}

/// Reads the OpenAPI document at `path` into its operations, in file order.
pub fn load(path: &Path) -> Vec<Operation> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let doc: OpenAPI = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is no OpenAPI 3 document: {e}", path.display()));
    let r = Resolver { doc: &doc };
    let mut out = Vec::new();
    for (template, item) in doc.paths.iter() {
        let item = item.as_item().expect("path items are written inline");
        for (method, op) in item.iter() {
            let params = item
                .parameters
                .iter()
                .chain(&op.parameters)
                .map(|p| r.param(p))
                .collect();
            let body = op.request_body.as_ref().map(|b| {
                let b = b.as_item().expect("request bodies are written inline");
                let media = b.content.get("application/json").expect("bodies are JSON");
                r.schema(media.schema.as_ref().expect("a body schema"), 0)
            });
            out.push(Operation {
                id: op.operation_id.clone().expect("every operation has an id"),
                method: method.to_ascii_uppercase(),
                path: template.clone(),
                params,
                body,
            });
        }
    }
    out
}

struct Resolver<'a> {
    doc: &'a OpenAPI,
}

/// Schemas here do not refer to themselves; this bounds a mistake.
const MAX_DEPTH: usize = 32;

impl Resolver<'_> {
    fn param(&self, p: &ReferenceOr<Parameter>) -> Param {
        let p = match p {
            ReferenceOr::Item(p) => p,
            ReferenceOr::Reference { reference } => {
                let name = reference
                    .strip_prefix("#/components/parameters/")
                    .unwrap_or_else(|| panic!("unknown reference {reference}"));
                self.doc
                    .components
                    .as_ref()
                    .and_then(|c| c.parameters.get(name))
                    .and_then(ReferenceOr::as_item)
                    .unwrap_or_else(|| panic!("no parameter {name}"))
            }
        };
        let (data, place) = match p {
            Parameter::Query { parameter_data, .. } => (parameter_data, Place::Query),
            Parameter::Path { parameter_data, .. } => (parameter_data, Place::Path),
            Parameter::Header { parameter_data, .. } => (parameter_data, Place::Header),
            Parameter::Cookie { .. } => panic!("the Engine API takes no cookies"),
        };
        let schema = match &data.format {
            ParameterSchemaOrContent::Schema(s) => s,
            ParameterSchemaOrContent::Content(c) => c
                .get("application/json")
                .and_then(|m| m.schema.as_ref())
                .expect("a JSON parameter has a schema"),
        };
        let filter_names = data
            .extensions
            .get("x-filter-names")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Param {
            name: data.name.clone(),
            place,
            required: data.required,
            shape: self.schema(schema, 0),
            filter_names,
            skip: data.extensions.get("x-fuzz-skip") == Some(&Value::Bool(true)),
            weight: data
                .extensions
                .get("x-fuzz-weight")
                .and_then(Value::as_f64)
                .unwrap_or(0.6),
        }
    }

    fn lookup(&self, reference: &str) -> &Schema {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unknown reference {reference}"));
        self.doc
            .components
            .as_ref()
            .and_then(|c| c.schemas.get(name))
            .and_then(ReferenceOr::as_item)
            .unwrap_or_else(|| panic!("no schema {name}"))
    }

    fn schema(&self, s: &ReferenceOr<Schema>, depth: usize) -> Shape {
        match s {
            ReferenceOr::Item(s) => self.item(s, depth),
            ReferenceOr::Reference { reference } => self.item(self.lookup(reference), depth),
        }
    }

    fn boxed(&self, s: &ReferenceOr<Box<Schema>>, depth: usize) -> Shape {
        match s {
            ReferenceOr::Item(s) => self.item(s, depth),
            ReferenceOr::Reference { reference } => self.item(self.lookup(reference), depth),
        }
    }

    fn item(&self, s: &Schema, depth: usize) -> Shape {
        let weight = s
            .schema_data
            .extensions
            .get("x-fuzz-weight")
            .and_then(Value::as_f64)
            .unwrap_or(0.4);
        Shape {
            kind: self.kind(s, depth),
            weight,
        }
    }

    fn kind(&self, s: &Schema, depth: usize) -> Kind {
        assert!(depth < MAX_DEPTH, "schema nested past {MAX_DEPTH} levels");
        let ext = &s.schema_data.extensions;
        let example = s.schema_data.example.as_ref();
        let ty = match &s.schema_kind {
            SchemaKind::Type(t) => t,
            // One reference wrapped to give it a description or weight.
            SchemaKind::AllOf { all_of } if all_of.len() == 1 => {
                return self.schema(&all_of[0], depth + 1).kind;
            }
            other => panic!("only plain typed schemas are used here, not {other:?}"),
        };
        match ty {
            Type::Object(o) => Kind::Object {
                one_of: ext
                    .get("x-one-of")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                props: o
                    .properties
                    .iter()
                    .map(|(k, v)| (k.clone(), self.boxed(v, depth + 1), o.required.contains(k)))
                    .collect(),
                map_of: match &o.additional_properties {
                    Some(AdditionalProperties::Schema(v)) => {
                        Some(Box::new(self.schema(v, depth + 1)))
                    }
                    Some(AdditionalProperties::Any(true)) => Some(Box::new(Shape {
                        kind: Kind::Str {
                            choices: Vec::new(),
                            format: String::new(),
                            example: None,
                        },
                        weight: 1.0,
                    })),
                    _ => None,
                },
            },
            Type::Array(a) => Kind::Array {
                items: Box::new(
                    a.items
                        .as_ref()
                        .map(|i| self.boxed(i, depth + 1))
                        .expect("arrays name their items"),
                ),
                max: a.max_items.unwrap_or(3),
            },
            Type::String(t) => Kind::Str {
                choices: t.enumeration.iter().flatten().cloned().collect(),
                format: match &t.format {
                    VariantOrUnknownOrEmpty::Unknown(f) => f.clone(),
                    VariantOrUnknownOrEmpty::Item(f) => format!("{f:?}").to_ascii_lowercase(),
                    VariantOrUnknownOrEmpty::Empty => String::new(),
                },
                example: example.and_then(Value::as_str).map(str::to_string),
            },
            Type::Integer(t) => Kind::Int {
                min: t.minimum,
                max: t.maximum,
                cap: ext.get("x-fuzz-max").and_then(Value::as_i64),
                example: example.and_then(Value::as_i64),
            },
            Type::Number(t) => Kind::Num {
                min: t.minimum,
                max: t.maximum,
            },
            Type::Boolean(_) => Kind::Bool {
                fixed: ext.get("x-fuzz-const").and_then(Value::as_bool),
            },
        }
    }
}
