//! Load balancers: one policy per file behind one trait.
