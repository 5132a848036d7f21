//! shoald engine API.
