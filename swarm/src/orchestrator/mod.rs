//! Orchestrators: turn service specs into tasks (replicated, global, jobs, restarts, updates, reaper).
