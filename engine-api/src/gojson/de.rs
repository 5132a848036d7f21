//! A serde `Deserializer` over [`Json`] that decodes as Go's
//! `encoding/json` does.
//!
//! The target type tells the deserializer what it wants: a struct hands over
//! its field names (`deserialize_struct`), so members are matched to fields
//! there ([`super::fields::resolve`]) and nowhere else; maps, `Value`s and
//! sequences see the document as it is. `null`, and a field the document
//! leaves out, decode as Go's zero value of whatever the target asks for.

use serde::de::value::MapDeserializer;
use serde::de::value::SeqDeserializer;
use serde::de::DeserializeSeed;
use serde::de::EnumAccess;
use serde::de::IntoDeserializer;
use serde::de::MapAccess;
use serde::de::Unexpected;
use serde::de::VariantAccess;
use serde::de::Visitor;
use serde::forward_to_deserialize_any;
use serde::Deserializer;
use serde_json::Error;

use super::fields::resolve;
use super::tree::Json;

impl Json {
    /// This value as serde's "invalid type" errors describe it.
    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Json::Null => Unexpected::Unit,
            Json::Bool(b) => Unexpected::Bool(*b),
            Json::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Unexpected::Unsigned(u),
                (None, Some(i)) => Unexpected::Signed(i),
                _ => Unexpected::Float(n.as_f64().unwrap_or_default()),
            },
            Json::String(s) => Unexpected::Str(s),
            Json::Array(_) => Unexpected::Seq,
            Json::Object(_) => Unexpected::Map,
        }
    }
}

impl<'de> IntoDeserializer<'de, Error> for Json {
    type Deserializer = Json;

    fn into_deserializer(self) -> Json {
        self
    }
}

fn visit_seq<'de, V: Visitor<'de>>(items: Vec<Json>, visitor: V) -> Result<V::Value, Error> {
    let mut seq = SeqDeserializer::new(items.into_iter());
    let value = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(value)
}

fn visit_map<'de, K, V>(members: Vec<(K, Json)>, visitor: V) -> Result<V::Value, Error>
where
    K: IntoDeserializer<'de, Error>,
    V: Visitor<'de>,
{
    let mut map = MapDeserializer::new(members.into_iter());
    let value = visitor.visit_map(&mut map)?;
    map.end()?;
    Ok(value)
}

/// An object read as a map whose keys are data. Go decodes an object into
/// an empty struct by ignoring every member; the generated types model such
/// a struct (`Global`, `GlobalJob`, a config's `Runtime`) as a map keyed by
/// units, which no key can be: a map that asks for a key as a unit is read
/// empty, whatever the object holds.
fn visit_object<'de, V: Visitor<'de>>(
    members: Vec<(String, Json)>,
    visitor: V,
) -> Result<V::Value, Error> {
    visitor.visit_map(Members {
        iter: members.into_iter(),
        value: None,
    })
}

struct Members<I> {
    iter: I,
    value: Option<Json>,
}

impl<'de, I: Iterator<Item = (String, Json)>> MapAccess<'de> for Members<I> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((name, value)) = self.iter.next() else {
            return Ok(None);
        };
        let mut unit = false;
        let key = seed.deserialize(Key {
            name,
            unit: &mut unit,
        })?;
        if unit {
            self.iter.by_ref().for_each(drop);
            return Ok(None);
        }
        self.value = Some(value);
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(self.value.take().unwrap_or(Json::Null))
    }
}

/// A member's name as a map key: a string, except that a unit key (see
/// [`visit_object`]) is noted instead of refused.
struct Key<'a> {
    name: String,
    unit: &'a mut bool,
}

impl<'de> Deserializer<'de> for Key<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        IntoDeserializer::<Error>::into_deserializer(self.name).deserialize_any(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        *self.unit = true;
        visitor.visit_unit()
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        IntoDeserializer::<Error>::into_deserializer(self.name)
            .deserialize_enum(name, variants, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

/// A scalar target: `null` gives `$zero`, anything else is read as it is
/// (and refused by the visitor if it is the wrong kind).
macro_rules! scalar {
    ($($method:ident => $zero:expr;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                match self {
                    Json::Null => $zero(visitor),
                    other => other.deserialize_any(visitor),
                }
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Json {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(b),
            Json::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or_default())
                }
            }
            Json::String(s) => visitor.visit_string(s),
            Json::Array(items) => visit_seq(items, visitor),
            // A map (labels, options) or a `Value`: keys are data, kept as
            // sent; a repeated key is inserted again, so the last one wins
            // as in Go.
            Json::Object(members) => visit_object(members, visitor),
        }
    }

    scalar! {
        deserialize_bool => |v: V| v.visit_bool(false);
        deserialize_i8 => |v: V| v.visit_i8(0);
        deserialize_i16 => |v: V| v.visit_i16(0);
        deserialize_i32 => |v: V| v.visit_i32(0);
        deserialize_i64 => |v: V| v.visit_i64(0);
        deserialize_u8 => |v: V| v.visit_u8(0);
        deserialize_u16 => |v: V| v.visit_u16(0);
        deserialize_u32 => |v: V| v.visit_u32(0);
        deserialize_u64 => |v: V| v.visit_u64(0);
        deserialize_f32 => |v: V| v.visit_f32(0.0);
        deserialize_f64 => |v: V| v.visit_f64(0.0);
        deserialize_char => |v: V| v.visit_char('\0');
        deserialize_str => |v: V| v.visit_str("");
        deserialize_string => |v: V| v.visit_str("");
        deserialize_bytes => |v: V| v.visit_bytes(&[]);
        deserialize_byte_buf => |v: V| v.visit_bytes(&[]);
        deserialize_seq => |v: V| visit_seq(Vec::new(), v);
        deserialize_map => |v: V| visit_map(Vec::<(String, Json)>::new(), v);
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        match self {
            // Go's zero array: every element zero.
            Json::Null => visit_seq(vec![Json::Null; len], visitor),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Json::Null => visit_map(resolve(fields, Vec::new()), visitor),
            Json::Object(members) => visit_map(resolve(fields, members), visitor),
            // Go has no struct-from-array form; serde's derive would take one.
            other => Err(serde::de::Error::invalid_type(other.unexpected(), &visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            // The API's enums are Go strings, whose zero value is "".
            Json::Null => visitor.visit_enum("".into_deserializer()),
            Json::String(s) => visitor.visit_enum(s.into_deserializer()),
            Json::Object(mut members) if members.len() == 1 => {
                let (variant, value) = members.remove(0);
                visitor.visit_enum(Tagged { variant, value })
            }
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        i128 u128 unit unit_struct identifier
    }
}

/// An externally tagged enum value: `{"Variant": value}`.
struct Tagged {
    variant: String,
    value: Json,
}

impl<'de> EnumAccess<'de> for Tagged {
    type Error = Error;
    type Variant = Json;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Json), Error> {
        let variant = seed.deserialize(self.variant.into_deserializer())?;
        Ok((variant, self.value))
    }
}

impl<'de> VariantAccess<'de> for Json {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        serde::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_struct("", fields, visitor)
    }
}
