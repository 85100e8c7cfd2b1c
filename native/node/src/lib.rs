//! moe-node: the Node-API binding of moe-em.
