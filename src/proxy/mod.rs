//! The data plane: listeners, connections, routing, forwarding, upstream pools.
