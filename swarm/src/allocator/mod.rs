//! The allocator: IPAM pools, service VIPs, published ports, the ingress network; moves tasks from new to pending.
