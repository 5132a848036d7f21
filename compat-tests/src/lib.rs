//! Compatibility tools for shoal: recorder and replayer of Docker API traffic.
