//! The schema-driven fuzz run's parts: the OpenAPI description read into
//! shapes, valid values and mutations made from them, requests made from
//! operations, and the 5xx answers accepted.

pub mod allow;
pub mod case;
pub mod mutate;
pub mod shape;
pub mod values;
