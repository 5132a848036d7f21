//! Container output on the node: the FIFOs containerd's shim writes a
//! task's stdout and stderr into, copied to a json-file log per container
//! (dockerd's format and file name), rotated by size.

mod fifo;
mod json;
pub mod reader;
pub mod tasks;

pub use fifo::fifo_paths;
pub use fifo::Chunk;
pub use fifo::Copier;
pub use fifo::Tap;
pub use json::log_path;
pub use json::LogLine;
pub use json::Rotation;
