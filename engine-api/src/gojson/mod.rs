//! Request bodies decoded by Go's `encoding/json` rules, for every type in
//! one place.
//!
//! dockerd decodes request JSON with Go's decoder, and clients rely on what
//! it forgives: the Python SDK and hand-written calls send `name`,
//! `replicated` or `templating` where the API documents `Name`,
//! `Replicated` and `Templating`. The rules reproduced here, for any serde
//! type (the API's generated types and our own request structs):
//! - an object member matches the struct field spelled exactly like its key,
//!   else the first field equal to it ignoring case; other members are
//!   ignored;
//! - a key repeated (in any case) is decoded into what the earlier one left:
//!   objects merge, anything else is replaced, so the last one wins;
//! - `null`, and a field no member sets, give the zero value of the field's
//!   type (`None`, `""`, `0`, `false`, empty, or a struct of zero fields).
//!
//! serde_derive matches keys exactly and has no hook for this, and no crate
//! does it for types we do not annotate ourselves (`serde_aux`'s helper
//! needs an attribute per struct and covers one level), so this module does
//! it as a `Deserializer`: the document is first read into a tree that keeps
//! key order and repeats ([`tree`]); structs then match members to the field
//! names serde hands to `deserialize_struct` ([`fields`]).
//!
//! Limits, by construction: a struct with `#[serde(flatten)]` or an
//! untagged enum is fed by serde's own buffer, which matches keys exactly
//! (decode such a type's parts separately); and a field with
//! `#[serde(alias)]` would be set twice (Go has no aliases; case folding
//! covers what one was for).

mod de;
mod fields;
mod tree;

#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;

/// Decodes `bytes` into `T` by Go's rules (see the module doc). Syntax
/// errors are serde_json's, so `is_eof()` still tells a truncated body.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    let doc: tree::Json = serde_json::from_slice(bytes)?;
    T::deserialize(doc)
}
