//! shoal control plane.
