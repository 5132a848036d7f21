//! The scheduler: assigns pending tasks to nodes (filters, spread preferences).
