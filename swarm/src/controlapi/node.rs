//! `node` objects: validation and CRUD through the store.
